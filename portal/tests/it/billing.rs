//! Billing through the portal: ownership of invoices, plan changes and their proration,
//! exactly-once finalization with gapless numbers, the admin pricing form.
//!
//! The portal's clock is stopped at `NOW` (2026-05-28 20:26:40 UTC); apps created now get the
//! billing anchor 20:00:00, so the first period is 2026-05-28 20:00 → 2026-06-28 20:00
//! (31 days = 2,678,400 s) and `NOW` is 1,600 s into it. Expected amounts are worked out by
//! hand in the comments, not by calling the engine.

use reqwest::{Client, StatusCode};
use turnpike_ledger as ledger;
use turnpike_store::{NewPlanPrice, Role, Store, Visibility};

use crate::helpers::{browser, each, location, seed_api, unescape, TestApp, NOW};

const PERIOD_START: i64 = NOW - 1_600;
const PERIOD_END: i64 = PERIOD_START + 2_678_400;

async fn price(store: &Store, plan_id: i64, pricing: &str, base_fee: i64) {
    store
        .set_plan_price(
            plan_id,
            &NewPlanPrice {
                currency: "usd".into(),
                pricing: pricing.into(),
                trial_days: 0,
                billable: "admitted".into(),
                base_fee,
                monthly_quota: None,
            },
            NOW - 86_400,
        )
        .await
        .unwrap();
}

/// An API "echo" with Free (default), Basic ($10 flat) and Pro ($49 incl. 1,000, then $0.50/1,000).
async fn plans(store: &Store) -> (i64, i64, i64, i64) {
    let (api, free) = seed_api(store, "echo", "Echo", Visibility::Public).await;
    let mk =
        |slug: &str| turnpike_store::NewPlan { slug: slug.into(), name: slug.into(), is_default: false, ..turnpike_testkit::free_plan() };
    let basic = store.create_plan(api, &turnpike_store::NewPlan { name: "Basic".into(), ..mk("basic") }, NOW).await.unwrap().id;
    let pro = store.create_plan(api, &turnpike_store::NewPlan { name: "Pro".into(), ..mk("pro") }, NOW).await.unwrap().id;
    price(store, basic, r#"{"model":"flat","amount":1000}"#, 1000).await;
    price(store, pro, r#"{"model":"quota","base_fee":4900,"included":1000,"overage":{"kind":"metered","unit_price":50,"per":1000}}"#, 4900)
        .await;
    (api, free, basic, pro)
}

async fn sub_of(app: &TestApp, app_id: i64) -> turnpike_store::Subscription {
    app.store.list_subscriptions(app_id).await.unwrap().remove(0)
}

async fn post_form(app: &TestApp, client: &Client, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
    let csrf = app.csrf(client, "/billing").await;
    let mut f: Vec<(&str, &str)> = vec![("csrf", &csrf)];
    f.extend_from_slice(form);
    client.post(app.url(path)).form(&f).send().await.unwrap()
}

async fn admin(app: &TestApp) -> Client {
    app.login_new("root@example.com", Role::Admin).await.0
}

#[tokio::test]
async fn another_developers_invoice_is_404_and_not_listed() {
    for app in each("billing_invoice_isolation").await {
        let (_, _, _, pro) = plans(&app.store).await;
        let ada = app.developer("ada@example.com").await;
        let ada_app = app.create_app(&ada, "Ada's app").await;
        let sub = sub_of(&app, ada_app).await;
        ledger::change_plan(&app.store, sub.id, pro, NOW).await.unwrap();
        let done = ledger::finalize_due(&app.store, PERIOD_END).await.unwrap();
        assert_eq!(done.created.len(), 1);
        let id = done.created[0];

        let res = app.get(&ada, &format!("/billing/invoices/{id}")).await;
        assert_eq!(res.status(), StatusCode::OK);
        let html = unescape(&res.text().await.unwrap());
        assert!(html.contains("TP-000001"), "{html}");
        // $49.00 base fee − $0.02 (Pro's fee for the 1,600 s before the upgrade: 4900 × 1600 / 2678400 = 2.93,
        // a credit, so rounded down to 2: the ledger never credits a fraction it did not charge).
        assert!(html.contains(r#"id="invoice-total"><strong>$48.98</strong>"#), "{html}");
        assert!(html.contains("@media print") || html.contains("/static/billing.css"), "print stylesheet linked");

        let bob = app.developer("bob@example.com").await;
        app.create_app(&bob, "Bob's app").await;
        for path in [format!("/billing/invoices/{id}"), "/billing/invoices/999999".into(), "/billing/invoices/abc".into()] {
            assert_eq!(app.get(&bob, &path).await.status(), StatusCode::NOT_FOUND, "{path}");
        }
        let page = app.get(&bob, "/billing").await.text().await.unwrap();
        assert!(!page.contains("TP-000001"));
        // Bob cannot change or cancel Ada's subscription either, and nothing changes.
        let before = app.store.latest_change().await.unwrap();
        let r = post_form(&app, &bob, &format!("/billing/subscriptions/{}/plan", sub.id), &[("plan_id", "1")]).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let r = post_form(&app, &bob, &format!("/billing/subscriptions/{}/cancel", sub.id), &[("when", "now")]).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(app.store.latest_change().await.unwrap(), before);
        assert_eq!(sub_of(&app, ada_app).await.status, "active");
        // Anonymous visitors are sent to log in.
        let r = app.get(&browser(), &format!("/billing/invoices/{id}")).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&r), "/login");
    }
}

#[tokio::test]
async fn upgrade_is_immediate_and_prorated_downgrade_waits_cancel_now_or_at_period_end() {
    for app in each("billing_plan_changes").await {
        let (_, free, basic, pro) = plans(&app.store).await;
        let dev = app.developer("ada@example.com").await;
        let a1 = app.create_app(&dev, "one").await;
        let a2 = app.create_app(&dev, "two").await;
        let a3 = app.create_app(&dev, "three").await;
        let s1 = sub_of(&app, a1).await;
        assert_eq!((s1.plan_id, s1.billing_anchor), (free, PERIOD_START));

        // Upgrade Free → Pro: in effect now, and gateways are told (change log).
        let before = app.store.latest_change().await.unwrap();
        let r = post_form(&app, &dev, &format!("/billing/subscriptions/{}/plan", s1.id), &[("plan_id", &pro.to_string())]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(sub_of(&app, a1).await.plan_id, pro);
        assert!(app.store.latest_change().await.unwrap() > before, "a change was recorded");
        let page = unescape(&app.get(&dev, "/billing").await.text().await.unwrap());
        assert!(page.contains("You are now on Pro"), "flash");
        // Draft so far: $49.00 − $0.02 = $48.98 (the credit of 2.93 cents rounds down).
        assert!(page.contains(&format!(r#"id="sub-{}-total"><strong>$48.98</strong>"#, s1.id)), "{page}");

        // Downgrade Pro → Basic: waits for the period end.
        let r = post_form(&app, &dev, &format!("/billing/subscriptions/{}/plan", s1.id), &[("plan_id", &basic.to_string())]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let s = sub_of(&app, a1).await;
        assert_eq!((s.plan_id, s.pending_plan_id), (pro, Some(basic)));
        let page = unescape(&app.get(&dev, "/billing").await.text().await.unwrap());
        assert!(page.contains("Switches to Basic on 2026-06-28 20:00 UTC"), "{page}");
        // Choosing the current plan again removes the scheduled change; then schedule it again.
        post_form(&app, &dev, &format!("/billing/subscriptions/{}/plan", s1.id), &[("plan_id", &pro.to_string())]).await;
        assert_eq!(sub_of(&app, a1).await.pending_plan_id, None);
        post_form(&app, &dev, &format!("/billing/subscriptions/{}/plan", s1.id), &[("plan_id", &basic.to_string())]).await;
        assert_eq!(sub_of(&app, a1).await.pending_plan_id, Some(basic));
        // A plan of another API is refused and changes nothing.
        let (_, other) = seed_api(&app.store, "other", "Other", Visibility::Public).await;
        let r = post_form(&app, &dev, &format!("/billing/subscriptions/{}/plan", s1.id), &[("plan_id", &other.to_string())]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let s = sub_of(&app, a1).await;
        assert_eq!((s.plan_id, s.pending_plan_id), (pro, Some(basic)));

        // App two: Free → Basic now (Basic's fee for the 1,600 s before: 1000 × 1600 / 2678400 = 0.597,
        // a credit, rounded down to 0), then cancel now: credit of the unused part,
        // 1000 × 2676800 / 2678400 = 999.40 → 999. Period total $0.01: credits round down, so the
        // fractions of the two credits (0.597 + 0.40 cents) are not given back.
        let s2 = sub_of(&app, a2).await;
        post_form(&app, &dev, &format!("/billing/subscriptions/{}/plan", s2.id), &[("plan_id", &basic.to_string())]).await;
        assert_eq!(sub_of(&app, a2).await.plan_id, basic);
        let r = post_form(&app, &dev, &format!("/billing/subscriptions/{}/cancel", s2.id), &[("when", "now")]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let s = sub_of(&app, a2).await;
        assert_eq!((s.status.as_str(), s.canceled_at), ("canceled", Some(NOW)));
        let ents = app.store.entitlements(a2).await.unwrap();
        assert_eq!(ents[0].status, "canceled", "the gateway sees the cancellation");

        // App three: cancel at period end: still active now.
        let s3 = sub_of(&app, a3).await;
        post_form(&app, &dev, &format!("/billing/subscriptions/{}/cancel", s3.id), &[("when", "period_end")]).await;
        let s = sub_of(&app, a3).await;
        assert!(s.cancel_at_period_end && s.status == "active");
        // A bad `when` changes nothing.
        post_form(&app, &dev, &format!("/billing/subscriptions/{}/cancel", s1.id), &[("when", "later")]).await;
        assert_eq!(sub_of(&app, a1).await.status, "active");

        // Period end: one invoice each, then the scheduled changes apply.
        let done = ledger::finalize_due(&app.store, PERIOD_END).await.unwrap();
        assert_eq!(done.created.len(), 3);
        let totals: Vec<(i64, i64, String)> = {
            let mut v = Vec::new();
            for id in &done.created {
                let i = app.store.get_invoice(*id).await.unwrap();
                v.push((i.subscription_id, i.total_minor, i.status));
            }
            v
        };
        assert!(totals.contains(&(s1.id, 4_898, "open".into())), "{totals:?}");
        assert!(totals.contains(&(s2.id, 1, "open".into())), "{totals:?}");
        assert!(totals.contains(&(s3.id, 0, "paid".into())), "{totals:?}");
        let s = sub_of(&app, a1).await;
        assert_eq!((s.plan_id, s.pending_plan_id), (basic, None), "downgrade applied at period end");
        let s = sub_of(&app, a3).await;
        assert_eq!((s.status.as_str(), s.canceled_at), ("canceled", Some(PERIOD_END)));

        // Two months later only subscription one is still invoiced (Basic, $10.00 each).
        let done = ledger::finalize_due(&app.store, PERIOD_END + 62 * 86_400).await.unwrap();
        let subs: Vec<i64> = {
            let mut v = Vec::new();
            for id in &done.created {
                let i = app.store.get_invoice(*id).await.unwrap();
                assert_eq!(i.total_minor, 1_000);
                v.push(i.subscription_id);
            }
            v
        };
        assert_eq!(subs, vec![s1.id, s1.id]);
    }
}

#[tokio::test]
async fn finalizing_twice_or_concurrently_yields_one_invoice_per_period_numbered_without_gaps() {
    for app in each("billing_finalize_once").await {
        let (_, _, _, pro) = plans(&app.store).await;
        for n in 0..4 {
            let dev = app.developer(&format!("dev{n}@example.com")).await;
            let a = app.create_app(&dev, "app").await;
            ledger::change_plan(&app.store, sub_of(&app, a).await.id, pro, NOW).await.unwrap();
        }
        // Four workers at once, then two more runs, two periods later.
        let later = PERIOD_END + 31 * 86_400;
        let s = app.store.clone();
        let runs = futures_join((0..4).map(|_| {
            let s = s.clone();
            tokio::spawn(async move { ledger::finalize_due(&s, later).await.unwrap() })
        }))
        .await;
        let created: usize = runs.iter().map(|r| r.created.len()).sum();
        assert_eq!(created, 8, "4 subscriptions × 2 periods");
        for _ in 0..2 {
            let again = ledger::finalize_due(&app.store, later).await.unwrap();
            assert!(again.created.is_empty());
        }
        let mut numbers: Vec<String> = app.store.all_invoices().await.unwrap().into_iter().filter_map(|i| i.number).collect();
        numbers.sort();
        let expected: Vec<String> = (1..=8).map(|n| format!("TP-{n:06}")).collect();
        assert_eq!(numbers, expected);

        // The admin marks one paid; reports read zero drift.
        let root = admin(&app).await;
        let list = app.get(&root, "/admin/invoices").await.text().await.unwrap();
        assert!(list.contains("TP-000008"));
        let first = app.store.all_invoices().await.unwrap().into_iter().find(|i| i.number.as_deref() == Some("TP-000001")).unwrap();
        let csrf = app.csrf(&root, "/admin/invoices").await;
        let r = app.post(&root, &format!("/admin/invoices/{}/paid", first.id), &[("csrf", &csrf)]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let inv = app.store.get_invoice(first.id).await.unwrap();
        assert_eq!((inv.status.as_str(), inv.paid_at), ("paid", Some(NOW)));
        let report = app.get(&root, "/admin/reports").await.text().await.unwrap();
        assert!(report.contains(r#"id="drift-total">0<"#), "{report}");
        assert!(report.contains("<svg"), "chart rendered");
        let csv = app.get(&root, "/admin/reports/invoices.csv").await;
        assert!(csv.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
        assert_eq!(csv.text().await.unwrap().lines().count(), 9);
        // Developers may not see the admin pages.
        let dev = app.developer("eve@example.com").await;
        assert_eq!(app.get(&dev, "/admin/reports").await.status(), StatusCode::FORBIDDEN);
    }
}

async fn futures_join<T: Send + 'static>(tasks: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let handles: Vec<_> = tasks.collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn the_pricing_form_stores_exact_amounts_as_new_versions_and_rejects_bad_ones_changing_nothing() {
    for app in each("billing_pricing_form").await {
        let (_, free, _, _) = plans(&app.store).await;
        let root = admin(&app).await;
        let path = format!("/admin/plans/{free}/pricing");
        let page = app.get(&root, &path).await;
        assert_eq!(page.status(), StatusCode::OK);
        let csrf = crate::helpers::csrf_from(&page.text().await.unwrap());
        let before = app.store.latest_change().await.unwrap();
        let base = [("csrf", csrf.as_str()), ("currency", "usd"), ("model", "flat"), ("billable", "admitted_non_5xx"), ("trial_days", "0")];
        let bad: [(&[(&str, &str)], &str); 6] = [
            (&[("base_fee", "12.505")], "at most 2 decimals"),
            (&[("base_fee", "-1")], "cannot be negative"),
            (&[("base_fee", "12,50")], "not an amount"),
            (&[("base_fee", "$12")], "not an amount"),
            (&[("base_fee", "")], "Enter the base fee"),
            (&[("base_fee", "1"), ("currency", "dollars")], "three-letter currency"),
        ];
        for (fields, msg) in bad {
            let mut form: Vec<(&str, &str)> = base.to_vec();
            form.retain(|(k, _)| !fields.iter().any(|(fk, _)| fk == k));
            form.extend_from_slice(fields);
            let r = app.post(&root, &path, &form).await;
            assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{fields:?}");
            let html = unescape(&r.text().await.unwrap());
            assert!(html.contains(msg), "{fields:?}: {html}");
            assert!(html.contains(&format!(r#"value="{}""#, fields[0].1)), "input kept");
        }
        let jpy = [("csrf", csrf.as_str()), ("currency", "jpy"), ("model", "flat"), ("base_fee", "500.5"), ("billable", "admitted")];
        assert_eq!(app.post(&root, &path, &jpy).await.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let tiers =
            [("csrf", csrf.as_str()), ("currency", "usd"), ("model", "graduated"), ("tiers", "100 1\n50 2\n* 1"), ("billable", "admitted")];
        assert_eq!(app.post(&root, &path, &tiers).await.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(app.store.plan_price_history(free).await.unwrap().is_empty(), "nothing stored");
        assert_eq!(app.store.latest_change().await.unwrap(), before, "no change recorded");

        // "12.50" is exactly 1250 minor units; saving twice makes versions 1 and 2.
        let mut good = base.to_vec();
        good.push(("base_fee", "12.50"));
        let r = app.post(&root, &path, &good).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let quota = [
            ("csrf", csrf.as_str()),
            ("currency", "usd"),
            ("model", "quota"),
            ("base_fee", "0"),
            ("included", "500"),
            ("overage", "hard_cap"),
            ("billable", "admitted"),
        ];
        assert_eq!(app.post(&root, &path, &quota).await.status(), StatusCode::SEE_OTHER);
        let history = app.store.plan_price_history(free).await.unwrap();
        assert_eq!(history.len(), 2);
        assert_eq!((history[1].version, history[1].pricing.as_str()), (1, r#"{"model":"flat","amount":1250}"#));
        assert_eq!(history[0].version, 2);
        assert_eq!(app.store.get_plan(free).await.unwrap().monthly_quota, Some(500), "hard cap becomes the gateway quota");
        assert!(app.store.latest_change().await.unwrap() > before);
        let dev = app.developer("ada@example.com").await;
        assert_eq!(app.get(&dev, &path).await.status(), StatusCode::FORBIDDEN);
    }
}

#[tokio::test]
async fn a_free_trial_credits_the_base_fee_for_the_trial_seconds_in_the_period() {
    for app in each("billing_trial").await {
        let (api, _) = seed_api(&app.store, "echo", "Echo", Visibility::Public).await;
        let plan = turnpike_store::NewPlan { slug: "team".into(), name: "Team".into(), is_default: false, ..turnpike_testkit::free_plan() };
        let team = app.store.create_plan(api, &plan, NOW).await.unwrap().id;
        let price = NewPlanPrice {
            currency: "usd".into(),
            pricing: r#"{"model":"flat","amount":3100}"#.into(),
            trial_days: 10,
            billable: "admitted".into(),
            base_fee: 3100,
            monthly_quota: None,
        };
        app.store.set_plan_price(team, &price, NOW - 60).await.unwrap();
        let dev = app.developer("ada@example.com").await;
        let a = app.create_app(&dev, "app").await;
        let sub = sub_of(&app, a).await;
        ledger::change_plan(&app.store, sub.id, team, NOW).await.unwrap();
        ledger::finalize_due(&app.store, PERIOD_END).await.unwrap();
        let inv = app.store.all_invoices().await.unwrap().into_iter().find(|i| i.subscription_id == sub.id).unwrap();
        // The subscription started with the period; 10 trial days of a 31-day period:
        // $31.00 − $31.00 × 864,000 / 2,678,400 = $31.00 − $10.00, and the $31.00 base fee
        // switched to at 1,600 s in: −3100 × 1600 / 2678400 = −1.85, a credit, rounded down to −1.
        // Total $20.99.
        let lines: Vec<(String, i64)> =
            app.store.invoice_lines(inv.id).await.unwrap().into_iter().map(|l| (l.kind, l.amount_minor)).collect();
        assert_eq!(lines, vec![("fee".to_owned(), 3100), ("adjustment".to_owned(), -1), ("adjustment".to_owned(), -1000)]);
        assert_eq!(inv.total_minor, 2_099);
    }
}

/// What a developer reads about a plan comes from the limits the gateway enforces: a flat fee
/// with a monthly quota is not "unlimited".
#[tokio::test]
async fn plan_labels_state_the_enforced_quota_not_unlimited() {
    for app in each("billing_plan_words").await {
        let (_, _, basic, _) = plans(&app.store).await;
        let quota = app.store.get_plan(basic).await.unwrap().monthly_quota.expect("Basic has a quota");
        let dev = app.developer("words@example.com").await;
        let a = app.create_app(&dev, "one").await;
        let s = sub_of(&app, a).await;
        let r = post_form(&app, &dev, &format!("/billing/subscriptions/{}/plan", s.id), &[("plan_id", &basic.to_string())]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let page = unescape(&app.get(&dev, "/billing").await.text().await.unwrap());
        assert!(!page.to_lowercase().contains("unlimited"), "a quota'd plan is never called unlimited: {page}");
        let words = format!("$10.00/month · {} requests/month", turnpike_portal::format::count(quota));
        assert!(page.contains(&words), "the enforced quota ({words}) is stated");
    }
}

/// Mid-month, before any period has ended, the revenue page shows the periods in progress and
/// says plainly that no invoice is final yet (no empty tables or blank charts).
#[tokio::test]
async fn the_revenue_page_shows_the_periods_in_progress_before_any_invoice() {
    for app in each("billing_so_far").await {
        let (_, _, _, pro) = plans(&app.store).await;
        let dev = app.developer("sofar@example.com").await;
        let a = app.create_app(&dev, "one").await;
        let s = sub_of(&app, a).await;
        let r = post_form(&app, &dev, &format!("/billing/subscriptions/{}/plan", s.id), &[("plan_id", &pro.to_string())]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let admin = admin(&app).await;
        let page = unescape(&app.get(&admin, "/admin/reports").await.text().await.unwrap());
        assert!(page.contains("id=\"no-invoices\""), "says no invoice is final yet");
        let so_far = page.split("id=\"so-far\"").nth(1).and_then(|s| s.split("</section>").next()).unwrap_or_default().to_owned();
        let now = turnpike_store::clock::Clock::now(&*app.clock);
        let draft = turnpike_ledger::draft(&app.store, &sub_of(&app, a).await, now).await.unwrap();
        let drafted = turnpike_billing::Money::from_stored(draft.bill.total, "usd").format();
        assert!(draft.bill.total > 0 && so_far.contains("USD") && so_far.contains(&drafted), "the draft ({drafted}) is shown: {so_far}");
    }
}
