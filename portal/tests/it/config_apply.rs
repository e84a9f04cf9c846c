//! Configuration as code through the library (`service::config`): export → apply on an empty
//! database → export is the same bytes; a second apply changes nothing (no audit or change-log
//! rows); the dry-run report line by line; `prune` removes exactly what the file lacks and
//! refuses what has billing history; invalid files are refused naming the place, changing
//! nothing. The committed JSON Schema is the one the types generate, and the shipped example
//! passes it and applies. (The binary's `apply`/`export` are tested in the root suite.)

use std::path::Path;

use turnpike_portal::service::config::{self, ConfigError, Options};
use turnpike_store::{AuditFilter, Store};

use crate::helpers::{each, seed_api, NOW};

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

async fn counts(store: &Store) -> (usize, i64) {
    (store.search_audit(&AuditFilter::default(), 0, 10_000).await.unwrap().rows.len(), store.latest_change().await.unwrap())
}

async fn plan_of(store: &Store, path: &Path, prune: bool) -> Result<config::Changes, ConfigError> {
    let loaded = config::load(path)?;
    config::plan(store, &loaded, Options { prune, actor: None }).await
}

fn invalid(r: Result<config::Changes, ConfigError>) -> String {
    match r {
        Err(ConfigError::Invalid(lines)) => lines.join("\n"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn export_to(store: &Store, dir: &Path) -> String {
    let (yaml, docs) = config::export(store).await.unwrap();
    for (rel, text) in docs {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    std::fs::write(dir.join("turnpike.yaml"), &yaml).unwrap();
    yaml
}

#[test]
fn the_committed_schema_is_the_generated_one() {
    let path = root().join("docs/turnpike-config.schema.json");
    let generated = config::json_schema();
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/turnpike-config.schema.json is out of date; regenerate it with\n\
         UPDATE_SNAPSHOTS=1 cargo test -p turnpike-portal --test it config_apply::the_committed_schema_is_the_generated_one"
    );
    // The shipped example follows it (every key is known: the file is read with unknown keys refused).
    let example = std::fs::read_to_string(root().join("examples/turnpike.yaml")).unwrap();
    assert!(example.starts_with("# yaml-language-server: $schema=../docs/turnpike-config.schema.json\n"));
    config::parse(&example).expect("the example is a valid file");
}

#[tokio::test]
async fn the_example_applies_then_exports_and_round_trips_byte_for_byte() {
    for app in each("config_round_trip").await {
        let store = &app.store;
        let changes = plan_of(store, &root().join("examples/turnpike.yaml"), false).await.unwrap();
        assert_eq!(
            changes.lines,
            [
                "create api payments",
                "create plan payments/free",
                "new price payments/free: usd {\"model\":\"quota\",\"base_fee\":0,\"included\":1000,\"overage\":{\"kind\":\"hard_cap\"}} trial_days=0 billable=admitted",
                "create plan payments/pro",
                "new price payments/pro: usd {\"model\":\"flat\",\"amount\":4900} trial_days=14 billable=admitted",
                "create api weather",
                "create plan weather/metered",
                "new price weather/metered: eur {\"model\":\"per_unit\",\"unit_price\":5,\"per\":1000} trial_days=0 billable=admitted_non_5xx",
            ]
        );
        // Planning wrote nothing.
        assert!(store.list_apis().await.unwrap().is_empty());
        config::apply(store, &changes, NOW).await.unwrap();
        let audits = counts(store).await;
        assert_eq!(audits.0, 8, "one audit row per change");

        // A second apply: no changes, nothing written (no audit row, no change-log row).
        let again = plan_of(store, &root().join("examples/turnpike.yaml"), false).await.unwrap();
        assert!(again.is_empty(), "{:?}", again.lines);
        assert_eq!(again.report(), "no changes\n");
        config::apply(store, &again, NOW + 1).await.unwrap();
        assert_eq!(counts(store).await, audits);

        // A file that leaves the price out cannot move a quota the stored price fixes (the limit
        // and what billing charges for would drift apart, and the export would not apply).
        let dir = tempfile::tempdir().unwrap();
        let example = std::fs::read_to_string(root().join("examples/turnpike.yaml")).unwrap();
        let free = example.find("      - slug: free").unwrap();
        let price = free + example[free..].find("        price:").unwrap();
        let end = price + example[price..].find("      - slug: pro").unwrap();
        let edited = format!("{}{}", &example[..price], &example[end..]).replacen("monthly_quota: 1000", "monthly_quota: 5", 1);
        std::fs::write(dir.path().join("turnpike.yaml"), edited).unwrap();
        std::fs::create_dir_all(dir.path().join("openapi")).unwrap();
        for doc in std::fs::read_dir(root().join("examples/openapi")).unwrap() {
            let doc = doc.unwrap().path();
            std::fs::copy(&doc, dir.path().join("openapi").join(doc.file_name().unwrap())).unwrap();
        }
        let refused = invalid(plan_of(store, &dir.path().join("turnpike.yaml"), false).await);
        assert!(refused.contains("plan payments/free: monthly_quota: the plan's price sets its quota, so it must be 1000"), "{refused}");
        assert_eq!(counts(store).await, audits);

        // export → apply on an empty database → export: the same bytes.
        let a = tempfile::tempdir().unwrap();
        let first = export_to(store, a.path()).await;
        assert!(first.contains("openapi: openapi/payments.json"), "{first}");
        let empty = match store.backend() {
            turnpike_store::Backend::Sqlite => turnpike_testkit::TestDb::sqlite().await,
            turnpike_store::Backend::Postgres => turnpike_testkit::TestDb::postgres("config_round_trip_fresh").await.expect("postgres"),
        };
        let fresh = &empty.store;
        let changes = plan_of(fresh, &a.path().join("turnpike.yaml"), false).await.unwrap();
        config::apply(fresh, &changes, NOW).await.unwrap();
        let b = tempfile::tempdir().unwrap();
        let second = export_to(fresh, b.path()).await;
        assert_eq!(first, second);
        assert_eq!(
            std::fs::read(a.path().join("openapi/payments.json")).unwrap(),
            std::fs::read(b.path().join("openapi/payments.json")).unwrap()
        );
    }
}

#[tokio::test]
async fn dry_run_lists_each_change_and_prune_removes_exactly_what_the_file_lacks() {
    for app in each("config_dry_run").await {
        let store = &app.store;
        let dir = tempfile::tempdir().unwrap();
        let write = |text: &str| {
            std::fs::write(dir.path().join("t.yaml"), text).unwrap();
            dir.path().join("t.yaml")
        };
        let base = "apis:
  - slug: echo
    name: Echo
    route_prefix: /echo
    targets: [{url: 'http://127.0.0.1:9001'}]
    visibility: public
    plans:
      - {slug: free, name: Free, rate_per_second: 5, burst: 10, default: true}
      - {slug: old, name: Old, rate_per_second: 5, burst: 10}
  - slug: legacy
    name: Legacy
    route_prefix: /legacy
    targets: [{url: 'http://127.0.0.1:9002'}]
";
        let path = write(base);
        let c = plan_of(store, &path, false).await.unwrap();
        config::apply(store, &c, NOW).await.unwrap();
        let before = counts(store).await;

        // Changed limits, a new price, a new target weight; `old` and `legacy` left out.
        let path = write(
            "apis:
  - slug: echo
    name: Echo
    route_prefix: /echo
    targets: [{url: 'http://127.0.0.1:9001', weight: 2}]
    visibility: public
    lifecycle: beta
    plans:
      - slug: free
        name: Free
        rate_per_second: 7
        burst: 10
        default: true
        price: {currency: usd, pricing: {model: flat, amount: 100}}
",
        );
        let dry = plan_of(store, &path, false).await.unwrap();
        assert_eq!(
            dry.report(),
            "update api echo: targets, lifecycle\n\
             update plan echo/free: rate_per_second\n\
             new price echo/free: usd {\"model\":\"flat\",\"amount\":100} trial_days=0 billable=admitted\n\
             not in file (kept; use --prune): plan echo/old\n\
             not in file (kept; use --prune): api legacy\n"
        );
        assert_eq!(counts(store).await, before, "a dry run changes nothing");

        // With prune: exactly `legacy` and `echo/old` go.
        let pruned = plan_of(store, &path, true).await.unwrap();
        assert_eq!(&pruned.lines[..2], ["delete plan echo/old", "delete api legacy"]);
        config::apply(store, &pruned, NOW + 10).await.unwrap();
        let apis: Vec<String> = store.list_apis().await.unwrap().into_iter().map(|a| a.slug).collect();
        assert_eq!(apis, ["echo"]);
        let echo = store.get_api_by_slug("echo").await.unwrap();
        let plans: Vec<String> = store.list_plans(echo.id).await.unwrap().into_iter().map(|p| p.slug).collect();
        assert_eq!(plans, ["free"]);
        assert!(plan_of(store, &path, true).await.unwrap().is_empty());

        // A plan or API with billing history is never pruned: the apply is refused as a whole.
        let (billed_api, billed_plan) = seed_api(store, "billed", "Billed", turnpike_store::Visibility::Public).await;
        let acc = store
            .create_account(&turnpike_store::domain::Email::parse("d@example.com").unwrap(), "x", turnpike_store::Role::Developer, NOW)
            .await
            .unwrap();
        let dev_app = store.create_app(acc.id, "app", NOW).await.unwrap();
        store.subscribe_defaults(dev_app.id, NOW).await.unwrap();
        let before = counts(store).await;
        let refused = invalid(plan_of(store, &path, true).await);
        assert!(refused.contains("api `billed` is not in the file but has subscriptions"), "{refused}");
        assert_eq!(counts(store).await, before);
        assert!(store.get_api(billed_api).await.is_ok() && store.get_plan(billed_plan).await.is_ok());
    }
}

#[tokio::test]
async fn an_invalid_file_is_refused_naming_the_place_and_nothing_changes() {
    for app in each("config_invalid").await {
        let store = &app.store;
        seed_api(store, "taken", "Taken", turnpike_store::Visibility::Public).await;
        let before = counts(store).await;
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (
                "apis:\n  - {slug: a, name: A, route_prefix: 'a/', targets: [{url: 'http://127.0.0.1:1'}]}\n",
                "apis[0].route_prefix: The route prefix is a path",
            ),
            ("apis:\n  - {slug: a, name: A, route_prefix: /a, targets: [{url: 'http://127.0.0.1:1'}], colour: red}\n", "unknown field `colour`"),
            (
                "apis:\n  - {slug: a, name: A, route_prefix: /a, targets: [{url: 'http://127.0.0.1:1'}]}\n  - {slug: a, name: B, route_prefix: /b, targets: [{url: 'http://127.0.0.1:1'}]}\n",
                "apis[1].slug: `a` is also the slug of apis[0]",
            ),
            (
                "apis:\n  - {slug: a, name: A, route_prefix: /a, openapi: missing.json, targets: [{url: 'http://127.0.0.1:1'}]}\n",
                "apis[0].openapi: cannot read missing.json",
            ),
            (
                "apis:\n  - {slug: b, name: B, route_prefix: /taken, targets: [{url: 'http://127.0.0.1:1'}]}\n",
                "apis[0].route_prefix: the API `taken` (not in the file) already uses this route prefix",
            ),
            (
                "apis:\n  - slug: a\n    name: A\n    route_prefix: /a\n    targets: [{url: 'http://127.0.0.1:1'}]\n    plans:\n      - {slug: p, name: P, rate_per_second: 0, burst: 1}\n",
                "apis[0].plans[0].rate_per_second: The rate is a whole number",
            ),
            (
                "apis:\n  - slug: a\n    name: A\n    route_prefix: /a\n    targets: [{url: 'http://127.0.0.1:1'}]\n    plans:\n      - {slug: p, name: P, rate_per_second: 1, burst: 1, monthly_quota: 5, price: {currency: usd, pricing: {model: quota, base_fee: 0, included: 9, overage: {kind: hard_cap}}}}\n",
                "apis[0].plans[0].monthly_quota: the price's quota sets it, so it must be 9",
            ),
            (
                "apis:\n  - {slug: a, name: A, route_prefix: /a/../b, targets: [{url: 'http://127.0.0.1:1'}]}\n",
                "apis[0].route_prefix: The route prefix is a path",
            ),
            ("apis:\n  - {slug: a, name: A, route_prefix: /a, targets: [{url: 'http://127.0.0.1:99999'}]}\n", "the port must be from 1 to 65535"),
        ];
        for (text, expected) in cases {
            std::fs::write(dir.path().join("bad.yaml"), text).unwrap();
            let refused = invalid(plan_of(store, &dir.path().join("bad.yaml"), false).await);
            assert!(refused.contains(expected), "{text}\n→ {refused}");
        }
        // A file that lists no API (empty, truncated, comments only) never prunes the catalog.
        for text in ["", "# nothing yet\n", "apis: []\n"] {
            std::fs::write(dir.path().join("empty.yaml"), text).unwrap();
            let refused = invalid(plan_of(store, &dir.path().join("empty.yaml"), true).await);
            assert!(refused.contains("--prune would delete every API"), "{text:?} → {refused}");
        }
        assert_eq!(counts(store).await, before);
        assert_eq!(store.list_apis().await.unwrap().len(), 1);
    }
}
