//! A developer's account actions: sign up, confirm the email address, ask to change it, revoke a
//! personal access token, delete the account.

use turnpike_ledger as ledger;
use turnpike_store::domain::Email;
use turnpike_store::{Account, AccountId, Audit, IssuedToken, Role, Store, StoreError, TokenPurpose};

use super::{taken, ServiceError, ServiceResult};

/// Create a developer account for `email` with an already hashed password, audited (`signup`,
/// by the new account).
/// A taken address is [`ServiceError::EmailTaken`] and stores nothing.
pub async fn signup(store: &Store, email: &Email, password_hash: &str, now: i64) -> ServiceResult<Account> {
    let audit = Audit::new(None, "signup", "", "");
    store.create_account_audited(email, password_hash, Role::Developer, Some(&audit), now).await.map_err(taken(ServiceError::EmailTaken))
}

/// Use an email-verification link: the account's email is confirmed (audited). `None`: the
/// link is dead (used, expired or unknown) and nothing changed.
pub async fn verify_email(store: &Store, token: &str, now: i64) -> ServiceResult<Option<AccountId>> {
    Ok(store.verify_email(token, now).await?.map(AccountId))
}

/// Issue the link that moves `account` to `new_email` (audited `email.change_requested`); the
/// caller mails it. Nothing changes until the link is opened.
pub async fn request_email_change(store: &Store, account: &Account, new_email: &Email, now: i64) -> ServiceResult<IssuedToken> {
    let audit = Audit::new(Some(account.id), "email.change_requested", format!("account:{}", account.id), "");
    Ok(store.issue_token_audited(account.id, TokenPurpose::ChangeEmail, Some(new_email.as_str()), Some(&audit), now).await?)
}

/// Revoke one of `account_id`'s personal access tokens; another account's token is
/// [`ServiceError::NotFound`].
pub async fn revoke_token(store: &Store, account_id: AccountId, token_id: i64, now: i64) -> ServiceResult<()> {
    let account_id = account_id.get();
    let audit = Audit::new(Some(account_id), "token.revoke", format!("token:{token_id}"), "");
    Ok(store.revoke_pat(account_id, token_id, &audit, now).await?)
}

/// Delete `account`: every live subscription ends now (its usage and unused base fee settled on
/// the period's final invoice, which stays in the books), every key is revoked, the account is
/// anonymised and every session ends. While Stripe bills one of its subscriptions this is
/// [`ServiceError::StripeBilled`] and nothing changes: Stripe would go on charging a deleted
/// account.
pub async fn delete(store: &Store, account: &Account, now: i64) -> ServiceResult<()> {
    let live: Vec<_> = store.account_subscriptions(account.id).await?.into_iter().filter(|s| s.status != "canceled").collect();
    for sub in &live {
        if store.stripe_subscription_state(sub.id).await?.is_some_and(|s| s.stripe_subscription_id.is_some()) {
            return Err(ServiceError::StripeBilled);
        }
    }
    let cancel = Audit::new(Some(account.id), "subscription.cancel", "", "account deleted");
    for sub in &live {
        match ledger::cancel_audited(store, sub.id, false, Some(&cancel), now).await {
            Ok(()) | Err(ledger::LedgerError::Store(StoreError::NotFound)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let audit = Audit::new(Some(account.id), "account.delete", format!("account:{}", account.id), "");
    store.delete_account(account.id, &audit, now).await?;
    store.delete_account_sessions(account.id, None).await?;
    Ok(())
}
