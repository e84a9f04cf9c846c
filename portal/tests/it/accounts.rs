use reqwest::StatusCode;
use turnpike_store::domain::Email;
use turnpike_store::AccountStatus;

use crate::helpers::{browser, csrf_from, each, location, PASSWORD, PUBLIC_URL};

#[tokio::test]
async fn signup_with_an_invalid_email_stores_nothing_and_keeps_the_input() {
    for app in each("signup_invalid_email").await {
        let client = browser();
        let res = app.signup(&client, "not-an-email", PASSWORD).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let html = res.text().await.unwrap();
        assert!(html.contains("Enter an email address like name@example.com"), "{html}");
        assert!(html.contains(r#"value="not-an-email""#), "email kept");
        assert!(!html.contains(PASSWORD), "password never echoed");
        assert_eq!(app.store.count_accounts().await.unwrap(), 0);
        assert!(app.store.pending_emails(10).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn signup_with_a_short_password_stores_nothing() {
    for app in each("signup_short_password").await {
        let client = browser();
        let res = app.signup(&client, "ada@example.com", "elevenchars").await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let html = res.text().await.unwrap();
        assert!(html.contains("Use at least 12 characters"), "{html}");
        assert!(html.contains(r#"value="ada@example.com""#));
        assert_eq!(app.store.count_accounts().await.unwrap(), 0);
        // Still logged out.
        let res = app.get(&client, "/dashboard").await;
        assert_eq!(location(&res), "/login");
    }
}

#[tokio::test]
async fn signup_answers_the_same_for_known_and_unknown_emails() {
    for app in each("signup_duplicate").await {
        app.developer("ada@example.com").await;
        let known = app.signup(&browser(), "ADA@Example.com", PASSWORD).await;
        let unknown = app.signup(&browser(), "bob@example.com", PASSWORD).await;
        assert_eq!(known.status(), StatusCode::OK);
        assert_eq!(known.status(), unknown.status());
        let strip = |html: String, email: &str| {
            let html = if html.contains(r#"name="csrf""#) { html.replace(&csrf_from(&html), "CSRF") } else { html };
            html.replace(email, "EMAIL")
        };
        let known = strip(known.text().await.unwrap(), "ada@example.com");
        let unknown = strip(unknown.text().await.unwrap(), "bob@example.com");
        assert_eq!(known, unknown, "the page must not tell whether the email has an account");
        assert!(known.contains("Check your email"));
        assert_eq!(app.store.count_accounts().await.unwrap(), 2, "no second account for ada");
        // The mailbox owner learns the rest: ada gets a note with login and reset links.
        let ada = app.store.emails_to("ada@example.com").await.unwrap();
        let note = ada.last().unwrap();
        assert_eq!(note.kind, "signup_existing");
        assert!(note.body.contains(&format!("{PUBLIC_URL}/login")) && note.body.contains(&format!("{PUBLIC_URL}/reset-password")));
        assert!(!note.body.contains("token="), "no token for someone who may not own the inbox's account");
        let bob = app.store.emails_to("bob@example.com").await.unwrap();
        assert_eq!(bob.len(), 1);
        assert_eq!(bob[0].kind, "verify_email");
    }
}

#[tokio::test]
async fn signup_creates_an_unverified_account_and_mails_a_verification_link() {
    for app in each("signup_success").await {
        let client = browser();
        let res = app.signup(&client, " Ada@Example.com ", PASSWORD).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(res.text().await.unwrap().contains("ada@example.com"));
        // Not logged in until the email is confirmed.
        assert_eq!(location(&app.get(&client, "/dashboard").await), "/login");

        let mail = app.store.pending_emails(10).await.unwrap();
        assert_eq!(mail.len(), 1);
        assert_eq!(mail[0].recipient, "ada@example.com");
        assert!(mail[0].body.contains(&format!("{PUBLIC_URL}/verify-email?token=")), "{}", mail[0].body);

        let (account, hash) = app.store.find_account_by_email(&Email::parse("ada@example.com").unwrap()).await.unwrap().unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert_eq!(account.email_verified_at, None);
        let audit = app.store.recent_audit(10).await.unwrap();
        assert!(audit.iter().any(|e| e.action == "signup" && e.actor_id == Some(account.id)));
        assert!(audit.iter().all(|e| !e.detail.contains(PASSWORD)));
    }
}

#[tokio::test]
async fn login_refuses_wrong_credentials_with_one_generic_message() {
    for app in each("login_wrong").await {
        app.developer("ada@example.com").await;
        let client = browser();
        for (email, password) in [("ada@example.com", "wrong password here"), ("nobody@example.com", PASSWORD), ("garbage", PASSWORD)] {
            let csrf = app.csrf(&client, "/login").await;
            let res = app.post(&client, "/login", &[("csrf", &csrf), ("email", email), ("password", password)]).await;
            assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{email}");
            let html = res.text().await.unwrap();
            assert!(html.contains("Email or password is incorrect."), "{email}");
        }
        assert_eq!(location(&app.get(&client, "/dashboard").await), "/login");
    }
}

#[tokio::test]
async fn login_rotates_the_session_and_logout_ends_it() {
    for app in each("login_right").await {
        app.developer("ada@example.com").await;
        let client = browser();
        let res = app.get(&client, "/login").await;
        let anonymous = session_id(res.headers().get("set-cookie").expect("anonymous session for the form's CSRF token").to_str().unwrap());
        let csrf = csrf_from(&res.text().await.unwrap());
        let before = app.store.recent_audit(10).await.unwrap().len();
        let res = app.post(&client, "/login", &[("csrf", &csrf), ("email", "ada@example.com"), ("password", PASSWORD)]).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&res), "/dashboard");
        let cookie = res.headers().get("set-cookie").expect("new session cookie").to_str().unwrap().to_owned();
        let logged_in = session_id(&cookie);
        assert_ne!(anonymous, logged_in, "the session id changes at login");
        assert!(cookie.starts_with("turnpike_session="), "{cookie}");
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"), "{cookie}");
        assert_eq!(app.store.recent_audit(10).await.unwrap().len(), before + 1, "login audited");

        let html = app.get(&client, "/dashboard").await.text().await.unwrap();
        assert!(html.contains("ada@example.com"));
        // The pre-login CSRF token was replaced at login.
        let new_csrf = csrf_from(&html);
        assert_ne!(new_csrf, csrf);

        let res = app.post(&client, "/logout", &[("csrf", &new_csrf)]).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&res), "/");
        assert_eq!(location(&app.get(&client, "/dashboard").await), "/login");

        // The logged-out cookie, replayed by hand (as a thief would), is refused.
        let replay = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let res = replay.get(app.url("/dashboard")).header("cookie", format!("turnpike_session={logged_in}")).send().await.unwrap();
        assert_eq!(location(&res), "/login");
    }
}

#[tokio::test]
async fn a_suspended_account_cannot_log_in_and_its_sessions_stop_working() {
    for app in each("login_suspended").await {
        let open_session = app.developer("ada@example.com").await;
        let (account, _) = app.store.find_account_by_email(&Email::parse("ada@example.com").unwrap()).await.unwrap().unwrap();
        app.store.set_account_status(account.id, AccountStatus::Suspended, 0).await.unwrap();

        assert_eq!(location(&app.get(&open_session, "/dashboard").await), "/login");
        let client = browser();
        let csrf = app.csrf(&client, "/login").await;
        let res = app.post(&client, "/login", &[("csrf", &csrf), ("email", "ada@example.com"), ("password", PASSWORD)]).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert!(res.text().await.unwrap().contains("suspended"));
        assert_eq!(location(&app.get(&client, "/dashboard").await), "/login");
    }
}

#[tokio::test]
async fn the_dashboard_redirects_to_login_when_logged_out() {
    for app in each("dashboard_logged_out").await {
        let client = browser();
        for path in ["/dashboard", "/apps/1"] {
            let res = app.get(&client, path).await;
            assert_eq!(res.status(), StatusCode::SEE_OTHER, "{path}");
            assert_eq!(location(&res), "/login", "{path}");
        }
    }
}

/// The session id from a `Set-Cookie` header.
fn session_id(set_cookie: &str) -> String {
    set_cookie.split(';').next().and_then(|kv| kv.split_once('=')).map(|(_, v)| v.to_owned()).expect("cookie value")
}
