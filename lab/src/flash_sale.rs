//! `cargo xtask flash-sale`: one SKU offered well past what one stock item can write, sold two
//! ways side by side in one run: `product-flash` keeps its stock in one item, and
//! `product-flash-sharded` (the same price and stock) spreads it over `--shards` items.
//!
//! The stack's `dynamodb-faithful` runs as a scale model of production: each partition serves
//! `--partition-wcu` write units per second (production: 1,000), so a transactional write of one
//! item, two units, tops out at `--partition-wcu / 2` per second, the modelled item limit.
//! Scaled down, the limit is met at rates this 2-core machine can send without saturating the
//! service; the ratio of the two products' rates is what carries over to production.
//!
//! During the sale it can reshard the sharded product (`--reshard-to`, a quarter in) and take
//! the store away (`--outage-seconds`, half-way). Afterwards it reads the table: per product,
//! orders sold per second until it sold out (or the sale ended), units oversold (more sold than
//! seeded, or a shard below zero), units stranded (left in shards after a buyer was told
//! `OUT_OF_STOCK`), conservation (sold + left = seeded) and the audit; per phase, from the
//! functions' log, the creates, their answers and p95, and the store's conflicts and throttles.
//! The verdict is correctness only; the rates are reported, never asserted.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context, Result};
use dynamodb_faithful::{Faults, Outage};
use order_service::app::stock;
use order_service::domain::{Order, ProductId, ShardCount};
use serde_json::Value;

use crate::audit;
use crate::faithful::Faithful;
use crate::k6::K6Run;
use crate::monitor::{self, LogEvent, StoreRefusal};
use crate::paths;
use crate::seed;
use crate::seed_plan::{SeedArgs, ShardArgs, FLASH_PRODUCT, SHARDED_FLASH_PRODUCT};
use crate::stack::{self, StoreArgs, UpArgs};
use crate::state::StackState;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Write units per second one partition serves (dynamodb-faithful's `--partition-wcu`):
    /// production's 1,000 scaled down so that one item's limit (half of it, in transactional
    /// writes per second) is met at a rate this machine sends without saturating.
    #[arg(long, default_value_t = 8.0)]
    pub partition_wcu: f64,
    /// Stock shards of `product-flash-sharded`: the buyers' rate over what one shard takes
    /// at 80 % of its partition, with room for the throttled buyers' retries.
    #[arg(long, default_value_t = 32)]
    pub shards: u32,
    /// Units of each of the two products.
    #[arg(long, default_value_t = 1_200)]
    pub stock: i64,
    /// Buyers per second for each product (each buyer retries a throttled or refused answer
    /// up to 3 times with its Idempotency-Key).
    #[arg(long, default_value_t = 40.0)]
    pub rate: f64,
    /// How long buyers arrive.
    #[arg(long, default_value_t = 40)]
    pub seconds: u64,
    /// Reshard `product-flash-sharded` to this many shards a quarter of the way in.
    #[arg(long)]
    pub reshard_to: Option<u32>,
    /// Refuse every store connection for this many seconds, half-way through.
    #[arg(long)]
    pub outage_seconds: Option<u64>,
    /// Seconds of buyers on ordinary products first, so the JVM and the functions are warm.
    #[arg(long, default_value_t = 15)]
    pub warm_up_seconds: u64,
}

pub fn run(args: &Args) -> Result<()> {
    let seed = SeedArgs {
        users: 1_000,
        products: 100,
        balance: 1_000_000_000,
        stock: 1_000_000,
        flash_stock: args.stock,
    };
    let up = UpArgs {
        store: StoreArgs {
            partition_wcu: args.partition_wcu,
            ..StoreArgs::default()
        },
        ..UpArgs::local_default(seed.clone())
    };
    let state = stack::start(&up)?;
    let result = sell(args, &seed, &state);
    stack::stop(&state);
    if !result? {
        std::process::exit(1);
    }
    Ok(())
}

/// A moment of the sale that starts a phase.
#[derive(Debug, Clone, PartialEq)]
struct Mark {
    at_ms: i64,
    what: String,
}

fn sell(args: &Args, seed: &SeedArgs, state: &StackState) -> Result<bool> {
    let shards = ShardArgs {
        flash_shards: args.shards,
        shards: Vec::new(),
    };
    eprintln!(
        "Seeding {FLASH_PRODUCT} (1 stock item) and {SHARDED_FLASH_PRODUCT} ({} shards), {} units each ...",
        args.shards, args.stock
    );
    seed::reset_and_seed_plan(&state.dynamodb_endpoint, &state.table, &shards.apply(seed))?;
    let faithful = Faithful::of(state).context("flash-sale needs the stack's dynamodb-faithful")?;
    let dir = paths::reports().join(format!("{}-flash-sale-at-scale", crate::clock::utc_stamp()));
    let base_env = |rate: f64, seconds: u64, products: &str, stock: i64| -> Vec<(String, String)> {
        [
            ("BASE_URL", state.base_url.clone()),
            ("AUTH_SECRET", state.jwt_secret.clone()),
            ("FLASH_RATE", rate.to_string()),
            ("FLASH_DURATION", format!("{seconds}s")),
            ("FLASH_PRODUCTS", products.to_owned()),
            ("FLASH_STOCK", stock.to_string()),
            ("USERS", seed.users.to_string()),
            ("RETRIES", "3".to_owned()),
            // A throttled buyer waits out Retry-After up to three times: seconds per buyer.
            ("MAX_VUS", "1000".to_owned()),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect()
    };
    if args.warm_up_seconds > 0 {
        // Forty ordinary products share the warm-up, each well under its partition's limit.
        let products: Vec<String> = (1..=40).map(|n| format!("product-{n}")).collect();
        eprintln!(
            "Warming up: {} s of buyers on 40 ordinary products ...",
            args.warm_up_seconds
        );
        let mut warm = K6Run::spawn(
            "warm-up",
            "k6/flash-sale.js",
            &base_env(
                2.0 * args.rate,
                args.warm_up_seconds,
                &products.join(","),
                seed.stock,
            ),
            &dir.join("warm-up"),
        )?;
        warm.wait(Duration::from_secs(args.warm_up_seconds + 90));
        warm.stop(Duration::from_secs(10));
    }

    faithful.reset()?;
    eprintln!(
        "Selling: {} buyers/s on each product for {} s; each partition serves {} WCU/s ...",
        args.rate, args.seconds, args.partition_wcu
    );
    let mut sale = K6Run::spawn(
        "sale",
        "k6/flash-sale.js",
        &base_env(
            2.0 * args.rate,
            args.seconds,
            &format!("{FLASH_PRODUCT},{SHARDED_FLASH_PRODUCT}"),
            args.stock,
        ),
        &dir.join("sale"),
    )?;
    let started_ms = sale.started_ms;
    let mut marks = vec![Mark {
        at_ms: started_ms,
        what: "sale starts".to_owned(),
    }];
    let sleep_until = |offset_ms: i64| {
        let wait = started_ms + offset_ms - crate::clock::now_ms();
        if wait > 0 {
            std::thread::sleep(Duration::from_millis(wait as u64));
        }
    };
    let seconds_ms = args.seconds as i64 * 1_000;
    let sharded = product(SHARDED_FLASH_PRODUCT)?;
    if let Some(to) = args.reshard_to {
        sleep_until(seconds_ms / 4);
        let count =
            ShardCount::new(to).map_err(|error| anyhow::anyhow!("--reshard-to: {error}"))?;
        marks.push(Mark {
            at_ms: crate::clock::now_ms(),
            what: format!("reshard to {to} starts"),
        });
        // Through faithful, as the functions write: the reshard meets the sale's conflicts.
        let done = crate::client::runtime()?.block_on(async {
            let store = crate::client::store_for(faithful.endpoint(), &state.table).await;
            stock::rearrange(&store, &sharded, Some(count), Duration::from_secs(2)).await
        });
        let note = match done {
            Ok(done) => format!(
                "reshard done ({} steps, {} sent again)",
                done.steps.len(),
                done.retries
            ),
            Err(error) => format!(
                "reshard FAILED: {}",
                order_service::error::ErrorChain(&error)
            ),
        };
        eprintln!("  {note}");
        marks.push(Mark {
            at_ms: crate::clock::now_ms(),
            what: note,
        });
    }
    if let Some(outage) = args.outage_seconds {
        sleep_until(seconds_ms / 2);
        faithful.set_faults(&Faults {
            outage: Some(Outage::Refuse),
            ..Faults::default()
        })?;
        marks.push(Mark {
            at_ms: crate::clock::now_ms(),
            what: "store outage starts".to_owned(),
        });
        eprintln!("  store outage for {outage} s");
        std::thread::sleep(Duration::from_secs(outage));
        faithful.set_faults(&Faults::default())?;
        marks.push(Mark {
            at_ms: crate::clock::now_ms(),
            what: "store back".to_owned(),
        });
    }
    if !sale.wait(Duration::from_secs(args.seconds + 120)) {
        sale.stop(Duration::from_secs(20));
    }
    let ended_ms = sale.stopped_ms.unwrap_or_else(crate::clock::now_ms);
    let summary = sale.summary().context("the sale's k6 wrote no summary")?;
    let store_stats = faithful.summary()?;
    std::fs::write(
        dir.join("faithful.json"),
        serde_json::to_string_pretty(&store_stats)?,
    )?;

    let (orders, layouts) = crate::client::runtime()?.block_on(async {
        let store = crate::client::store_for(&state.dynamodb_endpoint, &state.table).await;
        let orders = store
            .all_orders()
            .await
            .map_err(crate::client::store_failure)?;
        let mut layouts = Vec::new();
        for name in [FLASH_PRODUCT, SHARDED_FLASH_PRODUCT] {
            let layout = stock::show(&store, &product(name)?)
                .await
                .map_err(crate::client::store_failure)?;
            layouts.push(layout);
        }
        Ok::<_, anyhow::Error>((orders, layouts))
    })?;
    let audit = audit::audit(&state.dynamodb_endpoint, &state.table)?;
    let window = (
        started_ms,
        started_ms + seconds_ms.min(ended_ms - started_ms),
    );
    let outcomes: Vec<Outcome> = layouts
        .iter()
        .map(|layout| {
            let name = layout.product_id.as_str();
            Outcome::of(
                name,
                &orders,
                args.stock,
                &layout.shards,
                metric(&summary, &format!("flash_rejected{{product:{name}}}")),
                metric(&summary, &format!("flash_gave_up{{product:{name}}}")),
                window,
            )
        })
        .collect();
    if let Some(sold_out_ms) = outcomes[1].sold_out_ms {
        marks.push(Mark {
            at_ms: sold_out_ms,
            what: format!("{SHARDED_FLASH_PRODUCT} sold out"),
        });
    }
    marks.sort_by_key(|mark| mark.at_ms);
    let log = std::fs::read_to_string(&state.function_log).unwrap_or_default();
    let phases = phases(&log, &marks, ended_ms);
    let unexpected = metric(&summary, "unexpected_errors");
    let line = per_sku_line(&outcomes[1], &outcomes[0], args.partition_wcu);
    let passed = outcomes.iter().all(Outcome::exact) && audit.is_clean() && unexpected == 0;
    let mut markdown = String::new();
    let _ = writeln!(markdown, "# Flash sale at scale\n\n{line}\n");
    let _ = writeln!(
        markdown,
        "Verdict: **{}** (oversold 0, stranded 0, sold + left = seeded for both products, audit {}, {} unexpected answers). Buyers: {} /s per product for {} s, each retrying up to 3 times; partition limit {} WCU/s (production 1,000: a 1:{:.1} scale model); {SHARDED_FLASH_PRODUCT} {} shards{}{}.\n",
        if passed { "PASSED" } else { "FAILED" },
        if audit.is_clean() { "clean" } else { "NOT clean" },
        unexpected,
        args.rate,
        args.seconds,
        args.partition_wcu,
        1_000.0 / args.partition_wcu,
        args.shards,
        args.reshard_to
            .map(|to| format!(", resharded to {to} during the sale"))
            .unwrap_or_default(),
        args.outage_seconds
            .map(|s| format!(", a {s} s store outage during the sale"))
            .unwrap_or_default(),
    );
    render_products(&outcomes, &store_stats, &state.table, &mut markdown);
    render_phases(&phases, &mut markdown);
    if !audit.is_clean() {
        let _ = writeln!(markdown, "Audit violations:\n");
        for violation in &audit.violations {
            let _ = writeln!(markdown, "- {violation}");
        }
    }
    std::fs::write(dir.join("report.md"), &markdown)?;
    println!("{line}");
    println!("VERDICT: {}", if passed { "PASSED" } else { "FAILED" });
    println!("  report: {}", dir.join("report.md").display());
    Ok(passed)
}

fn product(name: &str) -> Result<ProductId> {
    ProductId::parse(name).map_err(|error| anyhow::anyhow!("{name}: {error}"))
}

fn metric(summary: &Value, key: &str) -> u64 {
    crate::k6::summary_value(summary, key, "count").unwrap_or(0.0) as u64
}

/// One product's sale, as the table tells it.
#[derive(Debug, Clone, PartialEq)]
struct Outcome {
    product: String,
    orders: u64,
    sold: i64,
    seeded: i64,
    left: i64,
    /// When the last unit was sold, if none is left.
    sold_out_ms: Option<i64>,
    /// Seconds from the sale's start until it sold out or ended, and orders per second in them.
    seconds: f64,
    per_second: f64,
    oversold: i64,
    stranded: i64,
    /// Buyers answered 409 `OUT_OF_STOCK`.
    refused: u64,
    /// Buyers still refused (503, 429, 409 other than `OUT_OF_STOCK`) after their retries.
    gave_up: u64,
}

impl Outcome {
    fn of(
        product: &str,
        orders: &[Order],
        seeded: i64,
        shards: &[Option<i64>],
        refused: u64,
        gave_up: u64,
        (start_ms, end_ms): (i64, i64),
    ) -> Self {
        let mut count = 0;
        let mut sold = 0;
        let mut last_ms = start_ms;
        for order in orders.iter().filter(|order| order.status.holds_stock()) {
            let units: i64 = order
                .items
                .iter()
                .filter(|line| line.product_id.as_str() == product)
                .map(|line| i64::from(line.quantity.get()))
                .sum();
            if units > 0 {
                count += 1;
                sold += units;
                let at = (order.created_at.as_datetime().unix_timestamp_nanos() / 1_000_000) as i64;
                last_ms = last_ms.max(at);
            }
        }
        let left: i64 = shards.iter().map(|units| units.unwrap_or(0)).sum();
        let below_zero: i64 = shards.iter().map(|units| -units.unwrap_or(0).min(0)).sum();
        let sold_out_ms = (left == 0 && sold > 0).then_some(last_ms);
        let seconds = (sold_out_ms.unwrap_or(end_ms) - start_ms).max(1) as f64 / 1_000.0;
        Self {
            product: product.to_owned(),
            orders: count,
            sold,
            seeded,
            left,
            sold_out_ms,
            seconds,
            per_second: count as f64 / seconds,
            oversold: (sold - seeded).max(0) + below_zero,
            // Units still in shards after a buyer was told the product is sold out.
            stranded: if refused > 0 { left.max(0) } else { 0 },
            refused,
            gave_up,
        }
    }

    fn exact(&self) -> bool {
        self.oversold == 0 && self.stranded == 0 && self.sold + self.left == self.seeded
    }
}

/// The line the issue's bar reads.
fn per_sku_line(sharded: &Outcome, single: &Outcome, partition_wcu: f64) -> String {
    format!(
        "Per-SKU: sharded {:.1} orders/s, single item {:.1} orders/s, modelled item limit {:.1} \
         writes/s; oversold {}; stranded {}",
        sharded.per_second,
        single.per_second,
        partition_wcu / 2.0,
        sharded.oversold + single.oversold,
        sharded.stranded + single.stranded,
    )
}

fn render_products(
    outcomes: &[Outcome],
    store: &dynamodb_faithful::Summary,
    table: &str,
    out: &mut String,
) {
    let _ = writeln!(
        out,
        "| product | orders | orders/s | sold | left | seeded | sold out | 409 OUT_OF_STOCK | buyers who gave up | oversold | stranded | conflicts | throttled | WCU |\n|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"
    );
    for outcome in outcomes {
        let own = crate::faithful::product_partitions(store, table, &outcome.product);
        let (conflicts, throttled, units) = (own.conflicts, own.throttled, own.write_units);
        let sold_out = match outcome.sold_out_ms {
            Some(_) => format!("after {:.1} s", outcome.seconds),
            None => "no".to_owned(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {:.1} | {} | {} | {} | {sold_out} | {} | {} | {} | {} | {conflicts} | {throttled} | {units:.0} |",
            outcome.product,
            outcome.orders,
            outcome.per_second,
            outcome.sold,
            outcome.left,
            outcome.seeded,
            outcome.refused,
            outcome.gave_up,
            outcome.oversold,
            outcome.stranded,
        );
    }
    let _ = writeln!(out);
}

/// One stretch of the sale between two marks, from the functions' log.
#[derive(Debug, Clone, Default, PartialEq)]
struct Phase {
    name: String,
    seconds: f64,
    creates: u64,
    created: u64,
    out_of_stock: u64,
    /// 503s and 429s by code.
    refused: std::collections::BTreeMap<String, u64>,
    p95_ms: Option<f64>,
    conflicts: u64,
    throttles: u64,
}

fn phases(log: &str, marks: &[Mark], end_ms: i64) -> Vec<Phase> {
    let mut phases: Vec<(i64, i64, Phase, Vec<f64>)> = marks
        .iter()
        .enumerate()
        .map(|(index, mark)| {
            let until = marks.get(index + 1).map_or(end_ms, |next| next.at_ms);
            let phase = Phase {
                name: format!("from {}", mark.what),
                seconds: (until - mark.at_ms) as f64 / 1_000.0,
                ..Phase::default()
            };
            (mark.at_ms, until, phase, Vec::new())
        })
        .filter(|(from, until, _, _)| until > from)
        .collect();
    for line in log.lines() {
        let Some(event) = monitor::parse_line(line, 0) else {
            continue;
        };
        let at = event.at_ms();
        let Some((_, _, phase, latencies)) = phases
            .iter_mut()
            .find(|(from, until, _, _)| (*from..*until).contains(&at))
        else {
            continue;
        };
        match event {
            LogEvent::Request(record)
                if record.operation == order_service::app::Operation::CreateOrder.function() =>
            {
                phase.creates += 1;
                latencies.push(record.latency_ms);
                match record.status {
                    201 => phase.created += 1,
                    409 if record.code == "OUT_OF_STOCK" => phase.out_of_stock += 1,
                    409 | 429 | 500..=599 => {
                        *phase
                            .refused
                            .entry(
                                format!("{} {}", record.status, record.code)
                                    .trim()
                                    .to_owned(),
                            )
                            .or_default() += 1;
                    }
                    _ => {}
                }
            }
            LogEvent::Store { refused, .. } => match refused {
                StoreRefusal::Conflict => phase.conflicts += 1,
                StoreRefusal::Throttle => phase.throttles += 1,
            },
            _ => {}
        }
    }
    phases
        .into_iter()
        .map(|(_, _, mut phase, latencies)| {
            phase.p95_ms = monitor::percentile(&latencies, 95.0);
            phase
        })
        .collect()
}

fn render_phases(phases: &[Phase], out: &mut String) {
    let _ = writeln!(
        out,
        "Per phase (the functions' log: creates of both products, server-side p95; the store's conflicts and throttles):\n\n| phase | s | creates | 201 | 409 OUT_OF_STOCK | other refusals | p95 ms | conflicts | throttles |\n|---|---:|---:|---:|---:|---|---:|---:|---:|"
    );
    for phase in phases {
        let refused = crate::loadtest::report::answer_counts(&phase.refused);
        let _ = writeln!(
            out,
            "| {} | {:.1} | {} | {} | {} | {refused} | {} | {} | {} |",
            phase.name,
            phase.seconds,
            phase.creates,
            phase.created,
            phase.out_of_stock,
            phase
                .p95_ms
                .map_or("-".to_owned(), |p95| format!("{p95:.1}")),
            phase.conflicts,
            phase.throttles,
        );
    }
    let _ = writeln!(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(sold: i64, left: i64, refused: u64) -> Outcome {
        Outcome {
            product: "p".to_owned(),
            orders: sold as u64,
            sold,
            seeded: 100,
            left,
            sold_out_ms: None,
            seconds: 1.0,
            per_second: 0.0,
            oversold: (sold - 100).max(0),
            stranded: if refused > 0 { left } else { 0 },
            refused,
            gave_up: 0,
        }
    }

    #[test]
    fn a_sale_is_exact_only_when_every_unit_is_sold_once_or_still_sellable() {
        assert!(outcome(100, 0, 5).exact());
        assert!(outcome(60, 40, 0).exact(), "not sold out, nothing refused");
        assert!(
            !outcome(99, 1, 5).exact(),
            "a unit left after OUT_OF_STOCK is stranded"
        );
        assert!(!outcome(101, 0, 5).exact(), "oversold");
        assert!(!outcome(98, 1, 0).exact(), "a unit lost");
    }

    #[test]
    fn phases_split_the_log_at_the_marks() {
        let line = |at: &str, status: u16, code: &str, latency: f64| {
            format!(
                r#"{{"timestamp":"2026-12-06T10:00:{at}Z","level":"INFO","message":"request","requestId":"r","operation":"create-order","userId":"user-1","orderId":"","status":{status},"code":"{code}","latencyMs":{latency},"storeRetries":0,"fault":false}}"#
            )
        };
        let log = [
            line("01.000", 201, "", 10.0),
            line("02.000", 503, "STORE_THROTTLED", 30.0),
            r#"{"timestamp":"2026-12-06T10:00:02.500Z","message":"dynamodb-faithful","event":"throttle","operation":"TransactWriteItems","partition":"orders/PRODUCT#p"}"#.to_owned(),
            line("06.000", 409, "OUT_OF_STOCK", 5.0),
        ]
        .join("\n");
        let base = time::macros::datetime!(2026-12-06 10:00:00 UTC).unix_timestamp() * 1_000;
        let marks = [
            Mark {
                at_ms: base,
                what: "sale starts".to_owned(),
            },
            Mark {
                at_ms: base + 5_000,
                what: "p sold out".to_owned(),
            },
        ];
        let phases = phases(&log, &marks, base + 10_000);
        assert_eq!(phases.len(), 2);
        assert_eq!(
            (phases[0].creates, phases[0].created, phases[0].throttles),
            (2, 1, 1)
        );
        assert_eq!(phases[0].refused.get("503 STORE_THROTTLED"), Some(&1));
        assert_eq!((phases[1].creates, phases[1].out_of_stock), (1, 1));
        assert_eq!(phases[1].name, "from p sold out");
    }

    #[test]
    fn the_per_sku_line_reads_as_the_issue_asks() {
        let mut sharded = outcome(100, 0, 3);
        sharded.per_second = 80.04;
        let mut single = outcome(40, 60, 0);
        single.per_second = 7.5;
        assert_eq!(
            per_sku_line(&sharded, &single, 16.0),
            "Per-SKU: sharded 80.0 orders/s, single item 7.5 orders/s, modelled item limit 8.0 \
             writes/s; oversold 0; stranded 0"
        );
    }
}
