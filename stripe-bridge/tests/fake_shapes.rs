//! The fake Stripe in `testkit/` answers with Stripe's own object shapes: every object it creates
//! or holds parses as async-stripe's typed object of that kind (generated from Stripe's OpenAPI
//! document for the API version the client sends, so every field Stripe's schema requires must be
//! present with its type), and the enum fields Turnpike depends on hold known values.

use serde_json::Value;
use stripe_shared::{
    CheckoutSession, CheckoutSessionPaymentStatus, Customer, Invoice, Price, PriceType, Product, Subscription, SubscriptionStatus,
};
use turnpike_testkit::fake_stripe::FakeStripe;

const KEY: &str = "sk_test_shapes";

async fn post(fake: &FakeStripe, path: &str, form: &[(&str, &str)]) -> String {
    let r = reqwest::Client::new().post(format!("{}v1/{path}", fake.base)).bearer_auth(KEY).form(form).send().await.unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r.text().await.unwrap()
}

fn parse<T: miniserde::Deserialize>(what: &str, json: &str) -> T {
    miniserde::json::from_str(json).unwrap_or_else(|_| panic!("the fake's {what} is not a Stripe {what}: {json}"))
}

fn each<T: miniserde::Deserialize>(fake: &FakeStripe, object: &str) -> Vec<T> {
    let all = fake.objects(object);
    assert!(!all.is_empty(), "the journey made a {object}");
    all.iter().map(|o: &Value| parse(object, &o.to_string())).collect()
}

#[tokio::test]
async fn every_object_the_fake_makes_is_a_typed_stripe_object() {
    let fake = FakeStripe::start(KEY).await;
    let customer: Customer = parse("customer", &post(&fake, "customers", &[("email", "dev@example.com")]).await);
    let product: Product = parse("product", &post(&fake, "products", &[("id", "turnpike_plan_1"), ("name", "Echo — Pro")]).await);
    let price: Price = parse(
        "price",
        &post(
            &fake,
            "prices",
            &[
                ("product", product.id.as_str()),
                ("currency", "usd"),
                ("unit_amount", "2900"),
                ("recurring[interval]", "month"),
                ("lookup_key", "turnpike_plan_1_v1"),
            ],
        )
        .await,
    );
    assert!(matches!(price.type_, PriceType::Recurring));
    assert_eq!((price.unit_amount, price.lookup_key.as_deref()), (Some(2900), Some("turnpike_plan_1_v1")));
    assert_eq!(price.product.id().as_str(), "turnpike_plan_1");

    let session: CheckoutSession = parse(
        "checkout.session",
        &post(
            &fake,
            "checkout/sessions",
            &[
                ("mode", "subscription"),
                ("customer", customer.id.as_str()),
                ("line_items[0][price]", price.id.as_str()),
                ("line_items[0][quantity]", "1"),
            ],
        )
        .await,
    );
    assert!(session.url.is_some());
    let completed: CheckoutSession = parse("checkout.session", &fake.complete_checkout(session.id.as_str(), "paid").to_string());
    assert!(matches!(completed.payment_status, CheckoutSessionPaymentStatus::Paid));

    let subs: Vec<Subscription> = each(&fake, "subscription");
    assert!(matches!(subs[0].status, SubscriptionStatus::Active));
    assert_eq!(subs[0].items.data[0].price.id, price.id);

    post(
        &fake,
        "invoiceitems",
        &[("customer", customer.id.as_str()), ("currency", "usd"), ("amount", "1234"), ("metadata[subscription_id]", "7")],
    )
    .await;
    fake.invoice_pending_items();
    let invoices: Vec<Invoice> = each(&fake, "invoice");
    assert_eq!(invoices[0].lines.data[0].amount, 1234);
    assert_eq!(invoices[0].lines.data[0].metadata.get("subscription_id").map(String::as_str), Some("7"));

    let _: Vec<Customer> = each(&fake, "customer");
    let _: Vec<Product> = each(&fake, "product");
    let _: Vec<Price> = each(&fake, "price");
    let _: Vec<CheckoutSession> = each(&fake, "checkout.session");
}
