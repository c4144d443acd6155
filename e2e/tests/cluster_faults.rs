//! JetStream cluster faults, checked like Jepsen does: while ticks are published through the
//! publisher's own publish path (same Msg-Id on retry), the stream leader is killed with SIGKILL,
//! restarted, and then frozen with SIGSTOP past the election timeout. Afterwards every tick that
//! was acknowledged must be stored exactly once and in acknowledgement order, and the services
//! must have reconnected by themselves. Run by `make test-faults` (part of `make test`).

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use btc_contract::names::TICKS_STREAM;
use btc_contract::{Dispersion, SCHEMA_VERSION, Tick};
use btc_runtime::jetstream::{Provision, WhenMissing, ensure_ticks_stream};
use btc_runtime::stream_config::StreamArgs;
use chrono::{TimeZone, Utc};
use testkit::cluster::NatsCluster;
use testkit::process::ServiceProcess;
use testkit::wait_for;

const DEADLINE: Duration = Duration::from_secs(60);

fn tick(slot: i64) -> Tick {
    Tick {
        schema_version: SCHEMA_VERSION,
        pair: "BTC-USD".into(),
        time: Utc.timestamp_millis_opt(slot).single().expect("valid time"),
        oldest_quote_time: None,
        price: 90_000.0,
        dispersion: Dispersion { low: 90_000.0, high: 90_000.0, std_dev: 0.0, used: 3 },
        sources: Vec::new(),
    }
}

async fn stream_leader(js: &jetstream::Context) -> Option<String> {
    let mut stream = js.get_stream(TICKS_STREAM).await.ok()?;
    stream.info().await.ok()?.cluster.as_ref()?.leader.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fault test (about a minute): run by `make test-faults`, which `make test` includes"]
async fn acked_ticks_survive_leader_kill_and_pause_exactly_once_and_in_order() {
    let mut cluster = NatsCluster::start(3);
    let urls = cluster.urls();
    let client = btc_runtime::nats::NatsArgs::local(urls.clone()).connect("checker").await.expect("client");
    let js = jetstream::ContextBuilder::new().timeout(Duration::from_secs(2)).build(client);
    let args = StreamArgs { replicas: 3, ..StreamArgs::default() };
    wait_for("the R3 ticks stream", DEADLINE, || async { ensure_ticks_stream(&js, &args).await.ok() }).await;

    // The real aggregator and bitcoin-api, connected to all three nodes.
    let aggregator = ServiceProcess::spawn(
        "aggregator",
        &["--nats-url", &urls, "--nats-replicas", "3", "--ops-addr", "127.0.0.1:0"],
        &[],
    );
    let bitcoin_api = ServiceProcess::spawn(
        "bitcoin-api",
        &["--nats-url", &urls, "--listen-addr", "127.0.0.1:0", "--ops-addr", "127.0.0.1:0"],
        &[],
    );
    let ops = aggregator.listening("ops_addr").await;
    let api = bitcoin_api.listening("addr").await;

    // The publisher side: ticks for successive slots, each retried with its Msg-Id until acked.
    let acked: Arc<Mutex<Vec<i64>>> = Arc::default();
    let stop = tokio_util::sync::CancellationToken::new();
    // As the publisher with NATS_REPLICAS=3: a publish that finds no stream sets it up as R3. (A
    // default, R1, provision turned the stream into R1 whenever a publish met the leader change.)
    let provision = Provision::new(args.clone(), WhenMissing::Create);
    let publishing = tokio::spawn({
        let (js, acked, stop, provision) = (js.clone(), acked.clone(), stop.clone(), provision.clone());
        async move {
            let metrics = publisher::metrics::PublisherMetrics::default();
            let start = Utc::now().timestamp_millis() / 100 * 100;
            let mut slot = start;
            while !stop.is_cancelled() {
                slot += 100;
                if publisher::publish::publish_tick(
                    &js,
                    &provision,
                    &btc_contract::Pair::seed(),
                    &tick(slot),
                    Duration::from_secs(20),
                    &metrics,
                )
                .await
                .is_some()
                {
                    acked.lock().expect("acked list").push(slot);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    let acked_count = || acked.lock().map(|a| a.len()).unwrap_or(0);
    let http = reqwest::Client::new();
    let price_url = format!("http://{api}/btc/USD");
    let answers = || async { http.get(&price_url).send().await.map(|r| r.status().as_u16()).unwrap_or(0) };

    let mut target = 50;
    wait_for("50 acked ticks", DEADLINE, || async { (acked_count() >= target).then_some(()) }).await;
    wait_for("bitcoin-api to serve a price", DEADLINE, || async { (answers().await == 200).then_some(()) }).await;

    // 1. SIGKILL the stream leader, publish on, bring it back.
    let leader = wait_for("a stream leader", DEADLINE, || stream_leader(&js)).await;
    let index = cluster.index_of(&leader).expect("leader is a node");
    cluster.kill(index);
    target += 50;
    wait_for("50 more acks with the old leader dead", DEADLINE, || async { (acked_count() >= target).then_some(()) })
        .await;
    assert_eq!(answers().await, 200, "bitcoin-api stopped answering after the leader was killed");
    cluster.restart(index);
    cluster.wait_healthy(DEADLINE);

    // 2. SIGSTOP the (new) leader until another one is elected, publish on, then SIGCONT.
    let leader = wait_for("a stream leader", DEADLINE, || stream_leader(&js)).await;
    let paused = cluster.index_of(&leader).expect("leader is a node");
    cluster.pause(paused);
    let paused_name = cluster.node_name(paused).to_string();
    wait_for("a new leader while the old one is frozen", DEADLINE, || async {
        stream_leader(&js).await.filter(|l| *l != paused_name)
    })
    .await;
    target = acked_count() + 50;
    wait_for("50 more acks with the leader frozen", DEADLINE, || async { (acked_count() >= target).then_some(()) })
        .await;
    cluster.resume(paused);
    target = acked_count() + 30;
    wait_for("30 more acks after the thaw", DEADLINE, || async { (acked_count() >= target).then_some(()) }).await;
    stop.cancel();
    let _ = publishing.await;
    assert_eq!(answers().await, 200, "bitcoin-api stopped answering");

    // The checker: acked ⊆ stored, each slot stored once, acked order kept.
    let acked = acked.lock().expect("acked list").clone();
    let stored: Vec<i64> = support::read_ticks(&js).await.iter().map(|t| t.time.timestamp_millis()).collect();
    let mut unique = stored.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), stored.len(), "a tick was stored twice");
    let mut stream = js.get_stream(TICKS_STREAM).await.expect("ticks stream");
    let replicas = stream.info().await.expect("stream info").config.num_replicas;
    assert_eq!(replicas, 3, "the faults (or a client) changed the stream's replicas");
    let position: std::collections::HashMap<i64, usize> = stored.iter().enumerate().map(|(i, s)| (*s, i)).collect();
    let mut last = None;
    for slot in &acked {
        let at = *position.get(slot).unwrap_or_else(|| panic!("acked tick {slot} is not stored"));
        assert!(last.is_none_or(|l| at > l), "acked tick {slot} stored out of acknowledgement order");
        last = Some(at);
    }

    // The aggregator reconnected by itself and applied everything.
    let ops_url = format!("http://{ops}/metrics");
    wait_for("the aggregator to catch up", DEADLINE, || async {
        let text = http.get(&ops_url).send().await.ok()?.text().await.ok()?;
        let lag = text.lines().find(|l| l.starts_with("btc_aggregator_lag_messages "))?;
        (lag.ends_with(" 0")).then_some(())
    })
    .await;
    println!("checker: {} acked, {} stored, all acked stored once and in order", acked.len(), stored.len());
}
