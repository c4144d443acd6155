//! The frontends' in-memory copy of every configured pair's aggregated state, kept current by
//! following the KV bucket. Every request is served from here: no NATS round trip per request.

use arc_swap::ArcSwapOption;
use async_nats::jetstream::{self, context::GetStreamErrorKind, kv};
use btc_contract::names::STATE_BUCKET;
use btc_contract::{Pair, PriceState};
use btc_runtime::backoff::Backoff;
use btc_runtime::jetstream::{open_state_bucket, retry_until_ready};
use chrono::{DateTime, Utc};
use futures::{FutureExt, StreamExt};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// One state as served. Each app derives its own answers from it (bitcoin-api encodes its
/// bodies once per state, see `api::bitcoin`): the cache knows no wire format.
#[derive(Debug)]
pub struct CachedState {
    pub state: PriceState,
}

/// The latest state of each configured pair and the NATS connection they come from.
pub struct StateCache {
    /// The configured pairs (`PAIRS`), in order; `states[i]` is `pairs[i]`'s.
    pairs: Vec<Pair>,
    /// Each swapped whole on its pair's update; requests read them without a lock.
    states: Vec<ArcSwapOption<CachedState>>,
    nats: Option<async_nats::Client>,
    /// True while the watch on the state keys is established.
    watching: AtomicBool,
    /// Every configured pair's closed candles (bitcoin-api, see `candles`).
    candles: Arc<crate::candles::CandleCache>,
    /// Every configured pair's push feed (bitcoin-api, see `feeds`).
    feeds: crate::feeds::PriceFeeds,
    /// Woken when `states[i]` changes: the feed of pair `i` waits on it.
    changed: Vec<tokio::sync::Notify>,
    /// Cancelled on shutdown: readiness fails while in-flight and late requests are still served,
    /// and open streams end (their clients reconnect elsewhere).
    drain: CancellationToken,
}

impl Default for StateCache {
    fn default() -> Self {
        Self::new(None, Pair::defaults())
    }
}

impl StateCache {
    pub fn new(nats: Option<async_nats::Client>, pairs: Vec<Pair>) -> Self {
        Self {
            states: pairs.iter().map(|_| ArcSwapOption::empty()).collect(),
            candles: Arc::new(crate::candles::CandleCache::new(pairs.clone())),
            feeds: crate::feeds::PriceFeeds::new(pairs.len(), crate::feeds::DEFAULT_STREAM_LIMIT),
            changed: pairs.iter().map(|_| tokio::sync::Notify::new()).collect(),
            drain: CancellationToken::new(),
            pairs,
            nats,
            watching: AtomicBool::new(false),
        }
    }

    /// At most `limit` streams open at once (`STREAM_LIMIT`).
    pub fn with_stream_limit(mut self, limit: usize) -> Self {
        self.feeds = crate::feeds::PriceFeeds::new(self.pairs.len(), limit);
        self
    }

    /// The configured pairs, in order: [`StateCache::get_at`] takes an index into these.
    pub fn pairs(&self) -> &[Pair] {
        &self.pairs
    }

    /// The index of the configured pair `asset`-`currency`, in any case.
    pub fn index_of(&self, asset: &str, currency: &str) -> Option<usize> {
        let matches =
            |pair: &Pair| pair.asset().eq_ignore_ascii_case(asset) && pair.currency().eq_ignore_ascii_case(currency);
        self.pairs.iter().position(matches)
    }

    /// The state of the `index`th configured pair.
    pub fn get_at(&self, index: usize) -> Option<Arc<CachedState>> {
        self.states.get(index)?.load_full()
    }

    /// The state of `pair`, if it is configured and has one.
    pub fn get(&self, pair: &Pair) -> Option<Arc<CachedState>> {
        self.get_at(self.pairs.iter().position(|p| p == pair)?)
    }

    /// Stores `state` as its pair's unless the cache already holds one that stands later (watch
    /// redelivery after a reconnect must not move the price back in time; a state from a ticks
    /// stream created again stands after every state of the old one). A state of a pair not
    /// configured is dropped. Only the watch task writes.
    pub fn set(&self, state: PriceState) {
        let Some(index) = self.pairs.iter().position(|p| p.as_str() == state.latest.pair) else { return };
        let slot = &self.states[index];
        if slot.load().as_ref().is_some_and(|current| state.position() < current.state.position()) {
            return;
        }
        slot.store(Some(Arc::new(CachedState { state })));
        // A permit is kept if the feed is busy: it reads the newest state when it is done.
        self.changed[index].notify_one();
    }

    /// Returns once the state of the `index`th pair has changed since the last return.
    pub async fn changed(&self, index: usize) {
        match self.changed.get(index) {
            Some(changed) => changed.notified().await,
            None => std::future::pending().await,
        }
    }

    /// Every configured pair's push feed.
    pub fn feeds(&self) -> &crate::feeds::PriceFeeds {
        &self.feeds
    }

    /// Cancelled when draining starts.
    pub fn drain_token(&self) -> &CancellationToken {
        &self.drain
    }

    /// Every configured pair's closed candles.
    pub fn candles(&self) -> &Arc<crate::candles::CandleCache> {
        &self.candles
    }

    pub fn start_draining(&self) {
        self.drain.cancel();
    }

    pub fn is_draining(&self) -> bool {
        self.drain.is_cancelled()
    }

    pub fn nats_client(&self) -> Option<&async_nats::Client> {
        self.nats.as_ref()
    }

    pub fn nats_connected(&self) -> bool {
        self.nats.as_ref().is_some_and(btc_runtime::nats::is_connected)
    }

    fn set_watching(&self, watching: bool) {
        self.watching.store(watching, Ordering::Relaxed);
    }

    /// Whether this replica can serve the state: connected to NATS with the watch on the state
    /// established (a price or not: a stale price is shared by every replica and is answered with
    /// a JSON 503 on the price routes, never by emptying the Service).
    pub fn state_readiness(&self) -> Result<(), &'static str> {
        if !self.nats_connected() {
            return Err("not connected to NATS");
        }
        if !self.watching.load(Ordering::Relaxed) {
            return Err("not watching the price state yet");
        }
        Ok(())
    }
}

/// How often the bucket's identity is checked, and the stored state read, while following it: a
/// bucket deleted (and created again) or a notice lost (core NATS delivers at most once) is caught
/// up within this.
const BUCKET_CHECK: Duration = Duration::from_secs(2);

/// How long a notice waits for its state to be readable by direct get (an R3 stream answers from
/// a replica that may store it a moment after the notice); a write JetStream refused never is.
const NOTICE_CATCH_UP: Duration = Duration::from_secs(1);

/// Keeps `cache` current until shutdown.
///
/// No JetStream consumer: a user allowed to create one could make the server deliver a stream
/// anywhere in the account (nats-server does not check a push consumer's deliver subject against
/// its creator's permissions), so the frontend's user may only subscribe to the state keys'
/// subjects, where each write is a notice, and read the stored states by direct get. Only a stored
/// state is served, never a notice's payload (a write JetStream refused is heard too).
pub async fn watch_state(client: async_nats::Client, cache: Arc<StateCache>, shutdown: CancellationToken) {
    let js = async_nats::jetstream::new(client.clone());
    let mut backoff = Backoff::NATS;
    while !shutdown.is_cancelled() {
        let Some(kv) = retry_until_ready("state bucket", &shutdown, || open_state_bucket(&js)).await else {
            return;
        };
        let created = kv.status().await.ok().map(|status| status.info.created);
        // Subscribed before the first read: a write in between is either read or heard.
        let notices = match client.subscribe(format!("$KV.{STATE_BUCKET}.*")).await {
            Ok(notices) => notices,
            Err(error) => {
                tracing::warn!(%error, "cannot subscribe to the state");
                continue;
            }
        };
        match read_all(&kv, &cache).await {
            Ok(_) => {
                tracing::info!("following the price state");
                cache.set_watching(true);
                backoff.reset();
                follow_notices(notices, &kv, &js, created, &cache, &shutdown).await;
                cache.set_watching(false);
            }
            Err(error) => tracing::warn!(%error, "cannot read the state"),
        }
        if !backoff.wait(&shutdown).await {
            return;
        }
    }
}

/// Reads the stored state into `cache` on every notice and every [`BUCKET_CHECK`], until a read
/// fails, the bucket is no longer the one created at `created`, or shutdown.
async fn follow_notices(
    mut notices: async_nats::Subscriber,
    kv: &kv::Store,
    js: &jetstream::Context,
    created: Option<DateTime<Utc>>,
    cache: &StateCache,
    shutdown: &CancellationToken,
) {
    let mut check = tokio::time::interval(BUCKET_CHECK);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let read = tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = check.tick() => {
                if bucket_replaced(js, created).await {
                    tracing::warn!("the state bucket was deleted or created again; following it again");
                    return;
                }
                read_all(kv, cache).await
            }
            notice = notices.next() => match notice {
                Some(notice) => catch_up_all(kv, cache, newest_per_key(notice, &mut notices)).await,
                None => return,
            },
        };
        if let Err(error) = read {
            tracing::warn!(%error, "cannot read the state; following it again");
            return;
        }
    }
}

/// `first` and the notices already waiting, keeping only the newest of each key: only it matters.
fn newest_per_key(first: async_nats::Message, notices: &mut async_nats::Subscriber) -> Vec<async_nats::Message> {
    let mut newest = vec![first];
    while let Some(Some(next)) = notices.next().now_or_never() {
        match newest.iter_mut().find(|notice| notice.subject == next.subject) {
            Some(same_key) => *same_key = next,
            None => newest.push(next),
        }
    }
    newest
}

async fn catch_up_all(
    kv: &kv::Store,
    cache: &StateCache,
    notices: Vec<async_nats::Message>,
) -> Result<(), kv::EntryError> {
    for notice in &notices {
        catch_up(kv, cache, notice).await?;
    }
    Ok(())
}

/// Reads the stored state of the notice's pair until it stands at least where `notice`'s does,
/// for at most [`NOTICE_CATCH_UP`]. A notice of a key that is no configured pair is ignored.
async fn catch_up(kv: &kv::Store, cache: &StateCache, notice: &async_nats::Message) -> Result<(), kv::EntryError> {
    let key = notice.subject.as_str().rsplit('.').next().unwrap_or_default();
    let Some(pair) = cache.pairs().iter().find(|pair| pair.state_key() == key) else { return Ok(()) };
    let Ok(heard) = PriceState::decode(&notice.payload) else {
        return read_stored(kv, cache, pair).await.map(|_| ());
    };
    let deadline = tokio::time::Instant::now() + NOTICE_CATCH_UP;
    // The notice can come a moment before the stream has stored the write (it stores on its own
    // task), so the first read again is at once: the stream has nearly always stored it by then,
    // and any wait here is added to every such price's freshness. Then 1 ms doubling, capped at
    // 100 ms so a slow replica is still read about ten times within the catch-up second.
    let mut backoff = Backoff::new(Duration::from_millis(1), Duration::from_millis(100));
    for read in 0.. {
        let stored = read_stored(kv, cache, pair).await?;
        if stored.is_some_and(|position| position >= heard.position()) || tokio::time::Instant::now() >= deadline {
            break;
        }
        if read > 0 {
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }
    Ok(())
}

/// Reads every configured pair's stored state into `cache`.
async fn read_all(kv: &kv::Store, cache: &StateCache) -> Result<(), kv::EntryError> {
    for pair in cache.pairs() {
        read_stored(kv, cache, pair).await?;
    }
    Ok(())
}

/// Reads `pair`'s stored state into `cache`; its position, or None when there is none.
async fn read_stored(kv: &kv::Store, cache: &StateCache, pair: &Pair) -> Result<Option<StatePosition>, kv::EntryError> {
    let Some(entry) = kv.entry(pair.state_key()).await? else {
        return Ok(None);
    };
    if entry.operation != kv::Operation::Put {
        return Ok(None);
    }
    match PriceState::decode(&entry.value) {
        Ok(state) => {
            let position = state.position();
            cache.set(state);
            Ok(Some(position))
        }
        Err(error) => {
            tracing::warn!(%error, revision = entry.revision, "unreadable state; kept the previous one");
            Ok(None)
        }
    }
}

type StatePosition = (Option<DateTime<Utc>>, u64);

/// True if the server says the state bucket is gone or is not the one created at `created`;
/// false when it cannot be asked (NATS away: the next read notices).
async fn bucket_replaced(js: &jetstream::Context, created: Option<DateTime<Utc>>) -> bool {
    match js.get_stream(format!("KV_{STATE_BUCKET}")).await {
        Ok(stream) => Some(stream.cached_info().created) != created,
        Err(error) => matches!(error.kind(), GetStreamErrorKind::JetStream(_)),
    }
}
