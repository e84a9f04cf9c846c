//! Counter-store tests: the limiter step on each backend, exactly.

mod counters;
