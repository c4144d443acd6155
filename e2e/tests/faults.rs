//! Faults the service must ride out on its own: NATS going away and coming back, history across
//! NATS restarts, and SIGTERM on every binary.

mod support;

use std::time::Duration;

use exchange_standin::Venue;
use frontend::App;
use support::{DEADLINE, Pipeline};
use testkit::wait_for;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_outage_serves_the_last_price_then_503_and_recovers_with_no_duplicate_ticks() {
    let mut pipeline =
        Pipeline::start(&[(Venue::Coinbase, 50_000.0), (Venue::Kraken, 50_000.0), (Venue::Bitstamp, 50_000.0)]).await;
    let (api, _api) = pipeline.start_frontend_with(App::BitcoinApi, &["--stale-after", "3s"]).await;
    let _publisher = pipeline.start_publisher(&[]).await;
    let _aggregator = pipeline.start_aggregator("aggregator").await;
    pipeline.wait_for_body(&format!("{api}/btc/USD"), "a price", |b| b["price"] == 50_000.0).await;

    pipeline.nats.kill();
    // Readiness follows the connection at once; liveness never does; the last price is still served.
    wait_for("readiness to fail without NATS", DEADLINE, || async {
        (pipeline.get_text(&format!("{api}/readiness")).await.0 == 503).then_some(())
    })
    .await;
    assert_eq!(pipeline.get_text(&format!("{api}/liveness")).await, (200, "OK".to_string()));
    // Then, past the staleness limit, 503 with Retry-After instead of an old price.
    let (status, body) = wait_for("the price to turn stale", DEADLINE, || async {
        let (status, body) = pipeline.get(&format!("{api}/btc/USD")).await;
        (status == 503).then_some((status, body))
    })
    .await;
    assert_eq!((status, body["error"].as_str()), (503, Some("stale_price")));
    assert_eq!(pipeline.get_text(&format!("{api}/liveness")).await.0, 200);

    pipeline.nats.restart();
    let recovered = pipeline
        .wait_for_body(&format!("{api}/btc/USD"), "a fresh price after NATS is back", |b| {
            b["age_seconds"].as_f64().is_some_and(|age| age < 2.0)
        })
        .await;
    assert_eq!(recovered["price"], 50_000.0);
    wait_for("readiness after recovery", DEADLINE, || async {
        (pipeline.get_text(&format!("{api}/readiness")).await.0 == 200).then_some(())
    })
    .await;

    let js = pipeline.jetstream().await;
    let times = support::tick_times(&js).await;
    let mut unique = times.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(times.len(), unique.len(), "a tick was stored twice across the outage");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticks_and_the_window_survive_a_nats_restart() {
    let mut pipeline =
        Pipeline::start(&[(Venue::Coinbase, 60_000.0), (Venue::Kraken, 60_000.0), (Venue::Bitstamp, 60_000.0)]).await;
    let publisher = pipeline.start_publisher(&[]).await;
    let js = pipeline.jetstream().await;
    wait_for("10 ticks", DEADLINE, || async { (support::count_ticks(&js).await >= 10).then_some(()) }).await;
    publisher.stop().await;
    let before = support::tick_times(&js).await;

    pipeline.nats.restart();
    let js = pipeline.jetstream().await;
    assert_eq!(support::tick_times(&js).await, before, "the stream is the same after the restart");

    // A fresh aggregator and frontend rebuild the average from the surviving history.
    let (api, _api) = pipeline.start_frontend_with(App::BitcoinApi, &["--stale-after", "1h"]).await;
    let _aggregator = pipeline.start_aggregator("after-restart").await;
    let average = pipeline
        .wait_for_body(&format!("{api}/btc/average"), "the rebuilt average", |b| b["samples"].as_u64().is_some())
        .await;
    assert_eq!(average["samples"].as_u64(), Some(before.len() as u64));
    assert_eq!(average["mean"], 60_000.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_binary_exits_0_soon_after_sigterm() {
    use testkit::process::ServiceProcess;
    let pipeline = Pipeline::start(&[(Venue::Coinbase, 1.0)]).await;
    let url = pipeline.nats.url();
    let urls = exchange_standin::source_urls(&pipeline.stand_ins);
    let (ops, listen) = ("127.0.0.1:0", "127.0.0.1:0");
    let services = [
        // One source: a quorum of one, or the publisher refuses its pairs at start.
        (
            "publisher",
            vec![
                "--nats-url",
                &url,
                "--sources",
                "coinbase",
                "--source-urls",
                &urls,
                "--quorum",
                "1",
                "--ops-addr",
                &ops,
            ],
        ),
        ("aggregator", vec!["--nats-url", &url, "--ops-addr", &ops]),
        ("bitcoin-api", vec!["--nats-url", &url, "--listen-addr", &listen, "--ops-addr", &ops]),
        ("rest-api", vec!["--nats-url", &url, "--listen-addr", &listen, "--ops-addr", &ops]),
    ];
    for (binary, args) in services {
        let mut process = ServiceProcess::spawn(binary, &args, &[("RUST_LOG", "info")]);
        let port = process.listening(if binary.ends_with("api") { "addr" } else { "ops_addr" }).await;
        wait_for(&format!("{binary} to listen"), DEADLINE, || async {
            tokio::net::TcpStream::connect(port).await.ok().map(|_| ())
        })
        .await;
        let started = std::time::Instant::now();
        let status = process.terminate().expect("exit status");
        assert!(status.success(), "{binary} exited with {status}: {}", process.log());
        assert!(started.elapsed() < Duration::from_secs(12), "{binary} took {:?} to stop", started.elapsed());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aggregator_killed_mid_stream_comes_back_to_the_state_a_recomputation_gives() {
    use testkit::process::ServiceProcess;
    let pipeline =
        Pipeline::start(&[(Venue::Coinbase, 55_000.0), (Venue::Kraken, 55_010.0), (Venue::Bitstamp, 54_990.0)]).await;
    for stand_in in &pipeline.stand_ins {
        stand_in.set_noise(0.002);
    }
    let publisher = pipeline.start_publisher(&[]).await;
    let url = pipeline.nats.url();
    let args = ["--nats-url", url.as_str(), "--ops-addr", "127.0.0.1:0", "--consumer-name", "aggregator"];
    let mut aggregator = ServiceProcess::spawn("aggregator", &args, &[]);
    let js = pipeline.jetstream().await;
    wait_for("15 ticks", DEADLINE, || async { (support::count_ticks(&js).await >= 15).then_some(()) }).await;

    aggregator.kill(); // SIGKILL: no flush, no ack of the batch in hand
    let at_kill = support::count_ticks(&js).await;
    wait_for("10 ticks while the aggregator is dead", DEADLINE, || async {
        (support::count_ticks(&js).await >= at_kill + 10).then_some(())
    })
    .await;
    let _aggregator = ServiceProcess::spawn("aggregator", &args, &[]);
    wait_for("5 more ticks after the restart", DEADLINE, || async {
        (support::count_ticks(&js).await >= at_kill + 15).then_some(())
    })
    .await;
    publisher.stop().await;

    let ticks = support::read_ticks(&js).await;
    let kv = js.get_key_value(btc_contract::names::STATE_BUCKET).await.expect("state bucket");
    let state = wait_for("the state to cover every tick", DEADLINE, || async {
        let state = btc_contract::PriceState::decode(&kv.get(btc_contract::names::STATE_KEY).await.ok()??).ok()?;
        (state.stream_sequence == ticks.len() as u64).then_some(state)
    })
    .await;
    assert_eq!(support::recompute_state(&js).await, state, "no double counting, no gap");
    assert_eq!(state.average.samples as usize, ticks.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_exchange_down_no_tick_is_made_the_price_turns_stale_and_each_failure_is_logged_once() {
    use exchange_standin::Behaviour;
    use testkit::process::ServiceProcess;
    let pipeline =
        Pipeline::start(&[(Venue::Coinbase, 65_000.0), (Venue::Kraken, 65_000.0), (Venue::Bitstamp, 65_000.0)]).await;
    let (api, _api) = pipeline.start_frontend_with(App::BitcoinApi, &["--stale-after", "3s"]).await;
    let _aggregator = pipeline.start_aggregator("aggregator").await;
    let url = pipeline.nats.url();
    let urls = exchange_standin::source_urls(&pipeline.stand_ins);
    let publisher = ServiceProcess::spawn(
        "publisher",
        &[
            "--nats-url",
            &url,
            "--sources",
            "coinbase,kraken,bitstamp",
            "--source-urls",
            &urls,
            "--quorum",
            "2",
            "--pairs",
            "BTC-USD",
            "--poll-interval",
            "200ms",
            "--max-quote-age",
            "1s",
            "--breaker-failures",
            "3",
            "--breaker-cooldown",
            "1s",
            "--ops-addr",
            "127.0.0.1:0",
        ],
        &[("RUST_LOG", "info")],
    );
    let ops = publisher.listening("ops_addr").await;
    pipeline.wait_for_body(&format!("{api}/btc/USD"), "a price", |b| b["price"] == 65_000.0).await;

    for stand_in in &pipeline.stand_ins {
        stand_in.set_behaviour(Behaviour::Status(503));
    }
    let (status, body) = wait_for("the price to turn stale", DEADLINE, || async {
        let (status, body) = pipeline.get(&format!("{api}/btc/USD")).await;
        (status == 503).then_some((status, body))
    })
    .await;
    assert_eq!((status, body["error"].as_str()), (503, Some("stale_price")));
    let js = pipeline.jetstream().await;
    let frozen = support::count_ticks(&js).await;
    // Long enough for several breaker cycles (cooldown 1 s, doubling): still no tick, and the
    // signals are there: breakers open, rounds without a tick counted.
    let metrics_url = format!("http://{ops}/metrics");
    wait_for("open breakers and rounds without ticks", DEADLINE, || async {
        let text = pipeline.get_text(&metrics_url).await.1;
        let open = text.lines().filter(|l| l.starts_with("btc_publisher_circuit_open{") && l.ends_with(" 1")).count();
        let no_tick = text
            .lines()
            .any(|l| l.starts_with("btc_publisher_rounds_without_tick_total{") && l.contains(r#"reason="no_quotes""#));
        (open == 3 && no_tick).then_some(())
    })
    .await;
    assert_eq!(support::count_ticks(&js).await, frozen, "a tick was published with every exchange down");
    let log = publisher.log();
    for source in ["coinbase", "kraken", "bitstamp"] {
        let failures = log.lines().filter(|l| l.contains("source failed") && l.contains(source)).count();
        assert_eq!(failures, 1, "{source}'s failure logged {failures} times:\n{log}");
    }
    // Once per reason at most (no quorum, then no quotes, as the cached quotes age out).
    let no_tick = log.lines().filter(|l| l.contains("no tick")).count();
    assert!((1..=2).contains(&no_tick), "no-tick logged {no_tick} times:\n{log}");

    // The exchanges come back: breakers close, ticks and a fresh price return by themselves.
    for stand_in in &pipeline.stand_ins {
        stand_in.set_behaviour(Behaviour::Normal);
    }
    pipeline
        .wait_for_body(&format!("{api}/btc/USD"), "a fresh price again", |b| {
            b["age_seconds"].as_f64().is_some_and(|age| age < 2.0)
        })
        .await;
    let log = publisher.log();
    assert!(log.contains("circuit breaker closed") && log.contains("quorum regained"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let pipeline = Pipeline::start(&[(Venue::Coinbase, 1.0)]).await;
    let (api, _api) = pipeline.start_frontend_with(App::BitcoinApi, &["--http-idle-timeout", "1s"]).await;
    let addr = api.trim_start_matches("http://").to_string();
    // A keep-alive connection that sends nothing after its request, and a client that stalls in
    // the middle of its request headers (slowloris), must not be held forever.
    let mut after_request = tokio::net::TcpStream::connect(&addr).await.expect("connects");
    after_request.write_all(b"GET /liveness HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("writes");
    let mut inside_headers = tokio::net::TcpStream::connect(&addr).await.expect("connects");
    inside_headers.write_all(b"GET /liveness HTTP/1.1\r\nHo").await.expect("writes");
    let started = std::time::Instant::now();
    for (name, mut stream) in [("idle keep-alive", after_request), ("stalled headers", inside_headers)] {
        let mut buffer = [0u8; 256];
        let closed = tokio::time::timeout(DEADLINE, async {
            loop {
                match stream.read(&mut buffer).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "the {name} connection was never closed");
    }
    assert!(started.elapsed() < Duration::from_secs(10), "closed only after {:?}", started.elapsed());
    // Other clients are served meanwhile and after.
    assert_eq!(pipeline.get_text(&format!("{api}/liveness")).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_price_is_a_json_503_while_every_pod_stays_ready() {
    // Every replica shares the stale price: failing readiness would empty the Service and hand
    // clients the ingress's HTML 503. Readiness says whether this pod can serve.
    let pipeline =
        Pipeline::start(&[(Venue::Coinbase, 50_000.0), (Venue::Kraken, 50_000.0), (Venue::Bitstamp, 50_000.0)]).await;
    let (api, _api) = pipeline.start_frontend_with(App::BitcoinApi, &["--stale-after", "2s"]).await;
    // rest-api needs no NATS at all: it is ready even with no server at its NATS URL.
    let (rest, _rest) = pipeline.start_frontend_with(App::RestApi, &["--nats-url", "nats://127.0.0.1:1"]).await;
    assert_eq!(pipeline.get_text(&format!("{rest}/readiness")).await, (200, "OK".to_string()));
    assert_eq!(pipeline.get(&format!("{rest}/")).await.1["result"], "OK");
    // bitcoin-api is ready once it watches the state, before any price exists.
    let _aggregator = pipeline.start_aggregator("aggregator").await;
    wait_for("bitcoin-api ready without a price", DEADLINE, || async {
        (pipeline.get_text(&format!("{api}/readiness")).await.0 == 200).then_some(())
    })
    .await;
    assert_eq!(pipeline.get(&format!("{api}/btc/USD")).await.1["error"], "no_price_yet");

    let publisher = pipeline.start_publisher(&[]).await;
    pipeline.wait_for_body(&format!("{api}/btc/USD"), "a price", |b| b["price"] == 50_000.0).await;
    publisher.stop().await; // no more ticks: an outage of every exchange looks the same from here
    let response = wait_for("the price to turn stale", DEADLINE, || async {
        let response = pipeline.http.get(format!("{api}/btc/USD")).send().await.ok()?;
        (response.status() == 503).then_some(response)
    })
    .await;
    assert_eq!(response.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("5"));
    assert_eq!(response.json::<serde_json::Value>().await.ok().map(|b| b["error"].clone()), Some("stale_price".into()));
    assert_eq!(pipeline.get_text(&format!("{api}/readiness")).await, (200, "OK".to_string()));
    assert_eq!(pipeline.get_text(&format!("{rest}/readiness")).await, (200, "OK".to_string()));
}
