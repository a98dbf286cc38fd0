//! Where `seed`, `audit` and `loadtest` point: the running local stack (the default), a table
//! behind an endpoint (DynamoDB Local, LocalStack, MiniStack), or a deployed CloudFormation
//! stack found by name, whose outputs name the table and the API.
//!
//! A deployed stack, or a table named alone (`--table T`: a PITR restore, another stage's
//! table), is reached through the standard AWS chain: credentials and region from the
//! environment, `AWS_PROFILE`, SSO or an instance role, exactly as the AWS CLI would. A bare
//! `--endpoint` (no stack) is an emulator or DynamoDB Local, which take any credentials, so it
//! needs no AWS configuration at all. Nothing named means the running local stack.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use aws_config::BehaviorVersion;
use order_service::store::{build_client, build_local_client, DynamoOrderStore, StoreSettings};
use serde_json::Value;

use crate::state;

#[derive(clap::Args, Debug, Clone, Default)]
pub(crate) struct TargetArgs {
    /// A deployed stack, by name: its `TableName` and `ApiUrl` outputs, through the standard
    /// AWS credential chain and region (AWS_PROFILE, AWS_REGION, SSO, instance roles).
    #[arg(long)]
    pub stack: Option<String>,
    /// The endpoint of DynamoDB (and, with --stack, of CloudFormation): DynamoDB Local or an
    /// emulator such as LocalStack (default: AWS, or the running local stack's DynamoDB Local).
    #[arg(long)]
    pub endpoint: Option<String>,
    /// A table: in AWS through the standard chain, or behind --endpoint (default: the
    /// running local stack's).
    #[arg(long, conflicts_with = "stack")]
    pub table: Option<String>,
}

/// How the store is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Access {
    /// The local stack that `cargo xtask up` started: its table may be dropped and recreated.
    LocalStack { endpoint: String },
    /// A table behind an endpoint that takes any credentials (DynamoDB Local, an emulator).
    Endpoint { endpoint: String },
    /// A table in AWS (a deployed stack's, or one named alone), through the standard AWS
    /// chain; `endpoint` for an emulator's CloudFormation and DynamoDB.
    Aws {
        stack: Option<String>,
        endpoint: Option<String>,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub access: Access,
    pub table: String,
    /// The API's base URL, when the target knows it (a stack's `ApiUrl`, the local gateway).
    pub api_url: Option<String>,
    /// A deployed stack's stage throttle (its `ApiThrottleRate` parameter, requests/s), which
    /// a load run against it stays under.
    pub api_throttle_rate: Option<f64>,
}

impl TargetArgs {
    pub(crate) fn resolve(&self) -> Result<Target> {
        if let Some(stack) = &self.stack {
            let (outputs, parameters) = crate::client::runtime()?
                .block_on(describe_stack(stack, self.endpoint.as_deref()))?;
            let mut target = target_from_outputs(stack, self.endpoint.clone(), &outputs)?;
            target.api_throttle_rate = throttle_rate(&parameters);
            return Ok(target);
        }
        match (&self.endpoint, &self.table) {
            (Some(endpoint), table) => {
                let table = match table {
                    Some(table) => table.clone(),
                    None => state::require_state()?.table,
                };
                return Ok(Target {
                    access: Access::Endpoint {
                        endpoint: endpoint.clone(),
                    },
                    table,
                    api_url: None,
                    api_throttle_rate: None,
                });
            }
            (None, Some(table)) => {
                return Ok(Target {
                    access: Access::Aws {
                        stack: None,
                        endpoint: None,
                    },
                    table: table.clone(),
                    api_url: None,
                    api_throttle_rate: None,
                })
            }
            (None, None) => {}
        }
        let state = state::require_state()?;
        let target = Target::of_local_stack(&state);
        Ok(target)
    }
}

/// The target a stack's outputs describe: `TableName` is required, `ApiUrl` optional.
fn target_from_outputs(
    stack: &str,
    endpoint: Option<String>,
    outputs: &BTreeMap<String, String>,
) -> Result<Target> {
    let table = outputs.get("TableName").cloned().ok_or_else(|| {
        anyhow!(
            "stack {stack} has no TableName output (outputs: {})",
            outputs.keys().cloned().collect::<Vec<_>>().join(", ")
        )
    })?;
    Ok(Target {
        access: Access::Aws {
            stack: Some(stack.to_owned()),
            endpoint,
        },
        table,
        api_url: outputs
            .get("ApiUrl")
            .map(|url| url.trim_end_matches('/').to_owned()),
        api_throttle_rate: None,
    })
}

/// The stage throttle a stack was deployed with (`ApiThrottleRate`), when it has one.
fn throttle_rate(parameters: &BTreeMap<String, String>) -> Option<f64> {
    parameters
        .get("ApiThrottleRate")
        .and_then(|rate| rate.trim().parse::<f64>().ok())
        .filter(|rate| rate.is_finite() && *rate > 0.0)
}

/// Settings for operator work on a real table: longer attempts than a function's (a full
/// scan page of a big table, throttling on a cold on-demand table), more retries.
fn admin_settings() -> StoreSettings {
    StoreSettings {
        connect_timeout: std::time::Duration::from_secs(5),
        attempt_timeout: std::time::Duration::from_secs(10),
        operation_timeout: std::time::Duration::from_secs(60),
        max_sdk_attempts: 8,
        ..StoreSettings::default()
    }
}

impl Target {
    pub(crate) fn of_local_stack(state: &state::StackState) -> Self {
        Self {
            access: Access::LocalStack {
                endpoint: state.dynamodb_endpoint.clone(),
            },
            table: state.table.clone(),
            api_url: Some(state.base_url.clone()),
            api_throttle_rate: None,
        }
    }

    /// What to call the target in messages.
    pub(crate) fn describe(&self) -> String {
        match &self.access {
            Access::LocalStack { endpoint } => {
                format!("table {} of the local stack ({endpoint})", self.table)
            }
            Access::Endpoint { endpoint } => format!("table {} at {endpoint}", self.table),
            Access::Aws { stack, endpoint } => {
                let mut text = format!("table {}", self.table);
                if let Some(stack) = stack {
                    text.push_str(&format!(" of stack {stack}"));
                }
                match endpoint {
                    Some(endpoint) => text.push_str(&format!(" at {endpoint}")),
                    None => text.push_str(" in AWS"),
                }
                text
            }
        }
    }

    pub(crate) async fn store(&self) -> Result<DynamoOrderStore> {
        let settings = admin_settings();
        let client = match &self.access {
            Access::LocalStack { endpoint } | Access::Endpoint { endpoint } => {
                build_local_client(&settings, endpoint).await
            }
            Access::Aws { endpoint, .. } => {
                let client = build_client(&settings, endpoint.as_deref()).await;
                if client.config().region().is_none() {
                    bail!("no AWS region: set AWS_REGION, or a region in the AWS profile in use");
                }
                client
            }
        };
        Ok(DynamoOrderStore::new(client, self.table.clone(), settings))
    }
}

/// Whether a stack in this status has resources to use: a finished create, update or import,
/// or an update rolled back to the previous working version. (`ROLLBACK_COMPLETE` is a create
/// that failed: nothing to use.)
fn usable(status: &str) -> bool {
    matches!(
        status,
        "CREATE_COMPLETE"
            | "UPDATE_COMPLETE"
            | "UPDATE_ROLLBACK_COMPLETE"
            | "IMPORT_COMPLETE"
            | "IMPORT_ROLLBACK_COMPLETE"
    )
}

/// A stack's outputs and parameters, each by key.
async fn describe_stack(
    stack: &str,
    endpoint: Option<&str>,
) -> Result<(BTreeMap<String, String>, BTreeMap<String, String>)> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(endpoint) = endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    let config = loader.load().await;
    if config.region().is_none() {
        bail!("no AWS region: set AWS_REGION, or a region in the AWS profile in use");
    }
    let client = aws_sdk_cloudformation::Client::new(&config);
    let described = client
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .map_err(|error| {
            anyhow!(
                "cannot describe stack {stack}: {}",
                aws_sdk_cloudformation::error::DisplayErrorContext(error)
            )
        })?;
    let found = described
        .stacks()
        .first()
        .ok_or_else(|| anyhow!("no stack named {stack}"))?;
    let status = found
        .stack_status()
        .map(|status| status.as_str().to_owned())
        .unwrap_or_default();
    if !usable(&status) {
        bail!("stack {stack} is {status}, not ready to use");
    }
    let outputs = found
        .outputs()
        .iter()
        .filter_map(|output| {
            Some((
                output.output_key()?.to_owned(),
                output.output_value()?.to_owned(),
            ))
        })
        .collect();
    let parameters = found
        .parameters()
        .iter()
        .filter_map(|parameter| {
            Some((
                parameter.parameter_key()?.to_owned(),
                parameter.parameter_value()?.to_owned(),
            ))
        })
        .collect();
    Ok((outputs, parameters))
}

/// A run against a deployed stage or an emulator.
#[derive(clap::Args, Debug, Clone, Default)]
pub(crate) struct RemoteArgs {
    /// A deployed stack by name: k6 runs against its `ApiUrl` output, its table is seeded
    /// first (when empty, or with --wipe) and audited after, through the standard AWS chain.
    #[arg(long)]
    pub stack: Option<String>,
    /// The CloudFormation and DynamoDB endpoint of an emulator (LocalStack, MiniStack), with
    /// --stack.
    #[arg(long, requires = "stack")]
    pub endpoint: Option<String>,
    /// With --stack: delete every item of a table that holds data before seeding it.
    #[arg(long, requires = "stack")]
    pub wipe: bool,
    /// Real tokens for the stage: a JSON object {"user-1": "<token>", ...} (e.g. Cognito access
    /// tokens, README "Deploying with SAM"); the run uses only the users it covers.
    #[arg(long, conflicts_with = "jwt_secret_file")]
    pub tokens_file: Option<PathBuf>,
    /// The HS256 secret of a stage deployed with AuthMode=jwt (default: .local/dev-jwt-secret,
    /// which the local stack and the emulator deploys use).
    #[arg(long)]
    pub jwt_secret_file: Option<PathBuf>,
    /// Allow a target that is not on this machine (a deployed stage). Without it, only
    /// loopback URLs are load-tested, so a typo cannot load-test someone's production.
    #[arg(long)]
    pub allow_remote: bool,
}

impl RemoteArgs {
    pub(crate) fn is_remote_run(&self, base_url: Option<&str>) -> bool {
        self.stack.is_some() || base_url.is_some()
    }
}

/// How many users a tokens file covers from user-1 on without a gap (k6 picks users among
/// user-1..user-USERS): a JSON object `{"user-1": "<token>", ...}`.
pub(crate) fn users_with_tokens(text: &str) -> Result<u32> {
    let tokens: serde_json::Map<String, Value> =
        serde_json::from_str(text).context("not a JSON object of user -> token")?;
    let has = |number: u32| {
        tokens
            .get(&format!("user-{number}"))
            .and_then(Value::as_str)
            .is_some_and(|token| !token.is_empty())
    };
    let covered = (1..).take_while(|number| has(*number)).count() as u32;
    if covered == 0 {
        bail!("no token for user-1");
    }
    Ok(covered)
}

/// Whether `url` names this machine (`127.0.0.1`, `[::1]`, `localhost`).
pub(crate) fn is_loopback_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .unwrap_or(url);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or(""),
        None => authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_named_alone_is_in_aws_and_an_endpoint_is_an_emulator() {
        let alone = TargetArgs {
            table: Some("orders-prod-audit-202611290400".into()),
            ..TargetArgs::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(
            alone.access,
            Access::Aws {
                stack: None,
                endpoint: None
            }
        );
        let emulated = TargetArgs {
            endpoint: Some("http://127.0.0.1:4566".into()),
            table: Some("orders".into()),
            ..TargetArgs::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(
            emulated.access,
            Access::Endpoint {
                endpoint: "http://127.0.0.1:4566".into()
            }
        );
        assert!(!matches!(emulated.access, Access::LocalStack { .. }));
    }

    #[test]
    fn only_a_finished_stack_is_used() {
        assert!(usable("CREATE_COMPLETE"));
        assert!(usable("UPDATE_ROLLBACK_COMPLETE"));
        assert!(!usable("ROLLBACK_COMPLETE"));
        assert!(!usable("UPDATE_IN_PROGRESS"));
        assert!(!usable("DELETE_COMPLETE"));
    }

    #[test]
    fn a_stack_target_comes_from_its_outputs() {
        let outputs: BTreeMap<String, String> = [
            ("TableName", "orders-staging-orders"),
            (
                "ApiUrl",
                "https://abc.execute-api.eu-west-1.amazonaws.com/v1/",
            ),
            ("ApiId", "abc"),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect();
        let target = target_from_outputs("orders-staging", None, &outputs).unwrap();
        assert_eq!(target.table, "orders-staging-orders");
        assert_eq!(
            target.api_url.as_deref(),
            Some("https://abc.execute-api.eu-west-1.amazonaws.com/v1")
        );
        assert!(!matches!(target.access, Access::LocalStack { .. }));
        assert_eq!(
            target.describe(),
            "table orders-staging-orders of stack orders-staging in AWS"
        );
        let without_table: BTreeMap<String, String> =
            [("ApiUrl".to_owned(), "https://x/v1".to_owned())].into();
        let error = target_from_outputs("orders-staging", None, &without_table).unwrap_err();
        assert!(error.to_string().contains("no TableName output"), "{error}");
    }

    #[test]
    fn the_stage_throttle_comes_from_the_stack_parameters() {
        let parameters = |value: &str| -> BTreeMap<String, String> {
            [("ApiThrottleRate".to_owned(), value.to_owned())].into()
        };
        assert_eq!(throttle_rate(&parameters("100")), Some(100.0));
        assert_eq!(throttle_rate(&parameters(" 250.5 ")), Some(250.5));
        assert_eq!(throttle_rate(&parameters("0")), None);
        assert_eq!(throttle_rate(&parameters("****")), None, "a masked value");
        assert_eq!(throttle_rate(&BTreeMap::new()), None);
    }

    #[test]
    fn a_tokens_file_covers_its_users_from_user_1_without_a_gap() {
        assert_eq!(
            users_with_tokens(r#"{"user-1": "a", "user-2": "b", "user-4": "d"}"#).unwrap(),
            2
        );
        assert!(users_with_tokens(r#"{"user-2": "b"}"#).is_err());
        assert!(users_with_tokens(r#"{"user-1": ""}"#).is_err());
        assert!(users_with_tokens("[]").is_err());
    }

    #[test]
    fn only_this_machine_is_loopback() {
        for url in [
            "http://127.0.0.1:9000",
            "http://localhost:4566/restapis/x/v1/_user_request_",
            "http://[::1]:9000/v1",
            "127.0.0.2:80",
        ] {
            assert!(is_loopback_url(url), "{url}");
        }
        for url in [
            "https://abc.execute-api.eu-west-1.amazonaws.com/v1",
            "http://10.0.0.5:9000",
            "http://localhost.example.com",
            "http://127.0.0.1.nip.io:9000",
        ] {
            assert!(!is_loopback_url(url), "{url}");
        }
    }
}
