use serde::{Deserialize, Serialize};

use crate::changes::{record_change, ChangeKind};
use crate::db::{in_tx, on_pool};
use crate::{Store, StoreError};

/// Who can see an API in the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Only admins see it; the gateway does not route it.
    Draft,
    /// Listed in the catalog.
    Public,
    /// Routed, but not listed.
    Private,
}

impl Visibility {
    /// Parse the stored/form value.
    pub fn parse(s: &str) -> Option<Visibility> {
        Some(match s {
            "draft" => Visibility::Draft,
            "public" => Visibility::Public,
            "private" => Visibility::Private,
            _ => return None,
        })
    }
    /// The stored value.
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Draft => "draft",
            Visibility::Public => "public",
            Visibility::Private => "private",
        }
    }
}

/// Whether the gateway can route to an upstream `url`; the reason if not. The one rule for both
/// the gateway (which skips an unroutable target) and the admin console (which refuses to save
/// one, so that no API is shown published while the gateway answers `no_route`): an absolute
/// `http://` or `https://` URL with a host, optionally a port and a base path, without user info
/// or a query string.
pub fn check_upstream_url(url: &str) -> Result<(), &'static str> {
    let uri: http::Uri = url.parse().map_err(|_| "not a valid URL")?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(_) => return Err("the scheme must be http:// or https://"),
        None => return Err("an absolute http:// or https:// URL is needed"),
    }
    let authority = uri.authority().ok_or("the URL has no host")?;
    if authority.as_str().contains('@') {
        return Err("credentials in the URL are not supported");
    }
    if authority.host().is_empty() {
        return Err("the URL has no host");
    }
    if uri.query().is_some() {
        return Err("a query string on the upstream URL is not supported");
    }
    Ok(())
}

/// One upstream target of an API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upstream {
    /// Base URL, e.g. `http://10.0.0.5:8080/v1`.
    pub url: String,
    /// Relative share of traffic.
    #[serde(default = "one")]
    pub weight: u32,
}

fn one() -> u32 {
    1
}

/// A published (or draft) API.
#[derive(Debug, Clone, Serialize)]
pub struct Api {
    /// Id.
    pub id: i64,
    /// URL-safe name.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Markdown-free description.
    pub description: String,
    /// Gateway path prefix, e.g. `/echo`.
    pub route_prefix: String,
    /// Optional Host to match.
    pub host: Option<String>,
    /// Where requests go.
    pub upstreams: Vec<Upstream>,
    /// The OpenAPI document, if uploaded. Lists ([`Store::list_apis`],
    /// [`Store::get_api_summary_by_slug`]) do not load it: there it is `Some("")` when there is one.
    pub openapi: Option<String>,
    /// Catalog visibility.
    pub visibility: Visibility,
    /// Whether `?api_key=` is accepted.
    pub allow_query_key: bool,
    /// Last change (unix seconds).
    pub updated_at: i64,
}

#[derive(sqlx::FromRow)]
struct ApiRow {
    id: i64,
    slug: String,
    name: String,
    description: String,
    route_prefix: String,
    host: Option<String>,
    upstreams: String,
    openapi: Option<String>,
    visibility: String,
    allow_query_key: bool,
    updated_at: i64,
}

impl TryFrom<ApiRow> for Api {
    type Error = StoreError;
    fn try_from(r: ApiRow) -> Result<Api, StoreError> {
        Ok(Api {
            id: r.id,
            upstreams: serde_json::from_str(&r.upstreams).map_err(|e| StoreError::Corrupt(format!("upstreams of api {}: {e}", r.id)))?,
            visibility: Visibility::parse(&r.visibility).ok_or_else(|| StoreError::Corrupt(format!("visibility {}", r.visibility)))?,
            slug: r.slug,
            name: r.name,
            description: r.description,
            route_prefix: r.route_prefix,
            host: r.host,
            openapi: r.openapi,
            allow_query_key: r.allow_query_key,
            updated_at: r.updated_at,
        })
    }
}

/// Fields of a new API.
#[derive(Debug, Clone)]
pub struct NewApi {
    /// URL-safe name.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Gateway path prefix.
    pub route_prefix: String,
    /// Optional Host to match.
    pub host: Option<String>,
    /// Upstream targets.
    pub upstreams: Vec<Upstream>,
    /// OpenAPI document.
    pub openapi: Option<String>,
    /// Visibility.
    pub visibility: Visibility,
}

/// A plan: limits and prices for one API.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Plan {
    /// Id.
    pub id: i64,
    /// The API it belongs to.
    pub api_id: i64,
    /// URL-safe name.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Sustained requests per second.
    pub rate_per_second: i64,
    /// Requests allowed at once above the sustained rate.
    pub burst: i64,
    /// Requests per billing period; `None` is unlimited.
    pub monthly_quota: Option<i64>,
    /// ISO 4217 code, lower case.
    pub currency: String,
    /// Flat price per period, minor units.
    pub flat_price_minor: i64,
    /// Price per 1,000 requests, minor units.
    pub unit_price_minor_per_1000: i64,
    /// Given to new apps automatically.
    pub is_default: bool,
}

/// Fields of a new plan.
#[derive(Debug, Clone)]
pub struct NewPlan {
    /// URL-safe name.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Requests per second.
    pub rate_per_second: i64,
    /// Burst.
    pub burst: i64,
    /// Requests per period.
    pub monthly_quota: Option<i64>,
    /// Currency.
    pub currency: String,
    /// Flat price, minor units.
    pub flat_price_minor: i64,
    /// Per-1,000 price, minor units.
    pub unit_price_minor_per_1000: i64,
    /// Given to new apps automatically.
    pub is_default: bool,
}

const API_COLUMNS: &str = "id, slug, name, description, route_prefix, host, upstreams, openapi, visibility, allow_query_key, updated_at";
/// [`API_COLUMNS`] without the document (up to 16 MiB each): `openapi` reads `Some("")` when
/// there is one (an imported document is never empty), `None` when not.
const API_LIST_COLUMNS: &str = "id, slug, name, description, route_prefix, host, upstreams,
    CASE WHEN openapi IS NULL THEN NULL ELSE '' END AS openapi, visibility, allow_query_key, updated_at";
const PLAN_COLUMNS: &str =
    "id, api_id, slug, name, rate_per_second, burst, monthly_quota, currency, flat_price_minor, unit_price_minor_per_1000, is_default";

impl Store {
    /// Publish a new API. A taken slug is [`StoreError::Conflict`].
    pub async fn create_api(&self, api: &NewApi, now: i64) -> Result<Api, StoreError> {
        let upstreams = serde_json::to_string(&api.upstreams).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let row: ApiRow = in_tx!(self, tx => {
            let row: ApiRow = sqlx::query_as(&format!(
                "INSERT INTO apis (slug, name, description, route_prefix, host, upstreams, openapi, visibility, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) RETURNING {API_COLUMNS}"))
                .bind(&api.slug).bind(&api.name).bind(&api.description).bind(&api.route_prefix).bind(&api.host)
                .bind(upstreams).bind(&api.openapi).bind(api.visibility.as_str()).bind(now)
                .fetch_one(&mut *tx).await?;
            record_change!(tx, ChangeKind::Api, row.id.to_string(), now);
            row
        });
        row.try_into()
    }

    /// Every API, by slug, **without** the documents (`openapi` is `Some("")` when there is one):
    /// listing pages must not read every stored document.
    pub async fn list_apis(&self) -> Result<Vec<Api>, StoreError> {
        let rows: Vec<ApiRow> =
            on_pool!(self, p => sqlx::query_as(&format!("SELECT {API_LIST_COLUMNS} FROM apis ORDER BY slug")).fetch_all(p).await?);
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// An API by slug without its OpenAPI document (`openapi` is `Some("")` when there is one):
    /// for pages that only need to know whether there is one.
    pub async fn get_api_summary_by_slug(&self, slug: &str) -> Result<Api, StoreError> {
        let row: ApiRow = on_pool!(self, p => sqlx::query_as(&format!("SELECT {API_LIST_COLUMNS} FROM apis WHERE slug = $1"))
            .bind(slug).fetch_optional(p).await?)
        .ok_or(StoreError::NotFound)?;
        row.try_into()
    }

    /// What identifies the stored version of an API's document without reading it: its last
    /// update and its length (`None`: no document). A cache key for renderings of it.
    pub async fn api_document_stamp(&self, id: i64) -> Result<Option<(i64, i64)>, StoreError> {
        let row: Option<(i64, Option<i64>)> = on_pool!(self, p => sqlx::query_as(
            "SELECT updated_at, CAST(LENGTH(openapi) AS BIGINT) FROM apis WHERE id = $1").bind(id).fetch_optional(p).await?);
        let (updated_at, len) = row.ok_or(StoreError::NotFound)?;
        Ok(len.map(|l| (updated_at, l)))
    }

    /// The stored OpenAPI document of an API, if any.
    pub async fn api_document(&self, id: i64) -> Result<Option<String>, StoreError> {
        let row: Option<(Option<String>,)> =
            on_pool!(self, p => sqlx::query_as("SELECT openapi FROM apis WHERE id = $1").bind(id).fetch_optional(p).await?);
        Ok(row.ok_or(StoreError::NotFound)?.0)
    }

    /// An API by slug.
    pub async fn get_api_by_slug(&self, slug: &str) -> Result<Api, StoreError> {
        let row: ApiRow = on_pool!(self, p => sqlx::query_as(&format!("SELECT {API_COLUMNS} FROM apis WHERE slug = $1"))
            .bind(slug).fetch_optional(p).await?)
        .ok_or(StoreError::NotFound)?;
        row.try_into()
    }

    /// Add a plan to an API. A taken slug is [`StoreError::Conflict`].
    pub async fn create_plan(&self, api_id: i64, plan: &NewPlan, now: i64) -> Result<Plan, StoreError> {
        Ok(in_tx!(self, tx => {
            let row: Plan = sqlx::query_as(&format!(
                "INSERT INTO plans (api_id, slug, name, rate_per_second, burst, monthly_quota, currency, flat_price_minor, unit_price_minor_per_1000, is_default, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING {PLAN_COLUMNS}"))
                .bind(api_id).bind(&plan.slug).bind(&plan.name).bind(plan.rate_per_second).bind(plan.burst)
                .bind(plan.monthly_quota).bind(&plan.currency).bind(plan.flat_price_minor)
                .bind(plan.unit_price_minor_per_1000).bind(plan.is_default).bind(now)
                .fetch_one(&mut *tx).await?;
            record_change!(tx, ChangeKind::Api, api_id.to_string(), now);
            row
        }))
    }

    /// Change a plan's limits; every gateway re-reads them at once.
    pub async fn update_plan_limits(
        &self,
        plan_id: i64,
        rate_per_second: i64,
        burst: i64,
        monthly_quota: Option<i64>,
        now: i64,
    ) -> Result<(), StoreError> {
        in_tx!(self, tx => {
            let api: Option<(i64,)> = sqlx::query_as(
                "UPDATE plans SET rate_per_second = $2, burst = $3, monthly_quota = $4 WHERE id = $1 RETURNING api_id")
                .bind(plan_id).bind(rate_per_second).bind(burst).bind(monthly_quota).fetch_optional(&mut *tx).await?;
            let Some((api_id,)) = api else { return Err(StoreError::NotFound) };
            record_change!(tx, ChangeKind::Api, api_id.to_string(), now);
        });
        Ok(())
    }

    /// A plan's policy for a counter-store outage: `None` fails closed, `Some(secs)` fails open.
    pub async fn plan_failure_policy(&self, plan_id: i64) -> Result<Option<i64>, StoreError> {
        let row: Option<(String, i64)> = on_pool!(self, p => sqlx::query_as(
            "SELECT redis_failure_policy, fail_open_seconds FROM plans WHERE id = $1").bind(plan_id).fetch_optional(p).await?);
        let (policy, secs) = row.ok_or(StoreError::NotFound)?;
        Ok((policy == "open").then_some(secs))
    }

    /// Set a plan's policy for a counter-store outage: `None` fails closed (503), `Some(secs)`
    /// admits on local limits for that long. Gateways pick it up through the change log.
    pub async fn set_plan_failure_policy(&self, plan_id: i64, fail_open_seconds: Option<i64>, now: i64) -> Result<(), StoreError> {
        let (policy, secs) = match fail_open_seconds {
            Some(s) => ("open", s.max(0)),
            None => ("closed", 300),
        };
        in_tx!(self, tx => {
            let api: Option<(i64,)> = sqlx::query_as(
                "UPDATE plans SET redis_failure_policy = $2, fail_open_seconds = $3 WHERE id = $1 RETURNING api_id")
                .bind(plan_id).bind(policy).bind(secs).fetch_optional(&mut *tx).await?;
            let Some((api_id,)) = api else { return Err(StoreError::NotFound) };
            record_change!(tx, ChangeKind::Api, api_id.to_string(), now);
        });
        Ok(())
    }

    /// The plans of an API, cheapest first.
    pub async fn list_plans(&self, api_id: i64) -> Result<Vec<Plan>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(&format!(
            "SELECT {PLAN_COLUMNS} FROM plans WHERE api_id = $1 ORDER BY flat_price_minor, id"))
            .bind(api_id).fetch_all(p).await?))
    }

    /// Every plan flagged default, one per API at most (the first by id).
    pub async fn default_plans(&self) -> Result<Vec<Plan>, StoreError> {
        let plans: Vec<Plan> = on_pool!(self, p => sqlx::query_as(&format!(
            "SELECT {PLAN_COLUMNS} FROM plans WHERE is_default ORDER BY api_id, id"))
            .fetch_all(p).await?);
        let mut out: Vec<Plan> = Vec::new();
        for plan in plans {
            if out.last().map(|l| l.api_id) != Some(plan.api_id) {
                out.push(plan);
            }
        }
        Ok(out)
    }
}

/// Where an API stands in its life, shown in the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    /// Early access; may change without notice.
    Alpha,
    /// Feature complete; may still change.
    Beta,
    /// Supported.
    Stable,
    /// Still served; callers should move off it.
    Deprecated,
}

impl Lifecycle {
    /// Every value, in lifecycle order (for forms).
    pub const ALL: [Lifecycle; 4] = [Lifecycle::Alpha, Lifecycle::Beta, Lifecycle::Stable, Lifecycle::Deprecated];

    /// Parse the stored/form value.
    pub fn parse(s: &str) -> Option<Lifecycle> {
        Some(match s {
            "alpha" => Lifecycle::Alpha,
            "beta" => Lifecycle::Beta,
            "stable" => Lifecycle::Stable,
            "deprecated" => Lifecycle::Deprecated,
            _ => return None,
        })
    }

    /// The stored value.
    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Alpha => "alpha",
            Lifecycle::Beta => "beta",
            Lifecycle::Stable => "stable",
            Lifecycle::Deprecated => "deprecated",
        }
    }
}

/// Everything an admin sets on an API (the OpenAPI document is set on its own).
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// URL-safe name.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Gateway path prefix.
    pub route_prefix: String,
    /// Optional Host to match.
    pub host: Option<String>,
    /// Upstream targets (at least one).
    pub upstreams: Vec<Upstream>,
    /// Visibility.
    pub visibility: Visibility,
    /// Whether `?api_key=` is accepted.
    pub allow_query_key: bool,
    /// Lifecycle shown in the catalog.
    pub lifecycle: Lifecycle,
}

/// A plan's fields an admin edits (prices belong to billing and are left alone).
#[derive(Debug, Clone)]
pub struct PlanLimits {
    /// URL-safe name.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Requests per second.
    pub rate_per_second: i64,
    /// Burst.
    pub burst: i64,
    /// Requests per period; `None` is unlimited.
    pub monthly_quota: Option<i64>,
    /// Given to new apps automatically (at most one per API: setting it clears the others).
    pub is_default: bool,
}

impl Store {
    /// Create an API with every admin setting and, optionally, its OpenAPI document (JSON text),
    /// in one transaction. A taken slug is [`StoreError::Conflict`] and stores nothing.
    pub async fn create_api_with(&self, s: &ApiSettings, openapi: Option<&str>, now: i64) -> Result<Api, StoreError> {
        let upstreams = serde_json::to_string(&s.upstreams).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let row: ApiRow = in_tx!(self, tx => {
            let row: ApiRow = sqlx::query_as(&format!(
                "INSERT INTO apis (slug, name, description, route_prefix, host, upstreams, openapi, visibility, allow_query_key, lifecycle, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) RETURNING {API_COLUMNS}"))
                .bind(&s.slug).bind(&s.name).bind(&s.description).bind(&s.route_prefix).bind(&s.host)
                .bind(upstreams).bind(openapi).bind(s.visibility.as_str()).bind(s.allow_query_key).bind(s.lifecycle.as_str()).bind(now)
                .fetch_one(&mut *tx).await?;
            record_change!(tx, ChangeKind::Api, row.id.to_string(), now);
            row
        });
        row.try_into()
    }

    /// Replace an API's settings and, when `openapi` is `Some`, its OpenAPI document; gateways
    /// reload its route at once. A slug taken by another API is [`StoreError::Conflict`].
    pub async fn update_api(&self, id: i64, s: &ApiSettings, openapi: Option<&str>, now: i64) -> Result<Api, StoreError> {
        let upstreams = serde_json::to_string(&s.upstreams).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let row: ApiRow = in_tx!(self, tx => {
            let row: Option<ApiRow> = sqlx::query_as(&format!(
                "UPDATE apis SET slug = $2, name = $3, description = $4, route_prefix = $5, host = $6, upstreams = $7,
                        openapi = COALESCE($8, openapi), visibility = $9, allow_query_key = $10, lifecycle = $11, updated_at = $12
                 WHERE id = $1 RETURNING {API_COLUMNS}"))
                .bind(id).bind(&s.slug).bind(&s.name).bind(&s.description).bind(&s.route_prefix).bind(&s.host)
                .bind(upstreams).bind(openapi).bind(s.visibility.as_str()).bind(s.allow_query_key).bind(s.lifecycle.as_str()).bind(now)
                .fetch_optional(&mut *tx).await?;
            let Some(row) = row else { return Err(StoreError::NotFound) };
            record_change!(tx, ChangeKind::Api, id.to_string(), now);
            row
        });
        row.try_into()
    }

    /// An API by id.
    pub async fn get_api(&self, id: i64) -> Result<Api, StoreError> {
        let row: ApiRow = on_pool!(self, p => sqlx::query_as(&format!("SELECT {API_COLUMNS} FROM apis WHERE id = $1"))
            .bind(id).fetch_optional(p).await?)
        .ok_or(StoreError::NotFound)?;
        row.try_into()
    }

    /// An API's lifecycle.
    pub async fn api_lifecycle(&self, id: i64) -> Result<Lifecycle, StoreError> {
        let (s,): (String,) = on_pool!(self, p => sqlx::query_as("SELECT lifecycle FROM apis WHERE id = $1")
            .bind(id).fetch_optional(p).await?)
        .ok_or(StoreError::NotFound)?;
        Lifecycle::parse(&s).ok_or_else(|| StoreError::Corrupt(format!("lifecycle {s}")))
    }

    /// Every API's lifecycle, by API id (for the catalog).
    pub async fn api_lifecycles(&self) -> Result<Vec<(i64, Lifecycle)>, StoreError> {
        let rows: Vec<(i64, String)> =
            on_pool!(self, p => sqlx::query_as("SELECT id, lifecycle FROM apis ORDER BY id").fetch_all(p).await?);
        rows.into_iter()
            .map(|(id, s)| Lifecycle::parse(&s).map(|l| (id, l)).ok_or_else(|| StoreError::Corrupt(format!("lifecycle {s}"))))
            .collect()
    }

    /// A plan by id.
    pub async fn get_plan(&self, id: i64) -> Result<Plan, StoreError> {
        on_pool!(self, p => sqlx::query_as(&format!("SELECT {PLAN_COLUMNS} FROM plans WHERE id = $1"))
            .bind(id).fetch_optional(p).await?)
        .ok_or(StoreError::NotFound)
    }

    /// Change a plan's name, slug, limits and default flag (never its prices); when it becomes the
    /// default, the API's other plans stop being default. Gateways re-read the limits at once.
    pub async fn update_plan(&self, plan_id: i64, l: &PlanLimits, now: i64) -> Result<Plan, StoreError> {
        Ok(in_tx!(self, tx => {
            let row: Option<Plan> = sqlx::query_as(&format!(
                "UPDATE plans SET slug = $2, name = $3, rate_per_second = $4, burst = $5, monthly_quota = $6, is_default = $7
                 WHERE id = $1 RETURNING {PLAN_COLUMNS}"))
                .bind(plan_id).bind(&l.slug).bind(&l.name).bind(l.rate_per_second).bind(l.burst).bind(l.monthly_quota).bind(l.is_default)
                .fetch_optional(&mut *tx).await?;
            let Some(row) = row else { return Err(StoreError::NotFound) };
            if l.is_default {
                sqlx::query("UPDATE plans SET is_default = FALSE WHERE api_id = $1 AND id <> $2")
                    .bind(row.api_id).bind(plan_id).execute(&mut *tx).await?;
            }
            record_change!(tx, ChangeKind::Api, row.api_id.to_string(), now);
            row
        }))
    }

    /// Make `plan_id` its API's only default plan (after creating a plan flagged default).
    pub async fn make_default_plan(&self, plan_id: i64, now: i64) -> Result<(), StoreError> {
        in_tx!(self, tx => {
            let api: Option<(i64,)> = sqlx::query_as("UPDATE plans SET is_default = TRUE WHERE id = $1 RETURNING api_id")
                .bind(plan_id).fetch_optional(&mut *tx).await?;
            let Some((api_id,)) = api else { return Err(StoreError::NotFound) };
            sqlx::query("UPDATE plans SET is_default = FALSE WHERE api_id = $1 AND id <> $2").bind(api_id).bind(plan_id).execute(&mut *tx).await?;
            record_change!(tx, ChangeKind::Api, api_id.to_string(), now);
        });
        Ok(())
    }
}

// ---- Plan pricing (billing) ----

/// One version of a plan's price. `pricing` is `turnpike_billing::Pricing` as JSON; the store
/// keeps it opaque.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct PlanPriceRow {
    /// Id (recorded on invoices).
    pub id: i64,
    /// Plan.
    pub plan_id: i64,
    /// 1, 2, … per plan.
    pub version: i64,
    /// ISO 4217 code, lower case.
    pub currency: String,
    /// The price description, JSON.
    pub pricing: String,
    /// Free trial length.
    pub trial_days: i64,
    /// `admitted` or `admitted_non_5xx`.
    pub billable: String,
    /// When this version was created (unix seconds).
    pub created_at: i64,
}

/// A new price version.
#[derive(Debug, Clone)]
pub struct NewPlanPrice {
    /// ISO 4217 code, lower case.
    pub currency: String,
    /// `turnpike_billing::Pricing` as JSON.
    pub pricing: String,
    /// Free trial length.
    pub trial_days: i64,
    /// `admitted` or `admitted_non_5xx`.
    pub billable: String,
    /// Base fee (minor units), copied to `plans.flat_price_minor` for catalog ordering.
    pub base_fee: i64,
    /// `Some(q)`: set the plan's gateway quota to `q` (a hard cap, or `None` = unlimited).
    pub monthly_quota: Option<Option<i64>>,
}

const PRICE_COLUMNS: &str = "id, plan_id, version, currency, pricing, trial_days, billable, created_at";

impl Store {
    /// Every plan of every API, by API then price.
    pub async fn list_all_plans(&self) -> Result<Vec<Plan>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(&format!("SELECT {PLAN_COLUMNS} FROM plans ORDER BY api_id, flat_price_minor, id"))
            .fetch_all(p).await?))
    }

    /// Store a new price version for `plan_id` (version = previous + 1) and apply its quota to the
    /// plan; gateways re-read the plan at once.
    pub async fn set_plan_price(&self, plan_id: i64, price: &NewPlanPrice, now: i64) -> Result<PlanPriceRow, StoreError> {
        Ok(in_tx!(self, tx => {
            let api: Option<(i64,)> = sqlx::query_as(
                "UPDATE plans SET currency = $2, flat_price_minor = $3 WHERE id = $1 RETURNING api_id")
                .bind(plan_id).bind(&price.currency).bind(price.base_fee).fetch_optional(&mut *tx).await?;
            let Some((api_id,)) = api else { return Err(StoreError::NotFound) };
            if let Some(quota) = price.monthly_quota {
                sqlx::query("UPDATE plans SET monthly_quota = $2 WHERE id = $1").bind(plan_id).bind(quota).execute(&mut *tx).await?;
            }
            let row: PlanPriceRow = sqlx::query_as(&format!(
                "INSERT INTO plan_prices (plan_id, version, currency, pricing, trial_days, billable, created_at)
                 SELECT $1, COALESCE(MAX(version), 0) + 1, $2, $3, $4, $5, $6 FROM plan_prices WHERE plan_id = $1
                 RETURNING {PRICE_COLUMNS}"))
                .bind(plan_id).bind(&price.currency).bind(&price.pricing).bind(price.trial_days).bind(&price.billable).bind(now)
                .fetch_one(&mut *tx).await?;
            record_change!(tx, ChangeKind::Api, api_id.to_string(), now);
            row
        }))
    }

    /// The price version in effect at `at`: the newest created at or before it, else the first
    /// version ever (a price set after `at` still applies to a plan that had none). `None` when the
    /// plan has no stored price (its legacy columns apply).
    pub async fn plan_price_at(&self, plan_id: i64, at: i64) -> Result<Option<PlanPriceRow>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(&format!(
            "SELECT {PRICE_COLUMNS} FROM plan_prices WHERE plan_id = $1
             ORDER BY CASE WHEN created_at <= $2 THEN 0 ELSE 1 END, CASE WHEN created_at <= $2 THEN -version ELSE version END LIMIT 1"))
            .bind(plan_id).bind(at).fetch_optional(p).await?))
    }

    /// A price version by id.
    pub async fn get_plan_price(&self, id: i64) -> Result<PlanPriceRow, StoreError> {
        on_pool!(self, p => sqlx::query_as(&format!("SELECT {PRICE_COLUMNS} FROM plan_prices WHERE id = $1"))
            .bind(id).fetch_optional(p).await?)
        .ok_or(StoreError::NotFound)
    }

    /// Every price version of a plan, newest first.
    pub async fn plan_price_history(&self, plan_id: i64) -> Result<Vec<PlanPriceRow>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(&format!(
            "SELECT {PRICE_COLUMNS} FROM plan_prices WHERE plan_id = $1 ORDER BY version DESC"))
            .bind(plan_id).fetch_all(p).await?))
    }
}
