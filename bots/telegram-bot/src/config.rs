//! Settings from the environment: every variable the bot reads, checked once at start.
//!
//! A missing or malformed setting is one `ConfigError` whose message names the variable, so the
//! container log shows a single clear line. An empty value counts as unset, because the
//! template renders optional parameters as empty strings.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use url::Url;

/// Every environment variable the bot reads, with what it means.
pub const ENV_VARS: &[(&str, &str)] = &[
    ("TELEGRAM_BOT_TOKEN", "required: the bot's token from @BotFather"),
    ("TELEGRAM_API_URL", "Bot API server, default https://api.telegram.org"),
    ("ROUTER_BASE_URL", "required: OpenAI-compatible base URL, ending before /chat/completions"),
    ("ROUTER_API_KEY", "required: the Router API key (sent as a bearer token)"),
    ("ROUTER_MODEL", "model id, default gpt-4o-mini"),
    ("ROUTER_TIMEOUT_SECS", "per-attempt Router timeout in seconds, default 60"),
    ("SYSTEM_PROMPT", "instructions sent first in every conversation"),
    ("ALLOWED_CHAT_IDS", "comma list of chat ids (negative for groups); empty = everyone"),
    ("HISTORY_TURNS", "earlier exchanges remembered per chat, 0-50, default 8"),
    ("HEALTH_LISTEN", "address of /healthz, /readyz (and the webhook), default 0.0.0.0:8080"),
    ("LOG_FORMAT", "json (default) or text"),
    ("WEBHOOK_URL", "public https URL: switches from long polling to webhook mode"),
    ("WEBHOOK_SECRET", "required with WEBHOOK_URL: 1-256 of A-Z a-z 0-9 _ -"),
];

pub const DEFAULT_TELEGRAM_API_URL: &str = "https://api.telegram.org";
pub const DEFAULT_ROUTER_MODEL: &str = "gpt-4o-mini";
pub const DEFAULT_SYSTEM_PROMPT: &str =
    "You are a helpful assistant answering in a Telegram chat. Keep answers short and clear.";
pub const DEFAULT_HISTORY_TURNS: usize = 8;
pub const MAX_HISTORY_TURNS: usize = 50;
pub const DEFAULT_HEALTH_LISTEN: &str = "0.0.0.0:8080";
pub const DEFAULT_ROUTER_TIMEOUT: Duration = Duration::from_secs(60);

/// A secret string (bot token, API key, webhook secret): `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The real value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("***")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// How updates arrive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateMode {
    /// `getUpdates` long polling: no inbound port.
    LongPolling,
    /// Telegram posts to `url`; requests must carry `secret` in `X-Telegram-Bot-Api-Secret-Token`.
    Webhook { url: Url, secret: Secret },
}

/// Who may talk to the bot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatAllowList {
    Everyone,
    Only(Vec<i64>),
}

impl ChatAllowList {
    pub fn allows(&self, chat_id: i64) -> bool {
        match self {
            ChatAllowList::Everyone => true,
            ChatAllowList::Only(chat_ids) => chat_ids.contains(&chat_id),
        }
    }
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub telegram_bot_token: Secret,
    /// Without a trailing slash.
    pub telegram_api_url: String,
    /// Without a trailing slash; `/chat/completions` is appended.
    pub router_base_url: String,
    pub router_api_key: Secret,
    pub router_model: String,
    pub router_timeout: Duration,
    pub system_prompt: String,
    pub allowed_chats: ChatAllowList,
    pub history_turns: usize,
    pub health_listen: SocketAddr,
    pub log_format: LogFormat,
    pub update_mode: UpdateMode,
}

/// A setting that stops the bot at start; the message names the variable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{variable} is required but not set\nhint: {hint}")]
    Missing { variable: &'static str, hint: &'static str },
    #[error("{variable} is malformed: {problem}\nhint: {hint}")]
    Malformed { variable: &'static str, problem: String, hint: &'static str },
}

impl ConfigError {
    /// The variable at fault.
    pub fn variable(&self) -> &'static str {
        match self {
            ConfigError::Missing { variable, .. } | ConfigError::Malformed { variable, .. } => {
                variable
            }
        }
    }

    /// The message on one line (for the single start-up error line).
    pub fn one_line(&self) -> String {
        self.to_string().replace('\n', "; ")
    }
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var_os(name).map(|value| value.into_string()))
    }

    /// Reads settings through `lookup`, which returns `Some(Err(_))` for a non-UTF-8 value.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<Result<String, std::ffi::OsString>>,
    ) -> Result<Self, ConfigError> {
        let read = |variable: &'static str| -> Result<Option<String>, ConfigError> {
            match lookup(variable) {
                None => Ok(None),
                Some(Err(_)) => Err(ConfigError::Malformed {
                    variable,
                    problem: "not valid UTF-8".to_owned(),
                    hint: "set it to plain text",
                }),
                Some(Ok(value)) => {
                    let trimmed = value.trim();
                    Ok(if trimmed.is_empty() { None } else { Some(trimmed.to_owned()) })
                }
            }
        };
        let require = |variable: &'static str, hint: &'static str| {
            read(variable)?.ok_or(ConfigError::Missing { variable, hint })
        };

        let telegram_bot_token = require(
            "TELEGRAM_BOT_TOKEN",
            "set it to the token @BotFather gave, like 123456789:AA...",
        )?;
        if !is_bot_token(&telegram_bot_token) {
            // The value itself is never echoed: it is a secret.
            return Err(ConfigError::Malformed {
                variable: "TELEGRAM_BOT_TOKEN",
                problem: "expected digits, a colon, then letters, digits, _ or -".to_owned(),
                hint: "copy the whole token from @BotFather, like 123456789:AA...",
            });
        }

        let telegram_api_url = match read("TELEGRAM_API_URL")? {
            None => DEFAULT_TELEGRAM_API_URL.to_owned(),
            Some(value) => http_url(
                "TELEGRAM_API_URL",
                &value,
                "leave it empty for https://api.telegram.org, or give a Bot API server's base URL",
            )?,
        };

        let router_base_url = http_url(
            "ROUTER_BASE_URL",
            &require(
                "ROUTER_BASE_URL",
                "set it to the tenant's Router, e.g. https://router.cloudfreedom.de/v1",
            )?,
            "give the OpenAI-compatible base URL, e.g. https://router.cloudfreedom.de/v1",
        )?;
        if router_base_url.ends_with("/chat/completions") {
            return Err(ConfigError::Malformed {
                variable: "ROUTER_BASE_URL",
                problem: "it ends with /chat/completions".to_owned(),
                hint: "give the base URL only, e.g. https://router.cloudfreedom.de/v1",
            });
        }

        let router_api_key = require("ROUTER_API_KEY", "set it to the tenant's Router API key")?;
        if router_api_key
            .chars()
            .any(|character| character.is_whitespace() || character.is_control())
        {
            return Err(ConfigError::Malformed {
                variable: "ROUTER_API_KEY",
                problem: "it contains spaces or control characters".to_owned(),
                hint: "copy the key alone, without a `Bearer ` prefix",
            });
        }

        let router_model = read("ROUTER_MODEL")?.unwrap_or_else(|| DEFAULT_ROUTER_MODEL.to_owned());
        if router_model.len() > 256 || router_model.chars().any(char::is_control) {
            return Err(ConfigError::Malformed {
                variable: "ROUTER_MODEL",
                problem: "longer than 256 characters or contains control characters".to_owned(),
                hint: "give a model id the Router serves, e.g. gpt-4o-mini",
            });
        }

        let router_timeout = match read("ROUTER_TIMEOUT_SECS")? {
            None => DEFAULT_ROUTER_TIMEOUT,
            Some(value) => match value.parse::<u64>() {
                Ok(seconds @ 1..=600) => Duration::from_secs(seconds),
                _ => {
                    return Err(ConfigError::Malformed {
                        variable: "ROUTER_TIMEOUT_SECS",
                        problem: format!("`{value}` is not a whole number from 1 to 600"),
                        hint: "leave it empty for 60",
                    });
                }
            },
        };

        let system_prompt =
            read("SYSTEM_PROMPT")?.unwrap_or_else(|| DEFAULT_SYSTEM_PROMPT.to_owned());

        let allowed_chats = match read("ALLOWED_CHAT_IDS")? {
            None => ChatAllowList::Everyone,
            Some(value) => ChatAllowList::Only(chat_ids("ALLOWED_CHAT_IDS", &value)?),
        };

        let history_turns = match read("HISTORY_TURNS")? {
            None => DEFAULT_HISTORY_TURNS,
            Some(value) => match value.parse::<usize>() {
                Ok(turns) if turns <= MAX_HISTORY_TURNS => turns,
                _ => {
                    return Err(ConfigError::Malformed {
                        variable: "HISTORY_TURNS",
                        problem: format!("`{value}` is not a whole number from 0 to 50"),
                        hint: "leave it empty for 8",
                    });
                }
            },
        };

        let health_listen_text =
            read("HEALTH_LISTEN")?.unwrap_or_else(|| DEFAULT_HEALTH_LISTEN.to_owned());
        let health_listen =
            health_listen_text.parse::<SocketAddr>().map_err(|_| ConfigError::Malformed {
                variable: "HEALTH_LISTEN",
                problem: format!("`{health_listen_text}` is not an ip:port address"),
                hint: "leave it empty for 0.0.0.0:8080",
            })?;

        let log_format = match read("LOG_FORMAT")?.as_deref() {
            None | Some("json") => LogFormat::Json,
            Some("text") => LogFormat::Text,
            Some(other) => {
                return Err(ConfigError::Malformed {
                    variable: "LOG_FORMAT",
                    problem: format!("`{other}` is neither json nor text"),
                    hint: "use json (the default) or text",
                });
            }
        };

        let update_mode = match (read("WEBHOOK_URL")?, read("WEBHOOK_SECRET")?) {
            (None, None) => UpdateMode::LongPolling,
            (None, Some(_)) => {
                return Err(ConfigError::Missing {
                    variable: "WEBHOOK_URL",
                    hint: "WEBHOOK_SECRET is set: set WEBHOOK_URL too, or unset both for long polling",
                });
            }
            (Some(_), None) => {
                return Err(ConfigError::Missing {
                    variable: "WEBHOOK_SECRET",
                    hint: "webhook mode needs a secret of 1-256 characters A-Z a-z 0-9 _ -",
                });
            }
            (Some(url_text), Some(secret)) => {
                let url = Url::parse(&url_text).ok().filter(|url| url.scheme() == "https").ok_or(
                    ConfigError::Malformed {
                        variable: "WEBHOOK_URL",
                        problem: "not an https URL".to_owned(),
                        hint: "Telegram only posts to https URLs on port 443, 80, 88 or 8443",
                    },
                )?;
                if matches!(url.path(), "/healthz" | "/readyz") {
                    return Err(ConfigError::Malformed {
                        variable: "WEBHOOK_URL",
                        problem: format!("its path {} is a health endpoint", url.path()),
                        hint: "use a path of its own, e.g. https://bot.example/telegram/webhook",
                    });
                }
                let secret_is_valid = (1..=256).contains(&secret.len())
                    && secret
                        .bytes()
                        .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-');
                if !secret_is_valid {
                    return Err(ConfigError::Malformed {
                        variable: "WEBHOOK_SECRET",
                        problem: "expected 1-256 characters A-Z a-z 0-9 _ -".to_owned(),
                        hint: "generate one, e.g. 48 random letters and digits",
                    });
                }
                UpdateMode::Webhook { url, secret: Secret::new(secret) }
            }
        };

        Ok(Settings {
            telegram_bot_token: Secret::new(telegram_bot_token),
            telegram_api_url,
            router_base_url,
            router_api_key: Secret::new(router_api_key),
            router_model,
            router_timeout,
            system_prompt,
            allowed_chats,
            history_turns,
            health_listen,
            log_format,
            update_mode,
        })
    }
}

fn is_bot_token(token: &str) -> bool {
    let Some((bot_id, key)) = token.split_once(':') else {
        return false;
    };
    !bot_id.is_empty()
        && bot_id.bytes().all(|byte| byte.is_ascii_digit())
        && !key.is_empty()
        && key.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-')
}

/// An http(s) URL without query, fragment or trailing slash.
fn http_url(
    variable: &'static str,
    value: &str,
    hint: &'static str,
) -> Result<String, ConfigError> {
    let malformed =
        |problem: &str| ConfigError::Malformed { variable, problem: problem.to_owned(), hint };
    let url = Url::parse(value).map_err(|_| malformed("not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(malformed("not an http or https URL"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(malformed("it has a query or fragment"));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

fn chat_ids(variable: &'static str, value: &str) -> Result<Vec<i64>, ConfigError> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            item.parse::<i64>().map_err(|_| ConfigError::Malformed {
                variable,
                problem: format!("`{item}` is not a chat id"),
                hint: "give whole numbers separated by commas, e.g. 12345,-100987654321",
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let mut environment: HashMap<String, String> = [
            ("TELEGRAM_BOT_TOKEN", "123456:ABC-def_ghi"),
            ("ROUTER_BASE_URL", "https://router.example/v1/"),
            ("ROUTER_API_KEY", "sk-test"),
        ]
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
        for (name, value) in pairs {
            environment.insert(name.to_string(), value.to_string());
        }
        Settings::from_lookup(|name| environment.get(name).cloned().map(Ok))
    }

    fn check_error(pairs: &[(&str, &str)], variable: &str, expected_fragment: &str) {
        let error = settings(pairs).expect_err("expected a configuration error");
        assert_eq!(error.variable(), variable);
        let line = error.one_line();
        assert!(line.contains(expected_fragment), "{line}");
        assert!(line.starts_with(variable), "{line}");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn defaults_apply_when_only_required_values_are_set() {
        let settings = settings(&[]).unwrap();
        assert_eq!(settings.telegram_api_url, "https://api.telegram.org");
        assert_eq!(settings.router_base_url, "https://router.example/v1");
        assert_eq!(settings.router_model, DEFAULT_ROUTER_MODEL);
        assert_eq!(settings.history_turns, 8);
        assert_eq!(settings.health_listen, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(settings.log_format, LogFormat::Json);
        assert_eq!(settings.allowed_chats, ChatAllowList::Everyone);
        assert_eq!(settings.update_mode, UpdateMode::LongPolling);
    }

    #[test]
    fn empty_values_count_as_unset() {
        let settings =
            settings(&[("ALLOWED_CHAT_IDS", ""), ("SYSTEM_PROMPT", " "), ("WEBHOOK_URL", "")])
                .unwrap();
        assert_eq!(settings.allowed_chats, ChatAllowList::Everyone);
        assert_eq!(settings.system_prompt, DEFAULT_SYSTEM_PROMPT);
    }

    #[test]
    fn allow_list_takes_negative_group_ids() {
        let settings = settings(&[("ALLOWED_CHAT_IDS", "12, -100987654321 ,7")]).unwrap();
        assert_eq!(settings.allowed_chats, ChatAllowList::Only(vec![12, -100987654321, 7]));
        assert!(settings.allowed_chats.allows(-100987654321));
        assert!(!settings.allowed_chats.allows(13));
    }

    #[test]
    fn each_bad_setting_names_its_variable() {
        check_error(&[("TELEGRAM_BOT_TOKEN", "")], "TELEGRAM_BOT_TOKEN", "is required");
        check_error(&[("TELEGRAM_BOT_TOKEN", "nocolon")], "TELEGRAM_BOT_TOKEN", "malformed");
        check_error(&[("ROUTER_BASE_URL", "")], "ROUTER_BASE_URL", "is required");
        check_error(&[("ROUTER_BASE_URL", "router.example")], "ROUTER_BASE_URL", "not a URL");
        check_error(
            &[("ROUTER_BASE_URL", "https://r.example/v1/chat/completions")],
            "ROUTER_BASE_URL",
            "ends with /chat/completions",
        );
        check_error(&[("ROUTER_API_KEY", "")], "ROUTER_API_KEY", "is required");
        check_error(&[("ROUTER_API_KEY", "Bearer sk")], "ROUTER_API_KEY", "spaces");
        check_error(&[("TELEGRAM_API_URL", "ftp://x")], "TELEGRAM_API_URL", "http");
        check_error(&[("ALLOWED_CHAT_IDS", "1,abc")], "ALLOWED_CHAT_IDS", "`abc`");
        check_error(&[("HISTORY_TURNS", "51")], "HISTORY_TURNS", "0 to 50");
        check_error(&[("HISTORY_TURNS", "-1")], "HISTORY_TURNS", "0 to 50");
        check_error(&[("HEALTH_LISTEN", "8080")], "HEALTH_LISTEN", "ip:port");
        check_error(&[("LOG_FORMAT", "xml")], "LOG_FORMAT", "`xml`");
        check_error(&[("ROUTER_TIMEOUT_SECS", "0")], "ROUTER_TIMEOUT_SECS", "1 to 600");
        check_error(&[("WEBHOOK_URL", "https://bot.example/hook")], "WEBHOOK_SECRET", "required");
        check_error(&[("WEBHOOK_SECRET", "abc")], "WEBHOOK_URL", "required");
        check_error(
            &[("WEBHOOK_URL", "http://bot.example/hook"), ("WEBHOOK_SECRET", "abc")],
            "WEBHOOK_URL",
            "https",
        );
        check_error(
            &[("WEBHOOK_URL", "https://bot.example/healthz"), ("WEBHOOK_SECRET", "abc")],
            "WEBHOOK_URL",
            "health endpoint",
        );
        check_error(
            &[("WEBHOOK_URL", "https://bot.example/hook"), ("WEBHOOK_SECRET", "a b")],
            "WEBHOOK_SECRET",
            "A-Z",
        );
    }

    #[test]
    fn a_malformed_token_is_not_echoed() {
        let error = settings(&[("TELEGRAM_BOT_TOKEN", "secret-token-without-colon")]).unwrap_err();
        assert!(!error.one_line().contains("secret-token-without-colon"));
    }

    #[test]
    fn secrets_print_as_stars() {
        let settings = settings(&[]).unwrap();
        let debug = format!("{settings:?}");
        assert!(!debug.contains("sk-test"), "{debug}");
        assert!(!debug.contains("ABC-def_ghi"), "{debug}");
        assert_eq!(settings.router_api_key.to_string(), "***");
    }

    #[test]
    fn webhook_mode_needs_both_values() {
        let settings =
            settings(&[("WEBHOOK_URL", "https://bot.example/tg"), ("WEBHOOK_SECRET", "s3cr_t-X")])
                .unwrap();
        let UpdateMode::Webhook { url, secret } = settings.update_mode else {
            panic!("expected webhook mode");
        };
        assert_eq!(url.path(), "/tg");
        assert_eq!(secret.expose(), "s3cr_t-X");
    }
}
