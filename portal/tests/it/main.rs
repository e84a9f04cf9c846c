//! The portal suite: the real router on a real socket, driven by an HTTP client with a cookie
//! jar, over a fresh database per test on SQLite and (when reachable) PostgreSQL.

mod account_flows;
mod accounts;
mod actions;
mod admin;
mod admin_api;
mod admin_reports;
mod analytics;
mod api;
mod apps;
mod billing;
mod catalog;
mod catalog_writes;
mod config_apply;
mod credentials;
mod dashboard_figures;
mod devx;
mod exports;
mod helpers;
mod honest_status;
mod ledger;
mod perf;
mod security;
mod stripe;
mod structure;
mod subscribe;
mod webhooks;
