//! The built-in demo upstream behind the seeded "echo" API: answers every request with a JSON
//! description of what it received (method, path, query, headers, body size), which makes the
//! gateway's header handling visible to people and tests alike.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

async fn echo(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let headers: serde_json::Map<String, serde_json::Value> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), serde_json::Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned())))
        .collect();
    let json = serde_json::json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "headers": headers,
        "body_bytes": body.len(),
    });
    let mut r = Response::new(Full::new(Bytes::from(json.to_string())));
    r.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    Ok(r)
}

/// Serve the echo upstream on `listener` forever.
pub async fn serve(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        tokio::spawn(async move {
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), hyper::service::service_fn(echo))
                .await;
        });
    }
}

/// The OpenAPI document of the echo API.
pub const OPENAPI: &str = r#"{
  "openapi": "3.0.3",
  "info": { "title": "Echo", "version": "1.0.0", "description": "Answers every request with a JSON description of what it received. Handy for trying keys, limits and headers." },
  "paths": {
    "/{path}": {
      "get": {
        "summary": "Echo a GET request",
        "parameters": [{ "name": "path", "in": "path", "required": true, "schema": { "type": "string" } }],
        "responses": { "200": { "description": "What the upstream received", "content": { "application/json": { "schema": { "type": "object" } } } } }
      },
      "post": {
        "summary": "Echo a POST request",
        "parameters": [{ "name": "path", "in": "path", "required": true, "schema": { "type": "string" } }],
        "requestBody": { "content": { "application/json": { "schema": { "type": "object" } } } },
        "responses": { "200": { "description": "What the upstream received" } }
      }
    }
  },
  "components": { "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } } },
  "security": [{ "bearer": [] }]
}"#;
