//! `/metrics` of every service: valid for a real linter (`promtool check metrics`), and the
//! counters move when requests and ticks flow.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use exchange_standin::{Behaviour, Venue};
use frontend::App;
use support::{DEADLINE, Pipeline};
use testkit::wait_for;

/// Runs `promtool check metrics` on `text`: its exit code is 0 only for a clean exposition
/// (1 for a parse error, 3 for lint problems such as a missing HELP or a counter without `_total`).
fn promtool_check(text: &str) -> (i32, String) {
    let promtool = std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".to_string());
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {promtool}: {e}; `make tools` installs it"));
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write metrics");
    let output = child.wait_with_output().expect("promtool finishes");
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.code().unwrap_or(-1), said)
}

/// The value of the sample `name{labels...}` (all given labels must match), if present.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|line| !line.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, label_text) = match series.split_once('{') {
            Some((metric, rest)) => (metric, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let matches = metric == name && labels.iter().all(|(k, v)| label_text.contains(&format!("{k}=\"{v}\"")));
        if matches { value.parse().ok() } else { None }
    })
}

/// The commit the services were built from: `BTC_GIT_COMMIT` when the build was given one, else
/// the checkout's HEAD (cargo rebuilds when it moves), else `unknown` (a tree without `.git`).
fn built_revision() -> String {
    if let Some(commit) = option_env!("BTC_GIT_COMMIT").filter(|c| !c.is_empty()) {
        return commit.to_string();
    }
    Command::new("git")
        .args(["-C", env!("CARGO_MANIFEST_DIR"), "rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_serves_lint_clean_metrics_with_its_build_info_and_counters_that_move() {
    let pipeline =
        Pipeline::start(&[(Venue::Coinbase, 30_000.0), (Venue::Kraken, 30_010.0), (Venue::Bitstamp, 29_990.0)]).await;
    let (api, api_service) = pipeline.start_frontend(App::BitcoinApi).await;
    let (_rest, rest_service) = pipeline.start_frontend(App::RestApi).await;
    let publisher = pipeline.start_publisher(&["--max-quote-age", "1500ms"]).await;
    let aggregator = pipeline.start_aggregator("aggregator").await;
    pipeline.wait_for_body(&format!("{api}/btc/USD"), "a price", |b| b["price"] == 30_000.0).await;

    let endpoints = [
        ("bitcoin-api", format!("{}/metrics", api_service.ops_url)),
        ("rest-api", format!("{}/metrics", rest_service.ops_url)),
        ("publisher", format!("{}/metrics", publisher.ops_url)),
        ("aggregator", format!("{}/metrics", aggregator.ops_url)),
    ];
    let revision = built_revision();
    for (component, url) in &endpoints {
        let response = pipeline.http.get(url).send().await.expect("metrics answer");
        assert_eq!(response.status(), 200, "{url}");
        let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert!(content_type.starts_with("text/plain; version=0.0.4"), "{url}: {content_type}");
        let text = response.text().await.expect("text");
        // rest-api needs no NATS (its `/` answers from nothing), so it reports no connection.
        let nats = if *component == "rest-api" { None } else { Some(1.0) };
        assert_eq!(sample(&text, "btc_nats_connected", &[]), nats, "{url}");
        // Build info: one series, value 1, naming the service, its version and the commit built.
        let build = [("component", *component), ("version", env!("CARGO_PKG_VERSION")), ("revision", &revision)];
        assert_eq!(sample(&text, "btc_build_info", &build), Some(1.0), "{url}:\n{text}");
        assert_eq!(text.lines().filter(|l| l.starts_with("btc_build_info{")).count(), 1, "{url}");
        let (code, said) = promtool_check(&text);
        assert_eq!(code, 0, "promtool check metrics on {url}:\n{said}\n{text}");
    }

    // HTTP: requests are counted by route and status and timed.
    let metrics_url = format!("{}/metrics", api_service.ops_url);
    let ok = [("method", "GET"), ("route", "/btc/USD"), ("status", "200")];
    let before = sample(&pipeline.get_text(&metrics_url).await.1, "btc_http_requests_total", &ok).unwrap_or(0.0);
    for _ in 0..5 {
        assert_eq!(pipeline.get(&format!("{api}/btc/USD")).await.0, 200);
    }
    assert_eq!(pipeline.get(&format!("{api}/btc/JPY")).await.0, 404);
    assert_eq!(pipeline.get(&format!("{api}/no/such/route")).await.0, 404);
    let text = pipeline.get_text(&metrics_url).await.1;
    assert_eq!(sample(&text, "btc_http_requests_total", &ok), Some(before + 5.0));
    // A path of a templated route is labelled with the template, never with the path.
    let unknown_pair = [("route", "/{asset}/{currency}"), ("status", "404")];
    assert_eq!(sample(&text, "btc_http_requests_total", &unknown_pair), Some(1.0));
    assert_eq!(sample(&text, "btc_http_requests_total", &[("route", "unmatched"), ("status", "404")]), Some(1.0));
    let timed = sample(&text, "btc_http_request_duration_seconds_count", &[("route", "/btc/USD")]).unwrap_or(0.0);
    assert!(timed >= before + 5.0, "histogram count {timed}");
    let usd = [("pair", "BTC-USD")];
    assert_eq!(sample(&text, "btc_price", &usd), Some(30_000.0));
    assert!(sample(&text, "btc_price_age_seconds", &usd).is_some_and(|age| age < 10.0));

    // Pipeline: ticks published and aggregated keep counting up.
    let publisher_url = format!("{}/metrics", publisher.ops_url);
    let aggregator_url = format!("{}/metrics", aggregator.ops_url);
    let acked = |text: &str| sample(text, "btc_publisher_ticks_total", &[("result", "acked")]).unwrap_or(0.0);
    let appended = |text: &str| sample(text, "btc_aggregator_ticks_total", &[("outcome", "appended")]).unwrap_or(0.0);
    let (acked_before, appended_before) =
        (acked(&pipeline.get_text(&publisher_url).await.1), appended(&pipeline.get_text(&aggregator_url).await.1));
    wait_for("ticks to keep flowing", DEADLINE, || async {
        let publisher_text = pipeline.get_text(&publisher_url).await.1;
        let aggregator_text = pipeline.get_text(&aggregator_url).await.1;
        (acked(&publisher_text) >= acked_before + 3.0 && appended(&aggregator_text) >= appended_before + 3.0)
            .then_some(())
    })
    .await;
    let text = pipeline.get_text(&publisher_url).await.1;
    assert!(sample(&text, "btc_publisher_fetches_total", &[("source", "kraken"), ("outcome", "ok")]) > Some(0.0));
    assert!(sample(&text, "btc_publisher_fetch_duration_seconds_count", &[("source", "kraken")]) > Some(0.0));
    let text = pipeline.get_text(&aggregator_url).await.1;
    assert!(sample(&text, "btc_aggregator_window_samples", &usd) > Some(0.0));
    assert!(sample(&text, "btc_aggregator_newest_tick_age_seconds", &usd).is_some_and(|age| age < 10.0));
    assert!(sample(&text, "btc_aggregator_state_writes_total", &[("result", "stored")]) > Some(0.0));

    // Faults show up: a failing source, an outlier, and the lost quorum they cause.
    pipeline.stand_in(Venue::Kraken).set_behaviour(Behaviour::Status(500));
    pipeline.stand_in(Venue::Bitstamp).set_price(36_000.0);
    wait_for("failure, outlier and no-quorum counters", DEADLINE, || async {
        let text = pipeline.get_text(&publisher_url).await.1;
        let failed = sample(&text, "btc_publisher_fetches_total", &[("source", "kraken"), ("outcome", "http_status")]);
        let down = sample(&text, "btc_publisher_source_up", &[("source", "kraken")]);
        let outliers = sample(&text, "btc_publisher_outliers_total", &[("source", "bitstamp")]);
        let no_quorum = sample(&text, "btc_publisher_rounds_without_tick_total", &[("reason", "no_quorum")]);
        (failed > Some(0.0) && down == Some(0.0) && outliers >= Some(1.0) && no_quorum > Some(0.0)).then_some(())
    })
    .await;
}

/// A tick at `seconds_ago` before now, priced `price`.
fn tick(seconds_ago: i64, price: f64) -> btc_contract::Tick {
    use btc_contract::{Dispersion, QuoteStatus, SourceQuote};
    let time = chrono::Utc::now() - chrono::Duration::seconds(seconds_ago);
    btc_contract::Tick {
        schema_version: btc_contract::SCHEMA_VERSION,
        pair: "BTC-USD".into(),
        time,
        oldest_quote_time: Some(time),
        price,
        dispersion: Dispersion { low: price, high: price, std_dev: 0.0, used: 1 },
        sources: vec![SourceQuote { source: "kraken".into(), price, quote_time: time, status: QuoteStatus::Used }],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_ticks_in_the_stream_are_skipped_and_counted_and_the_good_ones_around_them_applied() {
    let pipeline = Pipeline::start(&[(Venue::Coinbase, 1.0)]).await;
    let aggregator = pipeline.start_aggregator("aggregator").await;
    let js = pipeline.jetstream().await;
    wait_for("the ticks stream", DEADLINE, || async { js.get_stream(btc_contract::names::TICKS_STREAM).await.ok() })
        .await;

    let mut wrong_version = serde_json::to_value(tick(4, 100.0)).expect("json");
    wrong_version["schema_version"] = 2.into();
    // Its head (pair, time, price) reads, its quotes do not: the window reads heads only, so it
    // is in the window, and the state serves only a tick that reads whole.
    let mut bad_quote_time = serde_json::to_value(tick(4, 100.0)).expect("json");
    bad_quote_time["sources"][0]["quote_time"] = "yesterday".into();
    let mut bad_time = serde_json::to_value(tick(4, 100.0)).expect("json");
    bad_time["time"] = "yesterday".into();
    let payloads: Vec<Vec<u8>> = vec![
        tick(5, 100.0).encode(),
        b"not json at all".to_vec(),
        wrong_version.to_string().into_bytes(),
        bad_quote_time.to_string().into_bytes(),
        bad_time.to_string().into_bytes(),
        tick(3, -5.0).encode(),
        tick(3, 1e300).encode(), // above the contract's bound: would overflow the window's sums
        tick(-3600, 1_000_000.0).encode(), // an hour after the stream stored it
        tick(2, 300.0).encode(),
    ];
    for payload in payloads {
        js.publish(btc_contract::names::TICK_SUBJECT, payload.into()).await.expect("publish").await.expect("stored");
    }

    let kv = js.get_key_value(btc_contract::names::STATE_BUCKET).await.expect("state bucket");
    let state = wait_for("the state after the last tick", DEADLINE, || async {
        let value = kv.get(btc_contract::names::STATE_KEY).await.ok().flatten()?;
        btc_contract::PriceState::decode(&value).ok().filter(|state| state.stream_sequence == 9)
    })
    .await;
    assert_eq!(state.latest.price, 300.0, "the last good tick is the latest");
    assert_eq!(state.average.samples, 3, "the two good ticks and the one with bad quotes are in the window");
    assert_eq!(state.average.mean, 500.0 / 3.0);

    let text = pipeline.get_text(&format!("{}/metrics", aggregator.ops_url)).await.1;
    let outcome = |name: &str| sample(&text, "btc_aggregator_ticks_total", &[("outcome", name)]);
    assert_eq!(
        (outcome("appended"), outcome("invalid"), outcome("future")),
        (Some(3.0), Some(5.0), Some(1.0)),
        "{text}"
    );
    assert_eq!(pipeline.get_text(&format!("{}/readiness", aggregator.ops_url)).await.0, 200);
}
