//! The e-mail channel: one plain-text message per alert over SMTP (lettre, tokio, rustls), to
//! every configured recipient. Resolves are sent too (Alertmanager's e-mail sends none by
//! default).

use std::net::IpAddr;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{AlertsConfigError, DEFAULT_TIMEOUT, Retry, SendError, read_secret};
use crate::config::{EmailConfig, EmailTls};
use crate::message::AlertMessage;

/// A configured SMTP channel.
#[derive(Debug, Clone)]
pub struct EmailChannel {
    pub(crate) name: String,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    server: String,
    from: Mailbox,
    to: Vec<Mailbox>,
    pub(crate) timeout: Duration,
}

impl EmailChannel {
    pub(crate) fn from_config(config: &EmailConfig) -> Result<EmailChannel, AlertsConfigError> {
        let channel = config.name.as_str();
        let mailbox = |address: &str| {
            address.parse::<Mailbox>().map_err(|source| AlertsConfigError::InvalidAddress {
                channel: channel.to_owned(),
                address: address.to_owned(),
                source,
            })
        };
        let from = mailbox(&config.from)?;
        let to = config.to.iter().map(|address| mailbox(address)).collect::<Result<Vec<_>, _>>()?;
        if to.is_empty() {
            return Err(AlertsConfigError::NoRecipients { channel: channel.to_owned() });
        }
        let smtp_error = |source| AlertsConfigError::Smtp { channel: channel.to_owned(), source };
        let host = config.smtp_host.as_str();
        let builder = match config.tls {
            EmailTls::Starttls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host).map_err(smtp_error)?
            }
            EmailTls::Tls => {
                AsyncSmtpTransport::<Tokio1Executor>::relay(host).map_err(smtp_error)?
            }
            EmailTls::None => {
                if !is_loopback(host) {
                    return Err(AlertsConfigError::PlainSmtpNotLoopback {
                        channel: channel.to_owned(),
                        host: host.to_owned(),
                    });
                }
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            }
        };
        let timeout = config.timeout.unwrap_or(DEFAULT_TIMEOUT);
        let mut builder = builder.port(config.port()).timeout(Some(timeout));
        match (&config.username, &config.password_file) {
            (Some(username), Some(password_file)) => {
                let password = read_secret(channel, password_file)?;
                builder = builder
                    .credentials(Credentials::new(username.clone(), password.expose().to_owned()));
            }
            (None, None) => {}
            _ => return Err(AlertsConfigError::HalfCredentials { channel: channel.to_owned() }),
        }
        Ok(EmailChannel {
            name: config.name.clone(),
            transport: builder.build(),
            server: format!("{host}:{}", config.port()),
            from,
            to,
            timeout,
        })
    }

    pub(crate) async fn send(&self, message: &AlertMessage) -> Result<(), SendError> {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(message.title.clone())
            .header(ContentType::TEXT_PLAIN);
        for recipient in &self.to {
            builder = builder.to(recipient.clone());
        }
        let body = format!(
            "{}\n\n-- \ncfa alerts, message {} ({} incident{})\n",
            message.text,
            message.message_id,
            message.count,
            if message.count == 1 { "" } else { "s" }
        );
        let email = builder.body(body).map_err(|error| {
            SendError::with_source("the e-mail cannot be built", Retry::Never, error)
        })?;
        self.transport.send(email).await.map(drop).map_err(|error| {
            // A permanent answer about this message (550 mailbox unavailable, 552 too big)
            // will come again; authentication answers (530, 534, 535, 538) are the
            // configuration's and are retried until an operator fixes them.
            let code = error.status().map(u16::from);
            let retry = if error.is_permanent() && !matches!(code, Some(530 | 534 | 535 | 538)) {
                Retry::Never
            } else {
                Retry::Backoff
            };
            let answered = code.map(|code| format!(" (SMTP {code})")).unwrap_or_default();
            SendError::with_source(
                format!("sending through {} failed{answered}", self.server),
                retry,
                error,
            )
        })
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(host: &str, tls: EmailTls) -> EmailConfig {
        EmailConfig {
            name: "mail".into(),
            smtp_host: host.into(),
            smtp_port: None,
            tls,
            username: None,
            password_file: None,
            from: "CloudFreedom <alerts@example.com>".into(),
            to: vec!["ops@example.com".into()],
            timeout: None,
        }
    }

    #[test]
    fn plain_smtp_is_only_for_loopback() {
        for host in ["127.0.0.1", "localhost", "::1", "[::1]"] {
            assert!(EmailChannel::from_config(&config(host, EmailTls::None)).is_ok(), "{host}");
        }
        let error =
            EmailChannel::from_config(&config("smtp.example.com", EmailTls::None)).unwrap_err();
        assert!(matches!(error, AlertsConfigError::PlainSmtpNotLoopback { .. }), "{error}");
        assert!(EmailChannel::from_config(&config("smtp.example.com", EmailTls::Starttls)).is_ok());
        assert!(EmailChannel::from_config(&config("smtp.example.com", EmailTls::Tls)).is_ok());
    }

    #[test]
    fn addresses_and_credentials_are_checked() {
        let bad =
            EmailConfig { to: vec!["not an address".into()], ..config("::1", EmailTls::None) };
        assert!(matches!(
            EmailChannel::from_config(&bad),
            Err(AlertsConfigError::InvalidAddress { .. })
        ));
        let none = EmailConfig { to: Vec::new(), ..config("::1", EmailTls::None) };
        assert!(matches!(
            EmailChannel::from_config(&none),
            Err(AlertsConfigError::NoRecipients { .. })
        ));
        let half = EmailConfig { username: Some("u".into()), ..config("::1", EmailTls::None) };
        assert!(matches!(
            EmailChannel::from_config(&half),
            Err(AlertsConfigError::HalfCredentials { .. })
        ));
    }
}
