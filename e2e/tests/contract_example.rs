//! The contract crate's example subscriber (`contract/examples/print_ticks.rs`), run as a program
//! against a real nats-server while the real publisher publishes: what it prints is the tick the
//! pipeline stored, read with nothing but `btc-contract` and a NATS client.

mod support;

use exchange_standin::Venue;
use support::{DEADLINE, Pipeline};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_contract_example_prints_the_ticks_the_publisher_publishes() {
    let pipeline =
        Pipeline::start(&[(Venue::Coinbase, 61_000.0), (Venue::Kraken, 61_010.0), (Venue::Bitstamp, 60_990.0)]).await;
    let example = testkit::process::example("print_ticks");
    let subscriber = tokio::process::Command::new(&example)
        .args([pipeline.nats.url().as_str(), "2"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start {}: {error}", example.display()));
    let _publisher = pipeline.start_publisher(&[]).await;

    let output = tokio::time::timeout(DEADLINE, subscriber.wait_with_output())
        .await
        .expect("the example printed two ticks in time")
        .expect("the example's exit status");
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "the example failed: {stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "one line per tick: {stdout}");
    for line in lines {
        // `<time> BTC-USD <price> sources=<used and unused sources>`: the median of the stand-ins.
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields.len(), 4, "{line}");
        assert_eq!(fields[1..3], ["BTC-USD", "61000.00"], "{line}");
        let mut sources: Vec<&str> = fields[3].trim_start_matches("sources=").split(',').collect();
        sources.sort_unstable();
        assert_eq!(sources, ["bitstamp", "coinbase", "kraken"], "{line}");
        assert!(chrono::DateTime::parse_from_rfc3339(fields[0]).is_ok(), "{line}");
    }
}
