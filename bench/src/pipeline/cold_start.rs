//! Cold start: a fresh aggregator process (a pod restart: same consumer name) with a full
//! 10-minute window in the stream, from spawn to the first state in KV that is complete and right.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use async_nats::jetstream::kv;
use btc_contract::names::STATE_KEY;
use btc_contract::{Pair, PriceState};

use bench::stack::{Nats, START_TIMEOUT, Service, StateWatch};
use bench::ticks;

/// The aggregator's default window.
const WINDOW_SECONDS: u64 = 600;

/// Loads `ticks_per_second` x 600 s of ticks ending now, lets one aggregator compute the reference
/// state, stops it, deletes the state, and times a new aggregator from spawn to its first state
/// carrying the last tick; that state's averages must equal the reference bit for bit.
pub async fn measure(ticks_per_second: u64) -> anyhow::Result<Duration> {
    let count = ticks_per_second * WINDOW_SECONDS;
    let spacing_ms = 1_000 / i64::try_from(ticks_per_second).context("ticks per second")?;
    let nats = Nats::start(count).await?;
    let loaded = ticks::load(&nats.js, count, spacing_ms, &[Pair::seed()]).await?;
    let bucket = nats.state_bucket().await?;
    let reference = reference_state(&nats, &bucket, loaded.last_sequence).await?;
    // Without the key, whatever the new process writes is necessarily its own.
    bucket.delete(STATE_KEY).await.context("deleting the state key")?;

    let mut states = StateWatch::new(&bucket).await?;
    let spawned = Instant::now();
    let restarted = Service::aggregator(&nats).await;
    let state = states
        .first_matching("the restarted aggregator's state", START_TIMEOUT, |state| {
            state.stream_sequence >= loaded.last_sequence
        })
        .await
        .with_context(|| format!("aggregator log:\n{}", restarted.log()))?;
    let elapsed = spawned.elapsed();
    check_same_average(&state, &reference)?;
    Ok(elapsed)
}

/// The state a first aggregator writes once it has read every tick; it is then stopped (SIGTERM).
async fn reference_state(nats: &Nats, bucket: &kv::Store, last_sequence: u64) -> anyhow::Result<PriceState> {
    let mut states = StateWatch::new(bucket).await?;
    let mut first = Service::aggregator(nats).await;
    let state = states
        .first_matching("the reference state", START_TIMEOUT, |state| state.stream_sequence >= last_sequence)
        .await
        .with_context(|| format!("aggregator log:\n{}", first.log()))?;
    first.terminate()?;
    Ok(state)
}

fn check_same_average(state: &PriceState, reference: &PriceState) -> anyhow::Result<()> {
    let (got, want) = (&state.average, &reference.average);
    if state.stream_sequence != reference.stream_sequence
        || got.time_weighted != want.time_weighted
        || got.mean != want.mean
        || got.samples != want.samples
    {
        bail!(
            "after the restart the state differs from the reference: sequence {} vs {}, time-weighted {} vs {}, \
             mean {} vs {}, samples {} vs {}",
            state.stream_sequence,
            reference.stream_sequence,
            got.time_weighted,
            want.time_weighted,
            got.mean,
            want.mean,
            got.samples,
            want.samples
        );
    }
    Ok(())
}
