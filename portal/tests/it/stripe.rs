//! stripe tests (filled in by that area).
