//! Instants as the service writes them: UTC, RFC 3339, millisecond precision, so that their
//! text sorts in time order (the list index sorts by it).

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// An instant in UTC, written as RFC 3339 with millisecond precision
/// (`2026-11-25T21:50:00.123Z`), so that its text sorts in time order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Timestamp(OffsetDateTime);

impl Timestamp {
    pub fn from_datetime(instant: OffsetDateTime) -> Self {
        let utc = instant.to_offset(UtcOffset::UTC);
        let millis = utc.millisecond();
        // Truncating to milliseconds keeps the text form and the value in step.
        Self(utc.replace_millisecond(millis).unwrap_or(utc))
    }

    pub fn parse(text: &str) -> Option<Self> {
        OffsetDateTime::parse(text, &Rfc3339)
            .ok()
            .map(Self::from_datetime)
    }

    pub fn as_datetime(self) -> OffsetDateTime {
        self.0
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = self.0;
        write!(
            formatter,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        )
    }
}

impl TryFrom<String> for Timestamp {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value).ok_or_else(|| format!("invalid timestamp {value:?}"))
    }
}

impl From<Timestamp> for String {
    fn from(value: Timestamp) -> String {
        value.to_string()
    }
}

impl Timestamp {
    /// Now, on the system clock.
    pub fn now() -> Self {
        Self::from_datetime(OffsetDateTime::now_utc())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_render_sortable_utc_milliseconds() {
        let parsed = Timestamp::parse("2026-11-25T23:50:00.123456+02:00").unwrap();
        assert_eq!(parsed.to_string(), "2026-11-25T21:50:00.123Z");
        assert_eq!(Timestamp::parse(&parsed.to_string()), Some(parsed));
        assert!(Timestamp::parse("yesterday").is_none());
    }
}
