//! The repository's own files, as the ops and deployment tests read them.

use std::path::PathBuf;

use serde_yaml_ng::Value;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

/// Every document of a YAML file, merge keys (`<<`) resolved, empty documents left out.
pub fn yaml_docs(rel: &str) -> Vec<Value> {
    let text = read(rel);
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| {
            let mut v: Value = serde::Deserialize::deserialize(d)
                .unwrap_or_else(|e| panic!("{rel} is not YAML: {e}"));
            v.apply_merge()
                .unwrap_or_else(|e| panic!("{rel}: merge keys: {e}"));
            v
        })
        .filter(|v| !v.is_null())
        .collect()
}
