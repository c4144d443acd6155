//! A rate-limit signal backs its source off like a 429 and never opens its circuit breaker: rounds
//! over real HTTP against stand-ins answering with each exchange's own signal inside an HTTP 200.
//! The publisher runs with its default pairs, so these also check that the exchange's limit is
//! shared by its pairs: a rate limit met by one pair holds back the requests of all of them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use clap::Parser;
use exchange_standin::{Behaviour, StandIn, Venue, source_urls};
use publisher::PublisherConfig;
use publisher::fetch::{Fetcher, Plaintext};
use publisher::metrics::PublisherMetrics;
use publisher::round::Rounds;

const DEADLINE: Duration = Duration::from_secs(30);
/// The default pairs, whose series the metrics are summed over.
const PAIRS: [&str; 4] = ["BTC-USD", "BTC-EUR", "BTC-GBP", "ETH-USD"];
/// The `unlisted` outcome is left out: a pair a venue does not list is never asked for.
/// Every outcome but `rate_limited`: any of them would count towards the breaker.
const FAILURES: [&str; 9] = [
    "timeout",
    "transport",
    "http_status",
    "redirect",
    "insecure_url",
    "invalid_body",
    "invalid_price",
    "exchange_error",
    "body_too_large",
];

/// The start and the end of the round that sent a request, by the monotonic and the wall clock.
#[derive(Debug, Clone, Copy)]
struct Asked {
    round_start: Instant,
    round_end: Instant,
    wall_start: DateTime<Utc>,
    wall_end: DateTime<Utc>,
}

struct Harness {
    stand_ins: Vec<StandIn>,
    rounds: Rounds,
    metrics: Arc<PublisherMetrics>,
    asked: Vec<Vec<Asked>>,
}

impl Harness {
    async fn start(venues: &[Venue], behaviour: Behaviour, extra: &[&str]) -> Self {
        let mut stand_ins = Vec::new();
        for &venue in venues {
            let stand_in = StandIn::start(venue, 97_000.0).await.expect("stand-in starts");
            stand_in.set_behaviour(behaviour.clone());
            stand_ins.push(stand_in);
        }
        let names: Vec<&str> = venues.iter().map(|venue| venue.name()).collect();
        let mut args = vec![
            "publisher".to_string(),
            "--sources".into(),
            names.join(","),
            "--source-urls".into(),
            source_urls(&stand_ins),
            "--poll-interval".into(),
            "100ms".into(),
            "--request-timeout".into(),
            "500ms".into(),
            "--pairs".into(),
            PAIRS.join(","),
        ];
        args.extend(extra.iter().map(|arg| arg.to_string()));
        let config = PublisherConfig::try_parse_from(args).expect("publisher config");
        let metrics = Arc::new(PublisherMetrics::default());
        let fetcher = Fetcher::new(config.request_timeout, Plaintext::Allowed).expect("HTTP client");
        let rounds = Rounds::new(&config, fetcher, metrics.clone());
        let asked = vec![Vec::new(); stand_ins.len()];
        Self { stand_ins, rounds, metrics, asked }
    }

    /// Runs a round every 100 ms, as the publisher's loop does, until `done` or the deadline;
    /// notes which round sent each request and checks after every round that no breaker opened
    /// and nothing was counted as a failure.
    async fn run_until(&mut self, what: &str, done: impl Fn(&Self) -> bool) {
        let mut pace = tokio::time::interval(Duration::from_millis(100));
        let started = Instant::now();
        while !done(self) {
            assert!(started.elapsed() < DEADLINE, "timed out after {DEADLINE:?} waiting for {what}");
            pace.tick().await;
            let (round_start, wall_start) = (Instant::now(), Utc::now());
            self.rounds.run(wall_start).await;
            let asked = Asked { round_start, round_end: Instant::now(), wall_start, wall_end: Utc::now() };
            for (index, stand_in) in self.stand_ins.iter().enumerate() {
                while (self.asked[index].len() as u64) < stand_in.requests() {
                    self.asked[index].push(asked);
                }
                let venue = stand_in.venue();
                let answers = self.asked[index].len();
                assert!(!self.breaker_open(venue), "{venue}: breaker opened after {answers} rate-limit answers");
                assert_eq!(self.failures(venue), 0, "{venue}: a rate limit was counted as a failure");
            }
        }
    }

    /// `btc_publisher_fetches_total` of `venue` and `outcome`, all pairs together.
    fn fetches(&self, venue: Venue, outcome: &str) -> u64 {
        PAIRS.iter().map(|pair| self.metrics.fetches.with_label_values(&[venue.name(), pair, outcome]).get()).sum()
    }

    fn rate_limited(&self, venue: Venue) -> u64 {
        self.fetches(venue, "rate_limited")
    }

    fn failures(&self, venue: Venue) -> u64 {
        FAILURES.iter().map(|outcome| self.fetches(venue, outcome)).sum()
    }

    fn breaker_open(&self, venue: Venue) -> bool {
        PAIRS.iter().any(|pair| self.metrics.circuit_open.with_label_values(&[venue.name(), pair]).get() != 0)
    }
}

#[tokio::test]
async fn many_rate_limit_answers_never_open_the_breaker() {
    // A breaker that opens on the first failure, and no wait beyond each exchange's minimum
    // interval, so many answers come quickly: none may count as a failure.
    let venues = [Venue::Kraken, Venue::Bitfinex];
    let extra = ["--breaker-failures", "1", "--rate-limit-backoff", "0s"];
    let mut harness = Harness::start(&venues, Behaviour::ThrottledIn200, &extra).await;
    harness
        .run_until("five rate-limit answers from each venue", |h| venues.iter().all(|v| h.rate_limited(*v) >= 5))
        .await;
    for venue in venues {
        for pair in PAIRS {
            assert_eq!(harness.metrics.source_up.with_label_values(&[venue.name(), pair]).get(), 0, "{venue} {pair}");
        }
    }
}

#[tokio::test]
async fn a_rate_limited_source_is_not_asked_again_before_the_backoff_ends() {
    let backoff = Duration::from_secs(3);
    let venues = [Venue::Kraken, Venue::Bitfinex];
    let mut harness = Harness::start(&venues, Behaviour::ThrottledIn200, &["--rate-limit-backoff", "3s"]).await;
    harness.run_until("each venue asked twice", |h| h.stand_ins.iter().all(|s| s.requests() >= 2)).await;
    for (index, venue) in venues.into_iter().enumerate() {
        let asked = &harness.asked[index];
        // The backoff starts when the answer arrives, after the first round started; the second
        // request is sent before its round ends.
        let gap = asked[1].round_end - asked[0].round_start;
        println!("{venue}: asked again {gap:?} after the first rate-limit answer (backoff {backoff:?})");
        assert!(gap >= backoff, "{venue} was asked again after {gap:?}, within the {backoff:?} backoff");
        assert_eq!(harness.rate_limited(venue), 2, "{venue}");
    }
}

#[tokio::test]
async fn binance_us_near_its_weight_limit_is_not_asked_again_before_the_minute_rolls_over() {
    let mut harness = Harness::start(&[Venue::BinanceUs], Behaviour::UsedWeight(1_150), &[]).await;
    harness.run_until("the first answer", |h| h.stand_ins[0].requests() >= 1).await;
    let first = harness.asked[0][0];
    let observe = first.round_start + Duration::from_secs(3);
    harness.run_until("three seconds of rounds", |_| Instant::now() >= observe).await;
    // Every answer near the limit is a rate limit. Not "exactly one": when the first answer comes
    // in the last seconds of a minute, the next minute (and its request) begins within the three.
    let answers = harness.asked[0].len() as u64;
    assert_eq!(harness.rate_limited(Venue::BinanceUs), answers, "each answer near the limit is a rate limit");
    // The minute the answer came in ends at the next whole minute by the wall clock; nothing may
    // be sent before it (Binance.US's one-a-second minimum interval alone would have allowed two).
    let minute_ends =
        first.wall_start.duration_trunc(TimeDelta::minutes(1)).expect("whole minute") + TimeDelta::minutes(1);
    for later in &harness.asked[0][1..] {
        assert!(
            later.wall_end >= minute_ends,
            "asked again at {} before the minute ended at {minute_ends}",
            later.wall_end
        );
    }
}
