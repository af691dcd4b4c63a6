//! An outbox in memory: for tests, and as the reference behaviour of [`Outbox`]. It keeps
//! settled deliveries (so enqueuing one again stays a no-op) until [`MemoryOutbox::forget_settled`].

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::SystemTime;

use super::{Delivery, DeliveryStatus, Outbox, OutboxError, apply_failure, select_due};

/// Deliveries in a map behind a lock; lost with the process.
#[derive(Debug, Default)]
pub struct MemoryOutbox {
    deliveries: Mutex<BTreeMap<String, Delivery>>,
}

impl MemoryOutbox {
    pub fn new() -> MemoryOutbox {
        MemoryOutbox::default()
    }

    /// Every delivery it holds, settled ones included, oldest first.
    pub fn deliveries(&self) -> Vec<Delivery> {
        let mut all: Vec<Delivery> = self.lock().values().cloned().collect();
        all.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        all
    }

    /// How many are pending.
    pub fn pending_count(&self) -> usize {
        self.lock().values().filter(|delivery| delivery.status == DeliveryStatus::Pending).count()
    }

    /// Drops delivered and abandoned deliveries.
    pub fn forget_settled(&self) {
        self.lock().retain(|_, delivery| delivery.status == DeliveryStatus::Pending);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Delivery>> {
        // A panic while holding the lock leaves plain data behind: keep using it.
        self.deliveries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn update(&self, id: &str, change: impl FnOnce(&mut Delivery)) -> Result<(), OutboxError> {
        let mut deliveries = self.lock();
        let delivery = deliveries
            .get_mut(id)
            .ok_or_else(|| OutboxError::UnknownDelivery { id: id.to_owned() })?;
        change(delivery);
        Ok(())
    }
}

impl Outbox for MemoryOutbox {
    async fn enqueue(&self, delivery: Delivery) -> Result<(), OutboxError> {
        self.lock().entry(delivery.id.clone()).or_insert(delivery);
        Ok(())
    }

    async fn due(
        &self,
        channel: &str,
        now: SystemTime,
        limit: usize,
    ) -> Result<Vec<Delivery>, OutboxError> {
        Ok(select_due(self.lock().values(), channel, now, limit))
    }

    async fn mark_delivered(&self, id: &str) -> Result<(), OutboxError> {
        self.update(id, |delivery| delivery.status = DeliveryStatus::Delivered)
    }

    async fn mark_failed(
        &self,
        id: &str,
        error: &str,
        next_attempt_at: Option<SystemTime>,
    ) -> Result<(), OutboxError> {
        self.update(id, |delivery| apply_failure(delivery, error, next_attempt_at))
    }
}
