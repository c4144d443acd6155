//! A publisher of two pairs against a real nats-server and stand-ins of three exchanges: each
//! pair's ticks arrive on its own subject, name their pair, sit at that pair's price level and
//! carry their own de-duplication ids; and two pairs do not ask an exchange more often than one.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use btc_contract::{Pair, Tick, names};
use clap::Parser;
use exchange_standin::{StandIn, Venue, source_urls};
use futures::StreamExt;
use publisher::PublisherConfig;
use testkit::NatsServer;
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(30);
/// Ticks wanted per pair before the checks.
const TICKS_PER_PAIR: usize = 3;

/// Subject -> (Nats-Msg-Id, tick) of every message seen.
type Seen = BTreeMap<String, Vec<(String, Tick)>>;

/// Three stand-ins, ETH-USD at 3,000 x each one's BTC-USD price / 97,000.
async fn stand_ins(eth: &Pair) -> Vec<StandIn> {
    let mut stand_ins = Vec::new();
    for (venue, price) in [(Venue::Coinbase, 97_000.0), (Venue::Kraken, 97_010.0), (Venue::Bitstamp, 96_990.0)] {
        let stand_in = StandIn::start(venue, price).await.expect("stand-in starts");
        stand_in.set_pair_price(eth, price / 97_000.0 * 3_000.0);
        stand_ins.push(stand_in);
    }
    stand_ins
}

fn config(nats: &NatsServer, stand_ins: &[StandIn]) -> PublisherConfig {
    PublisherConfig::try_parse_from([
        "publisher".to_string(),
        "--nats-url".into(),
        nats.url(),
        "--sources".into(),
        "coinbase,kraken,bitstamp".into(),
        "--source-urls".into(),
        source_urls(stand_ins),
        "--pairs".into(),
        "BTC-USD,ETH-USD".into(),
        "--quorum".into(),
        "3".into(),
        "--poll-interval".into(),
        "200ms".into(),
        "--request-timeout".into(),
        "500ms".into(),
        "--ops-addr".into(),
        "127.0.0.1:0".into(),
    ])
    .expect("publisher config")
}

/// Reads `ticks` until each of `pairs` has [`TICKS_PER_PAIR`] ticks, or panics at the deadline.
async fn collect(ticks: &mut async_nats::Subscriber, pairs: &[&Pair]) -> Seen {
    let mut seen = Seen::new();
    let enough = |seen: &Seen| {
        pairs.iter().all(|pair| seen.get(&pair.ticks_subject()).is_some_and(|t| t.len() >= TICKS_PER_PAIR))
    };
    let read = async {
        while !enough(&seen) {
            let message = ticks.next().await.expect("subscription open");
            let id = message.headers.as_ref().and_then(|h| h.get("Nats-Msg-Id")).map(|v| v.to_string());
            let tick = Tick::decode(&message.payload).expect("a tick");
            seen.entry(message.subject.to_string()).or_default().push((id.expect("a Nats-Msg-Id"), tick));
        }
    };
    if tokio::time::timeout(DEADLINE, read).await.is_err() {
        panic!("timed out after {DEADLINE:?}; ticks so far: {:?}", seen.keys());
    }
    seen
}

#[tokio::test]
async fn each_pair_is_published_on_its_own_subject_at_its_own_level() {
    let nats = NatsServer::start();
    let (btc, eth): (Pair, Pair) = ("BTC-USD".parse().expect("a pair"), "ETH-USD".parse().expect("a pair"));
    let stand_ins = stand_ins(&eth).await;
    let client = async_nats::connect(nats.url()).await.expect("connects");
    let mut ticks = client.subscribe(names::TICKS_SUBJECTS).await.expect("subscribes");
    client.flush().await.expect("subscription registered");

    let shutdown = CancellationToken::new();
    let started = std::time::Instant::now();
    let running = publisher::start(config(&nats, &stand_ins), shutdown.clone()).await.expect("publisher starts");
    let seen = collect(&mut ticks, &[&btc, &eth]).await;
    shutdown.cancel();
    running.wait().await.expect("publisher stops cleanly");
    // Each exchange's one-a-second limit is shared by both pairs: at most one request a second.
    let most = started.elapsed().as_secs() + 1;
    for stand_in in &stand_ins {
        assert!(stand_in.requests() <= most, "{}: {} requests in {most} s", stand_in.venue(), stand_in.requests());
        assert_eq!(stand_in.max_concurrent_requests(), 1, "{}", stand_in.venue());
    }

    assert_eq!(seen.keys().cloned().collect::<Vec<_>>(), [btc.ticks_subject(), eth.ticks_subject()]);
    let mut ids = BTreeSet::new();
    for (pair, level) in [(&btc, 97_000.0), (&eth, 3_000.0)] {
        for (id, tick) in &seen[&pair.ticks_subject()] {
            assert_eq!(tick.pair, pair.as_str(), "{tick:?}");
            assert_eq!(*id, names::tick_msg_id(pair, tick.time.timestamp_millis()));
            assert!((tick.price - level).abs() < level * 0.001, "{pair} at {}, not near {level}", tick.price);
            assert_eq!(tick.dispersion.used, 3, "{tick:?}");
            assert!(ids.insert(id.clone()), "msg id {id} used twice");
        }
    }
}
