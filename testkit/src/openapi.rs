//! Checks responses against the OpenAPI contract (`openapi.yaml`) with a JSON Schema validator.

use serde_json::Value;
use std::sync::OnceLock;

/// `openapi.yaml` as JSON.
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi.yaml");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
        serde_yaml::from_str(&text).unwrap_or_else(|error| panic!("openapi.yaml: {error}"))
    })
}

/// The schema `$ref` documented for this response in this media type (a response may be
/// documented in several: the service's problem+json and API Gateway's own JSON). A status
/// without an entry of its own falls back to its range (`5XX`).
fn response_schema(
    method: &str,
    route: &str,
    status: u16,
    content_type: &str,
) -> Result<String, String> {
    let path_key = route.replace('~', "~0").replace('/', "~1");
    let operation = document()
        .pointer(&format!(
            "/paths/{path_key}/{}",
            method.to_ascii_lowercase()
        ))
        .ok_or_else(|| format!("openapi.yaml has no {method} {route}"))?;
    let mut response = operation
        .pointer(&format!("/responses/{status}"))
        .or_else(|| operation.pointer(&format!("/responses/{}XX", status / 100)))
        .ok_or_else(|| format!("status {status} is not documented"))?;
    if let Some(reference) = response.get("$ref").and_then(Value::as_str) {
        response = document()
            .pointer(reference.trim_start_matches('#'))
            .ok_or_else(|| format!("dangling {reference}"))?;
    }
    let documented = response
        .get("content")
        .and_then(Value::as_object)
        .ok_or_else(|| "the response documents no content".to_owned())?;
    let content = documented.get(content_type).ok_or_else(|| {
        format!(
            "content type {content_type:?}, documented {:?}",
            documented.keys().collect::<Vec<_>>()
        )
    })?;
    let schema = content
        .pointer("/schema/$ref")
        .and_then(Value::as_str)
        .ok_or_else(|| "the response schema is not a $ref".to_owned())?;
    Ok(schema.to_owned())
}

/// Whether a response with this status, content type and body is what the contract says.
pub fn check_response(
    method: &str,
    route: &str,
    status: u16,
    content_type: &str,
    body: &Value,
) -> Result<(), String> {
    let reference = response_schema(method, route, status, content_type)?;
    // The whole document with a root $ref: the validator resolves every reference in it.
    let mut root = document().clone();
    if let Some(object) = root.as_object_mut() {
        object.insert("$ref".to_owned(), Value::String(reference));
        object.insert(
            "$schema".to_owned(),
            Value::String("https://json-schema.org/draft/2020-12/schema".to_owned()),
        );
    }
    let validator = jsonschema::validator_for(&root).map_err(|error| format!("schema: {error}"))?;
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|error| format!("{error} at {}", error.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}
