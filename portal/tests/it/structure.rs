//! The portal's source has no module import cycles: between sibling modules at every level
//! (`pages::account` and `pages::billing`, `error` and `pages`, …) the references (`use crate::…`,
//! `super::…`, `crate::…::` paths) form no cycle. Shared helpers go one level down; pages import
//! helpers, never each other in a circle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir` with its module path (`["pages", "billing", "invoices"]`).
fn modules(dir: &Path, prefix: &[String], out: &mut Vec<(Vec<String>, PathBuf)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            let mut p = prefix.to_vec();
            p.push(name);
            modules(&path, &p, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let mut p = prefix.to_vec();
            if name != "mod" && name != "lib" && name != "main" {
                p.push(name);
            }
            out.push((p, path));
        }
    }
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The paths of a use tree starting at `s` (after `crate::` or `super::`): `a::b`, or
/// `a::{b, c::{d}}` expanded; `*` and `self` end a path.
fn use_tree(s: &[char], i: &mut usize) -> Vec<Vec<String>> {
    let mut path = Vec::new();
    loop {
        while *i < s.len() && s[*i].is_whitespace() {
            *i += 1;
        }
        if *i < s.len() && s[*i] == '{' {
            *i += 1;
            let mut out = Vec::new();
            loop {
                for mut sub in use_tree(s, i) {
                    let mut full = path.clone();
                    full.append(&mut sub);
                    out.push(full);
                }
                while *i < s.len() && s[*i].is_whitespace() {
                    *i += 1;
                }
                match s.get(*i) {
                    Some(',') => *i += 1,
                    Some('}') => {
                        *i += 1;
                        return out;
                    }
                    _ => return out,
                }
                while *i < s.len() && s[*i].is_whitespace() {
                    *i += 1;
                }
                if s.get(*i) == Some(&'}') {
                    *i += 1;
                    return out;
                }
            }
        }
        let start = *i;
        while *i < s.len() && is_ident(s[*i]) {
            *i += 1;
        }
        if start == *i {
            return vec![path];
        }
        let word: String = s[start..*i].iter().collect();
        if word != "self" {
            path.push(word);
        }
        if s.get(*i) == Some(&':') && s.get(*i + 1) == Some(&':') {
            *i += 2;
        } else {
            return vec![path];
        }
    }
}

/// The absolute paths `source` (the file of module `me`) refers to, comments left out.
fn references(me: &[String], source: &str) -> Vec<Vec<String>> {
    let code: String = source
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .map(|l| match l.find(" //") {
            Some(at) => &l[..at],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let s: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let preceded = i > 0 && (is_ident(s[i - 1]) || s[i - 1] == ':');
        let rest: String = s[i..(i + 7).min(s.len())].iter().collect();
        let (base, skip) = if !preceded && rest.starts_with("crate::") {
            (Vec::new(), 7)
        } else if !preceded && rest.starts_with("super::") {
            // `super::super::x` climbs twice.
            let mut base = me.to_vec();
            let mut j = i;
            while s[j..].iter().take(7).collect::<String>() == "super::" {
                base.pop();
                j += 7;
            }
            (base, j - i)
        } else {
            i += 1;
            continue;
        };
        i += skip;
        for tail in use_tree(&s, &mut i) {
            let mut full = base.clone();
            full.extend(tail);
            out.push(full);
        }
    }
    out
}

/// The modules' dependency edges grouped by parent: for a reference from module `a` to module
/// `b`, the edge between the two children of their deepest common ancestor (nothing when one
/// contains the other: a module and its own submodules are one unit).
fn sibling_graphs(root: &Path) -> BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> {
    let mut files = Vec::new();
    modules(root, &[], &mut files);
    let known: BTreeSet<Vec<String>> = files.iter().map(|(m, _)| m.clone()).collect();
    let mut graphs: BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (me, path) in &files {
        let source = std::fs::read_to_string(path).unwrap();
        for target in references(me, &source) {
            // The longest prefix of the path that is a module of ours.
            let Some(module) = (0..=target.len()).rev().map(|n| target[..n].to_vec()).find(|p| known.contains(p)) else { continue };
            let common = me.iter().zip(&module).take_while(|(a, b)| a == b).count();
            if common == me.len() || common == module.len() {
                continue;
            }
            let parent = me[..common].to_vec();
            graphs.entry(parent).or_default().entry(me[common].clone()).or_default().insert(module[common].clone());
        }
    }
    graphs
}

/// One cycle through each strongly connected group of more than one node, as `a → b → a`.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut found = Vec::new();
    let mut reported: BTreeSet<String> = BTreeSet::new();
    for start in graph.keys() {
        if reported.contains(start) {
            continue;
        }
        // Shortest path from a successor of `start` back to `start` (breadth first).
        let mut prev: BTreeMap<String, String> = BTreeMap::new();
        let mut queue: std::collections::VecDeque<String> = std::collections::VecDeque::from([start.clone()]);
        let mut hit = None;
        while let Some(n) = queue.pop_front() {
            for next in graph.get(&n).into_iter().flatten() {
                if next == start {
                    hit = Some(n.clone());
                    break;
                }
                if !prev.contains_key(next) && next != start {
                    prev.insert(next.clone(), n.clone());
                    queue.push_back(next.clone());
                }
            }
            if hit.is_some() {
                break;
            }
        }
        if let Some(mut n) = hit {
            let mut path = vec![start.clone()];
            let mut back = vec![n.clone()];
            while let Some(p) = prev.get(&n) {
                if p == start {
                    break;
                }
                back.push(p.clone());
                n = p.clone();
            }
            back.reverse();
            path.extend(back);
            path.push(start.clone());
            reported.extend(path.iter().cloned());
            found.push(path.join(" → "));
        }
    }
    found
}

#[test]
fn the_portal_has_no_module_import_cycles() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graphs = sibling_graphs(&root);
    // The scan sees the modules: the top level's references, and the pages' among themselves.
    assert!(graphs.get(&Vec::new()).is_some_and(|g| g.len() > 8 && g["pages"].contains("service")), "{graphs:?}");
    assert!(graphs.get(&vec!["pages".to_owned()]).is_some_and(|g| g["dashboard"].contains("usage")), "{graphs:?}");
    let mut all = Vec::new();
    for (parent, graph) in &graphs {
        let at = if parent.is_empty() { "crate".to_owned() } else { format!("crate::{}", parent.join("::")) };
        for c in cycles(graph) {
            all.push(format!("in {at}: {c}"));
        }
    }
    assert!(all.is_empty(), "module import cycles:\n{}", all.join("\n"));
}

#[test]
fn the_cycle_check_sees_cycles_and_group_imports() {
    let me = vec!["pages".to_owned(), "account".to_owned()];
    let refs = references(&me, "use super::{reset::{a, b}, settings};\nuse crate::{error::X, pages::verify};\n// use crate::ignored;\nlet x = crate::format::count(1);");
    let joined: Vec<String> = refs.iter().map(|r| r.join("::")).collect();
    assert_eq!(joined, ["pages::reset::a", "pages::reset::b", "pages::settings", "error::X", "pages::verify", "format::count"]);
    let graph: BTreeMap<String, BTreeSet<String>> =
        [("a", "b"), ("b", "c"), ("c", "a"), ("d", "a")].iter().map(|(x, y)| (x.to_string(), BTreeSet::from([y.to_string()]))).collect();
    assert_eq!(cycles(&graph), ["a → b → c → a"]);
}
