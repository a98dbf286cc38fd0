//! The local gateway under a burst far beyond its capacity, as a CI check of the patched
//! `cargo lambda watch` (ops/upstream/cargo-lambda.md): every request gets an answer within the
//! client's timeout (an order, or once the function's queue is full a 429 problem+json with
//! `Retry-After` and the code `TOO_MANY_REQUESTS`, as every problem of this project has one),
//! none hangs, the stack serves normally right after, and the audit stays clean. The stock
//! tool wedges for good on such a burst.

use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::http::{HttpResponse, Request};
use crate::state::StackState;

/// Long enough for any admitted request on a slow machine; a hang fails the check.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends `requests` creates at once (one thread and connection each, every buyer a different
/// user and a 1-unit line) and checks the answers.
pub(crate) fn burst_check(state: &StackState, requests: usize) -> Result<()> {
    crate::seed::reset_and_seed(
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
    let outcomes: Vec<Result<HttpResponse>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..requests)
            .map(|index| {
                let url = url.clone();
                scope.spawn(move || -> Result<HttpResponse> {
                    let user = format!("user-{}", index % 1_000 + 1);
                    let token = crate::token::sign(&state.jwt_secret, &user)?;
                    let body = format!(
                        r#"{{"items":[{{"productId":"product-{}","quantity":1}}]}}"#,
                        index % 100 + 1
                    );
                    Request::new("POST", &url.replace("{user}", &user), CLIENT_TIMEOUT)
                        .headers(&[
                            ("authorization".to_owned(), format!("Bearer {token}")),
                            ("content-type".to_owned(), "application/json".to_owned()),
                        ])
                        .body(body.as_bytes())
                        .send()
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
        let answer = outcome.context("a request of the burst got no answer")?;
        match answer.status {
            201 => created += 1,
            429 => {
                check_throttle(&answer)?;
                throttled += 1;
            }
            status => bail!("a request of the burst answered {status}"),
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
    let token = crate::token::sign(&state.jwt_secret, "user-1")?;
    let url = format!("{}/users/user-1/orders", state.base_url);
    let after = Request::new("GET", &url, CLIENT_TIMEOUT)
        .headers(&[("authorization".to_owned(), format!("Bearer {token}"))])
        .send()?;
    if after.status != 200 {
        bail!("after the burst a list answered {}", after.status);
    }
    let audit = crate::audit::audit(&state.dynamodb_endpoint, &state.table)?;
    if !audit.is_clean() {
        bail!("the audit after the burst: {:?}", audit.violations);
    }
    Ok(())
}

/// A throttle is the gateway's problem: `Retry-After`, problem+json, and the code a client
/// tells it by.
fn check_throttle(answer: &HttpResponse) -> Result<()> {
    let header = |wanted: &str| answer.header(wanted);
    if header("retry-after").is_none_or(str::is_empty) {
        bail!("a 429 without Retry-After");
    }
    if header("content-type") != Some("application/problem+json") {
        bail!(
            "a 429 whose content type is {:?}, not application/problem+json",
            header("content-type")
        );
    }
    let problem: serde_json::Value =
        serde_json::from_slice(&answer.body).context("a 429 whose body is not JSON")?;
    if problem["code"] != "TOO_MANY_REQUESTS" || problem["status"] != 429 {
        bail!("a 429 whose problem has no TOO_MANY_REQUESTS code: {problem}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(headers: &[(&str, &str)], body: &str) -> HttpResponse {
        HttpResponse {
            status: 429,
            headers: headers
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect(),
            body: body.as_bytes().to_vec(),
            ..HttpResponse::default()
        }
    }

    #[test]
    fn a_throttle_must_be_a_coded_problem_with_retry_after() {
        let problem = r#"{"type":"https://httpstatuses.com/429","title":"Too Many Requests","status":429,"detail":"too many requests","code":"TOO_MANY_REQUESTS"}"#;
        let headers = [
            ("retry-after", "1"),
            ("content-type", "application/problem+json"),
        ];
        assert!(check_throttle(&answer(&headers, problem)).is_ok());
        let uncoded = problem.replace(r#","code":"TOO_MANY_REQUESTS""#, "");
        assert!(check_throttle(&answer(&headers, &uncoded)).is_err());
        assert!(check_throttle(&answer(&headers[1..], problem)).is_err());
        assert!(check_throttle(&answer(&[("retry-after", "1")], problem)).is_err());
    }
}
