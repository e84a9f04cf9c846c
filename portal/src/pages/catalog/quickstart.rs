//! The API page's quick start: a real `GET` operation from the API's OpenAPI document.
//!
//! Only `paths` (in document order), each path's and `GET`'s `parameters` and the reusable
//! parameters (`components.parameters`, Swagger 2's `parameters`) are read; everything else is
//! skipped unparsed, so a 13 MB document costs one pass and little memory.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, OnceLock};

use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use turnpike_store::Api;

/// Paths kept in memory, at most (one per API and document version).
const CACHE_ENTRIES: usize = 256;

type Cache = Mutex<HashMap<(i64, i64, usize), Option<String>>>;

/// [`example_get_path`] of `api`'s document, read once per document version (a document can be
/// 16 MiB; the page is served far more often than the document changes).
pub fn example_path(api: &Api) -> Option<String> {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let doc = api.openapi.as_deref().filter(|d| !d.is_empty())?;
    let key = (api.id, api.updated_at, doc.len());
    let cache = CACHE.get_or_init(Default::default);
    if let Some(hit) = cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
        return hit;
    }
    let path = example_get_path(doc);
    if let Ok(mut c) = cache.lock() {
        if c.len() >= CACHE_ENTRIES {
            c.clear();
        }
        c.insert(key, path.clone());
    }
    path
}

#[derive(Deserialize, Default)]
struct Doc {
    #[serde(default)]
    paths: Paths,
    #[serde(default)]
    components: Components,
    /// Swagger 2.0's reusable parameters.
    #[serde(default)]
    parameters: HashMap<String, Value>,
}

#[derive(Deserialize, Default)]
struct Components {
    #[serde(default)]
    parameters: HashMap<String, Value>,
}

#[derive(Deserialize, Default)]
struct PathItem {
    #[serde(default)]
    get: Option<Operation>,
    #[serde(default)]
    parameters: Vec<Value>,
}

#[derive(Deserialize, Default)]
struct Operation {
    #[serde(default)]
    parameters: Vec<Value>,
}

/// `paths` in document order (a map would lose the order the author chose).
#[derive(Default)]
struct Paths(Vec<(String, PathItem)>);

impl<'de> Deserialize<'de> for Paths {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Paths;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("the paths object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Paths, A::Error> {
                let mut out = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if key.starts_with('/') {
                        out.push((key, map.next_value()?));
                    } else {
                        map.next_value::<IgnoredAny>()?; // `x-…` extensions
                    }
                }
                Ok(Paths(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// The path of the first `GET` operation without path parameters, else of the first `GET` with
/// its path parameters filled from their `example` (or `schema.example`, or Swagger 2's
/// `x-example`), or `<name>` when they have none. `None` when the document has no `GET` or cannot be read.
pub fn example_get_path(doc: &str) -> Option<String> {
    let doc: Doc = if doc.trim_start().starts_with('{') { serde_json::from_str(doc).ok()? } else { serde_yaml::from_str(doc).ok()? };
    let gets = || doc.paths.0.iter().filter_map(|(path, item)| item.get.as_ref().map(|op| (path, item, op)));
    if let Some((path, _, _)) = gets().find(|(path, _, _)| !path.contains('{')) {
        return Some(path.clone());
    }
    let (path, item, op) = gets().next()?;
    // Operation parameters override the path item's of the same name.
    let params: Vec<&Value> = op.parameters.iter().chain(&item.parameters).filter_map(|p| resolve(&doc, p)).collect();
    Some(fill(path, |name| {
        params
            .iter()
            .find(|p| p.get("in").and_then(Value::as_str) == Some("path") && p.get("name").and_then(Value::as_str) == Some(name))
            .and_then(|p| p.get("example").or_else(|| p.pointer("/schema/example")).or_else(|| p.get("x-example")))
            .and_then(scalar)
    }))
}

/// A parameter, following one local `$ref` (`#/components/parameters/X`, `#/parameters/X`).
fn resolve<'a>(doc: &'a Doc, p: &'a Value) -> Option<&'a Value> {
    let Some(reference) = p.get("$ref") else { return Some(p) };
    let reference = reference.as_str()?;
    if let Some(name) = reference.strip_prefix("#/components/parameters/") {
        doc.components.parameters.get(name)
    } else {
        doc.parameters.get(reference.strip_prefix("#/parameters/")?)
    }
}

/// A string or number example as text.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `path` with each `{name}` replaced by its example (percent-encoded) or `<name>`.
fn fill(path: &str, example: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        let Some(len) = rest[open..].find('}') else { break };
        out.push_str(&rest[..open]);
        let name = &rest[open + 1..open + len];
        match example(name) {
            Some(v) => out.extend(form_urlencoded::byte_serialize(v.as_bytes()).map(|s| if s == "+" { "%20" } else { s })),
            None => {
                out.push('<');
                out.push_str(name);
                out.push('>');
            }
        }
        rest = &rest[open + len + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_get_without_path_parameters() {
        let doc = r#"{"openapi":"3.0.3","paths":{
            "/things/{id}":{"get":{"parameters":[{"name":"id","in":"path","required":true}]}},
            "/things":{"post":{}},
            "x-internal":{"get":{}},
            "/status":{"get":{"responses":{"200":{"description":"ok"}}}},
            "/later":{"get":{}}}}"#;
        assert_eq!(example_get_path(doc).as_deref(), Some("/status"));
    }

    #[test]
    fn path_parameters_from_examples_refs_or_placeholders() {
        let doc = r##"{"openapi":"3.0.3","components":{"parameters":{"owner":{"name":"owner","in":"path","schema":{"type":"string","example":"octo cat"}}}},
            "paths":{"/repos/{owner}/{repo}/issues/{number}":{
                "parameters":[{"$ref":"#/components/parameters/owner"},{"name":"number","in":"path","example":42}],
                "get":{"parameters":[{"name":"repo","in":"path","schema":{"type":"string"}},{"name":"number","in":"path","example":7}]}},
              "/repos":{"post":{}}}}"##;
        assert_eq!(example_get_path(doc).as_deref(), Some("/repos/octo%20cat/<repo>/issues/7"));
    }

    #[test]
    fn yaml_and_swagger_2() {
        let doc = "swagger: '2.0'\nparameters:\n  petId: {name: petId, in: path, type: integer, x-example: 1}\npaths:\n  /pets/{petId}:\n    get:\n      parameters:\n        - $ref: '#/parameters/petId'\n";
        assert_eq!(example_get_path(doc).as_deref(), Some("/pets/1"));
    }

    #[test]
    fn no_get_or_no_document() {
        assert_eq!(example_get_path(r#"{"openapi":"3.1.0","info":{"title":"x","version":"1"},"paths":{}}"#), None);
        assert_eq!(example_get_path(r#"{"openapi":"3.1.0","paths":{"/a":{"post":{}}}}"#), None);
        assert_eq!(example_get_path("not a document: ["), None);
        assert_eq!(example_get_path(r#"{"paths":{"/a/{b":{"get":{}}}}"#).as_deref(), Some("/a/{b"));
    }

    #[test]
    fn a_realistic_document() {
        // The portal's own API description (49 KB, OpenAPI 3.1): its first GET is a list.
        let doc = include_str!("../../../tests/snapshots/openapi.json");
        assert_eq!(example_get_path(doc).as_deref(), Some("/api/v1/admin/apis"));
        // Its GETs that all take path parameters: the first is filled with a placeholder.
        let mut v: Value = serde_json::from_str(doc).unwrap_or_default();
        if let Some(paths) = v.get_mut("paths").and_then(Value::as_object_mut) {
            paths.retain(|p, _| p.contains('{'));
        }
        assert_eq!(example_get_path(&v.to_string()).as_deref(), Some("/api/v1/admin/apis/<api_id>"));
    }
}
