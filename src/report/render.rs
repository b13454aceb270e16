//! One report, two outputs: the JSON document rendered as indented text.

use serde_json::Value;

/// Render a report as indented `key: value` lines.
pub fn render_text(v: &Value) -> String {
    let mut out = String::new();
    walk(v, 0, &mut out);
    out
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::Null => Some("-".into()),
        Value::Bool(b) => Some(if *b { "yes" } else { "no" }.into()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(if s.is_empty() { "-".into() } else { s.clone() }),
        Value::Array(a) if a.iter().all(|x| !x.is_object() && !x.is_array()) => {
            Some(if a.is_empty() { "-".into() } else { a.iter().filter_map(scalar).collect::<Vec<_>>().join(", ") })
        }
        _ => None,
    }
}

fn walk(v: &Value, depth: usize, out: &mut String) {
    let pad = "  ".repeat(depth);
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let key = k.replace('_', " ");
                match scalar(x) {
                    Some(s) => out.push_str(&format!("{pad}{key}: {s}\n")),
                    None => {
                        out.push_str(&format!("{pad}{key}:\n"));
                        walk(x, depth + 1, out);
                    }
                }
            }
        }
        Value::Array(a) => {
            for x in a {
                match x {
                    Value::Object(m) => {
                        let line =
                            m.iter().filter_map(|(k, y)| scalar(y).map(|s| format!("{k}={s}"))).collect::<Vec<_>>();
                        out.push_str(&format!("{pad}- {}\n", line.join(" ")));
                        for (k, y) in m.iter().filter(|(_, y)| scalar(y).is_none()) {
                            out.push_str(&format!("{pad}    {k}:\n"));
                            walk(y, depth + 3, out);
                        }
                    }
                    other => out.push_str(&format!("{pad}- {}\n", scalar(other).unwrap_or_default())),
                }
            }
        }
        other => out.push_str(&format!("{pad}{}\n", scalar(other).unwrap_or_default())),
    }
}
