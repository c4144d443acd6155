//! Writing the state to KV: compare-and-set on the key's revision, and never a state that stands
//! before the stored one (`PriceState::position`), so two aggregators writing at once leave one
//! monotone state. A bucket deleted under it is created again (or waited for, see
//! [`btc_runtime::jetstream::WhenMissing`]).

use async_nats::jetstream::kv::{self, CreateErrorKind, Operation, UpdateErrorKind};
use async_nats::jetstream::{self};
use btc_contract::PriceState;
use btc_contract::names::STATE_KEY;
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

/// Writes [`PriceState`] to the state bucket with compare-and-set.
pub struct StateWriter {
    js: jetstream::Context,
    provision: Provision,
    kv: kv::Store,
    revision: Option<u64>,
}

impl StateWriter {
    pub fn new(js: jetstream::Context, provision: Provision, kv: kv::Store) -> Self {
        Self { js, provision, kv, revision: None }
    }

    /// Creates the bucket again if it is gone (or brings it back to this configuration; as a user
    /// that may not, opens it again once the setup step has) and forgets the cached revision: the
    /// way out after a failed write.
    pub async fn reopen(&mut self) -> Result<(), AggregatorError> {
        self.kv = self.provision.state_bucket(&self.js).await?;
        self.revision = None;
        Ok(())
    }

    pub async fn write(&mut self, state: &PriceState) -> Result<Written, AggregatorError> {
        let value: bytes::Bytes = state.encode().into();
        loop {
            let Some(revision) = self.revision else {
                match self.current().await? {
                    None => match self.kv.create(STATE_KEY, value.clone()).await {
                        Ok(revision) => {
                            self.revision = Some(revision);
                            return Ok(Written::Stored { revision });
                        }
                        Err(error) if error.kind() == CreateErrorKind::AlreadyExists => continue,
                        Err(error) => return Err(AggregatorError::State(error.to_string())),
                    },
                    Some((revision, stored, stored_value)) => {
                        self.revision = Some(revision);
                        // At the same position a different value is written over: a window
                        // rebuilt after a purge holds less than it did at the same sequence.
                        if stored > state.position() || (stored == state.position() && stored_value == value) {
                            return Ok(Written::AlreadyNewer);
                        }
                        continue;
                    }
                }
            };
            match self.kv.update(STATE_KEY, value.clone(), revision).await {
                Ok(revision) => {
                    self.revision = Some(revision);
                    return Ok(Written::Stored { revision });
                }
                // Someone else wrote since our last write: re-read and decide again.
                Err(error) if error.kind() == UpdateErrorKind::WrongLastRevision => self.revision = None,
                Err(error) => {
                    self.revision = None;
                    return Err(AggregatorError::State(error.to_string()));
                }
            }
        }
    }

    /// Revision, position and value of the stored state; `None` if there is none.
    async fn current(&self) -> Result<Option<(u64, Position, bytes::Bytes)>, AggregatorError> {
        let entry = self.kv.entry(STATE_KEY).await.map_err(|e| AggregatorError::State(e.to_string()))?;
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
