//! Lambda Managed Instances: off by default, and no more than they need when on.

use super::*;

/// The condition that gates everything of Lambda Managed Instances.
const MANAGED_INSTANCES: &str = "UseManagedInstances";

/// The resource types of a Lambda Managed Instances capacity provider (CloudFormation's, SAM's).
const CAPACITY_PROVIDER_TYPES: [&str; 2] = [
    "AWS::Lambda::CapacityProvider",
    "AWS::Serverless::CapacityProvider",
];

/// The statements' actions of the AWS managed policy `AWSLambdaManagedEC2ResourceOperator`,
/// which the Lambda developer guide ("Lambda operator role for Lambda Managed Instances") names
/// as the operator role's minimum: the ceiling of what the template's operator role may hold.
const OPERATOR_ACTIONS: [&str; 12] = [
    "ec2:RunInstances",
    "ec2:CreateTags",
    "ec2:AttachNetworkInterface",
    "ec2:CreateNetworkInterface",
    "ec2:DescribeAvailabilityZones",
    "ec2:DescribeCapacityReservations",
    "ec2:DescribeInstances",
    "ec2:DescribeInstanceStatus",
    "ec2:DescribeInstanceTypeOfferings",
    "ec2:DescribeInstanceTypes",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSubnets",
];

/// Lambda Managed Instances are opt-in: `ManagedInstances` defaults to "false", which alone makes
/// `UseManagedInstances` false; every capacity provider, the operator role it runs as, and
/// whatever resource or output refers to either (outside an `!If` on that condition) carry that
/// condition, and Globals (which cannot carry one) refer to none. A default deployment therefore
/// creates nothing of it.
#[test]
fn managed_instances_are_off_by_default_and_nothing_of_them_exists_when_off() {
    let template = template();
    let parameter = &template["Parameters"]["ManagedInstances"];
    assert_eq!(
        parameter["Default"].as_str(),
        Some("false"),
        "ManagedInstances must default to \"false\""
    );
    let allowed: BTreeSet<&str> = parameter["AllowedValues"]
        .as_sequence()
        .expect("ManagedInstances has AllowedValues")
        .iter()
        .map(text)
        .collect();
    assert_eq!(allowed, BTreeSet::from(["false", "true"]));

    // `ManagedInstances = "true"`, alone or as a term of an !And (never of an !Or).
    let condition = &template["Conditions"][MANAGED_INSTANCES];
    let (function, arguments) =
        tagged(condition).unwrap_or_else(|| panic!("no condition {MANAGED_INSTANCES}"));
    let terms: Vec<&Value> = match function.as_str() {
        "And" => arguments
            .as_sequence()
            .expect("!And takes a list")
            .iter()
            .collect(),
        "Equals" => vec![condition],
        other => panic!("{MANAGED_INSTANCES} must be !Equals or !And, not !{other}"),
    };
    assert!(
        terms
            .iter()
            .any(|term| is_equals(term, "ManagedInstances", "true")),
        "{MANAGED_INSTANCES} must require ManagedInstances = \"true\": {condition:?}"
    );

    // The capacity providers and the operator roles they name.
    let mut gated = BTreeSet::new();
    for kind in CAPACITY_PROVIDER_TYPES {
        for (id, provider) in resources(&template, kind) {
            let mut roles = BTreeSet::new();
            named_by_all(&provider["Properties"]["PermissionsConfig"], &mut roles);
            named_by_all(&provider["Properties"]["OperatorRole"], &mut roles);
            assert!(
                !roles.is_empty(),
                "{id} names no operator role of the template"
            );
            gated.insert(id);
            gated.extend(roles);
        }
    }
    assert!(!gated.is_empty(), "template.yaml has no capacity provider");

    // Whatever refers to a gated resource is gated too, transitively.
    let all: Vec<(String, &Value)> = [
        section_entries(&template, "Resources"),
        section_entries(&template, "Outputs"),
    ]
    .concat();
    loop {
        let before = gated.len();
        for (place, body) in &all {
            let id = place.split_once('.').expect("section.id").1;
            let mut referred = BTreeSet::new();
            references_outside(body, MANAGED_INSTANCES, &mut referred);
            referred.extend(depends_on(body));
            if referred.iter().any(|name| gated.contains(name)) && place.starts_with("Resources.") {
                gated.insert(id.to_owned());
            }
            if referred.iter().any(|name| gated.contains(name)) || gated.contains(id) {
                assert_eq!(
                    body["Condition"].as_str(),
                    Some(MANAGED_INSTANCES),
                    "{place} is or refers to a Lambda Managed Instances resource, so it needs \
                     Condition: {MANAGED_INSTANCES}"
                );
            }
        }
        if gated.len() == before {
            break;
        }
    }
    let mut from_globals = BTreeSet::new();
    references_outside(&template["Globals"], MANAGED_INSTANCES, &mut from_globals);
    let leaked: Vec<&String> = from_globals.intersection(&gated).collect();
    assert!(
        leaked.is_empty(),
        "Globals apply to every function unconditionally and refer to {leaked:?}"
    );
}

/// The logical ids of a `DependsOn` (one id or a list of them).
fn depends_on(resource: &Value) -> BTreeSet<String> {
    match &resource["DependsOn"] {
        Value::String(id) => BTreeSet::from([id.clone()]),
        Value::Sequence(ids) => ids.iter().map(|id| text(id).to_owned()).collect(),
        _ => BTreeSet::new(),
    }
}

/// `(<section>.<id>, body)` of every entry of a top-level section (Resources, Outputs).
fn section_entries<'a>(template: &'a Value, section: &str) -> Vec<(String, &'a Value)> {
    template[section]
        .as_mapping()
        .map(|mapping| {
            mapping
                .iter()
                .map(|(id, body)| (format!("{section}.{}", text(id)), body))
                .collect()
        })
        .unwrap_or_default()
}

/// SAM cannot put a function on a capacity provider conditionally. aws-sam-translator 1.115.0,
/// which CloudFormation's transform and localstack/emulator.py run, parses CapacityProviderConfig
/// before any condition is evaluated and rejects an intrinsic around it ("Arn field required",
/// "Fn::If extra fields not permitted"): every deployment would fail, with the option off too,
/// while cfn-lint 1.58.0 passes the template. An `!If` on its Arn instead leaves
/// CloudFormation a LambdaManagedInstancesCapacityProviderConfig without its required
/// CapacityProviderArn when off. So where a function or Globals holds one, it is a literal
/// mapping with a literal reference as Arn (and the test above then demands a gated function).
#[test]
fn no_function_holds_a_capacity_provider_config_that_sam_rejects() {
    let template = template();
    let mut holders = vec![(
        "Globals.Function".to_owned(),
        &template["Globals"]["Function"],
    )];
    for (id, function) in resources(&template, "AWS::Serverless::Function") {
        holders.push((id, &function["Properties"]));
    }
    for (place, properties) in holders {
        let config = &properties["CapacityProviderConfig"];
        if config.is_null() {
            continue;
        }
        let literal = tagged(config).is_none()
            && config.as_mapping().is_some_and(|mapping| {
                !mapping
                    .keys()
                    .filter_map(Value::as_str)
                    .any(|key| key == "Ref" || key.starts_with("Fn::"))
            });
        assert!(
            literal,
            "{place}: SAM rejects an intrinsic around CapacityProviderConfig: {config:?}"
        );
        let arn = &config["Arn"];
        assert!(
            !arn.is_null(),
            "{place}: CapacityProviderConfig needs an Arn"
        );
        assert!(
            !matches!(tagged(arn), Some((tag, _)) if tag == "If"),
            "{place}: an !If on the Arn leaves CloudFormation a capacity provider config \
             without CapacityProviderArn when the condition is false"
        );
    }
}

/// With `ManagedInstances=true` the one capacity provider runs instances of the functions'
/// architecture (a function runs only on instances of its own) in the subnets and security
/// groups given as parameters, under the vCPU ceiling parameter; and a rule under
/// `ManagedInstances = "true"` refuses the deployment when either network list is empty,
/// instead of silently creating nothing.
#[test]
fn the_capacity_provider_runs_the_functions_architecture_in_the_given_network() {
    let template = template();
    let providers: Vec<(String, &Value)> = CAPACITY_PROVIDER_TYPES
        .iter()
        .flat_map(|kind| resources(&template, kind))
        .collect();
    assert_eq!(providers.len(), 1, "one capacity provider expected");
    let (id, provider) = &providers[0];
    let properties = &provider["Properties"];

    let function_architectures = template["Globals"]["Function"]["Architectures"]
        .as_sequence()
        .expect("Globals.Function.Architectures is a list");
    let provider_architectures = properties["InstanceRequirements"]["Architectures"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{id}: InstanceRequirements.Architectures is a list"));
    assert_eq!(function_architectures.len(), 1);
    assert_eq!(
        function_architectures[0].as_str(),
        Some("arm64"),
        "template.yaml builds arm64 only"
    );
    assert_eq!(
        provider_architectures, function_architectures,
        "{id} must run the functions' architecture"
    );

    for (path, value, parameter) in [
        (
            "VpcConfig.SubnetIds",
            &properties["VpcConfig"]["SubnetIds"],
            "ManagedInstancesSubnetIds",
        ),
        (
            "VpcConfig.SecurityGroupIds",
            &properties["VpcConfig"]["SecurityGroupIds"],
            "ManagedInstancesSecurityGroupIds",
        ),
        (
            "CapacityProviderScalingConfig.MaxVCpuCount",
            &properties["CapacityProviderScalingConfig"]["MaxVCpuCount"],
            "ManagedInstancesMaxVCpuCount",
        ),
    ] {
        assert!(
            is_ref(value, parameter),
            "{id}.{path} must be !Ref {parameter}, got {value:?}"
        );
        assert!(
            !template["Parameters"][parameter].is_null(),
            "no parameter {parameter}"
        );
    }

    // `!Not [!Contains [!Ref <list>, ""]]`: the list holds no empty id.
    let guarded: BTreeSet<String> = rules(&template)
        .into_values()
        .filter(|rule| is_equals(&rule["RuleCondition"], "ManagedInstances", "true"))
        .flat_map(|rule| asserted_non_empty(rule, "Contains"))
        .collect();
    assert_guarded(
        &guarded,
        "ManagedInstances=true",
        &[
            "ManagedInstancesSubnetIds",
            "ManagedInstancesSecurityGroupIds",
        ],
    );
}

/// The operator role (Lambda assumes it to run the instances) holds at most the documented
/// minimum, AWSLambdaManagedEC2ResourceOperator, as an inline policy the file shows: only
/// lambda.amazonaws.com may assume it; `*` resources only for the Describe calls that take no
/// other; launching, tagging and attaching only to what Lambda's scaler manages; booting only
/// Amazon-owned images.
#[test]
fn the_operator_role_may_only_run_the_instances_lambda_manages() {
    let template = template();
    let providers = resources(&template, "AWS::Lambda::CapacityProvider");
    assert_eq!(
        providers.len(),
        1,
        "one AWS::Lambda::CapacityProvider expected"
    );
    let (id, provider) = providers.into_iter().next().expect("a capacity provider");
    let mut roles = BTreeSet::new();
    named_by_all(
        &provider["Properties"]["PermissionsConfig"]["CapacityProviderOperatorRoleArn"],
        &mut roles,
    );
    assert_eq!(
        roles.len(),
        1,
        "{id} must name one operator role of the template"
    );
    let role_id = roles.into_iter().next().expect("a role");
    let role = &template["Resources"][role_id.as_str()];
    assert_eq!(role["Type"].as_str(), Some("AWS::IAM::Role"), "{role_id}");
    let properties = &role["Properties"];

    for statement in properties["AssumeRolePolicyDocument"]["Statement"]
        .as_sequence()
        .expect("trust statements")
    {
        assert_eq!(statement["Effect"].as_str(), Some("Allow"), "{role_id}");
        assert_eq!(
            statement["Principal"]["Service"].as_str(),
            Some("lambda.amazonaws.com"),
            "{role_id}: only Lambda may assume the operator role"
        );
        assert_eq!(
            statement["Action"].as_str(),
            Some("sts:AssumeRole"),
            "{role_id}"
        );
    }
    assert!(
        properties["ManagedPolicyArns"].is_null(),
        "{role_id}: a managed policy grants what the template does not show"
    );

    let ceiling: BTreeSet<&str> = OPERATOR_ACTIONS.into_iter().collect();
    let mut granted = BTreeSet::new();
    let policies = properties["Policies"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{role_id} has no inline Policies"));
    for policy in policies {
        for statement in policy["PolicyDocument"]["Statement"]
            .as_sequence()
            .expect("statements")
        {
            let context = format!("{role_id}: {statement:?}");
            let actions = allowed_actions(statement, &context);
            let resources: Vec<String> = strings(&statement["Resource"])
                .into_iter()
                .map(arn_text)
                .collect();
            for action in &actions {
                assert!(
                    ceiling.contains(action),
                    "{role_id} is granted {action}, beyond AWSLambdaManagedEC2ResourceOperator"
                );
                granted.insert(*action);
            }
            let condition = |key: &str| statement["Condition"]["StringEquals"][key].as_str();
            if resources.iter().any(|resource| resource == "*") {
                assert!(
                    actions
                        .iter()
                        .all(|action| action.starts_with("ec2:Describe")),
                    "{context}: only Describe calls may have Resource \"*\""
                );
            }
            let creates = actions
                .iter()
                .any(|action| matches!(*action, "ec2:CreateTags" | "ec2:AttachNetworkInterface"));
            if creates
                || resources
                    .iter()
                    .any(|resource| resource.contains(":instance/"))
            {
                assert_eq!(
                    condition("ec2:ManagedResourceOperator"),
                    Some("scaler.lambda.amazonaws.com"),
                    "{context}: only for what Lambda's scaler manages"
                );
            }
            if resources
                .iter()
                .any(|resource| resource.contains(":image/"))
            {
                assert_eq!(
                    condition("ec2:Owner"),
                    Some("amazon"),
                    "{context}: only Amazon-owned images"
                );
            }
        }
    }
    assert!(
        granted.contains("ec2:RunInstances"),
        "{role_id} cannot launch the instances at all"
    );
}
