//! The layering check: every top-level module of `linkwright-core` has a
//! layer, and may name (`crate::…`) only modules of lower layers, so the
//! modules form no circle. A new module must be given its layer here.
//! Test code (`#[cfg(test)] mod tests`, `tests.rs`) and comments are not
//! counted: tests may use anything.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Layers, lowest first. A module may use modules of earlier layers only.
const LAYERS: &[&[&str]] = &[
    // Crates below core, re-exported: the model (`click`, `error`,
    // `template`) and the plugin host (`plugin`).
    &["click", "error", "template", "plugin"],
    // Values and pure functions of core's own.
    &["clock", "money", "shard", "classify", "retry", "testing"],
    // Targeting rules and their compiled tables.
    &["targeting"],
    // Metric handles.
    &["metrics"],
    // What is stored about links and clicks, and outbound HTTP.
    &["store", "expand", "geo", "creators"],
    // What is read from the config and kept in the store.
    &["conversions", "keys", "reports", "cache", "nodes"],
    &["config"],
    // The click writer.
    &["clicklog"],
    // Domain services, and how their results are shown.
    &["links", "view"],
    &["jobs"],
    // The storage backends: every concern's store trait over one database.
    &["backend"],
    // One running instance.
    &["app"],
    // The servers: the admin API and the web console side by side.
    &["api", "console"],
    &["server"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// The code of a file without its test module and comment lines.
fn production_code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules named by `crate::x` paths and `use crate::{x, …}`.
fn named_modules(code: &str) -> BTreeSet<String> {
    let mut named = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for part in group[..end].split(',') {
                let name = ident(part.trim());
                if !name.is_empty() {
                    named.insert(name);
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                named.insert(name);
            }
        }
    }
    named
}

/// Module → the modules it names, over every file of `src`.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path.strip_prefix(src).unwrap();
            let name = rel.file_name().unwrap().to_str().unwrap();
            if !name.ends_with(".rs") || name == "tests.rs" || rel == Path::new("lib.rs") {
                continue;
            }
            let first = rel.components().next().unwrap().as_os_str();
            let module = first.to_str().unwrap().trim_end_matches(".rs").to_owned();
            let code = production_code(&std::fs::read_to_string(&path).unwrap());
            let names = graph.entry(module.clone()).or_default();
            names.extend(named_modules(&code).into_iter().filter(|m| *m != module));
        }
    }
    graph
}

/// Where the rules are broken: modules without a layer, and uses of a
/// module at the same or a higher layer.
fn violations(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut problems = Vec::new();
    for (module, uses) in graph {
        let Some(own) = layer_of(module) else {
            problems.push(format!("module `{module}` has no layer in LAYERS"));
            continue;
        };
        for used in uses {
            match layer_of(used) {
                Some(l) if l < own => {}
                Some(_) => {
                    problems.push(format!("`{module}` uses `{used}`, which is not below it"))
                }
                None => problems.push(format!("module `{used}` has no layer in LAYERS")),
            }
        }
    }
    problems
}

#[test]
fn core_modules_use_only_lower_layers() {
    let graph = graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    for module in ["store", "links", "app", "server"] {
        assert!(
            graph.contains_key(module),
            "modules found: {:?}",
            graph.keys()
        );
    }
    let problems = violations(&graph);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The check can fail: a use of a higher layer and a circle are caught.
#[test]
fn an_upward_use_is_a_violation() {
    let mut graph = BTreeMap::new();
    graph.insert("store".to_owned(), BTreeSet::from(["reports".to_owned()]));
    graph.insert("reports".to_owned(), BTreeSet::from(["store".to_owned()]));
    graph.insert("novel".to_owned(), BTreeSet::new());
    assert_eq!(
        violations(&graph),
        [
            "module `novel` has no layer in LAYERS",
            "`store` uses `reports`, which is not below it",
        ]
    );
    assert_eq!(
        named_modules("use crate::{app::App, links};\nlet x = crate::store::y;"),
        BTreeSet::from(["app".to_owned(), "links".to_owned(), "store".to_owned()])
    );
}

/// The plugin host, the only crate with `unsafe` besides the SDK, stays
/// small: no HTTP, storage, async runtime or API dependency.
#[test]
fn the_plugin_host_depends_on_no_server_storage_or_http_crate() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-host/Cargo.toml");
    let text = std::fs::read_to_string(manifest).unwrap();
    let deps = text
        .split("[dependencies]")
        .nth(1)
        .unwrap()
        .split("\n[")
        .next()
        .unwrap();
    let names: Vec<&str> = deps
        .lines()
        .filter_map(|l| l.split(['.', ' ', '=']).next())
        .filter(|n| !n.is_empty())
        .collect();
    assert!(names.contains(&"libloading"), "{names:?}");
    for banned in [
        "axum", "reqwest", "utoipa", "hyper", "tokio", "rusqlite", "tower",
    ] {
        assert!(
            !names.contains(&banned),
            "the plugin host depends on {banned}"
        );
    }
}
