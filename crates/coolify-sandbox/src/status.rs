//! Status strings and their aggregation, exactly as `notes/coolify.md` §7 describes Coolify's
//! `ContainerStatusAggregator::aggregateFromStrings` (string path, where `running:starting`
//! reads as healthy) and `Service::getStatusAttribute`.

/// One container's status input: its `State.Status:Health` string and restart count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerStatus {
    pub status: String,
    pub restart_count: u32,
}

/// Aggregates status strings. `preserve_restarting` is true for a sub-resource (one compose
/// service) and false for the whole service.
pub fn aggregate(statuses: &[ContainerStatus], preserve_restarting: bool) -> String {
    if statuses.is_empty() {
        return "exited".to_owned();
    }
    let any = |needle: &str| statuses.iter().any(|status| status.status.contains(needle));
    let has_running = any("running");
    let has_exited = any("exited");
    let has_starting = any("starting") || any("created");
    let max_restarts = statuses.iter().map(|status| status.restart_count).max().unwrap_or(0);
    if any("degraded") {
        return "degraded:unhealthy".to_owned();
    }
    if any("restarting") {
        return if preserve_restarting { "restarting:unknown" } else { "degraded:unhealthy" }
            .to_owned();
    }
    if has_exited && max_restarts > 0 {
        return "degraded:unhealthy".to_owned();
    }
    if has_running && has_exited {
        return "degraded:unhealthy".to_owned();
    }
    // A `running:starting` container counts as running; only a non-running starting or
    // created container makes the aggregate `starting`.
    let has_non_running_starting = statuses.iter().any(|status| {
        !status.status.starts_with("running")
            && (status.status.contains("starting") || status.status.contains("created"))
    });
    if has_running && has_non_running_starting {
        return "starting:unknown".to_owned();
    }
    if has_running {
        // The string path checks only for `unhealthy` and `unknown`: `running:starting` ends
        // up `running:healthy` (coollabsio/coolify#9411).
        if any("unhealthy") {
            return "running:unhealthy".to_owned();
        }
        if any("unknown") {
            return "running:unknown".to_owned();
        }
        return "running:healthy".to_owned();
    }
    if any("dead") || any("removing") {
        return "degraded:unhealthy".to_owned();
    }
    if any("paused") {
        return "paused:unknown".to_owned();
    }
    if has_starting {
        return "starting:unknown".to_owned();
    }
    "exited".to_owned()
}

/// A sub-resource whose containers are all excluded reports `<status>:excluded`.
pub fn excluded_suffix(aggregate_of_excluded: Option<&str>) -> String {
    match aggregate_of_excluded {
        Some(status) if status.contains(':') => format!("{status}:excluded"),
        Some(status) => format!("{status}:unknown:excluded"),
        None => "unknown:unknown:excluded".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(statuses: &[(&str, u32)], preserve_restarting: bool, expected: &str) {
        let input: Vec<ContainerStatus> = statuses
            .iter()
            .map(|(status, restart_count)| ContainerStatus {
                status: (*status).to_owned(),
                restart_count: *restart_count,
            })
            .collect();
        assert_eq!(aggregate(&input, preserve_restarting), expected, "{statuses:?}");
    }

    #[test]
    fn priority_table() {
        check(&[("running:healthy", 0), ("degraded:unhealthy", 0)], false, "degraded:unhealthy");
        check(&[("restarting:unknown", 3)], true, "restarting:unknown");
        check(&[("restarting:unknown", 3), ("running:healthy", 0)], false, "degraded:unhealthy");
        check(&[("exited", 1)], true, "degraded:unhealthy");
        check(&[("running:healthy", 0), ("exited", 0)], false, "degraded:unhealthy");
        check(&[("running:healthy", 0), ("created:unknown", 0)], false, "starting:unknown");
        check(&[("running:healthy", 0), ("running:unhealthy", 0)], false, "running:unhealthy");
        check(&[("running:healthy", 0), ("running:unknown", 0)], false, "running:unknown");
        check(&[("running:healthy", 0), ("running:starting", 0)], false, "running:healthy");
        check(&[("dead:unknown", 0)], false, "degraded:unhealthy");
        check(&[("paused:unknown", 0)], false, "paused:unknown");
        check(&[("created:unknown", 0)], false, "starting:unknown");
        check(&[("exited", 0)], false, "exited");
        check(&[], false, "exited");
    }

    #[test]
    fn excluded_only() {
        assert_eq!(excluded_suffix(Some("running:healthy")), "running:healthy:excluded");
        assert_eq!(excluded_suffix(None), "unknown:unknown:excluded");
    }
}
