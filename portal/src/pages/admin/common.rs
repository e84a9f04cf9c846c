//! What the console's pages share: their section tab, the acting admin, paging, form errors and
//! the plan form (shown on the API page and on its own).

use serde::Deserialize;
use turnpike_store::Plan;

use crate::error::PortalResult;
use crate::PortalState;

/// Which console section a page belongs to (highlighted in the console's tabs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// `/admin`.
    Overview,
    /// `/admin/apis…`.
    Apis,
    /// `/admin/developers…`.
    Developers,
    /// `/admin/audit`.
    Audit,
    /// `/admin/webhooks`.
    Webhooks,
    /// `/admin/analytics`.
    Analytics,
}

impl Section {
    /// `aria-current` value for the tab of `other`.
    pub fn current(self, other: &str) -> &'static str {
        let name = match self {
            Section::Overview => "overview",
            Section::Apis => "apis",
            Section::Developers => "developers",
            Section::Audit => "audit",
            Section::Webhooks => "webhooks",
            Section::Analytics => "analytics",
        };
        if name == other {
            "page"
        } else {
            "false"
        }
    }
}

/// The acting admin's account id (the guard already let only admins through).
pub(crate) fn actor(ctx: &crate::ctx::Ctx) -> crate::error::PortalResult<turnpike_store::AccountId> {
    Ok(turnpike_store::AccountId(ctx.require_account()?.id))
}

/// Rows per page in the console's lists.
pub(crate) const PER_PAGE: i64 = 25;

/// `?page=N` (1-based; anything else is page 1) as an offset.
pub(crate) fn page_offset(page: Option<&str>) -> (i64, i64) {
    let page = page.and_then(|p| p.parse::<i64>().ok()).filter(|p| (1..=1_000_000).contains(p)).unwrap_or(1);
    (page, (page - 1) * PER_PAGE)
}

/// Errors of a form, by field name (`""` for the form as a whole).
#[derive(Debug, Clone, Default)]
pub struct FieldErrors(Vec<(&'static str, String)>);

impl FieldErrors {
    pub(crate) fn add(&mut self, field: &'static str, msg: impl Into<String>) {
        self.0.push((field, msg.into()));
    }
    /// The first error of `field`.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.0.iter().find(|(f, _)| *f == field).map(|(_, m)| m.as_str())
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// How many.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Every message, in the order found.
    pub fn messages(&self) -> Vec<&str> {
        self.0.iter().map(|(_, m)| m.as_str()).collect()
    }
    /// `" has-error"` when `field` has an error, for the field's class.
    pub fn class(&self, field: &str) -> &'static str {
        if self.get(field).is_some() {
            " has-error"
        } else {
            ""
        }
    }
}

/// The plan form's values, as typed.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PlanFormValues {
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Slug.
    #[serde(default)]
    pub slug: String,
    /// Requests per second.
    #[serde(default)]
    pub rate_per_second: String,
    /// Burst.
    #[serde(default)]
    pub burst: String,
    /// Monthly quota; empty is unlimited.
    #[serde(default)]
    pub monthly_quota: String,
    /// Checkbox.
    #[serde(default)]
    pub is_default: Option<String>,
    /// Seconds to serve on each gateway's local limits when Redis is unreachable; empty fails
    /// closed (503).
    #[serde(default)]
    pub fail_open_seconds: String,
}

impl PlanFormValues {
    pub(crate) fn blank() -> PlanFormValues {
        PlanFormValues { rate_per_second: "10".into(), burst: "20".into(), ..PlanFormValues::default() }
    }

    pub(crate) fn from_plan(p: &Plan) -> PlanFormValues {
        PlanFormValues {
            name: p.name.clone(),
            slug: p.slug.clone(),
            rate_per_second: p.rate_per_second.to_string(),
            burst: p.burst.to_string(),
            monthly_quota: p.monthly_quota.map(|q| q.to_string()).unwrap_or_default(),
            is_default: p.is_default.then(|| "on".to_owned()),
            fail_open_seconds: String::new(),
        }
    }

    pub(crate) async fn with_policy(mut self, state: &PortalState, plan_id: i64) -> PortalResult<PlanFormValues> {
        self.fail_open_seconds = state.store.plan_failure_policy(plan_id).await?.map(|s| s.to_string()).unwrap_or_default();
        Ok(self)
    }

    /// Whether the default box is ticked.
    pub fn default_checked(&self) -> bool {
        self.is_default.is_some()
    }
}
