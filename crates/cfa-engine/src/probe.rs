//! Our own HTTP readiness probe of a stack's URL (Coolify reads `running:starting` as healthy).

use cfa_core::ProbeOutcome;

use crate::settings::ProbeSettings;

/// The probe's HTTP client: certificates checked, and no redirects followed. A tenant's
/// container answers the probe, so a followed redirect would let it send the engine anywhere
/// (the metadata address, the Coolify host); a redirect is an answer, not a hop.
pub(crate) fn probe_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// Probes `domain`: `https://<domain><path>`, or `<base_url><path>` with `Host: <domain>`.
/// Any answer below 500 except 404 (the proxy's "no route yet") counts as serving.
pub(crate) async fn probe(
    http: &reqwest::Client,
    settings: &ProbeSettings,
    domain: &str,
) -> ProbeOutcome {
    let request = match &settings.base_url {
        Some(base) => {
            let url = format!("{}{}", base.as_str().trim_end_matches('/'), settings.path);
            http.get(url).header(reqwest::header::HOST, domain)
        }
        None => http.get(format!("https://{domain}{}", settings.path)),
    };
    match request.timeout(settings.timeout).send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            if status < 500 && status != 404 {
                ProbeOutcome::Passed { status_code: status }
            } else {
                ProbeOutcome::Failed { reason: format!("the URL answered {status}") }
            }
        }
        Err(error) if error.is_timeout() => {
            ProbeOutcome::Failed { reason: "the URL did not answer in time".to_owned() }
        }
        Err(_) => ProbeOutcome::Failed { reason: "the URL is not reachable".to_owned() },
    }
}

/// The probe outcome as a short phrase for messages.
pub(crate) fn describe(outcome: &ProbeOutcome) -> String {
    match outcome {
        ProbeOutcome::NotApplicable => "no URL to probe".to_owned(),
        ProbeOutcome::Passed { status_code } => format!("the URL answers {status_code}"),
        ProbeOutcome::Failed { reason } => reason.clone(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_redirect_is_an_answer_and_never_followed() {
        let hits = Arc::new(AtomicUsize::new(0));
        let elsewhere = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let elsewhere_address = elsewhere.local_addr().unwrap();
        let counter = hits.clone();
        let target = axum::Router::new().fallback(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async { "internal secrets" }
        });
        tokio::spawn(async move { axum::serve(elsewhere, target).await });
        let stack = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stack_address = stack.local_addr().unwrap();
        let location = format!("http://{elsewhere_address}/latest/meta-data/");
        let redirecting =
            axum::Router::new().fallback(move || {
                let location = location.clone();
                async move {
                    (axum::http::StatusCode::FOUND, [(axum::http::header::LOCATION, location)])
                }
            });
        tokio::spawn(async move { axum::serve(stack, redirecting).await });
        let settings = ProbeSettings {
            base_url: Some(format!("http://{stack_address}").parse().unwrap()),
            ..ProbeSettings::default()
        };
        let outcome = probe(&probe_client(), &settings, "agent-acme.example").await;
        assert_eq!(outcome, ProbeOutcome::Passed { status_code: 302 });
        assert_eq!(hits.load(Ordering::SeqCst), 0, "the probe followed the redirect");
    }
}
