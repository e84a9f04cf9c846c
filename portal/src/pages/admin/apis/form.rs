//! The API form: its values as typed, the multipart body they arrive in, and every check a
//! submission passes before anything is written.

use axum::body::{Body, Bytes};
use axum::http::HeaderMap;
use turnpike_store::{Api, ApiSettings, Lifecycle};

use super::super::common::FieldErrors;
use crate::error::PortalResult;
use crate::openapi_import::{self, ImportedSpec};
use crate::service::{self, FieldProblem, ServiceError};
use crate::PortalState;

/// Upstream rows the form offers beyond those already set.
const SPARE_UPSTREAM_ROWS: usize = 2;

/// One upstream row of the form, as typed.
#[derive(Debug, Clone, Default)]
pub struct UpstreamRow {
    /// URL text.
    pub url: String,
    /// Weight text.
    pub weight: String,
}

/// The API form's values, as typed (re-rendered on error).
#[derive(Debug, Clone)]
pub struct ApiFormValues {
    /// Display name.
    pub name: String,
    /// Slug.
    pub slug: String,
    /// Description.
    pub description: String,
    /// Route prefix.
    pub route_prefix: String,
    /// Host.
    pub host: String,
    /// Upstream rows, with spare blank rows.
    pub upstreams: Vec<UpstreamRow>,
    /// `draft`, `public`, `private`.
    pub visibility: String,
    /// `alpha`, `beta`, `stable`, `deprecated`.
    pub lifecycle: String,
    /// Whether `?api_key=` is accepted.
    pub allow_query_key: bool,
}

impl ApiFormValues {
    pub(super) fn blank() -> ApiFormValues {
        ApiFormValues {
            name: String::new(),
            slug: String::new(),
            description: String::new(),
            route_prefix: String::new(),
            host: String::new(),
            upstreams: vec![UpstreamRow { url: String::new(), weight: "1".into() }],
            visibility: "draft".into(),
            lifecycle: "stable".into(),
            allow_query_key: false,
        }
        .with_spare_rows()
    }

    pub(super) fn from_api(api: &Api, lifecycle: Lifecycle) -> ApiFormValues {
        ApiFormValues {
            name: api.name.clone(),
            slug: api.slug.clone(),
            description: api.description.clone(),
            route_prefix: api.route_prefix.clone(),
            host: api.host.clone().unwrap_or_default(),
            upstreams: api.upstreams.iter().map(|u| UpstreamRow { url: u.url.clone(), weight: u.weight.to_string() }).collect(),
            visibility: api.visibility.as_str().into(),
            lifecycle: lifecycle.as_str().into(),
            allow_query_key: api.allow_query_key,
        }
        .with_spare_rows()
    }

    pub(super) fn with_spare_rows(mut self) -> Self {
        self.upstreams.retain(|r| !(r.url.trim().is_empty() && r.weight.trim().is_empty()));
        for _ in 0..SPARE_UPSTREAM_ROWS {
            self.upstreams.push(UpstreamRow { url: String::new(), weight: String::new() });
        }
        self
    }

    /// `(value, label)` pairs for the visibility choice.
    pub fn visibilities(&self) -> [(&'static str, &'static str); 3] {
        [
            ("draft", "Draft: only admins see it; gateways do not route it"),
            ("public", "Public: listed in the catalog and routed"),
            ("private", "Private: routed, not listed"),
        ]
    }

    /// Whether `v` is the chosen visibility.
    pub fn visibility_is(&self, v: &str) -> bool {
        self.visibility == v
    }

    /// Whether `v` is the chosen lifecycle.
    pub fn lifecycle_is(&self, v: &str) -> bool {
        self.lifecycle == v
    }

    /// Lifecycle values for the select.
    pub fn lifecycles(&self) -> Vec<&'static str> {
        Lifecycle::ALL.iter().map(|l| l.as_str()).collect()
    }
}

/// The fields of a submitted multipart API form.
#[derive(Debug, Default)]
struct Submitted {
    fields: Vec<(String, String)>,
    /// The uploaded document's bytes, when a file was chosen.
    spec: Option<Bytes>,
}

impl Submitted {
    fn get(&self, name: &str) -> String {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default()
    }
    fn all(&self, name: &str) -> Vec<String> {
        self.fields.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone()).collect()
    }
}

/// Read a `multipart/form-data` body. `Err` carries a message for the form.
async fn read_multipart(headers: &HeaderMap, body: Bytes) -> Result<Submitted, String> {
    let boundary = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| multer::parse_boundary(ct).ok())
        .ok_or_else(|| "The form was not sent as multipart/form-data; reload the page and submit it again.".to_owned())?;
    let mut form = multer::Multipart::new(Body::from(body).into_data_stream(), boundary);
    let mut out = Submitted::default();
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(format!("The form could not be read ({e}); reload the page and submit it again.")),
        };
        let name = field.name().unwrap_or_default().to_owned();
        if name == "openapi" {
            let has_file = field.file_name().is_some_and(|n| !n.is_empty());
            let bytes = field.bytes().await.map_err(|e| format!("The file could not be read ({e})."))?;
            if has_file || !bytes.is_empty() {
                out.spec = Some(bytes);
            }
        } else {
            let text = field.text().await.map_err(|e| format!("The form could not be read ({e})."))?;
            out.fields.push((name, text));
        }
    }
    Ok(out)
}

fn values_of(s: &Submitted) -> ApiFormValues {
    let urls = s.all("upstream_url");
    let weights = s.all("upstream_weight");
    let rows = (0..urls.len().max(weights.len()))
        .map(|i| UpstreamRow { url: urls.get(i).cloned().unwrap_or_default(), weight: weights.get(i).cloned().unwrap_or_default() })
        .collect();
    ApiFormValues {
        name: s.get("name"),
        slug: s.get("slug"),
        description: s.get("description"),
        route_prefix: s.get("route_prefix"),
        host: s.get("host"),
        upstreams: rows,
        visibility: s.get("visibility"),
        lifecycle: s.get("lifecycle"),
        allow_query_key: !s.get("allow_query_key").is_empty(),
    }
}

/// The service's draft of the form's values: the rules live in [`service::apis::check`].
fn draft_of(v: &ApiFormValues) -> service::apis::Draft {
    service::apis::Draft {
        name: v.name.clone(),
        slug: v.slug.clone(),
        description: v.description.clone(),
        route_prefix: v.route_prefix.clone(),
        host: v.host.clone(),
        upstreams: v.upstreams.iter().map(|r| service::apis::TargetDraft { url: r.url.clone(), weight: r.weight.clone() }).collect(),
        visibility: v.visibility.clone(),
        lifecycle: v.lifecycle.clone(),
        allow_query_key: v.allow_query_key,
    }
}

/// The service's problems as the form's errors (the form's fields are named as the service's).
pub(crate) fn form_errors(problems: &[FieldProblem], rename: &[(&'static str, &'static str)]) -> FieldErrors {
    let mut errors = FieldErrors::default();
    for p in problems {
        let field = rename.iter().find(|(from, _)| *from == p.field).map_or(p.field, |(_, to)| *to);
        errors.add(field, p.message.clone());
    }
    errors
}

/// Everything submitted, checked: settings and (if a file was chosen) the document.
pub(super) struct Checked {
    pub(super) values: ApiFormValues,
    pub(super) result: Result<(ApiSettings, Option<ImportedSpec>), (FieldErrors, Vec<String>)>,
}

pub(super) async fn check_submission(state: &PortalState, headers: &HeaderMap, body: Bytes, except: Option<i64>) -> PortalResult<Checked> {
    let submitted = match read_multipart(headers, body).await {
        Ok(s) => s,
        Err(msg) => {
            let mut errors = FieldErrors::default();
            errors.add("", msg);
            return Ok(Checked { values: ApiFormValues::blank(), result: Err((errors, Vec::new())) });
        }
    };
    let mut values = values_of(&submitted);
    let spec = match &submitted.spec {
        Some(bytes) => match openapi_import::import(bytes) {
            Ok(spec) => Some(Ok(spec)),
            Err(errs) => Some(Err(errs)),
        },
        None => None,
    };
    // A new API may take its name and description from the document it is published with.
    if let Some(Ok(spec)) = &spec {
        let mut d = draft_of(&values);
        d.fill_from(spec);
        (values.name, values.description) = (d.name, d.description);
    }
    let (errors, settings) = match service::apis::validate(&state.store, &draft_of(&values), except).await {
        Ok(s) => (FieldErrors::default(), Some(s)),
        Err(ServiceError::Invalid(problems)) => (form_errors(&problems, &[]), None),
        Err(ServiceError::RouteTaken) => {
            let mut e = FieldErrors::default();
            e.add("route_prefix", "Another API already uses this route prefix (and host). Pick another.");
            (e, None)
        }
        Err(e) => return Err(e.into()),
    };
    let spec_errors = match &spec {
        Some(Err(errs)) => errs.clone(),
        _ => Vec::new(),
    };
    let result = match (settings, spec) {
        (Some(s), spec) if errors.is_empty() && spec_errors.is_empty() => Ok((s, spec.and_then(Result::ok))),
        _ => Err((errors, spec_errors)),
    };
    Ok(Checked { values: values.with_spare_rows(), result })
}

/// The form's errors when another API has the slug.
pub(super) fn slug_taken() -> (FieldErrors, Vec<String>) {
    let mut e = FieldErrors::default();
    e.add("slug", "Another API already uses this slug. Pick another.");
    (e, Vec::new())
}
