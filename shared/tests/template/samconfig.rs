//! samconfig.toml: the environments CI and people deploy with, and builds that cannot mix up
//! architectures.

use super::*;

fn samconfig() -> toml::Table {
    toml::from_str(&read("samconfig.toml")).expect("samconfig.toml is TOML")
}

/// `[<env>.<command>.parameters]`, empty when absent.
fn parameters(config: &toml::Table, env: &str, command: &str) -> toml::Table {
    config
        .get(env)
        .and_then(|env| env.get(command))
        .and_then(|command| command.get("parameters"))
        .and_then(toml::Value::as_table)
        .cloned()
        .unwrap_or_default()
}

fn value<'a>(table: &'a toml::Table, key: &str) -> Option<&'a str> {
    table.get(key).and_then(toml::Value::as_str)
}

/// CI runs `sam build --config-env <env>` and `sam deploy --config-env <env>` with staging and
/// prod: each its own stack and artifact prefix, no prompt, the capabilities the template needs.
#[test]
fn staging_and_prod_are_environments_of_their_own() {
    let config = samconfig();
    for (env, stack) in [
        ("default", "order-service"),
        ("staging", "order-service-staging"),
        ("prod", "order-service-prod"),
        ("localstack", "order-service"),
    ] {
        assert_eq!(
            value(&parameters(&config, env, "global"), "stack_name"),
            Some(stack),
            "[{env}]"
        );
    }
    let mut prefixes = BTreeSet::new();
    for env in ["default", "staging", "prod"] {
        let deploy = parameters(&config, env, "deploy");
        let capabilities = value(&deploy, "capabilities").unwrap_or_default();
        for needed in ["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"] {
            assert!(capabilities.contains(needed), "[{env}] lacks {needed}");
        }
        assert_eq!(
            deploy.get("resolve_s3").and_then(toml::Value::as_bool),
            Some(true)
        );
        assert!(
            prefixes.insert(value(&deploy, "s3_prefix").expect("s3_prefix").to_owned()),
            "[{env}] shares its s3_prefix"
        );
        let prompts = deploy
            .get("confirm_changeset")
            .and_then(toml::Value::as_bool);
        assert_eq!(prompts, Some(env == "default"), "[{env}] confirm_changeset");
    }
}

/// template.yaml builds arm64 only, into SAM's default folder, which is what `sam deploy` reads;
/// the host-architecture builds of the emulator variants go elsewhere. And neither SAM's build
/// cache (it hashes the whole workspace and never hits) nor every beta feature is switched on.
#[test]
fn deploy_builds_and_local_builds_never_share_a_folder() {
    let config = samconfig();
    for env in ["default", "staging", "prod"] {
        for command in ["build", "deploy"] {
            let table = parameters(&config, env, command);
            for key in ["build_dir", "template_file", "template", "base_dir"] {
                assert!(
                    table.get(key).is_none(),
                    "[{env}.{command}] sets {key}: deploys build and ship template.yaml from \
                     .aws-sam/build"
                );
            }
        }
    }
    for env in ["local", "localstack"] {
        let build = parameters(&config, env, "build");
        assert_eq!(
            value(&build, "template_file"),
            Some(".local/template-rest.yaml"),
            "[{env}]"
        );
        let folder = value(&build, "build_dir").expect("a build folder of its own");
        assert!(folder.starts_with(".aws-sam/build-"), "[{env}] {folder}");
    }
    for command in ["local_invoke", "local_start_api"] {
        let table = parameters(&config, "local", command);
        assert_eq!(
            value(&table, "template_file"),
            Some(".aws-sam/build-local/template.yaml"),
            "[local.{command}]"
        );
    }
    let globals = template()["Globals"]["Function"]["Architectures"].clone();
    assert_eq!(globals[0].as_str(), Some("arm64"));
    for (env, commands) in &config {
        for (command, table) in commands.as_table().into_iter().flatten() {
            let table = &table["parameters"];
            assert!(table.get("beta_features").is_none(), "[{env}.{command}]");
            assert_ne!(
                table.get("cached").and_then(toml::Value::as_bool),
                Some(true),
                "[{env}.{command}]: SAM's cache hashes the workspace and never hits"
            );
        }
    }
}
