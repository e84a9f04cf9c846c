//! Tiny upstream servers for tests: named responders, slow ones, and ones that break.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// How a test upstream behaves.
#[derive(Clone, Copy)]
pub enum Behaviour {
    /// Answer 200 with this name as the body.
    Named(&'static str),
    /// Wait this long before answering.
    Slow(Duration),
}

/// Serve `handler` (HTTP/1.1 or h2c) on a free loopback port until the test's runtime ends: the
/// one accept loop of the tests' hand-written upstreams and receivers.
pub async fn serve<F, Fut>(handler: F) -> SocketAddr
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let handler = handler.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let answer = handler(req);
                    async move { Ok::<_, Infallible>(answer.await) }
                });
                let _ =
                    hyper_util::server::conn::auto::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
    addr
}

/// Start an upstream on a free loopback port; it runs until the test's runtime ends.
pub async fn start(b: Behaviour) -> SocketAddr {
    serve(move |_req| async move {
        let body = match b {
            Behaviour::Named(n) => n,
            Behaviour::Slow(d) => {
                tokio::time::sleep(d).await;
                "slow"
            }
        };
        Response::new(Full::new(Bytes::from_static(body.as_bytes())))
    })
    .await
}

/// A loopback address where nothing listens.
pub async fn refused() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    drop(l);
    a
}

/// An upstream that accepts any upgrade with `101 Upgrade: websocket` and then echoes raw bytes;
/// counts the requests it received.
pub async fn start_upgrade_echo() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let counter = counter.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    async move {
                        let on_upgrade = hyper::upgrade::on(&mut req);
                        tokio::spawn(async move {
                            if let Ok(up) = on_upgrade.await {
                                let mut io = TokioIo::new(up);
                                let (mut r, mut w) = tokio::io::split(&mut io);
                                let _ = tokio::io::copy(&mut r, &mut w).await;
                            }
                        });
                        let mut resp = Response::new(Full::new(Bytes::new()));
                        *resp.status_mut() = hyper::StatusCode::SWITCHING_PROTOCOLS;
                        resp.headers_mut().insert("upgrade", "websocket".parse().unwrap());
                        resp.headers_mut().insert("connection", "upgrade".parse().unwrap());
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).with_upgrades().await;
            });
        }
    });
    (addr, seen)
}

/// An upstream that reads the request and then resets the connection (`SO_LINGER` 0): before
/// sending anything, or after the status line, the headers (`Content-Length: 1000`) and 100 of the
/// promised 1,000 body bytes.
pub async fn start_reset(mid_body: bool) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { continue };
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                if mid_body {
                    let head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n";
                    let _ = stream.write_all(head).await;
                    let _ = stream.write_all(&[b'x'; 100]).await;
                    let _ = stream.flush().await;
                    // Let the gateway read and forward the headers before the reset arrives.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                let _ = stream.set_zero_linger();
                drop(stream);
            });
        }
    });
    addr
}
