//! The chart's NATS users (`Helm/nats-values.yaml`) on a test server: the server configuration with
//! test passwords, the services' connection flags, and the setup step the chart's hook Job runs.

use std::time::Duration;

use btc_runtime::nats::NatsArgs;
use btc_runtime::setup::SetupArgs;
use btc_runtime::stream_config::StreamArgs;
use testkit::NatsServer;

/// The password variables of the chart's NATS users and the values the tests give them.
pub const PASSWORDS: [(&str, &str); 4] = [
    ("PUBLISHER_PASSWORD", "test-publisher-secret"),
    ("AGGREGATOR_PASSWORD", "test-aggregator-secret"),
    ("FRONTEND_PASSWORD", "test-frontend-secret"),
    ("ADMIN_PASSWORD", "test-admin-secret"),
];

/// The users the services connect as.
pub const SERVICE_USERS: [&str; 3] = ["publisher", "aggregator", "frontend"];

/// The `authorization` block of the chart's NATS values as nats-server configuration, with the
/// Secret's `<< $VAR >>` references replaced by test passwords.
pub fn authorization() -> String {
    let mut json = authorization_json();
    for (variable, password) in PASSWORDS {
        json = json.replace(&format!("<< ${variable} >>"), password);
    }
    assert!(!json.contains("<<"), "an unreplaced password reference: {json}");
    format!("authorization: {json}\n")
}

/// The chart's `config.merge.authorization`, as JSON (valid nats-server configuration syntax).
pub fn authorization_json() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../Helm/nats-values.yaml");
    let values: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(&path).expect("nats-values.yaml"))
        .expect("nats-values.yaml is YAML");
    let authorization = &values["config"]["merge"]["authorization"];
    assert!(authorization.is_mapping(), "no config.merge.authorization in {}", path.display());
    serde_json::to_string(authorization).expect("as JSON")
}

pub fn password_of(user: &str) -> &'static str {
    let variable = format!("{}_PASSWORD", user.to_ascii_uppercase());
    PASSWORDS.iter().find(|(v, _)| *v == variable).map(|(_, p)| *p).expect("known user")
}

/// A client of `user` with the inbox prefix the chart gives it (`_INBOX_<user>`; the admin keeps
/// the default `_INBOX`), failing fast instead of retrying.
pub async fn connect_as(nats: &NatsServer, user: &str, password: &str) -> Result<async_nats::Client, String> {
    let mut options = async_nats::ConnectOptions::with_user_and_password(user.into(), password.into())
        .connection_timeout(Duration::from_secs(2));
    if user != "admin" {
        options = options.custom_inbox_prefix(format!("_INBOX_{user}"));
    }
    options.connect(nats.url()).await.map_err(|e| e.to_string())
}

/// The admin's client (what the setup step and operators use).
pub async fn admin(nats: &NatsServer) -> async_nats::Client {
    connect_as(nats, "admin", password_of("admin")).await.expect("admin connects")
}

/// The connection flags of a service connecting as `user`: the name, and the password from a
/// file, as the chart mounts it. The file lives as long as this value.
pub struct UserFlags {
    flags: Vec<String>,
    _dir: tempfile::TempDir,
}

impl UserFlags {
    pub fn new(user: &str) -> Self {
        let dir = tempfile::tempdir().expect("secret dir");
        let file = dir.path().join("password");
        std::fs::write(&file, format!("{}\n", password_of(user))).expect("password file");
        let flags = vec!["--nats-user".into(), user.into(), "--nats-password-file".into(), file.display().to_string()];
        Self { flags, _dir: dir }
    }

    /// The admin's flags (the setup Job's).
    pub fn admin() -> Self {
        Self::new("admin")
    }

    /// The flags, plus `extra`.
    pub fn with<'a>(&'a self, extra: &[&'a str]) -> Vec<&'a str> {
        self.flags.iter().map(String::as_str).chain(extra.iter().copied()).collect()
    }
}

/// The setup step as the chart's hook Job runs it: as the admin, with the default settings.
pub async fn run_setup(nats: &NatsServer) {
    run_setup_with(nats, NatsArgs::local(nats.url())).await;
}

/// The setup step with the given connection (TLS, a password file, ...); the admin's password
/// unless the connection names a user.
pub async fn run_setup_with(nats: &NatsServer, mut connection: NatsArgs) {
    connection.url = nats.url();
    if connection.user.is_none() {
        connection.user = Some("admin".into());
        connection.password = Some(password_of("admin").into());
    }
    let args = SetupArgs {
        nats: connection,
        stream: StreamArgs::default(),
        lease_ttl: Duration::from_secs(3),
        timeout: Duration::from_secs(20),
    };
    btc_runtime::setup::run(&args).await.expect("the setup step succeeds");
}
