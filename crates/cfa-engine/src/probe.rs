//! Our own HTTP readiness probe of a stack's URL (Coolify reads `running:starting` as healthy).

use cfa_core::ProbeOutcome;

use crate::settings::ProbeSettings;

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
