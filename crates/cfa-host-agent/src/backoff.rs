//! Capped exponential backoff: the wait before the next try after a failure.
//!
//! No jitter: one agent per server retries against one receiver, so there is no herd of
//! clients to spread, and a deterministic schedule is what the tests can hold.

use std::time::Duration;

/// Doubles from `initial` after each failure, never above `max`; a success resets it.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// `initial` is clamped to `max` (and to at least 1 ms, so doubling makes progress).
    pub fn new(initial: Duration, max: Duration) -> Self {
        let initial = initial.max(Duration::from_millis(1)).min(max.max(Duration::from_millis(1)));
        Self { initial, max: max.max(initial), next: initial }
    }

    /// The wait after one more failure.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        delay
    }

    /// After a success: the next failure waits `initial` again.
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delays(backoff: &mut Backoff, count: usize) -> Vec<u64> {
        (0..count).map(|_| backoff.next_delay().as_millis() as u64).collect()
    }

    #[test]
    fn doubles_to_the_cap_and_resets() {
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        assert_eq!(
            delays(&mut backoff, 10),
            [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000]
        );
        backoff.reset();
        assert_eq!(delays(&mut backoff, 2), [500, 1000]);
    }

    #[test]
    fn odd_settings_stay_sane() {
        assert_eq!(delays(&mut Backoff::new(Duration::ZERO, Duration::ZERO), 3), [1, 1, 1]);
        assert_eq!(
            delays(&mut Backoff::new(Duration::from_secs(9), Duration::from_secs(2)), 2),
            [2000, 2000]
        );
        let mut huge = Backoff::new(Duration::from_secs(u64::MAX / 2), Duration::MAX);
        huge.next_delay();
        huge.next_delay();
        assert_eq!(huge.next_delay(), Duration::MAX);
    }
}
