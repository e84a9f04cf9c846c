//! Phase 2, authenticate: the credential (an API key, or a JWT where the API accepts them) →
//! the key's identity → the app's grant on this API (subscribed, paid for).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use http::Request;

use super::{Ctx, Step};
use crate::auth::{self, CredentialSource, Grant, Identity};
use crate::gateway::Inner;
use crate::problem::Problem;
use crate::routes::Route;

/// An authenticated, entitled request.
pub(crate) struct Authenticated {
    pub(crate) identity: Arc<Identity>,
    /// Index of this API's grant in the app's grants.
    grant: usize,
    /// Where the credential came from, so that it is stripped before forwarding.
    pub(crate) source: CredentialSource,
}

impl Authenticated {
    /// The app's grant on the routed API.
    pub(crate) fn grant(&self) -> &Grant {
        &self.identity.app.grants[self.grant]
    }
}

pub(crate) async fn run<B>(inner: &Inner, req: &Request<B>, route: &Route, ctx: &mut Ctx) -> Step<Authenticated> {
    let Some((presented, source)) = auth::extract(req.headers(), req.uri().query(), route.allow_query_key) else {
        inner.refused_without_lookup.fetch_add(1, Ordering::Relaxed);
        return Err(Problem::MissingKey.response());
    };
    ctx.now_us = inner.clock.now_micros();
    let now = ctx.now_us.div_euclid(1_000_000);
    let mut jwt = None;
    let hash = if source == CredentialSource::Authorization && crate::jwt::looks_like_jwt(presented) {
        // A JWT, where this API accepts them; it names the key the call is made under.
        let Some(verifier) = inner.cfg.jwt.get(&*route.slug) else {
            inner.refused_without_lookup.fetch_add(1, Ordering::Relaxed);
            return Err(Problem::InvalidKey.response());
        };
        let key_id = match verifier.verify(presented, now) {
            Ok(id) => id,
            Err(e) => {
                inner.refused_without_lookup.fetch_add(1, Ordering::Relaxed);
                return Err(Problem::InvalidToken.response_with(&format!(",\"reason\":\"{}\"", jwt_reason(&e))));
            }
        };
        jwt = Some(verifier);
        match inner.keys.hash_for_key_id(key_id).await {
            Ok(Some(h)) => h,
            Ok(None) => return Err(Problem::InvalidToken.response_with(",\"reason\":\"unknown_key\"")),
            Err(e) => {
                tracing::error!(error = %e, "key lookup failed");
                return Err(Problem::Unavailable.response());
            }
        }
    } else {
        let Ok(hash) = turnpike_store::domain::ApiKey::verify(presented) else {
            inner.refused_without_lookup.fetch_add(1, Ordering::Relaxed);
            return Err(Problem::InvalidKey.response());
        };
        hash
    };
    let identity = match inner.keys.resolve(hash, now).await {
        Ok(Some(i)) => i,
        Ok(None) => return Err(Problem::InvalidKey.response()),
        Err(e) => {
            tracing::error!(error = %e, "key lookup failed");
            return Err(Problem::Unavailable.response());
        }
    };
    // A token may name only keys of the apps/accounts its block is bound to: whoever mints
    // tokens for this API must not be able to bill any developer's key.
    if jwt.is_some_and(|v| !v.may_name(identity.app_id, identity.account_id)) {
        return Err(Problem::InvalidToken.response_with(",\"reason\":\"key_not_allowed\""));
    }
    ctx.identity = Some(identity.clone());
    if !identity.enabled || identity.expires_at.is_some_and(|t| t <= now) {
        return Err(Problem::KeyDisabled.response());
    }
    let Some(grant) = identity.grant_index(route.api_id) else {
        return Err(Problem::NotSubscribed.response());
    };
    let authenticated = Authenticated { identity, grant, source };
    let grant = authenticated.grant();
    ctx.plan_requests = Some(grant.requests.clone());
    if !grant.status_ok {
        let link = format!(",\"billing_url\":\"{}/billing\"", inner.cfg.portal_url.trim_end_matches('/'));
        return Err(Problem::PaymentRequired.response_with(&link));
    }
    Ok(authenticated)
}

fn jwt_reason(e: &crate::jwt::JwtError) -> &'static str {
    use crate::jwt::JwtError;
    match e {
        JwtError::Invalid => "invalid",
        JwtError::Expired => "expired",
        JwtError::NotYetValid => "not_yet_valid",
        JwtError::WrongAudience => "wrong_issuer_or_audience",
        JwtError::NoConsumer => "no_key_claim",
    }
}
