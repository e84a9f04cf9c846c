//! View models: store rows turned into the strings the templates print.

use turnpike_store::{Api, Plan};

use turnpike_billing::Money;

use crate::format::count;

/// A plan as the catalog shows it.
#[derive(Debug, Clone)]
pub struct PlanView {
    /// Plan id (the subscribe form's `plan_id`).
    pub id: i64,
    /// URL-safe name, unique within its API (element ids on the API page).
    pub slug: String,
    /// Display name.
    pub name: String,
    /// `"Free"` or `"$49.00/month"`.
    pub price: String,
    /// `"+ $0.50 per 1,000 requests"`, when metered.
    pub metered: Option<String>,
    /// `"10 req/s"`.
    pub rate: String,
    /// `"burst 20"`.
    pub burst: String,
    /// `"100,000 requests/month"` or `"Unlimited"`.
    pub quota: String,
    /// Given to new apps.
    pub is_default: bool,
}

impl From<&Plan> for PlanView {
    fn from(p: &Plan) -> Self {
        let price = match (p.flat_price_minor, p.unit_price_minor_per_1000) {
            (0, 0) => "Free".to_owned(),
            (0, _) => "Pay as you go".to_owned(),
            (flat, _) => format!("{}/month", Money::from_stored(flat, &p.currency).format()),
        };
        let metered = (p.unit_price_minor_per_1000 > 0)
            .then(|| format!("+ {} per 1,000 requests", Money::from_stored(p.unit_price_minor_per_1000, &p.currency).format()));
        PlanView {
            id: p.id,
            slug: p.slug.clone(),
            name: p.name.clone(),
            price,
            metered,
            rate: format!("{} req/s", count(p.rate_per_second)),
            burst: format!("burst {}", count(p.burst)),
            quota: p.monthly_quota.map_or_else(|| "Unlimited".to_owned(), |q| format!("{} requests/month", count(q))),
            is_default: p.is_default,
        }
    }
}

/// An API with its plans.
#[derive(Debug, Clone)]
pub struct ApiView {
    /// URL-safe name.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Gateway path prefix.
    pub route_prefix: String,
    /// `{gateway_url}{route_prefix}`.
    pub base_url: String,
    /// Whether an OpenAPI document is stored.
    pub has_openapi: bool,
    /// Whether only admins can see it.
    pub is_draft: bool,
    /// Plans, cheapest first.
    pub plans: Vec<PlanView>,
    /// The cheapest plan's price, for the catalog card.
    pub from_price: String,
}

impl ApiView {
    /// Build from the store's rows.
    pub fn new(api: &Api, plans: &[Plan], gateway_url: &str) -> ApiView {
        let plans: Vec<PlanView> = plans.iter().map(PlanView::from).collect();
        ApiView {
            slug: api.slug.clone(),
            name: api.name.clone(),
            description: api.description.clone(),
            route_prefix: api.route_prefix.clone(),
            base_url: format!("{}{}", gateway_url.trim_end_matches('/'), api.route_prefix),
            has_openapi: api.openapi.is_some(),
            is_draft: api.visibility == turnpike_store::Visibility::Draft,
            from_price: plans.first().map_or_else(|| "No plans yet".to_owned(), |p| p.price.clone()),
            plans,
        }
    }

    /// A ready-to-run request against the API.
    pub fn curl(&self, key: &str) -> String {
        format!("curl -H \"Authorization: Bearer {key}\" {}/hello", self.base_url)
    }
}
