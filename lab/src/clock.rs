//! The lab's clock: the stamps it puts on what it writes (a report folder's name, a
//! deployment's time).

/// Now in UTC as `YYYYMMDDTHHMMSSZ`: the prefix of every report folder, so that they sort by
/// time.
pub(crate) fn utc_stamp() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}
