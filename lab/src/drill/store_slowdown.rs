//! `cargo xtask drill store-slowdown`: the stack's `dynamodb-faithful` (which the functions
//! reach) answers late for the fault window; then, after recovery, a short episode in which
//! only the answers to TransactWriteItems are late. Expected: slow calls end as fast 503s
//! within the store budget, and creates the client abandoned apply exactly once when retried
//! with their Idempotency-Key.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result};
use dynamodb_faithful::Faults;
use order_service::domain::Order;
use serde_json::{json, Value};

use crate::clock::now_ms;
use crate::faithful::Faithful;
use crate::monitor::{self, percentile};

use super::runner::{Description, Drill, Scenario};
use super::support::http;
use super::{FUNCTION_TIMEOUT_MS, PROBE_PRODUCT, PROBE_USER};
use crate::http::HttpResponse;

/// The drill and its exactly-once probes: creates with an Idempotency-Key that the client
/// abandons (0.8 s timeout) while the store is slow, retried with the same key afterwards.
/// `stock_before` is the probes' product's stock before the first of them.
#[derive(Debug, Clone, Default)]
pub(super) struct StoreSlowdown {
    stock_before: Option<i64>,
    probes: Vec<ExactlyOnceProbe>,
}

#[derive(Debug, Clone, Default)]
struct ExactlyOnceProbe {
    /// What was slow when it was sent.
    phase: String,
    key: String,
    /// The order id the key maps to (IdempotencyKey::order_id).
    order_id: String,
    first: Option<HttpResponse>,
    /// Whether the order existed before the retry (the abandoned attempt was applied).
    applied_before_retry: Option<bool>,
    retry: Option<HttpResponse>,
}

/// The stack's dynamodb-faithful: this drill needs it (not `--store direct`).
fn proxy_of(drill: &Drill) -> Result<Faithful> {
    Faithful::of(&drill.state).context("store-slowdown needs the stack's dynamodb-faithful")
}

/// The order id a create with `key` gets for `user` (the service derives it the same way).
fn order_id_for(user: &str, key: &str) -> Result<String> {
    let user =
        order_service::domain::UserId::parse(user).map_err(|error| anyhow::anyhow!("{error}"))?;
    let key = order_service::domain::IdempotencyKey::parse(key)
        .map_err(|error| anyhow::anyhow!("{error}"))?;
    Ok(key.order_id(&user).to_string())
}

impl Scenario for StoreSlowdown {
    fn prepare(&mut self, drill: &mut Drill) -> Result<()> {
        let faithful = proxy_of(drill)?;
        println!(
            "  the functions reach DynamoDB Local through dynamodb-faithful {}, which will answer late",
            faithful.endpoint()
        );
        self.stock_before = drill.table().stock(PROBE_PRODUCT)?;
        for (phase, tag) in [
            ("every store answer late", "all"),
            (
                "after recovery, only write answers late for a few seconds",
                "writes",
            ),
        ] {
            let key = format!("drill-slowdown-{}-{tag}", drill.findings.started);
            let order_id = order_id_for(PROBE_USER, &key)?;
            self.probes.push(ExactlyOnceProbe {
                phase: phase.to_owned(),
                key,
                order_id,
                ..ExactlyOnceProbe::default()
            });
        }
        Ok(())
    }

    fn inject(&mut self, drill: &mut Drill) -> Result<()> {
        let proxy = proxy_of(drill)?;
        proxy.set_faults(&Faults::late_answers(None, drill.options.delay_ms))?;
        let injected = drill.inject(format!(
            "every DynamoDB answer delayed by {} ms (dynamodb-faithful {})",
            drill.options.delay_ms,
            proxy.endpoint()
        ));
        let window_ms = drill.options.fault_seconds as i64 * 1_000;
        drill.observe_for(Duration::from_secs(5), "slowdown")?;
        self.abandoned_create(drill, 0)?;
        let remaining = (injected + window_ms - now_ms()).max(0) as u64;
        drill.observe_for(Duration::from_millis(remaining), "slowdown")?;
        proxy.set_faults(&Faults::default())?;
        drill.mitigate(format!(
            "dynamodb-faithful's answer delay back to 0 after {} s",
            drill.options.fault_seconds
        ));
        Ok(())
    }

    fn after_recovery(&mut self, drill: &mut Drill) -> Result<()> {
        self.ambiguous_write_episode(drill)?;
        self.slowdown_retry(drill)?;
        Ok(())
    }

    /// store-slowdown accepts any of four: the breaker turns slow calls into fast 503s, which
    /// pull the p95 of all requests back under 300 ms within seconds, so api-latency-p95 (which
    /// runbooks/drills.md expects) fires only in some runs.
    fn expected_alarms(&self) -> &'static [&'static str] {
        &[
            "api-latency-p95",
            "api-latency-p99",
            "api-5xx-rate",
            "dynamodb-system-errors",
        ]
    }

    fn verify(&self, drill: &mut Drill, orders: &[Order]) {
        let window = drill.findings.fault_window.clone();
        drill.check_only_5xx(
            "slow store calls end as 503 STORE_UNAVAILABLE, never 500/502",
            &["503 STORE_UNAVAILABLE"],
            true,
            format!(
                "{} x 503 STORE_UNAVAILABLE in the fault window",
                window.store_unavailable
            ),
        );
        let p99 = percentile(&window.latencies, 99.0).unwrap_or(0.0);
        drill.check(
            "timeouts are bounded by the store budget",
            window.max_latency_ms < FUNCTION_TIMEOUT_MS,
            format!(
                "max {:.0} ms, p99 {:.0} ms in the fault window (budget: 1 s per attempt, 3 s per store call; Lambda timeout 10 s)",
                window.max_latency_ms, p99
            ),
        );
        drill.check(
            "the circuit breaker fails fast",
            window.fast_store_unavailable > 0,
            format!(
                "{} of {} 503s answered in < {} ms (breaker open)",
                window.fast_store_unavailable,
                window.store_unavailable,
                monitor::FAST_FAIL_MS
            ),
        );
        // Exactly once: one order per key, the stock moved once per key.
        let slowdown = self;
        let mine: Vec<String> = orders
            .iter()
            .filter(|order| order.user_id.as_str() == PROBE_USER)
            .map(|order| order.order_id.to_string())
            .collect();
        let stock_after = drill.table().stock(PROBE_PRODUCT).ok().flatten();
        let moved = match (slowdown.stock_before, stock_after) {
            (Some(before), Some(after)) => before - after,
            _ => -1,
        };
        let mut all_once =
            moved == slowdown.probes.len() as i64 && mine.len() == slowdown.probes.len();
        let mut parts = Vec::new();
        for probe in &slowdown.probes {
            let first = match &probe.first {
                Some(first) if first.timed_out => "client gave up after 0.8 s".to_owned(),
                Some(first) => format!(
                    "first attempt answered {} in {:.2} s",
                    first.status,
                    first.seconds()
                ),
                None => "not sent".to_owned(),
            };
            let retry_status = probe.retry.as_ref().map_or(0, |retry| retry.status);
            let retry_id = probe
                .retry
                .as_ref()
                .and_then(HttpResponse::json)
                .and_then(|body| {
                    body.get("orderId")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                });
            let replayed = probe
                .retry
                .as_ref()
                .is_some_and(|retry| retry.header("idempotent-replayed").is_some());
            let copies = mine.iter().filter(|id| **id == probe.order_id).count();
            let once = matches!(retry_status, 200 | 201)
                && retry_id.as_deref() == Some(probe.order_id.as_str())
                && copies == 1
                && probe
                    .first
                    .as_ref()
                    .is_some_and(|first| first.timed_out || first.status >= 500)
                && (replayed == (probe.applied_before_retry == Some(true)));
            all_once &= once;
            parts.push(format!(
                "[{}] {first}; applied before the retry: {}; retry {retry_status}{} -> {copies} order {}",
                probe.phase,
                match probe.applied_before_retry {
                    Some(true) => "yes",
                    Some(false) => "no",
                    None => "?",
                },
                if replayed { " Idempotent-Replayed" } else { "" },
                probe.order_id
            ));
        }
        drill.check(
            "exactly once: creates abandoned by the client during the slowdown, retried with their keys",
            all_once,
            format!(
                "{}; {PROBE_USER} has {} order(s); {PROBE_PRODUCT} stock {:?} -> {:?} (moved {moved} for {} keys)",
                parts.join("; "),
                mine.len(),
                slowdown.stock_before,
                stock_after,
                slowdown.probes.len()
            ),
        );
        drill.hang_checks();
    }

    fn describe(&self, drill: &Drill) -> Description {
        let window = &drill.findings.fault_window;
        Description {
            injects: format!("every DynamoDB answer delayed by {} ms for {} s (dynamodb-faithful)", drill.options.delay_ms, drill.options.fault_seconds),
            root_cause: "Known by construction: store answers arrive later than the SDK's 1 s attempt timeout, so every store \
                 call burns its 3 s budget and ends as STORE_UNAVAILABLE, while its write may already have committed \
                 (the answer, not the request, is late). The breaker then fails calls fast."
                .to_owned(),
            trigger: format!(
                "`cargo xtask drill store-slowdown`: dynamodb-faithful, which the functions reach in front of \
                 DynamoDB Local, delayed its answers by {} ms from T0 and back to 0 {} s later; after recovery, a \
                 short episode delayed only the answers to TransactWriteItems, for the exactly-once probe.",
                drill.options.delay_ms, drill.options.fault_seconds
            ),
            resolution: format!(
                "Delay removed; no human action. Fault window: max latency {:.0} ms, {} x 503 ({} fast).",
                window.max_latency_ms, window.store_unavailable, window.fast_store_unavailable
            ),
        }
    }
}

impl StoreSlowdown {
    /// After recovery, the ambiguous write on its own: for a few seconds only the answers to
    /// TransactWriteItems are late, so a create's write commits while its client (0.8 s) and
    /// the SDK's attempts (1 s) have given up. Short enough that no breaker opens (5 failures
    /// of 3 s each), so the probe reaches the store.
    fn ambiguous_write_episode(&mut self, drill: &mut Drill) -> Result<()> {
        let proxy = proxy_of(drill)?;
        let Some(order_id) = self.probes.get(1).map(|probe| probe.order_id.clone()) else {
            return Ok(());
        };
        proxy.set_faults(&Faults::late_answers(
            Some("TransactWriteItems"),
            drill.options.delay_ms,
        ))?;
        let started = now_ms();
        drill.timeline(
            started,
            format!(
                "exactly-once episode: only the answers to TransactWriteItems are {} ms late",
                drill.options.delay_ms
            ),
            "drill",
        );
        self.abandoned_create(drill, 1)?;
        // Keep the writes slow until the abandoned create has been processed (it may wait in
        // the gateway's queue first), at most 10 s.
        let url = format!("{}/users/{PROBE_USER}/orders/{order_id}", drill.base_url());
        let token = drill.token(PROBE_USER)?;
        while now_ms() - started < 10_000 {
            let got = http(
                "GET",
                &url,
                Some(&token),
                None,
                None,
                Duration::from_secs(2),
            );
            if got.status == 200 {
                drill.timeline(
                    now_ms(),
                    format!("the abandoned create's order {order_id} is in the table"),
                    "drill (HTTP probe)",
                );
                std::thread::sleep(Duration::from_millis(3_500));
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        proxy.set_faults(&Faults::default())?;
        drill.timeline(
            now_ms(),
            "exactly-once episode over: dynamodb-faithful's delay 0",
            "drill",
        );
        drill.observe_for(Duration::from_secs(2), "recovery")?;
        Ok(())
    }

    fn probe_body() -> String {
        json!({"items": [{"productId": PROBE_PRODUCT, "quantity": 1}]}).to_string()
    }

    /// Sends probe `index`'s create with its key and a 0.8 s client timeout.
    fn abandoned_create(&mut self, drill: &mut Drill, index: usize) -> Result<()> {
        let url = format!("{}/users/{PROBE_USER}/orders", drill.base_url());
        let token = drill.token(PROBE_USER)?;
        let Some(key) = self.probes.get(index).map(|probe| probe.key.clone()) else {
            return Ok(());
        };
        // A fast 503 is the open breaker: nothing was attempted, so the client retries (with
        // the same key) until an attempt reaches the store and is abandoned after 0.8 s.
        let mut first = HttpResponse::default();
        for _ in 0..5 {
            first = http(
                "POST",
                &url,
                Some(&token),
                Some(&Self::probe_body()),
                Some(&key),
                Duration::from_millis(800),
            );
            if first.timed_out || first.seconds() >= 0.5 {
                break;
            }
            std::thread::sleep(Duration::from_millis(700));
        }
        drill.timeline(
            now_ms(),
            format!(
                "exactly-once probe: POST {PROBE_USER} 1 x {PROBE_PRODUCT}, Idempotency-Key {key}, 0.8 s client timeout -> {}",
                if first.timed_out { "client timeout".to_owned() } else { format!("HTTP {}", first.status) }
            ),
            "drill (HTTP probe)",
        );
        if let Some(probe) = self.probes.get_mut(index) {
            probe.first = Some(first);
        }
        Ok(())
    }

    /// After the slowdown: was each abandoned create applied? Then retry it with its key.
    fn slowdown_retry(&mut self, drill: &mut Drill) -> Result<()> {
        let before: BTreeSet<String> = drill
            .table()
            .orders()?
            .iter()
            .filter(|order| order.user_id.as_str() == PROBE_USER)
            .map(|order| order.order_id.to_string())
            .collect();
        let url = format!("{}/users/{PROBE_USER}/orders", drill.base_url());
        let token = drill.token(PROBE_USER)?;
        for index in 0..self.probes.len() {
            let (key, order_id) = {
                let probe = &self.probes[index];
                (probe.key.clone(), probe.order_id.clone())
            };
            let mut retry = HttpResponse::default();
            for _ in 0..10 {
                retry = http(
                    "POST",
                    &url,
                    Some(&token),
                    Some(&Self::probe_body()),
                    Some(&key),
                    Duration::from_secs(10),
                );
                // 503: the store is still recovering; 409 REQUEST_IN_PROGRESS: the abandoned
                // request still holds its key. Both say "retry"; anything else is the answer.
                let in_flight = retry.status == 409 && retry.text().contains("REQUEST_IN_PROGRESS");
                if retry.status != 503 && retry.status != 0 && !in_flight {
                    break;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
            let applied = before.contains(&order_id);
            drill.timeline(
                now_ms(),
                format!(
                    "exactly-once probe {key} retried with the same key -> HTTP {}{}; the abandoned attempt had {}been applied",
                    retry.status,
                    if retry.header("idempotent-replayed").is_some() { " (Idempotent-Replayed)" } else { "" },
                    if applied { "" } else { "not " }
                ),
                "drill (HTTP probe)",
            );
            let probe = &mut self.probes[index];
            probe.applied_before_retry = Some(applied);
            probe.retry = Some(retry);
        }
        Ok(())
    }
}
