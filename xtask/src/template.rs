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
pub(crate) struct Args {
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

pub(crate) fn run(args: &Args) -> Result<()> {
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

/// Reads template.yaml, writes its Managed Instances variant to `out`.
pub(crate) fn write_managed_instances(max_concurrency: u32, out: &Path) -> Result<()> {
    let source = paths::root().join("template.yaml");
    let template = std::fs::read_to_string(&source)
        .with_context(|| format!("cannot read {}", source.display()))?;
    let variant = managed_instances_variant(&template, max_concurrency).with_context(|| {
        format!(
            "cannot derive the Managed Instances variant of {}",
            source.display()
        )
    })?;
    if let Some(parent) = out.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(out, variant).with_context(|| format!("cannot write {}", out.display()))
}

/// The Lambda Managed Instances variant of `template` (the text of template.yaml); see the
/// module documentation for what it changes. Fails, naming the anchor, when one is missing or
/// ambiguous.
pub(crate) fn managed_instances_variant(template: &str, max_concurrency: u32) -> Result<String> {
    ensure!(
        MAX_CONCURRENCY_RANGE.contains(&max_concurrency),
        "PerExecutionEnvironmentMaxConcurrency must be in {MAX_CONCURRENCY_RANGE:?}, not \
         {max_concurrency}"
    );
    let mut lines: Vec<String> = template.lines().map(str::to_owned).collect();

    // Parameters: ManagedInstances on (and nothing else), the network required, no reserved
    // concurrency to configure.
    let entry = find_entry(&lines, "Parameters", 2, "ManagedInstances", false)?;
    replace_line(
        &mut lines,
        entry.clone(),
        "Parameters.ManagedInstances",
        "    Default: \"false\"",
        Some("    Default: \"true\""),
    )?;
    replace_line(
        &mut lines,
        entry,
        "Parameters.ManagedInstances",
        "    AllowedValues: [\"false\", \"true\"]",
        Some("    AllowedValues: [\"true\"]"),
    )?;
    for parameter in [
        "ManagedInstancesSubnetIds",
        "ManagedInstancesSecurityGroupIds",
    ] {
        let entry = find_entry(&lines, "Parameters", 2, parameter, false)?;
        replace_line(
            &mut lines,
            entry,
            &format!("Parameters.{parameter}"),
            "    Default: \"\"",
            None,
        )?;
    }
    let reserved = find_entry(&lines, "Parameters", 2, "ReservedConcurrency", true)?;
    lines.drain(reserved);

    // Conditions: the provider is unconditional, and nothing reserves concurrency.
    for condition in ["UseManagedInstances", "HasReservedConcurrency"] {
        let entry = find_entry(&lines, "Conditions", 2, condition, true)?;
        lines.drain(entry);
    }

    // Globals.Function: on the capacity provider, at the LMI minimum memory, unreserved.
    let memory = find_entry(&lines, "Globals", 4, "MemorySize", true)?;
    lines.splice(
        memory,
        [
            format!(
                "    # {MANAGED_INSTANCES_MEMORY_MB} MB: the Lambda Managed Instances minimum (2 GB \
                 and 1 vCPU per execution environment)."
            ),
            format!("    MemorySize: {MANAGED_INSTANCES_MEMORY_MB}"),
        ],
    );
    let reserved = find_entry(&lines, "Globals", 4, "ReservedConcurrentExecutions", true)?;
    lines.drain(reserved);
    let marker = find_marker(&lines, "Globals", GLOBALS_MARKER)?;
    lines.splice(
        marker,
        [
            "    # Every function runs on the capacity provider (LMI): each execution environment"
                .to_owned(),
            format!(
                "    # serves up to {max_concurrency} invocations at once (Lambda sets \
                 AWS_LAMBDA_MAX_CONCURRENCY from it)"
            ),
            "    # and has 1 vCPU per 2 GiB of memory. Written by `cargo xtask template \
             --managed-instances`."
                .to_owned(),
            "    CapacityProviderConfig:".to_owned(),
            format!("      Arn: !GetAtt {CAPACITY_PROVIDER}.Arn"),
            format!("      PerExecutionEnvironmentMaxConcurrency: {max_concurrency}"),
            format!("      ExecutionEnvironmentMemoryGiBPerVCpu: {MEMORY_GIB_PER_VCPU}"),
        ],
    );

    // Resources and Outputs: what UseManagedInstances gated is unconditional.
    let mut ungated = 0;
    for name in ["Resources", "Outputs"] {
        let within = section(&lines, name)?;
        let before = lines.len();
        let mut index = within.start;
        let mut end = within.end;
        while index < end {
            if lines[index] == "    Condition: UseManagedInstances" {
                lines.remove(index);
                end -= 1;
            } else {
                index += 1;
            }
        }
        ungated += before - lines.len();
    }
    ensure!(
        ungated > 0,
        "no `    Condition: UseManagedInstances` in Resources or Outputs: the capacity provider \
         is no longer gated as the xtask expects"
    );

    let mut variant = vec![
        "# GENERATED by `cargo xtask template --managed-instances` from template.yaml: do not edit."
            .to_owned(),
        "# The Lambda Managed Instances variant (xtask/src/template.rs has what it changes);"
            .to_owned(),
        "# deploy it as a stack of its own (README.md, \"Lambda Managed Instances (optional)\")."
            .to_owned(),
    ];
    variant.extend(lines);
    let mut text = variant.join("\n");
    text.push('\n');

    // Whatever the anchored edits did not reach would now be dangling.
    for (leftover, why) in [
        ("UseManagedInstances", "the removed condition"),
        ("ReservedConcurrency", "the removed parameter/condition"),
        (
            "ReservedConcurrentExecutions",
            "a property LMI functions do not take",
        ),
        ("# managed-instances:", "an unknown marker"),
    ] {
        if let Some(line) = text.lines().position(|line| line.contains(leftover)) {
            bail!(
                "the variant still holds `{leftover}` ({why}) at its line {}: teach \
                 xtask/src/template.rs about it",
                line + 1
            );
        }
    }
    ensure!(
        text.contains(&format!("\n  {CAPACITY_PROVIDER}:\n")),
        "template.yaml has no resource {CAPACITY_PROVIDER}"
    );
    Ok(text)
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
    let prefix = format!("{}{key}:", " ".repeat(indent));
    let found: Vec<usize> = within
        .clone()
        .filter(|&index| {
            lines[index]
                .strip_prefix(&prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(' '))
        })
        .collect();
    let start = match found.as_slice() {
        [one] => *one,
        [] => bail!("anchor missing: no `{prefix}` in {name} of template.yaml"),
        _ => bail!(
            "anchor ambiguous: `{prefix}` appears {} times in {name} of template.yaml",
            found.len()
        ),
    };
    let mut end = start + 1;
    while end < within.end && (lines[end].trim().is_empty() || indentation(&lines[end]) > indent) {
        end += 1;
    }
    while end > start + 1 && lines[end - 1].trim().is_empty() {
        end -= 1;
    }
    let mut first = start;
    let comment = format!("{}#", " ".repeat(indent));
    while comments && first > within.start && lines[first - 1].starts_with(&comment) {
        first -= 1;
    }
    Ok(first..end)
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
    let comment = format!("{}#", " ".repeat(indentation(marker)));
    let mut first = index;
    while first > within.start && lines[first - 1].starts_with(&comment) {
        first -= 1;
    }
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

// ------------------------------------------------------------------------ the sam local variant

/// One route of the router table: `METHOD /path` served by a function (its cargo binary).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Route {
    pub method: String,
    pub path: String,
    pub function: String,
}

/// The `sam local` variant's default path (git-ignored).
pub(crate) fn default_sam_local_out() -> PathBuf {
    paths::local().join("template-sam-local.yaml")
}

/// The condition of the HTTP API flavour: the variant keeps the REST branch of its `!If`s.
const HTTP_API_CONDITION: &str = "UseHttpApi";

/// The conditions the variant drops: the flavour's, and the authorizer's, which only the
/// removed routes and the REST API's `DefinitionBody` used.
const SAM_LOCAL_DROPPED_CONDITIONS: [&str; 4] = [
    HTTP_API_CONDITION,
    "UseRestApi",
    "UseHttpApiAuthorizer",
    "UseApiGatewayAuth",
];

/// Reads template.yaml and the router table, writes the `sam local` variant to `out`.
pub(crate) fn write_sam_local(out: &Path) -> Result<()> {
    let source = paths::root().join("template.yaml");
    let template = std::fs::read_to_string(&source)
        .with_context(|| format!("cannot read {}", source.display()))?;
    let routes = router_routes()?;
    let variant = sam_local_variant(&template, &routes).with_context(|| {
        format!(
            "cannot derive the `sam local` variant of {}",
            source.display()
        )
    })?;
    if let Some(parent) = out.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(out, variant).with_context(|| format!("cannot write {}", out.display()))
}

/// The router table of Cargo.toml (`[workspace.metadata.lambda.watch.router]`), as `cargo
/// metadata` reads it: the same table `cargo lambda watch` serves locally.
pub(crate) fn router_routes() -> Result<Vec<Route>> {
    // Cargo sets CARGO for what it runs (`cargo xtask`, `cargo test`).
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--no-deps",
            "--offline",
            "--format-version",
            "1",
        ])
        .arg("--manifest-path")
        .arg(paths::root().join("Cargo.toml"))
        .output()
        .context("cannot run cargo metadata")?;
    ensure!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    let metadata: Value =
        serde_json::from_slice(&output.stdout).context("cargo metadata printed no JSON")?;
    routes_of_metadata(&metadata["metadata"])
}

/// The routes of the workspace metadata's `lambda.watch.router` table (path -> list of
/// `{ method, function }`), methods upper-cased, sorted; fails on an empty table or a route
/// listed twice.
pub(crate) fn routes_of_metadata(workspace_metadata: &Value) -> Result<Vec<Route>> {
    let table = workspace_metadata["lambda"]["watch"]["router"]
        .as_object()
        .context("Cargo.toml has no [workspace.metadata.lambda.watch.router] table")?;
    let mut routes = BTreeSet::new();
    for (path, entries) in table {
        let entries = entries
            .as_array()
            .with_context(|| format!("the router's {path} is not a list of methods"))?;
        for entry in entries {
            let field = |name: &str| {
                entry[name]
                    .as_str()
                    .with_context(|| format!("a route of {path} has no {name}: {entry}"))
            };
            let route = Route {
                method: field("method")?.to_ascii_uppercase(),
                path: path.clone(),
                function: field("function")?.to_owned(),
            };
            ensure!(
                routes.insert(route.clone()),
                "the router lists {} {} twice",
                route.method,
                route.path
            );
        }
    }
    ensure!(!routes.is_empty(), "the router table is empty");
    Ok(routes.into_iter().collect())
}

/// The SAM event name of a route: the method and every path segment (parameters without
/// braces), capitalized and joined, e.g. `PostUsersUserIdOrders`.
pub(crate) fn event_name(route: &Route) -> String {
    let capitalize = |word: &str| {
        let mut chars = word.chars();
        chars.next().map_or_else(String::new, |first| {
            first.to_ascii_uppercase().to_string() + &chars.as_str().to_ascii_lowercase()
        })
    };
    let mut name = capitalize(&route.method);
    for word in route
        .path
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|word| !word.is_empty())
    {
        // camelCase parameters (userId) keep their inner capitals: UserId.
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            name.push(first.to_ascii_uppercase());
            name.push_str(chars.as_str());
        }
    }
    name
}

/// The `sam local` variant of `template` (the text of template.yaml) serving `routes`; see the
/// module documentation for what it changes. Fails, naming the anchor, when one is missing or
/// ambiguous, and when the result still holds something SAM local cannot read.
pub(crate) fn sam_local_variant(template: &str, routes: &[Route]) -> Result<String> {
    ensure!(!routes.is_empty(), "no routes to serve");
    let mut lines: Vec<String> = template.lines().map(str::to_owned).collect();

    // Parameters: one flavour (REST, payload 1.0) and no API authorizer.
    for (parameter, default, allowed, value) in [
        ("ApiType", "http", "[http, rest]", "rest"),
        ("AuthMode", "apigateway", "[apigateway, jwt]", "jwt"),
    ] {
        let entry = find_entry(&lines, "Parameters", 2, parameter, false)?;
        let place = format!("Parameters.{parameter}");
        replace_line(
            &mut lines,
            entry.clone(),
            &place,
            &format!("    Default: {default}"),
            Some(&format!("    Default: {value}")),
        )?;
        replace_line(
            &mut lines,
            entry,
            &place,
            &format!("    AllowedValues: {allowed}"),
            Some(&format!("    AllowedValues: [{value}]")),
        )?;
    }

    // Resources: the HTTP API's resources and the explicit permissions go, with their notes.
    let mut removed = 0;
    while let Some((_, entry)) = resource_entries(&lines)?.into_iter().find(|(_, entry)| {
        lines[entry.clone()].iter().any(|line| {
            line.starts_with("    Type: AWS::ApiGatewayV2::")
                || line == "    Type: AWS::Lambda::Permission"
        })
    }) {
        let within = section(&lines, "Resources")?;
        let first = comments_above(&lines, within.start, entry.start, 2);
        let mut end = entry.end;
        if lines.get(end).is_some_and(|line| line.trim().is_empty()) {
            end += 1;
        }
        lines.drain(first..end);
        removed += 1;
    }
    ensure!(
        removed > 0,
        "template.yaml has no AWS::ApiGatewayV2 or AWS::Lambda::Permission resources: the \
         routes are no longer where the xtask expects them"
    );

    // The REST API: unconditional, its definition generated by SAM from the events.
    let api = find_entry(&lines, "Resources", 2, "Api", false)?;
    ensure!(
        lines[api.clone()]
            .iter()
            .any(|line| line == "    Type: AWS::Serverless::Api"),
        "Resources.Api of template.yaml is no AWS::Serverless::Api"
    );
    replace_line(
        &mut lines,
        api.clone(),
        "Resources.Api",
        "    Condition: UseRestApi",
        None,
    )?;
    let api = find_entry(&lines, "Resources", 2, "Api", false)?;
    let body = child_entry(&lines, api.clone(), 6, "DefinitionBody", "Resources.Api")?;
    lines.drain(body);
    let within = section(&lines, "Resources")?;
    let first = comments_above(&lines, within.start, api.start, 2);
    lines.splice(
        first..api.start,
        [
            "  # REST API (payload 1.0), written by `cargo xtask template --sam-local`: no \
             authorizer and no"
                .to_owned(),
            "  # DefinitionBody; SAM generates the paths from the functions' Api events."
                .to_owned(),
        ],
    );

    // Functions: one Api event per route, added to each function's Properties.
    let functions = function_binaries(&lines)?;
    let mut names = BTreeSet::new();
    for route in routes {
        ensure!(
            functions
                .iter()
                .any(|(_, binary)| *binary == route.function),
            "the router's {} {} names {}, which no function of template.yaml builds \
             (Metadata.BuildProperties.Binary)",
            route.method,
            route.path,
            route.function
        );
        ensure!(
            names.insert(event_name(route)),
            "two routes make the event name {}",
            event_name(route)
        );
    }
    for (id, binary) in &functions {
        let entry = find_entry(&lines, "Resources", 2, id, false)?;
        let place = format!("Resources.{id}");
        ensure!(
            !lines[entry.clone()]
                .iter()
                .any(|line| line.trim_start().starts_with("Events:")),
            "{place} already has Events"
        );
        let properties = child_entry(&lines, entry, 4, "Properties", &place)?;
        let mut events = vec![
            "      # From the router table of Cargo.toml (`cargo xtask template --sam-local`)."
                .to_owned(),
            "      Events:".to_owned(),
        ];
        for route in routes.iter().filter(|route| route.function == *binary) {
            events.extend([
                format!("        {}:", event_name(route)),
                "          Type: Api".to_owned(),
                "          Properties:".to_owned(),
                "            RestApiId: !Ref Api".to_owned(),
                format!("            Path: {}", route.path),
                format!("            Method: {}", route.method.to_ascii_lowercase()),
            ]);
        }
        if events.len() > 2 {
            lines.splice(properties.end..properties.end, events);
        }
    }

    // The flavour's !Ifs take their REST branch; then its conditions are unused.
    resolve_condition(&mut lines, HTTP_API_CONDITION, false)?;
    for condition in SAM_LOCAL_DROPPED_CONDITIONS {
        let entry = find_entry(&lines, "Conditions", 2, condition, true)?;
        lines.drain(entry);
    }

    let mut variant = vec![
        "# GENERATED by `cargo xtask template --sam-local` from template.yaml: do not edit."
            .to_owned(),
        "# The `sam local start-api` variant (xtask/src/template.rs has what it changes): a \
         REST API whose"
            .to_owned(),
        "# routes are SAM events of the functions, no authorizer. The notes below that say \
         no function"
            .to_owned(),
        "# has Events, or name the HTTP API, describe template.yaml.".to_owned(),
    ];
    variant.extend(lines);
    let mut text = variant.join("\n");
    text.push('\n');

    // What SAM local cannot read, or what would now be dangling.
    let mut leftovers: Vec<(&str, &str)> = vec![
        (
            "AWS::ApiGatewayV2::",
            "a resource SAM local reads instead of the events",
        ),
        (
            "AWS::Lambda::Permission",
            "an explicit permission (SAM derives them)",
        ),
        (
            "Aliaslive",
            "an integration or permission on a `live` alias",
        ),
        ("Authorizer", "an API authorizer"),
        ("DefinitionBody", "an explicit API definition"),
        ("HttpApi", "a reference to the removed HTTP API"),
    ];
    leftovers.extend(
        SAM_LOCAL_DROPPED_CONDITIONS
            .iter()
            .map(|condition| (*condition, "a removed condition")),
    );
    for (index, line) in text.lines().enumerate() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        if let Some((leftover, why)) = leftovers.iter().find(|(word, _)| line.contains(word)) {
            bail!(
                "the variant still holds `{leftover}` ({why}) at its line {}: teach \
                 xtask/src/template.rs about it",
                index + 1
            );
        }
    }
    Ok(text)
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

/// The one entry `key` at `indent` inside `parent` (an entry's lines).
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
            "anchor ambiguous: `{prefix}` appears {} times in {place}",
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

/// Checks the CloudFormation that aws-sam-translator made of the variant
/// (`localstack/sam_translate.py --out`): every function of the service on the capacity
/// provider with `max_concurrency`, at the LMI memory, unreserved; the provider unconditional.
pub(crate) fn check_translated(translated: &Value, max_concurrency: u32) -> Result<()> {
    let resources = translated["Resources"]
        .as_object()
        .context("the translated template has no Resources")?;
    let provider = resources
        .get(CAPACITY_PROVIDER)
        .with_context(|| format!("no {CAPACITY_PROVIDER} in the translated template"))?;
    ensure!(
        provider["Condition"].is_null(),
        "{CAPACITY_PROVIDER} is conditional ({}): the functions would reference a resource \
         that may not exist",
        provider["Condition"]
    );
    let arn = serde_json::json!({ "Fn::GetAtt": [CAPACITY_PROVIDER, "Arn"] });
    let mut functions = 0;
    for (id, resource) in resources {
        if resource["Type"] != "AWS::Lambda::Function" {
            continue;
        }
        functions += 1;
        let properties = &resource["Properties"];
        let config =
            &properties["CapacityProviderConfig"]["LambdaManagedInstancesCapacityProviderConfig"];
        ensure!(
            config["CapacityProviderArn"] == arn,
            "{id} is not on {CAPACITY_PROVIDER}: {config}"
        );
        ensure!(
            config["PerExecutionEnvironmentMaxConcurrency"] == max_concurrency,
            "{id}: PerExecutionEnvironmentMaxConcurrency {} instead of {max_concurrency}",
            config["PerExecutionEnvironmentMaxConcurrency"]
        );
        ensure!(
            config["ExecutionEnvironmentMemoryGiBPerVCpu"].as_f64()
                == Some(f64::from(MEMORY_GIB_PER_VCPU)),
            "{id}: ExecutionEnvironmentMemoryGiBPerVCpu {}",
            config["ExecutionEnvironmentMemoryGiBPerVCpu"]
        );
        ensure!(
            properties["MemorySize"] == MANAGED_INSTANCES_MEMORY_MB,
            "{id}: MemorySize {} below the LMI minimum",
            properties["MemorySize"]
        );
        ensure!(
            properties["ReservedConcurrentExecutions"].is_null(),
            "{id} keeps ReservedConcurrentExecutions"
        );
    }
    ensure!(
        functions == FUNCTIONS.len(),
        "{functions} Lambda functions in the translated template, expected {}",
        FUNCTIONS.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = include_str!("../../template.yaml");

    fn variant() -> String {
        managed_instances_variant(TEMPLATE, DEFAULT_MAX_CONCURRENCY).expect("the variant")
    }

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_owned).collect()
    }

    /// The text of the entry `key` at `indent` in section `name`.
    fn entry_text(text: &str, name: &str, indent: usize, key: &str) -> String {
        let lines = lines(text);
        let range = find_entry(&lines, name, indent, key, false).expect("entry");
        lines[range].join("\n")
    }

    #[test]
    fn template_anchors_are_all_found() {
        let lines = lines(TEMPLATE);
        for (name, indent, key) in [
            ("Parameters", 2, "ManagedInstances"),
            ("Parameters", 2, "ManagedInstancesSubnetIds"),
            ("Parameters", 2, "ManagedInstancesSecurityGroupIds"),
            ("Parameters", 2, "ReservedConcurrency"),
            ("Conditions", 2, "UseManagedInstances"),
            ("Conditions", 2, "HasReservedConcurrency"),
            ("Globals", 4, "MemorySize"),
            ("Globals", 4, "ReservedConcurrentExecutions"),
        ] {
            find_entry(&lines, name, indent, key, true)
                .unwrap_or_else(|error| panic!("{name}.{key}: {error:#}"));
        }
        find_marker(&lines, "Globals", GLOBALS_MARKER).expect("the Globals marker");
    }

    #[test]
    fn globals_function_gains_the_capacity_provider_config() {
        let variant = variant();
        let expected = format!(
            "    CapacityProviderConfig:\n      Arn: !GetAtt ManagedInstancesCapacityProvider.Arn\n      \
             PerExecutionEnvironmentMaxConcurrency: {DEFAULT_MAX_CONCURRENCY}\n      \
             ExecutionEnvironmentMemoryGiBPerVCpu: 2\n"
        );
        assert!(variant.contains(&expected), "{variant}");
        assert_eq!(
            entry_text(&variant, "Globals", 4, "CapacityProviderConfig"),
            expected.trim_end()
        );
        assert_eq!(
            entry_text(&variant, "Globals", 4, "MemorySize"),
            "    MemorySize: 2048"
        );
        let custom = managed_instances_variant(TEMPLATE, 64).expect("the variant");
        assert!(custom.contains("\n      PerExecutionEnvironmentMaxConcurrency: 64\n"));
    }

    #[test]
    fn reserved_concurrency_is_gone() {
        let variant = variant();
        for gone in [
            "ReservedConcurrentExecutions",
            "ReservedConcurrency",
            "HasReservedConcurrency",
            "MemorySize: 256",
        ] {
            assert!(!variant.contains(gone), "{gone} is still in the variant");
        }
    }

    #[test]
    fn the_capacity_provider_is_unconditional_and_on_by_default() {
        let variant = variant();
        assert!(!variant.contains("UseManagedInstances"));
        let parameter = entry_text(&variant, "Parameters", 2, "ManagedInstances");
        assert!(
            parameter.contains("\n    Default: \"true\"\n"),
            "{parameter}"
        );
        assert!(
            parameter.contains("\n    AllowedValues: [\"true\"]\n"),
            "{parameter}"
        );
        for network in [
            "ManagedInstancesSubnetIds",
            "ManagedInstancesSecurityGroupIds",
        ] {
            let parameter = entry_text(&variant, "Parameters", 2, network);
            assert!(!parameter.contains("Default:"), "{parameter}");
        }
        let provider = entry_text(&variant, "Resources", 2, CAPACITY_PROVIDER);
        assert!(!provider.contains("Condition:"), "{provider}");
        let output = entry_text(
            &variant,
            "Outputs",
            2,
            "ManagedInstancesCapacityProviderArn",
        );
        assert!(!output.contains("Condition:"), "{output}");
        // Everything else is template.yaml's: the rest of the text is unchanged.
        assert!(variant.contains(&entry_text(TEMPLATE, "Resources", 2, "OrdersTable")));
        assert!(variant.starts_with("# GENERATED by `cargo xtask template --managed-instances`"));
    }

    #[test]
    fn template_yaml_itself_stays_on_default_lambda() {
        let parameter = entry_text(TEMPLATE, "Parameters", 2, "ManagedInstances");
        assert!(
            parameter.contains("\n    Default: \"false\"\n"),
            "{parameter}"
        );
        assert!(
            !TEMPLATE
                .lines()
                .any(|line| line.trim_start().starts_with("CapacityProviderConfig:")),
            "template.yaml must not attach the functions to the capacity provider"
        );
        assert!(TEMPLATE.contains(&format!("\n{GLOBALS_MARKER}\n")));
        assert!(TEMPLATE.contains("\n    MemorySize: 256\n"));
        assert!(
            TEMPLATE.contains("\n    ReservedConcurrentExecutions: !If [HasReservedConcurrency")
        );
    }

    #[test]
    fn a_missing_or_doubled_anchor_fails_with_its_name() {
        let without_marker = TEMPLATE.replace(&format!("{GLOBALS_MARKER}\n"), "");
        let error = managed_instances_variant(&without_marker, 16).expect_err("no marker");
        assert!(
            format!("{error:#}").contains("managed-instances: globals"),
            "{error:#}"
        );

        let without_memory = TEMPLATE.replace("    MemorySize: 256\n", "");
        let error = managed_instances_variant(&without_memory, 16).expect_err("no MemorySize");
        assert!(format!("{error:#}").contains("MemorySize"), "{error:#}");

        let doubled = TEMPLATE.replace(
            &format!("{GLOBALS_MARKER}\n"),
            &format!("{GLOBALS_MARKER}\n{GLOBALS_MARKER}\n"),
        );
        let error = managed_instances_variant(&doubled, 16).expect_err("two markers");
        assert!(format!("{error:#}").contains("ambiguous"), "{error:#}");

        // The variant is no template.yaml: deriving it twice fails instead of stacking edits.
        let error = managed_instances_variant(&variant(), 16).expect_err("twice");
        assert!(format!("{error:#}").contains("anchor missing"), "{error:#}");

        let error = managed_instances_variant(TEMPLATE, 0).expect_err("0");
        assert!(format!("{error:#}").contains("1..=1600"), "{error:#}");
    }

    #[test]
    fn an_unknown_reference_to_the_removed_condition_fails() {
        let extra = TEMPLATE.replace(
            "        FAULT_INJECTION_RATE: !Ref FaultInjectionRate\n",
            "        FAULT_INJECTION_RATE: !Ref FaultInjectionRate\n        \
             LMI: !If [UseManagedInstances, \"1\", \"0\"]\n",
        );
        let error = managed_instances_variant(&extra, 16).expect_err("dangling");
        assert!(
            format!("{error:#}").contains("UseManagedInstances"),
            "{error:#}"
        );
    }

    #[test]
    fn translated_functions_are_checked() {
        let function = |config: Value| {
            serde_json::json!({
                "Type": "AWS::Lambda::Function",
                "Properties": { "MemorySize": 2048, "CapacityProviderConfig": config },
            })
        };
        let on_provider = serde_json::json!({
            "LambdaManagedInstancesCapacityProviderConfig": {
                "CapacityProviderArn": { "Fn::GetAtt": [CAPACITY_PROVIDER, "Arn"] },
                "PerExecutionEnvironmentMaxConcurrency": 16,
                "ExecutionEnvironmentMemoryGiBPerVCpu": 2,
            }
        });
        let mut resources = serde_json::Map::new();
        resources.insert(
            CAPACITY_PROVIDER.to_owned(),
            serde_json::json!({ "Type": "AWS::Lambda::CapacityProvider" }),
        );
        for id in ["A", "B", "C", "D"] {
            resources.insert(id.to_owned(), function(on_provider.clone()));
        }
        let mut translated = serde_json::json!({ "Resources": resources });
        check_translated(&translated, 16).expect("all four on the provider");
        assert!(check_translated(&translated, 32).is_err());
        translated["Resources"]["D"] = function(Value::Null);
        assert!(check_translated(&translated, 16).is_err());
    }

    // -------------------------------------------------------------------- the sam local variant

    fn router() -> Vec<Route> {
        router_routes().expect("the router table of Cargo.toml")
    }

    fn sam_local() -> String {
        sam_local_variant(TEMPLATE, &router()).expect("the sam local variant")
    }

    fn non_comment_lines(text: &str) -> impl Iterator<Item = &str> {
        text.lines()
            .filter(|line| !line.trim_start().starts_with('#'))
    }

    /// The routes of the variant read back from its functions' Events: every event is an Api
    /// event of `Api`, named after its route.
    fn variant_routes(text: &str) -> Vec<Route> {
        let lines = lines(text);
        let mut routes = Vec::new();
        for (id, binary) in function_binaries(&lines).expect("functions") {
            let entry = find_entry(&lines, "Resources", 2, &id, false).expect("the function");
            let events = child_entry(&lines, entry, 6, "Events", &id).expect("Events");
            let mut event: Option<(String, Vec<&str>)> = None;
            let mut finish = |event: Option<(String, Vec<&str>)>| {
                if let Some((name, fields)) = event {
                    assert!(fields.contains(&"Type: Api"), "{id}.{name}: {fields:?}");
                    assert!(
                        fields.contains(&"RestApiId: !Ref Api"),
                        "{id}.{name}: {fields:?}"
                    );
                    let field = |key: &str| {
                        fields
                            .iter()
                            .find_map(|field| field.strip_prefix(key))
                            .unwrap_or_else(|| panic!("{id}.{name} has no {key}"))
                            .to_owned()
                    };
                    let route = Route {
                        method: field("Method: ").to_ascii_uppercase(),
                        path: field("Path: "),
                        function: binary.clone(),
                    };
                    assert_eq!(event_name(&route), name, "{id}: the event's name");
                    routes.push(route);
                }
            };
            for line in &lines[events.start + 1..events.end] {
                if indentation(line) == 8 {
                    finish(event.take());
                    let name = line.trim().trim_end_matches(':').to_owned();
                    event = Some((name, Vec::new()));
                } else if let Some((_, fields)) = event.as_mut() {
                    fields.push(line.trim());
                }
            }
            finish(event.take());
        }
        routes.sort();
        routes
    }

    #[test]
    fn sam_local_routes_are_the_routers() {
        let router = router();
        assert_eq!(variant_routes(&sam_local()), router);
        // The router serves every function the template builds.
        let built: BTreeSet<String> = function_binaries(&lines(TEMPLATE))
            .expect("functions")
            .into_iter()
            .map(|(_, binary)| binary)
            .collect();
        let routed: BTreeSet<String> = router.into_iter().map(|route| route.function).collect();
        assert_eq!(built, routed);
    }

    #[test]
    fn sam_local_has_no_authorizer_and_no_http_api() {
        let variant = sam_local();
        for gone in [
            "AWS::ApiGatewayV2::",
            "AWS::Lambda::Permission",
            "Aliaslive",
            "Authorizer",
            "AuthorizationType",
            "security:",
            "DefinitionBody",
            "HttpApi",
            "UseRestApi",
            "UseApiGatewayAuth",
        ] {
            assert!(
                !non_comment_lines(&variant).any(|line| line.contains(gone)),
                "{gone} is still in the variant"
            );
        }
        let api_type = entry_text(&variant, "Parameters", 2, "ApiType");
        assert!(api_type.contains("\n    Default: rest\n    AllowedValues: [rest]\n"));
        let auth_mode = entry_text(&variant, "Parameters", 2, "AuthMode");
        assert!(auth_mode.contains("\n    Default: jwt\n    AllowedValues: [jwt]\n"));
        let api = entry_text(&variant, "Resources", 2, "Api");
        assert!(
            api.starts_with("  Api:\n    Type: AWS::Serverless::Api\n    Properties:\n"),
            "{api}"
        );
        assert!(api.contains("\n      StageName: v1\n"), "{api}");
        // Every !If on the flavour took its REST branch.
        let outputs = entry_text(&variant, "Outputs", 2, "ApiId");
        assert!(outputs.ends_with("\n    Value: !Ref Api"), "{outputs}");
        let url = entry_text(&variant, "Outputs", 2, "ApiUrl");
        assert!(
            url.ends_with(
                "\n    Value: !Sub \"https://${Api}.execute-api.${AWS::Region}.${AWS::URLSuffix}/v1\""
            ),
            "{url}"
        );
        assert!(variant.contains("\n      MetricName: 5XXError\n"));
        assert!(variant
            .contains("\n          - !If [CreateCognitoUserPool, \"cognito:username\", sub]\n"));
    }

    #[test]
    fn sam_local_functions_keep_their_properties_and_build_metadata() {
        let variant = sam_local();
        let functions = function_binaries(&lines(TEMPLATE)).expect("functions");
        assert_eq!(functions.len(), 4);
        for (id, binary) in functions {
            let before = entry_text(TEMPLATE, "Resources", 2, &id);
            let after = entry_text(&variant, "Resources", 2, &id);
            // The function is template.yaml's, with its Events appended to its Properties.
            let events = after
                .strip_prefix(&before)
                .unwrap_or_else(|| panic!("{id} changed beyond its Events:\n{after}"));
            assert!(
                events.starts_with("\n      # From the router table of Cargo.toml")
                    && events.contains("\n      Events:\n"),
                "{id}: {events}"
            );
            assert!(after.contains("\n    Metadata:\n      BuildMethod: rust-cargolambda\n"));
            assert!(after.contains(&format!("\n        Binary: {binary}\n")));
        }
    }

    #[test]
    fn sam_local_leaves_the_rest_alone() {
        let variant = sam_local();
        assert!(variant.starts_with("# GENERATED by `cargo xtask template --sam-local`"));
        for (name, indent, key) in [
            ("Resources", 2, "OrdersTable"),
            ("Resources", 2, "ApiAccessLogGroup"),
            ("Resources", 2, "CreateOrderLogGroup"),
            ("Resources", 2, "ManagedInstancesCapacityProvider"),
            ("Globals", 4, "Environment"),
            ("Conditions", 2, "UseJwtAuth"),
            ("Outputs", 2, "TableName"),
        ] {
            let before = entry_text(TEMPLATE, name, indent, key);
            if key == "Environment" {
                // The one !If on the flavour there: REST API ID tokens name the user in
                // cognito:username.
                let rest = before.replace(
                    "!If [UseHttpApi, username, \"cognito:username\"]",
                    "\"cognito:username\"",
                );
                assert_eq!(entry_text(&variant, name, indent, key), rest);
            } else {
                assert_eq!(entry_text(&variant, name, indent, key), before, "{key}");
            }
        }
    }

    #[test]
    fn sam_local_fails_on_what_it_cannot_place() {
        let mut routes = router();
        routes.push(Route {
            method: "POST".to_owned(),
            path: "/users/{userId}/refunds".to_owned(),
            function: "refund-order".to_owned(),
        });
        let error = sam_local_variant(TEMPLATE, &routes).expect_err("unknown function");
        assert!(format!("{error:#}").contains("refund-order"), "{error:#}");

        let error = sam_local_variant(TEMPLATE, &[]).expect_err("no routes");
        assert!(format!("{error:#}").contains("no routes"), "{error:#}");

        // The variant is no template.yaml: deriving it twice fails instead of stacking edits.
        let error = sam_local_variant(&sam_local(), &router()).expect_err("twice");
        assert!(format!("{error:#}").contains("anchor missing"), "{error:#}");

        // A new reference to the HTTP API in a form the xtask does not resolve.
        let extra = TEMPLATE.replace(
            "        FAULT_INJECTION_RATE: !Ref FaultInjectionRate\n",
            "        FAULT_INJECTION_RATE: !Ref FaultInjectionRate\n        \
             API: !If\n          - UseHttpApi\n          - !Ref HttpApi\n          - - a\n            - b\n",
        );
        let error = sam_local_variant(&extra, &router()).expect_err("multi-line branch");
        assert!(format!("{error:#}").contains("UseHttpApi"), "{error:#}");

        let extra = TEMPLATE.replace(
            "        FAULT_INJECTION_RATE: !Ref FaultInjectionRate\n",
            "        FAULT_INJECTION_RATE: !Ref FaultInjectionRate\n        \
             API_ID: !GetAtt HttpApi.ApiId\n",
        );
        let error = sam_local_variant(&extra, &router()).expect_err("dangling");
        assert!(format!("{error:#}").contains("`HttpApi`"), "{error:#}");
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

    #[test]
    fn routes_of_metadata_read_the_router_table() {
        let metadata = serde_json::json!({ "lambda": { "watch": { "router": {
            "/b/{id}": [{ "method": "get", "function": "read" }],
            "/a": [
                { "method": "POST", "function": "write" },
                { "method": "GET", "function": "read" },
            ],
        }}}});
        let route = |method: &str, path: &str, function: &str| Route {
            method: method.to_owned(),
            path: path.to_owned(),
            function: function.to_owned(),
        };
        assert_eq!(
            routes_of_metadata(&metadata).expect("routes"),
            [
                route("GET", "/a", "read"),
                route("GET", "/b/{id}", "read"),
                route("POST", "/a", "write"),
            ]
        );
        let twice = serde_json::json!({ "lambda": { "watch": { "router": {
            "/a": [{ "method": "GET", "function": "x" }, { "method": "get", "function": "x" }],
        }}}});
        assert!(routes_of_metadata(&twice).is_err());
        assert!(routes_of_metadata(&serde_json::json!({})).is_err());
        assert_eq!(
            event_name(&route(
                "GET",
                "/users/{userId}/orders/{orderId}",
                "get-order"
            )),
            "GetUsersUserIdOrdersOrderId"
        );
    }

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
}
