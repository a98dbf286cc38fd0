//! `cargo xtask template`: the variants of `template.yaml`, each derived from it, never edited
//! by hand. `template.yaml` is the AWS path (an HTTP API with a JWT authorizer, arm64); the
//! variants are what other runtimes need:
//!
//! - `--rest` (`.local/template-rest.yaml`, `--sam-local` is its old name): LocalStack's free
//!   tier and `sam local start-api` serve REST APIs. The HTTP API becomes an
//!   `AWS::Serverless::Api` (stage v1, the same throttle and a REST access log), every `HttpApi`
//!   event of a function an `Api` event of it (payload 1.0, the shape of `events/v1/`), and the
//!   API's metrics, dashboard and outputs take their REST names (`5XXError` by `ApiName`).
//! - `--emulator` (`.local/template-emulator.yaml`): what MiniStack runs, the HTTP API itself.
//!
//! Both run `AuthMode=jwt` (the only value they allow: the functions verify the development
//! tokens, so the API has no authorizer: SAM cannot make one conditional, so the variant drops
//! the `Auth` block) on the host's architecture (`--architecture`), because emulators run the
//! host's binaries.
//!
//! - `--managed-instances` (`.local/template-managed-instances.yaml`): the functions on a
//!   Lambda Managed Instances capacity provider, deployed as a stack of its own. SAM cannot
//!   attach them conditionally (aws-sam-translator rejects `CapacityProviderConfig: !If`), and
//!   Lambda fixes a function's compute type when it is created. `ManagedInstances` defaults to
//!   "true" and allows nothing else, the network parameters lose their empty defaults, the
//!   `UseManagedInstances` condition goes (the provider and its role become unconditional), and
//!   `Globals.Function` gains `CapacityProviderConfig`, `MemorySize: 2048` (the LMI minimum) and
//!   loses `ReservedConcurrentExecutions` with the parameter and condition that served it.
//!
//! The edits are anchored text edits, not a YAML round trip (serde_yaml 0.9 keeps the `!Ref`
//! tags but drops every comment and reflows the flow sequences): each anchor (a `# variant:`
//! or `# managed-instances:` marker, a parameter, a condition, a property, an exact line) must
//! be found as often as expected, or the command fails naming it, and the result is checked
//! for what it must no longer hold.

#[cfg(test)]
use std::collections::BTreeSet;
use std::ops::{Range, RangeInclusive};
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use order_service::app::FUNCTIONS;
use serde_json::Value;

use crate::paths;
use crate::state::DEFAULT_MAX_CONCURRENCY;

/// The marker comment in `Globals.Function` that the Managed Instances variant replaces (with
/// the comment lines right above it) by `CapacityProviderConfig`.
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

/// A Lambda architecture, as `Architectures` names it.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    #[value(name = "x86_64")]
    X86_64,
    #[value(name = "arm64")]
    Arm64,
}

impl Architecture {
    /// The architecture of the machine this runs on, whose binaries the emulators run.
    pub(crate) fn host() -> Self {
        if std::env::consts::ARCH == "aarch64" {
            Self::Arm64
        } else {
            Self::X86_64
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::X86_64 => "x86_64",
            Self::Arm64 => "arm64",
        }
    }
}

#[derive(clap::Args, Debug, Clone)]
#[command(group(clap::ArgGroup::new("variant").required(true)))]
pub struct Args {
    /// Write the Lambda Managed Instances variant (a stack of its own).
    #[arg(long, group = "variant")]
    pub managed_instances: bool,
    /// Write the REST variant, for LocalStack and `sam local start-api` (SAM Api events,
    /// payload 1.0, no authorizer).
    #[arg(long, visible_alias = "sam-local", group = "variant")]
    pub rest: bool,
    /// Write the MiniStack variant: the HTTP API without its authorizer.
    #[arg(long, group = "variant")]
    pub emulator: bool,
    /// PerExecutionEnvironmentMaxConcurrency: invocations one execution environment serves at
    /// once (Lambda sets AWS_LAMBDA_MAX_CONCURRENCY from it). The local stack's default.
    #[arg(long, default_value_t = DEFAULT_MAX_CONCURRENCY, conflicts_with_all = ["rest", "emulator"],
          value_parser = clap::value_parser!(u32).range(1..=1600))]
    pub max_concurrency: u32,
    /// The functions' architecture in the --rest and --emulator variants [default: the host's].
    #[arg(long, value_enum, conflicts_with = "managed_instances")]
    pub architecture: Option<Architecture>,
    /// Where to write the variant [default: .local/template-<variant>.yaml].
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Where a variant is written by default (git-ignored).
pub(crate) fn default_out(variant: &str) -> PathBuf {
    paths::local().join(format!("template-{variant}.yaml"))
}

pub fn run(args: &Args) -> Result<()> {
    let architecture = args.architecture.unwrap_or_else(Architecture::host);
    let (out, what) = if args.rest {
        let out = args.out.clone().unwrap_or_else(|| default_out("rest"));
        write_emulator_variant(Flavour::Rest, architecture, &out)?;
        (
            out,
            format!(
                "the REST variant of template.yaml ({}, AuthMode=jwt): README.md, \"Running \
                 under LocalStack\" and \"`sam local` (Docker)\", has the commands",
                architecture.name()
            ),
        )
    } else if args.emulator {
        let out = args.out.clone().unwrap_or_else(|| default_out("emulator"));
        write_emulator_variant(Flavour::Http, architecture, &out)?;
        (
            out,
            format!(
                "the MiniStack variant of template.yaml (the HTTP API without its authorizer, \
                 {}, AuthMode=jwt): `cargo xtask emulator up` deploys it",
                architecture.name()
            ),
        )
    } else {
        let out = args
            .out
            .clone()
            .unwrap_or_else(|| default_out("managed-instances"));
        write_managed_instances(args.max_concurrency, &out)?;
        (
            out,
            format!(
                "the Lambda Managed Instances variant of template.yaml \
                 (PerExecutionEnvironmentMaxConcurrency {}): build and deploy it as a stack of \
                 its own (README.md, \"Lambda Managed Instances (optional)\", has the commands)",
                args.max_concurrency
            ),
        )
    };
    eprintln!("wrote {what}");
    println!("{}", out.display());
    Ok(())
}

mod emulators;
mod managed_instances;

pub(crate) use emulators::*;
pub(crate) use managed_instances::*;

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

/// A line without its trailing ` # comment` (YAML: a `#` after a space starts a comment; our
/// templates put none inside quoted strings on key lines).
fn without_comment(line: &str) -> &str {
    line.find(" #").map_or(line, |at| &line[..at]).trim_end()
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

/// Replaces every occurrence of `old` in `text` by `new`; there must be exactly `count`.
fn replace_counted(text: &str, old: &str, new: &str, count: usize) -> Result<String> {
    let found = text.matches(old).count();
    ensure!(
        found == count,
        "anchor {}: `{}` appears {found} times in template.yaml, expected {count}",
        if found == 0 { "missing" } else { "ambiguous" },
        old.trim_end()
    );
    Ok(text.replace(old, new))
}

/// The top-level entries of Resources: (logical id, lines of its entry).
#[cfg(test)]
fn resource_entries(lines: &[String]) -> Result<Vec<(String, Range<usize>)>> {
    let within = section(lines, "Resources")?;
    let mut entries = Vec::new();
    for index in within.clone() {
        let line = &lines[index];
        if indentation(line) != 2 || line.trim_start().starts_with('#') {
            continue;
        }
        if let Some(key) = without_comment(line).trim().strip_suffix(':') {
            entries.push((key.to_owned(), index..entry_end(lines, &within, index, 2)));
        }
    }
    Ok(entries)
}

/// Logical id -> cargo binary (`Metadata.BuildProperties.Binary`) of every
/// AWS::Serverless::Function, in template order.
#[cfg(test)]
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
            .find_map(|line| {
                let (_, rest) = line.split_once("Binary: ")?;
                Some(rest.trim_end_matches(['}', ' ']).trim())
            })
            .with_context(|| format!("{id} has no Metadata.BuildProperties.Binary"))?;
        functions.push((id, binary.to_owned()));
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
/// `place` in the error when there is none or more than one). A trailing comment on the key
/// line is allowed.
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

/// Fails, naming the line, when a line that is not a comment still contains one of
/// `leftovers` (word, why it must not be there).
fn check_leftovers(text: &str, leftovers: &[(&str, &str)]) -> Result<()> {
    for (index, line) in text.lines().enumerate() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        if let Some((word, why)) = leftovers
            .iter()
            .find(|(word, _)| without_comment(line).contains(word))
        {
            bail!(
                "the variant still holds `{word}` ({why}) at its line {}: teach \
                 lab/src/template.rs about it",
                index + 1
            );
        }
    }
    Ok(())
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
        assert!(managed.managed_instances && !managed.rest && !managed.emulator);
        assert_eq!(managed.max_concurrency, 8);
        let rest = parse(&["--rest", "--out", "x.yaml"]).expect("rest");
        assert!(rest.rest && rest.architecture.is_none());
        // The variant's old name still works.
        assert!(parse(&["--sam-local"]).expect("sam local").rest);
        let emulator = parse(&["--emulator", "--architecture", "arm64"]).expect("emulator");
        assert!(emulator.emulator);
        assert_eq!(emulator.architecture, Some(Architecture::Arm64));
        assert!(parse(&[]).is_err());
        assert!(parse(&["--rest", "--managed-instances"]).is_err());
        assert!(parse(&["--rest", "--emulator"]).is_err());
        assert!(parse(&["--rest", "--max-concurrency", "8"]).is_err());
        assert!(parse(&["--managed-instances", "--architecture", "x86_64"]).is_err());
    }

    #[test]
    fn counted_replacements_and_leftovers_fail_with_their_anchor() {
        assert_eq!(replace_counted("a b a", "a", "c", 2).expect("two"), "c b c");
        let error = replace_counted("a b a", "a", "c", 1).expect_err("ambiguous");
        assert!(format!("{error:#}").contains("ambiguous"), "{error:#}");
        let error = replace_counted("b", "a", "c", 1).expect_err("missing");
        assert!(format!("{error:#}").contains("missing"), "{error:#}");
        check_leftovers("# HttpApi\nx: 1  # HttpApi", &[("HttpApi", "why")]).expect("comments");
        let error = check_leftovers("a: 1\nb: !Ref HttpApi", &[("HttpApi", "why")]).expect_err("x");
        assert!(format!("{error:#}").contains("line 2"), "{error:#}");
        assert_eq!(without_comment("  HttpApi:  # variant: api"), "  HttpApi:");
    }
}
