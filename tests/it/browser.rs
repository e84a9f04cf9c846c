//! The portal in a real browser: Debian's chromium, headless, driven over WebDriver by
//! chromedriver. Walks the developer journey (signup → verification link from the log mailer →
//! app and key → "try it" from the docs page → the call on the usage dashboard) and the admin
//! journey (publish an API by uploading a spec → it is in the catalog → a developer subscribes).
//! Every page is saved as a PNG under `target/e2e-screenshots/` (git-ignored) for people to look at.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use turnpike_store::domain::{hash_password, Email, Password};
use turnpike_store::Role as AccountRole;
use turnpike_testkit::TestDb;

use crate::{system_clock, CounterBackend, TestApp};

const PASSWORD: &str = "correct horse battery staple";

/// A chromedriver on a free port with its own process group and a chromium profile directory of
/// its own. Dropping it (also when the test panics) kills the group and every process still
/// naming that profile, so no chromium outlives the test.
struct Driver {
    child: Child,
    port: u16,
    profile: tempfile::TempDir,
}

impl Driver {
    fn start() -> Result<Driver, String> {
        for bin in ["chromedriver", "chromium"] {
            if Command::new(bin).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_err() {
                return Err(format!("{bin} not found (apt-get install chromium chromium-driver)"));
            }
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?.local_addr().map_err(|e| e.to_string())?.port();
        let profile = tempfile::Builder::new().prefix("turnpike-chromium-").tempdir().map_err(|e| e.to_string())?;
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| e.to_string())?;
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if started.elapsed() > Duration::from_secs(10) {
                return Err("chromedriver did not start".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Driver { child, port, profile })
    }

    async fn browser(&self) -> Client {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
                         "--disable-quic", format!("--user-data-dir={}", self.profile.path().display())]
            }),
        );
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a chromium session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // chromium and its helpers run in chromedriver's process group (or, if one escaped it, still
        // name this run's profile directory on their command line): end them all.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let profile = self.profile.path().display().to_string();
        if let Ok(procs) = std::fs::read_dir("/proc") {
            for p in procs.flatten() {
                let cmdline = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
                if String::from_utf8_lossy(&cmdline).contains(&profile) {
                    let _ = Command::new("kill").args(["-KILL", &p.file_name().to_string_lossy()]).stderr(Stdio::null()).status();
                }
            }
        }
    }
}

struct Journey {
    c: Client,
    portal: String,
    shots: PathBuf,
    n: u32,
}

impl Journey {
    async fn go(&self, path: &str) {
        self.c.goto(&format!("{}{path}", self.portal)).await.unwrap();
    }

    async fn shot(&mut self, name: &str) {
        self.n += 1;
        let png = self.c.screenshot().await.unwrap();
        std::fs::write(self.shots.join(format!("{:02}-{name}.png", self.n)), png).unwrap();
    }

    async fn fill(&self, css: &str, text: &str) {
        let e = self.c.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css(css)).await.unwrap();
        e.clear().await.unwrap();
        e.send_keys(text).await.unwrap();
    }

    async fn click(&self, css: &str) {
        let e = self.c.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css(css)).await.unwrap();
        self.press(e).await;
    }

    async fn click_text(&self, tag: &str, text: &str) {
        let xpath = format!("//{tag}[normalize-space()='{text}']");
        let e = self.c.wait().at_most(Duration::from_secs(10)).for_element(Locator::XPath(&xpath)).await.unwrap();
        self.press(e).await;
    }

    /// Scroll the element to the middle of the window (clear of the sticky header), then click.
    async fn press(&self, e: fantoccini::elements::Element) {
        let arg = serde_json::to_value(&e).unwrap();
        self.c.execute("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'});", vec![arg]).await.unwrap();
        e.click().await.unwrap();
    }

    /// The text of the first element matching `css`, read inside the page in one script call (no
    /// element reference that a navigation or a re-render could invalidate), once it exists.
    async fn text(&self, css: &str) -> String {
        let script = "const e = document.querySelector(arguments[0]); return e ? e.innerText : null;";
        let started = Instant::now();
        loop {
            if let Ok(serde_json::Value::String(t)) = self.c.execute(script, vec![css.into()]).await {
                return t;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "{css} never appeared");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The element's text once it contains `needle` (case-insensitive), for pages whose script
    /// fills it in after load.
    async fn text_containing(&self, css: &str, needle: &str) -> String {
        let started = Instant::now();
        loop {
            let t = self.text(css).await;
            if t.to_lowercase().contains(&needle.to_lowercase()) {
                return t;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "{css} never contained {needle:?}; last text: {t}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Click something that loads a new page, and return once that page has loaded: the old
    /// document is marked before the click, and the wait ends when the window holds an unmarked
    /// document that finished loading. Every read after it sees the new page, never the old one
    /// being torn down.
    async fn click_nav(&self, css: &str) {
        self.c.execute("window.__turnpikeOldPage = true;", vec![]).await.unwrap();
        self.click(css).await;
        self.wait_new_page().await;
    }

    /// [`Journey::click_nav`] for a button found by its text.
    async fn click_text_nav(&self, tag: &str, text: &str) {
        self.c.execute("window.__turnpikeOldPage = true;", vec![]).await.unwrap();
        self.click_text(tag, text).await;
        self.wait_new_page().await;
    }

    async fn wait_new_page(&self) {
        let script = "return window.__turnpikeOldPage === undefined && document.readyState === 'complete';";
        let started = Instant::now();
        // A script error means the document is being replaced right now: ask again.
        while !matches!(self.c.execute(script, vec![]).await, Ok(serde_json::Value::Bool(true))) {
            assert!(started.elapsed() < Duration::from_secs(20), "the click loaded no new page");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn path(&self) -> String {
        self.c.current_url().await.unwrap().path().to_owned()
    }

    async fn log_in(&self, email: &str) {
        self.go("/login").await;
        self.fill("#email", email).await;
        self.fill("#password", PASSWORD).await;
        self.click_nav("form[action='/login'] button[type=submit]").await;
        assert_ne!(self.path().await, "/login", "logged in");
    }

    async fn log_out(&self) {
        self.click_nav("form[action='/logout'] button[type=submit]").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn developer_and_admin_journeys_in_a_real_browser() {
    let driver = match Driver::start() {
        Ok(d) => d,
        Err(why) => {
            turnpike_testkit::skip("chromium", "developer_and_admin_journeys_in_a_real_browser", &why);
            return;
        }
    };
    let db = TestDb::sqlite().await;
    let app = TestApp::start(&db, &CounterBackend::Local, system_clock()).await;
    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/e2e-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let mut j = Journey { c: driver.browser().await, portal: app.portal_url.trim_end_matches('/').to_owned(), shots, n: 0 };

    // --- Developer: sign up, confirm the emailed link, create an app and a key. ---
    j.go("/").await;
    j.shot("catalog").await;
    j.go("/signup").await;
    j.fill("#email", "dev@example.com").await;
    j.fill("#password", PASSWORD).await;
    j.shot("signup").await;
    j.click_nav("form[action='/signup'] button[type=submit]").await;
    j.text_containing("main", "check your email").await;
    j.shot("check-email").await;

    let mail = app.store.emails_to("dev@example.com").await.unwrap();
    let body = &mail.last().expect("a verification email in the outbox").body;
    let link = body.split_whitespace().find(|w| w.contains("/verify-email?token=")).expect("a verification link").to_owned();
    j.c.goto(&link).await.unwrap();
    j.fill("#confirm-password", PASSWORD).await;
    j.shot("verify-email").await;
    j.click_nav("form[action='/verify-email'] button[type=submit]").await;
    assert_eq!(j.path().await, "/dashboard", "verified and logged in");

    j.go("/dashboard").await;
    j.fill("#app-name", "Browser app").await;
    j.click_nav("form[action='/apps'] button[type=submit]").await;
    let app_path = j.path().await;
    assert!(app_path.starts_with("/apps/"), "on {app_path}");
    j.shot("app").await;
    j.fill("#key-name", "laptop").await;
    j.click_text_nav("button", "Create key").await;
    let secret = j.text("#new-api-key").await;
    assert!(secret.starts_with("tp_live_"), "{secret}");
    j.shot("key-created").await;

    // --- Try it from the docs page: Swagger UI, pre-authorized with the new key, calls the
    // gateway from the browser (CORS) and shows the upstream's answer. ---
    j.click_nav("a[data-try-key]").await;
    j.c.wait().at_most(Duration::from_secs(20)).for_element(Locator::Css(".opblock-get .opblock-summary")).await.unwrap();
    j.shot("docs").await;
    j.click(".opblock-get .opblock-summary-control").await;
    j.click(".opblock-get .try-out__btn").await;
    j.fill(".opblock-get tr[data-param-name='path'] input", "from-the-browser").await;
    j.click(".opblock-get .execute").await;
    let status = j.text(".opblock-get .live-responses-table tbody .response-col_status").await;
    j.shot("docs-try-it").await;
    assert_eq!(status.trim(), "200", "try-it answered {status}");
    let answer = j.text(".opblock-get .live-responses-table tbody .response-col_description").await;
    assert!(answer.contains("from-the-browser"), "the upstream saw the call: {answer}");
    assert!(!answer.contains(&secret), "the key never reaches the upstream");

    // --- The call is on the usage dashboard once the meter has flushed (polled: the flusher
    // runs every 100 ms here; the deadline only bounds a failure). ---
    let started = Instant::now();
    loop {
        j.go("/dashboard").await;
        if j.text("#calls-this-month").await.trim() == "1" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the call never reached the dashboard");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    j.shot("dashboard").await;
    j.go(&format!("{app_path}/usage")).await;
    j.shot("app-usage").await;
    j.log_out().await;

    // --- Admin: publish an API by uploading its spec; it shows in the catalog. ---
    let now = app.clock.now();
    let hash = hash_password(&Password::parse(PASSWORD).unwrap()).await.unwrap();
    let admin = app.store.create_account(&Email::parse("owner@example.com").unwrap(), &hash, AccountRole::Admin, now).await.unwrap();
    app.store.mark_email_verified(admin.id, now).await.unwrap();
    let echo = app.store.get_api_by_slug("echo").await.unwrap();
    let upstream_url = echo.upstreams[0].url.clone();
    let spec = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    std::fs::write(
        spec.path(),
        "openapi: 3.1.0\ninfo:\n  title: Weather\n  version: '2.0'\n  description: Forecasts by city.\npaths:\n  /forecast/{city}:\n    get:\n      summary: Forecast for a city\n      parameters:\n        - name: city\n          in: path\n          required: true\n          schema: {type: string}\n      responses:\n        '200': {description: The forecast}\n",
    )
    .unwrap();

    j.log_in("owner@example.com").await;
    j.go("/admin").await;
    j.shot("admin-overview").await;
    j.go("/admin/apis/new").await;
    j.fill("#api-slug", "weather").await;
    j.fill("#api-prefix", "/weather").await;
    j.fill("input[name=upstream_url]", &upstream_url).await;
    j.fill("input[name=upstream_weight]", "1").await;
    j.click("input[name=visibility][value=public]").await;
    j.c.find(Locator::Css("#api-openapi")).await.unwrap().send_keys(&spec.path().display().to_string()).await.unwrap();
    j.shot("admin-new-api").await;
    j.click_text_nav("button", "Create API").await;
    let api_path = j.path().await;
    assert!(api_path.starts_with("/admin/apis/"), "on {api_path}");
    // A plan to subscribe to.
    j.fill("#new-plan input[name=name]", "Starter").await;
    j.fill("#new-plan input[name=slug]", "starter").await;
    j.fill("#new-plan input[name=rate_per_second]", "5").await;
    j.fill("#new-plan input[name=burst]", "10").await;
    j.fill("#new-plan input[name=monthly_quota]", "500").await;
    j.click_nav("#new-plan button[type=submit]").await;
    j.text_containing("main", "Starter").await;
    j.shot("admin-api-with-plan").await;
    j.go("/").await;
    j.text_containing("main", "Weather").await; // the published API is in the catalog
    j.shot("catalog-with-weather").await;
    j.log_out().await;

    // --- The developer subscribes their app to the new API's plan and calls it. ---
    j.log_in("dev@example.com").await;
    j.go("/apis/weather").await;
    j.shot("weather-docs").await;
    // The app picker lists the developer's app; Subscribe.
    let picked = j.text("select#subscribe-app-starter").await;
    assert!(picked.contains("Browser app"), "{picked}");
    j.click_nav("button#subscribe-starter").await;
    assert_eq!(j.path().await, "/billing");
    j.text_containing("main", "Starter").await; // the billing page shows the new subscription
    j.shot("subscribed").await;
    app.gateway.follow().await.unwrap();
    let r = app.http.get(app.gw("/weather/forecast/oslo")).bearer_auth(&secret).send().await.unwrap();
    assert_eq!(r.status(), 200, "the subscribed key is served on the new API");
    j.log_out().await;

    // --- The owner's analytics: the call is attributed to the uploaded document's operation
    // (polled until the meter has flushed; the deadline only bounds a failure). ---
    j.log_in("owner@example.com").await;
    let started = Instant::now();
    loop {
        j.go("/admin/analytics").await;
        if j.c.source().await.unwrap().contains(">Weather</a>") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the call never reached the analytics page");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    j.shot("admin-analytics").await;
    j.click_text_nav("a", "Weather").await;
    let ops = j.text_containing("#analytics-lines", "GET /forecast/{city}").await;
    assert!(ops.contains("GET /forecast/{city}"), "{ops}");
    j.shot("admin-analytics-operations").await;

    j.c.close().await.unwrap();
    app.stop().await;
}
