//! Account lifecycles over real sockets on both backends: email verification, password reset,
//! settings (change password / email, delete), throttling and session lifetimes. Links are
//! followed from the outbox rows, as a developer would follow them from the email.

use reqwest::{Client, StatusCode};
use turnpike_store::domain::{ApiKey, Email};
use turnpike_store::{Account, AccountStatus, ChangeKind, KeyStatus, Role, Visibility};

use crate::helpers::{browser, csrf_from, each, location, seed_api, TestApp, NOW, PASSWORD};

const NEW_PASSWORD: &str = "a brand new passphrase";

async fn account(app: &TestApp, email: &str) -> Option<Account> {
    app.store.find_account_by_email(&Email::parse(email).unwrap()).await.unwrap().map(|(a, _)| a)
}

fn advance(app: &TestApp, secs: i64) {
    app.clock.advance_micros(secs * 1_000_000);
}

/// A browser logged in with email and password through the login form; returns the response too.
async fn login(app: &TestApp, email: &str, password: &str) -> (Client, StatusCode) {
    let client = browser();
    let csrf = app.csrf(&client, "/login").await;
    let res = app.post(&client, "/login", &[("csrf", &csrf), ("email", email), ("password", password)]).await;
    (client, res.status())
}

async fn logged_in(app: &TestApp, client: &Client) -> bool {
    let res = app.get(client, "/dashboard").await;
    res.status() == StatusCode::OK
}

/// POST a form of the settings page with the page's CSRF token.
async fn settings_post(app: &TestApp, client: &Client, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
    let csrf = app.csrf(client, "/account").await;
    let mut form = vec![("csrf", csrf.as_str())];
    form.extend_from_slice(fields);
    app.post(client, path, &form).await
}

#[tokio::test]
async fn the_verification_link_confirms_the_email_logs_in_and_works_once() {
    for app in each("verify_flow").await {
        let client = browser();
        assert_eq!(app.signup(&client, "ada@example.com", PASSWORD).await.status(), StatusCode::OK);
        let link = app.mailed_link("ada@example.com", "/verify-email?token=").await;

        // GET shows a button and changes nothing (mail scanners prefetch links).
        let page = app.get(&client, &link).await;
        assert_eq!(page.status(), StatusCode::OK);
        assert!(page.text().await.unwrap().contains("Confirm my email"));
        assert_eq!(account(&app, "ada@example.com").await.unwrap().email_verified_at, None);
        assert!(!logged_in(&app, &client).await);

        let res = app.confirm_link(&client, &link).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&res), "/dashboard");
        assert!(res.headers().get("set-cookie").is_some(), "a new session id at login");
        let html = app.get(&client, "/dashboard").await.text().await.unwrap();
        assert!(html.contains("ada@example.com") && html.contains("Your email is confirmed"), "{html}");
        assert!(!html.contains("Resend verification email"), "no banner once verified");
        assert_eq!(account(&app, "ada@example.com").await.unwrap().email_verified_at, Some(NOW));

        // Used once: the same link again is refused, GET and POST alike.
        let other = browser();
        assert_eq!(app.get(&other, &link).await.status(), StatusCode::BAD_REQUEST);
        let csrf = app.csrf(&other, "/login").await;
        let token = link.split_once("token=").unwrap().1;
        let res = app.post(&other, "/verify-email", &[("csrf", &csrf), ("token", token)]).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert!(res.text().await.unwrap().contains("This link no longer works"));
        assert!(!logged_in(&app, &other).await);
        // A made-up token too.
        assert_eq!(app.get(&other, "/verify-email?token=00ff").await.status(), StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn an_expired_verification_link_is_refused_and_an_unverified_developer_can_resend() {
    for app in each("verify_expired").await {
        let client = browser();
        app.signup(&client, "ada@example.com", PASSWORD).await;
        let link = app.mailed_link("ada@example.com", "/verify-email?token=").await;
        advance(&app, 24 * 3600);
        assert_eq!(app.get(&client, &link).await.status(), StatusCode::BAD_REQUEST, "expired at 24 h");
        let csrf = app.csrf(&client, "/login").await;
        let token = link.split_once("token=").unwrap().1;
        let res = app.post(&client, "/verify-email", &[("csrf", &csrf), ("token", token)]).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert_eq!(account(&app, "ada@example.com").await.unwrap().email_verified_at, None);

        // Unverified developers can log in, see a banner and get a new link.
        let (dev, status) = login(&app, "ada@example.com", PASSWORD).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let html = app.get(&dev, "/dashboard").await.text().await.unwrap();
        assert!(html.contains("Resend verification email"), "banner shown");
        let res = app.post(&dev, "/verify-email/resend", &[("csrf", &csrf_from(&html))]).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let fresh = app.mailed_link("ada@example.com", "/verify-email?token=").await;
        assert_ne!(fresh, link);
        assert_eq!(app.confirm_link(&dev, &fresh).await.status(), StatusCode::SEE_OTHER);
        assert!(account(&app, "ada@example.com").await.unwrap().email_verified_at.is_some());
    }
}

#[tokio::test]
async fn password_reset_is_single_use_expires_and_ends_every_session() {
    for app in each("reset_flow").await {
        let first = app.developer("ada@example.com").await;
        let (second, _) = login(&app, "ada@example.com", PASSWORD).await;
        assert!(logged_in(&app, &first).await && logged_in(&app, &second).await);

        // Known and unknown emails get the same answer.
        let strip = |html: String, email: &str| {
            let html = if html.contains(r#"name="csrf""#) { html.replace(&csrf_from(&html), "CSRF") } else { html };
            html.replace(email, "EMAIL")
        };
        let mut answers = Vec::new();
        for email in ["ada@example.com", "nobody@example.com"] {
            let c = browser();
            let csrf = app.csrf(&c, "/reset-password").await;
            let res = app.post(&c, "/reset-password", &[("csrf", &csrf), ("email", email)]).await;
            answers.push((res.status(), strip(res.text().await.unwrap(), email)));
        }
        assert_eq!(answers[0], answers[1]);
        assert_eq!(answers[0].0, StatusCode::OK);
        assert!(app.store.emails_to("nobody@example.com").await.unwrap().is_empty());

        let link = app.mailed_link("ada@example.com", "/reset-password/confirm?token=").await;
        let token = link.split_once("token=").unwrap().1.to_owned();
        // A reset token is not a verification token.
        let c = browser();
        assert_eq!(app.get(&c, &format!("/verify-email?token={token}")).await.status(), StatusCode::BAD_REQUEST);

        let page = app.get(&c, &link).await;
        assert_eq!(page.status(), StatusCode::OK);
        let csrf = csrf_from(&page.text().await.unwrap());
        // A password the rules refuse re-renders the form and keeps the token usable.
        let res = app.post(&c, "/reset-password/confirm", &[("csrf", &csrf), ("token", &token), ("password", "short")]).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(res.text().await.unwrap().contains("Use at least 12 characters"));

        let res = app.post(&c, "/reset-password/confirm", &[("csrf", &csrf), ("token", &token), ("password", NEW_PASSWORD)]).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&res), "/login");
        assert!(app.get(&c, "/login").await.text().await.unwrap().contains("Your password was changed"));
        assert!(!logged_in(&app, &first).await, "every session ended");
        assert!(!logged_in(&app, &second).await, "every session ended");
        assert_eq!(login(&app, "ada@example.com", PASSWORD).await.1, StatusCode::UNAUTHORIZED, "old password");
        assert_eq!(login(&app, "ada@example.com", NEW_PASSWORD).await.1, StatusCode::SEE_OTHER, "new password");

        // Single use.
        let res =
            app.post(&c, "/reset-password/confirm", &[("csrf", &csrf), ("token", &token), ("password", "yet another password")]).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert_eq!(login(&app, "ada@example.com", NEW_PASSWORD).await.1, StatusCode::SEE_OTHER);

        // Expires after an hour.
        let csrf = app.csrf(&c, "/reset-password").await;
        app.post(&c, "/reset-password", &[("csrf", &csrf), ("email", "ada@example.com")]).await;
        let late = app.mailed_link("ada@example.com", "/reset-password/confirm?token=").await;
        assert_ne!(late, link);
        advance(&app, 3600);
        assert_eq!(app.get(&c, &late).await.status(), StatusCode::BAD_REQUEST);
        let late_token = late.split_once("token=").unwrap().1;
        let res =
            app.post(&c, "/reset-password/confirm", &[("csrf", &csrf), ("token", late_token), ("password", "yet another password")]).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert_eq!(login(&app, "ada@example.com", NEW_PASSWORD).await.1, StatusCode::SEE_OTHER);
    }
}

#[tokio::test]
async fn changing_the_password_needs_the_current_one_and_ends_only_the_other_sessions() {
    for app in each("change_password").await {
        let this = app.developer("ada@example.com").await;
        let (other, _) = login(&app, "ada@example.com", PASSWORD).await;

        let res =
            settings_post(&app, &this, "/account/password", &[("current_password", "not my password"), ("new_password", NEW_PASSWORD)])
                .await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(res.text().await.unwrap().contains("Your current password is incorrect."));
        assert!(logged_in(&app, &other).await, "nothing changed");
        assert_eq!(login(&app, "ada@example.com", PASSWORD).await.1, StatusCode::SEE_OTHER);

        let res = settings_post(&app, &this, "/account/password", &[("current_password", PASSWORD), ("new_password", NEW_PASSWORD)]).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&res), "/account");
        assert!(logged_in(&app, &this).await, "this session stays");
        assert!(!logged_in(&app, &other).await, "the other session ended");
        assert_eq!(login(&app, "ada@example.com", PASSWORD).await.1, StatusCode::UNAUTHORIZED);
        assert_eq!(login(&app, "ada@example.com", NEW_PASSWORD).await.1, StatusCode::SEE_OTHER);
        let (_, hash) = app.store.find_account_by_email(&Email::parse("ada@example.com").unwrap()).await.unwrap().unwrap();
        assert!(hash.starts_with("$argon2id$"));
    }
}

#[tokio::test]
async fn changing_the_email_needs_the_password_and_applies_only_when_confirmed() {
    for app in each("change_email").await {
        let dev = app.developer("ada@example.com").await;

        let res = settings_post(&app, &dev, "/account/email", &[("password", "not my password"), ("new_email", "ada@new.example")]).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(app.store.emails_to("ada@new.example").await.unwrap().is_empty(), "nothing mailed");

        let res = settings_post(&app, &dev, "/account/email", &[("password", PASSWORD), ("new_email", "Ada@New.example")]).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert!(account(&app, "ada@example.com").await.is_some(), "not changed before confirmation");
        assert!(account(&app, "ada@new.example").await.is_none());
        let notice = app.store.emails_to("ada@example.com").await.unwrap();
        assert_eq!(notice.last().unwrap().kind, "change_email_notice", "the old address is told");

        let link = app.mailed_link("ada@new.example", "/confirm-email?token=").await;
        let res = app.confirm_link(&dev, &link).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&res), "/account");
        assert!(account(&app, "ada@example.com").await.is_none());
        let moved = account(&app, "ada@new.example").await.expect("moved");
        assert!(moved.email_verified_at.is_some());
        assert!(app.get(&dev, "/account").await.text().await.unwrap().contains("ada@new.example"));
        assert_eq!(login(&app, "ada@new.example", PASSWORD).await.1, StatusCode::SEE_OTHER);
        assert_eq!(login(&app, "ada@example.com", PASSWORD).await.1, StatusCode::UNAUTHORIZED);
        // Used once.
        assert_eq!(app.get(&dev, &link).await.status(), StatusCode::BAD_REQUEST);

        // Uniqueness is checked again at confirmation: an address taken in between is refused.
        let res = settings_post(&app, &dev, "/account/email", &[("password", PASSWORD), ("new_email", "bob@example.com")]).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let link = app.mailed_link("bob@example.com", "/confirm-email?token=").await;
        app.developer("bob@example.com").await;
        let res = app.confirm_link(&dev, &link).await;
        assert_eq!(res.status(), StatusCode::CONFLICT);
        assert_eq!(account(&app, "ada@new.example").await.map(|a| a.id), Some(moved.id), "unchanged");
    }
}

#[tokio::test]
async fn deleting_the_account_revokes_its_keys_and_ends_login() {
    for app in each("delete_account").await {
        seed_api(&app.store, "books", "Books", Visibility::Public).await;
        let dev = app.developer("ada@example.com").await;
        let id = account(&app, "ada@example.com").await.unwrap().id;
        let app_id = app.create_app(&dev, "Prod").await;
        let html = app.create_key(&dev, app_id, "server").await.text().await.unwrap();
        let start = html.find(r#"id="new-api-key">"#).expect("key shown") + r#"id="new-api-key">"#.len();
        let secret = html[start..start + html[start..].find('<').unwrap()].trim().to_owned();
        let hash = ApiKey::parse(&secret).unwrap().hash();
        let auth = app.store.key_auth(&hash).await.unwrap().unwrap();
        assert_eq!((auth.status, auth.account_status), (KeyStatus::Active, AccountStatus::Active));
        let (other, _) = login(&app, "ada@example.com", PASSWORD).await;

        let res = settings_post(&app, &dev, "/account/delete", &[("password", "not my password")]).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(app.store.key_auth(&hash).await.unwrap().unwrap().status, KeyStatus::Active, "nothing changed");

        // The new app is on the public default plan, billed by Turnpike's own ledger.
        let subs = app.store.account_subscriptions(id).await.unwrap();
        assert_eq!(subs.len(), 1, "{subs:?}");
        assert_eq!(subs[0].status, "active");

        let before = app.store.latest_change().await.unwrap();
        let res = settings_post(&app, &dev, "/account/delete", &[("password", PASSWORD)]).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&res), "/");

        // Its subscriptions end now; the period's final invoice settles the usage so far.
        let subs = app.store.account_subscriptions(id).await.unwrap();
        assert!(subs.iter().all(|s| s.status == "canceled" && s.canceled_at == Some(NOW)), "{subs:?}");

        // Gateways refuse the key: revoked, owner suspended, and the change log says so.
        let auth = app.store.key_auth(&hash).await.unwrap().unwrap();
        assert_eq!((auth.status, auth.account_status), (KeyStatus::Revoked, AccountStatus::Suspended));
        let changes = app.store.changes_since(before, 100).await.unwrap();
        assert!(changes.iter().any(|c| c.kind == ChangeKind::Key && c.ref_id == hash.to_hex()), "{changes:?}");
        assert!(changes.iter().any(|c| c.kind == ChangeKind::Account && c.ref_id == id.to_string()));

        // Soft-deleted: the row stays for the books, anonymised.
        let gone = app.store.get_account(id).await.unwrap();
        assert_eq!(gone.status, AccountStatus::Suspended);
        assert!(!gone.email.contains("ada"), "{}", gone.email);
        assert!(account(&app, "ada@example.com").await.is_none());
        assert_eq!(app.store.list_apps(id).await.unwrap().len(), 1, "apps kept for usage and invoices");

        assert!(!logged_in(&app, &dev).await && !logged_in(&app, &other).await, "every session ended");
        assert_eq!(login(&app, "ada@example.com", PASSWORD).await.1, StatusCode::UNAUTHORIZED);
        // The address is free again.
        app.developer("ada@example.com").await;
    }
}

/// A subscription Stripe bills must be canceled there first: deleting the account anyway would
/// leave Stripe charging a deleted account. The refusal changes nothing.
#[tokio::test]
async fn an_account_with_a_stripe_billed_subscription_cannot_be_deleted_until_it_is_canceled() {
    for app in each("delete_account_stripe").await {
        seed_api(&app.store, "books", "Books", Visibility::Public).await;
        let dev = app.developer("grace@example.com").await;
        let id = account(&app, "grace@example.com").await.unwrap().id;
        let app_id = app.create_app(&dev, "Paid").await;
        let sub = app.store.account_subscriptions(id).await.unwrap().remove(0);
        let action = turnpike_store::StripeAction::Activate {
            app_id,
            plan_id: sub.plan_id,
            stripe_subscription_id: Some("sub_paid".into()),
            customer_id: Some("cus_paid".into()),
        };
        app.store.apply_stripe_event("evt_paid", "checkout.session.completed", NOW, &action, NOW).await.unwrap();

        let res = settings_post(&app, &dev, "/account/delete", &[("password", PASSWORD)]).await;
        assert_eq!(res.status(), StatusCode::CONFLICT);
        assert!(res.text().await.unwrap().contains("billed through Stripe"));
        let acc = app.store.get_account(id).await.unwrap();
        assert_eq!((acc.status, acc.email.as_str()), (AccountStatus::Active, "grace@example.com"), "nothing changed");
        let subs = app.store.account_subscriptions(id).await.unwrap();
        assert!(subs.iter().all(|s| s.status == "active"), "{subs:?}");
        assert!(logged_in(&app, &dev).await);
    }
}

#[tokio::test]
async fn the_sixth_failed_login_is_throttled_even_with_the_right_password_until_the_window_passes() {
    for app in each("login_throttle").await {
        app.developer("ada@example.com").await;
        for i in 0..5 {
            assert_eq!(login(&app, "ada@example.com", "wrong password number").await.1, StatusCode::UNAUTHORIZED, "attempt {i}");
        }
        let client = browser();
        let csrf = app.csrf(&client, "/login").await;
        let res = app.post(&client, "/login", &[("csrf", &csrf), ("email", "Ada@Example.com"), ("password", PASSWORD)]).await;
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry: i64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!(retry > 0 && retry <= 15 * 60, "{retry}");
        assert!(res.text().await.unwrap().contains("Too many attempts"));
        assert!(!logged_in(&app, &client).await);

        // Other accounts from elsewhere are not affected by ada's counter.
        app.developer("bob@example.com").await;
        assert_eq!(login(&app, "bob@example.com", PASSWORD).await.1, StatusCode::SEE_OTHER);

        advance(&app, 15 * 60);
        assert_eq!(login(&app, "ada@example.com", PASSWORD).await.1, StatusCode::SEE_OTHER, "window passed");
    }
}

#[tokio::test]
async fn failed_logins_are_throttled_per_ip_across_accounts() {
    for app in each("login_throttle_ip").await {
        app.developer("ada@example.com").await;
        for i in 0..20 {
            let email = format!("guess{i}@example.com");
            assert_eq!(login(&app, &email, "wrong password number").await.1, StatusCode::UNAUTHORIZED, "attempt {i}");
        }
        assert_eq!(login(&app, "ada@example.com", PASSWORD).await.1, StatusCode::TOO_MANY_REQUESTS);
        advance(&app, 15 * 60);
        assert_eq!(login(&app, "ada@example.com", PASSWORD).await.1, StatusCode::SEE_OTHER);
    }
}

#[tokio::test]
async fn signups_and_reset_requests_are_throttled_per_email() {
    for app in each("signup_throttle").await {
        for _ in 0..5 {
            assert_eq!(app.signup(&browser(), "ada@example.com", PASSWORD).await.status(), StatusCode::OK);
        }
        let res = app.signup(&browser(), "ada@example.com", PASSWORD).await;
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(res.headers().contains_key("retry-after"));
        let c = browser();
        for i in 0..6 {
            let csrf = app.csrf(&c, "/reset-password").await;
            let res = app.post(&c, "/reset-password", &[("csrf", &csrf), ("email", "ada@example.com")]).await;
            let want = if i < 5 { StatusCode::OK } else { StatusCode::TOO_MANY_REQUESTS };
            assert_eq!(res.status(), want, "reset request {i}");
        }
        assert_eq!(app.store.emails_to("ada@example.com").await.unwrap().iter().filter(|m| m.kind == "reset_password").count(), 5);
    }
}

#[tokio::test]
async fn sessions_end_after_the_idle_timeout_and_the_absolute_lifetime() {
    for app in each("session_lifetime").await {
        let idle = app.developer("ada@example.com").await;
        let busy = app.developer("bob@example.com").await;
        // Bob uses the portal every 6 days; Ada does not.
        for _ in 0..4 {
            advance(&app, 6 * 24 * 3600);
            assert!(logged_in(&app, &busy).await, "active sessions stay within 30 days");
        }
        assert!(!logged_in(&app, &idle).await, "idle for over 7 days");
        advance(&app, 6 * 24 * 3600); // 30 days after login
        assert!(!logged_in(&app, &busy).await, "30 days after login, however busy");
        assert_eq!(login(&app, "bob@example.com", PASSWORD).await.1, StatusCode::SEE_OTHER);
    }
}

#[tokio::test]
async fn role_plan_quota_and_status_smuggled_into_forms_are_ignored() {
    for app in each("smuggled_fields").await {
        let client = browser();
        let csrf = app.csrf(&client, "/signup").await;
        let res = app
            .post(
                &client,
                "/signup",
                &[
                    ("csrf", &csrf),
                    ("email", "eve@example.com"),
                    ("password", PASSWORD),
                    ("role", "admin"),
                    ("plan", "enterprise"),
                    ("quota", "999999999"),
                    ("status", "active"),
                    ("email_verified_at", "1"),
                ],
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        let eve = account(&app, "eve@example.com").await.unwrap();
        assert_eq!(eve.role, Role::Developer);
        assert_eq!(eve.email_verified_at, None);

        let dev = app.developer("mallory@example.com").await;
        let res = settings_post(
            &app,
            &dev,
            "/account/password",
            &[("current_password", PASSWORD), ("new_password", NEW_PASSWORD), ("role", "admin"), ("quota", "1"), ("status", "active")],
        )
        .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert_eq!(account(&app, "mallory@example.com").await.unwrap().role, Role::Developer);
        assert_eq!(app.store.count_admins().await.unwrap(), 0);
    }
}
