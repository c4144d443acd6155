//! TLS to NATS with mutual authentication, using a CA and certificates the test generates (with the
//! openssl command line): the pipeline works over TLS, and a plaintext client is refused.

mod support;

use std::path::Path;
use std::process::Command;

use exchange_standin::Venue;
use frontend::App;
use support::Pipeline;
use testkit::NatsServer;

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl runs");
    assert!(status.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&status.stderr));
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA.
fn generate_certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=test-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
    for (name, extension) in [
        ("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth"),
        ("client", "extendedKeyUsage=clientAuth"),
    ] {
        std::fs::write(dir.join(format!("{name}.ext")), extension).expect("extension file");
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-subj",
                &format!("/CN={name}"),
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "1",
                "-extfile",
                &format!("{name}.ext"),
                "-out",
                &format!("{name}.pem"),
            ],
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_runs_over_mutual_tls_and_plaintext_is_refused() {
    let certs = tempfile::tempdir().expect("cert dir");
    generate_certificates(certs.path());
    let file = |name: &str| certs.path().join(name).display().to_string();
    let config = format!(
        "tls: {{ cert_file: \"{}\", key_file: \"{}\", ca_file: \"{}\", verify: true }}\n",
        file("server.pem"),
        file("server.key"),
        file("ca.pem")
    );
    let nats = NatsServer::start_with_config(Some(&config));
    let pipeline = Pipeline::start_with_nats(
        nats,
        &[(Venue::Coinbase, 80_000.0), (Venue::Kraken, 80_000.0), (Venue::Bitstamp, 80_000.0)],
    )
    .await;
    let (ca, cert, key) = (file("ca.pem"), file("client.pem"), file("client.key"));
    let tls = ["--nats-tls-ca", ca.as_str(), "--nats-tls-cert", cert.as_str(), "--nats-tls-key", key.as_str()];

    let (api, _api) = pipeline.start_frontend_with(App::BitcoinApi, &tls).await;
    let _publisher = pipeline.start_publisher(&tls);
    let _aggregator = pipeline.start_aggregator_with("aggregator", &tls);
    pipeline.wait_for_body(&format!("{api}/btc/USD"), "a price over TLS", |b| b["price"] == 80_000.0).await;

    let plaintext = async_nats::ConnectOptions::new()
        .connection_timeout(std::time::Duration::from_secs(2))
        .connect(pipeline.nats.url())
        .await;
    assert!(plaintext.is_err(), "a plaintext client connected to a TLS-only server");
    let no_client_cert = async_nats::ConnectOptions::new()
        .add_root_certificates(certs.path().join("ca.pem"))
        .require_tls(true)
        .connection_timeout(std::time::Duration::from_secs(2))
        .connect(pipeline.nats.url())
        .await;
    assert!(no_client_cert.is_err(), "a client without a certificate connected");
}
