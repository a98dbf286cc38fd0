//! `cargo xtask test`: the whole test suite, as CI runs it (`.ci/run`). Installs what is
//! missing, then runs each step in order, reports each with its time, and ends with one
//! "N passed, N failed" line. Any failed step fails the run.

use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::install::{self, run};
use crate::loadtest::{self, Scenario};
use crate::{paths, stack};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Skip the steps that start the local stack or the emulator (quick inner loop).
    #[arg(long)]
    pub quick: bool,
    /// Run only the steps whose name contains one of these words (e.g. `--only smoke,overload`);
    /// the install step always runs.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
}

fn cargo(arguments: &[&str]) -> Result<()> {
    run(Command::new("cargo")
        .args(arguments)
        .current_dir(paths::root()))
}

/// The directory cargo-deny expects for the default RustSec URL under `db-path`.
const ADVISORY_DB_DIR: &str = "advisory-db-3157b0e258782691";

/// The variable naming a RustSec snapshot to check against offline instead of fetching the
/// current advisory database (this project's CI sets it: its machines cannot reach GitHub).
pub(crate) const ADVISORY_DB_VARIABLE: &str = "ORDER_SERVICE_ADVISORY_DB";

/// Runs `cargo deny check`: against the current RustSec database, fetched into
/// `.local/advisory-dbs` (the default), or offline against the snapshot that
/// `ORDER_SERVICE_ADVISORY_DB` names.
pub(crate) fn cargo_deny() -> Result<()> {
    let target = paths::local().join("advisory-dbs").join(ADVISORY_DB_DIR);
    let marker = target.join(".snapshot");
    let snapshot = std::env::var_os(ADVISORY_DB_VARIABLE).filter(|value| !value.is_empty());
    let Some(snapshot) = snapshot else {
        // A snapshot copied by an offline run is no clone of the real database: start over.
        if marker.exists() {
            std::fs::remove_dir_all(&target)?;
        }
        return run(Command::new(paths::venv_bin("cargo-deny"))
            .args(["check", "advisories", "licenses", "bans", "sources"])
            .current_dir(paths::root()))
        .with_context(|| {
            format!(
                "(without access to github.com, set {ADVISORY_DB_VARIABLE} to a RustSec \
                 snapshot to check offline)"
            )
        });
    };
    let snapshot = paths::root().join(snapshot);
    if !snapshot.join("crates").is_dir() {
        bail!(
            "{ADVISORY_DB_VARIABLE} names no RustSec snapshot (no crates/ in {})",
            snapshot.display()
        );
    }
    let wanted = std::fs::read_to_string(snapshot.join("SNAPSHOT")).unwrap_or_default();
    if std::fs::read_to_string(&marker).ok().as_deref() != Some(wanted.as_str()) {
        let _ = std::fs::remove_dir_all(&target);
        std::fs::create_dir_all(target.parent().unwrap_or(&target))?;
        run(Command::new("cp").arg("-r").arg(&snapshot).arg(&target))?;
        run(Command::new("git")
            .args(["init", "-q"])
            .current_dir(&target))?;
        run(Command::new("git").args(["add", "-A"]).current_dir(&target))?;
        run(Command::new("git")
            .args([
                "-c",
                "user.name=xtask",
                "-c",
                "user.email=xtask@localhost",
                "commit",
                "-q",
                "-m",
                "RustSec snapshot",
            ])
            .current_dir(&target))?;
        std::fs::write(&marker, wanted)?;
    }
    cargo(&["fetch", "--quiet"])?;
    run(Command::new(paths::venv_bin("cargo-deny"))
        .args([
            "--offline",
            "check",
            "advisories",
            "licenses",
            "bans",
            "sources",
        ])
        .current_dir(paths::root()))
}

fn k6_inspect_all() -> Result<()> {
    for scenario in ["smoke", "load", "soak", "stress", "spike", "flash-sale"] {
        let output = Command::new(crate::install::k6())
            .args(["inspect", &format!("k6/{scenario}.js")])
            .current_dir(paths::root())
            .env("K6_NO_USAGE_REPORT", "true")
            .output()?;
        if !output.status.success() {
            bail!(
                "k6 inspect k6/{scenario}.js failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
    Ok(())
}

/// A short scenario run with its correctness thresholds (zero unexpected errors, exact
/// flash-sale counts, the audit). Its latency bound is raised to 1 s: tests do not assert
/// wall-clock times on a shared two-core CI machine; latency is what `loadtest` and `bench`
/// measure and report.
fn smoke(scenario: Scenario, keep_stack: bool) -> Result<()> {
    let passed = loadtest::run_with_verdict(&loadtest::Args {
        scenario,
        rate: None,
        duration: None,
        base_url: None,
        remote: crate::target::RemoteArgs::default(),
        // Correctness only (errors, exact stock, audit): latency belongs to the benchmarks, and
        // a cold JVM on a busy 2-core machine can take seconds. The bound is Lambda's timeout,
        // so only a hang fails it.
        extra_env: vec![("P95_MS".to_owned(), "10000".to_owned())],
        keep_stack,
        seed: None,
    })?;
    if !passed {
        bail!("the {} run failed (see its verdict above)", scenario.name());
    }
    Ok(())
}

/// Every saved event against the running local stack, on a freshly seeded table, each
/// checked against its expected status and code.
fn replay_events() -> Result<()> {
    let state = stack::require_state()?;
    crate::data::reset_and_seed(
        &state.dynamodb_endpoint,
        &state.table,
        &crate::loadtest::seed_for(0.0),
    )?;
    run(Command::new("cargo")
        .args(["xtask"])
        .args(["invoke", "--all"])
        .current_dir(paths::root()))
}

#[derive(clap::Args, Debug, Clone)]
pub struct FuzzArgs {
    /// Examples per operation and phase (the CI run uses the default; raise it for a long run).
    #[arg(long, default_value_t = 30)]
    pub max_examples: u32,
    /// The port of the local stack to fuzz.
    #[arg(long, default_value_t = stack::DEFAULT_PORT)]
    pub port: u16,
}

/// Schemathesis against the running local stack, from openapi.yaml: examples, coverage,
/// fuzzing and stateful (create -> pay/get/cancel links) phases, every check (no 5xx,
/// conformance of status, content type, headers and bodies), deterministic generation.
pub fn fuzz(args: &FuzzArgs) -> Result<()> {
    let state = stack::read_state_at(args.port).ok_or_else(|| {
        anyhow::anyhow!(
            "no local stack on port {}: start it with `cargo xtask up`",
            args.port
        )
    })?;
    let token = crate::data::sign(&state.jwt_secret, "user-1")?;
    run(Command::new(paths::venv_bin("st"))
        .args([
            "run",
            "openapi.yaml",
            "--checks",
            "all",
            "--generation-deterministic",
        ])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--max-examples", &args.max_examples.to_string()])
        .args(["--workers", "1"])
        // Cases whose failure belongs to the local emulator or to state a schema cannot
        // express are excluded here and in ops/schemathesis_hooks.py, each with its reason:
        // positive_data_acceptance (a cursor the service did not issue, an unknown product, a
        // quantity of 41.0 are schema-valid but refused by design), unsupported_method
        // (`cargo lambda watch` answers unknown methods 404; API Gateway answers 403).
        .args([
            "--exclude-checks",
            "positive_data_acceptance,unsupported_method",
        ])
        .env("SCHEMATHESIS_HOOKS", "ops.schemathesis_hooks")
        .env("PYTHONPATH", paths::root())
        .env("BASE_URL", &state.base_url)
        .env("API_TOKEN", token)
        .current_dir(paths::root()))
}

/// The emulator tools' venv (cfn-lint, aws-sam-translator, pinned in
/// localstack/requirements-emulator.txt), installed when missing.
fn emulator_venv() -> Result<std::path::PathBuf> {
    let venv = paths::local().join("emulator-venv");
    if !venv.join("bin/cfn-lint").is_file() {
        run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
        run(Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(paths::root().join("localstack/requirements-emulator.txt")))?;
    }
    Ok(venv)
}

/// cfn-lint over template.yaml, from the emulator tools' venv.
fn cfn_lint() -> Result<()> {
    let venv = emulator_venv()?;
    run(Command::new(venv.join("bin/cfn-lint"))
        .arg("template.yaml")
        .current_dir(paths::root()))
}

/// The Lambda Managed Instances variant, as `cargo xtask template --managed-instances` writes
/// it: through aws-sam-translator (which rejects templates cfn-lint passes, such as a
/// conditional CapacityProviderConfig), its CloudFormation checked (every function on the
/// capacity provider, at 2048 MB, unreserved), then cfn-lint. Offline, a few seconds.
fn managed_instances_variant() -> Result<()> {
    let venv = emulator_venv()?;
    let variant = crate::template::default_out();
    let max_concurrency = stack::DEFAULT_MAX_CONCURRENCY;
    crate::template::write_managed_instances(max_concurrency, &variant)?;
    let translated = variant.with_extension("json");
    run(Command::new(venv.join("bin/python"))
        .arg("localstack/sam_translate.py")
        .arg(&variant)
        .arg("--out")
        .arg(&translated)
        // The network a deployment must name (the variant has no defaults for it).
        .arg("ManagedInstancesSubnetIds=subnet-0123456789abcdef0,subnet-0fedcba9876543210")
        .arg("ManagedInstancesSecurityGroupIds=sg-0123456789abcdef0")
        .current_dir(paths::root()))?;
    let translated: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&translated)?)?;
    crate::template::check_translated(&translated, max_concurrency)?;
    run(Command::new(venv.join("bin/cfn-lint"))
        .arg(&variant)
        .current_dir(paths::root()))
}

/// The arm64 cross-build: `cargo lambda build --arm64`, one bootstrap per function, in the
/// fast `local` profile (the deploy profile's LTO would add minutes to every run; `cargo
/// xtask bench --bootstraps` measures the deployed ones).
fn arm64_bootstraps() -> Result<()> {
    crate::emulator::cargo_lambda_build("--arm64", crate::paths::FUNCTION_PROFILE)?;
    for function in stack::FUNCTIONS {
        let bootstrap = paths::root()
            .join("target/lambda")
            .join(function)
            .join("bootstrap");
        let bytes = std::fs::read(&bootstrap)?;
        // e_machine 0xB7 is AArch64.
        if bytes.get(18..20) != Some(&[0xb7, 0x00]) {
            bail!("{} is not an arm64 binary", bootstrap.display());
        }
        eprintln!("  {function}: {} bytes (arm64)", bytes.len());
    }
    Ok(())
}

/// The same template.yaml deployed to MiniStack, exercised through its API Gateway.
fn emulator_test() -> Result<()> {
    run(Command::new("cargo")
        .args(["xtask"])
        // Correctness only, as in the local smoke: a hang fails it, a slow machine does not.
        .args(["emulator", "test", "--from-release", "--p95-ms", "10000"])
        .current_dir(paths::root()))
}

pub fn run_suite(args: &Args) -> Result<()> {
    type Step = (&'static str, Box<dyn Fn() -> Result<()>>);
    let mut steps: Vec<Step> = vec![
        ("install", Box::new(|| install::install_all().map(|_| ()))),
        (
            "cargo fmt --check",
            Box::new(|| cargo(&["fmt", "--all", "--check"])),
        ),
        (
            "cargo clippy --all-targets -D warnings",
            Box::new(|| {
                cargo(&[
                    "clippy",
                    "--workspace",
                    "--all-targets",
                    "--quiet",
                    "--",
                    "-D",
                    "warnings",
                ])
            }),
        ),
        (
            "cargo test (unit, handler, store, contract)",
            Box::new(|| cargo(&["test", "--workspace"])),
        ),
        ("k6 inspect (every scenario)", Box::new(k6_inspect_all)),
        (
            "cargo deny (advisories, licences, bans, sources)",
            Box::new(cargo_deny),
        ),
    ];
    if !args.quick {
        steps.push((
            "k6 smoke of load, then audit",
            Box::new(|| smoke(Scenario::Smoke, true)),
        ));
        steps.push((
            "k6 flash-sale, exact stock check, audit",
            Box::new(|| smoke(Scenario::FlashSale, true)),
        ));
        steps.push((
            "gateway overload: a burst beyond capacity is refused with 429, then served",
            Box::new(|| crate::overload::burst_check(&stack::require_state()?, 400)),
        ));
        steps.push((
            "events/ replayed against the local stack",
            Box::new(replay_events),
        ));
        steps.push((
            "Schemathesis against the local stack (bounded)",
            Box::new(|| {
                fuzz(&FuzzArgs {
                    max_examples: 30,
                    port: stack::DEFAULT_PORT,
                })
            }),
        ));
        steps.push(("stop the local stack", Box::new(stack::down)));
        steps.push((
            "MiniStack: deploy template.yaml, replay events, k6 smoke, audit",
            Box::new(emulator_test),
        ));
        steps.push(("cfn-lint template.yaml", Box::new(cfn_lint)));
        // The emulator deploys translate with CanaryDeployments=false: this is the AWS one.
        steps.push((
            "SAM-translate template.yaml as on AWS (defaults: canary deployments on)",
            Box::new(|| {
                run(Command::new(emulator_venv()?.join("bin/python"))
                    .args(["localstack/sam_translate.py", "template.yaml"])
                    .current_dir(paths::root()))
            }),
        ));
        steps.push((
            "sam validate --lint, shellcheck, LocalStack compose and sam local env (offline)",
            Box::new(|| run(Command::new("bash").arg(paths::root().join("localstack/check.sh")))),
        ));
        steps.push((
            "the Managed Instances variant: generate, SAM-translate, cfn-lint",
            Box::new(managed_instances_variant),
        ));
        steps.push((
            "cargo lambda build --profile local --arm64 (one bootstrap per function)",
            Box::new(arm64_bootstraps),
        ));
    }
    if !args.only.is_empty() {
        steps.retain(|(name, _)| {
            *name == "install" || args.only.iter().any(|word| name.contains(word.as_str()))
        });
    }
    let mut passed = 0;
    let mut failed = Vec::new();
    for (name, step) in &steps {
        let started = Instant::now();
        eprintln!("\n==> {name}");
        match step() {
            Ok(()) => {
                passed += 1;
                eprintln!("<== {name}: ok ({:.0} s)", started.elapsed().as_secs_f64());
            }
            Err(error) => {
                eprintln!(
                    "<== {name}: FAILED ({:.0} s): {error:#}",
                    started.elapsed().as_secs_f64()
                );
                failed.push(*name);
            }
        }
    }
    println!("\nsuite: {passed} passed, {} failed", failed.len());
    if !failed.is_empty() {
        bail!("failed steps: {}", failed.join(", "));
    }
    Ok(())
}
