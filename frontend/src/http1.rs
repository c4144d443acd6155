//! Serving the app's endpoint over HTTP/1.1 with hyper directly, on the idle-timeout acceptor.
//!
//! `poem::Server` boxes every connection into a `BoxIo` that does not pass vectored writes on, so
//! hyper copies each response body into its own buffer before writing it; on a page of candles
//! that copy and its buffer were a fifth of bitcoin-api's CPU (`bench/README.md`). Here the
//! connection reaches hyper as accepted, and a body goes to the socket with `writev`. HTTP/2 was
//! never served (h2c is refused at its preface, see `idle`). A connection whose first request opens
//! an event stream is answered without hyper (`stream_connection` says why); the hot routes of the
//! others are answered before Poem (`hot_routes` says why).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use futures::future::{Either, ready};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use poem::Endpoint;
use poem::http::uri::Scheme;
use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::server::PublicService;
use crate::server_span::RequestHead;
use crate::stream_connection::{self, FirstRequest};

/// The pause after a failed accept.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// Serves `service` (its hot routes, then its endpoint) on every connection `acceptor` accepts until
/// `stop`; then stops accepting and gives the open connections up to `drain` to finish their
/// requests.
pub async fn serve<A>(
    mut acceptor: A,
    service: PublicService,
    stop: CancellationToken,
    drain: Duration,
) -> std::io::Result<()>
where
    A: Acceptor,
    A::Io: 'static,
{
    let service = Arc::new(service);
    let connections = GracefulShutdown::new();
    // The event streams answered without hyper: each ends with the drain (its stream does).
    let streams = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = acceptor.accept() => accepted,
        };
        let (io, local, remote, scheme) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // A connection reset before it was accepted, or no file left for it: the next
                // may well succeed, but not in a busy loop while files are short.
                tracing::debug!(%error, "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let (service, watcher) = (service.clone(), connections.watcher());
        streams.spawn(async move {
            match stream_connection::first_request(io, &local, &remote, &scheme).await {
                FirstRequest::Stream(request, io) => stream_connection::answer(io, &service.endpoint, *request).await,
                // Boxed: hyper's connection is large, and a stream's task need not hold its room.
                FirstRequest::Other(io) => {
                    Box::pin(serve_with_hyper(io, service, (local, remote, scheme), watcher)).await
                }
                FirstRequest::Gone => {}
            }
        });
    }
    streams.close();
    let drained = async {
        connections.shutdown().await;
        streams.wait().await;
    };
    if tokio::time::timeout(drain, drained).await.is_err() {
        tracing::warn!(?drain, "connections still open after the drain; closing them");
    }
    Ok(())
}

/// Serves every request of the connection `io` with hyper, until it closes or the drain.
async fn serve_with_hyper<T>(
    io: T,
    service: Arc<PublicService>,
    (local, remote, scheme): (LocalAddr, RemoteAddr, Scheme),
    watcher: Watcher,
) where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
        let head = RequestHead {
            method: request.method(),
            uri: request.uri(),
            version: request.version(),
            headers: request.headers(),
            remote: &remote,
        };
        if let Some(response) = service.hot.answer(&head) {
            return Either::Left(ready(Ok::<_, Infallible>(hyper::Response::from(response))));
        }
        let (service, local, remote, scheme) = (service.clone(), local.clone(), remote.clone(), scheme.clone());
        Either::Right(async move {
            let response = service.endpoint.get_response((request, local, remote, scheme).into()).await;
            Ok::<_, Infallible>(hyper::Response::from(response))
        })
    });
    let connection = http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(io), service);
    if let Err(error) = watcher.watch(connection).await {
        tracing::debug!(%error, "connection ended with an error");
    }
}
