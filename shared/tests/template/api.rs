//! The API: one flavour per stack, the router's routes, stage v1, authorizers and auth parameters.

use super::*;

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
    for (name, rule) in rules(&template) {
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
            let asserted = asserted_non_empty(rule, "Equals");
            assert!(!asserted.is_empty(), "{name} asserts nothing non-empty");
            guarded.extend(asserted);
        }
    }
    assert_guarded(
        &guarded,
        "AuthMode=apigateway",
        &["AuthIssuer", "AuthAudience"],
    );
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
    let refused = rules(&template).into_values().any(|rule| {
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
