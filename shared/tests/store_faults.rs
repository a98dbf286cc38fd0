//! The store's retry branches, made to run: a proxy in front of DynamoDB Local answers chosen
//! `TransactWriteItems` requests itself with a cancellation (conflict or throttling) that the
//! real DynamoDB sends under contention, without forwarding them. Each test shows the branch
//! ran (counted retries, counted requests) and what the client gets.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{one_unit, small_plan, store_through, Cancel, Faults};
use order_service::domain::{Change, UserId};
use order_service::store::{count_store_retries, ChangeOrders, CreateOrders, StoreSettings};
use order_service::ServiceError;
use testkit::{place_order, seeded_table, test_settings};

#[tokio::test]
async fn conflicts_are_retried_until_the_write_goes_through_once() {
    let table = seeded_table(&small_plan()).await;
    let user = UserId::parse("user-1").unwrap();
    let order = place_order(&table.store, &user, &[("product-1", 1)]).await;
    // GIVEN a store whose next 3 payment transactions are cancelled for a conflict
    let faults = Faults::cancelling(Cancel::Conflict, 3);
    let store = store_through(&table, faults.clone(), test_settings()).await;
    // WHEN the order is paid
    let (paid, retries) =
        count_store_retries(store.change_order(&user, order.order_id, Change::Pay, None)).await;
    // THEN the conflict branch ran 3 times and the 4th attempt paid, once
    assert_eq!(paid.unwrap().order.order_id, order.order_id);
    assert_eq!(retries, 3);
    assert_eq!(faults.transacts(), 4);
    assert_eq!(
        table.store.user_balance(&user).await.unwrap(),
        Some(100_000 - order.total_amount.won())
    );
    assert!(table.store.audit().await.unwrap().is_clean());
}

#[tokio::test]
async fn conflicts_past_the_bound_are_a_409_with_nothing_applied() {
    let table = seeded_table(&small_plan()).await;
    let user = UserId::parse("user-1").unwrap();
    let faults = Faults::cancelling(Cancel::Conflict, 100);
    let store = store_through(&table, faults.clone(), test_settings()).await;
    let (created, retries) =
        count_store_retries(store.create_order(&user, &one_unit(), None)).await;
    assert!(
        matches!(created, Err(ServiceError::Contention { .. })),
        "{created:?}"
    );
    assert_eq!(retries, 9, "10 attempts");
    assert_eq!(faults.transacts(), 10);
    assert!(table.store.all_orders().await.unwrap().is_empty());
}

#[tokio::test]
async fn throttled_transactions_are_a_503_and_feed_the_breaker() {
    let table = seeded_table(&small_plan()).await;
    let user = UserId::parse("user-1").unwrap();
    // GIVEN a store that throttles every transaction, and a breaker that opens at once
    let settings = StoreSettings {
        breaker_failure_threshold: 1,
        ..test_settings()
    };
    let faults = Faults::cancelling(Cancel::Throttling, 100);
    let store = store_through(&table, faults.clone(), settings).await;
    // WHEN a create keeps being throttled THEN it is STORE_UNAVAILABLE, not CONCURRENT_REQUEST
    let created = store.create_order(&user, &one_unit(), None).await;
    assert!(
        matches!(created, Err(ServiceError::StoreUnavailable { .. })),
        "{created:?}"
    );
    let seen = faults.transacts();
    assert_eq!(seen, 10);
    // AND the breaker counted it: the next request fails fast without reaching the store
    let next = store.create_order(&user, &one_unit(), None).await;
    assert!(matches!(next, Err(ServiceError::StoreUnavailable { .. })));
    assert_eq!(faults.transacts(), seen);
    assert!(table.store.all_orders().await.unwrap().is_empty());
}
