//! `cargo xtask histories`: the concurrent-history check of the test suite
//! (`testkit::history`), at any size and seed. Clients at once through `dynamodb-faithful`
//! (holds, a partition limit, a nemesis making commits ambiguous), then every order's history
//! checked for linearizability, every key for exactly-once replays, and the table audited for
//! conservation. `--planted-bug` strips the orders' status conditions, to see the check fail.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use dynamodb_faithful::{Faults, Limits};
use order_service::store::StoreSettings;
use testkit::history::{self, Workload};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Clients running at once.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Operations each client sends.
    #[arg(long, default_value_t = 200)]
    pub operations: usize,
    /// Users the orders belong to.
    #[arg(long, default_value_t = 3)]
    pub users: u32,
    /// The seed of every random choice (a failing run prints its seed; this repeats it).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Extra milliseconds a transaction holds its items (wider conflict windows).
    #[arg(long, default_value_t = 10)]
    pub hold_ms: u64,
    /// Write units one partition serves per second (low, so that hot products throttle).
    #[arg(long, default_value_t = 60.0)]
    pub partition_wcu: f64,
    /// Strip the status condition of order updates (a planted bug the check must catch).
    #[arg(long)]
    pub planted_bug: bool,
}

pub fn run(args: &Args) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let seed = args.seed.unwrap_or_else(|| fastrand::u64(..));
    eprintln!(
        "histories: {} clients x {} operations, seed {seed} (--seed {seed} repeats it)",
        args.clients, args.operations
    );
    let (verdict, audit, proxy) = runtime.block_on(async {
        let settings = StoreSettings {
            attempt_timeout: Duration::from_millis(300),
            max_sdk_attempts: 2,
            breaker_failure_threshold: 1_000,
            ..testkit::test_settings()
        };
        let faithful = testkit::faithful_table(&history::plan(args.users), settings).await;
        faithful.proxy.set_hold(Duration::from_millis(args.hold_ms));
        faithful.proxy.set_limits(Limits {
            write_units_per_second: args.partition_wcu,
            read_units_per_second: args.partition_wcu * 3.0,
        });
        let workload = Workload {
            clients: args.clients,
            operations_per_client: args.operations,
            users: args.users,
            seed,
        };
        let recorded = if args.planted_bug {
            faithful.proxy.update_faults(|faults| {
                *faults = Faults {
                    strip_conditions_on: Some("ORDER#".to_owned()),
                    ..Faults::default()
                }
            });
            history::run(&faithful.store, workload).await
        } else {
            let (recorded, rearrangements) = history::with_rearrangements(
                &faithful.store,
                history::with_nemesis(
                    &faithful.proxy,
                    450,
                    seed,
                    history::run(&faithful.store, workload),
                ),
            )
            .await;
            eprintln!("{rearrangements} rearrangements of sharded stock ran under the clients");
            recorded
        };
        let verdict = history::check(&recorded);
        let audit = faithful
            .table
            .store
            .audit()
            .await
            .context("the audit could not run")?;
        anyhow::Ok((verdict, audit, faithful.proxy.summary()))
    })?;
    let total = proxy.total();
    println!(
        "{} operations on {} orders ({} not checked for linearizability: more than {} states \
         to search), {} keys; {} unknown outcomes, {} answered 'nothing done'\n\
         store: {} conflicts, {} throttled, {} injected faults\n\
         linearizability and exactly-once: {} violations; conservation: {} violations",
        verdict.operations,
        verdict.orders,
        verdict.unchecked,
        testkit::history::SEARCH_BUDGET,
        verdict.keys,
        verdict.unknown,
        verdict.nothing_done,
        total.conflicts,
        total.throttled,
        total.injected,
        verdict.violations.len(),
        audit.violations.len()
    );
    for violation in verdict.violations.iter().chain(&audit.violations).take(10) {
        println!("  {violation}");
    }
    let clean = verdict.is_clean() && audit.is_clean();
    match (clean, args.planted_bug) {
        (true, false) => {
            println!("CLEAN");
            Ok(())
        }
        (false, true) => {
            println!("CAUGHT: the planted bug was found");
            Ok(())
        }
        (true, true) => bail!("the planted bug went unnoticed (seed {seed})"),
        (false, false) => bail!("the history has violations (seed {seed})"),
    }
}
