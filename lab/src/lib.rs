//! The ops lab: everything `cargo xtask` does, as a library of small parts.
//!
//! - **Install and run**: [`install`] finds k6, cargo-lambda and Java on PATH or puts what is
//!   missing into `.local/` (DynamoDB Local too); `gateway` builds the local gateway
//!   (cargo-lambda's patched `watch` server); `stack` runs DynamoDB Local and the five
//!   functions behind it; [`emulator`]
//!   deploys template.yaml to MiniStack; [`template`] writes the template's variants.
//! - **Data**: [`seed`] seeds (and wipes) a table with a `seed_plan`, [`audit`] audits one
//!   (local, emulated or a deployed stack found through `target`); [`stock`] shows, reshards
//!   and rebalances a product's stock shards.
//! - **Load and measurement**: [`loadtest`] runs the k6 scenarios and writes `report`s with
//!   `resources` (CPU/RSS per process); [`bench`] measures the store's limit beside the
//!   service's in one run; `overload` checks shedding; [`capacity`] measures the units each
//!   operation consumes and plans shards and cost for a traffic shape.
//! - **Faults and operations**: [`drill`] (one module per drill behind one `Scenario` trait)
//!   injects a fault under load, through the stack's `faithful` proxy where it needs one, and writes its incident
//!   report; [`monitor`] evaluates the template's alarms over the local logs; [`incidents`]
//!   computes MTTD/MTTR/MTBF from the incident log.
//! - **Checks**: [`ci`] is the whole test suite as CI runs it; [`invoke`] replays events/;
//!   [`histories`] checks concurrent histories (linearizability, exactly-once, conservation)
//!   at any size.
//!
//! xtask is the thin `clap` front over these entry points.

pub mod audit;
pub mod bench;
pub mod capacity;
pub mod ci;
mod client;
mod clock;
pub mod drill;
pub mod emulator;
mod faithful;
pub mod flash_sale;
mod gateway;
pub mod histories;
mod http;
pub mod incidents;
pub mod install;
pub mod invoke;
mod journeys;
mod k6;
pub mod loadtest;
pub mod monitor;
mod overload;
mod paths;
mod process;
mod report;
mod resources;
pub mod seed;
mod seed_plan;
pub mod stack;
mod state;
pub mod stock;
mod target;
pub mod template;
pub mod token;
