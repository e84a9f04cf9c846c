//! Integration tests for turnpike-billing, through the public API only. One test binary with
//! modules keeps link time down.

mod properties;
