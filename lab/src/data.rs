//! Data commands: seed a table and audit it. Each works on the running local stack, a table
//! behind an endpoint, or a deployed stack (`target`).

use anyhow::{bail, Result};

use order_service::store::{AuditReport, SeedPlan, SeedSummary, TableContents};

use crate::client::{runtime, store_failure, store_for};
use crate::target::{Access, Target, TargetArgs};

#[derive(clap::Args, Debug, Clone)]
pub(crate) struct SeedArgs {
    /// Users user-1..user-N.
    #[arg(long, default_value_t = 1_000)]
    pub users: u32,
    /// Products product-1..product-M.
    #[arg(long, default_value_t = 100)]
    pub products: u32,
    /// Balance of every user, in KRW.
    #[arg(long, default_value_t = 1_000_000)]
    pub balance: i64,
    /// Stock of every product, in units.
    #[arg(long, default_value_t = 1_000)]
    pub stock: i64,
    /// Stock of `product-flash`, the scarce product of flash sales.
    #[arg(long, default_value_t = 50)]
    pub flash_stock: i64,
}

impl SeedArgs {
    /// The variables that tell the k6 scenarios what was seeded.
    pub(crate) fn k6_env(&self) -> [(&'static str, String); 5] {
        [
            ("USERS", self.users.to_string()),
            ("PRODUCTS", self.products.to_string()),
            ("BALANCE", self.balance.to_string()),
            ("STOCK", self.stock.to_string()),
            ("FLASH_STOCK", self.flash_stock.to_string()),
        ]
    }

    pub(crate) fn plan(&self) -> SeedPlan {
        SeedPlan {
            users: self.users,
            balance: self.balance,
            products: self.products,
            stock: self.stock,
            extra_products: vec![(FLASH_PRODUCT.to_owned(), FLASH_PRICE, self.flash_stock)],
            sharded: Vec::new(),
        }
    }
}

/// The flash sale's scarce product, one stock item.
pub const FLASH_PRODUCT: &str = "product-flash";
/// The flash sale's sharded twin: the same price and stock, spread over shards.
pub const SHARDED_FLASH_PRODUCT: &str = "product-flash-sharded";
const FLASH_PRICE: i64 = 9_900;

/// Which seeded products keep their stock in shards. Every product has one shard unless named
/// here, so a seed without these options is what it always was.
#[derive(clap::Args, Debug, Clone, Default)]
pub(crate) struct ShardArgs {
    /// Also seed `product-flash-sharded`, with the flash stock and price of `product-flash`
    /// spread over this many shards, so that a flash sale can sell both side by side (1: not
    /// seeded).
    #[arg(long, default_value_t = 1)]
    pub(crate) flash_shards: u32,
    /// Spread a seeded product's stock over shards, PRODUCT=N (repeatable), e.g.
    /// `--shard product-7=8`.
    #[arg(long = "shard", value_name = "PRODUCT=N", value_parser = parse_shard)]
    pub(crate) shards: Vec<(String, u32)>,
}

fn parse_shard(text: &str) -> Result<(String, u32), String> {
    let (product, count) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not PRODUCT=N"))?;
    let count: u32 = count
        .parse()
        .map_err(|_| format!("{count:?} is not a shard count"))?;
    order_service::domain::ShardCount::new(count).map_err(|error| error.to_string())?;
    order_service::domain::ProductId::parse(product).map_err(|error| error.to_string())?;
    Ok((product.to_owned(), count))
}

impl ShardArgs {
    /// `seed`'s plan with these products sharded (and the sharded flash product added).
    pub(crate) fn apply(&self, seed: &SeedArgs) -> SeedPlan {
        let mut plan = seed.plan();
        if self.flash_shards > 1 {
            plan.extra_products.push((
                SHARDED_FLASH_PRODUCT.to_owned(),
                FLASH_PRICE,
                seed.flash_stock,
            ));
            plan.sharded
                .push((SHARDED_FLASH_PRODUCT.to_owned(), self.flash_shards));
        }
        plan.sharded.extend(self.shards.iter().cloned());
        plan
    }
}

/// Drops and recreates the table, then seeds it: every run starts from known initial values.
pub(crate) fn reset_and_seed(endpoint: &str, table: &str, args: &SeedArgs) -> Result<SeedSummary> {
    reset_and_seed_plan(endpoint, table, &args.plan())
}

/// As `reset_and_seed`, with any plan (e.g. `ShardArgs::apply`'s, with sharded products).
pub(crate) fn reset_and_seed_plan(
    endpoint: &str,
    table: &str,
    plan: &SeedPlan,
) -> Result<SeedSummary> {
    runtime()?.block_on(async {
        let store = store_for(endpoint, table).await;
        store.delete_table().await.map_err(store_failure)?;
        store.create_table().await.map_err(store_failure)?;
        order_service::app::stock::seed(&store, plan)
            .await
            .map_err(store_failure)
    })
}

#[derive(clap::Args, Debug, Clone)]
pub struct SeedCommand {
    #[command(flatten)]
    pub(crate) plan: SeedArgs,
    #[command(flatten)]
    pub(crate) shards: ShardArgs,
    #[command(flatten)]
    pub(crate) target: TargetArgs,
    /// Delete every item of a table that already holds data before seeding (the table itself,
    /// its settings and backups stay). The local stack's table is always recreated instead.
    #[arg(long)]
    pub wipe: bool,
}

/// Seeds `target`: the local stack's table is dropped and recreated; any other table is
/// seeded only when it is empty, or after `wipe` deleted its items, because seeding over
/// live orders would break the audit's ledger. A table missing behind a bare endpoint
/// (DynamoDB Local) is created; a table in AWS is its stack's to create.
pub(crate) fn seed_target(target: &Target, plan: &SeedArgs, wipe: bool) -> Result<SeedSummary> {
    seed_target_plan(target, &plan.plan(), wipe)
}

/// As `seed_target`, with any plan (e.g. `ShardArgs::apply`'s, with sharded products).
pub(crate) fn seed_target_plan(
    target: &Target,
    plan: &SeedPlan,
    wipe: bool,
) -> Result<SeedSummary> {
    if let Access::LocalStack { endpoint } = &target.access {
        return reset_and_seed_plan(endpoint, &target.table, plan);
    }
    runtime()?.block_on(async {
        let store = target.store().await?;
        match store.contents().await.map_err(store_failure)? {
            TableContents::Empty => {}
            TableContents::Missing => {
                if !matches!(target.access, Access::Endpoint { .. }) {
                    bail!("{} does not exist", target.describe());
                }
                store.create_table().await.map_err(store_failure)?;
            }
            TableContents::HoldsData => {
                if !wipe {
                    bail!(
                        "{} already holds data: seeding over it would break the audit; \
                         pass --wipe to delete every item first",
                        target.describe()
                    );
                }
                let deleted = store.wipe().await.map_err(store_failure)?;
                eprintln!("Deleted {deleted} items from {}", target.describe());
            }
        }
        order_service::app::stock::seed(&store, plan)
            .await
            .map_err(store_failure)
    })
}

pub fn seed_command(args: &SeedCommand) -> Result<()> {
    let target = args.target.resolve()?;
    eprintln!("Seeding {} ...", target.describe());
    let summary = seed_target_plan(&target, &args.shards.apply(&args.plan), args.wipe)?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}

pub(crate) fn audit(endpoint: &str, table: &str) -> Result<AuditReport> {
    runtime()?.block_on(async {
        store_for(endpoint, table)
            .await
            .audit()
            .await
            .map_err(store_failure)
    })
}

pub(crate) fn audit_target(target: &Target) -> Result<AuditReport> {
    runtime()?.block_on(async { target.store().await?.audit().await.map_err(store_failure) })
}

#[derive(clap::Args, Debug, Clone)]
pub struct AuditArgs {
    #[command(flatten)]
    pub(crate) target: TargetArgs,
}

/// The audit's exit codes: a runbook tells a violation from a tool that could not look.
pub(crate) mod exit {
    /// Money and stock are conserved exactly.
    pub(crate) const CLEAN: i32 = 0;
    /// At least one violation: a finding (runbooks/audit-violation.md).
    pub(crate) const VIOLATION: i32 = 1;
    /// The audit could not run (no credentials, no table, the store unreachable): no finding.
    pub(crate) const COULD_NOT_RUN: i32 = 2;
}

/// Runs the audit and returns its exit code (`exit`), having printed the report.
pub fn audit_command(args: &AuditArgs) -> i32 {
    let report = args.target.resolve().and_then(|target| {
        eprintln!("Auditing {} ...", target.describe());
        audit_target(&target)
    });
    match report {
        Err(error) => {
            eprintln!("audit: could not run: {error:#}");
            exit::COULD_NOT_RUN
        }
        Ok(report) => {
            match serde_json::to_string_pretty(&report) {
                Ok(json) => println!("{json}"),
                Err(error) => eprintln!("cannot render the report: {error}"),
            }
            if report.is_clean() {
                println!(
                    "audit: clean ({} orders, {} users, {} products)",
                    report.orders, report.users, report.products
                );
                exit::CLEAN
            } else {
                println!("audit: {} violation(s)", report.violations.len());
                exit::VIOLATION
            }
        }
    }
}
