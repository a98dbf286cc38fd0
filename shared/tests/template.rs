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

/// The condition on a resource (its `Condition` attribute), if any.
fn condition(resource: &Value) -> Option<&str> {
    resource["Condition"].as_str()
}

/// The function whose `live` alias `reference` names (`CreateOrderFunctionAliaslive`, the
/// logical id SAM gives the AWS::Lambda::Alias of AutoPublishAlias).
fn alias_function(reference: &str, binaries: &BTreeMap<String, String>) -> String {
    let logical_id = reference
        .strip_suffix("Aliaslive")
        .unwrap_or_else(|| panic!("the integration must target the live alias, not {reference}"));
    binaries
        .get(logical_id)
        .unwrap_or_else(|| panic!("{reference} is the alias of {logical_id}, which is no function"))
        .clone()
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
    alias_function(reference, binaries)
}

/// The REST API (`Api`, an AWS::Serverless::Api): there is exactly one, for ApiType=rest.
fn rest_api(template: &Value) -> &Value {
    let apis = resources(template, "AWS::Serverless::Api");
    assert_eq!(
        apis.keys().collect::<Vec<_>>(),
        ["Api"],
        "one REST API, named Api"
    );
    apis["Api"]
}

/// The paths of the REST API's explicit DefinitionBody.
fn definition_routes(template: &Value) -> BTreeSet<Route> {
    let binaries = function_binaries(template);
    let body = &rest_api(template)["Properties"]["DefinitionBody"];
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

/// The logical id a `!Ref <id>` names.
fn ref_target(value: &Value) -> &str {
    match tagged(value) {
        Some((tag, target)) if tag == "Ref" => text(target),
        _ => panic!("expected !Ref <id>, got {value:?}"),
    }
}

/// The HTTP API's routes: each AWS::ApiGatewayV2::Route's RouteKey and the function behind the
/// AWS_PROXY integration (payload 2.0) its Target names. Every route and integration belongs
/// to `HttpApi` and exists only for ApiType=http.
fn http_api_routes(template: &Value) -> BTreeSet<Route> {
    let binaries = function_binaries(template);
    let integrations = resources(template, "AWS::ApiGatewayV2::Integration");
    let mut routes = BTreeSet::new();
    for (id, route) in resources(template, "AWS::ApiGatewayV2::Route") {
        let properties = &route["Properties"];
        assert_eq!(condition(route), Some("UseHttpApi"), "{id}");
        assert_eq!(ref_target(&properties["ApiId"]), "HttpApi", "{id}");
        let (method, path) = text(&properties["RouteKey"])
            .split_once(' ')
            .unwrap_or_else(|| panic!("{id}: RouteKey is not `METHOD /path`"));
        let (tag, target) = tagged(&properties["Target"])
            .unwrap_or_else(|| panic!("{id}: Target must be !Sub \"integrations/${{<id>}}\""));
        assert_eq!(tag, "Sub", "{id}");
        let integration_id = text(target)
            .strip_prefix("integrations/${")
            .and_then(|rest| rest.strip_suffix('}'))
            .unwrap_or_else(|| panic!("{id}: Target {target:?} names no integration"));
        let integration = integrations.get(integration_id).unwrap_or_else(|| {
            panic!("{id}: {integration_id} is no AWS::ApiGatewayV2::Integration")
        });
        let integration_properties = &integration["Properties"];
        assert_eq!(
            condition(integration),
            Some("UseHttpApi"),
            "{integration_id}"
        );
        assert_eq!(
            ref_target(&integration_properties["ApiId"]),
            "HttpApi",
            "{integration_id}"
        );
        assert_eq!(
            integration_properties["IntegrationType"].as_str(),
            Some("AWS_PROXY"),
            "{integration_id}"
        );
        assert_eq!(
            integration_properties["PayloadFormatVersion"].as_str(),
            Some("2.0"),
            "{integration_id}: the functions' events are payload 2.0"
        );
        let function = alias_function(
            ref_target(&integration_properties["IntegrationUri"]),
            &binaries,
        );
        let route = (method.to_owned(), path.to_owned(), function);
        assert!(routes.insert(route.clone()), "{route:?} is declared twice");
    }
    routes
}

/// What may invoke which function: every AWS::Lambda::Permission, as (METHOD, path pattern,
/// function). Each lets API Gateway invoke a `live` alias from this stack's API, whichever
/// flavour it is, on one route: `.../${ApiId}/*/<METHOD>/<path with * for parameters>`.
fn permission_routes(template: &Value) -> BTreeSet<Route> {
    let binaries = function_binaries(template);
    let mut routes = BTreeSet::new();
    for (id, permission) in resources(template, "AWS::Lambda::Permission") {
        let properties = &permission["Properties"];
        assert_eq!(condition(permission), None, "{id}: both flavours need it");
        assert_eq!(
            properties["Action"].as_str(),
            Some("lambda:InvokeFunction"),
            "{id}"
        );
        assert_eq!(
            properties["Principal"].as_str(),
            Some("apigateway.amazonaws.com"),
            "{id}"
        );
        let function = alias_function(ref_target(&properties["FunctionName"]), &binaries);
        let (tag, arguments) = tagged(&properties["SourceArn"])
            .unwrap_or_else(|| panic!("{id}: SourceArn must be a !Sub"));
        assert_eq!(tag, "Sub", "{id}");
        let arn = text(&arguments[0]);
        let pattern = arn
            .strip_prefix(
                "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${ApiId}/*/",
            )
            .unwrap_or_else(|| panic!("{id}: SourceArn {arn} is not this stack's API, any stage"));
        let (method, path) = pattern
            .split_once('/')
            .unwrap_or_else(|| panic!("{id}: {pattern} names no method"));
        let (tag, branches) = tagged(&arguments[1]["ApiId"])
            .unwrap_or_else(|| panic!("{id}: ApiId must be !If [UseHttpApi, ...]"));
        assert_eq!(tag, "If", "{id}");
        assert_eq!(branches[0].as_str(), Some("UseHttpApi"), "{id}");
        assert_eq!(ref_target(&branches[1]), "HttpApi", "{id}");
        assert_eq!(ref_target(&branches[2]), "Api", "{id}");
        let route = (method.to_owned(), format!("/{path}"), function);
        assert!(routes.insert(route.clone()), "{route:?} is permitted twice");
    }
    routes
}

/// A route with its path parameters as `*`, as an execute-api ARN matches them.
fn starred(routes: &BTreeSet<Route>) -> BTreeSet<Route> {
    routes
        .iter()
        .map(|(method, path, function)| {
            let path = path
                .split('/')
                .map(|segment| {
                    if segment.starts_with('{') {
                        "*"
                    } else {
                        segment
                    }
                })
                .collect::<Vec<_>>()
                .join("/");
            (method.clone(), path, function.clone())
        })
        .collect()
}

#[test]
fn routes_of_the_template_equal_the_router_table() {
    let template = template();
    let router = router();
    assert_eq!(
        http_api_routes(&template),
        router,
        "HTTP API routes differ from the Cargo.toml router"
    );
    assert_eq!(
        definition_routes(&template),
        router,
        "REST Api DefinitionBody paths differ from the Cargo.toml router"
    );
    assert_eq!(
        permission_routes(&template),
        starred(&router),
        "the Lambda permissions differ from the Cargo.toml router"
    );
    // No SAM events: they cannot be conditional, and they would add a second API or permission.
    for (id, function) in resources(&template, "AWS::Serverless::Function") {
        assert!(
            function["Properties"]["Events"].is_null(),
            "{id} has Events: routes are the APIs' and permissions are explicit"
        );
    }
    // Every function of the router is built by the template under its own name.
    let binaries: BTreeSet<String> = function_binaries(&template).into_values().collect();
    assert_eq!(binaries, workspace_functions());
}

/// `ApiType` picks the flavour: http (the default) or rest, and each flavour's resources exist
/// only for it, so a stack has exactly one API.
#[test]
fn one_api_per_stack_chosen_by_api_type_http_by_default() {
    let template = template();
    let parameter = &template["Parameters"]["ApiType"];
    assert_eq!(parameter["Default"].as_str(), Some("http"));
    let allowed: Vec<&str> = parameter["AllowedValues"]
        .as_sequence()
        .expect("ApiType has AllowedValues")
        .iter()
        .map(text)
        .collect();
    assert_eq!(allowed, ["http", "rest"]);
    let conditions = &template["Conditions"];
    let (tag, pair) = tagged(&conditions["UseHttpApi"]).expect("UseHttpApi");
    assert!(tag == "Equals" && is_ref(&pair[0], "ApiType") && pair[1].as_str() == Some("http"));
    // The negation, so that every !If [UseHttpApi, HttpApi, Api] names an API that exists.
    let (tag, negated) = tagged(&conditions["UseRestApi"]).expect("UseRestApi");
    assert_eq!(tag, "Not");
    assert!(
        matches!(tagged(&negated[0]), Some((tag, name)) if tag == "Condition" && name.as_str() == Some("UseHttpApi"))
    );

    assert_eq!(condition(rest_api(&template)), Some("UseRestApi"));
    for kind in [
        "AWS::ApiGatewayV2::Api",
        "AWS::ApiGatewayV2::Stage",
        "AWS::ApiGatewayV2::Integration",
        "AWS::ApiGatewayV2::Route",
    ] {
        for (id, resource) in resources(&template, kind) {
            assert_eq!(condition(resource), Some("UseHttpApi"), "{id} ({kind})");
        }
    }
    assert_eq!(
        resources(&template, "AWS::ApiGatewayV2::Api")
            .keys()
            .collect::<Vec<_>>(),
        ["HttpApi"]
    );
    for output in ["ApiUrl", "ApiId"] {
        let (tag, branches) = tagged(&template["Outputs"][output]["Value"])
            .unwrap_or_else(|| panic!("Outputs.{output} must be !If [UseHttpApi, ...]"));
        assert_eq!(tag, "If", "{output}");
        assert_eq!(branches[0].as_str(), Some("UseHttpApi"), "{output}");
    }
    // The URL includes the stage in both flavours (`<ApiUrl>/users/...`).
    let url = &template["Outputs"]["ApiUrl"]["Value"];
    let (_, branches) = tagged(url).expect("ApiUrl");
    for branch in [&branches[1], &branches[2]] {
        let (tag, value) = tagged(branch).expect("a !Sub");
        assert_eq!(tag, "Sub");
        assert!(text(value).ends_with("/v1"), "{value:?}");
    }
    assert_eq!(
        template["Outputs"]["ApiStage"]["Value"].as_str(),
        Some("v1")
    );
}

/// Both flavours serve stage v1 with the stage-wide throttle of ApiThrottleRate/Burst and JSON
/// access logs to the same log group.
#[test]
fn both_flavours_serve_stage_v1_throttled_with_json_access_logs() {
    let template = template();
    let json_format = |place: &str, format: &Value| {
        let parsed: serde_json::Value = serde_json::from_str(text(format))
            .unwrap_or_else(|error| panic!("{place}: the access log format is no JSON: {error}"));
        assert!(parsed["requestId"].is_string(), "{place}: {parsed}");
        assert!(parsed["status"].is_string(), "{place}: {parsed}");
    };
    let log_group = |place: &str, destination: &Value| {
        let (tag, target) = tagged(destination).expect("!GetAtt");
        assert_eq!(tag, "GetAtt", "{place}");
        assert_eq!(text(target), "ApiAccessLogGroup.Arn", "{place}");
    };

    let rest = &rest_api(&template)["Properties"];
    assert_eq!(rest["StageName"].as_str(), Some("v1"));
    let settings = &rest["MethodSettings"][0];
    assert!(is_ref(&settings["ThrottlingRateLimit"], "ApiThrottleRate"));
    assert!(is_ref(
        &settings["ThrottlingBurstLimit"],
        "ApiThrottleBurst"
    ));
    json_format("REST", &rest["AccessLogSetting"]["Format"]);
    log_group("REST", &rest["AccessLogSetting"]["DestinationArn"]);

    let stages = resources(&template, "AWS::ApiGatewayV2::Stage");
    assert_eq!(stages.len(), 1, "one HTTP API stage");
    let stage = &stages.values().next().expect("a stage")["Properties"];
    assert_eq!(ref_target(&stage["ApiId"]), "HttpApi");
    assert_eq!(stage["StageName"].as_str(), Some("v1"));
    assert_eq!(stage["AutoDeploy"].as_bool(), Some(true));
    let defaults = &stage["DefaultRouteSettings"];
    assert!(is_ref(&defaults["ThrottlingRateLimit"], "ApiThrottleRate"));
    assert!(is_ref(
        &defaults["ThrottlingBurstLimit"],
        "ApiThrottleBurst"
    ));
    json_format("HTTP", &stage["AccessLogSettings"]["Format"]);
    log_group("HTTP", &stage["AccessLogSettings"]["DestinationArn"]);
}

#[test]
fn every_route_is_guarded_by_the_same_conditional_authorizer() {
    let template = template();
    let body = &rest_api(&template)["Properties"]["DefinitionBody"];
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

    // HTTP API: JWT on every route in apigateway mode, none in jwt mode (the functions verify).
    let authorizers = resources(&template, "AWS::ApiGatewayV2::Authorizer");
    assert_eq!(
        authorizers.keys().collect::<Vec<_>>(),
        ["HttpApiAuthorizer"]
    );
    let authorizer = authorizers["HttpApiAuthorizer"];
    assert_eq!(condition(authorizer), Some("UseHttpApiAuthorizer"));
    let (tag, terms) = tagged(&template["Conditions"]["UseHttpApiAuthorizer"]).expect("condition");
    assert_eq!(tag, "And");
    let terms: BTreeSet<&str> = terms
        .as_sequence()
        .expect("terms")
        .iter()
        .map(|term| text(tagged(term).expect("!Condition").1))
        .collect();
    assert_eq!(terms, BTreeSet::from(["UseHttpApi", "UseApiGatewayAuth"]));
    let properties = &authorizer["Properties"];
    assert_eq!(ref_target(&properties["ApiId"]), "HttpApi");
    assert_eq!(properties["AuthorizerType"].as_str(), Some("JWT"));
    assert_eq!(
        properties["IdentitySource"][0].as_str(),
        Some("$request.header.Authorization")
    );
    assert!(!properties["JwtConfiguration"]["Issuer"].is_null());
    assert_eq!(
        properties["JwtConfiguration"]["Audience"]
            .as_sequence()
            .map(Vec::len),
        Some(1),
        "the authorizer checks one audience"
    );
    for (id, route) in resources(&template, "AWS::ApiGatewayV2::Route") {
        let properties = &route["Properties"];
        let (tag, branches) = tagged(&properties["AuthorizationType"])
            .unwrap_or_else(|| panic!("{id}: AuthorizationType must be conditional"));
        assert_eq!(tag, "If", "{id}");
        assert_eq!(branches[0].as_str(), Some("UseApiGatewayAuth"), "{id}");
        assert_eq!(branches[1].as_str(), Some("JWT"), "{id}");
        assert_eq!(branches[2].as_str(), Some("NONE"), "{id}");
        let (tag, branches) = tagged(&properties["AuthorizerId"])
            .unwrap_or_else(|| panic!("{id}: AuthorizerId must be conditional"));
        assert_eq!(tag, "If", "{id}");
        assert_eq!(branches[0].as_str(), Some("UseApiGatewayAuth"), "{id}");
        assert_eq!(ref_target(&branches[1]), "HttpApiAuthorizer", "{id}");
        assert_eq!(ref_target(&branches[2]), "AWS::NoValue", "{id}");
    }
}

/// The parameters a rule asserts to be non-empty (`!Not [!Equals [!Ref <parameter>, ""]]`).
fn asserted_non_empty(rule: &Value) -> BTreeSet<String> {
    rule["Assertions"]
        .as_sequence()
        .expect("Assertions")
        .iter()
        .filter_map(|assertion| {
            let (not, inner) = tagged(&assertion["Assert"])?;
            let (equals, pair) = tagged(&inner[0])?;
            let (reference, parameter) = tagged(&pair[0])?;
            (not == "Not"
                && equals == "Equals"
                && reference == "Ref"
                && pair[1].as_str() == Some(""))
            .then(|| text(parameter).to_owned())
        })
        .collect()
}

/// Whether `condition` is `!Equals [!Ref <parameter>, <value>]`.
fn is_equals(condition: &Value, parameter: &str, value: &str) -> bool {
    matches!(tagged(condition), Some((tag, pair)) if tag == "Equals"
        && is_ref(&pair[0], parameter) && pair[1].as_str() == Some(value))
}

/// Auth fails closed: in apigateway mode the functions refuse to start without AUTH_AUDIENCE,
/// so the template always passes it, and a rule refuses an apigateway deployment without an
/// audience and an issuer (unless the stack creates the Cognito pool they come from).
#[test]
fn apigateway_mode_requires_an_audience_and_the_functions_always_get_it() {
    let template = template();
    let variables = &template["Globals"]["Function"]["Environment"]["Variables"];
    for name in ["AUTH_MODE", "AUTH_ISSUER", "AUTH_AUDIENCE"] {
        let value = &variables[name];
        assert!(!value.is_null(), "Globals pass no {name}");
        let mut names = BTreeSet::new();
        named_by_all(value, &mut names);
        assert!(
            !names.contains("AWS::NoValue"),
            "{name} must be set in every mode: {value:?}"
        );
    }
    let mut guarded = BTreeSet::new();
    for (name, rule) in template["Rules"].as_mapping().expect("Rules") {
        let condition = &rule["RuleCondition"];
        let in_apigateway_mode = is_equals(condition, "AuthMode", "apigateway")
            || matches!(tagged(condition), Some((tag, terms)) if tag == "And"
            && terms.as_sequence().is_some_and(|terms| {
                terms.iter().any(|term| is_equals(term, "AuthMode", "apigateway"))
                    && terms.iter().all(|term| {
                        is_equals(term, "AuthMode", "apigateway")
                            || is_equals(term, "CreateUserPool", "false")
                    })
            }));
        if in_apigateway_mode {
            let asserted = asserted_non_empty(rule);
            assert!(!asserted.is_empty(), "{name:?} asserts nothing non-empty");
            guarded.extend(asserted);
        }
    }
    for parameter in ["AuthIssuer", "AuthAudience"] {
        assert!(
            guarded.contains(parameter),
            "no rule refuses AuthMode=apigateway with an empty {parameter} ({guarded:?})"
        );
    }
}

/// `CreateUserPool=true` (off by default) creates a Cognito pool and a public app client, and
/// the authorizer (both flavours) and the functions take their issuer and audience from them;
/// the functions then read the user from `username` (HTTP API: access tokens) or
/// `cognito:username` (REST API: ID tokens), because Cognito's `sub` is a UUID, not `user-N`.
#[test]
fn an_optional_cognito_pool_feeds_the_authorizer_and_the_functions() {
    let template = template();
    let parameter = &template["Parameters"]["CreateUserPool"];
    assert_eq!(parameter["Default"].as_str(), Some("false"));
    assert!(is_equals(
        &template["Conditions"]["CreateCognitoUserPool"],
        "CreateUserPool",
        "true"
    ));
    let pools = resources(&template, "AWS::Cognito::UserPool");
    let clients = resources(&template, "AWS::Cognito::UserPoolClient");
    assert_eq!(pools.keys().collect::<Vec<_>>(), ["UserPool"]);
    assert_eq!(clients.keys().collect::<Vec<_>>(), ["UserPoolClient"]);
    assert_eq!(condition(pools["UserPool"]), Some("CreateCognitoUserPool"));
    let client = clients["UserPoolClient"];
    assert_eq!(condition(client), Some("CreateCognitoUserPool"));
    let client = &client["Properties"];
    assert_eq!(ref_target(&client["UserPoolId"]), "UserPool");
    assert_eq!(
        client["GenerateSecret"].as_bool(),
        Some(false),
        "a public client"
    );
    let flows: BTreeSet<&str> = client["ExplicitAuthFlows"]
        .as_sequence()
        .expect("ExplicitAuthFlows")
        .iter()
        .map(text)
        .collect();
    assert_eq!(
        flows,
        BTreeSet::from([
            "ALLOW_USER_PASSWORD_AUTH",
            "ALLOW_ADMIN_USER_PASSWORD_AUTH",
            "ALLOW_REFRESH_TOKEN_AUTH"
        ])
    );
    for output in ["UserPoolId", "UserPoolClientId"] {
        assert_eq!(
            template["Outputs"][output]["Condition"].as_str(),
            Some("CreateCognitoUserPool"),
            "{output}"
        );
    }

    // Issuer and audience: the pool's when created, the parameters' otherwise.
    let variables = &template["Globals"]["Function"]["Environment"]["Variables"];
    let from_pool = |value: &Value, parameter: &str| {
        let (tag, branches) = tagged(value).unwrap_or_else(|| panic!("{value:?}"));
        assert_eq!(tag, "If", "{value:?}");
        assert_eq!(branches[0].as_str(), Some("CreateCognitoUserPool"));
        assert!(is_ref(&branches[2], parameter), "{value:?}");
        let mut names = BTreeSet::new();
        named_by_all(&branches[1], &mut names);
        assert!(
            names.contains("UserPool") || names.contains("UserPoolClient"),
            "{value:?}"
        );
    };
    from_pool(&variables["AUTH_ISSUER"], "AuthIssuer");
    from_pool(&variables["AUTH_AUDIENCE"], "AuthAudience");
    assert!(is_ref(
        &tagged(&variables["AUTH_AUDIENCE"]).expect("If").1[1],
        "UserPoolClient"
    ));
    // The HTTP API's authorizer trusts exactly what the functions check.
    let jwt = &template["Resources"]["HttpApiAuthorizer"]["Properties"]["JwtConfiguration"];
    assert_eq!(jwt["Issuer"], variables["AUTH_ISSUER"]);
    assert_eq!(jwt["Audience"][0], variables["AUTH_AUDIENCE"]);
    // The REST API's Cognito authorizer names the created pool.
    let provider = &rest_api(&template)["Properties"]["DefinitionBody"]["securityDefinitions"];
    let (_, branches) = tagged(provider).expect("securityDefinitions is an If");
    let arns = &branches[1]["CognitoAuthorizer"]["x-amazon-apigateway-authorizer"]["providerARNs"];
    let (tag, choice) = tagged(&arns[0]).expect("providerARNs[0] is an If");
    assert_eq!(tag, "If");
    assert_eq!(choice[0].as_str(), Some("CreateCognitoUserPool"));
    assert!(
        matches!(tagged(&choice[1]), Some((tag, target)) if tag == "GetAtt" && text(target) == "UserPool.Arn")
    );

    // The claim that names the user.
    let claim = &variables["AUTH_USER_CLAIM"];
    let (tag, branches) = tagged(claim).expect("AUTH_USER_CLAIM is an If");
    assert_eq!(tag, "If");
    assert_eq!(branches[0].as_str(), Some("HasAuthUserClaim"));
    assert!(is_ref(&branches[1], "AuthUserClaim"));
    let (tag, derived) = tagged(&branches[2]).expect("the derived claim");
    assert_eq!(tag, "If");
    assert_eq!(derived[0].as_str(), Some("CreateCognitoUserPool"));
    assert_eq!(derived[2].as_str(), Some("sub"));
    let (tag, by_flavour) = tagged(&derived[1]).expect("by flavour");
    assert_eq!(tag, "If");
    assert_eq!(by_flavour[0].as_str(), Some("UseHttpApi"));
    assert_eq!(by_flavour[1].as_str(), Some("username"));
    assert_eq!(by_flavour[2].as_str(), Some("cognito:username"));

    // A pool in jwt mode would issue tokens nothing accepts: refused.
    let refused = template["Rules"]
        .as_mapping()
        .expect("Rules")
        .values()
        .any(|rule| {
            is_equals(&rule["RuleCondition"], "CreateUserPool", "true")
                && rule["Assertions"].as_sequence().is_some_and(|assertions| {
                    assertions
                        .iter()
                        .any(|assertion| is_equals(&assertion["Assert"], "AuthMode", "apigateway"))
                })
        });
    assert!(
        refused,
        "no rule ties CreateUserPool=true to AuthMode apigateway"
    );
}

/// The parameters a condition depends on, through nested `!Condition`s too.
fn condition_parameters(template: &Value, name: &str, found: &mut BTreeSet<String>) {
    fn walk(template: &Value, value: &Value, found: &mut BTreeSet<String>) {
        if let Some((tag, argument)) = tagged(value) {
            match tag.as_str() {
                "Ref" => {
                    found.insert(text(argument).to_owned());
                }
                "Condition" => condition_parameters(template, text(argument), found),
                _ => walk(template, argument, found),
            }
        } else if let Some(items) = value.as_sequence() {
            for item in items {
                walk(template, item, found);
            }
        }
    }
    walk(template, &template["Conditions"][name], found);
}

/// The parameters (and conditions' parameters) an environment value depends on.
fn environment_parameters(template: &Value, value: &Value, found: &mut BTreeSet<String>) {
    let mut names = BTreeSet::new();
    named_by_all(value, &mut names);
    let parameters = template["Parameters"].as_mapping().expect("Parameters");
    found.extend(
        names
            .into_iter()
            .filter(|name| parameters.contains_key(name.as_str())),
    );
    match tagged(value) {
        Some((tag, branches)) if tag == "If" => {
            condition_parameters(template, text(&branches[0]), found);
            for branch in &branches.as_sequence().expect("If branches")[1..] {
                environment_parameters(template, branch, found);
            }
        }
        Some((_, argument)) => environment_parameters(template, argument, found),
        None => {}
    }
}

/// SAM names a function's published version after its code and its *unresolved* environment,
/// so a parameter that only changes an environment value would leave the `live` alias on the
/// old version. Each function's VersionDescription therefore carries every such parameter
/// (AuthJwtSecret, a secret, and EmulatorEndpoint excepted): a changed description replaces
/// the version. And it fits the 256 characters of a version description at the parameters'
/// longest values.
#[test]
fn a_parameter_that_changes_the_environment_publishes_a_new_version() {
    let template = template();
    let variables = template["Globals"]["Function"]["Environment"]["Variables"]
        .as_mapping()
        .expect("Globals environment");
    let mut expected = BTreeSet::new();
    for value in variables.values() {
        environment_parameters(&template, value, &mut expected);
    }
    expected.remove("AuthJwtSecret");
    expected.remove("EmulatorEndpoint");
    assert!(
        expected.contains("LogLevel") && expected.contains("ApiType"),
        "{expected:?}"
    );

    let parameters = &template["Parameters"];
    let longest = |name: &str| -> usize {
        let parameter = &parameters[name];
        if let Some(length) = parameter["MaxLength"].as_u64() {
            return usize::try_from(length).expect("a length");
        }
        if let Some(values) = parameter["AllowedValues"].as_sequence() {
            return values
                .iter()
                .map(|value| match value {
                    Value::String(text) => text.len(),
                    other => serde_yaml::to_string(other).expect("a value").trim().len(),
                })
                .max()
                .unwrap_or(0);
        }
        if let Some(maximum) = parameter["MaxValue"].as_u64() {
            return maximum.to_string().len();
        }
        panic!(
            "{name} has no MaxLength, AllowedValues or MaxValue: the description could outgrow 256"
        );
    };
    let mut descriptions = BTreeSet::new();
    for (id, function) in resources(&template, "AWS::Serverless::Function") {
        let (tag, description) = tagged(&function["Properties"]["VersionDescription"])
            .unwrap_or_else(|| panic!("{id} has no VersionDescription !Sub"));
        assert_eq!(tag, "Sub", "{id}");
        descriptions.insert(text(description).to_owned());
        let mut named = BTreeSet::new();
        named_by("Sub", description, &mut named);
        assert_eq!(named, expected, "{id}: VersionDescription parameters");
        let literal = named
            .iter()
            .fold(text(description).to_owned(), |rest, name| {
                rest.replace(&format!("${{{name}}}"), "")
            });
        let length = literal.len() + named.iter().map(|name| longest(name)).sum::<usize>();
        assert!(
            length <= 256,
            "{id}: VersionDescription may reach {length} characters"
        );
    }
    assert_eq!(descriptions.len(), 1, "the functions' descriptions differ");
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

/// An AWS/ApiGateway alarm's dimensions: the API of the flavour in use (ApiId of the HTTP
/// API, ApiName of the REST API) and stage v1.
fn assert_reads_the_api_in_use(context: &str, properties: &Value) {
    let dimensions = properties["Dimensions"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{context}: Dimensions"));
    assert_eq!(dimensions.len(), 2, "{context}: {dimensions:?}");
    let (tag, names) = tagged(&dimensions[0]["Name"])
        .unwrap_or_else(|| panic!("{context}: the API dimension must follow ApiType"));
    assert_eq!(tag, "If", "{context}");
    assert_eq!(names[0].as_str(), Some("UseHttpApi"), "{context}");
    assert_eq!(names[1].as_str(), Some("ApiId"), "{context}");
    assert_eq!(names[2].as_str(), Some("ApiName"), "{context}");
    let (tag, values) = tagged(&dimensions[0]["Value"]).expect("the API dimension's value");
    assert_eq!(tag, "If", "{context}");
    assert_eq!(values[0].as_str(), Some("UseHttpApi"), "{context}");
    assert_eq!(ref_target(&values[1]), "HttpApi", "{context}");
    let (tag, name) = tagged(&values[2]).expect("the REST API's name");
    assert_eq!(
        (tag.as_str(), text(name)),
        ("Sub", "${AWS::StackName}-api"),
        "{context}"
    );
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
                match tagged(&properties["MetricName"]) {
                    // !If [UseHttpApi, <HTTP API metric>, <REST API metric>]
                    Some((tag, branches)) => {
                        assert_eq!(tag, "If", "{context}: MetricName");
                        assert_eq!(branches[0].as_str(), Some("UseHttpApi"), "{context}");
                        assert_eq!(
                            branches[1].as_str(),
                            spec.http_api_metric.as_deref(),
                            "{context}: the HTTP API's MetricName (httpApiMetric)"
                        );
                        assert_eq!(text(&branches[2]), spec.metric, "{context}: MetricName");
                    }
                    None => {
                        assert!(spec.http_api_metric.is_none(), "{context}: not conditional");
                        assert_eq!(
                            text(&properties["MetricName"]),
                            spec.metric,
                            "{context}: MetricName"
                        );
                    }
                }
                if properties["Namespace"].as_str() == Some("AWS/ApiGateway") {
                    assert_reads_the_api_in_use(&context, properties);
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
    for (id, function) in resources(&template, "AWS::Serverless::Function") {
        let binary = &binaries[&id];
        let preference = &function["Properties"]["DeploymentPreference"];
        assert!(is_ref(&preference["Enabled"], "CanaryDeployments"), "{id}");
        assert_eq!(
            preference["Type"].as_str(),
            Some("Canary10Percent5Minutes"),
            "{id}"
        );
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

/// The runbook links' base is a parameter with a placeholder default and no trailing slash.
#[test]
fn runbook_links_are_built_from_one_parameter() {
    let template = template();
    let parameter = &template["Parameters"]["RunbookBaseUrl"];
    let default = parameter["Default"].as_str().expect("a default");
    assert!(
        default.starts_with("https://") && !default.ends_with('/'),
        "{default}"
    );
    assert!(default.ends_with("/runbooks"), "{default}");
    assert!(parameter["AllowedPattern"].is_string());
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
    let refused = template["Rules"]
        .as_mapping()
        .expect("Rules")
        .values()
        .any(|rule| {
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
