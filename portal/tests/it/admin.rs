//! admin tests (filled in by that area).
