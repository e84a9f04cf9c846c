//! The binary itself: configuration errors, startup output, graceful stop.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn turnpike() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_turnpike"));
    for (k, _) in std::env::vars() {
        if k.starts_with("TURNPIKE_") {
            c.env_remove(k);
        }
    }
    c
}

#[test]
fn an_invalid_config_value_exits_non_zero_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (key, value) in
        [("TURNPIKE_GATEWAY_ADDR", "not-an-address"), ("TURNPIKE_DATABASE_URL", "mysql://x"), ("TURNPIKE_FLUSH_INTERVAL_MS", "soon")]
    {
        let out = turnpike().current_dir(dir.path()).env(key, value).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{key}");
        let err = String::from_utf8_lossy(&out.stderr);
        let name = key.trim_start_matches("TURNPIKE_").to_lowercase();
        assert!(err.contains(&name), "{key}: {err}");
        assert!(!dir.path().join("turnpike.db").exists(), "nothing created for a bad config");
    }
    std::fs::write(dir.path().join("turnpike.toml"), "portl_addr = \"127.0.0.1:1\"\n").unwrap();
    let out = turnpike().current_dir(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("portl_addr"));
}

#[test]
fn serve_prints_urls_and_ready_then_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = turnpike()
        .current_dir(dir.path())
        .env("TURNPIKE_PORTAL_ADDR", "127.0.0.1:0")
        .env("TURNPIKE_GATEWAY_ADDR", "127.0.0.1:0")
        .env("TURNPIKE_METRICS_ADDR", "127.0.0.1:0")
        .env("TURNPIKE_DEMO_UPSTREAM_ADDR", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let started = Instant::now();
    let mut seen = Vec::new();
    while let Some(Ok(line)) = lines.next() {
        seen.push(line.clone());
        if line == "ready" || started.elapsed() > Duration::from_secs(30) {
            break;
        }
    }
    let text = seen.join("\n");
    assert!(text.contains("one-time password"), "{text}");
    assert!(text.contains("portal:  http://127.0.0.1:"), "{text}");
    assert!(text.contains("gateway: http://127.0.0.1:"), "{text}");
    assert_eq!(seen.last().map(String::as_str), Some("ready"), "{text}");
    assert!(dir.path().join("turnpike.db").exists(), "SQLite file created in the working directory");
    let status = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    assert!(status.success());
    let code = child.wait().unwrap();
    assert_eq!(code.code(), Some(0));
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.iter().any(|l| l == "stopped"), "{rest:?}");
}

#[test]
fn migrate_and_create_admin_work_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = turnpike().current_dir(dir.path()).arg("migrate").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = turnpike().current_dir(dir.path()).args(["admin", "create-admin", "--email", "Boss@Example.com"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("admin created: boss@example.com"), "{stdout}");
    assert!(stdout.contains("one-time password"));
    // A second admin with the same email is refused.
    let out = turnpike().current_dir(dir.path()).args(["admin", "create-admin", "--email", "boss@example.com"]).output().unwrap();
    assert!(!out.status.success());
}

#[test]
fn create_token_names_its_scopes_and_refuses_unknown_ones() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/t.db?mode=rwc", dir.path().display());
    let run = |args: &[&str]| turnpike().current_dir(dir.path()).env("TURNPIKE_DATABASE_URL", &db).args(args).output().unwrap();
    let out = run(&["admin", "create-admin", "--email", "ops@example.com"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(&["admin", "create-token", "--email", "ops@example.com", "--scope", "admin:read", "--scope", "admin:write"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("tp_pat_"));
    let out = run(&["admin", "create-token", "--email", "ops@example.com", "--scope", "root"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown scope `root`"), "{}", String::from_utf8_lossy(&out.stderr));
}
