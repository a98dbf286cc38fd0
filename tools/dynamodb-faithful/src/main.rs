//! The `dynamodb-faithful` command: the proxy in front of DynamoDB Local, its summary printed
//! on SIGUSR1 and on exit (SIGINT, SIGTERM), and its control endpoints under `/_faithful/`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Parser;
use dynamodb_faithful::{start, Limits, Settings};
use tokio::signal::unix::{signal, SignalKind};

/// A proxy in front of DynamoDB Local that behaves like production DynamoDB: transaction
/// conflicts, per-partition throughput limits and throttling, consumed capacity.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:8001")]
    listen: String,
    /// DynamoDB Local's endpoint.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    upstream: String,
    /// Write units one partition key value serves per second (production: 1,000). 0: unlimited.
    #[arg(long, default_value_t = Limits::PRODUCTION.write_units_per_second)]
    partition_wcu: f64,
    /// Read units one partition key value serves per second (production: 3,000). 0: unlimited.
    #[arg(long, default_value_t = Limits::PRODUCTION.read_units_per_second)]
    partition_rcu: f64,
    /// Extra milliseconds a transaction holds its items after its own work, to widen the
    /// conflict window in tests and drills.
    #[arg(long, default_value_t = 0)]
    hold_ms: u64,
    /// Also write the summary (JSON) to this file on SIGUSR1 and on exit.
    #[arg(long)]
    summary_file: Option<PathBuf>,
    /// Append one JSON line per conflict or throttle to this file.
    #[arg(long)]
    event_log: Option<PathBuf>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    let handle = start(Settings {
        listen: args.listen.clone(),
        upstream: args.upstream.clone(),
        limits: Limits {
            write_units_per_second: args.partition_wcu,
            read_units_per_second: args.partition_rcu,
        },
        hold: Duration::from_millis(args.hold_ms),
        event_log: args.event_log.clone(),
    })
    .await?;
    println!(
        "dynamodb-faithful on {} -> {} ({} WCU/s, {} RCU/s per partition, hold +{} ms); \
         stats: GET {}/_faithful/stats.txt",
        handle.endpoint(),
        args.upstream,
        args.partition_wcu,
        args.partition_rcu,
        args.hold_ms,
        handle.endpoint()
    );
    let report = |handle: &dynamodb_faithful::Handle| -> Result<()> {
        let summary = handle.summary();
        println!("{}", summary.render(10));
        if let Some(path) = &args.summary_file {
            std::fs::write(path, serde_json::to_vec_pretty(&summary)?)?;
        }
        Ok(())
    };
    let mut usr1 = signal(SignalKind::user_defined1())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    loop {
        tokio::select! {
            _ = usr1.recv() => report(&handle)?,
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    handle.stop();
    report(&handle)
}
