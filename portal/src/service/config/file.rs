//! The declarative file's shape (`turnpike.yaml`): serde reads and writes it, schemars turns the
//! same types into the JSON Schema shipped at `docs/turnpike-config.schema.json`. Unknown fields
//! are refused, so a typo is an error, not a silently ignored setting.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The catalog as code: every API, its plans and their current prices.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// The APIs, by slug (the key: an API whose slug is not in the file is "not in file").
    #[serde(default)]
    pub apis: Vec<ApiConfig>,
}

/// One API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// URL-safe identifier: lower-case letters, digits and `-` (the key; renaming one is a
    /// delete and a create).
    pub slug: String,
    /// Display name, 1–80 characters.
    pub name: String,
    /// Description, at most 2000 characters.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Gateway path prefix such as `/payments/v1`.
    pub route_prefix: String,
    /// Host to match (`api.example.com`); omitted: any host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Upstream targets (1–32), `http://` or `https://`.
    pub targets: Vec<TargetConfig>,
    /// `draft` (not routed), `public` (listed) or `private` (routed, not listed).
    #[serde(default = "draft")]
    pub visibility: String,
    /// `alpha`, `beta`, `stable` or `deprecated`.
    #[serde(default = "stable")]
    pub lifecycle: String,
    /// Whether the gateway accepts the key as `?api_key=`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_query_key: bool,
    /// The OpenAPI document (JSON or YAML), as a path relative to this file; omitted: the
    /// stored document, if any, is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openapi: Option<String>,
    /// The plans, by slug.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plans: Vec<PlanConfig>,
}

/// One upstream target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// `http://` or `https://` URL with a host, optionally a port and a base path.
    pub url: String,
    /// Relative share of traffic, 1–1000.
    #[serde(default = "one")]
    pub weight: u32,
}

/// One plan of an API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanConfig {
    /// URL-safe identifier, unique per API (the key).
    pub slug: String,
    /// Display name, 1–80 characters.
    pub name: String,
    /// Sustained requests per second, 1–1,000,000.
    pub rate_per_second: i64,
    /// Requests allowed at once above the rate, 1–10,000,000.
    pub burst: i64,
    /// Requests per billing period; omitted: unlimited. A `quota` price with a hard cap sets
    /// it to its included requests, so it must say the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly_quota: Option<i64>,
    /// Given to new apps automatically (at most one plan per API).
    #[serde(default, skip_serializing_if = "is_false")]
    pub default: bool,
    /// Seconds each gateway admits on its local limits while Redis is unreachable (1–86,400);
    /// omitted: refuse with 503.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_open_seconds: Option<i64>,
    /// The current price; a different one than the newest stored version adds a version
    /// (versions are never changed or removed). Omitted: prices are left alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<PriceConfig>,
}

/// A price version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceConfig {
    /// ISO 4217 code, lower case (`usd`).
    pub currency: String,
    /// The pricing, amounts in minor units: `{model: free}`, `{model: flat, amount: 4900}`,
    /// `{model: per_unit, unit_price: 50, per: 1000}`, `{model: graduated|volume, tiers: [{up_to:
    /// 1000, unit_price: 5}, {up_to: null, unit_price: 2}]}`, `{model: package, package_size:
    /// 1000, package_price: 100}`, `{model: quota, base_fee: 4900, included: 100000, overage:
    /// {kind: hard_cap}}` or `overage: {kind: metered, unit_price: 10, per: 1000}`.
    pub pricing: serde_json::Value,
    /// Free trial days, 0–365.
    #[serde(default)]
    pub trial_days: i64,
    /// `admitted` or `admitted_non_5xx`.
    #[serde(default = "admitted")]
    pub billable: String,
}

fn draft() -> String {
    "draft".into()
}
fn stable() -> String {
    "stable".into()
}
fn admitted() -> String {
    "admitted".into()
}
fn one() -> u32 {
    1
}
#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_false(b: &bool) -> bool {
    !*b
}

/// The JSON Schema of the file, pretty, ending in a newline (what `docs/` ships).
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(ConfigFile);
    let mut s = serde_json::to_string_pretty(&schema).unwrap_or_default();
    s.push('\n');
    s
}
