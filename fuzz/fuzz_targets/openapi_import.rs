#![no_main]
//! OpenAPI import on arbitrary bytes (seeded with real JSON and YAML specs): no panic, refusals
//! are listed, and an accepted document is stored as JSON that re-imports to the same spec.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| turnpike_portal::fuzzing::check_import(bytes));
