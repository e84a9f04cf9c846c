//! devx tests (filled in by that area).
