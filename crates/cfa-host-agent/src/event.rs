//! What the agent reports: one [`HostEvent`] per Docker container event the platform cares
//! about, with a stable id, and the marker labels that make a container one of ours.
//!
//! This type is the wire format (the receiver deserializes it), so it carries serde.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The label every container the renderer writes carries, with [`MANAGED_BY_VALUE`]
/// (`cfa_templates::render::LABEL_MANAGED_BY`; a test keeps the two equal).
pub const LABEL_MANAGED_BY: &str = "cloudfreedom.managed-by";
/// The value of [`LABEL_MANAGED_BY`] on our containers.
pub const MANAGED_BY_VALUE: &str = "cfa";
/// The tenant's slug (`cfa_templates::render::LABEL_TENANT`).
pub const LABEL_TENANT: &str = "cloudfreedom.tenant";
/// The stack's name (`cfa_templates::render::LABEL_STACK`).
pub const LABEL_STACK: &str = "cloudfreedom.stack";

/// One thing that happened to one of our containers on one server.
///
/// JSON: `{"id", "server", "container_id", "container_name", "tenant", "stack", "kind", "at"}`
/// plus `exit_code` for `"kind": "died"` and `healthy` for `"kind": "health"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostEvent {
    /// Stable across re-reads of the same Docker event ([`event_id`]): the key to drop duplicates.
    pub id: String,
    /// The Coolify server's uuid, as the agent was configured.
    pub server: String,
    /// Docker's full container id.
    pub container_id: String,
    /// Docker's container name, without the leading `/`.
    pub container_name: String,
    /// The tenant's slug, from the container's [`LABEL_TENANT`].
    pub tenant: String,
    /// The stack's name, from the container's [`LABEL_STACK`].
    pub stack: String,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
    /// When Docker saw it: Docker's `timeNano`, nanoseconds since the Unix epoch (host clock).
    pub at: i64,
}

/// What happened to the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    /// The kernel's OOM killer killed a process of the container (Docker's `oom` event): the
    /// only reliable OOM signal, since `State.OOMKilled` is cleared by a restart.
    Oom,
    /// The container's main process ended (Docker's `die`). 137 means SIGKILL from anyone, not
    /// necessarily the OOM killer: only a preceding [`EventKind::Oom`] says that.
    Died { exit_code: i64 },
    /// Restarted through Docker's API (Docker's `restart`). A restart by the restart policy is a
    /// [`EventKind::Died`] followed by [`EventKind::Started`].
    Restarted,
    /// The container started (Docker's `start`), first time or again.
    Started,
    /// Docker's healthcheck verdict changed (`health_status: healthy|unhealthy`).
    Health { healthy: bool },
}

impl EventKind {
    /// A short name for logs: `oom`, `died`, `restarted`, `started`, `health`.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Oom => "oom",
            EventKind::Died { .. } => "died",
            EventKind::Restarted => "restarted",
            EventKind::Started => "started",
            EventKind::Health { .. } => "health",
        }
    }

    /// Reads Docker's `Action` (with `exitCode` for `die`); `None` for actions we do not report.
    pub fn from_docker_action(action: &str, exit_code: Option<&str>) -> Option<EventKind> {
        match action {
            "oom" => Some(EventKind::Oom),
            "die" => Some(EventKind::Died { exit_code: exit_code?.trim().parse().ok()? }),
            "restart" => Some(EventKind::Restarted),
            "start" => Some(EventKind::Started),
            "health_status: healthy" => Some(EventKind::Health { healthy: true }),
            "health_status: unhealthy" => Some(EventKind::Health { healthy: false }),
            _ => None,
        }
    }
}

/// The Docker actions the agent asks the engine for (its `event` filter). `health_status`
/// matches `health_status: *` (the engine matches it by prefix).
pub const DOCKER_ACTIONS: [&str; 5] = ["oom", "die", "restart", "start", "health_status"];

/// The id of a Docker event: hex SHA-256 of `"{time_nano}\n{container_id}\n{action}"`.
///
/// Docker replays an event with the same `timeNano`, id and action, so a re-read (after an agent
/// restart, with `since`) gets the same id.
pub fn event_id(time_nano: i64, container_id: &str, action: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(time_nano.to_string().as_bytes());
    hasher.update(b"\n");
    hasher.update(container_id.as_bytes());
    hasher.update(b"\n");
    hasher.update(action.as_bytes());
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_keys_are_the_renderers() {
        use cfa_templates::render;
        assert_eq!(LABEL_MANAGED_BY, render::LABEL_MANAGED_BY);
        assert_eq!(LABEL_TENANT, render::LABEL_TENANT);
        assert_eq!(LABEL_STACK, render::LABEL_STACK);
    }

    #[test]
    fn actions_map_to_kinds() {
        let check = |action: &str, exit: Option<&str>, expected: Option<EventKind>| {
            assert_eq!(EventKind::from_docker_action(action, exit), expected, "{action} {exit:?}");
        };
        check("oom", None, Some(EventKind::Oom));
        check("die", Some("137"), Some(EventKind::Died { exit_code: 137 }));
        check("die", Some("0"), Some(EventKind::Died { exit_code: 0 }));
        check("die", None, None);
        check("die", Some("x"), None);
        check("restart", None, Some(EventKind::Restarted));
        check("start", None, Some(EventKind::Started));
        check("health_status: healthy", None, Some(EventKind::Health { healthy: true }));
        check("health_status: unhealthy", None, Some(EventKind::Health { healthy: false }));
        check("health_status: starting", None, None);
        check("create", None, None);
        check("destroy", None, None);
        check("kill", None, None);
    }

    #[test]
    fn ids_are_stable_and_distinct() {
        let id = event_id(1, "abc", "oom");
        assert_eq!(id, event_id(1, "abc", "oom"));
        assert_eq!(id.len(), 64);
        assert_ne!(id, event_id(2, "abc", "oom"));
        assert_ne!(id, event_id(1, "abd", "oom"));
        assert_ne!(id, event_id(1, "abc", "die"));
    }

    #[test]
    fn json_shape() {
        let event = HostEvent {
            id: "i".to_owned(),
            server: "s".to_owned(),
            container_id: "c".to_owned(),
            container_name: "n".to_owned(),
            tenant: "t".to_owned(),
            stack: "k".to_owned(),
            kind: EventKind::Died { exit_code: 137 },
            at: 5,
        };
        let json = serde_json::to_string(&event).unwrap();
        assert_eq!(
            json,
            r#"{"id":"i","server":"s","container_id":"c","container_name":"n","tenant":"t","stack":"k","kind":"died","exit_code":137,"at":5}"#
        );
        assert_eq!(serde_json::from_str::<HostEvent>(&json).unwrap(), event);
        let health = HostEvent { kind: EventKind::Health { healthy: false }, ..event.clone() };
        let json = serde_json::to_value(&health).unwrap();
        assert_eq!(json["kind"], "health");
        assert_eq!(json["healthy"], false);
        let oom = HostEvent { kind: EventKind::Oom, ..event };
        assert_eq!(serde_json::to_value(&oom).unwrap()["kind"], "oom");
    }
}
