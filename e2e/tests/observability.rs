//! Traces and logs of the real binaries, each in its own process with its own OTLP pipeline,
//! received by real OTLP receivers (`testkit::otlp`, OTLP/HTTP and OTLP/gRPC).

mod support;

use std::time::Duration;

use exchange_standin::{Behaviour, StandIn, Venue, source_urls};
use testkit::otlp::{OtlpReceiver, ReceivedSpan};
use testkit::process::ServiceProcess;
use testkit::{NatsServer, wait_for};

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
            "127.0.0.1:0",
        ],
        &env,
    );
    let aggregator = ServiceProcess::spawn("aggregator", &["--nats-url", &nats_url, "--ops-addr", "127.0.0.1:0"], &env);
    let api = ServiceProcess::spawn(
        "bitcoin-api",
        &["--nats-url", &nats_url, "--listen-addr", "127.0.0.1:0", "--ops-addr", "127.0.0.1:0"],
        &env,
    );
    let api_addr = api.listening("addr").await;

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
    let status = http.get(format!("http://{api_addr}/btc/JPY")).send().await.map(|r| r.status().as_u16());
    assert_eq!(status.ok(), Some(404));
    // A templated route's span is named after the template, never after the path.
    let unknown = wait_for("the server span of a 404", Duration::from_secs(10), || async {
        receiver
            .spans()
            .into_iter()
            .find(|s| s.service == "bitcoin-api" && s.attribute("http.response.status_code") == Some("404"))
    })
    .await;
    assert_eq!(
        (unknown.name.as_str(), unknown.attribute("http.route")),
        ("GET /{asset}/{currency}", Some("/{asset}/{currency}"))
    );

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

/// `OTEL_EXPORTER_OTLP_PROTOCOL` picks the transport (gRPC, the collector's port 4317, or
/// http/protobuf), and `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` overrides it for traces. Each service
/// here exports by a different combination, and one trace still runs across both receivers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_leave_by_grpc_or_http_protobuf_as_the_otlp_protocol_variables_say() {
    let grpc = OtlpReceiver::start_grpc().await;
    let http = OtlpReceiver::start().await;
    let nats = NatsServer::start();
    let stand_in = StandIn::start(Venue::Coinbase, 40_000.0).await.expect("stand-in");
    let (grpc_endpoint, http_endpoint) = (grpc.endpoint(), http.endpoint());
    const BATCH_DELAY: (&str, &str) = ("OTEL_BSP_SCHEDULE_DELAY", "100");
    let publisher_env =
        [("OTEL_EXPORTER_OTLP_ENDPOINT", grpc_endpoint.as_str()), ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"), BATCH_DELAY];
    let aggregator_env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", http_endpoint.as_str()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
        BATCH_DELAY,
    ];
    let api_env = [
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", grpc_endpoint.as_str()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
        BATCH_DELAY,
    ];
    let nats_url = nats.url();
    let urls = source_urls(std::slice::from_ref(&stand_in));
    let _publisher = ServiceProcess::spawn(
        "publisher",
        &[
            "--nats-url",
            &nats_url,
            "--sources",
            "coinbase",
            "--source-urls",
            &urls,
            "--poll-interval",
            "500ms",
            "--quorum",
            "1",
            "--ops-addr",
            "127.0.0.1:0",
        ],
        &publisher_env,
    );
    let _aggregator =
        ServiceProcess::spawn("aggregator", &["--nats-url", &nats_url, "--ops-addr", "127.0.0.1:0"], &aggregator_env);
    let api = ServiceProcess::spawn(
        "bitcoin-api",
        &["--nats-url", &nats_url, "--listen-addr", "127.0.0.1:0", "--ops-addr", "127.0.0.1:0"],
        &api_env,
    );
    let api_addr = api.listening("addr").await;

    // The publisher's round and publish spans come by gRPC, the aggregator's process span by
    // http/protobuf, child of a publish span: one trace across both transports.
    let (publish, process) = wait_for("a publish by gRPC and its processing by HTTP", support::DEADLINE, || async {
        let (by_grpc, by_http) = (grpc.spans(), http.spans());
        by_http.iter().filter(|s| s.service == "aggregator" && s.kind == CONSUMER).find_map(|process| {
            let publish = by_grpc.iter().find(|s| s.span_id == process.parent_span_id && s.kind == PRODUCER)?;
            Some((publish.clone(), process.clone()))
        })
    })
    .await;
    assert_eq!((publish.service.as_str(), process.trace_id.as_str()), ("publisher", publish.trace_id.as_str()));
    assert!(grpc.spans().iter().all(|s| s.service != "aggregator"), "the aggregator exported by gRPC too");
    assert!(http.spans().iter().all(|s| s.service == "aggregator"), "another service exported by HTTP");

    // bitcoin-api: the traces variable (grpc) wins over the general one (http/protobuf).
    let http_client = reqwest::Client::new();
    let price_url = format!("http://{api_addr}/btc/USD");
    wait_for("a price from bitcoin-api", support::DEADLINE, || async {
        let response = http_client.get(&price_url).send().await.ok()?;
        (response.status() == 200).then_some(())
    })
    .await;
    wait_for("bitcoin-api's server span by gRPC", support::DEADLINE, || async {
        grpc.spans().into_iter().find(|s| s.service == "bitcoin-api" && s.kind == SERVER)
    })
    .await;
}

/// A protocol the services cannot speak is refused at start, by each of the four binaries: the
/// process exits non-zero at once, naming the variable, its value and the accepted values, instead
/// of running with traces silently going nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsupported_otlp_protocol_stops_every_service_at_start_with_an_error_naming_the_variable() {
    let cases = [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", None),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "thrift", Some(("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"))),
    ];
    // Bound and never accepting: a service that does not refuse would keep waiting for NATS.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback listener");
    let nats_url = format!("nats://{}", silent.local_addr().expect("its address"));
    for binary in ["publisher", "aggregator", "bitcoin-api", "rest-api"] {
        for (variable, value, other) in cases {
            let mut command = tokio::process::Command::new(testkit::process::binary(binary));
            command
                .args(["--nats-url", &nats_url])
                .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
                .env(variable, value)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .kill_on_drop(true);
            if let Some((k, v)) = other {
                command.env(k, v);
            }
            let child = command.spawn().expect("spawn");
            let output = tokio::time::timeout(support::DEADLINE, child.wait_with_output())
                .await
                .unwrap_or_else(|_| panic!("{binary} with {variable}={value} did not stop"))
                .expect("exit status");
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(!output.status.success(), "{binary} with {variable}={value} exited 0: {stderr}");
            for expected in [variable, value, "grpc", "http/protobuf"] {
                assert!(stderr.contains(expected), "{binary}: the error does not name {expected:?}: {stderr}");
            }
        }
    }
}

/// A `traceparent` from outside does not choose the trace: by default the server span starts a
/// new trace and links the caller's context; `TRUST_INCOMING_TRACE_CONTEXT=true` (callers inside
/// the mesh) continues the caller's trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outside_traceparent_starts_a_new_trace_linked_to_the_caller_s_unless_trusted() {
    const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const CALLER_SPAN: &str = "00f067aa0ba902b7";
    let receiver = OtlpReceiver::start().await;
    let endpoint = receiver.endpoint();
    let http = reqwest::Client::new();
    for (trusted, variable, service) in [(false, None, "rest-api-default"), (true, Some("true"), "rest-api-trusted")] {
        let mut env = vec![("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()), ("OTEL_BSP_SCHEDULE_DELAY", "100")];
        env.extend([("OPS_ADDR", "127.0.0.1:0"), ("OTEL_SERVICE_NAME", service)]);
        if let Some(value) = variable {
            env.push(("TRUST_INCOMING_TRACE_CONTEXT", value));
        }
        let rest = ServiceProcess::spawn("rest-api", &["--listen-addr", "127.0.0.1:0"], &env);
        let addr = rest.listening("addr").await;
        let url = format!("http://{addr}/");
        wait_for("rest-api to answer", support::DEADLINE, || async {
            let response = http.get(&url).header("traceparent", format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"));
            response.send().await.ok().filter(|r| r.status() == 200).map(|_| ())
        })
        .await;
        let span = wait_for("rest-api's server span", support::DEADLINE, || async {
            receiver.spans().into_iter().find(|s| s.service == service && s.kind == SERVER)
        })
        .await;
        assert_eq!(span.name, "GET /");
        if trusted {
            assert_eq!(span.parent_span_id, CALLER_SPAN, "continues the caller's trace: {span:?}");
            assert!(span.links.is_empty(), "{span:?}");
        } else {
            assert_ne!(span.trace_id, CALLER_TRACE, "an outsider chose the trace id: {span:?}");
            assert!(span.parent_span_id.is_empty(), "a root span: {span:?}");
            assert_eq!(span.links, vec![(CALLER_TRACE.to_string(), CALLER_SPAN.to_string())], "{span:?}");
            // Span names come from fixed sets too: a made-up method on a made-up path is `HTTP`.
            let brew = reqwest::Method::from_bytes(b"BREW").expect("a method");
            let long_path = format!("/{}", "x".repeat(4096));
            let status = http.request(brew, format!("http://{addr}{long_path}?q=1")).send().await.map(|r| r.status());
            assert_eq!(status.ok().map(|s| s.as_u16()), Some(404));
            let made_up = wait_for("the made-up request's span", support::DEADLINE, || async {
                let spans = receiver.spans();
                spans
                    .into_iter()
                    .find(|s| s.service == service && s.attribute("http.response.status_code") == Some("404"))
            })
            .await;
            assert_eq!((made_up.name.as_str(), made_up.attribute("http.request.method")), ("HTTP", Some("_OTHER")));
            assert_eq!(made_up.attribute("http.route"), None, "{made_up:?}");
            let url = made_up.attribute("url.full").unwrap_or_default();
            assert!(url.starts_with("/xxx") && url.chars().count() <= 257, "url.full of {} characters", url.len());
        }
    }
}
