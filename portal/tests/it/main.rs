//! The portal suite: the real router on a real socket, driven by an HTTP client with a cookie
//! jar, over a fresh database per test on SQLite and (when reachable) PostgreSQL.

mod accounts;
mod apps;
mod catalog;
mod helpers;
mod security;
