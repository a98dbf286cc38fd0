//! `local-gateway`: the local stack's API gateway and Lambda runtime API emulator. It is
//! `cargo lambda watch` of cargo-lambda 1.9.2 with our patch (ops/upstream/cargo-lambda.md),
//! started the way cargo-lambda's own CLI starts it (its `run_watch` and `run_subcommand`),
//! without the rest of that CLI: building, deploying and the zig toolchain are not needed to
//! serve the functions, and building them took most of a first run.
//!
//! It takes exactly the options of `cargo lambda watch` (e.g. `--profile local
//! --ignore-changes --invoke-port 9000 --env-var KEY=VALUE`) and reads the same
//! `[package.metadata.lambda]` and `[workspace.metadata.lambda]` configuration, including the
//! router table.

use cargo_lambda_metadata::cargo::{load_metadata, watch::Watch};
use cargo_lambda_metadata::config::{load_config, Config, ConfigOptions, FunctionNames};
use clap::Parser;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Serves the workspace's Lambda functions behind an HTTP gateway on the invoke port.
#[derive(Parser)]
#[command(name = "local-gateway", version)]
struct Cli {
    #[command(flatten)]
    watch: Watch,
}

#[tokio::main]
async fn main() -> miette::Result<()> {
    let Cli { watch } = Cli::parse();

    // What cargo-lambda logs by default: its own lines at info, unless RUST_LOG says otherwise.
    let directive = std::env::var("RUST_LOG").unwrap_or_else(|_| "cargo_lambda=info".into());
    tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new(directive))
        .with(
            tracing_subscriber::fmt::layer()
                .with_target(false)
                .without_time()
                .with_ansi(false),
        )
        .with(cargo_lambda_watch::xray_layer(&watch))
        .init();

    let options = ConfigOptions {
        names: FunctionNames::new(watch.pkg_name(), watch.bin_name()),
        ..ConfigOptions::default()
    };
    let metadata = load_metadata(
        watch.manifest_path(),
        watch.cargo_opts.common.target_dir.as_deref(),
    )?;
    let arguments = Config {
        watch,
        ..Config::default()
    };
    let config = load_config(&arguments, &metadata, &options)?;
    cargo_lambda_watch::run(&config.watch, &config.env, &metadata, "never").await
}
