//! Exactly once when the answer is lost: a delaying TCP proxy in front of DynamoDB Local makes
//! the store answer after the client's attempt timeout, although the write committed. A retry
//! with the same Idempotency-Key must find the first effect instead of applying a second.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lambda_http::{Body, Response};
use order_service::domain::{NewOrder, OrderId, ProductId, UserId};
use order_service::local_dynamodb::{
    answered, is_replayed, new_order, seeded_table, test_settings, Change, TestTable,
};
use order_service::store::{
    build_local_client, CreateOrders, DynamoOrderStore, PayOrders, ReadOrders, SeedPlan,
    StoreSettings,
};
use order_service::ServiceError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A TCP proxy that forwards to `upstream` and holds back the answers to
/// `TransactWriteItems` by the current delay (milliseconds, changeable while it runs): the
/// write reaches DynamoDB and commits, only its answer is late. Reads pass undelayed.
/// Returns the port and a count of the `TransactWriteItems` requests it forwarded.
async fn delaying_proxy(upstream: String, delay_ms: Arc<AtomicU64>) -> (u16, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let transacts = Arc::new(AtomicU64::new(0));
    let counted = transacts.clone();
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let upstream = upstream.clone();
            let delay_ms = delay_ms.clone();
            let counted = counted.clone();
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    return;
                };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let pending_write = Arc::new(std::sync::atomic::AtomicBool::new(false));
                let marker = pending_write.clone();
                let requests = tokio::spawn(async move {
                    let mut buffer = vec![0_u8; 64 * 1024];
                    loop {
                        let read = match client_read.read(&mut buffer).await {
                            Ok(0) | Err(_) => break,
                            Ok(read) => read,
                        };
                        let chunk = &buffer[..read];
                        if chunk
                            .windows(18)
                            .any(|window| window == b"TransactWriteItems")
                        {
                            marker.store(true, Ordering::Relaxed);
                            counted.fetch_add(1, Ordering::Relaxed);
                        }
                        if server_write.write_all(chunk).await.is_err() {
                            break;
                        }
                    }
                });
                let mut buffer = vec![0_u8; 64 * 1024];
                loop {
                    let read = match server_read.read(&mut buffer).await {
                        Ok(0) | Err(_) => break,
                        Ok(read) => read,
                    };
                    let delay = delay_ms.load(Ordering::Relaxed);
                    let answers_a_write = pending_write.swap(false, Ordering::Relaxed);
                    if delay > 0 && answers_a_write {
                        tokio::time::sleep(Duration::from_millis(delay)).await;
                    }
                    if client_write.write_all(&buffer[..read]).await.is_err() {
                        break;
                    }
                }
                requests.abort();
            });
        }
    });
    (port, transacts)
}

fn plan() -> SeedPlan {
    SeedPlan {
        users: 2,
        balance: 100_000,
        products: 2,
        stock: 10,
        extra_products: vec![],
    }
}

fn one_unit() -> NewOrder {
    new_order(&[("product-1", 1)])
}

/// A store that reaches the table through the proxy, with a short attempt timeout, and the
/// proxy's count of `TransactWriteItems` requests.
async fn slow_store(
    table: &TestTable,
    delay: Arc<AtomicU64>,
    sdk_attempts: u32,
) -> (DynamoOrderStore, Arc<AtomicU64>) {
    let upstream = table.endpoint.trim_start_matches("http://").to_owned();
    let (port, transacts) = delaying_proxy(upstream, delay).await;
    let settings = StoreSettings {
        attempt_timeout: Duration::from_millis(300),
        operation_timeout: Duration::from_secs(5),
        max_sdk_attempts: sdk_attempts,
        breaker_failure_threshold: 100,
        ..test_settings()
    };
    let client = build_local_client(&settings, &format!("http://127.0.0.1:{port}")).await;
    (
        DynamoOrderStore::new(client, table.table.clone(), settings),
        transacts,
    )
}

async fn stock_of(table: &TestTable, product: &str) -> i64 {
    table
        .store
        .product_stock(&ProductId::parse(product).unwrap())
        .await
        .unwrap()
        .unwrap()
}

async fn keyed_create(
    store: &DynamoOrderStore,
    user: &UserId,
    key: &str,
) -> Result<Response<Body>, ServiceError> {
    answered(store, user, Some(key), Change::Create(&one_unit())).await
}

async fn keyed_pay(
    store: &DynamoOrderStore,
    user: &UserId,
    order_id: OrderId,
    key: &str,
) -> Result<Response<Body>, ServiceError> {
    answered(store, user, Some(key), Change::Pay(order_id)).await
}

fn body(response: &Response<Body>) -> serde_json::Value {
    serde_json::from_slice(response.body().as_ref()).unwrap()
}

#[tokio::test]
async fn a_retry_with_the_same_key_after_a_lost_answer_applies_once() {
    let table = seeded_table(&plan()).await;
    let delay = Arc::new(AtomicU64::new(0));
    // One attempt per call: the client gives up, as an impatient caller would.
    let (store, transacts) = slow_store(&table, delay.clone(), 1).await;
    let user = UserId::parse("user-1").unwrap();

    // GIVEN a store that answers only after the client's timeout
    delay.store(800, Ordering::Relaxed);
    // WHEN a keyed create times out on the client side
    let first = keyed_create(&store, &user, "checkout-1").await;
    assert!(
        matches!(first, Err(ServiceError::StoreUnavailable { .. })),
        "expected a timeout, got {first:?}"
    );
    assert_eq!(
        transacts.load(Ordering::Relaxed),
        1,
        "one attempt, abandoned"
    );
    // (the write itself committed)
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(stock_of(&table, "product-1").await, 9);

    // AND the client retries with the same key once the store is fast again
    delay.store(0, Ordering::Relaxed);
    let retry = keyed_create(&store, &user, "checkout-1").await.unwrap();

    // THEN the retry is answered from the key's record, without a second transaction
    assert_eq!(
        transacts.load(Ordering::Relaxed),
        1,
        "the retry sent no write"
    );
    assert!(is_replayed(&retry), "{:?}", retry.headers());
    assert_eq!(retry.status(), 201);
    let orders = table.store.all_orders().await.unwrap();
    assert_eq!(orders.len(), 1);
    assert_eq!(stock_of(&table, "product-1").await, 9);
    let order_id = OrderId::parse(body(&retry)["orderId"].as_str().unwrap()).unwrap();
    assert_eq!(orders[0].order_id, order_id);

    // AND the same holds for a payment whose answer was lost
    delay.store(800, Ordering::Relaxed);
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
    delay.store(0, Ordering::Relaxed);
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
    let table = seeded_table(&plan()).await;
    let delay = Arc::new(AtomicU64::new(800));
    let (store, transacts) = slow_store(&table, delay.clone(), 1).await;
    let user = UserId::parse("user-1").unwrap();
    assert!(store.create_order(&user, &one_unit(), None).await.is_err());
    tokio::time::sleep(Duration::from_millis(900)).await;
    delay.store(0, Ordering::Relaxed);
    store.create_order(&user, &one_unit(), None).await.unwrap();
    assert_eq!(
        transacts.load(Ordering::Relaxed),
        2,
        "abandoned write, then the retry"
    );
    assert_eq!(table.store.all_orders().await.unwrap().len(), 2);
    assert_eq!(stock_of(&table, "product-1").await, 8);
    assert!(table.store.audit().await.unwrap().is_clean());
}

#[tokio::test]
async fn the_sdk_retrying_an_ambiguous_write_does_not_apply_it_twice() {
    // GIVEN SDK retries on (3 attempts of 300 ms) and a store slower than one attempt once
    let table = seeded_table(&plan()).await;
    let delay = Arc::new(AtomicU64::new(0));
    let (store, transacts) = slow_store(&table, delay.clone(), 3).await;
    let user = UserId::parse("user-1").unwrap();
    let order = table
        .store
        .create_order(&user, &one_unit(), None)
        .await
        .unwrap()
        .order;
    delay.store(450, Ordering::Relaxed);
    let slowdown_ends = {
        let delay = delay.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(350)).await;
            delay.store(0, Ordering::Relaxed);
        })
    };
    // WHEN an unkeyed payment's first attempt times out after committing and the SDK retries
    let paid = store.pay_order(&user, order.order_id, None).await;
    slowdown_ends.await.unwrap();
    assert!(
        transacts.load(Ordering::Relaxed) >= 2,
        "the SDK did not retry the write: the test would prove nothing"
    );
    // THEN the retry recognises its own write: success, one debit
    let paid = paid.unwrap();
    assert_eq!(paid.order.status, order_service::domain::OrderStatus::Paid);
    let balance = table.store.user_balance(&user).await.unwrap().unwrap();
    assert_eq!(balance, 100_000 - order.total_amount.won());
    assert!(table.store.audit().await.unwrap().is_clean());
}
