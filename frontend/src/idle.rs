//! Closing connections that carry no bytes for a while: idle keep-alive connections, and clients
//! that stall in the middle of a request (slowloris).
//!
//! poem's own `Server::idle_timeout` wakes a watcher task on every read and write, which cost a
//! third of the throughput in `make bench`. Here each connection keeps one timer that is re-armed
//! only when it fires: a read or write just notes the time.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use poem::http::uri::Scheme;
use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Wraps every accepted connection in an [`IdleTimeoutStream`].
pub struct IdleTimeoutAcceptor<A> {
    inner: A,
    timeout: Duration,
}

impl<A> IdleTimeoutAcceptor<A> {
    pub fn new(inner: A, timeout: Duration) -> Self {
        Self { inner, timeout }
    }
}

impl<A: Acceptor> Acceptor for IdleTimeoutAcceptor<A> {
    type Io = IdleTimeoutStream<A::Io>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(&mut self) -> io::Result<(Self::Io, LocalAddr, RemoteAddr, Scheme)> {
        let (io, local, remote, scheme) = self.inner.accept().await?;
        Ok((IdleTimeoutStream::new(io, self.timeout), local, remote, scheme))
    }
}

/// A stream whose reads end (EOF) once neither a read nor a write has moved a byte for `timeout`;
/// the HTTP server then closes the connection.
pub struct IdleTimeoutStream<T> {
    inner: T,
    timeout: Duration,
    last_activity: Instant,
    timer: Pin<Box<Sleep>>,
}

impl<T> IdleTimeoutStream<T> {
    pub fn new(inner: T, timeout: Duration) -> Self {
        let now = Instant::now();
        Self { inner, timeout, last_activity: now, timer: Box::pin(tokio::time::sleep_until(now + timeout)) }
    }

    /// Ready once the connection has been idle for the whole timeout; re-arms the timer when it
    /// fires early because of activity since it was set.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        while self.timer.as_mut().poll(cx).is_ready() {
            let deadline = self.last_activity + self.timeout;
            if deadline <= Instant::now() {
                return Poll::Ready(());
            }
            self.timer.as_mut().reset(deadline);
        }
        Poll::Pending
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleTimeoutStream<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                this.last_activity = Instant::now();
                Poll::Ready(result)
            }
            Poll::Pending => {
                ready!(this.poll_idle(cx));
                // Nothing read: the server sees the end of the stream and closes the connection.
                tracing::debug!(timeout = ?this.timeout, "closing an idle connection");
                Poll::Ready(Ok(()))
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleTimeoutStream<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let result = ready!(Pin::new(&mut self.inner).poll_write(cx, buf));
        self.last_activity = Instant::now();
        Poll::Ready(result)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = ready!(Pin::new(&mut self.inner).poll_write_vectored(cx, bufs));
        self.last_activity = Instant::now();
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

    // Virtual time: the timer fires without the test waiting for it.
    #[tokio::test(start_paused = true)]
    async fn a_client_stalling_inside_its_request_is_cut_after_the_timeout() {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut server = IdleTimeoutStream::new(server, TIMEOUT);
        let started = Instant::now();
        client.write_all(b"GET /btc/USD HTTP/1.1\r\nHos").await.expect("write");
        let (bytes, ended) = read_to_end(&mut server).await;
        assert_eq!(bytes, b"GET /btc/USD HTTP/1.1\r\nHos");
        assert_eq!(ended - started, TIMEOUT);
    }

    #[tokio::test(start_paused = true)]
    async fn traffic_in_either_direction_keeps_the_connection_open() {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut server = IdleTimeoutStream::new(server, TIMEOUT);
        let started = Instant::now();
        let talk = async {
            tokio::time::sleep(Duration::from_secs(6)).await;
            client.write_all(b"ping").await.expect("write");
            client
        };
        let (mut client, (bytes, ended)) = tokio::join!(talk, read_to_end(&mut server));
        assert_eq!(bytes, b"ping");
        assert_eq!(ended - started, Duration::from_secs(16), "the read at 6 s moved the deadline");

        // A write (the server answering) counts as activity too.
        tokio::time::sleep(Duration::from_secs(7)).await;
        server.write_all(b"pong").await.expect("write");
        let mut answer = [0u8; 4];
        client.read_exact(&mut answer).await.expect("client reads");
        let written = Instant::now();
        let (_, ended) = read_to_end(&mut server).await;
        assert_eq!(ended - written, TIMEOUT);
    }
}
