//! account_flows tests (filled in by that area).
