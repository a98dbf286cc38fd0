//! The Lambda Managed Instances variant of template.yaml (`cargo xtask template
//! --managed-instances`) and the check of its SAM translation.

use super::*;

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

    fn variant() -> String {
        managed_instances_variant(TEMPLATE, DEFAULT_MAX_CONCURRENCY).expect("the variant")
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
