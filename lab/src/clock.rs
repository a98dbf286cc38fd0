//! The lab's clock: now, and every instant the lab writes or reads, on the `time` crate.
//! Instants travel as milliseconds since the Unix epoch (`i64`) between the parts of the lab;
//! as text they are RFC 3339 in UTC with milliseconds (`2026-11-25T21:50:00.123Z`, the form the
//! service's log lines carry, so the two compare as text), a time of day for the live lines
//! (`21:50:00.123`), or a compact stamp that names a report folder (`20261125T215000Z`).

use time::format_description::well_known::Rfc3339;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::OffsetDateTime;

/// RFC 3339 in UTC with exactly three decimals, as `order_service::domain::Timestamp` writes.
const MILLISECONDS: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
/// A time of day to the millisecond.
const TIME_OF_DAY: &[BorrowedFormatItem<'_>] =
    format_description!("[hour]:[minute]:[second].[subsecond digits:3]");
/// A compact UTC stamp, without separators, that sorts in time order.
const COMPACT: &[BorrowedFormatItem<'_>] =
    format_description!("[year][month][day]T[hour][minute][second]Z");

/// Now, in milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Now, in whole seconds since the Unix epoch (a token's `iat`).
pub(crate) fn now_seconds() -> u64 {
    u64::try_from(OffsetDateTime::now_utc().unix_timestamp()).unwrap_or(0)
}

/// The instant `ms` after the epoch, if it is one `time` can represent.
fn instant(ms: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}

/// An RFC 3339 time (any offset, any precision) in milliseconds since the epoch.
pub(crate) fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    let parsed = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    Some((parsed.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// `2026-11-25T21:50:00.123Z` (the number itself when it is no representable instant).
pub(crate) fn format_ms(ms: i64) -> String {
    instant(ms)
        .and_then(|instant| instant.format(MILLISECONDS).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// `21:50:00.123`.
pub(crate) fn format_clock(ms: i64) -> String {
    instant(ms)
        .and_then(|instant| instant.format(TIME_OF_DAY).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// `20261125T215000Z`: the stamp of the instant `ms`.
pub(crate) fn compact_stamp(ms: i64) -> String {
    instant(ms)
        .and_then(|instant| instant.format(COMPACT).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// Now as `20261125T215000Z`: the prefix of every report folder, so that they sort by time.
pub(crate) fn utc_stamp() -> String {
    compact_stamp(now_ms())
}

#[cfg(test)]
mod tests {
    use order_service::domain::Timestamp;

    use super::*;

    #[test]
    fn instants_are_written_and_read_in_each_form() {
        let ms = parse_rfc3339_ms("2026-11-25T23:50:00.123456+02:00").unwrap();
        assert_eq!(format_ms(ms), "2026-11-25T21:50:00.123Z");
        assert_eq!(format_clock(ms), "21:50:00.123");
        assert_eq!(compact_stamp(ms), "20261125T215000Z");
        assert_eq!(parse_rfc3339_ms(&format_ms(ms)), Some(ms));
        assert_eq!(format_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(parse_rfc3339_ms("yesterday"), None);
        assert_eq!(format_ms(i64::MAX), i64::MAX.to_string());
    }

    #[test]
    fn the_lab_writes_instants_as_the_service_does() {
        // Log lines and report times compare as text, so both sides write the same form.
        for text in ["2026-11-25T21:50:00.123Z", "2026-01-02T03:04:05.006Z"] {
            let ms = parse_rfc3339_ms(text).unwrap();
            assert_eq!(format_ms(ms), Timestamp::parse(text).unwrap().to_string());
        }
        let now = now_ms();
        assert!(now > 1_764_000_000_000, "the clock reads the epoch in ms");
        assert!((now_seconds() as i64 - now / 1_000).abs() <= 1);
    }
}
