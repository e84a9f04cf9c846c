//! Configuration as code: `turnpike admin apply -f turnpike.yaml` makes the catalog (APIs, their
//! plans, their current prices) match a file, and `turnpike admin export` writes the catalog as
//! such a file.
//!
//! - **Same rules**: every API and plan passes the service's own checks ([`super::apis::check`],
//!   [`super::plans::check`], [`super::prices::check_price_parts`]); a problem names its place in
//!   the file (`apis[1].plans[0].rate_per_second: …`) and nothing changes.
//! - **One transaction**: the changes are computed first ([`plan`]), then written by
//!   [`Store::apply_catalog`] all together, each with its change-log entry (gateways follow it)
//!   and its audit row (actor: the admin named by `--as`, else none, shown as "system/CLI").
//! - **Idempotent**: only differences become changes, so a second apply writes nothing.
//! - **Deletions only with `prune`**: an API or plan with billing history (subscriptions, usage,
//!   invoices) is never deleted; the apply is refused and says to retire it instead (visibility
//!   `draft`, or take the plan out of the default). Price versions are append-only.

mod file;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

pub use file::{json_schema, ApiConfig, ConfigFile, PlanConfig, PriceConfig, TargetConfig};
use turnpike_billing::Pricing;
use turnpike_store::{AccountId, Api, ApiSettings, Audit, CatalogOp, Lifecycle, PlanRef, Store, StoreError};

use super::apis::{Draft, TargetDraft};
use super::plans::{NewPrice, PlanDraft};
use crate::openapi_import::{self, ImportedSpec};

/// Why a file was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file is invalid or cannot be applied as it stands; each line names its place.
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
    /// The database failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

/// A file read from disk with the OpenAPI documents it points at, imported.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The file.
    pub file: ConfigFile,
    /// `specs[i]`: the document of `file.apis[i]`, when it names one.
    pub specs: Vec<Option<ImportedSpec>>,
}

/// Parse the file's text (YAML, JSON being YAML too). Unknown fields are refused with their path.
pub fn parse(text: &str) -> Result<ConfigFile, ConfigError> {
    serde_yaml::from_str(text).map_err(|e| ConfigError::Invalid(vec![e.to_string()]))
}

/// Read `path` and the documents it names (relative to its directory), with the console's
/// import rules.
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Invalid(vec![format!("{}: {e}", path.display())]))?;
    let file = parse(&text)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut specs = Vec::new();
    let mut problems = Vec::new();
    for (i, api) in file.apis.iter().enumerate() {
        let Some(rel) = &api.openapi else {
            specs.push(None);
            continue;
        };
        let doc = dir.join(rel);
        match read_limited(&doc, openapi_import::MAX_SPEC_BYTES) {
            Ok(bytes) => match openapi_import::import(&bytes) {
                Ok(spec) => specs.push(Some(spec)),
                Err(errs) => {
                    problems.extend(errs.into_iter().map(|e| format!("apis[{i}].openapi: {rel}: {e}")));
                    specs.push(None);
                }
            },
            Err(e) => {
                problems.push(format!("apis[{i}].openapi: cannot read {rel} ({}): {e}", doc.display()));
                specs.push(None);
            }
        }
    }
    if problems.is_empty() {
        Ok(Loaded { file, specs })
    } else {
        Err(ConfigError::Invalid(problems))
    }
}

/// At most `limit` bytes of `path` (one more and it is refused, before reading the rest: a
/// file name such as `/dev/zero` must not fill the memory).
fn read_limited(path: &Path, limit: usize) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?.take(limit as u64 + 1).read_to_end(&mut bytes)?;
    if bytes.len() > limit {
        return Err(std::io::Error::other(format!("larger than {} MiB", limit / (1024 * 1024))));
    }
    Ok(bytes)
}

/// How to apply.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Delete APIs and plans that are not in the file.
    pub prune: bool,
    /// The audit rows' actor (`None`: the system/CLI).
    pub actor: Option<AccountId>,
}

/// What applying a file would do.
#[derive(Debug, Clone, Default)]
pub struct Changes {
    /// The writes, in order.
    pub ops: Vec<CatalogOp>,
    /// One line per write: `create api payments`, `update plan echo/free: burst`, …
    pub lines: Vec<String>,
    /// What is in the database but not in the file, kept (without `prune`).
    pub kept: Vec<String>,
}

impl Changes {
    /// Whether nothing would be written.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The report: one line per change, then what is kept, or `no changes`.
    pub fn report(&self) -> String {
        let mut out = String::new();
        for l in &self.lines {
            let _ = writeln!(out, "{l}");
        }
        for k in &self.kept {
            let _ = writeln!(out, "not in file (kept; use --prune): {k}");
        }
        if self.ops.is_empty() {
            out.push_str("no changes\n");
        }
        out
    }
}

/// A plan as stored, with what the file compares.
struct StoredPlan {
    id: i64,
    slug: String,
    name: String,
    rate_per_second: i64,
    burst: i64,
    monthly_quota: Option<i64>,
    is_default: bool,
    fail_open_seconds: Option<i64>,
    price: Option<PriceConfig>,
}

/// An API as stored, with its document, lifecycle and plans.
struct StoredApi {
    api: Api,
    lifecycle: Lifecycle,
    plans: Vec<StoredPlan>,
}

async fn stored(store: &Store) -> Result<Vec<StoredApi>, StoreError> {
    let lifecycles = store.api_lifecycles().await?;
    let mut out = Vec::new();
    for summary in store.list_apis().await? {
        let api = store.get_api(summary.id).await?;
        let lifecycle = lifecycles.iter().find(|(id, _)| *id == api.id).map_or(Lifecycle::Stable, |(_, l)| *l);
        let mut plans = Vec::new();
        for p in store.list_plans(api.id).await? {
            let price = store.plan_price_history(p.id).await?.into_iter().next().map(|r| PriceConfig {
                currency: r.currency,
                pricing: serde_json::from_str(&r.pricing).unwrap_or(serde_json::Value::Null),
                trial_days: r.trial_days,
                billable: r.billable,
            });
            plans.push(StoredPlan {
                fail_open_seconds: store.plan_failure_policy(p.id).await?,
                id: p.id,
                slug: p.slug,
                name: p.name,
                rate_per_second: p.rate_per_second,
                burst: p.burst,
                monthly_quota: p.monthly_quota,
                is_default: p.is_default,
                price,
            });
        }
        plans.sort_by(|a, b| a.slug.cmp(&b.slug));
        out.push(StoredApi { api, lifecycle, plans });
    }
    out.sort_by(|a, b| a.api.slug.cmp(&b.api.slug));
    Ok(out)
}

fn draft_of(a: &ApiConfig) -> Draft {
    Draft {
        name: a.name.clone(),
        slug: a.slug.clone(),
        description: a.description.clone(),
        route_prefix: a.route_prefix.clone(),
        host: a.host.clone().unwrap_or_default(),
        upstreams: a.targets.iter().map(|t| TargetDraft { url: t.url.clone(), weight: t.weight.to_string() }).collect(),
        visibility: a.visibility.clone(),
        lifecycle: a.lifecycle.clone(),
        allow_query_key: a.allow_query_key,
    }
}

/// A plan of the file, checked.
struct CheckedPlan {
    limits: turnpike_store::PlanLimits,
    fail_open: Option<i64>,
    price: Option<NewPrice>,
}

fn check_plans(i: usize, api: &ApiConfig, problems: &mut Vec<String>) -> Vec<Option<CheckedPlan>> {
    let mut out = Vec::new();
    let mut defaults = 0;
    for (k, p) in api.plans.iter().enumerate() {
        let at = format!("apis[{i}].plans[{k}]");
        if let Some(j) = api.plans[..k].iter().position(|q| q.slug.trim() == p.slug.trim()) {
            problems.push(format!("{at}.slug: `{}` is also the slug of apis[{i}].plans[{j}]", p.slug));
        }
        if p.default {
            defaults += 1;
            if defaults == 2 {
                problems.push(format!("{at}.default: only one plan per API can be the default"));
            }
        }
        let draft = PlanDraft::of_numbers(&p.name, &p.slug, p.rate_per_second, p.burst, p.monthly_quota, p.default, p.fail_open_seconds);
        let checked = match super::plans::check(&draft) {
            Ok(c) => Some(c),
            Err(ps) => {
                problems.extend(ps.into_iter().map(|e| format!("{at}.{}: {}", e.field, e.message)));
                None
            }
        };
        let price = match &p.price {
            None => Some(None),
            Some(pc) => match super::prices::check_price_parts(&pc.currency, &pc.pricing, pc.trial_days, &pc.billable) {
                Ok(new) => {
                    if let Some(q) = super::plans::quota_set_by(&new).filter(|q| *q != p.monthly_quota) {
                        let says = q.map_or_else(|| "unlimited (omit it)".to_owned(), |q| q.to_string());
                        problems.push(format!("{at}.monthly_quota: the price's quota sets it, so it must be {says}"));
                    }
                    Some(Some(new))
                }
                Err(e) => {
                    problems.push(format!("{at}.price.{}: {}", e.field, e.message));
                    None
                }
            },
        };
        out.push(match (checked, price) {
            (Some((limits, fail_open)), Some(price)) => Some(CheckedPlan { limits, fail_open, price }),
            _ => None,
        });
    }
    out
}

fn audit(actor: Option<AccountId>, action: &'static str, target: String, detail: String) -> Audit {
    Audit::new(actor.map(AccountId::get), action, target, format!("apply: {detail}"))
}

fn targets_text(s: &ApiSettings) -> String {
    s.upstreams.iter().map(|u| format!("{} (weight {})", u.url, u.weight)).collect::<Vec<_>>().join(", ")
}

/// Which of an API's settings differ from the stored ones.
fn api_diff(old: &StoredApi, new: &ApiSettings, spec: Option<&ImportedSpec>) -> Vec<&'static str> {
    let a = &old.api;
    let mut d = Vec::new();
    if a.name != new.name {
        d.push("name");
    }
    if a.description != new.description {
        d.push("description");
    }
    if a.route_prefix != new.route_prefix {
        d.push("route_prefix");
    }
    if a.host != new.host {
        d.push("host");
    }
    if a.upstreams != new.upstreams {
        d.push("targets");
    }
    if a.visibility != new.visibility {
        d.push("visibility");
    }
    if old.lifecycle != new.lifecycle {
        d.push("lifecycle");
    }
    if a.allow_query_key != new.allow_query_key {
        d.push("allow_query_key");
    }
    if spec.is_some_and(|s| a.openapi.as_deref() != Some(s.json.as_str())) {
        d.push("openapi");
    }
    d
}

fn plan_diff(old: &StoredPlan, l: &turnpike_store::PlanLimits, fail_open: Option<i64>) -> Vec<&'static str> {
    let mut d = Vec::new();
    if old.name != l.name {
        d.push("name");
    }
    if old.rate_per_second != l.rate_per_second {
        d.push("rate_per_second");
    }
    if old.burst != l.burst {
        d.push("burst");
    }
    if old.monthly_quota != l.monthly_quota {
        d.push("monthly_quota");
    }
    if old.is_default != l.is_default {
        d.push("default");
    }
    if old.fail_open_seconds != fail_open {
        d.push("fail_open_seconds");
    }
    d
}

/// Whether the stored newest version is `new` already.
fn same_price(old: Option<&PriceConfig>, new: &NewPrice) -> bool {
    old.is_some_and(|o| {
        o.currency == new.price.currency().code()
            && serde_json::from_value::<Pricing>(o.pricing.clone()).ok().as_ref() == Some(new.price.pricing())
            && o.trial_days == new.trial_days
            && o.billable == new.billable.as_str()
    })
}

/// Check the file against the rules and the database and compute the changes that make the
/// database match it. Nothing is written.
pub async fn plan(store: &Store, loaded: &Loaded, opts: Options) -> Result<Changes, ConfigError> {
    let file = &loaded.file;
    if opts.prune && file.apis.is_empty() {
        // An empty, truncated or comment-only file would delete the whole catalog.
        return Err(ConfigError::Invalid(vec![
            "apis: the file lists no API, so --prune would delete every API; refusing (apply without --prune, or list what stays)".into(),
        ]));
    }
    let current = stored(store).await?;
    let mut problems = Vec::new();
    let (settings, plans) = check_each(file, &mut problems);
    check_routes(file, &settings, &current, opts, &mut problems);
    let mut out = Changes::default();
    // Deletions first (so a pruned API's route or slug is free), then changes, then creations.
    out.ops = deletions(store, file, &current, opts, &mut out, &mut problems).await?;
    if !problems.is_empty() {
        return Err(ConfigError::Invalid(problems));
    }
    let mut creations = Vec::new();
    let mut plan_ops = Vec::new();
    for (i, s) in settings.iter().enumerate() {
        let Some(s) = s else { continue };
        let spec = loaded.specs.get(i).and_then(Option::as_ref);
        let old = current.iter().find(|c| c.api.slug == s.slug);
        match old {
            None => creations.push(create_api(s, spec, opts.actor, &mut out)),
            Some(old) => {
                let op = update_api(old, s, spec, opts.actor, &mut out);
                out.ops.extend(op);
            }
        }
        for p in plans[i].iter().flatten() {
            plan_ops.extend(plan_changes(s, old, p, opts.actor, &mut out)?);
        }
    }
    out.ops.extend(creations);
    out.ops.extend(plan_ops);
    Ok(out)
}

/// Every API and plan of the file on its own, with the service's rules (`None` where one failed;
/// its problems are added to `problems`).
#[allow(clippy::type_complexity)]
fn check_each(file: &ConfigFile, problems: &mut Vec<String>) -> (Vec<Option<ApiSettings>>, Vec<Vec<Option<CheckedPlan>>>) {
    let mut settings: Vec<Option<ApiSettings>> = Vec::new();
    let mut plans: Vec<Vec<Option<CheckedPlan>>> = Vec::new();
    for (i, a) in file.apis.iter().enumerate() {
        if let Some(j) = file.apis[..i].iter().position(|b| b.slug.trim() == a.slug.trim()) {
            problems.push(format!("apis[{i}].slug: `{}` is also the slug of apis[{j}]", a.slug));
        }
        match super::apis::check(&draft_of(a)) {
            Ok(s) => settings.push(Some(s)),
            Err(ps) => {
                problems.extend(ps.into_iter().map(|p| format!("apis[{i}].{}: {}", p.field, p.message)));
                settings.push(None);
            }
        }
        plans.push(check_plans(i, a, problems));
    }
    (settings, plans)
}

/// Routes: unique within the file, and against stored APIs the file keeps (without prune).
fn check_routes(file: &ConfigFile, settings: &[Option<ApiSettings>], current: &[StoredApi], opts: Options, problems: &mut Vec<String>) {
    for (i, s) in settings.iter().enumerate() {
        let Some(s) = s else { continue };
        for (j, t) in settings[..i].iter().enumerate() {
            if t.as_ref().is_some_and(|t| super::apis::same_route(&t.route_prefix, t.host.as_deref(), &s.route_prefix, s.host.as_deref())) {
                problems.push(format!("apis[{i}].route_prefix: apis[{j}] already uses this route prefix (and host)"));
            }
        }
        if !opts.prune {
            for c in current.iter().filter(|c| !file.apis.iter().any(|a| a.slug.trim() == c.api.slug)) {
                if super::apis::same_route(&c.api.route_prefix, c.api.host.as_deref(), &s.route_prefix, s.host.as_deref()) {
                    problems.push(format!(
                        "apis[{i}].route_prefix: the API `{}` (not in the file) already uses this route prefix (and host)",
                        c.api.slug
                    ));
                }
            }
        }
    }
}

/// What is stored but not in the file: deleted with `--prune` (never with billing history: a
/// problem), listed as kept without it.
async fn deletions(
    store: &Store,
    file: &ConfigFile,
    current: &[StoredApi],
    opts: Options,
    out: &mut Changes,
    problems: &mut Vec<String>,
) -> Result<Vec<CatalogOp>, ConfigError> {
    let actor = opts.actor;
    let mut deletions = Vec::new();
    for c in current {
        let in_file = file.apis.iter().find(|a| a.slug.trim() == c.api.slug);
        match in_file {
            None if opts.prune => {
                if store.api_has_billing_history(c.api.id).await? {
                    problems.push(format!(
                        "api `{}` is not in the file but has subscriptions, usage or invoices: it is never deleted; keep it in the file \
                         (retire it with visibility: draft) or apply without --prune",
                        c.api.slug
                    ));
                } else {
                    out.lines.push(format!("delete api {}", c.api.slug));
                    let detail = format!("{} (and its {} plans)", c.api.slug, c.plans.len());
                    deletions.push(CatalogOp::DeleteApi {
                        id: c.api.id,
                        audit: audit(actor, "api.delete", format!("api:{}", c.api.id), detail),
                    });
                }
            }
            None => out.kept.push(format!("api {}", c.api.slug)),
            Some(a) => {
                for p in c.plans.iter().filter(|p| !a.plans.iter().any(|q| q.slug.trim() == p.slug)) {
                    let name = format!("{}/{}", c.api.slug, p.slug);
                    if !opts.prune {
                        out.kept.push(format!("plan {name}"));
                    } else if store.plan_has_billing_history(p.id).await? {
                        problems.push(format!(
                            "plan `{name}` is not in the file but has subscriptions or invoices: it is never deleted; keep it in the file \
                             or apply without --prune"
                        ));
                    } else {
                        out.lines.push(format!("delete plan {name}"));
                        deletions
                            .push(CatalogOp::DeletePlan { id: p.id, audit: audit(actor, "plan.delete", format!("plan:{}", p.id), name) });
                    }
                }
            }
        }
    }
    Ok(deletions)
}

/// A new API of the file.
fn create_api(s: &ApiSettings, spec: Option<&ImportedSpec>, actor: Option<AccountId>, out: &mut Changes) -> CatalogOp {
    out.lines.push(format!("create api {}", s.slug));
    let mut detail = format!("{} {} prefix={} targets={}", s.slug, s.name, s.route_prefix, targets_text(s));
    if let Some(spec) = spec {
        let _ = write!(detail, "; openapi “{}” {}", spec.title, spec.version);
    }
    CatalogOp::CreateApi {
        settings: s.clone(),
        openapi: spec.map(|s| s.json.clone()),
        audit: audit(actor, "api.create", String::new(), detail),
    }
}

/// A stored API whose settings or document differ from the file's (none when nothing does).
fn update_api(
    old: &StoredApi,
    s: &ApiSettings,
    spec: Option<&ImportedSpec>,
    actor: Option<AccountId>,
    out: &mut Changes,
) -> Option<CatalogOp> {
    let diff = api_diff(old, s, spec);
    if diff.is_empty() {
        return None;
    }
    out.lines.push(format!("update api {}: {}", s.slug, diff.join(", ")));
    Some(CatalogOp::UpdateApi {
        id: old.api.id,
        settings: s.clone(),
        openapi: spec.filter(|_| diff.contains(&"openapi")).map(|s| s.json.clone()),
        audit: audit(actor, "api.update", format!("api:{}", old.api.id), format!("{}: {}", s.slug, diff.join(", "))),
    })
}

/// A plan of the file: created, or updated where its limits differ, and a new price version
/// where its price differs from the current one.
fn plan_changes(
    s: &ApiSettings,
    old: Option<&StoredApi>,
    p: &CheckedPlan,
    actor: Option<AccountId>,
    out: &mut Changes,
) -> Result<Vec<CatalogOp>, ConfigError> {
    let mut ops = Vec::new();
    let l = &p.limits;
    let name = format!("{}/{}", s.slug, l.slug);
    let old_plan = old.and_then(|o| o.plans.iter().find(|q| q.slug == l.slug));
    let plan_ref = match old_plan {
        None => {
            out.lines.push(format!("create plan {name}"));
            let detail =
                format!("{name}: rate={}/s burst={} quota={:?} default={}", l.rate_per_second, l.burst, l.monthly_quota, l.is_default);
            ops.push(CatalogOp::CreatePlan {
                api_slug: s.slug.clone(),
                plan: super::plans::new_plan(l),
                fail_open_seconds: p.fail_open,
                audit: audit(actor, "plan.create", String::new(), detail),
            });
            PlanRef::Slugs(s.slug.clone(), l.slug.clone())
        }
        Some(op) => {
            let diff = plan_diff(op, l, p.fail_open);
            if !diff.is_empty() {
                out.lines.push(format!("update plan {name}: {}", diff.join(", ")));
                ops.push(CatalogOp::UpdatePlan {
                    id: op.id,
                    limits: l.clone(),
                    fail_open_seconds: p.fail_open,
                    audit: audit(actor, "plan.update", format!("plan:{}", op.id), format!("{name}: {}", diff.join(", "))),
                });
            }
            PlanRef::Id(op.id)
        }
    };
    if p.price.is_none() {
        // The stored price may fix the quota (the file leaves prices alone when it names none).
        let stored = old_plan.and_then(|o| o.price.as_ref()).and_then(|pc| serde_json::from_value::<Pricing>(pc.pricing.clone()).ok());
        if let Some(q) = stored.as_ref().and_then(super::plans::quota_fixed_by).filter(|q| *q != l.monthly_quota) {
            let problem = super::plans::quota_problem(q);
            return Err(ConfigError::Invalid(vec![format!("plan {name}: {}: {}", problem.field, problem.message)]));
        }
    }
    if let Some(new) = &p.price {
        if !same_price(old_plan.and_then(|o| o.price.as_ref()), new) {
            let summary = super::prices::summary(new);
            out.lines.push(format!("new price {name}: {summary}"));
            ops.push(CatalogOp::SetPrice {
                plan: plan_ref,
                price: super::plans::price_row(new)?,
                audit: audit(actor, "plan.price", String::new(), format!("{name}: {summary}")),
            });
        }
    }
    Ok(ops)
}

/// Write `changes` in one transaction. A slug taken meanwhile, or billing history that appeared
/// since [`plan`] looked, refuses the whole apply.
pub async fn apply(store: &Store, changes: &Changes, now: i64) -> Result<(), ConfigError> {
    if changes.ops.is_empty() {
        return Ok(());
    }
    store.apply_catalog(&changes.ops, now).await.map_err(|e| match e {
        StoreError::Conflict => ConfigError::Invalid(vec!["a slug in the file was taken meanwhile; nothing changed, run again".into()]),
        StoreError::Stale => {
            ConfigError::Invalid(vec!["something to delete gained billing history meanwhile; nothing changed, run again".into()])
        }
        e => ConfigError::Store(e),
    })
}

/// The catalog as a file, by slug, with each API's document as `openapi/<slug>.json` (the
/// returned `(relative path, text)` pairs, for the caller to write beside the file).
pub async fn export(store: &Store) -> Result<(String, Vec<(PathBuf, String)>), StoreError> {
    let mut file = ConfigFile::default();
    let mut docs = Vec::new();
    for c in stored(store).await? {
        let a = &c.api;
        let openapi = a.openapi.as_ref().map(|doc| {
            let rel = format!("openapi/{}.json", a.slug);
            let mut text = doc.clone();
            text.push('\n');
            docs.push((PathBuf::from(&rel), text));
            rel
        });
        file.apis.push(ApiConfig {
            slug: a.slug.clone(),
            name: a.name.clone(),
            description: a.description.clone(),
            route_prefix: a.route_prefix.clone(),
            host: a.host.clone(),
            targets: a.upstreams.iter().map(|u| TargetConfig { url: u.url.clone(), weight: u.weight }).collect(),
            visibility: a.visibility.as_str().to_owned(),
            lifecycle: c.lifecycle.as_str().to_owned(),
            allow_query_key: a.allow_query_key,
            openapi,
            plans: c
                .plans
                .into_iter()
                .map(|p| PlanConfig {
                    slug: p.slug,
                    name: p.name,
                    rate_per_second: p.rate_per_second,
                    burst: p.burst,
                    monthly_quota: p.monthly_quota,
                    default: p.is_default,
                    fail_open_seconds: p.fail_open_seconds,
                    price: p.price,
                })
                .collect(),
        });
    }
    let yaml = serde_yaml::to_string(&file).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok((yaml, docs))
}
