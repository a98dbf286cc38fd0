//! The API: the router's routes as the functions' HttpApi events, stage v1, the JWT authorizer
//! on every route, and the auth parameters and rules.

use super::*;

/// The routes the functions declare: every event must be an `HttpApi` event of `HttpApi`,
/// given as (METHOD, path, function).
fn event_routes(template: &Value) -> BTreeSet<Route> {
    let binaries = function_binaries(template);
    let mut routes = BTreeSet::new();
    for (id, function) in resources(template, "AWS::Serverless::Function") {
        let events = function["Properties"]["Events"]
            .as_mapping()
            .unwrap_or_else(|| panic!("{id} has no Events: which route does it serve?"));
        for (name, event) in events {
            let context = format!("{id}.Events.{}", text(name));
            assert_eq!(event["Type"].as_str(), Some("HttpApi"), "{context}");
            let properties = &event["Properties"];
            assert_eq!(ref_target(&properties["ApiId"]), "HttpApi", "{context}");
            assert!(
                properties["Auth"].is_null(),
                "{context}: a route sets its own Auth; every route takes the API's authorizer"
            );
            let route = (
                text(&properties["Method"]).to_ascii_uppercase(),
                text(&properties["Path"]).to_owned(),
                binaries[&id].clone(),
            );
            assert!(routes.insert(route.clone()), "{route:?} is declared twice");
        }
    }
    routes
}

/// The one HTTP API, `HttpApi` (an AWS::Serverless::HttpApi).
fn http_api(template: &Value) -> &Value {
    let apis = resources(template, "AWS::Serverless::HttpApi");
    assert_eq!(apis.keys().collect::<Vec<_>>(), ["HttpApi"], "one HTTP API");
    apis["HttpApi"]
}

#[test]
fn routes_of_the_template_equal_the_router_table() {
    let template = template();
    assert_eq!(
        event_routes(&template),
        router(),
        "the functions' HttpApi events differ from the Cargo.toml router"
    );
    // Each route is written once, as an event: SAM derives the integrations and permissions,
    // and the REST flavour is generated (`cargo xtask template --rest`).
    for kind in [
        "AWS::ApiGatewayV2::Api",
        "AWS::ApiGatewayV2::Route",
        "AWS::ApiGatewayV2::Integration",
        "AWS::Lambda::Permission",
        "AWS::Serverless::Api",
        "AWS::ApiGateway::RestApi",
    ] {
        assert!(
            resources(&template, kind).is_empty(),
            "template.yaml writes {kind} by hand"
        );
    }
    assert!(
        http_api(&template)["Properties"]["DefinitionBody"].is_null(),
        "an OpenAPI body would be a second copy of the routes"
    );
    // Every function of the router is built by the template under its own name.
    let binaries: BTreeSet<String> = function_binaries(&template).into_values().collect();
    assert_eq!(binaries, workspace_functions());
}

/// Stage v1 with the stage-wide throttle of ApiThrottleRate/Burst and JSON access logs.
#[test]
fn the_http_api_serves_stage_v1_throttled_with_json_access_logs() {
    let template = template();
    let properties = &http_api(&template)["Properties"];
    assert_eq!(properties["StageName"].as_str(), Some("v1"));
    let defaults = &properties["DefaultRouteSettings"];
    assert!(is_ref(&defaults["ThrottlingRateLimit"], "ApiThrottleRate"));
    assert!(is_ref(
        &defaults["ThrottlingBurstLimit"],
        "ApiThrottleBurst"
    ));
    let logs = &properties["AccessLogSettings"];
    let parsed: serde_json::Value = serde_json::from_str(text(&logs["Format"]))
        .unwrap_or_else(|error| panic!("the access log format is no JSON: {error}"));
    assert!(parsed["requestId"].is_string(), "{parsed}");
    assert!(parsed["status"].is_string(), "{parsed}");
    let (tag, target) = tagged(&logs["DestinationArn"]).expect("!GetAtt");
    assert_eq!(
        (tag.as_str(), text(target)),
        ("GetAtt", "ApiAccessLogGroup.Arn")
    );
    // The URL includes the stage (`<ApiUrl>/users/...`); the outputs the runbooks read.
    let outputs = &template["Outputs"];
    let (tag, url) = tagged(&outputs["ApiUrl"]["Value"]).expect("a !Sub");
    assert_eq!(
        (tag.as_str(), text(url)),
        ("Sub", "${HttpApi.ApiEndpoint}/v1")
    );
    assert!(is_ref(&outputs["ApiId"]["Value"], "HttpApi"));
    assert_eq!(outputs["ApiType"]["Value"].as_str(), Some("http"));
    assert_eq!(outputs["ApiStage"]["Value"].as_str(), Some("v1"));
}

/// Every route needs a token the API's JWT authorizer accepts (signature, expiry, issuer,
/// audience) before a function runs. SAM cannot make the authorizer conditional, so it is
/// unconditional here; the emulator variants drop it for their jwt mode.
#[test]
fn every_route_needs_the_jwt_authorizer() {
    let template = template();
    let auth = &http_api(&template)["Properties"]["Auth"];
    let default = text(&auth["DefaultAuthorizer"]);
    let authorizers = auth["Authorizers"].as_mapping().expect("Authorizers");
    assert_eq!(authorizers.len(), 1, "one authorizer");
    let authorizer = &auth["Authorizers"][default];
    assert_eq!(
        authorizer["IdentitySource"].as_str(),
        Some("$request.header.Authorization")
    );
    let jwt = &authorizer["JwtConfiguration"];
    assert!(!jwt["issuer"].is_null(), "{jwt:?}");
    assert_eq!(
        jwt["audience"].as_sequence().map(Vec::len),
        Some(1),
        "the authorizer checks one audience"
    );
    // No route opts out: event_routes refuses an event with its own Auth.
    assert_eq!(event_routes(&template).len(), router().len());
}

/// jwt mode (the functions verify HS256 tokens of a shared key) is for emulators: a rule
/// refuses it without EmulatorEndpoint, and without a key and its fingerprint.
#[test]
fn jwt_mode_is_refused_without_an_emulator_and_a_key() {
    let template = template();
    let mut guarded = BTreeSet::new();
    for rule in rules(&template).into_values() {
        if is_equals(&rule["RuleCondition"], "AuthMode", "jwt") {
            guarded.extend(asserted_non_empty(rule, "Equals"));
        }
    }
    assert_guarded(
        &guarded,
        "AuthMode=jwt",
        &[
            "EmulatorEndpoint",
            "AuthJwtSecret",
            "AuthJwtSecretFingerprint",
        ],
    );
    assert_eq!(
        template["Parameters"]["AuthMode"]["Default"].as_str(),
        Some("apigateway")
    );
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
/// the authorizer and the functions take their issuer and audience from them; the functions
/// then read the user from `username` (Cognito access tokens), because Cognito's `sub` is a
/// UUID, not `user-N`.
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
    // The authorizer trusts exactly what the functions check.
    let auth = &http_api(&template)["Properties"]["Auth"];
    let jwt = &auth["Authorizers"][text(&auth["DefaultAuthorizer"])]["JwtConfiguration"];
    assert_eq!(jwt["issuer"], variables["AUTH_ISSUER"]);
    assert_eq!(jwt["audience"][0], variables["AUTH_AUDIENCE"]);

    // The claim that names the user.
    let claim = &variables["AUTH_USER_CLAIM"];
    let (tag, branches) = tagged(claim).expect("AUTH_USER_CLAIM is an If");
    assert_eq!(tag, "If");
    assert_eq!(branches[0].as_str(), Some("HasAuthUserClaim"));
    assert!(is_ref(&branches[1], "AuthUserClaim"));
    let (tag, derived) = tagged(&branches[2]).expect("the derived claim");
    assert_eq!(tag, "If");
    assert_eq!(derived[0].as_str(), Some("CreateCognitoUserPool"));
    assert_eq!(derived[1].as_str(), Some("username"));
    assert_eq!(derived[2].as_str(), Some("sub"));

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
/// old version. Each function's VersionDescription therefore carries every such parameter;
/// the JWT key by its fingerprint (the key itself never: a description is no place for a
/// secret), EmulatorEndpoint (emulators only) excepted. A changed description replaces the
/// version. And it fits the 256 characters of a version description at the longest values.
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
    assert!(
        expected.remove("AuthJwtSecret"),
        "the functions no longer read the key: revisit this test"
    );
    expected.insert("AuthJwtSecretFingerprint".to_owned());
    expected.remove("EmulatorEndpoint");
    assert!(expected.contains("LogLevel"), "{expected:?}");

    let parameters = &template["Parameters"];
    assert_eq!(
        parameters["AuthJwtSecret"]["NoEcho"].as_bool(),
        Some(true),
        "the key is NoEcho"
    );
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
