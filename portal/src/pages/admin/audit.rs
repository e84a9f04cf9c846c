//! The audit log: every admin and key action, filtered by action and actor, newest first.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use serde::Deserialize;
use turnpike_store::domain::Email;
use turnpike_store::AuditFilter;

use super::common::{page_offset, Section, PER_PAGE};
use crate::ctx::{Chrome, Ctx};
use crate::error::PortalResult;
use crate::format::datetime;
use crate::PortalState;

/// `?action=&actor=&page=`; `actor` is an email or an account id.
#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    action: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    page: Option<String>,
}

/// A row of the log.
#[derive(Debug, Clone)]
pub struct AuditView {
    /// When.
    pub at: String,
    /// Actor's email, `account 7` when deleted, or `system`.
    pub actor: String,
    /// Actor id, for the filter link.
    pub actor_id: Option<i64>,
    /// Action.
    pub action: String,
    /// Target.
    pub target: String,
    /// Detail.
    pub detail: String,
}

/// `GET /admin/audit`.
#[derive(Debug, Template, WebTemplate)]
#[template(path = "admin/audit.html")]
pub struct AuditPage {
    chrome: Chrome,
    section: Section,
    action: String,
    actor: String,
    actions: Vec<String>,
    entries: Vec<AuditView>,
    actor_error: Option<String>,
    page: i64,
    prev: Option<String>,
    next: Option<String>,
}

fn link(action: &str, actor: &str, page: i64) -> String {
    let q: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("action", action)
        .append_pair("actor", actor)
        .append_pair("page", &page.to_string())
        .finish();
    format!("/admin/audit?{q}")
}

/// `GET /admin/audit?action=&actor=&page=`.
pub async fn list(State(state): State<PortalState>, ctx: Ctx, Query(query): Query<AuditQuery>) -> PortalResult<AuditPage> {
    let (page, offset) = page_offset(query.page.as_deref());
    let action = query.action.trim().chars().take(100).collect::<String>();
    let actor = query.actor.trim().chars().take(200).collect::<String>();
    let mut actor_error = None;
    let actor_id = if actor.is_empty() {
        None
    } else if let Ok(id) = actor.parse::<i64>() {
        Some(id)
    } else {
        match Email::parse(&actor) {
            Ok(email) => match state.store.find_account_by_email(&email).await? {
                Some((account, _)) => Some(account.id),
                None => {
                    actor_error = Some(format!("No account has the email {actor}."));
                    // Match nothing rather than everything.
                    Some(-1)
                }
            },
            Err(_) => {
                actor_error = Some("Enter the actor's email or account id.".to_owned());
                Some(-1)
            }
        }
    };
    let filter = AuditFilter { action: (!action.is_empty()).then(|| action.clone()), actor_id, ..AuditFilter::default() };
    let found = state.store.search_audit(&filter, offset, PER_PAGE).await?;
    let entries = found
        .rows
        .into_iter()
        .map(|r| AuditView {
            at: datetime(r.entry.at),
            actor: match (r.actor_email, r.entry.actor_id) {
                (Some(e), _) => e,
                (None, Some(id)) => format!("account {id}"),
                (None, None) => "system".to_owned(),
            },
            actor_id: r.entry.actor_id,
            action: r.entry.action,
            target: r.entry.target,
            detail: r.entry.detail,
        })
        .collect();
    Ok(AuditPage {
        chrome: ctx.chrome().await?,
        section: Section::Audit,
        actions: state.store.audit_actions().await?,
        prev: (page > 1).then(|| link(&action, &actor, page - 1)),
        next: found.has_more.then(|| link(&action, &actor, page + 1)),
        action,
        actor,
        entries,
        actor_error,
        page,
    })
}
