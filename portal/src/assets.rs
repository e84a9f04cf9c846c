//! Static assets, embedded in the binary so a deployment is one file. URLs carry a content hash
//! (`?v=`), so browsers may cache them for a long time and still see a new release at once.

use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};

use crate::error::PortalError;

struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset { name: "turnpike.css", content_type: "text/css; charset=utf-8", bytes: include_bytes!("../../static/turnpike.css") },
    Asset { name: "turnpike.js", content_type: "text/javascript; charset=utf-8", bytes: include_bytes!("../../static/turnpike.js") },
    Asset { name: "favicon.svg", content_type: "image/svg+xml", bytes: include_bytes!("../../static/favicon.svg") },
];

/// FNV-1a over every asset, computed at compile time.
const VERSION_HASH: u64 = {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut a = 0;
    while a < ASSETS.len() {
        let bytes = ASSETS[a].bytes;
        let mut i = 0;
        while i < bytes.len() {
            hash ^= bytes[i] as u64;
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
            i += 1;
        }
        a += 1;
    }
    hash
};

/// The asset version appended to static URLs.
pub fn version() -> &'static str {
    static V: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    V.get_or_init(|| format!("{:012x}", VERSION_HASH & 0xffff_ffff_ffff))
}

/// `GET /static/{name}`.
pub async fn serve(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(a) => ([(CONTENT_TYPE, a.content_type), (CACHE_CONTROL, "public, max-age=604800")], a.bytes).into_response(),
        None => PortalError::NotFound.into_response(),
    }
}
