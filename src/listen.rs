//! The portal's TLS listener for `axum::serve` (the gateway terminates TLS in its own accept
//! loop, `turnpike_gateway`).
//!
//! Handshakes run in their own tasks, each bounded by a deadline, so one slow or silent client
//! never holds up the next; only finished handshakes reach axum.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use turnpike_tls::ServerTls;

/// A TCP listener whose connections arrive with their TLS handshake done.
#[derive(Debug)]
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Accept on `tcp` and handshake with `tls`, giving each client `handshake_timeout`.
    pub fn new(tcp: TcpListener, tls: Arc<ServerTls>, handshake_timeout: Duration) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (stream, remote) = tokio::select! {
                    accepted = tcp.accept() => match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            // Out of file descriptors and the like: back off instead of spinning.
                            tracing::warn!(error = %e, "portal accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                    // axum stopped accepting (shutdown): release the port.
                    () = tx.closed() => return,
                };
                let (tx, acceptor) = (tx.clone(), tls.acceptor());
                tokio::spawn(async move {
                    if let Ok(Ok(stream)) = tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                        let _ = tx.send((stream, remote)).await;
                    }
                });
            }
        });
        Ok(TlsListener { ready, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accept task ends only once this side is gone; never reached while serving.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
