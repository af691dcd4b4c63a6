//! How long the controller leaves a stack alone after its activations failed: exponential,
//! capped, so a stack that keeps failing (or a tenant flipping `error -> pending` in a loop)
//! costs one attempt per `cap` at most, not one per pass, of Coolify's request budget.

use std::time::Duration;

/// The backoff policy: `base` after the first failure, doubled per failure, never above `cap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Backoff {
    /// The controller's default: 30 s, doubling, at most one attempt an hour.
    pub const CONTROLLER: Backoff =
        Backoff { base: Duration::from_secs(30), cap: Duration::from_secs(3600) };

    /// How long to wait after `consecutive_failures` failures (none: no wait).
    pub fn delay(self, consecutive_failures: u32) -> Duration {
        if consecutive_failures == 0 {
            return Duration::ZERO;
        }
        let doublings = (consecutive_failures - 1).min(31);
        self.base.saturating_mul(1 << doublings).min(self.cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_doubles_from_the_base_and_stops_at_the_cap() {
        let backoff = Backoff { base: Duration::from_secs(30), cap: Duration::from_secs(600) };
        let delays: Vec<u64> = (0..8).map(|failures| backoff.delay(failures).as_secs()).collect();
        assert_eq!(delays, [0, 30, 60, 120, 240, 480, 600, 600]);
        assert_eq!(backoff.delay(u32::MAX), Duration::from_secs(600), "no overflow");
    }
}
