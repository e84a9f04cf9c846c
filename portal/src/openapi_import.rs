//! Checking an uploaded OpenAPI document before it is stored: JSON or YAML in, one JSON text out,
//! or every problem found, in words an admin can act on.

use serde_json::{Map, Value};

/// Largest OpenAPI document accepted (real-world specs run to several MB).
pub const MAX_SPEC_BYTES: usize = 16 * 1024 * 1024;

/// At most this many problems are listed; a broken document would otherwise list thousands.
const MAX_ERRORS: usize = 25;

/// The HTTP methods an OpenAPI path item may hold operations for.
const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// A document that passed the checks.
#[derive(Debug, Clone)]
pub struct ImportedSpec {
    /// The document as compact JSON text, what the catalog serves.
    pub json: String,
    /// `openapi` version, e.g. `3.1.0`.
    pub openapi: String,
    /// `info.title`.
    pub title: String,
    /// `info.version`.
    pub version: String,
    /// `info.description`, if any.
    pub description: Option<String>,
    /// Number of paths.
    pub paths: usize,
    /// Number of operations over all paths.
    pub operations: usize,
}

/// Parse and check `bytes` (JSON or YAML). On failure, every problem found, each a sentence.
pub fn import(bytes: &[u8]) -> Result<ImportedSpec, Vec<String>> {
    if bytes.is_empty() {
        return Err(vec!["The file is empty.".to_owned()]);
    }
    if bytes.len() > MAX_SPEC_BYTES {
        return Err(vec![format!("The file is {} bytes; the limit is 16 MiB.", bytes.len())]);
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Err(vec!["The file is not UTF-8 text. Upload the OpenAPI document as JSON or YAML.".to_owned()]);
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let doc = parse(text)?;
    check(doc)
}

/// JSON when it looks like JSON (faster, and its errors name the right format), YAML otherwise.
fn parse(text: &str) -> Result<Value, Vec<String>> {
    if text.trim_start().starts_with('{') {
        return serde_json::from_str(text).map_err(|e| vec![format!("The file is not valid JSON: {e}.")]);
    }
    let yaml: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| vec![format!("The file is not valid YAML or JSON: {e}.")])?;
    yaml_to_json(yaml).map_err(|e| vec![e])
}

/// YAML allows non-string keys (`200:` under `responses`); OpenAPI means them as strings.
fn yaml_to_json(v: serde_yaml::Value) -> Result<Value, String> {
    use serde_yaml::Value as Y;
    Ok(match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                serde_json::Number::from_f64(f).map(Value::Number).ok_or_else(|| format!("The number {n} cannot be stored as JSON."))?
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(yaml_to_json).collect::<Result<_, _>>()?),
        Y::Mapping(m) => {
            let mut out = Map::with_capacity(m.len());
            for (k, v) in m {
                let key = match k {
                    Y::String(s) => s,
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    Y::Null => "null".to_owned(),
                    _ => return Err("A YAML mapping key is a list or a mapping; OpenAPI keys are text.".to_owned()),
                };
                out.insert(key, yaml_to_json(v)?);
            }
            Value::Object(out)
        }
        Y::Tagged(t) => yaml_to_json(t.value)?,
    })
}

/// Whether `v` is `3.0.N` or `3.1.N`.
fn supported_version(v: &str) -> bool {
    let mut parts = v.split('.');
    let (Some("3"), Some("0" | "1"), Some(patch), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    // Pre-release suffixes such as `3.1.0-rc1` are not published versions of the spec.
    !patch.is_empty() && patch.bytes().all(|b| b.is_ascii_digit())
}

fn check(doc: Value) -> Result<ImportedSpec, Vec<String>> {
    let Value::Object(root) = &doc else {
        return Err(vec!["The document must be an object with `openapi`, `info` and `paths` at the top.".to_owned()]);
    };
    let mut errors = Vec::new();
    let openapi = check_version(root, &mut errors);
    let (title, version, description) = check_info(root, &mut errors);
    let (paths, operations) = check_paths(root, &openapi, &mut errors);
    if errors.len() >= MAX_ERRORS {
        errors.truncate(MAX_ERRORS);
        errors.push("More problems may follow; fix these and upload again.".to_owned());
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let json = serde_json::to_string(&doc).map_err(|e| vec![format!("The document could not be stored as JSON: {e}.")])?;
    Ok(ImportedSpec { json, openapi, title, version, description, paths, operations })
}

/// The `openapi` field: a supported version, else empty with the reason in `errors`.
fn check_version(root: &serde_json::Map<String, Value>, errors: &mut Vec<String>) -> String {
    match root.get("openapi") {
        Some(Value::String(v)) if supported_version(v) => return v.clone(),
        Some(Value::String(v)) => errors.push(format!("`openapi` is “{v}”; Turnpike accepts OpenAPI 3.0.x and 3.1.x.")),
        Some(_) => errors.push("`openapi` must be a string such as \"3.1.0\" (quote it in YAML).".to_owned()),
        None if root.contains_key("swagger") => {
            errors.push("This is a Swagger 2.0 document; convert it to OpenAPI 3.0 or 3.1 first.".to_owned())
        }
        None => errors.push("`openapi` is missing; it names the OpenAPI version, e.g. \"3.1.0\".".to_owned()),
    }
    String::new()
}

/// `info`: its title, version and description.
fn check_info(root: &serde_json::Map<String, Value>, errors: &mut Vec<String>) -> (String, String, Option<String>) {
    let (mut title, mut version, mut description) = (String::new(), String::new(), None);
    match root.get("info") {
        Some(Value::Object(info)) => {
            match info.get("title") {
                Some(Value::String(t)) if !t.trim().is_empty() => title = t.trim().to_owned(),
                Some(Value::String(_)) => errors.push("`info.title` is empty.".to_owned()),
                Some(_) => errors.push("`info.title` must be a string.".to_owned()),
                None => errors.push("`info.title` is missing.".to_owned()),
            }
            match info.get("version") {
                Some(Value::String(v)) if !v.trim().is_empty() => version = v.trim().to_owned(),
                Some(Value::String(_)) => errors.push("`info.version` is empty.".to_owned()),
                Some(Value::Number(n)) => errors.push(format!("`info.version` must be a string; write \"{n}\" (quoted in YAML).")),
                Some(_) => errors.push("`info.version` must be a string.".to_owned()),
                None => errors.push("`info.version` is missing.".to_owned()),
            }
            if let Some(Value::String(d)) = info.get("description") {
                description = Some(d.clone());
            }
        }
        Some(_) => errors.push("`info` must be an object with `title` and `version`.".to_owned()),
        None => errors.push("`info` is missing; it holds the API's `title` and `version`.".to_owned()),
    }
    (title, version, description)
}

/// `paths`: how many paths and operations it describes.
fn check_paths(root: &serde_json::Map<String, Value>, openapi: &str, errors: &mut Vec<String>) -> (usize, usize) {
    let (mut paths, mut operations) = (0, 0);
    match root.get("paths") {
        Some(Value::Object(map)) => {
            // `x-…` keys are specification extensions, not paths.
            for (path, item) in map.iter().filter(|(k, _)| !k.starts_with("x-")) {
                paths += 1;
                if errors.len() >= MAX_ERRORS {
                    break;
                }
                if !path.starts_with('/') {
                    errors.push(format!("Path “{path}” must start with “/”."));
                }
                let Value::Object(ops) = item else {
                    errors.push(format!("Path “{path}” must map to an object of operations."));
                    continue;
                };
                for (method, op) in ops.iter().filter(|(m, _)| METHODS.contains(&m.as_str())) {
                    if op.is_object() {
                        operations += 1;
                    } else if errors.len() < MAX_ERRORS {
                        errors.push(format!("`{method} {path}` must be an object describing the operation."));
                    }
                }
            }
        }
        Some(_) => errors.push("`paths` must be an object mapping paths to operations.".to_owned()),
        // 3.1 made `paths` optional when `webhooks` or `components` say what the API is.
        None if openapi.starts_with("3.1.") && (root.contains_key("webhooks") || root.contains_key("components")) => {}
        None => errors.push("`paths` is missing; Turnpike needs the API's paths to document it.".to_owned()),
    }
    (paths, operations)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        for ok in ["3.0.0", "3.0.3", "3.1.0", "3.1.1"] {
            assert!(supported_version(ok), "{ok}");
        }
        for bad in ["2.0", "3.0", "3.2.0", "3.1.0-rc1", "3.1.", "4.0.0", "", "3.1.0.1"] {
            assert!(!supported_version(bad), "{bad}");
        }
    }

    #[test]
    fn yaml_with_numeric_keys_becomes_json() {
        let spec = import(
            b"openapi: 3.0.3\ninfo:\n  title: Pets\n  version: '1'\npaths:\n  /pets:\n    get:\n      responses:\n        200:\n          description: ok\n",
        )
        .expect("valid");
        assert_eq!(spec.title, "Pets");
        assert_eq!(spec.operations, 1);
        let v: Value = serde_json::from_str(&spec.json).unwrap();
        assert_eq!(v["paths"]["/pets"]["get"]["responses"]["200"]["description"], "ok");
    }

    #[test]
    fn yaml_alias_bombs_are_refused() {
        let mut doc = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let prev = (b'a' + i - 1) as char;
            let name = (b'a' + i) as char;
            doc.push_str(&format!(
                "{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
        }
        assert!(import(doc.as_bytes()).is_err());
    }

    #[test]
    fn too_large_is_refused_before_parsing() {
        let errors = import(&vec![b' '; MAX_SPEC_BYTES + 1]).unwrap_err();
        assert!(errors[0].contains("the limit is 16 MiB"), "{errors:?}");
    }

    proptest::proptest! {
        // Uploads are network input: any bytes give a result, never a panic.
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = import(&bytes);
        }

        #[test]
        fn any_title_and_version_round_trip(title in "[^\\p{C}]{1,40}", version in "[0-9a-z.]{1,12}") {
            let title = title.trim().to_owned();
            proptest::prop_assume!(!title.is_empty());
            let doc = serde_json::json!({"openapi": "3.0.3", "info": {"title": title, "version": version}, "paths": {"/a": {"get": {}}}});
            let spec = import(doc.to_string().as_bytes()).expect("valid");
            proptest::prop_assert_eq!(spec.title, title);
            proptest::prop_assert_eq!(spec.operations, 1);
            proptest::prop_assert_eq!(serde_json::from_str::<Value>(&spec.json).unwrap(), doc);
        }
    }

    /// Found by `fuzzing::check_import_value` (proptest; the `openapi_structured` fuzz target
    /// checks the same): serde_json's default float parser can be one ulp off, so a number in
    /// an uploaded JSON document changed on import and again on each re-import, and the JSON
    /// and YAML renderings of one document were stored differently.
    #[test]
    fn numbers_are_stored_exactly() {
        let doc = br#"{"openapi":"3.0.3","info":{"title":"t","version":"1","description":{"get":-1.9659461213970005e-166}},"paths":{}}"#;
        let spec = import(doc).expect("valid");
        assert!(spec.json.contains("-1.9659461213970005e-166"), "{}", spec.json);
        assert_eq!(import(spec.json.as_bytes()).expect("valid").json, spec.json);
        let yaml = b"openapi: 3.0.3\ninfo: {title: t, version: '1', description: {get: -1.9659461213970005e-166}}\npaths: {}\n";
        assert_eq!(import(yaml).expect("valid").json, spec.json);
    }

    #[test]
    fn every_problem_is_reported() {
        let errors = import(br#"{"openapi": "2.0", "info": {"version": 1}, "paths": {"pets": 3}}"#).unwrap_err();
        let all = errors.join("\n");
        assert!(all.contains("3.0.x and 3.1.x"), "{all}");
        assert!(all.contains("`info.title` is missing"), "{all}");
        assert!(all.contains("`info.version` must be a string"), "{all}");
        assert!(all.contains("must start with"), "{all}");
        assert!(all.contains("must map to an object"), "{all}");
        assert!(import(b"swagger: '2.0'\ninfo: {title: x, version: '1'}\npaths: {}\n").unwrap_err()[0].contains("Swagger 2.0"));
    }

    #[test]
    fn extensions_under_paths_and_31_documents_without_paths_are_valid() {
        let spec = import(br#"{"openapi":"3.0.3","info":{"title":"t","version":"1"},"paths":{"x-owner":"team","/a":{"get":{}}}}"#).unwrap();
        assert_eq!((spec.paths, spec.operations), (1, 1));
        let hooks = br#"{"openapi":"3.1.0","info":{"title":"t","version":"1"},"webhooks":{"ping":{"post":{}}}}"#;
        assert_eq!(import(hooks).unwrap().paths, 0);
        // 3.0 still requires `paths`, and 3.1 needs one of the three.
        assert!(import(br#"{"openapi":"3.0.3","info":{"title":"t","version":"1"},"components":{}}"#).is_err());
        assert!(import(br#"{"openapi":"3.1.0","info":{"title":"t","version":"1"}}"#).is_err());
        assert!(import(b"openapi: [unclosed").unwrap_err()[0].contains("not valid YAML"));
        assert!(import(b"{\"openapi\": ").unwrap_err()[0].contains("not valid JSON"));
        assert!(import(b"").is_err());
        assert!(import(&[0xff, 0xfe]).is_err());
    }
}
