//! The HTTP client (ureq), URL checks (loopback unless allowed), base64.

use super::*;

/// A response: status, headers and the whole body.
#[derive(Debug, Clone)]
pub(crate) struct HttpResponse {
    pub status: u16,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Which hosts a request may go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reach {
    /// 127.0.0.1 and localhost only: what every command sends to unless told otherwise.
    Loopback,
    /// Any host (`invoke --via-http ... --allow-remote`).
    AnyHost,
}

/// The parts of an `http://` or `https://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UrlParts<'a> {
    pub https: bool,
    pub host: &'a str,
    pub port: u16,
    /// The path and query, at least `/`.
    pub target: &'a str,
}

fn is_loopback(host: &str) -> bool {
    host == "127.0.0.1" || host == "localhost"
}

/// Splits an `http://` or `https://` URL, refusing hosts other than 127.0.0.1 and localhost
/// unless `reach` is [`Reach::AnyHost`].
pub(crate) fn split_url(url: &str, reach: Reach) -> Result<UrlParts<'_>> {
    let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else {
        bail!("{url}: only http:// and https:// URLs are supported");
    };
    let (authority, target) = match rest.find('/') {
        Some(index) => (&rest[..index], &rest[index..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (
            host,
            port.parse::<u16>()
                .with_context(|| format!("{url}: bad port"))?,
        ),
        None => (authority, if https { 443 } else { 80 }),
    };
    if host.is_empty() {
        bail!("{url}: no host");
    }
    if !is_loopback(host) && reach == Reach::Loopback {
        bail!(
            "refusing to send to {host}: only 127.0.0.1 and localhost are reachable unless you \
             pass --allow-remote (events write orders and carry tokens)"
        );
    }
    Ok(UrlParts {
        https,
        host,
        port,
        target,
    })
}

/// One request to a URL on the loopback interface (where the local stack and the emulators
/// listen), over a connection of its own.
pub(crate) fn http_request(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: &[u8],
    timeout: Duration,
) -> Result<HttpResponse> {
    http_request_with(Reach::Loopback, method, url, headers, body, timeout)
}

/// [`http_request`] to the hosts `reach` allows, over plain HTTP or HTTPS (ureq; rustls with
/// the aws-lc-rs provider and Mozilla's root certificates). Every status is an answer, not an
/// error; a request that gets no answer within `timeout` is one.
pub(crate) fn http_request_with(
    reach: Reach,
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: &[u8],
    timeout: Duration,
) -> Result<HttpResponse> {
    let parts = split_url(url, reach)?;
    let tls = ureq::tls::TlsConfig::builder()
        .unversioned_rustls_crypto_provider(std::sync::Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .build();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .timeout_connect(Some(timeout))
        // No pooling: one request per connection, like the gateway's clients in a burst.
        .max_idle_connections(0)
        .max_redirects(0)
        // Traffic to this machine never goes through a proxy from the environment.
        .proxy(if is_loopback(parts.host) {
            None
        } else {
            ureq::Proxy::try_from_env()
        })
        .tls_config(tls)
        .build()
        .into();
    let mut request = ureq::http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        let lower = name.to_ascii_lowercase();
        if matches!(
            lower.as_str(),
            "host" | "connection" | "content-length" | "transfer-encoding"
        ) {
            continue;
        }
        request = request.header(lower, value.as_str());
    }
    let request = request
        .body(body.to_vec())
        .with_context(|| format!("{method} {url}: not a valid request"))?;
    let mut response = agent
        .run(request)
        .with_context(|| format!("{method} {url}"))?;
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = response
        .body_mut()
        .with_config()
        .limit(64 * 1024 * 1024)
        .read_to_vec()
        .with_context(|| format!("{method} {url}: reading the body"))?;
    Ok(HttpResponse {
        status: response.status().as_u16(),
        headers,
        body,
    })
}

/// A base64 body as Lambda and API Gateway send it (standard alphabet, padded).
pub(super) fn base64_decode(text: &str) -> Result<Vec<u8>> {
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
    fn another_host_needs_the_opt_in() -> Result<()> {
        let refused = split_url("http://api.example.com/v1", Reach::Loopback);
        assert!(refused.is_err_and(|error| error.to_string().contains("--allow-remote")));
        let parts = split_url("http://api.example.com:8080/v1", Reach::AnyHost)?;
        assert_eq!(
            (parts.host, parts.port, parts.target),
            ("api.example.com", 8080, "/v1")
        );
        assert!(http_target("http://localhost:4566/x/", false).is_ok_and(
            |target| matches!(target, Target::Http(base) if base == "http://localhost:4566/x")
        ));
        assert!(matches!(
            http_target("http://10.0.0.7:4566", true)?,
            Target::RemoteHttp(_)
        ));
        let stage = split_url(
            "https://abc.execute-api.eu-west-1.amazonaws.com/v1",
            Reach::AnyHost,
        )?;
        assert_eq!((stage.https, stage.port, stage.target), (true, 443, "/v1"));
        assert!(split_url("https://abc.example.com/v1", Reach::Loopback).is_err());
        assert!(split_url("ftp://127.0.0.1/", Reach::AnyHost).is_err());
        Ok(())
    }

    #[test]
    fn only_loopback_is_reachable() {
        let refused = http_request(
            "GET",
            "http://example.com/",
            &[],
            &[],
            Duration::from_millis(10),
        );
        assert!(refused.is_err_and(|error| error.to_string().contains("only 127.0.0.1")));
    }
}
