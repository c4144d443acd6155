//! Batched Direct Get (ADR-31, nats-server 2.11+): reads up to N stored messages of one subject
//! from a stream with one request and no consumer. async-nats 0.51 only has the single-message
//! form, so this sends the request itself.
//!
//! Why no consumer: the frontend's NATS user may not create one (see `frontend::cache`), but it
//! may publish to `$JS.API.DIRECT.GET.<stream>` and read its own inbox. The server answers a
//! request `{"batch": N, "next_by_subj": S, "seq": Q}` (or `"start_time"` instead of `"seq"`) on
//! the reply subject with up to N messages, each carrying `Nats-Stream`, `Nats-Subject`,
//! `Nats-Sequence`, `Nats-Time-Stamp` and `Nats-Num-Pending`, then a status `204 EOB`; with
//! nothing to send, a single `404`. Every read here is bounded: at most [`MAX_BATCH`] messages
//! and [`MAX_BATCH_BYTES`] bytes are asked for, anything the server sends beyond what was asked
//! is dropped, and a silent server ends the read at the timeout.

use std::time::Duration;

use async_nats::{HeaderMap, StatusCode};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;

/// Most messages one request asks for.
pub const MAX_BATCH: usize = 2_000;
/// Most payload bytes one request asks for.
pub const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// Where a batch starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// At this stream sequence or the first matching one after it.
    Sequence(u64),
    /// At the first matching message stored at or after this time.
    Time(DateTime<Utc>),
}

/// One batched read of `subject` from `stream`.
#[derive(Debug, Clone)]
pub struct BatchRequest {
    pub stream: String,
    /// `next_by_subj`: a subject, wildcards allowed.
    pub subject: String,
    pub start: Start,
    /// Messages asked for (at most [`MAX_BATCH`]).
    pub batch: usize,
    /// Payload bytes asked for (at most [`MAX_BATCH_BYTES`]).
    pub max_bytes: usize,
}

impl BatchRequest {
    pub fn new(stream: impl Into<String>, subject: impl Into<String>, start: Start, batch: usize) -> Self {
        Self { stream: stream.into(), subject: subject.into(), start, batch, max_bytes: MAX_BATCH_BYTES }
    }

    fn payload(&self) -> Bytes {
        let mut request = serde_json::json!({
            "batch": self.batch.clamp(1, MAX_BATCH),
            "max_bytes": self.max_bytes.clamp(1, MAX_BATCH_BYTES),
            "next_by_subj": self.subject,
        });
        match self.start {
            Start::Sequence(seq) => request["seq"] = seq.max(1).into(),
            Start::Time(time) => {
                request["start_time"] = time.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true).into();
            }
        }
        Bytes::from(request.to_string())
    }
}

/// A stored message, as a batch delivers it.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    pub subject: String,
    pub sequence: u64,
    /// When the stream stored it.
    pub time: DateTime<Utc>,
    /// Matching messages after this one (`Nats-Num-Pending`), when the server says.
    pub pending: Option<u64>,
    pub payload: Bytes,
}

/// What one request returned.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// In stream order.
    pub messages: Vec<StoredMessage>,
    /// True when the server said there is nothing more in this batch (`204 EOB` or `404`); false
    /// when the read stopped at the timeout or at what was asked for.
    pub ended: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum DirectBatchError {
    #[error("cannot read {stream}: {source}")]
    Nats { stream: String, source: Box<dyn std::error::Error + Send + Sync> },
    #[error("no answer from {stream} (no direct get responder, or not allowed)")]
    NoResponders { stream: String },
    #[error("{stream} refused the batch request: {status} {description}")]
    Refused { stream: String, status: u16, description: String },
    #[error("{stream} sent nothing within {timeout:?}")]
    Timeout { stream: String, timeout: Duration },
}

/// Sends `request` and collects its answer: until `204 EOB` or `404`, what was asked for, or
/// `timeout` since the request (a timeout after some messages returns them, `ended: false`).
pub async fn get_batch(
    client: &async_nats::Client,
    request: &BatchRequest,
    timeout: Duration,
) -> Result<Batch, DirectBatchError> {
    let stream = request.stream.clone();
    let nats_error =
        |source: Box<dyn std::error::Error + Send + Sync>| DirectBatchError::Nats { stream: stream.clone(), source };
    let inbox = client.new_inbox();
    // Subscribed before the request is sent: no answer can come before.
    let mut answers = client.subscribe(inbox.clone()).await.map_err(|e| nats_error(Box::new(e)))?;
    let subject = format!("$JS.API.DIRECT.GET.{}", request.stream);
    client.publish_with_reply(subject, inbox, request.payload()).await.map_err(|e| nats_error(Box::new(e)))?;
    let deadline = tokio::time::Instant::now() + timeout;
    let wanted = request.batch.clamp(1, MAX_BATCH);
    let mut batch = Batch::default();
    while batch.messages.len() < wanted {
        let Ok(Some(message)) = tokio::time::timeout_at(deadline, answers.next()).await else {
            if batch.messages.is_empty() {
                return Err(DirectBatchError::Timeout { stream: request.stream.clone(), timeout });
            }
            return Ok(batch);
        };
        match message.status {
            None | Some(StatusCode::OK) => batch.messages.extend(stored(message.headers.as_ref(), message.payload)),
            // 204 EOB ends a batch; 404: nothing (more) matches.
            Some(status) if status.as_u16() == 204 || status == StatusCode::NOT_FOUND => {
                batch.ended = true;
                return Ok(batch);
            }
            Some(StatusCode::NO_RESPONDERS) => {
                return Err(DirectBatchError::NoResponders { stream: request.stream.clone() });
            }
            Some(status) => {
                return Err(DirectBatchError::Refused {
                    stream: request.stream.clone(),
                    status: status.as_u16(),
                    description: message.description.unwrap_or_default(),
                });
            }
        }
    }
    Ok(batch)
}

/// The message with its stream headers; `None` when they are missing or unreadable (skipped).
fn stored(headers: Option<&HeaderMap>, payload: Bytes) -> Option<StoredMessage> {
    let headers = headers?;
    let text = |name: &str| headers.get(name).map(|value| value.as_str().to_string());
    let time = DateTime::parse_from_rfc3339(&text("Nats-Time-Stamp")?).ok()?.with_timezone(&Utc);
    Some(StoredMessage {
        subject: text("Nats-Subject")?,
        sequence: text("Nats-Sequence")?.parse().ok()?,
        time,
        pending: text("Nats-Num-Pending").and_then(|pending| pending.parse().ok()),
        payload,
    })
}
