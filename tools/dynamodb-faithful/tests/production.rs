//! Each production behaviour the proxy claims, reproduced against a real DynamoDB Local through
//! `aws-sdk-dynamodb`: transaction conflicts (single writes, transactions, transactional reads),
//! the resent token, partition throttling and the SDK's retries of it, consumed capacity, and
//! that DynamoDB Local's queue does not turn into conflicts by itself.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use aws_sdk_dynamodb::config::{Credentials, Region};
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::builders::TransactWriteItemsFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Get, Put, ReturnConsumedCapacity, TransactGetItem, TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;
use aws_smithy_types::retry::RetryConfig;
use dynamodb_faithful::{start, Faults, Handle, Injected, Limits, Outage, Settings};
use testkit::{fresh_table, TestTable};

/// A client of `endpoint` making at most `attempts` attempts per call.
fn client(endpoint: &str, attempts: u32) -> Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("local", "local", None, None, "test"))
        .endpoint_url(endpoint)
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(attempts)
                .with_initial_backoff(Duration::from_millis(5)),
        )
        .build();
    Client::from_conf(config)
}

/// Per-partition limits of `units` write units a second (and 30 read units, which these
/// tests do not reach).
fn write_units_per_second(units: f64) -> Limits {
    Limits {
        write_units_per_second: units,
        read_units_per_second: 30.0,
    }
}

async fn proxy(table: &TestTable, limits: Limits, hold_ms: u64) -> Handle {
    start(Settings {
        listen: "127.0.0.1:0".to_owned(),
        upstream: table.endpoint.clone(),
        limits,
        hold: Duration::from_millis(hold_ms),
        event_log: None,
    })
    .await
    .unwrap()
}

fn key(pk: &str) -> std::collections::HashMap<String, AttributeValue> {
    keyed(pk, "ITEM")
}

fn keyed(pk: &str, sk: &str) -> std::collections::HashMap<String, AttributeValue> {
    std::collections::HashMap::from([
        ("pk".to_owned(), AttributeValue::S(pk.to_owned())),
        ("sk".to_owned(), AttributeValue::S(sk.to_owned())),
    ])
}

/// A transaction incrementing `n` on each of `items`, ready to send (or to add to).
fn increments(client: &Client, table: &str, items: &[&str]) -> TransactWriteItemsFluentBuilder {
    let updates = items.iter().map(|pk| {
        TransactWriteItem::builder()
            .update(
                Update::builder()
                    .table_name(table)
                    .set_key(Some(key(pk)))
                    .update_expression("ADD n :one")
                    .expression_attribute_values(":one", AttributeValue::N("1".to_owned()))
                    .build()
                    .unwrap(),
            )
            .build()
    });
    client
        .transact_write_items()
        .set_transact_items(Some(updates.collect()))
}

/// A PutItem of `item`, ready to send.
fn put_item(
    client: &Client,
    table: &str,
    item: std::collections::HashMap<String, AttributeValue>,
) -> PutItemFluentBuilder {
    client.put_item().table_name(table).set_item(Some(item))
}

/// A transactional put of `item`.
fn transact_put(
    table: &str,
    item: std::collections::HashMap<String, AttributeValue>,
) -> TransactWriteItem {
    TransactWriteItem::builder()
        .put(
            Put::builder()
                .table_name(table)
                .set_item(Some(item))
                .build()
                .unwrap(),
        )
        .build()
}

async fn n_of(table: &TestTable, pk: &str) -> i64 {
    table
        .client
        .get_item()
        .table_name(&table.table)
        .set_key(Some(key(pk)))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .and_then(|item| {
            item.get("n")
                .and_then(|n| n.as_n().ok())
                .map(|n| n.parse().unwrap())
        })
        .unwrap_or(0)
}

fn reason_codes(error: &SdkError<TransactWriteItemsError, impl std::fmt::Debug>) -> Vec<String> {
    match error.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => cancelled
            .cancellation_reasons()
            .iter()
            .map(|reason| reason.code().unwrap_or("").to_owned())
            .collect(),
        other => panic!("expected a cancellation, got {other:?}"),
    }
}

#[tokio::test]
async fn a_single_write_on_an_item_an_ongoing_transaction_holds_is_a_conflict_the_sdk_does_not_retry(
) {
    // GIVEN a transaction on item x that holds it 400 ms longer than its own work
    let table = fresh_table().await;
    let proxy = proxy(&table, Limits::PRODUCTION, 400).await;
    let writer = client(&proxy.endpoint(), 3);
    increments(&writer, &table.table, &["x"])
        .send()
        .await
        .unwrap();
    // WHEN a PutItem on x arrives inside the hold
    let put = put_item(&writer, &table.table, key("x")).send().await;
    // THEN it fails with TransactionConflictException, after one attempt (the SDK's retry
    // classifiers do not retry it), and the item is untouched
    match put {
        Err(error) => assert!(
            matches!(
                error.as_service_error(),
                Some(PutItemError::TransactionConflictException(_))
            ),
            "{error:?}"
        ),
        Ok(_) => panic!("the put went through a held item"),
    }
    assert_eq!(proxy.summary().operation("PutItem").requests, 1);
    assert_eq!(n_of(&table, "x").await, 1);
    // AND once the hold is over the same put goes through
    tokio::time::sleep(Duration::from_millis(450)).await;
    put_item(&writer, &table.table, key("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(n_of(&table, "x").await, 0, "the put replaced the item");
}

#[tokio::test]
async fn a_transaction_that_includes_a_held_item_is_cancelled_for_that_item_only() {
    let table = fresh_table().await;
    let proxy = proxy(&table, Limits::PRODUCTION, 400).await;
    let one = client(&proxy.endpoint(), 1);
    // GIVEN a transaction on a and b, holding them
    increments(&one, &table.table, &["a", "b"])
        .send()
        .await
        .unwrap();
    // WHEN a transaction on c and b follows inside the hold
    let error = increments(&one, &table.table, &["c", "b"])
        .send()
        .await
        .unwrap_err();
    // THEN it is cancelled: TransactionConflict for b, None for c, and nothing of it applied
    assert_eq!(reason_codes(&error), ["None", "TransactionConflict"]);
    assert_eq!((n_of(&table, "b").await, n_of(&table, "c").await), (1, 0));
    // AND a transactional read of b is cancelled too
    let read = one
        .transact_get_items()
        .transact_items(
            TransactGetItem::builder()
                .get(
                    Get::builder()
                        .table_name(&table.table)
                        .set_key(Some(key("b")))
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await;
    assert!(read.is_err(), "{read:?}");
    // AND a plain read is served (read committed)
    assert_eq!(n_of(&table, "a").await, 1);
    assert_eq!(proxy.summary().operation("TransactWriteItems").conflicts, 1);
}

#[tokio::test]
async fn a_resent_token_while_its_transaction_runs_is_in_progress_and_applies_once() {
    let table = fresh_table().await;
    let proxy = proxy(&table, Limits::PRODUCTION, 5_000).await;
    // GIVEN transactions whose answers come back 400 ms late
    proxy.update_faults(|faults| *faults = Faults::late_answers(Some("TransactWriteItems"), 400));
    let sender = client(&proxy.endpoint(), 1);
    let first = tokio::spawn(
        increments(&sender, &table.table, &["t"])
            .client_request_token("token-1")
            .send(),
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    // WHEN the same transaction is resent with its token while the first still runs
    let resent = increments(&sender, &table.table, &["t"])
        .client_request_token("token-1")
        .send()
        .await;
    // THEN DynamoDB's answer is TransactionInProgressException
    assert!(
        matches!(
            resent.as_ref().map_err(|error| error.as_service_error()),
            Err(Some(
                TransactWriteItemsError::TransactionInProgressException(_)
            ))
        ),
        "{resent:?}"
    );
    first.await.unwrap().unwrap();
    // AND a resend after it finished succeeds without applying twice, inside the first one's
    // 5 s hold (DynamoDB recognises the token before it looks for conflicts)
    proxy.update_faults(|faults| *faults = Faults::default());
    increments(&sender, &table.table, &["t"])
        .client_request_token("token-1")
        .send()
        .await
        .unwrap();
    assert_eq!(n_of(&table, "t").await, 1);
}

/// Sends `count` requests at once, each made by `request(number)`, and returns their results.
async fn at_once<T, F>(count: usize, request: impl Fn(usize) -> F) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let tasks: Vec<_> = (0..count)
        .map(|number| tokio::spawn(request(number)))
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

#[tokio::test]
async fn a_hot_partition_is_throttled_and_a_cold_one_is_not() {
    let table = fresh_table().await;
    // GIVEN 10 write units per partition per second
    let proxy = proxy(&table, write_units_per_second(10.0), 0).await;
    let once = client(&proxy.endpoint(), 1);
    // WHEN 8 transactional writes (2 units each) hit 8 items of one partition at once
    let results = at_once(8, |number| {
        let once = once.clone();
        let update = Update::builder()
            .table_name(&table.table)
            .set_key(Some(keyed("hot", &format!("item-{number}"))))
            .update_expression("ADD n :one")
            .expression_attribute_values(":one", AttributeValue::N("1".to_owned()))
            .build()
            .unwrap();
        async move {
            once.transact_write_items()
                .transact_items(TransactWriteItem::builder().update(update).build())
                .send()
                .await
        }
    })
    .await;
    // THEN five fit the second's budget and three are cancelled as throttled
    let cancelled: Vec<Vec<String>> = results
        .iter()
        .filter_map(|result| result.as_ref().err().map(reason_codes))
        .collect();
    assert_eq!(cancelled, vec![vec!["ThrottlingError".to_owned()]; 3]);
    // AND another partition is served meanwhile
    increments(&once, &table.table, &["cold"])
        .send()
        .await
        .unwrap();
    // AND single writes past the budget are ThrottlingExceptions
    let puts = at_once(15, |number| {
        put_item(
            &once,
            &table.table,
            keyed("hot2", &format!("item-{number}")),
        )
        .send()
    })
    .await;
    let throttled = puts
        .iter()
        .filter(|put| {
            matches!(
                put.as_ref().map_err(|error| error.as_service_error()),
                Err(Some(PutItemError::ThrottlingException(_)))
            )
        })
        .count();
    assert!(throttled >= 4, "{throttled} of 15 puts throttled");
    // AND the SDK retries a throttled write with backoff until the bucket has refilled (at
    // one unit a second now: drained by puts until one is throttled, it needs a second)
    proxy.set_limits(write_units_per_second(1.0));
    let retrying = aws_sdk_dynamodb::Client::from_conf(
        client(&proxy.endpoint(), 10)
            .config()
            .to_builder()
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(10)
                    .with_initial_backoff(Duration::from_millis(200)),
            )
            .build(),
    );
    for number in 0.. {
        let drained = put_item(
            &once,
            &table.table,
            keyed("hot2", &format!("drain-{number}")),
        )
        .send()
        .await;
        if drained.is_err() {
            break;
        }
    }
    let before = proxy.summary().operation("PutItem").requests;
    put_item(&retrying, &table.table, keyed("hot2", "last"))
        .send()
        .await
        .unwrap();
    let attempts = proxy.summary().operation("PutItem").requests - before;
    assert!(
        attempts >= 2,
        "the SDK retried the throttled put: {attempts} attempts"
    );
    let summary = proxy.summary();
    assert!(summary.partitions[&format!("{}/hot", table.table)].throttled >= 3);
    assert_eq!(
        summary.partitions[&format!("{}/cold", table.table)].throttled,
        0
    );
}

#[tokio::test]
async fn a_request_past_its_partitions_rate_is_throttled_at_once_not_queued_behind_a_holder() {
    let table = fresh_table().await;
    // GIVEN a partition that serves one transactional write (2 units) a second, and a slow
    // transaction on item a that holds it for seconds (a request delay inside the store)
    let proxy = proxy(&table, write_units_per_second(2.0), 0).await;
    proxy.update_faults(|faults| {
        faults.request_delay_ms = 3_000;
        faults.delay_only = vec!["TransactWriteItems".to_owned()];
    });
    let once = client(&proxy.endpoint(), 1);
    let holder = tokio::spawn(increments(&once, &table.table, &["a"]).send());
    while proxy.summary().operation("TransactWriteItems").requests == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The holder is counted on arrival and admitted microseconds later; give it that, then
    // lower the partition's rate below one transaction's cost, so that neither the next one
    // overtaking the holder nor a second's refill on a loaded machine can let it through.
    tokio::time::sleep(Duration::from_millis(200)).await;
    proxy.set_limits(write_units_per_second(1.0));
    // WHEN a second transaction on a arrives with the partition's units spent
    let error = increments(&once, &table.table, &["a"])
        .send()
        .await
        .unwrap_err();
    // THEN it is throttled while the holder still runs: refused on arrival, as DynamoDB's
    // router refuses, not after waiting for the holder to let go of the item
    assert_eq!(reason_codes(&error), ["ThrottlingError"]);
    assert!(!holder.is_finished(), "the throttle waited for the holder");
    holder.await.unwrap().unwrap();
    assert_eq!(n_of(&table, "a").await, 1);
    let summary = proxy.summary().operation("TransactWriteItems");
    assert_eq!((summary.throttled, summary.conflicts), (1, 0));
}

#[tokio::test]
async fn consumed_capacity_is_counted_and_reported_only_when_asked() {
    let table = fresh_table().await;
    let proxy = proxy(&table, Limits::PRODUCTION, 0).await;
    let sdk = client(&proxy.endpoint(), 1);
    // A plain put: DynamoDB reports nothing unless asked, and neither does the proxy.
    let put = put_item(&sdk, &table.table, key("c")).send().await.unwrap();
    assert!(put.consumed_capacity().is_none());
    // Asked: a transactional write of two small items costs 4 units.
    let written = increments(&sdk, &table.table, &["c", "d"])
        .return_consumed_capacity(ReturnConsumedCapacity::Total)
        .send()
        .await
        .unwrap();
    let units: f64 = written
        .consumed_capacity()
        .iter()
        .filter_map(|capacity| capacity.capacity_units())
        .sum();
    assert_eq!(units, 4.0);
    // A 3 KB item costs 3 write units.
    let mut big = key("big");
    big.insert("blob".to_owned(), AttributeValue::S("x".repeat(3_000)));
    sdk.transact_write_items()
        .transact_items(transact_put(&table.table, big))
        .send()
        .await
        .unwrap();
    let summary = proxy.summary();
    assert_eq!(summary.operation("PutItem").write_units, 1.0);
    assert_eq!(
        summary.operation("TransactWriteItems").write_units,
        4.0 + 6.0
    );
    assert_eq!(
        summary.partitions[&format!("{}/big", table.table)].write_units,
        6.0
    );
    // An item the table's local index holds (it has the index's sort key) is written to the
    // index too: a put of it and two updates in one transaction cost 6 units for the table
    // (which DynamoDB Local reports as 4) and 2 for the index.
    let mut indexed = key("indexed");
    indexed.insert(
        "listSk".to_owned(),
        AttributeValue::S("2026-12-07".to_owned()),
    );
    proxy.reset_stats();
    increments(&sdk, &table.table, &["e", "f"])
        .transact_items(transact_put(&table.table, indexed))
        .send()
        .await
        .unwrap();
    assert_eq!(
        proxy.summary().operation("TransactWriteItems").write_units,
        6.0 + 2.0
    );
}

/// Runs `clients` concurrent clients, each sending `each` one-item transactions on the item
/// `item(client)`, and returns how many were cancelled for a conflict.
async fn concurrent_increments(
    table: &TestTable,
    proxy: &Handle,
    clients: usize,
    each: usize,
    item: fn(usize) -> String,
) -> usize {
    let mut tasks = Vec::new();
    for number in 0..clients {
        let sdk = client(&proxy.endpoint(), 1);
        let table_name = table.table.clone();
        let pk = item(number);
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0;
            for _ in 0..each {
                if let Err(error) = increments(&sdk, &table_name, &[&pk]).send().await {
                    assert_eq!(reason_codes(&error), ["TransactionConflict"]);
                    conflicts += 1;
                }
            }
            conflicts
        }));
    }
    let mut conflicts = 0;
    for task in tasks {
        conflicts += task.await.unwrap();
    }
    conflicts
}

#[tokio::test]
async fn concurrency_on_one_item_conflicts_and_dynamodb_locals_queue_alone_does_not() {
    let table = fresh_table().await;
    let proxy = proxy(&table, Limits::PRODUCTION, 0).await;
    // One client, one item, one transaction after another: never a conflict.
    let sequential = concurrent_increments(&table, &proxy, 1, 40, |_| "solo".to_owned()).await;
    assert_eq!(sequential, 0);
    // 32 clients on 32 items at once: DynamoDB Local queues them all, still no conflict.
    let spread = concurrent_increments(&table, &proxy, 32, 10, |n| format!("own-{n}")).await;
    assert_eq!(spread, 0);
    // 32 clients on one item at once (the measurement, which DynamoDB Local alone
    // answers with 640 successes): production cancels some.
    let hot = concurrent_increments(&table, &proxy, 32, 20, |_| "shared".to_owned()).await;
    assert!(
        hot > 0,
        "no conflict among 640 concurrent transactions on one item"
    );
    assert_eq!(
        n_of(&table, "shared").await,
        640 - hot as i64,
        "every success applied once"
    );
    eprintln!("32 clients x 20 transactions on one item: {hot} cancelled for a conflict");
}

#[tokio::test]
async fn faults_late_answers_injected_cancellations_and_outages() {
    let table = fresh_table().await;
    let proxy = proxy(&table, Limits::PRODUCTION, 0).await;
    let sdk = client(&proxy.endpoint(), 1);
    // Injected: the next two transactions are cancelled as conflicts without being forwarded.
    proxy.update_faults(|faults| *faults = Faults::injecting(Injected::Conflict, 2));
    for _ in 0..2 {
        let error = increments(&sdk, &table.table, &["f", "g"])
            .send()
            .await
            .unwrap_err();
        assert_eq!(reason_codes(&error), ["TransactionConflict", "None"]);
    }
    increments(&sdk, &table.table, &["f", "g"])
        .send()
        .await
        .unwrap();
    assert_eq!(n_of(&table, "f").await, 1);
    assert_eq!(proxy.summary().operation("TransactWriteItems").injected, 2);
    // Late answers: the write commits, its answer arrives after the client gave up.
    proxy.update_faults(|faults| faults.response_delay_ms = 500);
    let impatient = aws_sdk_dynamodb::Client::from_conf(
        sdk.config()
            .to_builder()
            .timeout_config(
                aws_smithy_types::timeout::TimeoutConfig::builder()
                    .operation_attempt_timeout(Duration::from_millis(150))
                    .build(),
            )
            .build(),
    );
    assert!(increments(&impatient, &table.table, &["f"])
        .send()
        .await
        .is_err());
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(n_of(&table, "f").await, 2, "the late write committed");
    // Outage: connections are refused and counted; nothing reaches DynamoDB Local.
    proxy.update_faults(|faults| {
        *faults = Faults {
            outage: Some(Outage::Refuse),
            ..Faults::default()
        }
    });
    let forwarded = proxy.summary().total().forwarded;
    assert!(put_item(&sdk, &table.table, key("o")).send().await.is_err());
    let summary = proxy.summary();
    assert!(summary.refused_connections >= 1);
    assert_eq!(summary.total().forwarded, forwarded);
    // AND its control API still answers, so the outage can be lifted over HTTP (as the lab
    // does from another process), after which the store serves again.
    let lifted = raw_http(
        &proxy.endpoint(),
        "PUT /_faithful/faults HTTP/1.1\r\nHost: faithful\r\nContent-Type: application/json\r\n\
         Content-Length: 2\r\nConnection: close\r\n\r\n{}",
    )
    .await;
    assert!(lifted.starts_with("HTTP/1.1 200"), "{lifted:?}");
    assert!(put_item(&sdk, &table.table, key("o")).send().await.is_ok());
}

/// Sends `request` as is over a new connection to `endpoint` and reads the whole answer.
async fn raw_http(endpoint: &str, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = endpoint.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}
