//! The `healthcheck` subcommand: probes the running bot's `/healthz` and `/readyz` over
//! loopback, for an image with no shell or curl. It reads only `HEALTH_LISTEN` and starts
//! nothing.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::Duration;

use crate::config::DEFAULT_HEALTH_LISTEN;

const PROBE_TIMEOUT: Duration = Duration::from_secs(4);

/// The outcome of one probe run.
#[derive(Debug, PartialEq, Eq)]
pub enum HealthcheckOutcome {
    Healthy,
    Unhealthy(String),
}

/// The address to probe: `HEALTH_LISTEN` with an unspecified ip (0.0.0.0, ::) as loopback.
pub fn probe_address(health_listen: Option<&str>) -> Result<SocketAddr, String> {
    let text = health_listen
        .map(str::trim)
        .filter(|text| !text.is_empty())
        .unwrap_or(DEFAULT_HEALTH_LISTEN);
    let mut address: SocketAddr = text
        .parse()
        .map_err(|_| format!("HEALTH_LISTEN is malformed: `{text}` is not an ip:port address"))?;
    if address.ip().is_unspecified() {
        address.set_ip(match address.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        });
    }
    Ok(address)
}

/// GETs `/healthz` then `/readyz`; healthy only if both answer 200.
pub fn check(address: SocketAddr) -> HealthcheckOutcome {
    for path in ["/healthz", "/readyz"] {
        match get(address, path) {
            Ok((200, _)) => {}
            Ok((status, body)) => {
                return HealthcheckOutcome::Unhealthy(format!("{path} answered {status}: {body}"));
            }
            Err(error) => {
                return HealthcheckOutcome::Unhealthy(format!("{path} at {address}: {error}"));
            }
        }
    }
    HealthcheckOutcome::Healthy
}

fn get(address: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&address, PROBE_TIMEOUT)?;
    stream.set_read_timeout(Some(PROBE_TIMEOUT))?;
    stream.set_write_timeout(Some(PROBE_TIMEOUT))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n")?;
    let mut response = Vec::new();
    stream.take(16 * 1024).read_to_end(&mut response)?;
    let response = String::from_utf8_lossy(&response);
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| std::io::Error::other("not an HTTP response"))?;
    let body = response.split_once("\r\n\r\n").map(|(_, body)| body.trim()).unwrap_or("");
    Ok((status, body.chars().take(200).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_addresses_map_to_loopback() {
        assert_eq!(probe_address(None).unwrap(), "127.0.0.1:8080".parse().unwrap());
        assert_eq!(probe_address(Some("")).unwrap(), "127.0.0.1:8080".parse().unwrap());
        assert_eq!(probe_address(Some("0.0.0.0:9000")).unwrap(), "127.0.0.1:9000".parse().unwrap());
        assert_eq!(probe_address(Some("[::]:9000")).unwrap(), "[::1]:9000".parse().unwrap());
        assert_eq!(probe_address(Some("10.0.0.5:81")).unwrap(), "10.0.0.5:81".parse().unwrap());
        assert!(probe_address(Some("nope")).unwrap_err().contains("HEALTH_LISTEN"));
    }
}
