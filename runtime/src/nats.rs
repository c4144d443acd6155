//! NATS connection options shared by every service (flags with environment fallbacks).

use std::path::PathBuf;
use std::time::Duration;

use crate::backoff::Backoff;
use crate::error::RuntimeError;
use crate::jetstream::WhenMissing;

/// How to reach and authenticate to NATS. Flattened into each service's configuration.
#[derive(Debug, Clone, clap::Args)]
pub struct NatsArgs {
    /// NATS server URL(s), comma-separated for a cluster.
    #[arg(long = "nats-url", env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub url: String,
    /// User name for user/password authentication.
    #[arg(long = "nats-user", env = "NATS_USER")]
    pub user: Option<String>,
    /// Password for user/password authentication (prefer --nats-password-file).
    #[arg(long = "nats-password", env = "NATS_PASSWORD", hide_env_values = true, conflicts_with = "password_file")]
    pub password: Option<String>,
    /// File holding the password for user/password authentication (a mounted Secret); one
    /// trailing newline is ignored.
    #[arg(long = "nats-password-file", env = "NATS_PASSWORD_FILE")]
    pub password_file: Option<PathBuf>,
    /// Path of a NATS credentials file (JWT + NKey seed).
    #[arg(long = "nats-creds", env = "NATS_CREDS")]
    pub creds: Option<PathBuf>,
    /// File holding an NKey seed (`SU...`) to authenticate with.
    #[arg(long = "nats-nkey-file", env = "NATS_NKEY_FILE")]
    pub nkey_file: Option<PathBuf>,
    /// Prefix of this client's reply subjects; the server lets each user read only its own.
    /// Default: `_INBOX_<user>` with --nats-user, else `_INBOX`.
    #[arg(long = "nats-inbox-prefix", env = "NATS_INBOX_PREFIX")]
    pub inbox_prefix: Option<String>,
    /// CA certificate (PEM) to verify the NATS server; implies TLS.
    #[arg(long = "nats-tls-ca", env = "NATS_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS; needs --nats-tls-key.
    #[arg(long = "nats-tls-cert", env = "NATS_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Client private key (PEM) for mutual TLS.
    #[arg(long = "nats-tls-key", env = "NATS_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

impl NatsArgs {
    /// Arguments for a server at `url` with no authentication (tests, local runs).
    pub fn local(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            user: None,
            password: None,
            password_file: None,
            creds: None,
            nkey_file: None,
            inbox_prefix: None,
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
        }
    }

    /// True when the client authenticates: it then has a user of its own, whose permissions
    /// (the chart's) do not let it create or change streams and buckets.
    pub fn authenticates(&self) -> bool {
        self.user.is_some() || self.creds.is_some() || self.nkey_file.is_some()
    }

    /// What a service does about a stream or bucket that is missing: a client without credentials
    /// (a bare local run against `nats-server -js`) creates it; one with its own user waits for
    /// the setup step.
    pub fn when_missing(&self) -> WhenMissing {
        if self.authenticates() { WhenMissing::Wait } else { WhenMissing::Create }
    }

    /// The prefix of this client's reply subjects.
    pub fn inbox_prefix(&self) -> String {
        match (&self.inbox_prefix, &self.user) {
            (Some(prefix), _) => prefix.clone(),
            (None, Some(user)) => format!("_INBOX_{user}"),
            (None, None) => "_INBOX".to_string(),
        }
    }

    /// Connects without waiting for the server: the client keeps retrying in the background, so a
    /// service may start before NATS and its liveness does not depend on NATS.
    pub async fn connect(&self, client_name: &str) -> Result<async_nats::Client, RuntimeError> {
        let mut options = async_nats::ConnectOptions::new()
            .name(client_name)
            .custom_inbox_prefix(self.inbox_prefix())
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connection_timeout(Duration::from_secs(5))
            // A frozen or half-dead server is noticed in ~10 s (two missed pings) instead of the
            // client default of minutes, so the client fails over to another cluster node.
            .ping_interval(Duration::from_secs(5))
            .reconnect_delay_callback(reconnect_delay)
            .event_callback(|event| async move {
                match event {
                    async_nats::Event::Connected => tracing::info!("connected to NATS"),
                    async_nats::Event::Disconnected => tracing::warn!("disconnected from NATS; reconnecting"),
                    other => tracing::info!(event = %other, "NATS event"),
                }
            });
        options = self.authentication(options).await?;
        if let Some(ca) = &self.tls_ca {
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            options = options.add_client_certificate(cert.clone(), key.clone()).require_tls(true);
        }
        let servers: Vec<&str> = self.url.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
        options.connect(servers).await.map_err(|source| RuntimeError::Connect { url: self.url.clone(), source })
    }

    /// Adds the configured credentials to `options`, reading the files they are in.
    async fn authentication(
        &self,
        mut options: async_nats::ConnectOptions,
    ) -> Result<async_nats::ConnectOptions, RuntimeError> {
        let password = match (&self.password, &self.password_file) {
            (Some(password), _) => Some(password.clone()),
            (None, Some(path)) => Some(read_secret(path).await?),
            (None, None) => None,
        };
        if let (Some(user), Some(password)) = (&self.user, password) {
            options = options.user_and_password(user.clone(), password);
        }
        if let Some(path) = &self.creds {
            options = options
                .credentials_file(path)
                .await
                .map_err(|source| RuntimeError::Credentials { path: path.display().to_string(), source })?;
        }
        if let Some(path) = &self.nkey_file {
            options = options.nkey(read_secret(path).await?);
        }
        Ok(options)
    }
}

/// The content of a secret file (a Kubernetes Secret mounted as a file), without the trailing
/// newline an editor or `echo` adds.
async fn read_secret(path: &std::path::Path) -> Result<String, RuntimeError> {
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|source| RuntimeError::Credentials { path: path.display().to_string(), source })?;
    let text = text.strip_suffix('\n').unwrap_or(&text);
    Ok(text.strip_suffix('\r').unwrap_or(text).to_string())
}

/// True while the client holds a live connection to a server.
pub fn is_connected(client: &async_nats::Client) -> bool {
    client.connection_state() == async_nats::connection::State::Connected
}

/// The wait before connection attempt number `attempts` (1 for the first one after start or after
/// a disconnect): none for the first, so a start or a blip costs no sleep, then
/// [`Backoff::NATS`] (100 ms, 200 ms, ... 2 s), which does not hammer a server in an outage.
fn reconnect_delay(attempts: usize) -> Duration {
    match attempts {
        0 | 1 => Duration::ZERO,
        n => Backoff::NATS.nth_delay(u32::try_from(n - 2).unwrap_or(u32::MAX)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> NatsArgs {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            nats: NatsArgs,
        }
        <Cli as clap::Parser>::try_parse_from(std::iter::once("test").chain(args.iter().copied())).expect("parses").nats
    }

    #[test]
    fn each_user_has_its_own_inbox_prefix_unless_one_is_given() {
        assert_eq!(parse(&[]).inbox_prefix(), "_INBOX");
        assert_eq!(parse(&["--nats-user", "frontend"]).inbox_prefix(), "_INBOX_frontend");
        let given = parse(&["--nats-user", "frontend", "--nats-inbox-prefix", "_INBOX_web"]);
        assert_eq!(given.inbox_prefix(), "_INBOX_web");
    }

    #[test]
    fn only_a_client_without_credentials_creates_what_is_missing() {
        assert_eq!(parse(&[]).when_missing(), WhenMissing::Create);
        assert_eq!(parse(&["--nats-user", "publisher"]).when_missing(), WhenMissing::Wait);
        assert_eq!(parse(&["--nats-creds", "/etc/nats/nats.creds"]).when_missing(), WhenMissing::Wait);
        assert_eq!(parse(&["--nats-nkey-file", "/etc/nats/seed"]).when_missing(), WhenMissing::Wait);
    }

    #[test]
    fn a_password_and_a_password_file_exclude_each_other() {
        #[derive(clap::Parser, Debug)]
        struct Cli {
            #[command(flatten)]
            nats: NatsArgs,
        }
        let both = ["test", "--nats-password", "a", "--nats-password-file", "/p"];
        assert!(<Cli as clap::Parser>::try_parse_from(both).is_err());
    }

    #[tokio::test]
    async fn a_secret_file_loses_its_trailing_newline_only() {
        let dir = std::env::temp_dir().join(format!("btc-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        for (content, expected) in
            [("s3cret\n", "s3cret"), ("s3cret\r\n", "s3cret"), ("s3cret", "s3cret"), (" s p \n\n", " s p \n")]
        {
            let path = dir.join("password");
            std::fs::write(&path, content).expect("write");
            assert_eq!(read_secret(&path).await.expect("read"), expected, "{content:?}");
        }
        let missing = read_secret(&dir.join("absent")).await.expect_err("no file");
        assert!(missing.to_string().contains("absent"), "{missing}");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    #[test]
    fn the_first_attempt_does_not_wait_and_later_ones_back_off_up_to_two_seconds() {
        let delays: Vec<u64> = (1..=9).map(|n| reconnect_delay(n).as_millis() as u64).collect();
        assert_eq!(delays, [0, 100, 200, 400, 800, 1600, 2000, 2000, 2000]);
    }
}
