//! Cold start: a fresh aggregator process (a pod restart: same consumer name) with a full
//! 10-minute window of every pair in the stream, from spawn until every pair's state in KV is
//! complete and right: once restoring the window checkpoints its predecessor wrote when it was
//! stopped, once without any (a first start, or checkpoints that are unusable: the whole window
//! replayed).

use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use async_nats::jetstream::{consumer, kv};
use btc_contract::names::{CHECKPOINT_BUCKET, TICKS_STREAM};
use btc_contract::{Pair, PriceState};
use futures::StreamExt;

use bench::stack::{Nats, START_TIMEOUT, Service};
use bench::ticks;

/// The aggregator's default window.
const WINDOW_SECONDS: u64 = 600;

/// What the aggregator logs once per pair restored from its checkpoint.
const RESTORED: &str = "window restored from its checkpoint";

/// Loads `ticks_per_second` x 600 s of ticks of each of `pairs` ending now (in turn), lets one
/// aggregator compute the reference states and stops it (SIGTERM: it writes its checkpoints),
/// then times two new aggregators from spawn until every pair's state carries its last tick: the
/// first restores the checkpoints, the second starts with none (they are deleted). The state keys
/// are deleted before each, so what they write is necessarily their own, and its averages must
/// equal the reference bit for bit.
pub async fn measure(ticks_per_second: u64, pairs: &[Pair]) -> anyhow::Result<ColdStart> {
    let per_pair = i64::try_from(ticks_per_second).context("ticks per second")?;
    let count = ticks_per_second * WINDOW_SECONDS * pairs.len() as u64;
    // In turn: each pair's own ticks are 1 / ticks_per_second apart.
    let spacing_us = 1_000_000 / per_pair / pairs.len() as i64;
    let nats = Nats::start(count).await?;
    let loaded = ticks::load(&nats.js, count, spacing_us, pairs).await?;
    // The pairs were stored in turn: the last of them holds the last sequence.
    let last_sequences: Vec<u64> = (0..pairs.len() as u64).rev().map(|behind| loaded.last_sequence - behind).collect();
    let floor = bare_replay(&nats, pairs, &last_sequences).await?;
    let bucket = nats.state_bucket().await?;
    let reference = {
        let mut watch = AllStates::watch(&bucket, pairs, &last_sequences).await?;
        let mut first = Service::aggregator_of(&nats, pairs).await;
        let states = watch.until_complete().await.with_context(|| format!("aggregator log:\n{}", first.log()))?;
        first.terminate()?;
        states
    };
    let start = Start { nats: &nats, bucket: &bucket, pairs, last_sequences: &last_sequences, reference: &reference };
    let restart = start.timed(pairs.len()).await.context("the restart from the checkpoints")?;
    let checkpoints = nats.js.get_key_value(CHECKPOINT_BUCKET).await.context("opening the checkpoint bucket")?;
    for pair in pairs {
        checkpoints.delete(pair.state_key()).await.context("deleting a checkpoint")?;
    }
    let replay = start.timed(0).await.context("the start without checkpoints")?;
    Ok(ColdStart { restart, replay, floor })
}

/// A measured cold start, and its floor in the same run.
pub struct ColdStart {
    /// From the aggregator's spawn to every pair's right state, restoring the checkpoints.
    pub restart: Duration,
    /// The same without checkpoints: every pair's window replayed from the stream.
    pub replay: Duration,
    /// Bare ordered consumers (one per pair, at once, as the aggregator's replay reads) reading
    /// the same ticks and nothing else: no process start, no decoding, no window, no write.
    pub floor: Duration,
}

/// What every timed start shares.
struct Start<'a> {
    nats: &'a Nats,
    bucket: &'a kv::Store,
    pairs: &'a [Pair],
    last_sequences: &'a [u64],
    reference: &'a [PriceState],
}

impl Start<'_> {
    /// Deletes the states, spawns an aggregator and times it until every pair's state is the
    /// reference's; it must have restored `restored` pairs from their checkpoints. Stopped with
    /// SIGTERM afterwards.
    async fn timed(&self, restored: usize) -> anyhow::Result<Duration> {
        for pair in self.pairs {
            self.bucket.delete(pair.state_key()).await.context("deleting a state key")?;
        }
        let mut watch = AllStates::watch(self.bucket, self.pairs, self.last_sequences).await?;
        let spawned = Instant::now();
        let mut aggregator = Service::aggregator_of(self.nats, self.pairs).await;
        let states = watch.until_complete().await.with_context(|| format!("aggregator log:\n{}", aggregator.log()))?;
        let elapsed = spawned.elapsed();
        for (state, reference) in states.iter().zip(self.reference) {
            check_same_average(state, reference)?;
        }
        let log = aggregator.log();
        aggregator.terminate()?;
        if log.matches(RESTORED).count() != restored {
            bail!("expected {restored} pair(s) restored from their checkpoints; aggregator log:\n{log}");
        }
        Ok(elapsed)
    }
}

/// Reads every tick of each of `pairs` with its own ordered consumer, all at once, until each has
/// read its pair's last sequence; the time that took.
async fn bare_replay(nats: &Nats, pairs: &[Pair], last_sequences: &[u64]) -> anyhow::Result<Duration> {
    let stream = nats.js.get_stream(TICKS_STREAM).await.context("opening the ticks stream")?;
    let started = Instant::now();
    let reads = pairs.iter().zip(last_sequences).map(|(pair, &last)| {
        let stream = stream.clone();
        async move {
            let ordered = stream
                .create_consumer(consumer::pull::OrderedConfig {
                    filter_subject: pair.ticks_subject(),
                    ..Default::default()
                })
                .await
                .context("creating an ordered consumer")?;
            let mut messages = ordered.messages().await.context("reading with an ordered consumer")?;
            while let Some(message) = tokio::time::timeout(START_TIMEOUT, messages.next()).await.context("stalled")? {
                let message = message.map_err(|error| anyhow!("reading a tick: {error}"))?;
                let info = message.info().map_err(|error| anyhow!("a message's metadata: {error}"))?;
                if info.stream_sequence >= last {
                    return Ok(());
                }
            }
            bail!("the ordered consumer of {pair} ended early")
        }
    });
    futures::future::try_join_all(reads).await?;
    Ok(started.elapsed())
}

/// A watch on every pair's state key, waiting for each state to carry its pair's last tick.
struct AllStates {
    entries: kv::Watch,
    keys: Vec<String>,
    last_sequences: Vec<u64>,
}

impl AllStates {
    async fn watch(bucket: &kv::Store, pairs: &[Pair], last_sequences: &[u64]) -> anyhow::Result<Self> {
        let keys: Vec<String> = pairs.iter().map(|pair| pair.state_key().to_string()).collect();
        Ok(Self {
            entries: bucket.watch_many(&keys).await.context("watching the state keys")?,
            keys,
            last_sequences: last_sequences.to_vec(),
        })
    }

    /// The pairs' states, in order, once each carries its pair's last tick.
    async fn until_complete(&mut self) -> anyhow::Result<Vec<PriceState>> {
        let mut states: Vec<Option<PriceState>> = vec![None; self.keys.len()];
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        while states.iter().any(Option::is_none) {
            let entry = tokio::time::timeout_at(deadline, self.entries.next())
                .await
                .context("timed out waiting for every pair's state")?
                .context("the state watch ended")?
                .map_err(|error| anyhow!("reading the state watch: {error}"))?;
            let Some(index) = self.keys.iter().position(|key| *key == entry.key) else { continue };
            if entry.operation != kv::Operation::Put {
                continue;
            }
            let state = PriceState::decode(&entry.value).context("decoding a state from KV")?;
            if state.stream_sequence >= self.last_sequences[index] {
                states[index] = Some(state);
            }
        }
        Ok(states.into_iter().flatten().collect())
    }
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
