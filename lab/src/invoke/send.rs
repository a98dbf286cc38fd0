//! Sending one event: to the local gateway's invoke endpoint, or as a real HTTP request built from it.

use super::*;

const TIMEOUT: Duration = Duration::from_secs(60);

pub(crate) fn send(target: &Target, function: &str, event: &Value) -> Result<HttpResponse> {
    match target {
        Target::InvokeApi(base) => invoke(base, function, event),
        Target::Http(base) => send_as_http(base, event, Reach::Loopback),
        Target::RemoteHttp(base) => send_as_http(base, event, Reach::AnyHost),
    }
}

/// The API Gateway response a `lambda_http` function returns (payload 2.0 sets `headers`,
/// 1.0 `multiValueHeaders` as well).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LambdaResponse {
    status_code: u16,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    multi_value_headers: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    is_base64_encoded: bool,
}

fn invoke(base: &str, function: &str, event: &Value) -> Result<HttpResponse> {
    let url = format!("{base}/2015-03-31/functions/{function}/invocations");
    let payload = serde_json::to_vec(event)?;
    let started = Instant::now();
    let response = Request::new("POST", &url, TIMEOUT)
        .headers(&[("content-type".to_owned(), "application/json".to_owned())])
        .body(&payload)
        .send()?;
    let elapsed = started.elapsed();
    if response.status != 200 {
        bail!(
            "the invoke API answered {} for {function}: {}",
            response.status,
            String::from_utf8_lossy(&response.body)
        );
    }
    let lambda: LambdaResponse = serde_json::from_slice(&response.body).with_context(|| {
        format!(
            "{function} did not return an API Gateway response: {}",
            String::from_utf8_lossy(&response.body)
        )
    })?;
    let mut headers: Vec<(String, String)> = lambda
        .headers
        .into_iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value))
        .collect();
    for (name, values) in lambda.multi_value_headers {
        let name = name.to_ascii_lowercase();
        if headers.iter().all(|(key, _)| *key != name) {
            headers.extend(values.into_iter().map(|value| (name.clone(), value)));
        }
    }
    let body = match lambda.body {
        None => Vec::new(),
        Some(text) if lambda.is_base64_encoded => base64_decode(&text)?,
        Some(text) => text.into_bytes(),
    };
    Ok(HttpResponse {
        status: lambda.status_code,
        headers,
        body,
        elapsed,
        timed_out: false,
    })
}

/// The HTTP request an API Gateway event describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpParts {
    pub method: String,
    /// The path below the stage, e.g. `/users/user-1/orders`.
    pub path: String,
    /// Without the `?`; empty when there is none.
    pub query: String,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Reads the request out of a payload 2.0 event (`rawPath`, `rawQueryString`, `headers`) or
/// a payload 1.0 one (`httpMethod`, `path`, `multiValueQueryStringParameters` or
/// `queryStringParameters`, `multiValueHeaders` or `headers`).
pub(crate) fn http_parts(event: &Value) -> Result<HttpParts> {
    let text = |pointer: &str| event.pointer(pointer).and_then(Value::as_str);
    let strings = |value: &Value| -> Vec<String> {
        match value {
            Value::String(text) => vec![text.clone()],
            Value::Array(items) => items
                .iter()
                .filter_map(|item| item.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
    };
    // Name-value pairs of the first of these objects that the event has (1.0 events carry
    // both forms; the multi-value one holds every value).
    let pairs = |names: &[&str]| -> Vec<(String, String)> {
        names
            .iter()
            .find_map(|name| event.get(*name).and_then(Value::as_object))
            .map(|object| {
                object
                    .iter()
                    .flat_map(|(name, value)| {
                        strings(value)
                            .into_iter()
                            .map(move |value| (name.clone(), value))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let (method, path, query) = if event.get("version").and_then(Value::as_str) == Some("2.0") {
        (
            text("/requestContext/http/method")
                .context("the event has no requestContext.http.method")?,
            text("/rawPath").context("the event has no rawPath")?,
            text("/rawQueryString").unwrap_or("").to_owned(),
        )
    } else {
        let query = pairs(&["multiValueQueryStringParameters", "queryStringParameters"])
            .iter()
            .map(|(name, value)| format!("{}={}", percent_encode(name), percent_encode(value)))
            .collect::<Vec<_>>()
            .join("&");
        (
            text("/httpMethod").context("the event has neither version 2.0 nor httpMethod")?,
            text("/path").context("the event has no path")?,
            query,
        )
    };
    let headers = pairs(&["multiValueHeaders", "headers"])
        .into_iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value))
        .collect();
    let body = match text("/body") {
        None => Vec::new(),
        Some(body) if event.get("isBase64Encoded").and_then(Value::as_bool) == Some(true) => {
            base64_decode(body)?
        }
        Some(body) => body.as_bytes().to_vec(),
    };
    Ok(HttpParts {
        method: method.to_owned(),
        path: path.to_owned(),
        query,
        headers,
        body,
    })
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(byte).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// The HTTP request an API Gateway event describes, sent to `base` + its path.
fn send_as_http(base: &str, event: &Value, reach: Reach) -> Result<HttpResponse> {
    let parts = http_parts(event)?;
    let url = if parts.query.is_empty() {
        format!("{base}{}", parts.path)
    } else {
        format!("{base}{}?{}", parts.path, parts.query)
    };
    Request::new(&parts.method, &url, TIMEOUT)
        .reach(reach)
        .headers(&parts.headers)
        .body(&parts.body)
        .send()
}

/// A base64 body as Lambda and API Gateway send it (standard alphabet, padded).
fn base64_decode(text: &str) -> Result<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .context("the body is not base64")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_what_lambda_http_sends() -> Result<()> {
        assert_eq!(
            base64_decode("eyJjb2RlIjoiWCJ9")?,
            br#"{"code":"X"}"#.to_vec()
        );
        assert_eq!(base64_decode("YQ==")?, b"a".to_vec());
        Ok(())
    }

    #[test]
    fn via_http_stays_on_this_machine_unless_allowed() -> Result<()> {
        assert!(http_target("http://localhost:4566/x/", false).is_ok_and(
            |target| matches!(target, Target::Http(base) if base == "http://localhost:4566/x")
        ));
        assert!(http_target("http://10.0.0.7:4566", false).is_err());
        assert!(matches!(
            http_target("http://10.0.0.7:4566", true)?,
            Target::RemoteHttp(_)
        ));
        Ok(())
    }

    #[test]
    fn both_payloads_describe_their_request() -> Result<()> {
        let v2 = serde_json::json!({
            "version": "2.0",
            "rawPath": "/users/user-1/orders",
            "rawQueryString": "limit=5&cursor=a%2Bb",
            "headers": {"Authorization": "Bearer x"},
            "requestContext": {"http": {"method": "GET"}},
            "isBase64Encoded": false
        });
        let v1 = serde_json::json!({
            "httpMethod": "GET",
            "path": "/users/user-1/orders",
            "headers": {"Authorization": "Bearer x"},
            "multiValueHeaders": {"Authorization": ["Bearer x"]},
            "queryStringParameters": {"limit": "5", "cursor": "a+b"},
            "multiValueQueryStringParameters": {"limit": ["5"], "cursor": ["a+b"]},
            "body": null,
            "isBase64Encoded": false
        });
        let (v2, v1) = (http_parts(&v2)?, http_parts(&v1)?);
        assert_eq!(v1.method, "GET");
        assert_eq!(v1.path, v2.path);
        assert_eq!(
            v1.headers,
            vec![("authorization".to_owned(), "Bearer x".to_owned())]
        );
        assert_eq!(v1.headers, v2.headers);
        // serde_json keeps object keys sorted: cursor before limit.
        assert_eq!(v1.query, "cursor=a%2Bb&limit=5");
        assert!(v1.body.is_empty());
        Ok(())
    }
}
