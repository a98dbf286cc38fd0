//! `cargo xtask`: the developer entry points. A thin `clap` front over the ops lab (`lab/`,
//! crate `ops-lab`), which installs what is missing into `.local/`, runs the local stack
//! (DynamoDB Local + the four functions behind the local gateway), seeds, audits, signs
//! development tokens, replays events, and runs the k6 scenarios, benchmarks and drills.

use ops_lab::{
    audit, bench, capacity, ci, drill, emulator, flash_sale, histories, incidents, install, invoke,
    loadtest, monitor, seed, stack, stock, template, token,
};

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Automation for the order service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install what the commands need into .local/ (idempotent): DynamoDB Local, and k6 and
    /// cargo-lambda unless fitting versions are on PATH, cargo-deny, Schemathesis.
    Install,
    /// The whole test suite, as CI runs it.
    Test(ci::Args),
    /// Start the local stack in the foreground; Ctrl-C stops everything it started.
    Up(stack::UpArgs),
    /// Stop a stack started with `up --detach`.
    Down,
    /// The main job: start the local stack, run a one-minute k6 load at 200 requests/s, write
    /// the report, stop the stack.
    Demo(loadtest::DemoArgs),
    /// Seed a table: the local stack's (recreated), one behind --endpoint, or a deployed
    /// --stack's (only when empty, or with --wipe).
    Seed(seed::SeedCommand),
    /// Check exact conservation of money and stock. Exit 0 clean, 1 a violation, 2 could not
    /// run.
    Audit(audit::AuditArgs),
    /// A product's stock shards: show them, reshard a live product, rebalance its units.
    Stock(stock::Args),
    /// Shards, units and monthly cost for a traffic shape (`--measure`: measure the units per
    /// operation again through dynamodb-faithful).
    Capacity(capacity::Args),
    /// One SKU sold past one stock item's write limit, sharded and not side by side, through
    /// dynamodb-faithful's scale model of production; optionally resharded and with a store
    /// outage during the sale. Prints the Per-SKU line and writes a report.
    FlashSale(flash_sale::Args),
    /// Print a development token for a user (for curl and k6).
    Token {
        /// The user the token is for, e.g. user-7.
        user: String,
    },
    /// Run a k6 scenario against the local stack (or --base-url) and write reports/<time>-<scenario>/.
    Loadtest(loadtest::Args),
    /// Measure the raw store limit and the whole service at the same concurrency.
    Bench(bench::Args),
    /// Send one saved API Gateway event from events/ to the running local stack.
    Invoke(invoke::Args),
    /// Run the service on the Docker-free MiniStack emulator from template.yaml.
    Emulator(emulator::Args),
    /// A terminal dashboard over the local logs that raises the template's alarms.
    Monitor(monitor::Args),
    /// Run a fault drill under load and write its incident report.
    Drill(drill::Args),
    /// Schemathesis against the running local stack (raise --max-examples for a long run).
    Fuzz(ci::FuzzArgs),
    /// Check concurrent histories through production's failures: linearizable orders,
    /// exactly-once keys, conserved money and stock (the test suite runs a small one).
    Histories(histories::Args),
    /// MTTD / MTTR / MTBF and their trend from the incident log.
    Incidents(incidents::Args),
    /// Write a variant of template.yaml: the REST API of LocalStack and `sam local`, the
    /// MiniStack one, or Lambda Managed Instances (a stack of its own).
    Template(template::Args),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Install => install::install_all().map(|_| ()),
        Command::Test(args) => ci::run_suite(&args),
        Command::Up(args) => stack::up(&args),
        Command::Down => stack::down(),
        Command::Demo(args) => loadtest::demo(&args),
        Command::Seed(args) => seed::seed_command(&args),
        Command::Audit(args) => std::process::exit(audit::audit_command(&args)),
        Command::Token { user } => token::token_command(&user),
        Command::Stock(args) => stock::run(&args),
        Command::Capacity(args) => capacity::run(&args),
        Command::FlashSale(args) => flash_sale::run(&args),
        Command::Loadtest(args) => loadtest::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Invoke(args) => invoke::run(&args),
        Command::Emulator(args) => emulator::run(&args),
        Command::Monitor(args) => monitor::run(&args),
        Command::Drill(args) => drill::run(&args),
        Command::Histories(args) => histories::run(&args),
        Command::Incidents(args) => incidents::run(&args),
        Command::Fuzz(args) => ci::fuzz(&args),
        Command::Template(args) => template::run(&args),
    }
}
