//! Saved events: their expectations, loading with fresh tokens, and the `sam local` rendering.

use super::*;

/// One line of `events/expected.json`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Expectation {
    pub event: String,
    pub function: String,
    pub status: u16,
    #[serde(default)]
    pub code: Option<String>,
    /// `true`: the answer must carry `idempotent-replayed: true`; `false`: it must not.
    #[serde(default)]
    pub replayed: Option<bool>,
}

/// Which copy of the events: API Gateway HTTP API (payload 2.0, `events/<name>`) or REST API
/// (payload 1.0, `events/v1/<name>`, what the REST variant of `template.yaml` sends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Payload {
    V2,
    V1,
}

impl Payload {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Payload::V2 => "payload 2.0",
            Payload::V1 => "payload 1.0",
        }
    }

    /// The file of the event named `event` in expected.json.
    pub(crate) fn path(self, events_dir: &Path, event: &str) -> PathBuf {
        match self {
            Payload::V2 => events_dir.join(event),
            Payload::V1 => events_dir.join("v1").join(event),
        }
    }
}

pub(crate) fn load_expectations(events_dir: &Path) -> Result<Vec<Expectation>> {
    let path = events_dir.join("expected.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a list of expectations", path.display()))
}

/// Reads an event and replaces every `{{token:<user>}}` with a fresh token for that user.
pub(crate) fn load_event(path: &Path, secret: &str) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let text = fill_placeholders(&text, secret)?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

/// The logical id of a function in template.yaml, which `sam local invoke` and env.json use:
/// `create-order` -> `CreateOrderFunction`.
pub(crate) fn logical_id(function: &str) -> String {
    let mut id: String = function
        .split('-')
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect();
    id.push_str("Function");
    id
}

/// The placeholder of `events/sam-local/env.json` that becomes the development key.
const SECRET_PLACEHOLDER: &str = "{{jwt-secret}}";

/// Fills the development key into the env.json template: every string value that is exactly
/// the placeholder. The result must name no placeholder any more.
fn render_env_json(template: &str, secret: &str) -> Result<Value> {
    fn fill(value: &mut Value, secret: &str) {
        match value {
            Value::String(text) if text == SECRET_PLACEHOLDER => *text = secret.to_owned(),
            Value::Object(map) => map.values_mut().for_each(|value| fill(value, secret)),
            Value::Array(items) => items.iter_mut().for_each(|value| fill(value, secret)),
            _ => {}
        }
    }
    let mut env: Value = serde_json::from_str(template).context("env.json is not JSON")?;
    fill(&mut env, secret);
    if serde_json::to_string(&env)?.contains("{{") {
        bail!("env.json has a placeholder other than {SECRET_PLACEHOLDER}");
    }
    Ok(env)
}

/// `--render-sam-local`: the events of both payloads with fresh tokens and the env.json with
/// the development key, into `out` (`.local/sam-local/`, git-ignored: tokens and key are
/// secrets of this machine): `events/<name>` (2.0) and `events/v1/<name>` (1.0).
pub(crate) fn render_sam_local(events_dir: &Path, out: &Path) -> Result<()> {
    let secret = crate::token::jwt_secret()?;
    let events_out = out.join("events");
    let expectations = load_expectations(events_dir)?;
    for payload in [Payload::V2, Payload::V1] {
        let written = payload.path(&events_out, "");
        std::fs::create_dir_all(&written)?;
        for expectation in &expectations {
            let event = load_event(&payload.path(events_dir, &expectation.event), &secret)?;
            std::fs::write(
                written.join(&expectation.event),
                serde_json::to_string_pretty(&event)? + "\n",
            )?;
        }
    }
    let template_path = events_dir.join("sam-local/env.json");
    let template = std::fs::read_to_string(&template_path)
        .with_context(|| format!("cannot read {}", template_path.display()))?;
    let env = render_env_json(&template, &secret)
        .with_context(|| format!("{}", template_path.display()))?;
    std::fs::write(
        out.join("env.json"),
        serde_json::to_string_pretty(&env)? + "\n",
    )?;
    let shown = |path: &Path| {
        path.strip_prefix(paths::root())
            .unwrap_or(path)
            .display()
            .to_string()
    };
    println!(
        "Wrote {} events per payload with tokens valid for 12 hours to {} (2.0; 1.0 in v1/) and {}.",
        expectations.len(),
        shown(&events_out),
        shown(&out.join("env.json"))
    );
    println!("With DynamoDB Local running (`cargo xtask up`), after `sam build`:");
    let example = expectations
        .iter()
        .find(|expectation| expectation.function == "create-order")
        .unwrap_or(&expectations[0]);
    println!(
        "  sam local invoke {} -e {} --env-vars {}",
        logical_id(&example.function),
        shown(&events_out.join(&example.event)),
        shown(&out.join("env.json"))
    );
    println!(
        "  sam local start-api --env-vars {}    # then curl with $(cargo xtask token user-1)",
        shown(&out.join("env.json"))
    );
    Ok(())
}

fn fill_placeholders(text: &str, secret: &str) -> Result<String> {
    const OPEN: &str = "{{token:";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        out.push_str(&rest[..start]);
        let after = &rest[start + OPEN.len()..];
        let end = after
            .find("}}")
            .context("an unterminated {{token:...}} placeholder")?;
        let user = &after[..end];
        order_service::domain::UserId::parse(user)
            .map_err(|error| anyhow::anyhow!("placeholder {{{{token:{user}}}}}: {error}"))?;
        out.push_str(&crate::token::sign(secret, user)?);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_tokens_for_their_user() -> Result<()> {
        let secret = "0123456789abcdef0123456789abcdef";
        let text = fill_placeholders(
            r#"{"a":"Bearer {{token:user-7}}","b":"{{token:user-8}}"}"#,
            secret,
        )?;
        assert!(!text.contains("{{"));
        let value: Value = serde_json::from_str(&text)?;
        let token = value["a"]
            .as_str()
            .and_then(|a| a.strip_prefix("Bearer "))
            .unwrap_or_default();
        let payload = token.split('.').nth(1).unwrap_or_default();
        let claims: Value = serde_json::from_slice(&{
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload)?
        })?;
        assert_eq!(claims["sub"], "user-7");
        assert_eq!(claims["aud"], order_service::auth::LOCAL_AUDIENCE);
        assert!(fill_placeholders("{{token:bad user}}", secret).is_err());
        assert!(fill_placeholders("{{token:user-1", secret).is_err());
        Ok(())
    }

    fn events_dir() -> PathBuf {
        paths::root().join("events")
    }

    fn read_json(path: &Path) -> Result<Value> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
    }

    /// The order id a keyed create of `user` derives (what the later events address).
    fn derived_order_id(user: &str, key: &str) -> Result<String> {
        let user = order_service::domain::UserId::parse(user)
            .map_err(|error| anyhow::anyhow!("{error}"))?;
        let key = order_service::domain::IdempotencyKey::parse(key)
            .map_err(|error| anyhow::anyhow!("{error}"))?;
        Ok(key.order_id(&user).to_string())
    }

    /// Every payload 1.0 copy is the REST proxy event of the same request as its payload 2.0
    /// original, with Idempotency-Keys of its own (so a replay after the 2.0 one creates and
    /// pays its own orders) and the order ids those keys derive.
    #[test]
    fn payload_one_copies_mirror_the_originals() -> Result<()> {
        let dir = events_dir();
        let expectations = load_expectations(&dir)?;
        let mut copies: Vec<String> = std::fs::read_dir(dir.join("v1"))?
            .map(|entry| Ok(entry?.file_name().to_string_lossy().into_owned()))
            .collect::<Result<_>>()?;
        copies.sort();
        let mut listed: Vec<String> = expectations.iter().map(|e| e.event.clone()).collect();
        listed.sort();
        listed.dedup();
        assert_eq!(
            copies, listed,
            "events/v1/ holds exactly the events of expected.json"
        );

        // The order ids the keyed creates derive: 2.0 id -> 1.0 id.
        let mut created: BTreeMap<String, String> = BTreeMap::new();
        for expectation in &expectations {
            let v2 = read_json(&Payload::V2.path(&dir, &expectation.event))?;
            let v1 = read_json(&Payload::V1.path(&dir, &expectation.event))?;
            let keys = (
                v2["headers"]["idempotency-key"].as_str(),
                v1["headers"]["idempotency-key"].as_str(),
            );
            if v2["routeKey"] == "POST /users/{userId}/orders" && expectation.status == 201 {
                if let (Some(key_v2), Some(key_v1)) = keys {
                    let user = v2["pathParameters"]["userId"].as_str().context("userId")?;
                    created.insert(
                        derived_order_id(user, key_v2)?,
                        derived_order_id(user, key_v1)?,
                    );
                }
            }
        }
        assert!(!created.is_empty());
        for expectation in &expectations {
            let name = &expectation.event;
            let v2 = read_json(&Payload::V2.path(&dir, name))?;
            let v1 = read_json(&Payload::V1.path(&dir, name))?;
            let (route_method, resource) = v2["routeKey"]
                .as_str()
                .and_then(|key| key.split_once(' '))
                .context("routeKey")?;
            assert!(v1.get("version").is_none(), "{name}");
            assert_eq!(v1["httpMethod"], route_method, "{name}");
            assert_eq!(v1["resource"], resource, "{name}");
            assert_eq!(v1["requestContext"]["httpMethod"], route_method, "{name}");
            assert_eq!(v1["requestContext"]["resourcePath"], resource, "{name}");
            assert_eq!(v1["requestContext"]["stage"], "v1", "{name}");
            assert_eq!(
                v1["requestContext"]["authorizer"]["claims"],
                v2["requestContext"]["authorizer"]["jwt"]["claims"],
                "{name}"
            );
            // path is the resource with the path parameters filled in; the context's path
            // carries the stage.
            let mut path = resource.to_owned();
            for (parameter, value) in v1["pathParameters"].as_object().context("pathParameters")? {
                path = path.replace(&format!("{{{parameter}}}"), value.as_str().unwrap_or(""));
            }
            assert_eq!(v1["path"], path.as_str(), "{name}");
            assert_eq!(v1["requestContext"]["path"], format!("/v1{path}"), "{name}");
            for (header, values) in v1["multiValueHeaders"].as_object().context("headers")? {
                assert_eq!(
                    values,
                    &serde_json::json!([v1["headers"][header]]),
                    "{name}"
                );
            }

            let (request_v2, request_v1) = (http_parts(&v2)?, http_parts(&v1)?);
            assert_eq!(request_v1.method, request_v2.method, "{name}");
            assert_eq!(request_v1.query, request_v2.query, "{name}");
            assert_eq!(request_v1.body, request_v2.body, "{name}");
            let key = |parts: &HttpParts| {
                parts
                    .headers
                    .iter()
                    .find(|(header, _)| header == "idempotency-key")
                    .map(|(_, value)| value.clone())
            };
            let others = |parts: &HttpParts| -> Vec<(String, String)> {
                let mut headers: Vec<_> = parts
                    .headers
                    .iter()
                    .filter(|(header, _)| header != "idempotency-key")
                    .cloned()
                    .collect();
                headers.sort();
                headers
            };
            assert_eq!(others(&request_v1), others(&request_v2), "{name}");
            let (key_v2, key_v1) = (key(&request_v2), key(&request_v1));
            assert_eq!(key_v1.is_some(), key_v2.is_some(), "{name}");
            if let (Some(key_v2), Some(key_v1)) = (&key_v2, &key_v1) {
                assert_eq!(
                    *key_v1,
                    key_v2.replacen("events-", "events-v1-", 1),
                    "{name}: a key of its own"
                );
            }
            // The path addresses the 1.0 copy of every order a 2.0 create made.
            let mut expected_path = request_v2.path.clone();
            for (id_v2, id_v1) in &created {
                expected_path = expected_path.replace(id_v2.as_str(), id_v1);
            }
            assert_eq!(request_v1.path, expected_path, "{name}");
        }
        Ok(())
    }

    /// env.json gives every function the local stack's table, DynamoDB Local's port as seen
    /// from containers, and self-verified tokens with the key `--render-sam-local` fills in.
    #[test]
    fn sam_local_env_matches_the_local_stack() -> Result<()> {
        let template = std::fs::read_to_string(events_dir().join("sam-local/env.json"))?;
        let env = render_env_json(&template, "0123456789abcdef0123456789abcdef")?;
        for function in order_service::app::FUNCTIONS {
            let id = logical_id(function);
            let value = |name: &str| {
                env[id.as_str()]
                    .get(name)
                    .or_else(|| env["Parameters"].get(name))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            };
            assert_eq!(
                value("TABLE_NAME").as_deref(),
                Some(state::TABLE_NAME),
                "{id}"
            );
            assert_eq!(value("AUTH_MODE").as_deref(), Some("jwt"), "{id}");
            assert_eq!(
                value("AUTH_JWT_SECRET").as_deref(),
                Some("0123456789abcdef0123456789abcdef")
            );
            assert_eq!(
                value("AUTH_ISSUER").as_deref(),
                Some(order_service::auth::LOCAL_ISSUER)
            );
            assert_eq!(
                value("AUTH_AUDIENCE").as_deref(),
                Some(order_service::auth::LOCAL_AUDIENCE)
            );
            assert!(value("AWS_ENDPOINT_URL").is_some_and(|url| url.ends_with(":8000")));
        }
        assert_eq!(logical_id("cancel-order"), "CancelOrderFunction");
        assert!(render_env_json(r#"{"A": "{{other}}"}"#, "k").is_err());
        Ok(())
    }
}
