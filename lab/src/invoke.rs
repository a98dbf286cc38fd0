//! `cargo xtask invoke`: sends the saved API Gateway events of `events/` to a running stack:
//! HTTP API (payload 2.0, what `template.yaml` sends) events in `events/`, and the same
//! requests as REST API (payload 1.0 proxy integration: the REST variant `cargo xtask template
//! --rest` writes, what LocalStack deploys) events in `events/v1/`.
//!
//! * `cargo xtask invoke <function> <event>` posts one event to the Lambda invoke API of the
//!   local stack (`POST {base}/2015-03-31/functions/<function>/invocations`, which
//!   `cargo lambda watch` serves next to the routes) and prints the function's response.
//! * `cargo xtask invoke --all` replays every event of `events/expected.json` in order and
//!   checks each status, problem `code` and `idempotent-replayed` header, then does the same
//!   with the payload 1.0 copies in `events/v1/` (their Idempotency-Keys are their own, so
//!   they create, pay, refund and cancel orders of their own); any mismatch ends in a
//!   non-zero exit after the tables of results.
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

use crate::http::{split_url, HttpResponse, Reach, Request};
use crate::paths;
use crate::state;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// The function to invoke: create-order, pay-order, cancel-order, refund-order or
    /// get-order.
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
    #[arg(long, default_value_t = state::DEFAULT_PORT)]
    pub port: u16,
    /// Send each event as a real HTTP request to this base URL instead of invoking the
    /// function, e.g. http://127.0.0.1:4566/_aws/execute-api/<apiId>/v1. Only this machine
    /// (127.0.0.1, localhost) unless --allow-remote.
    #[arg(long, value_name = "BASE_URL")]
    pub via_http: Option<String>,
    /// Let --via-http reach another host, e.g. a deployed stage's ApiUrl. The events create,
    /// pay, refund and cancel orders of user-1 there, with tokens signed by the development key
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

pub fn run(args: &Args) -> Result<()> {
    let events_dir = paths::root().join(&args.events_dir);
    if args.render_sam_local {
        return render_sam_local(&events_dir, &paths::local().join("sam-local"));
    }
    let (target, secret) = match &args.via_http {
        Some(base) => (
            http_target(base, args.allow_remote)?,
            crate::token::jwt_secret()?,
        ),
        None => {
            let state = state::read_state_at(args.port).with_context(|| {
                format!(
                    "no local stack runs on port {}: start it with `cargo xtask up{}` or pass --via-http",
                    args.port,
                    if args.port == state::DEFAULT_PORT {
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

mod events;
mod replay;
mod send;

pub(crate) use events::*;
pub(crate) use replay::*;
pub(crate) use send::*;
