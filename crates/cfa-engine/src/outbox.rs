//! The alert outbox in PocketBase (`cfa_alert_outbox`): `cfa_alerts`' [`Outbox`] over the
//! platform's system of record, so the monitor queues its messages in the same store as the
//! incidents they announce, and a crash between the two loses neither. The dispatcher of
//! `cfa serve` and `cfa controller` delivers from it, channel by channel.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cfa_alerts::{Delivery, DeliveryStatus, Outbox, OutboxError};
use cfa_pocketbase::{OutboxRecord, PocketBaseClient, PocketBaseError};

/// [`Outbox`] in PocketBase.
#[derive(Debug, Clone)]
pub struct PocketBaseOutbox {
    pocketbase: PocketBaseClient,
}

impl PocketBaseOutbox {
    pub fn new(pocketbase: PocketBaseClient) -> PocketBaseOutbox {
        PocketBaseOutbox { pocketbase }
    }
}

fn millis(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |since| i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
}

fn timestamp(time: SystemTime) -> jiff::Timestamp {
    jiff::Timestamp::from_millisecond(millis(time)).unwrap_or(jiff::Timestamp::MAX)
}

fn backend(operation: &'static str) -> impl FnOnce(PocketBaseError) -> OutboxError {
    move |error| OutboxError::Backend { operation, source: Box::new(error) }
}

fn status_name(status: DeliveryStatus) -> &'static str {
    match status {
        DeliveryStatus::Pending => "pending",
        DeliveryStatus::Delivered => "delivered",
        DeliveryStatus::Abandoned => "abandoned",
    }
}

fn to_record(delivery: &Delivery) -> Result<OutboxRecord, OutboxError> {
    let payload = serde_json::to_value(&delivery.payload).map_err(|error| {
        OutboxError::Backend { operation: "encode a delivery", source: Box::new(error) }
    })?;
    Ok(OutboxRecord {
        delivery_id: delivery.id.clone(),
        channel: delivery.channel.clone(),
        status: status_name(delivery.status).to_owned(),
        attempts: delivery.attempts,
        next_attempt_at: timestamp(delivery.next_attempt_at),
        created_ms: millis(delivery.created_at),
        last_error: delivery.last_error.clone(),
        payload,
    })
}

fn from_record(record: OutboxRecord) -> Result<Delivery, OutboxError> {
    let payload = serde_json::from_value(record.payload).map_err(|error| OutboxError::Backend {
        operation: "read a delivery",
        source: Box::new(error),
    })?;
    let status = match record.status.as_str() {
        "delivered" => DeliveryStatus::Delivered,
        "abandoned" => DeliveryStatus::Abandoned,
        _ => DeliveryStatus::Pending,
    };
    let since_epoch =
        |millis: i64| UNIX_EPOCH + Duration::from_millis(u64::try_from(millis).unwrap_or_default());
    Ok(Delivery {
        id: record.delivery_id,
        channel: record.channel,
        payload,
        status,
        attempts: record.attempts,
        next_attempt_at: since_epoch(record.next_attempt_at.as_millisecond()),
        created_at: since_epoch(record.created_ms),
        last_error: record.last_error,
    })
}

impl PocketBaseOutbox {
    async fn stored(&self, id: &str) -> Result<Delivery, OutboxError> {
        let record = self.pocketbase.outbox_view(id).await.map_err(backend("read a delivery"))?;
        from_record(record.ok_or_else(|| OutboxError::UnknownDelivery { id: id.to_owned() })?)
    }

    async fn save(&self, delivery: &Delivery) -> Result<(), OutboxError> {
        self.pocketbase
            .outbox_update(&to_record(delivery)?)
            .await
            .map_err(backend("update a delivery"))
    }
}

impl Outbox for PocketBaseOutbox {
    async fn enqueue(&self, delivery: Delivery) -> Result<(), OutboxError> {
        self.pocketbase
            .outbox_insert(&to_record(&delivery)?)
            .await
            .map(|_| ())
            .map_err(backend("queue a delivery"))
    }

    async fn due(
        &self,
        channel: &str,
        now: SystemTime,
        limit: usize,
    ) -> Result<Vec<Delivery>, OutboxError> {
        let limit = u32::try_from(limit).unwrap_or(u32::MAX);
        let records = self
            .pocketbase
            .outbox_pending(channel, Some(timestamp(now)), limit)
            .await
            .map_err(backend("list due deliveries"))?;
        records.into_iter().map(from_record).collect()
    }

    async fn pending(&self, channel: &str, limit: usize) -> Result<Vec<Delivery>, OutboxError> {
        let limit = u32::try_from(limit).unwrap_or(u32::MAX);
        let records = self
            .pocketbase
            .outbox_pending(channel, None, limit)
            .await
            .map_err(backend("list pending deliveries"))?;
        records.into_iter().map(from_record).collect()
    }

    async fn mark_delivered(&self, id: &str) -> Result<(), OutboxError> {
        let mut delivery = self.stored(id).await?;
        delivery.status = DeliveryStatus::Delivered;
        delivery.last_error = None;
        self.save(&delivery).await
    }

    async fn mark_failed(
        &self,
        id: &str,
        error: &str,
        next_attempt_at: Option<SystemTime>,
    ) -> Result<(), OutboxError> {
        let mut delivery = self.stored(id).await?;
        delivery.attempts += 1;
        delivery.last_error = Some(error.to_owned());
        match next_attempt_at {
            Some(next) => delivery.next_attempt_at = next,
            None => delivery.status = DeliveryStatus::Abandoned,
        }
        self.save(&delivery).await
    }
}
