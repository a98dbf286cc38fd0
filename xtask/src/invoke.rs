//! `cargo xtask invoke`: sends the saved API Gateway events of `events/` to a running stack:
//! HTTP API (payload 2.0, `template.yaml`'s default `ApiType=http`) events in `events/`, and
//! the same requests as REST API (payload 1.0 proxy integration: `ApiType=rest`, what
//! LocalStack deploys) events in `events/v1/`.
//!
//! * `cargo xtask invoke <function> <event>` posts one event to the Lambda invoke API of the
//!   local stack (`POST {base}/2015-03-31/functions/<function>/invocations`, which
//!   `cargo lambda watch` serves next to the routes) and prints the function's response.
//! * `cargo xtask invoke --all` replays every event of `events/expected.json` in order and
//!   checks each status, problem `code` and `idempotent-replayed` header, then does the same
//!   with the payload 1.0 copies in `events/v1/` (their Idempotency-Keys are their own, so
//!   they create, pay and cancel orders of their own); any mismatch ends in a non-zero exit
//!   after the tables of results.
//! * `--via-http <base-url>` turns each event (either payload) into the real HTTP request it
//!   describes (method, path and query, headers, body) and sends it to `<base-url>` (http or
//!   https), e.g. the emulator's API Gateway stage URL `.../_aws/execute-api/<apiId>/v1`.
//!   Only this machine is reachable unless `--allow-remote` says otherwise (a deployed
//!   stage's `ApiUrl`, say).
//! * `--render-sam-local` writes both copies with fresh tokens and the matching `env.json`
//!   into `.local/sam-local/`, for `sam local invoke -e` and `sam local start-api --env-vars`.
//!
//! Events carry `Bearer {{token:user-N}}` placeholders; they are replaced with a fresh
//! development token for user-N signed with the stack's key. The events are written so that
//! a replay can run any number of times against the same table: every write uses an
//! Idempotency-Key, and order ids are the ones those keys derive.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::Value;

use crate::{data, paths, stack};

#[derive(clap::Args, Debug, Clone)]
pub(crate) struct Args {
    /// The function to invoke: create-order, pay-order, cancel-order or get-order.
    #[arg(required_unless_present_any = ["all", "render_sam_local"])]
    pub function: Option<String>,
    /// The event: a path, or a file name under events/ (e.g. create-order.json, or
    /// v1/create-order.json for its REST API copy).
    #[arg(required_unless_present_any = ["all", "render_sam_local"])]
    pub event: Option<PathBuf>,
    /// Replay every event of events/expected.json in order and check the answers: the
    /// payload 2.0 events, then their payload 1.0 copies in events/v1/ (invoke API only).
    #[arg(long, conflicts_with_all = ["function", "event"])]
    pub all: bool,
    /// The port of the local stack to send to (its state file has the URL and the key).
    #[arg(long, default_value_t = stack::DEFAULT_PORT)]
    pub port: u16,
    /// Send each event as a real HTTP request to this base URL instead of invoking the
    /// function, e.g. http://127.0.0.1:4566/_aws/execute-api/<apiId>/v1. Only this machine
    /// (127.0.0.1, localhost) unless --allow-remote.
    #[arg(long, value_name = "BASE_URL")]
    pub via_http: Option<String>,
    /// Let --via-http reach another host, e.g. a deployed stage's ApiUrl. The events create,
    /// pay and cancel orders of user-1 there, with tokens signed by the development key
    /// (.local/dev-jwt-secret): only a stage deployed with AuthMode=jwt and that key accepts
    /// them.
    #[arg(long, requires = "via_http")]
    pub allow_remote: bool,
    /// Write the events (payload 2.0, and 1.0 under v1/) with fresh tokens (valid 12 hours)
    /// and the env.json that matches them into .local/sam-local/, for `sam local invoke -e` and `sam local
    /// start-api --env-vars`, then exit.
    #[arg(long, conflicts_with_all = ["function", "event", "all", "via_http"])]
    pub render_sam_local: bool,
    /// The folder holding the events and expected.json.
    #[arg(long, default_value = "events")]
    pub events_dir: PathBuf,
}

/// Where events go.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// The Lambda invoke API of `cargo lambda watch` at this base URL.
    InvokeApi(String),
    /// Real HTTP requests to this base URL on this machine (an emulator's API Gateway stage
    /// or the local router).
    Http(String),
    /// Real HTTP requests to this base URL on any host (`--allow-remote`): a deployed stage.
    RemoteHttp(String),
}

impl Target {
    fn describe(&self) -> String {
        match self {
            Target::InvokeApi(base) => format!("the Lambda invoke API at {base}"),
            Target::Http(base) | Target::RemoteHttp(base) => format!("HTTP requests to {base}"),
        }
    }
}

/// The target of `--via-http <base>`: this machine only, unless `allow_remote`.
pub(crate) fn http_target(base: &str, allow_remote: bool) -> Result<Target> {
    let reach = if allow_remote {
        Reach::AnyHost
    } else {
        Reach::Loopback
    };
    split_url(base, reach)?;
    let base = base.trim_end_matches('/').to_owned();
    Ok(if allow_remote {
        Target::RemoteHttp(base)
    } else {
        Target::Http(base)
    })
}

pub(crate) fn run(args: &Args) -> Result<()> {
    let events_dir = paths::root().join(&args.events_dir);
    if args.render_sam_local {
        return render_sam_local(&events_dir, &paths::local().join("sam-local"));
    }
    let (target, secret) = match &args.via_http {
        Some(base) => (http_target(base, args.allow_remote)?, data::jwt_secret()?),
        None => {
            let state = stack::read_state_at(args.port).with_context(|| {
                format!(
                    "no local stack runs on port {}: start it with `cargo xtask up{}` or pass --via-http",
                    args.port,
                    if args.port == stack::DEFAULT_PORT {
                        String::new()
                    } else {
                        format!(" --port {}", args.port)
                    }
                )
            })?;
            (Target::InvokeApi(state.base_url), state.jwt_secret)
        }
    };
    if args.all {
        let mut reports = vec![replay(&target, &secret, &events_dir, Payload::V2)?];
        if matches!(target, Target::InvokeApi(_)) {
            reports.push(replay(&target, &secret, &events_dir, Payload::V1)?);
        } else {
            eprintln!(
                "(The payload 1.0 copies in events/v1/ are not replayed over HTTP: they describe \
                 the same requests, and the gateway makes its own event of each.)"
            );
        }
        let mut failed = Vec::new();
        for report in &reports {
            print_report(report);
            if !report.passed() {
                failed.push(format!(
                    "{} of {} {} events",
                    report.failures(),
                    report.outcomes.len(),
                    report.payload.name()
                ));
            }
        }
        if !failed.is_empty() {
            bail!("{} did not get the expected answer", failed.join(" and "));
        }
        return Ok(());
    }
    let (Some(function), Some(event)) = (&args.function, &args.event) else {
        bail!("pass <function> <event>, or --all");
    };
    let path = if event.is_file() {
        event.clone()
    } else {
        events_dir.join(event)
    };
    let event = load_event(&path, &secret)?;
    let answer = send(&target, function, &event)?;
    println!(
        "{} ({:.1} ms)",
        answer.status,
        answer.elapsed.as_secs_f64() * 1_000.0
    );
    for (name, value) in &answer.headers {
        println!("{name}: {value}");
    }
    println!();
    match serde_json::from_slice::<Value>(&answer.body) {
        Ok(json) => println!("{}", serde_json::to_string_pretty(&json)?),
        Err(_) => println!("{}", String::from_utf8_lossy(&answer.body)),
    }
    Ok(())
}

// ------------------------------------------------------------------------- events

/// One line of `events/expected.json`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Expectation {
    pub event: String,
    pub function: String,
    pub status: u16,
    #[serde(default)]
    pub code: Option<String>,
    /// `true`: the answer must carry `idempotent-replayed: true`; `false`: it must not.
    #[serde(default)]
    pub replayed: Option<bool>,
}

/// Which copy of the events: API Gateway HTTP API (payload 2.0, `events/<name>`) or REST API
/// (payload 1.0, `events/v1/<name>`, what `template.yaml`'s `ApiType=rest` sends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Payload {
    V2,
    V1,
}

impl Payload {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Payload::V2 => "payload 2.0",
            Payload::V1 => "payload 1.0",
        }
    }

    /// The file of the event named `event` in expected.json.
    pub(crate) fn path(self, events_dir: &Path, event: &str) -> PathBuf {
        match self {
            Payload::V2 => events_dir.join(event),
            Payload::V1 => events_dir.join("v1").join(event),
        }
    }
}

pub(crate) fn load_expectations(events_dir: &Path) -> Result<Vec<Expectation>> {
    let path = events_dir.join("expected.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a list of expectations", path.display()))
}

/// Reads an event and replaces every `{{token:<user>}}` with a fresh token for that user.
pub(crate) fn load_event(path: &Path, secret: &str) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let text = fill_placeholders(&text, secret)?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

/// The logical id of a function in template.yaml, which `sam local invoke` and env.json use:
/// `create-order` -> `CreateOrderFunction`.
pub(crate) fn logical_id(function: &str) -> String {
    let mut id: String = function
        .split('-')
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect();
    id.push_str("Function");
    id
}

/// The placeholder of `events/sam-local/env.json` that becomes the development key.
const SECRET_PLACEHOLDER: &str = "{{jwt-secret}}";

/// Fills the development key into the env.json template: every string value that is exactly
/// the placeholder. The result must name no placeholder any more.
fn render_env_json(template: &str, secret: &str) -> Result<Value> {
    fn fill(value: &mut Value, secret: &str) {
        match value {
            Value::String(text) if text == SECRET_PLACEHOLDER => *text = secret.to_owned(),
            Value::Object(map) => map.values_mut().for_each(|value| fill(value, secret)),
            Value::Array(items) => items.iter_mut().for_each(|value| fill(value, secret)),
            _ => {}
        }
    }
    let mut env: Value = serde_json::from_str(template).context("env.json is not JSON")?;
    fill(&mut env, secret);
    if serde_json::to_string(&env)?.contains("{{") {
        bail!("env.json has a placeholder other than {SECRET_PLACEHOLDER}");
    }
    Ok(env)
}

/// `--render-sam-local`: the events of both payloads with fresh tokens and the env.json with
/// the development key, into `out` (`.local/sam-local/`, git-ignored: tokens and key are
/// secrets of this machine): `events/<name>` (2.0) and `events/v1/<name>` (1.0).
pub(crate) fn render_sam_local(events_dir: &Path, out: &Path) -> Result<()> {
    let secret = data::jwt_secret()?;
    let events_out = out.join("events");
    let expectations = load_expectations(events_dir)?;
    for payload in [Payload::V2, Payload::V1] {
        let written = payload.path(&events_out, "");
        std::fs::create_dir_all(&written)?;
        for expectation in &expectations {
            let event = load_event(&payload.path(events_dir, &expectation.event), &secret)?;
            std::fs::write(
                written.join(&expectation.event),
                serde_json::to_string_pretty(&event)? + "\n",
            )?;
        }
    }
    let template_path = events_dir.join("sam-local/env.json");
    let template = std::fs::read_to_string(&template_path)
        .with_context(|| format!("cannot read {}", template_path.display()))?;
    let env = render_env_json(&template, &secret)
        .with_context(|| format!("{}", template_path.display()))?;
    std::fs::write(
        out.join("env.json"),
        serde_json::to_string_pretty(&env)? + "\n",
    )?;
    let shown = |path: &Path| {
        path.strip_prefix(paths::root())
            .unwrap_or(path)
            .display()
            .to_string()
    };
    println!(
        "Wrote {} events per payload with tokens valid for 12 hours to {} (2.0; 1.0 in v1/) and {}.",
        expectations.len(),
        shown(&events_out),
        shown(&out.join("env.json"))
    );
    println!("With DynamoDB Local running (`cargo xtask up`), after `sam build`:");
    let example = expectations
        .iter()
        .find(|expectation| expectation.function == "create-order")
        .unwrap_or(&expectations[0]);
    println!(
        "  sam local invoke {} -e {} --env-vars {}",
        logical_id(&example.function),
        shown(&events_out.join(&example.event)),
        shown(&out.join("env.json"))
    );
    println!(
        "  sam local start-api --env-vars {}    # then curl with $(cargo xtask token user-1)",
        shown(&out.join("env.json"))
    );
    Ok(())
}

fn fill_placeholders(text: &str, secret: &str) -> Result<String> {
    const OPEN: &str = "{{token:";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        out.push_str(&rest[..start]);
        let after = &rest[start + OPEN.len()..];
        let end = after
            .find("}}")
            .context("an unterminated {{token:...}} placeholder")?;
        let user = &after[..end];
        order_service::domain::UserId::parse(user)
            .map_err(|error| anyhow::anyhow!("placeholder {{{{token:{user}}}}}: {error}"))?;
        out.push_str(&data::sign(secret, user)?);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

// ------------------------------------------------------------------------- sending

/// What came back, whichever way the event went.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub status: u16,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub elapsed: Duration,
}

impl Answer {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The `code` of a problem+json body.
    pub(crate) fn code(&self) -> Option<String> {
        serde_json::from_slice::<Value>(&self.body)
            .ok()?
            .get("code")?
            .as_str()
            .map(str::to_owned)
    }
}

const TIMEOUT: Duration = Duration::from_secs(60);

pub(crate) fn send(target: &Target, function: &str, event: &Value) -> Result<Answer> {
    match target {
        Target::InvokeApi(base) => invoke(base, function, event),
        Target::Http(base) => send_as_http(base, event, Reach::Loopback),
        Target::RemoteHttp(base) => send_as_http(base, event, Reach::AnyHost),
    }
}

/// The API Gateway response a `lambda_http` function returns (payload 2.0 sets `headers`,
/// 1.0 `multiValueHeaders` as well).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LambdaResponse {
    status_code: u16,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    multi_value_headers: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    is_base64_encoded: bool,
}

fn invoke(base: &str, function: &str, event: &Value) -> Result<Answer> {
    let url = format!("{base}/2015-03-31/functions/{function}/invocations");
    let payload = serde_json::to_vec(event)?;
    let started = Instant::now();
    let response = http_request(
        "POST",
        &url,
        &[("content-type".to_owned(), "application/json".to_owned())],
        &payload,
        TIMEOUT,
    )?;
    let elapsed = started.elapsed();
    if response.status != 200 {
        bail!(
            "the invoke API answered {} for {function}: {}",
            response.status,
            String::from_utf8_lossy(&response.body)
        );
    }
    let lambda: LambdaResponse = serde_json::from_slice(&response.body).with_context(|| {
        format!(
            "{function} did not return an API Gateway response: {}",
            String::from_utf8_lossy(&response.body)
        )
    })?;
    let mut headers: Vec<(String, String)> = lambda
        .headers
        .into_iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value))
        .collect();
    for (name, values) in lambda.multi_value_headers {
        let name = name.to_ascii_lowercase();
        if headers.iter().all(|(key, _)| *key != name) {
            headers.extend(values.into_iter().map(|value| (name.clone(), value)));
        }
    }
    let body = match lambda.body {
        None => Vec::new(),
        Some(text) if lambda.is_base64_encoded => base64_decode(&text)?,
        Some(text) => text.into_bytes(),
    };
    Ok(Answer {
        status: lambda.status_code,
        headers,
        body,
        elapsed,
    })
}

/// The HTTP request an API Gateway event describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpParts {
    pub method: String,
    /// The path below the stage, e.g. `/users/user-1/orders`.
    pub path: String,
    /// Without the `?`; empty when there is none.
    pub query: String,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Reads the request out of a payload 2.0 event (`rawPath`, `rawQueryString`, `headers`) or
/// a payload 1.0 one (`httpMethod`, `path`, `multiValueQueryStringParameters` or
/// `queryStringParameters`, `multiValueHeaders` or `headers`).
pub(crate) fn http_parts(event: &Value) -> Result<HttpParts> {
    let text = |pointer: &str| event.pointer(pointer).and_then(Value::as_str);
    let strings = |value: &Value| -> Vec<String> {
        match value {
            Value::String(text) => vec![text.clone()],
            Value::Array(items) => items
                .iter()
                .filter_map(|item| item.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
    };
    // Name-value pairs of the first of these objects that the event has (1.0 events carry
    // both forms; the multi-value one holds every value).
    let pairs = |names: &[&str]| -> Vec<(String, String)> {
        names
            .iter()
            .find_map(|name| event.get(*name).and_then(Value::as_object))
            .map(|object| {
                object
                    .iter()
                    .flat_map(|(name, value)| {
                        strings(value)
                            .into_iter()
                            .map(move |value| (name.clone(), value))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let (method, path, query) = if event.get("version").and_then(Value::as_str) == Some("2.0") {
        (
            text("/requestContext/http/method")
                .context("the event has no requestContext.http.method")?,
            text("/rawPath").context("the event has no rawPath")?,
            text("/rawQueryString").unwrap_or("").to_owned(),
        )
    } else {
        let query = pairs(&["multiValueQueryStringParameters", "queryStringParameters"])
            .iter()
            .map(|(name, value)| format!("{}={}", percent_encode(name), percent_encode(value)))
            .collect::<Vec<_>>()
            .join("&");
        (
            text("/httpMethod").context("the event has neither version 2.0 nor httpMethod")?,
            text("/path").context("the event has no path")?,
            query,
        )
    };
    let headers = pairs(&["multiValueHeaders", "headers"])
        .into_iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value))
        .collect();
    let body = match text("/body") {
        None => Vec::new(),
        Some(body) if event.get("isBase64Encoded").and_then(Value::as_bool) == Some(true) => {
            base64_decode(body)?
        }
        Some(body) => body.as_bytes().to_vec(),
    };
    Ok(HttpParts {
        method: method.to_owned(),
        path: path.to_owned(),
        query,
        headers,
        body,
    })
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(byte).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// The HTTP request an API Gateway event describes, sent to `base` + its path.
fn send_as_http(base: &str, event: &Value, reach: Reach) -> Result<Answer> {
    let parts = http_parts(event)?;
    let url = if parts.query.is_empty() {
        format!("{base}{}", parts.path)
    } else {
        format!("{base}{}?{}", parts.path, parts.query)
    };
    let started = Instant::now();
    let response = http_request_with(
        reach,
        &parts.method,
        &url,
        &parts.headers,
        &parts.body,
        TIMEOUT,
    )?;
    Ok(Answer {
        status: response.status,
        headers: response.headers,
        body: response.body,
        elapsed: started.elapsed(),
    })
}

// ------------------------------------------------------------------------- replay

#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub expectation: Expectation,
    pub status: Option<u16>,
    pub code: Option<String>,
    pub replayed: bool,
    pub elapsed: Duration,
    /// Why it failed; `None` when the answer was the expected one.
    pub problem: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Report {
    pub target: String,
    pub payload: Payload,
    pub outcomes: Vec<Outcome>,
    pub elapsed: Duration,
}

impl Report {
    pub(crate) fn failures(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|outcome| outcome.problem.is_some())
            .count()
    }

    pub(crate) fn passed(&self) -> bool {
        self.failures() == 0 && !self.outcomes.is_empty()
    }
}

fn check(expectation: &Expectation, answer: &Answer) -> Option<String> {
    let mut problems = Vec::new();
    if answer.status != expectation.status {
        problems.push(format!(
            "status {} (want {})",
            answer.status, expectation.status
        ));
    }
    let code = answer.code();
    if let Some(want) = &expectation.code {
        if code.as_deref() != Some(want.as_str()) {
            problems.push(format!(
                "code {} (want {want})",
                code.as_deref().unwrap_or("none")
            ));
        }
    }
    let replayed = answer.header("idempotent-replayed") == Some("true");
    if let Some(want) = expectation.replayed {
        if replayed != want {
            problems.push(format!("idempotent-replayed {replayed} (want {want})"));
        }
    }
    if answer.status >= 400 && answer.header("content-type") != Some("application/problem+json") {
        problems.push(format!(
            "content-type {} (want application/problem+json)",
            answer.header("content-type").unwrap_or("none")
        ));
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}

/// Sends every payload 2.0 event of `expected.json` in order and checks each answer.
pub(crate) fn replay_all(target: &Target, secret: &str, events_dir: &Path) -> Result<Report> {
    replay(target, secret, events_dir, Payload::V2)
}

/// Sends every event of `expected.json` in `payload`'s copy, in order, and checks each
/// answer. A failure to send one event is recorded as its outcome; the replay goes on.
pub(crate) fn replay(
    target: &Target,
    secret: &str,
    events_dir: &Path,
    payload: Payload,
) -> Result<Report> {
    let expectations = load_expectations(events_dir)?;
    if expectations.is_empty() {
        bail!(
            "{} lists no events",
            events_dir.join("expected.json").display()
        );
    }
    eprintln!(
        "Replaying {} {} events to {} ...",
        expectations.len(),
        payload.name(),
        target.describe()
    );
    let started = Instant::now();
    let mut outcomes = Vec::with_capacity(expectations.len());
    for expectation in expectations {
        let sent = load_event(&payload.path(events_dir, &expectation.event), secret)
            .and_then(|event| send(target, &expectation.function, &event));
        let outcome = match sent {
            Ok(answer) => Outcome {
                problem: check(&expectation, &answer),
                status: Some(answer.status),
                code: answer.code(),
                replayed: answer.header("idempotent-replayed") == Some("true"),
                elapsed: answer.elapsed,
                expectation,
            },
            Err(error) => Outcome {
                expectation,
                status: None,
                code: None,
                replayed: false,
                elapsed: Duration::ZERO,
                problem: Some(format!("{error:#}")),
            },
        };
        outcomes.push(outcome);
    }
    Ok(Report {
        target: target.describe(),
        payload,
        outcomes,
        elapsed: started.elapsed(),
    })
}

fn describe(status: Option<u16>, code: Option<&str>, replayed: bool) -> String {
    let mut text = status.map_or_else(|| "-".to_owned(), |status| status.to_string());
    if let Some(code) = code {
        text.push(' ');
        text.push_str(code);
    }
    if replayed {
        text.push_str(" replayed");
    }
    text
}

pub(crate) fn print_report(report: &Report) {
    let rows: Vec<[String; 6]> = report
        .outcomes
        .iter()
        .enumerate()
        .map(|(index, outcome)| {
            let want = &outcome.expectation;
            [
                (index + 1).to_string(),
                want.event.clone(),
                want.function.clone(),
                describe(
                    Some(want.status),
                    want.code.as_deref(),
                    want.replayed == Some(true),
                ),
                describe(outcome.status, outcome.code.as_deref(), outcome.replayed),
                format!("{:.1}", outcome.elapsed.as_secs_f64() * 1_000.0),
            ]
        })
        .collect();
    let header = ["#", "event", "function", "expected", "got", "ms"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let line = |cells: [&str; 6], verdict: &str| {
        println!(
            "{:>w0$}  {:<w1$}  {:<w2$}  {:<w3$}  {:<w4$}  {:>w5$}  {verdict}",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            cells[4],
            cells[5],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
            w4 = widths[4],
            w5 = widths[5],
        );
    };
    line(header, "result");
    for (row, outcome) in rows.iter().zip(&report.outcomes) {
        let verdict = match &outcome.problem {
            None => "ok".to_owned(),
            Some(problem) => format!("FAIL: {problem}"),
        };
        line(
            [&row[0], &row[1], &row[2], &row[3], &row[4], &row[5]],
            &verdict,
        );
    }
    let mut latencies: Vec<f64> = report
        .outcomes
        .iter()
        .filter(|outcome| outcome.status.is_some())
        .map(|outcome| outcome.elapsed.as_secs_f64() * 1_000.0)
        .collect();
    latencies.sort_by(f64::total_cmp);
    let median = latencies.get(latencies.len() / 2).copied().unwrap_or(0.0);
    let max = latencies.last().copied().unwrap_or(0.0);
    println!(
        "{} of {} {} events as expected via {} in {:.2} s (median {median:.1} ms, max {max:.1} ms)",
        report.outcomes.len() - report.failures(),
        report.outcomes.len(),
        report.payload.name(),
        report.target,
        report.elapsed.as_secs_f64(),
    );
}

// ------------------------------------------------------------------------- HTTP

/// A response: status, headers and the whole body.
#[derive(Debug, Clone)]
pub(crate) struct HttpResponse {
    pub status: u16,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Which hosts a request may go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reach {
    /// 127.0.0.1 and localhost only: what every command sends to unless told otherwise.
    Loopback,
    /// Any host (`invoke --via-http ... --allow-remote`).
    AnyHost,
}

/// The parts of an `http://` or `https://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UrlParts<'a> {
    pub https: bool,
    pub host: &'a str,
    pub port: u16,
    /// The path and query, at least `/`.
    pub target: &'a str,
}

fn is_loopback(host: &str) -> bool {
    host == "127.0.0.1" || host == "localhost"
}

/// Splits an `http://` or `https://` URL, refusing hosts other than 127.0.0.1 and localhost
/// unless `reach` is [`Reach::AnyHost`].
pub(crate) fn split_url(url: &str, reach: Reach) -> Result<UrlParts<'_>> {
    let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else {
        bail!("{url}: only http:// and https:// URLs are supported");
    };
    let (authority, target) = match rest.find('/') {
        Some(index) => (&rest[..index], &rest[index..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (
            host,
            port.parse::<u16>()
                .with_context(|| format!("{url}: bad port"))?,
        ),
        None => (authority, if https { 443 } else { 80 }),
    };
    if host.is_empty() {
        bail!("{url}: no host");
    }
    if !is_loopback(host) && reach == Reach::Loopback {
        bail!(
            "refusing to send to {host}: only 127.0.0.1 and localhost are reachable unless you \
             pass --allow-remote (events write orders and carry tokens)"
        );
    }
    Ok(UrlParts {
        https,
        host,
        port,
        target,
    })
}

/// One request to a URL on the loopback interface (where the local stack and the emulators
/// listen), over a connection of its own.
pub(crate) fn http_request(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: &[u8],
    timeout: Duration,
) -> Result<HttpResponse> {
    http_request_with(Reach::Loopback, method, url, headers, body, timeout)
}

/// [`http_request`] to the hosts `reach` allows, over plain HTTP or HTTPS (ureq; rustls with
/// the aws-lc-rs provider and Mozilla's root certificates). Every status is an answer, not an
/// error; a request that gets no answer within `timeout` is one.
pub(crate) fn http_request_with(
    reach: Reach,
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: &[u8],
    timeout: Duration,
) -> Result<HttpResponse> {
    let parts = split_url(url, reach)?;
    let tls = ureq::tls::TlsConfig::builder()
        .unversioned_rustls_crypto_provider(std::sync::Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .build();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .timeout_connect(Some(timeout))
        // No pooling: one request per connection, like the gateway's clients in a burst.
        .max_idle_connections(0)
        .max_redirects(0)
        // Traffic to this machine never goes through a proxy from the environment.
        .proxy(if is_loopback(parts.host) {
            None
        } else {
            ureq::Proxy::try_from_env()
        })
        .tls_config(tls)
        .build()
        .into();
    let mut request = ureq::http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        let lower = name.to_ascii_lowercase();
        if matches!(
            lower.as_str(),
            "host" | "connection" | "content-length" | "transfer-encoding"
        ) {
            continue;
        }
        request = request.header(lower, value.as_str());
    }
    let request = request
        .body(body.to_vec())
        .with_context(|| format!("{method} {url}: not a valid request"))?;
    let mut response = agent
        .run(request)
        .with_context(|| format!("{method} {url}"))?;
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = response
        .body_mut()
        .with_config()
        .limit(64 * 1024 * 1024)
        .read_to_vec()
        .with_context(|| format!("{method} {url}: reading the body"))?;
    Ok(HttpResponse {
        status: response.status().as_u16(),
        headers,
        body,
    })
}

fn base64_decode(text: &str) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut accumulator: u32 = 0;
    let mut bits = 0;
    for byte in text.bytes() {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' | b'\r' | b'\n' => continue,
            _ => bail!("the body is not base64"),
        };
        accumulator = (accumulator << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((accumulator >> bits) as u8);
            accumulator &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_tokens_for_their_user() -> Result<()> {
        let secret = "0123456789abcdef0123456789abcdef";
        let text = fill_placeholders(
            r#"{"a":"Bearer {{token:user-7}}","b":"{{token:user-8}}"}"#,
            secret,
        )?;
        assert!(!text.contains("{{"));
        let value: Value = serde_json::from_str(&text)?;
        let token = value["a"]
            .as_str()
            .and_then(|a| a.strip_prefix("Bearer "))
            .unwrap_or_default();
        let payload = token.split('.').nth(1).unwrap_or_default();
        let claims: Value = serde_json::from_slice(&base64_decode(payload)?)?;
        assert_eq!(claims["sub"], "user-7");
        assert_eq!(claims["aud"], order_service::auth::LOCAL_AUDIENCE);
        assert!(fill_placeholders("{{token:bad user}}", secret).is_err());
        assert!(fill_placeholders("{{token:user-1", secret).is_err());
        Ok(())
    }

    #[test]
    fn base64_round_trips_what_lambda_http_sends() -> Result<()> {
        assert_eq!(
            base64_decode("eyJjb2RlIjoiWCJ9")?,
            br#"{"code":"X"}"#.to_vec()
        );
        assert_eq!(base64_decode("YQ==")?, b"a".to_vec());
        Ok(())
    }

    #[test]
    fn another_host_needs_the_opt_in() -> Result<()> {
        let refused = split_url("http://api.example.com/v1", Reach::Loopback);
        assert!(refused.is_err_and(|error| error.to_string().contains("--allow-remote")));
        let parts = split_url("http://api.example.com:8080/v1", Reach::AnyHost)?;
        assert_eq!(
            (parts.host, parts.port, parts.target),
            ("api.example.com", 8080, "/v1")
        );
        assert!(http_target("http://localhost:4566/x/", false).is_ok_and(
            |target| matches!(target, Target::Http(base) if base == "http://localhost:4566/x")
        ));
        assert!(matches!(
            http_target("http://10.0.0.7:4566", true)?,
            Target::RemoteHttp(_)
        ));
        let stage = split_url(
            "https://abc.execute-api.eu-west-1.amazonaws.com/v1",
            Reach::AnyHost,
        )?;
        assert_eq!((stage.https, stage.port, stage.target), (true, 443, "/v1"));
        assert!(split_url("https://abc.example.com/v1", Reach::Loopback).is_err());
        assert!(split_url("ftp://127.0.0.1/", Reach::AnyHost).is_err());
        Ok(())
    }

    #[test]
    fn both_payloads_describe_their_request() -> Result<()> {
        let v2 = serde_json::json!({
            "version": "2.0",
            "rawPath": "/users/user-1/orders",
            "rawQueryString": "limit=5&cursor=a%2Bb",
            "headers": {"Authorization": "Bearer x"},
            "requestContext": {"http": {"method": "GET"}},
            "isBase64Encoded": false
        });
        let v1 = serde_json::json!({
            "httpMethod": "GET",
            "path": "/users/user-1/orders",
            "headers": {"Authorization": "Bearer x"},
            "multiValueHeaders": {"Authorization": ["Bearer x"]},
            "queryStringParameters": {"limit": "5", "cursor": "a+b"},
            "multiValueQueryStringParameters": {"limit": ["5"], "cursor": ["a+b"]},
            "body": null,
            "isBase64Encoded": false
        });
        let (v2, v1) = (http_parts(&v2)?, http_parts(&v1)?);
        assert_eq!(v1.method, "GET");
        assert_eq!(v1.path, v2.path);
        assert_eq!(
            v1.headers,
            vec![("authorization".to_owned(), "Bearer x".to_owned())]
        );
        assert_eq!(v1.headers, v2.headers);
        // serde_json keeps object keys sorted: cursor before limit.
        assert_eq!(v1.query, "cursor=a%2Bb&limit=5");
        assert!(v1.body.is_empty());
        Ok(())
    }

    fn events_dir() -> PathBuf {
        paths::root().join("events")
    }

    fn read_json(path: &Path) -> Result<Value> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
    }

    /// The order id a keyed create of `user` derives (what the later events address).
    fn derived_order_id(user: &str, key: &str) -> Result<String> {
        let user = order_service::domain::UserId::parse(user)
            .map_err(|error| anyhow::anyhow!("{error}"))?;
        let key = order_service::domain::IdempotencyKey::parse(key)
            .map_err(|error| anyhow::anyhow!("{error}"))?;
        Ok(key.order_id(&user).to_string())
    }

    /// Every payload 1.0 copy is the REST proxy event of the same request as its payload 2.0
    /// original, with Idempotency-Keys of its own (so a replay after the 2.0 one creates and
    /// pays its own orders) and the order ids those keys derive.
    #[test]
    fn payload_one_copies_mirror_the_originals() -> Result<()> {
        let dir = events_dir();
        let expectations = load_expectations(&dir)?;
        let mut copies: Vec<String> = std::fs::read_dir(dir.join("v1"))?
            .map(|entry| Ok(entry?.file_name().to_string_lossy().into_owned()))
            .collect::<Result<_>>()?;
        copies.sort();
        let mut listed: Vec<String> = expectations.iter().map(|e| e.event.clone()).collect();
        listed.sort();
        listed.dedup();
        assert_eq!(
            copies, listed,
            "events/v1/ holds exactly the events of expected.json"
        );

        // The order ids the keyed creates derive: 2.0 id -> 1.0 id.
        let mut created: BTreeMap<String, String> = BTreeMap::new();
        for expectation in &expectations {
            let v2 = read_json(&Payload::V2.path(&dir, &expectation.event))?;
            let v1 = read_json(&Payload::V1.path(&dir, &expectation.event))?;
            let keys = (
                v2["headers"]["idempotency-key"].as_str(),
                v1["headers"]["idempotency-key"].as_str(),
            );
            if v2["routeKey"] == "POST /users/{userId}/orders" && expectation.status == 201 {
                if let (Some(key_v2), Some(key_v1)) = keys {
                    let user = v2["pathParameters"]["userId"].as_str().context("userId")?;
                    created.insert(
                        derived_order_id(user, key_v2)?,
                        derived_order_id(user, key_v1)?,
                    );
                }
            }
        }
        assert!(!created.is_empty());
        for expectation in &expectations {
            let name = &expectation.event;
            let v2 = read_json(&Payload::V2.path(&dir, name))?;
            let v1 = read_json(&Payload::V1.path(&dir, name))?;
            let (route_method, resource) = v2["routeKey"]
                .as_str()
                .and_then(|key| key.split_once(' '))
                .context("routeKey")?;
            assert!(v1.get("version").is_none(), "{name}");
            assert_eq!(v1["httpMethod"], route_method, "{name}");
            assert_eq!(v1["resource"], resource, "{name}");
            assert_eq!(v1["requestContext"]["httpMethod"], route_method, "{name}");
            assert_eq!(v1["requestContext"]["resourcePath"], resource, "{name}");
            assert_eq!(v1["requestContext"]["stage"], "v1", "{name}");
            assert_eq!(
                v1["requestContext"]["authorizer"]["claims"],
                v2["requestContext"]["authorizer"]["jwt"]["claims"],
                "{name}"
            );
            // path is the resource with the path parameters filled in; the context's path
            // carries the stage.
            let mut path = resource.to_owned();
            for (parameter, value) in v1["pathParameters"].as_object().context("pathParameters")? {
                path = path.replace(&format!("{{{parameter}}}"), value.as_str().unwrap_or(""));
            }
            assert_eq!(v1["path"], path.as_str(), "{name}");
            assert_eq!(v1["requestContext"]["path"], format!("/v1{path}"), "{name}");
            for (header, values) in v1["multiValueHeaders"].as_object().context("headers")? {
                assert_eq!(
                    values,
                    &serde_json::json!([v1["headers"][header]]),
                    "{name}"
                );
            }

            let (request_v2, request_v1) = (http_parts(&v2)?, http_parts(&v1)?);
            assert_eq!(request_v1.method, request_v2.method, "{name}");
            assert_eq!(request_v1.query, request_v2.query, "{name}");
            assert_eq!(request_v1.body, request_v2.body, "{name}");
            let key = |parts: &HttpParts| {
                parts
                    .headers
                    .iter()
                    .find(|(header, _)| header == "idempotency-key")
                    .map(|(_, value)| value.clone())
            };
            let others = |parts: &HttpParts| -> Vec<(String, String)> {
                let mut headers: Vec<_> = parts
                    .headers
                    .iter()
                    .filter(|(header, _)| header != "idempotency-key")
                    .cloned()
                    .collect();
                headers.sort();
                headers
            };
            assert_eq!(others(&request_v1), others(&request_v2), "{name}");
            let (key_v2, key_v1) = (key(&request_v2), key(&request_v1));
            assert_eq!(key_v1.is_some(), key_v2.is_some(), "{name}");
            if let (Some(key_v2), Some(key_v1)) = (&key_v2, &key_v1) {
                assert_eq!(
                    *key_v1,
                    key_v2.replacen("events-", "events-v1-", 1),
                    "{name}: a key of its own"
                );
            }
            // The path addresses the 1.0 copy of every order a 2.0 create made.
            let mut expected_path = request_v2.path.clone();
            for (id_v2, id_v1) in &created {
                expected_path = expected_path.replace(id_v2.as_str(), id_v1);
            }
            assert_eq!(request_v1.path, expected_path, "{name}");
        }
        Ok(())
    }

    /// env.json gives every function the local stack's table, DynamoDB Local's port as seen
    /// from containers, and self-verified tokens with the key `--render-sam-local` fills in.
    #[test]
    fn sam_local_env_matches_the_local_stack() -> Result<()> {
        let template = std::fs::read_to_string(events_dir().join("sam-local/env.json"))?;
        let env = render_env_json(&template, "0123456789abcdef0123456789abcdef")?;
        for function in stack::FUNCTIONS {
            let id = logical_id(function);
            let value = |name: &str| {
                env[id.as_str()]
                    .get(name)
                    .or_else(|| env["Parameters"].get(name))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            };
            assert_eq!(
                value("TABLE_NAME").as_deref(),
                Some(stack::TABLE_NAME),
                "{id}"
            );
            assert_eq!(value("AUTH_MODE").as_deref(), Some("jwt"), "{id}");
            assert_eq!(
                value("AUTH_JWT_SECRET").as_deref(),
                Some("0123456789abcdef0123456789abcdef")
            );
            assert_eq!(
                value("AUTH_ISSUER").as_deref(),
                Some(order_service::auth::LOCAL_ISSUER)
            );
            assert_eq!(
                value("AUTH_AUDIENCE").as_deref(),
                Some(order_service::auth::LOCAL_AUDIENCE)
            );
            assert!(value("AWS_ENDPOINT_URL").is_some_and(|url| url.ends_with(":8000")));
        }
        assert_eq!(logical_id("cancel-order"), "CancelOrderFunction");
        assert!(render_env_json(r#"{"A": "{{other}}"}"#, "k").is_err());
        Ok(())
    }

    #[test]
    fn only_loopback_is_reachable() {
        let refused = http_request(
            "GET",
            "http://example.com/",
            &[],
            &[],
            Duration::from_millis(10),
        );
        assert!(refused.is_err_and(|error| error.to_string().contains("only 127.0.0.1")));
    }
}
