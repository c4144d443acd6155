//! TLS to NATS with mutual authentication, using a CA and certificates the test generates (with the
//! openssl command line), with the chart's settings: the chart's users, passwords read from files,
//! the setup step as the admin. The pipeline works over TLS; plaintext and clients without a
//! certificate are refused.

mod support;

use std::path::Path;
use std::process::Command;

use clap::Parser;
use exchange_standin::Venue;
use frontend::App;
use support::Pipeline;
use support::chart::{self, UserFlags};
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
async fn the_pipeline_runs_over_mutual_tls_with_the_charts_users_and_plaintext_is_refused() {
    let certs = tempfile::tempdir().expect("cert dir");
    generate_certificates(certs.path());
    let file = |name: &str| certs.path().join(name).display().to_string();
    // As Helm/nats-values.yaml sets the servers up: client TLS required and verified (mutual),
    // and the chart's users and permissions.
    let config = format!(
        "tls: {{ cert_file: \"{}\", key_file: \"{}\", ca_file: \"{}\", verify: true }}\n{}",
        file("server.pem"),
        file("server.key"),
        file("ca.pem"),
        chart::authorization()
    );
    let nats = NatsServer::start_with_config(Some(&config));
    let (ca, cert, key) = (file("ca.pem"), file("client.pem"), file("client.key"));
    let tls = ["--nats-tls-ca", ca.as_str(), "--nats-tls-cert", cert.as_str(), "--nats-tls-key", key.as_str()];

    // The chart's setup Job: the admin, its password from a file, over mutual TLS.
    let admin = UserFlags::admin();
    let setup = SetupFlags::try_parse_from(["setup"].iter().copied().chain(admin.with(&tls))).expect("setup flags");
    chart::run_setup_with(&nats, setup.nats).await;

    let pipeline = Pipeline::start_with_nats(
        nats,
        &[(Venue::Coinbase, 80_000.0), (Venue::Kraken, 80_000.0), (Venue::Bitstamp, 80_000.0)],
    )
    .await;
    // Each service as the chart runs it: its own user, the password read from a mounted file,
    // the CA and its client certificate from the TLS Secret.
    let [publisher, aggregator, frontend] = chart::SERVICE_USERS.map(UserFlags::new);
    let (api, _api) = pipeline.start_frontend_with(App::BitcoinApi, &frontend.with(&tls)).await;
    let _publisher = pipeline.start_publisher(&publisher.with(&tls)).await;
    let _aggregator = pipeline.start_aggregator_with("aggregator", &aggregator.with(&tls)).await;
    pipeline.wait_for_body(&format!("{api}/btc/USD"), "a price over TLS", |b| b["price"] == 80_000.0).await;

    let plaintext =
        async_nats::ConnectOptions::with_user_and_password("frontend".into(), chart::password_of("frontend").into())
            .connection_timeout(std::time::Duration::from_secs(2))
            .connect(pipeline.nats.url())
            .await;
    assert!(plaintext.is_err(), "a plaintext client connected to a TLS-only server");
    let no_client_cert =
        async_nats::ConnectOptions::with_user_and_password("frontend".into(), chart::password_of("frontend").into())
            .add_root_certificates(certs.path().join("ca.pem"))
            .require_tls(true)
            .connection_timeout(std::time::Duration::from_secs(2))
            .connect(pipeline.nats.url())
            .await;
    assert!(no_client_cert.is_err(), "a client without a certificate connected");
}

/// The setup step's flags alone (what `publisher setup` parses).
#[derive(clap::Parser)]
struct SetupFlags {
    #[command(flatten)]
    nats: btc_runtime::nats::NatsArgs,
}
