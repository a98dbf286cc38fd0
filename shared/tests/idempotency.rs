//! Idempotency-Keys against a real DynamoDB Local: a key's first answer, success or business
//! refusal, is what every later request with it gets, whatever happened since; a different
//! request with the key is refused; a retry while the first is in flight is never executed.
//! Each scenario ends with the conservation audit.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use order_service::domain::Refusal;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use testkit::UseCases;

use aws_sdk_dynamodb::types::AttributeValue;
use common::stock;
use lambda_http::{Body, Response};
use order_service::domain::{Claim, Fingerprint, IdempotencyKey, NewOrder, OrderId, UserId};
use order_service::store::{KeepAnswers, SeedPlan, StoreSettings};
use order_service::ServiceError;
use testkit::{
    answered, fresh_table_with, is_replayed, new_order, seeded_table, test_settings, Action,
    TestTable,
};

fn user(number: u32) -> UserId {
    UserId::parse(&format!("user-{number}")).unwrap()
}

fn order_of(product: &str, quantity: u64) -> NewOrder {
    new_order(&[(product, quantity)])
}

fn plan() -> SeedPlan {
    SeedPlan {
        users: 3,
        balance: 100_000,
        products: 3,
        stock: 10,
        extra_products: vec![("product-scarce".into(), 1_000, 1)],
        ..SeedPlan::default()
    }
}

fn body(response: &Response<Body>) -> serde_json::Value {
    serde_json::from_slice(response.body().as_ref()).unwrap()
}

fn order_id_of(response: &Response<Body>) -> OrderId {
    OrderId::parse(body(response)["orderId"].as_str().unwrap()).unwrap()
}

/// Sends the request again while the key's first request is in flight (409
/// REQUEST_IN_PROGRESS), as a client honouring Retry-After would; returns the answer.
async fn until_answered(
    table: &TestTable,
    user_id: &UserId,
    key: &str,
    change: Action<'_>,
) -> (Response<Body>, u32) {
    let mut in_flight = 0;
    loop {
        match answered(&table.store, user_id, Some(key), change).await {
            Err(ServiceError::RequestInProgress { .. }) => {
                in_flight += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(response) => return (response, in_flight),
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
}

async fn assert_audit_clean(table: &TestTable) {
    let report = table.store.audit().await.unwrap();
    assert!(report.is_clean(), "{:#?}", report.violations);
}

/// A request that copies of itself race.
#[derive(Debug, Clone)]
enum Racing {
    Create(NewOrder),
    Pay(OrderId),
}

/// Sends 20 copies of one request of user 1 with `key` at once, each until it is answered;
/// returns every answer's status, replay mark and body.
async fn race(
    table: &Arc<TestTable>,
    key: &'static str,
    request: Racing,
) -> Vec<(lambda_http::http::StatusCode, bool, Vec<u8>)> {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (table, request) = (table.clone(), request.clone());
        tasks.spawn(async move {
            let change = match &request {
                Racing::Create(order) => Action::Create(order),
                Racing::Pay(order_id) => Action::Pay(*order_id),
            };
            let (response, _) = until_answered(&table, &user(1), key, change).await;
            (
                response.status(),
                is_replayed(&response),
                response.body().to_vec(),
            )
        });
    }
    let mut answers = Vec::new();
    while let Some(result) = tasks.join_next().await {
        answers.push(result.unwrap());
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_copies_of_a_keyed_request_have_one_effect_and_one_answer() {
    let table = Arc::new(seeded_table(&plan()).await);
    // GIVEN 20 copies of one create with the same key, sent at once
    let answers = race(&table, "create-1", Racing::Create(order_of("product-2", 2))).await;
    // THEN one executed, 19 got its answer: same status and the very same body
    assert_eq!(
        answers.iter().filter(|(_, replayed, _)| !replayed).count(),
        1
    );
    assert!(answers.iter().all(|(status, _, _)| *status == 201));
    assert!(answers.iter().all(|(_, _, body)| *body == answers[0].2));
    assert_eq!(stock(&table, "product-2").await, 8);
    assert_eq!(table.store.all_orders().await.unwrap().len(), 1);
    let order_id = OrderId::parse(
        serde_json::from_slice::<serde_json::Value>(&answers[0].2).unwrap()["orderId"]
            .as_str()
            .unwrap(),
    )
    .unwrap();

    // AND the key with a different body is refused, and is independent per user
    let other_body = order_of("product-2", 3);
    assert!(matches!(
        answered(
            &table.store,
            &user(1),
            Some("create-1"),
            Action::Create(&other_body)
        )
        .await,
        Err(ServiceError::IdempotencyKeyReused)
    ));
    let theirs = answered(
        &table.store,
        &user(2),
        Some("create-1"),
        Action::Create(&other_body),
    )
    .await
    .unwrap();
    assert_eq!(theirs.status(), 201);
    assert!(!is_replayed(&theirs));
    assert_ne!(order_id_of(&theirs), order_id);

    // WHEN 20 payments with one key race THEN one debit, one answer
    let answers = race(&table, "pay-1", Racing::Pay(order_id)).await;
    assert_eq!(
        answers.iter().filter(|(_, replayed, _)| !replayed).count(),
        1
    );
    assert!(answers
        .iter()
        .all(|(status, _, body)| *status == 200 && *body == answers[0].2));
    let total = table
        .store
        .get_order(&user(1), order_id)
        .await
        .unwrap()
        .total_amount;
    assert_eq!(
        table.store.user_balance(&user(1)).await.unwrap(),
        Some(100_000 - total.won())
    );
    // AND another key on the paid order is refused, and that refusal is its answer
    let refused = answered(&table.store, &user(1), Some("pay-2"), Action::Pay(order_id))
        .await
        .unwrap_err();
    assert!(matches!(
        refused,
        ServiceError::Refused(Refusal::OrderAlreadyPaid)
    ));
    let again = answered(&table.store, &user(1), Some("pay-2"), Action::Pay(order_id))
        .await
        .unwrap();
    assert_eq!(again.status(), 409);
    assert!(is_replayed(&again));
    assert_eq!(body(&again)["code"], "ORDER_ALREADY_PAID");
    assert_audit_clean(&table).await;
}

#[tokio::test]
async fn a_retry_gets_the_first_answer_whatever_happened_since() {
    let table = seeded_table(&plan()).await;
    let order = order_of("product-1", 1);
    // GIVEN an order created and paid with keys
    let created = answered(&table.store, &user(1), Some("c"), Action::Create(&order))
        .await
        .unwrap();
    let order_id = order_id_of(&created);
    let paid = answered(&table.store, &user(1), Some("p"), Action::Pay(order_id))
        .await
        .unwrap();
    assert_eq!(body(&paid)["status"], "PAID");
    // AND then cancelled from another device (refunded)
    let cancelled = answered(&table.store, &user(1), None, Action::Cancel(order_id))
        .await
        .unwrap();
    assert_eq!(body(&cancelled)["status"], "CANCELLED");

    // WHEN the payment's answer was lost and the client retries it
    let pay_retry = answered(&table.store, &user(1), Some("p"), Action::Pay(order_id))
        .await
        .unwrap();
    // THEN it gets the 200 it was given, not ORDER_CANCELLED, and no second debit happens
    assert_eq!(pay_retry.status(), 200);
    assert!(is_replayed(&pay_retry));
    assert_eq!(pay_retry.body().as_ref(), paid.body().as_ref());
    // AND a create retry gets the 201 as it was sent (CREATED), with its Location
    let create_retry = answered(&table.store, &user(1), Some("c"), Action::Create(&order))
        .await
        .unwrap();
    assert_eq!(create_retry.status(), 201);
    assert!(is_replayed(&create_retry));
    assert_eq!(create_retry.body().as_ref(), created.body().as_ref());
    assert_eq!(body(&create_retry)["status"], "CREATED");
    assert_eq!(
        create_retry.headers()["location"],
        created.headers()["location"]
    );
    assert_eq!(
        table.store.user_balance(&user(1)).await.unwrap(),
        Some(100_000)
    );
    assert_audit_clean(&table).await;
}

#[tokio::test]
async fn a_business_refusal_is_the_keys_answer() {
    let table = seeded_table(&plan()).await;
    let scarce = order_of("product-scarce", 1);
    // GIVEN the only unit of a product bought by user 2
    let theirs = answered(&table.store, &user(2), None, Action::Create(&scarce))
        .await
        .unwrap();
    // WHEN user 1's keyed create is refused for stock
    let refused = answered(&table.store, &user(1), Some("k"), Action::Create(&scarce)).await;
    assert!(
        matches!(
            refused,
            Err(ServiceError::Refused(Refusal::OutOfStock { product_id: _ }))
        ),
        "{refused:?}"
    );
    // AND the unit comes back
    answered(
        &table.store,
        &user(2),
        None,
        Action::Cancel(order_id_of(&theirs)),
    )
    .await
    .unwrap();
    assert_eq!(stock(&table, "product-scarce").await, 1);
    // THEN the retry still gets OUT_OF_STOCK, from the record, and takes nothing
    let retry = answered(&table.store, &user(1), Some("k"), Action::Create(&scarce))
        .await
        .unwrap();
    assert_eq!(retry.status(), 409);
    assert!(is_replayed(&retry));
    assert_eq!(body(&retry)["code"], "OUT_OF_STOCK");
    assert_eq!(body(&retry)["productId"], "product-scarce");
    assert_eq!(stock(&table, "product-scarce").await, 1);
    // AND the key with another body is refused rather than executed
    let other = answered(
        &table.store,
        &user(1),
        Some("k"),
        Action::Create(&order_of("product-1", 1)),
    )
    .await;
    assert!(matches!(other, Err(ServiceError::IdempotencyKeyReused)));
    assert_eq!(stock(&table, "product-1").await, 10);

    // A pay key answered 404 for one order is refused for another order.
    let missing = OrderId::random();
    let not_found = answered(&table.store, &user(1), Some("pk"), Action::Pay(missing)).await;
    assert!(matches!(
        not_found,
        Err(ServiceError::Refused(Refusal::OrderNotFound))
    ));
    let mine = answered(
        &table.store,
        &user(1),
        None,
        Action::Create(&order_of("product-1", 1)),
    )
    .await
    .unwrap();
    let reused = answered(
        &table.store,
        &user(1),
        Some("pk"),
        Action::Pay(order_id_of(&mine)),
    )
    .await;
    assert!(matches!(reused, Err(ServiceError::IdempotencyKeyReused)));
    assert_eq!(
        table.store.user_balance(&user(1)).await.unwrap(),
        Some(100_000),
        "the reused key paid nothing"
    );
    assert_audit_clean(&table).await;
}

#[tokio::test]
async fn a_retry_while_the_first_is_in_flight_is_not_executed() {
    let table = seeded_table(&plan()).await;
    let order = order_of("product-1", 1);
    // GIVEN a request that holds the key and has not answered yet
    let first = Claim::new(
        IdempotencyKey::parse("k").unwrap(),
        Fingerprint::create(&order),
    );
    assert_eq!(table.store.claim(&user(1), &first).await.unwrap(), None);
    // WHEN the client retries
    let retry = answered(&table.store, &user(1), Some("k"), Action::Create(&order)).await;
    // THEN it is told to come back, with Retry-After, and nothing is executed
    let Err(error) = retry else {
        panic!("expected REQUEST_IN_PROGRESS, got {retry:?}")
    };
    assert_eq!(error.code(), "REQUEST_IN_PROGRESS");
    let problem = order_service::http::problem::problem_response(&error);
    assert_eq!(problem.status(), 409);
    assert_eq!(problem.headers()["retry-after"], "1");
    assert_eq!(stock(&table, "product-1").await, 10);
    assert!(table.store.all_orders().await.unwrap().is_empty());
    // AND once the first gives the key up (a failure that is no outcome), the retry runs
    table.store.release(&user(1), &first).await;
    let retry = answered(&table.store, &user(1), Some("k"), Action::Create(&order))
        .await
        .unwrap();
    assert_eq!(retry.status(), 201);
    assert!(!is_replayed(&retry));
    assert_eq!(stock(&table, "product-1").await, 9);
    assert_audit_clean(&table).await;
}

async fn record_of(table: &TestTable, user_id: &UserId, key: &str) -> Option<serde_json::Value> {
    let sk = format!(
        "IDEMPOTENCY#{}",
        IdempotencyKey::parse(key).unwrap().record_id()
    );
    let item = table
        .client
        .get_item()
        .table_name(&table.table)
        .key("pk", AttributeValue::S(format!("USER#{user_id}")))
        .key("sk", AttributeValue::S(sk))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item?;
    Some(serde_dynamo::from_item(item).unwrap())
}

#[tokio::test]
async fn answers_expire_and_a_late_retry_still_finds_its_order() {
    // GIVEN answers kept for 1 s
    let table = fresh_table_with(StoreSettings {
        answer_ttl: Duration::from_secs(1),
        ..test_settings()
    })
    .await;
    table.store.seed(&plan()).await.unwrap();
    let order = order_of("product-1", 1);
    let first = answered(&table.store, &user(1), Some("k"), Action::Create(&order))
        .await
        .unwrap();
    let record = record_of(&table, &user(1), "k").await.unwrap();
    assert_eq!(record["state"], "ANSWERED");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let expires_at = record["expiresAt"].as_i64().unwrap();
    assert!(
        (now..=now + 2).contains(&expires_at),
        "{expires_at} vs {now}"
    );
    // WHEN the client retries after the answer expired (TTL has not removed it yet)
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let late = answered(&table.store, &user(1), Some("k"), Action::Create(&order))
        .await
        .unwrap();
    // THEN the keyed order id still addresses the order it made: no second effect
    assert_eq!(late.status(), 201);
    assert!(is_replayed(&late));
    assert_eq!(order_id_of(&late), order_id_of(&first));
    assert_eq!(stock(&table, "product-1").await, 9);
    assert_eq!(table.store.all_orders().await.unwrap().len(), 1);
    // AND the new claim did not stay behind to hold the key: its lease has lapsed
    let record = record_of(&table, &user(1), "k").await.unwrap();
    assert_eq!(record["state"], "IN_PROGRESS");
    assert_eq!(record["lockedUntil"], 0);
    assert_audit_clean(&table).await;
}

#[tokio::test]
async fn the_default_answer_ttl_is_a_day() {
    let table = seeded_table(&plan()).await;
    answered(
        &table.store,
        &user(1),
        Some("day"),
        Action::Create(&order_of("product-1", 1)),
    )
    .await
    .unwrap();
    let record = record_of(&table, &user(1), "day").await.unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let ttl = record["expiresAt"].as_i64().unwrap() - now;
    assert!((86_390..=86_400).contains(&ttl), "{ttl}");
}
