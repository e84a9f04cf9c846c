//! What people read and download: amounts in currencies with three decimals (KWD) and none (JPY)
//! on the billing pages and in the CSV exports, and formula injection defused in every CSV
//! export. Expected strings are written out by hand, not produced by the formatter under test.

use reqwest::{Client, StatusCode};
use turnpike_ledger as ledger;
use turnpike_store::clock::hour_start;
use turnpike_store::domain::ApiKey;
use turnpike_store::{NewPlan, NewPlanPrice, Role, UsageRow, Visibility};

use crate::helpers::{each, element_text, seed_api, unescape, TestApp, NOW};

/// The first period of an app created at `NOW`: 2026-05-28 20:00 for 31 days.
const PERIOD_START: i64 = NOW - 1_600;
const PERIOD_END: i64 = PERIOD_START + 2_678_400;

async fn admin(app: &TestApp) -> Client {
    app.login_new("root@example.com", Role::Admin).await.0
}

/// A flat-priced plan `name` of `api` in `currency`.
async fn flat_plan(app: &TestApp, api: i64, slug: &str, name: &str, currency: &str, amount: i64) -> i64 {
    let plan = NewPlan { slug: slug.into(), name: name.into(), is_default: false, ..turnpike_testkit::free_plan() };
    let id = app.store.create_plan(api, &plan, NOW).await.unwrap().id;
    let price = NewPlanPrice {
        currency: currency.into(),
        pricing: format!(r#"{{"model":"flat","amount":{amount}}}"#),
        trial_days: 0,
        billable: "admitted".into(),
        base_fee: amount,
        monthly_quota: None,
    };
    app.store.set_plan_price(id, &price, NOW - 86_400).await.unwrap();
    id
}

/// Minimal RFC 4180 reader: rows of unquoted cells.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut cell)),
            (false, '\r') if chars.peek() == Some(&'\n') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => cell.push(c),
        }
    }
    assert!(cell.is_empty() && row.is_empty() && !quoted, "CSV ends with a line break: {text:?}");
    rows
}

#[tokio::test]
async fn kwd_and_jpy_amounts_show_with_their_own_decimals_on_pages_and_in_csv() {
    for app in each("exports_kwd_jpy").await {
        let (api, _) = seed_api(&app.store, "echo", "Echo", Visibility::Public).await;
        let kwd = flat_plan(&app, api, "gulf", "Gulf", "kwd", 12_345).await;
        let jpy = flat_plan(&app, api, "tokyo", "Tokyo", "jpy", 500).await;
        let dev = app.developer("ada@example.com").await;
        let a_kwd = app.create_app(&dev, "Dinar app").await;
        let a_jpy = app.create_app(&dev, "Yen app").await;
        let s_kwd = app.store.list_subscriptions(a_kwd).await.unwrap().remove(0);
        let s_jpy = app.store.list_subscriptions(a_jpy).await.unwrap().remove(0);
        ledger::change_plan(&app.store, s_kwd.id, kwd, NOW).await.unwrap();
        ledger::change_plan(&app.store, s_jpy.id, jpy, NOW).await.unwrap();

        // The catalog: 12,345 fils is 12.345 KWD, not "123.45 KWD"; yen have no decimals.
        let catalog = unescape(&app.get(&dev, "/apis/echo").await.text().await.unwrap());
        assert!(catalog.contains("12.345 KWD/month"), "{catalog}");
        assert!(catalog.contains("¥500/month"), "{catalog}");

        // The draft: the base fee less the 1,600 s before the switch:
        // 12345 × 1600 / 2678400 = 7.37 → 7 fils, so 12.338 KWD; 500 × 1600 / 2678400 = 0.30 → ¥0.
        let page = unescape(&app.get(&dev, "/billing").await.text().await.unwrap());
        assert!(page.contains("12.345 KWD/month"), "{page}");
        assert!(page.contains("-0.007 KWD"), "{page}");
        assert!(page.contains(&format!(r#"id="sub-{}-total"><strong>12.338 KWD</strong>"#, s_kwd.id)), "{page}");
        assert!(page.contains(&format!(r#"id="sub-{}-total"><strong>¥500</strong>"#, s_jpy.id)), "{page}");
        assert!(!page.contains("123.38") && !page.contains("5.00 JPY") && !page.contains("¥5.00"), "{page}");

        // Invoices: the developer's page, the admin's list, the CSV (minor units and decimals).
        let done = ledger::finalize_due(&app.store, PERIOD_END).await.unwrap();
        assert_eq!(done.created.len(), 2);
        let inv_kwd = app.store.all_invoices().await.unwrap().into_iter().find(|i| i.subscription_id == s_kwd.id).unwrap();
        let html = unescape(&app.get(&dev, &format!("/billing/invoices/{}", inv_kwd.id)).await.text().await.unwrap());
        assert!(html.contains(r#"id="invoice-total"><strong>12.338 KWD</strong>"#), "{html}");
        let root = admin(&app).await;
        let list = unescape(&app.get(&root, "/admin/invoices").await.text().await.unwrap());
        assert!(list.contains("12.338 KWD") && list.contains("¥500"), "{list}");
        let report = unescape(&app.get(&root, "/admin/reports").await.text().await.unwrap());
        assert!(report.contains("12.338 KWD") && report.contains("¥500"), "{report}");

        let csv = parse_csv(&app.get(&root, "/admin/reports/invoices.csv").await.text().await.unwrap());
        let header = &csv[0];
        let col = |name: &str| header.iter().position(|h| h == name).unwrap_or_else(|| panic!("{name} in {header:?}"));
        let (cur, minor, total) = (col("currency"), col("total_minor"), col("total"));
        let mut amounts: Vec<(String, String, String)> =
            csv[1..].iter().map(|r| (r[cur].clone(), r[minor].clone(), r[total].clone())).collect();
        amounts.sort();
        assert_eq!(amounts, [("jpy".into(), "500".into(), "500".into()), ("kwd".into(), "12338".into(), "12.338".into())], "{csv:?}");
        let csv = parse_csv(&app.get(&root, "/admin/reports/revenue.csv").await.text().await.unwrap());
        let header = &csv[0];
        let col = |name: &str| header.iter().position(|h| h == name).unwrap_or_else(|| panic!("{name} in {header:?}"));
        let (cur, revenue) = (col("currency"), col("revenue"));
        let months: Vec<(String, String)> =
            csv[1..].iter().filter(|r| r[0] == "month").map(|r| (r[cur].clone(), r[revenue].clone())).collect();
        assert!(months.contains(&("kwd".into(), "12.338".into())), "{csv:?}");
        assert!(months.contains(&("jpy".into(), "500".into())), "{csv:?}");

        // The admin API's report: the same figures in minor units and as decimals, and the same CSV.
        let json: serde_json::Value = app.get(&root, "/api/v1/admin/reports/revenue").await.json().await.unwrap();
        let month = |c: &str| json["by_month"].as_array().unwrap().iter().find(|f| f["currency"] == c).cloned().unwrap();
        assert_eq!((month("kwd")["revenue_minor"].as_i64(), month("kwd")["revenue"].as_str()), (Some(12_338), Some("12.338")));
        assert_eq!((month("jpy")["revenue_minor"].as_i64(), month("jpy")["revenue"].as_str()), (Some(500), Some("500")));
        let console = app.get(&root, "/admin/reports/revenue.csv").await.text().await.unwrap();
        let api = app.get(&root, "/api/v1/admin/reports/revenue?format=csv").await.text().await.unwrap();
        assert_eq!(api, console);
    }
}

/// Cells a spreadsheet would run: `=`, `+`, `-`, `@`, tab or carriage return first.
fn is_formula(cell: &str) -> bool {
    cell.starts_with(['=', '+', '-', '@', '\t', '\r']) && cell.parse::<i64>().is_err()
}

#[tokio::test]
async fn every_csv_export_defuses_formulas() {
    for app in each("exports_formulas").await {
        let (api, _) = seed_api(&app.store, "echo", "+SUM(1;2)", Visibility::Public).await;
        let paid = flat_plan(&app, api, "paid", "-2+3", "usd", 1_000).await;
        let dev = app.developer("ada@example.com").await;
        let app_id = app.create_app(&dev, "=HYPERLINK(\"http://evil.example\")").await;
        let csrf = app.csrf(&dev, &format!("/apps/{app_id}")).await;
        let html = app.post(&dev, &format!("/apps/{app_id}/keys"), &[("csrf", &csrf), ("name", "@cmd|' /C calc'!A0")]).await;
        let key = ApiKey::parse(&element_text(&html.text().await.unwrap(), "new-api-key").expect("secret shown")).unwrap();
        let key_id = app.store.key_auth(&key.hash()).await.unwrap().unwrap().key_id;
        let sub = app.store.list_subscriptions(app_id).await.unwrap().remove(0);
        ledger::change_plan(&app.store, sub.id, paid, NOW).await.unwrap();
        let row = UsageRow { key_id, api_id: api, subscription_id: sub.id, hour: hour_start(NOW), admitted: 3, ..UsageRow::default() };
        app.store.upsert_usage("gw1", &[row], NOW).await.unwrap();
        ledger::finalize_due(&app.store, PERIOD_END).await.unwrap();
        let root = admin(&app).await;

        let exports = [
            (&dev, format!("/apps/{app_id}/usage.csv")),
            (&dev, "/dashboard/usage.csv".to_owned()),
            (&root, "/admin/reports/revenue.csv".to_owned()),
            (&root, "/admin/reports/invoices.csv".to_owned()),
            (&root, "/api/v1/admin/reports/revenue?format=csv".to_owned()),
        ];
        for (client, path) in exports {
            let res = app.get(client, &path).await;
            assert_eq!(res.status(), StatusCode::OK, "{path}");
            assert_eq!(res.headers()["content-type"], "text/csv; charset=utf-8", "{path}");
            let rows = parse_csv(&res.text().await.unwrap());
            assert!(rows.len() > 1, "{path}: data rows");
            let cells: Vec<&String> = rows.iter().flatten().collect();
            assert!(!cells.iter().any(|c| is_formula(c)), "{path}: {rows:?}");
            // The hostile names are there, as text.
            let defused = ["'=HYPERLINK(\"http://evil.example\")", "'@cmd|' /C calc'!A0", "'+SUM(1;2)", "'-2+3"];
            assert!(cells.iter().any(|c| defused.contains(&c.as_str())), "{path}: {rows:?}");
        }
    }
}
