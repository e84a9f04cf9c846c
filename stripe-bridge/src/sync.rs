//! Stripe as a mirror that the worker converges (issue #16).
//!
//! - **Catalogue**: every paid plan's current price version has a Stripe Product
//!   (`turnpike_plan_{plan_id}`, Stripe accepts our own product ids) and a monthly Price found by
//!   its `lookup_key` `turnpike_plan_{plan_id}_v{version}`. Before creating anything the bridge asks
//!   Stripe for that id / lookup key, and the creates carry idempotency keys, so a crash between
//!   Stripe's answer and the local record, or two workers, never make a second Product or Price.
//!   Superseded versions are archived (`active=false`): existing subscriptions keep them, new
//!   Checkouts cannot pick them.
//! - **Lifecycle**: page handlers only change the local subscription (bumping its `revision`). The
//!   worker finds subscriptions whose local state differs from what Stripe holds (the mirror in
//!   `stripe_subscriptions`), sends the difference with `Idempotency-Key`
//!   `tp-sub-{subscription_id}-r{revision}`, and records the new mirror. Re-sending after a crash
//!   is the same request with the same key: Stripe replays its first answer.

use serde::Serialize;
use stripe_client_core::{RequestBuilder, StripeMethod};
use turnpike_store::{Plan, Store, StripePrice};

use crate::{key, BridgeError, Stripe};

/// The catalogue lookup key of a plan's price version.
pub fn lookup_key(plan_id: i64, version: i64) -> String {
    format!("turnpike_plan_{plan_id}_v{version}")
}

/// The Stripe Product id of a plan.
pub fn product_id(plan_id: i64) -> String {
    format!("turnpike_plan_{plan_id}")
}

/// The plan a catalogue lookup key names (`turnpike_plan_{plan_id}_v{version}`).
pub fn plan_of_lookup_key(k: &str) -> Option<i64> {
    let rest = k.strip_prefix("turnpike_plan_")?;
    let (plan, version) = rest.split_once("_v")?;
    version.parse::<i64>().ok()?;
    plan.parse().ok()
}

use stripe_shared::{Price, Product, Subscription};
use stripe_types::List;

#[derive(Serialize)]
struct ByLookupKeys<'a> {
    lookup_keys: [&'a str; 1],
}

#[derive(Serialize)]
struct ByIds<'a> {
    ids: [&'a str; 1],
}

#[derive(Serialize)]
struct ProductForm<'a> {
    id: &'a str,
    name: &'a str,
    metadata: PlanIdMeta,
}

#[derive(Serialize)]
struct PlanIdMeta {
    turnpike_plan_id: i64,
}

#[derive(Serialize)]
struct PriceForm<'a> {
    product: &'a str,
    currency: &'a str,
    unit_amount: i64,
    recurring: crate::Recurring,
    lookup_key: &'a str,
    metadata: PriceMeta,
}

#[derive(Serialize)]
struct PriceMeta {
    turnpike_plan_id: i64,
    turnpike_plan_version: i64,
}

#[derive(Serialize)]
struct Archive {
    active: bool,
}

#[derive(Serialize)]
struct CancelNow {
    /// Turnpike credits the unused base fee of a subscription canceled now; Stripe likewise.
    prorate: bool,
}

#[derive(Serialize)]
struct SubscriptionUpdate {
    cancel_at_period_end: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    items: Vec<ItemPrice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    proration_behavior: Option<&'static str>,
}

#[derive(Serialize)]
struct ItemPrice {
    id: String,
    price: String,
}

#[derive(Serialize)]
struct NoParams {}

impl Stripe {
    pub(crate) async fn get<T: miniserde::Deserialize>(&self, path: &str, query: &impl Serialize) -> Result<T, BridgeError> {
        Ok(RequestBuilder::new(StripeMethod::Get, path).query(query).customize::<T>().send(&self.client).await?)
    }

    async fn delete<T: miniserde::Deserialize>(
        &self,
        path: &str,
        form: &impl Serialize,
        strategy: stripe::RequestStrategy,
    ) -> Result<T, BridgeError> {
        Ok(RequestBuilder::new(StripeMethod::Delete, path)
            .form(form)
            .customize::<T>()
            .request_strategy(strategy)
            .send(&self.client)
            .await?)
    }
}

/// The Stripe Price of `plan`'s current price `version`: from the local catalogue, else found at
/// Stripe by lookup key, else created (with its Product if missing). Never a duplicate.
pub async fn ensure_price(store: &Store, stripe: &Stripe, plan: &Plan, version: i64, now: i64) -> Result<StripePrice, BridgeError> {
    let lk = lookup_key(plan.id, version);
    if let Some(p) = store.stripe_price(&lk).await? {
        return Ok(p);
    }
    let found: List<Price> = stripe.get("/prices", &ByLookupKeys { lookup_keys: [&lk] }).await?;
    let (price_id, product) = match found.data.into_iter().next() {
        Some(p) => (p.id.to_string(), p.product.id().to_string()),
        None => {
            let product = product_id(plan.id);
            let have: List<Product> = stripe.get("/products", &ByIds { ids: [&product] }).await?;
            if have.data.is_empty() {
                let name = match store.get_api(plan.api_id).await {
                    Ok(api) => format!("{} — {}", api.name, plan.name),
                    Err(_) => plan.name.clone(),
                };
                let form = ProductForm { id: &product, name: &name, metadata: PlanIdMeta { turnpike_plan_id: plan.id } };
                let _: Product = stripe.post("/products", &form, key(&format!("tp-product-{}", plan.id))?).await?;
            }
            let form = PriceForm {
                product: &product,
                currency: &plan.currency,
                unit_amount: plan.flat_price_minor,
                recurring: crate::Recurring { interval: "month" },
                lookup_key: &lk,
                metadata: PriceMeta { turnpike_plan_id: plan.id, turnpike_plan_version: version },
            };
            let p: Price = stripe.post("/prices", &form, key(&format!("tp-price-{}-v{version}", plan.id))?).await?;
            tracing::info!(price = %p.id, plan_id = plan.id, version, "stripe price created");
            (p.id.to_string(), product)
        }
    };
    let row = StripePrice {
        lookup_key: lk.clone(),
        plan_id: plan.id,
        version,
        stripe_product_id: product,
        stripe_price_id: price_id,
        active: true,
    };
    store.record_stripe_price(&row, now).await?;
    Ok(store.stripe_price(&lk).await?.unwrap_or(row))
}

/// The Stripe Price of a plan's current version (see [`ensure_price`]).
pub async fn ensure_plan_price(store: &Store, stripe: &Stripe, plan_id: i64, now: i64) -> Result<StripePrice, BridgeError> {
    let (plan, version) = store
        .stripe_catalogue_plans()
        .await?
        .into_iter()
        .find(|(p, _)| p.id == plan_id)
        .ok_or_else(|| BridgeError::Config(format!("plan {plan_id} is free: nothing to sell through Stripe")))?;
    ensure_price(store, stripe, &plan, version, now).await
}

/// What one catalogue sync did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CatalogueSync {
    /// Prices now in the catalogue (found or created).
    pub prices: usize,
    /// Superseded prices archived.
    pub archived: usize,
}

/// Worker step: every paid plan's current version has its Price; superseded versions archived.
pub async fn sync_catalogue(store: &Store, stripe: &Stripe, now: i64) -> Result<CatalogueSync, BridgeError> {
    let mut done = CatalogueSync::default();
    for (plan, version) in store.stripe_catalogue_plans().await? {
        ensure_price(store, stripe, &plan, version, now).await?;
        done.prices += 1;
        for old in store.stripe_prices_superseded(plan.id, version).await? {
            let k = key(&format!("tp-archive-{}", old.lookup_key))?;
            let _: Price = stripe.post(&format!("/prices/{}", old.stripe_price_id), &Archive { active: false }, k).await?;
            store.archive_stripe_price(&old.lookup_key, now).await?;
            tracing::info!(price = %old.stripe_price_id, lookup_key = %old.lookup_key, "stripe price archived");
            done.archived += 1;
        }
    }
    Ok(done)
}

/// Worker step: push every local lifecycle change Stripe does not hold yet (cancel now, cancel at
/// period end or resume, plan change). Returns how many subscriptions were pushed.
///
/// Proration follows Turnpike's rules: an upgrade applies at once with the base fee prorated by
/// the second (`create_prorations`); a downgrade to a paid plan waits for the period end locally
/// and so reaches Stripe at the period boundary, unprorated (`none`); a cancel now credits the
/// unused base fee (`prorate=true`).
pub async fn sync_subscriptions(store: &Store, stripe: &Stripe, now: i64) -> Result<usize, BridgeError> {
    let due = store.stripe_sync_due(50).await?;
    for d in &due {
        let k = key(&format!("tp-sub-{}-r{}", d.subscription_id, d.revision))?;
        let path = format!("/subscriptions/{}", d.stripe_subscription_id);
        if d.status == "canceled" {
            let _: Subscription = stripe.delete(&path, &CancelNow { prorate: true }, k).await?;
            store.record_stripe_pushed(d.subscription_id, d.revision, "canceled", d.cancel_at_period_end, d.plan_id, now).await?;
            tracing::info!(subscription_id = d.subscription_id, stripe = %d.stripe_subscription_id, "stripe subscription canceled");
            continue;
        }
        let mut form = SubscriptionUpdate { cancel_at_period_end: d.cancel_at_period_end, items: Vec::new(), proration_behavior: None };
        if d.stripe_plan_id != Some(d.plan_id) {
            let price = ensure_plan_price(store, stripe, d.plan_id, now).await?;
            let sub: Subscription = stripe.get(&path, &NoParams {}).await?;
            let item = sub.items.data.into_iter().next().ok_or_else(|| BridgeError::Stripe(format!("{path} has no item")))?;
            let old_fee = match d.stripe_plan_id {
                Some(p) => store.get_plan(p).await?.flat_price_minor,
                None => 0,
            };
            let new_fee = store.get_plan(d.plan_id).await?.flat_price_minor;
            form.items.push(ItemPrice { id: item.id.to_string(), price: price.stripe_price_id });
            form.proration_behavior = Some(if new_fee > old_fee { "create_prorations" } else { "none" });
        }
        let _: Subscription = stripe.post(&path, &form, k).await?;
        store.record_stripe_pushed(d.subscription_id, d.revision, "active", d.cancel_at_period_end, d.plan_id, now).await?;
        tracing::info!(subscription_id = d.subscription_id, revision = d.revision, stripe = %d.stripe_subscription_id, "stripe subscription updated");
    }
    Ok(due.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_keys_name_their_plan() {
        assert_eq!(lookup_key(12, 3), "turnpike_plan_12_v3");
        assert_eq!(plan_of_lookup_key("turnpike_plan_12_v3"), Some(12));
        assert_eq!(plan_of_lookup_key("turnpike_plan_12"), None);
        assert_eq!(plan_of_lookup_key("turnpike_plan_x_v1"), None);
        assert_eq!(plan_of_lookup_key("other_12_v1"), None);
    }
}
