//! The layers of `src/` hold: a module imports only modules of lower layers. The table
//! below is the one in ARCHITECTURE.md's module map; a new top-level module must be put in
//! it, and a `crate::X` reference from a module to one of its own layer or above fails.
//!
//! Read as text: every `crate::name` outside comments, including the braces of
//! `use crate::{a::…, b::…}`. Cheap, and honest for this codebase, where modules refer to
//! each other only through `crate::` paths (`super::` stays inside a module).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Layer of every top-level module, from the ground up.
const LAYERS: &[(&str, u8)] = &[
    ("error", 0),
    ("market", 0),
    ("cpu", 0),
    ("fingerprint", 0),
    ("shutdown", 0),
    ("redis_link", 0),
    ("web", 1),
    ("config", 1),
    ("indicators", 1),
    ("telemetry", 2),
    ("data", 3),
    ("cache", 3),
    ("scan", 3),
    ("ml", 4),
    ("cluster", 5),
    ("node", 6),
    ("screens", 6),
    ("api", 7),
    ("cli", 8),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Top-level modules named by `crate::…` in `code` (comments left out).
fn references(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in code.lines() {
        let line = line.split("//").next().unwrap_or_default();
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                // `use crate::{a::x, b::{y, z}}`: the first segment of each top-level item.
                let mut depth = 1;
                let mut at_item = true;
                for (i, c) in group.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 1 => break,
                        '}' => depth -= 1,
                        ',' if depth == 1 => at_item = true,
                        c if at_item && (c.is_ascii_alphanumeric() || c == '_') => {
                            at_item = false;
                            out.push(
                                group[i..]
                                    .chars()
                                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                                    .collect(),
                            );
                        }
                        _ => {}
                    }
                }
            } else {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                out.push(name);
            }
        }
    }
    out
}

#[test]
fn no_module_imports_its_own_layer_or_above() {
    let layers: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut violations = Vec::new();
    let mut unplaced = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).expect("under src");
        let first = rel.components().next().expect("component");
        let module = first
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if module == "lib" || module == "main" {
            continue;
        }
        let Some(&own) = layers.get(module.as_str()) else {
            unplaced.push(module);
            continue;
        };
        let code = std::fs::read_to_string(file).expect("read");
        for used in references(&code) {
            if used == module {
                continue;
            }
            match layers.get(used.as_str()) {
                Some(&layer) if layer < own => {}
                Some(&layer) => violations.push(format!(
                    "{} (layer {own}) uses crate::{used} (layer {layer})",
                    rel.display()
                )),
                None => unplaced.push(format!("{used} (used by {})", rel.display())),
            }
        }
    }
    unplaced.sort();
    unplaced.dedup();
    assert!(
        unplaced.is_empty(),
        "modules missing from the layer table: {unplaced:?}"
    );
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn the_reader_sees_every_form_of_reference() {
    let code =
        "use crate::{cache::Kind, cluster::{A, B}};\nlet x = crate::api::f(); // crate::cli\n";
    assert_eq!(references(code), ["cache", "cluster", "api"]);
}
