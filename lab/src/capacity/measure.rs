//! Capacity units per API operation, measured: each operation runs through the application's
//! use cases (as the functions run them, with and without an Idempotency-Key) on a seeded
//! DynamoDB Local behind `dynamodb-faithful`, which asks DynamoDB for `ConsumedCapacity` on
//! every request and sums it per operation (correcting DynamoDB Local's under-reported
//! transactions to at least what their items cost one by one). Operations run one at a time,
//! so nothing conflicts or throttles: these are the units of the operation itself.
//!
//! Also measured here: how long DynamoDB Local took for each operation's calls (the part of
//! a function's duration that is waiting on the store), and how transaction conflicts on one
//! hot item grow with its rate when every transaction holds the item for a known time (the
//! conflict model's calibration: `capacity::conflict_fraction`).

use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure, Context, Result};
use dynamodb_faithful::Limits;
use order_service::app::read;
use order_service::domain::{NewOrder, OrderId, ProductId, ShardCount, UserId};
use order_service::store::{DynamoOrderStore, PageRequest, ReadCatalog, SeedPlan};
use testkit::{answered, faithful_table, new_order, test_settings, Action, FaithfulTable};

use super::Units;

/// The shards of the sharded product the measurements read.
const SHARDS: u32 = 8;

fn plan() -> SeedPlan {
    SeedPlan {
        users: 50,
        balance: 1_000_000_000_000,
        products: 20,
        stock: 1_000_000,
        extra_products: vec![
            ("product-sharded".into(), 5_000, 1_000_000),
            ("product-none".into(), 5_000, 0),
        ],
        sharded: vec![("product-sharded".into(), SHARDS)],
    }
}

fn user(number: u32) -> Result<UserId> {
    UserId::parse(&format!("user-{number}")).map_err(|error| anyhow!("{error}"))
}

/// An order of `lines` lines of one unit, each of another product.
fn lines(lines: u32) -> NewOrder {
    let names: Vec<String> = (1..=lines)
        .map(|number| format!("product-{number}"))
        .collect();
    let lines: Vec<(&str, u64)> = names.iter().map(|name| (name.as_str(), 2)).collect();
    new_order(&lines)
}

/// Runs `operation` `samples` times, each on a fresh sample number, and returns its units and
/// DynamoDB time per run. The runs go in two halves and the time is the lower half's: this
/// machine is shared, and a burst of someone else's work should not count as DynamoDB's.
async fn per_run<F, Fut>(
    faithful: &FaithfulTable,
    name: &str,
    keyed: Option<bool>,
    samples: u32,
    mut operation: F,
) -> Result<Units>
where
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let halves = [(0, samples / 2), (samples / 2, samples)];
    let (mut write_units, mut read_units, mut calls, mut store_ms) = (0.0, 0.0, 0.0, f64::MAX);
    for (from, to) in halves {
        faithful.proxy.reset_stats();
        for sample in from..to {
            operation(sample)
                .await
                .with_context(|| format!("{name} ({keyed:?})"))?;
        }
        let total = faithful.proxy.summary().total();
        write_units += total.write_units;
        read_units += total.read_units;
        calls += total.forwarded as f64;
        store_ms = store_ms.min(total.latency_ms / f64::from((to - from).max(1)));
    }
    let runs = f64::from(samples.max(1));
    Ok(Units {
        operation: name.to_owned(),
        keyed,
        write_units: write_units / runs,
        read_units: read_units / runs,
        calls: calls / runs,
        store_ms,
    })
}

/// Runs `action` as its function would and returns the order it answered with, if any.
async fn respond(
    store: &DynamoOrderStore,
    number: u32,
    key: Option<String>,
    action: Action<'_>,
) -> Result<Option<OrderId>> {
    let response = answered(store, &user(number)?, key.as_deref(), action)
        .await
        .map_err(|error| anyhow!("{action:?} failed: {error:?}"))?;
    let body: serde_json::Value =
        serde_json::from_slice(response.body().as_ref()).unwrap_or_default();
    Ok(body["orderId"]
        .as_str()
        .and_then(|id| OrderId::parse(id).ok()))
}

/// Orders of one line, placed (and paid when `paid`) for the runs of an operation to change.
async fn orders(store: &DynamoOrderStore, count: u32, paid: bool) -> Result<Vec<(u32, OrderId)>> {
    let mut made = Vec::new();
    for sample in 0..count {
        let number = 1 + sample % 50;
        let order = lines(1);
        let id = respond(store, number, None, Action::Create(&order))
            .await?
            .context("a set-up order was not created")?;
        if paid {
            respond(store, number, None, Action::Pay(id)).await?;
        }
        made.push((number, id));
    }
    Ok(made)
}

/// The units of every API operation, with and without an Idempotency-Key (`samples` runs
/// each), and of the reads a sharded product's slower path adds.
pub(crate) async fn units(samples: u32) -> Result<Vec<Units>> {
    let faithful = faithful_table(&plan(), test_settings()).await;
    let store = &faithful.store;
    // DynamoDB Local's JVM compiles its hot paths over the first requests: warm it with a
    // few journeys, so that its times below are of compiled code.
    for (number, id) in orders(store, 30, true).await? {
        respond(store, number, None, Action::Cancel(id)).await?;
    }
    let mut rows = Vec::new();
    for keyed in [false, true] {
        let key = |kind: &str, sample: u32| {
            keyed.then(|| format!("{kind}-{sample}-{}", fastrand::u64(..)))
        };
        let mut creates: Vec<(String, NewOrder)> = [1, 5, 20]
            .into_iter()
            .map(|count| {
                let plural = if count == 1 { "" } else { "s" };
                (format!("create, {count} line{plural}"), lines(count))
            })
            .collect();
        creates.push((
            "create, 1 line of a sharded product".to_owned(),
            new_order(&[("product-sharded", 1)]),
        ));
        for (name, order) in &creates {
            let row = per_run(&faithful, name, Some(keyed), samples, |sample| {
                let key = key("create", sample);
                async move {
                    respond(store, 1 + sample % 50, key, Action::Create(order)).await?;
                    Ok(())
                }
            });
            rows.push(row.await?);
        }
        let unpaid = orders(store, samples, false).await?;
        let row = per_run(&faithful, "pay", Some(keyed), samples, |sample| {
            let ((number, id), key) = (unpaid[sample as usize], key("pay", sample));
            async move {
                respond(store, number, key, Action::Pay(id)).await?;
                Ok(())
            }
        });
        rows.push(row.await?);
        let paid = orders(store, samples, true).await?;
        let row = per_run(&faithful, "cancel, paid", Some(keyed), samples, |sample| {
            let ((number, id), key) = (paid[sample as usize], key("cancel", sample));
            async move {
                respond(store, number, key, Action::Cancel(id)).await?;
                Ok(())
            }
        });
        rows.push(row.await?);
        let paid = orders(store, samples, true).await?;
        let one = new_order(&[("product-1", 1)]);
        let row = per_run(
            &faithful,
            "refund, 1 unit",
            Some(keyed),
            samples,
            |sample| {
                let ((number, id), key, one) = (paid[sample as usize], key("refund", sample), &one);
                async move {
                    respond(store, number, key, Action::Refund(id, one)).await?;
                    Ok(())
                }
            },
        );
        rows.push(row.await?);
    }
    let placed = orders(store, samples, false).await?;
    let row = per_run(&faithful, "get", None, samples, |sample| {
        let (number, id) = placed[sample as usize];
        async move {
            read::get_order(store, &user(number)?, id)
                .await
                .map_err(|error| anyhow!("{error:?}"))?;
            Ok(())
        }
    });
    rows.push(row.await?);
    let row = per_run(
        &faithful,
        "list, a page of 10",
        None,
        samples,
        |sample| async move {
            let ten = PageRequest::new(10, None)?;
            let page = read::list_orders(store, &user(1 + sample % 50)?, ten)
                .await
                .map_err(|error| anyhow!("{error:?}"))?;
            ensure!(page.orders.len() == 10, "every user has 10 orders by now");
            Ok(())
        },
    );
    rows.push(row.await?);
    let sold_out = new_order(&[("product-none", 1)]);
    let refused = "create refused, out of stock";
    let row = per_run(&faithful, refused, Some(false), samples, |sample| {
        let order = &sold_out;
        async move {
            let buyer = user(1 + sample % 50)?;
            let answer = answered(store, &buyer, None, Action::Create(order));
            let code = answer.await.err().map(|error| error.code());
            ensure!(code == Some("OUT_OF_STOCK"), "refused with {code:?}");
            Ok(())
        }
    });
    rows.push(row.await?);
    let product = ProductId::parse("product-sharded").map_err(|error| anyhow!("{error}"))?;
    let count = ShardCount::new(SHARDS).map_err(|error| anyhow!("{error}"))?;
    let name = format!("read {SHARDS} shards (strongly consistent)");
    let row = per_run(&faithful, &name, None, samples, |_| {
        let product = &product;
        async move {
            let read = store.read_stock(product, count).await;
            read.map_err(|error| anyhow!("{error:?}"))?;
            Ok(())
        }
    });
    rows.push(row.await?);
    let name = format!("read {SHARDS} shards at one instant");
    let row = per_run(&faithful, &name, None, samples, |_| {
        let product = &product;
        async move {
            let read = store.read_stock_at_once(product, count).await;
            read.map_err(|error| anyhow!("{error:?}"))?;
            Ok(())
        }
    });
    rows.push(row.await?);
    Ok(rows)
}

/// One point of the conflict calibration: transactions on one hot item at a paced rate.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConflictPoint {
    /// Successful transactions a second.
    pub rate: f64,
    /// What every transaction held the item for (its service time plus the set hold).
    pub hold_ms: f64,
    /// Conflicted attempts among all attempts.
    pub conflicts: f64,
}

/// Transactions on one item (a stock shard) from `clients` clients, each pacing its orders so
/// that together they offer `rate` a second, for `seconds`, with every transaction holding the
/// item `hold` longer than its own service time: what fraction of attempts conflicted.
pub(crate) async fn conflicts(
    rates: &[f64],
    hold: Duration,
    seconds: u64,
) -> Result<Vec<ConflictPoint>> {
    let faithful = faithful_table(&plan(), test_settings()).await;
    faithful.proxy.set_hold(hold);
    faithful.proxy.set_limits(Limits {
        write_units_per_second: 0.0,
        read_units_per_second: 0.0,
    });
    let mut points = Vec::new();
    for rate in rates {
        faithful.proxy.reset_stats();
        let started = Instant::now();
        let clients = 16_u32;
        let mut tasks = tokio::task::JoinSet::new();
        for client in 0..clients {
            let store = faithful.store.clone();
            let gap = Duration::from_secs_f64(f64::from(clients) / rate);
            tasks.spawn(async move {
                let order = new_order(&[("product-1", 1)]);
                let mut chance = fastrand::Rng::with_seed(u64::from(client));
                let end = started + Duration::from_secs(seconds);
                let mut next = started + gap.mul_f64(chance.f64());
                let mut done = 0_u32;
                while next < end {
                    tokio::time::sleep_until(next.into()).await;
                    let Ok(buyer) = user(1 + client) else {
                        return done;
                    };
                    if testkit::UseCases::create_order(&store, &buyer, &order, None)
                        .await
                        .is_ok()
                    {
                        done += 1;
                    }
                    // Poisson arrivals: exponential gaps.
                    next += gap.mul_f64(-(1.0 - chance.f64()).ln());
                }
                done
            });
        }
        let mut done = 0_u32;
        while let Some(finished) = tasks.join_next().await {
            done += finished?;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let stats = faithful.proxy.summary().operation("TransactWriteItems");
        let attempts = stats.requests.max(1) as f64;
        points.push(ConflictPoint {
            rate: f64::from(done) / elapsed,
            hold_ms: hold.as_secs_f64() * 1_000.0
                + stats.service_ms / (stats.forwarded.max(1) as f64),
            conflicts: stats.conflicts as f64 / attempts,
        });
    }
    Ok(points)
}
