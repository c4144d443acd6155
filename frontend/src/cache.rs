//! The frontends' in-memory copy of the aggregated state, kept current by watching the KV bucket.
//! Every request is served from here: no NATS round trip per request.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use btc_common::PriceState;
use btc_common::jetstream::{open_state_bucket, retry_until_ready};
use btc_common::names::STATE_KEY;
use futures::StreamExt;
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
}

impl StateCache {
    pub fn new(nats: Option<async_nats::Client>) -> Self {
        Self { state: ArcSwapOption::empty(), nats, draining: AtomicBool::new(false) }
    }

    pub fn get(&self) -> Option<Arc<CachedState>> {
        self.state.load_full()
    }

    /// Encodes and stores `state` unless the cache already holds a later one (watch redelivery
    /// after a reconnect must not move the price back in time). Only the watch task writes.
    pub fn set(&self, state: PriceState) {
        if self.state.load().as_ref().is_some_and(|current| state.stream_sequence < current.state.stream_sequence) {
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
}

/// Keeps `cache` current until shutdown: watches the state key, and re-watches after any error.
pub async fn watch_state(client: async_nats::Client, cache: Arc<StateCache>, shutdown: CancellationToken) {
    let js = async_nats::jetstream::new(client);
    let mut delay = Duration::from_millis(100);
    while !shutdown.is_cancelled() {
        let Some(kv) = retry_until_ready("state bucket", &shutdown, || open_state_bucket(&js)).await else {
            return;
        };
        // With history 1, "with history" delivers the current value first, then every update.
        match kv.watch_with_history(STATE_KEY).await {
            Ok(mut entries) => {
                tracing::info!("watching the price state");
                delay = Duration::from_millis(100);
                loop {
                    let entry = tokio::select! {
                        _ = shutdown.cancelled() => return,
                        entry = entries.next() => entry,
                    };
                    match entry {
                        Some(Ok(entry)) if entry.operation == async_nats::jetstream::kv::Operation::Put => {
                            match PriceState::decode(&entry.value) {
                                Ok(state) => cache.set(state),
                                Err(error) => {
                                    tracing::warn!(%error, revision = entry.revision, "unreadable state; kept the previous one")
                                }
                            }
                        }
                        Some(Ok(_)) => {}
                        Some(Err(error)) => {
                            tracing::warn!(%error, "state watch failed; watching again");
                            break;
                        }
                        None => break,
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "cannot watch the state"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}
