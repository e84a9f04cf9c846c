//! Turnpike's data plane.
//!
//! Every request goes through explicit phases (`phases/`) over a per-request context, each of which may
//! answer early: **route** (host + path prefix → API and upstream target), **authenticate** (API
//! key → identity and entitlement, through a cache that change events invalidate), **limit**
//! (rate + monthly quota, checked and consumed atomically; the admitted count is the billable
//! truth), **forward** (streaming both ways) and **meter** (status, bytes, latency into the same
//! hourly bucket). Background tasks flush counters to the database and follow the change log.

mod access;
mod analytics;
mod auth;
mod config;
pub mod counters;
mod flusher;
mod follower;
#[doc(hidden)]
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
mod gateway;
mod headers;
pub mod jwt;
mod linger;
mod operations;
pub mod otlp;
pub mod path;
mod phases;
mod problem;
mod proxy;
mod proxy_protocol;
mod routes;
pub mod trace;
pub mod upstream_tls;

pub use config::GatewayConfig;
pub use counters::{Counters, LocalCounters, RedisCounters};
pub use gateway::{Gateway, GatewayStats};
pub use routes::{check_target, RouteTable};
