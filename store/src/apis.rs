use serde::{Deserialize, Serialize};

use crate::changes::{record_change, ChangeKind};
use crate::db::{in_tx, on_pool};
use crate::{Audit, Store, StoreError};

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
    // `http::Uri` keeps a port it cannot read as a u16 (`:99999`) and then reports none.
    let raw = authority.as_str();
    let port = if raw.ends_with(']') { None } else { raw.rsplit_once(':').map(|(_, p)| p) };
    if port.is_some_and(|p| !p.parse::<u16>().is_ok_and(|p| p > 0)) {
        return Err("the port must be from 1 to 65535");
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

impl Api {
    /// Why the gateway routes none of this API's upstream targets, if it routes none: every
    /// target fails [`check_upstream_url`] (the check `turnpike_gateway::check_target` applies
    /// when it builds its route table), or there is no target at all. `None` when at least one
    /// target is routed (the gateway leaves the others out). The admin console and the catalog
    /// ask this, so they say what the gateway does: saving an unroutable target is refused, but
    /// stored rows can still hold one (older data, direct SQL, a future `apply`).
    pub fn unroutable_reason(&self) -> Option<String> {
        let mut first_problem = None;
        for (i, u) in self.upstreams.iter().enumerate() {
            match check_upstream_url(&u.url) {
                Ok(()) => return None,
                Err(why) if first_problem.is_none() => first_problem = Some(format!("upstream target {} ({}): {why}", i + 1, u.url)),
                Err(_) => {}
            }
        }
        Some(first_problem.unwrap_or_else(|| "no upstream target".to_owned()))
    }
}

/// Insert an API with every admin setting, its change-log entry and `audit` (target: the new
/// API) inside the caller's transaction; evaluates to the new `ApiRow`. The one INSERT of an
/// API with settings, shared by [`Store::create_api_with`] and the catalog apply.
macro_rules! insert_api {
    ($tx:ident, $s:expr, $openapi:expr, $audit:expr, $now:expr) => {{
        let s: &$crate::ApiSettings = $s;
        let upstreams = serde_json::to_string(&s.upstreams).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let row: $crate::apis::ApiRow = sqlx::query_as(&format!(
            "INSERT INTO apis (slug, name, description, route_prefix, host, upstreams, openapi, visibility, allow_query_key, lifecycle, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) RETURNING {}", $crate::apis::API_COLUMNS))
            .bind(&s.slug).bind(&s.name).bind(&s.description).bind(&s.route_prefix).bind(&s.host)
            .bind(upstreams).bind($openapi).bind(s.visibility.as_str()).bind(s.allow_query_key).bind(s.lifecycle.as_str()).bind($now)
            .fetch_one(&mut *$tx).await?;
        $crate::changes::record_change!($tx, $crate::ChangeKind::Api, row.id.to_string(), $now);
        let audit: &$crate::Audit = $audit;
        $crate::audit::record_audit!($tx, audit.on(format!("api:{}", row.id)), $now);
        row
    }};
}
pub(crate) use insert_api;

/// Replace an API's settings (and its document when `$openapi` is `Some`), with its change-log
/// entry and the optional `audit`, inside the caller's transaction; evaluates to the `ApiRow`,
/// or returns [`StoreError::NotFound`]. Shared by [`Store::update_api_audited`] and the apply.
macro_rules! update_api {
    ($tx:ident, $id:expr, $s:expr, $openapi:expr, $audit:expr, $now:expr) => {{
        let (id, s): (i64, &$crate::ApiSettings) = ($id, $s);
        let upstreams = serde_json::to_string(&s.upstreams).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let row: Option<$crate::apis::ApiRow> = sqlx::query_as(&format!(
            "UPDATE apis SET slug = $2, name = $3, description = $4, route_prefix = $5, host = $6, upstreams = $7,
                    openapi = COALESCE($8, openapi), visibility = $9, allow_query_key = $10, lifecycle = $11, updated_at = $12
             WHERE id = $1 RETURNING {}",
            $crate::apis::API_COLUMNS
        ))
        .bind(id)
        .bind(&s.slug)
        .bind(&s.name)
        .bind(&s.description)
        .bind(&s.route_prefix)
        .bind(&s.host)
        .bind(upstreams)
        .bind($openapi)
        .bind(s.visibility.as_str())
        .bind(s.allow_query_key)
        .bind(s.lifecycle.as_str())
        .bind($now)
        .fetch_optional(&mut *$tx)
        .await?;
        let Some(row) = row else { return Err(StoreError::NotFound) };
        $crate::changes::record_change!($tx, $crate::ChangeKind::Api, id.to_string(), $now);
        $crate::audit::record_audit_opt!($tx, $audit, $now);
        row
    }};
}
pub(crate) use update_api;

#[derive(sqlx::FromRow)]
pub(crate) struct ApiRow {
    pub(crate) id: i64,
    pub(crate) slug: String,
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) route_prefix: String,
    pub(crate) host: Option<String>,
    pub(crate) upstreams: String,
    pub(crate) openapi: Option<String>,
    pub(crate) visibility: String,
    pub(crate) allow_query_key: bool,
    pub(crate) updated_at: i64,
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

pub(crate) const API_COLUMNS: &str =
    "id, slug, name, description, route_prefix, host, upstreams, openapi, visibility, allow_query_key, updated_at";
/// [`API_COLUMNS`] without the document (up to 16 MiB each): `openapi` reads `Some("")` when
/// there is one (an imported document is never empty), `None` when not.
const API_LIST_COLUMNS: &str = "id, slug, name, description, route_prefix, host, upstreams,
    CASE WHEN openapi IS NULL THEN NULL ELSE '' END AS openapi, visibility, allow_query_key, updated_at";

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

impl Store {
    /// Create an API with every admin setting and, optionally, its OpenAPI document (JSON text),
    /// and `audit` (target: the new API), in one transaction. A taken slug is
    /// [`StoreError::Conflict`] and stores nothing.
    pub async fn create_api_with(&self, s: &ApiSettings, openapi: Option<&str>, audit: &Audit, now: i64) -> Result<Api, StoreError> {
        let row: ApiRow = in_tx!(self, tx => insert_api!(tx, s, openapi, audit, now));
        row.try_into()
    }

    /// Replace an API's settings and, when `openapi` is `Some`, its OpenAPI document; gateways
    /// reload its route at once. A slug taken by another API is [`StoreError::Conflict`].
    pub async fn update_api(&self, id: i64, s: &ApiSettings, openapi: Option<&str>, now: i64) -> Result<Api, StoreError> {
        self.update_api_audited(id, s, openapi, None, now).await
    }

    /// [`Store::update_api`] and `audit`, in one transaction.
    pub async fn update_api_audited(
        &self,
        id: i64,
        s: &ApiSettings,
        openapi: Option<&str>,
        audit: Option<&Audit>,
        now: i64,
    ) -> Result<Api, StoreError> {
        let row: ApiRow = in_tx!(self, tx => update_api!(tx, id, s, openapi, audit, now));
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
}

#[cfg(test)]
mod unroutable_tests {
    use super::*;
    use crate::{Upstream, Visibility};

    fn api(urls: &[&str]) -> Api {
        Api {
            id: 1,
            slug: "a".into(),
            name: "A".into(),
            description: String::new(),
            route_prefix: "/a".into(),
            host: None,
            upstreams: urls.iter().map(|u| Upstream { url: (*u).into(), weight: 1 }).collect(),
            visibility: Visibility::Public,
            allow_query_key: false,
            openapi: None,
            updated_at: 0,
        }
    }

    #[test]
    fn routed_when_any_target_is_usable() {
        assert_eq!(api(&["https://api.example.com/v1"]).unroutable_reason(), None);
        assert_eq!(api(&["ftp://x", "http://10.0.0.5:8080"]).unroutable_reason(), None);
        for bad_port in ["http://127.0.0.1:99999", "http://127.0.0.1:0", "https://h:65536/v1"] {
            assert_eq!(check_upstream_url(bad_port), Err("the port must be from 1 to 65535"), "{bad_port}");
        }
        for good in ["http://127.0.0.1:65535", "http://[::1]:8080/v1", "http://[::1]", "https://api.example.com"] {
            assert_eq!(check_upstream_url(good), Ok(()), "{good}");
        }
        let why = api(&["ftp://files.example.com", "http://u:p@h"]).unroutable_reason().unwrap_or_default();
        assert!(why.starts_with("upstream target 1 (ftp://files.example.com): the scheme"), "{why}");
        assert_eq!(api(&[]).unroutable_reason().as_deref(), Some("no upstream target"));
    }
}
