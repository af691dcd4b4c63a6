//! The Telegram channel: the Bot API's `sendMessage` to one chat, as plain text or MarkdownV2.
//!
//! The request URL holds the bot token, so no error or log line carries it: reqwest's errors
//! are stripped of their URL and ours name only the method.

use std::time::Duration;

use serde::Deserialize;

use super::{DEFAULT_TIMEOUT, Retry, SendError, http_failure, parse_http_url, read_secret};
use crate::Secret;
use crate::config::{TelegramConfig, TelegramFormat};
use crate::message::AlertMessage;

/// Telegram's limit is 4096 characters after entity parsing; we stay below it in UTF-16 code
/// units (how Telegram counts), leaving room for the truncation mark.
const MAX_TEXT_UTF16: usize = 4000;
const TRUNCATED: &str = "\n… (truncated)";

/// A configured Telegram chat.
#[derive(Debug, Clone)]
pub struct TelegramChannel {
    pub(crate) name: String,
    api_base: String,
    token: Secret,
    chat_id: String,
    format: TelegramFormat,
    pub(crate) timeout: Duration,
    client: reqwest::Client,
}

/// The Bot API's answer (the parts we read).
#[derive(Debug, Deserialize)]
struct BotApiAnswer {
    ok: bool,
    description: Option<String>,
    parameters: Option<BotApiParameters>,
}

#[derive(Debug, Deserialize)]
struct BotApiParameters {
    retry_after: Option<u64>,
}

impl TelegramChannel {
    pub(crate) fn from_config(
        config: &TelegramConfig,
        client: reqwest::Client,
    ) -> Result<TelegramChannel, super::AlertsConfigError> {
        let api_base = config.api_base.as_deref().unwrap_or(TelegramConfig::DEFAULT_API_BASE);
        parse_http_url(&config.name, "api_base", api_base)?;
        Ok(TelegramChannel {
            name: config.name.clone(),
            api_base: api_base.trim_end_matches('/').to_owned(),
            token: read_secret(&config.name, &config.token_file)?,
            chat_id: config.chat_id.clone(),
            format: config.format,
            timeout: config.timeout.unwrap_or(DEFAULT_TIMEOUT),
            client,
        })
    }

    pub(crate) async fn send(&self, message: &AlertMessage) -> Result<(), SendError> {
        let url = format!("{}/bot{}/sendMessage", self.api_base, self.token.expose());
        let mut body = serde_json::json!({
            "chat_id": self.chat_id,
            "text": telegram_text(message, self.format),
            "link_preview_options": { "is_disabled": true },
        });
        if self.format == TelegramFormat::MarkdownV2 {
            body["parse_mode"] = "MarkdownV2".into();
        }
        let what = "Telegram sendMessage";
        let response = self
            .client
            .post(url)
            .timeout(self.timeout)
            .json(&body)
            .send()
            .await
            .map_err(|error| http_failure(what, error))?;
        let status = response.status();
        let answer: Option<BotApiAnswer> = response.json().await.ok();
        if status.is_success() && answer.as_ref().is_some_and(|answer| answer.ok) {
            return Ok(());
        }
        let description = answer
            .as_ref()
            .and_then(|answer| answer.description.as_deref())
            .map(|text| format!(" ({})", text.chars().take(200).collect::<String>()))
            .unwrap_or_default();
        let retry_after = answer
            .as_ref()
            .and_then(|answer| answer.parameters.as_ref())
            .and_then(|parameters| parameters.retry_after);
        let retry = match (status.as_u16(), retry_after) {
            (_, Some(seconds)) => Retry::After(Duration::from_secs(seconds)),
            (200..=299, None) => Retry::Backoff,
            _ => super::retry_for_status(status),
        };
        Err(SendError::new(format!("{what} answered {status}{description}"), retry))
    }
}

/// The text sent for a message: plain, or MarkdownV2 with the title in bold and everything
/// escaped. Cut to fit Telegram's limit, with a mark saying so.
pub fn telegram_text(message: &AlertMessage, format: TelegramFormat) -> String {
    let text = truncate_utf16(&message.text, MAX_TEXT_UTF16);
    let truncated = text.len() < message.text.len();
    match format {
        TelegramFormat::Plain => {
            if truncated {
                format!("{text}{TRUNCATED}")
            } else {
                text.to_owned()
            }
        }
        TelegramFormat::MarkdownV2 => {
            let (title, rest) = match text.split_once('\n') {
                Some((title, rest)) => (title, Some(rest)),
                None => (text, None),
            };
            let mut out = format!("*{}*", escape_markdown_v2(title));
            if let Some(rest) = rest {
                out.push('\n');
                out.push_str(&escape_markdown_v2(rest));
            }
            if truncated {
                out.push_str(&escape_markdown_v2(TRUNCATED));
            }
            out
        }
    }
}

/// Escapes every character MarkdownV2 reserves (`_*[]()~`>#+-=|{}.!` and `\`) with a backslash,
/// so text shows as written.
pub fn escape_markdown_v2(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len() + text.len() / 8);
    for character in text.chars() {
        if matches!(
            character,
            '_' | '*'
                | '['
                | ']'
                | '('
                | ')'
                | '~'
                | '`'
                | '>'
                | '#'
                | '+'
                | '-'
                | '='
                | '|'
                | '{'
                | '}'
                | '.'
                | '!'
                | '\\'
        ) {
            escaped.push('\\');
        }
        escaped.push(character);
    }
    escaped
}

/// The longest prefix of `text` of at most `max` UTF-16 code units, cut at a character.
fn truncate_utf16(text: &str, max: usize) -> &str {
    let mut units = 0;
    for (index, character) in text.char_indices() {
        units += character.len_utf16();
        if units > max {
            return &text[..index];
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{AlertStatus, NotificationType};

    fn message(text: &str) -> AlertMessage {
        AlertMessage {
            version: 1,
            message_id: "m".into(),
            kind: "oom_killed".into(),
            status: AlertStatus::Firing,
            notification: NotificationType::Opened,
            resolution: None,
            title: text.lines().next().unwrap_or("").into(),
            text: text.into(),
            count: 1,
            incidents: Vec::new(),
            omitted: 0,
        }
    }

    #[test]
    fn markdown_v2_escapes_every_reserved_character() {
        assert_eq!(
            escape_markdown_v2("a_b*c[d]e(f)g~h`i>j#k+l-m=n|o{p}q.r!s\\t"),
            "a\\_b\\*c\\[d\\]e\\(f\\)g\\~h\\`i\\>j\\#k\\+l\\-m\\=n\\|o\\{p\\}q\\.r\\!s\\\\t"
        );
        let text = message("opened: OOM kill on stack acme/support-bot\nexit code 137 (v1.2)");
        assert_eq!(
            telegram_text(&text, TelegramFormat::MarkdownV2),
            "*opened: OOM kill on stack acme/support\\-bot*\nexit code 137 \\(v1\\.2\\)"
        );
        assert_eq!(telegram_text(&text, TelegramFormat::Plain), text.text);
    }

    #[test]
    fn long_texts_are_cut_below_the_limit_at_a_character() {
        let long = format!("title\n{}", "é😀".repeat(3000));
        let plain = telegram_text(&message(&long), TelegramFormat::Plain);
        assert!(plain.encode_utf16().count() <= 4096, "{}", plain.encode_utf16().count());
        assert!(plain.ends_with(TRUNCATED));
        let markdown = telegram_text(&message(&long), TelegramFormat::MarkdownV2);
        assert!(markdown.starts_with("*title*\n"));
        assert!(markdown.ends_with("\\(truncated\\)"));
    }
}
