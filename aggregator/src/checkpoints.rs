//! Reading and writing the window checkpoints ([`crate::checkpoint`]) in the bucket
//! `window_checkpoint`, one key per pair.
//!
//! Checkpoints only make restarts short, so nothing waits for them: a bucket that is missing
//! (the setup step has not made it yet) or a write that fails is logged and tried again at the
//! next checkpoint, and the aggregator goes on without. Any checkpoint is a valid place to
//! restart from, so two replicas writing the same key need no compare-and-set: whichever lands
//! last is used. Writes run in a task of their own, one round at a time, off the path of the
//! ticks.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};
use btc_contract::Pair;
use btc_contract::names::CHECKPOINT_BUCKET;
use btc_runtime::jetstream::Provision;
use btc_runtime::metrics::IntCounterVec;
use tokio::task::JoinHandle;

use crate::aggregates::Aggregates;
use crate::checkpoint::Checkpoint;
use crate::metrics::AggregatorMetrics;

/// How often the pairs that moved are checkpointed: what a crash leaves to replay (a graceful
/// stop checkpoints on its way out).
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(10);

/// The largest checkpoint written: NATS's default 1 MiB message, less room for the headers.
const MAX_CHECKPOINT_BYTES: usize = 1_000_000;

pub struct Checkpoints {
    js: jetstream::Context,
    provision: Provision,
    bucket: Option<kv::Store>,
    /// When the bucket was last tried and could not be opened: tried again only after
    /// [`CHECKPOINT_INTERVAL`], so a start does not wait on it once per pair.
    unavailable_since: Option<Instant>,
    /// When the last round started; `None` before the first.
    last_round: Option<Instant>,
    /// Each pair's applied sequence at the last round, to skip the pairs that did not move.
    written: Vec<(Pair, u64)>,
    /// `btc_aggregator_checkpoint_writes_total`, by result.
    writes: IntCounterVec,
    /// The round being written: true once it wrote every checkpoint.
    writing: Option<JoinHandle<bool>>,
}

impl Checkpoints {
    pub fn new(js: jetstream::Context, provision: Provision, metrics: &AggregatorMetrics) -> Self {
        let writes = metrics.checkpoint_writes.clone();
        Self {
            js,
            provision,
            bucket: None,
            unavailable_since: None,
            last_round: None,
            written: Vec::new(),
            writes,
            writing: None,
        }
    }

    /// The checkpoint stored for `pair`, if there is a readable one.
    pub async fn load(&mut self, pair: &Pair) -> Option<Checkpoint> {
        let bucket = self.bucket().await?;
        let entry = match bucket.get(pair.state_key()).await {
            Ok(entry) => entry?,
            Err(error) => {
                tracing::warn!(%error, pair = pair.as_str(), "cannot read the window checkpoint; replaying the window");
                return None;
            }
        };
        Checkpoint::decode(&entry)
            .inspect_err(|error| tracing::warn!(%error, pair = pair.as_str(), "replaying the window"))
            .ok()
    }

    /// Starts a round of writes if [`CHECKPOINT_INTERVAL`] has passed since the last one began and
    /// that one is done.
    pub async fn write_if_due(&mut self, aggregates: &Aggregates) {
        let due = self.last_round.is_none_or(|last| last.elapsed() >= CHECKPOINT_INTERVAL);
        if !due || self.writing.as_ref().is_some_and(|writing| !writing.is_finished()) {
            return;
        }
        if let Some(done) = self.writing.take() {
            self.after(done.await.unwrap_or(false));
        }
        self.writing = self.round(aggregates).await;
    }

    /// After a round that failed, every pair is written again, to a bucket opened again.
    fn after(&mut self, wrote_all: bool) {
        if !wrote_all {
            self.written.clear();
            self.bucket = None;
        }
    }

    /// Writes the pairs that moved since the last round and waits for it, up to `timeout`: on
    /// the way out of a graceful stop, so that the next start replays nothing.
    pub async fn write_now(&mut self, aggregates: &Aggregates, timeout: Duration) {
        let waited = tokio::time::timeout(timeout, async {
            if let Some(writing) = self.writing.take() {
                self.after(writing.await.unwrap_or(false));
            }
            if let Some(writing) = self.round(aggregates).await {
                let _ = writing.await;
            }
        });
        if waited.await.is_err() {
            tracing::warn!(?timeout, "the last window checkpoints were not written in time");
        }
    }

    /// Takes the checkpoints of the pairs that moved and spawns their writes.
    async fn round(&mut self, aggregates: &Aggregates) -> Option<JoinHandle<bool>> {
        self.last_round = Some(Instant::now());
        let moved: Vec<Checkpoint> = aggregates
            .iter()
            .filter(|aggregate| !self.written.contains(&(aggregate.pair().clone(), aggregate.applied_sequence())))
            .map(|aggregate| aggregate.checkpoint())
            .collect();
        if moved.is_empty() {
            return None;
        }
        let bucket = self.bucket().await?.clone();
        self.written =
            aggregates.iter().map(|aggregate| (aggregate.pair().clone(), aggregate.applied_sequence())).collect();
        Some(tokio::spawn(write(bucket, moved, self.writes.clone())))
    }

    /// The bucket, opened (or, for a service that may, created) on first use and after a failure.
    async fn bucket(&mut self) -> Option<&kv::Store> {
        let tried_lately = self.unavailable_since.is_some_and(|since| since.elapsed() < CHECKPOINT_INTERVAL);
        if self.bucket.is_none() && !tried_lately {
            match self.provision.checkpoint_bucket(&self.js).await {
                Ok(bucket) => (self.bucket, self.unavailable_since) = (Some(bucket), None),
                Err(error) => {
                    tracing::warn!(%error, "no window checkpoints for now: a restart replays the window");
                    self.unavailable_since = Some(Instant::now());
                }
            }
        }
        self.bucket.as_ref()
    }
}

/// Encodes and writes `checkpoints`, each to its pair's key; true if every write landed.
async fn write(bucket: kv::Store, checkpoints: Vec<Checkpoint>, writes: IntCounterVec) -> bool {
    let mut wrote_all = true;
    for checkpoint in checkpoints {
        let pair = checkpoint.pair.clone();
        let result = match checkpoint.encode() {
            Ok(bytes) if bytes.len() > MAX_CHECKPOINT_BYTES => {
                tracing::warn!(
                    pair,
                    bytes = bytes.len(),
                    "window checkpoint too large for a NATS message; not written"
                );
                "too_large"
            }
            Ok(bytes) => match bucket.put(&pair, bytes.into()).await {
                Ok(_) => "stored",
                Err(error) => {
                    tracing::warn!(pair, %error, bucket = CHECKPOINT_BUCKET, "window checkpoint not written; trying again at the next one");
                    wrote_all = false;
                    "failed"
                }
            },
            Err(error) => {
                tracing::warn!(pair, %error, "window checkpoint not written");
                "failed"
            }
        };
        writes.with_label_values(&[result]).inc();
    }
    wrote_all
}
