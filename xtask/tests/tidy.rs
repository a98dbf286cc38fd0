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
