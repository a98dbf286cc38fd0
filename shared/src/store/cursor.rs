//! The opaque list cursor: base64url of a small JSON document naming the last order returned.
//! Decoding is strict, so a tampered cursor is a 400 and never reaches DynamoDB as a bad key.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::domain::{OrderId, Timestamp, ValidationError};

/// Which page of a user's orders to read: at most `limit` orders, newest first, after `after`
/// (`None`: from the newest). The limit is checked here, once, so no store is asked for a
/// page DynamoDB would refuse (a query limit below 1) or the API does not serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    limit: u16,
    after: Option<Cursor>,
}

impl PageRequest {
    pub const DEFAULT_LIMIT: u16 = 20;
    pub const MAX_LIMIT: u16 = 100;

    /// A page of `limit` orders, which must be from 1 to `MAX_LIMIT`.
    pub fn new(limit: u16, after: Option<Cursor>) -> Result<Self, ValidationError> {
        if (1..=Self::MAX_LIMIT).contains(&limit) {
            Ok(Self { limit, after })
        } else {
            Err(ValidationError::new(format!(
                "limit must be a whole number from 1 to {}",
                Self::MAX_LIMIT
            )))
        }
    }

    /// The first page, of the default size.
    pub fn first() -> Self {
        Self {
            limit: Self::DEFAULT_LIMIT,
            after: None,
        }
    }

    /// The page of the same size that starts after `cursor`.
    pub fn after(self, cursor: Cursor) -> Self {
        Self {
            after: Some(cursor),
            ..self
        }
    }

    pub fn limit(&self) -> u16 {
        self.limit
    }

    pub fn cursor(&self) -> Option<&Cursor> {
        self.after.as_ref()
    }
}

/// Where the next page starts: the (createdAt, orderId) of the last order of this page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: Timestamp,
    pub order_id: OrderId,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CursorDocument {
    v: u8,
    t: Timestamp,
    o: OrderId,
}

const CURSOR_VERSION: u8 = 1;
const MAX_CURSOR_LENGTH: usize = 256;

impl Cursor {
    pub fn encode(&self) -> String {
        let document = CursorDocument {
            v: CURSOR_VERSION,
            t: self.created_at,
            o: self.order_id,
        };
        // Serializing this plain struct cannot fail; an empty cursor would be rejected anyway.
        let json = serde_json::to_vec(&document).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(json)
    }

    pub fn decode(text: &str) -> Result<Self, ValidationError> {
        let invalid = || ValidationError::new("cursor is not a cursor this service issued");
        if text.is_empty() || text.len() > MAX_CURSOR_LENGTH {
            return Err(invalid());
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
        let document: CursorDocument = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
        if document.v != CURSOR_VERSION {
            return Err(invalid());
        }
        Ok(Self {
            created_at: document.t,
            order_id: document.o,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_page_request_holds_a_limit_a_store_can_serve_and_keeps_it_for_the_next_page() {
        for refused in [0, PageRequest::MAX_LIMIT + 1, u16::MAX] {
            assert!(PageRequest::new(refused, None).is_err(), "{refused}");
        }
        let first = PageRequest::new(PageRequest::MAX_LIMIT, None).unwrap();
        assert_eq!((first.limit(), first.cursor()), (100, None));
        let cursor = Cursor {
            created_at: Timestamp::parse("2026-11-25T21:50:00.123Z").unwrap(),
            order_id: OrderId::random(),
        };
        let next = first.after(cursor);
        assert_eq!((next.limit(), next.cursor()), (100, Some(&cursor)));
        assert_eq!(PageRequest::first().limit(), PageRequest::DEFAULT_LIMIT);
    }

    #[test]
    fn round_trips() {
        let cursor = Cursor {
            created_at: Timestamp::parse("2026-11-25T21:50:00.123Z").unwrap(),
            order_id: OrderId::random(),
        };
        assert_eq!(Cursor::decode(&cursor.encode()), Ok(cursor));
    }

    #[test]
    fn rejects_tampering() {
        assert!(Cursor::decode("").is_err());
        assert!(Cursor::decode("!!!").is_err());
        let foreign = URL_SAFE_NO_PAD.encode(br#"{"v":1,"t":"x","o":"y"}"#);
        assert!(Cursor::decode(&foreign).is_err());
        let key_injection = URL_SAFE_NO_PAD.encode(br#"{"pk":{"S":"USER#user-2"}}"#);
        assert!(Cursor::decode(&key_injection).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in ".{0,300}") {
            let _ = Cursor::decode(&text);
        }

        #[test]
        fn arbitrary_base64_json_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Cursor::decode(&URL_SAFE_NO_PAD.encode(bytes));
        }
    }
}
