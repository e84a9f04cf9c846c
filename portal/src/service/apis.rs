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
