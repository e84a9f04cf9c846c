//! The floor for `bench/run.sh` and `bench/callgrind.sh` (issue 14): the least a hyper 1.x
//! reverse proxy does per request. hyper's HTTP/1 server, hyper-util's legacy pooled client,
//! no policy at all: no key, no limit, no meter, no log, no forwarding headers. Not shipped (an
//! example of the gateway crate, so it builds with the same hyper, tokio and release profile).
//!
//! `cargo run --release -p turnpike-gateway --example floor -- LISTEN_ADDR UPSTREAM_URL [WORKERS]`
//!
//! WORKERS = 1 (the default) runs a current-thread runtime, as Turnpike does with
//! `worker_threads = 1`. Terminates on SIGTERM / Ctrl-C (callgrind writes its profile then).

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = UnsyncBoxBody<Bytes, BoxError>;

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: floor LISTEN_ADDR UPSTREAM_URL [WORKERS]";
    let listen: SocketAddr = args.get(1).ok_or(usage)?.parse()?;
    let upstream: Uri = args.get(2).ok_or(usage)?.parse()?;
    let workers: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(1);
    let mut rt = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(workers);
        b
    };
    rt.enable_all().build()?.block_on(serve(listen, upstream))
}

async fn serve(listen: SocketAddr, upstream: Uri) -> Result<(), BoxError> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Body> = Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(std::time::Duration::from_secs(60))
        .pool_max_idle_per_host(1024)
        .build(connector);
    let scheme = upstream.scheme().cloned().ok_or("UPSTREAM_URL needs a scheme")?;
    let authority = upstream.authority().cloned().ok_or("UPSTREAM_URL needs a host")?;
    let listener = TcpListener::bind(listen).await?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        let (stream, _) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(_) => continue,
            },
            _ = term.recv() => return Ok(()),
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let _ = stream.set_nodelay(true);
        let (client, scheme, authority) = (client.clone(), scheme.clone(), authority.clone());
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let (client, scheme, authority) = (client.clone(), scheme.clone(), authority.clone());
                async move { Ok::<_, Infallible>(forward(&client, scheme, authority, req).await) }
            });
            let _ = http1::Builder::new().timer(TokioTimer::new()).serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}

async fn forward(
    client: &Client<HttpConnector, Body>,
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    req: Request<Incoming>,
) -> Response<Body> {
    let (mut parts, body) = req.into_parts();
    let pq = parts.uri.path_and_query().cloned().unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
    let uri = Uri::builder().scheme(scheme).authority(authority).path_and_query(pq);
    let Ok(uri) = uri.build() else { return status(StatusCode::BAD_REQUEST) };
    parts.uri = uri;
    parts.headers.remove(http::header::HOST);
    let req = Request::from_parts(parts, body.map_err(BoxError::from).boxed_unsync());
    match client.request(req).await {
        Ok(resp) => resp.map(|b| b.map_err(BoxError::from).boxed_unsync()),
        Err(_) => status(StatusCode::BAD_GATEWAY),
    }
}

fn status(s: StatusCode) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::new()).map_err(|never| match never {}).boxed_unsync());
    *r.status_mut() = s;
    r
}
