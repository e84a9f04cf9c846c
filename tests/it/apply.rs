//! Configuration as code through the real binary (`turnpike admin apply` / `export`), and the
//! admin API's writes reaching the gateway: an API published with an `admin:write` token is
//! routed once the gateway follows the change log.

use std::path::Path;
use std::process::{Command, Output};

use turnpike_store::domain::Email;
use turnpike_store::{PersonalToken, Role, Scopes};
use turnpike_testkit::TestDb;

use crate::upstreams::{start, Behaviour};
use crate::{system_clock, CounterBackend, TestApp};

fn turnpike(db: &str, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_turnpike"));
    for (k, _) in std::env::vars() {
        if k.starts_with("TURNPIKE_") {
            c.env_remove(k);
        }
    }
    c.env("TURNPIKE_DATABASE_URL", db).args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn apply_dry_run_apply_again_and_export_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/t.db?mode=rwc", dir.path().display());
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/turnpike.yaml");
    let example = example.to_str().unwrap();

    let out = turnpike(&db, &["admin", "apply", "-f", example, "--dry-run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("create api payments\ncreate plan payments/free\n"), "{text}");
    assert!(text.ends_with("dry run: 8 changes, nothing written\n"), "{text}");
    let out = turnpike(&db, &["admin", "export"]);
    assert_eq!((out.status.success(), stdout(&out).as_str()), (true, "apis: []\n"), "the dry run wrote nothing");

    let out = turnpike(&db, &["admin", "apply", "-f", example]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).ends_with("applied 8 changes\n"), "{}", stdout(&out));
    let out = turnpike(&db, &["admin", "apply", "-f", example]);
    assert_eq!((out.status.code(), stdout(&out).as_str()), (Some(0), "no changes\n"));

    // export -o: the file and each document beside it; applying the export changes nothing.
    let out = turnpike(&db, &["admin", "export", "-o", dir.path().join("cfg/turnpike.yaml").to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let exported = std::fs::read_to_string(dir.path().join("cfg/turnpike.yaml")).unwrap();
    assert!(exported.contains("openapi: openapi/payments.json"), "{exported}");
    assert!(dir.path().join("cfg/openapi/payments.json").exists());
    let out = turnpike(&db, &["admin", "apply", "-f", dir.path().join("cfg/turnpike.yaml").to_str().unwrap()]);
    assert_eq!(stdout(&out), "no changes\n", "{}", stderr(&out));

    // A bad file: exit 1, the place named, nothing changed; an unknown --as admin is refused.
    std::fs::write(dir.path().join("bad.yaml"), "apis:\n  - {slug: x, name: X, route_prefix: /payments/v1, targets: [{url: 'ftp://x'}]}\n")
        .unwrap();
    let out = turnpike(&db, &["admin", "apply", "-f", dir.path().join("bad.yaml").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("apis[0].targets: Target 1"), "{}", stderr(&out));
    let out = turnpike(&db, &["admin", "apply", "-f", example, "--as", "nobody@example.com"]);
    assert!(!out.status.success() && stderr(&out).contains("--as: no account"), "{}", stderr(&out));
    let out = turnpike(&db, &["admin", "export", "-o", dir.path().join("again.yaml").to_str().unwrap()]);
    assert!(out.status.success());
    assert_eq!(std::fs::read_to_string(dir.path().join("again.yaml")).unwrap(), exported);
}

#[tokio::test]
async fn an_api_published_through_the_admin_api_is_routed_by_the_gateway() {
    for db in TestDb::each("admin_api_routes").await {
        let app = TestApp::start(&db, &CounterBackend::Local, system_clock()).await;
        let upstream = start(Behaviour::Named("orders-upstream")).await;
        let now = app.clock.now();
        let admin = app.store.create_account(&Email::parse("ops@example.com").unwrap(), "x", Role::Admin, now).await.unwrap();
        app.store.mark_email_verified(admin.id, now).await.unwrap();
        let pat = PersonalToken::generate();
        app.store.create_pat(admin.id, "ci", &pat, &Scopes::parse(["admin:write"]).unwrap(), None, None, now).await.unwrap();
        let post = |path: String, body: serde_json::Value| {
            app.http.post(format!("{}{path}", app.portal_url)).bearer_auth(pat.expose()).json(&body).send()
        };
        let res = post(
            "/api/v1/admin/apis".into(),
            serde_json::json!({"slug": "orders", "name": "Orders", "route_prefix": "/orders",
                "targets": [{"url": format!("http://{upstream}")}], "visibility": "public"}),
        )
        .await
        .unwrap();
        assert_eq!(res.status(), 201);
        let api: serde_json::Value = res.json().await.unwrap();
        let res = post(
            format!("/api/v1/admin/apis/{}/plans", api["id"]),
            serde_json::json!({"slug": "free", "name": "Free", "rate_per_second": 100, "burst": 100, "is_default": true}),
        )
        .await
        .unwrap();
        assert_eq!(res.status(), 201);
        let (key, _, _) = app.developer_key("dev@example.com").await;
        app.gateway.follow().await.unwrap();
        let res = app.http.get(app.gw("/orders/list")).bearer_auth(key.expose()).send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.text().await.unwrap(), "orders-upstream");
        app.stop().await;
    }
}
