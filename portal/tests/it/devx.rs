//! Developer experience: renaming apps and keys, rotating keys with a grace period, the usage
//! dashboard's numbers and CSV, and the API reference page. Each test runs the real portal on a
//! socket, on SQLite and PostgreSQL, with a clock the test moves.

use std::sync::Arc;

use reqwest::{Client, Response, StatusCode};
use serde_json::Value;
use turnpike_portal::format::datetime;
use turnpike_portal::{PortalConfig, PortalState};
use turnpike_store::clock::{hour_start, ManualClock};
use turnpike_store::domain::ApiKey;
use turnpike_store::{ChangeKind, KeyAuth, KeyStatus, Store, UsageRow, Visibility};
use turnpike_testkit::TestDb;

use crate::helpers::{browser, csrf_from, element_text, location, seed_api, unescape, GATEWAY_URL, NOW, PASSWORD, PUBLIC_URL};

/// The portal on 127.0.0.1:0 with a clock the test holds.
struct Portal {
    base: String,
    store: Store,
    clock: Arc<ManualClock>,
    _db: TestDb,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Portal {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn each(test: &str) -> Vec<Portal> {
    let mut out = Vec::new();
    for db in TestDb::each(test).await {
        println!("backend: {}", db.backend());
        let clock = Arc::new(ManualClock::at(NOW));
        let state = PortalState {
            store: db.store.clone(),
            clock: clock.clone(),
            config: Arc::new(PortalConfig { gateway_url: GATEWAY_URL.into(), public_url: PUBLIC_URL.into(), secure_cookies: false }),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            axum::serve(listener, turnpike_portal::app(state)).await.expect("serve");
        });
        out.push(Portal { base: format!("http://{addr}"), store: db.store.clone(), clock, _db: db, server });
    }
    out
}

impl Portal {
    async fn get(&self, client: &Client, path: &str) -> Response {
        client.get(format!("{}{path}", self.base)).send().await.expect("GET")
    }

    async fn post(&self, client: &Client, path: &str, form: &[(&str, &str)]) -> Response {
        client.post(format!("{}{path}", self.base)).form(form).send().await.expect("POST")
    }

    async fn csrf(&self, client: &Client, path: &str) -> String {
        csrf_from(&self.get(client, path).await.text().await.unwrap())
    }

    async fn developer(&self, email: &str) -> Client {
        let client = browser();
        let csrf = self.csrf(&client, "/signup").await;
        let res = self.post(&client, "/signup", &[("csrf", &csrf), ("email", email), ("password", PASSWORD)]).await;
        assert_eq!(res.status(), StatusCode::OK, "signup of {email}");
        // Signing up mails a confirm link; the account logs in when it is confirmed.
        let mail = self.store.emails_to(email).await.expect("outbox");
        let prefix = format!("{PUBLIC_URL}/verify-email?token=");
        let token = mail
            .iter()
            .rev()
            .find_map(|m| m.body.split_whitespace().find_map(|w| w.strip_prefix(prefix.as_str())))
            .unwrap_or_else(|| panic!("no verification link mailed to {email}"))
            .to_owned();
        let csrf = self.csrf(&client, &format!("/verify-email?token={token}")).await;
        let res = self.post(&client, "/verify-email", &[("csrf", &csrf), ("token", &token), ("password", PASSWORD)]).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "verification of {email}");
        client
    }

    async fn create_app(&self, client: &Client, name: &str) -> i64 {
        let csrf = self.csrf(client, "/dashboard").await;
        let res = self.post(client, "/apps", &[("csrf", &csrf), ("name", name)]).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        location(&res).strip_prefix("/apps/").and_then(|id| id.parse().ok()).expect("app location")
    }

    /// Create a key through the app page; returns the key and its id.
    async fn create_key(&self, client: &Client, app_id: i64, name: &str) -> (ApiKey, i64) {
        let csrf = self.csrf(client, &format!("/apps/{app_id}")).await;
        let html = self.post(client, &format!("/apps/{app_id}/keys"), &[("csrf", &csrf), ("name", name)]).await.text().await.unwrap();
        let key = ApiKey::parse(&element_text(&html, "new-api-key").expect("secret shown")).expect("well-formed key");
        let id = self.auth(&key).await.key_id;
        (key, id)
    }

    async fn auth(&self, key: &ApiKey) -> KeyAuth {
        self.store.key_auth(&key.hash()).await.unwrap().expect("key stored")
    }

    fn now(&self) -> i64 {
        use turnpike_store::clock::Clock;
        self.clock.now()
    }
}

/// The gateway's rule (gateway/src/gateway.rs): an active key is refused once `expires_at <= now`.
fn gateway_accepts(auth: &KeyAuth, now: i64) -> bool {
    auth.status == KeyStatus::Active && auth.expires_at.is_none_or(|t| t > now)
}

#[tokio::test]
async fn apps_and_keys_can_be_renamed_with_validation_and_only_by_their_owner() {
    for app in each("devx_rename").await {
        let ada = app.developer("ada@example.com").await;
        let app_id = app.create_app(&ada, "Billing bot").await;
        app.create_app(&ada, "Other").await;
        let (_, key_id) = app.create_key(&ada, app_id, "ci").await;
        let email = turnpike_store::domain::Email::parse("ada@example.com").unwrap();
        let account_id = app.store.find_account_by_email(&email).await.unwrap().unwrap().0.id;

        let csrf = app.csrf(&ada, &format!("/apps/{app_id}")).await;
        let res = app.post(&ada, &format!("/apps/{app_id}/rename"), &[("csrf", &csrf), ("name", "  Invoicer  ")]).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&res), format!("/apps/{app_id}"));
        assert_eq!(app.store.get_app(account_id, app_id).await.unwrap().name, "Invoicer");
        let html = app.get(&ada, &format!("/apps/{app_id}")).await.text().await.unwrap();
        assert!(html.contains("Renamed the app to “Invoicer”."), "flash");

        // Bad names: a readable error in the re-rendered form, and nothing changes.
        let long = "x".repeat(81);
        for (name, status, text) in [
            ("   ", StatusCode::UNPROCESSABLE_ENTITY, "Give your app a name."),
            (long.as_str(), StatusCode::UNPROCESSABLE_ENTITY, "Use at most 80 characters for the app name."),
            ("Other", StatusCode::CONFLICT, "You already have an app called “Other”."),
        ] {
            let res = app.post(&ada, &format!("/apps/{app_id}/rename"), &[("csrf", &csrf), ("name", name)]).await;
            assert_eq!(res.status(), status, "{name}");
            let html = res.text().await.unwrap();
            assert!(html.contains(text), "{name}: {html}");
            assert!(html.contains(r#"id="app-rename-error""#) && html.contains("<details class=\"disclosure\" open>"), "form re-opened");
            assert_eq!(app.store.get_app(account_id, app_id).await.unwrap().name, "Invoicer");
        }

        let res = app.post(&ada, &format!("/apps/{app_id}/keys/{key_id}/rename"), &[("csrf", &csrf), ("name", "production")]).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert_eq!(app.store.get_key(app_id, key_id).await.unwrap().name, "production");
        let res = app.post(&ada, &format!("/apps/{app_id}/keys/{key_id}/rename"), &[("csrf", &csrf), ("name", "")]).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(res.text().await.unwrap().contains(&format!(r#"id="key-rename-error-{key_id}">Give your key a name.</p>"#)));
        assert_eq!(app.store.get_key(app_id, key_id).await.unwrap().name, "production");
        assert!(app.store.recent_audit(20).await.unwrap().iter().any(|e| e.action == "key.rename" && e.target == format!("key:{key_id}")));

        // Bob gets 404 for Ada's app and key, by any route, and nothing changes.
        let bob = app.developer("bob@example.com").await;
        let bob_app = app.create_app(&bob, "Bob's").await;
        let bcsrf = app.csrf(&bob, "/dashboard").await;
        for path in [
            format!("/apps/{app_id}/rename"),
            format!("/apps/{app_id}/keys/{key_id}/rename"),
            format!("/apps/{bob_app}/keys/{key_id}/rename"),
        ] {
            let res = app.post(&bob, &path, &[("csrf", &bcsrf), ("name", "pwned")]).await;
            assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
        }
        // Also with an invalid name: ownership is checked before validation says anything.
        let res = app.post(&bob, &format!("/apps/{bob_app}/keys/{key_id}/rename"), &[("csrf", &bcsrf), ("name", "")]).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        assert_eq!(app.store.get_app(account_id, app_id).await.unwrap().name, "Invoicer");
        assert_eq!(app.store.get_key(app_id, key_id).await.unwrap().name, "production");
    }
}

#[tokio::test]
async fn a_rotated_key_keeps_working_for_the_grace_period_then_is_refused() {
    for app in each("devx_rotate").await {
        let dev = app.developer("ada@example.com").await;
        let app_id = app.create_app(&dev, "Bot").await;
        let (old, old_id) = app.create_key(&dev, app_id, "main").await;
        let version_before = app.store.latest_change().await.unwrap();

        let csrf = app.csrf(&dev, &format!("/apps/{app_id}")).await;
        let res = app.post(&dev, &format!("/apps/{app_id}/keys/{old_id}/rotate"), &[("csrf", &csrf), ("grace", "3600")]).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["cache-control"], "no-store");
        let html = res.text().await.unwrap();
        let new = ApiKey::parse(&element_text(&html, "new-api-key").expect("new secret shown once")).unwrap();
        assert_ne!(new.expose(), old.expose());
        assert!(html.contains(&format!("keeps working until {}", datetime(NOW + 3600))), "{html}");

        let now = app.now();
        let (old_auth, new_auth) = (app.auth(&old).await, app.auth(&new).await);
        assert_eq!(old_auth.expires_at, Some(NOW + 3600));
        assert_eq!(new_auth.expires_at, None);
        assert_eq!(new_auth.app_id, app_id);
        assert!(gateway_accepts(&old_auth, now) && gateway_accepts(&new_auth, now), "both work during the grace");
        assert_eq!(app.store.get_key(app_id, new_auth.key_id).await.unwrap().name, "main", "same name");
        // Gateways learn about both keys from the change log.
        let changes = app.store.changes_since(version_before, 100).await.unwrap();
        for key in [&old, &new] {
            assert!(changes.iter().any(|c| c.kind == ChangeKind::Key && c.ref_id == key.hash().to_hex()));
        }
        let page = app.get(&dev, &format!("/apps/{app_id}")).await.text().await.unwrap();
        assert!(
            page.contains(&format!(
                r#"<span class="badge badge-rotating">rotating</span><span class="muted small block key-expires">until {}</span>"#,
                datetime(NOW + 3600)
            )),
            "{page}"
        );
        assert!(!page.contains(new.expose()), "the secret is not shown again");

        // One second before the end both still work; at the end the old one is refused.
        app.clock.set(NOW + 3599);
        assert!(gateway_accepts(&app.auth(&old).await, app.now()));
        app.clock.set(NOW + 3600);
        assert!(!gateway_accepts(&app.auth(&old).await, app.now()), "old key refused after the grace");
        assert!(gateway_accepts(&app.auth(&new).await, app.now()));
        let page = app.get(&dev, &format!("/apps/{app_id}")).await.text().await.unwrap();
        assert!(page.contains(r#"<span class="badge badge-expired">expired</span>"#), "{page}");
        assert!(!page.contains(&format!("/keys/{old_id}/rotate")), "an expired key cannot be rotated");
        let dash = app.get(&dev, "/dashboard").await.text().await.unwrap();
        assert!(
            dash.contains(r#"<span>1<span class="muted small"> / 2</span></span>"#),
            "the expired key no longer counts as active: {dash}"
        );
        assert!(dash.contains(&format!(r#"href="/apps/{app_id}/usage""#)));

        // An expired key cannot be rotated by hand either; a bad grace value is refused; both change nothing.
        let keys_before = app.store.list_keys(app_id).await.unwrap().len();
        let res = app.post(&dev, &format!("/apps/{app_id}/keys/{old_id}/rotate"), &[("csrf", &csrf), ("grace", "3600")]).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert!(app.get(&dev, &format!("/apps/{app_id}")).await.text().await.unwrap().contains("can no longer be rotated"));
        let res = app.post(&dev, &format!("/apps/{app_id}/keys/{}/rotate", new_auth.key_id), &[("csrf", &csrf), ("grace", "5")]).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert!(app
            .get(&dev, &format!("/apps/{app_id}"))
            .await
            .text()
            .await
            .unwrap()
            .contains("Choose how long the old key keeps working."));
        assert_eq!(app.store.list_keys(app_id).await.unwrap().len(), keys_before);
        assert_eq!(app.auth(&new).await.expires_at, None);

        // Grace "none": the old key stops at once.
        let res = app.post(&dev, &format!("/apps/{app_id}/keys/{}/rotate", new_auth.key_id), &[("csrf", &csrf), ("grace", "0")]).await;
        assert_eq!(res.status(), StatusCode::OK);
        let newest = ApiKey::parse(&element_text(&res.text().await.unwrap(), "new-api-key").unwrap()).unwrap();
        assert!(!gateway_accepts(&app.auth(&new).await, app.now()));
        assert!(gateway_accepts(&app.auth(&newest).await, app.now()));

        // Someone else cannot rotate it.
        let bob = app.developer("bob@example.com").await;
        let bob_app = app.create_app(&bob, "Bob's").await;
        let bcsrf = app.csrf(&bob, "/dashboard").await;
        let newest_id = app.auth(&newest).await.key_id;
        for path in [format!("/apps/{app_id}/keys/{newest_id}/rotate"), format!("/apps/{bob_app}/keys/{newest_id}/rotate")] {
            let res = app.post(&bob, &path, &[("csrf", &bcsrf), ("grace", "0")]).await;
            assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
        }
        assert!(gateway_accepts(&app.auth(&newest).await, app.now()));
        assert!(app.store.recent_audit(50).await.unwrap().iter().all(|e| !e.detail.contains(newest.expose())));
    }
}

/// Rows of the `<table id="...">` body as `(first cell, other cells)`.
fn table_rows(html: &str, id: &str) -> Vec<Vec<String>> {
    let start = html.find(&format!(r#"id="{id}""#)).unwrap_or_else(|| panic!("table {id}"));
    let body = &html[start..];
    let body = &body[body.find("<tbody>").expect("tbody") + 7..body.find("</tbody>").expect("end tbody")];
    body.split("<tr>")
        .filter(|r| !r.trim().is_empty())
        .map(|r| {
            let mut cells = Vec::new();
            let mut rest = r;
            while let Some(open) = rest.find(['<']) {
                let tag_end = rest[open..].find('>').map_or(rest.len(), |e| open + e + 1);
                let tag = &rest[open..tag_end];
                rest = &rest[tag_end..];
                if tag.starts_with("<td") || tag.starts_with("<th") {
                    let end = rest.find("</t").unwrap_or(rest.len());
                    // Visible text only: drop nested tags.
                    let mut text = String::new();
                    let mut in_tag = false;
                    for c in rest[..end].chars() {
                        match c {
                            '<' => in_tag = true,
                            '>' => in_tag = false,
                            c if !in_tag => text.push(c),
                            _ => {}
                        }
                    }
                    cells.push(text.trim().to_owned());
                }
            }
            cells
        })
        .collect()
}

#[tokio::test]
async fn usage_pages_and_csv_show_exactly_the_rows_summed_over_sources() {
    for app in each("devx_usage").await {
        let (api_id, _) = seed_api(&app.store, "echo", "Echo", Visibility::Public).await;
        let dev = app.developer("ada@example.com").await;
        let app_id = app.create_app(&dev, "Bot").await;
        let (_, key1) = app.create_key(&dev, app_id, "main").await;
        let (_, key2) = app.create_key(&dev, app_id, "spare, \"old\"").await;
        let sub = app.store.list_subscriptions(app_id).await.unwrap()[0].clone();
        assert_eq!(sub.billing_anchor, hour_start(NOW));

        // Two days into the period.
        let now = NOW + 2 * 86_400;
        app.clock.set(now);
        let h0 = hour_start(now);
        let h1 = h0 - 3600;
        let row = |key_id, hour, admitted, s2, s4, s5, latency| UsageRow {
            key_id,
            api_id,
            subscription_id: sub.id,
            hour,
            admitted,
            status_2xx: s2,
            status_4xx: s4,
            status_5xx: s5,
            latency_ms_sum: latency,
            ..UsageRow::default()
        };
        app.store.upsert_usage("gw1", &[row(key1, h1, 100, 90, 6, 4, 5000), row(key1, h0, 30, 27, 0, 3, 900)], now).await.unwrap();
        app.store.upsert_usage("gw2", &[row(key1, h1, 50, 50, 0, 0, 2500), row(key2, h0, 20, 18, 2, 0, 600)], now).await.unwrap();
        // Totals: 200 calls, 15 errors, 200 responses, 9000 ms → 45 ms mean.

        let html = app.get(&dev, &format!("/apps/{app_id}/usage")).await.text().await.unwrap();
        assert_eq!(element_text(&html, "usage-calls").as_deref(), Some("200"));
        assert_eq!(element_text(&html, "usage-errors").as_deref(), Some("15"));
        assert_eq!(element_text(&html, "usage-error-rate").as_deref(), Some("7.5%"));
        assert_eq!(element_text(&html, "usage-latency").as_deref(), Some("45 ms"));
        let hourly = table_rows(&html, "usage-hourly");
        assert_eq!(hourly.len(), 48, "every hour of the last 48, the current one last");
        assert_eq!(hourly[47], vec![datetime(h0), "50".to_owned(), "5".to_owned()]);
        assert_eq!(hourly[46], vec![datetime(h1), "150".to_owned(), "10".to_owned()]);
        assert!(hourly[..46].iter().all(|r| r[1] == "0" && r[2] == "0"));
        assert!(html.contains(r#"<svg class="chart""#) && html.contains("<title id=\"chart-hourly-title\">"), "chart with a title");
        // Quota: the subscription's usage this period, exactly what billing counts.
        let quota = table_rows(&html, "usage-quotas");
        assert_eq!(quota.len(), 1);
        assert!(quota[0][1].starts_with("200") && quota[0][1].ends_with("/ 1,000"), "{quota:?}");
        assert_eq!(quota[0][2], "800");
        // 200 used in (now − anchor) seconds: 800 more take 4 × that.
        let runs_out = now + 4 * (now - sub.billing_anchor);
        assert_eq!(quota[0][3], format!("20%At this rate it runs out around {}", datetime(runs_out)), "bar at 20%, then the forecast");
        assert_eq!(
            app.store.subscription_usage(sub.id, sub.billing_anchor, sub.billing_anchor + 31 * 86_400).await.unwrap(),
            200,
            "the billing query agrees"
        );

        // Filtered by key: only key 1's rows.
        let html = app.get(&dev, &format!("/apps/{app_id}/usage?key={key1}")).await.text().await.unwrap();
        assert_eq!(element_text(&html, "usage-calls").as_deref(), Some("180"));
        assert_eq!(element_text(&html, "usage-errors").as_deref(), Some("13"));
        assert_eq!(table_rows(&html, "usage-hourly")[47], vec![datetime(h0), "30".to_owned(), "3".to_owned()]);
        assert!(html.contains(&format!(r#"href="/apps/{app_id}/usage.csv?key={key1}""#)));
        // Filtered by API: the subscription's own period, per day from its anchor.
        let html = app.get(&dev, &format!("/apps/{app_id}/usage?api={api_id}")).await.text().await.unwrap();
        let daily = table_rows(&html, "usage-daily");
        assert_eq!(daily[0][0], datetime(sub.billing_anchor));
        assert_eq!(daily[1], vec![datetime(sub.billing_anchor + 86_400), "150".to_owned(), "10".to_owned()]);
        assert_eq!(daily[2], vec![datetime(sub.billing_anchor + 2 * 86_400), "50".to_owned(), "5".to_owned()]);

        // The dashboard: the whole account, calendar month.
        let html = app.get(&dev, "/dashboard").await.text().await.unwrap();
        assert_eq!(element_text(&html, "calls-this-month").as_deref(), Some("200"));
        assert_eq!(element_text(&html, "usage-latency").as_deref(), Some("45 ms"));
        let daily = table_rows(&html, "usage-daily");
        assert_eq!(daily.len(), 31, "May has 31 days");
        assert_eq!(daily[29], vec!["2026-05-30 00:00 UTC".to_owned(), "200".to_owned(), "15".to_owned()]);

        // CSV: one line per key × API × hour, sources summed.
        let res = app.get(&dev, &format!("/apps/{app_id}/usage.csv")).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["content-type"], "text/csv; charset=utf-8");
        assert_eq!(res.headers()["content-disposition"], format!("attachment; filename=\"turnpike-usage-app-{app_id}.csv\""));
        let csv = res.text().await.unwrap();
        let p1 = app.store.get_key(app_id, key1).await.unwrap().display_prefix;
        let p2 = app.store.get_key(app_id, key2).await.unwrap().display_prefix;
        let iso =
            |t: i64| time::OffsetDateTime::from_unix_timestamp(t).unwrap().format(&time::format_description::well_known::Rfc3339).unwrap();
        let expected = [
            turnpike_portal::pages::usage::CSV_HEADER.to_owned(),
            format!("{},{h1},{app_id},{key1},main,{p1},echo,150,140,0,6,4,10,0,0,7500", iso(h1)),
            format!("{},{h0},{app_id},{key1},main,{p1},echo,30,27,0,0,3,3,0,0,900", iso(h0)),
            format!("{},{h0},{app_id},{key2},\"spare, \"\"old\"\"\",{p2},echo,20,18,0,2,0,2,0,0,600", iso(h0)),
        ];
        assert_eq!(csv.lines().collect::<Vec<_>>(), expected, "{csv}");
        assert!(csv.starts_with("hour_utc,hour_unix,app_id,key_id,key_name,key_prefix,api,calls,"));
        let csv = app.get(&dev, &format!("/apps/{app_id}/usage.csv?key={key2}")).await.text().await.unwrap();
        assert_eq!(csv.lines().count(), 2);
        let csv = app.get(&dev, "/dashboard/usage.csv").await.text().await.unwrap();
        assert_eq!(csv.lines().count(), 4);

        // Another developer: 404 for the app's usage and CSV, and for Ada's key as a filter.
        let bob = app.developer("bob@example.com").await;
        let bob_app = app.create_app(&bob, "Bob's").await;
        for path in [
            format!("/apps/{app_id}/usage"),
            format!("/apps/{app_id}/usage.csv"),
            format!("/apps/{app_id}/usage?key={key1}"),
            format!("/apps/{bob_app}/usage?key={key1}"),
            format!("/dashboard?key={key1}"),
            "/apps/x/usage.csv".to_owned(),
        ] {
            let res = app.get(&bob, &path).await;
            assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
            assert!(!res.text().await.unwrap().contains("spare"), "{path}");
        }
        let html = app.get(&bob, "/dashboard").await.text().await.unwrap();
        assert_eq!(element_text(&html, "calls-this-month").as_deref(), Some("0"));
        assert!(table_rows(&html, "usage-hourly").iter().all(|r| r[1] == "0"));
        let csv = app.get(&bob, "/dashboard/usage.csv").await.text().await.unwrap();
        assert_eq!(csv.lines().count(), 1, "header only: {csv}");
        // Anonymous: to the login page.
        let res = app.get(&browser(), &format!("/apps/{app_id}/usage.csv")).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&res), "/login");
    }
}

/// `src`/`href` values of `<script>` and `<link>` tags.
fn asset_urls(html: &str) -> Vec<String> {
    let mut urls = Vec::new();
    for (tag, attr) in [("<script", "src=\""), ("<link", "href=\"")] {
        for part in html.split(tag).skip(1) {
            let head = &part[..part.find('>').unwrap_or(part.len())];
            if let Some(at) = head.find(attr) {
                let v = &head[at + attr.len()..];
                urls.push(v[..v.find('"').unwrap_or(v.len())].to_owned());
            }
        }
    }
    urls
}

/// An OpenAPI 3.0 document of `ops` operations padded to at least `min_bytes`.
fn big_spec(ops: usize, min_bytes: usize) -> String {
    let pad = "x".repeat(min_bytes / ops + 1);
    let paths: serde_json::Map<String, Value> = (0..ops)
        .map(|i| {
            (
                format!("/items/{i}"),
                serde_json::json!({"get": {"operationId": format!("get{i}"), "summary": format!("Item {i}"), "description": pad,
                    "servers": [{"url": "https://upstream.internal"}],
                    "responses": {"200": {"description": "ok"}}}}),
            )
        })
        .collect();
    serde_json::json!({"openapi": "3.0.3", "info": {"title": "Big", "version": "1"}, "servers": [{"url": "https://upstream.internal/v1"}],
        "paths": paths})
    .to_string()
}

#[tokio::test]
async fn the_api_page_renders_the_reference_offline_and_try_it_goes_through_the_gateway() {
    for app in each("devx_docs").await {
        seed_api(&app.store, "echo", "Echo", Visibility::Public).await;
        let spec = big_spec(500, 3 * 1024 * 1024);
        assert!(spec.len() > 3 * 1024 * 1024);
        app.store
            .create_api(
                &turnpike_store::NewApi {
                    slug: "big".into(),
                    name: "Big".into(),
                    description: "A large API.".into(),
                    route_prefix: "/big".into(),
                    host: None,
                    upstreams: vec![turnpike_store::Upstream { url: "http://127.0.0.1:1".into(), weight: 1 }],
                    openapi: Some(spec.clone()),
                    visibility: Visibility::Public,
                },
                NOW,
            )
            .await
            .unwrap();
        let client = browser();

        let res = app.get(&client, "/apis/echo").await;
        assert_eq!(res.status(), StatusCode::OK);
        let csp = res.headers()["content-security-policy"].to_str().unwrap().to_owned();
        assert!(csp.contains(&format!("connect-src 'self' {GATEWAY_URL};")), "{csp}");
        assert!(csp.contains("script-src 'self';"), "no inline or foreign scripts: {csp}");
        let html = res.text().await.unwrap();
        assert!(html.contains(r#"<span class="badge badge-active" id="api-status">Published</span>"#));
        assert!(html.contains(r#"data-spec-url="/apis/echo/openapi.gateway.json""#));
        assert!(html.contains(r#"href="/apis/echo/openapi.json" download"#), "raw download link");
        let urls = asset_urls(&html);
        assert!(urls.iter().any(|u| u.starts_with("/static/vendor/swagger-ui/swagger-ui-bundle.js")), "{urls:?}");
        assert!(urls.iter().any(|u| u.starts_with("/static/vendor/swagger-ui/swagger-ui.css")), "{urls:?}");
        assert!(urls.iter().any(|u| u.starts_with("/static/docs.js")), "{urls:?}");
        assert!(urls.iter().all(|u| u.starts_with('/') && !u.starts_with("//") && !u.contains("http")), "only local assets: {urls:?}");
        assert!(html.split("<script").skip(1).all(|t| t[..t.find('>').unwrap()].contains(" src=\"")), "no inline script");
        for u in &urls {
            let res = app.get(&client, u).await;
            assert_eq!(res.status(), StatusCode::OK, "{u}");
        }
        // The rest of the portal keeps the strict policy.
        let res = app.get(&client, "/").await;
        assert!(!res.headers()["content-security-policy"].to_str().unwrap().contains("unsafe-inline"));

        let res = app.get(&client, "/apis/echo/openapi.gateway.json").await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["content-type"], "application/json");
        let doc: Value = res.json().await.unwrap();
        assert_eq!(doc["servers"][0]["url"], format!("{GATEWAY_URL}/echo"));
        assert_eq!(doc["servers"].as_array().unwrap().len(), 1);
        assert_eq!(
            doc["components"]["securitySchemes"]["turnpikeKey"],
            serde_json::json!({"type": "http", "scheme": "bearer",
            "description": "Your Turnpike API key, sent as `Authorization: Bearer <key>`."})
        );
        assert_eq!(doc["components"]["securitySchemes"]["turnpikeKeyHeader"]["name"], "X-API-Key");
        assert_eq!(doc["security"], serde_json::json!([{"turnpikeKey": []}, {"turnpikeKeyHeader": []}]));
        // The raw document is still served as uploaded.
        assert!(app.get(&client, "/apis/echo/openapi.json").await.text().await.unwrap().starts_with(r#"{"openapi":"3.1.0""#));

        // A 3+ MB document with 500 operations: the page and the rewritten spec both serve it.
        let res = app.get(&client, "/apis/big").await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(res.text().await.unwrap().contains(r#"data-spec-url="/apis/big/openapi.gateway.json""#));
        let res = app.get(&client, "/apis/big/openapi.gateway.json").await;
        assert_eq!(res.status(), StatusCode::OK);
        let doc: Value = res.json().await.unwrap();
        assert_eq!(doc["servers"], serde_json::json!([{"url": format!("{GATEWAY_URL}/big"), "description": "Turnpike gateway"}]));
        let paths = doc["paths"].as_object().unwrap();
        assert_eq!(paths.len(), 500);
        assert!(paths.values().all(|p| p["get"].get("servers").is_none()), "operation servers would bypass the gateway");
        assert_eq!(app.get(&client, "/apis/big/openapi.json").await.text().await.unwrap(), spec);

        // Draft APIs stay hidden from everyone but admins.
        seed_api(&app.store, "secret", "Secret", Visibility::Draft).await;
        for path in ["/apis/secret", "/apis/secret/openapi.gateway.json", "/apis/nope/openapi.gateway.json"] {
            assert_eq!(app.get(&client, path).await.status(), StatusCode::NOT_FOUND, "{path}");
        }
    }
}

#[tokio::test]
async fn the_new_key_page_offers_try_it_in_the_docs_without_sending_the_key_anywhere() {
    for app in each("devx_try_it").await {
        seed_api(&app.store, "echo", "Echo", Visibility::Public).await;
        let dev = app.developer("ada@example.com").await;
        let app_id = app.create_app(&dev, "Bot").await;
        let csrf = app.csrf(&dev, &format!("/apps/{app_id}")).await;
        let html = app.post(&dev, &format!("/apps/{app_id}/keys"), &[("csrf", &csrf), ("name", "main")]).await.text().await.unwrap();
        let secret = element_text(&html, "new-api-key").unwrap();
        assert!(
            html.contains(
                r#"<a class="btn btn-secondary btn-sm" href="/apis/echo#try-it" data-try-key="new-api-key">Try Echo in the docs</a>"#
            ),
            "{html}"
        );
        assert_eq!(unescape(&html).matches(&secret).count(), 2, "the secret is on the page and in the curl example only, not in a link");
        assert!(html.contains(r#"data-copy="new-api-key""#), "copy button");
        let js = app.get(&dev, "/static/turnpike.js").await.text().await.unwrap();
        assert!(js.contains("sessionStorage.setItem(\"turnpike.tryKey\""));
        let docs = app.get(&dev, "/static/docs.js").await.text().await.unwrap();
        assert!(docs.contains("preauthorizeApiKey(BEARER_SCHEME, key)") && docs.contains("validatorUrl: null"));
    }
}
