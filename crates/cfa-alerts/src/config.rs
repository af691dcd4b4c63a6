//! The `[alerts]` section of `cfa.toml`: plain serde structs, durations as humantime strings
//! (`"10s"`, `"5m"`), secrets only as paths of files.
//!
//! ```toml
//! [alerts]
//! spool_dir = "/var/lib/cfa/alerts-spool"   # the local outbox, for when PocketBase is down
//! max_listed = 20                           # incidents a text message names before "and N more"
//!
//! [[alerts.webhook]]
//! name = "ops-webhook"
//! url = "https://hooks.example.com/cfa"
//! secret_file = "/etc/cfa/webhook.secret"
//! timeout = "10s"                           # optional, per channel
//!
//! [[alerts.telegram]]
//! name = "ops-telegram"
//! token_file = "/etc/cfa/telegram.token"
//! chat_id = -1001234567890                  # or "@channel"
//! api_base = "https://api.telegram.org"     # optional (the default)
//! format = "plain"                          # or "markdown_v2"
//!
//! [[alerts.email]]
//! name = "ops-mail"
//! smtp_host = "smtp.example.com"
//! smtp_port = 587                           # optional: 587 starttls, 465 tls, 25 none
//! tls = "starttls"                          # "tls", or "none" (loopback hosts only)
//! username = "alerts@example.com"           # optional, with password_file
//! password_file = "/etc/cfa/smtp.password"
//! from = "CloudFreedom alerts <alerts@example.com>"
//! to = ["ops@example.com"]
//!
//! [alerts.heartbeat]
//! url = "https://hc-ping.example.com/<uuid>"
//! interval = "1m"
//! timeout = "10s"                           # optional
//! method = "post"                           # or "get"
//!
//! [alerts.delivery]                         # all optional
//! initial_backoff = "2s"
//! max_backoff = "5m"
//! give_up_after = "24h"
//! poll_interval = "10s"
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// `[alerts]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    #[serde(default)]
    pub webhook: Vec<WebhookConfig>,
    #[serde(default)]
    pub telegram: Vec<TelegramConfig>,
    #[serde(default)]
    pub email: Vec<EmailConfig>,
    pub heartbeat: Option<HeartbeatConfig>,
    #[serde(default)]
    pub delivery: DeliveryConfig,
    /// The directory of the local spool outbox ([`crate::SpoolOutbox`]).
    pub spool_dir: Option<PathBuf>,
    /// How many incidents a text message names before `and N more` (the monitor's
    /// `group_notifications` argument); default [`AlertsConfig::DEFAULT_MAX_LISTED`].
    pub max_listed: Option<usize>,
}

/// `[[alerts.webhook]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub name: String,
    pub url: String,
    /// The HMAC key of the `cfa-signature` header.
    pub secret_file: PathBuf,
    #[serde(default, with = "optional_duration")]
    pub timeout: Option<Duration>,
}

/// `[[alerts.telegram]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramConfig {
    pub name: String,
    /// The bot token (`123456:ABC...`).
    pub token_file: PathBuf,
    /// A chat id (a number, negative for groups) or `@channelusername`.
    #[serde(deserialize_with = "chat_id")]
    pub chat_id: String,
    /// Default [`TelegramConfig::DEFAULT_API_BASE`]; tests point it at a stand-in.
    pub api_base: Option<String>,
    #[serde(default)]
    pub format: TelegramFormat,
    #[serde(default, with = "optional_duration")]
    pub timeout: Option<Duration>,
}

/// How a Telegram message is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TelegramFormat {
    /// Plain text, no `parse_mode`.
    #[default]
    Plain,
    /// MarkdownV2 with the title in bold, everything else escaped.
    MarkdownV2,
}

/// `[[alerts.email]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    pub name: String,
    pub smtp_host: String,
    /// Default: 587 for `starttls`, 465 for `tls`, 25 for `none`.
    pub smtp_port: Option<u16>,
    #[serde(default)]
    pub tls: EmailTls,
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    /// `alerts@example.com` or `Name <alerts@example.com>`.
    pub from: String,
    pub to: Vec<String>,
    #[serde(default, with = "optional_duration")]
    pub timeout: Option<Duration>,
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmailTls {
    /// Plain connection upgraded with STARTTLS, which is required (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No TLS: allowed only for a loopback host (tests, a local relay).
    None,
}

/// `[alerts.heartbeat]`: the controller's dead-man's switch.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatConfig {
    /// Pinged every `interval` while the controller is alive (a Healthchecks.io check, say).
    /// Treated as a secret in logs: only its scheme and host are ever printed.
    pub url: String,
    #[serde(with = "duration")]
    pub interval: Duration,
    /// Default 10 s, and never more than the interval.
    #[serde(default, with = "optional_duration")]
    pub timeout: Option<Duration>,
    #[serde(default)]
    pub method: HeartbeatMethod,
}

/// The heartbeat's HTTP method.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeartbeatMethod {
    Get,
    #[default]
    Post,
}

/// `[alerts.delivery]`: retries and polling, shared by every channel.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    #[serde(default, with = "optional_duration")]
    pub initial_backoff: Option<Duration>,
    #[serde(default, with = "optional_duration")]
    pub max_backoff: Option<Duration>,
    #[serde(default, with = "optional_duration")]
    pub give_up_after: Option<Duration>,
    #[serde(default, with = "optional_duration")]
    pub poll_interval: Option<Duration>,
}

impl AlertsConfig {
    /// The default of `max_listed`.
    pub const DEFAULT_MAX_LISTED: usize = 20;

    /// `max_listed`, or its default.
    pub fn max_listed(&self) -> usize {
        self.max_listed.unwrap_or(AlertsConfig::DEFAULT_MAX_LISTED).max(1)
    }

    /// The same configuration with every relative path (secret files, the spool) taken as
    /// relative to `base` (the directory of `cfa.toml`).
    pub fn with_base_dir(mut self, base: &Path) -> AlertsConfig {
        let join = |path: &mut PathBuf| {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        };
        self.webhook.iter_mut().for_each(|webhook| join(&mut webhook.secret_file));
        self.telegram.iter_mut().for_each(|telegram| join(&mut telegram.token_file));
        self.email.iter_mut().filter_map(|email| email.password_file.as_mut()).for_each(join);
        self.spool_dir.iter_mut().for_each(join);
        self
    }

    /// Every channel's name, in order: webhooks, Telegram chats, e-mail.
    pub fn channel_names(&self) -> Vec<&str> {
        let webhooks = self.webhook.iter().map(|webhook| webhook.name.as_str());
        let telegrams = self.telegram.iter().map(|telegram| telegram.name.as_str());
        let emails = self.email.iter().map(|email| email.name.as_str());
        webhooks.chain(telegrams).chain(emails).collect()
    }
}

impl TelegramConfig {
    pub const DEFAULT_API_BASE: &str = "https://api.telegram.org";
}

impl EmailConfig {
    /// `smtp_port`, or the usual port of its `tls`.
    pub fn port(&self) -> u16 {
        self.smtp_port.unwrap_or(match self.tls {
            EmailTls::Starttls => 587,
            EmailTls::Tls => 465,
            EmailTls::None => 25,
        })
    }
}

/// A chat id as TOML gives it: a number or a string.
fn chat_id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ChatId {
        Number(i64),
        Text(String),
    }
    Ok(match ChatId::deserialize(deserializer)? {
        ChatId::Number(number) => number.to_string(),
        ChatId::Text(text) => text,
    })
}

mod optional_duration {
    //! `"90s"`, `"5m"`: humantime durations in the file (as `cfa-cli`'s config reads them).
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        let text = Option::<String>::deserialize(deserializer)?;
        text.map(|text| humantime::parse_duration(&text).map_err(serde::de::Error::custom))
            .transpose()
    }
}

mod duration {
    //! A required humantime duration.
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        alerts: AlertsConfig,
    }

    fn parse(text: &str) -> Result<AlertsConfig, String> {
        toml::from_str::<File>(text).map(|file| file.alerts).map_err(|error| error.to_string())
    }

    #[test]
    fn the_documented_example_parses() {
        let module_docs = include_str!("config.rs");
        let example: String = module_docs
            .lines()
            .skip_while(|line| !line.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|line| !line.starts_with("//! ```"))
            .map(|line| format!("{}\n", line.trim_start_matches("//!").trim_start()))
            .collect();
        let config = parse(&example).unwrap();
        assert_eq!(config.channel_names(), ["ops-webhook", "ops-telegram", "ops-mail"]);
        assert_eq!(config.webhook[0].timeout, Some(Duration::from_secs(10)));
        assert_eq!(config.telegram[0].chat_id, "-1001234567890");
        assert_eq!(config.telegram[0].format, TelegramFormat::Plain);
        assert_eq!(config.email[0].port(), 587);
        assert_eq!(config.email[0].tls, EmailTls::Starttls);
        let heartbeat = config.heartbeat.as_ref().unwrap();
        assert_eq!(
            (heartbeat.interval, heartbeat.method),
            (Duration::from_secs(60), HeartbeatMethod::Post)
        );
        assert_eq!(config.delivery.give_up_after, Some(Duration::from_secs(86_400)));
        assert_eq!(config.max_listed(), 20);
    }

    #[test]
    fn minimal_sections_take_defaults_and_chat_ids_may_be_strings() {
        let config = parse(
            r#"
            [alerts]
            [[alerts.telegram]]
            name = "t"
            token_file = "token"
            chat_id = "@ops"
            [[alerts.email]]
            name = "m"
            smtp_host = "127.0.0.1"
            tls = "none"
            from = "a@example.com"
            to = ["b@example.com"]
            "#,
        )
        .unwrap();
        assert_eq!(config.telegram[0].chat_id, "@ops");
        assert_eq!(config.telegram[0].api_base, None);
        assert_eq!(config.email[0].port(), 25);
        assert_eq!(config.delivery, DeliveryConfig::default());
        let based = config.with_base_dir(Path::new("/etc/cfa"));
        assert_eq!(based.telegram[0].token_file, Path::new("/etc/cfa/token"));
    }

    #[test]
    fn inline_secrets_unknown_keys_and_bad_durations_are_refused() {
        let inline = parse(
            r#"
            [[alerts.webhook]]
            name = "w"
            url = "https://example.com"
            secret = "inline"
            "#,
        )
        .unwrap_err();
        assert!(inline.contains("unknown field `secret`"), "{inline}");
        let bad = parse(
            r#"
            [alerts.heartbeat]
            url = "https://example.com"
            interval = "often"
            "#,
        )
        .unwrap_err();
        assert!(bad.contains("interval"), "{bad}");
        let tls = parse(
            r#"
            [[alerts.email]]
            name = "m"
            smtp_host = "smtp.example.com"
            tls = "ssl"
            from = "a@example.com"
            to = []
            "#,
        )
        .unwrap_err();
        assert!(tls.contains("unknown variant `ssl`"), "{tls}");
    }
}
