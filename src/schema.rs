//! Versioning of the JSON documents luksfs prints (`inspect --json`, `verify --json`,
//! `status --json`, `list --json`): each carries `"schema_version"` first, and a JSON Schema
//! (draft 2020-12) per document lives in `docs/schema/` (installed under
//! `/usr/share/luksfs/schema/`).

use serde_json::{Map, Value};

/// The version of every JSON document luksfs prints; raised when a key changes meaning or type
/// (added keys do not raise it).
pub const SCHEMA_VERSION: u32 = 1;

/// `doc` (an object) with `"schema_version"` as its first key; other values are returned as
/// they are.
pub fn versioned(doc: Value) -> Value {
    match doc {
        Value::Object(m) => {
            let mut out = Map::with_capacity(m.len() + 1);
            out.insert("schema_version".into(), Value::from(SCHEMA_VERSION));
            out.extend(m.into_iter().filter(|(k, _)| k != "schema_version"));
            Value::Object(out)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn version_comes_first() {
        let v = versioned(json!({"file": "x", "schema_version": 7, "a": 1}));
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["schema_version", "file", "a"]);
        assert_eq!(v["schema_version"], 1);
        assert_eq!(versioned(json!([1])), json!([1]));
    }
}
