//! Seeding a table with a `seed_plan`: the running local stack's (dropped and recreated), one
//! behind an endpoint, or a deployed stack's (`target`), and `cargo xtask seed`.

use anyhow::{bail, Result};
use order_service::store::{SeedPlan, SeedSummary, TableContents};

use crate::client::{runtime, store_failure, store_for};
use crate::seed_plan::{SeedArgs, ShardArgs};
use crate::target::{Access, Target, TargetArgs};

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
