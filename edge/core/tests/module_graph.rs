//! The core's top-level modules form a graph without cycles.
//!
//! Reads `src/<module>` (every `.rs` file of a top-level module, its tests
//! included), finds each `crate::...` path outside comments, and counts an
//! edge `module -> target` for the top-level module it names. A root
//! re-export (`crate::Edge`, `use crate::{Config, ..}`) counts as an edge to
//! the module `lib.rs` re-exports it from. Fails naming every cycle.
//! The layering this keeps is described in `docs/ARCHITECTURE.md`
//! ("Module layering").
#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

/// The source with comments and string/char literals blanked out (a path
/// in a doc comment or a string is not a dependency).
fn code_only(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        let rest = &src[i..];
        if rest.starts_with("//") {
            let end = rest.find('\n').map_or(b.len(), |n| i + n);
            i = end;
        } else if rest.starts_with("/*") {
            let mut depth = 0usize;
            while i < b.len() {
                if src[i..].starts_with("/*") {
                    depth += 1;
                    i += 2;
                } else if src[i..].starts_with("*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if let Some((prefix, hashes)) = raw_string_start(rest).filter(|_| !ident_before(src, i)) {
            // r"..." / r#"..."# / br"..."
            let close = format!("\"{}", "#".repeat(hashes));
            let body = i + prefix + hashes + 1;
            i = src[body..].find(&close).map_or(b.len(), |n| body + n + close.len());
            out.push_str("\"\"");
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && char_literal_len(rest).is_some() {
            i += char_literal_len(rest).unwrap_or(1);
            out.push_str("' '");
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// `r"`, `r#..#"` or `br"` at the start of `rest`: (prefix length, number of `#`).
fn raw_string_start(rest: &str) -> Option<(usize, usize)> {
    let tail = rest.strip_prefix('r').or_else(|| rest.strip_prefix("br"))?;
    let hashes = tail.bytes().take_while(|&c| c == b'#').count();
    (tail.as_bytes().get(hashes) == Some(&b'"')).then_some((rest.len() - tail.len(), hashes))
}

fn ident_before(src: &str, i: usize) -> bool {
    src[..i].chars().next_back().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The length of a char literal at the start of `rest` (`'a'`, `'\n'`,
/// `'\''`, `'\u{..}'`); `None` for a lifetime.
fn char_literal_len(rest: &str) -> Option<usize> {
    let b = rest.as_bytes();
    if b.get(1) == Some(&b'\\') {
        // Skip the escaped character itself (`'\''`).
        let close = rest.get(3..)?.find('\'')? + 3;
        return Some(close + 1);
    }
    let c = rest[1..].chars().next()?;
    (rest.as_bytes().get(1 + c.len_utf8()) == Some(&b'\'')).then_some(2 + c.len_utf8())
}

fn ident_at(s: &str) -> &str {
    let end = s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(s.len());
    &s[..end]
}

/// Every name right after `crate::`, with the first-level names of a
/// `crate::{a, b::c, D}` group.
fn crate_names(code: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue; // e.g. `my_crate::`
        }
        let tail = rest.trim_start();
        if let Some(group) = tail.strip_prefix('{') {
            let mut depth = 0usize;
            let mut item_start = true;
            for (k, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && depth == 0 && (c.is_ascii_alphanumeric() || c == '_') => {
                        names.push(ident_at(&group[k..]).to_owned());
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            let name = ident_at(tail);
            if !name.is_empty() {
                names.push(name.to_owned());
            }
        }
    }
    names
}

fn rs_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        let mut entries: Vec<_> = fs::read_dir(path).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        for e in entries {
            rs_files(&e, out);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_owned());
    }
}

/// `pub use module::{A, B};` / `pub use module::A;` in lib.rs: name → module.
fn root_reexports(lib: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for stmt in code_only(lib).split(';') {
        let Some(path) = stmt.trim().strip_prefix("pub use ") else { continue };
        let Some((module, items)) = path.trim().split_once("::") else { continue };
        let items = items.trim().trim_start_matches('{').trim_end_matches('}');
        for item in items.split(',') {
            let name = item.rsplit(" as ").next().unwrap_or("").trim();
            let name = name.rsplit("::").next().unwrap_or("").trim();
            if !name.is_empty() {
                map.insert(name.to_owned(), module.trim().to_owned());
            }
        }
    }
    map
}

fn module_graph(src: &Path) -> Graph {
    let lib = fs::read_to_string(src.join("lib.rs")).unwrap();
    let reexports = root_reexports(&lib);
    let mut modules: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for entry in fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else { continue };
        if stem == "lib" || stem == "main" {
            continue;
        }
        let files = modules.entry(stem).or_default();
        rs_files(&path, files);
    }
    let mut graph = Graph::new();
    for (module, files) in &modules {
        let deps = graph.entry(module.clone()).or_default();
        for file in files {
            let code = code_only(&fs::read_to_string(file).unwrap());
            for name in crate_names(&code) {
                let target = if modules.contains_key(&name) {
                    name.clone()
                } else if let Some(m) = reexports.get(&name) {
                    m.clone()
                } else {
                    panic!("{}: `crate::{name}` is neither a top-level module nor a root re-export", file.display());
                };
                if target != *module {
                    deps.insert(target);
                }
            }
        }
    }
    graph
}

/// Strongly connected components with more than one module (Tarjan).
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    struct T<'g> {
        g: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on: BTreeSet<&'g str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'g>(t: &mut T<'g>, v: &'g str) {
        let i = t.index.len();
        t.index.insert(v, i);
        t.low.insert(v, i);
        t.stack.push(v);
        t.on.insert(v);
        for w in t.g.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut scc = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                scc.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            if scc.len() > 1 {
                scc.sort();
                t.out.push(scc);
            }
        }
    }
    let mut t = T { g: graph, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), on: BTreeSet::new(), out: Vec::new() };
    for v in graph.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out
}

/// The shortest cycle through each module of a component, each once.
fn cycles_in(graph: &Graph, scc: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for start in scc {
        let mut c = one_cycle(graph, scc, start);
        // Rotate so that equal cycles print equally.
        c.pop();
        let min = c.iter().enumerate().min_by_key(|(_, m)| *m).map_or(0, |(i, _)| i);
        c.rotate_left(min);
        c.push(c[0].clone());
        let line = c.join(" -> ");
        if !out.contains(&line) {
            out.push(line);
        }
    }
    out
}

/// The shortest cycle from `start` back to it inside a component.
fn one_cycle(graph: &Graph, scc: &[String], start: &String) -> Vec<String> {
    let inside: BTreeSet<&String> = scc.iter().collect();
    // Breadth-first from `start`'s successors back to `start`.
    let mut prev: BTreeMap<&String, &String> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for w in graph[v].iter().filter(|w| inside.contains(w)) {
            if w == start {
                let mut path = vec![start.clone()];
                let mut at = v;
                while at != start {
                    path.push(at.clone());
                    at = prev[at];
                }
                path.push(start.clone());
                let last = path.len() - 1;
                path[1..last].reverse();
                return path;
            }
            if !prev.contains_key(w) {
                prev.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    scc.to_vec()
}

fn render(graph: &Graph) -> String {
    graph
        .iter()
        .map(|(m, deps)| format!("  {m} -> {}", deps.iter().cloned().collect::<Vec<_>>().join(" ")))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn top_level_modules_have_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = module_graph(&src);
    assert!(graph.len() >= 8, "found too few modules to be checking anything:\n{}", render(&graph));
    println!("edge/core/src module graph:\n{}", render(&graph));
    let found = cycles(&graph);
    let described: Vec<String> = found.iter().flat_map(|scc| cycles_in(&graph, scc)).collect();
    assert!(
        found.is_empty(),
        "module cycles in edge/core/src:\n  {}\ngraph:\n{}",
        described.join("\n  "),
        render(&graph)
    );
}

/// Secrets stay in a leaf module: every layer may hold a reference or a
/// value, and `secret` depends on nothing in the crate.
#[test]
fn secret_is_a_leaf() {
    let graph = module_graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let deps = graph.get("secret").expect("a top-level `secret` module");
    assert!(deps.is_empty(), "secret -> {deps:?}\ngraph:\n{}", render(&graph));
}

#[test]
fn the_checker_sees_paths_groups_and_reexports() {
    let code = code_only(
        "use crate::cache::key::KeyRules; // crate::ignored\n\
         /* crate::also_ignored */ let s = \"crate::in_string\";\n\
         use crate::{Edge, proxy::{Viewer, canonical}, error::Error};\n\
         fn f<'a>(x: &'a str) -> char { let _ = crate::sign::x(); 'c' }\n\
         let r = r#\"crate::raw\"#; other_crate::x();",
    );
    assert_eq!(crate_names(&code), ["cache", "Edge", "proxy", "error", "sign"]);
    let map = root_reexports("pub mod a;\npub use pipeline::{Edge, Forward as F};\npub use config::Config;");
    assert_eq!(map.get("Edge").map(String::as_str), Some("pipeline"));
    assert_eq!(map.get("F").map(String::as_str), Some("pipeline"));
    assert_eq!(map.get("Config").map(String::as_str), Some("config"));
    let mut g = Graph::new();
    for (a, b) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("d", "e")] {
        g.entry(a.into()).or_default().insert(b.into());
        g.entry(b.into()).or_default();
    }
    let found = cycles(&g);
    assert_eq!(found, [vec!["a".to_owned(), "b".into(), "c".into()]]);
    assert_eq!(cycles_in(&g, &found[0]), ["a -> b -> c -> a"]);
}
