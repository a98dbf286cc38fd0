//! The emulator variants of template.yaml (`cargo xtask template --rest | --emulator`): jwt
//! mode without the API's authorizer, on the host's architecture; the REST one also turns the
//! HTTP API into a REST API fed by the functions' `Api` events.

use super::*;

/// Which API an emulator variant serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavour {
    /// The HTTP API of template.yaml (MiniStack).
    Http,
    /// A REST API (LocalStack's free tier, `sam local start-api`).
    Rest,
}

impl Flavour {
    fn command(self) -> &'static str {
        match self {
            Self::Http => "--emulator",
            Self::Rest => "--rest",
        }
    }
}

/// The anchor that ends the line of every `Architectures: [arm64]` the variants change.
const ARCHITECTURE_ANCHOR: &str = "  # variant: architecture";

/// The REST API that replaces `HttpApi` in the REST variant: the same name, stage, throttle and
/// access log group; SAM writes its paths from the functions' `Api` events. No authorizer: the
/// functions verify the development tokens (AuthMode=jwt).
const REST_API: &str = r#"  # The REST API (payload 1.0) of `cargo xtask template --rest`: LocalStack's free tier and
  # `sam local start-api` serve REST. SAM writes its paths from the functions' Api events.
  Api:
    Type: AWS::Serverless::Api
    Properties:
      Name: !Sub "${AWS::StackName}-api"
      StageName: v1
      EndpointConfiguration: {Type: REGIONAL}
      TracingEnabled: true
      MethodSettings:
        - {ResourcePath: "/*", HttpMethod: "*", ThrottlingRateLimit: !Ref ApiThrottleRate, ThrottlingBurstLimit: !Ref ApiThrottleBurst, MetricsEnabled: true}
      AccessLogSetting:
        DestinationArn: !GetAtt ApiAccessLogGroup.Arn
        Format: '{"requestId":"$context.requestId","ip":"$context.identity.sourceIp","requestTime":"$context.requestTimeEpoch","httpMethod":"$context.httpMethod","resourcePath":"$context.resourcePath","path":"$context.path","status":"$context.status","responseLength":"$context.responseLength","latencyMs":"$context.responseLatency","integrationLatencyMs":"$context.integration.latency","integrationStatus":"$context.integration.status","errorMessage":"$context.error.message","xrayTraceId":"$context.xrayTraceId"}'"#;

/// What the REST variant renames: (template.yaml's text, the REST API's, how often it occurs).
/// Events, the API alarms' dimensions and metric, the dashboard's API widget, the outputs.
fn rest_renames(routes: usize) -> [(&'static str, &'static str, usize); 9] {
    [
        ("          Type: HttpApi\n", "          Type: Api\n", routes),
        (
            "Properties: {ApiId: !Ref HttpApi, ",
            "Properties: {RestApiId: !Ref Api, ",
            routes,
        ),
        (
            "Dimensions: [{Name: ApiId, Value: !Ref HttpApi}, {Name: Stage, Value: v1}]",
            "Dimensions: [{Name: ApiName, Value: !Sub \"${AWS::StackName}-api\"}, {Name: Stage, Value: v1}]",
            3,
        ),
        ("      MetricName: 5xx\n", "      MetricName: 5XXError\n", 1),
        (
            "\"ApiId\", \"${HttpApi}\"",
            "\"ApiName\", \"${AWS::StackName}-api\"",
            2,
        ),
        (
            "[\".\", \"4xx\", \".\", \".\", \".\", \".\"], [\".\", \"5xx\", \".\", \".\", \".\", \".\"]",
            "[\".\", \"4XXError\", \".\", \".\", \".\", \".\"], [\".\", \"5XXError\", \".\", \".\", \".\", \".\"]",
            1,
        ),
        (
            "    Value: !Sub \"${HttpApi.ApiEndpoint}/v1\"\n",
            "    Value: !Sub \"https://${Api}.execute-api.${AWS::Region}.${AWS::URLSuffix}/v1\"\n",
            1,
        ),
        ("    Value: !Ref HttpApi\n", "    Value: !Ref Api\n", 1),
        ("    Value: http\n", "    Value: rest\n", 1),
    ]
}

/// Reads template.yaml, writes its `flavour` emulator variant for `architecture` to `out`.
pub(crate) fn write_emulator_variant(
    flavour: Flavour,
    architecture: Architecture,
    out: &Path,
) -> Result<()> {
    write_variant(out, "an emulator variant", |template| {
        emulator_variant(template, flavour, architecture)
    })
}

/// The `flavour` emulator variant of `template` (the text of template.yaml); see the module
/// documentation for what it changes. Fails, naming the anchor, when one is missing or
/// ambiguous, and when the result still holds what the flavour cannot have.
pub(crate) fn emulator_variant(
    template: &str,
    flavour: Flavour,
    architecture: Architecture,
) -> Result<String> {
    let mut lines: Vec<String> = template.lines().map(str::to_owned).collect();

    // jwt mode only: the functions verify the development tokens.
    let entry = find_entry(&lines, "Parameters", 2, "AuthMode", false)?;
    replace_line(
        &mut lines,
        entry.clone(),
        "Parameters.AuthMode",
        "    Default: apigateway",
        Some("    Default: jwt"),
    )?;
    replace_line(
        &mut lines,
        entry,
        "Parameters.AuthMode",
        "    AllowedValues: [apigateway, jwt]",
        Some("    AllowedValues: [jwt]"),
    )?;

    // No API authorizer, with its notes.
    let api = find_entry(&lines, "Resources", 2, "HttpApi", false)?;
    let auth = child_entry(&lines, api.clone(), 6, "Auth", "Resources.HttpApi")?;
    let first = comments_above(&lines, api.start, auth.start, 6);
    lines.drain(first..auth.end);

    // The host's binaries.
    let mut architectures = 0;
    for line in lines
        .iter_mut()
        .filter(|line| line.ends_with(ARCHITECTURE_ANCHOR))
    {
        ensure!(
            line.contains("[arm64]"),
            "the line `{line}` names no [arm64] to replace"
        );
        *line = line.replace("[arm64]", &format!("[{}]", architecture.name()));
        architectures += 1;
    }
    ensure!(
        architectures > 0,
        "anchor missing: no line of template.yaml ends with `{}`",
        ARCHITECTURE_ANCHOR.trim()
    );

    if flavour == Flavour::Rest {
        let api = find_entry(&lines, "Resources", 2, "HttpApi", true)?;
        lines.splice(api, REST_API.lines().map(str::to_owned));
    }

    let mut variant = vec![
        format!(
            "# GENERATED by `cargo xtask template {}` from template.yaml: do not edit.",
            flavour.command()
        ),
        "# An emulator variant (lab/src/template.rs has what it changes): AuthMode=jwt without \
         an API authorizer,"
            .to_owned(),
        format!(
            "# {} functions. The notes below describe template.yaml.",
            architecture.name()
        ),
    ];
    variant.extend(lines);
    let mut text = variant.join("\n");
    text.push('\n');

    let mut leftovers = vec![("Authorizer", "an API authorizer")];
    if flavour == Flavour::Rest {
        let routes = text.matches("          Type: HttpApi\n").count();
        ensure!(routes > 0, "template.yaml has no HttpApi events");
        for (old, new, count) in rest_renames(routes) {
            text = replace_counted(&text, old, new, count)?;
        }
        leftovers.push((
            "HttpApi",
            "a reference to the HTTP API the REST variant replaces",
        ));
    }
    check_leftovers(&text, &leftovers)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    /// One route of the router table: `METHOD /path` served by a function (its cargo binary).
    #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
    struct Route {
        method: String,
        path: String,
        function: String,
    }

    /// The router table of Cargo.toml (`[workspace.metadata.lambda.watch.router]`), as `cargo
    /// metadata` reads it: the same table `cargo lambda watch` serves locally.
    fn router_routes() -> Result<Vec<Route>> {
        // Cargo sets CARGO for what it runs (`cargo xtask`, `cargo test`).
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let output = crate::process::output(
            Command::new(cargo)
                .args([
                    "metadata",
                    "--no-deps",
                    "--offline",
                    "--format-version",
                    "1",
                ])
                .arg("--manifest-path")
                .arg(paths::root().join("Cargo.toml")),
        )
        .context("cargo metadata failed")?;
        let metadata: Value =
            serde_json::from_slice(&output.stdout).context("cargo metadata printed no JSON")?;
        routes_of_metadata(&metadata["metadata"])
    }

    /// The routes of the workspace metadata's `lambda.watch.router` table (path -> list of
    /// `{ method, function }`), methods upper-cased, sorted; fails on an empty table or a route
    /// listed twice.
    fn routes_of_metadata(workspace_metadata: &Value) -> Result<Vec<Route>> {
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

    /// The routes a variant's functions declare: every event of `kind` (`HttpApi` or `Api`) on
    /// `api_reference` (`ApiId: !Ref HttpApi` or `RestApiId: !Ref Api`), with its function's binary.
    fn event_routes(text: &str, kind: &str, api_reference: &str) -> Result<Vec<Route>> {
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        let mut routes = Vec::new();
        for (id, binary) in function_binaries(&lines)? {
            let entry = find_entry(&lines, "Resources", 2, &id, false)?;
            let events = child_entry(&lines, entry, 6, "Events", &id)?;
            let mut index = events.start + 1;
            while index < events.end {
                let name = lines[index].trim().trim_end_matches(':').to_owned();
                let kind_line = lines.get(index + 1).map(|line| line.trim());
                let properties = lines
                    .get(index + 2)
                    .and_then(|line| line.trim().strip_prefix("Properties: {"))
                    .and_then(|rest| rest.strip_suffix('}'))
                    .with_context(|| format!("{id}.{name}: Properties is not one flow mapping"))?;
                ensure!(
                    kind_line == Some(&format!("Type: {kind}")),
                    "{id}.{name} is no {kind} event"
                );
                let field = |key: &str| {
                    properties
                        .split(", ")
                        .find_map(|pair| pair.strip_prefix(&format!("{key}: ")))
                        .map(|value| value.trim_matches('"').to_owned())
                        .with_context(|| format!("{id}.{name} has no {key}"))
                };
                let (key, target) = api_reference
                    .split_once(": ")
                    .context("the API reference is `Key: value`")?;
                ensure!(
                    field(key)? == target,
                    "{id}.{name} is on another API than {api_reference}"
                );
                routes.push(Route {
                    method: field("Method")?.to_ascii_uppercase(),
                    path: field("Path")?,
                    function: binary.clone(),
                });
                index += 3;
            }
        }
        routes.sort();
        Ok(routes)
    }

    fn router() -> Vec<Route> {
        router_routes().expect("the router table of Cargo.toml")
    }

    fn variant(flavour: Flavour) -> String {
        emulator_variant(TEMPLATE, flavour, Architecture::X86_64).expect("the variant")
    }

    fn non_comment_lines(text: &str) -> impl Iterator<Item = &str> {
        text.lines()
            .filter(|line| !line.trim_start().starts_with('#'))
    }

    #[test]
    fn every_variant_serves_the_routers_routes() {
        let router = router();
        assert_eq!(
            event_routes(TEMPLATE, "HttpApi", "ApiId: !Ref HttpApi").expect("routes"),
            router
        );
        assert_eq!(
            event_routes(&variant(Flavour::Http), "HttpApi", "ApiId: !Ref HttpApi")
                .expect("routes"),
            router
        );
        assert_eq!(
            event_routes(&variant(Flavour::Rest), "Api", "RestApiId: !Ref Api").expect("routes"),
            router
        );
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
    fn the_variants_run_jwt_mode_without_an_authorizer_on_the_given_architecture() {
        for flavour in [Flavour::Http, Flavour::Rest] {
            let text = variant(flavour);
            for gone in ["Authorizer", "      Auth:"] {
                assert!(
                    !non_comment_lines(&text).any(|line| line.contains(gone)),
                    "{flavour:?}: {gone} is still in the variant"
                );
            }
            assert!(
                !text
                    .lines()
                    .any(|line| line.contains("Architectures:") && line.contains("arm64")),
                "{flavour:?}: an arm64 function or capacity provider is left"
            );
            let auth_mode = entry_text(&text, "Parameters", 2, "AuthMode");
            assert!(
                auth_mode.contains("\n    Default: jwt\n    AllowedValues: [jwt]\n"),
                "{auth_mode}"
            );
            assert!(text.contains("\n    Architectures: [x86_64]  # variant: architecture\n"));
            // The rules stay: jwt mode still needs a key and an emulator endpoint.
            assert_eq!(
                entry_text(&text, "Rules", 2, "JwtModeIsForEmulators"),
                entry_text(TEMPLATE, "Rules", 2, "JwtModeIsForEmulators")
            );
        }
        let arm = emulator_variant(TEMPLATE, Flavour::Http, Architecture::Arm64).expect("arm64");
        assert!(arm.contains("\n    Architectures: [arm64]  # variant: architecture\n"));
    }

    #[test]
    fn the_rest_variant_replaces_the_http_api_everywhere() {
        let text = variant(Flavour::Rest);
        assert!(text.starts_with("# GENERATED by `cargo xtask template --rest`"));
        assert!(!non_comment_lines(&text).any(|line| line.contains("HttpApi")));
        let api = entry_text(&text, "Resources", 2, "Api");
        assert!(
            api.starts_with("  Api:\n    Type: AWS::Serverless::Api\n    Properties:\n"),
            "{api}"
        );
        assert!(api.contains("\n      StageName: v1\n"), "{api}");
        assert!(!api.contains("DefinitionBody"), "{api}");
        assert!(
            api.contains("ThrottlingRateLimit: !Ref ApiThrottleRate"),
            "{api}"
        );
        let alarm = entry_text(&text, "Resources", 2, "Api5xxRateAlarm");
        assert!(alarm.contains("\n      MetricName: 5XXError\n"), "{alarm}");
        assert!(alarm.contains("{Name: ApiName, Value: !Sub \"${AWS::StackName}-api\"}"));
        assert_eq!(
            entry_text(&text, "Outputs", 2, "ApiId"),
            "  ApiId:\n    Description: The API's id.\n    Value: !Ref Api"
        );
        assert!(entry_text(&text, "Outputs", 2, "ApiType").ends_with("\n    Value: rest"));
        let dashboard = entry_text(&text, "Resources", 2, "Dashboard");
        assert!(dashboard.contains("\"5XXError\""), "{dashboard}");
        assert!(!dashboard.contains("\"5xx\""), "{dashboard}");
    }

    #[test]
    fn the_variants_leave_the_rest_alone() {
        for flavour in [Flavour::Http, Flavour::Rest] {
            let text = variant(flavour);
            for (name, indent, key) in [
                ("Resources", 2, "OrdersTable"),
                ("Resources", 2, "ApiAccessLogGroup"),
                ("Resources", 2, "CreateOrderLogGroup"),
                ("Resources", 2, "PaymentFailureRatioAlarm"),
                ("Globals", 4, "Environment"),
                ("Conditions", 2, "UseJwtAuth"),
                ("Outputs", 2, "TableName"),
            ] {
                assert_eq!(
                    entry_text(&text, name, indent, key),
                    entry_text(TEMPLATE, name, indent, key),
                    "{flavour:?}: {key}"
                );
            }
            // Each function is template.yaml's but for the kind of its events.
            for (id, binary) in function_binaries(&lines(TEMPLATE)).expect("functions") {
                let before = entry_text(TEMPLATE, "Resources", 2, &id);
                let after = entry_text(&text, "Resources", 2, &id);
                let expected = match flavour {
                    Flavour::Http => before,
                    Flavour::Rest => before
                        .replace("Type: HttpApi", "Type: Api")
                        .replace("ApiId: !Ref HttpApi", "RestApiId: !Ref Api"),
                };
                assert_eq!(after, expected, "{flavour:?}: {id}");
                assert!(after.contains(&format!("BuildProperties: {{Binary: {binary}}}")));
            }
        }
    }

    #[test]
    fn a_variant_fails_on_what_it_cannot_place() {
        // The variant is no template.yaml: deriving it twice fails instead of stacking edits.
        for flavour in [Flavour::Http, Flavour::Rest] {
            let error = emulator_variant(&variant(flavour), flavour, Architecture::X86_64)
                .expect_err("twice");
            assert!(format!("{error:#}").contains("anchor missing"), "{error:#}");
        }
        let without_anchor = TEMPLATE.replace(ARCHITECTURE_ANCHOR, "");
        let error = emulator_variant(&without_anchor, Flavour::Http, Architecture::X86_64)
            .expect_err("no architecture anchor");
        assert!(
            format!("{error:#}").contains("variant: architecture"),
            "{error:#}"
        );
        // A new reference to the HTTP API that the REST variant does not rename.
        let extra = TEMPLATE.replace(
            "        FAULT_INJECTION_RATE: !Ref FaultInjectionRate\n",
            "        FAULT_INJECTION_RATE: !Ref FaultInjectionRate\n        API_ID: !Ref HttpApi\n",
        );
        emulator_variant(&extra, Flavour::Http, Architecture::X86_64).expect("HTTP keeps it");
        let error =
            emulator_variant(&extra, Flavour::Rest, Architecture::X86_64).expect_err("dangling");
        assert!(format!("{error:#}").contains("`HttpApi`"), "{error:#}");
        // An API alarm more than the REST variant knows.
        let extra = TEMPLATE.replacen(
            "      MetricName: 5xx\n",
            "      MetricName: 5xx\n      MetricName: 5xx\n",
            1,
        );
        let error =
            emulator_variant(&extra, Flavour::Rest, Architecture::X86_64).expect_err("twice 5xx");
        assert!(
            format!("{error:#}").contains("MetricName: 5xx"),
            "{error:#}"
        );
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
    }
}
