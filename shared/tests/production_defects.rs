//! Defects that only production DynamoDB can trigger, each reproduced through
//! `dynamodb-faithful` (transaction conflicts, throttling, lost answers, slow calls) and each
//! proved by a test that fails without its fix:
//!
//! 1. a keyed retry whose claim lands while the first request's transaction holds the key's
//!    record gets `TransactionConflictException`: never a 500;
//! 2. a claim or a refusal whose answer was lost, retried by the SDK, meets its own record:
//!    it is this request's, not someone else's in flight, and not a replay;
//! 3. a request whose time budget runs out gives its key back, and its 503 feeds the breaker;
//! 4. one hot product's throttling does not open the breaker for every product;
//! 5. an unreachable store: after the breaker opens, calls stop reaching it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use order_service::domain::Refusal;
use std::time::Duration;
use testkit::UseCases;

use dynamodb_faithful::{Faults, Limits, Outage};
use lambda_http::{Body, Response};
use order_service::app::{create_once, App, Operation};
use order_service::domain::{IdempotencyKey, NewOrder, OrderId, UserId};
use order_service::store::{SeedPlan, StoreSettings};
use order_service::ServiceError;
use testkit::{
    answered, faithful_table, is_replayed, new_order, test_authenticator, test_settings, Action,
    EventBuilder, FaithfulTable,
};

fn user(number: u32) -> UserId {
    UserId::parse(&format!("user-{number}")).unwrap()
}

fn plan() -> SeedPlan {
    SeedPlan {
        users: 3,
        balance: 100_000,
        products: 3,
        stock: 100,
        extra_products: vec![("product-scarce".into(), 1_000, 1)],
        ..SeedPlan::default()
    }
}

fn one_of(product: &str, quantity: u64) -> NewOrder {
    new_order(&[(product, quantity)])
}

/// Settings with one short SDK attempt timeout and three attempts, as a store whose answers
/// can be lost needs to show the SDK's own retries.
fn retrying_settings() -> StoreSettings {
    StoreSettings {
        attempt_timeout: Duration::from_millis(300),
        operation_timeout: Duration::from_secs(5),
        max_sdk_attempts: 3,
        breaker_failure_threshold: 100,
        ..test_settings()
    }
}

/// Answers to `operation` come back `delay_ms` late for the next `for_ms`, then on time.
fn late_for_a_while(faithful: &FaithfulTable, operation: &str, delay_ms: u64, for_ms: u64) {
    faithful
        .proxy
        .update_faults(|faults| *faults = Faults::late_answers(Some(operation), delay_ms));
    let proxy = faithful.proxy.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(for_ms)).await;
        proxy.update_faults(|faults| *faults = Faults::default());
    });
}

async fn stock_of(faithful: &FaithfulTable, product: &str) -> i64 {
    common::stock(&faithful.table, product).await
}

fn status_of(result: &Result<Response<Body>, ServiceError>) -> Option<u16> {
    result
        .as_ref()
        .ok()
        .map(|response| response.status().as_u16())
}

#[tokio::test]
async fn a_keyed_retry_meeting_the_first_requests_transaction_is_never_a_500() {
    // GIVEN transactions that hold their items 400 ms after their own work
    let faithful = faithful_table(&plan(), test_settings()).await;
    faithful.proxy.set_hold(Duration::from_millis(400));
    let order = one_of("product-1", 1);
    // WHEN a keyed create is answered and the client sends it again at once (a double click)
    let first = answered(
        &faithful.store,
        &user(1),
        Some("double"),
        Action::Create(&order),
    )
    .await;
    assert_eq!(status_of(&first), Some(201), "{first:?}");
    let second = answered(
        &faithful.store,
        &user(1),
        Some("double"),
        Action::Create(&order),
    )
    .await;
    // THEN the retry's claim met the first transaction's hold on the key's record...
    let conflicts = faithful.proxy.summary().operation("PutItem").conflicts;
    assert!(
        conflicts >= 1,
        "the claim never met the hold: the test proves nothing"
    );
    // ...and it is the first answer (or a retry-later), never a 500, and nothing ran twice
    match &second {
        Ok(response) => {
            assert_eq!(response.status(), 201);
            assert!(is_replayed(response));
        }
        Err(ServiceError::RequestInProgress { .. }) => {}
        Err(other) => panic!("a double click got {other:?}"),
    }
    assert_eq!(stock_of(&faithful, "product-1").await, 99);
}

#[tokio::test]
async fn a_claim_whose_answer_was_lost_is_still_this_requests() {
    // GIVEN the claim's answer comes back after the SDK's attempt timeout, once
    let faithful = faithful_table(&plan(), retrying_settings()).await;
    late_for_a_while(&faithful, "PutItem", 450, 250);
    // WHEN a keyed create runs (its claim commits; the SDK retries it and meets its own record)
    let created = answered(
        &faithful.store,
        &user(1),
        Some("lost-claim"),
        Action::Create(&one_of("product-1", 2)),
    )
    .await;
    assert!(
        faithful.requests("PutItem") >= 2,
        "the SDK did not retry the claim: the test proves nothing"
    );
    // THEN the request recognises its own claim and runs: 201, not 409 for the lease
    let created = created.unwrap();
    assert_eq!(created.status(), 201);
    assert!(!is_replayed(&created));
    assert_eq!(stock_of(&faithful, "product-1").await, 98);
}

#[tokio::test]
async fn a_refusal_whose_answer_was_lost_is_not_a_replay() {
    // GIVEN the update that records a refusal is answered after the SDK's attempt timeout, once
    let faithful = faithful_table(&plan(), retrying_settings()).await;
    late_for_a_while(&faithful, "UpdateItem", 450, 250);
    // WHEN a keyed create is refused (one unit in stock, two asked)
    let refused = answered(
        &faithful.store,
        &user(1),
        Some("lost-refusal"),
        Action::Create(&one_of("product-scarce", 2)),
    )
    .await;
    assert!(
        faithful.requests("UpdateItem") >= 2,
        "the SDK did not retry the refusal's update: the test proves nothing"
    );
    // THEN it is the request's own first answer: 409 OUT_OF_STOCK, not marked replayed
    match refused {
        Err(ServiceError::Refused(Refusal::OutOfStock {
            product_id: product,
        })) => assert_eq!(product.as_str(), "product-scarce"),
        Ok(response) => panic!(
            "answered {} (replayed: {})",
            response.status(),
            is_replayed(&response)
        ),
        Err(other) => panic!("{other:?}"),
    }
    // AND a real retry afterwards is the replay
    let retry = answered(
        &faithful.store,
        &user(1),
        Some("lost-refusal"),
        Action::Create(&one_of("product-scarce", 2)),
    )
    .await
    .unwrap();
    assert!(is_replayed(&retry));
    assert_eq!(retry.status(), 409);
}

#[tokio::test]
async fn a_request_out_of_time_gives_its_key_back_and_feeds_the_breaker() {
    // GIVEN a store whose reads take 3 s, a breaker that opens on one failure for 300 ms, and
    // an invocation with 1.5 s to its deadline (1 s of work after the answer's reserve)
    let settings = StoreSettings {
        breaker_failure_threshold: 1,
        breaker_open_for: Duration::from_millis(300),
        ..test_settings()
    };
    let faithful = faithful_table(&plan(), settings).await;
    faithful.proxy.update_faults(|faults| {
        *faults = Faults {
            request_delay_ms: 3_000,
            delay_only: vec!["BatchGetItem".to_owned()],
            ..Faults::default()
        }
    });
    let app = App::new(faithful.store.clone(), test_authenticator(), 0.0);
    let order = one_of("product-1", 1);
    let request = EventBuilder::new("POST", "/users/{userId}/orders")
        .path("userId", "user-1")
        .as_user("user-1")
        .header("idempotency-key", "budget")
        .json(r#"{"items":[{"productId":"product-1","quantity":1}]}"#)
        .deadline_in(1_500)
        .build();
    let key = IdempotencyKey::parse("budget").unwrap();
    // WHEN the request runs out of time
    let response = app
        .run(
            Operation::CreateOrder,
            &request,
            create_once(&app.store, &user(1), Some(key), &order),
        )
        .await;
    assert_eq!(response.status(), 503);
    // THEN its 503 fed the breaker: the next call fails fast, without reaching the store
    let before = faithful.proxy.summary().total().requests;
    let fast = faithful.store.get_order(&user(1), OrderId::random()).await;
    assert!(
        matches!(fast, Err(ServiceError::StoreUnavailable { .. })),
        "{fast:?}"
    );
    assert_eq!(faithful.proxy.summary().total().requests, before);
    // AND once the store is fast and the breaker has cooled down, the client's retry with the
    // key goes through at once instead of 409 for the rest of the claim's 15 s lease
    faithful
        .proxy
        .update_faults(|faults| *faults = Faults::default());
    tokio::time::sleep(Duration::from_millis(400)).await;
    let retry = answered(
        &faithful.store,
        &user(1),
        Some("budget"),
        Action::Create(&order),
    )
    .await;
    assert_eq!(status_of(&retry), Some(201), "{retry:?}");
    assert!(!is_replayed(retry.as_ref().unwrap()));
    assert_eq!(stock_of(&faithful, "product-1").await, 99);
}

#[tokio::test]
async fn one_hot_products_throttling_does_not_open_the_breaker_for_every_product() {
    // GIVEN a partition limit of 10 write units a second and a breaker that opens after two
    // unavailable answers
    let settings = StoreSettings {
        breaker_failure_threshold: 2,
        max_sdk_attempts: 1,
        ..test_settings()
    };
    let faithful = faithful_table(&plan(), settings).await;
    faithful.proxy.set_limits(Limits {
        write_units_per_second: 10.0,
        read_units_per_second: 3_000.0,
    });
    // WHEN 40 creates of one product arrive at once (2 units of its stock item each)
    let mut tasks = Vec::new();
    for number in 0..40 {
        let store = faithful.store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .create_order(&user(1 + number % 3), &one_of("product-1", 1), None)
                .await
        }));
    }
    let mut throttled = 0;
    for task in tasks {
        if let Err(error) = task.await.unwrap() {
            assert!(
                matches!(error, ServiceError::Throttled { .. }),
                "a hot product's create failed otherwise: {error:?}"
            );
            throttled += 1;
        }
    }
    assert!(
        throttled > 0,
        "nothing was throttled: the test proves nothing"
    );
    // THEN another product is still served: the breaker did not open
    let other = faithful
        .store
        .create_order(&user(1), &one_of("product-2", 1), None)
        .await;
    assert!(other.is_ok(), "{other:?}");
    assert!(faithful.table.store.audit().await.unwrap().is_clean());
}

#[tokio::test]
async fn an_unreachable_store_stops_being_called_once_the_breaker_opens() {
    // GIVEN a store whose every connection is refused, and a breaker that opens after two
    let settings = StoreSettings {
        breaker_failure_threshold: 2,
        breaker_open_for: Duration::from_secs(60),
        max_sdk_attempts: 1,
        ..test_settings()
    };
    let faithful = faithful_table(&plan(), settings).await;
    faithful.proxy.update_faults(|faults| {
        *faults = Faults {
            outage: Some(Outage::Refuse),
            ..Faults::default()
        }
    });
    // WHEN it is called twice THEN each call reached the store and failed as unavailable
    for _ in 0..2 {
        let read = faithful.store.get_order(&user(1), OrderId::random()).await;
        assert!(
            matches!(read, Err(ServiceError::StoreUnavailable { .. })),
            "{read:?}"
        );
    }
    let reached = faithful.proxy.summary();
    assert!(reached.refused_connections >= 2, "{reached:?}");
    // AND every later call fails as unavailable without reaching it
    for _ in 0..5 {
        let read = faithful.store.get_order(&user(1), OrderId::random()).await;
        assert!(
            matches!(read, Err(ServiceError::StoreUnavailable { .. })),
            "{read:?}"
        );
    }
    let after = faithful.proxy.summary();
    assert_eq!(after.connections, reached.connections);
    assert_eq!(after.total().requests, reached.total().requests);
}
