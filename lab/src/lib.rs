//! The ops lab: everything `cargo xtask` does, as a library of small parts. Every module
//! below is a file (or a file and a folder of the same name) in `lab/src/`.
//!
//! - **Install and run**: [`install`] finds k6, cargo-lambda and Java on PATH or puts what is
//!   missing into `.local/` (DynamoDB Local too); `gateway` builds the local gateway
//!   (cargo-lambda's patched `watch` server); [`stack`] runs DynamoDB Local, the store proxy
//!   and the five functions behind it, and records them in `state` (`.local/stack.json`);
//!   [`emulator`] deploys template.yaml to MiniStack; [`template`] writes the template's
//!   variants.
//! - **Data**: [`seed`] seeds (and wipes) a table with a `seed_plan`, [`audit`] audits one
//!   (local, emulated or a deployed stack found through `target`); [`stock`] shows, reshards
//!   and rebalances a product's stock shards; [`token`] signs development tokens.
//! - **Load and measurement**: [`loadtest`] runs the k6 scenarios (warm-up, seed sizing, the
//!   k6 command) with `resources` sampling CPU/RSS per process; [`bench`] measures the store's
//!   limit (`journeys` straight through the store crate) beside the service's in one run;
//!   `overload` checks shedding; [`capacity`] measures the units each operation consumes and
//!   plans shards and cost for a traffic shape; [`flash_sale`] sells one SKU sharded and not.
//! - **Faults and operations**: [`drill`] (one module per drill behind one `Scenario` trait)
//!   injects a fault under load, through the stack's `faithful` proxy where it needs one;
//!   [`monitor`] evaluates the template's alarms over the local logs; `k6` runs a scenario in
//!   the background for them.
//! - **Checks**: [`ci`] is the whole test suite as CI runs it; [`invoke`] replays events/;
//!   [`histories`] checks concurrent histories (linearizability, exactly-once, conservation)
//!   at any size.
//! - **Shared parts** (leaves many modules use): `paths` (where things are), `process`
//!   (running commands, signals, the process table), `clock` (now and every text form of an
//!   instant), `client` (the runtime and the store client), `http` (the one HTTP client and
//!   its answer type), `state`.
//!
//! **The reports**, one guess each:
//! - the k6 load-test report (`reports/<time>-<scenario>/report.md`): `loadtest/report.rs`,
//!   its "what the store refused" section in `loadtest/report/store.rs`;
//! - a drill's incident report (`reports/<time>-drill-<name>/incident.md`) and its line in
//!   `reports/incidents.jsonl`: `drill/incident_report.rs`;
//! - the MTTD/MTTR/MTBF table over that log (`cargo xtask incidents`): [`incidents`];
//! - the benchmark's table (`reports/<time>-bench/bench.md`): [`bench`]; the flash sale's
//!   comparison: [`flash_sale`].
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
mod resources;
pub mod seed;
mod seed_plan;
pub mod stack;
mod state;
pub mod stock;
mod target;
pub mod template;
pub mod token;
