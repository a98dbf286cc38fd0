//! Tidy checks: rules about the workspace's source that the compiler does not check, as tests
//! (after rust-analyzer's `tidy`), so that `cargo test --workspace` and `cargo xtask test`
//! keep them. Each failure names the file and line that break its rule and what to do.
//!
//! They read the source as text: comments and string literals are blanked out first (so a rule
//! is never broken or met by prose), and code after a file's first `#[cfg(test)]` is its unit
//! tests, which some rules leave out.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The workspace root (this test runs in `xtask/`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The `.rs` files under `dir`, sorted, without build output (`target/`) or hidden folders
/// (`.local/` holds the local gateway's unpacked upstream source, which is not ours).
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                if !name.starts_with('.') && name != "target" {
                    folders.push(path);
                }
            } else if name.ends_with(".rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// `path` relative to the workspace root, for messages.
fn shown(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

fn is_ident(character: char) -> bool {
    character.is_ascii_alphanumeric() || character == '_'
}

/// `text` with every comment and the inside of every string and character literal replaced by
/// spaces, line breaks kept (so line numbers still hold).
fn code_of(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |out: &mut String, character: char| {
        out.push(if character == '\n' { '\n' } else { ' ' });
    };
    let mut index = 0;
    while index < chars.len() {
        let character = chars[index];
        let next = chars.get(index + 1).copied();
        let starts_token = |at: usize| at == 0 || !is_ident(chars[at - 1]);
        // A literal's own prefix: `r"..."`, `b"..."`, `br"..."`, `b'x'`.
        let starts_literal =
            starts_token(index) || (chars[index - 1] == 'b' && starts_token(index - 1));
        if character == '/' && next == Some('/') {
            while index < chars.len() && chars[index] != '\n' {
                index += 1;
            }
        } else if character == '/' && next == Some('*') {
            let mut depth = 0;
            while index < chars.len() {
                if chars[index] == '/' && chars.get(index + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    index += 2;
                } else if chars[index] == '*' && chars.get(index + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    index += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, chars[index]);
                    index += 1;
                }
            }
        } else if character == 'r'
            && starts_literal
            && matches!(next, Some('"' | '#'))
            && raw_string_end(&chars, index + 1).is_some()
        {
            // A raw string (r"..", r#".."#, br".."): no escapes, ends at the quote and hashes.
            let end = raw_string_end(&chars, index + 1).unwrap();
            out.push('r');
            for &inside in &chars[index + 1..end] {
                blank(&mut out, inside);
            }
            index = end;
        } else if character == '"' {
            out.push('"');
            index += 1;
            while index < chars.len() && chars[index] != '"' {
                if chars[index] == '\\' {
                    blank(&mut out, chars[index]);
                    index += 1;
                }
                if index < chars.len() {
                    blank(&mut out, chars[index]);
                    index += 1;
                }
            }
            out.push('"');
            index += 1;
        } else if character == '\'' && starts_literal {
            // A character literal ('x', '\n', '\u{..}'), unless it is a lifetime ('a).
            let end = if next == Some('\\') {
                (index + 3..chars.len()).find(|&at| chars[at] == '\'')
            } else if chars.get(index + 2) == Some(&'\'') {
                Some(index + 2)
            } else {
                None
            };
            match end {
                Some(end) => {
                    out.push_str(&" ".repeat(end - index + 1));
                    index = end + 1;
                }
                None => {
                    out.push(character);
                    index += 1;
                }
            }
        } else {
            out.push(character);
            index += 1;
        }
    }
    out
}

/// Where the raw string whose hashes or quote start at `start` ends (one past its last
/// character), if one starts there.
fn raw_string_end(chars: &[char], start: usize) -> Option<usize> {
    let hashes = chars[start..].iter().take_while(|&&c| c == '#').count();
    if chars.get(start + hashes) != Some(&'"') {
        return None;
    }
    let mut index = start + hashes + 1;
    while index < chars.len() {
        if chars[index] == '"'
            && chars[index + 1..]
                .iter()
                .take(hashes)
                .filter(|&&c| c == '#')
                .count()
                == hashes
        {
            return Some(index + 1 + hashes);
        }
        index += 1;
    }
    None
}

/// The code of `path` (`code_of`), cut before its first `#[cfg(test)]` when `without_tests`.
fn code_of_file(path: &Path, without_tests: bool) -> String {
    let code = code_of(&std::fs::read_to_string(path).unwrap());
    match code.find("#[cfg(test)]") {
        Some(tests) if without_tests => code[..tests].to_owned(),
        _ => code,
    }
}

/// The first segment of every path in `code` with the line it is on: `a` of `a::b`, and the
/// crate of `use a;`, `use a as b;` and `extern crate a;`. A segment after `::` (`a::b::c`'s `b`)
/// is not a first segment.
fn path_roots(code: &str) -> Vec<(usize, String)> {
    let mut roots = Vec::new();
    for (number, line) in code.lines().enumerate() {
        let chars: Vec<char> = line.chars().collect();
        let mut index = 0;
        while index + 1 < chars.len() {
            if chars[index] == ':' && chars[index + 1] == ':' {
                let end = index;
                let mut start = end;
                while start > 0 && is_ident(chars[start - 1]) {
                    start -= 1;
                }
                let continues_a_path =
                    start >= 2 && chars[start - 1] == ':' && chars[start - 2] == ':';
                if start < end && !continues_a_path {
                    roots.push((number + 1, chars[start..end].iter().collect()));
                }
                index += 2;
            } else {
                index += 1;
            }
        }
        let words: Vec<&str> = line
            .split(|c: char| !is_ident(c))
            .filter(|word| !word.is_empty())
            .collect();
        for pair in words.windows(2) {
            let named = match pair {
                ["use", name] => Some(*name),
                ["crate", name] if line.contains("extern crate") => Some(*name),
                _ => None,
            };
            if let Some(name) = named {
                if !line.contains(&format!("{name}::")) {
                    roots.push((number + 1, name.to_owned()));
                }
            }
        }
    }
    roots
}

/// The crates a package's manifest names as dependencies (any kind), as code spells them.
fn dependency_crates(manifest: &Path) -> BTreeSet<String> {
    let manifest: toml::Table = std::fs::read_to_string(manifest).unwrap().parse().unwrap();
    ["dependencies", "dev-dependencies", "build-dependencies"]
        .iter()
        .filter_map(|section| manifest.get(*section).and_then(toml::Value::as_table))
        .flat_map(|table| table.keys())
        .map(|name| name.replace('-', "_"))
        .collect()
}

/// The crates the domain (`shared/src/domain/`) may use besides the standard library, each
/// with the reason. Everything else order-service depends on (the AWS SDK, `lambda_http`,
/// tokio, tracing, jsonwebtoken ...) is IO or a boundary, and the domain stays pure.
const DOMAIN_CRATES: &[(&str, &str)] = &[
    ("serde", "request bodies and stored answers (de)serialise"),
    ("serde_json", "its unit tests parse request bodies"),
    ("thiserror", "refusals and placement errors derive `Error`"),
    ("sha2", "an Idempotency-Key's request fingerprint"),
    ("ulid", "order ids sort by time"),
    ("time", "timestamps in RFC 3339"),
    (
        "fastrand",
        "the stock shard a line takes from, given the caller's generator",
    ),
    ("proptest", "its property tests"),
];

#[test]
fn the_domain_imports_only_std_serde_and_its_own_crates() {
    let shared = root().join("shared");
    let dependencies = dependency_crates(&shared.join("Cargo.toml"));
    let allowed: BTreeSet<&str> = DOMAIN_CRATES.iter().map(|(name, _)| *name).collect();
    // The allow-list names real dependencies, so that it cannot go stale unnoticed.
    for name in &allowed {
        assert!(
            dependencies.contains(*name),
            "DOMAIN_CRATES names {name}, which order-service does not depend on"
        );
    }
    let mut found = Vec::new();
    for file in rust_files(&shared.join("src/domain")) {
        let code = code_of_file(&file, false);
        for (line, root) in path_roots(&code) {
            let forbidden_crate = dependencies.contains(&root) && !allowed.contains(root.as_str());
            if forbidden_crate {
                found.push(format!("{}:{line}: uses {root}", shown(&file)));
            }
        }
        // Within order-service it uses only itself: no `crate::store`, `crate::app` ... nor
        // `super::super::` from a file's own code, which is the crate root (a unit test's
        // `super::super::` is the domain, so that part leaves the tests out).
        let own_code = code_of_file(&file, true);
        for (number, line) in code.lines().enumerate() {
            let outside = line.match_indices("crate::").any(|(at, _)| {
                !line[at + "crate::".len()..].starts_with("domain") && !line[..at].ends_with("pub(")
            }) || own_code
                .lines()
                .nth(number)
                .is_some_and(|own| own.contains("super::super::"));
            if outside {
                found.push(format!(
                    "{}:{}: reaches outside the domain: {}",
                    shown(&file),
                    number + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(
        found.is_empty(),
        "the domain is pure: it may use std and {allowed:?} only (add a crate to DOMAIN_CRATES \
         only if it does no IO), and nothing of order-service outside shared/src/domain/:\n{}",
        found.join("\n")
    );
}

/// The domain's decisions, as a call spells them: pricing an order, deciding a change and
/// whether a key's prior answer replays, choosing and laying out stock shards.
const DECISIONS: &[&str] = &[
    "Order::place(",
    ".decide(",
    ".against(",
    "take_at_random(",
    "allocate(",
    "replace_moves(",
    "give_back(",
    ".toward(",
    "spread(",
    ".without_restock_of(",
    ".restocking_first_shard_of(",
];

/// The function a decision in `DECISIONS` calls (`Order::place(` -> `place`).
fn decision_name(decision: &str) -> &str {
    let name = decision.trim_end_matches('(');
    let start = name.rfind([':', '.']).map_or(0, |at| at + 1);
    &name[start..]
}

#[test]
fn no_store_code_calls_a_domain_decision() {
    // The store writes what the domain decided and decides nothing itself; the application
    // (`shared/src/app/`) calls the decisions, between its reads and its writes. Its unit
    // tests may call them to build what they store.
    let shared = root().join("shared/src");
    let domain: String = rust_files(&shared.join("domain"))
        .iter()
        .map(|file| code_of_file(file, false))
        .collect();
    for decision in DECISIONS {
        let name = decision_name(decision);
        assert!(
            domain.contains(&format!("fn {name}(")) || domain.contains(&format!("fn {name}<")),
            "DECISIONS names {decision}, but the domain has no fn {name}"
        );
    }
    let mut found = Vec::new();
    for file in rust_files(&shared.join("store")) {
        for (number, line) in code_of_file(&file, true).lines().enumerate() {
            for decision in DECISIONS
                .iter()
                .filter(|decision| line.contains(**decision))
            {
                found.push(format!(
                    "{}:{}: calls {decision} {}",
                    shown(&file),
                    number + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(
        found.is_empty(),
        "the store decides (move the decision to the use case in shared/src/app/):\n{}",
        found.join("\n")
    );
    // The application does call them: the list names what the use cases really call.
    let app: String = rust_files(&shared.join("app"))
        .iter()
        .map(|file| code_of_file(file, true))
        .collect();
    for decision in [
        "Order::place(",
        ".decide(",
        ".against(",
        "take_at_random(",
        "allocate(",
    ] {
        assert!(app.contains(decision), "no use case calls {decision}");
    }
}

#[test]
fn code_of_blanks_comments_and_literals_only() {
    let text = "let a = \"x::y // no\"; // tokio::spawn\nlet b = 'c'; /* aws_sdk::x */ f::<'a>(r#\"q\"::\"#);";
    let code = code_of(text);
    assert_eq!(code.lines().count(), 2);
    assert!(!code.contains("tokio") && !code.contains("aws_sdk") && !code.contains("x::y"));
    assert!(
        code.contains("let b =") && code.contains("f::<'a>("),
        "{code}"
    );
    let roots: Vec<String> = path_roots(&code_of(
        "use serde::{de::Visitor};\nuse tokio as t;\nstd::fmt::x",
    ))
    .into_iter()
    .map(|(_, root)| root)
    .collect();
    assert_eq!(roots, ["serde", "de", "tokio", "std"]);
}

/// A file's module in its crate, from its path under `src`: `drill/runner.rs` is
/// `["drill", "runner"]`, `drill.rs` (or `drill/mod.rs`) is `["drill"]`, `lib.rs` is `[]`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let mut module: Vec<String> = relative
        .iter()
        .map(|part| part.to_string_lossy().into_owned())
        .collect();
    if module
        .last()
        .is_some_and(|last| last == "mod" || last == "lib")
    {
        module.pop();
    }
    module
}

fn skip_space(code: &[char], at: &mut usize) {
    while *at < code.len() && code[*at].is_whitespace() {
        *at += 1;
    }
}

/// The paths of the use tree (or plain path) that starts at `at`, e.g. `a::{b, c::d}` is
/// `a::b` and `a::c::d`; `at` ends after it.
fn tree_paths(code: &[char], at: &mut usize) -> Vec<Vec<String>> {
    let mut prefix = Vec::new();
    loop {
        skip_space(code, at);
        if code.get(*at) == Some(&'{') {
            *at += 1;
            let mut paths = Vec::new();
            loop {
                skip_space(code, at);
                match code.get(*at) {
                    None => return paths,
                    Some('}') => {
                        *at += 1;
                        return paths;
                    }
                    Some(',') => *at += 1,
                    Some(_) => {
                        let before = *at;
                        for path in tree_paths(code, at) {
                            paths.push([prefix.clone(), path].concat());
                        }
                        // Past what a tree does not take (`as name`, `*`) up to `,` or `}`.
                        while *at < code.len() && !matches!(code[*at], ',' | '}') {
                            *at += 1;
                        }
                        if *at == before {
                            *at += 1;
                        }
                    }
                }
            }
        }
        let start = *at;
        while *at < code.len() && is_ident(code[*at]) {
            *at += 1;
        }
        if *at == start {
            return vec![prefix];
        }
        prefix.push(code[start..*at].iter().collect());
        skip_space(code, at);
        if code.get(*at) == Some(&':') && code.get(*at + 1) == Some(&':') {
            *at += 2;
        } else {
            return vec![prefix];
        }
    }
}

/// What the code of the file of `module` names in its own crate: every `crate::` path (use
/// trees too) and, in its own code (`own_code`: without its unit tests, where `super` would be
/// the file's module itself), every `super::` path, resolved from the crate root, with the line.
fn crate_references(module: &[String], code: &str, own_code: &str) -> Vec<(usize, Vec<String>)> {
    let mut references = Vec::new();
    for (text, anchors) in [(code, &["crate"][..]), (own_code, &["super"][..])] {
        let chars: Vec<char> = text.chars().collect();
        let mut at = 0;
        while at < chars.len() {
            let starts = at == 0 || !(is_ident(chars[at - 1]) || chars[at - 1] == ':');
            let anchor = anchors.iter().find(|anchor| {
                starts && chars[at..].starts_with(&anchor.chars().collect::<Vec<_>>())
            });
            let Some(anchor) = anchor else {
                at += 1;
                continue;
            };
            let line = chars[..at].iter().filter(|&&c| c == '\n').count() + 1;
            let mut cursor = at;
            for path in tree_paths(&chars, &mut cursor) {
                let mut resolved: Vec<String> = if *anchor == "crate" {
                    Vec::new()
                } else {
                    module.to_vec()
                };
                let mut segments = path.into_iter().peekable();
                while segments.peek().is_some_and(|segment| segment == anchor) {
                    segments.next();
                    if *anchor == "super" {
                        resolved.pop();
                    }
                }
                resolved.extend(segments);
                references.push((line, resolved));
            }
            at = cursor.max(at + 1);
        }
    }
    references
}

/// Module to module, with the first place one uses the other.
type Edges = std::collections::BTreeMap<(Vec<String>, Vec<String>), String>;

/// The dependencies between sibling modules of the crate whose source is `src`: an edge
/// `a -> b` (both children of one parent module, or both top-level) when code in `a` (or a
/// module inside it) names something in `b`. A module naming its parent's items or its own
/// children's is no edge. Each edge keeps where it is made (file:line). Code under
/// `#[cfg(test)]` counts when `with_tests`.
fn sibling_dependencies(src: &Path, with_tests: bool) -> Edges {
    let files = rust_files(src);
    let modules: BTreeSet<Vec<String>> = files
        .iter()
        .map(|file| module_of(src, file))
        .flat_map(|module| (1..=module.len()).map(move |end| module[..end].to_vec()))
        .collect();
    let mut edges = std::collections::BTreeMap::new();
    for file in &files {
        let module = module_of(src, file);
        let code = code_of_file(file, !with_tests);
        let own_code = code_of_file(file, true);
        for (line, target) in crate_references(&module, &code, &own_code) {
            let common = module
                .iter()
                .zip(&target)
                .take_while(|(a, b)| a == b)
                .count();
            if common >= module.len() || common >= target.len() {
                continue;
            }
            let (from, to) = (module[..=common].to_vec(), target[..=common].to_vec());
            if modules.contains(&to) {
                edges
                    .entry((from, to))
                    .or_insert_with(|| format!("{}:{line}", shown(file)));
            }
        }
    }
    edges
}

/// The cycles of a directed graph, each once, as the list of its nodes in order.
fn cycles<N: Ord + Clone>(edges: &[(N, N)]) -> Vec<Vec<N>> {
    let nodes: BTreeSet<N> = edges
        .iter()
        .flat_map(|(a, b)| [a.clone(), b.clone()])
        .collect();
    let mut found: Vec<Vec<N>> = Vec::new();
    let mut seen: BTreeSet<Vec<N>> = BTreeSet::new();
    // Depth-first from every node; a path that comes back to where it started is a cycle. The
    // graphs here have a few dozen nodes, so the plain search is fast enough.
    fn walk<N: Ord + Clone>(
        path: &mut Vec<N>,
        edges: &[(N, N)],
        found: &mut Vec<Vec<N>>,
        seen: &mut BTreeSet<Vec<N>>,
        visited: &mut BTreeSet<N>,
    ) {
        let last = path.last().unwrap().clone();
        for (_, next) in edges.iter().filter(|(from, _)| *from == last) {
            if *next == path[0] {
                let mut key = path.clone();
                key.sort();
                if seen.insert(key) {
                    found.push(path.clone());
                }
            } else if !path.contains(next) && !visited.contains(next) && *next > path[0] {
                path.push(next.clone());
                walk(path, edges, found, seen, visited);
                path.pop();
            }
        }
        visited.insert(last);
    }
    for node in nodes {
        walk(
            &mut vec![node],
            edges,
            &mut found,
            &mut seen,
            &mut BTreeSet::new(),
        );
    }
    found
}

/// The cycles among `src`'s sibling modules (the top-level modules, the modules inside each
/// folder ...), each as the lines that make it, and the edges they were found among.
fn module_cycles(src: &Path, with_tests: bool) -> (Vec<String>, Edges) {
    let edges = sibling_dependencies(src, with_tests);
    let pairs: Vec<(Vec<String>, Vec<String>)> = edges.keys().cloned().collect();
    let found: Vec<String> = cycles(&pairs)
        .into_iter()
        .map(|cycle| {
            let steps: Vec<String> = cycle
                .iter()
                .zip(cycle.iter().cycle().skip(1))
                .map(|(from, to)| {
                    format!(
                        "  {} -> {} ({})",
                        from.join("::"),
                        to.join("::"),
                        edges[&(from.clone(), to.clone())]
                    )
                })
                .collect();
            steps.join("\n")
        })
        .collect();
    (found, edges)
}

#[test]
fn no_module_of_the_lab_depends_on_itself_through_others() {
    // A cycle hides which module is the lower layer: what `stack` needs from `data` and `data`
    // from `stack` can only be read together. Every module's siblings (the top-level modules
    // of lab/src, the modules inside drill/ ...) form a graph without cycles.
    let (found, edges) = module_cycles(&root().join("lab/src"), true);
    assert!(
        found.is_empty(),
        "modules of lab/src depend on each other in a cycle; move what both need to the module \
         it belongs to (or a new one below both):\n{}",
        found.join("\n\n")
    );
    // The check sees real dependencies (so that an empty result means something).
    let top = |name: &str| vec![name.to_owned()];
    assert!(edges.contains_key(&(top("stack"), top("state"))));
    assert!(edges.contains_key(&(
        vec!["drill".to_owned(), "bad_deploy".to_owned()],
        vec!["drill".to_owned(), "runner".to_owned()]
    )));
}

#[test]
fn no_module_of_the_service_depends_on_itself_through_others() {
    // The same for the service crate's layers: `app` runs the operations and `observability`
    // counts them, so the operations' names live below both (`operation`). Its tests may
    // cross layers (the store's test that a kept answer renders byte for byte as `http` first
    // rendered it), so only the code that ships counts.
    let (found, edges) = module_cycles(&root().join("shared/src"), false);
    assert!(
        found.is_empty(),
        "modules of shared/src depend on each other in a cycle; move what both need to the \
         module it belongs to (or a new one below both):\n{}",
        found.join("\n\n")
    );
    let top = |name: &str| vec![name.to_owned()];
    assert!(edges.contains_key(&(top("app"), top("observability"))));
    assert!(edges.contains_key(&(top("observability"), top("operation"))));
}

#[test]
fn use_trees_resolve_to_the_modules_they_name() {
    let module = vec!["drill".to_owned(), "runner".to_owned()];
    let code = "use crate::{data::{self, SeedArgs}, paths};\nuse super::{observe::Canary, Options};\nfn f() { crate::stack::start(); }\n";
    let references = crate_references(&module, code, code);
    let paths: Vec<String> = references.iter().map(|(_, path)| path.join("::")).collect();
    assert_eq!(
        paths,
        [
            "data::self",
            "data::SeedArgs",
            "paths",
            "stack::start",
            "drill::observe::Canary",
            "drill::Options"
        ]
    );
    assert_eq!(references[3].0, 3);
    let edges = [(1, 2), (2, 3), (3, 1), (3, 4), (4, 3), (5, 1)];
    assert_eq!(cycles(&edges), vec![vec![1, 2, 3], vec![3, 4]]);
}

/// The most lines a source file may have: a longer one holds more than a reader takes in at
/// once, and splitting it along its seams (the parts that use each other least) names them.
const MAX_LINES: usize = 800;

#[test]
fn no_source_file_is_longer_than_800_lines() {
    let files = rust_files(&root());
    let long: Vec<String> = files
        .iter()
        .filter_map(|file| {
            let lines = std::fs::read_to_string(file).unwrap().lines().count();
            (lines > MAX_LINES).then(|| format!("{}: {lines} lines", shown(file)))
        })
        .collect();
    assert!(
        long.is_empty(),
        "split these along their seams (at most {MAX_LINES} lines each):\n{}",
        long.join("\n")
    );
    // The walk sees the whole workspace, the largest files included.
    assert!(files.len() > 100, "only {} .rs files found", files.len());
}

/// The most other top-level modules of the lab that one may be used by: past it, a module is
/// a hub that most of the lab changes with, and usually holds several things to split apart.
const MAX_USERS: usize = 8;

/// The lab's modules that may be used by more, each with the reason. Each is a leaf: it uses
/// no module of the lab but these, so that what many depend on depends on little.
const LAB_HUBS: &[(&str, &str)] = &[
    (
        "paths",
        "constants of where things are (the workspace root, .local/, reports/, binaries)",
    ),
    (
        "state",
        "the running local stack's state file: what every command that reaches the stack reads",
    ),
    (
        "process",
        "the lab's one way to run commands, signal processes and read the process table",
    ),
    (
        "clock",
        "now, and every text form of an instant, on the time crate",
    ),
    (
        "client",
        "the tokio runtime a command blocks on and the store client for an endpoint",
    ),
];

#[test]
fn no_module_of_the_lab_is_used_by_more_than_8_others() {
    let edges = sibling_dependencies(&root().join("lab/src"), true);
    let mut users: std::collections::BTreeMap<String, BTreeSet<String>> = Default::default();
    for (from, to) in edges.keys().filter(|(from, _)| from.len() == 1) {
        users
            .entry(to[0].clone())
            .or_default()
            .insert(from[0].clone());
    }
    let mut table: Vec<(&String, &BTreeSet<String>)> = users.iter().collect();
    table.sort_by_key(|(name, users)| (std::cmp::Reverse(users.len()), (*name).clone()));
    let shown_table: Vec<String> = table
        .iter()
        .map(|(name, users)| {
            let names: Vec<&str> = users.iter().map(String::as_str).collect();
            format!("{name:>10} {:>2}  {}", users.len(), names.join(" "))
        })
        .collect();
    // The table is the measurement a change of the lab's layout is judged by.
    eprintln!("users of each lab module:\n{}", shown_table.join("\n"));
    let allowed: BTreeSet<&str> = LAB_HUBS.iter().map(|(name, _)| *name).collect();
    let hubs: Vec<String> = table
        .iter()
        .filter(|(name, users)| users.len() > MAX_USERS && !allowed.contains(name.as_str()))
        .map(|(name, users)| format!("{name} ({} users)", users.len()))
        .collect();
    assert!(
        hubs.is_empty(),
        "these lab modules are used by more than {MAX_USERS} others; split each where its users \
         need different parts (or, for a leaf that many need, add it to LAB_HUBS with the \
         reason): {}\n{}",
        hubs.join(", "),
        shown_table.join("\n")
    );
    for name in &allowed {
        assert!(
            users.contains_key(*name),
            "LAB_HUBS names {name}, which no module uses"
        );
        let uses: Vec<&str> = edges
            .keys()
            .filter(|(from, _)| from.len() == 1 && from[0] == *name)
            .map(|(_, to)| to[0].as_str())
            .filter(|to| !allowed.contains(to))
            .collect();
        assert!(
            uses.is_empty(),
            "{name} is in LAB_HUBS but is no leaf: it uses {uses:?}"
        );
    }
}
