//! Following the durable consumer: pull a batch, apply it ([`crate::batch`], pure), write the
//! state, ack the batch.
//!
//! Anything that stops the pulls (NATS gone for a while, the consumer deleted or expired after
//! `inactive_threshold`, the stream deleted, created again or purged) ends [`follow`] with
//! [`Followed::Resync`]: the caller sets the stream up again and resumes exactly where the
//! aggregate stands, or rebuilds it when the stream no longer holds what it was built from. A
//! service stuck in a loop that can never succeed is what this avoids.

use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer, stream};
use btc_contract::names::STATE_BUCKET;
use btc_runtime::backoff::Backoff;
use futures::{FutureExt, StreamExt};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::aggregates::Aggregates;
use crate::batch::{Delivered, apply_batch};
use crate::candle_publisher::CandlePublisher;
use crate::checkpoints::Checkpoints;
use crate::config::AggregatorConfig;
use crate::metrics::AggregatorMetrics;
use crate::writer::{StateWriter, Written};

/// How often the stream's identity and first sequence are checked while following.
const STREAM_CHECK: Duration = Duration::from_secs(2);

/// How long a graceful stop waits for its last window checkpoints.
const LAST_CHECKPOINT_TIMEOUT: Duration = Duration::from_secs(2);

/// How following ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Followed {
    Shutdown,
    /// The pulls stopped, or the stream changed under the aggregate: set up again.
    Resync,
}

/// What `follow` needs besides the aggregate.
pub struct Follower<'a> {
    pub config: &'a AggregatorConfig,
    pub metrics: &'a AggregatorMetrics,
    pub shutdown: &'a CancellationToken,
    pub candles: &'a CandlePublisher,
}

impl Follower<'_> {
    /// Follows the durable consumer from the aggregates' position until shutdown or a resync.
    pub async fn follow(
        &self,
        stream: &stream::Stream,
        aggregate: &mut Aggregates,
        writer: &mut StateWriter,
        checkpoints: &mut Checkpoints,
    ) -> Followed {
        let mut messages = match self.pull(stream, aggregate.seen()).await {
            Ok(messages) => messages,
            Err(error) => {
                tracing::warn!(%error, consumer = %self.config.consumer_name, "cannot pull from the consumer");
                return Followed::Resync;
            }
        };
        tracing::info!(consumer = %self.config.consumer_name, from_sequence = aggregate.seen() + 1, "following the ticks stream");
        let mut check = tokio::time::interval(STREAM_CHECK);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let batch = match self.next_batch(stream, aggregate, &mut messages, &mut check).await {
                Ok(batch) => batch,
                Err(Followed::Shutdown) => {
                    // Every batch so far is written: the next start replays nothing.
                    checkpoints.write_now(aggregate, LAST_CHECKPOINT_TIMEOUT).await;
                    return Followed::Shutdown;
                }
                Err(followed) => return followed,
            };
            if !self.apply_and_write(&batch, aggregate, writer).await {
                // Shutdown before the write landed: leave the batch unacked, it is redelivered.
                return Followed::Shutdown;
            }
            for message in &batch {
                if let Err(error) = message.ack_with(AckKind::Ack).await {
                    tracing::warn!(%error, "ack failed; the tick will be redelivered and skipped");
                }
            }
            checkpoints.write_if_due(aggregate).await;
        }
    }

    /// Waits for the next batch, checking the stream's identity meanwhile; how following ends
    /// when no batch can come.
    async fn next_batch(
        &self,
        stream: &stream::Stream,
        aggregate: &Aggregates,
        messages: &mut consumer::pull::Stream,
        check: &mut tokio::time::Interval,
    ) -> Result<Vec<jetstream::Message>, Followed> {
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return Err(Followed::Shutdown),
                _ = check.tick() => {
                    if stream_changed(stream, aggregate).await {
                        return Err(Followed::Resync);
                    }
                }
                next = messages.next() => return match next {
                    Some(Ok(first)) => Ok(gather(first, messages, self.config.batch_size as usize)),
                    Some(Err(error)) => {
                        tracing::warn!(%error, "pulling ticks failed; setting up again");
                        Err(Followed::Resync)
                    }
                    None => Err(Followed::Resync),
                },
            }
        }
    }

    /// Opens the durable consumer, creating it to start right after `seen` if it is gone, and
    /// starts pulling. A consumer left with other filters (the pairs changed) keeps its position
    /// and gets this replica's filters: NATS 2.10 updates them in place.
    async fn pull(&self, stream: &stream::Stream, seen: u64) -> Result<consumer::pull::Stream, String> {
        let name = &self.config.consumer_name;
        let filters: Vec<String> = self.config.pairs.pairs().iter().map(|pair| pair.ticks_subject()).collect();
        let mut config = consumer::pull::Config {
            durable_name: Some(name.clone()),
            description: Some("price aggregator: rolling window of ticks".to_string()),
            deliver_policy: consumer::DeliverPolicy::ByStartSequence { start_sequence: seen + 1 },
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: Duration::from_secs(30),
            max_ack_pending: 10_000,
            // A replica gone for good leaves no consumer behind; one that comes back later, or
            // finds it expired after a long partition, creates it again from where it stands.
            inactive_threshold: Duration::from_secs(3600),
            ..Default::default()
        };
        // One filter goes in the request's subject, which the NATS permissions can match.
        match filters.as_slice() {
            [one] => config.filter_subject = one.clone(),
            _ => config.filter_subjects = filters.clone(),
        }
        let consumer: consumer::PullConsumer = match stream.get_consumer(name).await {
            Ok(existing) if filtered_alike(existing.cached_info(), &filters) => existing,
            Ok(existing) => {
                tracing::info!(consumer = %name, "the consumer's filters differ from PAIRS; updating them");
                config.deliver_policy = existing.cached_info().config.deliver_policy;
                stream.update_consumer(config).await.map_err(|e| e.to_string())?
            }
            Err(_) => stream.create_consumer(config).await.map_err(|e| e.to_string())?,
        };
        consumer
            .stream()
            .max_messages_per_batch(self.config.batch_size as usize)
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await
            .map_err(|e| e.to_string())
    }

    /// Applies a batch and writes the state if it changed. False if shutdown came first.
    async fn apply_and_write(
        &self,
        batch: &[jetstream::Message],
        aggregate: &mut Aggregates,
        writer: &mut StateWriter,
    ) -> bool {
        let consumer = &self.config.consumer_name;
        let delivered = batch.iter().filter_map(|message| {
            let info = message.info().ok()?;
            Some(Delivered {
                subject: message.subject.as_str(),
                sequence: info.stream_sequence,
                pending: info.pending,
                stored_at: info.published,
                payload: &message.payload,
                span: process_span(message, info.stream_sequence, consumer),
            })
        });
        let applied = apply_batch(aggregate, delivered);
        for outcome in &applied.outcomes {
            self.metrics.count_tick(*outcome);
        }
        if let Some(pending) = applied.pending {
            self.metrics.lag.set(i64::try_from(pending).unwrap_or(i64::MAX));
        }
        self.metrics.observe_window(aggregate);
        // Candles first: a state is written (and its ticks acked) only once the candles its ticks
        // closed are stored, so a crash in between replays them, and their ids drop the repeats.
        if !self.candles.publish_all(&applied.candles, self.shutdown, self.metrics).await {
            return false;
        }
        // The writes belong to the trace of the newest tick of the batch.
        let parent = applied.newest_span.as_ref().and_then(|s| s.id());
        write_until_done(writer, &applied.states, parent, self.shutdown, self.metrics).await
    }
}

/// The first message and whatever else has already arrived, without waiting, up to one batch.
fn gather(first: jetstream::Message, messages: &mut consumer::pull::Stream, limit: usize) -> Vec<jetstream::Message> {
    let mut batch = vec![first];
    while batch.len() < limit {
        match messages.next().now_or_never() {
            Some(Some(Ok(message))) => batch.push(message),
            _ => break,
        }
    }
    batch
}

/// True if the stream was created again, or no longer holds a tick the window holds (purged):
/// the aggregate must be rebuilt from what the stream holds now. An unreachable stream is not a
/// change; the pulls notice it.
async fn stream_changed(stream: &stream::Stream, aggregate: &Aggregates) -> bool {
    let mut stream = stream.clone();
    match stream.info().await {
        Ok(info) => !still_matches(info, aggregate),
        Err(_) => false,
    }
}

/// The stream is the one the aggregate was built from and still holds every tick it holds.
pub fn still_matches(info: &stream::Info, aggregate: &Aggregates) -> bool {
    let same_stream = aggregate.stream_created() == Some(info.created);
    let purged = aggregate.oldest_held_sequence().is_some_and(|oldest| info.state.first_sequence > oldest);
    if !same_stream {
        tracing::warn!(created = %info.created, "the ticks stream was created again; rebuilding the window from it");
    } else if purged {
        tracing::warn!(
            first_sequence = info.state.first_sequence,
            "ticks the window holds were purged from the stream; rebuilding the window"
        );
    }
    same_stream && !purged
}

/// The consumer delivers exactly the subjects of `filters`.
fn filtered_alike(info: &consumer::Info, filters: &[String]) -> bool {
    let mut current: Vec<&str> = info.config.filter_subjects.iter().map(String::as_str).collect();
    if !info.config.filter_subject.is_empty() {
        current.push(&info.config.filter_subject);
    }
    let mut wanted: Vec<&str> = filters.iter().map(String::as_str).collect();
    current.sort_unstable();
    wanted.sort_unstable();
    current == wanted
}

/// A consumer span for one tick, continuing the publisher's trace from the message headers; none
/// when traces are not exported (see `btc_runtime::telemetry::traces_exported`).
fn process_span(message: &jetstream::Message, sequence: u64, consumer: &str) -> tracing::Span {
    if !btc_runtime::telemetry::traces_exported() {
        return tracing::Span::none();
    }
    let span = tracing::info_span!(
        "process",
        otel.name = %format!("process {}", message.subject),
        otel.kind = "consumer",
        messaging.system = "nats",
        messaging.operation.r#type = "process",
        messaging.destination.name = message.subject.as_str(),
        messaging.consumer.group.name = consumer,
        messaging.message.id =
            message.headers.as_ref().and_then(|h| h.get("Nats-Msg-Id")).map(|v| v.as_str()).unwrap_or_default(),
        messaging.nats.stream_sequence = sequence,
    );
    if !span.is_disabled() {
        btc_runtime::trace_context::continue_from(&span, message.headers.as_ref());
    }
    span
}

/// Writes `states` (one per pair) at once until each lands or shutdown is requested; after a
/// failure the bucket is opened again (and created if it was deleted) and the ones that failed
/// are written again. Returns true once all are written.
pub async fn write_until_done(
    writer: &mut StateWriter,
    states: &[btc_contract::PriceState],
    parent: Option<tracing::Id>,
    shutdown: &CancellationToken,
    metrics: &AggregatorMetrics,
) -> bool {
    let mut backoff = Backoff::NATS;
    // Each failure is logged when it changes, not every retry (a bucket waited for may take long).
    let mut last_error = String::new();
    let mut unwritten: Vec<&btc_contract::PriceState> = states.iter().collect();
    loop {
        let writes = unwritten.iter().map(|state| writer.write(state).instrument(write_span(state, parent.clone())));
        let results = futures::future::join_all(writes).await;
        let mut failed = Vec::new();
        for (state, result) in unwritten.into_iter().zip(results) {
            let outcome = match result {
                Ok(Written::Stored { .. }) => "stored",
                Ok(Written::AlreadyNewer) => "already_newer",
                Err(error) => {
                    note_once(&mut last_error, "state write failed; retrying", &error);
                    failed.push(state);
                    "failed"
                }
            };
            metrics.state_writes.with_label_values(&[outcome]).inc();
        }
        if failed.is_empty() {
            return true;
        }
        unwritten = failed;
        if !backoff.wait(shutdown).await {
            return false;
        }
        if let Err(error) = writer.reopen().await {
            note_once(&mut last_error, "cannot open the state bucket", &error);
        }
    }
}

/// A producer span for one state write, under `parent`; none when traces are not exported.
fn write_span(state: &btc_contract::PriceState, parent: Option<tracing::Id>) -> tracing::Span {
    if !btc_runtime::telemetry::traces_exported() {
        return tracing::Span::none();
    }
    tracing::info_span!(
        parent: parent,
        "write state",
        otel.name = %format!("put $KV.{STATE_BUCKET}.{}", state.latest.pair),
        otel.kind = "producer",
        messaging.system = "nats",
        messaging.destination.name = %format!("$KV.{STATE_BUCKET}.{}", state.latest.pair),
        messaging.nats.stream_sequence = state.stream_sequence,
    )
}

/// Warns about `error` unless it is the one last warned about.
fn note_once(last: &mut String, message: &str, error: &dyn std::fmt::Display) {
    let text = error.to_string();
    if *last == text {
        tracing::debug!(%error, "{message}");
    } else {
        tracing::warn!(%error, "{message}");
        *last = text;
    }
}
