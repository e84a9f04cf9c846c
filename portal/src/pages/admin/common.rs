//! What the console's pages share: their section tab, the acting admin, paging.

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
}

impl Section {
    /// `aria-current` value for the tab of `other`.
    pub fn current(self, other: &str) -> &'static str {
        let name = match self {
            Section::Overview => "overview",
            Section::Apis => "apis",
            Section::Developers => "developers",
            Section::Audit => "audit",
        };
        if name == other {
            "page"
        } else {
            "false"
        }
    }
}

/// The acting admin's account id (the guard already let only admins through).
pub(crate) fn actor(ctx: &crate::ctx::Ctx) -> crate::error::PortalResult<i64> {
    Ok(ctx.require_account()?.id)
}

/// Rows per page in the console's lists.
pub(crate) const PER_PAGE: i64 = 25;

/// `?page=N` (1-based; anything else is page 1) as an offset.
pub(crate) fn page_offset(page: Option<&str>) -> (i64, i64) {
    let page = page.and_then(|p| p.parse::<i64>().ok()).filter(|p| (1..=1_000_000).contains(p)).unwrap_or(1);
    (page, (page - 1) * PER_PAGE)
}
