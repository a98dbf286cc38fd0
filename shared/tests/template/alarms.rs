//! Alarms, dashboard, runbook links and Slack: ops/alarms.json, this stack's EMF series, canary rollbacks.

use super::*;

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
    /// The metric's name on an HTTP API when it differs from the REST API's `metric`
    /// (`5xx` for `5XXError`).
    #[serde(default)]
    http_api_metric: Option<String>,
    /// One alarm per function, named `<name>-<function>`.
    #[serde(default)]
    per_function: bool,
    /// A ratio's denominator (metric math `metric / denominator`), with its own statistic.
    #[serde(default)]
    denominator_metric: Option<String>,
    #[serde(default)]
    denominator_statistic: Option<String>,
}

/// An AWS/ApiGateway alarm's dimensions: this stack's HTTP API (`ApiId`) and stage v1.
fn assert_reads_the_api(context: &str, properties: &Value) {
    let dimensions = properties["Dimensions"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{context}: Dimensions"));
    assert_eq!(dimensions.len(), 2, "{context}: {dimensions:?}");
    assert_eq!(dimensions[0]["Name"].as_str(), Some("ApiId"), "{context}");
    assert!(is_ref(&dimensions[0]["Value"], "HttpApi"), "{context}");
    assert_eq!(dimensions[1]["Name"].as_str(), Some("Stage"), "{context}");
    assert_eq!(dimensions[1]["Value"].as_str(), Some("v1"), "{context}");
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
        let per_function = spec.per_function;
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
            for (property, expected) in [
                ("Threshold", spec.threshold),
                ("EvaluationPeriods", spec.evaluation_periods),
                ("DatapointsToAlarm", spec.datapoints_to_alarm),
            ] {
                assert_eq!(
                    number(&properties[property]),
                    expected,
                    "{context}: {property}"
                );
            }
            assert_eq!(
                text(&properties["ComparisonOperator"]),
                spec.comparison,
                "{context}: ComparisonOperator"
            );
            let stats = metric_stats(properties);
            if stats.is_empty() {
                assert_eq!(
                    number(&properties["Period"]),
                    spec.period_seconds,
                    "{context}: Period"
                );
                // The HTTP API names some metrics its own way (5xx for 5XXError).
                assert_eq!(
                    text(&properties["MetricName"]),
                    spec.http_api_metric.as_deref().unwrap_or(&spec.metric),
                    "{context}: MetricName"
                );
                if properties["Namespace"].as_str() == Some("AWS/ApiGateway") {
                    assert_reads_the_api(&context, properties);
                }
                let statistic = properties["Statistic"]
                    .as_str()
                    .or_else(|| properties["ExtendedStatistic"].as_str())
                    .unwrap_or_else(|| panic!("{context}: no Statistic"));
                assert_eq!(statistic, spec.statistic, "{context}: Statistic");
            } else {
                // Metric math: every input metric has the spec's period and statistic (or,
                // for a ratio's denominator, the denominator's), and one of them is the spec's
                // metric (and one the denominator).
                let denominator = spec
                    .denominator_metric
                    .as_deref()
                    .map(|metric| (metric, spec.denominator_statistic.as_deref()));
                for stat in &stats {
                    assert_eq!(
                        number(&stat["Period"]),
                        spec.period_seconds,
                        "{context}: MetricStat.Period"
                    );
                    let name = stat["Metric"]["MetricName"].as_str();
                    let expected = match denominator {
                        Some((metric, statistic)) if name == Some(metric) => {
                            statistic.expect("denominatorStatistic")
                        }
                        _ => spec.statistic.as_str(),
                    };
                    assert_eq!(
                        text(&stat["Stat"]),
                        expected,
                        "{context}: MetricStat.Stat of {name:?}"
                    );
                }
                let names: BTreeSet<&str> = stats
                    .iter()
                    .filter_map(|stat| stat["Metric"]["MetricName"].as_str())
                    .collect();
                assert!(
                    names.contains(spec.metric.as_str()),
                    "{context}: no input metric is {}",
                    spec.metric
                );
                if let Some((metric, _)) = denominator {
                    assert!(names.contains(metric), "{context}: no denominator {metric}");
                }
                assert!(
                    properties["Period"].is_null(),
                    "{context}: Period beside Metrics"
                );
            }
            // A clickable link: `Runbook: ${RunbookBaseUrl}/<runbook>.md` in a !Sub.
            let (tag, description) = tagged(&properties["AlarmDescription"])
                .unwrap_or_else(|| panic!("{context}: AlarmDescription must be a !Sub"));
            assert_eq!(tag, "Sub", "{context}");
            let description = text(description);
            let link = format!(
                "Runbook: ${{RunbookBaseUrl}}/{}",
                spec.runbook
                    .strip_prefix("runbooks/")
                    .expect("runbooks live in runbooks/")
            );
            assert!(
                description.contains(&link),
                "{context}: the description must link its runbook ({link}): {description}"
            );
            assert!(
                description.len() <= 1024 - 100,
                "{context}: too long with the URL"
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

/// Every metric an alarm reads: `(namespace, metric name, dimensions)` of a single-metric alarm
/// or of each MetricStat of a metric-math one.
fn alarm_metrics(properties: &Value) -> Vec<(&str, &Value, &Value)> {
    let stats = metric_stats(properties);
    if stats.is_empty() {
        vec![(
            text(&properties["Namespace"]),
            &properties["MetricName"],
            &properties["Dimensions"],
        )]
    } else {
        stats
            .into_iter()
            .map(|stat| {
                let metric = &stat["Metric"];
                (
                    text(&metric["Namespace"]),
                    &metric["MetricName"],
                    &metric["Dimensions"],
                )
            })
            .collect()
    }
}

/// The functions' EMF metrics (namespace OrderService) carry a `Stack` dimension (`STACK_NAME`,
/// which the template sets to the stack's name): every alarm on them reads this stack's series,
/// and a per-function alarm also its function's `Operation`.
#[test]
fn alarms_on_the_emf_metrics_read_this_stacks_series() {
    let template = template();
    assert!(
        is_ref(
            &template["Globals"]["Function"]["Environment"]["Variables"]["STACK_NAME"],
            "AWS::StackName"
        ),
        "Globals must set STACK_NAME: !Ref AWS::StackName"
    );
    let functions = workspace_functions();
    let mut emf_alarms = 0;
    for (id, alarm) in resources(&template, "AWS::CloudWatch::Alarm") {
        let suffix = alarm_suffix(&id, alarm);
        let function = functions
            .iter()
            .find(|function| suffix.ends_with(&format!("-{function}")));
        for (namespace, metric, dimensions) in alarm_metrics(&alarm["Properties"]) {
            if namespace != "OrderService" {
                continue;
            }
            emf_alarms += 1;
            let dimensions: BTreeMap<&str, &Value> = dimensions
                .as_sequence()
                .unwrap_or_else(|| panic!("{id}: {metric:?} has no dimensions: it reads no stack"))
                .iter()
                .map(|dimension| (text(&dimension["Name"]), &dimension["Value"]))
                .collect();
            assert!(
                dimensions
                    .get("Stack")
                    .is_some_and(|value| is_ref(value, "AWS::StackName")),
                "{id}: {metric:?} must read Stack = !Ref AWS::StackName: {dimensions:?}"
            );
            if let Some(function) = function {
                assert_eq!(
                    dimensions.get("Operation").and_then(|value| value.as_str()),
                    Some(function.as_str()),
                    "{id}: {metric:?} must read its function's Operation"
                );
                assert_eq!(dimensions.len(), 2, "{id}: {dimensions:?}");
            } else {
                assert_eq!(dimensions.len(), 1, "{id}: {dimensions:?}");
            }
        }
    }
    assert!(emf_alarms > 0, "no alarm reads the EMF metrics");
}

/// Each function's canary rolls back on its own crashes (Lambda Errors), on its own share of 5xx
/// answers (the EMF rate alarm, which a failing canary of that function moves; AWS only, as
/// metric math) and on the API-wide 5xx rate.
#[test]
fn every_canary_rolls_back_on_its_own_server_error_rate() {
    let template = template();
    let binaries = function_binaries(&template);
    let alarms = resources(&template, "AWS::CloudWatch::Alarm");
    let named = |suffix: &str| -> String {
        let found: Vec<&String> = alarms
            .iter()
            .filter(|(id, alarm)| alarm_suffix(id, alarm) == suffix)
            .map(|(id, _)| id)
            .collect();
        assert_eq!(found.len(), 1, "one alarm named <stack>-{suffix}");
        found[0].clone()
    };
    // Every function deploys through a canary (Globals), with alarms of its own.
    let canary = &template["Globals"]["Function"]["DeploymentPreference"];
    assert!(is_ref(&canary["Enabled"], "CanaryDeployments"));
    assert_eq!(canary["Type"].as_str(), Some("Canary10Percent5Minutes"));
    assert!(canary["Alarms"].is_null(), "alarms are each function's own");
    for (id, function) in resources(&template, "AWS::Serverless::Function") {
        let binary = &binaries[&id];
        let preference = &function["Properties"]["DeploymentPreference"];
        for inherited in ["Enabled", "Type"] {
            assert!(
                preference[inherited].is_null(),
                "{id}: {inherited} is Globals'"
            );
        }
        let (tag, branches) = tagged(&preference["Alarms"])
            .unwrap_or_else(|| panic!("{id}: Alarms must be !If [OnAws, [...], [...]]"));
        assert_eq!(tag, "If", "{id}");
        assert_eq!(branches[0].as_str(), Some("OnAws"), "{id}");
        let list = |value: &Value| -> Vec<String> {
            value
                .as_sequence()
                .expect("a list of alarms")
                .iter()
                .map(|alarm| ref_target(alarm).to_owned())
                .collect()
        };
        let errors = named(&format!("lambda-errors-{binary}"));
        let rate = named(&format!("function-5xx-rate-{binary}"));
        let api = named("api-5xx-rate");
        assert_eq!(
            list(&branches[1]),
            [errors.clone(), rate.clone(), api.clone()],
            "{id} on AWS"
        );
        assert_eq!(list(&branches[2]), [errors, api], "{id} under an emulator");
        assert_eq!(condition(alarms[&rate]), Some("OnAws"), "{rate}");
        let properties = &alarms[&rate]["Properties"];
        assert_eq!(
            properties["TreatMissingData"].as_str(),
            Some("notBreaching"),
            "{rate}"
        );
        // Short enough to fire inside the canary's 5 minutes.
        let minutes = number(&properties["DatapointsToAlarm"])
            * metric_stats(properties)
                .iter()
                .map(|stat| number(&stat["Period"]))
                .fold(0.0, f64::max)
            / 60.0;
        assert!(minutes <= 3.0, "{rate}: needs {minutes} breaching minutes");
    }
}

/// The dashboard body is JSON (with the alarms' ARNs or without, as on an emulator) and reads
/// the EMF metrics of this stack only.
#[test]
fn the_dashboard_is_json_and_reads_this_stacks_series() {
    let template = template();
    let dashboards = resources(&template, "AWS::CloudWatch::Dashboard");
    let dashboard = dashboards.values().next().expect("a dashboard");
    let (tag, arguments) = tagged(&dashboard["Properties"]["DashboardBody"]).expect("!Sub");
    assert_eq!(tag, "Sub");
    let body = text(&arguments[0]);
    for line in body.lines().filter(|line| line.contains("OrderService")) {
        assert!(
            line.contains("\"Stack\", \"${AWS::StackName}\"")
                || line.contains("{OrderService,Stack,")
                    && line.contains("Stack=\\\"${AWS::StackName}\\\""),
            "a dashboard metric reads every stack's series: {line}"
        );
    }
    let variables = &arguments[1];
    let (_, rate_alarms) = tagged(&variables["FunctionRateAlarms"]).expect("an If");
    let with_alarms = text(tagged(&rate_alarms[1]).expect("a Sub").1);
    for alarms in [with_alarms, ""] {
        let mut rendered = body.replace("${FunctionRateAlarms}", alarms);
        while let Some(start) = rendered.find("${") {
            let end = start + rendered[start..].find('}').expect("closing brace");
            rendered.replace_range(start..=end, "x");
        }
        let parsed: serde_json::Value = serde_json::from_str(&rendered)
            .unwrap_or_else(|error| panic!("the dashboard body is no JSON: {error}\n{rendered}"));
        assert!(parsed["widgets"].is_array());
    }
}

/// The runbook links' base is a parameter without a default (a placeholder would link every
/// alarm nowhere: CloudFormation refuses a deployment that does not name it) and without a
/// trailing slash; every link names a file of runbooks/.
#[test]
fn runbook_links_are_built_from_one_required_parameter() {
    let template = template();
    let parameter = &template["Parameters"]["RunbookBaseUrl"];
    assert!(
        parameter["Default"].is_null(),
        "RunbookBaseUrl has a default: {:?}",
        parameter["Default"]
    );
    assert!(text(&parameter["AllowedPattern"]).ends_with("[^/\\s]$"));
    for (id, alarm) in resources(&template, "AWS::CloudWatch::Alarm") {
        let (tag, description) = tagged(&alarm["Properties"]["AlarmDescription"])
            .unwrap_or_else(|| panic!("{id}: AlarmDescription must be a !Sub"));
        assert_eq!(tag, "Sub", "{id}");
        let description = text(description);
        let start = description
            .find("${RunbookBaseUrl}/")
            .unwrap_or_else(|| panic!("{id}: no runbook link: {description}"));
        let runbook = description[start + "${RunbookBaseUrl}/".len()..]
            .split_whitespace()
            .next()
            .expect("a runbook");
        assert!(
            root().join("runbooks").join(runbook).is_file(),
            "{id}: runbooks/{runbook} does not exist"
        );
    }
}

/// AlarmEmail has no default either: a deployment names the address that hears the alarms, or
/// says `none` (only Slack or its own subscriptions to the topic then hear them), and only an
/// address makes a subscription.
#[test]
fn the_alarm_email_is_a_decision_of_every_deployment() {
    let template = template();
    let parameter = &template["Parameters"]["AlarmEmail"];
    assert!(parameter["Default"].is_null(), "{parameter:?}");
    assert!(
        text(&parameter["AllowedPattern"]).starts_with("^(none|"),
        "{parameter:?}"
    );
    let (tag, negated) = tagged(&template["Conditions"]["HasAlarmEmail"]).expect("HasAlarmEmail");
    assert_eq!(tag, "Not");
    assert!(is_equals(&negated[0], "AlarmEmail", "none"));
    let subscriptions = resources(&template, "AWS::SNS::Subscription");
    assert_eq!(subscriptions.len(), 1);
    let subscription = subscriptions.values().next().expect("a subscription");
    assert_eq!(condition(subscription), Some("HasAlarmEmail"));
    assert!(is_ref(
        &subscription["Properties"]["Endpoint"],
        "AlarmEmail"
    ));
    assert_eq!(
        subscription["Properties"]["Protocol"].as_str(),
        Some("email")
    );
}

/// Optional Slack: with both SlackWorkspaceId and SlackChannelId (a rule refuses one without
/// the other), an AWS Chatbot channel subscribed to the alarm topic, whose role and guardrail
/// allow reading CloudWatch and nothing else. Nothing of it exists by default.
#[test]
fn slack_gets_the_alarms_and_may_only_read_cloudwatch() {
    let template = template();
    for parameter in ["SlackWorkspaceId", "SlackChannelId"] {
        assert_eq!(
            template["Parameters"][parameter]["Default"].as_str(),
            Some(""),
            "{parameter} is off by default"
        );
    }
    let (tag, terms) = tagged(&template["Conditions"]["HasSlack"]).expect("HasSlack");
    assert_eq!(tag, "And");
    assert_eq!(terms.as_sequence().map(Vec::len), Some(2));
    let refused = rules(&template).into_values().any(|rule| {
        matches!(tagged(&rule["RuleCondition"]), Some((tag, _)) if tag == "Or")
            && serde_yaml::to_string(rule).is_ok_and(|text| {
                text.contains("SlackWorkspaceId") && text.contains("SlackChannelId")
            })
    });
    assert!(
        refused,
        "no rule refuses one of SlackWorkspaceId/SlackChannelId without the other"
    );

    let read_only = "arn:${AWS::Partition}:iam::aws:policy/CloudWatchReadOnlyAccess";
    let only_read_only = |place: &str, list: &Value| {
        let policies: Vec<String> = list
            .as_sequence()
            .unwrap_or_else(|| panic!("{place} is a list"))
            .iter()
            .map(arn_text)
            .collect();
        assert_eq!(policies, [read_only], "{place}");
    };
    let channels = resources(&template, "AWS::Chatbot::SlackChannelConfiguration");
    assert_eq!(channels.len(), 1, "one Slack channel configuration");
    let (id, channel) = channels.into_iter().next().expect("a channel");
    assert_eq!(condition(channel), Some("HasSlack"), "{id}");
    let properties = &channel["Properties"];
    assert!(
        is_ref(&properties["SlackWorkspaceId"], "SlackWorkspaceId"),
        "{id}"
    );
    assert!(
        is_ref(&properties["SlackChannelId"], "SlackChannelId"),
        "{id}"
    );
    let topics: Vec<&str> = properties["SnsTopicArns"]
        .as_sequence()
        .expect("SnsTopicArns")
        .iter()
        .map(ref_target)
        .collect();
    assert_eq!(topics, ["AlarmTopic"], "{id}");
    // Without guardrails Chatbot applies AdministratorAccess.
    only_read_only(
        &format!("{id}.GuardrailPolicies"),
        &properties["GuardrailPolicies"],
    );
    let (tag, role) = tagged(&properties["IamRoleArn"]).expect("!GetAtt <role>.Arn");
    assert_eq!(tag, "GetAtt", "{id}");
    let role_id = text(role).strip_suffix(".Arn").expect("an Arn");
    let role = &template["Resources"][role_id];
    assert_eq!(role["Type"].as_str(), Some("AWS::IAM::Role"), "{role_id}");
    assert_eq!(condition(role), Some("HasSlack"), "{role_id}");
    let role = &role["Properties"];
    for statement in role["AssumeRolePolicyDocument"]["Statement"]
        .as_sequence()
        .expect("trust statements")
    {
        assert_eq!(
            statement["Principal"]["Service"].as_str(),
            Some("chatbot.amazonaws.com"),
            "{role_id}: only Chatbot may assume it"
        );
    }
    assert!(role["Policies"].is_null(), "{role_id}: no inline policies");
    only_read_only(
        &format!("{role_id}.ManagedPolicyArns"),
        &role["ManagedPolicyArns"],
    );
}
