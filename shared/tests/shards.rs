//! Sharded stock on DynamoDB Local through `dynamodb-faithful` (transaction conflicts, and a
//! partition limit set low so that one item's ceiling is met and shards matter): many clients
//! sell a sharded product out exactly (sold = the initial stock, every shard at 0, then
//! `OUT_OF_STOCK`), also while an operator reshards it up and down and rebalances it; a line
//! larger than any shard is served from several; the last unit is sold whichever shard holds
//! it; cancellations and refunds give units back; and an ordinary product's create reads and
//! writes what it always did. Every test ends with the conservation audit.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dynamodb_faithful::{Faults, Injected, Limits};
use order_service::app::stock;
use order_service::domain::{Change, OrderStatus, ProductId, Refusal, ShardCount, UserId};
use order_service::store::{DynamoOrderStore, SeedPlan};
use order_service::ServiceError;
use testkit::{faithful_table, new_order, test_settings, FaithfulTable, UseCases};

const SHARDED: &str = "product-flash-sharded";

fn user(number: u32) -> UserId {
    UserId::parse(&format!("user-{number}")).unwrap()
}

fn product(name: &str) -> ProductId {
    ProductId::parse(name).unwrap()
}

/// `users` buyers with money to spare, `product-1` (100 units, one item), `product-scarce`
/// (one unit, one item) and `product-flash-sharded` holding `stock` units over `shards`.
fn plan(users: u32, stock: i64, shards: u32) -> SeedPlan {
    SeedPlan {
        users,
        balance: 1_000_000_000,
        products: 1,
        stock: 100,
        extra_products: vec![
            ("product-scarce".into(), 1_000, 1),
            (SHARDED.into(), 1_000, stock),
        ],
        sharded: vec![(SHARDED.into(), shards)],
    }
}

async fn assert_audit_clean(faithful: &FaithfulTable) {
    let report = faithful.table.store.audit().await.unwrap();
    assert!(report.is_clean(), "{:#?}", report.violations);
}

async fn layout_of(store: &DynamoOrderStore, name: &str) -> Vec<i64> {
    stock::show(store, &product(name))
        .await
        .unwrap()
        .shards
        .iter()
        .map(|units| units.unwrap_or(-1))
        .collect()
}

/// Units of `name` held by orders that still hold stock.
async fn sold(store: &DynamoOrderStore, name: &str) -> i64 {
    store
        .all_orders()
        .await
        .unwrap()
        .iter()
        .filter(|order| order.status.holds_stock())
        .flat_map(|order| &order.items)
        .filter(|line| line.product_id.as_str() == name)
        .map(|line| i64::from(line.quantity.get()))
        .sum()
}

fn is_out_of_stock(error: &ServiceError) -> bool {
    matches!(error, ServiceError::Refused(Refusal::OutOfStock { .. }))
}

/// What a sale's clients saw.
#[derive(Debug, Default)]
struct Sale {
    created: u32,
    cancelled: u32,
    /// Answers that asked to retry (contention, throttling past the store's retries).
    retried: u32,
}

/// Holds a sale back so that an operator's rearrangements happen during it, however fast the
/// machine sells: at most `orders_each` orders per rearrangement `rearranged` has completed,
/// until `at_least` have.
#[derive(Debug, Clone)]
struct Pace {
    rearranged: Arc<AtomicU32>,
    orders_each: u32,
    at_least: u32,
}

impl Pace {
    fn allows(&self, created: u32) -> bool {
        let done = self.rearranged.load(Ordering::Relaxed);
        done >= self.at_least || created < self.orders_each * (done + 1)
    }
}

/// `clients` buyers, each buying 1 to 3 units of `name` until one unit is refused as out of
/// stock (a refused larger line is tried again as one unit, so that the sale can sell out to
/// the last unit); with `cancel_every`, every n-th order of a client is cancelled at once
/// (the client goes on buying, so units given back are sold again); with `pace`, held back
/// while an operator catches up.
async fn sell_out(
    store: &DynamoOrderStore,
    name: &'static str,
    clients: u32,
    cancel_every: Option<u32>,
    pace: Option<Pace>,
) -> Sale {
    let created = Arc::new(AtomicU32::new(0));
    let cancelled = Arc::new(AtomicU32::new(0));
    let retried = Arc::new(AtomicU32::new(0));
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut tasks = tokio::task::JoinSet::new();
    for client in 1..=clients {
        let store = store.clone();
        let (created, cancelled, retried) = (created.clone(), cancelled.clone(), retried.clone());
        let pace = pace.clone();
        tasks.spawn(async move {
            let mut chance = fastrand::Rng::with_seed(u64::from(client));
            let mut wanted = chance.u64(1..=3);
            let mut mine = 0;
            loop {
                assert!(Instant::now() < deadline, "the sale did not end in time");
                if pace
                    .as_ref()
                    .is_some_and(|pace| !pace.allows(created.load(Ordering::Relaxed)))
                {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
                let order = new_order(&[(name, wanted)]);
                match store.create_order(&user(client), &order, None).await {
                    Ok(outcome) => {
                        created.fetch_add(1, Ordering::Relaxed);
                        mine += 1;
                        if cancel_every.is_some_and(|every| mine % every == 0) {
                            let id = outcome.order.order_id;
                            loop {
                                match store
                                    .change_order(&user(client), id, Change::Cancel, None)
                                    .await
                                {
                                    Ok(_) => break,
                                    Err(
                                        ServiceError::Contention { .. }
                                        | ServiceError::Throttled { .. },
                                    ) => {
                                        retried.fetch_add(1, Ordering::Relaxed);
                                        tokio::time::sleep(Duration::from_millis(20)).await;
                                    }
                                    Err(other) => panic!("a cancel failed: {other:?}"),
                                }
                            }
                            cancelled.fetch_add(1, Ordering::Relaxed);
                        }
                        wanted = chance.u64(1..=3);
                    }
                    Err(error) if is_out_of_stock(&error) && wanted > 1 => wanted = 1,
                    Err(error) if is_out_of_stock(&error) => return,
                    Err(ServiceError::Contention { .. } | ServiceError::Throttled { .. }) => {
                        retried.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(chance.u64(5..30))).await;
                    }
                    Err(other) => panic!("a create failed: {other:?}"),
                }
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    Sale {
        created: created.load(Ordering::Relaxed),
        cancelled: cancelled.load(Ordering::Relaxed),
        retried: retried.load(Ordering::Relaxed),
    }
}

/// A table of `plan` through the proxy, each partition limited to `write_units` a second
/// (a transactional write of a small item costs two).
async fn limited(plan: &SeedPlan, write_units: f64) -> FaithfulTable {
    let faithful = faithful_table(plan, test_settings()).await;
    faithful.proxy.set_limits(Limits {
        write_units_per_second: write_units,
        read_units_per_second: 3.0 * write_units,
    });
    faithful
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_sell_a_sharded_product_out_exactly() {
    // GIVEN 240 units over 8 shards, and each partition limited to 40 write units a second
    // (20 one-line orders a second per shard)
    let faithful = limited(&plan(24, 240, 8), 40.0).await;
    // WHEN 24 clients buy until they are refused one unit
    let started = Instant::now();
    let sale = sell_out(&faithful.store, SHARDED, 24, None, None).await;
    let seconds = started.elapsed().as_secs_f64();
    // THEN exactly the stock was sold, every shard is at 0, and the next order is refused
    assert_eq!(sold(&faithful.table.store, SHARDED).await, 240);
    assert_eq!(layout_of(&faithful.table.store, SHARDED).await, vec![0; 8]);
    let refused = faithful
        .store
        .create_order(&user(1), &new_order(&[(SHARDED, 1)]), None)
        .await;
    assert!(refused.as_ref().is_err_and(is_out_of_stock), "{refused:?}");
    assert_audit_clean(&faithful).await;
    // AND the writes spread over all eight shards' partitions, and refusals were confirmed by
    // a read of all shards at one instant
    let summary = faithful.proxy.summary();
    let shard_partitions = summary
        .partitions
        .iter()
        .filter(|(name, stats)| name.contains(SHARDED) && stats.write_units > 0.0)
        .count();
    assert_eq!(shard_partitions, 8, "{:#?}", summary.partitions.keys());
    assert!(faithful.requests("TransactGetItems") > 0);
    let total = summary.total();
    eprintln!(
        "{} orders in {seconds:.1} s ({:.0} orders/s against a modelled single-item limit of \
         20/s); {} retried answers; proxy: {} conflicts, {} throttled, {} stock reads \
         (BatchGetItem beyond the {} catalog reads), {} TransactGetItems",
        sale.created,
        f64::from(sale.created) / seconds,
        sale.retried,
        total.conflicts,
        total.throttled,
        faithful
            .requests("BatchGetItem")
            .saturating_sub(u64::from(sale.created) + 1),
        sale.created + 1,
        faithful.requests("TransactGetItems"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reshards_and_rebalances_during_a_sale_lose_and_invent_nothing() {
    // GIVEN 300 units over 8 shards, partitions limited to 60 write units a second
    let faithful = limited(&plan(16, 300, 8), 60.0).await;
    // WHEN 16 clients buy (cancelling every third order) while an operator reshards the
    // product down to 3, up to 12, down to 5, and rebalances it, again and again; the sale,
    // which needs 100 orders at least, takes at most 30 per rearrangement until 3 are done
    let stop = Arc::new(AtomicBool::new(false));
    let pace = Pace {
        rearranged: Arc::new(AtomicU32::new(0)),
        orders_each: 30,
        at_least: 3,
    };
    let operator = {
        let (store, stop, rearranged) = (
            faithful.store.clone(),
            stop.clone(),
            pace.rearranged.clone(),
        );
        tokio::spawn(async move {
            let mut done = Vec::new();
            for target in [Some(3), Some(12), None, Some(5), None].into_iter().cycle() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let target = target.map(|count| ShardCount::new(count).unwrap());
                let result =
                    stock::rearrange(&store, &product(SHARDED), target, Duration::from_millis(50))
                        .await;
                done.push(result.unwrap());
                rearranged.fetch_add(1, Ordering::Relaxed);
            }
            done
        })
    };
    let sale = sell_out(&faithful.store, SHARDED, 16, Some(3), Some(pace)).await;
    stop.store(true, Ordering::Relaxed);
    let rearranged = operator.await.unwrap();
    // THEN every rearrangement kept the total it found less what was sold meanwhile, the sale
    // sold exactly the stock, and nothing is left in any shard
    assert!(
        rearranged.len() >= 3,
        "only {} rearrangements",
        rearranged.len()
    );
    assert!(sale.cancelled > 0);
    assert_eq!(sold(&faithful.table.store, SHARDED).await, 300);
    let left = layout_of(&faithful.table.store, SHARDED).await;
    assert!(left.iter().all(|units| *units == 0), "{left:?}");
    assert_audit_clean(&faithful).await;
    let steps: usize = rearranged.iter().map(|done| done.steps.len()).sum();
    let retries: u32 = rearranged.iter().map(|done| done.retries).sum();
    eprintln!(
        "{} orders, {} cancelled, {} retried answers; {} rearrangements in {steps} steps, \
         {retries} steps decided again after a sale moved the stock",
        sale.created,
        sale.cancelled,
        sale.retried,
        rearranged.len()
    );
}

#[tokio::test]
async fn a_reshard_waits_out_throttling_instead_of_failing() {
    // GIVEN 40 units over 4 shards, and the next 6 transactions throttled, as a sale's busy
    // partitions throttle an operator's reshard
    let faithful = faithful_table(&plan(2, 40, 4), test_settings()).await;
    faithful
        .proxy
        .update_faults(|faults| *faults = Faults::injecting(Injected::Throttling, 6));
    // WHEN the operator reshards to 8
    let eight = ShardCount::new(8).unwrap();
    let done = stock::rearrange(
        &faithful.store,
        &product(SHARDED),
        Some(eight),
        Duration::ZERO,
    )
    .await
    .unwrap();
    // THEN it finished, every unit kept, after waiting the throttles out
    assert_eq!(done.after.count, eight);
    assert_eq!(done.after.total(), 40);
    assert!(done.retries >= 3, "{} retries", done.retries);
    assert_audit_clean(&faithful).await;
}

#[tokio::test]
async fn a_line_larger_than_any_shard_is_served_from_several() {
    // GIVEN 10 units over 4 shards: 3, 3, 2, 2
    let faithful = faithful_table(&plan(2, 10, 4), test_settings()).await;
    assert_eq!(
        layout_of(&faithful.table.store, SHARDED).await,
        vec![3, 3, 2, 2]
    );
    faithful.proxy.reset_stats();
    // WHEN one line asks for 7
    let placed = faithful
        .store
        .create_order(&user(1), &new_order(&[(SHARDED, 7)]), None)
        .await
        .unwrap();
    // THEN it is one order of 7, taken from the fullest shards (3 + 3 + 1 from a shard of 2)
    assert_eq!(placed.order.items[0].quantity.get(), 7);
    let mut left = layout_of(&faithful.table.store, SHARDED).await;
    left.sort_unstable();
    assert_eq!(left, vec![0, 0, 1, 2]);
    // AND it cost what the slower path costs: the first write failed on a random shard, one
    // strongly consistent read of the shards, a second write; no read at one instant
    assert_eq!(faithful.requests("TransactWriteItems"), 2);
    assert_eq!(faithful.requests("BatchGetItem"), 2);
    assert_eq!(faithful.requests("TransactGetItems"), 0);
    assert_audit_clean(&faithful).await;
}

#[tokio::test]
async fn the_last_unit_is_sold_whichever_shard_holds_it() {
    // GIVEN one unit in each of 8 shards
    let faithful = faithful_table(&plan(2, 8, 8), test_settings()).await;
    // WHEN eight orders of one unit come one after another (most find their random shard
    // empty)
    for _ in 0..8 {
        faithful
            .store
            .create_order(&user(1), &new_order(&[(SHARDED, 1)]), None)
            .await
            .unwrap();
    }
    // THEN all are sold, and the ninth is refused only after a read of all shards at once
    assert_eq!(layout_of(&faithful.table.store, SHARDED).await, vec![0; 8]);
    let before = faithful.requests("TransactGetItems");
    let refused = faithful
        .store
        .create_order(&user(2), &new_order(&[(SHARDED, 1)]), None)
        .await;
    assert!(refused.as_ref().is_err_and(is_out_of_stock), "{refused:?}");
    assert_eq!(faithful.requests("TransactGetItems"), before + 1);
    // AND that refusal sealed the shards: the next one is refused by the seal on whichever
    // shard it tries, with its catalog read and its one failed transaction, and nothing else
    assert!(
        stock::show(&faithful.store, &product(SHARDED))
            .await
            .unwrap()
            .sealed
    );
    faithful.proxy.reset_stats();
    for _ in 0..5 {
        let refused = faithful
            .store
            .create_order(&user(2), &new_order(&[(SHARDED, 1)]), None)
            .await;
        assert!(refused.as_ref().is_err_and(is_out_of_stock), "{refused:?}");
    }
    let operations: Vec<(String, u64)> = faithful
        .proxy
        .summary()
        .operations
        .iter()
        .map(|(name, stats)| (name.clone(), stats.requests))
        .collect();
    assert_eq!(
        operations,
        vec![
            ("BatchGetItem".to_owned(), 5),
            ("TransactWriteItems".to_owned(), 5)
        ]
    );
    assert_audit_clean(&faithful).await;
}

#[tokio::test]
async fn a_cancel_after_a_sell_out_unseals_and_its_units_sell_again() {
    // GIVEN a product of 4 shards sold out and sealed
    let faithful = faithful_table(&plan(2, 4, 4), test_settings()).await;
    let store = &faithful.store;
    let mut orders = Vec::new();
    for _ in 0..2 {
        let order = new_order(&[(SHARDED, 2)]);
        orders.push(
            store
                .create_order(&user(1), &order, None)
                .await
                .unwrap()
                .order,
        );
    }
    let refused = store
        .create_order(&user(2), &new_order(&[(SHARDED, 1)]), None)
        .await;
    assert!(refused.as_ref().is_err_and(is_out_of_stock), "{refused:?}");
    assert!(stock::show(store, &product(SHARDED)).await.unwrap().sealed);
    assert_audit_clean(&faithful).await;
    // WHEN an order of 2 is cancelled
    store
        .change_order(&user(1), orders[0].order_id, Change::Cancel, None)
        .await
        .unwrap();
    // THEN the seal is off every shard and its 2 units sell again, then it seals anew
    let after = stock::show(store, &product(SHARDED)).await.unwrap();
    assert!(!after.sealed);
    assert_eq!(after.total(), 2);
    assert_audit_clean(&faithful).await;
    store
        .create_order(&user(2), &new_order(&[(SHARDED, 2)]), None)
        .await
        .unwrap();
    let refused = store
        .create_order(&user(2), &new_order(&[(SHARDED, 1)]), None)
        .await;
    assert!(refused.as_ref().is_err_and(is_out_of_stock), "{refused:?}");
    assert!(stock::show(store, &product(SHARDED)).await.unwrap().sealed);
    // AND a reshard of the sealed product takes the seal off first, then reshards
    let resharded = stock::rearrange(
        store,
        &product(SHARDED),
        ShardCount::new(2).ok(),
        Duration::ZERO,
    )
    .await
    .unwrap();
    // unseal, stop selling from two shards, remove them
    let steps: Vec<String> = resharded.steps.iter().map(ToString::to_string).collect();
    assert_eq!(
        steps,
        [
            "4 shards over 4 -> 4 over 4, unsealed",
            "4 shards over 4 -> 2 over 4",
            "2 shards over 4 -> 2 over 2: remove shard 2 holding 0, remove shard 3 holding 0",
        ]
    );
    assert_eq!(layout_of(&faithful.table.store, SHARDED).await, vec![0, 0]);
    assert_audit_clean(&faithful).await;
}

#[tokio::test]
async fn cancels_and_refunds_give_units_back_spread_and_to_the_first_shard_after_a_reshard() {
    // GIVEN 400 units over 4 shards and 24 orders of one unit, 12 of them paid
    let faithful = faithful_table(&plan(2, 400, 4), test_settings()).await;
    let store = &faithful.store;
    let mut orders = Vec::new();
    for number in 0..24 {
        let order = store
            .create_order(&user(1), &new_order(&[(SHARDED, 1)]), None)
            .await
            .unwrap()
            .order;
        if number % 2 == 0 {
            store
                .change_order(&user(1), order.order_id, Change::Pay, None)
                .await
                .unwrap();
        }
        orders.push(order.order_id);
    }
    let after_sales = layout_of(&faithful.table.store, SHARDED).await;
    assert_eq!(after_sales.iter().sum::<i64>(), 376);
    // WHEN the unpaid ones are cancelled and 6 paid ones refunded
    for (number, id) in orders.iter().enumerate() {
        let change = if number % 2 == 1 {
            Change::Cancel
        } else if number % 4 == 0 {
            Change::Refund(new_order(&[(SHARDED, 1)]))
        } else {
            continue;
        };
        store
            .change_order(&user(1), *id, change, None)
            .await
            .unwrap();
    }
    // THEN 18 units came back, to more than one shard
    let given_back = layout_of(&faithful.table.store, SHARDED).await;
    assert_eq!(given_back.iter().sum::<i64>(), 394);
    let shards_given_to = given_back
        .iter()
        .zip(&after_sales)
        .filter(|(now, before)| now > before)
        .count();
    assert!(shards_given_to > 1, "{after_sales:?} -> {given_back:?}");
    assert_audit_clean(&faithful).await;
    // WHEN the product is resharded to one shard and the other paid orders are cancelled
    // (their create saw 4 shards: the shard picked for each may be gone)
    stock::rearrange(
        store,
        &product(SHARDED),
        Some(ShardCount::ONE),
        Duration::ZERO,
    )
    .await
    .unwrap();
    for id in orders.iter().skip(2).step_by(4) {
        let cancelled = store
            .change_order(&user(1), *id, Change::Cancel, None)
            .await
            .unwrap();
        assert_eq!(cancelled.order.status, OrderStatus::Cancelled);
    }
    // THEN every unit is back, in the one shard left
    assert_eq!(layout_of(&faithful.table.store, SHARDED).await, vec![400]);
    assert_audit_clean(&faithful).await;
}

#[tokio::test]
async fn an_ordinary_products_create_reads_and_writes_what_it_always_did() {
    let faithful = faithful_table(&plan(2, 10, 4), test_settings()).await;
    faithful.proxy.reset_stats();
    // WHEN an ordinary product is ordered, and one that is sold out
    faithful
        .store
        .create_order(&user(1), &new_order(&[("product-1", 2)]), None)
        .await
        .unwrap();
    faithful
        .store
        .create_order(&user(1), &new_order(&[("product-scarce", 1)]), None)
        .await
        .unwrap();
    let refused = faithful
        .store
        .create_order(&user(2), &new_order(&[("product-scarce", 1)]), None)
        .await;
    assert!(refused.as_ref().is_err_and(is_out_of_stock), "{refused:?}");
    // THEN each was one catalog read and one transaction: the refusal came with the failed
    // item itself, with no read of stock
    let summary = faithful.proxy.summary();
    let operations: Vec<(&str, u64)> = summary
        .operations
        .iter()
        .map(|(name, stats)| (name.as_str(), stats.requests))
        .collect();
    assert_eq!(
        operations,
        vec![("BatchGetItem", 3), ("TransactWriteItems", 3)]
    );
    // AND its item and its orders carry nothing about shards
    let product_item = faithful
        .table
        .client
        .get_item()
        .table_name(&faithful.table.table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("PRODUCT#product-1".into()),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("PRODUCT".into()),
        )
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert!(!product_item.contains_key("shardCount"));
    let orders = faithful
        .table
        .client
        .scan()
        .table_name(&faithful.table.table)
        .filter_expression("entity = :order")
        .expression_attribute_values(
            ":order",
            aws_sdk_dynamodb::types::AttributeValue::S("ORDER".into()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(orders.items().len(), 2);
    assert!(orders
        .items()
        .iter()
        .all(|item| !item.contains_key("shardCounts")));
    assert_audit_clean(&faithful).await;
}

#[tokio::test]
async fn an_order_too_spread_for_one_transaction_is_a_clear_client_error() {
    // GIVEN two products of 64 shards holding one unit each
    let mut plan = plan(1, 64, 64);
    plan.extra_products.push(("product-thin".into(), 1_000, 64));
    plan.sharded.push(("product-thin".into(), 64));
    let faithful = faithful_table(&plan, test_settings()).await;
    // WHEN one order asks 50 of each (100 shards to take from; a transaction holds 100 items,
    // the order among them)
    let refused = faithful
        .store
        .create_order(
            &user(1),
            &new_order(&[(SHARDED, 50), ("product-thin", 50)]),
            None,
        )
        .await;
    // THEN it is a 400 that says why, and nothing was taken
    match refused {
        Err(ServiceError::Validation(message)) => {
            assert!(message.contains("places at once"), "{message}")
        }
        other => panic!("expected a validation error, got {other:?}"),
    }
    assert_eq!(
        layout_of(&faithful.table.store, "product-thin")
            .await
            .iter()
            .sum::<i64>(),
        64
    );
    // AND each half on its own is served
    for name in [SHARDED, "product-thin"] {
        faithful
            .store
            .create_order(&user(1), &new_order(&[(name, 50)]), None)
            .await
            .unwrap();
    }
    assert_audit_clean(&faithful).await;
}
