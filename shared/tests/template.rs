//! `template.yaml` against the sources of truth it copies: the route table in Cargo.toml
//! (`[workspace.metadata.lambda.watch.router]`), the table schema in `store::schema`, the alarm
//! numbers in `ops/alarms.json` (and their runbooks), and the DynamoDB calls the store's code
//! makes (each function's IAM policy). Also checks that the saved events in `events/` use the
//! routes of that table and reference the orders their keys create, and that the optional Lambda
//! Managed Instances resources exist only when asked for and hold no more than they need.
//!
//! The template uses CloudFormation short tags (`!Ref`, `!Sub`, `!GetAtt`, `!If` ...), which
//! serde_yaml keeps as `Value::Tagged`; the helpers below read them as such.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_yaml::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(relative: &str) -> String {
    let path = root().join(relative);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
}

fn template() -> Value {
    serde_yaml::from_str(&read("template.yaml")).expect("template.yaml is YAML")
}

/// `(tag without "!", tagged value)` of a short-form intrinsic such as `!Ref X`.
fn tagged(value: &Value) -> Option<(String, &Value)> {
    match value {
        Value::Tagged(tagged) => Some((
            tagged.tag.to_string().trim_start_matches('!').to_owned(),
            &tagged.value,
        )),
        _ => None,
    }
}

fn text(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("expected a string, got {value:?}"))
}

fn number(value: &Value) -> f64 {
    value
        .as_f64()
        .unwrap_or_else(|| panic!("expected a number, got {value:?}"))
}

/// The resources of one type, by logical id.
fn resources<'a>(template: &'a Value, kind: &str) -> BTreeMap<String, &'a Value> {
    template["Resources"]
        .as_mapping()
        .expect("Resources is a mapping")
        .iter()
        .filter(|(_, resource)| resource["Type"].as_str() == Some(kind))
        .map(|(id, resource)| (text(id).to_owned(), resource))
        .collect()
}

/// Function logical id -> cargo binary (BuildProperties.Binary).
fn function_binaries(template: &Value) -> BTreeMap<String, String> {
    resources(template, "AWS::Serverless::Function")
        .into_iter()
        .map(|(id, resource)| {
            let binary = resource["Metadata"]["BuildProperties"]["Binary"]
                .as_str()
                .unwrap_or_else(|| panic!("{id} has no Metadata.BuildProperties.Binary"));
            (id, binary.to_owned())
        })
        .collect()
}

type Route = (String, String, String); // (METHOD, path, function)

/// The route table of Cargo.toml.
fn router() -> BTreeSet<Route> {
    let manifest: toml::Value = toml::from_str(&read("Cargo.toml")).expect("Cargo.toml is TOML");
    let table = manifest["workspace"]["metadata"]["lambda"]["watch"]["router"]
        .as_table()
        .expect("[workspace.metadata.lambda.watch.router] is a table");
    let mut routes = BTreeSet::new();
    for (path, entries) in table {
        for entry in entries.as_array().expect("each router path lists methods") {
            let method = entry["method"]
                .as_str()
                .expect("method")
                .to_ascii_uppercase();
            let function = entry["function"].as_str().expect("function").to_owned();
            assert!(
                routes.insert((method.clone(), path.clone(), function)),
                "the router lists {method} {path} twice"
            );
        }
    }
    assert!(!routes.is_empty(), "the router table is empty");
    routes
}

fn workspace_functions() -> BTreeSet<String> {
    router()
        .into_iter()
        .map(|(_, _, function)| function)
        .collect()
}

// ------------------------------------------------------------------------------ (a) routes

/// The `Api` events of the functions.
fn event_routes(template: &Value) -> BTreeSet<Route> {
    let binaries = function_binaries(template);
    let mut routes = BTreeSet::new();
    for (id, resource) in resources(template, "AWS::Serverless::Function") {
        let Some(events) = resource["Properties"]["Events"].as_mapping() else {
            continue;
        };
        for (name, event) in events {
            let kind = event["Type"].as_str();
            assert_eq!(
                kind,
                Some("Api"),
                "{id}.Events.{name:?} is not an Api event"
            );
            let properties = &event["Properties"];
            let api = tagged(&properties["RestApiId"]);
            assert!(
                matches!(&api, Some((tag, target)) if tag == "Ref" && target.as_str() == Some("Api")),
                "{id}.Events.{name:?} must attach to the Api resource (RestApiId: !Ref Api)"
            );
            let route = (
                text(&properties["Method"]).to_ascii_uppercase(),
                text(&properties["Path"]).to_owned(),
                binaries[&id].clone(),
            );
            assert!(
                routes.insert(route.clone()),
                "{route:?} is declared twice as an event"
            );
        }
    }
    routes
}

/// The function a `!Sub "...${<Function>Aliaslive}/invocations"` integration URI points at.
fn integration_function(uri: &Value, binaries: &BTreeMap<String, String>) -> String {
    let (tag, value) = tagged(uri).expect("the integration uri is a !Sub");
    assert_eq!(tag, "Sub");
    let uri = text(value);
    assert!(
        uri.starts_with(
            "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/"
        ) && uri.ends_with("/invocations"),
        "not a Lambda proxy integration uri: {uri}"
    );
    let start = uri
        .find("/functions/${")
        .expect("the uri names the function")
        + "/functions/${".len();
    let reference = &uri[start..start + uri[start..].find('}').expect("closing brace")];
    let logical_id = reference
        .strip_suffix("Aliaslive")
        .unwrap_or_else(|| panic!("the integration must target the live alias, not {reference}"));
    binaries
        .get(logical_id)
        .unwrap_or_else(|| panic!("the integration targets {logical_id}, which is not a function"))
        .clone()
}

/// The paths of the API's explicit DefinitionBody.
fn definition_routes(template: &Value) -> BTreeSet<Route> {
    let binaries = function_binaries(template);
    let apis = resources(template, "AWS::Serverless::Api");
    assert_eq!(apis.len(), 1, "one API expected");
    let body = &apis["Api"]["Properties"]["DefinitionBody"];
    let mut routes = BTreeSet::new();
    for (path, methods) in body["paths"].as_mapping().expect("DefinitionBody.paths") {
        for (method, operation) in methods.as_mapping().expect("methods of a path") {
            let integration = &operation["x-amazon-apigateway-integration"];
            assert_eq!(
                integration["type"].as_str(),
                Some("aws_proxy"),
                "{path:?} {method:?}"
            );
            assert_eq!(
                integration["httpMethod"].as_str(),
                Some("POST"),
                "{path:?} {method:?}"
            );
            let function = integration_function(&integration["uri"], &binaries);
            routes.insert((
                text(method).to_ascii_uppercase(),
                text(path).to_owned(),
                function,
            ));
        }
    }
    routes
}

#[test]
fn routes_of_the_template_equal_the_router_table() {
    let template = template();
    let router = router();
    assert_eq!(
        event_routes(&template),
        router,
        "function Api events differ from the Cargo.toml router"
    );
    assert_eq!(
        definition_routes(&template),
        router,
        "Api DefinitionBody paths differ from the Cargo.toml router"
    );
    // Every function of the router is built by the template under its own name.
    let binaries: BTreeSet<String> = function_binaries(&template).into_values().collect();
    assert_eq!(binaries, workspace_functions());
}

#[test]
fn every_route_is_guarded_by_the_same_conditional_authorizer() {
    let template = template();
    let body = &resources(&template, "AWS::Serverless::Api")["Api"]["Properties"]["DefinitionBody"];
    for (path, methods) in body["paths"].as_mapping().expect("paths") {
        for (method, operation) in methods.as_mapping().expect("methods") {
            let (tag, arguments) = tagged(&operation["security"])
                .unwrap_or_else(|| panic!("{path:?} {method:?} has no conditional security"));
            assert_eq!(tag, "If", "{path:?} {method:?}");
            assert_eq!(
                arguments[0].as_str(),
                Some("UseApiGatewayAuth"),
                "{path:?} {method:?}"
            );
            assert!(
                arguments[1][0]["CognitoAuthorizer"].is_sequence(),
                "{path:?} {method:?}"
            );
        }
    }
}

// ------------------------------------------------------------------------------ (b) table

/// (index name, key, projection type).
type Index = (String, Vec<(String, String)>, String);

#[test]
fn the_table_has_exactly_the_schema_of_the_store() {
    let template = template();
    let tables = resources(&template, "AWS::DynamoDB::Table");
    assert_eq!(tables.len(), 1, "one table expected");
    let properties = &tables.values().next().expect("the table")["Properties"];
    let schema = order_service::store::schema::table_schema();
    let pairs = |list: &Value, name: &str, kind: &str| -> Vec<(String, String)> {
        list.as_sequence()
            .unwrap_or_else(|| panic!("expected a list, got {list:?}"))
            .iter()
            .map(|entry| (text(&entry[name]).to_owned(), text(&entry[kind]).to_owned()))
            .collect()
    };
    let owned = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    };

    let mut attributes = pairs(
        &properties["AttributeDefinitions"],
        "AttributeName",
        "AttributeType",
    );
    let mut expected_attributes = owned(&schema.attributes);
    attributes.sort();
    expected_attributes.sort();
    assert_eq!(attributes, expected_attributes, "AttributeDefinitions");

    // Key order matters: HASH first.
    assert_eq!(
        pairs(&properties["KeySchema"], "AttributeName", "KeyType"),
        owned(&schema.key),
        "KeySchema"
    );

    let indexes: Vec<Index> = properties["LocalSecondaryIndexes"]
        .as_sequence()
        .map(|indexes| {
            indexes
                .iter()
                .map(|index| {
                    (
                        text(&index["IndexName"]).to_owned(),
                        pairs(&index["KeySchema"], "AttributeName", "KeyType"),
                        text(&index["Projection"]["ProjectionType"]).to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let expected_indexes: Vec<Index> = schema
        .local_indexes
        .iter()
        .map(|(name, key, projection)| ((*name).to_owned(), owned(key), (*projection).to_owned()))
        .collect();
    assert_eq!(indexes, expected_indexes, "LocalSecondaryIndexes");
    assert!(
        properties["GlobalSecondaryIndexes"].is_null(),
        "the store uses no GSI"
    );
    assert_eq!(properties["BillingMode"].as_str(), Some("PAY_PER_REQUEST"));
    assert_eq!(
        properties["TimeToLiveSpecification"]["AttributeName"].as_str(),
        Some(schema.ttl_attribute),
        "TTL expires the Idempotency-Key records"
    );
    assert_eq!(
        properties["TimeToLiveSpecification"]["Enabled"].as_bool(),
        Some(true)
    );
}

// ------------------------------------------------------------------------------ (c) alarms

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct AlarmSpec {
    name: String,
    metric: String,
    statistic: String,
    threshold: f64,
    comparison: String,
    period_seconds: f64,
    evaluation_periods: f64,
    datapoints_to_alarm: f64,
    runbook: String,
}

/// The alarm name a template alarm gets, with `${AWS::StackName}-` removed.
fn alarm_suffix(id: &str, alarm: &Value) -> String {
    let (tag, name) = tagged(&alarm["Properties"]["AlarmName"])
        .unwrap_or_else(|| panic!("{id}: AlarmName must be !Sub \"${{AWS::StackName}}-...\""));
    assert_eq!(tag, "Sub", "{id}");
    text(name)
        .strip_prefix("${AWS::StackName}-")
        .unwrap_or_else(|| panic!("{id}: AlarmName must start with the stack name"))
        .to_owned()
}

/// The MetricStat entries of a metric-math alarm.
fn metric_stats(properties: &Value) -> Vec<&Value> {
    properties["Metrics"]
        .as_sequence()
        .map(|metrics| {
            metrics
                .iter()
                .map(|metric| &metric["MetricStat"])
                .filter(|stat| !stat.is_null())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_alarm_of_ops_alarms_json_is_in_the_template_with_the_same_numbers() {
    let specs: Vec<AlarmSpec> =
        serde_json::from_str(&read("ops/alarms.json")).expect("ops/alarms.json");
    let template = template();
    let alarms = resources(&template, "AWS::CloudWatch::Alarm");
    let functions = workspace_functions();
    let mut covered = BTreeSet::new();
    for spec in &specs {
        // Per-function alarms are named <name>-<function>; the others <name>.
        let matching: BTreeMap<String, &Value> = alarms
            .iter()
            .filter(|(id, alarm)| {
                let suffix = alarm_suffix(id, alarm);
                suffix == spec.name
                    || suffix
                        .strip_prefix(&format!("{}-", spec.name))
                        .is_some_and(|function| functions.contains(function))
            })
            .map(|(id, alarm)| (id.clone(), *alarm))
            .collect();
        let per_function = spec.name.starts_with("lambda-");
        let expected_count = if per_function { functions.len() } else { 1 };
        assert_eq!(
            matching.len(),
            expected_count,
            "alarm {}: {} template alarm(s) found: {:?}",
            spec.name,
            matching.len(),
            matching.keys().collect::<Vec<_>>()
        );
        for (id, alarm) in matching {
            covered.insert(id.clone());
            let properties = &alarm["Properties"];
            let context = format!("{} ({id})", spec.name);
            assert_eq!(
                number(&properties["Threshold"]),
                spec.threshold,
                "{context}: Threshold"
            );
            assert_eq!(
                text(&properties["ComparisonOperator"]),
                spec.comparison,
                "{context}: ComparisonOperator"
            );
            assert_eq!(
                number(&properties["EvaluationPeriods"]),
                spec.evaluation_periods,
                "{context}: EvaluationPeriods"
            );
            assert_eq!(
                number(&properties["DatapointsToAlarm"]),
                spec.datapoints_to_alarm,
                "{context}: DatapointsToAlarm"
            );
            let stats = metric_stats(properties);
            if stats.is_empty() {
                assert_eq!(
                    number(&properties["Period"]),
                    spec.period_seconds,
                    "{context}: Period"
                );
                assert_eq!(
                    text(&properties["MetricName"]),
                    spec.metric,
                    "{context}: MetricName"
                );
                let statistic = properties["Statistic"]
                    .as_str()
                    .or_else(|| properties["ExtendedStatistic"].as_str())
                    .unwrap_or_else(|| panic!("{context}: no Statistic"));
                assert_eq!(statistic, spec.statistic, "{context}: Statistic");
            } else {
                // Metric math: every input metric has the spec's period and statistic, and
                // one of them is the spec's metric.
                for stat in &stats {
                    assert_eq!(
                        number(&stat["Period"]),
                        spec.period_seconds,
                        "{context}: MetricStat.Period"
                    );
                    assert_eq!(
                        text(&stat["Stat"]),
                        spec.statistic,
                        "{context}: MetricStat.Stat"
                    );
                }
                assert!(
                    stats
                        .iter()
                        .any(|stat| stat["Metric"]["MetricName"].as_str()
                            == Some(spec.metric.as_str())),
                    "{context}: no input metric is {}",
                    spec.metric
                );
                assert!(
                    properties["Period"].is_null(),
                    "{context}: Period beside Metrics"
                );
            }
            let description = text(&properties["AlarmDescription"]);
            assert!(
                description.contains(&format!("Runbook: {}", spec.runbook)),
                "{context}: the description must name its runbook {}: {description}",
                spec.runbook
            );
        }
        assert!(
            root().join(&spec.runbook).is_file(),
            "{}: runbook {} is missing",
            spec.name,
            spec.runbook
        );
    }
    let undocumented: Vec<&String> = alarms.keys().filter(|id| !covered.contains(*id)).collect();
    assert!(
        undocumented.is_empty(),
        "template alarms missing from ops/alarms.json: {undocumented:?}"
    );
}

// ------------------------------------------------------------------------------ (d) IAM

/// `(required, tolerated)` DynamoDB actions per function, from the store code each one runs
/// (shared/src/store/orders.rs):
/// * create-order: BatchGetItem (user + products), a transaction of Put (order) and Update
///   (stock), GetItem (the existing order after a failed condition, when the emulator does
///   not return it with the cancellation reasons);
/// * pay-order, cancel-order: GetItem (the order), a transaction of Updates (order, balance,
///   stock);
/// * get-order: GetItem (one order, the user of an empty list) and Query (the list index).
///
/// `TransactWriteItems` is no IAM action: a transaction is authorized per contained action.
/// No function sends a ConditionCheck, so none may hold ConditionCheckItem
/// (`store_code_calls_the_operations_the_policies_assume` notices when one starts to).
fn expected_actions(function: &str) -> (BTreeSet<&'static str>, BTreeSet<&'static str>) {
    let set = |actions: &[&'static str]| actions.iter().copied().collect::<BTreeSet<_>>();
    match function {
        "create-order" => (
            set(&[
                "dynamodb:BatchGetItem",
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
            ]),
            set(&[]),
        ),
        // Idempotency-Key records: PutItem claims, UpdateItem answers or releases.
        "pay-order" | "cancel-order" => (
            set(&[
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
            ]),
            set(&[]),
        ),
        "get-order" => (set(&["dynamodb:GetItem", "dynamodb:Query"]), set(&[])),
        other => panic!("no IAM expectation for function {other}: add one here"),
    }
}

fn strings(value: &Value) -> Vec<&Value> {
    match value {
        Value::Sequence(items) => items.iter().collect(),
        other => vec![other],
    }
}

/// Whether a policy resource is the table (`!GetAtt OrdersTable.Arn`) or its indexes
/// (`!Sub "${OrdersTable.Arn}/index/..."`).
fn is_table_or_index(resource: &Value, table_id: &str) -> bool {
    match tagged(resource) {
        Some((tag, value)) if tag == "GetAtt" => match value {
            Value::String(text) => *text == format!("{table_id}.Arn"),
            Value::Sequence(parts) => {
                parts.len() == 2
                    && parts[0].as_str() == Some(table_id)
                    && parts[1].as_str() == Some("Arn")
            }
            _ => false,
        },
        Some((tag, value)) if tag == "Sub" => value.as_str().is_some_and(|text| {
            text.strip_prefix(&format!("${{{table_id}.Arn}}/index/"))
                .is_some_and(|index| {
                    index == "*" || index == order_service::store::schema::LIST_INDEX
                })
        }),
        _ => false,
    }
}

#[test]
fn each_function_may_call_exactly_the_dynamodb_actions_its_code_needs() {
    let template = template();
    let table_id = resources(&template, "AWS::DynamoDB::Table")
        .into_keys()
        .next()
        .expect("a table");
    assert!(
        template["Globals"]["Function"]["Policies"].is_null(),
        "no policies in Globals: each function states its own"
    );
    let binaries = function_binaries(&template);
    for (id, resource) in resources(&template, "AWS::Serverless::Function") {
        let function = &binaries[&id];
        let policies = resource["Properties"]["Policies"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{id} has no Policies list"));
        let mut granted = BTreeSet::new();
        for policy in policies {
            // Only inline documents: a SAM policy template (DynamoDBCrudPolicy ...) or a
            // managed policy would grant more than the code needs.
            let statements = policy["Statement"].as_sequence().unwrap_or_else(|| {
                panic!("{id}: only inline policy documents are allowed, got {policy:?}")
            });
            for statement in statements {
                assert_eq!(
                    statement["Effect"].as_str(),
                    Some("Allow"),
                    "{id}: {statement:?}"
                );
                assert!(
                    statement["NotAction"].is_null() && statement["NotResource"].is_null(),
                    "{id}: {statement:?}"
                );
                for action in strings(&statement["Action"]) {
                    let action = text(action);
                    assert!(
                        action.starts_with("dynamodb:"),
                        "{id} ({function}) is granted {action}"
                    );
                    granted.insert(action.to_owned());
                }
                for resource in strings(&statement["Resource"]) {
                    assert!(
                        is_table_or_index(resource, &table_id),
                        "{id} ({function}): resource {resource:?} is neither the table nor its indexes"
                    );
                }
            }
        }
        for forbidden in [
            "dynamodb:*",
            "dynamodb:Scan",
            "dynamodb:DeleteItem",
            "dynamodb:BatchWriteItem",
        ] {
            assert!(
                !granted.contains(forbidden),
                "{function} must not be granted {forbidden}"
            );
        }
        assert!(
            !granted.iter().any(|action| action.contains('*')),
            "{function}: wildcard action in {granted:?}"
        );
        let (required, tolerated) = expected_actions(function);
        let granted: BTreeSet<&str> = granted.iter().map(String::as_str).collect();
        let missing: Vec<&&str> = required.difference(&granted).collect();
        assert!(
            missing.is_empty(),
            "{function} lacks {missing:?} (granted {granted:?})"
        );
        let allowed: BTreeSet<&str> = required.union(&tolerated).copied().collect();
        let extra: Vec<&&str> = granted.difference(&allowed).collect();
        assert!(
            extra.is_empty(),
            "{function} is granted more than its code needs: {extra:?}"
        );
    }
    // No other IAM resource hands out DynamoDB access.
    for kind in [
        "AWS::IAM::Role",
        "AWS::IAM::Policy",
        "AWS::IAM::ManagedPolicy",
    ] {
        for (id, resource) in resources(&template, kind) {
            let dumped = serde_yaml::to_string(resource).expect("serializable");
            assert!(
                !dumped.contains("dynamodb"),
                "{id} ({kind}) grants DynamoDB access"
            );
        }
    }
}

/// The tripwire of `expected_actions`: the store's request code uses exactly the operations
/// that table was written from. When this fails, update `expected_actions` and the policies.
#[test]
fn store_code_calls_the_operations_the_policies_assume() {
    let code = read("shared/src/store/orders.rs");
    for used in [
        ".batch_get_item()",
        ".get_item()",
        ".query()",
        ".transact_write_items()",
        ".put(",
        ".update(",
    ] {
        assert!(
            code.contains(used),
            "orders.rs no longer calls {used}: revisit expected_actions"
        );
    }
    for unused in [
        ".condition_check(",
        ".delete(",
        ".delete_item()",
        ".scan()",
        ".put_item()",
        ".update_item()",
        ".batch_write_item()",
    ] {
        assert!(
            !code.contains(unused),
            "orders.rs now calls {unused}: revisit expected_actions and the policies"
        );
    }
    let records = read("shared/src/store/idempotency.rs");
    for used in [".put_item()", ".update_item()", ".get_item()", ".update("] {
        assert!(
            records.contains(used),
            "idempotency.rs no longer calls {used}: revisit expected_actions"
        );
    }
    for unused in [
        ".condition_check(",
        ".delete(",
        ".delete_item()",
        ".scan()",
        ".query()",
        ".batch_write_item()",
    ] {
        assert!(
            !records.contains(unused),
            "idempotency.rs now calls {unused}: revisit expected_actions and the policies"
        );
    }
}

// ------------------------------------------------------------------------------ events

#[derive(Debug, serde::Deserialize)]
struct Expectation {
    event: String,
    function: String,
    status: u16,
}

/// Every saved event is a v2 event of a route of the router table, sent to that route's
/// function; the keyed creates produce the order ids the later events address.
#[test]
fn saved_events_use_the_routes_of_the_router_table() {
    use order_service::domain::{IdempotencyKey, UserId};

    let router = router();
    let expected: Vec<Expectation> =
        serde_json::from_str(&read("events/expected.json")).expect("events/expected.json");
    assert!(!expected.is_empty());
    let mut created = BTreeSet::new();
    for entry in &expected {
        let event: serde_json::Value =
            serde_json::from_str(&read(&format!("events/{}", entry.event)))
                .expect("an event is JSON");
        assert_eq!(event["version"], "2.0", "{}", entry.event);
        let route_key = event["routeKey"].as_str().expect("routeKey");
        assert_eq!(
            event["requestContext"]["routeKey"], route_key,
            "{}",
            entry.event
        );
        let (method, template_path) = route_key.split_once(' ').expect("METHOD /path");
        assert_eq!(
            event["requestContext"]["http"]["method"], method,
            "{}",
            entry.event
        );
        assert!(
            router.contains(&(
                method.to_owned(),
                template_path.to_owned(),
                entry.function.clone()
            )),
            "{}: {route_key} -> {} is not in the router table",
            entry.event,
            entry.function
        );
        // rawPath is the route with the path parameters filled in.
        let mut path = template_path.to_owned();
        if let Some(parameters) = event["pathParameters"].as_object() {
            for (name, value) in parameters {
                path = path.replace(&format!("{{{name}}}"), value.as_str().expect("a string"));
            }
        }
        assert_eq!(event["rawPath"], path.as_str(), "{}", entry.event);
        assert_eq!(
            event["requestContext"]["http"]["path"],
            path.as_str(),
            "{}",
            entry.event
        );

        let user = event["pathParameters"]["userId"].as_str().expect("userId");
        let key = event["headers"]["idempotency-key"].as_str();
        if method == "POST" && template_path == "/users/{userId}/orders" && entry.status == 201 {
            let key = key.unwrap_or_else(|| {
                panic!(
                    "{}: a create that later events use needs a key",
                    entry.event
                )
            });
            created.insert(
                IdempotencyKey::parse(key)
                    .unwrap()
                    .order_id(&UserId::parse(user).unwrap())
                    .to_string(),
            );
        }
        if let Some(order) = event["pathParameters"]["orderId"].as_str() {
            // Events that expect to find the order address one a keyed create made earlier.
            if entry.status == 200 || entry.status == 409 {
                assert!(
                    created.contains(order),
                    "{}: order {order} is not created by an earlier keyed create",
                    entry.event
                );
            }
        }
    }
}

// ------------------------------------------------------------------------------ managed instances

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

/// The logical ids (and parameters) one intrinsic names: `Ref X`, `GetAtt X.Attr`, `${X}` or
/// `${X.Attr}` in a `Sub` (`${!...}` is an escaped literal).
fn named_by(function: &str, argument: &Value, found: &mut BTreeSet<String>) {
    let first_part = |name: &str| name.split('.').next().unwrap_or(name).to_owned();
    match function {
        "Ref" => {
            if let Some(name) = argument.as_str() {
                found.insert(name.to_owned());
            }
        }
        "GetAtt" => match argument {
            Value::String(name) => {
                found.insert(first_part(name));
            }
            Value::Sequence(parts) => {
                if let Some(name) = parts.first().and_then(Value::as_str) {
                    found.insert(name.to_owned());
                }
            }
            _ => {}
        },
        "Sub" => {
            let text = match argument {
                Value::String(text) => Some(text.as_str()),
                Value::Sequence(parts) => parts.first().and_then(Value::as_str),
                _ => None,
            };
            for piece in text.unwrap_or_default().split("${").skip(1) {
                if let Some(end) = piece.find('}') {
                    if !piece.starts_with('!') {
                        found.insert(first_part(&piece[..end]));
                    }
                }
            }
        }
        _ => {}
    }
}

/// Every logical id `value` refers to, in short (`!Ref`) or long (`Ref:`) form at any depth,
/// except in the first branch of an `If` on `gate`: CloudFormation only resolves that branch
/// when the gate's condition holds.
fn references_outside(value: &Value, gate: &str, found: &mut BTreeSet<String>) {
    let intrinsic = |function: &str, argument: &Value, found: &mut BTreeSet<String>| {
        if function == "If" {
            if let Some(branches) = argument.as_sequence() {
                let skip_first = branches.first().and_then(Value::as_str) == Some(gate);
                for (index, branch) in branches.iter().enumerate().skip(1) {
                    if !(skip_first && index == 1) {
                        references_outside(branch, gate, found);
                    }
                }
            }
            return;
        }
        named_by(function, argument, found);
        references_outside(argument, gate, found);
    };
    if let Some((function, argument)) = tagged(value) {
        intrinsic(&function, argument, found);
        return;
    }
    match value {
        Value::Mapping(mapping) => {
            for (key, child) in mapping {
                match key.as_str().map(|key| key.trim_start_matches("Fn::")) {
                    Some(function @ ("Ref" | "GetAtt" | "Sub" | "If")) if mapping.len() == 1 => {
                        intrinsic(function, child, found);
                    }
                    _ => references_outside(child, gate, found),
                }
            }
        }
        Value::Sequence(items) => {
            for item in items {
                references_outside(item, gate, found);
            }
        }
        _ => {}
    }
}

/// Whether `value` is `!Ref <name>`.
fn is_ref(value: &Value, name: &str) -> bool {
    matches!(tagged(value), Some((tag, target)) if tag == "Ref" && target.as_str() == Some(name))
}

/// The text of a policy resource: a plain string or the template of a `!Sub`.
fn arn_text(value: &Value) -> String {
    match tagged(value) {
        Some((tag, template)) if tag == "Sub" => text(template).to_owned(),
        _ => text(value).to_owned(),
    }
}

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
        terms.iter().any(|term| matches!(
            tagged(term),
            Some((tag, pair)) if tag == "Equals"
                && is_ref(&pair[0], "ManagedInstances")
                && pair[1].as_str() == Some("true")
        )),
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

/// Every logical id `value` refers to, in the branches of every `If` too.
fn named_by_all(value: &Value, found: &mut BTreeSet<String>) {
    references_outside(value, "", found);
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
    assert!(is_ref(&function_architectures[0], "Architecture"));
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

    let rules = template["Rules"].as_mapping().expect("Rules");
    let guarded: BTreeSet<String> = rules
        .values()
        .filter(|rule| {
            matches!(
                tagged(&rule["RuleCondition"]),
                Some((tag, pair)) if tag == "Equals"
                    && is_ref(&pair[0], "ManagedInstances")
                    && pair[1].as_str() == Some("true")
            )
        })
        .flat_map(|rule| {
            rule["Assertions"]
                .as_sequence()
                .expect("Assertions")
                .iter()
                .filter_map(|assertion| {
                    // `!Not [!Contains [!Ref <list>, ""]]`: the list holds no empty id.
                    let (not, inner) = tagged(&assertion["Assert"])?;
                    let (contains, pair) = tagged(&inner[0])?;
                    let (reference, list) = tagged(&pair[0])?;
                    (not == "Not"
                        && contains == "Contains"
                        && reference == "Ref"
                        && pair[1].as_str() == Some(""))
                    .then(|| text(list).to_owned())
                })
                .collect::<Vec<_>>()
        })
        .collect();
    for parameter in [
        "ManagedInstancesSubnetIds",
        "ManagedInstancesSecurityGroupIds",
    ] {
        assert!(
            guarded.contains(parameter),
            "no rule refuses ManagedInstances=true with an empty {parameter} (guarded: {guarded:?})"
        );
    }
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
            assert_eq!(statement["Effect"].as_str(), Some("Allow"), "{context}");
            assert!(
                statement["NotAction"].is_null() && statement["NotResource"].is_null(),
                "{context}"
            );
            let actions: Vec<&str> = strings(&statement["Action"])
                .into_iter()
                .map(text)
                .collect();
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

#[test]
fn an_idempotency_claim_outlives_any_invocation() {
    // A claim's lease must not lapse while its request can still be running, or a retry could
    // execute beside it: the lease is longer than every function's timeout.
    let template = template();
    let global = number(&template["Globals"]["Function"]["Timeout"]);
    let lease = order_service::domain::IN_FLIGHT_LEASE.as_secs_f64();
    assert!(
        global < lease,
        "Globals timeout {global} s >= lease {lease} s"
    );
    for (name, function) in resources(&template, "AWS::Serverless::Function") {
        let timeout = &function["Properties"]["Timeout"];
        if !timeout.is_null() {
            assert!(
                number(timeout) < lease,
                "{name}: timeout >= lease {lease} s"
            );
        }
    }
}
