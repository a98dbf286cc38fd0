//! Authentication and ownership. Deployed behind API Gateway, the gateway's authorizer has
//! verified the token and the function reads the subject from the authorizer's claims; locally
//! (and in emulators without authorizers) the function verifies an HS256 bearer token itself.
//! Either way the subject must own the `{userId}` in the path. There is no "off" mode, and
//! nothing fails open: an audience is always required, and a token outside its `nbf`/`iat`/`exp`
//! window is refused.

use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use serde::{Deserialize, Serialize};

use crate::domain::UserId;
use crate::error::{ConfigError, ServiceError};

/// Tokens longer than this are refused before any parsing.
const MAX_TOKEN_LENGTH: usize = 4_096;

#[derive(Clone)]
pub enum AuthConfig {
    /// Trust the claims that API Gateway's authorizer put into the request context. A REST
    /// API's Cognito authorizer checks the signature and expiry but not the audience, so the
    /// function checks the token's `aud` (ID tokens) or `client_id` (access tokens) itself, on
    /// every flavour of API: the audience is required. `user_claim` names the claim that holds
    /// the user id (`sub` by default; `username` for Cognito access tokens, whose `sub` is a
    /// UUID).
    ApiGateway {
        audience: String,
        user_claim: String,
    },
    /// Verify `Authorization: Bearer <HS256 JWT>` with this secret, issuer and audience.
    Jwt {
        secret: Vec<u8>,
        issuer: String,
        audience: String,
    },
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthConfig::ApiGateway {
                audience,
                user_claim,
            } => write!(
                formatter,
                "ApiGateway {{ audience: {audience:?}, user_claim: {user_claim:?} }}"
            ),
            AuthConfig::Jwt {
                issuer, audience, ..
            } => write!(
                formatter,
                "Jwt {{ issuer: {issuer:?}, audience: {audience:?}, secret: <redacted> }}"
            ),
        }
    }
}

pub const LOCAL_ISSUER: &str = "order-service-local";
pub const LOCAL_AUDIENCE: &str = "order-service";

impl AuthConfig {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        match lookup("AUTH_MODE").as_deref() {
            Some("apigateway") => Ok(AuthConfig::ApiGateway {
                audience: lookup("AUTH_AUDIENCE").ok_or_else(|| {
                    ConfigError(
                        "AUTH_MODE=apigateway requires AUTH_AUDIENCE (the app client id or API \
                         audience tokens must carry)"
                            .to_owned(),
                    )
                })?,
                user_claim: lookup("AUTH_USER_CLAIM").unwrap_or_else(|| "sub".to_owned()),
            }),
            Some("jwt") => {
                let secret = lookup("AUTH_JWT_SECRET").ok_or_else(|| {
                    ConfigError("AUTH_MODE=jwt requires AUTH_JWT_SECRET".to_owned())
                })?;
                if secret.len() < 32 {
                    return Err(ConfigError(
                        "AUTH_JWT_SECRET must be at least 32 characters".to_owned(),
                    ));
                }
                Ok(AuthConfig::Jwt {
                    secret: secret.into_bytes(),
                    issuer: lookup("AUTH_ISSUER").unwrap_or_else(|| LOCAL_ISSUER.to_owned()),
                    audience: lookup("AUTH_AUDIENCE").unwrap_or_else(|| LOCAL_AUDIENCE.to_owned()),
                })
            }
            _ => Err(ConfigError(
                "AUTH_MODE must be \"apigateway\" or \"jwt\"".to_owned(),
            )),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub iss: String,
    pub aud: String,
    pub exp: u64,
    pub iat: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
}

impl Claims {
    /// The claims of a token for `subject` issued at `issued_at` (epoch seconds) for
    /// `lifetime_seconds`, valid from its issue (the development tokens of `testkit`).
    pub fn new(
        issuer: &str,
        audience: &str,
        subject: &str,
        issued_at: u64,
        lifetime_seconds: u64,
    ) -> Self {
        Self {
            sub: subject.to_owned(),
            iss: issuer.to_owned(),
            aud: audience.to_owned(),
            exp: issued_at + lifetime_seconds,
            iat: issued_at,
            nbf: Some(issued_at),
        }
    }
}

/// Whether the caller wants to read an order (a stranger is told it does not exist) or do
/// anything else (a stranger is told it is forbidden).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadOrder,
    Other,
}

#[derive(Clone)]
pub struct Authenticator {
    mode: Mode,
}

#[derive(Clone)]
enum Mode {
    ApiGateway {
        audience: String,
        user_claim: String,
    },
    Jwt {
        key: DecodingKey,
        validation: Box<Validation>,
    },
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.mode {
            Mode::ApiGateway { .. } => formatter.write_str("Authenticator(ApiGateway)"),
            Mode::Jwt { .. } => formatter.write_str("Authenticator(Jwt)"),
        }
    }
}

impl Authenticator {
    pub fn new(config: &AuthConfig) -> Self {
        let mode = match config {
            AuthConfig::ApiGateway {
                audience,
                user_claim,
            } => Mode::ApiGateway {
                audience: audience.clone(),
                user_claim: user_claim.clone(),
            },
            AuthConfig::Jwt {
                secret,
                issuer,
                audience,
            } => {
                let mut validation = Validation::new(Algorithm::HS256);
                validation.set_issuer(&[issuer]);
                validation.set_audience(&[audience]);
                validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
                validation.validate_nbf = true;
                validation.leeway = CLOCK_LEEWAY_SECONDS;
                Mode::Jwt {
                    key: DecodingKey::from_secret(secret),
                    validation: Box::new(validation),
                }
            }
        };
        Self { mode }
    }

    /// The verified subject of the request.
    pub fn subject(&self, request: &Request) -> Result<String, ServiceError> {
        match &self.mode {
            Mode::ApiGateway {
                audience,
                user_claim,
            } => {
                let claims = authorizer_claims(request).ok_or(ServiceError::Unauthorized(
                    "the request carries no authorizer claims",
                ))?;
                let matches = ["aud", "client_id"].iter().any(|name| {
                    claims
                        .get(*name)
                        .is_some_and(|value| names_audience(value, audience))
                });
                if !matches {
                    return Err(ServiceError::Unauthorized(
                        "the token is for another audience",
                    ));
                }
                check_time_claims(&claims, now_seconds())?;
                claims
                    .get(user_claim.as_str())
                    .filter(|subject| !subject.is_empty())
                    .cloned()
                    .ok_or(ServiceError::Unauthorized("the token names no user"))
            }
            Mode::Jwt { key, validation } => {
                let header = request
                    .headers()
                    .get(lambda_http::http::header::AUTHORIZATION)
                    .ok_or(ServiceError::Unauthorized(
                        "an Authorization: Bearer token is required",
                    ))?;
                let token = header
                    .to_str()
                    .ok()
                    .and_then(bearer_token)
                    .filter(|token| !token.is_empty() && token.len() <= MAX_TOKEN_LENGTH)
                    .ok_or(ServiceError::Unauthorized(
                        "the Authorization header is not a Bearer token",
                    ))?;
                let claims = decode::<Claims>(token, key, validation)
                    .map(|data| data.claims)
                    .map_err(|_| ServiceError::Unauthorized("the token is invalid or expired"))?;
                if claims.iat > now_seconds() + CLOCK_LEEWAY_SECONDS {
                    return Err(ServiceError::Unauthorized(
                        "the token is issued in the future",
                    ));
                }
                Ok(claims.sub)
            }
        }
    }

    /// Authenticates the caller and checks that it owns `path_user`.
    pub fn authorize(
        &self,
        request: &Request,
        path_user: &UserId,
        access: Access,
    ) -> Result<(), ServiceError> {
        let subject = self.subject(request)?;
        if subject == path_user.as_str() {
            return Ok(());
        }
        Err(match access {
            Access::ReadOrder => crate::domain::Refusal::OrderNotFound.into(),
            Access::Other => ServiceError::Forbidden,
        })
    }
}

/// How far the clocks of issuer and function may disagree, in seconds.
const CLOCK_LEEWAY_SECONDS: u64 = 5;

fn now_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}

/// The token of an `Authorization` value: the scheme is case-insensitive (RFC 9110 §11.1),
/// blanks around the token are ignored.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Whether an `aud` claim names `audience`. API Gateway renders a list-valued `aud` as
/// `[a b]` (HTTP API) or a JSON array; a plain string must match exactly.
fn names_audience(claim: &str, audience: &str) -> bool {
    claim == audience
        || claim
            .trim_start_matches('[')
            .trim_end_matches(']')
            .split([' ', ',', '"'])
            .any(|entry| entry == audience)
}

/// The authorizer already checked `exp`; the function checks it again along with `nbf` and
/// `iat`, so a REST authorizer (which checks less) or a stale cache never lets an out-of-window
/// token through. Absent claims are not required here (the authorizer decides which exist);
/// present ones must be numbers.
fn check_time_claims(
    claims: &std::collections::HashMap<String, String>,
    now: u64,
) -> Result<(), ServiceError> {
    let number = |name: &str| -> Result<Option<u64>, ServiceError> {
        match claims.get(name) {
            None => Ok(None),
            Some(text) => claim_seconds(text)
                .map(Some)
                .ok_or(ServiceError::Unauthorized(
                    "the token's time claims are unreadable",
                )),
        }
    };
    if number("exp")?.is_some_and(|exp| exp + CLOCK_LEEWAY_SECONDS <= now) {
        return Err(ServiceError::Unauthorized("the token has expired"));
    }
    if number("nbf")?.is_some_and(|nbf| nbf > now + CLOCK_LEEWAY_SECONDS) {
        return Err(ServiceError::Unauthorized("the token is not valid yet"));
    }
    if number("iat")?.is_some_and(|iat| iat > now + CLOCK_LEEWAY_SECONDS) {
        return Err(ServiceError::Unauthorized(
            "the token is issued in the future",
        ));
    }
    Ok(())
}

/// A time claim as an authorizer passes it on, in seconds since the epoch: HTTP API JWT
/// authorizers pass the token's number as text (`"1764388800"`), REST API Cognito authorizers
/// a date (`"Sun Nov 29 04:00:00 UTC 2026"`).
fn claim_seconds(text: &str) -> Option<u64> {
    let text = text.trim();
    if let Ok(value) = text.parse::<f64>() {
        return (value.is_finite() && value >= 0.0).then_some(value as u64);
    }
    let format = time::macros::format_description!(
        "[weekday repr:short] [month repr:short] [day] [hour]:[minute]:[second] UTC [year]"
    );
    let instant = time::PrimitiveDateTime::parse(text, format)
        .ok()?
        .assume_utc();
    u64::try_from(instant.unix_timestamp()).ok()
}

/// The claims API Gateway's authorizer put into the request context: HTTP API JWT
/// authorizers in `authorizer.jwt.claims`, REST API Cognito authorizers in `authorizer.claims`.
fn authorizer_claims(request: &Request) -> Option<std::collections::HashMap<String, String>> {
    let authorizer = match request.request_context_ref()? {
        RequestContext::ApiGatewayV2(context) => context.authorizer.as_ref()?,
        RequestContext::ApiGatewayV1(context) => &context.authorizer,
        #[allow(unreachable_patterns)]
        _ => return None,
    };
    if let Some(jwt) = authorizer.jwt.as_ref().filter(|jwt| !jwt.claims.is_empty()) {
        return Some(jwt.claims.clone());
    }
    let claims = authorizer.fields.get("claims")?.as_object()?;
    Some(
        claims
            .iter()
            .filter_map(|(name, value)| Some((name.clone(), value.as_str()?.to_owned())))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // The same development tokens the functions' tests use (testkit: no order_service type
    // crosses, so its own copy of this crate does not matter).
    use testkit::sign_token;

    fn v2_request(claims: serde_json::Value, authorization: Option<&str>) -> Request {
        let mut headers = serde_json::Map::new();
        if let Some(value) = authorization {
            headers.insert("authorization".into(), value.into());
        }
        let event = serde_json::json!({
            "version": "2.0",
            "routeKey": "GET /users/{userId}/orders",
            "rawPath": "/users/user-1/orders",
            "rawQueryString": "",
            "headers": headers,
            "pathParameters": {"userId": "user-1"},
            "requestContext": {
                "accountId": "1", "apiId": "a", "domainName": "d", "domainPrefix": "d",
                "http": {"method": "GET", "path": "/users/user-1/orders", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"},
                "requestId": "r", "routeKey": "GET /users/{userId}/orders", "stage": "$default",
                "time": "25/Nov/2026:21:00:00 +0000", "timeEpoch": 0,
                "authorizer": {"jwt": {"claims": claims, "scopes": null}}
            },
            "isBase64Encoded": false
        });
        lambda_http::request::from_str(&event.to_string()).unwrap()
    }

    fn user(name: &str) -> UserId {
        UserId::parse(name).unwrap()
    }

    fn gateway(audience: &str, user_claim: &str) -> Authenticator {
        Authenticator::new(&AuthConfig::ApiGateway {
            audience: audience.into(),
            user_claim: user_claim.into(),
        })
    }

    #[test]
    fn api_gateway_claims_decide_ownership() {
        let auth = gateway("client-a", "sub");
        let request = v2_request(
            serde_json::json!({"sub": "user-1", "aud": "client-a"}),
            None,
        );
        assert!(auth
            .authorize(&request, &user("user-1"), Access::Other)
            .is_ok());
        assert!(matches!(
            auth.authorize(&request, &user("user-2"), Access::Other),
            Err(ServiceError::Forbidden)
        ));
        assert!(matches!(
            auth.authorize(&request, &user("user-2"), Access::ReadOrder),
            Err(ServiceError::Refused(crate::domain::Refusal::OrderNotFound))
        ));
        let anonymous = v2_request(serde_json::json!({"aud": "client-a"}), None);
        assert!(matches!(
            auth.subject(&anonymous),
            Err(ServiceError::Unauthorized(_))
        ));
    }

    #[test]
    fn api_gateway_mode_requires_an_audience() {
        let config = |pairs: &[(&str, &str)]| {
            let pairs: std::collections::HashMap<String, String> = pairs
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect();
            AuthConfig::from_lookup(|name| pairs.get(name).cloned())
        };
        assert!(config(&[("AUTH_MODE", "apigateway")]).is_err());
        match config(&[("AUTH_MODE", "apigateway"), ("AUTH_AUDIENCE", "client-a")]) {
            Ok(AuthConfig::ApiGateway {
                audience,
                user_claim,
            }) => {
                assert_eq!(audience, "client-a");
                assert_eq!(user_claim, "sub");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            config(&[
                ("AUTH_MODE", "apigateway"),
                ("AUTH_AUDIENCE", "client-a"),
                ("AUTH_USER_CLAIM", "username"),
            ]),
            Ok(AuthConfig::ApiGateway { user_claim, .. }) if user_claim == "username"
        ));
        // A token without any audience claim never passes.
        let auth = gateway("client-a", "sub");
        assert!(matches!(
            auth.subject(&v2_request(serde_json::json!({"sub": "user-1"}), None)),
            Err(ServiceError::Unauthorized(_))
        ));
    }

    #[test]
    fn api_gateway_mode_reads_the_configured_user_claim() {
        // A Cognito access token: `sub` is a UUID, `username` is the user id.
        let auth = gateway("client-a", "username");
        let access_token = v2_request(
            serde_json::json!({"sub": "5f0c-uuid", "username": "user-7", "client_id": "client-a"}),
            None,
        );
        assert_eq!(auth.subject(&access_token).unwrap(), "user-7");
        let without = v2_request(
            serde_json::json!({"sub": "user-7", "client_id": "client-a"}),
            None,
        );
        assert!(matches!(
            auth.subject(&without),
            Err(ServiceError::Unauthorized(_))
        ));
    }

    #[test]
    fn api_gateway_mode_checks_the_token_window() {
        let auth = gateway("client-a", "sub");
        let now = now_seconds();
        let with = |extra: serde_json::Value| {
            let mut claims = serde_json::json!({"sub": "user-1", "aud": "client-a"});
            claims
                .as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            auth.subject(&v2_request(claims, None))
        };
        assert!(with(serde_json::json!({"exp": (now + 60).to_string(), "nbf": (now - 1).to_string(), "iat": (now - 1).to_string()})).is_ok());
        for bad in [
            serde_json::json!({"exp": (now - 60).to_string()}),
            serde_json::json!({"nbf": (now + 600).to_string()}),
            serde_json::json!({"iat": (now + 600).to_string()}),
            serde_json::json!({"exp": "tomorrow"}),
        ] {
            assert!(
                matches!(with(bad.clone()), Err(ServiceError::Unauthorized(_))),
                "{bad} was accepted"
            );
        }
    }

    #[test]
    fn time_claims_are_read_in_both_authorizers_spellings() {
        assert_eq!(claim_seconds("1764388800"), Some(1_764_388_800));
        assert_eq!(claim_seconds("1764388800.0"), Some(1_764_388_800));
        assert_eq!(
            claim_seconds("Sun Nov 29 04:00:00 UTC 2026"),
            Some(1_795_924_800)
        );
        assert_eq!(
            claim_seconds("Thu Jul 03 16:16:40 UTC 2025"),
            Some(1_751_559_400)
        );
        assert_eq!(claim_seconds("tomorrow"), None);
        assert_eq!(claim_seconds("-5"), None);
    }

    /// A REST API (payload 1.0) request whose Cognito authorizer passed these claims.
    fn v1_request(claims: serde_json::Value) -> Request {
        let event = serde_json::json!({
            "resource": "/users/{userId}/orders",
            "path": "/users/user-1/orders",
            "httpMethod": "GET",
            "headers": {"Authorization": "eyJ..."},
            "multiValueHeaders": {"Authorization": ["eyJ..."]},
            "queryStringParameters": null,
            "multiValueQueryStringParameters": null,
            "pathParameters": {"userId": "user-1"},
            "stageVariables": null,
            "requestContext": {
                "accountId": "123456789012", "apiId": "a1b2c3", "resourceId": "r1",
                "resourcePath": "/users/{userId}/orders", "httpMethod": "GET", "stage": "v1",
                "path": "/v1/users/user-1/orders", "requestId": "r", "protocol": "HTTP/1.1",
                "requestTimeEpoch": 0,
                "identity": {"sourceIp": "127.0.0.1", "userAgent": "t"},
                "authorizer": {"claims": claims}
            },
            "body": null,
            "isBase64Encoded": false
        });
        lambda_http::request::from_str(&event.to_string()).unwrap()
    }

    #[test]
    fn a_rest_cognito_authorizer_payload_is_read_and_checked() {
        let auth = gateway("client-a", "sub");
        let now = now_seconds();
        let date = |seconds: u64| {
            let format = time::macros::format_description!(
                "[weekday repr:short] [month repr:short] [day] [hour]:[minute]:[second] UTC [year]"
            );
            time::OffsetDateTime::from_unix_timestamp(seconds as i64)
                .unwrap()
                .format(format)
                .unwrap()
        };
        // An ID token as a REST API's Cognito authorizer renders it: dates, not numbers.
        let id_token = |aud: &str, exp: u64| {
            v1_request(serde_json::json!({
                "sub": "user-1", "aud": aud, "token_use": "id",
                "iss": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc",
                "auth_time": (now - 60).to_string(),
                "iat": date(now - 60), "exp": date(exp)
            }))
        };
        let request = id_token("client-a", now + 3_600);
        assert_eq!(auth.subject(&request).unwrap(), "user-1");
        assert_eq!(request.uri().path(), "/v1/users/user-1/orders");
        // The REST authorizer does not check the audience: the function does.
        assert!(matches!(
            auth.subject(&id_token("client-b", now + 3_600)),
            Err(ServiceError::Unauthorized(_))
        ));
        assert!(matches!(
            auth.subject(&id_token("client-a", now - 600)),
            Err(ServiceError::Unauthorized(_))
        ));
    }

    #[test]
    fn a_list_valued_audience_is_matched_by_entry() {
        assert!(names_audience("client-a", "client-a"));
        assert!(names_audience("[client-b client-a]", "client-a"));
        assert!(names_audience(r#"["client-b","client-a"]"#, "client-a"));
        assert!(!names_audience("[client-b client-ab]", "client-a"));
        assert!(!names_audience("client-ab", "client-a"));
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc "), Some("abc"));
        assert_eq!(bearer_token("BEARER  abc"), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearerabc"), None);
    }

    #[test]
    fn api_gateway_mode_checks_the_audience() {
        let auth = gateway("client-a", "sub");
        let id_token = v2_request(
            serde_json::json!({"sub": "user-1", "aud": "client-a"}),
            None,
        );
        let access_token = v2_request(
            serde_json::json!({"sub": "user-1", "client_id": "client-a"}),
            None,
        );
        let foreign = v2_request(
            serde_json::json!({"sub": "user-1", "aud": "client-b"}),
            None,
        );
        assert_eq!(auth.subject(&id_token).unwrap(), "user-1");
        assert_eq!(auth.subject(&access_token).unwrap(), "user-1");
        assert!(matches!(
            auth.subject(&foreign),
            Err(ServiceError::Unauthorized(_))
        ));
    }

    #[test]
    fn jwt_mode_verifies_signature_issuer_audience_and_expiry() {
        let secret = b"0123456789abcdef0123456789abcdef".to_vec();
        let auth = Authenticator::new(&AuthConfig::Jwt {
            secret: secret.clone(),
            issuer: LOCAL_ISSUER.into(),
            audience: LOCAL_AUDIENCE.into(),
        });
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let bearer =
            |token: String| v2_request(serde_json::json!({}), Some(&format!("Bearer {token}")));
        let good = sign_token(&secret, LOCAL_ISSUER, LOCAL_AUDIENCE, "user-1", now, 60).unwrap();
        assert_eq!(auth.subject(&bearer(good.clone())).unwrap(), "user-1");
        let wrong_key = sign_token(
            b"another-secret-another-secret-xx",
            LOCAL_ISSUER,
            LOCAL_AUDIENCE,
            "user-1",
            now,
            60,
        )
        .unwrap();
        let wrong_issuer =
            sign_token(&secret, "someone-else", LOCAL_AUDIENCE, "user-1", now, 60).unwrap();
        let wrong_audience =
            sign_token(&secret, LOCAL_ISSUER, "other-api", "user-1", now, 60).unwrap();
        let expired = sign_token(
            &secret,
            LOCAL_ISSUER,
            LOCAL_AUDIENCE,
            "user-1",
            now - 3_600,
            60,
        )
        .unwrap();
        assert_eq!(
            auth.subject(&v2_request(
                serde_json::json!({}),
                Some(&format!("bearer {good}"))
            ))
            .unwrap(),
            "user-1",
            "the scheme is case-insensitive"
        );
        let not_yet = sign_token(
            &secret,
            LOCAL_ISSUER,
            LOCAL_AUDIENCE,
            "user-1",
            now + 600,
            3_600,
        )
        .unwrap();
        for token in [
            wrong_key,
            wrong_issuer,
            wrong_audience,
            expired,
            not_yet,
            "garbage".into(),
            String::new(),
        ] {
            assert!(matches!(
                auth.subject(&bearer(token)),
                Err(ServiceError::Unauthorized(_))
            ));
        }
        // A token in the claims alone does not authenticate in jwt mode.
        let claims_only = v2_request(serde_json::json!({"sub": "user-1"}), None);
        assert!(matches!(
            auth.subject(&claims_only),
            Err(ServiceError::Unauthorized(_))
        ));
        // The "none" algorithm is refused.
        let unsigned = format!(
            "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.",
            good.split('.').nth(1).unwrap()
        );
        assert!(matches!(
            auth.subject(&bearer(unsigned)),
            Err(ServiceError::Unauthorized(_))
        ));
    }
}
