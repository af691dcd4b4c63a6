//! Capacity low: a server's reserved RAM or disk over a threshold of what may be promised
//! there, so an operator adds room before admission starts refusing stacks.

use super::Observation;
use crate::admission::ServerCapacity;

/// Whether `reserved` is at or over `threshold_percent` of `total`. A total of 0 is a
/// dimension nobody measured: never low.
pub fn capacity_low(reserved: u64, total: u64, threshold_percent: u32) -> bool {
    total > 0 && u128::from(reserved) * 100 >= u128::from(total) * u128::from(threshold_percent)
}

/// Per resource, the share of a server's allocatable capacity (after its system reserve and
/// overcommit, as admission counts) whose reservation opens a `capacity_low` incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapacityThresholds {
    pub memory_percent: u32,
    pub disk_percent: u32,
}

impl Default for CapacityThresholds {
    /// RAM at 90%: RAM is not overcommitted, so past this a typical agent stack (512 MB to
    /// 2 GB) soon stops fitting. Disk at 85%: images, logs and volumes grow past what was
    /// reserved for them, and a full disk stops every stack on the host.
    fn default() -> CapacityThresholds {
        CapacityThresholds { memory_percent: 90, disk_percent: 85 }
    }
}

/// The `capacity_low` observation for one server: holds, naming each resource over its
/// threshold, or clear. CPU is left out: it is overcommitted on purpose.
pub fn judge_capacity(server: &ServerCapacity, thresholds: &CapacityThresholds) -> Observation {
    let allocatable = server.allocatable();
    let reserved = server.reserved;
    let dimensions = [
        ("memory", reserved.memory_mb, allocatable.memory_mb, thresholds.memory_percent),
        ("disk", reserved.disk_mb, allocatable.disk_mb, thresholds.disk_percent),
    ];
    let low: Vec<String> = dimensions
        .into_iter()
        .filter(|(_, reserved, total, threshold)| {
            capacity_low(u64::from(*reserved), u64::from(*total), *threshold)
        })
        .map(|(name, reserved, total, threshold)| {
            let percent = u64::from(reserved) * 100 / u64::from(total);
            format!(
                "{name}: {reserved} of {total} MiB reserved ({percent}%, threshold {threshold}%)"
            )
        })
        .collect();
    if low.is_empty() {
        Observation::clear()
    } else {
        Observation::holds(format!("server {}: {}", server.name, low.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incidents::Condition;
    use crate::resources::Resources;

    #[test]
    fn low_at_or_over_the_threshold_and_never_for_an_unmeasured_total() {
        assert!(!capacity_low(89, 100, 90));
        assert!(capacity_low(90, 100, 90));
        assert!(capacity_low(150, 100, 90));
        assert!(!capacity_low(0, 0, 90));
        assert!(!capacity_low(10, 0, 90));
        assert!(capacity_low(u64::MAX, u64::MAX, 100), "no overflow");
    }

    #[test]
    fn a_server_is_judged_on_its_allocatable_memory_and_disk() {
        // The seed host: 31 GB RAM and 24 GB disk, 2 GB of each kept for the host.
        let mut server = ServerCapacity::seed_host("srv1");
        assert_eq!(server.allocatable().memory_mb, 29 * 1024);
        let thresholds = CapacityThresholds::default();
        server.reserved = Resources::new(40_000, 27 * 1024, 10 * 1024);
        let observation = judge_capacity(&server, &thresholds);
        assert_eq!(observation.condition, Condition::Holds);
        assert_eq!(
            observation.detail.as_deref(),
            Some("server seed host: memory: 27648 of 29696 MiB reserved (93%, threshold 90%)")
        );
        server.reserved = Resources::new(40_000, 27 * 1024, 20 * 1024);
        assert_eq!(
            judge_capacity(&server, &thresholds).detail.as_deref(),
            Some(
                "server seed host: memory: 27648 of 29696 MiB reserved (93%, threshold 90%); \
                 disk: 20480 of 22528 MiB reserved (90%, threshold 85%)"
            )
        );
        server.reserved = Resources::new(40_000, 20 * 1024, 10 * 1024);
        let observation = judge_capacity(&server, &CapacityThresholds::default());
        assert_eq!(observation.condition, Condition::Clear, "CPU overcommit is not low capacity");
    }
}
