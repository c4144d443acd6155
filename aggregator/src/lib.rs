//! The aggregator: a durable JetStream consumer on the ticks that keeps the rolling window and
//! writes the latest tick and the average to NATS KV.
//!
//! On start it first replays the last window of ticks from the stream (so a restart shows no
//! warm-up gap), then follows its durable consumer. Ticks are applied by stream sequence, so the
//! overlap between replay and the consumer, and redeliveries, are never counted twice. Each batch
//! is applied, written to KV, and only then acked.

pub mod config;
pub mod error;
pub mod state;
pub mod window;

use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer, stream};
use btc_common::Tick;
use btc_common::jetstream::{ensure_state_bucket, ensure_ticks_stream, retry_until_ready};
use btc_common::names::TICK_SUBJECT;
use chrono::Utc;
use futures::{FutureExt, StreamExt};
use tokio_util::sync::CancellationToken;

pub use config::AggregatorConfig;
pub use error::AggregatorError;
use state::{Aggregate, StateWriter};

/// How much older than the window replay starts, to find the tick that held across its edge.
const REPLAY_MARGIN: Duration = Duration::from_secs(60);

/// Runs the aggregator until `shutdown` is cancelled.
pub async fn run(config: AggregatorConfig, shutdown: CancellationToken) -> Result<(), AggregatorError> {
    let client = config.nats.connect("aggregator").await?;
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
    let replayed = replay(&stream, &mut aggregate, since, &config).await?;
    tracing::info!(ticks = replayed, up_to_sequence = aggregate.applied_sequence(), elapsed = ?started.elapsed(), "window rebuilt from the stream");
    if let Some(state) = aggregate.state(window_seconds) {
        write_until_done(&mut writer, &state, &shutdown).await;
    }

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

    follow(&consumer, &mut aggregate, &mut writer, &config, &shutdown).await;
    if let Err(error) = client.flush().await {
        tracing::warn!(%error, "could not flush NATS on shutdown");
    }
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
        if let Some(tick) = decode(&message.payload, sequence, config) {
            aggregate.apply(sequence, tick);
        }
        if sequence >= target || pending == 0 {
            break;
        }
    }
    aggregate.skip_to(target);
    Ok(read)
}

/// Follows the durable consumer until shutdown: apply a batch, write the state, ack the batch.
async fn follow(
    consumer: &consumer::PullConsumer,
    aggregate: &mut Aggregate,
    writer: &mut StateWriter,
    config: &AggregatorConfig,
    shutdown: &CancellationToken,
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
            for message in &batch {
                let Ok(info) = message.info() else { continue };
                let sequence = info.stream_sequence;
                if let Some(tick) = decode(&message.payload, sequence, config) {
                    aggregate.apply(sequence, tick);
                } else {
                    aggregate.skip_to(sequence);
                }
            }
            if aggregate.applied_sequence() > before
                && let Some(state) = aggregate.state(window_seconds)
                && !write_until_done(writer, &state, shutdown).await
            {
                // Shutdown before the write landed: leave the batch unacked, it is redelivered.
                return;
            }
            for message in &batch {
                if let Err(error) = message.ack_with(AckKind::Ack).await {
                    tracing::warn!(%error, "ack failed; the tick will be redelivered and skipped");
                }
            }
        }
    }
}

/// Reads a tick, refusing undecodable ones and ticks from a clock far in the future (they would
/// push the window's end forward and evict real prices).
fn decode(payload: &[u8], sequence: u64, config: &AggregatorConfig) -> Option<Tick> {
    match Tick::decode(payload) {
        Ok(tick) if tick.time > Utc::now() + config.max_clock_skew => {
            tracing::warn!(sequence, time = %tick.time, "tick is stamped in the future; ignored");
            None
        }
        Ok(tick) => Some(tick),
        Err(error) => {
            tracing::warn!(sequence, %error, "unreadable tick; ignored");
            None
        }
    }
}

/// Writes the state until it lands or shutdown is requested. Returns true once written.
async fn write_until_done(
    writer: &mut StateWriter,
    state: &btc_common::PriceState,
    shutdown: &CancellationToken,
) -> bool {
    let mut delay = Duration::from_millis(100);
    loop {
        match writer.write(state).await {
            Ok(written) => {
                tracing::debug!(?written, sequence = state.stream_sequence, "state written");
                return true;
            }
            Err(error) => {
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
