//! `cargo xtask capacity`: the capacity and cost model a team plans a sale with. From the
//! capacity units each API operation consumes (measured through `dynamodb-faithful`: recorded
//! below, re-measured by `--measure` and by a test that holds the record to the proxy), it
//! prints for a traffic shape (a peak of orders a second on one SKU, lines per order,
//! Idempotency-Keys or not) how many stock shards the SKU needs on production DynamoDB, the
//! units a second the peak consumes, what one user's balance item allows, and the cost per
//! million orders and per month on HTTP API + Lambda (arm64, the template's 256 MB) +
//! DynamoDB on-demand, at list prices read on 2026-12-06 (README, "Capacity and cost").
//!
//! The model of one shard (one item, in a partition of its own): every order line of the SKU
//! is one transactional update of a shard item under 1 KB, two write units; a partition serves
//! 1,000 write units a second. A transaction keeps the items it writes from others for a while
//! (`hold`); another transaction arriving then is cancelled (`TransactionConflict`) and the
//! store resends it after a backoff. With Poisson arrivals a fraction `rate x hold` of
//! attempts find the item held (a conflicted attempt holds nothing), each attempt is charged
//! as if it wrote (conservative: DynamoDB does not say that a cancelled transaction is free),
//! and the store's ten attempts make a 409 after a conflict fraction c about c^10. A shard is
//! planned at most at `MAX_CONFLICTS` and at `UTILISATION` of its partition's write units, so
//! that random choice (some shards see more than their share in a second) and the sale's end
//! (the slower path) have room.

mod measure;

use anyhow::{bail, Result};
use dynamodb_faithful::{read_units, write_units, Limits};
use order_service::domain::MAX_SHARDS;

/// Units one API operation consumes, with what it costs in calls and store time.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Units {
    pub operation: String,
    /// With an Idempotency-Key (`None`: a read, which takes none).
    pub keyed: Option<bool>,
    pub write_units: f64,
    pub read_units: f64,
    /// DynamoDB requests per operation.
    pub calls: f64,
    /// Milliseconds DynamoDB Local took for the operation's requests (this machine).
    pub store_ms: f64,
}

/// A partition's write and read units a second on production DynamoDB (on-demand tables
/// too): the ceilings `dynamodb-faithful` enforces locally, stated once there.
const PARTITION_WRITE_UNITS: f64 = Limits::PRODUCTION.write_units_per_second;
const PARTITION_READ_UNITS: f64 = Limits::PRODUCTION.read_units_per_second;
/// A product item and a stock shard are under 1 KB (the units recorded below show it).
const STOCK_ITEM_BYTES: usize = 1_024;
/// What a shard's take costs: a transactional update of the shard, by DynamoDB's unit rules
/// as `dynamodb-faithful` charges them.
const TAKE_WRITE_UNITS: f64 = write_units(STOCK_ITEM_BYTES, true);
/// What the catalog read costs the product item per create: an eventually consistent read.
const CATALOG_READ_UNITS: f64 = read_units(STOCK_ITEM_BYTES, false, false);
/// The share of a partition's units a plan uses at its peak.
const UTILISATION: f64 = 0.8;
/// The share of first attempts a plan lets conflict on one item (ten attempts: 0.3^10, about
/// six requests in a million, end as a retryable 409).
const MAX_CONFLICTS: f64 = 0.3;

/// List prices (us-east-1, read on 2026-12-06; README "Capacity and cost").
mod price {
    pub(super) const API_REQUEST: f64 = 1.00 / 1e6;
    pub(super) const LAMBDA_REQUEST: f64 = 0.20 / 1e6;
    pub(super) const LAMBDA_GB_SECOND_ARM: f64 = 0.000_013_333_4;
    pub(super) const WRITE_UNIT: f64 = 0.625 / 1e6;
    pub(super) const READ_UNIT: f64 = 0.125 / 1e6;
    pub(super) const LOG_GB: f64 = 0.50;
    pub(super) const TRACE: f64 = 5.00 / 1e6;
    pub(super) const ALARM_METRIC_MONTH: f64 = 0.10;
    pub(super) const DASHBOARD_MONTH: f64 = 3.00;
    /// A stage with no traffic: its alarms' metrics and its dashboard (README "Capacity and
    /// cost"; a test counts them in template.yaml).
    pub(super) const IDLE_STAGE_MONTH: f64 = 41.0 * ALARM_METRIC_MONTH + DASHBOARD_MONTH;
}

/// The functions' memory (template.yaml, `MemorySize`).
const LAMBDA_GB: f64 = 0.25;
/// CPU a function spends per request beside waiting on DynamoDB: measured with `perf` under
/// load on the `local` profile (ARCHITECTURE.md, "What limits the knee": 0.82-0.85 ms).
const FUNCTION_CPU_MS: f64 = 0.85;
/// Log bytes per request (README: the request line 0.76 KB on AWS, the EMF line ~0.7 KB, the
/// platform records and the API's access line).
const LOG_BYTES_PER_REQUEST: f64 = 2_700.0;
/// X-Ray's default sampling past its first request a second.
const TRACED: f64 = 0.05;

/// One recorded row: operation, keyed, write units, read units, DynamoDB calls, store ms.
type Recorded = (&'static str, Option<bool>, f64, f64, f64, f64);

/// Units per operation measured by `cargo xtask capacity --measure` (20 runs each) on
/// 2026-12-06, DynamoDB Local 2026-05-28 behind dynamodb-faithful; the test
/// `the_recorded_units_are_what_the_proxy_measures` holds this record to a new measurement.
const RECORDED: &[Recorded] = &[
    ("create, 1 line", Some(false), 6.0, 1.00, 2.0, 17.8),
    ("create, 5 lines", Some(false), 14.0, 3.00, 2.0, 21.6),
    ("create, 20 lines", Some(false), 48.0, 10.50, 2.0, 30.2),
    (
        "create, 1 line of a sharded product",
        Some(false),
        6.0,
        1.00,
        2.0,
        11.1,
    ),
    ("pay", Some(false), 6.0, 1.00, 2.0, 12.8),
    ("cancel, paid", Some(false), 8.0, 1.00, 2.0, 8.8),
    ("refund, 1 unit", Some(false), 8.0, 1.00, 2.0, 6.8),
    ("create, 1 line", Some(true), 9.0, 1.00, 3.0, 13.2),
    ("create, 5 lines", Some(true), 17.0, 3.00, 3.0, 21.0),
    ("create, 20 lines", Some(true), 53.0, 10.50, 3.0, 30.0),
    (
        "create, 1 line of a sharded product",
        Some(true),
        9.0,
        1.00,
        3.0,
        15.5,
    ),
    ("pay", Some(true), 9.0, 1.00, 3.0, 12.8),
    ("cancel, paid", Some(true), 11.0, 1.00, 3.0, 9.5),
    ("refund, 1 unit", Some(true), 11.0, 1.00, 3.0, 7.0),
    ("get", None, 0.0, 1.00, 1.0, 0.9),
    ("list, a page of 10", None, 0.0, 2.00, 1.0, 2.9),
    (
        "create refused, out of stock",
        Some(false),
        4.0,
        1.00,
        2.0,
        5.0,
    ),
    (
        "read 8 shards (strongly consistent)",
        None,
        0.0,
        8.00,
        1.0,
        1.4,
    ),
    ("read 8 shards at one instant", None, 0.0, 16.00, 1.0, 3.7),
];

fn recorded() -> Vec<Units> {
    RECORDED
        .iter()
        .map(
            |(operation, keyed, write_units, read_units, calls, store_ms)| Units {
                operation: (*operation).to_owned(),
                keyed: *keyed,
                write_units: *write_units,
                read_units: *read_units,
                calls: *calls,
                store_ms: *store_ms,
            },
        )
        .collect()
}

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// The expected peak of orders a second on one SKU (a flash sale's product).
    #[arg(long, default_value_t = 5_000.0)]
    pub peak_orders_per_sec: f64,
    /// Lines per order (1 to 20): the SKU's, and any of other products.
    #[arg(long, default_value_t = 1)]
    pub lines: u32,
    /// Creates and payments carry Idempotency-Keys (as k6 and the README's examples send them).
    #[arg(long)]
    pub keyed: bool,
    /// How long a transaction keeps its items from others on production DynamoDB, in
    /// milliseconds. Not published: 5 is about a transactional write's own latency, and
    /// conservative where shards cost nothing (on-demand bills requests, not items); calibrate
    /// it on a stage (README, "Capacity and cost").
    #[arg(long, default_value_t = 5.0)]
    pub hold_ms: f64,
    /// Hours a month at the peak (a sale), for the monthly cost.
    #[arg(long, default_value_t = 2.0)]
    pub peak_hours_per_month: f64,
    /// Orders a second the rest of the month.
    #[arg(long, default_value_t = 0.0)]
    pub baseline_orders_per_sec: f64,
    /// Measure the units per operation again through dynamodb-faithful on DynamoDB Local
    /// (`cargo xtask install` puts it in place), and calibrate the conflict model against
    /// the proxy, instead of using the recorded table.
    #[arg(long)]
    pub measure: bool,
    /// With --measure: runs per operation.
    #[arg(long, default_value_t = 20)]
    pub samples: u32,
}

/// The model of one SKU's stock on production DynamoDB.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Model {
    /// How long a transaction keeps an item from others, in seconds.
    pub hold: f64,
}

impl Model {
    /// The share of attempts on one item that find it held, at `rate` successful transactions a
    /// second on it.
    pub(crate) fn conflict_fraction(&self, rate: f64) -> f64 {
        (rate * self.hold).min(1.0)
    }

    /// The takes a second one shard serves within the plan's limits: its partition's write
    /// units at `UTILISATION`, attempts charged with their conflicted resends
    /// (2 λ / (1 - λ hold) <= u W), and conflicts at most `MAX_CONFLICTS`.
    pub(crate) fn shard_rate(&self) -> f64 {
        let units = UTILISATION * PARTITION_WRITE_UNITS;
        let by_units = units / (TAKE_WRITE_UNITS + units * self.hold);
        let by_conflicts = if self.hold > 0.0 {
            MAX_CONFLICTS / self.hold
        } else {
            f64::INFINITY
        };
        by_units.min(by_conflicts)
    }

    /// Orders a second the catalog read lets one SKU take: every create reads the product
    /// item (price and shard count), eventually consistent, from its one partition.
    pub(crate) fn catalog_rate(&self) -> f64 {
        PARTITION_READ_UNITS / CATALOG_READ_UNITS
    }

    /// Orders a second of one SKU (one line each) with `shards` shards.
    pub(crate) fn sku_rate(&self, shards: u32) -> f64 {
        (f64::from(shards) * self.shard_rate()).min(self.catalog_rate())
    }

    /// The fewest shards that take `peak` orders a second, or why none do.
    pub(crate) fn shards_for(&self, peak: f64) -> Result<u32> {
        let ceiling = PARTITION_READ_UNITS / CATALOG_READ_UNITS;
        if peak > ceiling {
            bail!(
                "{peak:.0} orders/s is past what one product item's catalog read allows \
                 ({ceiling:.0}/s: {CATALOG_READ_UNITS} read units each, {PARTITION_READ_UNITS} a \
                 second per partition); cache the price and shard count in the functions (an \
                 operator changes them) before planning more"
            );
        }
        let shards = (peak / self.shard_rate()).ceil().max(1.0) as u32;
        if shards > MAX_SHARDS {
            bail!(
                "{peak:.0} orders/s needs {shards} shards at {:.0} takes/s each, past the \
                 {MAX_SHARDS} one transaction can rearrange",
                self.shard_rate()
            );
        }
        Ok(shards)
    }
}

/// One operation's units from `table`, `lines` lines for a create (linear between the
/// measured 1, 5 and 20 lines).
fn units_of<'a>(table: &'a [Units], operation: &str, keyed: Option<bool>) -> Result<&'a Units> {
    table
        .iter()
        .find(|units| units.operation == operation && units.keyed == keyed)
        .ok_or_else(|| anyhow::anyhow!("no measured units for {operation} ({keyed:?})"))
}

fn create_units(table: &[Units], lines: u32, keyed: bool) -> Result<Units> {
    let point = |count: u32| {
        let name = format!("create, {count} line{}", if count == 1 { "" } else { "s" });
        units_of(table, &name, Some(keyed)).cloned()
    };
    let (low, high) = match lines {
        0 | 1 => return point(1),
        2..=5 => (1, 5),
        _ => (5, 20),
    };
    let (a, b) = (point(low)?, point(high)?);
    let share = f64::from(lines.min(20) - low) / f64::from(high - low);
    let between = |x: f64, y: f64| x + (y - x) * share;
    Ok(Units {
        operation: format!("create, {lines} lines"),
        keyed: Some(keyed),
        write_units: between(a.write_units, b.write_units),
        read_units: between(a.read_units, b.read_units),
        calls: between(a.calls, b.calls),
        store_ms: between(a.store_ms, b.store_ms),
    })
}

/// What a million orders (a create and a payment each) cost, item by item.
#[derive(Debug, Clone)]
pub(crate) struct Cost {
    pub items: Vec<(&'static str, String, f64)>,
}

impl Cost {
    pub(crate) fn total(&self) -> f64 {
        self.items.iter().map(|(_, _, dollars)| dollars).sum()
    }
}

/// Billed milliseconds of one invocation: its CPU and its wait on the store, rounded up.
fn billed_ms(units: &Units) -> f64 {
    (FUNCTION_CPU_MS + units.store_ms).ceil()
}

pub(crate) fn cost_per_million(create: &Units, pay: &Units) -> Cost {
    let million = 1e6;
    let requests = 2.0 * million;
    let gb_seconds = (billed_ms(create) + billed_ms(pay)) / 1_000.0 * LAMBDA_GB * million;
    let writes = (create.write_units + pay.write_units) * million;
    let reads = (create.read_units + pay.read_units) * million;
    let logs_gb = requests * LOG_BYTES_PER_REQUEST / 1e9;
    Cost {
        items: vec![
            (
                "HTTP API requests",
                format!("{:.1} M", requests / million),
                requests * price::API_REQUEST,
            ),
            (
                "Lambda requests",
                format!("{:.1} M", requests / million),
                requests * price::LAMBDA_REQUEST,
            ),
            (
                "Lambda duration, arm64, 256 MB",
                format!(
                    "create {:.0} ms + pay {:.0} ms billed = {gb_seconds:.0} GB-s",
                    billed_ms(create),
                    billed_ms(pay)
                ),
                gb_seconds * price::LAMBDA_GB_SECOND_ARM,
            ),
            (
                "DynamoDB writes",
                format!(
                    "create {:.1} + pay {:.1} = {:.1} M WRU",
                    create.write_units,
                    pay.write_units,
                    writes / million
                ),
                writes * price::WRITE_UNIT,
            ),
            (
                "DynamoDB reads",
                format!(
                    "create {:.2} + pay {:.2} = {:.2} M RRU",
                    create.read_units,
                    pay.read_units,
                    reads / million
                ),
                reads * price::READ_UNIT,
            ),
            (
                "CloudWatch Logs ingestion",
                format!("{logs_gb:.1} GB"),
                logs_gb * price::LOG_GB,
            ),
            (
                "X-Ray traces",
                format!("{:.2} M", requests * TRACED / million),
                requests * TRACED * price::TRACE,
            ),
        ],
    }
}

/// The units table as markdown.
pub(crate) fn render_units(table: &[Units]) -> String {
    let mut text = String::from(
        "| operation | Idempotency-Key | WRU | RRU | DynamoDB calls | DynamoDB Local ms |\n\
         |---|---|---:|---:|---:|---:|\n",
    );
    for units in table {
        let keyed = match units.keyed {
            Some(true) => "yes",
            Some(false) => "no",
            None => "-",
        };
        text.push_str(&format!(
            "| {} | {keyed} | {:.1} | {:.2} | {:.1} | {:.1} |\n",
            units.operation, units.write_units, units.read_units, units.calls, units.store_ms
        ));
    }
    text
}

/// The plan for a traffic shape, as printed.
pub(crate) fn plan(args: &Args, table: &[Units]) -> Result<String> {
    if !(1..=20).contains(&args.lines) {
        bail!("--lines must be 1 to 20");
    }
    let model = Model {
        hold: args.hold_ms / 1_000.0,
    };
    let peak = args.peak_orders_per_sec;
    let shards = model.shards_for(peak)?;
    let create = create_units(table, args.lines, args.keyed)?;
    let pay = units_of(table, "pay", Some(args.keyed))?.clone();
    let cost = cost_per_million(&create, &pay);
    let per_order = cost.total() / 1e6;
    let mut text = String::new();
    let per_shard = peak / f64::from(shards);
    text.push_str(&format!(
        "Traffic: {peak:.0} orders/s on one SKU at the peak, {} line(s) an order, {}.\n\
         Model: a transaction holds its items {:.1} ms (--hold-ms); a shard is planned at \
         {:.0} % of its partition's {PARTITION_WRITE_UNITS:.0} write units and at most {:.0} % \
         conflicting first attempts.\n\n",
        args.lines,
        if args.keyed {
            "with Idempotency-Keys"
        } else {
            "without Idempotency-Keys"
        },
        args.hold_ms,
        UTILISATION * 100.0,
        MAX_CONFLICTS * 100.0,
    ));
    text.push_str(&format!(
        "Shards: {shards} (each {per_shard:.0} takes/s of at most {:.0}; {:.0} % of first \
         attempts conflict; {:.0} write units/s per shard partition). One item alone takes \
         {:.0} orders/s.\n",
        model.shard_rate(),
        model.conflict_fraction(per_shard) * 100.0,
        TAKE_WRITE_UNITS * per_shard / (1.0 - model.conflict_fraction(per_shard)),
        model.sku_rate(1),
    ));
    let catalog = peak * CATALOG_READ_UNITS / PARTITION_READ_UNITS;
    text.push_str(&format!(
        "The product item's catalog reads: {:.0} read units/s of {PARTITION_READ_UNITS:.0}, \
         {:.0} %{} (no shard count lifts this one: {:.0} orders/s at most).\n",
        peak * CATALOG_READ_UNITS,
        catalog * 100.0,
        if catalog > UTILISATION {
            ": past the plan's share, so cache price and shard count in the functions or \
             accept throttled reads at the peak"
        } else {
            ""
        },
        PARTITION_READ_UNITS / CATALOG_READ_UNITS
    ));
    text.push_str(&format!(
        "Units at the peak: {:.0} WRU/s and {:.0} RRU/s for the creates, {:.0} WRU/s and \
         {:.0} RRU/s more when each is paid at the same rate.\n",
        peak * create.write_units,
        peak * create.read_units,
        peak * pay.write_units,
        peak * pay.read_units
    ));
    let user_units = pay.write_units;
    text.push_str(&format!(
        "One user (balance, orders and keys share the user's partition, which its local index \
         keeps whole): {:.0} payments/s by write units ({user_units:.1} WRU each, at {:.0} %), \
         {:.0} by conflicts on the balance item.\n\n",
        UTILISATION * PARTITION_WRITE_UNITS / user_units,
        UTILISATION * 100.0,
        MAX_CONFLICTS / model.hold
    ));
    text.push_str(
        "Orders/s of one SKU by shard count, and the shards this peak needs, by hold:\n  \
         hold ms |      1 |      2 |      4 |      8 |     16 |     32 |     64 |     98 | shards\n",
    );
    for hold_ms in [1.0, 2.0, 5.0, 10.0] {
        let model = Model {
            hold: hold_ms / 1_000.0,
        };
        let rates: String = [1, 2, 4, 8, 16, 32, 64, 98]
            .iter()
            .map(|count| format!(" {:>6.0} |", model.sku_rate(*count)))
            .collect();
        let needed = model
            .shards_for(peak)
            .map_or_else(|_| "too many".to_owned(), |shards| shards.to_string());
        text.push_str(&format!("  {hold_ms:>7.1} |{rates} {needed}\n"));
    }
    text.push_str("\nPer million orders (a create and a payment each):\n");
    for (item, quantity, dollars) in &cost.items {
        text.push_str(&format!("  {item:<32} {quantity:<54} ${dollars:>8.2}\n"));
    }
    text.push_str(&format!(
        "  {:<32} {:<54} ${:>8.2}\n",
        "total",
        "",
        cost.total()
    ));
    let hours = args.peak_hours_per_month.clamp(0.0, 730.0);
    let orders = peak * 3_600.0 * hours + args.baseline_orders_per_sec * 3_600.0 * (730.0 - hours);
    text.push_str(&format!(
        "\nA month: {hours:.1} h at the peak{} = {:.1} M orders: ${:.0} for the orders + \
         ${:.2} for the idle stage = ${:.0} (list prices of 2026-12-06, us-east-1; free tiers \
         left out).\n",
        if args.baseline_orders_per_sec > 0.0 {
            format!(
                " and {:.0} orders/s otherwise",
                args.baseline_orders_per_sec
            )
        } else {
            String::new()
        },
        orders / 1e6,
        orders * per_order,
        price::IDLE_STAGE_MONTH,
        orders * per_order + price::IDLE_STAGE_MONTH
    ));
    Ok(text)
}

pub fn run(args: &Args) -> Result<()> {
    let table = if args.measure {
        let runtime = crate::client::runtime()?;
        let table = runtime.block_on(measure::units(args.samples.max(1)))?;
        println!(
            "Units per operation, measured now ({} runs each):\n",
            args.samples
        );
        println!("{}", render_units(&table));
        let hold = std::time::Duration::from_millis(10);
        let points = runtime.block_on(measure::conflicts(&[10.0, 25.0, 50.0], hold, 6))?;
        println!("Conflicts on one item through the proxy, every transaction holding it {hold:?} longer than its service time:\n");
        println!("| takes/s | hold ms | conflicted attempts | model (rate x hold) |\n|---:|---:|---:|---:|");
        for point in points {
            let model = Model {
                hold: point.hold_ms / 1_000.0,
            };
            println!(
                "| {:.1} | {:.1} | {:.2} | {:.2} |",
                point.rate,
                point.hold_ms,
                point.conflicts,
                model.conflict_fraction(point.rate)
            );
        }
        println!();
        table
    } else {
        recorded()
    };
    print!("{}", plan(args, &table)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CloudWatch bills an alarm per metric it watches (each metric of a metric-math alarm).
    #[test]
    fn the_idle_stage_prices_every_alarm_metric_and_dashboard_of_the_template() {
        let text = std::fs::read_to_string(crate::paths::root().join("template.yaml")).unwrap();
        let template: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        let resources = template["Resources"].as_mapping().unwrap();
        let of_type = |kind: &'static str| {
            resources
                .values()
                .filter(move |resource| resource["Type"].as_str() == Some(kind))
        };
        let metrics: usize = of_type("AWS::CloudWatch::Alarm")
            .map(|alarm| {
                alarm["Properties"]["Metrics"]
                    .as_sequence()
                    .map_or(1, |metrics| {
                        metrics
                            .iter()
                            .filter(|metric| metric.get("MetricStat").is_some())
                            .count()
                    })
            })
            .sum();
        let dashboards = of_type("AWS::CloudWatch::Dashboard").count();
        let idle =
            metrics as f64 * price::ALARM_METRIC_MONTH + dashboards as f64 * price::DASHBOARD_MONTH;
        assert!(
            (idle - price::IDLE_STAGE_MONTH).abs() < 1e-9,
            "template.yaml: {metrics} alarm metrics and {dashboards} dashboard(s) cost ${idle:.2} a \
             month idle; IDLE_STAGE_MONTH says ${:.2}",
            price::IDLE_STAGE_MONTH
        );
    }

    fn args(peak: f64) -> Args {
        Args {
            peak_orders_per_sec: peak,
            lines: 1,
            keyed: true,
            hold_ms: 5.0,
            peak_hours_per_month: 2.0,
            baseline_orders_per_sec: 0.0,
            measure: false,
            samples: 1,
        }
    }

    #[test]
    fn a_shard_is_bounded_by_its_conflicts_or_its_write_units_and_a_sku_by_its_catalog_read() {
        let five = Model { hold: 0.005 };
        // 0.3 / 5 ms = 60 takes/s, below what 800 write units allow (800 / (2 + 4) = 133).
        assert!((five.shard_rate() - 60.0).abs() < 1e-9);
        assert_eq!(five.shards_for(5_000.0).unwrap(), 84);
        assert!((five.conflict_fraction(60.0) - 0.3).abs() < 1e-9);
        // With no hold, the write units alone: 800 / 2 = 400 takes/s.
        let none = Model { hold: 0.0 };
        assert!((none.shard_rate() - 400.0).abs() < 1e-9);
        assert_eq!(none.shards_for(5_000.0).unwrap(), 13);
        // The product item's reads: 0.5 units per create, 3,000 a second.
        assert!((none.sku_rate(98) - 6_000.0).abs() < 1e-9);
        assert!(none.shards_for(7_000.0).is_err());
        // A hold so long that even 98 shards are too few.
        assert!(Model { hold: 0.05 }.shards_for(5_000.0).is_err());
    }

    #[test]
    fn the_plan_prints_shards_units_and_cost_from_the_recorded_units() {
        let table = recorded();
        let text = plan(&args(5_000.0), &table).unwrap();
        assert!(text.contains("Shards: 84"), "{text}");
        assert!(text.contains("create 9.0 + pay 9.0 = 18.0 M WRU"), "{text}");
        let cost = cost_per_million(
            &create_units(&table, 1, true).unwrap(),
            units_of(&table, "pay", Some(true)).unwrap(),
        );
        // DynamoDB writes: 18 WRU an order at $0.625 per million.
        assert!((cost.items[3].2 - 11.25).abs() < 1e-9);
        assert!(
            cost.total() > 15.0 && cost.total() < 20.0,
            "{}",
            cost.total()
        );
        // Lines between the measured points are interpolated: 3 lines of 2 units.
        let three = create_units(&table, 3, false).unwrap();
        assert!((three.write_units - 10.0).abs() < 1e-9);
        assert!(plan(
            &Args {
                lines: 0,
                ..args(1.0)
            },
            &table
        )
        .is_err());
    }

    /// The recorded units are what the proxy measures now: the model cannot drift from the
    /// code it models (a new item in a transaction, a bigger order item, a new read).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_recorded_units_are_what_the_proxy_measures() {
        let measured = measure::units(4).await.unwrap();
        let recorded = recorded();
        assert_eq!(measured.len(), recorded.len());
        for (now, then) in measured.iter().zip(&recorded) {
            assert_eq!(
                (
                    &now.operation,
                    now.keyed,
                    now.write_units,
                    now.read_units,
                    now.calls
                ),
                (
                    &then.operation,
                    then.keyed,
                    then.write_units,
                    then.read_units,
                    then.calls
                ),
                "re-record with `cargo xtask capacity --measure`"
            );
        }
    }
}
