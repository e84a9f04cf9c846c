//! Throwaway servers for fault tests: a redis-server and a PostgreSQL cluster of the test's own on
//! free ports, which the test may kill, stop and restart. Never the shared 6379/5432 servers.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> Option<u16> {
    Some(std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port())
}

fn wait_for_port(port: u16, limit: Duration) -> bool {
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if started.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// A throwaway redis-server on a free port.
pub struct OwnRedis {
    child: Option<Child>,
    pub port: u16,
    args: Vec<String>,
    /// The append-only file's directory (persistent servers only).
    _dir: Option<tempfile::TempDir>,
}

impl OwnRedis {
    /// Keeps nothing on disk: a kill loses every counter. `None` (and a loud skip of `test`)
    /// when no redis-server can be started.
    pub fn start(test: &str) -> Option<OwnRedis> {
        Self::start_with(false, test)
    }

    /// AOF with `appendfsync always`: every write is on disk before its reply is sent, so a
    /// `kill -9` loses nothing that was acknowledged and a restart finds every counter again.
    pub fn start_aof(test: &str) -> Option<OwnRedis> {
        Self::start_with(true, test)
    }

    fn start_with(aof: bool, test: &str) -> Option<OwnRedis> {
        let started = Self::spawn_new(aof);
        if started.is_none() {
            turnpike_testkit::skip("redis-server", test, "cannot start a throwaway redis-server");
        }
        started
    }

    fn spawn_new(aof: bool) -> Option<OwnRedis> {
        let port = free_port()?;
        let mut args: Vec<String> = ["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""].map(String::from).to_vec();
        let dir = if aof {
            let dir = tempfile::tempdir().ok()?;
            args.extend(["--appendonly", "yes", "--appendfsync", "always", "--dir"].map(String::from));
            args.push(dir.path().display().to_string());
            Some(dir)
        } else {
            args.extend(["--appendonly", "no"].map(String::from));
            None
        };
        let mut r = OwnRedis { child: None, port, args, _dir: dir };
        r.spawn().then_some(r)
    }

    fn spawn(&mut self) -> bool {
        let Ok(child) = Command::new("redis-server").args(&self.args).stdout(Stdio::null()).stderr(Stdio::null()).spawn() else {
            return false;
        };
        self.child = Some(child);
        wait_for_port(self.port, Duration::from_secs(10))
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// `kill -9`, and wait until the process is gone.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `SHUTDOWN` (the AOF is flushed), and wait until the process is gone.
    pub async fn shutdown(&mut self) {
        if let Ok(client) = redis::Client::open(self.url()) {
            if let Ok(mut c) = client.get_multiplexed_async_connection().await {
                // The server closes the connection instead of answering.
                let _ = redis::cmd("SHUTDOWN").query_async::<()>(&mut c).await;
            }
        }
        if let Some(mut c) = self.child.take() {
            let _ = tokio::task::spawn_blocking(move || c.wait()).await;
        }
    }

    /// Start again on the same port with the same files.
    pub fn restart(&mut self) {
        self.kill();
        assert!(self.spawn(), "redis-server restarts on port {}", self.port);
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A throwaway PostgreSQL cluster (initdb into a temporary directory, trust authentication,
/// loopback only, a free port). As root the server runs as the `postgres` user, since PostgreSQL
/// refuses to run as root.
pub struct OwnPostgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    pub port: u16,
    as_postgres: bool,
}

impl OwnPostgres {
    /// `None` with the reason when PostgreSQL's server binaries are not installed or do not start.
    pub fn start() -> Result<OwnPostgres, String> {
        let bin = Self::bin_dir().ok_or("no initdb in /usr/lib/postgresql/*/bin or on PATH")?;
        let as_postgres = std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false);
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        if as_postgres {
            // The server's user must reach the data and socket directories.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).map_err(|e| e.to_string())?;
        }
        let port = free_port().ok_or("no free port")?;
        let pg = OwnPostgres { bin, dir, port, as_postgres };
        let data = pg.data();
        let out = pg
            .command("initdb")
            .args(["-D", &data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"])
            .output()
            .map_err(|e| format!("initdb: {e}"))?;
        if !out.status.success() {
            return Err(format!("initdb failed: {}", String::from_utf8_lossy(&out.stderr)));
        }
        pg.start_again()?;
        Ok(pg)
    }

    fn bin_dir() -> Option<PathBuf> {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("bin"))
            .filter(|b| b.join("initdb").exists())
            .collect();
        versions.sort_by_key(|b| b.parent().and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok()).unwrap_or(0));
        if let Some(b) = versions.pop() {
            return Some(b);
        }
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path).find(|p| p.join("initdb").exists() && p.join("pg_ctl").exists())
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn command(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        let mut c = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        c.stdin(Stdio::null());
        c
    }

    /// The database URL (the `postgres` database; trust authentication).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Start the (stopped) server; returns once it accepts connections.
    pub fn start_again(&self) -> Result<(), String> {
        let opts = format!("-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", self.port, self.dir.path().display());
        let log = self.dir.path().join("log");
        let out = self
            .command("pg_ctl")
            .args(["-D", &self.data(), "-o", &opts, "-l", &log.display().to_string(), "-w", "-t", "60", "start"])
            .output()
            .map_err(|e| format!("pg_ctl start: {e}"))?;
        if !out.status.success() {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!("pg_ctl start failed: {} {log}", String::from_utf8_lossy(&out.stderr)));
        }
        Ok(())
    }

    /// `pg_ctl stop -m fast`: sessions are disconnected, open transactions roll back.
    pub fn stop(&self) {
        self.stop_mode("fast");
    }

    fn stop_mode(&self, mode: &str) {
        let _ = self.command("pg_ctl").args(["-D", &self.data(), "-m", mode, "-w", "-t", "60", "stop"]).output();
    }

    /// The server log (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(Path::new(self.dir.path()).join("log")).unwrap_or_default()
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        self.stop_mode("immediate");
    }
}
