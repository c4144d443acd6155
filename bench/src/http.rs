//! A minimal HTTP/1.1 client: one keep-alive connection, GET only (hyper, no pool, no TLS).

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// One keep-alive HTTP/1.1 connection.
pub struct Connection {
    sender: SendRequest<Empty<Bytes>>,
    authority: String,
}

impl Connection {
    pub async fn open(addr: &str) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr).await.with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true).context("TCP_NODELAY")?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.context("HTTP/1.1 handshake")?;
        // Drives the connection; ends when `sender` is dropped or the server closes it.
        tokio::spawn(connection);
        Ok(Self { sender, authority: addr.to_string() })
    }

    /// GET `path`: the status and the whole body.
    pub async fn get(&mut self, path: &str) -> anyhow::Result<(StatusCode, Bytes)> {
        self.sender.ready().await.context("connection closed")?;
        let request = Request::get(path)
            .header(header::HOST, &self.authority)
            .body(Empty::new())
            .context("building a GET request")?;
        let response = self.sender.send_request(request).await.with_context(|| format!("GET {path}"))?;
        let status = response.status();
        let body = response.into_body().collect().await.with_context(|| format!("body of GET {path}"))?.to_bytes();
        Ok((status, body))
    }
}

/// The status of one GET on a new connection; `None` while nothing answers.
pub async fn status_once(addr: &str, path: &str) -> Option<StatusCode> {
    let mut connection = Connection::open(addr).await.ok()?;
    connection.get(path).await.ok().map(|(status, _)| status)
}
