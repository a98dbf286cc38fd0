//! `cargo xtask bench`: how close the service gets to the store's own limit. In one run it
//! measures (a) the raw limit: the DynamoDB operations of a create -> pay -> get journey issued
//! directly through the store crate at rising concurrency until throughput stops growing, and
//! (b) the whole service (HTTP, cargo lambda watch's runtime API, the functions) driven by k6
//! at the same concurrencies; then prints both, their ratio, cold starts, binary sizes and
//! RSS per function, and writes the table to `reports/<time>-bench/bench.md`.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use order_service::app::FUNCTIONS;

use crate::loadtest::{self, Scenario};
use crate::seed;
use crate::seed_plan::SeedArgs;
use crate::stack;
use crate::state::{self, StackState};
use crate::{journeys, paths, resources};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Concurrency levels to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16,32")]
    pub concurrency: Vec<u32>,
    /// Seconds per level.
    #[arg(long, default_value_t = 15)]
    pub seconds: u64,
    /// Also build the deployed bootstraps (`cargo lambda build --release`, the LTO profile:
    /// minutes) and report their unzipped and zipped sizes and init durations.
    #[arg(long)]
    pub bootstraps: bool,
    /// Only the bootstraps: no stack, no load.
    #[arg(long)]
    pub bootstraps_only: bool,
}

#[derive(Debug, Clone, Copy, Default)]
struct Level {
    concurrency: u32,
    raw_ops_per_second: f64,
    raw_journey_p95_ms: f64,
    service_requests_per_second: f64,
    service_p95_ms: f64,
    service_errors: f64,
    /// CPU milliseconds per API request: the four functions together, and the local gateway.
    functions_cpu_ms: f64,
    gateway_cpu_ms: f64,
}

fn bench_seed() -> SeedArgs {
    SeedArgs {
        users: 1_000,
        products: 100,
        balance: 1_000_000_000,
        stock: 1_000_000,
        flash_stock: 50,
    }
}

/// One closed-loop level through the whole service: (requests/s, p95 ms, failed requests,
/// functions' CPU ms per request, gateway CPU ms per request).
fn service_level(concurrency: u32, seconds: u64, keyed: bool) -> Result<(f64, f64, f64, f64, f64)> {
    let outcome = loadtest::run_scenario(&loadtest::Args {
        scenario: Scenario::Bench,
        rate: None,
        duration: Some(format!("{seconds}s")),
        base_url: None,
        remote: crate::target::RemoteArgs::default(),
        profile: None,
        extra_env: vec![
            ("VUS".to_owned(), concurrency.to_string()),
            ("CANCEL_EVERY".to_owned(), "0".to_owned()),
            ("LIST_EVERY".to_owned(), "0".to_owned()),
            ("IDEMPOTENCY".to_owned(), u8::from(keyed).to_string()),
        ],
        keep_stack: true,
        seed: Some(bench_seed()),
    })?;
    let value = |key: &str, field: &str| {
        crate::k6::summary_value(&outcome.summary, key, field).unwrap_or(0.0)
    };
    let requests = value("http_reqs", "count");
    let run = loadtest_run_seconds(&outcome.summary).max(1.0);
    let cpu_ms_per_request = |groups: &[&str]| {
        let seconds: f64 = outcome.resources.as_ref().map_or(0.0, |usage| {
            groups
                .iter()
                .filter_map(|group| usage.groups.get(*group))
                .map(|group| group.cpu_seconds)
                .sum()
        });
        seconds * 1_000.0 / requests.max(1.0)
    };
    Ok((
        requests / run,
        value("http_req_duration", "p(95)"),
        value("http_req_failed", "passes"),
        cpu_ms_per_request(&FUNCTIONS),
        cpu_ms_per_request(&[crate::gateway::BINARY]),
    ))
}

fn loadtest_run_seconds(summary: &serde_json::Value) -> f64 {
    loadtest::report::run_seconds(summary)
}

/// Lambda's "Init Duration" for one function: the time from starting its binary until it
/// first asks the runtime API for an invocation (`GET .../runtime/invocation/next`), measured
/// with a listener that plays the runtime API. Returns the median of `runs` starts, in ms.
fn init_duration(
    binary: &std::path::Path,
    env: &[(String, String)],
    function: &str,
    runs: usize,
) -> Result<f64> {
    use std::io::Read;
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let started = Instant::now();
        let mut child = Command::new(binary)
            .envs(
                env.iter()
                    .map(|(key, value)| (key.as_str(), value.as_str())),
            )
            .env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}"))
            .env("AWS_LAMBDA_FUNCTION_NAME", function)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let (mut connection, _) = listener.accept()?;
        let mut request = [0_u8; 256];
        let read = connection.read(&mut request)?;
        let elapsed = started.elapsed().as_secs_f64() * 1_000.0;
        let _ = child.kill();
        let _ = child.wait();
        if !String::from_utf8_lossy(&request[..read]).contains("/runtime/invocation/next") {
            bail!("{function} did not ask for an invocation first");
        }
        samples.push(elapsed);
    }
    samples.sort_by(f64::total_cmp);
    Ok(samples[samples.len() / 2])
}

/// The architecture an ELF binary is built for, from its header.
fn elf_architecture(path: &std::path::Path) -> Option<&'static str> {
    let bytes = std::fs::read(path).ok()?;
    match bytes.get(18..20)? {
        [0x3e, 0x00] => Some("x86_64"),
        [0xb7, 0x00] => Some("arm64"),
        _ => Some("other"),
    }
}

/// (function, host release binary bytes, cargo lambda bootstrap bytes and architecture).
type BinarySizes = Vec<(String, u64, Option<(u64, &'static str)>)>;

fn binary_sizes() -> BinarySizes {
    FUNCTIONS
        .iter()
        .map(|function| {
            let host =
                std::fs::metadata(paths::function_binary(function)).map_or(0, |meta| meta.len());
            let bootstrap = paths::root()
                .join("target/lambda")
                .join(function)
                .join("bootstrap");
            let built = std::fs::metadata(&bootstrap)
                .ok()
                .map(|meta| (meta.len(), elf_architecture(&bootstrap).unwrap_or("?")));
            ((*function).to_owned(), host, built)
        })
        .collect()
}

pub fn run(args: &Args) -> Result<()> {
    // The raw side runs the optimised store crate: `cargo xtask` builds in the `local`
    // profile, where only the xtask's own crates are unoptimised.
    if args.bootstraps_only {
        return print_table(&bootstraps_section()?);
    }
    let (state, started) = loadtest::ensure_stack(&bench_seed())?;
    let result = measure(args, &state);
    if started {
        let latest = state::read_state().unwrap_or(state);
        stack::stop(&latest);
    }
    result
}

fn measure(args: &Args, state: &StackState) -> Result<()> {
    let mut levels: Vec<Level> = Vec::new();
    // DynamoDB Local is a JVM: the first seconds of load run interpreted code. Warm it up
    // (and the functions' connections) before anything is recorded.
    seed::reset_and_seed(&state.dynamodb_endpoint, &state.table, &bench_seed())?;
    journeys::raw_level(state, &state.dynamodb_endpoint, 4, 5, false)?;
    service_level(4, 5, false)?;
    eprintln!(
        "serving: {} instance(s) x {} concurrent invocations per function, queue {}",
        state.concurrency, state.max_concurrency, state.queue_depth
    );
    let mut best_raw = 0.0_f64;
    let mut flat_levels = 0;
    for &concurrency in &args.concurrency {
        seed::reset_and_seed(&state.dynamodb_endpoint, &state.table, &bench_seed())?;
        let (raw, raw_p95) = journeys::raw_level(
            state,
            &state.dynamodb_endpoint,
            concurrency,
            args.seconds,
            false,
        )?;
        eprintln!("raw      c={concurrency:>3}: {raw:>8.1} ops/s, journey p95 {raw_p95:.1} ms");
        let (service, p95, errors, functions_cpu_ms, gateway_cpu_ms) =
            service_level(concurrency, args.seconds, false)?;
        eprintln!(
            "service  c={concurrency:>3}: {service:>8.1} req/s, p95 {p95:.1} ms, errors {errors:.0}, \
             CPU per request: functions {functions_cpu_ms:.3} ms, gateway {gateway_cpu_ms:.3} ms"
        );
        levels.push(Level {
            concurrency,
            raw_ops_per_second: raw,
            raw_journey_p95_ms: raw_p95,
            service_requests_per_second: service,
            service_p95_ms: p95,
            service_errors: errors,
            functions_cpu_ms,
            gateway_cpu_ms,
        });
        // Throughput has stopped growing when two levels in a row add less than 5%.
        if raw > best_raw * 1.05 {
            flat_levels = 0;
        } else {
            flat_levels += 1;
        }
        best_raw = best_raw.max(raw);
        if flat_levels >= 2 {
            eprintln!("raw throughput stopped growing at c={concurrency}");
            break;
        }
    }
    // What Idempotency-Keys cost: the same journeys with keys, at the concurrency where the
    // raw side peaked (a claim PutItem per keyed request, and the answer in its transaction).
    let peak = levels
        .iter()
        .max_by(|a, b| a.raw_ops_per_second.total_cmp(&b.raw_ops_per_second))
        .copied()
        .unwrap_or_default();
    seed::reset_and_seed(&state.dynamodb_endpoint, &state.table, &bench_seed())?;
    let (keyed_raw, keyed_raw_p95) = journeys::raw_level(
        state,
        &state.dynamodb_endpoint,
        peak.concurrency,
        args.seconds,
        true,
    )?;
    let (keyed_service, keyed_p95, keyed_errors, keyed_cpu, _) =
        service_level(peak.concurrency, args.seconds, true)?;
    eprintln!(
        "keyed    c={}: raw {keyed_raw:.1} ops/s, service {keyed_service:.1} req/s, p95 {keyed_p95:.1} ms, errors {keyed_errors:.0}",
        peak.concurrency
    );
    // What dynamodb-faithful costs: the same raw journeys straight to DynamoDB Local and
    // through the proxy the functions reach, back to back at the raw peak (on a fresh seed).
    let faithful_cost = match state.faithful_endpoint() {
        Some(faithful) => {
            seed::reset_and_seed(&state.dynamodb_endpoint, &state.table, &bench_seed())?;
            let (direct, direct_p95) = journeys::raw_level(
                state,
                &state.dynamodb_endpoint,
                peak.concurrency,
                args.seconds,
                false,
            )?;
            let (through, through_p95) =
                journeys::raw_level(state, faithful, peak.concurrency, args.seconds, false)?;
            eprintln!(
                "faithful c={}: direct {direct:.1} ops/s, through dynamodb-faithful {through:.1} ops/s",
                peak.concurrency
            );
            Some((direct, direct_p95, through, through_p95))
        }
        None => None,
    };
    let latest = state::read_state().unwrap_or_else(|| state.clone());
    let sampler = resources::ResourceSampler::start(&latest, Duration::from_secs(1));
    std::thread::sleep(Duration::from_secs(2));
    let usage = sampler.finish();
    let env = stack::function_env(
        latest.functions_store(),
        &latest.table,
        &latest.jwt_secret,
        0.0,
    );
    let colds: Vec<(String, f64)> = FUNCTIONS
        .iter()
        .map(|function| {
            let binary = paths::function_binary(function);
            Ok((
                (*function).to_owned(),
                init_duration(&binary, &env, function, 5)?,
            ))
        })
        .collect::<Result<_>>()?;
    let best_service = levels
        .iter()
        .map(|level| level.service_requests_per_second)
        .fold(0.0, f64::max);

    let mut table = String::from("# Bench: the service against the store's own limit\n\n");
    table.push_str("Raw: create -> pay -> get through the store crate (3 DynamoDB-level operations per journey, release build). Service: the same journey through HTTP, cargo lambda watch and the functions, driven by k6 with the same number of closed-loop virtual users.\n\n");
    table.push_str("| concurrency | raw ops/s | raw journey p95 ms | service req/s | service p95 ms | service errors | service / raw | functions CPU ms/req | gateway CPU ms/req |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for level in &levels {
        table.push_str(&format!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} | {:.2} | {:.3} | {:.3} |\n",
            level.concurrency,
            level.raw_ops_per_second,
            level.raw_journey_p95_ms,
            level.service_requests_per_second,
            level.service_p95_ms,
            level.service_errors,
            level.service_requests_per_second / level.raw_ops_per_second.max(f64::EPSILON),
            level.functions_cpu_ms,
            level.gateway_cpu_ms,
        ));
    }
    table.push_str(&format!(
        "\n**Peak: raw {best_raw:.1} ops/s, service {best_service:.1} req/s, ratio {:.2}.** The local stack runs {} instance(s) per function, {} concurrent invocations each, queue {}. CPU per request is user + system time of the processes over the level divided by its requests.\n\n",
        best_service / best_raw.max(f64::EPSILON),
        state.concurrency,
        state.max_concurrency,
        state.queue_depth
    ));
    table.push_str(&format!(
        "## What Idempotency-Keys cost\n\nThe same journeys with an Idempotency-Key on every create and payment (a claim `PutItem` per keyed request, and its answer written inside the request's own transaction), at c={}, the raw side's peak.\n\n| | raw ops/s | raw journey p95 ms | service req/s | service p95 ms | service errors | functions CPU ms/req |\n|---|---:|---:|---:|---:|---:|---:|\n| without keys | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} | {:.3} |\n| with keys | {keyed_raw:.1} | {keyed_raw_p95:.1} | {keyed_service:.1} | {keyed_p95:.1} | {keyed_errors:.0} | {keyed_cpu:.3} |\n| keyed / unkeyed | {:.2} | | {:.2} | | | |\n\n",
        peak.concurrency,
        peak.raw_ops_per_second,
        peak.raw_journey_p95_ms,
        peak.service_requests_per_second,
        peak.service_p95_ms,
        peak.service_errors,
        peak.functions_cpu_ms,
        keyed_raw / peak.raw_ops_per_second.max(f64::EPSILON),
        keyed_service / peak.service_requests_per_second.max(f64::EPSILON),
    ));
    match faithful_cost {
        Some((direct, direct_p95, through, through_p95)) => table.push_str(&format!(
            "## What dynamodb-faithful costs\n\nThe service reaches DynamoDB Local through dynamodb-faithful (production's conflicts, partition limits and throttling). The raw journeys at c={}, straight to DynamoDB Local and then through the proxy, back to back:\n\n| | raw ops/s | raw journey p95 ms |\n|---|---:|---:|\n| DynamoDB Local | {direct:.1} | {direct_p95:.1} |\n| through dynamodb-faithful | {through:.1} | {through_p95:.1} |\n| through / direct | {:.2} | {:.2} |\n\nThe service columns above already pay this cost; the raw columns do not.\n\n",
            peak.concurrency,
            through / direct.max(f64::EPSILON),
            through_p95 / direct_p95.max(f64::EPSILON),
        )),
        None => table.push_str("## What dynamodb-faithful costs\n\nNot measured: the stack runs with `--store direct`.\n\n"),
    }
    table.push_str("## Cold start\n\nInit duration as Lambda reports it: from starting the binary to its first request for an invocation (SDK client, configuration, authenticator built), median of 5 starts.\n\n| function | init ms |\n|---|---:|\n");
    for (function, init) in &colds {
        table.push_str(&format!("| {function} | {init:.1} |\n"));
    }
    table.push_str("\n## Binaries and memory\n\n| function | release binary (x86_64) bytes | cargo lambda bootstrap bytes (arch) | RSS MiB (all instances) |\n|---|---:|---:|---:|\n");
    for (function, host, built) in binary_sizes() {
        let rss = usage
            .groups
            .get(&function)
            .map_or(0.0, |group| group.rss_end_mb);
        table.push_str(&format!(
            "| {function} | {host} | {} | {rss:.1} |\n",
            built.map_or(
                "not built (cargo lambda build --release --arm64)".to_owned(),
                |(size, arch)| format!("{size} ({arch})")
            )
        ));
    }
    if let Some(usage) = usage.groups.get("dynamodb-local") {
        table.push_str(&format!(
            "\nDynamoDB Local RSS: {:.0} MiB.\n",
            usage.rss_end_mb
        ));
    }
    if args.bootstraps {
        table.push_str(&bootstraps_section()?);
    }
    print_table(&table)
}

fn print_table(table: &str) -> Result<()> {
    let dir = paths::reports().join(format!("{}-bench", crate::clock::utc_stamp()));
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("bench.md"), table)?;
    println!("{table}");
    println!("Written to {}", dir.join("bench.md").display());
    Ok(())
}

/// The bytes of `path` zipped as Lambda receives it (`zip -9`, the bootstrap alone).
fn zipped_size(path: &std::path::Path) -> Result<u64> {
    let archive = std::env::temp_dir().join(format!("bootstrap-{}.zip", std::process::id()));
    let _ = std::fs::remove_file(&archive);
    crate::process::run(
        Command::new("zip")
            .args(["-q", "-9", "-j"])
            .arg(&archive)
            .arg(path),
    )?;
    let size = std::fs::metadata(&archive)?.len();
    let _ = std::fs::remove_file(&archive);
    Ok(size)
}

/// Builds the deployed bootstraps (the `release` profile: fat LTO, one codegen unit, strip)
/// for x86_64, measures their init duration here, then for arm64 (what the template deploys),
/// and reports unzipped and zipped bytes of each.
fn bootstraps_section() -> Result<String> {
    let bootstrap = |function: &str| {
        paths::root()
            .join("target/lambda")
            .join(function)
            .join("bootstrap")
    };
    // Init does not contact the store (the SDK client connects on first use): any endpoint does.
    let env = stack::function_env(
        "http://127.0.0.1:9",
        "init-only",
        "x".repeat(48).as_str(),
        0.0,
    );
    let mut rows: Vec<(String, String, u64, u64, Option<f64>)> = Vec::new();
    // arm64 first: it is what the template deploys, and its size is what the profile is for.
    for (flag, architecture) in [("--arm64", "arm64"), ("--x86-64", "x86_64")] {
        let started = Instant::now();
        crate::emulator::cargo_lambda_build(flag, "release")?;
        eprintln!(
            "cargo lambda build --release {flag}: {:.0} s",
            started.elapsed().as_secs_f64()
        );
        for function in FUNCTIONS {
            let path = bootstrap(function);
            let init = if architecture == "x86_64" {
                Some(init_duration(&path, &env, function, 5)?)
            } else {
                None
            };
            let (unzipped, zipped) = (std::fs::metadata(&path)?.len(), zipped_size(&path)?);
            eprintln!(
                "{function} {architecture}: {unzipped} bytes, zipped {zipped}, init {init:?} ms"
            );
            rows.push((
                function.to_owned(),
                architecture.to_owned(),
                unzipped,
                zipped,
                init,
            ));
        }
    }
    let mut section = String::from("## Deployed bootstraps\n\n`cargo lambda build --release` (profile `release`: fat LTO, one codegen unit, stripped, `opt-level = \"s\"`, panics unwind). Init duration measured here for the x86_64 build (median of 5 starts); the arm64 build cannot run on this machine.\n\n| function | arch | unzipped bytes | unzipped MB | zipped bytes | init ms |\n|---|---|---:|---:|---:|---:|\n");
    for (function, architecture, unzipped, zipped, init) in rows {
        section.push_str(&format!(
            "| {function} | {architecture} | {unzipped} | {:.2} | {zipped} | {} |\n",
            unzipped as f64 / 1e6,
            init.map_or("-".to_owned(), |ms| format!("{ms:.1}"))
        ));
    }
    Ok(section)
}
