//! What an `Idempotency-Key` means, in one place (the model of Stripe's idempotent requests,
//! the IETF `Idempotency-Key` draft and Powertools' persistence records):
//!
//! - A key belongs to its user. The first executed request with it fixes the request's
//!   [`Fingerprint`] (route, order id, body content).
//! - That request's business outcome, success or refusal, is the key's [`Answer`]. Every later
//!   request with the key and the same fingerprint gets that answer, whatever happened since;
//!   a different fingerprint is refused ([`Conflict::KeyReused`]).
//! - While the first request is in flight, the key is held by its [`Claim`]; a retry then is
//!   told to come back later ([`Conflict::InFlight`]) and is never executed a second time.
//! - Validation errors and server errors are no outcome: they release the claim, so a fixed or
//!   retried request can still go through.
//!
//! How the records are stored (a claim item, completed in the same transaction as the effect)
//! is the store's business; what they mean is decided here.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Change, NewOrder, Order, OrderId, Refusal, UserId, ValidationError};

/// The longest Idempotency-Key we accept, as in the API contract.
pub const MAX_IDEMPOTENCY_KEY_LENGTH: usize = 255;

/// How long a claim holds a key against retries while its request runs. Longer than the
/// functions' timeout (10 s in template.yaml; a test keeps them in step), so a claim can only
/// lapse once its request can no longer be running.
pub const IN_FLIGHT_LEASE: Duration = Duration::from_secs(15);

/// How long a key's answer is kept by default (`IDEMPOTENCY_TTL_HOURS`).
pub const DEFAULT_ANSWER_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// The times, in epoch seconds, a claim made at `now` holds its key until (the lease) and its
/// record is kept until (the answer's TTL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimTimes {
    pub locked_until: i64,
    pub expires_at: i64,
}

impl ClaimTimes {
    /// The record is never gone before its lease ends, however short the answer TTL: a
    /// record that expired while its request still ran would let a retry run it again.
    pub fn starting(now: i64, answer_ttl: Duration) -> Self {
        let seconds = |duration: Duration| i64::try_from(duration.as_secs()).unwrap_or(i64::MAX);
        let locked_until = now.saturating_add(seconds(IN_FLIGHT_LEASE));
        Self {
            locked_until,
            expires_at: now.saturating_add(seconds(answer_ttl)).max(locked_until),
        }
    }

    /// Until when an answer given at `now` is kept: the answer's TTL counts from the answer.
    pub fn answer_kept_until(now: i64, answer_ttl: Duration) -> i64 {
        now.saturating_add(i64::try_from(answer_ttl.as_secs()).unwrap_or(i64::MAX))
    }
}

/// A client-chosen Idempotency-Key: 1 to 255 printable ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        if value.is_empty() || value.len() > MAX_IDEMPOTENCY_KEY_LENGTH {
            return Err(ValidationError::new(
                "Idempotency-Key must be 1 to 255 characters long",
            ));
        }
        if !value.bytes().all(|byte| (0x20..=0x7e).contains(&byte)) {
            return Err(ValidationError::new(
                "Idempotency-Key may contain only printable ASCII characters",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id a create request with this key gets: the same user and key always give the same
    /// id, so even a retry after the key's answer expired addresses the order it created.
    pub fn order_id(&self, user_id: &UserId) -> OrderId {
        // The derivation predates this module; saved events and existing orders rely on it.
        let mut hasher = Sha256::new();
        hasher.update(b"create-order\0");
        hasher.update(user_id.as_str().as_bytes());
        hasher.update(b"\0");
        hasher.update(self.0.as_bytes());
        let digest = hasher.finalize();
        let mut first_sixteen = [0_u8; 16];
        first_sixteen.copy_from_slice(&digest[..16]);
        OrderId::from_bits(u128::from_be_bytes(first_sixteen))
    }

    /// A fixed-length name for the key's record (keys may hold any printable character).
    pub fn record_id(&self) -> String {
        hex(&digest(&[b"idempotency-key", self.0.as_bytes()]))
    }
}

impl TryFrom<String> for IdempotencyKey {
    type Error = ValidationError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<IdempotencyKey> for String {
    fn from(value: IdempotencyKey) -> String {
        value.0
    }
}

fn digest(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hasher.finalize().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// What identifies a request for its key: the route, the order it addresses and the content
/// of its body (parsed, so a retry that spaces its JSON differently is the same request).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// The version of the fingerprint's recipe, written in front of it, so that a changed
    /// recipe can still recognise records written by the old one.
    const VERSION: &'static str = "v2:";

    /// A create request: its lines in product order (a retry may list them in another order;
    /// each product appears once), each product with its quantity.
    pub fn create(order: &NewOrder) -> Self {
        let mut lines: Vec<_> = order.lines().iter().collect();
        lines.sort_by(|a, b| a.product_id.cmp(&b.product_id));
        let mut parts: Vec<Vec<u8>> = vec![b"create-order".to_vec()];
        for line in lines {
            parts.push(line.product_id.as_str().as_bytes().to_vec());
            parts.push(line.quantity.get().to_be_bytes().to_vec());
        }
        let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        Self(format!("{}{}", Self::VERSION, hex(&digest(&parts))))
    }

    /// The fingerprint the first recipe gave the same request: its lines in the order sent,
    /// no version. Records written before the recipe changed carry it.
    fn create_unversioned(order: &NewOrder) -> Self {
        let mut parts: Vec<Vec<u8>> = vec![b"create-order".to_vec()];
        for line in order.lines() {
            parts.push(line.product_id.as_str().as_bytes().to_vec());
            parts.push(line.quantity.get().to_be_bytes().to_vec());
        }
        let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        Self(hex(&digest(&parts)))
    }

    /// A change of `order_id`: its kind, the order, and what it carries (a refund's lines, in
    /// product order). A payment's or cancellation's is the first recipe's, versioned.
    pub fn change(change: &Change, order_id: OrderId) -> Self {
        let order = order_id.to_string();
        let mut parts: Vec<Vec<u8>> = vec![
            change.operation().as_bytes().to_vec(),
            order.as_bytes().to_vec(),
        ];
        if let Change::Refund(lines) = change {
            let mut lines: Vec<_> = lines.lines().iter().collect();
            lines.sort_by(|a, b| a.product_id.cmp(&b.product_id));
            for line in lines {
                parts.push(line.product_id.as_str().as_bytes().to_vec());
                parts.push(line.quantity.get().to_be_bytes().to_vec());
            }
        }
        let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        Self(format!("{}{}", Self::VERSION, hex(&digest(&parts))))
    }

    /// The first recipe's fingerprint of a payment or cancellation (refunds came later).
    fn change_unversioned(change: &Change, order_id: OrderId) -> Option<Self> {
        matches!(change, Change::Pay | Change::Cancel).then(|| {
            Self(hex(&digest(&[
                change.operation().as_bytes(),
                order_id.to_string().as_bytes(),
            ])))
        })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The business outcome of a state-changing request, as its key keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Answer {
    /// A create succeeded: the order as it was created.
    Created(Order),
    /// A payment or cancellation succeeded: the order as the change left it.
    Updated(Order),
    /// The request was refused for a business reason.
    Refused(Refusal),
}

/// A request's hold on its key while it runs. The token tells its own record apart from one a
/// later request made after the lease lapsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub key: IdempotencyKey,
    pub fingerprint: Fingerprint,
    pub token: String,
    /// The same request's fingerprint by the recipe before `Fingerprint::VERSION`, which
    /// records written before the change carry (they live a day at most).
    earlier: Option<Fingerprint>,
}

impl Claim {
    pub fn new(key: IdempotencyKey, fingerprint: Fingerprint) -> Self {
        Self {
            key,
            fingerprint,
            token: ulid::Ulid::new().to_string(),
            earlier: None,
        }
    }

    /// A claim of `key` for creating `order`.
    pub fn to_create(key: IdempotencyKey, order: &NewOrder) -> Self {
        Self {
            earlier: Some(Fingerprint::create_unversioned(order)),
            ..Self::new(key, Fingerprint::create(order))
        }
    }

    /// A claim of `key` for `change` of `order_id`.
    pub fn to_change(key: IdempotencyKey, change: &Change, order_id: OrderId) -> Self {
        Self {
            earlier: Fingerprint::change_unversioned(change, order_id),
            ..Self::new(key, Fingerprint::change(change, order_id))
        }
    }

    /// Whether a recorded fingerprint is this request's.
    pub fn recognises(&self, recorded: &Fingerprint) -> bool {
        *recorded == self.fingerprint || Some(recorded) == self.earlier.as_ref()
    }

    /// What a request gets when its key already has a live record: the recorded answer if it
    /// is the same request, otherwise a conflict.
    pub fn against(&self, prior: &Prior) -> Result<Answer, Conflict> {
        let (fingerprint, answer) = match prior {
            Prior::InFlight { fingerprint, .. } => (fingerprint, None),
            Prior::Answered {
                fingerprint,
                answer,
                ..
            } => (fingerprint, Some(answer)),
        };
        if !self.recognises(fingerprint) {
            return Err(Conflict::KeyReused);
        }
        answer.cloned().ok_or(Conflict::InFlight)
    }
}

/// A live record of a key, found by a request that tried to claim it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prior {
    /// A request holds the key and has not answered yet.
    InFlight {
        fingerprint: Fingerprint,
        /// The token of the claim that holds it.
        token: String,
    },
    /// A request answered.
    Answered {
        fingerprint: Fingerprint,
        answer: Answer,
        /// The token of the claim that answered.
        token: String,
    },
}

impl Prior {
    /// Whether this record is `claim`'s own: the request met its own earlier write (the SDK
    /// retried a call whose answer was lost after it had committed), not another request's.
    pub fn made_by(&self, claim: &Claim) -> bool {
        let (Prior::InFlight { token, .. } | Prior::Answered { token, .. }) = self;
        *token == claim.token
    }
}

/// Why a request with a used key is not answered from its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    /// The key was used for a different request.
    KeyReused,
    /// The request that holds the key is still running.
    InFlight,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CreateOrderRequest, ProductId};

    fn new_order(body: &str) -> NewOrder {
        NewOrder::try_from(serde_json::from_str::<CreateOrderRequest>(body).unwrap()).unwrap()
    }

    #[test]
    fn idempotency_keys_are_bounded_printable_ascii() {
        assert!(IdempotencyKey::parse("a").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse("tab\there").is_err());
        assert!(IdempotencyKey::parse("ключ").is_err());
    }

    #[test]
    fn keyed_order_ids_are_stable_per_user_and_key() {
        let user = UserId::parse("user-1").unwrap();
        let other_user = UserId::parse("user-2").unwrap();
        let key = IdempotencyKey::parse("key-1").unwrap();
        let first = key.order_id(&user);
        assert_eq!(first, key.order_id(&user));
        assert_ne!(first, key.order_id(&other_user));
        assert_ne!(
            first,
            IdempotencyKey::parse("key-2").unwrap().order_id(&user)
        );
        assert_eq!(OrderId::parse(&first.to_string()), Ok(first));
    }

    #[test]
    fn record_ids_are_fixed_length_and_distinct() {
        let a = IdempotencyKey::parse("a/b#c").unwrap().record_id();
        let b = IdempotencyKey::parse("a/b#d").unwrap().record_id();
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|byte| byte.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn fingerprints_tell_routes_orders_and_bodies_apart() {
        let order = OrderId::random();
        let other = OrderId::random();
        assert_eq!(
            Fingerprint::change(&Change::Pay, order),
            Fingerprint::change(&Change::Pay, order)
        );
        assert_ne!(
            Fingerprint::change(&Change::Pay, order),
            Fingerprint::change(&Change::Pay, other)
        );
        assert_ne!(
            Fingerprint::change(&Change::Pay, order),
            Fingerprint::change(&Change::Cancel, order)
        );
        let spaced = new_order(r#"{ "items" : [ {"quantity":2, "productId":"product-1"} ] }"#);
        let compact = new_order(r#"{"items":[{"productId":"product-1","quantity":2}]}"#);
        let more = new_order(r#"{"items":[{"productId":"product-1","quantity":3}]}"#);
        assert_eq!(Fingerprint::create(&spaced), Fingerprint::create(&compact));
        assert_ne!(Fingerprint::create(&compact), Fingerprint::create(&more));
        // Length-prefixed parts: "product-1" + 12 differs from "product-11" + 2.
        let a = new_order(r#"{"items":[{"productId":"product-1","quantity":12}]}"#);
        let b = new_order(r#"{"items":[{"productId":"product-11","quantity":2}]}"#);
        assert_ne!(Fingerprint::create(&a), Fingerprint::create(&b));
    }

    #[test]
    fn a_prior_record_answers_the_same_request_and_refuses_another() {
        let key = IdempotencyKey::parse("k").unwrap();
        let order = OrderId::random();
        let claim = Claim::new(key.clone(), Fingerprint::change(&Change::Pay, order));
        let answer = Answer::Refused(Refusal::OrderCancelled);
        let other = "another request".to_owned();
        assert_eq!(
            claim.against(&Prior::Answered {
                fingerprint: Fingerprint::change(&Change::Pay, order),
                answer: answer.clone(),
                token: other.clone(),
            }),
            Ok(answer.clone())
        );
        assert_eq!(
            claim.against(&Prior::Answered {
                fingerprint: Fingerprint::change(&Change::Cancel, order),
                answer,
                token: other.clone(),
            }),
            Err(Conflict::KeyReused)
        );
        let in_flight = Prior::InFlight {
            fingerprint: Fingerprint::change(&Change::Pay, order),
            token: other.clone(),
        };
        assert_eq!(claim.against(&in_flight), Err(Conflict::InFlight));
        assert!(!in_flight.made_by(&claim));
        assert_eq!(
            claim.against(&Prior::InFlight {
                fingerprint: Fingerprint::change(&Change::Cancel, order),
                token: other,
            }),
            Err(Conflict::KeyReused)
        );
        // The request's own record, met again after a lost answer, is its own.
        let own = Prior::InFlight {
            fingerprint: claim.fingerprint.clone(),
            token: claim.token.clone(),
        };
        assert!(own.made_by(&claim));
        assert_ne!(
            claim.token,
            Claim::new(key, Fingerprint::change(&Change::Pay, order)).token
        );
    }

    #[test]
    fn a_create_is_the_same_request_whatever_its_line_order_and_old_records_still_match() {
        let forwards = new_order(
            r#"{"items":[{"productId":"product-1","quantity":1},{"productId":"product-2","quantity":2}]}"#,
        );
        let backwards = new_order(
            r#"{"items":[{"productId":"product-2","quantity":2},{"productId":"product-1","quantity":1}]}"#,
        );
        assert_eq!(
            Fingerprint::create(&forwards),
            Fingerprint::create(&backwards)
        );
        assert!(Fingerprint::create(&forwards).as_str().starts_with("v2:"));
        // A record written by the first recipe (no version, line order as sent) is recognised.
        let key = IdempotencyKey::parse("k").unwrap();
        let claim = Claim::to_create(key.clone(), &forwards);
        assert!(claim.recognises(&Fingerprint::create_unversioned(&forwards)));
        assert!(claim.recognises(&Fingerprint::create(&backwards)));
        assert!(!claim.recognises(&Fingerprint::create_unversioned(&backwards)));
        let order = OrderId::random();
        let paying = Claim::to_change(key, &Change::Pay, order);
        let earlier = |change: &Change| Fingerprint::change_unversioned(change, order).unwrap();
        assert!(paying.recognises(&earlier(&Change::Pay)));
        assert!(!paying.recognises(&earlier(&Change::Cancel)));
        // A refund's fingerprint carries its lines, in product order.
        let refund = |body: &str| Fingerprint::change(&Change::Refund(new_order(body)), order);
        assert_eq!(
            refund(r#"{"items":[{"productId":"a","quantity":1},{"productId":"b","quantity":2}]}"#),
            refund(r#"{"items":[{"productId":"b","quantity":2},{"productId":"a","quantity":1}]}"#)
        );
        assert_ne!(
            refund(r#"{"items":[{"productId":"a","quantity":1}]}"#),
            refund(r#"{"items":[{"productId":"a","quantity":2}]}"#)
        );
    }

    #[test]
    fn a_claims_record_outlives_its_lease_whatever_the_ttl() {
        let times = ClaimTimes::starting(1_000, Duration::ZERO);
        assert_eq!(times.locked_until, 1_000 + IN_FLIGHT_LEASE.as_secs() as i64);
        assert!(times.expires_at >= times.locked_until);
        let day = ClaimTimes::starting(1_000, DEFAULT_ANSWER_TTL);
        assert_eq!(day.expires_at, 1_000 + 86_400);
    }

    #[test]
    fn answers_round_trip_through_serde() {
        let answer = Answer::Refused(Refusal::OutOfStock {
            product_id: ProductId::parse("product-1").unwrap(),
        });
        let text = serde_json::to_string(&answer).unwrap();
        assert_eq!(
            text,
            r#"{"REFUSED":{"OUT_OF_STOCK":{"productId":"product-1"}}}"#
        );
        assert_eq!(serde_json::from_str::<Answer>(&text).unwrap(), answer);
    }
}
