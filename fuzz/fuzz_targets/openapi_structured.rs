#![no_main]
//! OpenAPI import, structure-aware: a valid seed spec edited at chosen places (values replaced,
//! keys removed or added, with OpenAPI's own words) must import the same way from its JSON and
//! its YAML rendering, and each rendering must pass the byte-level checks.

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use turnpike_portal::fuzzing::{check_import_value, seed_spec};

/// Words OpenAPI documents are made of, so that edits hit the checks.
const WORDS: &[&str] = &[
    "openapi",
    "info",
    "title",
    "version",
    "description",
    "paths",
    "swagger",
    "get",
    "put",
    "post",
    "delete",
    "options",
    "head",
    "patch",
    "trace",
    "parameters",
    "responses",
    "200",
    "/",
    "/pets",
    "pets",
    "x-ext",
    "$ref",
    "3.0.0",
    "3.0.3",
    "3.1.0",
    "3.1.1",
    "3.2.0",
    "3.1.0-rc1",
    "2.0",
    "",
    " ",
    "null",
    "~",
    "true",
    "yes",
    "no",
    "1e3",
    "0x1F",
    ".inf",
    "-",
    "---",
    "\u{feff}",
    "é",
];

fn text(u: &mut Unstructured<'_>) -> Result<String> {
    Ok(if u.arbitrary()? { (*u.choose(WORDS)?).to_owned() } else { u.arbitrary::<&str>()?.chars().take(12).collect() })
}

fn value(u: &mut Unstructured<'_>, depth: u8) -> Result<Value> {
    let kind: u8 = u.int_in_range(0..=if depth == 0 { 5 } else { 7 })?;
    Ok(match kind {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => Value::from(u.arbitrary::<i64>()?),
        3 => serde_json::Number::from_f64(u.arbitrary()?).map_or(Value::Null, Value::Number),
        4 => Value::from(u.arbitrary::<u64>()?),
        5 => Value::String(text(u)?),
        6 => Value::Array((0..u.int_in_range(0..=3)?).map(|_| value(u, depth - 1)).collect::<Result<_>>()?),
        _ => {
            let mut m = Map::new();
            for _ in 0..u.int_in_range(0..=3)? {
                m.insert(text(u)?, value(u, depth - 1)?);
            }
            Value::Object(m)
        }
    })
}

/// JSON pointers of every object and array in `v`.
fn containers(v: &Value, at: String, out: &mut Vec<String>) {
    let children: Vec<(String, &Value)> = match v {
        Value::Object(m) => m.iter().map(|(k, c)| (k.replace('~', "~0").replace('/', "~1"), c)).collect(),
        Value::Array(a) => a.iter().enumerate().map(|(i, c)| (i.to_string(), c)).collect(),
        _ => return,
    };
    out.push(at.clone());
    for (k, c) in children {
        containers(c, format!("{at}/{k}"), out);
    }
}

fn edit(doc: &mut Value, u: &mut Unstructured<'_>) -> Result<()> {
    let mut places = Vec::new();
    containers(doc, String::new(), &mut places);
    let place = u.choose(&places)?.clone();
    let op: u8 = u.int_in_range(0..=2)?;
    let new = if op == 1 { None } else { Some(value(u, 3)?) };
    let key = text(u)?;
    match doc.pointer_mut(&place) {
        Some(Value::Object(m)) => {
            // Replace or remove an existing key (op 0, 1) or add one (op 2).
            let existing = m.keys().cloned().collect::<Vec<_>>();
            let key = if op == 2 || existing.is_empty() { key } else { u.choose(&existing)?.clone() };
            match new {
                Some(v) => {
                    m.insert(key, v);
                }
                None => {
                    m.remove(&key);
                }
            }
        }
        Some(Value::Array(a)) => match new {
            Some(v) if op == 2 || a.is_empty() => a.push(v),
            Some(v) => {
                let i = u.choose_index(a.len())?;
                a[i] = v;
            }
            None if !a.is_empty() => {
                let i = u.choose_index(a.len())?;
                a.remove(i);
            }
            None => {}
        },
        _ => {}
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let mut doc = seed_spec();
    for _ in 0..8 {
        if u.is_empty() || edit(&mut doc, &mut u).is_err() {
            break;
        }
    }
    check_import_value(&doc);
});
