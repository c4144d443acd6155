//! The lease that makes one publisher replica the active poller.
//!
//! Replicas share the exchanges' rate limits (one egress IP), so only one polls: the one named in
//! the key [`names::LEASE_KEY`] of the KV bucket [`names::LEASE_BUCKET`]. The others are hot
//! standbys, connected, set up and ready, checking the lease once per round.
//!
//! - Taking the lease is a compare-and-set create (expected revision 0, or that of a delete
//!   marker); renewing it, before every round, a compare-and-set update on the revision the holder
//!   last wrote. Two replicas never both win.
//! - The holder trusts its lease until `sent + ttl - ttl/10` on the monotonic clock, `sent` being
//!   the instant before the write left: no server stored it earlier, so none removes it earlier. It
//!   polls only inside that deadline. A process resumed after SIGSTOP or a partition finds its
//!   deadline passed and must win a compare-and-set again before it sends any request.
//! - A lease nobody renews ends in one of two ways, both after its holder's deadline: the server
//!   removes it `max_age` (the TTL) after its last write, or a standby that has seen the same
//!   revision for the holder's TTL on its own monotonic clock replaces it, compare-and-set on that
//!   revision (the standby saw it after it was written, so after the holder's `sent`).
//! - On SIGTERM the holder deletes the lease, compare-and-set on its revision, and a standby takes
//!   it at its next round.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};
use btc_contract::names;
use btc_runtime::RuntimeError;
use btc_runtime::jetstream::LeaseBucket;
use bytes::Bytes;
use chrono::Utc;

use crate::metrics::PublisherMetrics;

mod value;

use value::random_instance;
pub use value::{LEASE_SCHEMA_VERSION, LeaseSettings, LeaseValue, operation_timeout, safety_margin};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Standby,
    /// `valid_until`: the deadline; `renew_at`: half-way, when a long round renews it.
    Active {
        revision: u64,
        valid_until: Instant,
        renew_at: Instant,
    },
}

/// A holder's revision, as a standby first saw it.
#[derive(Debug, Clone, Copy)]
struct Seen {
    revision: u64,
    since: Instant,
}

/// One replica's side of the lease. Not shared: the run loop owns it.
pub struct Lease {
    js: jetstream::Context,
    settings: LeaseSettings,
    instance: String,
    bucket: LeaseBucket,
    /// The TTL this replica's deadlines use: its own, or the bucket's max_age if shorter.
    ttl: Duration,
    /// The value written while holding the lease (set at each acquisition).
    value: Bytes,
    role: Role,
    seen: Option<Seen>,
    /// The holder last logged, so a standby logs each new holder once.
    holder_logged: Option<String>,
    /// An operation failed: look the bucket up again (it may have been deleted).
    recheck_bucket: bool,
    /// No acquisition before this instant: a holder of a deleted bucket may still trust its lease.
    not_before: Option<Instant>,
    failing: bool,
    metrics: Arc<PublisherMetrics>,
}

impl Lease {
    /// Opens (or creates) the lease bucket. The replica starts as a standby.
    pub async fn open(
        client: &async_nats::Client,
        settings: LeaseSettings,
        metrics: Arc<PublisherMetrics>,
    ) -> Result<Self, RuntimeError> {
        let js = jetstream::ContextBuilder::new().timeout(operation_timeout(settings.ttl)).build(client.clone());
        let bucket = settings.provision.lease_bucket(&js, settings.ttl).await?;
        let ttl = settings.ttl.min(bucket.max_age);
        metrics.lease_active.set(0);
        Ok(Self {
            js,
            instance: random_instance(),
            ttl,
            value: Bytes::new(),
            role: Role::Standby,
            seen: None,
            holder_logged: None,
            recheck_bucket: false,
            not_before: None,
            failing: false,
            bucket,
            settings,
            metrics,
        })
    }

    /// The random id of this process in the lease value.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The TTL this replica's deadlines use.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// True while this replica holds the lease and its deadline has not passed: it may poll.
    pub fn is_valid(&self) -> bool {
        matches!(self.role, Role::Active { valid_until, .. } if Instant::now() < valid_until)
    }

    /// When a holder busy with a long round (an exchange hanging until its timeout, a slow
    /// publish) should renew rather than wait for the next round: half its TTL after the last
    /// renewal. None on a standby.
    pub fn renew_at(&self) -> Option<Instant> {
        match self.role {
            Role::Active { renew_at, .. } => Some(renew_at),
            Role::Standby => None,
        }
    }

    /// Renews the lease if this replica holds it, else tries to take it. Returns [`Self::is_valid`].
    pub async fn refresh(&mut self) -> bool {
        if let Role::Active { valid_until, .. } = self.role
            && Instant::now() >= valid_until
        {
            self.step_down("it was not renewed in time (process paused, or NATS slow or unreachable)");
        }
        if self.recheck_bucket {
            self.reopen_bucket().await;
        }
        let outcome = match self.role {
            Role::Active { revision, .. } => self.renew(revision).await,
            Role::Standby => self.try_acquire().await,
        };
        self.note(outcome);
        self.is_valid()
    }

    /// Deletes the lease if this replica holds it, so a standby takes over at its next round.
    pub async fn release(&mut self) {
        let Role::Active { revision, .. } = self.role else { return };
        self.role = Role::Standby;
        self.metrics.lease_active.set(0);
        match self.bucket.store.delete_expect_revision(names::LEASE_KEY, Some(revision)).await {
            Ok(()) => {
                self.metrics.lease_transitions.with_label_values(&["released"]).inc();
                tracing::info!("lease released: a standby replica takes over at its next round");
            }
            Err(error) => tracing::warn!(%error, "cannot release the lease; a standby takes over once it lapses"),
        }
    }

    async fn renew(&mut self, revision: u64) -> Result<(), String> {
        let sent = Instant::now();
        match self.bucket.store.update(names::LEASE_KEY, self.value.clone(), revision).await {
            Ok(revision) => {
                self.role = self.active(revision, sent);
                Ok(())
            }
            // Another replica wrote the key, the server removed it, or our last write was stored
            // but its ack lost: the key tells which.
            Err(error) if error.kind() == kv::UpdateErrorKind::WrongLastRevision => self.try_acquire().await,
            Err(error) => Err(error.to_string()),
        }
    }

    async fn try_acquire(&mut self) -> Result<(), String> {
        if let Some(not_before) = self.not_before {
            if Instant::now() < not_before {
                self.step_down("the lease bucket was re-created");
                return Ok(());
            }
            self.not_before = None;
        }
        let entry = self.bucket.store.entry(names::LEASE_KEY).await.map_err(|e| e.to_string())?;
        let observed = Instant::now();
        let expected = match entry {
            None => 0,
            Some(entry) if entry.operation != kv::Operation::Put => entry.revision,
            Some(entry) => {
                let holder = LeaseValue::decode(&entry.value);
                let ours = holder.as_ref().is_some_and(|h| h.instance == self.instance);
                if !ours && !self.silent_for_its_ttl(entry.revision, holder.as_ref(), observed) {
                    let name = holder.map_or_else(|| "an unreadable holder".to_string(), |h| h.holder);
                    self.stand_by(name);
                    return Ok(());
                }
                if !ours {
                    tracing::warn!(
                        revision = entry.revision,
                        "the lease holder has not renewed for its TTL; taking over"
                    );
                }
                entry.revision
            }
        };
        self.write(expected).await
    }

    /// True if the holder has left `revision` unchanged for its TTL, as this replica measures it.
    fn silent_for_its_ttl(&mut self, revision: u64, holder: Option<&LeaseValue>, observed: Instant) -> bool {
        // An unreadable value: wait for the server to remove it.
        let Some(holder) = holder else { return false };
        match self.seen {
            Some(seen) if seen.revision == revision => {
                observed.duration_since(seen.since) >= Duration::from_millis(holder.ttl_ms)
            }
            _ => {
                self.seen = Some(Seen { revision, since: observed });
                false
            }
        }
    }

    /// Takes the lease, compare-and-set on `expected`.
    async fn write(&mut self, expected: u64) -> Result<(), String> {
        if self.role == Role::Standby {
            self.value = LeaseValue {
                schema_version: LEASE_SCHEMA_VERSION,
                holder: self.settings.holder.clone(),
                instance: self.instance.clone(),
                ttl_ms: self.ttl.as_millis() as u64,
                acquired_at: Utc::now(),
            }
            .encode();
        }
        let sent = Instant::now();
        match self.bucket.store.update(names::LEASE_KEY, self.value.clone(), expected).await {
            Ok(revision) => {
                let was_standby = self.role == Role::Standby;
                self.role = self.active(revision, sent);
                if was_standby {
                    self.seen = None;
                    self.holder_logged = None;
                    self.metrics.lease_active.set(1);
                    self.metrics.lease_transitions.with_label_values(&["acquired"]).inc();
                    tracing::info!(revision, ttl = ?self.ttl, "lease acquired: this replica polls the exchanges");
                }
                Ok(())
            }
            // Another standby was faster.
            Err(error) if error.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                self.step_down("another replica took it");
                Ok(())
            }
            Err(error) => Err(error.to_string()),
        }
    }

    fn active(&self, revision: u64, sent: Instant) -> Role {
        Role::Active { revision, valid_until: sent + self.ttl - safety_margin(self.ttl), renew_at: sent + self.ttl / 2 }
    }

    /// Another replica holds the lease.
    fn stand_by(&mut self, holder: String) {
        self.step_down(&format!("{holder} holds it"));
        if self.holder_logged.as_ref() != Some(&holder) {
            tracing::info!(%holder, "standing by: another replica holds the lease and polls the exchanges");
            self.holder_logged = Some(holder);
        }
    }

    fn step_down(&mut self, reason: &str) {
        if let Role::Active { .. } = self.role {
            self.role = Role::Standby;
            self.metrics.lease_active.set(0);
            self.metrics.lease_transitions.with_label_values(&["lost"]).inc();
            // A standby polls nothing: its per-source gauges would mislead (e.g. max by source).
            self.metrics.source_up.reset();
            self.metrics.circuit_open.reset();
            tracing::warn!(reason, "lease lost: this replica stops polling and stands by");
        }
    }

    async fn reopen_bucket(&mut self) {
        match self.settings.provision.lease_bucket(&self.js, self.settings.ttl).await {
            Ok(bucket) => {
                if bucket.created_ns != self.bucket.created_ns {
                    let longest = self.ttl.max(self.bucket.max_age);
                    tracing::warn!(wait = ?longest, "the lease bucket was re-created; nobody takes the lease for one TTL");
                    self.not_before = Some(Instant::now() + longest);
                    self.seen = None;
                    self.step_down("the lease bucket was re-created");
                }
                self.ttl = self.settings.ttl.min(bucket.max_age);
                self.bucket = bucket;
                self.recheck_bucket = false;
            }
            Err(error) => tracing::debug!(%error, "lease bucket still unavailable"),
        }
    }

    /// Logs a failing lease operation once, and its recovery once.
    fn note(&mut self, outcome: Result<(), String>) {
        match outcome {
            Ok(()) if self.failing => {
                self.failing = false;
                tracing::info!("lease operations work again");
            }
            Ok(()) => {}
            Err(error) => {
                self.recheck_bucket = true;
                if !self.failing {
                    self.failing = true;
                    tracing::warn!(%error, holding = self.is_valid(), "lease operation failed; retrying every round");
                } else {
                    tracing::debug!(%error, "lease operation still failing");
                }
            }
        }
    }
}
