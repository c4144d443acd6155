//! The frontends' in-memory copy of the aggregated state, kept current by watching the KV bucket.
//! Every request is served from here: no NATS round trip per request.

use arc_swap::ArcSwapOption;
use async_nats::jetstream::{self, context::GetStreamErrorKind, kv};
use btc_common::PriceState;
use btc_common::backoff::Backoff;
use btc_common::jetstream::{open_state_bucket, retry_until_ready};
use btc_common::names::{STATE_BUCKET, STATE_KEY};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::api::bitcoin::EncodedBodies;

/// One state as served: the state and its answers, encoded once when it arrives.
#[derive(Debug)]
pub struct CachedState {
    pub state: PriceState,
    pub bodies: EncodedBodies,
}

/// The latest state and the NATS connection it comes from.
#[derive(Default)]
pub struct StateCache {
    /// Swapped whole on each update; requests read it without a lock.
    state: ArcSwapOption<CachedState>,
    nats: Option<async_nats::Client>,
    /// Set on shutdown: readiness fails while in-flight and late requests are still served.
    draining: AtomicBool,
    /// True while the watch on the state key is established.
    watching: AtomicBool,
}

impl StateCache {
    pub fn new(nats: Option<async_nats::Client>) -> Self {
        Self { state: ArcSwapOption::empty(), nats, draining: AtomicBool::new(false), watching: AtomicBool::new(false) }
    }

    pub fn get(&self) -> Option<Arc<CachedState>> {
        self.state.load_full()
    }

    /// Encodes and stores `state` unless the cache already holds one that stands later (watch
    /// redelivery after a reconnect must not move the price back in time; a state from a ticks
    /// stream created again stands after every state of the old one). Only the watch task writes.
    pub fn set(&self, state: PriceState) {
        if self.state.load().as_ref().is_some_and(|current| state.position() < current.state.position()) {
            return;
        }
        match EncodedBodies::encode(&state) {
            Ok(bodies) => self.state.store(Some(Arc::new(CachedState { state, bodies }))),
            Err(error) => tracing::warn!(%error, "cannot encode the state; kept the previous one"),
        }
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub fn nats_client(&self) -> Option<&async_nats::Client> {
        self.nats.as_ref()
    }

    pub fn nats_connected(&self) -> bool {
        self.nats.as_ref().is_some_and(btc_common::nats::is_connected)
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

/// How often the bucket's identity is checked while watching: a bucket deleted (and created
/// again by the aggregator) ends a watch only after missed heartbeats otherwise.
const BUCKET_CHECK: Duration = Duration::from_secs(2);

/// Keeps `cache` current until shutdown: watches the state key, and re-watches after any error
/// or when the bucket was deleted or created again.
pub async fn watch_state(client: async_nats::Client, cache: Arc<StateCache>, shutdown: CancellationToken) {
    let js = async_nats::jetstream::new(client);
    let mut backoff = Backoff::NATS;
    while !shutdown.is_cancelled() {
        let Some(kv) = retry_until_ready("state bucket", &shutdown, || open_state_bucket(&js)).await else {
            return;
        };
        let created = kv.status().await.ok().map(|status| status.info.created);
        // With history 1, "with history" delivers the current value first, then every update.
        match kv.watch_with_history(STATE_KEY).await {
            Ok(entries) => {
                tracing::info!("watching the price state");
                cache.set_watching(true);
                backoff.reset();
                follow_entries(entries, &js, created, &cache, &shutdown).await;
                cache.set_watching(false);
            }
            Err(error) => tracing::warn!(%error, "cannot watch the state"),
        }
        if !backoff.wait(&shutdown).await {
            return;
        }
    }
}

/// Applies the watched entries to `cache` until the watch fails, the bucket is no longer the one
/// created at `created`, or shutdown.
async fn follow_entries(
    mut entries: kv::Watch,
    js: &jetstream::Context,
    created: Option<DateTime<Utc>>,
    cache: &StateCache,
    shutdown: &CancellationToken,
) {
    let mut check = tokio::time::interval(BUCKET_CHECK);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let entry = tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = check.tick() => {
                if bucket_replaced(js, created).await {
                    tracing::warn!("the state bucket was deleted or created again; watching again");
                    return;
                }
                continue;
            }
            entry = entries.next() => entry,
        };
        match entry {
            Some(Ok(entry)) if entry.operation == kv::Operation::Put => match PriceState::decode(&entry.value) {
                Ok(state) => cache.set(state),
                Err(error) => {
                    tracing::warn!(%error, revision = entry.revision, "unreadable state; kept the previous one")
                }
            },
            Some(Ok(_)) => {}
            Some(Err(error)) => {
                tracing::warn!(%error, "state watch failed; watching again");
                return;
            }
            None => return,
        }
    }
}

/// True if the server says the state bucket is gone or is not the one created at `created`;
/// false when it cannot be asked (NATS away: the watch itself notices).
async fn bucket_replaced(js: &jetstream::Context, created: Option<DateTime<Utc>>) -> bool {
    match js.get_stream(format!("KV_{STATE_BUCKET}")).await {
        Ok(stream) => Some(stream.cached_info().created) != created,
        Err(error) => matches!(error.kind(), GetStreamErrorKind::JetStream(_)),
    }
}
