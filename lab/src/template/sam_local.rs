//! The `sam local` variant of template.yaml (`cargo xtask template --sam-local`): REST events
//! on each function, for `sam local start-api`.

use super::*;

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
    let routes = router_routes()?;
    write_variant(out, "the `sam local` variant", |template| {
        sam_local_variant(template, &routes)
    })
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
        "# The `sam local start-api` variant (lab/src/template.rs has what it changes): a \
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
                 lab/src/template.rs about it",
                index + 1
            );
        }
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
