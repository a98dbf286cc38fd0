//! Store journeys: the DynamoDB work of a create -> pay -> get journey issued straight through
//! the store crate (no HTTP, no functions) by concurrent workers. `bench` measures the store's
//! own limit with them; `loadtest` warms DynamoDB Local up and probes that limit before a
//! stress or spike run.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use order_service::app::{change_once, create_once};
use order_service::domain::{
    Change, CreateOrderRequest, IdempotencyKey, NewOrder, OrderId, UserId,
};
use order_service::http::Reply;

use crate::state::StackState;

/// Journeys through the store crate against `endpoint` (DynamoDB Local itself for the store's
/// own limit; the stack's dynamodb-faithful for what it costs): `concurrency` workers, each
/// create -> pay -> get in a loop for `seconds`; returns journey steps per second (3 per journey, the API requests the
/// journey stands for) and p95 of a journey. `keyed` sends the create and the payment under
/// Idempotency-Keys, as the functions run them (claim, then the answer in the transaction).
pub(crate) fn raw_level(
    state: &StackState,
    endpoint: &str,
    concurrency: u32,
    seconds: u64,
    keyed: bool,
) -> Result<(f64, f64)> {
    crate::client::runtime()?.block_on(async {
        let store = Arc::new(crate::client::store_for(endpoint, &state.table).await);
        let journeys = Arc::new(AtomicU64::new(0));
        let stamp = OrderId::random();
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let mut workers = tokio::task::JoinSet::new();
        for worker in 0..concurrency {
            let store = store.clone();
            let journeys = journeys.clone();
            workers.spawn(async move {
                let mut durations = Vec::new();
                let mut iteration: u32 = 0;
                while Instant::now() < deadline {
                    let user = UserId::parse(&format!(
                        "user-{}",
                        (worker * 7_919 + iteration) % 1_000 + 1
                    ))
                    .map_err(|error| anyhow::anyhow!("{error}"))?;
                    let product = format!("product-{}", (worker * 31 + iteration) % 100 + 1);
                    let request: CreateOrderRequest = serde_json::from_str(&format!(
                        r#"{{"items":[{{"productId":"{product}","quantity":1}}]}}"#
                    ))?;
                    let order =
                        NewOrder::try_from(request).map_err(|error| anyhow::anyhow!("{error}"))?;
                    let started = Instant::now();
                    let (store, user, order) = (&*store, &user, &order);
                    let key = |step: &str| {
                        keyed.then(|| {
                            IdempotencyKey::parse(&format!(
                                "bench-{step}-{stamp}-{worker}-{iteration}"
                            ))
                        })
                    };
                    let create_key = key("create")
                        .transpose()
                        .map_err(|error| anyhow::anyhow!("{error}"))?;
                    let created = create_once(store, user, create_key, order)
                        .await
                        .map_err(|error| anyhow::anyhow!("create: {error}"))?;
                    let order_id = created_order_id(created)?;
                    let pay_key = key("pay")
                        .transpose()
                        .map_err(|error| anyhow::anyhow!("{error}"))?;
                    change_once(store, user, pay_key, order_id, &Change::Pay)
                        .await
                        .map_err(|error| anyhow::anyhow!("pay: {error}"))?;
                    order_service::app::read::get_order(store, user, order_id)
                        .await
                        .map_err(|error| anyhow::anyhow!("get: {error}"))?;
                    durations.push(started.elapsed().as_secs_f64() * 1_000.0);
                    journeys.fetch_add(1, Ordering::Relaxed);
                    iteration += 1;
                }
                Ok::<_, anyhow::Error>(durations)
            });
        }
        let started = Instant::now();
        let mut durations = Vec::new();
        while let Some(done) = workers.join_next().await {
            durations.extend(done??);
        }
        let elapsed = started.elapsed().as_secs_f64().max(seconds as f64);
        durations.sort_by(f64::total_cmp);
        let p95 = durations
            .get((durations.len() as f64 * 0.95) as usize)
            .copied()
            .unwrap_or(0.0);
        Ok((journeys.load(Ordering::Relaxed) as f64 * 3.0 / elapsed, p95))
    })
}

/// The order id of a create's rendered answer.
fn created_order_id(reply: Reply) -> Result<OrderId> {
    let response = reply.into_response();
    let body: serde_json::Value = serde_json::from_slice(response.body().as_ref())?;
    let text = body["orderId"]
        .as_str()
        .context("the create answer has no orderId")?;
    OrderId::parse(text).map_err(|error| anyhow::anyhow!("{error}"))
}
