//! Oracles shared by the fuzz targets in `fuzz/` and this crate's property tests: each runs the
//! code under test on one input and panics when a property does not hold, so that `cargo fuzz`
//! (nightly, minutes) and proptest (stable, in `cargo test`) check the same things. Not API.

use serde_json::Value;

use crate::openapi_import::{import, ImportedSpec};

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// Any uploaded bytes: no panic; a refusal lists 1–26 non-empty problems; an accepted document
/// is stored as JSON whose fields are the ones reported, and importing that JSON again (what
/// the catalog does with a stored spec) gives the same spec.
pub fn check_import(bytes: &[u8]) {
    match import(bytes) {
        Ok(spec) => {
            check_accepted(&spec);
            let again = import(spec.json.as_bytes()).unwrap_or_else(|e| panic!("the stored JSON is refused: {e:?}\n{}", spec.json));
            assert_same(&spec, &again);
        }
        Err(errors) => {
            assert!((1..=26).contains(&errors.len()), "{} problems", errors.len());
            assert!(errors.iter().all(|e| !e.trim().is_empty()), "{errors:?}");
        }
    }
}

fn assert_same(a: &ImportedSpec, b: &ImportedSpec) {
    assert_eq!(
        (&a.json, &a.openapi, &a.title, &a.version, &a.description, a.paths, a.operations),
        (&b.json, &b.openapi, &b.title, &b.version, &b.description, b.paths, b.operations)
    );
}

fn check_accepted(spec: &ImportedSpec) {
    let doc: Value = serde_json::from_str(&spec.json).expect("the stored text is JSON");
    let v = spec.openapi.split('.').collect::<Vec<_>>();
    assert!(
        v.len() == 3 && v[0] == "3" && (v[1] == "0" || v[1] == "1") && !v[2].is_empty() && v[2].bytes().all(|b| b.is_ascii_digit()),
        "accepted openapi {:?}",
        spec.openapi
    );
    assert_eq!(doc["openapi"], Value::String(spec.openapi.clone()));
    let trimmed = |k: &str| doc["info"][k].as_str().map(str::trim).unwrap_or_default().to_owned();
    assert!(!spec.title.is_empty() && spec.title == trimmed("title"), "title {:?}", spec.title);
    assert!(!spec.version.is_empty() && spec.version == trimmed("version"), "version {:?}", spec.version);
    assert_eq!(spec.description.as_deref(), doc["info"]["description"].as_str());
    let empty = serde_json::Map::new();
    let paths = match doc.get("paths") {
        Some(p) => p.as_object().expect("paths is an object"),
        None => {
            assert!(spec.openapi.starts_with("3.1.") && (doc.get("webhooks").is_some() || doc.get("components").is_some()));
            &empty
        }
    };
    let paths: Vec<(&String, &Value)> = paths.iter().filter(|(k, _)| !k.starts_with("x-")).collect();
    assert_eq!(spec.paths, paths.len());
    assert!(paths.iter().all(|(p, _)| p.starts_with('/')), "{paths:?}");
    let operations = paths
        .iter()
        .map(|(_, item)| item.as_object().expect("path items are objects"))
        .flat_map(|ops| ops.iter().filter(|(m, _)| METHODS.contains(&m.as_str())))
        .inspect(|(m, op)| assert!(op.is_object(), "{m} is not an object"))
        .count();
    assert_eq!(spec.operations, operations);
}

/// One document rendered as JSON and as YAML imports the same way: both accepted with the same
/// spec, or both refused with the same problems; and each rendering passes [`check_import`].
pub fn check_import_value(doc: &Value) {
    let json = serde_json::to_string(doc).expect("a Value renders as JSON");
    let Ok(yaml) = serde_yaml::to_string(doc) else { return };
    check_import(json.as_bytes());
    check_import(yaml.as_bytes());
    match (import(json.as_bytes()), import(yaml.as_bytes())) {
        (Ok(a), Ok(b)) => assert_same(&a, &b),
        (Err(a), Err(b)) => assert_eq!(a, b, "JSON and YAML refusals differ for\n{json}\n{yaml}"),
        (a, b) => panic!("JSON gives {a:?} but YAML gives {b:?} for\n{json}\n{yaml}"),
    }
}

/// A small valid 3.0 document, the starting point of structure-aware inputs.
pub fn seed_spec() -> Value {
    serde_json::json!({
        "openapi": "3.0.3",
        "info": {"title": "Pets", "version": "1.0.0", "description": "A pet store."},
        "paths": {
            "/pets": {
                "get": {"responses": {"200": {"description": "ok"}}},
                "post": {"requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}}, "responses": {"201": {"description": "created"}}},
                "parameters": [{"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 100}}]
            },
            "/pets/{id}": {"get": {"responses": {"200": {"description": "ok"}, "404": {"description": "gone"}}}}
        },
        "components": {"schemas": {"Pet": {"type": "object", "properties": {"id": {"type": "integer", "format": "int64"}, "weight": {"type": "number", "example": 1.5}}}}}
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f).map(Value::Number)),
            prop_oneof!["3\\.[0-2]\\.[0-9a-z-]{0,3}", "[ -~]{0,8}", "\\PC{0,6}", "(get|post|/x|~|null|true|yes|0x1|1e3|\\.inf| )"]
                .prop_map(Value::String),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        scalar().prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map("(get|post|/p|p|200|openapi|info|title|version|[ -~]{0,4})", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// JSON pointers into the seed spec, where a generated value goes.
    const POINTERS: [&str; 10] = [
        "/openapi",
        "/info",
        "/info/title",
        "/info/version",
        "/info/description",
        "/paths",
        "/paths/~1pets",
        "/paths/~1pets/get",
        "/paths/~1pets/parameters",
        "/components/schemas/Pet/properties/weight/example",
    ];

    proptest! {
        #[test]
        fn any_bytes_are_answered(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            check_import(&bytes);
        }

        #[test]
        fn a_mutated_spec_imports_alike_from_json_and_yaml(
            edits in proptest::collection::vec((0..POINTERS.len(), proptest::option::of(value())), 0..4),
        ) {
            let mut doc = seed_spec();
            for (at, new) in edits {
                let (parent, key) = POINTERS[at].rsplit_once('/').expect("pointer");
                let key = key.replace("~1", "/");
                if let Some(Value::Object(map)) = doc.pointer_mut(parent) {
                    match new {
                        Some(v) => { map.insert(key, v); }
                        None => { map.remove(&key); }
                    }
                }
            }
            check_import_value(&doc);
        }
    }

    #[test]
    fn the_seed_spec_is_valid() {
        check_import_value(&seed_spec());
        assert_eq!(import(seed_spec().to_string().as_bytes()).expect("valid").operations, 3);
    }
}
