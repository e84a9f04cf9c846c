//! An administrator's API actions: publish a new API, change one (settings and, optionally, its
//! OpenAPI document). Gateways load the change from the change log within a second.

use turnpike_store::{AccountId, Api, ApiSettings, Audit, Store};

use super::{taken, ServiceError, ServiceResult};
use crate::openapi_import::ImportedSpec;

/// The audit detail of an API change: what an admin would want to see, never a secret.
fn audit_detail(s: &ApiSettings, spec: Option<&ImportedSpec>) -> String {
    let targets: Vec<String> = s.upstreams.iter().map(|u| format!("{} (weight {})", u.url, u.weight)).collect();
    let mut d = format!(
        "{} {} visibility={} lifecycle={} prefix={} targets={}",
        s.slug,
        s.name,
        s.visibility.as_str(),
        s.lifecycle.as_str(),
        s.route_prefix,
        targets.join(", ")
    );
    if let Some(spec) = spec {
        d.push_str(&format!("; openapi {} “{}” {} ({} operations)", spec.openapi, spec.title, spec.version, spec.operations));
    }
    d
}

/// Publish a new API with `settings` and, optionally, its OpenAPI document. A taken slug is
/// [`ServiceError::SlugTaken`] and stores nothing.
pub async fn publish(
    store: &Store,
    admin_id: AccountId,
    settings: &ApiSettings,
    spec: Option<&ImportedSpec>,
    now: i64,
) -> ServiceResult<Api> {
    let audit = Audit::new(Some(admin_id.get()), "api.create", "", audit_detail(settings, spec));
    store.create_api_with(settings, spec.map(|s| s.json.as_str()), &audit, now).await.map_err(taken(ServiceError::SlugTaken))
}

/// Replace `api`'s settings and, when `spec` is given, its document. A slug another API
/// uses is [`ServiceError::SlugTaken`].
pub async fn update(
    store: &Store,
    admin_id: AccountId,
    api: &Api,
    settings: &ApiSettings,
    spec: Option<&ImportedSpec>,
    now: i64,
) -> ServiceResult<Api> {
    let (admin_id, api_id) = (admin_id.get(), api.id);
    let audit = Audit::new(Some(admin_id), "api.update", format!("api:{api_id}"), audit_detail(settings, spec));
    store
        .update_api_audited(api_id, settings, spec.map(|s| s.json.as_str()), Some(&audit), now)
        .await
        .map_err(taken(ServiceError::SlugTaken))
}

// ---- The rules of an API's settings: one place for the console, the admin API and `apply` ----

use turnpike_store::domain::Slug;
use turnpike_store::{Lifecycle, Upstream, Visibility};

use super::FieldProblem;

/// Most upstream targets per API.
pub const MAX_UPSTREAMS: usize = 32;
/// Longest description.
pub const MAX_DESCRIPTION_CHARS: usize = 2000;

/// One upstream target as given (form text, or a number written as text).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetDraft {
    /// URL text.
    pub url: String,
    /// Weight text (empty: 1).
    pub weight: String,
}

/// An API's settings as given, before any check. Field names of the problems are the JSON
/// API's: `name`, `slug`, `description`, `route_prefix`, `host`, `upstreams`, `visibility`,
/// `lifecycle`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Draft {
    /// Display name.
    pub name: String,
    /// Slug.
    pub slug: String,
    /// Description.
    pub description: String,
    /// Route prefix.
    pub route_prefix: String,
    /// Host (empty: any).
    pub host: String,
    /// Upstream targets (blank rows are skipped).
    pub upstreams: Vec<TargetDraft>,
    /// `draft`, `public`, `private`.
    pub visibility: String,
    /// `alpha`, `beta`, `stable`, `deprecated`.
    pub lifecycle: String,
    /// Whether `?api_key=` is accepted.
    pub allow_query_key: bool,
}

impl Draft {
    /// A draft of `api`'s stored settings (the base a partial change starts from).
    pub fn of(api: &Api, lifecycle: Lifecycle) -> Draft {
        Draft {
            name: api.name.clone(),
            slug: api.slug.clone(),
            description: api.description.clone(),
            route_prefix: api.route_prefix.clone(),
            host: api.host.clone().unwrap_or_default(),
            upstreams: api.upstreams.iter().map(|u| TargetDraft { url: u.url.clone(), weight: u.weight.to_string() }).collect(),
            visibility: api.visibility.as_str().to_owned(),
            lifecycle: lifecycle.as_str().to_owned(),
            allow_query_key: api.allow_query_key,
        }
    }

    /// A new API may take its name and description from the document it is published with.
    pub fn fill_from(&mut self, spec: &ImportedSpec) {
        if self.name.trim().is_empty() {
            self.name = spec.title.clone();
        }
        if self.description.trim().is_empty() {
            self.description = spec.description.clone().unwrap_or_default().chars().take(MAX_DESCRIPTION_CHARS).collect();
        }
    }
}

/// A display name of 1–80 printable characters (the console's rule for API and plan names).
pub(crate) fn check_display_name(raw: &str, field: &'static str, problems: &mut Vec<FieldProblem>) -> String {
    let name = raw.trim();
    if name.is_empty() {
        problems.push(FieldProblem::new(field, "Enter a name."));
    } else if name.chars().count() > 80 {
        problems.push(FieldProblem::new(field, "Use at most 80 characters."));
    } else if name.chars().any(char::is_control) {
        problems.push(FieldProblem::new(field, "The name cannot contain control characters."));
    }
    name.to_owned()
}

fn check_slug(raw: &str, problems: &mut Vec<FieldProblem>) -> String {
    let slug = raw.trim();
    if let Err(e) = Slug::parse(slug) {
        problems.push(FieldProblem::new("slug", format!("The slug is used in URLs: {e}.")));
    }
    slug.to_owned()
}

/// `/payments/v1`: starts with `/`, no trailing `/`, unreserved URL characters only.
fn check_prefix(raw: &str, problems: &mut Vec<FieldProblem>) -> String {
    let p = raw.trim();
    let ok = p.len() >= 2
        && p.len() <= 200
        && p.starts_with('/')
        && !p.ends_with('/')
        && !p.contains("//")
        // `.` and `..` segments are resolved away by the gateway's path normalisation, so a
        // prefix holding one could never match.
        && !p.split('/').any(|seg| seg == "." || seg == "..")
        && p.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~/".contains(&b));
    if !ok {
        problems.push(FieldProblem::new(
            "route_prefix",
            "The route prefix is a path such as /payments/v1: it starts with /, does not end with /, has no . or .. segment, and uses letters, digits, - . _ ~ and /.",
        ));
    }
    p.to_owned()
}

/// A bare host name (`api.example.com`), lower-cased; empty means any host.
fn check_host(raw: &str, problems: &mut Vec<FieldProblem>) -> Option<String> {
    let h = raw.trim().to_ascii_lowercase();
    if h.is_empty() {
        return None;
    }
    let ok = h.len() <= 253
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !ok {
        problems.push(FieldProblem::new(
            "host",
            "Enter a host name such as api.example.com (no scheme, port or path), or leave it empty to match any host.",
        ));
    }
    Some(h)
}

/// At least one `http(s)://host[:port][/path]` target with a weight of 1–1000.
fn check_upstreams(rows: &[TargetDraft], problems: &mut Vec<FieldProblem>) -> Vec<Upstream> {
    let mut out = Vec::new();
    let mut bad = false;
    for (i, row) in rows.iter().enumerate() {
        let (url, weight) = (row.url.trim(), row.weight.trim());
        if url.is_empty() && weight.is_empty() {
            continue;
        }
        let n = i + 1;
        // The gateway's own routing rule: what is saved here is what it routes.
        if let Err(why) = turnpike_store::check_upstream_url(url) {
            bad = true;
            problems.push(FieldProblem::new(
                "targets",
                format!("Target {n}: enter an http:// or https:// URL with a host, such as https://api.example.com/v1 ({why})."),
            ));
            continue;
        }
        let w = if weight.is_empty() { Some(1) } else { weight.parse::<u32>().ok().filter(|w| (1..=1000).contains(w)) };
        let Some(weight) = w else {
            bad = true;
            problems.push(FieldProblem::new("targets", format!("Target {n}: the weight is a whole number from 1 to 1000.")));
            continue;
        };
        out.push(Upstream { url: url.trim_end_matches('/').to_owned(), weight });
    }
    if out.is_empty() && !bad {
        problems.push(FieldProblem::new("targets", "Add at least one upstream target."));
    }
    if out.len() > MAX_UPSTREAMS {
        problems.push(FieldProblem::new("targets", format!("Use at most {MAX_UPSTREAMS} upstream targets.")));
    }
    out
}

/// Every field of `d` checked on its own (no database): the settings, or every problem found.
pub fn check(d: &Draft) -> Result<ApiSettings, Vec<FieldProblem>> {
    let mut problems = Vec::new();
    let name = check_display_name(&d.name, "name", &mut problems);
    let slug = check_slug(&d.slug, &mut problems);
    let description = d.description.trim().to_owned();
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        problems.push(FieldProblem::new("description", format!("Use at most {MAX_DESCRIPTION_CHARS} characters.")));
    } else if description.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
        // PostgreSQL cannot store NUL in text; no other control character belongs in prose either.
        problems
            .push(FieldProblem::new("description", "The description cannot contain control characters other than line breaks and tabs."));
    }
    let route_prefix = check_prefix(&d.route_prefix, &mut problems);
    let host = check_host(&d.host, &mut problems);
    let upstreams = check_upstreams(&d.upstreams, &mut problems);
    let visibility = Visibility::parse(d.visibility.trim());
    if visibility.is_none() {
        problems.push(FieldProblem::new("visibility", "Choose draft, public or private."));
    }
    let lifecycle = Lifecycle::parse(d.lifecycle.trim());
    if lifecycle.is_none() {
        problems.push(FieldProblem::new("lifecycle", "Choose alpha, beta, stable or deprecated."));
    }
    match (visibility, lifecycle, problems.is_empty()) {
        (Some(visibility), Some(lifecycle), true) => Ok(ApiSettings {
            slug,
            name,
            description,
            route_prefix,
            host,
            upstreams,
            visibility,
            allow_query_key: d.allow_query_key,
            lifecycle,
        }),
        _ => Err(problems),
    }
}

/// Whether two APIs' routes collide: the same host (or both any host) and prefix.
pub fn same_route(a_prefix: &str, a_host: Option<&str>, b_prefix: &str, b_host: Option<&str>) -> bool {
    a_prefix.trim_end_matches('/') == b_prefix.trim_end_matches('/') && a_host == b_host
}

/// Whether an API other than `except` already routes `s`'s host and prefix.
pub async fn route_taken(store: &Store, s: &ApiSettings, except: Option<i64>) -> ServiceResult<bool> {
    Ok(store
        .list_apis()
        .await?
        .iter()
        .any(|a| Some(a.id) != except && same_route(&a.route_prefix, a.host.as_deref(), &s.route_prefix, s.host.as_deref())))
}

/// [`check`], then the route against every other API: the settings, [`ServiceError::Invalid`]
/// with every field problem, or [`ServiceError::RouteTaken`].
pub async fn validate(store: &Store, d: &Draft, except: Option<i64>) -> ServiceResult<ApiSettings> {
    let settings = check(d).map_err(ServiceError::Invalid)?;
    if route_taken(store, &settings, except).await? {
        return Err(ServiceError::RouteTaken);
    }
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_prefix_is_a_normalised_path() {
        for good in ["/payments/v1", "/a", "/x.y/z~1", "/v1.2/a_b-c"] {
            let mut problems = Vec::new();
            assert_eq!(check_prefix(good, &mut problems), good);
            assert!(problems.is_empty(), "{good}: {problems:?}");
        }
        // Dot segments would be resolved away by the gateway before routing: never matched.
        for bad in ["/", "/x/", "//x", "x", "/x?y", "/%2e%2e", "/a b", "/.", "/..", "/a/../b", "/x/./y", "/a/.."] {
            let mut problems = Vec::new();
            check_prefix(bad, &mut problems);
            assert_eq!(problems.len(), 1, "{bad}");
            assert_eq!(problems[0].field, "route_prefix", "{bad}");
        }
    }
}
