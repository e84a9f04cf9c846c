use std::sync::Arc;

use reqwest::redirect::Policy;
use reqwest::{Client, Response, StatusCode};
use turnpike_portal::{PortalConfig, PortalState};
use turnpike_store::clock::ManualClock;
use turnpike_store::domain::{hash_password, ApiKey, Email, Password};
use turnpike_store::{Role, Store, Visibility};
use turnpike_testkit::TestDb;

/// 2026-05-28 20:26:40 UTC.
pub const NOW: i64 = 1_780_000_000;
pub const GATEWAY_URL: &str = "https://gw.example.test";
pub const PUBLIC_URL: &str = "https://portal.example.test";
pub const PASSWORD: &str = "correct horse battery staple";

/// The portal, listening on 127.0.0.1:0.
pub struct TestApp {
    pub base: String,
    pub store: Store,
    /// The database URL, for SQL the store does not offer (seeding, triggers).
    pub db_url: String,
    /// The portal's clock; tests move it.
    pub clock: Arc<ManualClock>,
    /// Kept alive for the test: dropping it deletes the database.
    _db: TestDb,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// One test per backend: `for app in each("name").await { … }`.
pub async fn each(test: &str) -> Vec<TestApp> {
    let mut apps = Vec::new();
    for db in TestDb::each(test).await {
        println!("backend: {}", db.backend());
        apps.push(spawn(db).await);
    }
    apps
}

pub async fn spawn(db: TestDb) -> TestApp {
    let store = db.store.clone();
    let clock = Arc::new(ManualClock::at(NOW));
    let state = PortalState {
        store: store.clone(),
        clock: clock.clone(),
        config: Arc::new(PortalConfig { gateway_url: GATEWAY_URL.into(), public_url: PUBLIC_URL.into(), secure_cookies: false }),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        // As src/lib.rs serves it: handlers see the peer address (the throttle's client IP).
        let app = turnpike_portal::app(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
        axum::serve(listener, app).await.expect("serve");
    });
    TestApp { base: format!("http://{addr}"), store, db_url: db.url.clone(), clock, _db: db, server }
}

/// A browser: cookie jar on, redirects not followed (tests assert them).
pub fn browser() -> Client {
    Client::builder().cookie_store(true).redirect(Policy::none()).build().expect("client")
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, client: &Client, path: &str) -> Response {
        client.get(self.url(path)).send().await.expect("GET")
    }

    pub async fn post(&self, client: &Client, path: &str, form: &[(&str, &str)]) -> Response {
        client.post(self.url(path)).form(form).send().await.expect("POST")
    }

    /// The CSRF token from the forms on `path`.
    pub async fn csrf(&self, client: &Client, path: &str) -> String {
        let html = self.get(client, path).await.text().await.unwrap();
        csrf_from(&html)
    }

    /// Submit the signup form as a browser would.
    pub async fn signup(&self, client: &Client, email: &str, password: &str) -> Response {
        let csrf = self.csrf(client, "/signup").await;
        self.post(client, "/signup", &[("csrf", &csrf), ("email", email), ("password", password)]).await
    }

    /// A logged-in browser for a new developer: signs up, follows the verification link from the
    /// outbox, confirms.
    pub async fn developer(&self, email: &str) -> Client {
        let client = browser();
        let res = self.signup(&client, email, PASSWORD).await;
        assert_eq!(res.status(), StatusCode::OK, "signup of {email}");
        let link = self.mailed_link(email, "/verify-email?token=").await;
        let res = self.confirm_link(&client, &link).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "verification of {email}");
        assert_eq!(location(&res), "/dashboard");
        client
    }

    /// The newest link starting with `{PUBLIC_URL}{path_prefix}` mailed to `email`, as a path.
    pub async fn mailed_link(&self, email: &str, path_prefix: &str) -> String {
        let norm = email.trim().to_lowercase();
        let mail = self.store.emails_to(&norm).await.expect("outbox");
        let prefix = format!("{PUBLIC_URL}{path_prefix}");
        mail.iter()
            .rev()
            .find_map(|m| m.body.split_whitespace().find(|w| w.starts_with(&prefix)).map(|w| w[PUBLIC_URL.len()..].to_owned()))
            .unwrap_or_else(|| panic!("no {path_prefix} link mailed to {norm}: {mail:?}"))
    }

    /// Open an emailed confirm link (a page with a button), then press the button.
    pub async fn confirm_link(&self, client: &Client, path: &str) -> Response {
        let page = self.get(client, path).await;
        assert_eq!(page.status(), StatusCode::OK, "confirm page {path}");
        let html = page.text().await.unwrap();
        let csrf = csrf_from(&html);
        let (action, query) = path.split_once('?').expect("link has a query");
        let token = query.strip_prefix("token=").expect("token param");
        // Verifying an email while not logged in asks for the account's password too.
        if html.contains(r#"name="password""#) {
            return self.post(client, action, &[("csrf", &csrf), ("token", token), ("password", PASSWORD)]).await;
        }
        self.post(client, action, &[("csrf", &csrf), ("token", token)]).await
    }

    /// A browser logged in through `/login` as `email` (password [`PASSWORD`]).
    pub async fn login(&self, email: &str) -> Client {
        let client = browser();
        let csrf = self.csrf(&client, "/login").await;
        let res = self.post(&client, "/login", &[("csrf", &csrf), ("email", email), ("password", PASSWORD)]).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "login of {email}");
        client
    }

    /// A new account `email` with `role`, created in the store as the CLI does (so its address is
    /// unverified), and a browser logged in as it; returns the browser and the account id.
    pub async fn login_new(&self, email: &str, role: Role) -> (Client, i64) {
        let hash = hash_password(&Password::parse(PASSWORD).unwrap()).await.unwrap();
        let account = self.store.create_account(&Email::parse(email).unwrap(), &hash, role, NOW).await.unwrap();
        (self.login(email).await, account.id)
    }

    /// Create an app through the dashboard form; returns its id.
    pub async fn create_app(&self, client: &Client, name: &str) -> i64 {
        let csrf = self.csrf(client, "/dashboard").await;
        let res = self.post(client, "/apps", &[("csrf", &csrf), ("name", name)]).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let loc = location(&res);
        loc.strip_prefix("/apps/").and_then(|id| id.parse().ok()).unwrap_or_else(|| panic!("app location {loc}"))
    }

    /// Create a key through the app page; returns the page HTML.
    pub async fn create_key(&self, client: &Client, app_id: i64, name: &str) -> Response {
        let csrf = self.csrf(client, &format!("/apps/{app_id}")).await;
        self.post(client, &format!("/apps/{app_id}/keys"), &[("csrf", &csrf), ("name", name)]).await
    }

    /// Create a key through the app page; returns the key its page showed once, and its id.
    pub async fn new_key(&self, client: &Client, app_id: i64, name: &str) -> (ApiKey, i64) {
        let html = self.create_key(client, app_id, name).await.text().await.unwrap();
        let key = ApiKey::parse(&element_text(&html, "new-api-key").expect("secret shown once")).expect("a well-formed key");
        let key_id = self.store.key_auth(&key.hash()).await.unwrap().expect("key stored").key_id;
        (key, key_id)
    }
}

pub fn location(res: &Response) -> String {
    res.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

pub fn csrf_from(html: &str) -> String {
    let marker = r#"name="csrf" value=""#;
    let start = html.find(marker).unwrap_or_else(|| panic!("no csrf field in:\n{html}")) + marker.len();
    let len = html[start..].find('"').expect("end of csrf value");
    html[start..start + len].to_owned()
}

/// The text inside the element with `id`, up to the next tag.
pub fn element_text(html: &str, id: &str) -> Option<String> {
    let open = html.find(&format!(r#"id="{id}""#))?;
    let start = open + html[open..].find('>')? + 1;
    let end = start + html[start..].find('<')?;
    Some(html[start..end].to_owned())
}

/// A portal with Stripe on (against the fake Stripe at `api_base`) over `store`, on its own port;
/// returns its base URL and the server task. Sessions live in the database and cookies ignore
/// ports, so a developer logged in through [`TestApp`] is logged in on both.
pub async fn stripe_portal(store: &Store, api_base: &str, secret_key: &str, webhook_secret: &str) -> (String, tokio::task::JoinHandle<()>) {
    let state = PortalState {
        store: store.clone(),
        clock: Arc::new(ManualClock::at(NOW)),
        config: Arc::new(PortalConfig { gateway_url: GATEWAY_URL.into(), public_url: PUBLIC_URL.into(), secure_cookies: false }),
    };
    let stripe = turnpike_stripe::Stripe::new(turnpike_stripe::StripeSettings {
        secret_key: secret_key.into(),
        webhook_secret: webhook_secret.into(),
        api_base: Some(api_base.into()),
        grace_seconds: 3600,
        portal_url: PUBLIC_URL.into(),
    })
    .unwrap();
    let router = turnpike_portal::pages::stripe::with_stripe(turnpike_portal::app(state), Some(stripe));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (format!("http://{addr}"), server)
}

/// A public API `slug` with a free default plan; returns (api id, plan id).
pub async fn seed_api(store: &Store, slug: &str, name: &str, visibility: Visibility) -> (i64, i64) {
    turnpike_testkit::publish(store, slug, name, &[("http://127.0.0.1:1", 1)], visibility, &turnpike_testkit::free_plan(), NOW).await
}

/// HTML with askama's escapes undone, for asserting on visible text.
pub fn unescape(html: &str) -> String {
    [
        ("&#34;", "\""),
        ("&#39;", "'"),
        ("&#60;", "<"),
        ("&#62;", ">"),
        ("&quot;", "\""),
        ("&lt;", "<"),
        ("&gt;", ">"),
        ("&#38;", "&"),
        ("&amp;", "&"),
    ]
    .iter()
    .fold(html.to_owned(), |s, (from, to)| s.replace(from, to))
}
