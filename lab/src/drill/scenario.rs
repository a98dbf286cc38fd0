//! The one trait every drill implements: its own preparation, the fault it injects, what it runs
//! after recovery, the alarms and checks it expects, and how the report describes it. The
//! runner (`runner.rs`) does everything the drills share and calls these steps in this order.

use anyhow::Result;
use order_service::domain::Order;

use crate::stack::StoreArgs;

use super::runner::Drill;
use super::Options;

/// The texts of the incident report that depend on the drill, with the measured numbers.
pub(super) struct Description {
    pub injects: String,
    pub root_cause: String,
    pub trigger: String,
    pub resolution: String,
}

/// One drill's steps. The runner calls `prepare` before the detector, the canary and the load
/// start; `inject` after the baseline; `after_recovery` once the service has recovered, before
/// the load stops; and, after the common checks, `verify` and `describe`.
pub(super) trait Scenario {
    /// How the stack's store behaves for the whole drill (production's limits by default).
    fn store(&self, _options: &Options) -> StoreArgs {
        StoreArgs::default()
    }

    /// The background load's rate, requests per second (`--rate` unless the drill needs
    /// another).
    fn load_rate(&self, options: &Options) -> u32 {
        options.rate
    }

    /// Drill-specific setup before the load.
    fn prepare(&mut self, _drill: &mut Drill) -> Result<()> {
        Ok(())
    }

    /// The fault window: injects the fault (`Drill::inject`, T0), observes it, and removes it
    /// (`Drill::mitigate`).
    fn inject(&mut self, drill: &mut Drill) -> Result<()>;

    /// Runs after recovery, with the load still running.
    fn after_recovery(&mut self, _drill: &mut Drill) -> Result<()> {
        Ok(())
    }

    /// The load's VU cap.
    fn load_max_vus(&self, options: &Options) -> u32 {
        options.max_vus
    }

    /// The alarms of which at least one must fire (empty: none of the error alarms may fire).
    fn expected_alarms(&self) -> &'static [&'static str];

    /// The drill's own checks, after the common ones; `orders` are the table's orders after
    /// the load.
    fn verify(&self, drill: &mut Drill, orders: &[Order]);

    /// Root cause, trigger and resolution texts, with the measured numbers.
    fn describe(&self, drill: &Drill) -> Description;
}
