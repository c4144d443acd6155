//! The aggregator: a durable JetStream consumer on the ticks that keeps the rolling window and
//! writes the latest tick and the average to NATS KV.
//!
//! On start it rebuilds the window from the stream (so a restart shows no warm-up gap and equals
//! a run that never stopped), then follows its durable consumer. Ticks are applied by stream
//! sequence, so the overlap between replay and the consumer, and redeliveries, are never counted
//! twice. Each batch is applied, written to KV, and only then acked. Whatever stops the consumer
//! (NATS gone, the consumer or the stream deleted, a purge) leads back to the setup, which
//! resumes from where the aggregate stands or rebuilds it from the stream.

pub mod aggregates;
pub mod batch;
pub mod candle_publisher;
pub mod candles;
pub mod checkpoint;
pub mod checkpoints;
pub mod config;
pub mod error;
#[cfg(test)]
mod fixtures;
pub mod follow;
pub mod metrics;
pub mod replay;
pub mod state;
pub mod window;
pub mod writer;

use std::sync::Arc;

use async_nats::jetstream::{self, stream};
use btc_contract::names::TICKS_SUBJECTS;
use btc_runtime::backoff::Backoff;
use btc_runtime::jetstream::{Provision, retry_until_ready};
use btc_runtime::ops::WorkerOps;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use aggregates::Aggregates;
use candle_publisher::CandlePublisher;
use checkpoints::Checkpoints;
pub use config::AggregatorConfig;
pub use error::AggregatorError;
use follow::{Followed, Follower, write_until_done};
use metrics::AggregatorMetrics;
use writer::StateWriter;

/// Following this long counts as a success: the next resync starts with a short wait again.
const RESYNC_BACKOFF_RESET: std::time::Duration = std::time::Duration::from_secs(30);

/// How long a state write waits for its ack before it is retried (compare-and-set: a write that
/// landed late is found stored by the retry).
const STATE_WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// An aggregator that has started: its ops port's bound address and the task that runs it.
pub type Running = btc_runtime::running::RunningWorker<AggregatorError>;

/// Runs the aggregator until `shutdown` is cancelled.
pub async fn run(config: AggregatorConfig, shutdown: CancellationToken) -> Result<(), AggregatorError> {
    start(config, shutdown).await?.wait().await
}

/// Checks the configuration, connects to NATS (in the background: the client keeps retrying),
/// binds the ops port and starts the aggregator. Logs one `listening` line with `ops_addr`.
pub async fn start(config: AggregatorConfig, shutdown: CancellationToken) -> Result<Running, AggregatorError> {
    config.validate()?;
    let client = config.nats.connect("aggregator").await?;
    let metrics = Arc::new(AggregatorMetrics::new(&config.pairs.pairs()));
    let provision = Provision::new(config.stream.clone(), config.nats.when_missing());
    let ops = Arc::new(WorkerOps::new(
        metrics.clone(),
        client.clone(),
        "window not rebuilt from the stream yet",
        provision.clone(),
    ));
    let (ops_addr, ops_server) = btc_runtime::ops::serve(config.ops_addr, ops.clone(), shutdown.clone())
        .await
        .map_err(|source| AggregatorError::Bind { addr: config.ops_addr, source })?;
    tracing::info!(%ops_addr, "listening");
    let task = tokio::spawn(async move {
        aggregate(&config, &client, &metrics, &provision, &ops, &shutdown).await;
        if let Err(error) = client.flush().await {
            tracing::warn!(%error, "could not flush NATS on shutdown");
        }
        let _ = ops_server.await;
        tracing::info!("aggregator stopped");
        Ok(())
    });
    Ok(Running::new(ops_addr, task))
}

/// Rebuilds the window, then follows the ticks; after whatever stops the consumer, resumes or
/// rebuilds, until `shutdown`.
async fn aggregate(
    config: &AggregatorConfig,
    client: &async_nats::Client,
    metrics: &AggregatorMetrics,
    provision: &Provision,
    ops: &WorkerOps<AggregatorMetrics>,
    shutdown: &CancellationToken,
) {
    let js = jetstream::new(client.clone());
    // The frontends subscribe to the state key's subject, so a write to a deleted bucket gets no
    // "no responders" answer: it waits for its ack until this timeout before the bucket is
    // opened (or created) again.
    let state_js = jetstream::ContextBuilder::new().timeout(STATE_WRITE_TIMEOUT).build(client.clone());
    let Some(kv) = retry_until_ready("state bucket", shutdown, || provision.state_bucket(&state_js)).await else {
        return;
    };
    let mut writer = StateWriter::new(state_js, provision.clone(), kv);
    if retry_until_ready("candle streams", shutdown, || provision.candle_streams(&js)).await.is_none() {
        return;
    }
    let candles = CandlePublisher::new(js.clone(), provision.clone());
    let mut checkpoints = Checkpoints::new(client.clone(), provision.clone(), metrics);
    let follower = Follower { config, metrics, shutdown, candles: &candles };
    let mut aggregate = None;
    // Resyncs after a consumer stopped: NATS requests, hence the NATS cap.
    let mut backoff = Backoff::NATS;
    while let Some(stream) = retry_until_ready("ticks stream", shutdown, || provision.ticks_stream(&js)).await {
        let mut current = match aggregate.take() {
            Some(current) if follow::still_matches(stream.cached_info(), &current) => current,
            _ => match rebuild_until_done(&stream, &writer, &mut checkpoints, config, metrics, shutdown).await {
                Some(rebuilt) => rebuilt,
                None => break,
            },
        };
        if !candles.publish_all(&current.take_closed_candles(), shutdown, metrics).await {
            return;
        }
        if !write_until_done(&mut writer, &current.states(), None, shutdown, metrics).await {
            return;
        }
        ops.mark_started();
        let following = std::time::Instant::now();
        if follower.follow(&stream, &mut current, &mut writer, &mut checkpoints).await == Followed::Shutdown {
            break;
        }
        aggregate = Some(current);
        if following.elapsed() > RESYNC_BACKOFF_RESET {
            backoff.reset();
        }
        if !backoff.wait(shutdown).await {
            break;
        }
    }
}

/// Rebuilds the pairs' windows from the stream, retrying until it succeeds; `None` on shutdown.
async fn rebuild_until_done(
    stream: &stream::Stream,
    writer: &StateWriter,
    checkpoints: &mut Checkpoints,
    config: &AggregatorConfig,
    metrics: &AggregatorMetrics,
    shutdown: &CancellationToken,
) -> Option<Aggregates> {
    // Each attempt reads the stream from NATS: the NATS cap.
    let mut backoff = Backoff::NATS;
    loop {
        let started = std::time::Instant::now();
        let mut stored = Vec::new();
        for pair in config.pairs.pairs() {
            let (state, checkpoint) = (writer.stored(&pair).await, checkpoints.load(&pair).await);
            stored.push(replay::StoredPair { pair, state, checkpoint });
        }
        let rebuilt = replay::rebuild(stream, stored, config.rules(), metrics)
            .instrument(tracing::info_span!("replay", messaging.destination.name = TICKS_SUBJECTS))
            .await;
        match rebuilt {
            Ok(aggregate) => {
                metrics.observe_window(&aggregate);
                tracing::info!(up_to_sequence = aggregate.seen(), elapsed = ?started.elapsed(), "windows rebuilt from the stream");
                return Some(aggregate);
            }
            Err(error) => tracing::warn!(%error, "cannot rebuild the window from the stream; retrying"),
        }
        if !backoff.wait(shutdown).await {
            return None;
        }
    }
}
