//! `cargo xtask template --managed-instances`: writes the Lambda Managed Instances variant of
//! `template.yaml` (by default `.local/template-managed-instances.yaml`), the template to deploy,
//! as a stack of its own, to run the four functions on the capacity provider.
//!
//! `template.yaml` keeps the functions on default Lambda. SAM cannot attach them to the capacity
//! provider conditionally (aws-sam-translator rejects `CapacityProviderConfig: !If`), and Lambda
//! fixes a function's compute type when the function is created, so the variant is a separate
//! template: this one, derived from `template.yaml` rather than copied by hand. The variant:
//!
//! - defaults `ManagedInstances` to "true" and allows nothing else; the network parameters
//!   lose their empty defaults (the deployment must name the subnets and security groups);
//! - drops the `UseManagedInstances` condition: the capacity provider, its operator role and
//!   its output become unconditional, as the functions reference the provider;
//! - gives `Globals.Function` a `CapacityProviderConfig` (the provider's ARN,
//!   `PerExecutionEnvironmentMaxConcurrency`, `ExecutionEnvironmentMemoryGiBPerVCpu: 2`),
//!   `MemorySize: 2048` (the LMI minimum) and no `ReservedConcurrentExecutions`, together with
//!   the `ReservedConcurrency` parameter and `HasReservedConcurrency` condition that served it.
//!
//! The edits are anchored text edits, not a YAML round-trip (serde_yaml 0.9 keeps the `!Ref`
//! and `!GetAtt` tags, but drops every comment): each anchor (the `# managed-instances:
//! globals` marker in `Globals.Function`, a parameter, a condition, a property) must be found
//! exactly once, or the command fails naming it.
//!
//! `cargo xtask template --sam-local`: writes the `sam local start-api` variant (by default
//! `.local/template-sam-local.yaml`). SAM CLI's local API reader cannot serve template.yaml: it
//! takes the explicit AWS::ApiGatewayV2 resources, stops at the routes' conditional
//! `AuthorizerId`, and finds no function behind integrations that target the `live` aliases.
//! The variant is what it can read, a REST API fed by SAM `Events` (payload 1.0, the shape of
//! `events/v1/`):
//!
//! - `ApiType` is "rest" and `AuthMode` "jwt" (each the only value allowed): there is no API
//!   authorizer, the functions verify the development tokens themselves;
//! - every AWS::ApiGatewayV2 resource (the HTTP API, its stage, authorizer, integrations and
//!   routes) and every AWS::Lambda::Permission (SAM derives one per event) is gone, and so are
//!   the conditions that only they used (`UseHttpApiAuthorizer`, `UseApiGatewayAuth`);
//! - `Api` (AWS::Serverless::Api) is unconditional and has no `DefinitionBody`, whose
//!   integrations target the aliases: SAM generates it from the events;
//! - each function gets one `Api` event (`RestApiId: !Ref Api`) per route of the router table
//!   (`[workspace.metadata.lambda.watch.router]` in Cargo.toml, read through `cargo
//!   metadata`), and keeps its Metadata (`BuildMethod: rust-cargolambda`) for `sam build`;
//! - every `!If [UseHttpApi, <http>, <rest>]` becomes its REST branch, and `UseHttpApi` and
//!   `UseRestApi` are gone.
//!
//! These are anchored text edits too (xtask has no YAML library, and a serde_yaml round trip,
//! which keeps the short-form tags, drops every comment and reflows the flow sequences), and
//! the command fails naming what it did not find, or what the variant still holds that SAM
//! local cannot read.

use std::collections::BTreeSet;
use std::ops::{Range, RangeInclusive};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;

use crate::paths;
use crate::stack::{DEFAULT_MAX_CONCURRENCY, FUNCTIONS};

/// The marker comment in `Globals.Function` that the variant replaces (with the comment lines
/// right above it) by `CapacityProviderConfig`.
pub(crate) const GLOBALS_MARKER: &str = "    # managed-instances: globals";

/// The LMI minimum memory of a function: 2 GB (and 1 vCPU) per execution environment.
pub(crate) const MANAGED_INSTANCES_MEMORY_MB: u32 = 2048;

/// `ExecutionEnvironmentMemoryGiBPerVCpu`: 2 GiB per vCPU, i.e. one vCPU per 2048 MB
/// environment (the supported ratios are 2, 4 and 8).
pub(crate) const MEMORY_GIB_PER_VCPU: u32 = 2;

/// What `PerExecutionEnvironmentMaxConcurrency` accepts (AWS::Lambda::Function's schema).
pub(crate) const MAX_CONCURRENCY_RANGE: RangeInclusive<u32> = 1..=1600;

/// The capacity provider's logical id in template.yaml.
pub(crate) const CAPACITY_PROVIDER: &str = "ManagedInstancesCapacityProvider";

#[derive(clap::Args, Debug, Clone)]
#[command(group(clap::ArgGroup::new("variant").required(true)))]
pub struct Args {
    /// Write the Lambda Managed Instances variant (a stack of its own).
    #[arg(long, group = "variant")]
    pub managed_instances: bool,
    /// Write the `sam local start-api` variant (REST API from SAM events, no authorizer).
    #[arg(long, group = "variant")]
    pub sam_local: bool,
    /// PerExecutionEnvironmentMaxConcurrency: invocations one execution environment serves at
    /// once (Lambda sets AWS_LAMBDA_MAX_CONCURRENCY from it). The local stack's default.
    #[arg(long, default_value_t = DEFAULT_MAX_CONCURRENCY, conflicts_with = "sam_local",
          value_parser = clap::value_parser!(u32).range(1..=1600))]
    pub max_concurrency: u32,
    /// Where to write the variant [default: .local/template-managed-instances.yaml, or
    /// .local/template-sam-local.yaml].
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// The variant's default path (git-ignored).
pub(crate) fn default_out() -> PathBuf {
    paths::local().join("template-managed-instances.yaml")
}

pub fn run(args: &Args) -> Result<()> {
    if args.sam_local {
        let out = args.out.clone().unwrap_or_else(default_sam_local_out);
        write_sam_local(&out)?;
        eprintln!(
            "wrote the `sam local` variant of template.yaml (a REST API from SAM events, no \
             authorizer): README.md, \"`sam local` (Docker)\", has the commands"
        );
        println!("{}", out.display());
        return Ok(());
    }
    let out = args.out.clone().unwrap_or_else(default_out);
    write_managed_instances(args.max_concurrency, &out)?;
    eprintln!(
        "wrote the Lambda Managed Instances variant of template.yaml \
         (PerExecutionEnvironmentMaxConcurrency {}): build and deploy it as a stack of its own \
         (README.md, \"Lambda Managed Instances (optional)\", has the commands)",
        args.max_concurrency
    );
    println!("{}", out.display());
    Ok(())
}

mod managed_instances;
mod sam_local;

pub(crate) use managed_instances::*;
pub(crate) use sam_local::*;

/// Reads template.yaml, derives `what` from its text, writes it to `out` (creating its folder).
fn write_variant(
    out: &Path,
    what: &str,
    derive: impl FnOnce(&str) -> Result<String>,
) -> Result<()> {
    let source = paths::root().join("template.yaml");
    let template = std::fs::read_to_string(&source)
        .with_context(|| format!("cannot read {}", source.display()))?;
    let variant = derive(&template)
        .with_context(|| format!("cannot derive {what} of {}", source.display()))?;
    if let Some(parent) = out.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(out, variant).with_context(|| format!("cannot write {}", out.display()))
}

/// The lines of the top-level section `name` (its `name:` line up to the next top-level key).
fn section(lines: &[String], name: &str) -> Result<Range<usize>> {
    let header = format!("{name}:");
    let start = lines
        .iter()
        .position(|line| *line == header)
        .with_context(|| format!("template.yaml has no top-level `{header}`"))?;
    let end = lines[start + 1..]
        .iter()
        .position(|line| line.starts_with(|c: char| c.is_ascii_alphabetic()))
        .map_or(lines.len(), |offset| start + 1 + offset);
    Ok(start..end)
}

fn indentation(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// The lines of the mapping entry `key` at `indent` spaces in section `name`: its key line
/// and every more-indented (or blank) line after it, without trailing blank lines; with
/// `comments`, also the comment lines at the same indentation right above it (its notes).
/// Exactly one such key must exist in the section.
fn find_entry(
    lines: &[String],
    name: &str,
    indent: usize,
    key: &str,
    comments: bool,
) -> Result<Range<usize>> {
    let within = section(lines, name)?;
    let entry = child_entry(lines, within.clone(), indent, key, name)?;
    let first = if comments {
        comments_above(lines, within.start, entry.start, indent)
    } else {
        entry.start
    };
    Ok(first..entry.end)
}

/// The marker line `marker` in section `name` and the comment lines at its indentation right
/// above it (the note it ends). Exactly one must exist.
fn find_marker(lines: &[String], name: &str, marker: &str) -> Result<Range<usize>> {
    let within = section(lines, name)?;
    let found: Vec<usize> = within
        .clone()
        .filter(|&index| lines[index] == marker)
        .collect();
    let index = match found.as_slice() {
        [one] => *one,
        [] => bail!("anchor missing: no marker line `{marker}` in {name} of template.yaml"),
        _ => bail!(
            "anchor ambiguous: the marker `{marker}` appears {} times",
            found.len()
        ),
    };
    let first = comments_above(lines, within.start, index, indentation(marker));
    Ok(first..index + 1)
}

/// Replaces (or, with `None`, removes) the one line equal to `old` in `within`.
fn replace_line(
    lines: &mut Vec<String>,
    within: Range<usize>,
    place: &str,
    old: &str,
    new: Option<&str>,
) -> Result<()> {
    let found: Vec<usize> = within.filter(|&index| lines[index] == old).collect();
    let index = match found.as_slice() {
        [one] => *one,
        [] => bail!("anchor missing: no line `{old}` in {place} of template.yaml"),
        _ => bail!(
            "anchor ambiguous: `{old}` appears {} times in {place}",
            found.len()
        ),
    };
    match new {
        Some(new) => lines[index] = new.to_owned(),
        None => {
            lines.remove(index);
        }
    }
    Ok(())
}

/// The top-level entries of Resources: (logical id, lines of its entry).
fn resource_entries(lines: &[String]) -> Result<Vec<(String, Range<usize>)>> {
    let within = section(lines, "Resources")?;
    let mut entries = Vec::new();
    for index in within.clone() {
        let line = &lines[index];
        if indentation(line) != 2 || line.trim_start().starts_with('#') {
            continue;
        }
        if let Some(key) = line.trim().strip_suffix(':') {
            entries.push((key.to_owned(), index..entry_end(lines, &within, index, 2)));
        }
    }
    Ok(entries)
}

/// Logical id -> cargo binary (`Metadata.BuildProperties.Binary`) of every
/// AWS::Serverless::Function, in template order.
fn function_binaries(lines: &[String]) -> Result<Vec<(String, String)>> {
    let mut functions = Vec::new();
    for (id, entry) in resource_entries(lines)? {
        let entry = &lines[entry];
        if !entry
            .iter()
            .any(|line| line == "    Type: AWS::Serverless::Function")
        {
            continue;
        }
        let binary = entry
            .iter()
            .find_map(|line| line.strip_prefix("        Binary: "))
            .with_context(|| format!("{id} has no Metadata.BuildProperties.Binary"))?;
        functions.push((id, binary.trim().to_owned()));
    }
    ensure!(
        !functions.is_empty(),
        "template.yaml has no AWS::Serverless::Function"
    );
    Ok(functions)
}

/// The end of the entry whose key line is `start` (at `indent`): past every more-indented or
/// blank line, without trailing blank lines.
fn entry_end(lines: &[String], within: &Range<usize>, start: usize, indent: usize) -> usize {
    let mut end = start + 1;
    while end < within.end && (lines[end].trim().is_empty() || indentation(&lines[end]) > indent) {
        end += 1;
    }
    while end > start + 1 && lines[end - 1].trim().is_empty() {
        end -= 1;
    }
    end
}

/// The first of the comment lines at `indent` right above `start` (or `start`).
fn comments_above(lines: &[String], floor: usize, start: usize, indent: usize) -> usize {
    let comment = format!("{}#", " ".repeat(indent));
    let mut first = start;
    while first > floor && lines[first - 1].starts_with(&comment) {
        first -= 1;
    }
    first
}

/// The one entry `key` at `indent` inside `parent` (a section's or an entry's lines, named
/// `place` in the error when there is none or more than one).
fn child_entry(
    lines: &[String],
    parent: Range<usize>,
    indent: usize,
    key: &str,
    place: &str,
) -> Result<Range<usize>> {
    let prefix = format!("{}{key}:", " ".repeat(indent));
    let found: Vec<usize> = parent
        .clone()
        .filter(|&index| {
            lines[index]
                .strip_prefix(&prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(' '))
        })
        .collect();
    match found.as_slice() {
        [one] => Ok(*one..entry_end(lines, &parent, *one, indent)),
        [] => bail!("anchor missing: no `{prefix}` in {place} of template.yaml"),
        _ => bail!(
            "anchor ambiguous: `{prefix}` appears {} times in {place} of template.yaml",
            found.len()
        ),
    }
}

/// Replaces every `!If [condition, a, b]` (a flow sequence on one line) and every block
/// `key: !If` whose items are `- condition`, `- a`, `- b` (one line each) by `a`
/// (`then_branch`) or `b`. Whatever other form names the condition is left for the caller's
/// leftover check to report.
fn resolve_condition(lines: &mut Vec<String>, condition: &str, then_branch: bool) -> Result<()> {
    let pick = usize::from(!then_branch) + 1;
    for (index, line) in lines.iter_mut().enumerate() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        let mut from = 0;
        while let Some(offset) = line[from..].find("!If [") {
            let start = from + offset;
            let open = start + "!If ".len();
            let (items, end) = flow_sequence(line, open)
                .with_context(|| format!("template.yaml line {}: {line}", index + 1))?;
            if items.first().map(String::as_str) == Some(condition) {
                ensure!(
                    items.len() == 3,
                    "template.yaml line {}: an !If with {} items",
                    index + 1,
                    items.len()
                );
                let chosen = items[pick].clone();
                line.replace_range(start..end, &chosen);
                // The chosen branch may hold another !If on the condition: look again.
                from = start;
            } else {
                from = open;
            }
        }
    }
    let mut index = 0;
    while index + 3 < lines.len() {
        let key_line = &lines[index];
        let items_indent = indentation(key_line) + 2;
        let item = |line: &String| {
            (indentation(line) == items_indent)
                .then(|| line.trim_start().strip_prefix("- "))
                .flatten()
                .map(str::to_owned)
        };
        let is_block_if = !key_line.trim_start().starts_with('#')
            && key_line.trim_end().ends_with(": !If")
            && item(&lines[index + 1]).as_deref() == Some(condition);
        if is_block_if {
            let branches = [item(&lines[index + 2]), item(&lines[index + 3])];
            let single_line = lines
                .get(index + 4)
                .is_none_or(|next| next.trim().is_empty() || indentation(next) < items_indent);
            match (&branches, single_line) {
                ([Some(then), Some(otherwise)], true) => {
                    let chosen = if then_branch { then } else { otherwise };
                    let key = key_line.trim_end().trim_end_matches("!If").to_owned();
                    lines[index] = format!("{key}{chosen}");
                    lines.drain(index + 1..index + 4);
                }
                _ => bail!(
                    "template.yaml line {}: an !If on {condition} whose branches are not one \
                     line each",
                    index + 1
                ),
            }
        }
        index += 1;
    }
    Ok(())
}

/// The items of the flow sequence opening at byte `open` of `line` (a `[`), trimmed, and the
/// byte after its closing `]`. Quotes and nested sequences and mappings are kept whole.
fn flow_sequence(line: &str, open: usize) -> Result<(Vec<String>, usize)> {
    ensure!(line[open..].starts_with('['), "no flow sequence at {open}");
    let mut items = Vec::new();
    let mut depth = 0usize;
    let mut item_start = open + 1;
    let mut quote: Option<char> = None;
    let mut chars = line[open..].char_indices().map(|(at, c)| (open + at, c));
    while let Some((at, c)) = chars.next() {
        match (quote, c) {
            (Some('"'), '\\') => {
                chars.next();
            }
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[' | '{') => depth += 1,
            (None, ']' | '}') => {
                depth -= 1;
                if depth == 0 {
                    items.push(line[item_start..at].trim().to_owned());
                    return Ok((items, at + 1));
                }
            }
            (None, ',') if depth == 1 => {
                items.push(line[item_start..at].trim().to_owned());
                item_start = at + 1;
            }
            (None, _) => {}
        }
    }
    bail!("a flow sequence that does not close on its line")
}

#[cfg(test)]
const TEMPLATE: &str = include_str!("../../template.yaml");

#[cfg(test)]
fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_owned).collect()
}

/// The text of the entry `key` at `indent` in section `name`.
#[cfg(test)]
fn entry_text(text: &str, name: &str, indent: usize, key: &str) -> String {
    let lines = lines(text);
    let range = find_entry(&lines, name, indent, key, false).expect("entry");
    lines[range].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_variant_is_asked_for() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: Args,
        }
        let parse = |args: &[&str]| {
            <Cli as clap::Parser>::try_parse_from(["template"].iter().chain(args))
                .map(|cli| cli.args)
        };
        let managed = parse(&["--managed-instances", "--max-concurrency", "8"]).expect("MI");
        assert!(managed.managed_instances && !managed.sam_local);
        assert_eq!(managed.max_concurrency, 8);
        let sam_local = parse(&["--sam-local", "--out", "x.yaml"]).expect("sam local");
        assert!(sam_local.sam_local && !sam_local.managed_instances);
        assert!(parse(&[]).is_err());
        assert!(parse(&["--sam-local", "--managed-instances"]).is_err());
        assert!(parse(&["--sam-local", "--max-concurrency", "8"]).is_err());
    }

    #[test]
    fn an_if_on_a_condition_resolves_to_one_branch() {
        let resolve = |text: &str, then_branch: bool| {
            let mut lines = lines(text);
            resolve_condition(&mut lines, "C", then_branch).map(|()| lines.join("\n"))
        };
        assert_eq!(
            resolve("  A: !If [C, x, \"y, z]\"]", false).expect("flow"),
            "  A: \"y, z]\""
        );
        assert_eq!(
            resolve("  A: !If [D, !If [C, [1, 2], {k: v}], 'it''s']", true).expect("nested"),
            "  A: !If [D, [1, 2], 'it''s']"
        );
        assert_eq!(
            resolve("  A: !If [C, !If [C, a, b], c]", true).expect("twice"),
            "  A: a"
        );
        assert_eq!(
            resolve(
                "  A: !If\n    - C\n    - !Ref X\n    - !Ref Y\n  B: 1",
                false
            )
            .expect("block"),
            "  A: !Ref Y\n  B: 1"
        );
        // Other conditions and comments stay as they are.
        let other = "  A: !If\n    - D\n    - x\n    - y\n  # !If [C, a, b]";
        assert_eq!(resolve(other, true).expect("other"), other);
        assert!(resolve("  A: !If [C, a,\n    b]", true).is_err());
        assert!(resolve("  A: !If [C, a]", true).is_err());
    }
}
