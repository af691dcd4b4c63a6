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
//!
//! Two lanes share the budget: reads (`GET`) and mutations (everything else). A share of the
//! burst and of the refill (`MUTATION_SHARE`) is kept for mutations, so status polls of many
//! deploys at once cannot starve the calls that change something (a start, a stop); what one
//! lane does not use overflows to the other (a full mutation lane refills the reads), and a
//! mutation may also take an unreserved read token when there is one. Each lane's waiters are
//! timed by that lane's own refill, so together the lanes never exceed the budget.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// The share of the budget kept for mutations.
pub(crate) const MUTATION_SHARE: f64 = 0.2;

/// Which lane a request waits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// A `GET`: observations and status polls.
    Read,
    /// Anything that changes something.
    Mutation,
}

/// A rate budget shared by all clones. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RateBudget {
    inner: Arc<BudgetInner>,
}

#[derive(Debug)]
struct BudgetInner {
    read_burst: f64,
    mutation_burst: f64,
    /// Tokens per second, both lanes together.
    refill_rate: f64,
    bucket: Mutex<Bucket>,
    granted: AtomicU64,
    waited: AtomicU64,
}

#[derive(Debug)]
struct Bucket {
    reads: f64,
    mutations: f64,
    updated_at: Instant,
}

impl RateBudget {
    /// At most `requests` in any `window` (see the module docs for the burst split).
    pub fn new(requests: u32, window: Duration) -> Self {
        let requests = f64::from(requests.max(1));
        let burst = (requests / 10.0).floor().max(1.0);
        let refill_per_window = (requests - burst).max(1.0);
        let refill_rate = refill_per_window / window.as_secs_f64().max(0.001);
        let mutation_burst = (burst * MUTATION_SHARE).floor().max(1.0).min(burst);
        let read_burst = (burst - mutation_burst).max(0.0);
        Self {
            inner: Arc::new(BudgetInner {
                read_burst,
                mutation_burst,
                refill_rate,
                bucket: Mutex::new(Bucket {
                    reads: read_burst,
                    mutations: mutation_burst,
                    updated_at: Instant::now(),
                }),
                granted: AtomicU64::new(0),
                waited: AtomicU64::new(0),
            }),
        }
    }

    /// Waits until this caller may send one request in `lane`.
    pub async fn acquire(&self, lane: Lane) {
        let wait = {
            let mut bucket = self.lock();
            let now = Instant::now();
            self.refill(&mut bucket, now);
            let inner = &self.inner;
            let (tokens, rate) = match lane {
                Lane::Mutation if bucket.reads >= 1.0 => {
                    bucket.reads -= 1.0;
                    (bucket.reads, f64::INFINITY)
                }
                Lane::Mutation => {
                    bucket.mutations -= 1.0;
                    (bucket.mutations, inner.refill_rate * MUTATION_SHARE)
                }
                Lane::Read => {
                    bucket.reads -= 1.0;
                    (bucket.reads, inner.refill_rate * (1.0 - MUTATION_SHARE))
                }
            };
            // Refill runs from `updated_at`, which a pause may have pushed into the future.
            let deficit = Duration::from_secs_f64((-tokens).max(0.0) / rate);
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
        // Empty buckets whose refill starts only after the pause.
        bucket.reads = bucket.reads.min(0.0);
        bucket.mutations = bucket.mutations.min(0.0);
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
        if now <= bucket.updated_at {
            return;
        }
        let inner = &self.inner;
        let elapsed = now.duration_since(bucket.updated_at).as_secs_f64();
        let total = elapsed * inner.refill_rate;
        let mut to_reads = total * (1.0 - MUTATION_SHARE);
        bucket.mutations += total * MUTATION_SHARE;
        if bucket.mutations > inner.mutation_burst {
            to_reads += bucket.mutations - inner.mutation_burst;
            bucket.mutations = inner.mutation_burst;
        }
        bucket.reads += to_reads;
        if bucket.reads > inner.read_burst {
            let overflow = bucket.reads - inner.read_burst;
            bucket.reads = inner.read_burst;
            bucket.mutations = (bucket.mutations + overflow).min(inner.mutation_burst);
        }
        bucket.updated_at = now;
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
        // A burst of 10: 8 for reads, 2 kept for mutations.
        for _ in 0..8 {
            budget.acquire(Lane::Read).await;
        }
        for _ in 0..2 {
            budget.acquire(Lane::Mutation).await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "the burst of 10 goes out at once");
        budget.acquire(Lane::Read).await;
        // 90 tokens per 10 s, 80 % of them for reads: one more read takes 1/7.2 s.
        let elapsed = start.elapsed().as_secs_f64();
        assert!((elapsed - 1.0 / 7.2).abs() < 0.01, "elapsed {elapsed}");
        assert_eq!(budget.granted(), 11);
        assert_eq!(budget.waited(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn pause_delays_everyone() {
        let budget = RateBudget::new(200, Duration::from_secs(60));
        let start = Instant::now();
        budget.pause_for(Duration::from_secs(5));
        budget.acquire(Lane::Read).await;
        assert!(start.elapsed() >= Duration::from_secs(5));
        budget.acquire(Lane::Mutation).await;
        assert!(start.elapsed() >= Duration::from_secs(5));
    }

    /// 300 status polls queued ahead of one start: the start goes out within its lane's
    /// refill, not after the polls (which take minutes at Coolify's 200 a minute).
    #[tokio::test(start_paused = true)]
    async fn reads_cannot_starve_a_mutation() {
        let budget = RateBudget::new(200, Duration::from_secs(60));
        let start = Instant::now();
        let reads: Vec<_> = (0..300)
            .map(|_| {
                let budget = budget.clone();
                tokio::spawn(async move { budget.acquire(Lane::Read).await })
            })
            .collect();
        tokio::task::yield_now().await;
        budget.acquire(Lane::Mutation).await;
        let mutation_after = start.elapsed();
        for read in reads {
            read.await.unwrap();
        }
        assert!(mutation_after < Duration::from_secs(2), "{mutation_after:?}");
        assert!(start.elapsed() > Duration::from_secs(60), "{:?}", start.elapsed());
    }

    /// Both lanes saturated for five minutes: no 60-second window ever holds more than the
    /// budget's 200 requests.
    #[tokio::test(start_paused = true)]
    async fn the_lanes_together_never_exceed_the_budget() {
        let budget = RateBudget::new(200, Duration::from_secs(60));
        let start = Instant::now();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let workers: Vec<_> = [Lane::Read, Lane::Read, Lane::Mutation, Lane::Read, Lane::Mutation]
            .into_iter()
            .map(|lane| {
                let (budget, sent) = (budget.clone(), sent.clone());
                tokio::spawn(async move {
                    while start.elapsed() < Duration::from_secs(300) {
                        budget.acquire(lane).await;
                        sent.lock().unwrap().push((start.elapsed(), lane));
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.await.unwrap();
        }
        let sent = sent.lock().unwrap();
        let times: Vec<Duration> = sent.iter().map(|(at, _)| *at).collect();
        for (index, first) in times.iter().enumerate() {
            let in_window = times[index..]
                .iter()
                .take_while(|at| **at < *first + Duration::from_secs(60))
                .count();
            assert!(in_window <= 200, "{in_window} requests in the 60 s from {first:?}");
        }
        let mutations = sent.iter().filter(|(_, lane)| *lane == Lane::Mutation).count();
        assert!(
            mutations * 10 >= sent.len(),
            "mutations kept their share: {mutations} of {}",
            sent.len()
        );
        assert!(sent.len() > 900, "the budget is used: {} in 300 s", sent.len());
    }
}
