//! Per-operation attribution: an API's OpenAPI document compiled, when the route table is
//! built, into a trie of path segments, so that each admitted request is attributed to the
//! operation it matches (`GET /repos/{owner}/{repo}`) in one walk down the request's segments.
//!
//! * Literal segments beat templated ones (`/users/me` before `/users/{id}`); when a literal
//!   branch leads nowhere for this method, the walk backs up and tries the template. Each trie
//!   node is visited at most once, so a request costs at most the trie's size, usually its depth.
//! * A segment holding `{` anywhere (`{id}`, `{name}.json`) matches any one non-empty segment.
//! * Cardinality is bounded by the document: an operation id per method × path (GitHub's 1,223
//!   operations are 1,223 ids), and [`UNMATCHED`](turnpike_store::UNMATCHED) for the rest.
//!
//! The stored document is always JSON (the portal's import turns YAML into JSON, see
//! `portal/src/openapi_import.rs`), so this reads it with serde_json and needs no YAML parser of
//! its own. Only `paths` is read; Swagger 2.0 documents have the same shape there.

use std::collections::BTreeMap;

use http::Method;
use serde::de::IgnoredAny;

/// Methods an OpenAPI path item may hold operations for, in the trie's slot order.
const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// The slot of a request method (`None`: a method no document can name, e.g. `CONNECT`).
fn slot(m: &Method) -> Option<usize> {
    Some(match *m {
        Method::GET => 0,
        Method::PUT => 1,
        Method::POST => 2,
        Method::DELETE => 3,
        Method::OPTIONS => 4,
        Method::HEAD => 5,
        Method::PATCH => 6,
        Method::TRACE => 7,
        _ => return None,
    })
}

/// An operation id: an index into the gateway's operation labels; 0 is "unmatched".
pub(crate) type OpId = u32;

#[derive(Debug, Default)]
struct Node {
    /// Literal children, sorted by segment (binary search).
    literal: Vec<(Box<str>, Node)>,
    /// The templated child (`{param}`), if any.
    param: Option<Box<Node>>,
    /// Operation per method slot (0: none).
    ops: [OpId; METHODS.len()],
}

/// An API's compiled operations.
#[derive(Debug, Default)]
pub(crate) struct Operations {
    root: Node,
    count: usize,
}

#[derive(serde::Deserialize)]
struct Document {
    #[serde(default)]
    paths: BTreeMap<String, BTreeMap<String, IgnoredAny>>,
}

/// `path` split into its segments, ignoring a leading and a trailing slash.
fn segments(path: &str) -> impl Iterator<Item = &str> {
    let p = path.strip_prefix('/').unwrap_or(path);
    let p = p.strip_suffix('/').unwrap_or(p);
    p.split('/').filter(move |_| !p.is_empty())
}

impl Operations {
    /// Compile a stored document; `label` gives the id of an operation label
    /// (`GET /repos/{owner}/{repo}`), the same id for the same label.
    pub(crate) fn compile(doc: &str, mut label: impl FnMut(&str) -> OpId) -> Result<Operations, serde_json::Error> {
        let doc: Document = serde_json::from_str(doc)?;
        let mut ops = Operations::default();
        for (path, item) in doc.paths.iter().filter(|(p, _)| p.starts_with('/')) {
            for method in item.keys() {
                let Some(slot) = METHODS.iter().position(|m| m == method) else { continue };
                let id = label(&format!("{} {path}", method.to_ascii_uppercase()));
                let mut node = &mut ops.root;
                for seg in segments(path) {
                    node = if seg.contains('{') {
                        node.param.get_or_insert_with(Box::default)
                    } else {
                        let i = match node.literal.binary_search_by(|(k, _)| (**k).cmp(seg)) {
                            Ok(i) => i,
                            Err(i) => {
                                node.literal.insert(i, (seg.into(), Node::default()));
                                i
                            }
                        };
                        &mut node.literal[i].1
                    };
                }
                if node.ops[slot] == 0 {
                    ops.count += 1;
                }
                node.ops[slot] = id;
            }
        }
        Ok(ops)
    }

    /// Number of operations.
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// The operation `method path` matches (`path` relative to the API's prefix), 0 if none.
    pub(crate) fn find(&self, method: &Method, path: &str) -> OpId {
        let Some(slot) = slot(method) else { return 0 };
        let p = path.strip_prefix('/').unwrap_or(path);
        walk(&self.root, p.strip_suffix('/').unwrap_or(p), slot)
    }
}

fn walk(node: &Node, rest: &str, slot: usize) -> OpId {
    if rest.is_empty() {
        return node.ops[slot];
    }
    let (seg, tail) = rest.split_once('/').unwrap_or((rest, ""));
    if let Ok(i) = node.literal.binary_search_by(|(k, _)| (**k).cmp(seg)) {
        let found = walk(&node.literal[i].1, tail, slot);
        if found != 0 {
            return found;
        }
    }
    match &node.param {
        Some(p) if !seg.is_empty() => walk(p, tail, slot),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compiled(doc: serde_json::Value) -> (Operations, Vec<String>) {
        let mut labels = vec!["unmatched".to_owned()];
        let ops = Operations::compile(&doc.to_string(), |l| {
            labels.push(l.to_owned());
            (labels.len() - 1) as OpId
        })
        .expect("valid document");
        (ops, labels)
    }

    #[test]
    fn literals_beat_templates_and_backtrack() {
        let (ops, labels) = compiled(serde_json::json!({"openapi": "3.0.3", "paths": {
            "/users/{id}": {"get": {}, "delete": {}},
            "/users/me": {"get": {}},
            "/users/{id}/repos": {"get": {}},
            "/repos/{owner}/{repo}": {"get": {}, "parameters": []},
            "/repos/{owner}/{repo}/pulls/{n}": {"patch": {}},
            "/files/{name}.json": {"get": {}},
            "/": {"get": {}},
            "x-ext": {}
        }}));
        assert_eq!(ops.len(), 8);
        let find = |m: Method, p: &str| labels[ops.find(&m, p) as usize].clone();
        assert_eq!(find(Method::GET, "/users/me"), "GET /users/me");
        assert_eq!(find(Method::GET, "/users/42"), "GET /users/{id}");
        assert_eq!(find(Method::GET, "/users/42/"), "GET /users/{id}");
        // The literal `me` has no DELETE and no `repos` child: the template answers.
        assert_eq!(find(Method::DELETE, "/users/me"), "DELETE /users/{id}");
        assert_eq!(find(Method::GET, "/users/me/repos"), "GET /users/{id}/repos");
        assert_eq!(find(Method::GET, "/repos/rust-lang/rust"), "GET /repos/{owner}/{repo}");
        assert_eq!(find(Method::PATCH, "/repos/a/b/pulls/7"), "PATCH /repos/{owner}/{repo}/pulls/{n}");
        assert_eq!(find(Method::GET, "/files/x.json"), "GET /files/{name}.json");
        assert_eq!(find(Method::GET, "/"), "GET /");
        assert_eq!(find(Method::GET, ""), "GET /");
        for (m, p) in [(Method::POST, "/users/me"), (Method::GET, "/users"), (Method::GET, "/users//repos"), (Method::CONNECT, "/")] {
            assert_eq!(ops.find(&m, p), 0, "{m} {p}");
        }
    }

    #[test]
    fn thousands_of_operations_compile_and_match() {
        // GitHub-sized: 1,250 paths with overlapping templates under shared prefixes.
        let mut paths = serde_json::Map::new();
        for i in 0..250 {
            for p in [
                format!("/r{i}/{{owner}}"),
                format!("/r{i}/{{owner}}/{{repo}}"),
                format!("/r{i}/{{owner}}/{{repo}}/items/{{n}}"),
                format!("/r{i}/{{owner}}/settings"),
                format!("/r{i}/me/{{repo}}"),
            ] {
                paths.insert(p, serde_json::json!({"get": {}}));
            }
        }
        let (ops, labels) = compiled(serde_json::json!({"paths": paths}));
        assert_eq!(ops.len(), 1250);
        assert_eq!(labels[ops.find(&Method::GET, "/r249/me/x") as usize], "GET /r249/me/{repo}");
        // The leftmost literal decides: `me` beats `{owner}` even though `settings` is literal.
        assert_eq!(labels[ops.find(&Method::GET, "/r249/me/settings") as usize], "GET /r249/me/{repo}");
        assert_eq!(labels[ops.find(&Method::GET, "/r249/you/settings") as usize], "GET /r249/{owner}/settings");
        assert_eq!(labels[ops.find(&Method::GET, "/r7/a/b/items/9") as usize], "GET /r7/{owner}/{repo}/items/{n}");
        assert_eq!(ops.find(&Method::GET, "/r250/a"), 0);
    }

    #[test]
    fn a_document_without_paths_or_not_json_is_handled() {
        assert_eq!(Operations::compile("{}", |_| 1).expect("no paths is fine").len(), 0);
        assert!(Operations::compile("openapi: 3.0.3", |_| 1).is_err());
    }
}
