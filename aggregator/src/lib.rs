//! The aggregator: a durable JetStream consumer on the ticks that keeps the rolling window and
//! writes the latest tick and the average to NATS KV.
//!
//! On start it first replays the last window of ticks from the stream (so a restart shows no
//! warm-up gap), then follows its durable consumer. Ticks are applied by stream sequence, so the
//! overlap between replay and the consumer, and redeliveries, are never counted twice. Each batch
//! is applied, written to KV, and only then acked.

pub mod config;
pub mod error;
pub mod metrics;
pub mod state;
pub mod window;

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer, stream};
use btc_common::Tick;
use btc_common::jetstream::{ensure_state_bucket, ensure_ticks_stream, retry_until_ready};
use btc_common::names::TICK_SUBJECT;
use btc_common::ops::WorkerOps;
use chrono::Utc;
use futures::{FutureExt, StreamExt};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use config::AggregatorConfig;
pub use error::AggregatorError;
use metrics::{AggregatorMetrics, TickOutcome};
use state::{Aggregate, StateWriter, Written};

/// How much older than the window replay starts, to find the tick that held across its edge.
const REPLAY_MARGIN: Duration = Duration::from_secs(60);

/// Runs the aggregator until `shutdown` is cancelled.
pub async fn run(config: AggregatorConfig, shutdown: CancellationToken) -> Result<(), AggregatorError> {
    let client = config.nats.connect("aggregator").await?;
    let metrics = Arc::new(AggregatorMetrics::default());
    let ops = Arc::new(WorkerOps::new(metrics.clone(), client.clone(), "window not rebuilt from the stream yet"));
    let (_, ops_server) = btc_common::ops::serve(config.ops_addr, ops.clone(), shutdown.clone())
        .await
        .map_err(|source| AggregatorError::Bind { addr: config.ops_addr, source })?;
    let js = jetstream::new(client.clone());
    let Some(stream) = retry_until_ready("ticks stream", &shutdown, || ensure_ticks_stream(&js, &config.stream)).await
    else {
        return Ok(());
    };
    let Some(kv) = retry_until_ready("state bucket", &shutdown, || ensure_state_bucket(&js, &config.stream)).await
    else {
        return Ok(());
    };

    let window_seconds = config.window.as_secs() as u32;
    let mut aggregate = Aggregate::new(config.window);
    let mut writer = StateWriter::new(kv);
    let since = Utc::now() - config.window - REPLAY_MARGIN;

    let started = std::time::Instant::now();
    let replayed = replay(&stream, &mut aggregate, since, &config, &metrics)
        .instrument(tracing::info_span!("replay", messaging.destination.name = TICK_SUBJECT))
        .await?;
    tracing::info!(ticks = replayed, up_to_sequence = aggregate.applied_sequence(), elapsed = ?started.elapsed(), "window rebuilt from the stream");
    if let Some(state) = aggregate.state(window_seconds) {
        write_until_done(&mut writer, &state, &shutdown, &metrics).await;
    }
    ops.mark_started();

    let consumer_config = consumer::pull::Config {
        durable_name: Some(config.consumer_name.clone()),
        description: Some("BTC aggregator: rolling window of ticks".to_string()),
        deliver_policy: consumer::DeliverPolicy::ByStartTime { start_time: since },
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: Duration::from_secs(30),
        filter_subject: TICK_SUBJECT.to_string(),
        max_ack_pending: 10_000,
        // A replica that is gone for good leaves no consumer behind; one that comes back after
        // this long replays the window anyway.
        inactive_threshold: Duration::from_secs(3600),
        ..Default::default()
    };
    let Some(consumer) = retry_until_ready("aggregator consumer", &shutdown, || async {
        stream.get_or_create_consumer(&config.consumer_name, consumer_config.clone()).await.map_err(|e| {
            btc_common::CommonError::Stream {
                stream: format!("{} (consumer {})", btc_common::names::TICKS_STREAM, config.consumer_name),
                reason: e.to_string(),
            }
        })
    })
    .await
    else {
        return Ok(());
    };
    let consumer: consumer::PullConsumer = consumer;
    tracing::info!(consumer = %config.consumer_name, "following the ticks stream");

    follow(&consumer, &mut aggregate, &mut writer, &config, &shutdown, &metrics).await;
    if let Err(error) = client.flush().await {
        tracing::warn!(%error, "could not flush NATS on shutdown");
    }
    let _ = ops_server.await;
    tracing::info!("aggregator stopped");
    Ok(())
}

/// Rebuilds the window from the ticks stored since `since`, up to the stream's last message at
/// start. Returns the number of ticks read.
async fn replay(
    stream: &stream::Stream,
    aggregate: &mut Aggregate,
    since: chrono::DateTime<Utc>,
    config: &AggregatorConfig,
    metrics: &AggregatorMetrics,
) -> Result<u64, AggregatorError> {
    let mut stream = stream.clone();
    let info = stream.info().await.map_err(|e| AggregatorError::Stream(e.to_string()))?;
    let target = info.state.last_sequence;
    if info.state.messages == 0 || info.state.last_timestamp < since {
        aggregate.skip_to(target);
        return Ok(0);
    }
    let ordered = stream
        .create_consumer(consumer::pull::OrderedConfig {
            deliver_policy: consumer::DeliverPolicy::ByStartTime { start_time: since },
            filter_subject: TICK_SUBJECT.to_string(),
            ..Default::default()
        })
        .await
        .map_err(|e| AggregatorError::Stream(e.to_string()))?;
    let mut messages = ordered.messages().await.map_err(|e| AggregatorError::Stream(e.to_string()))?;
    let mut read = 0u64;
    loop {
        let next = tokio::time::timeout(Duration::from_secs(10), messages.next()).await;
        let message = match next {
            Ok(Some(Ok(message))) => message,
            Ok(Some(Err(error))) => return Err(AggregatorError::Stream(error.to_string())),
            Ok(None) => break,
            Err(_) => return Err(AggregatorError::Stream("replay stalled for 10 s".to_string())),
        };
        let Ok(info) = message.info() else { continue };
        let (sequence, pending) = (info.stream_sequence, info.pending);
        read += 1;
        let outcome = apply(aggregate, sequence, &message.payload, Utc::now() + config.max_clock_skew);
        metrics.count_tick(outcome);
        if sequence >= target || pending == 0 {
            break;
        }
    }
    aggregate.skip_to(target);
    update_window_gauges(aggregate, metrics);
    Ok(read)
}

/// Follows the durable consumer until shutdown: apply a batch, write the state, ack the batch.
async fn follow(
    consumer: &consumer::PullConsumer,
    aggregate: &mut Aggregate,
    writer: &mut StateWriter,
    config: &AggregatorConfig,
    shutdown: &CancellationToken,
    metrics: &AggregatorMetrics,
) {
    let window_seconds = config.window.as_secs() as u32;
    let mut retry_delay = Duration::from_millis(100);
    'reconnect: while !shutdown.is_cancelled() {
        let messages = consumer
            .stream()
            .max_messages_per_batch(config.batch_size as usize)
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await;
        let mut messages = match messages {
            Ok(messages) => messages,
            Err(error) => {
                tracing::warn!(%error, retry_in = ?retry_delay, "cannot pull from the consumer");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(retry_delay) => {}
                }
                retry_delay = (retry_delay * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        retry_delay = Duration::from_millis(100);
        loop {
            let first = tokio::select! {
                _ = shutdown.cancelled() => return,
                next = messages.next() => next,
            };
            let mut batch = Vec::new();
            match first {
                Some(Ok(message)) => batch.push(message),
                Some(Err(error)) => {
                    tracing::warn!(%error, "error while pulling ticks; continuing");
                    continue;
                }
                None => continue 'reconnect,
            }
            // Take whatever else has already arrived, without waiting, up to one batch.
            while batch.len() < config.batch_size as usize {
                match messages.next().now_or_never() {
                    Some(Some(Ok(message))) => batch.push(message),
                    _ => break,
                }
            }
            let before = aggregate.applied_sequence();
            let mut last_span = None;
            let latest_allowed = Utc::now() + config.max_clock_skew;
            for message in &batch {
                let Ok(info) = message.info() else { continue };
                let sequence = info.stream_sequence;
                metrics.lag.set(i64::try_from(info.pending).unwrap_or(i64::MAX));
                let span = process_span(message, sequence, &config.consumer_name);
                let outcome = span.in_scope(|| apply(aggregate, sequence, &message.payload, latest_allowed));
                metrics.count_tick(outcome);
                last_span = Some(span);
            }
            update_window_gauges(aggregate, metrics);
            if aggregate.applied_sequence() > before
                && let Some(state) = aggregate.state(window_seconds)
            {
                // The write belongs to the trace of the newest tick of the batch.
                let write_span = tracing::info_span!(
                    parent: last_span.as_ref().and_then(|s| s.id()),
                    "write state",
                    otel.name = %format!("put $KV.{}.{}", btc_common::names::STATE_BUCKET, btc_common::names::STATE_KEY),
                    otel.kind = "producer",
                    messaging.system = "nats",
                    messaging.destination.name = %format!("$KV.{}.{}", btc_common::names::STATE_BUCKET, btc_common::names::STATE_KEY),
                    messaging.nats.stream_sequence = state.stream_sequence,
                );
                if !write_until_done(writer, &state, shutdown, metrics).instrument(write_span).await {
                    // Shutdown before the write landed: leave the batch unacked, it is redelivered.
                    return;
                }
            }
            for message in &batch {
                if let Err(error) = message.ack_with(AckKind::Ack).await {
                    tracing::warn!(%error, "ack failed; the tick will be redelivered and skipped");
                }
            }
        }
    }
}

/// A consumer span for one tick, continuing the publisher's trace from the message headers
/// (nothing to build when tracing is off: the span is disabled and its fields never evaluated).
fn process_span(message: &jetstream::Message, sequence: u64, consumer: &str) -> tracing::Span {
    let span = tracing::info_span!(
        "process",
        otel.name = %format!("process {TICK_SUBJECT}"),
        otel.kind = "consumer",
        messaging.system = "nats",
        messaging.operation.r#type = "process",
        messaging.destination.name = TICK_SUBJECT,
        messaging.consumer.group.name = consumer,
        messaging.message.id =
            message.headers.as_ref().and_then(|h| h.get("Nats-Msg-Id")).map(|v| v.as_str()).unwrap_or_default(),
        messaging.nats.stream_sequence = sequence,
    );
    if !span.is_disabled() {
        btc_common::trace_context::continue_from(&span, message.headers.as_ref());
    }
    span
}

/// Reads and applies the tick stored at `sequence`. Undecodable ticks and ticks stamped after
/// `latest_allowed` (a clock far in the future would push the window's end forward and evict real
/// prices) are skipped.
fn apply(
    aggregate: &mut Aggregate,
    sequence: u64,
    payload: &[u8],
    latest_allowed: chrono::DateTime<Utc>,
) -> TickOutcome {
    let tick = match Tick::decode(payload) {
        Ok(tick) if tick.time > latest_allowed => {
            tracing::warn!(sequence, time = %tick.time, "tick is stamped in the future; ignored");
            None
        }
        Ok(tick) => Some(tick),
        Err(error) => {
            tracing::warn!(sequence, %error, "unreadable tick; ignored");
            None
        }
    };
    match tick {
        None => {
            aggregate.skip_to(sequence);
            TickOutcome::Invalid
        }
        Some(tick) => match aggregate.apply(sequence, tick) {
            None => TickOutcome::AlreadyApplied,
            Some(applied) => TickOutcome::Applied(applied),
        },
    }
}

/// The window's gauges, once per batch rather than per tick.
fn update_window_gauges(aggregate: &Aggregate, metrics: &AggregatorMetrics) {
    if let Some(newest) = aggregate.newest_time_ms() {
        metrics.newest_tick_timestamp.set(newest as f64 / 1000.0);
    }
    metrics.window_samples.set(i64::from(aggregate.samples()));
}

/// Writes the state until it lands or shutdown is requested. Returns true once written.
async fn write_until_done(
    writer: &mut StateWriter,
    state: &btc_common::PriceState,
    shutdown: &CancellationToken,
    metrics: &AggregatorMetrics,
) -> bool {
    let mut delay = Duration::from_millis(100);
    loop {
        match writer.write(state).await {
            Ok(written) => {
                let result = match written {
                    Written::Stored { .. } => "stored",
                    Written::AlreadyNewer => "already_newer",
                };
                metrics.state_writes.with_label_values(&[result]).inc();
                tracing::debug!(?written, sequence = state.stream_sequence, "state written");
                return true;
            }
            Err(error) => {
                metrics.state_writes.with_label_values(&["failed"]).inc();
                tracing::warn!(%error, retry_in = ?delay, "state write failed; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return false,
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}
