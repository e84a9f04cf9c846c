//! api tests (filled in by that area).
