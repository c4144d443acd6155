//! Closing connections that hold the server without sending requests: idle keep-alive
//! connections, clients that stall in the middle of a request (slowloris), and clients that trickle
//! a request head a byte at a time, which no idle timer catches.
//!
//! poem's own `Server::idle_timeout` wakes a watcher task on every read and write, which cost a
//! third of the throughput in `make bench`. Here each connection keeps one timer that is re-armed
//! only when it fires: a read or write just notes the time.
//!
//! poem 3.1 arms no timer in hyper, so hyper's `header_read_timeout` never fires; the head deadline
//! is kept here instead, by watching the bytes go by. A head is being read from the connection's
//! start, and from the first byte read after an answer was written (keep-alive); it is complete at
//! the first empty line after some content, as HTTP/1.1 ends it. Until then the deadline holds;
//! past it the connection ends. An answer written also ends the head (the server writes only after
//! parsing one), so a head the scan cannot see end (pipelined requests) costs no more than one
//! deadline. HTTP/2 without TLS (`h2c`, whose frames this scan cannot follow) is refused: the
//! ingress controller, Prometheus and the kubelet speak HTTP/1.1.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use poem::http::uri::Scheme;
use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// How long a connection may hold the server without doing its part.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionTimeouts {
    /// No byte read or written for this long: the connection ends.
    pub idle: Duration,
    /// A request head not complete this long after it began: the connection ends.
    pub header_read: Duration,
}

/// Wraps every accepted connection in an [`IdleTimeoutStream`].
pub struct IdleTimeoutAcceptor<A> {
    inner: A,
    timeouts: ConnectionTimeouts,
}

impl<A> IdleTimeoutAcceptor<A> {
    pub fn new(inner: A, timeouts: ConnectionTimeouts) -> Self {
        Self { inner, timeouts }
    }
}

impl<A: Acceptor> Acceptor for IdleTimeoutAcceptor<A> {
    type Io = IdleTimeoutStream<A::Io>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(&mut self) -> io::Result<(Self::Io, LocalAddr, RemoteAddr, Scheme)> {
        let (io, local, remote, scheme) = self.inner.accept().await?;
        Ok((IdleTimeoutStream::new(io, self.timeouts), local, remote, scheme))
    }
}

/// The start of the HTTP/2 connection preface: a request line no HTTP/1.1 client sends.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";

/// A stream whose reads end (EOF) once neither a read nor a write has moved a byte for the idle
/// timeout, or once a request head has taken longer than the header-read timeout; the HTTP
/// server then closes the connection.
pub struct IdleTimeoutStream<T> {
    inner: T,
    timeouts: ConnectionTimeouts,
    last_activity: Instant,
    head: Head,
    timer: Pin<Box<Sleep>>,
    /// Bytes of [`H2_PREFACE`] the connection began with, while they match.
    preface: Option<usize>,
    /// Cut: every later read is the end of the stream.
    ended: bool,
}

/// Where the connection stands in its current request.
enum Head {
    /// A head is being read and must be complete by `deadline`.
    Reading { deadline: Instant, scan: HeadScan },
    /// The head is complete and being answered.
    Answering,
    /// An answer was written; the next byte read begins the next head.
    Waiting,
}

/// Finds the end of an HTTP/1.1 head: an empty line (CR optional) after some content.
#[derive(Debug, Default)]
struct HeadScan {
    content: bool,
    line_start: bool,
}

impl HeadScan {
    /// True once `bytes` complete the head. Empty lines before the request line do not (servers
    /// skip them), so they cannot end a head that has not begun.
    fn completes(&mut self, bytes: &[u8]) -> bool {
        for &byte in bytes {
            match byte {
                b'\n' if self.line_start && self.content => return true,
                b'\n' => self.line_start = true,
                b'\r' => {}
                _ => (self.content, self.line_start) = (true, false),
            }
        }
        false
    }
}

impl<T> IdleTimeoutStream<T> {
    pub fn new(inner: T, timeouts: ConnectionTimeouts) -> Self {
        let now = Instant::now();
        // The first head is timed from the connection's start: connecting costs the server too.
        let head_deadline = now + timeouts.header_read;
        Self {
            inner,
            timeouts,
            last_activity: now,
            head: Head::Reading { deadline: head_deadline, scan: HeadScan::default() },
            timer: Box::pin(tokio::time::sleep_until(head_deadline.min(now + timeouts.idle))),
            preface: Some(0),
            ended: false,
        }
    }

    /// Ready once the connection has been idle for the whole idle timeout, or its head is past
    /// its deadline; re-arms the timer when it fires early because of activity since it was set.
    fn poll_deadlines(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        while self.timer.as_mut().poll(cx).is_ready() {
            let now = Instant::now();
            let idle_deadline = self.last_activity + self.timeouts.idle;
            if idle_deadline <= now {
                tracing::debug!(timeout = ?self.timeouts.idle, "closing an idle connection");
                return Poll::Ready(());
            }
            let next = match self.head {
                Head::Reading { deadline, .. } if deadline <= now => {
                    tracing::debug!(timeout = ?self.timeouts.header_read, "closing a connection: request head too slow");
                    return Poll::Ready(());
                }
                Head::Reading { deadline, .. } => deadline.min(idle_deadline),
                Head::Answering | Head::Waiting => idle_deadline,
            };
            self.timer.as_mut().reset(next);
        }
        Poll::Pending
    }

    /// Follows the bytes just read; false when the connection must end instead (its head is past
    /// the deadline, or it speaks h2c).
    fn on_read(&mut self, read: &[u8], now: Instant) -> bool {
        if let Some(matched) = self.preface {
            let compared = (H2_PREFACE.len() - matched).min(read.len());
            self.preface = (read[..compared] == H2_PREFACE[matched..matched + compared]).then_some(matched + compared);
            if self.preface == Some(H2_PREFACE.len()) {
                tracing::debug!("refusing an HTTP/2 connection without TLS (h2c)");
                return false;
            }
        }
        match &mut self.head {
            Head::Reading { deadline, .. } if *deadline <= now => return false,
            Head::Reading { scan, .. } => {
                if scan.completes(read) {
                    self.head = Head::Answering;
                }
            }
            Head::Answering => {}
            Head::Waiting => {
                let mut scan = HeadScan::default();
                if scan.completes(read) {
                    self.head = Head::Answering;
                } else {
                    let deadline = now + self.timeouts.header_read;
                    if deadline < self.timer.deadline() {
                        self.timer.as_mut().reset(deadline);
                    }
                    self.head = Head::Reading { deadline, scan };
                }
            }
        }
        true
    }

    fn on_write(&mut self) {
        self.last_activity = Instant::now();
        // Only a parsed head gets an answer: whatever the scan saw, this head is over.
        self.head = Head::Waiting;
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleTimeoutStream<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.ended {
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let now = Instant::now();
                this.last_activity = now;
                let read = &buf.filled()[before..];
                if !read.is_empty() && !this.on_read(read, now) {
                    // The bytes are dropped: the server sees the end of the stream and closes.
                    buf.set_filled(before);
                    this.ended = true;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => {
                ready!(this.poll_deadlines(cx));
                // Nothing read: the server sees the end of the stream and closes the connection.
                this.ended = true;
                Poll::Ready(Ok(()))
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleTimeoutStream<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let result = ready!(Pin::new(&mut self.inner).poll_write(cx, buf));
        if matches!(result, Ok(written) if written > 0) {
            self.on_write();
        }
        Poll::Ready(result)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = ready!(Pin::new(&mut self.inner).poll_write_vectored(cx, bufs));
        if matches!(result, Ok(written) if written > 0) {
            self.on_write();
        }
        Poll::Ready(result)
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
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const TIMEOUT: Duration = Duration::from_secs(10);
    /// Idle timeout only: the head deadline far away.
    const IDLE_ONLY: ConnectionTimeouts = ConnectionTimeouts { idle: TIMEOUT, header_read: Duration::from_secs(3600) };
    const HEAD_DEADLINE: Duration = Duration::from_secs(2);
    const BOTH: ConnectionTimeouts = ConnectionTimeouts { idle: TIMEOUT, header_read: HEAD_DEADLINE };

    /// Reads until the end of the stream; returns the bytes and when the end came.
    async fn read_to_end(stream: &mut IdleTimeoutStream<tokio::io::DuplexStream>) -> (Vec<u8>, Instant) {
        let mut bytes = Vec::new();
        let mut buffer = [0u8; 64];
        loop {
            let read = stream.read(&mut buffer).await.expect("read");
            if read == 0 {
                return (bytes, Instant::now());
            }
            bytes.extend_from_slice(&buffer[..read]);
        }
    }

    /// Writes `bytes` one at a time, `every` apart.
    async fn trickle(client: &mut tokio::io::DuplexStream, bytes: &[u8], every: Duration) {
        for byte in bytes {
            if client.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(every).await;
        }
    }

    // Virtual time: the timer fires without the test waiting for it.
    #[tokio::test(start_paused = true)]
    async fn a_client_stalling_inside_its_request_is_cut_after_the_timeout() {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut server = IdleTimeoutStream::new(server, IDLE_ONLY);
        let started = Instant::now();
        client.write_all(b"GET /btc/USD HTTP/1.1\r\nHos").await.expect("write");
        let (bytes, ended) = read_to_end(&mut server).await;
        assert_eq!(bytes, b"GET /btc/USD HTTP/1.1\r\nHos");
        assert_eq!(ended - started, TIMEOUT);
    }

    #[tokio::test(start_paused = true)]
    async fn traffic_in_either_direction_keeps_the_connection_open() {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut server = IdleTimeoutStream::new(server, IDLE_ONLY);
        let started = Instant::now();
        let talk = async {
            tokio::time::sleep(Duration::from_secs(6)).await;
            client.write_all(b"ping").await.expect("write");
            client
        };
        let (_client, (bytes, ended)) = tokio::join!(talk, read_to_end(&mut server));
        assert_eq!(bytes, b"ping");
        assert_eq!(ended - started, Duration::from_secs(16), "the read at 6 s moved the deadline");

        // A write (the server answering) counts as activity too.
        let (mut client, server) = tokio::io::duplex(1024);
        let mut server = IdleTimeoutStream::new(server, IDLE_ONLY);
        tokio::time::sleep(Duration::from_secs(7)).await;
        server.write_all(b"pong").await.expect("write");
        let mut answer = [0u8; 4];
        client.read_exact(&mut answer).await.expect("client reads");
        let written = Instant::now();
        let (_, ended) = read_to_end(&mut server).await;
        assert_eq!(ended - written, TIMEOUT);
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_trickled_a_byte_at_a_time_is_cut_at_the_head_deadline() {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut server = IdleTimeoutStream::new(server, BOTH);
        let started = Instant::now();
        let head = b"GET /btc/USD HTTP/1.1\r\nHost: x\r\n\r\n";
        let ((), (bytes, ended)) =
            tokio::join!(trickle(&mut client, head, Duration::from_millis(500)), read_to_end(&mut server));
        // Every byte kept the idle timer happy; the head deadline cut it all the same.
        assert_eq!(ended - started, HEAD_DEADLINE);
        assert_eq!(bytes, &head[..4], "the bytes of the first 2 s, nothing after the deadline");
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_sends_nothing_is_cut_at_the_head_deadline() {
        let (_client, server) = tokio::io::duplex(1024);
        let mut server = IdleTimeoutStream::new(server, BOTH);
        let started = Instant::now();
        let (bytes, ended) = read_to_end(&mut server).await;
        assert_eq!((bytes.len(), ended - started), (0, HEAD_DEADLINE));
    }

    #[tokio::test(start_paused = true)]
    async fn each_keep_alive_request_gets_the_deadline_from_its_first_byte() {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut server = IdleTimeoutStream::new(server, BOTH);
        let mut buffer = [0u8; 64];
        // A whole head: no deadline while it is answered, however long that takes (below idle).
        client.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("write");
        let read = server.read(&mut buffer).await.expect("read");
        assert_eq!(read, 27);
        tokio::time::sleep(HEAD_DEADLINE * 3).await;
        server.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.expect("answer");
        // Between requests only the idle timeout counts: 8 s of silence, then the next head
        // begins and has its own 2 s.
        tokio::time::sleep(Duration::from_secs(8)).await;
        let next_started = Instant::now();
        let head = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let ((), (bytes, ended)) =
            tokio::join!(trickle(&mut client, head, Duration::from_millis(500)), read_to_end(&mut server));
        assert_eq!(ended - next_started, HEAD_DEADLINE);
        assert_eq!(bytes, &head[..4]);
    }

    #[tokio::test(start_paused = true)]
    async fn empty_lines_before_the_request_line_do_not_end_a_head() {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut server = IdleTimeoutStream::new(server, BOTH);
        let started = Instant::now();
        client.write_all(b"\r\n\r\n\n\nGET / HTTP/1.1\r\n").await.expect("write");
        let (bytes, ended) = read_to_end(&mut server).await;
        assert_eq!((bytes.len(), ended - started), (22, HEAD_DEADLINE));
        let mut scan = HeadScan::default();
        assert!(!scan.completes(b"\r\n\n"));
        assert!(!scan.completes(b"GET / HTTP/1.1\r\nHost: x\r\n"));
        assert!(scan.completes(b"\r\n"), "CRLF CRLF ends a head");
        assert!(HeadScan::default().completes(b"GET / HTTP/1.1\nHost: x\n\n"), "so do bare LFs");
    }

    #[tokio::test(start_paused = true)]
    async fn h2c_is_refused_even_when_trickled() {
        for chunk in [H2_PREFACE.len(), 1] {
            let (mut client, server) = tokio::io::duplex(1024);
            let mut server = IdleTimeoutStream::new(server, BOTH);
            let started = Instant::now();
            let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
            let send = async {
                for part in preface.chunks(chunk) {
                    client.write_all(part).await.expect("write");
                    tokio::task::yield_now().await;
                }
            };
            let ((), (bytes, ended)) = tokio::join!(send, read_to_end(&mut server));
            assert!(bytes.len() < H2_PREFACE.len(), "the server saw the whole h2c preface: {bytes:?}");
            assert_eq!(ended, started, "refused at once");
        }
        // A request that merely begins like it is served.
        let (mut client, server) = tokio::io::duplex(1024);
        let mut server = IdleTimeoutStream::new(server, BOTH);
        client.write_all(b"PRI /x HTTP/1.1\r\n\r\n").await.expect("write");
        let mut buffer = [0u8; 64];
        assert_eq!(server.read(&mut buffer).await.expect("read"), 19);
    }
}
