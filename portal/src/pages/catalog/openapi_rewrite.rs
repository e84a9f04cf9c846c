//! The OpenAPI document as the docs page renders it: "Try it out" must call through the gateway
//! with the developer's Turnpike key, whatever servers and auth the upstream's own document names.

use serde_json::{json, Map, Value};

/// Name of the bearer scheme added to the document (docs.js pre-authorizes it).
pub const BEARER_SCHEME: &str = "turnpikeKey";
/// Name of the `X-API-Key` header scheme added next to it.
pub const HEADER_SCHEME: &str = "turnpikeKeyHeader";

/// The rewritten document, in the format it came in.
#[derive(Debug)]
pub enum Rewritten {
    /// JSON text.
    Json(String),
    /// YAML text.
    Yaml(String),
}

/// Why a document could not be rewritten.
#[derive(Debug, thiserror::Error)]
pub enum RewriteError {
    /// Not JSON, or JSON that is not an object.
    #[error("not a JSON object: {0}")]
    Json(String),
}

/// Point `doc` at `base_url` (the gateway URL + the API's route prefix) and make the Turnpike key
/// its only security requirement. JSON is parsed and rewritten; YAML (no YAML parser in the
/// workspace) gets its top-level `servers`/`security` blocks replaced line by line.
pub fn for_gateway(doc: &str, base_url: &str) -> Result<Rewritten, RewriteError> {
    if doc.trim_start().starts_with('{') {
        let mut value: Value = serde_json::from_str(doc).map_err(|e| RewriteError::Json(e.to_string()))?;
        let root = value.as_object_mut().ok_or_else(|| RewriteError::Json("top level is not an object".into()))?;
        rewrite_json(root, base_url);
        Ok(Rewritten::Json(value.to_string()))
    } else {
        Ok(Rewritten::Yaml(rewrite_yaml(doc, base_url)))
    }
}

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

fn requirement() -> Value {
    json!([{ BEARER_SCHEME: [] }, { HEADER_SCHEME: [] }])
}

fn rewrite_json(root: &mut Map<String, Value>, base_url: &str) {
    let swagger2 = root.contains_key("swagger");
    if swagger2 {
        // Swagger 2.0: host + basePath + schemes instead of servers.
        if let Some((scheme, rest)) = base_url.split_once("://") {
            let (host, path) = rest.split_once('/').map_or((rest, String::new()), |(h, p)| (h, format!("/{p}")));
            root.insert("schemes".into(), json!([scheme]));
            root.insert("host".into(), json!(host));
            root.insert("basePath".into(), json!(if path.is_empty() { "/".to_owned() } else { path }));
        }
        let defs = root.entry("securityDefinitions").or_insert_with(|| json!({}));
        if let Some(defs) = defs.as_object_mut() {
            // 2.0 has no bearer type: an Authorization header key, value "Bearer <key>".
            defs.insert(
                BEARER_SCHEME.into(),
                json!({"type": "apiKey", "in": "header", "name": "Authorization", "description": "`Bearer <your Turnpike key>`"}),
            );
            defs.insert(HEADER_SCHEME.into(), json!({"type": "apiKey", "in": "header", "name": "X-API-Key"}));
        }
    } else {
        root.insert("servers".into(), json!([{ "url": base_url, "description": "Turnpike gateway" }]));
        let components = root.entry("components").or_insert_with(|| json!({}));
        if !components.is_object() {
            *components = json!({});
        }
        if let Some(components) = components.as_object_mut() {
            let schemes = components.entry("securitySchemes").or_insert_with(|| json!({}));
            if !schemes.is_object() {
                *schemes = json!({});
            }
            if let Some(schemes) = schemes.as_object_mut() {
                schemes.insert(
                    BEARER_SCHEME.into(),
                    json!({"type": "http", "scheme": "bearer", "description": "Your Turnpike API key, sent as `Authorization: Bearer <key>`."}),
                );
                schemes.insert(
                    HEADER_SCHEME.into(),
                    json!({"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "Your Turnpike API key, in the `X-API-Key` header."}),
                );
            }
        }
    }
    root.insert("security".into(), requirement());
    // Path- and operation-level servers and security would override the gateway and the key.
    if let Some(paths) = root.get_mut("paths").and_then(Value::as_object_mut) {
        for item in paths.values_mut().filter_map(Value::as_object_mut) {
            item.remove("servers");
            for method in METHODS {
                if let Some(op) = item.get_mut(method).and_then(Value::as_object_mut) {
                    op.remove("servers");
                    if op.contains_key("security") {
                        op.insert("security".into(), requirement());
                    }
                }
            }
        }
    }
}

/// Whether `line` starts the top-level `key:` mapping entry.
fn is_top_key(line: &str, key: &str) -> bool {
    line.strip_prefix(key).is_some_and(|r| r.starts_with(':'))
}

/// Whether `line` continues the block of the top-level entry above it.
fn continues_block(line: &str) -> bool {
    line.trim().is_empty() || line.starts_with([' ', '\t', '#', '-'])
}

/// `doc`'s lines without its top-level `servers` and `security` blocks (and a `...` end marker),
/// and where its top-level `components` entry now stands.
fn without_servers_and_security(doc: &str) -> (Vec<String>, Option<usize>) {
    let mut out: Vec<String> = Vec::with_capacity(doc.lines().count() + 16);
    let mut skipping = false;
    let mut components_at: Option<usize> = None;
    for line in doc.lines() {
        if skipping && continues_block(line) {
            continue;
        }
        skipping = false;
        if is_top_key(line, "servers") || is_top_key(line, "security") {
            skipping = true;
            continue;
        }
        if line.trim_end() == "..." {
            continue;
        }
        if is_top_key(line, "components") {
            components_at = Some(out.len());
        }
        out.push(line.to_owned());
    }
    (out, components_at)
}

/// The gateway's two security schemes as YAML lines at `indent`.
fn schemes(indent: &str) -> Vec<String> {
    vec![
        format!("{indent}{BEARER_SCHEME}:"),
        format!("{indent}  type: http"),
        format!("{indent}  scheme: bearer"),
        format!("{indent}{HEADER_SCHEME}:"),
        format!("{indent}  type: apiKey"),
        format!("{indent}  in: header"),
        format!("{indent}  name: X-API-Key"),
    ]
}

/// The indentation of the first entry of the block `lines` (none: `None`).
fn first_child_indent(lines: &[String]) -> Option<String> {
    lines.iter().find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#')).map(|l| l[..l.len() - l.trim_start().len()].to_owned())
}

/// Add the gateway's schemes to `components.securitySchemes` (created where missing), keeping
/// the document's own indentation.
fn add_security_schemes(out: &mut Vec<String>, components_at: Option<usize>) {
    match components_at {
        Some(at) if out[at].trim_end() == "components:" => {
            let block_end = (at + 1..out.len()).find(|&i| !continues_block(&out[i])).unwrap_or(out.len());
            // The block's child indentation, from its first entry (two spaces if it has none).
            let child = first_child_indent(&out[at + 1..block_end]).unwrap_or_else(|| "  ".to_owned());
            let existing =
                (at + 1..block_end).find(|&i| out[i].starts_with(&child) && out[i][child.len()..].starts_with("securitySchemes:"));
            let (after, block) = match existing {
                Some(i) => {
                    let grand = first_child_indent(&out[i + 1..block_end])
                        .filter(|g| g.len() > child.len())
                        .unwrap_or_else(|| format!("{child}  "));
                    (i, schemes(&grand))
                }
                None => {
                    let mut block = vec![format!("{child}securitySchemes:")];
                    block.extend(schemes(&format!("{child}  ")));
                    (at, block)
                }
            };
            out.splice(after + 1..after + 1, block);
        }
        _ => {
            out.push("components:".into());
            out.push("  securitySchemes:".into());
            out.extend(schemes("    "));
        }
    }
}

fn rewrite_yaml(doc: &str, base_url: &str) -> String {
    let (mut out, components_at) = without_servers_and_security(doc);
    add_security_schemes(&mut out, components_at);
    let url = serde_json::to_string(base_url).unwrap_or_default();
    out.push("servers:".into());
    out.push(format!("  - url: {url}"));
    out.push("    description: Turnpike gateway".into());
    out.push("security:".into());
    out.push(format!("  - {BEARER_SCHEME}: []"));
    out.push(format!("  - {HEADER_SCHEME}: []"));
    let mut text = out.join("\n");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_points_at_the_gateway_and_the_key() {
        let doc = r#"{"openapi":"3.0.3","servers":[{"url":"https://upstream"}],"components":{"securitySchemes":{"oauth":{"type":"oauth2"}}},
            "paths":{"/a":{"servers":[{"url":"x"}],"get":{"security":[{"oauth":[]}],"responses":{}}}}}"#;
        let Rewritten::Json(out) = for_gateway(doc, "https://gw/echo").unwrap() else { panic!("json") };
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["servers"], json!([{"url": "https://gw/echo", "description": "Turnpike gateway"}]));
        assert_eq!(v["components"]["securitySchemes"][BEARER_SCHEME]["scheme"], "bearer");
        assert_eq!(v["components"]["securitySchemes"]["oauth"]["type"], "oauth2", "others kept");
        assert_eq!(v["security"], requirement());
        assert_eq!(v["paths"]["/a"]["get"]["security"], requirement());
        assert!(v["paths"]["/a"].get("servers").is_none());
    }

    #[test]
    fn swagger2_gets_host_and_base_path() {
        let Rewritten::Json(out) = for_gateway(r#"{"swagger":"2.0","host":"up","paths":{}}"#, "https://gw:8443/echo").unwrap() else {
            panic!("json")
        };
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!((v["host"].as_str(), v["basePath"].as_str(), v["schemes"][0].as_str()), (Some("gw:8443"), Some("/echo"), Some("https")));
    }

    #[test]
    fn yaml_blocks_are_replaced() {
        let doc = "openapi: 3.0.0\nservers:\n- url: https://upstream\n  description: x\ninfo:\n  title: t\ncomponents:\n  schemas:\n    A: {}\n  securitySchemes:\n    oauth:\n      type: oauth2\nsecurity:\n  - oauth: []\npaths: {}\n";
        let Rewritten::Yaml(out) = for_gateway(doc, "https://gw/echo").unwrap() else { panic!("yaml") };
        assert!(!out.contains("upstream"), "{out}");
        assert!(out.contains("servers:\n  - url: \"https://gw/echo\""), "{out}");
        assert!(out.contains("  securitySchemes:\n    turnpikeKey:\n      type: http\n      scheme: bearer\n"), "{out}");
        assert!(out.contains("    oauth:\n      type: oauth2"), "{out}");
        assert_eq!(out.matches("securitySchemes:").count(), 1);
        assert_eq!(out.matches("\nsecurity:").count(), 1);
        assert!(out.contains("info:\n  title: t\n"));

        let Rewritten::Yaml(out) = for_gateway("openapi: 3.1.0\ninfo:\n  title: t\npaths: {}\n", "https://gw/e").unwrap() else {
            panic!("yaml")
        };
        assert!(out.contains("components:\n  securitySchemes:\n    turnpikeKey:"), "{out}");
    }

    #[test]
    fn bad_json_is_an_error() {
        assert!(for_gateway("{nope", "https://gw").is_err());
        assert!(for_gateway("{} ", "https://gw").is_ok());
    }
}
