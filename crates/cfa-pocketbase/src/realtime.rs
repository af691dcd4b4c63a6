//! A realtime (SSE) subscription to `agent_stacks` changes.
//!
//! PocketBase's protocol: `GET /api/realtime` opens an event stream whose first event,
//! `PB_CONNECT`, carries a client id; `POST /api/realtime {clientId, subscriptions}` with the
//! caller's token picks the topics. Events are filtered by the collection's list/view rules,
//! so a tenant's subscription only sees its own stacks. PocketBase closes idle connections
//! after 5 minutes and any connection after 30, so [`StackSubscription::next`] reconnects by
//! itself and reports [`StackChange::Reconnected`]: changes made while it was away were not
//! seen, and the caller should re-read what it cares about.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use serde_json::{Value, json};

use crate::client::PocketBaseClient;
use crate::error::{PocketBaseError, PocketBaseErrorKind};
use crate::types::{AgentStack, decode_error, stack_from_record};

const TOPIC: &str = "agent_stacks/*";

/// One change of a stack.
#[derive(Debug, Clone, PartialEq)]
pub enum StackChange {
    Created(AgentStack),
    Updated(AgentStack),
    Deleted(AgentStack),
    /// The stream was re-opened; changes in between were missed.
    Reconnected,
}

type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Vec<u8>>> + Send>>;

/// An open subscription; call [`StackSubscription::next`] in a loop.
pub struct StackSubscription {
    client: PocketBaseClient,
    events: Option<EventStream>,
}

impl std::fmt::Debug for StackSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StackSubscription")
            .field("connected", &self.events.is_some())
            .finish_non_exhaustive()
    }
}

struct EventStream {
    body: ByteStream,
    buffer: Vec<u8>,
}

#[derive(Debug, PartialEq)]
struct SseEvent {
    name: String,
    data: String,
}

impl PocketBaseClient {
    /// Subscribes to every change of `agent_stacks` the caller may see (a superuser: all).
    pub async fn stack_subscribe(&self) -> Result<StackSubscription, PocketBaseError> {
        let mut subscription = StackSubscription { client: self.clone(), events: None };
        subscription.events = Some(subscription.open().await?);
        Ok(subscription)
    }
}

impl StackSubscription {
    async fn open(&self) -> Result<EventStream, PocketBaseError> {
        const OPERATION: &str = "realtime_connect";
        let response = self
            .client
            .http()
            .get(self.client.url("api/realtime"))
            .header("Accept", "text/event-stream")
            .send()
            .await
            .map_err(|source| {
                PocketBaseError::new(
                    OPERATION,
                    PocketBaseErrorKind::Transport,
                    "cannot open the realtime stream",
                )
                .with_source(source)
            })?;
        let status = response.status().as_u16();
        if status != 200 {
            let body = response.bytes().await.unwrap_or_default();
            return Err(PocketBaseError::from_response(OPERATION, status, &body));
        }
        let mut events = EventStream {
            body: Box::pin(response.bytes_stream().map(|chunk| chunk.map(|bytes| bytes.to_vec()))),
            buffer: Vec::new(),
        };
        let connect = events
            .next_event()
            .await?
            .ok_or_else(|| decode_error(OPERATION, "the stream closed before PB_CONNECT".into()))?;
        if connect.name != "PB_CONNECT" {
            return Err(decode_error(
                OPERATION,
                format!("the first event is `{}`, not PB_CONNECT", connect.name),
            ));
        }
        let client_id = serde_json::from_str::<Value>(&connect.data)
            .ok()
            .and_then(|data| data.get("clientId").and_then(Value::as_str).map(str::to_owned))
            .ok_or_else(|| decode_error(OPERATION, "PB_CONNECT without a clientId".into()))?;
        let body = json!({"clientId": client_id, "subscriptions": [TOPIC]});
        self.client
            .call("realtime_subscribe", reqwest::Method::POST, "api/realtime", &[], Some(&body))
            .await?;
        Ok(events)
    }

    /// The next change. When the stream ended (PocketBase's connection limits, a restart),
    /// re-opens it and answers [`StackChange::Reconnected`]; an error means the re-open failed
    /// (call again to retry, after a pause).
    pub async fn next(&mut self) -> Result<StackChange, PocketBaseError> {
        loop {
            let Some(events) = self.events.as_mut() else {
                self.events = Some(self.open().await?);
                return Ok(StackChange::Reconnected);
            };
            match events.next_event().await {
                Ok(Some(event)) if event.name == TOPIC => return parse_change(&event.data),
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => self.events = None,
            }
        }
    }
}

fn parse_change(data: &str) -> Result<StackChange, PocketBaseError> {
    const OPERATION: &str = "realtime_event";
    let message: Value = serde_json::from_str(data).map_err(|source| {
        decode_error(OPERATION, "an event is not JSON".into()).with_source(source)
    })?;
    let record = message
        .get("record")
        .ok_or_else(|| decode_error(OPERATION, "an event without a record".into()))?;
    let stack = stack_from_record(OPERATION, record)?;
    match message.get("action").and_then(Value::as_str) {
        Some("create") => Ok(StackChange::Created(stack)),
        Some("update") => Ok(StackChange::Updated(stack)),
        Some("delete") => Ok(StackChange::Deleted(stack)),
        other => Err(decode_error(OPERATION, format!("unknown action {other:?}"))),
    }
}

impl EventStream {
    /// The next complete event; `None` when the stream ended.
    async fn next_event(&mut self) -> Result<Option<SseEvent>, PocketBaseError> {
        loop {
            if let Some(event) = take_event(&mut self.buffer) {
                return Ok(Some(event));
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self.buffer.extend_from_slice(&chunk),
                Some(Err(source)) => {
                    return Err(PocketBaseError::new(
                        "realtime_read",
                        PocketBaseErrorKind::Transport,
                        "the realtime stream broke",
                    )
                    .with_source(source));
                }
                None => return Ok(None),
            }
        }
    }
}

/// Removes and parses the first complete event (ended by a blank line) from `buffer`.
fn take_event(buffer: &mut Vec<u8>) -> Option<SseEvent> {
    loop {
        let normalized_end = find_blank_line(buffer)?;
        let (end, separator) = normalized_end;
        let block = String::from_utf8_lossy(&buffer[..end]).into_owned();
        buffer.drain(..end + separator);
        let mut name = String::from("message");
        let mut data = Vec::new();
        for line in block.lines() {
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => name = value.to_owned(),
                "data" => data.push(value.to_owned()),
                _ => {}
            }
        }
        if !data.is_empty() || name != "message" {
            return Some(SseEvent { name, data: data.join("\n") });
        }
    }
}

fn find_blank_line(buffer: &[u8]) -> Option<(usize, usize)> {
    let lf = buffer.windows(2).position(|window| window == b"\n\n").map(|index| (index, 2));
    let crlf = buffer.windows(4).position(|window| window == b"\r\n\r\n").map(|index| (index, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (found, None) | (None, found) => found,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_split_on_blank_lines_and_keep_partial_tails() {
        let mut buffer = b"id:abc\nevent:PB_CONNECT\ndata:{\"clientId\":\"abc\"}\n\nevent: agent_stacks/*\ndata: {\"a\"".to_vec();
        assert_eq!(
            take_event(&mut buffer),
            Some(SseEvent { name: "PB_CONNECT".into(), data: "{\"clientId\":\"abc\"}".into() })
        );
        assert_eq!(take_event(&mut buffer), None);
        buffer.extend_from_slice(b":1}\n\n");
        assert_eq!(
            take_event(&mut buffer),
            Some(SseEvent { name: "agent_stacks/*".into(), data: "{\"a\":1}".into() })
        );
        assert!(buffer.is_empty());
    }
}
