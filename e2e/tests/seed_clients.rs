//! Issue 15 §3 on the real `bitcoin-api` binary: the clients of the app it replaced keep working.
//! That app answered `/btc/USD` and `/btc/average` with a bare number; its clients ran
//! `curl -H 'Accept: text/plain'` and Python's `float(requests.get(URL).text)`. Both run here, as
//! the processes they are (curl from the system, requests pinned by e2e/requirements.txt and
//! installed by `make tools`), against a state written to the real NATS KV bucket.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use btc_contract::{Dispersion, Pair, PriceState, SCHEMA_VERSION, Tick, WindowAverage};
use btc_runtime::stream_config::StreamArgs;
use testkit::process::ServiceProcess;
use testkit::{NatsServer, wait_for};

const DEADLINE: Duration = Duration::from_secs(30);

/// BTC-USD at 97012.35, its time-weighted average 97011.85, fresh now.
fn state() -> PriceState {
    let time = chrono::Utc::now();
    PriceState {
        schema_version: SCHEMA_VERSION,
        latest: Tick {
            schema_version: SCHEMA_VERSION,
            pair: "BTC-USD".into(),
            time,
            oldest_quote_time: Some(time),
            price: 97_012.35,
            dispersion: Dispersion { low: 97_010.0, high: 97_015.0, std_dev: 2.0, used: 3 },
            sources: vec![],
        },
        average: WindowAverage {
            window_seconds: 600,
            time_weighted: 97_011.85,
            mean: 97_011.0,
            samples: 10,
            from: time - chrono::Duration::seconds(10),
            to: time,
            covered_seconds: 10.0,
            gap_seconds: 590.0,
            complete: false,
        },
        stream_sequence: 42,
        stream_created: None,
        open_candles: Vec::new(),
    }
}

/// The pinned Python with `requests` (`make tools` installs it).
fn python() -> PathBuf {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.tools/py-client/bin/python");
    assert!(python.exists(), "{} is missing: run `make tools` (scripts/install-tools.sh)", python.display());
    python
}

/// What `program args` printed on stdout; panics with its stderr when it fails.
fn output_of(program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> String {
    let program = program.as_ref();
    let output = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("cannot run {program:?}: {e}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{program:?} {args:?} failed: {stderr}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

const SEED_PYTHON_CLIENT: &str =
    "import requests, sys; print(float(requests.get(sys.argv[1], headers={'Accept': 'text/plain'}).text))";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_s_curl_and_python_clients_read_the_bare_number_from_the_real_binary() {
    let nats = NatsServer::start();
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.expect("connect to NATS"));
    let kv = btc_runtime::jetstream::ensure_state_bucket(&js, &StreamArgs::default()).await.expect("state bucket");
    kv.put(Pair::seed().state_key(), state().encode().into()).await.expect("state written");

    let nats_url = nats.url();
    let env = [("OPS_ADDR", "127.0.0.1:0"), ("RUST_LOG", "warn,frontend::server=info")];
    let api = ServiceProcess::spawn("bitcoin-api", &["--nats-url", &nats_url, "--listen-addr", "127.0.0.1:0"], &env);
    let base = format!("http://{}", api.listening("addr").await);
    let http = reqwest::Client::new();
    wait_for("bitcoin-api to serve the price", DEADLINE, || async {
        let response = http.get(format!("{base}/btc/USD")).send().await.ok()?;
        (response.status() == 200).then_some(())
    })
    .await;

    for (path, number) in [("/btc/USD", "97012.35"), ("/btc/average", "97011.85")] {
        let url = format!("{base}{path}");
        let curl = output_of("curl", &["-sS", "--fail", "-H", "Accept: text/plain", &url]);
        assert_eq!(curl, number, "curl -H 'Accept: text/plain' {path}");
        let python = output_of(python(), &["-c", SEED_PYTHON_CLIENT, &url]);
        assert_eq!(python.trim_end(), number, "float(requests.get({path}).text)");
        // Without the header, JSON stays the default.
        let json: serde_json::Value = serde_json::from_str(&output_of("curl", &["-sS", "--fail", &url])).expect("JSON");
        assert!(json["pair"] == "BTC-USD", "{path}: {json}");
    }
}
