//! billing tests (filled in by that area).
