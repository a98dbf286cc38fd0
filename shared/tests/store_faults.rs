//! The store's retry branches, made to run: `dynamodb-faithful` in front of DynamoDB Local
//! answers chosen `TransactWriteItems` requests itself with the cancellation (conflict or
//! throttling) that DynamoDB sends under contention, without forwarding them. Each test shows
//! the branch ran (counted retries, counted requests) and what the client gets.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{one_unit, small_plan};
use dynamodb_faithful::{Faults, Injected};
use order_service::domain::{Change, UserId};
use order_service::store::{count_store_retries, StoreSettings};
use order_service::ServiceError;
use testkit::UseCases;
use testkit::{faithful_table, place_order, test_settings};

#[tokio::test]
async fn conflicts_are_retried_until_the_write_goes_through_once() {
    let faithful = faithful_table(&small_plan(), test_settings()).await;
    let user = UserId::parse("user-1").unwrap();
    let order = place_order(&faithful.table.store, &user, &[("product-1", 1)]).await;
    // GIVEN a store whose next 3 payment transactions are cancelled for a conflict
    faithful
        .proxy
        .update_faults(|faults| *faults = Faults::injecting(Injected::Conflict, 3));
    // WHEN the order is paid
    let (paid, retries) = count_store_retries(faithful.store.change_order(
        &user,
        order.order_id,
        Change::Pay,
        None,
    ))
    .await;
    // THEN the conflict branch ran 3 times and the 4th attempt paid, once
    assert_eq!(paid.unwrap().order.order_id, order.order_id);
    assert_eq!(retries, 3);
    assert_eq!(faithful.requests("TransactWriteItems"), 4);
    assert_eq!(
        faithful.table.store.user_balance(&user).await.unwrap(),
        Some(100_000 - order.total_amount.won())
    );
    assert!(faithful.table.store.audit().await.unwrap().is_clean());
}

#[tokio::test]
async fn conflicts_past_the_bound_are_a_409_with_nothing_applied() {
    let faithful = faithful_table(&small_plan(), test_settings()).await;
    let user = UserId::parse("user-1").unwrap();
    faithful
        .proxy
        .update_faults(|faults| *faults = Faults::injecting(Injected::Conflict, 100));
    let (created, retries) =
        count_store_retries(faithful.store.create_order(&user, &one_unit(), None)).await;
    assert!(
        matches!(created, Err(ServiceError::Contention { .. })),
        "{created:?}"
    );
    assert_eq!(retries, 9, "10 attempts");
    assert_eq!(faithful.requests("TransactWriteItems"), 10);
    assert!(faithful.table.store.all_orders().await.unwrap().is_empty());
}

#[tokio::test]
async fn throttled_transactions_are_a_503_that_leaves_the_breaker_closed() {
    // GIVEN a store that throttles every transaction, and a breaker that would open at once
    let settings = StoreSettings {
        breaker_failure_threshold: 1,
        ..test_settings()
    };
    let faithful = faithful_table(&small_plan(), settings).await;
    let user = UserId::parse("user-1").unwrap();
    faithful
        .proxy
        .update_faults(|faults| *faults = Faults::injecting(Injected::Throttling, 100));
    // WHEN a create keeps being throttled THEN it is STORE_THROTTLED, not CONCURRENT_REQUEST
    let created = faithful.store.create_order(&user, &one_unit(), None).await;
    assert!(
        matches!(created, Err(ServiceError::Throttled { .. })),
        "{created:?}"
    );
    // AND it gave up after two sends, not the ten a conflict gets: resending into a partition
    // past its throughput spends more of it and holds the function's concurrency meanwhile
    let seen = faithful.requests("TransactWriteItems");
    assert_eq!(seen, 2);
    // AND the breaker did not count it: a throttled item is a busy store, not an unreachable
    // one, so the next request still reaches the store
    let next = faithful.store.create_order(&user, &one_unit(), None).await;
    assert!(
        matches!(next, Err(ServiceError::Throttled { .. })),
        "{next:?}"
    );
    assert_eq!(faithful.requests("TransactWriteItems"), seen + 2);
    assert!(faithful.table.store.all_orders().await.unwrap().is_empty());
}
