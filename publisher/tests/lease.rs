//! The lease between publisher replicas against a real nats-server: two `Lease`s in one process
//! stand for two replicas; each `refresh` is what a replica does before a round.

use std::sync::Arc;
use std::time::{Duration, Instant};

use btc_contract::names;
use publisher::lease::{Lease, LeaseSettings, LeaseValue};
use publisher::metrics::PublisherMetrics;
use testkit::NatsServer;

const TTL: Duration = Duration::from_secs(1);
/// A round in these tests.
const ROUND: Duration = Duration::from_millis(50);
const DEADLINE: Duration = Duration::from_secs(20);

struct Replica {
    lease: Lease,
    metrics: Arc<PublisherMetrics>,
}

impl Replica {
    async fn open(nats: &NatsServer, name: &str, ttl: Duration) -> Self {
        let client = async_nats::connect(nats.url()).await.expect("connects");
        let metrics = Arc::new(PublisherMetrics::default());
        let settings = LeaseSettings { holder: name.to_string(), ttl, provision: Default::default() };
        let lease = Lease::open(&client, settings, metrics.clone()).await.expect("lease bucket");
        Self { lease, metrics }
    }

    fn transitions(&self, transition: &str) -> u64 {
        self.metrics.lease_transitions.with_label_values(&[transition]).get()
    }

    fn active(&self) -> i64 {
        self.metrics.lease_active.get()
    }
}

async fn admin(nats: &NatsServer) -> async_nats::jetstream::Context {
    async_nats::jetstream::new(async_nats::connect(nats.url()).await.expect("connects"))
}

async fn lease_holder(nats: &NatsServer) -> Option<LeaseValue> {
    let kv = admin(nats).await.get_key_value(names::LEASE_BUCKET).await.ok()?;
    LeaseValue::decode(&kv.get(names::LEASE_KEY).await.ok()??)
}

#[tokio::test]
async fn one_replica_holds_the_lease_renews_it_and_a_release_hands_it_over_at_once() {
    let nats = NatsServer::start();
    let mut a = Replica::open(&nats, "publisher-a", TTL).await;
    let mut b = Replica::open(&nats, "publisher-b", TTL).await;
    assert!(a.lease.refresh().await, "the first replica takes the free lease");
    assert!(!b.lease.refresh().await, "the second one stands by");
    for _ in 0..3 {
        assert!(a.lease.refresh().await, "the holder renews");
        assert!(!b.lease.refresh().await);
    }
    let holder = lease_holder(&nats).await.expect("a lease value");
    assert_eq!((holder.holder.as_str(), holder.instance.as_str()), ("publisher-a", a.lease.instance()));
    assert_eq!(holder.ttl_ms, 1000);
    assert_eq!((a.active(), b.active()), (1, 0));

    a.lease.release().await;
    assert!(!a.lease.is_valid());
    assert!(b.lease.refresh().await, "the standby takes a released lease at its next round");
    assert_eq!((a.active(), b.active()), (0, 1));
    assert_eq!((a.transitions("acquired"), a.transitions("released"), a.transitions("lost")), (1, 1, 0));
    assert_eq!(b.transitions("acquired"), 1);
    assert_eq!(lease_holder(&nats).await.map(|v| v.holder), Some("publisher-b".to_string()));
}

#[tokio::test]
async fn a_silent_holder_is_replaced_only_after_its_own_deadline_and_then_steps_down() {
    let nats = NatsServer::start();
    let mut a = Replica::open(&nats, "publisher-a", TTL).await;
    let mut b = Replica::open(&nats, "publisher-b", TTL).await;
    assert!(a.lease.refresh().await);
    let silent_since = Instant::now();
    // `a` stops renewing, as a frozen or partitioned process does; `b` checks every round.
    let mut rounds = Rounds::new();
    while !b.lease.refresh().await {
        rounds.next("the standby to take over").await;
    }
    let taken_at = silent_since.elapsed();
    // At the moment the standby may poll, the silent holder must no longer think it may.
    assert!(!a.lease.is_valid(), "both replicas hold a valid lease");
    println!("takeover {} ms after the last renewal (TTL {} ms)", taken_at.as_millis(), TTL.as_millis());
    assert!(taken_at >= TTL - TTL / 10 && taken_at <= TTL + 4 * ROUND, "taken over after {taken_at:?}");

    // Resumed, the old holder finds its lease gone and stands by without polling.
    assert!(!a.lease.refresh().await, "the resumed holder still polls");
    assert_eq!((a.active(), a.transitions("lost")), (0, 1));
    assert!(b.lease.refresh().await, "the new holder keeps it");
    assert_eq!(lease_holder(&nats).await.map(|v| v.holder), Some("publisher-b".to_string()));
}

#[tokio::test]
async fn a_lapsed_lease_nobody_took_is_renewed_by_its_holder() {
    let nats = NatsServer::start();
    let mut a = Replica::open(&nats, "publisher-a", TTL).await;
    assert!(a.lease.refresh().await);
    let mut rounds = Rounds::new();
    while a.lease.is_valid() {
        rounds.next("the holder's deadline to pass").await;
    }
    // Past its deadline it may not poll until it has written the lease again, which it may: no one
    // else wants it. Counted as lost and acquired: it did stop polling in between.
    assert!(a.lease.refresh().await);
    assert_eq!((a.transitions("lost"), a.transitions("acquired"), a.active()), (1, 2, 1));
}

#[tokio::test]
async fn a_renewal_stored_without_its_ack_is_recognised_as_the_holders_own() {
    let nats = NatsServer::start();
    let mut a = Replica::open(&nats, "publisher-a", TTL).await;
    let mut b = Replica::open(&nats, "publisher-b", TTL).await;
    assert!(a.lease.refresh().await);
    // The holder's value written once more behind its back: its next compare-and-set fails on the
    // revision, and the key still names this process.
    let kv = admin(&nats).await.get_key_value(names::LEASE_BUCKET).await.expect("bucket");
    let value = kv.get(names::LEASE_KEY).await.expect("get").expect("a value");
    kv.put(names::LEASE_KEY, value).await.expect("put");
    assert!(a.lease.refresh().await, "the holder lost its own lease");
    assert!(!b.lease.refresh().await);
    assert_eq!((a.transitions("acquired"), a.transitions("lost")), (1, 0));
}

#[tokio::test]
async fn the_buckets_max_age_only_grows_and_a_replica_trusts_the_shorter_ttl() {
    let nats = NatsServer::start();
    let js = admin(&nats).await;
    let max_age = || async {
        let mut stream = js.get_stream(format!("KV_{}", names::LEASE_BUCKET)).await.expect("lease stream");
        stream.info().await.expect("info").config.max_age
    };
    let two = Replica::open(&nats, "a", Duration::from_secs(2)).await;
    assert_eq!((max_age().await, two.lease.ttl()), (Duration::from_secs(2), Duration::from_secs(2)));
    let one = Replica::open(&nats, "b", Duration::from_secs(1)).await;
    assert_eq!((max_age().await, one.lease.ttl()), (Duration::from_secs(2), Duration::from_secs(1)));
    let three = Replica::open(&nats, "c", Duration::from_secs(3)).await;
    assert_eq!((max_age().await, three.lease.ttl()), (Duration::from_secs(3), Duration::from_secs(3)));
}

#[tokio::test]
async fn a_deleted_bucket_is_made_again_and_nobody_polls_under_two_leases_meanwhile() {
    let nats = NatsServer::start();
    let mut a = Replica::open(&nats, "publisher-a", TTL).await;
    let mut b = Replica::open(&nats, "publisher-b", TTL).await;
    assert!(a.lease.refresh().await);
    assert!(!b.lease.refresh().await);
    admin(&nats).await.delete_key_value(names::LEASE_BUCKET).await.expect("bucket deleted");

    // Both go on with their rounds, the standby first: it makes the bucket again. A replica polls
    // while its lease is valid, so at no moment may both be valid; and one must poll again.
    let mut rounds = Rounds::new();
    loop {
        let b_polls = b.lease.refresh().await;
        assert!(!(b_polls && a.lease.is_valid()), "both replicas poll");
        let a_polls = a.lease.refresh().await;
        assert!(!(a_polls && b.lease.is_valid()), "both replicas poll");
        // Polling on a renewal that failed is fine until the deadline; done when one holds anew.
        if (a_polls || b_polls) && lease_holder(&nats).await.is_some() {
            break;
        }
        rounds.next("a replica to hold the lease again").await;
    }
}

/// Rounds of a replica, each [`ROUND`] long, for at most [`DEADLINE`].
struct Rounds(Instant);

impl Rounds {
    fn new() -> Self {
        Self(Instant::now())
    }

    async fn next(&mut self, waiting_for: &str) {
        assert!(self.0.elapsed() < DEADLINE, "timed out after {DEADLINE:?} waiting for {waiting_for}");
        tokio::time::sleep(ROUND).await;
    }
}
