//! `template.yaml` against the sources of truth it copies: the route table in Cargo.toml
//! (`[workspace.metadata.lambda.watch.router]`), the table schema in `store::schema`, the alarm
//! numbers in `ops/alarms.json` (and their runbooks), and the DynamoDB calls the store's code
//! makes (each function's IAM policy). Also checks that the saved events in `events/` use the
//! routes of that table and reference the orders their keys create, and that the optional Lambda
//! Managed Instances resources exist only when asked for and hold no more than they need, and
//! that samconfig.toml's environments build and deploy what they should.
//!
//! The template uses CloudFormation short tags (`!Ref`, `!Sub`, `!GetAtt`, `!If` ...), which
//! serde_yaml keeps as `Value::Tagged`; the helpers below read them as such.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_yaml::Value;

mod alarms;
mod api;
mod events;
mod iam;
mod managed_instances;
mod samconfig;
mod table;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(relative: &str) -> String {
    let path = root().join(relative);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
}

fn template() -> Value {
    serde_yaml::from_str(&read("template.yaml")).expect("template.yaml is YAML")
}

/// `(tag without "!", tagged value)` of a short-form intrinsic such as `!Ref X`.
fn tagged(value: &Value) -> Option<(String, &Value)> {
    match value {
        Value::Tagged(tagged) => Some((
            tagged.tag.to_string().trim_start_matches('!').to_owned(),
            &tagged.value,
        )),
        _ => None,
    }
}

fn text(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("expected a string, got {value:?}"))
}

fn number(value: &Value) -> f64 {
    value
        .as_f64()
        .unwrap_or_else(|| panic!("expected a number, got {value:?}"))
}

/// The resources of one type, by logical id.
fn resources<'a>(template: &'a Value, kind: &str) -> BTreeMap<String, &'a Value> {
    template["Resources"]
        .as_mapping()
        .expect("Resources is a mapping")
        .iter()
        .filter(|(_, resource)| resource["Type"].as_str() == Some(kind))
        .map(|(id, resource)| (text(id).to_owned(), resource))
        .collect()
}

/// Function logical id -> cargo binary (BuildProperties.Binary).
fn function_binaries(template: &Value) -> BTreeMap<String, String> {
    resources(template, "AWS::Serverless::Function")
        .into_iter()
        .map(|(id, resource)| {
            let binary = resource["Metadata"]["BuildProperties"]["Binary"]
                .as_str()
                .unwrap_or_else(|| panic!("{id} has no Metadata.BuildProperties.Binary"));
            (id, binary.to_owned())
        })
        .collect()
}

type Route = (String, String, String); // (METHOD, path, function)

/// The route table of Cargo.toml.
fn router() -> BTreeSet<Route> {
    let manifest: toml::Value = toml::from_str(&read("Cargo.toml")).expect("Cargo.toml is TOML");
    let table = manifest["workspace"]["metadata"]["lambda"]["watch"]["router"]
        .as_table()
        .expect("[workspace.metadata.lambda.watch.router] is a table");
    let mut routes = BTreeSet::new();
    for (path, entries) in table {
        for entry in entries.as_array().expect("each router path lists methods") {
            let method = entry["method"]
                .as_str()
                .expect("method")
                .to_ascii_uppercase();
            let function = entry["function"].as_str().expect("function").to_owned();
            assert!(
                routes.insert((method.clone(), path.clone(), function)),
                "the router lists {method} {path} twice"
            );
        }
    }
    assert!(!routes.is_empty(), "the router table is empty");
    routes
}

fn workspace_functions() -> BTreeSet<String> {
    router()
        .into_iter()
        .map(|(_, _, function)| function)
        .collect()
}

/// The template's `Rules`, by name.
fn rules(template: &Value) -> BTreeMap<String, &Value> {
    template["Rules"]
        .as_mapping()
        .expect("Rules is a mapping")
        .iter()
        .map(|(name, rule)| (text(name).to_owned(), rule))
        .collect()
}

/// The parameters a rule refuses to leave empty: every assertion
/// `!Not [!<test> [!Ref <parameter>, ""]]` names one. `test` is `Equals` for a string
/// parameter, `Contains` for a list (which then may hold no empty id).
fn asserted_non_empty(rule: &Value, test: &str) -> BTreeSet<String> {
    rule["Assertions"]
        .as_sequence()
        .expect("Assertions")
        .iter()
        .filter_map(|assertion| {
            let (not, inner) = tagged(&assertion["Assert"])?;
            let (function, pair) = tagged(&inner[0])?;
            let (reference, parameter) = tagged(&pair[0])?;
            (not == "Not" && function == test && reference == "Ref" && pair[1].as_str() == Some(""))
                .then(|| text(parameter).to_owned())
        })
        .collect()
}

/// Asserts that the rules under `mode` (found by the caller) refuse each of `parameters` empty.
fn assert_guarded(guarded: &BTreeSet<String>, mode: &str, parameters: &[&str]) {
    for parameter in parameters {
        assert!(
            guarded.contains(*parameter),
            "no rule refuses {mode} with an empty {parameter} (guarded: {guarded:?})"
        );
    }
}

/// Whether `condition` is `!Equals [!Ref <parameter>, <value>]`.
fn is_equals(condition: &Value, parameter: &str, value: &str) -> bool {
    matches!(tagged(condition), Some((tag, pair)) if tag == "Equals"
        && is_ref(&pair[0], parameter) && pair[1].as_str() == Some(value))
}

/// The condition on a resource (its `Condition` attribute), if any.
fn condition(resource: &Value) -> Option<&str> {
    resource["Condition"].as_str()
}

/// The logical id a `!Ref <id>` names.
fn ref_target(value: &Value) -> &str {
    match tagged(value) {
        Some((tag, target)) if tag == "Ref" => text(target),
        _ => panic!("expected !Ref <id>, got {value:?}"),
    }
}

fn strings(value: &Value) -> Vec<&Value> {
    match value {
        Value::Sequence(items) => items.iter().collect(),
        other => vec![other],
    }
}

/// The actions an IAM policy statement grants, once it is checked to allow (not deny) and to name
/// its actions and resources outright: a `NotAction` or `NotResource` grants all but a list.
fn allowed_actions<'a>(statement: &'a Value, context: &str) -> Vec<&'a str> {
    assert_eq!(statement["Effect"].as_str(), Some("Allow"), "{context}");
    assert!(
        statement["NotAction"].is_null() && statement["NotResource"].is_null(),
        "{context}"
    );
    strings(&statement["Action"])
        .into_iter()
        .map(text)
        .collect()
}

/// The logical ids (and parameters) one intrinsic names: `Ref X`, `GetAtt X.Attr`, `${X}` or
/// `${X.Attr}` in a `Sub` (`${!...}` is an escaped literal).
fn named_by(function: &str, argument: &Value, found: &mut BTreeSet<String>) {
    let first_part = |name: &str| name.split('.').next().unwrap_or(name).to_owned();
    match function {
        "Ref" => {
            if let Some(name) = argument.as_str() {
                found.insert(name.to_owned());
            }
        }
        "GetAtt" => match argument {
            Value::String(name) => {
                found.insert(first_part(name));
            }
            Value::Sequence(parts) => {
                if let Some(name) = parts.first().and_then(Value::as_str) {
                    found.insert(name.to_owned());
                }
            }
            _ => {}
        },
        "Sub" => {
            let text = match argument {
                Value::String(text) => Some(text.as_str()),
                Value::Sequence(parts) => parts.first().and_then(Value::as_str),
                _ => None,
            };
            for piece in text.unwrap_or_default().split("${").skip(1) {
                if let Some(end) = piece.find('}') {
                    if !piece.starts_with('!') {
                        found.insert(first_part(&piece[..end]));
                    }
                }
            }
        }
        _ => {}
    }
}

/// Every logical id `value` refers to, in short (`!Ref`) or long (`Ref:`) form at any depth,
/// except in the first branch of an `If` on `gate`: CloudFormation only resolves that branch
/// when the gate's condition holds.
fn references_outside(value: &Value, gate: &str, found: &mut BTreeSet<String>) {
    let intrinsic = |function: &str, argument: &Value, found: &mut BTreeSet<String>| {
        if function == "If" {
            if let Some(branches) = argument.as_sequence() {
                let skip_first = branches.first().and_then(Value::as_str) == Some(gate);
                for (index, branch) in branches.iter().enumerate().skip(1) {
                    if !(skip_first && index == 1) {
                        references_outside(branch, gate, found);
                    }
                }
            }
            return;
        }
        named_by(function, argument, found);
        references_outside(argument, gate, found);
    };
    if let Some((function, argument)) = tagged(value) {
        intrinsic(&function, argument, found);
        return;
    }
    match value {
        Value::Mapping(mapping) => {
            for (key, child) in mapping {
                match key.as_str().map(|key| key.trim_start_matches("Fn::")) {
                    Some(function @ ("Ref" | "GetAtt" | "Sub" | "If")) if mapping.len() == 1 => {
                        intrinsic(function, child, found);
                    }
                    _ => references_outside(child, gate, found),
                }
            }
        }
        Value::Sequence(items) => {
            for item in items {
                references_outside(item, gate, found);
            }
        }
        _ => {}
    }
}

/// Whether `value` is `!Ref <name>`.
fn is_ref(value: &Value, name: &str) -> bool {
    matches!(tagged(value), Some((tag, target)) if tag == "Ref" && target.as_str() == Some(name))
}

/// The text of a policy resource: a plain string or the template of a `!Sub`.
fn arn_text(value: &Value) -> String {
    match tagged(value) {
        Some((tag, template)) if tag == "Sub" => text(template).to_owned(),
        _ => text(value).to_owned(),
    }
}

/// Every logical id `value` refers to, in the branches of every `If` too.
fn named_by_all(value: &Value, found: &mut BTreeSet<String>) {
    references_outside(value, "", found);
}
