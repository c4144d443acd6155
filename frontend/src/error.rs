//! The frontends' error type.

#[derive(Debug, thiserror::Error)]
pub enum FrontendError {
    #[error(transparent)]
    Nats(#[from] btc_runtime::RuntimeError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: std::net::SocketAddr, source: std::io::Error },
    #[error("HTTP server failed: {0}")]
    Serve(std::io::Error),
}
