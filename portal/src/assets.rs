//! Static assets, embedded in the binary so a deployment is one file. URLs carry a content hash
//! (`?v=`), so browsers may cache them for a long time and still see a new release at once.

/// Everything under the workspace's `static/` directory, embedded at compile time. Drop a file
/// (or a vendored directory) there and it is served at `/static/<relative path>`.
static STATIC: include_dir::Dir<'static> = include_dir::include_dir!("$CARGO_MANIFEST_DIR/../static");

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "html" => "text/html; charset=utf-8",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn version_hash() -> u64 {
    // FNV-1a over every asset's path and bytes, in a stable order.
    fn walk(dir: &include_dir::Dir<'static>, hash: &mut u64) {
        let mut files: Vec<_> = dir.files().collect();
        files.sort_by_key(|f| f.path());
        for f in files {
            for b in f.path().to_string_lossy().bytes().chain(f.contents().iter().copied()) {
                *hash ^= u64::from(b);
                *hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        let mut dirs: Vec<_> = dir.dirs().collect();
        dirs.sort_by_key(|d| d.path());
        for d in dirs {
            walk(d, hash);
        }
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    walk(&STATIC, &mut hash);
    hash
}

/// The asset version appended to static URLs.
pub fn version() -> &'static str {
    static V: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    V.get_or_init(|| format!("{:012x}", version_hash() & 0xffff_ffff_ffff))
}

/// The embedded file at `path` with its content type, if there is one. Served by
/// `crate::pages::static_file`; this module depends on nothing else in the crate, so the layout
/// (which needs [`version`]) can depend on it.
pub fn file(path: &str) -> Option<(&'static str, &'static [u8])> {
    // include_dir paths are relative and never contain `..`; a request for one simply misses.
    STATIC.get_file(path).map(|f| (content_type(path), f.contents()))
}
