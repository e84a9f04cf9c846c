//! JWT as a second credential, and CORS for the portal's "try it", over real sockets.

use std::path::PathBuf;
use std::sync::Arc;

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;
use turnpike_gateway::jwt::JwtSettings;
use turnpike_store::clock::{Clock, ManualClock};

use turnpike_testkit::TestDb;

use crate::{CounterBackend, TestApp};

const SECRET: &str = "a test secret that is long enough!!";
const NOW: i64 = 1_790_000_000;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jwt").join(name)
}

fn hs(claims: serde_json::Value) -> String {
    encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(SECRET.as_bytes())).unwrap()
}

fn rs(kid: &str, claims: serde_json::Value) -> String {
    let pem = std::fs::read(fixture("rs256_private.pem")).unwrap();
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some(kid.to_owned());
    encode(&h, &claims, &EncodingKey::from_rsa_pem(&pem).unwrap()).unwrap()
}

async fn problem(r: reqwest::Response) -> (u16, String, String) {
    let status = r.status().as_u16();
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let v: serde_json::Value = r.json().await.unwrap();
    (status, v["code"].as_str().unwrap_or_default().to_owned(), v["reason"].as_str().unwrap_or_default().to_owned())
}

/// A `[[jwt]]` block for the echo API, bound to `apps` and `accounts`.
fn echo_settings(apps: Vec<i64>, accounts: Vec<i64>) -> JwtSettings {
    JwtSettings {
        api: "echo".into(),
        issuer: Some("https://idp.test".into()),
        audience: Some("echo-api".into()),
        hs256_secret: Some(SECRET.into()),
        jwks_file: Some(fixture("jwks.json")),
        apps,
        accounts,
        ..JwtSettings::default()
    }
}

/// Start on `db`, run `setup` (which creates the apps the JWT settings are bound to), and
/// restart with the settings `jwt` derives from what `setup` returned. The seeded echo upstream
/// of the first start keeps serving (it lives as long as the test's runtime).
async fn start_then_bind<T>(
    db: &TestDb,
    clock: Arc<ManualClock>,
    setup: impl AsyncFnOnce(&TestApp) -> T,
    jwt: impl FnOnce(&T) -> Vec<JwtSettings>,
) -> (TestApp, T) {
    let app = TestApp::start(db, &CounterBackend::Local, clock.clone()).await;
    let made = setup(&app).await;
    app.stop().await;
    let settings = jwt(&made);
    let app = TestApp::start_with(db, &CounterBackend::Local, clock, |c| c.jwt = settings).await;
    (app, made)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwts_name_a_key_and_are_checked_for_signature_time_issuer_and_audience() {
    let db = TestDb::sqlite().await;
    let clock = Arc::new(ManualClock::at(NOW));
    let (app, (key_id, app_id)) = start_then_bind(
        &db,
        clock.clone(),
        async |app: &TestApp| {
            let (_key, key_id, app_id) = app.developer_key("jwt@example.com").await;
            (key_id, app_id)
        },
        |&(_, app_id)| vec![echo_settings(vec![app_id], vec![])],
    )
    .await;
    let claims = |sub: &str| json!({"sub": sub, "iss": "https://idp.test", "aud": "echo-api", "exp": NOW + 300, "nbf": NOW - 10});
    let call = |token: String| app.http.get(app.gw("/echo/jwt")).bearer_auth(token).send();

    // HS256 and RS256 (JWKS, by kid) tokens naming the key are served as that key's app, limited
    // and metered like the key itself, and the token never reaches the upstream.
    for token in [hs(claims(&format!("key_{key_id}"))), rs("test-2026", claims(&format!("key_{key_id}")))] {
        let r = call(token.clone()).await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers().contains_key("ratelimit"));
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["headers"]["x-turnpike-consumer"], format!("app-{app_id}"));
        assert!(v["headers"].get("authorization").is_none());
        assert!(!v.to_string().contains(&token));
    }
    let used = app.gateway.counters().snapshot_hours(clock.now(), 2).await.unwrap().iter().map(|b| b.admitted).sum::<i64>();
    assert_eq!(used, 2, "each JWT call is counted once against the key");

    // Each way a token can be wrong, with the reason in the problem.
    let forged = encode(
        &Header::new(Algorithm::HS256),
        &claims(&format!("key_{key_id}")),
        &EncodingKey::from_secret(b"not the configured secret, but as long"),
    )
    .unwrap();
    let mut wrong_aud = claims(&format!("key_{key_id}"));
    wrong_aud["aud"] = json!("another-api");
    let mut wrong_iss = claims(&format!("key_{key_id}"));
    wrong_iss["iss"] = json!("https://evil.test");
    let mut early = claims(&format!("key_{key_id}"));
    early["nbf"] = json!(NOW + 120);
    let cases = [
        (forged, "invalid"),
        (rs("unknown-kid", claims(&format!("key_{key_id}"))), "invalid"),
        (hs(wrong_aud), "wrong_issuer_or_audience"),
        (hs(wrong_iss), "wrong_issuer_or_audience"),
        (hs(early), "not_yet_valid"),
        (hs(claims("someone")), "no_key_claim"),
        (hs(claims("key_999999")), "unknown_key"),
    ];
    for (token, reason) in cases {
        assert_eq!(problem(call(token).await.unwrap()).await, (401, "invalid_token".to_owned(), reason.to_owned()), "{reason}");
    }
    // Expiry follows the gateway's clock (30 s leeway).
    let token = hs(claims(&format!("key_{key_id}")));
    clock.set(NOW + 300 + 31);
    assert_eq!(problem(call(token).await.unwrap()).await, (401, "invalid_token".into(), "expired".into()));
    clock.set(NOW);

    // The key named by the token is checked like a presented key: revoked → 403.
    app.store.revoke_key(app_id, key_id, clock.now()).await.unwrap();
    app.gateway.follow().await.unwrap();
    let (status, code, _) = problem(call(hs(claims(&format!("key_{key_id}")))).await.unwrap()).await;
    assert_eq!((status, code.as_str()), (403, "key_disabled"));

    // An API without JWT settings treats a JWT like any malformed key.
    app.publish("plain", &[(&app.gw("/echo"), 1)]).await;
    let r = app.http.get(app.gw("/plain/x")).bearer_auth(hs(claims(&format!("key_{key_id}")))).send().await.unwrap();
    let (status, code, _) = problem(r).await;
    assert_eq!((status, code.as_str()), (401, "invalid_key"));
    app.stop().await;
}

/// Issue 11: a token could name any key id, so whoever can mint tokens for an API could bill
/// any developer's key. A block now names only keys of the apps/accounts it is bound to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwt_may_name_only_keys_of_the_apps_or_accounts_its_block_is_bound_to() {
    let db = TestDb::sqlite().await;
    let clock = Arc::new(ManualClock::at(NOW));
    let (app, ids) = start_then_bind(
        &db,
        clock.clone(),
        async |app: &TestApp| {
            let (_, partner_key, partner_app) = app.developer_key("partner@example.com").await;
            let (_, victim_key, _) = app.developer_key("victim@example.com").await;
            let email = turnpike_store::domain::Email::parse("partner@example.com").unwrap();
            let owner = app.store.find_account_by_email(&email).await.unwrap().expect("partner account").0.id;
            (partner_key, partner_app, victim_key, owner)
        },
        |&(_, partner_app, _, _)| vec![echo_settings(vec![partner_app], vec![])],
    )
    .await;
    let (partner_key, _, victim_key, _) = ids;
    let claims = |sub: String| json!({"sub": sub, "iss": "https://idp.test", "aud": "echo-api", "exp": NOW + 300});
    let call = |key_id: i64| app.http.get(app.gw("/echo/jwt")).bearer_auth(hs(claims(format!("key_{key_id}")))).send();
    assert_eq!(call(partner_key).await.unwrap().status(), 200);
    assert_eq!(problem(call(victim_key).await.unwrap()).await, (401, "invalid_token".into(), "key_not_allowed".into()));
    app.gateway.flush().await.unwrap();
    assert_eq!(app.store.key_usage_total(partner_key).await.unwrap().admitted, 1);
    assert_eq!(app.store.key_usage_total(victim_key).await.unwrap().admitted, 0, "nothing billed to the victim");
    app.stop().await;

    // Bound by account instead: every app of that account, and no one else's.
    let (app, ids) =
        start_then_bind(&db, clock, async |_: &TestApp| ids, |&(_, _, _, owner)| vec![echo_settings(vec![], vec![owner])]).await;
    let (partner_key, _, victim_key, _) = ids;
    assert_eq!(call_with(&app, partner_key).await, 200);
    assert_eq!(call_with(&app, victim_key).await, 401);
    app.stop().await;
}

async fn call_with(app: &TestApp, key_id: i64) -> u16 {
    let claims = json!({"sub": format!("key_{key_id}"), "iss": "https://idp.test", "aud": "echo-api", "exp": NOW + 300});
    app.http.get(app.gw("/echo/jwt")).bearer_auth(hs(claims)).send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_portal_origin_may_call_apis_from_the_browser_and_others_may_not() {
    let db = TestDb::sqlite().await;
    let app = TestApp::start(&db, &CounterBackend::Local, crate::system_clock()).await;
    let (key, _, _) = app.developer_key("cors@example.com").await;
    let portal_origin = app.portal_url.trim_end_matches('/').to_owned();

    // Preflight from the portal: answered by the gateway, unauthenticated, not metered.
    let r = app
        .http
        .request(reqwest::Method::OPTIONS, app.gw("/echo/try"))
        .header("origin", &portal_origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization, content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["access-control-allow-origin"], portal_origin.as_str());
    assert!(r.headers()["access-control-allow-methods"].to_str().unwrap().contains("POST"));
    assert_eq!(r.headers()["access-control-allow-headers"], "authorization, content-type");
    let counted = app.gateway.counters().snapshot_hours(app.clock.now(), 2).await.unwrap().len();
    assert_eq!(counted, 0, "a preflight is not metered");

    // The actual call: readable by the portal, with the limit headers exposed; also on refusals.
    let r = app.http.get(app.gw("/echo/try")).header("origin", &portal_origin).bearer_auth(key.expose()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["access-control-allow-origin"], portal_origin.as_str());
    assert!(r.headers()["access-control-expose-headers"].to_str().unwrap().contains("ratelimit"));
    let r = app.http.get(app.gw("/echo/try")).header("origin", &portal_origin).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["access-control-allow-origin"], portal_origin.as_str());

    // Any other origin: no CORS headers, and its preflight is not answered by the gateway.
    let r = app
        .http
        .request(reqwest::Method::OPTIONS, app.gw("/echo/try"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_ne!(r.status(), 204);
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let r = app.http.get(app.gw("/echo/try")).header("origin", "https://evil.example").bearer_auth(key.expose()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("access-control-allow-origin").is_none());
    app.stop().await;
}
