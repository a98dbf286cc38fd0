//! `cargo xtask invoke`: sends the saved API Gateway (HTTP API, payload 2.0) events of
//! `events/` to a running stack.
//!
//! * `cargo xtask invoke <function> <event>` posts one event to the Lambda invoke API of the
//!   local stack (`POST {base}/2015-03-31/functions/<function>/invocations`, which
//!   `cargo lambda watch` serves next to the routes) and prints the function's response.
//! * `cargo xtask invoke --all` replays every event of `events/expected.json` in order and
//!   checks each status, problem `code` and `idempotent-replayed` header; any mismatch ends
//!   in a non-zero exit after the table of results.
//! * `--via-http <base-url>` turns each event into the real HTTP request it describes
//!   (method, rawPath + rawQueryString, headers, body) and sends it to `<base-url>`, e.g. the
//!   emulator's API Gateway stage URL `.../_aws/execute-api/<apiId>/v1`.
//!
//! Events carry `Bearer {{token:user-N}}` placeholders; they are replaced with a fresh
//! development token for user-N signed with the stack's key. The events are written so that
//! a replay can run any number of times against the same table: every write uses an
//! Idempotency-Key, and order ids are the ones those keys derive.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::Value;

use crate::{data, paths, stack};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// The function to invoke: create-order, pay-order, cancel-order or get-order.
    #[arg(required_unless_present = "all")]
    pub function: Option<String>,
    /// The event: a path, or a file name under events/ (e.g. create-order.json).
    #[arg(required_unless_present = "all")]
    pub event: Option<PathBuf>,
    /// Replay every event of events/expected.json in order and check the answers.
    #[arg(long, conflicts_with_all = ["function", "event"])]
    pub all: bool,
    /// The port of the local stack to send to (its state file has the URL and the key).
    #[arg(long, default_value_t = stack::DEFAULT_PORT)]
    pub port: u16,
    /// Send each event as a real HTTP request to this base URL (loopback only) instead of
    /// invoking the function, e.g. http://127.0.0.1:4566/_aws/execute-api/<apiId>/v1.
    #[arg(long, value_name = "BASE_URL")]
    pub via_http: Option<String>,
    /// The folder holding the events and expected.json.
    #[arg(long, default_value = "events")]
    pub events_dir: PathBuf,
}

/// Where events go.
#[derive(Debug, Clone)]
pub enum Target {
    /// The Lambda invoke API of `cargo lambda watch` at this base URL.
    InvokeApi(String),
    /// Real HTTP requests to this base URL (an API Gateway stage or the local router).
    Http(String),
}

impl Target {
    fn describe(&self) -> String {
        match self {
            Target::InvokeApi(base) => format!("the Lambda invoke API at {base}"),
            Target::Http(base) => format!("HTTP requests to {base}"),
        }
    }
}

pub fn run(args: &Args) -> Result<()> {
    let events_dir = paths::root().join(&args.events_dir);
    let (target, secret) = match &args.via_http {
        Some(base) => (
            {
                split_loopback_url(base)?;
                Target::Http(base.trim_end_matches('/').to_owned())
            },
            data::jwt_secret()?,
        ),
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
        let report = replay_all(&target, &secret, &events_dir)?;
        print_report(&report);
        if !report.passed() {
            bail!(
                "{} of {} events did not get the expected answer",
                report.failures(),
                report.outcomes.len()
            );
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
pub struct Expectation {
    pub event: String,
    pub function: String,
    pub status: u16,
    #[serde(default)]
    pub code: Option<String>,
    /// `true`: the answer must carry `idempotent-replayed: true`; `false`: it must not.
    #[serde(default)]
    pub replayed: Option<bool>,
}

pub fn load_expectations(events_dir: &Path) -> Result<Vec<Expectation>> {
    let path = events_dir.join("expected.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a list of expectations", path.display()))
}

/// Reads an event and replaces every `{{token:<user>}}` with a fresh token for that user.
pub fn load_event(path: &Path, secret: &str) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let text = fill_placeholders(&text, secret)?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
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
pub struct Answer {
    pub status: u16,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub elapsed: Duration,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The `code` of a problem+json body.
    pub fn code(&self) -> Option<String> {
        serde_json::from_slice::<Value>(&self.body)
            .ok()?
            .get("code")?
            .as_str()
            .map(str::to_owned)
    }
}

const TIMEOUT: Duration = Duration::from_secs(60);

pub fn send(target: &Target, function: &str, event: &Value) -> Result<Answer> {
    match target {
        Target::InvokeApi(base) => invoke(base, function, event),
        Target::Http(base) => send_as_http(base, event),
    }
}

/// The API Gateway v2 response a `lambda_http` function returns.
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

/// The HTTP request an API Gateway v2 event describes, sent to `base` + rawPath.
fn send_as_http(base: &str, event: &Value) -> Result<Answer> {
    let text = |pointer: &str| event.pointer(pointer).and_then(Value::as_str);
    let method = text("/requestContext/http/method")
        .context("the event has no requestContext.http.method")?;
    let path = text("/rawPath").context("the event has no rawPath")?;
    let query = text("/rawQueryString").unwrap_or("");
    let url = if query.is_empty() {
        format!("{base}{path}")
    } else {
        format!("{base}{path}?{query}")
    };
    let headers: Vec<(String, String)> = event
        .get("headers")
        .and_then(Value::as_object)
        .map(|headers| {
            headers
                .iter()
                .filter_map(|(name, value)| {
                    Some((name.to_ascii_lowercase(), value.as_str()?.to_owned()))
                })
                .collect()
        })
        .unwrap_or_default();
    let body = match text("/body") {
        None => Vec::new(),
        Some(body) if event.get("isBase64Encoded").and_then(Value::as_bool) == Some(true) => {
            base64_decode(body)?
        }
        Some(body) => body.as_bytes().to_vec(),
    };
    let started = Instant::now();
    let response = http_request(method, &url, &headers, &body, TIMEOUT)?;
    Ok(Answer {
        status: response.status,
        headers: response.headers,
        body: response.body,
        elapsed: started.elapsed(),
    })
}

// ------------------------------------------------------------------------- replay

#[derive(Debug, Clone)]
pub struct Outcome {
    pub expectation: Expectation,
    pub status: Option<u16>,
    pub code: Option<String>,
    pub replayed: bool,
    pub elapsed: Duration,
    /// Why it failed; `None` when the answer was the expected one.
    pub problem: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub target: String,
    pub outcomes: Vec<Outcome>,
    pub elapsed: Duration,
}

impl Report {
    pub fn failures(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|outcome| outcome.problem.is_some())
            .count()
    }

    pub fn passed(&self) -> bool {
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

/// Sends every event of `expected.json` in order and checks each answer. A failure to send
/// one event is recorded as its outcome; the replay goes on.
pub fn replay_all(target: &Target, secret: &str, events_dir: &Path) -> Result<Report> {
    let expectations = load_expectations(events_dir)?;
    if expectations.is_empty() {
        bail!(
            "{} lists no events",
            events_dir.join("expected.json").display()
        );
    }
    eprintln!(
        "Replaying {} events to {} ...",
        expectations.len(),
        target.describe()
    );
    let started = Instant::now();
    let mut outcomes = Vec::with_capacity(expectations.len());
    for expectation in expectations {
        let sent = load_event(&events_dir.join(&expectation.event), secret)
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

pub fn print_report(report: &Report) {
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
        "{} of {} events as expected via {} in {:.2} s (median {median:.1} ms, max {max:.1} ms)",
        report.outcomes.len() - report.failures(),
        report.outcomes.len(),
        report.target,
        report.elapsed.as_secs_f64(),
    );
}

// ------------------------------------------------------------------------- HTTP/1.1

/// A response read off the wire.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// `(authority, port, path and query)` of a plain `http://` URL on 127.0.0.1 or localhost;
/// anything else is refused.
pub fn split_loopback_url(url: &str) -> Result<(&str, u16, &str)> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("{url}: only http:// URLs are supported"))?;
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
        None => (authority, 80),
    };
    if host != "127.0.0.1" && host != "localhost" {
        bail!("refusing to send to {host}: only 127.0.0.1 is allowed");
    }
    Ok((authority, port, target))
}

/// A minimal HTTP/1.1 client for plain `http://` URLs on the loopback interface only (the
/// only place this project sends traffic to). One request per connection.
pub fn http_request(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: &[u8],
    timeout: Duration,
) -> Result<HttpResponse> {
    let (authority, port, target) = split_loopback_url(url)?;
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&address, timeout)
        .with_context(|| format!("cannot connect to {authority}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut head =
        format!("{method} {target} HTTP/1.1\r\nhost: {authority}\r\nconnection: close\r\n");
    for (name, value) in headers {
        let lower = name.to_ascii_lowercase();
        if matches!(
            lower.as_str(),
            "host" | "connection" | "content-length" | "transfer-encoding"
        ) {
            continue;
        }
        if name.contains(['\r', '\n']) || value.contains(['\r', '\n']) {
            bail!("header {name} contains a line break");
        }
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
        head.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()?;
    read_response(&mut stream, method == "HEAD").with_context(|| format!("{method} {url}"))
}

fn read_response(stream: &mut TcpStream, head_only: bool) -> Result<HttpResponse> {
    let mut buffer = Vec::with_capacity(8 * 1024);
    let mut chunk = [0_u8; 16 * 1024];
    // (status, headers, where the body starts) once the head has arrived.
    let mut parsed: Option<Head> = None;
    loop {
        if parsed.is_none() {
            if let Some(end) = find(&buffer, b"\r\n\r\n") {
                let (status, headers) = parse_head(&buffer[..end])?;
                parsed = Some((status, headers, end + 4));
            }
        }
        if let Some((status, headers, start)) = &parsed {
            let header = |name: &str| {
                headers
                    .iter()
                    .find(|(key, _)| key == name)
                    .map(|(_, value)| value.as_str())
            };
            let body = &buffer[*start..];
            let complete =
                if head_only || *status == 204 || *status == 304 || (100..200).contains(status) {
                    Some(Vec::new())
                } else if header("transfer-encoding")
                    .is_some_and(|value| value.to_ascii_lowercase().contains("chunked"))
                {
                    dechunk(body)?
                } else if let Some(length) = header("content-length") {
                    let length: usize = length.trim().parse().context("bad content-length")?;
                    (body.len() >= length).then(|| body[..length].to_vec())
                } else {
                    None
                };
            if let Some(body) = complete {
                return Ok(HttpResponse {
                    status: *status,
                    headers: headers.clone(),
                    body,
                });
            }
        }
        let read = stream.read(&mut chunk)?;
        if read == 0 {
            // The server closed the connection: whatever arrived is the body.
            let Some((status, headers, start)) = parsed else {
                bail!("the connection closed before a complete response head");
            };
            return Ok(HttpResponse {
                status,
                headers,
                body: buffer[start..].to_vec(),
            });
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
}

type Head = (u16, Vec<(String, String)>, usize);

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn parse_head(head: &[u8]) -> Result<(u16, Vec<(String, String)>)> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .with_context(|| format!("not an HTTP status line: {status_line:?}"))?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    Ok((status, headers))
}

/// The body of a chunked message, or `None` while it is incomplete.
fn dechunk(mut data: &[u8]) -> Result<Option<Vec<u8>>> {
    let mut body = Vec::new();
    loop {
        let Some(line_end) = find(data, b"\r\n") else {
            return Ok(None);
        };
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .with_context(|| format!("bad chunk size {size_text:?}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(Some(body));
        }
        if data.len() < size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
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
    fn chunked_bodies_are_reassembled() -> Result<()> {
        assert_eq!(
            dechunk(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")?,
            Some(b"hello world".to_vec())
        );
        assert_eq!(dechunk(b"5\r\nhel")?, None);
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
