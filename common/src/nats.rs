//! NATS connection options shared by every service (flags with environment fallbacks).

use std::path::PathBuf;
use std::time::Duration;

use crate::error::CommonError;

/// How to reach and authenticate to NATS. Flattened into each service's configuration.
#[derive(Debug, Clone, clap::Args)]
pub struct NatsArgs {
    /// NATS server URL(s), comma-separated for a cluster.
    #[arg(long = "nats-url", env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub url: String,
    /// User name for user/password authentication.
    #[arg(long = "nats-user", env = "NATS_USER")]
    pub user: Option<String>,
    /// Password for user/password authentication.
    #[arg(long = "nats-password", env = "NATS_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Path of a NATS credentials file (JWT + NKey seed).
    #[arg(long = "nats-creds", env = "NATS_CREDS")]
    pub creds: Option<PathBuf>,
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
        Self { url: url.into(), user: None, password: None, creds: None, tls_ca: None, tls_cert: None, tls_key: None }
    }

    /// Connects without waiting for the server: the client keeps retrying in the background, so a
    /// service may start before NATS and its liveness does not depend on NATS.
    pub async fn connect(&self, client_name: &str) -> Result<async_nats::Client, CommonError> {
        let mut options = async_nats::ConnectOptions::new()
            .name(client_name)
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
        if let (Some(user), Some(password)) = (&self.user, &self.password) {
            options = options.user_and_password(user.clone(), password.clone());
        }
        if let Some(path) = &self.creds {
            options = options
                .credentials_file(path)
                .await
                .map_err(|source| CommonError::Credentials { path: path.display().to_string(), source })?;
        }
        if let Some(ca) = &self.tls_ca {
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            options = options.add_client_certificate(cert.clone(), key.clone()).require_tls(true);
        }
        let servers: Vec<&str> = self.url.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
        options.connect(servers).await.map_err(|source| CommonError::Connect { url: self.url.clone(), source })
    }
}

/// True while the client holds a live connection to a server.
pub fn is_connected(client: &async_nats::Client) -> bool {
    client.connection_state() == async_nats::connection::State::Connected
}

/// The wait before connection attempt number `attempts` (1 for the first one after start or after
/// a disconnect): none for the first, so a start or a blip costs no sleep, then a capped
/// exponential backoff (100 ms, 200 ms, ... 2 s) that does not hammer a server in an outage.
fn reconnect_delay(attempts: usize) -> Duration {
    match attempts {
        0 | 1 => Duration::ZERO,
        n => Duration::from_millis((100u64 << (n - 2).min(5)).min(2_000)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_attempt_does_not_wait_and_later_ones_back_off_up_to_two_seconds() {
        let delays: Vec<u64> = (1..=9).map(|n| reconnect_delay(n).as_millis() as u64).collect();
        assert_eq!(delays, [0, 100, 200, 400, 800, 1600, 2000, 2000, 2000]);
    }
}
