//! The audit of a table (exact conservation of money and stock, `order_service`'s ledger) on
//! the running local stack, behind an endpoint or in a deployed stack, and `cargo xtask
//! audit` with exit codes a runbook can tell apart.

use anyhow::Result;
use order_service::store::AuditReport;

use crate::client::{runtime, store_failure, store_for};
use crate::target::{Target, TargetArgs};

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
