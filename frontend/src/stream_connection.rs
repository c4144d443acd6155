//! A connection whose first request opens an event stream (`GET /{asset}/{currency}/stream`) is
//! answered here rather than by hyper: hyper keeps an 8 KiB read buffer and an 8 KiB head buffer
//! for the life of every connection, which at 10,000 open streams is most of the process's
//! memory (`bench/README.md`, the fan-out). The request still goes through the whole app (the
//! same endpoint: limits, routing, errors, headers, metrics, spans); only the HTTP/1.1 framing is
//! done here: the head is parsed with `httparse`, the answer written with chunked encoding, and
//! the connection closed after it (`connection: close`).
//!
//! Everything else goes to hyper with the bytes read so far put back in front of the connection
//! ([`Rewind`]): any other request, and any head this does not take whole (not complete within
//! [`HEAD_LIMIT`] bytes, not HTTP/1.1, announcing a body or an upgrade, pipelined, unparsable),
//! so that hyper alone decides every edge case of the protocol.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use futures::{FutureExt, StreamExt};
use poem::endpoint::BoxEndpoint;
use poem::http::uri::Scheme;
use poem::http::{HeaderName, HeaderValue, Method, Version, header};
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Endpoint, RequestParts};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// The route whose first requests are answered here.
const STREAM_ROUTE: &str = "/{asset}/{currency}/stream";
/// The longest head taken here; a longer one (cookies, large tokens) goes to hyper.
pub const HEAD_LIMIT: usize = 4096;
/// The most header fields parsed here; more go to hyper.
const MAX_FIELDS: usize = 32;

/// What the first request of a connection is.
pub enum FirstRequest<T> {
    /// An event stream: for [`answer`].
    Stream(Box<poem::Request>, T),
    /// Anything else: for hyper, the bytes read put back.
    Other(Rewind<T>),
    /// The connection ended (or failed) before it sent a byte.
    Gone,
}

/// Reads the first request's head from `io` (up to [`HEAD_LIMIT`] bytes) and tells which it is.
pub async fn first_request<T: AsyncRead + Unpin>(
    mut io: T,
    local: &LocalAddr,
    remote: &RemoteAddr,
    scheme: &Scheme,
) -> FirstRequest<T> {
    let mut head = BytesMut::with_capacity(512);
    loop {
        let read = (&mut io).take((HEAD_LIMIT - head.len()) as u64).read_buf(&mut head).await;
        if !matches!(read, Ok(1..)) {
            // The end, or an error: hyper answers a part of a head as it would.
            return if head.is_empty() { FirstRequest::Gone } else { FirstRequest::Other(Rewind::new(head, io)) };
        }
        match parse(&head) {
            Parsed::Stream(parts) => {
                let parts = RequestParts::from((*parts, local.clone(), remote.clone(), scheme.clone()));
                return FirstRequest::Stream(Box::new(poem::Request::from_parts(parts, poem::Body::empty())), io);
            }
            Parsed::Partial if head.len() < HEAD_LIMIT => {}
            Parsed::Partial | Parsed::Other => return FirstRequest::Other(Rewind::new(head, io)),
        }
    }
}

enum Parsed {
    Stream(Box<poem::http::request::Parts>),
    Partial,
    Other,
}

/// A complete head of a bodiless HTTP/1.1 GET of a stream path, with nothing after it.
fn parse(bytes: &[u8]) -> Parsed {
    let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
    let mut request = httparse::Request::new(&mut fields);
    let length = match request.parse(bytes) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Other,
    };
    let (Some("GET"), Some(1), Some(target)) = (request.method, request.version, request.path) else {
        return Parsed::Other;
    };
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    if length != bytes.len() || !crate::routes::matches(STREAM_ROUTE, path) {
        return Parsed::Other;
    }
    let mut builder = poem::http::Request::builder().method(Method::GET).uri(target).version(Version::HTTP_11);
    for field in request.headers.iter() {
        let name = field.name;
        let announces_more = name.eq_ignore_ascii_case("content-length") && field.value != b"0"
            || name.eq_ignore_ascii_case("transfer-encoding")
            || name.eq_ignore_ascii_case("upgrade")
            || name.eq_ignore_ascii_case("expect");
        let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_bytes(field.value))
        else {
            return Parsed::Other;
        };
        if announces_more {
            return Parsed::Other;
        }
        builder = builder.header(name, value);
    }
    match builder.body(()) {
        Ok(request) => Parsed::Stream(Box::new(request.into_parts().0)),
        Err(_) => Parsed::Other,
    }
}

/// Answers `request` with `endpoint` on `io`, then closes the connection. An event stream is
/// written as it comes, until it ends (shutdown), the client goes, or the connection's idle
/// timeout ends its reads (a client that stopped reading); any other answer is written whole.
pub async fn answer<T: AsyncRead + AsyncWrite + Unpin>(io: T, endpoint: &BoxEndpoint<'static>, request: poem::Request) {
    let response = endpoint.get_response(request).await;
    let streaming = response.content_type().is_some_and(|media| media.starts_with("text/event-stream"));
    let (response_head, body) = response.into_parts();
    let (mut reads, mut writes) = tokio::io::split(io);
    let write = async {
        if streaming {
            writes.write_all(&head(&response_head.status, &response_head.headers, None)).await?;
            drop(response_head);
            let mut chunks = body.into_bytes_stream();
            while let Some(Ok(chunk)) = chunks.next().await {
                // Made per write, not kept: a waiting stream holds no buffer.
                let mut parts = VecDeque::with_capacity(6);
                frame(&mut parts, chunk);
                // Whatever else is ready goes in the same write: a tick's price and average.
                while parts.len() < MAX_PARTS {
                    match chunks.next().now_or_never() {
                        Some(Some(Ok(chunk))) => frame(&mut parts, chunk),
                        _ => break,
                    }
                }
                write_parts(&mut writes, &mut parts).await?;
            }
            writes.write_all(b"0\r\n\r\n").await?;
        } else {
            let body = body.into_bytes().await.unwrap_or_default();
            let mut head = head(&response_head.status, &response_head.headers, Some(body.len()));
            head.extend_from_slice(&body);
            writes.write_all(&head).await?;
        }
        writes.shutdown().await
    };
    // The client going away, or the idle timeout ending the reads, ends the answer.
    let closed = async {
        let mut discard = [0u8; 64];
        while matches!(reads.read(&mut discard).await, Ok(1..)) {}
    };
    tokio::select! {
        written = write => {
            if let Err(error) = written {
                tracing::debug!(%error, "an event stream's connection failed");
            }
        }
        () = closed => {}
    }
}

/// Slices in one `writev`: a chunk is three (size, data, line end).
const MAX_PARTS: usize = 48;

/// Queues `chunk` as one chunk of a chunked body.
fn frame(parts: &mut VecDeque<Bytes>, chunk: Bytes) {
    parts.push_back(Bytes::from(format!("{:x}\r\n", chunk.len())));
    parts.push_back(chunk);
    parts.push_back(Bytes::from_static(b"\r\n"));
}

/// Writes every queued part, as few `writev` calls as the socket takes.
async fn write_parts<W: AsyncWrite + Unpin>(writes: &mut W, parts: &mut VecDeque<Bytes>) -> io::Result<()> {
    while !parts.is_empty() {
        let slices: Vec<io::IoSlice<'_>> = parts.iter().map(|part| io::IoSlice::new(part)).collect();
        let mut written = writes.write_vectored(&slices).await?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        while let Some(front) = parts.front_mut() {
            if written < front.len() {
                front.advance(written);
                break;
            }
            written -= front.len();
            parts.pop_front();
        }
    }
    Ok(())
}

/// The response head: status line, the app's fields, framing, `connection: close`.
fn head(status: &poem::http::StatusCode, fields: &poem::http::HeaderMap, length: Option<usize>) -> Vec<u8> {
    let mut head = Vec::with_capacity(512);
    let reason = status.canonical_reason().unwrap_or("");
    head.extend_from_slice(format!("HTTP/1.1 {} {reason}\r\n", status.as_str()).as_bytes());
    for (name, value) in fields {
        if name != header::CONTENT_LENGTH && name != header::TRANSFER_ENCODING && name != header::CONNECTION {
            head.extend_from_slice(name.as_str().as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(value.as_bytes());
            head.extend_from_slice(b"\r\n");
        }
    }
    head.extend_from_slice(format!("date: {}\r\n", httpdate::fmt_http_date(std::time::SystemTime::now())).as_bytes());
    match length {
        Some(length) => head.extend_from_slice(format!("content-length: {length}\r\n").as_bytes()),
        None => head.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    head.extend_from_slice(b"connection: close\r\n\r\n");
    head
}

/// A connection with bytes already read put back in front of it.
pub struct Rewind<T> {
    prefix: Bytes,
    inner: T,
}

impl<T> Rewind<T> {
    fn new(prefix: BytesMut, inner: T) -> Self {
        Self { prefix: prefix.freeze(), inner }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Rewind<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.prefix.is_empty() {
            return Pin::new(&mut self.inner).poll_read(cx, buf);
        }
        let n = self.prefix.len().min(buf.remaining());
        buf.put_slice(&self.prefix[..n]);
        self.prefix.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Rewind<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taken(head: &str) -> bool {
        matches!(parse(head.as_bytes()), Parsed::Stream(_))
    }

    #[test]
    fn only_a_whole_bodiless_http_1_1_get_of_a_stream_path_is_taken() {
        assert!(taken("GET /btc/USD/stream HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 7\r\n\r\n"));
        assert!(taken("GET /eth/USD/stream?since=3 HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(taken("GET /btc/USD/stream HTTP/1.1\r\nContent-Length: 0\r\n\r\n"));
        for other in [
            "GET /btc/USD HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /btc/USD/stream/x HTTP/1.1\r\n\r\n",
            "POST /btc/USD/stream HTTP/1.1\r\n\r\n",
            "HEAD /btc/USD/stream HTTP/1.1\r\n\r\n",
            "GET /btc/USD/stream HTTP/1.0\r\n\r\n",
            "GET /btc/USD/stream HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
            "GET /btc/USD/stream HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET /btc/USD/stream HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            "GET /btc/USD/stream HTTP/1.1\r\n\r\nGET /btc/USD HTTP/1.1\r\n\r\n",
            "GET /btc/USD/stream HTTP/1.1\r\nBad Header\r\n\r\n",
        ] {
            assert!(!taken(other), "{other:?} was taken");
        }
        assert!(matches!(parse(b"GET /btc/USD/stream HTTP/1.1\r\nHost: x\r\n"), Parsed::Partial));
    }

    #[tokio::test]
    async fn an_event_stream_is_written_in_chunks_and_ends_with_the_last_chunk_and_the_connection() {
        #[poem::handler]
        fn events() -> poem::Response {
            let chunks =
                ["data: 1\n\n", "data: 22\n\n"].map(|event| Ok::<_, io::Error>(Bytes::from_static(event.as_bytes())));
            poem::Response::builder()
                .content_type("text/event-stream")
                .header("x-app", "kept")
                .body(poem::Body::from_bytes_stream(futures::stream::iter(chunks)))
        }
        let endpoint: BoxEndpoint<'static> = poem::EndpointExt::boxed(events);
        let (mut client, server) = tokio::io::duplex(4096);
        let request = poem::Request::builder().uri_str("/btc/USD/stream").finish();
        answer(server, &endpoint, request).await;
        let mut written = Vec::new();
        client.read_to_end(&mut written).await.expect("read");
        let written = String::from_utf8(written).expect("text");
        let (head, body) = written.split_once("\r\n\r\n").expect("a head");
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        for field in
            ["x-app: kept", "content-type: text/event-stream", "transfer-encoding: chunked", "connection: close"]
        {
            assert!(head.contains(field), "no {field:?} in {head}");
        }
        assert_eq!(body, "9\r\ndata: 1\n\n\r\na\r\ndata: 22\n\n\r\n0\r\n\r\n");
    }

    #[tokio::test]
    async fn any_other_answer_is_written_whole_with_its_length() {
        #[poem::handler]
        fn missing() -> poem::Response {
            poem::Response::builder().status(poem::http::StatusCode::NOT_FOUND).body("{\"error\":\"unknown_pair\"}")
        }
        let endpoint: BoxEndpoint<'static> = poem::EndpointExt::boxed(missing);
        let (mut client, server) = tokio::io::duplex(4096);
        answer(server, &endpoint, poem::Request::builder().finish()).await;
        let mut written = Vec::new();
        client.read_to_end(&mut written).await.expect("read");
        let written = String::from_utf8(written).expect("text");
        assert!(written.starts_with("HTTP/1.1 404 Not Found\r\n"), "{written}");
        assert!(
            written.contains("content-length: 24\r\n") && written.ends_with("\r\n\r\n{\"error\":\"unknown_pair\"}")
        );
    }

    #[tokio::test]
    async fn what_is_not_taken_reaches_hyper_byte_for_byte() {
        let sent = b"GET /btc/USD HTTP/1.1\r\nHost: x\r\n\r\nGET /pairs HTTP/1.1\r\n\r\n".to_vec();
        let (mut client, server) = tokio::io::duplex(1024);
        client.write_all(&sent).await.expect("write");
        drop(client);
        let addr = (LocalAddr::default(), RemoteAddr::default(), Scheme::HTTP);
        let FirstRequest::Other(mut rewound) = first_request(server, &addr.0, &addr.1, &addr.2).await else {
            panic!("a price request was taken as a stream");
        };
        let mut seen = Vec::new();
        rewound.read_to_end(&mut seen).await.expect("read");
        assert_eq!(seen, sent);
    }
}
