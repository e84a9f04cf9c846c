//! The access log: one JSON line per request, formatted on the request path but written by a
//! dedicated thread in batches, so a slow terminal or disk never stalls a request. If the writer
//! falls 64k lines behind, lines are dropped and counted rather than queued without bound.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, RecvTimeoutError, SyncSender, TrySendError};
use std::time::Duration;

/// A handle to the access-log writer thread.
#[derive(Debug)]
pub struct AccessLog {
    tx: SyncSender<String>,
    pub(crate) dropped: AtomicU64,
}

/// One request's log fields.
pub struct Entry<'a> {
    pub ts_ms: i64,
    pub request_id: &'a [u8],
    pub api: &'a str,
    pub key: &'a str,
    pub status: u16,
    pub upstream_ms: Option<u64>,
    pub total_ms: u64,
    pub client: &'a str,
}

fn push_json_str(out: &mut String, bytes: &[u8]) {
    out.push('"');
    for &b in bytes {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\u{b:04x}");
            }
        }
    }
    out.push('"');
}

impl AccessLog {
    /// Start the writer thread (standard error).
    pub fn start() -> AccessLog {
        let (tx, rx) = sync_channel::<String>(65_536);
        std::thread::Builder::new()
            .name("turnpike-access-log".into())
            .spawn(move || {
                let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stderr());
                loop {
                    match rx.recv_timeout(Duration::from_millis(200)) {
                        Ok(line) => {
                            let _ = out.write_all(line.as_bytes());
                            // Drain what is queued before paying for a flush.
                            while let Ok(line) = rx.try_recv() {
                                let _ = out.write_all(line.as_bytes());
                            }
                            let _ = out.flush();
                        }
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => {
                            let _ = out.flush();
                            return;
                        }
                    }
                }
            })
            .ok();
        AccessLog { tx, dropped: AtomicU64::new(0) }
    }

    /// Queue one line.
    pub fn log(&self, e: &Entry<'_>) {
        let mut s = String::with_capacity(192);
        let _ = write!(s, "{{\"ts_ms\":{},\"target\":\"turnpike::access\",\"request_id\":", e.ts_ms);
        push_json_str(&mut s, e.request_id);
        s.push_str(",\"api\":");
        push_json_str(&mut s, e.api.as_bytes());
        s.push_str(",\"key\":");
        push_json_str(&mut s, e.key.as_bytes());
        let _ = write!(s, ",\"status\":{},\"upstream_ms\":", e.status);
        match e.upstream_ms {
            Some(ms) => {
                let _ = write!(s, "{ms}");
            }
            None => s.push_str("null"),
        }
        let _ = writeln!(s, ",\"total_ms\":{},\"client\":\"{}\"}}", e.total_ms, e.client);
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.tx.try_send(s) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_client_controlled_values() {
        let mut s = String::new();
        push_json_str(&mut s, b"a\"b\\c\n\xff");
        assert_eq!(s, "\"a\\\"b\\\\c\\u000a\\u00ff\"");
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v, "a\"b\\c\n\u{ff}");
    }
}
