//! Writing the state to KV: compare-and-set on the key's revision, and never a state that stands
//! before the stored one (`PriceState::position`), so two aggregators writing at once leave one
//! monotone state. A bucket deleted under it is created again (or waited for, see
//! [`btc_runtime::jetstream::WhenMissing`]).

use async_nats::jetstream::kv::{self, CreateErrorKind, Operation, UpdateErrorKind};
use async_nats::jetstream::{self};
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use btc_contract::PriceState;
use btc_runtime::jetstream::Provision;
use chrono::{DateTime, Utc};

use crate::error::AggregatorError;

/// Whether a write changed the stored state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Stored {
        revision: u64,
    },
    /// Another aggregator had already stored this position or a later one.
    AlreadyNewer,
}

/// Writes each pair's [`PriceState`] to its key of the state bucket with compare-and-set. Writes
/// to different keys may run at once: a batch's pairs wait for one round trip, not one each.
pub struct StateWriter {
    js: jetstream::Context,
    provision: Provision,
    kv: kv::Store,
    /// The revision this writer last stored or read, per key; locked only between awaits.
    revisions: Mutex<HashMap<String, u64>>,
}

impl StateWriter {
    pub fn new(js: jetstream::Context, provision: Provision, kv: kv::Store) -> Self {
        Self { js, provision, kv, revisions: Mutex::default() }
    }

    /// The state stored for `pair`, if there is a readable one: where a restarted aggregator's
    /// candles go on from.
    pub async fn stored(&self, pair: &btc_contract::Pair) -> Option<PriceState> {
        let entry = self.kv.entry(pair.state_key()).await.ok()??;
        (entry.operation == Operation::Put).then(|| PriceState::decode(&entry.value).ok()).flatten()
    }

    /// Creates the bucket again if it is gone (or brings it back to this configuration; as a user
    /// that may not, opens it again once the setup step has) and forgets the cached revision: the
    /// way out after a failed write.
    pub async fn reopen(&mut self) -> Result<(), AggregatorError> {
        self.kv = self.provision.state_bucket(&self.js).await?;
        self.revisions().clear();
        Ok(())
    }

    /// Writes `state` to its pair's key (the tick's pair, which the aggregate checked).
    pub async fn write(&self, state: &PriceState) -> Result<Written, AggregatorError> {
        let key = state.latest.pair.as_str();
        let value: bytes::Bytes = state.encode().into();
        loop {
            let known = self.revisions().get(key).copied();
            let Some(revision) = known else {
                match self.current(key).await? {
                    None => match self.kv.create(key, value.clone()).await {
                        Ok(revision) => {
                            self.remember(key, revision);
                            return Ok(Written::Stored { revision });
                        }
                        Err(error) if error.kind() == CreateErrorKind::AlreadyExists => continue,
                        Err(error) => return Err(AggregatorError::State(error.to_string())),
                    },
                    Some((revision, stored, stored_value)) => {
                        self.remember(key, revision);
                        // At the same position a different value is written over: a window
                        // rebuilt after a purge holds less than it did at the same sequence.
                        if stored > state.position() || (stored == state.position() && stored_value == value) {
                            return Ok(Written::AlreadyNewer);
                        }
                        continue;
                    }
                }
            };
            match self.kv.update(key, value.clone(), revision).await {
                Ok(revision) => {
                    self.remember(key, revision);
                    return Ok(Written::Stored { revision });
                }
                // Someone else wrote since our last write: re-read and decide again.
                Err(error) if error.kind() == UpdateErrorKind::WrongLastRevision => {
                    self.revisions().remove(key);
                }
                Err(error) => {
                    self.revisions().remove(key);
                    return Err(AggregatorError::State(error.to_string()));
                }
            }
        }
    }

    /// The revisions map; a panic elsewhere cannot leave it half-updated, so a poisoned lock is
    /// still good.
    fn revisions(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.revisions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn remember(&self, key: &str, revision: u64) {
        self.revisions().insert(key.to_string(), revision);
    }

    /// Revision, position and value of the state stored at `key`; `None` if there is none.
    async fn current(&self, key: &str) -> Result<Option<(u64, Position, bytes::Bytes)>, AggregatorError> {
        let entry = self.kv.entry(key).await.map_err(|e| AggregatorError::State(e.to_string()))?;
        Ok(entry.map(|entry| {
            let position = match entry.operation {
                Operation::Put => PriceState::decode(&entry.value).map(|s| s.position()).unwrap_or((None, 0)),
                Operation::Delete | Operation::Purge => (None, 0),
            };
            (entry.revision, position, entry.value)
        }))
    }
}

type Position = (Option<DateTime<Utc>>, u64);
