//! The ops lab's one HTTP client (ureq): every request the lab sends (events, probes, drills'
//! calls, warm-up, the overload burst) is a [`Request`], which refuses hosts other than this
//! machine unless told otherwise.

use std::time::Duration;

use anyhow::{bail, Context, Result};

/// The lab's one HTTP answer type, whoever sent the request (`send`, `attempt`, or an
/// invocation through the gateway's invoke API): status, headers, the whole body, and how long
/// it took to come back.
#[derive(Debug, Clone, Default)]
pub(crate) struct HttpResponse {
    /// 0 when no answer arrived (only from `attempt`: `send` fails instead).
    pub status: u16,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// From sending the request to the end of the answer (or to giving up).
    pub elapsed: Duration,
    /// Whether the call was given up at its timeout (only from `attempt`).
    pub timed_out: bool,
}

impl HttpResponse {
    /// The first value of the header `name` (any case).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub(crate) fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }

    /// The body as JSON, if it is JSON.
    pub(crate) fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The `code` of a problem+json body.
    pub(crate) fn code(&self) -> Option<String> {
        self.json()?.get("code")?.as_str().map(str::to_owned)
    }

    /// `elapsed` in seconds.
    pub(crate) fn seconds(&self) -> f64 {
        self.elapsed.as_secs_f64()
    }
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

/// One request, by default to 127.0.0.1 or localhost only, with no headers and no body:
/// [`send`](Request::send) it, or [`attempt`](Request::attempt) it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Request<'a> {
    reach: Reach,
    method: &'a str,
    url: &'a str,
    headers: &'a [(String, String)],
    body: &'a [u8],
    timeout: Duration,
}

impl<'a> Request<'a> {
    /// `method` `url`, given up when no answer arrives within `timeout`.
    pub(crate) fn new(method: &'a str, url: &'a str, timeout: Duration) -> Self {
        Self {
            reach: Reach::Loopback,
            method,
            url,
            headers: &[],
            body: &[],
            timeout,
        }
    }

    /// The hosts the request may go to.
    pub(crate) fn reach(self, reach: Reach) -> Self {
        Self { reach, ..self }
    }

    pub(crate) fn headers(self, headers: &'a [(String, String)]) -> Self {
        Self { headers, ..self }
    }

    pub(crate) fn body(self, body: &'a [u8]) -> Self {
        Self { body, ..self }
    }

    /// Sends the request over a connection of its own, plain HTTP or HTTPS (ureq; rustls with
    /// the aws-lc-rs provider and Mozilla's root certificates). Every status is an answer, not
    /// an error; a request that gets no answer within its timeout is one.
    pub(crate) fn send(&self) -> Result<HttpResponse> {
        let Request {
            reach,
            method,
            url,
            headers,
            body,
            timeout,
        } = *self;
        let started = std::time::Instant::now();
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
            elapsed: started.elapsed(),
            timed_out: false,
        })
    }

    /// `send`, with no answer as an answer too: status 0, and whether the call was given up at
    /// its timeout. For callers that count what their clients would have seen (a drill's
    /// probes).
    pub(crate) fn attempt(&self) -> HttpResponse {
        let started = std::time::Instant::now();
        self.send().unwrap_or_else(|error| HttpResponse {
            elapsed: started.elapsed(),
            timed_out: timed_out(&error),
            ..HttpResponse::default()
        })
    }
}

/// Whether `error` is a request that got no answer within its timeout.
pub(crate) fn timed_out(error: &anyhow::Error) -> bool {
    error
        .chain()
        .any(|cause| match cause.downcast_ref::<ureq::Error>() {
            Some(ureq::Error::Timeout(_)) => true,
            Some(ureq::Error::Io(io)) => io.kind() == std::io::ErrorKind::TimedOut,
            _ => false,
        })
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;

    use super::*;

    #[test]
    fn another_host_needs_the_opt_in() -> Result<()> {
        let refused = split_url("http://api.example.com/v1", Reach::Loopback);
        assert!(refused.is_err_and(|error| error.to_string().contains("--allow-remote")));
        let parts = split_url("http://api.example.com:8080/v1", Reach::AnyHost)?;
        assert_eq!(
            (parts.host, parts.port, parts.target),
            ("api.example.com", 8080, "/v1")
        );
        let stage = split_url(
            "https://abc.execute-api.eu-west-1.amazonaws.com/v1",
            Reach::AnyHost,
        )?;
        assert_eq!((stage.https, stage.port, stage.target), (true, 443, "/v1"));
        assert!(split_url("https://abc.example.com/v1", Reach::Loopback).is_err());
        assert!(split_url("ftp://127.0.0.1/", Reach::AnyHost).is_err());
        let refused = Request::new("GET", "http://example.com/", Duration::from_millis(10)).send();
        assert!(refused.is_err_and(|error| error.to_string().contains("only 127.0.0.1")));
        Ok(())
    }

    /// A server on a free loopback port that reads one request and answers with `answer`
    /// (or, with `None`, never answers); the request it read comes back through the handle.
    fn serve_once(answer: Option<&'static str>) -> (String, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/users/u-1/orders", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            // The head, then as many bytes as its content-length says (TCP may split them).
            let mut seen = Vec::new();
            let mut chunk = [0_u8; 4096];
            loop {
                let read = stream.read(&mut chunk).unwrap();
                seen.extend_from_slice(&chunk[..read]);
                let text = String::from_utf8_lossy(&seen).to_lowercase();
                let Some(head_end) = text.find("\r\n\r\n") else {
                    assert!(read > 0, "the request ended early");
                    continue;
                };
                let length = text[..head_end]
                    .lines()
                    .find_map(|line| line.strip_prefix("content-length: "))
                    .map_or(0, |value| value.trim().parse::<usize>().unwrap());
                if read == 0 || seen.len() >= head_end + 4 + length {
                    break;
                }
            }
            match answer {
                Some(answer) => stream.write_all(answer.as_bytes()).unwrap(),
                None => std::thread::sleep(Duration::from_millis(600)),
            }
            String::from_utf8_lossy(&seen).into_owned()
        });
        (url, handle)
    }

    #[test]
    fn a_request_carries_its_headers_and_body_and_every_status_is_an_answer() -> Result<()> {
        let (url, server) = serve_once(Some(
            "HTTP/1.1 409 Conflict\r\nRetry-After: 1\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
        ));
        let headers = [("Idempotency-Key".to_owned(), "k-1".to_owned())];
        let response = Request::new("POST", &url, Duration::from_secs(5))
            .headers(&headers)
            .body(b"{\"a\":1}")
            .send()?;
        assert_eq!(response.status, 409);
        assert!(response
            .headers
            .contains(&("retry-after".to_owned(), "1".to_owned())));
        assert_eq!(response.body, b"{}");
        let seen = server.join().unwrap();
        assert!(
            seen.starts_with("POST /users/u-1/orders HTTP/1.1"),
            "{seen}"
        );
        assert!(seen.contains("idempotency-key: k-1"), "{seen}");
        assert!(seen.ends_with("{\"a\":1}"), "{seen}");
        Ok(())
    }

    #[test]
    fn no_answer_within_the_timeout_is_a_timeout() {
        let (url, server) = serve_once(None);
        let get = || Request::new("GET", &url, Duration::from_millis(200)).send();
        let error = get().unwrap_err();
        assert!(timed_out(&error), "{error:#}");
        server.join().unwrap();
        let refused = get().unwrap_err();
        assert!(
            !timed_out(&refused),
            "a refused connection is no timeout: {refused:#}"
        );
    }
}
