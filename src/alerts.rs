//! The alerts worker: quota-threshold and key-expiry emails (each exactly once per period and
//! threshold, see `turnpike_store::Alert`), and product owners' webhooks (events signed with the
//! endpoint's secret, retried with exponential backoff, every attempt in the delivery log).
//!
//! Both sweeps take `now` from the injectable clock and keep no state outside the database, so
//! any number of workers can run them, and a restarted worker picks up where the last one was.

use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::Full;
use sha2::Sha256;
use tokio::sync::watch;
use turnpike_store::clock::SharedClock;
use turnpike_store::period::monthly_period;
use turnpike_store::{Alert, DeliveryOutcome, Store, StoreError};

/// A key's developer is warned this many days before it expires.
pub const KEY_EXPIRY_DAYS: i64 = 7;
/// Attempts per delivery before it is marked failed (the last one about 2 hours after the first).
pub const MAX_ATTEMPTS: i64 = 8;
/// How long one attempt may take (connect + answer).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Sweeps re-read this many seconds before their saved position: rows committed late (a flush or
/// a transaction that took its time) are still seen; the store's unique keys drop the repeats.
const OVERLAP: i64 = 300;

/// The HTTPS client that delivers webhooks (webpki roots, HTTP/1.1).
pub type WebhookClient =
    hyper_util::client::legacy::Client<hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>, Full<Bytes>>;

/// Build the delivery client.
pub fn webhook_client() -> Result<WebhookClient, String> {
    let tls = turnpike_gateway::upstream_tls::client_config(None).map_err(|e| e.0)?;
    let https = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config((*tls).clone()).https_or_http().enable_http1().build();
    Ok(hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(https))
}

/// The `Turnpike-Signature` header for `body` sent at `t`: `t=<unix seconds>,v1=<hex
/// HMAC-SHA256 of "<t>.<body>" with the endpoint's secret>` (Stripe's scheme, so receivers can
/// reuse their verification code; check `t` against replays).
pub fn signature(secret: &str, t: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length: this never returns early.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else { return String::new() };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Seconds before attempt `attempts + 1` (after `attempts` failures): 30 s doubling, at most
/// one hour, plus up to 10 % jitter so a fleet of endpoints recovering together is not hit at once.
pub fn backoff(attempts: i64) -> i64 {
    let base = 30i64.saturating_mul(1 << attempts.clamp(0, 7)).min(3600);
    base + rand::Rng::gen_range(&mut rand::thread_rng(), 0..=base / 10)
}

fn day(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .map(|t| format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()))
        .unwrap_or_default()
}

/// Percentages of `quota` that `used` has reached, from `percents` ("80,100"; bad entries ignored).
pub fn crossed(percents: &str, used: i64, quota: i64) -> Vec<i64> {
    let mut v: Vec<i64> = percents
        .split(',')
        .filter_map(|p| p.trim().parse::<i64>().ok())
        .filter(|p| (1..=1000).contains(p) && i128::from(used) * 100 >= i128::from(quota) * i128::from(*p))
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Check quotas (subscriptions with usage written since the last sweep) and key expiry; send
/// what is due. Returns how many alerts were sent.
pub async fn sweep_alerts(store: &Store, portal_url: &str, now: i64) -> Result<usize, StoreError> {
    let since = store.sweep_cursor("quota_alerts").await?.unwrap_or(now - 32 * 86_400) - OVERLAP;
    let mut sent = 0;
    for w in store.quota_watch(since).await? {
        let period = monthly_period(w.billing_anchor, now);
        let used = store.subscription_usage(w.subscription_id, period.start, period.end).await?;
        let crossed = crossed(&w.quota_alert_percents, used, w.monthly_quota);
        let Some(&top) = crossed.last() else { continue };
        let already = store.alerts_sent("quota", w.subscription_id, period.start).await?;
        if already.contains(&top) {
            continue;
        }
        let subject = format!("You have used {top}% of your monthly quota for {}", w.api_name);
        let body = format!(
            "Your app \"{}\" has made {used} of the {} requests its {} plan of {} allows from {} to {} ({top}%).\n\n{}\n\
             See your usage and change plans: {portal_url}/billing\n",
            w.app_name,
            w.monthly_quota,
            w.plan_name,
            w.api_name,
            day(period.start),
            day(period.end),
            if top >= 100 { "Further requests are refused (429) until the period ends or you change plans." } else { "" },
        );
        let alert = Alert {
            kind: "quota",
            subject_id: w.subscription_id,
            period_start: period.start,
            threshold: top,
            also_covers: crossed.iter().copied().filter(|p| *p < top && !already.contains(p)).collect(),
            email: (w.email.clone(), subject, body),
            event: (
                "quota.threshold_reached",
                serde_json::json!({
                    "subscription_id": w.subscription_id, "account_id": w.account_id, "percent": top, "used": used,
                    "quota": w.monthly_quota, "period_start": period.start, "period_end": period.end,
                }),
            ),
        };
        if store.send_alert_once(&alert, now).await? {
            sent += 1;
        }
    }
    store.advance_sweep_cursor("quota_alerts", now).await?;

    for k in store.expiring_keys(now, now + KEY_EXPIRY_DAYS * 86_400).await? {
        let subject = format!("Your API key \"{}\" expires on {}", k.name, day(k.expires_at));
        let body = format!(
            "The key \"{}\" ({}…) of your app \"{}\" stops working on {} (UTC). Rotate it before then: {portal_url}/apps\n",
            k.name,
            k.display_prefix,
            k.app_name,
            day(k.expires_at),
        );
        let alert = Alert {
            kind: "key_expiry",
            subject_id: k.key_id,
            period_start: k.expires_at,
            threshold: KEY_EXPIRY_DAYS,
            also_covers: Vec::new(),
            email: (k.email.clone(), subject, body),
            event: ("key.expiring", serde_json::json!({ "key_id": k.key_id, "account_id": k.account_id, "expires_at": k.expires_at })),
        };
        if store.send_alert_once(&alert, now).await? {
            sent += 1;
        }
    }
    Ok(sent)
}

/// Raise events for what was recorded since the last sweep, then attempt every delivery due.
/// Returns how many deliveries were attempted.
pub async fn deliver_webhooks(store: &Store, client: &WebhookClient, now: i64) -> Result<usize, StoreError> {
    let since = store.sweep_cursor("events").await?.unwrap_or(now - 86_400) - OVERLAP;
    store.emit_recorded_events(since, now).await?;
    store.advance_sweep_cursor("events", now).await?;
    let due = store.claim_due_deliveries(now, 2 * ATTEMPT_TIMEOUT.as_secs() as i64 + 60, 50).await?;
    let n = due.len();
    for d in due {
        let body = Bytes::from(d.payload.into_bytes());
        let req = http::Request::post(&d.url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::USER_AGENT, "Turnpike-Webhooks/1")
            .header("turnpike-event-id", d.event_id.to_string())
            .header("turnpike-event-type", &d.event_type)
            .header("turnpike-signature", signature(&d.secret, now, &body))
            .body(Full::new(body));
        let result = match req {
            Ok(req) => match tokio::time::timeout(ATTEMPT_TIMEOUT, client.request(req)).await {
                Ok(Ok(resp)) => Ok(i64::from(resp.status().as_u16())),
                Ok(Err(e)) => Err(format!("request failed: {e}")),
                Err(_) => Err(format!("no answer within {} s", ATTEMPT_TIMEOUT.as_secs())),
            },
            Err(e) => Err(format!("bad request: {e}")),
        };
        let (status, error) = match result {
            Ok(s) if (200..300).contains(&s) => {
                store.finish_delivery(d.id, &DeliveryOutcome::Delivered { status: s }, now).await?;
                continue;
            }
            Ok(s) => (Some(s), format!("answered {s}")),
            Err(e) => (None, e),
        };
        let outcome = if d.attempts + 1 >= MAX_ATTEMPTS {
            DeliveryOutcome::Failed { status, error }
        } else {
            DeliveryOutcome::Retry { status, error, next_attempt_at: now + backoff(d.attempts) }
        };
        store.finish_delivery(d.id, &outcome, now).await?;
    }
    Ok(n)
}

/// Run both sweeps every `every` until `stop`.
pub async fn run(store: Store, clock: SharedClock, portal_url: String, every: Duration, mut stop: watch::Receiver<bool>) {
    let client = match webhook_client() {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::error!(error = %e, "cannot build the webhook client; webhooks are not delivered");
            None
        }
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let now = clock.now();
        if let Err(e) = sweep_alerts(&store, &portal_url, now).await {
            tracing::warn!(error = %e, "alert sweep failed; retrying next time");
        }
        if let Some(client) = &client {
            if let Err(e) = deliver_webhooks(&store, client, now).await {
                tracing::warn!(error = %e, "webhook sweep failed; retrying next time");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_are_crossed_at_exact_integer_percentages() {
        assert_eq!(crossed("80,100", 79, 100), Vec::<i64>::new());
        assert_eq!(crossed("80,100", 80, 100), vec![80]);
        assert_eq!(crossed("100, 80", 100, 100), vec![80, 100]);
        // 8 of 10 is 80 %; 7 of 9 is 77.7 %.
        assert_eq!(crossed("80", 8, 10), vec![80]);
        assert_eq!(crossed("80", 7, 9), Vec::<i64>::new());
        // Junk and out-of-range entries are ignored; no overflow near i64::MAX.
        assert_eq!(crossed("x,0,-5,80", i64::MAX, i64::MAX), vec![80]);
    }

    #[test]
    fn backoff_doubles_from_30_seconds_to_an_hour_with_bounded_jitter() {
        for (attempts, base) in [(0, 30), (1, 60), (2, 120), (6, 1920), (7, 3600), (20, 3600)] {
            let b = backoff(attempts);
            assert!((base..=base + base / 10).contains(&b), "attempt {attempts}: {b}");
        }
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_time_dot_body() {
        // Expected value from Python's hmac module: hmac.new(b"whsec", b'1700000000.{"a":1}', sha256).
        let expected = "t=1700000000,v1=8ad37ba156048ae0e0a5533c75cdf26fee88b07f93cb57ee4c80adb053012032";
        assert_eq!(signature("whsec", 1_700_000_000, b"{\"a\":1}"), expected);
        assert_ne!(signature("other", 1_700_000_000, b"{\"a\":1}"), expected);
    }
}
