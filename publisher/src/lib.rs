//! The publisher: polls several exchanges for BTC/USD, builds one consensus tick per round and
//! publishes it to JetStream with a de-duplicating message id.

pub mod config;
pub mod consensus;
pub mod error;
pub mod exchanges;
pub mod health;
pub mod metrics;
pub mod poller;
pub mod publish;
pub mod quote;
pub mod round;

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use btc_common::jetstream::{ensure_ticks_stream, retry_until_ready};
use btc_common::ops::WorkerOps;
use chrono::{DateTime, TimeZone, Utc};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use config::PublisherConfig;
pub use error::PublisherError;

/// Runs the publisher until `shutdown` is cancelled. The tick in flight is finished (acked or
/// given up) before it returns.
pub async fn run(config: PublisherConfig, shutdown: CancellationToken) -> Result<(), PublisherError> {
    if config.sources.is_empty() {
        return Err(PublisherError::NoSources);
    }
    let poller = poller::Poller::new(config.request_timeout)?;
    let client = config.nats.connect("publisher").await?;
    let metrics = Arc::new(metrics::PublisherMetrics::default());
    let ops = Arc::new(WorkerOps::new(metrics.clone(), client.clone(), "ticks stream not set up yet"));
    let (_, ops_server) = btc_common::ops::serve(config.ops_addr, ops.clone(), shutdown.clone())
        .await
        .map_err(|source| PublisherError::Bind { addr: config.ops_addr, source })?;
    let js = jetstream::new(client.clone());
    if retry_until_ready("ticks stream", &shutdown, || ensure_ticks_stream(&js, &config.stream)).await.is_none() {
        return Ok(());
    }
    ops.mark_started();
    let sources: Vec<&str> = config.sources.iter().map(|s| s.name()).collect();
    tracing::info!(?sources, poll_interval = ?config.poll_interval, quorum = config.quorum, "publisher started");

    let mut rounds = round::Rounds::new(&config, poller, metrics.clone());
    loop {
        let slot = next_slot(Utc::now(), config.poll_interval);
        let wait = (slot - Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
        }
        // One trace per round: the fetches, the consensus and the publish are its children, and the
        // aggregator continues it from the message headers.
        let span = tracing::info_span!("round", slot = %slot);
        async {
            if let Some(tick) = rounds.run(slot).await {
                publish::publish_tick(&js, &config.stream, &tick, config.publish_timeout, &metrics).await;
            }
        }
        .instrument(span)
        .await;
    }
    if let Err(error) = client.flush().await {
        tracing::warn!(%error, "could not flush NATS on shutdown");
    }
    let _ = ops_server.await;
    tracing::info!("publisher stopped");
    Ok(())
}

/// Start of the first slot after `now`. Slots are aligned to the unix epoch, so every publisher
/// replica with the same interval agrees on them, and so on the tick ids.
pub fn next_slot(now: DateTime<Utc>, interval: Duration) -> DateTime<Utc> {
    let step = (interval.as_millis() as i64).max(1);
    let next = (now.timestamp_millis().div_euclid(step) + 1) * step;
    Utc.timestamp_millis_opt(next).single().unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_aligned_to_the_epoch() {
        let at = |ms| Utc.timestamp_millis_opt(ms).single().expect("valid");
        assert_eq!(next_slot(at(1_000_250), Duration::from_secs(1)), at(1_001_000));
        assert_eq!(next_slot(at(1_001_000), Duration::from_secs(1)), at(1_002_000));
        assert_eq!(next_slot(at(1_000_250), Duration::from_millis(200)), at(1_000_400));
    }
}
