//! Staged close of client connections (RFC 9112 §9.6, "tear-down"; nginx's lingering close).
//!
//! When the gateway answers before it has read the whole request (413 for a body over
//! `max_body_bytes`, 431, 400), hyper writes the answer, half-closes the connection and drops the
//! socket. Closing a socket whose receive buffer still holds unread bytes makes the kernel send a
//! TCP reset, and a client that is still uploading (curl, most HTTP libraries) then fails with
//! "broken pipe" or "connection reset" instead of reading the 413 already on its way. So a client
//! connection dropped before the client closed its side is handed to a task that half-closes it,
//! reads and discards for at most [`LINGER`] until the client closes its side, and only then
//! closes it. Connections whose client already closed (the usual end of a keep-alive connection)
//! close at once.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// Longest time a closing connection keeps reading: enough for a client to notice the answer
/// and stop sending, short enough that lingering sockets cannot pile up.
pub(crate) const LINGER: Duration = Duration::from_secs(2);

/// A client connection that closes in stages when dropped with unread input.
#[derive(Debug)]
pub(crate) struct LingeringStream {
    /// `None` only once dropped.
    stream: Option<TcpStream>,
}

impl LingeringStream {
    pub(crate) fn new(stream: TcpStream) -> Self {
        LingeringStream { stream: Some(stream) }
    }

    fn stream(self: Pin<&mut Self>) -> io::Result<Pin<&mut TcpStream>> {
        match self.get_mut().stream.as_mut() {
            Some(s) => Ok(Pin::new(s)),
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

impl AsyncRead for LingeringStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.stream() {
            Ok(s) => s.poll_read(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for LingeringStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.stream() {
            Ok(s) => s.poll_write(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        match self.stream() {
            Ok(s) => s.poll_write_vectored(cx, bufs),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.as_ref().is_some_and(TcpStream::is_write_vectored)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.stream() {
            Ok(s) => s.poll_flush(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.stream() {
            Ok(s) => s.poll_shutdown(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl Drop for LingeringStream {
    fn drop(&mut self) {
        let Some(stream) = self.stream.take() else { return };
        // Outside a runtime (its shutdown), closing at once is all that is left.
        let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
        // One non-blocking read tells whether the client has closed its side already. It goes
        // through the std socket: tokio's `try_read` answers from its cached readiness, which can
        // say "nothing" while the kernel holds unread bytes. The client's own close (0) or a dead
        // socket: close now. Unread bytes, **or nothing yet**, linger: an uploading client can be
        // between two writes at this instant (a descheduled client on a loaded machine), and
        // closing then makes its next write draw a reset that can discard the answer it has not
        // read yet (seen in CI: "broken pipe after 917,630 body bytes" in the teardown test).
        let Ok(mut std) = stream.into_std() else { return };
        let mut probe = [0u8; 1024];
        match std::io::Read::read(&mut std, &mut probe) {
            Ok(n) if n > 0 => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            _ => return,
        }
        let _guard = rt.enter();
        if let Ok(stream) = TcpStream::from_std(std) {
            rt.spawn(linger(stream));
        }
    }
}

/// Half-close, then read and discard until the client closes or [`LINGER`] passes.
async fn linger(mut stream: TcpStream) {
    let _ = stream.shutdown().await;
    let mut sink = vec![0u8; 16 * 1024];
    let _ = tokio::time::timeout(LINGER, async {
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}
