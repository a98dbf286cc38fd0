//! The local gateway under a burst far beyond its capacity, as a CI check of the patched
//! `cargo lambda watch` (ops/upstream/cargo-lambda.md): every request gets an answer within the
//! client's timeout (an order, or a 429 with `Retry-After` once the function's queue is full),
//! none hangs, the stack serves normally right after, and the audit stays clean. The stock
//! tool wedges for good on such a burst.

use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::http::{self, Reach};
use crate::stack::StackState;

/// Long enough for any admitted request on a slow machine; a hang fails the check.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends `requests` creates at once (one thread and connection each, every buyer a different
/// user and a 1-unit line) and checks the answers.
pub(crate) fn burst_check(state: &StackState, requests: usize) -> Result<()> {
    crate::data::reset_and_seed(
        &state.dynamodb_endpoint,
        &state.table,
        &crate::loadtest::seed_for(0.0),
    )?;
    let capacity =
        state.max_concurrency as usize * state.concurrency as usize + state.queue_depth as usize;
    if requests <= 2 * capacity {
        bail!("a burst of {requests} does not exceed create-order's capacity of {capacity} enough");
    }
    let url = format!("{}/users/{{user}}/orders", state.base_url);
    let outcomes: Vec<Result<(u16, bool)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..requests)
            .map(|index| {
                let url = url.clone();
                scope.spawn(move || -> Result<(u16, bool)> {
                    let user = format!("user-{}", index % 1_000 + 1);
                    let token = crate::data::sign(&state.jwt_secret, &user)?;
                    let body = format!(
                        r#"{{"items":[{{"productId":"product-{}","quantity":1}}]}}"#,
                        index % 100 + 1
                    );
                    let answer = http::request(
                        Reach::Loopback,
                        "POST",
                        &url.replace("{user}", &user),
                        &[
                            ("authorization".to_owned(), format!("Bearer {token}")),
                            ("content-type".to_owned(), "application/json".to_owned()),
                        ],
                        body.as_bytes(),
                        CLIENT_TIMEOUT,
                    )?;
                    let retry_after = answer
                        .headers
                        .iter()
                        .any(|(name, value)| name == "retry-after" && !value.is_empty());
                    Ok((answer.status, retry_after))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a client thread panicked")))
            })
            .collect()
    });
    let mut created = 0;
    let mut throttled = 0;
    for outcome in outcomes {
        match outcome.context("a request of the burst got no answer")? {
            (201, _) => created += 1,
            (429, true) => throttled += 1,
            (429, false) => bail!("a 429 without Retry-After"),
            (status, _) => bail!("a request of the burst answered {status}"),
        }
    }
    eprintln!(
        "  burst of {requests} creates (capacity {capacity}): {created} x 201, {throttled} x 429"
    );
    if throttled == 0 {
        bail!("no request was throttled: the burst never filled the queue");
    }
    if created == 0 {
        bail!("nothing was served during the burst");
    }
    // Right after the burst the stack serves as before.
    let token = crate::data::sign(&state.jwt_secret, "user-1")?;
    let after = http::request(
        Reach::Loopback,
        "GET",
        &format!("{}/users/user-1/orders", state.base_url),
        &[("authorization".to_owned(), format!("Bearer {token}"))],
        &[],
        CLIENT_TIMEOUT,
    )?;
    if after.status != 200 {
        bail!("after the burst a list answered {}", after.status);
    }
    let audit = crate::data::audit(&state.dynamodb_endpoint, &state.table)?;
    if !audit.is_clean() {
        bail!("the audit after the burst: {:?}", audit.violations);
    }
    Ok(())
}
