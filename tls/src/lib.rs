//! TLS for Turnpike's listeners (gateway and portal).
//!
//! A listener's certificate chain and private key come from two PEM files
//! (`{gateway,portal}_tls_cert_file` / `…_tls_key_file`). [`ServerTls`] holds the parsed pair
//! behind an atomic pointer that rustls reads on every handshake, so replacing the files and
//! calling [`ServerTls::reload`] (on SIGHUP, or when [`ServerTls::watch_files`] sees the files
//! change) makes every *new* connection present the new certificate while connections already
//! established keep the session they negotiated: nothing is restarted, nothing in flight is cut.
//!
//! A reload that fails (a half-written file, a key that does not match the certificate) keeps
//! the certificate in use and says why in the log; the next change of the files tries again.
//!
//! ALPN offers `h2` then `http/1.1`; rustls with the ring provider, TLS 1.2 and 1.3, no OpenSSL.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

/// The two files of a listener's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM: the leaf certificate first, then its intermediates.
    pub cert: PathBuf,
    /// PEM: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Why a certificate could not be loaded; names the file.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(String);

/// A listener's TLS settings with a replaceable certificate. Cheap to share (`Arc`).
pub struct ServerTls {
    files: TlsFiles,
    current: Arc<ArcSwap<CertifiedKey>>,
    config: Arc<rustls::ServerConfig>,
    /// Bumped after every successful reload; tests and operators can wait on it.
    generation: watch::Sender<u64>,
    /// The files' modification stamps at the last load (for [`ServerTls::watch_files`]).
    stamp: Mutex<Option<Stamp>>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").field("files", &self.files).field("fingerprint", &self.fingerprint()).finish()
    }
}

/// Hands rustls the current certificate on every handshake.
#[derive(Debug)]
struct Current(Arc<ArcSwap<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

type Stamp = [(Option<SystemTime>, u64); 2];

fn stamp(files: &TlsFiles) -> Option<Stamp> {
    let one = |p: &Path| std::fs::metadata(p).ok().map(|m| (m.modified().ok(), m.len()));
    Some([one(&files.cert)?, one(&files.key)?])
}

impl ServerTls {
    /// Load the pair and build the listener's TLS configuration.
    pub fn load(files: TlsFiles) -> Result<Arc<ServerTls>, TlsError> {
        let before = stamp(&files);
        let key = load_pair(&files)?;
        let current = Arc::new(ArcSwap::from_pointee(key));
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError(format!("TLS configuration: {e}")))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Current(current.clone())));
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let (generation, _) = watch::channel(0);
        Ok(Arc::new(ServerTls { files, current, config: Arc::new(config), generation, stamp: Mutex::new(before) }))
    }

    /// The acceptor for new connections (it always presents the current certificate).
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.clone())
    }

    /// Read the files again and use them for every new connection; on error the certificate
    /// in use stays. Returns the new certificate's fingerprint.
    pub fn reload(&self) -> Result<String, TlsError> {
        let before = stamp(&self.files);
        let key = load_pair(&self.files)?;
        let fingerprint = fingerprint_of(&key);
        self.current.store(Arc::new(key));
        if let Ok(mut s) = self.stamp.lock() {
            *s = before;
        }
        self.generation.send_modify(|g| *g += 1);
        tracing::info!(cert = %self.files.cert.display(), %fingerprint, "TLS certificate reloaded");
        Ok(fingerprint)
    }

    /// SHA-256 of the leaf certificate in use, lowercase hex (what `openssl x509 -fingerprint
    /// -sha256` prints, without the colons).
    pub fn fingerprint(&self) -> String {
        fingerprint_of(&self.current.load())
    }

    /// Counts successful reloads; changes after each.
    pub fn reloads(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Reload whenever either file changes (modification time or size), checking every
    /// `every`, until `stop` turns true. Covers editors, `cp`, certbot and Kubernetes secret
    /// volumes (which swap a symlink: the metadata read follows it).
    pub fn watch_files(self: &Arc<Self>, every: Duration, mut stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        let tls = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_error = String::new();
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                let now = stamp(&tls.files);
                let seen = tls.stamp.lock().map(|s| *s).unwrap_or(None);
                if now.is_none() || now == seen {
                    continue;
                }
                match tls.reload() {
                    Ok(_) => last_error.clear(),
                    // Once per distinct error: a file being written shows up at every tick.
                    Err(e) if e.0 != last_error => {
                        tracing::warn!(error = %e, "TLS certificate files changed but cannot be loaded; keeping the certificate in use");
                        last_error = e.0;
                    }
                    Err(_) => {}
                }
            }
        })
    }
}

fn fingerprint_of(key: &CertifiedKey) -> String {
    key.cert.first().map(|c| hex::encode(Sha256::digest(c.as_ref()))).unwrap_or_default()
}

/// Parse the chain and the key, and check that they belong together.
fn load_pair(files: &TlsFiles) -> Result<CertifiedKey, TlsError> {
    let cert_name = files.cert.display();
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError(format!("tls_cert_file {cert_name}: {e}")))?;
    if chain.is_empty() {
        return Err(TlsError(format!("tls_cert_file {cert_name}: no certificate (expected PEM `BEGIN CERTIFICATE` blocks)")));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| TlsError(format!("tls_key_file {}: {e}", files.key.display())))?;
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(chain, key, &provider)
        .map_err(|e| TlsError(format!("tls_cert_file {cert_name} with tls_key_file {}: {e}", files.key.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(dir: &Path, name: &str) -> (TlsFiles, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap().self_signed(&key).unwrap();
        let files = TlsFiles { cert: dir.join(format!("{name}.crt")), key: dir.join(format!("{name}.key")) };
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        (files, hex::encode(Sha256::digest(cert.der().as_ref())))
    }

    #[test]
    fn loads_a_pair_and_names_the_file_when_it_cannot() {
        let dir = tempfile::tempdir().unwrap();
        let (files, fp) = pair(dir.path(), "a.test");
        assert_eq!(ServerTls::load(files.clone()).unwrap().fingerprint(), fp);

        let missing = TlsFiles { cert: dir.path().join("nope.crt"), key: files.key.clone() };
        assert!(ServerTls::load(missing).unwrap_err().to_string().contains("nope.crt"));

        let empty = dir.path().join("empty.crt");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = ServerTls::load(TlsFiles { cert: empty, key: files.key.clone() }).unwrap_err().to_string();
        assert!(e.contains("no certificate"), "{e}");

        // A key that is not the certificate's.
        let (other, _) = pair(dir.path(), "b.test");
        let e = ServerTls::load(TlsFiles { cert: files.cert.clone(), key: other.key }).unwrap_err().to_string();
        assert!(e.contains("a.test.crt") && e.contains("b.test.key"), "{e}");
    }

    #[test]
    fn a_reload_switches_the_certificate_and_a_failed_one_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let (files, first) = pair(dir.path(), "a.test");
        let tls = ServerTls::load(files.clone()).unwrap();
        let reloads = tls.reloads();

        let (next, second) = pair(dir.path(), "c.test");
        std::fs::copy(&next.cert, &files.cert).unwrap();
        // Half-way: the new certificate with the old key does not load; the old pair stays.
        assert!(tls.reload().is_err());
        assert_eq!(tls.fingerprint(), first);
        assert_eq!(*reloads.borrow(), 0);

        std::fs::copy(&next.key, &files.key).unwrap();
        assert_eq!(tls.reload().unwrap(), second);
        assert_eq!(tls.fingerprint(), second);
        assert_eq!(*reloads.borrow(), 1);
    }

    #[tokio::test]
    async fn the_watcher_reloads_when_the_files_change() {
        let dir = tempfile::tempdir().unwrap();
        let (files, _) = pair(dir.path(), "a.test");
        let tls = ServerTls::load(files.clone()).unwrap();
        let (stop_tx, stop) = watch::channel(false);
        let task = tls.watch_files(Duration::from_millis(20), stop);
        let mut reloads = tls.reloads();

        let (next, second) = pair(dir.path(), "d.test");
        // The key first, then the certificate: the watcher may see the mismatched half-way
        // state, which must not stick.
        std::fs::copy(&next.key, &files.key).unwrap();
        std::fs::copy(&next.cert, &files.cert).unwrap();
        let changed = reloads.wait_for(|_| tls.fingerprint() == second);
        tokio::time::timeout(Duration::from_secs(60), changed).await.expect("reloaded within a minute").unwrap();
        let _ = stop_tx.send(true);
        task.await.unwrap();
    }
}
