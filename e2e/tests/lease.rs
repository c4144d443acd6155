//! Publisher replicas share the exchanges' rate limits: of several publishers, one polls (it holds
//! the lease in the KV bucket `publisher_lease`) and the others stand by and take over when the
//! lease lapses (SIGKILL, SIGSTOP) or is released (SIGTERM).
//!
//! The real `publisher` binary, each replica in its own process with its own exchange stand-ins at
//! its own price: a request is attributed to the replica that sent it, a stored tick to the replica
//! that made it.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use btc_contract::{Tick, names};
use exchange_standin::{StandIn, Venue};
use support::{DEADLINE, Pipeline};
use testkit::process::ServiceProcess;
use testkit::wait_for;

/// Not a divisor of the exchanges' 1 s minimum interval: each one is polled every 4th round
/// (1.2 s) exactly, so request counts over whole cycles do not depend on timer jitter.
const POLL_INTERVAL: Duration = Duration::from_millis(300);
const LEASE_TTL: Duration = Duration::from_secs(1);
/// Rounds per polling cycle of an exchange (1.2 s / 300 ms).
const ROUNDS_PER_CYCLE: usize = 4;
const VENUES: [Venue; 3] = [Venue::Coinbase, Venue::Kraken, Venue::Bitstamp];

struct Replica {
    name: &'static str,
    price: f64,
    stand_ins: Vec<StandIn>,
    process: ServiceProcess,
    ops_url: String,
}

impl Replica {
    async fn start(pipeline: &Pipeline, name: &'static str, price: f64, lease_ttl: Duration) -> Self {
        Self::start_with(pipeline, name, price, lease_ttl, &[]).await
    }

    async fn start_with(
        pipeline: &Pipeline,
        name: &'static str,
        price: f64,
        lease_ttl: Duration,
        extra: &[&str],
    ) -> Self {
        let mut stand_ins = Vec::new();
        for venue in VENUES {
            stand_ins.push(StandIn::start(venue, price).await.expect("stand-in starts"));
        }
        let url = pipeline.nats.url();
        let sources = VENUES.map(Venue::name).join(",");
        let urls = exchange_standin::source_urls(&stand_ins);
        let poll = format!("{}ms", POLL_INTERVAL.as_millis());
        let ttl = format!("{}ms", lease_ttl.as_millis());
        let mut args = vec![
            "--nats-url",
            &url,
            "--sources",
            &sources,
            "--source-urls",
            &urls,
            "--poll-interval",
            &poll,
            "--quorum",
            "2",
            // One pair: each round asks every exchange once, as these tests count.
            "--pairs",
            "BTC-USD",
            "--ops-addr",
            "127.0.0.1:0",
        ];
        // Flags in `extra` override these.
        args.extend_from_slice(extra);
        let env = [("LEASE_TTL", ttl.as_str()), ("POD_NAME", name), ("REQUEST_TIMEOUT", "500ms"), ("RUST_LOG", "info")];
        let process = ServiceProcess::spawn("publisher", &args, &env);
        let ops = process.listening("ops_addr").await;
        Self { name, price, stand_ins, process, ops_url: format!("http://{ops}") }
    }

    /// Requests each of this replica's stand-ins received, in `VENUES` order.
    fn requests(&self) -> Vec<u64> {
        self.stand_ins.iter().map(StandIn::requests).collect()
    }

    fn total_requests(&self) -> u64 {
        self.requests().iter().sum()
    }

    fn signal(&self, signal: &str) {
        let pid = self.process.pid().expect("running").to_string();
        let status = Command::new("kill").args([format!("-{signal}"), pid]).status().expect("kill runs");
        assert!(status.success(), "kill -{signal} {} failed", self.name);
    }

    /// The value of the sample `name` (with its labels, as exposed) on the replica's `/metrics`.
    async fn metric(&self, pipeline: &Pipeline, name: &str) -> Option<f64> {
        pipeline.metric(&self.ops_url, name).await
    }

    async fn wait_until_ready(&self, pipeline: &Pipeline) {
        wait_for(&format!("{} to be ready", self.name), DEADLINE, || async {
            (pipeline.get_text(&format!("{}/readiness", self.ops_url)).await.0 == 200).then_some(())
        })
        .await;
    }
}

/// The newest tick in the stream.
async fn newest_tick(js: &async_nats::jetstream::Context) -> Option<Tick> {
    let stream = js.get_stream(names::TICKS_STREAM).await.ok()?;
    let message = stream.get_last_raw_message_by_subject(names::TICK_SUBJECT).await.ok()?;
    Tick::decode(&message.payload).ok()
}

/// Waits for the first tick in the stream made from `replica`'s stand-ins.
async fn first_tick_of(js: &async_nats::jetstream::Context, replica: &Replica) -> Tick {
    let tick = testkit::poll_every(Duration::from_millis(25), DEADLINE, || async {
        newest_tick(js).await.filter(|tick| tick.price == replica.price)
    })
    .await;
    tick.unwrap_or_else(|| panic!("no tick from {} within {DEADLINE:?}:\n{}", replica.name, replica.process.log()))
}

/// Waits until `rounds` more ticks are stored than now.
async fn wait_for_rounds(js: &async_nats::jetstream::Context, rounds: usize) {
    let start = support::count_ticks(js).await;
    wait_for(&format!("{rounds} more ticks"), DEADLINE, || async {
        (support::count_ticks(js).await >= start + rounds).then_some(())
    })
    .await;
}

/// `Nats-Msg-Id` and tick time of every message in the stream, in stream order.
async fn stored_ticks(js: &async_nats::jetstream::Context) -> Vec<(String, i64, f64)> {
    let mut stream = js.get_stream(names::TICKS_STREAM).await.expect("ticks stream");
    let last = stream.info().await.expect("stream info").state.last_sequence;
    let mut stored = Vec::new();
    for sequence in 1..=last {
        let message = stream.get_raw_message(sequence).await.expect("stored message");
        let id = message.headers.get("Nats-Msg-Id").map(|v| v.to_string()).unwrap_or_default();
        let tick = Tick::decode(&message.payload).expect("a tick");
        stored.push((id, tick.time.timestamp_millis(), tick.price));
    }
    stored
}

fn assert_each_round_stored_once(stored: &[(String, i64, f64)]) {
    let mut ids: Vec<&str> = stored.iter().map(|(id, _, _)| id.as_str()).collect();
    let mut times: Vec<i64> = stored.iter().map(|(_, time, _)| *time).collect();
    ids.sort_unstable();
    ids.dedup();
    times.sort_unstable();
    times.dedup();
    assert_eq!(ids.len(), stored.len(), "a Nats-Msg-Id is stored twice: {stored:?}");
    assert_eq!(times.len(), stored.len(), "a round's time is stored twice: {stored:?}");
}

/// Replica `a` active, then replica `b` started and seen standing by: ready, and not one request
/// to its exchanges during a whole polling cycle of `a` after it was ready.
async fn active_and_standby(pipeline: &Pipeline, lease_ttl: Duration) -> (Replica, Replica) {
    active_and_standby_with(pipeline, lease_ttl, &[]).await
}

async fn active_and_standby_with(pipeline: &Pipeline, lease_ttl: Duration, a_extra: &[&str]) -> (Replica, Replica) {
    let js = pipeline.jetstream().await;
    let a = Replica::start_with(pipeline, "publisher-a", 50_000.0, lease_ttl, a_extra).await;
    first_tick_of(&js, &a).await;
    let b = Replica::start(pipeline, "publisher-b", 51_000.0, lease_ttl).await;
    b.wait_until_ready(pipeline).await;
    wait_for_rounds(&js, 2 * ROUNDS_PER_CYCLE).await;
    assert_eq!(b.total_requests(), 0, "the second replica polled while the first one was active");
    assert_eq!(newest_tick(&js).await.map(|t| t.price), Some(a.price), "the stream's ticks come from the active one");
    assert_eq!(a.metric(pipeline, "btc_publisher_lease_active").await, Some(1.0), "{}", a.process.log());
    assert_eq!(b.metric(pipeline, "btc_publisher_lease_active").await, Some(0.0), "{}", b.process.log());
    (a, b)
}

/// Requests per second each venue received, summed over `replicas`, measured over `cycles` whole
/// polling cycles, from just after one stored tick to just after another.
async fn request_rates(js: &async_nats::jetstream::Context, replicas: &[&Replica], cycles: usize) -> Vec<f64> {
    let per_venue = || -> Vec<u64> {
        let mut sums = vec![0; VENUES.len()];
        for replica in replicas {
            for (sum, count) in sums.iter_mut().zip(replica.requests()) {
                *sum += count;
            }
        }
        sums
    };
    wait_for_rounds(js, 1).await;
    let (before, started) = (per_venue(), Instant::now());
    wait_for_rounds(js, cycles * ROUNDS_PER_CYCLE).await;
    let (after, elapsed) = (per_venue(), started.elapsed().as_secs_f64());
    before.iter().zip(after).map(|(b, a)| (a - b) as f64 / elapsed).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_send_each_exchange_the_request_rate_of_one() {
    let pipeline = Pipeline::start(&[]).await;
    let js = pipeline.jetstream().await;
    let a = Replica::start(&pipeline, "publisher-a", 50_000.0, LEASE_TTL).await;
    first_tick_of(&js, &a).await;
    let one = request_rates(&js, &[&a], 8).await;

    let b = Replica::start(&pipeline, "publisher-b", 50_000.0, LEASE_TTL).await;
    b.wait_until_ready(&pipeline).await;
    let two = request_rates(&js, &[&a, &b], 8).await;

    for ((venue, one), two) in VENUES.iter().zip(&one).zip(&two) {
        println!("{venue}: {one:.3} requests/s with one replica, {two:.3} with two");
    }
    for ((venue, one), two) in VENUES.iter().zip(&one).zip(&two) {
        assert!(*one > 0.5, "{venue} was polled at {one:.3}/s by one replica");
        assert!((two - one).abs() <= 0.15 * one, "{venue}: {one:.3}/s with one replica but {two:.3}/s with two");
    }
    assert_eq!(b.total_requests(), 0, "the standby polled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standby_takes_over_from_a_killed_publisher_within_the_lease_ttl_and_two_rounds() {
    let pipeline = Pipeline::start(&[]).await;
    let js = pipeline.jetstream().await;
    let (mut a, b) = active_and_standby(&pipeline, LEASE_TTL).await;

    let killed = Instant::now();
    a.process.kill();
    first_tick_of(&js, &b).await;
    let takeover = killed.elapsed();
    println!("takeover after SIGKILL: {} ms", takeover.as_millis());
    assert!(takeover <= 2 * POLL_INTERVAL + LEASE_TTL, "takeover took {takeover:?}:\n{}", b.process.log());
    assert_eq!(b.metric(&pipeline, "btc_publisher_lease_active").await, Some(1.0));
    assert_eq!(b.metric(&pipeline, "btc_publisher_lease_transitions_total{transition=\"acquired\"}").await, Some(1.0));
    wait_for_rounds(&js, 2).await;
    assert_each_round_stored_once(&stored_ticks(&js).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_resumed_after_sigstop_steps_down_without_polling() {
    let pipeline = Pipeline::start(&[]).await;
    let js = pipeline.jetstream().await;
    let (a, b) = active_and_standby(&pipeline, LEASE_TTL).await;

    let stopped = Instant::now();
    a.signal("STOP");
    first_tick_of(&js, &b).await;
    let takeover = stopped.elapsed();
    println!("takeover after SIGSTOP: {} ms", takeover.as_millis());
    assert!(takeover <= 2 * POLL_INTERVAL + LEASE_TTL, "takeover took {takeover:?}:\n{}", b.process.log());

    // Frozen past its lease, then resumed: it must see the lease gone and stand by, with not one
    // request to its exchanges, while the new holder goes on.
    let before_resume = a.requests();
    a.signal("CONT");
    wait_for("the resumed publisher to report standby", DEADLINE, || async {
        (a.metric(&pipeline, "btc_publisher_lease_active").await == Some(0.0)).then_some(())
    })
    .await;
    wait_for_rounds(&js, 3 * ROUNDS_PER_CYCLE).await;
    assert_eq!(a.requests(), before_resume, "the resumed publisher polled:\n{}", a.process.log());
    assert_eq!(newest_tick(&js).await.map(|t| t.price), Some(b.price));
    assert_eq!(a.metric(&pipeline, "btc_publisher_lease_transitions_total{transition=\"lost\"}").await, Some(1.0));
    assert_eq!(b.metric(&pipeline, "btc_publisher_lease_active").await, Some(1.0));

    let stored = stored_ticks(&js).await;
    assert_each_round_stored_once(&stored);
    let first_of_b = stored.iter().position(|(_, _, price)| *price == b.price).expect("a tick of b");
    assert!(
        stored[first_of_b..].iter().all(|(_, _, price)| *price == b.price),
        "the resumed publisher stored a tick after the takeover: {stored:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_the_lease_over_at_once() {
    // A long TTL: a takeover that waited for the lease to lapse would take 5 s.
    let lease_ttl = Duration::from_secs(5);
    let pipeline = Pipeline::start(&[]).await;
    let js = pipeline.jetstream().await;
    let (mut a, b) = active_and_standby(&pipeline, lease_ttl).await;

    let terminated = Instant::now();
    let status = a.process.terminate().expect("exit status");
    assert!(status.success(), "exited with {status}: {}", a.process.log());
    first_tick_of(&js, &b).await;
    let takeover = terminated.elapsed();
    println!("takeover after SIGTERM: {} ms", takeover.as_millis());
    // The release, then the standby's next round: within two rounds, with room for scheduling.
    let bound = 2 * POLL_INTERVAL + Duration::from_millis(250);
    assert!(takeover <= bound, "takeover took {takeover:?}:\n{}\n{}", a.process.log(), b.process.log());
    assert!(a.process.log().contains("lease released"), "{}", a.process.log());
    wait_for_rounds(&js, 2).await;
    assert_each_round_stored_once(&stored_ticks(&js).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rounds_longer_than_the_lease_ttl_do_not_move_the_lease() {
    use exchange_standin::Behaviour;
    let pipeline = Pipeline::start(&[]).await;
    let js = pipeline.jetstream().await;
    // Each request to a hanging exchange holds the round for 1.5 s, longer than the 1 s TTL; the
    // breaker stays closed so that every round waits for it.
    let extra = ["--request-timeout", "1500ms", "--breaker-failures", "1000"];
    let (a, b) = active_and_standby_with(&pipeline, LEASE_TTL, &extra).await;
    a.stand_ins[0].set_behaviour(Behaviour::Hang);
    let hung_before = a.requests()[0];
    wait_for("five rounds held by the hanging exchange, or the standby polling", DEADLINE, || async {
        (a.requests()[0] >= hung_before + 5 || b.total_requests() > 0).then_some(())
    })
    .await;
    assert_eq!(b.total_requests(), 0, "the standby polled:\n{}", b.process.log());
    assert_eq!(a.metric(&pipeline, "btc_publisher_lease_transitions_total{transition=\"lost\"}").await, Some(0.0));
    assert_eq!(a.metric(&pipeline, "btc_publisher_lease_active").await, Some(1.0));
    assert_each_round_stored_once(&stored_ticks(&js).await);
}
