//! Exactly once when the answer is lost: a proxy in front of DynamoDB Local (tests/common)
//! holds the store's answer past the client's attempt timeout, although the write committed. A retry
//! with the same Idempotency-Key must find the first effect instead of applying a second.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use common::{one_unit, small_plan, stock, store_through, Faults};
use lambda_http::{Body, Response};
use order_service::domain::{Change, OrderId, UserId};
use order_service::store::{
    ChangeOrders, CreateOrders, DynamoOrderStore, ReadOrders, StoreSettings,
};
use order_service::ServiceError;
use testkit::{answered, is_replayed, place_order, seeded_table, test_settings, Action, TestTable};

/// A store that reaches the table through a delaying proxy, with a short attempt timeout.
async fn slow_store(table: &TestTable, faults: Arc<Faults>, sdk_attempts: u32) -> DynamoOrderStore {
    let settings = StoreSettings {
        attempt_timeout: Duration::from_millis(300),
        operation_timeout: Duration::from_secs(5),
        max_sdk_attempts: sdk_attempts,
        breaker_failure_threshold: 100,
        ..test_settings()
    };
    store_through(table, faults, settings).await
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
    let table = seeded_table(&small_plan()).await;
    let faults = Faults::delaying();
    // One attempt per call: the client gives up, as an impatient caller would.
    let store = slow_store(&table, faults.clone(), 1).await;
    let user = UserId::parse("user-1").unwrap();

    // GIVEN a store that answers only after the client's timeout
    faults.delay_ms.store(800, Ordering::Relaxed);
    // WHEN a keyed create times out on the client side
    let first = keyed_create(&store, &user, "checkout-1").await;
    assert!(
        matches!(first, Err(ServiceError::StoreUnavailable { .. })),
        "expected a timeout, got {first:?}"
    );
    assert_eq!(faults.transacts(), 1, "one attempt, abandoned");
    // (the write itself committed)
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(stock(&table, "product-1").await, 9);

    // AND the client retries with the same key once the store is fast again
    faults.delay_ms.store(0, Ordering::Relaxed);
    let retry = keyed_create(&store, &user, "checkout-1").await.unwrap();

    // THEN the retry is answered from the key's record, without a second transaction
    assert_eq!(faults.transacts(), 1, "the retry sent no write");
    assert!(is_replayed(&retry), "{:?}", retry.headers());
    assert_eq!(retry.status(), 201);
    let orders = table.store.all_orders().await.unwrap();
    assert_eq!(orders.len(), 1);
    assert_eq!(stock(&table, "product-1").await, 9);
    let order_id = OrderId::parse(body(&retry)["orderId"].as_str().unwrap()).unwrap();
    assert_eq!(orders[0].order_id, order_id);

    // AND the same holds for a payment whose answer was lost
    faults.delay_ms.store(800, Ordering::Relaxed);
    let lost = keyed_pay(&store, &user, order_id, "pay-1").await;
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
    faults.delay_ms.store(0, Ordering::Relaxed);
    let paid = keyed_pay(&store, &user, order_id, "pay-1").await.unwrap();
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
    let table = seeded_table(&small_plan()).await;
    let faults = Faults::delaying();
    faults.delay_ms.store(800, Ordering::Relaxed);
    let store = slow_store(&table, faults.clone(), 1).await;
    let user = UserId::parse("user-1").unwrap();
    assert!(store.create_order(&user, &one_unit(), None).await.is_err());
    tokio::time::sleep(Duration::from_millis(900)).await;
    faults.delay_ms.store(0, Ordering::Relaxed);
    store.create_order(&user, &one_unit(), None).await.unwrap();
    assert_eq!(faults.transacts(), 2, "abandoned write, then the retry");
    assert_eq!(table.store.all_orders().await.unwrap().len(), 2);
    assert_eq!(stock(&table, "product-1").await, 8);
    assert!(table.store.audit().await.unwrap().is_clean());
}

#[tokio::test]
async fn the_sdk_retrying_an_ambiguous_write_does_not_apply_it_twice() {
    // GIVEN SDK retries on (3 attempts of 300 ms) and a store slower than one attempt once
    let table = seeded_table(&small_plan()).await;
    let faults = Faults::delaying();
    let store = slow_store(&table, faults.clone(), 3).await;
    let user = UserId::parse("user-1").unwrap();
    let order = place_order(&table.store, &user, &[("product-1", 1)]).await;
    faults.delay_ms.store(450, Ordering::Relaxed);
    let slowdown_ends = {
        let faults = faults.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(350)).await;
            faults.delay_ms.store(0, Ordering::Relaxed);
        })
    };
    // WHEN an unkeyed payment's first attempt times out after committing and the SDK retries
    let paid = store
        .change_order(&user, order.order_id, Change::Pay, None)
        .await;
    slowdown_ends.await.unwrap();
    assert!(
        faults.transacts() >= 2,
        "the SDK did not retry the write: the test would prove nothing"
    );
    // THEN the retry recognises its own write: success, one debit
    let paid = paid.unwrap();
    assert_eq!(paid.order.status, order_service::domain::OrderStatus::Paid);
    let balance = table.store.user_balance(&user).await.unwrap().unwrap();
    assert_eq!(balance, 100_000 - order.total_amount.won());
    assert!(table.store.audit().await.unwrap().is_clean());
}
