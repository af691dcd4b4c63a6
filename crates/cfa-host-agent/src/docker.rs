//! Docker, read only: the connection, the filtered event stream, and the pure parse of an
//! `EventMessage` into a [`HostEvent`].
//!
//! **Architecture invariant:** this module is the agent's only contact with Docker, and it calls
//! `GET /version` ([`connect`]) and `GET /events` ([`events`]), nothing else. A `:ro` mount of
//! the socket would not stop a write; only this code does.

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;
use bollard::models::{EventMessage, EventMessageTypeEnum};
use bollard::query_parameters::EventsOptions;
use futures::Stream;

use crate::event::{
    DOCKER_ACTIONS, EventKind, HostEvent, LABEL_MANAGED_BY, LABEL_STACK, LABEL_TENANT,
    MANAGED_BY_VALUE, event_id,
};

/// The engine API version asked for first: dockerd 20.10 (Debian 12's), so the agent works on
/// the oldest engine a Coolify server runs; a newer engine that refuses it names its minimum.
const PINNED_API_VERSION: bollard::ClientVersion =
    bollard::ClientVersion { major_version: 1, minor_version: 41 };
/// The bound on connecting and on the response headers of a request (the event stream's body
/// may stay silent for hours, and is not bounded).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the engine cannot be followed.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error(
        "cannot reach the Docker engine at `{docker_host}`\nhint: check --docker-host (or DOCKER_HOST) and that the agent may use the socket"
    )]
    Unreachable {
        docker_host: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("the Docker engine at `{docker_host}` did not answer within {seconds} s")]
    Timeout { docker_host: String, seconds: u64 },
}

/// Connects to `docker_host` (`unix:///…`, `tcp://…` or `http://…`) and checks that it answers.
pub async fn connect(docker_host: &str) -> Result<Docker, DockerError> {
    let docker = connect_with_version(docker_host, &PINNED_API_VERSION)?;
    match tokio::time::timeout(REQUEST_TIMEOUT, docker.version()).await {
        Ok(Ok(_)) => Ok(docker),
        Ok(Err(error)) => match minimum_api_version(&error) {
            Some(minimum) => {
                let docker = connect_with_version(docker_host, &minimum)?;
                match tokio::time::timeout(REQUEST_TIMEOUT, docker.version()).await {
                    Ok(Ok(_)) => Ok(docker),
                    Ok(Err(source)) => Err(DockerError::Unreachable {
                        docker_host: docker_host.to_owned(),
                        source,
                    }),
                    Err(_) => Err(timeout(docker_host)),
                }
            }
            None => {
                Err(DockerError::Unreachable { docker_host: docker_host.to_owned(), source: error })
            }
        },
        Err(_) => Err(timeout(docker_host)),
    }
}

/// The events of our containers that the agent reports, from `since` (Docker's `timeNano`,
/// inclusive; `None`: from now on), then live.
pub fn events(
    docker: &Docker,
    since: Option<i64>,
) -> impl Stream<Item = Result<EventMessage, bollard::errors::Error>> + use<> {
    let filters = HashMap::from([
        ("type".to_owned(), vec!["container".to_owned()]),
        ("label".to_owned(), vec![format!("{LABEL_MANAGED_BY}={MANAGED_BY_VALUE}")]),
        ("event".to_owned(), DOCKER_ACTIONS.iter().map(|action| (*action).to_owned()).collect()),
    ]);
    docker.events(Some(EventsOptions {
        since: since.map(docker_timestamp),
        until: None,
        filters: Some(filters),
    }))
}

/// Docker's `since` format for a `timeNano`: `seconds.nanoseconds`.
pub fn docker_timestamp(time_nano: i64) -> String {
    format!("{}.{:09}", time_nano.div_euclid(1_000_000_000), time_nano.rem_euclid(1_000_000_000))
}

/// The report of one Docker event, or `None` when it is not about one of our containers (no
/// `cloudfreedom.managed-by=cfa`, or no tenant or stack label), not an action we report, or
/// incomplete (no container id, no time, a `die` without its exit code).
pub fn host_event(server: &str, message: &EventMessage) -> Option<HostEvent> {
    if message.typ != Some(EventMessageTypeEnum::CONTAINER) {
        return None;
    }
    let action = message.action.as_deref()?;
    let actor = message.actor.as_ref()?;
    let container_id = actor.id.as_deref().filter(|id| !id.is_empty())?;
    let attributes = actor.attributes.as_ref()?;
    let label =
        |key: &str| attributes.get(key).map(String::as_str).filter(|value| !value.is_empty());
    if label(LABEL_MANAGED_BY)? != MANAGED_BY_VALUE {
        return None;
    }
    let tenant = label(LABEL_TENANT)?;
    let stack = label(LABEL_STACK)?;
    let kind = EventKind::from_docker_action(action, label("exitCode"))?;
    let at = message.time_nano.or_else(|| message.time?.checked_mul(1_000_000_000))?;
    Some(HostEvent {
        id: event_id(at, container_id, action),
        server: server.to_owned(),
        container_id: container_id.to_owned(),
        container_name: label("name").unwrap_or_default().trim_start_matches('/').to_owned(),
        tenant: tenant.to_owned(),
        stack: stack.to_owned(),
        kind,
        at,
    })
}

fn connect_with_version(
    docker_host: &str,
    version: &bollard::ClientVersion,
) -> Result<Docker, DockerError> {
    let seconds = REQUEST_TIMEOUT.as_secs();
    let connected = if docker_host.starts_with("tcp://") || docker_host.starts_with("http://") {
        Docker::connect_with_http(docker_host, seconds, version)
    } else {
        Docker::connect_with_unix(docker_host, seconds, version)
    };
    connected
        .map_err(|source| DockerError::Unreachable { docker_host: docker_host.to_owned(), source })
}

fn timeout(docker_host: &str) -> DockerError {
    DockerError::Timeout { docker_host: docker_host.to_owned(), seconds: REQUEST_TIMEOUT.as_secs() }
}

/// Docker 25+ refuses old API versions with "… Minimum supported API version is 1.44 …".
fn minimum_api_version(error: &bollard::errors::Error) -> Option<bollard::ClientVersion> {
    let bollard::errors::Error::DockerResponseServerError { message, .. } = error else {
        return None;
    };
    let (_, rest) = message.split_once("Minimum supported API version is ")?;
    let version: String = rest
        .chars()
        .take_while(|character| character.is_ascii_digit() || *character == '.')
        .collect();
    let (major, minor) = version.trim_end_matches('.').split_once('.')?;
    Some(bollard::ClientVersion {
        major_version: major.parse().ok()?,
        minor_version: minor.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use bollard::models::EventActor;

    use super::*;

    const ID: &str = "4c6a6a1b2f0e";

    /// A container event as Docker 20.10 sends it: the container's labels are among the
    /// attributes, beside `image` and `name` (and `exitCode` for `die`).
    fn message(action: &str, labels: &[(&str, &str)]) -> EventMessage {
        let mut attributes: HashMap<String, String> =
            labels.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())).collect();
        attributes.insert("image".to_owned(), "ghcr.io/openclaw/openclaw:2026.9.6".to_owned());
        attributes.insert("name".to_owned(), "agent-x1y2z3".to_owned());
        EventMessage {
            typ: Some(EventMessageTypeEnum::CONTAINER),
            action: Some(action.to_owned()),
            actor: Some(EventActor { id: Some(ID.to_owned()), attributes: Some(attributes) }),
            scope: None,
            time: Some(1_796_097_588),
            time_nano: Some(1_796_097_588_879_330_366),
        }
    }

    const OURS: [(&str, &str); 4] = [
        (LABEL_MANAGED_BY, "cfa"),
        (LABEL_TENANT, "acme"),
        (LABEL_STACK, "support-bot"),
        ("cloudfreedom.template", "openclaw-agent-1"),
    ];

    fn check(message: &EventMessage, expected: Option<EventKind>) {
        let event = host_event("srv-1", message);
        assert_eq!(event.as_ref().map(|event| event.kind), expected, "{message:?}");
        if let Some(event) = event {
            assert_eq!(event.server, "srv-1");
            assert_eq!(event.container_id, ID);
            assert_eq!(event.container_name, "agent-x1y2z3");
            assert_eq!(event.tenant, "acme");
            assert_eq!(event.stack, "support-bot");
            assert_eq!(event.at, 1_796_097_588_879_330_366);
            assert_eq!(event.id, event_id(event.at, ID, message.action.as_deref().unwrap()));
        }
    }

    #[test]
    fn our_containers_events() {
        check(&message("oom", &OURS), Some(EventKind::Oom));
        let mut die = message("die", &OURS);
        die.actor
            .as_mut()
            .unwrap()
            .attributes
            .as_mut()
            .unwrap()
            .insert("exitCode".to_owned(), "137".to_owned());
        check(&die, Some(EventKind::Died { exit_code: 137 }));
        check(&message("restart", &OURS), Some(EventKind::Restarted));
        check(&message("start", &OURS), Some(EventKind::Started));
        check(&message("health_status: healthy", &OURS), Some(EventKind::Health { healthy: true }));
        check(
            &message("health_status: unhealthy", &OURS),
            Some(EventKind::Health { healthy: false }),
        );
    }

    #[test]
    fn what_is_ignored() {
        // Unlabelled, labelled by someone else, or only half ours.
        check(&message("oom", &[]), None);
        check(
            &message(
                "oom",
                &[(LABEL_MANAGED_BY, "coolify"), (LABEL_TENANT, "a"), (LABEL_STACK, "b")],
            ),
            None,
        );
        check(&message("oom", &[(LABEL_MANAGED_BY, "cfa"), (LABEL_STACK, "b")]), None);
        check(
            &message("oom", &[(LABEL_MANAGED_BY, "cfa"), (LABEL_TENANT, ""), (LABEL_STACK, "b")]),
            None,
        );
        check(&message("oom", &[("coolify.managed", "true")]), None);
        // Actions we do not report, and a `die` that lost its exit code.
        for action in [
            "create",
            "kill",
            "stop",
            "destroy",
            "exec_start: sh",
            "health_status: starting",
            "die",
        ] {
            check(&message(action, &OURS), None);
        }
        // Not a container.
        let mut image = message("oom", &OURS);
        image.typ = Some(EventMessageTypeEnum::IMAGE);
        check(&image, None);
        let mut untyped = message("oom", &OURS);
        untyped.typ = None;
        check(&untyped, None);
        let mut anonymous = message("oom", &OURS);
        anonymous.actor.as_mut().unwrap().id = None;
        check(&anonymous, None);
    }

    #[test]
    fn time_falls_back_to_seconds() {
        let mut old = message("start", &OURS);
        old.time_nano = None;
        assert_eq!(host_event("s", &old).unwrap().at, 1_796_097_588_000_000_000);
        old.time = None;
        assert_eq!(host_event("s", &old), None);
    }

    #[test]
    fn docker_timestamps() {
        assert_eq!(docker_timestamp(1_796_097_588_879_330_366), "1796097588.879330366");
        assert_eq!(docker_timestamp(1_000_000_005), "1.000000005");
        assert_eq!(docker_timestamp(0), "0.000000000");
    }

    #[test]
    fn a_newer_engines_minimum_version_is_read() {
        let error = bollard::errors::Error::DockerResponseServerError {
            status_code: 400,
            message: "client version 1.41 is too old. Minimum supported API version is 1.44, please upgrade".to_owned(),
        };
        let version = minimum_api_version(&error).unwrap();
        assert_eq!((version.major_version, version.minor_version), (1, 44));
    }
}
