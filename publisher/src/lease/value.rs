//! What the lease key holds and what a replica asks for: the value, the settings, and the parts
//! of the TTL a holder trusts and waits. Pure: the protocol over them is in [`super`].

use std::time::Duration;

use btc_runtime::jetstream::Provision;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Version of [`LeaseValue`]'s schema.
pub const LEASE_SCHEMA_VERSION: u32 = 1;

/// The value of the lease key: who holds it, and how long its holder trusts one write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaseValue {
    pub schema_version: u32,
    /// The replica: its pod name (`POD_NAME`) or host name.
    pub holder: String,
    /// Random per process: tells apart two processes of one name (a pod restarted in place).
    pub instance: String,
    /// How long after a write the holder may still poll under it, milliseconds.
    pub ttl_ms: u64,
    pub acquired_at: DateTime<Utc>,
}

impl LeaseValue {
    pub fn encode(&self) -> Bytes {
        serde_json::to_vec(self).map(Bytes::from).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }
}

/// Who this replica is and what lease it asks for.
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    pub holder: String,
    pub ttl: Duration,
    /// How the bucket is got: created by this replica, or waited for (and its replicas).
    pub provision: Provision,
}

impl LeaseSettings {
    /// `name`, else the host name, else "publisher".
    pub fn holder_name(name: Option<&str>) -> String {
        let host = || std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|h| h.trim().to_string());
        name.map(str::to_string)
            .or_else(|| std::env::var("HOSTNAME").ok())
            .or_else(host)
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "publisher".to_string())
    }
}

/// The part of the TTL a holder does not use: room for a server whose clock runs ahead.
pub fn safety_margin(ttl: Duration) -> Duration {
    ttl / 10
}

/// Timeout of one lease operation: short, since it runs before a round.
pub fn operation_timeout(ttl: Duration) -> Duration {
    (ttl / 4).clamp(Duration::from_millis(100), Duration::from_secs(2))
}

/// 16 hex digits from the OS's random source; the clock and pid if it has none.
pub(super) fn random_instance() -> String {
    let bits = getrandom::u64().unwrap_or_else(|_| {
        let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default() as u64;
        nanos ^ u64::from(std::process::id()).rotate_left(32)
    });
    format!("{bits:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_value_round_trips_and_names_its_holder() {
        let value = LeaseValue {
            schema_version: LEASE_SCHEMA_VERSION,
            holder: "btc-price-publisher-6f9c7-x2k4q".into(),
            instance: "9f3a1c0d5e7b2a46".into(),
            ttl_ms: 3000,
            acquired_at: "2026-11-25T17:40:41Z".parse().expect("time"),
        };
        let text = String::from_utf8(value.encode().to_vec()).expect("utf-8");
        assert_eq!(
            text,
            r#"{"schema_version":1,"holder":"btc-price-publisher-6f9c7-x2k4q","instance":"9f3a1c0d5e7b2a46","ttl_ms":3000,"acquired_at":"2026-11-25T17:40:41Z"}"#
        );
        assert_eq!(LeaseValue::decode(text.as_bytes()), Some(value));
        assert_eq!(LeaseValue::decode(b"{}"), None);
    }

    #[test]
    fn a_holder_trusts_nine_tenths_of_the_ttl_and_waits_a_quarter_for_an_operation() {
        let ttl = Duration::from_secs(3);
        assert_eq!(ttl - safety_margin(ttl), Duration::from_millis(2700));
        assert_eq!(operation_timeout(ttl), Duration::from_millis(750));
        assert_eq!(operation_timeout(Duration::from_millis(200)), Duration::from_millis(100));
        assert_eq!(operation_timeout(Duration::from_secs(60)), Duration::from_secs(2));
    }

    #[test]
    fn instances_are_random_and_names_fall_back_to_the_host() {
        assert_ne!(random_instance(), random_instance());
        assert_eq!(random_instance().len(), 16);
        assert_eq!(LeaseSettings::holder_name(Some("pod-a")), "pod-a");
        assert!(!LeaseSettings::holder_name(None).is_empty());
    }
}
