//! Exactly once when the answer is lost: `dynamodb-faithful` in front of DynamoDB Local holds the
//! store's answer past the client's attempt timeout, although the write committed. A retry with
//! the same Idempotency-Key must find the first effect instead of applying a second.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;
use testkit::UseCases;

use common::{one_unit, small_plan, stock};
use dynamodb_faithful::Faults;
use lambda_http::{Body, Response};
use order_service::domain::{Change, OrderId, UserId};
use order_service::store::{DynamoOrderStore, StoreSettings};
use order_service::ServiceError;
use testkit::{answered, faithful_table, is_replayed, test_settings, Action, FaithfulTable};

/// A seeded table reached through the proxy with a short attempt timeout.
async fn slow_store(sdk_attempts: u32) -> FaithfulTable {
    let settings = StoreSettings {
        attempt_timeout: Duration::from_millis(300),
        operation_timeout: Duration::from_secs(5),
        max_sdk_attempts: sdk_attempts,
        breaker_failure_threshold: 100,
        ..test_settings()
    };
    faithful_table(&small_plan(), settings).await
}

/// Answers to transactions arrive `delay_ms` late (0: on time).
fn late_writes(faithful: &FaithfulTable, delay_ms: u64) {
    faithful.proxy.update_faults(|faults| {
        *faults = Faults::late_answers(Some("TransactWriteItems"), delay_ms);
    });
}

async fn keyed_create(
    store: &DynamoOrderStore,
    user: &UserId,
    key: &str,
) -> Result<Response<Body>, ServiceError> {
    answered(store, user, Some(key), Action::Create(&one_unit())).await
}

async fn keyed_pay(
    store: &DynamoOrderStore,
    user: &UserId,
    order_id: OrderId,
    key: &str,
) -> Result<Response<Body>, ServiceError> {
    answered(store, user, Some(key), Action::Pay(order_id)).await
}

fn body(response: &Response<Body>) -> serde_json::Value {
    serde_json::from_slice(response.body().as_ref()).unwrap()
}

#[tokio::test]
async fn a_retry_with_the_same_key_after_a_lost_answer_applies_once() {
    // One attempt per call: the client gives up, as an impatient caller would.
    let faithful = slow_store(1).await;
    let (store, table) = (&faithful.store, &faithful.table);
    let user = UserId::parse("user-1").unwrap();

    // GIVEN a store that answers only after the client's timeout
    late_writes(&faithful, 800);
    // WHEN a keyed create times out on the client side
    let first = keyed_create(store, &user, "checkout-1").await;
    assert!(
        matches!(first, Err(ServiceError::StoreUnavailable { .. })),
        "expected a timeout, got {first:?}"
    );
    assert_eq!(
        faithful.requests("TransactWriteItems"),
        1,
        "one attempt, abandoned"
    );
    // (the write itself committed)
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(stock(table, "product-1").await, 9);

    // AND the client retries with the same key once the store is fast again
    late_writes(&faithful, 0);
    let retry = keyed_create(store, &user, "checkout-1").await.unwrap();

    // THEN the retry is answered from the key's record, without a second transaction
    assert_eq!(
        faithful.requests("TransactWriteItems"),
        1,
        "the retry sent no write"
    );
    assert!(is_replayed(&retry), "{:?}", retry.headers());
    assert_eq!(retry.status(), 201);
    let orders = table.store.all_orders().await.unwrap();
    assert_eq!(orders.len(), 1);
    assert_eq!(stock(table, "product-1").await, 9);
    let order_id = OrderId::parse(body(&retry)["orderId"].as_str().unwrap()).unwrap();
    assert_eq!(orders[0].order_id, order_id);

    // AND the same holds for a payment whose answer was lost
    late_writes(&faithful, 800);
    let lost = keyed_pay(store, &user, order_id, "pay-1").await;
    assert!(
        matches!(lost, Err(ServiceError::StoreUnavailable { .. })),
        "{lost:?}"
    );
    tokio::time::sleep(Duration::from_millis(900)).await;
    let status = table.store.get_order(&user, order_id).await.unwrap().status;
    assert_eq!(
        status,
        order_service::domain::OrderStatus::Paid,
        "the lost payment committed"
    );
    late_writes(&faithful, 0);
    let paid = keyed_pay(store, &user, order_id, "pay-1").await.unwrap();
    assert!(is_replayed(&paid));
    assert_eq!(paid.status(), 200);
    assert_eq!(body(&paid)["status"], "PAID");
    let total = body(&paid)["totalAmount"].as_i64().unwrap();
    let balance = table.store.user_balance(&user).await.unwrap().unwrap();
    assert_eq!(balance, 100_000 - total, "charged once");
    assert!(table.store.audit().await.unwrap().is_clean());
}

#[tokio::test]
async fn without_a_key_a_client_retry_is_a_second_order() {
    // This documents the at-most-once-per-request behaviour a client without a key gets:
    // the lost answer's order exists, and the retry makes another one.
    let faithful = slow_store(1).await;
    late_writes(&faithful, 800);
    let user = UserId::parse("user-1").unwrap();
    assert!(faithful
        .store
        .create_order(&user, &one_unit(), None)
        .await
        .is_err());
    tokio::time::sleep(Duration::from_millis(900)).await;
    late_writes(&faithful, 0);
    faithful
        .store
        .create_order(&user, &one_unit(), None)
        .await
        .unwrap();
    assert_eq!(
        faithful.requests("TransactWriteItems"),
        2,
        "abandoned write, then the retry"
    );
    let table = &faithful.table;
    assert_eq!(table.store.all_orders().await.unwrap().len(), 2);
    assert_eq!(stock(table, "product-1").await, 8);
    assert!(table.store.audit().await.unwrap().is_clean());
}

#[tokio::test]
async fn a_write_resent_after_transaction_in_progress_applies_once_and_succeeds() {
    // GIVEN SDK retries on (3 attempts of 300 ms) and a payment whose first attempt is slow
    // inside the store (450 ms, holding its items and its ClientRequestToken): the SDK's own
    // retries meet TransactionInProgressException, and then the store's own loop resends
    let faithful = slow_store(3).await;
    let table = &faithful.table;
    let user = UserId::parse("user-1").unwrap();
    let order = testkit::place_order(&table.store, &user, &[("product-1", 1)]).await;
    faithful.proxy.update_faults(|faults| {
        *faults = Faults {
            request_delay_ms: 450,
            delay_only: vec!["TransactWriteItems".to_owned()],
            ..Faults::default()
        }
    });
    let slowdown_ends = {
        let proxy = faithful.proxy.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            proxy.update_faults(|faults| *faults = Faults::default());
        })
    };
    // WHEN an unkeyed payment is made
    let paid = faithful
        .store
        .change_order(&user, order.order_id, Change::Pay, None)
        .await;
    slowdown_ends.await.unwrap();
    let summary = faithful.proxy.summary().operation("TransactWriteItems");
    assert!(
        summary.in_progress >= 1 && summary.requests >= 3,
        "no resend met the first attempt in flight: the test would prove nothing ({summary:?})"
    );
    // THEN the payment succeeds, once: the slow first attempt committed, and the resends
    // recognised it (a resend taken for a new payment would find the order paid and answer
    // ORDER_ALREADY_PAID)
    let paid = paid.unwrap();
    assert_eq!(paid.order.status, order_service::domain::OrderStatus::Paid);
    let balance = table.store.user_balance(&user).await.unwrap().unwrap();
    assert_eq!(balance, 100_000 - order.total_amount.won());
    assert!(table.store.audit().await.unwrap().is_clean());
}
