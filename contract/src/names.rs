//! Every NATS name the pipeline uses. These are a public API for NATS subscribers: the README's
//! "NATS subjects" section documents them, so change both together.

/// The JetStream stream that stores every consensus tick (durable history, de-duplication).
pub const TICKS_STREAM: &str = "PRICES";
/// Subjects captured by [`TICKS_STREAM`].
pub const TICKS_SUBJECTS: &str = "prices.ticks.>";
/// The currency pair this pipeline prices. One pair today; subjects and keys carry it so that a
/// second pair is a new subject, not a new schema.
pub const PAIR: &str = "BTC-USD";
/// Subject a BTC/USD tick is published on.
pub const TICK_SUBJECT: &str = "prices.ticks.BTC-USD";
/// Default durable consumer name of the aggregator on [`TICKS_STREAM`].
pub const AGGREGATOR_CONSUMER: &str = "aggregator";
/// KV bucket holding the aggregated state the frontends serve.
pub const STATE_BUCKET: &str = "price_state";
/// Key of the BTC/USD state inside [`STATE_BUCKET`] (KV subject `$KV.price_state.BTC-USD`).
pub const STATE_KEY: &str = "BTC-USD";
/// KV bucket holding the publishers' lease: the replica named in it is the one that polls the
/// exchanges. Written only by publishers, compare-and-set; its entries expire after the lease TTL.
pub const LEASE_BUCKET: &str = "publisher_lease";
/// Key of the BTC/USD publishers' lease inside [`LEASE_BUCKET`] (KV subject
/// `$KV.publisher_lease.BTC-USD`).
pub const LEASE_KEY: &str = "BTC-USD";

/// The `Nats-Msg-Id` of the tick for the round that starts at `slot_start_ms` (unix milliseconds).
///
/// Derived from the round's time slot alone, so two publisher replicas or a retry of the same round
/// produce the same id and JetStream stores the tick once.
pub fn tick_msg_id(slot_start_ms: i64) -> String {
    format!("{PAIR}:{slot_start_ms}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_subject_is_inside_the_stream_subjects() {
        let prefix = TICKS_SUBJECTS.trim_end_matches('>');
        assert!(TICK_SUBJECT.starts_with(prefix));
        assert!(TICK_SUBJECT.ends_with(PAIR));
    }

    #[test]
    fn msg_id_depends_only_on_the_slot() {
        assert_eq!(tick_msg_id(1_764_010_800_000), "BTC-USD:1764010800000");
        assert_eq!(tick_msg_id(5), tick_msg_id(5));
        assert_ne!(tick_msg_id(5), tick_msg_id(6));
    }
}
