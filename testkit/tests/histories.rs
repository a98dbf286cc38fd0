//! Concurrent histories through production's failures (`testkit::history`): several clients
//! at once, keys reused and retried, transactions conflicting, hot partitions throttling, a
//! nemesis making commits ambiguous, and an operator resharding and rebalancing the sharded
//! products' stock under them; every order's history linearizable, every key applied at most
//! once and replayed byte for byte, money and stock conserved. And the checker catches a
//! planted bug: payments and cancellations that no longer check the order's status.
//!
//! Sized for CI; `cargo xtask histories` runs longer ones (HISTORY_CLIENTS,
//! HISTORY_OPERATIONS and HISTORY_SEED size this test too).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use dynamodb_faithful::{Faults, Limits};
use order_service::store::StoreSettings;
use testkit::history::{self, Workload};
use testkit::{faithful_table, test_settings, FaithfulTable};

fn number(variable: &str, default: u64) -> u64 {
    std::env::var(variable)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn workload() -> Workload {
    let seed = number("HISTORY_SEED", fastrand::u64(..));
    eprintln!("history seed {seed} (HISTORY_SEED={seed} repeats its choices)");
    Workload {
        clients: number("HISTORY_CLIENTS", 8) as usize,
        operations_per_client: number("HISTORY_OPERATIONS", 30) as usize,
        users: 3,
        seed,
    }
}

/// A store that gives up on an attempt after 300 ms (the nemesis answers later), through the
/// proxy with transactions holding their items 10 ms longer and a partition limit that the
/// hottest products meet.
async fn troubled_store() -> FaithfulTable {
    let settings = StoreSettings {
        attempt_timeout: Duration::from_millis(300),
        max_sdk_attempts: 2,
        breaker_failure_threshold: 1_000,
        ..test_settings()
    };
    let faithful = faithful_table(&history::plan(3), settings).await;
    faithful.proxy.set_hold(Duration::from_millis(10));
    faithful.proxy.set_limits(Limits {
        write_units_per_second: 60.0,
        read_units_per_second: 180.0,
    });
    faithful
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_histories_are_linearizable_exactly_once_and_conserve_money_and_stock() {
    let faithful = troubled_store().await;
    let workload = workload();
    let (recorded, rearrangements) = history::with_rearrangements(
        &faithful.store,
        history::with_nemesis(
            &faithful.proxy,
            450,
            workload.seed,
            history::run(&faithful.store, workload),
        ),
    )
    .await;
    let verdict = history::check(&recorded);
    let summary = faithful.proxy.summary().total();
    eprintln!(
        "{} operations on {} orders ({} unchecked: search over budget), {} keys: {} \
         unknown outcomes, {} nothing done; {} rearrangements of sharded stock; proxy: {} \
         conflicts, {} throttled, {} injected",
        verdict.operations,
        verdict.orders,
        verdict.unchecked,
        verdict.keys,
        verdict.unknown,
        verdict.nothing_done,
        rearrangements,
        summary.conflicts,
        summary.throttled,
        summary.injected
    );
    assert!(verdict.is_clean(), "{:#?}", verdict.violations);
    assert!(
        verdict.unchecked < verdict.orders,
        "no order's history could be checked"
    );
    let audit = faithful.table.store.audit().await.unwrap();
    assert!(audit.is_clean(), "{:#?}", audit.violations);
    assert!(
        summary.conflicts + summary.injected > 0,
        "no transaction conflicted: the history proves little"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checker_catches_a_cancel_that_skips_its_status_condition() {
    // GIVEN the planted bug: updates of orders lose their status condition
    async fn planted() -> FaithfulTable {
        let faithful = troubled_store().await;
        faithful.proxy.update_faults(|faults| {
            *faults = Faults {
                strip_conditions_on: Some("ORDER#".to_owned()),
                ..Faults::default()
            }
        });
        faithful
    }
    // WHEN clients pay and cancel concurrently, some twice. The bug shows only when two of
    // them race on one order between its read and its write, so a round may miss it: run
    // rounds (fresh table, fresh seed) until one is caught, at most ROUNDS of them.
    const ROUNDS: usize = 8;
    let mut operations = 0;
    for round in 1..=ROUNDS {
        let faithful = planted().await;
        let recorded = history::run(&faithful.store, workload()).await;
        // THEN the history is not linearizable or money and stock are not conserved
        let verdict = history::check(&recorded);
        let audit = faithful.table.store.audit().await.unwrap();
        operations += verdict.operations;
        if !verdict.is_clean() || !audit.is_clean() {
            eprintln!(
                "caught in round {round}: {} history violations (first: {:?}), {} audit \
                 violations (first: {:?})",
                verdict.violations.len(),
                verdict.violations.first(),
                audit.violations.len(),
                audit.violations.first()
            );
            return;
        }
    }
    panic!("the planted bug went unnoticed over {ROUNDS} rounds, {operations} operations");
}
