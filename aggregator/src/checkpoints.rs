//! Reading and writing the window checkpoints ([`crate::checkpoint`]) in the bucket
//! `window_checkpoint`, one key per pair.
//!
//! Checkpoints only make restarts short, so nothing waits for them: a bucket that is missing
//! (the setup step has not made it yet, or NATS's permissions predate it) or a write that fails
//! is logged and tried again at the next checkpoint, and the aggregator goes on without. Any
//! checkpoint is a valid place to restart from, so two replicas writing the same key need no
//! compare-and-set: whichever lands last is used. A round's writes, and the opening of the bucket
//! they need, run in a task of their own, off the path of the ticks.

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
use crate::state::Aggregate;

/// How often the pairs that moved are checkpointed: what a crash leaves to replay (a graceful
/// stop checkpoints on its way out).
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(10);

/// How long a request about checkpoints waits for its answer: a start reads them before it
/// replays, and a bucket it may not open (permissions that predate it) answers nothing.
const CHECKPOINT_TIMEOUT: Duration = Duration::from_secs(2);

/// The largest checkpoint written: NATS's default 1 MiB message, less room for the headers.
const MAX_CHECKPOINT_BYTES: usize = 1_000_000;

/// The fewest bytes a retained tick takes in a checkpoint (a byte for each of its time, price,
/// sequence and held time differences): a window of more ticks than fit at this size is not even
/// taken (250,000, over 400 ticks a second for 10 minutes).
const MIN_BYTES_PER_TICK: usize = 4;

pub struct Checkpoints {
    bucket: Bucket,
    /// When the last round started; `None` before the first.
    last_round: Option<Instant>,
    /// Each pair's applied sequence at the last round ([`Aggregates::positions`], in the configured
    /// order), to skip the pairs that did not move; empty: write every pair.
    written: Vec<u64>,
    /// `btc_aggregator_checkpoint_writes_total`, by result.
    writes: IntCounterVec,
    /// The round being written; it gives the bucket back if every write landed.
    writing: Option<JoinHandle<Bucket>>,
}

impl Checkpoints {
    pub fn new(client: async_nats::Client, provision: Provision, metrics: &AggregatorMetrics) -> Self {
        let js = jetstream::ContextBuilder::new().timeout(CHECKPOINT_TIMEOUT).build(client);
        Self {
            bucket: Bucket { js, provision, store: None, unavailable_since: None },
            last_round: None,
            written: Vec::new(),
            writes: metrics.checkpoint_writes.clone(),
            writing: None,
        }
    }

    /// The checkpoint stored for `pair`, if there is a readable one.
    pub async fn load(&mut self, pair: &Pair) -> Option<Checkpoint> {
        self.collect_round().await;
        let bucket = self.bucket.open().await?;
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
        if due && self.writing.as_ref().is_none_or(JoinHandle::is_finished) {
            self.collect_round().await;
            self.writing = self.round(aggregates);
        }
    }

    /// Writes the pairs that moved since the last round and waits for it, up to `timeout`: on
    /// the way out of a graceful stop, so that the next start replays nothing.
    pub async fn write_now(&mut self, aggregates: &Aggregates, timeout: Duration) {
        let waited = tokio::time::timeout(timeout, async {
            self.collect_round().await;
            if let Some(writing) = self.round(aggregates) {
                self.writing = Some(writing);
                self.collect_round().await;
            }
        });
        if waited.await.is_err() {
            tracing::warn!(?timeout, "the last window checkpoints were not written in time");
        }
    }

    /// Waits for the round being written and takes its bucket back; after a round that failed,
    /// every pair is written again, to a bucket opened again.
    async fn collect_round(&mut self) {
        let Some(writing) = self.writing.take() else { return };
        match writing.await {
            Ok(bucket) if bucket.store.is_some() => self.bucket = bucket,
            Ok(bucket) => (self.bucket, self.written) = (bucket, Vec::new()),
            Err(_) => self.written.clear(),
        }
    }

    /// Takes the checkpoints of the pairs that moved and spawns their writes, with the bucket.
    fn round(&mut self, aggregates: &Aggregates) -> Option<JoinHandle<Bucket>> {
        self.last_round = Some(Instant::now());
        let positions = aggregates.positions();
        let moved: Vec<Checkpoint> = aggregates
            .iter()
            .zip(&positions)
            .enumerate()
            .filter(|(index, (_, position))| self.written.get(*index) != Some(*position))
            .filter(|(_, (aggregate, _))| self.fits(aggregate))
            .map(|(_, (aggregate, _))| aggregate.checkpoint())
            .collect();
        if moved.is_empty() {
            return None;
        }
        self.written = positions;
        Some(tokio::spawn(write(self.bucket.clone(), moved, self.writes.clone())))
    }

    /// Whether `aggregate`'s checkpoint can fit a NATS message; counted `too_large` if not.
    fn fits(&self, aggregate: &Aggregate) -> bool {
        let ticks = aggregate.retained_ticks();
        let fits = ticks <= MAX_CHECKPOINT_BYTES / MIN_BYTES_PER_TICK;
        if !fits {
            tracing::warn!(pair = aggregate.pair().as_str(), ticks, "window too large for a checkpoint; not taken");
            self.writes.with_label_values(&["too_large"]).inc();
        }
        fits
    }
}

/// The checkpoint bucket, opened (or, for a service that may, created) on first use and after a
/// failure.
#[derive(Clone)]
struct Bucket {
    js: jetstream::Context,
    provision: Provision,
    store: Option<kv::Store>,
    /// When it was last tried and could not be opened: tried again only after
    /// [`CHECKPOINT_INTERVAL`], so that a start does not wait on it once per pair.
    unavailable_since: Option<Instant>,
}

impl Bucket {
    async fn open(&mut self) -> Option<&kv::Store> {
        let tried_lately = self.unavailable_since.is_some_and(|since| since.elapsed() < CHECKPOINT_INTERVAL);
        if self.store.is_none() && !tried_lately {
            match self.provision.checkpoint_bucket(&self.js).await {
                Ok(store) => (self.store, self.unavailable_since) = (Some(store), None),
                Err(error) => {
                    tracing::warn!(%error, "no window checkpoints for now: a restart replays the window");
                    self.unavailable_since = Some(Instant::now());
                }
            }
        }
        self.store.as_ref()
    }
}

/// Encodes and writes `checkpoints`, each to its pair's key; gives `bucket` back, closed (no
/// store) if a write failed.
async fn write(mut bucket: Bucket, checkpoints: Vec<Checkpoint>, writes: IntCounterVec) -> Bucket {
    let Some(store) = bucket.open().await.cloned() else { return bucket };
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
            Ok(bytes) => match store.put(&pair, bytes.into()).await {
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
    if !wrote_all {
        bucket.store = None;
    }
    bucket
}
