//! Helpers the end-to-end tests share: waiting for what a background process does.

use std::time::Duration;

/// Polls `check` every 100 ms until it is `Some`, for at most `seconds`.
pub(crate) async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    seconds: u64,
    what: &str,
    mut check: impl FnMut() -> F,
) -> T {
    for _ in 0..seconds * 10 {
        if let Some(value) = check().await {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not within {seconds} s: {what}");
}
