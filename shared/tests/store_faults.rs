//! The store's retry branches, made to run: a proxy in front of DynamoDB Local answers chosen
//! `TransactWriteItems` requests itself with a cancellation (conflict or throttling) that the
//! real DynamoDB sends under contention, without forwarding them. Each test shows the branch
//! ran (counted retries, counted requests) and what the client gets.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use order_service::domain::{NewOrder, UserId};
use order_service::local_dynamodb::{new_order, seeded_table, test_settings, TestTable};
use order_service::store::{
    build_local_client, count_store_retries, CreateOrders, DynamoOrderStore, PayOrders, SeedPlan,
    StoreSettings,
};
use order_service::ServiceError;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

/// What the proxy answers instead of DynamoDB, for the next `budget` transactions.
#[derive(Clone, Copy)]
enum Cancel {
    Conflict,
    Throttling,
}

struct Injection {
    kind: Cancel,
    budget: AtomicU64,
    /// `TransactWriteItems` requests seen, answered by the proxy or forwarded.
    seen: AtomicU64,
}

fn cancellation(kind: Cancel) -> Vec<u8> {
    let code = match kind {
        Cancel::Conflict => "TransactionConflict",
        Cancel::Throttling => "ThrottlingError",
    };
    let body = format!(
        r#"{{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException","message":"Transaction cancelled, please refer cancellation reasons for specific reasons [{code}]","CancellationReasons":[{{"Code":"{code}","Message":"injected"}},{{"Code":"None"}},{{"Code":"None"}}]}}"#
    );
    format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: {}\r\nx-amzn-RequestId: injected\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Reads one HTTP/1.1 request (headers and a Content-Length body) off the client connection.
async fn read_request(reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> Option<Vec<u8>> {
    let mut request = Vec::new();
    let mut length = 0_usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok()?;
            }
        }
        request.extend_from_slice(line.as_bytes());
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0_u8; length];
    reader.read_exact(&mut body).await.ok()?;
    request.extend_from_slice(&body);
    Some(request)
}

async fn fault_proxy(upstream: String, injection: Arc<Injection>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let upstream = upstream.clone();
            let injection = injection.clone();
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    return;
                };
                let (client_read, client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let client_write = Arc::new(Mutex::new(client_write));
                let answers = client_write.clone();
                let responses = tokio::spawn(async move {
                    let mut buffer = vec![0_u8; 64 * 1024];
                    while let Ok(read) = server_read.read(&mut buffer).await {
                        if read == 0
                            || answers
                                .lock()
                                .await
                                .write_all(&buffer[..read])
                                .await
                                .is_err()
                        {
                            break;
                        }
                    }
                });
                // HTTP/1.1 without pipelining: a client sends its next request only after the
                // answer to the last, so an injected answer never overtakes a forwarded one.
                let mut reader = BufReader::new(client_read);
                while let Some(request) = read_request(&mut reader).await {
                    let transact = request
                        .windows(18)
                        .any(|window| window == b"TransactWriteItems");
                    if transact {
                        injection.seen.fetch_add(1, Ordering::Relaxed);
                    }
                    let inject = transact
                        && injection
                            .budget
                            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                                left.checked_sub(1)
                            })
                            .is_ok();
                    let sent = if inject {
                        client_write
                            .lock()
                            .await
                            .write_all(&cancellation(injection.kind))
                            .await
                    } else {
                        server_write.write_all(&request).await
                    };
                    if sent.is_err() {
                        break;
                    }
                }
                responses.abort();
            });
        }
    });
    port
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

async fn faulty_store(
    table: &TestTable,
    kind: Cancel,
    budget: u64,
    settings: StoreSettings,
) -> (DynamoOrderStore, Arc<Injection>) {
    let injection = Arc::new(Injection {
        kind,
        budget: AtomicU64::new(budget),
        seen: AtomicU64::new(0),
    });
    let upstream = table.endpoint.trim_start_matches("http://").to_owned();
    let port = fault_proxy(upstream, injection.clone()).await;
    let client = build_local_client(&settings, &format!("http://127.0.0.1:{port}")).await;
    (
        DynamoOrderStore::new(client, table.table.clone(), settings),
        injection,
    )
}

#[tokio::test]
async fn conflicts_are_retried_until_the_write_goes_through_once() {
    let table = seeded_table(&plan()).await;
    let user = UserId::parse("user-1").unwrap();
    let order = table
        .store
        .create_order(&user, &one_unit(), None)
        .await
        .unwrap()
        .order;
    // GIVEN a store whose next 3 payment transactions are cancelled for a conflict
    let (store, injection) = faulty_store(&table, Cancel::Conflict, 3, test_settings()).await;
    // WHEN the order is paid
    let (paid, retries) = count_store_retries(store.pay_order(&user, order.order_id, None)).await;
    // THEN the conflict branch ran 3 times and the 4th attempt paid, once
    assert_eq!(paid.unwrap().order.order_id, order.order_id);
    assert_eq!(retries, 3);
    assert_eq!(injection.seen.load(Ordering::Relaxed), 4);
    assert_eq!(
        table.store.user_balance(&user).await.unwrap(),
        Some(100_000 - order.total_amount.won())
    );
    assert!(table.store.audit().await.unwrap().is_clean());
}

#[tokio::test]
async fn conflicts_past_the_bound_are_a_409_with_nothing_applied() {
    let table = seeded_table(&plan()).await;
    let user = UserId::parse("user-1").unwrap();
    let (store, injection) = faulty_store(&table, Cancel::Conflict, 100, test_settings()).await;
    let (created, retries) =
        count_store_retries(store.create_order(&user, &one_unit(), None)).await;
    assert!(
        matches!(created, Err(ServiceError::Contention { .. })),
        "{created:?}"
    );
    assert_eq!(retries, 9, "10 attempts");
    assert_eq!(injection.seen.load(Ordering::Relaxed), 10);
    assert!(table.store.all_orders().await.unwrap().is_empty());
}

#[tokio::test]
async fn throttled_transactions_are_a_503_and_feed_the_breaker() {
    let table = seeded_table(&plan()).await;
    let user = UserId::parse("user-1").unwrap();
    // GIVEN a store that throttles every transaction, and a breaker that opens at once
    let settings = StoreSettings {
        breaker_failure_threshold: 1,
        ..test_settings()
    };
    let (store, injection) = faulty_store(&table, Cancel::Throttling, 100, settings).await;
    // WHEN a create keeps being throttled THEN it is STORE_UNAVAILABLE, not CONCURRENT_REQUEST
    let created = store.create_order(&user, &one_unit(), None).await;
    assert!(
        matches!(created, Err(ServiceError::StoreUnavailable { .. })),
        "{created:?}"
    );
    let seen = injection.seen.load(Ordering::Relaxed);
    assert_eq!(seen, 10);
    // AND the breaker counted it: the next request fails fast without reaching the store
    let next = store.create_order(&user, &one_unit(), None).await;
    assert!(matches!(next, Err(ServiceError::StoreUnavailable { .. })));
    assert_eq!(injection.seen.load(Ordering::Relaxed), seen);
    assert!(table.store.all_orders().await.unwrap().is_empty());
}
