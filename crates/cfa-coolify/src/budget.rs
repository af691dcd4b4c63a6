//! The shared client-side rate budget: a token bucket that keeps every clone of a client (and
//! every task using it) under the server's throttle.
//!
//! Coolify throttles with Laravel's fixed window (`API_RATE_LIMIT` requests per 60 s, counted
//! from the first request of a window). A token bucket with burst `B` and refill `r` sends at
//! most `B + r * T` requests in any interval `T`; choosing `B = N / 10` and `r = (N - B) / W`
//! keeps any window `W` at or under `N`, so a fixed window never overflows while short bursts
//! (a provisioning flow's handful of calls) still go out at once.
//!
//! Waiters reserve a slot (the bucket may go negative) and sleep until their slot: first come,
//! first served, no thundering herd.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// A rate budget shared by all clones. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RateBudget {
    inner: Arc<BudgetInner>,
}

#[derive(Debug)]
struct BudgetInner {
    burst: f64,
    /// Tokens per second.
    refill_rate: f64,
    bucket: Mutex<Bucket>,
    granted: AtomicU64,
    waited: AtomicU64,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated_at: Instant,
}

impl RateBudget {
    /// At most `requests` in any `window` (see the module docs for the burst split).
    pub fn new(requests: u32, window: Duration) -> Self {
        let requests = f64::from(requests.max(1));
        let burst = (requests / 10.0).floor().max(1.0);
        let refill_per_window = (requests - burst).max(1.0);
        let refill_rate = refill_per_window / window.as_secs_f64().max(0.001);
        Self {
            inner: Arc::new(BudgetInner {
                burst,
                refill_rate,
                bucket: Mutex::new(Bucket { tokens: burst, updated_at: Instant::now() }),
                granted: AtomicU64::new(0),
                waited: AtomicU64::new(0),
            }),
        }
    }

    /// Waits until this caller may send one request.
    pub async fn acquire(&self) {
        let wait = {
            let mut bucket = self.lock();
            let now = Instant::now();
            self.refill(&mut bucket, now);
            bucket.tokens -= 1.0;
            // Refill runs from `updated_at`, which a pause may have pushed into the future.
            let deficit =
                Duration::from_secs_f64((-bucket.tokens).max(0.0) / self.inner.refill_rate);
            (bucket.updated_at + deficit).saturating_duration_since(now)
        };
        self.inner.granted.fetch_add(1, Ordering::Relaxed);
        if !wait.is_zero() {
            self.inner.waited.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(wait).await;
        }
    }

    /// The server said "slow down" (429 with `Retry-After`): nobody new starts before `delay`.
    pub fn pause_for(&self, delay: Duration) {
        let mut bucket = self.lock();
        let now = Instant::now();
        self.refill(&mut bucket, now);
        // An empty bucket whose refill starts only after the pause.
        bucket.tokens = bucket.tokens.min(0.0);
        bucket.updated_at = bucket.updated_at.max(now + delay);
    }

    /// Requests granted so far (for tests and benchmarks).
    pub fn granted(&self) -> u64 {
        self.inner.granted.load(Ordering::Relaxed)
    }

    /// Requests that had to wait for a slot.
    pub fn waited(&self) -> u64 {
        self.inner.waited.load(Ordering::Relaxed)
    }

    fn refill(&self, bucket: &mut Bucket, now: Instant) {
        if now > bucket.updated_at {
            let elapsed = now.duration_since(bucket.updated_at).as_secs_f64();
            bucket.tokens =
                (bucket.tokens + elapsed * self.inner.refill_rate).min(self.inner.burst);
            bucket.updated_at = now;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Bucket> {
        // A poisoned lock only means another task panicked mid-update of two numbers.
        self.inner.bucket.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn burst_then_refill_rate() {
        let budget = RateBudget::new(100, Duration::from_secs(10));
        let start = Instant::now();
        for _ in 0..10 {
            budget.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "the burst of 10 goes out at once");
        budget.acquire().await;
        // 90 tokens per 10 s: one more token takes 1/9 s.
        let elapsed = start.elapsed().as_secs_f64();
        assert!((elapsed - 1.0 / 9.0).abs() < 0.01, "elapsed {elapsed}");
        assert_eq!(budget.granted(), 11);
        assert_eq!(budget.waited(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn pause_delays_everyone() {
        let budget = RateBudget::new(200, Duration::from_secs(60));
        let start = Instant::now();
        budget.pause_for(Duration::from_secs(5));
        budget.acquire().await;
        assert!(start.elapsed() >= Duration::from_secs(5));
    }
}
