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
//! The edits are anchored text edits, not a YAML round-trip (which would drop the `!Ref` and
//! `!GetAtt` tags and every comment): each anchor (the `# managed-instances: globals` marker in
//! `Globals.Function`, a parameter, a condition, a property) must be found exactly once, or the
//! command fails naming it.

use std::ops::{Range, RangeInclusive};
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;

use crate::paths;
use crate::stack::{DEFAULT_MAX_CONCURRENCY, FUNCTIONS};

/// The marker comment in `Globals.Function` that the variant replaces (with the comment lines
/// right above it) by `CapacityProviderConfig`.
pub const GLOBALS_MARKER: &str = "    # managed-instances: globals";

/// The LMI minimum memory of a function: 2 GB (and 1 vCPU) per execution environment.
pub const MANAGED_INSTANCES_MEMORY_MB: u32 = 2048;

/// `ExecutionEnvironmentMemoryGiBPerVCpu`: 2 GiB per vCPU, i.e. one vCPU per 2048 MB
/// environment (the supported ratios are 2, 4 and 8).
pub const MEMORY_GIB_PER_VCPU: u32 = 2;

/// What `PerExecutionEnvironmentMaxConcurrency` accepts (AWS::Lambda::Function's schema).
pub const MAX_CONCURRENCY_RANGE: RangeInclusive<u32> = 1..=1600;

/// The capacity provider's logical id in template.yaml.
pub const CAPACITY_PROVIDER: &str = "ManagedInstancesCapacityProvider";

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Write the Lambda Managed Instances variant (the only variant there is).
    #[arg(long, required = true)]
    pub managed_instances: bool,
    /// PerExecutionEnvironmentMaxConcurrency: invocations one execution environment serves at
    /// once (Lambda sets AWS_LAMBDA_MAX_CONCURRENCY from it). The local stack's default.
    #[arg(long, default_value_t = DEFAULT_MAX_CONCURRENCY,
          value_parser = clap::value_parser!(u32).range(1..=1600))]
    pub max_concurrency: u32,
    /// Where to write the variant [default: .local/template-managed-instances.yaml].
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// The variant's default path (git-ignored).
pub fn default_out() -> PathBuf {
    paths::local().join("template-managed-instances.yaml")
}

pub fn run(args: &Args) -> Result<()> {
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
pub fn write_managed_instances(max_concurrency: u32, out: &Path) -> Result<()> {
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
pub fn managed_instances_variant(template: &str, max_concurrency: u32) -> Result<String> {
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

/// Checks the CloudFormation that aws-sam-translator made of the variant
/// (`localstack/sam_translate.py --out`): every function of the service on the capacity
/// provider with `max_concurrency`, at the LMI memory, unreserved; the provider unconditional.
pub fn check_translated(translated: &Value, max_concurrency: u32) -> Result<()> {
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
}
