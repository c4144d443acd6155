//! Traces and logs of the real binaries, each in its own process with its own OTLP pipeline,
//! received by a real OTLP/HTTP receiver (`testkit::otlp`).

mod support;

use std::time::Duration;

use exchange_standin::{Behaviour, StandIn, Venue, source_urls};
use testkit::otlp::{OtlpReceiver, ReceivedSpan};
use testkit::process::ServiceProcess;
use testkit::{NatsServer, free_port, wait_for};

const SERVER: i32 = 2;
const CLIENT: i32 = 3;
const PRODUCER: i32 = 4;
const CONSUMER: i32 = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_runs_from_exchange_fetch_through_publish_to_aggregation_and_http_spans_carry_route_and_status() {
    let receiver = OtlpReceiver::start().await;
    let nats = NatsServer::start();
    let venues = [
        (Venue::Coinbase, 40_000.0),
        (Venue::Kraken, 40_010.0),
        (Venue::Bitstamp, 39_990.0),
        (Venue::Gemini, 40_005.0),
    ];
    let mut stand_ins = Vec::new();
    for (venue, price) in venues {
        stand_ins.push(StandIn::start(venue, price).await.expect("stand-in"));
    }
    // One failing source makes the publisher log a warning inside a round span.
    stand_ins[3].set_behaviour(Behaviour::Status(503));

    let endpoint = receiver.endpoint();
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("LOG_FORMAT", "json"),
        ("RUST_LOG", "info"),
    ];
    let nats_url = nats.url();
    let urls = source_urls(&stand_ins);
    let api_addr = format!("127.0.0.1:{}", free_port());
    let publisher_ops = format!("127.0.0.1:{}", free_port());
    let aggregator_ops = format!("127.0.0.1:{}", free_port());
    let publisher = ServiceProcess::spawn(
        "publisher",
        &[
            "--nats-url",
            &nats_url,
            "--sources",
            "coinbase,kraken,bitstamp,gemini",
            "--source-urls",
            &urls,
            "--poll-interval",
            "500ms",
            "--quorum",
            "2",
            "--ops-addr",
            &publisher_ops,
        ],
        &env,
    );
    let aggregator =
        ServiceProcess::spawn("aggregator", &["--nats-url", &nats_url, "--ops-addr", &aggregator_ops], &env);
    let api = ServiceProcess::spawn("bitcoin-api", &["--nats-url", &nats_url, "--listen-addr", &api_addr], &env);

    let http = reqwest::Client::new();
    let price_url = format!("http://{api_addr}/btc/USD");
    wait_for("a price from bitcoin-api", support::DEADLINE, || async {
        let response = http.get(&price_url).send().await.ok()?;
        (response.status() == 200).then_some(())
    })
    .await;

    // The chain: round -> fetch (client) and publish (producer) in the publisher; process
    // (consumer) in the aggregator, child of the publish; the state write, child of a process.
    let (round, publish, process) = wait_for("a trace from fetch to aggregation", support::DEADLINE, || async {
        let spans = receiver.spans();
        spans.iter().filter(|s| s.service == "aggregator" && s.kind == CONSUMER).find_map(|process| {
            let publish = spans.iter().find(|s| s.span_id == process.parent_span_id && s.kind == PRODUCER)?;
            let round = spans.iter().find(|s| s.span_id == publish.parent_span_id && s.name == "round")?;
            Some((round.clone(), publish.clone(), process.clone()))
        })
    })
    .await;
    assert_eq!(publish.service, "publisher");
    assert_eq!(publish.name, "send prices.ticks.BTC-USD");
    assert_eq!(publish.trace_id, process.trace_id);
    assert_eq!(round.trace_id, publish.trace_id);
    assert_eq!(publish.attribute("messaging.system"), Some("nats"));
    assert_eq!(publish.attribute("messaging.operation.type"), Some("send"));
    assert_eq!(publish.attribute("messaging.destination.name"), Some("prices.ticks.BTC-USD"));
    assert!(publish.attribute("messaging.message.id").is_some_and(|id| id.starts_with("BTC-USD:")), "{publish:?}");
    assert!(publish.attribute("messaging.nats.stream_sequence").is_some_and(|s| s.parse::<u64>().is_ok()));
    assert_eq!(process.name, "process prices.ticks.BTC-USD");
    assert_eq!(process.attribute("messaging.operation.type"), Some("process"));
    assert_eq!(process.attribute("messaging.message.id"), publish.attribute("messaging.message.id"));

    let spans = receiver.spans();
    let fetches: Vec<&ReceivedSpan> =
        spans.iter().filter(|s| s.parent_span_id == round.span_id && s.kind == CLIENT).collect();
    assert_eq!(fetches.len(), 4, "one fetch span per source under the round: {fetches:?}");
    for fetch in &fetches {
        assert_eq!(fetch.attribute("http.request.method"), Some("GET"));
        assert_eq!(fetch.attribute("server.address"), Some("127.0.0.1"));
        assert!(fetch.attribute("url.full").is_some_and(|u| u.starts_with("http://127.0.0.1:")));
        assert!(fetch.attribute("price.source").is_some());
        let outcome = fetch.attribute("price.outcome");
        assert!(outcome == Some("ok") || outcome == Some("http_status"), "{fetch:?}");
    }
    assert!(fetches.iter().any(|f| f.attribute("http.response.status_code") == Some("200")));
    // The failing source's fetch is an error span with the HTTP status and the error type.
    let failed = fetches.iter().find(|f| f.attribute("price.source") == Some("gemini")).expect("gemini fetch span");
    assert_eq!(failed.attribute("http.response.status_code"), Some("503"));
    assert_eq!(failed.attribute("error.type"), Some("http_status"));
    let writes = wait_for("a state write span", support::DEADLINE, || async {
        let spans = receiver.spans();
        let processes: Vec<String> = spans.iter().filter(|s| s.kind == CONSUMER).map(|s| s.span_id.clone()).collect();
        let writes: Vec<ReceivedSpan> = spans
            .into_iter()
            .filter(|s| s.name.starts_with("put $KV.price_state") && processes.contains(&s.parent_span_id))
            .collect();
        (!writes.is_empty()).then_some(writes)
    })
    .await;
    assert_eq!(writes[0].service, "aggregator");

    // HTTP server spans: route and status.
    let server = wait_for("the server span of GET /btc/USD", support::DEADLINE, || async {
        receiver.spans().into_iter().find(|s| {
            s.service == "bitcoin-api"
                && s.kind == SERVER
                && s.attribute("http.response.status_code") == Some("200")
                && s.attribute("http.route") == Some("/btc/USD")
        })
    })
    .await;
    assert_eq!(server.name, "GET /btc/USD");
    assert_eq!(server.attribute("http.request.method"), Some("GET"));
    let status = http.get(format!("http://{api_addr}/btc/EUR")).send().await.map(|r| r.status().as_u16());
    assert_eq!(status.ok(), Some(404));
    wait_for("the server span of a 404", Duration::from_secs(10), || async {
        receiver
            .spans()
            .into_iter()
            .find(|s| s.service == "bitcoin-api" && s.attribute("http.response.status_code") == Some("404"))
    })
    .await;

    // JSON logs: one object per line, with trace and span ids inside spans.
    for process in [&publisher, &aggregator, &api] {
        let log = process.log();
        for line in log.lines() {
            let value: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{} wrote a non-JSON line ({e}): {line}", process.name()));
            for field in ["timestamp", "level", "target", "message", "fields"] {
                assert!(value.get(field).is_some(), "{} line without {field}: {line}", process.name());
            }
        }
    }
    let warning = wait_for("a publisher warning inside a span", support::DEADLINE, || async {
        publisher.log().lines().find(|l| l.contains("source failed")).map(str::to_string)
    })
    .await;
    let warning: serde_json::Value = serde_json::from_str(&warning).expect("JSON line");
    assert_eq!(warning["level"], "WARN");
    assert_eq!(warning["fields"]["source"], "gemini");
    let trace_id = warning["trace_id"].as_str().expect("trace_id in a span");
    assert_eq!(trace_id.len(), 32);
    assert_eq!(warning["span_id"].as_str().map(str::len), Some(16));
    wait_for("the warning's trace at the receiver", support::DEADLINE, || async {
        receiver.spans().iter().any(|s| s.trace_id == trace_id && s.name == "round").then_some(())
    })
    .await;
}
