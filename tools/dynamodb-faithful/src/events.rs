//! The event log: one JSON line per conflict or throttle the proxy raises, appended to a file
//! (the local stack appends them to its functions' log, where `cargo xtask monitor` reads them
//! as CloudWatch would read DynamoDB's `TransactionConflict` and `ThrottledRequests` metrics).

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// What the proxy refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    Conflict,
    Throttle,
}

impl Refused {
    fn name(self) -> &'static str {
        match self {
            Refused::Conflict => "conflict",
            Refused::Throttle => "throttle",
        }
    }
}

/// Where the lines go; writes are whole lines in one `write`, so they interleave cleanly with
/// other processes appending to the same file.
#[derive(Debug, Default)]
pub(crate) struct EventLog {
    file: Option<Mutex<File>>,
}

/// The message every line carries, for readers to pick the proxy's lines out of a shared log.
pub const EVENT_MESSAGE: &str = "dynamodb-faithful";

impl EventLog {
    pub(crate) fn open(path: Option<&Path>) -> std::io::Result<Self> {
        let file = match path {
            Some(path) => Some(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            )),
            None => None,
        };
        Ok(Self { file })
    }

    /// Writes one line: when, what was refused, for which operation and partition.
    pub(crate) fn record(&self, refused: Refused, operation: &str, partition: Option<&str>) {
        let Some(file) = &self.file else { return };
        let now = OffsetDateTime::now_utc();
        let timestamp = now
            .replace_nanosecond(now.millisecond() as u32 * 1_000_000)
            .unwrap_or(now)
            .format(&Rfc3339)
            .unwrap_or_default();
        let mut line = json!({
            "timestamp": timestamp,
            "message": EVENT_MESSAGE,
            "event": refused.name(),
            "operation": operation,
            "partition": partition,
        })
        .to_string();
        line.push('\n');
        let mut file = file.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = file.write_all(line.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_refusal_is_one_json_line() {
        let path = std::env::temp_dir().join(format!("faithful-events-{}.log", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let log = EventLog::open(Some(&path)).unwrap();
        log.record(Refused::Throttle, "TransactWriteItems", Some("t/PRODUCT#p"));
        log.record(Refused::Conflict, "PutItem", None);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["message"], EVENT_MESSAGE);
        assert_eq!(lines[0]["event"], "throttle");
        assert_eq!(lines[0]["partition"], "t/PRODUCT#p");
        assert!(lines[1]["timestamp"].as_str().unwrap().ends_with('Z'));
        let _ = std::fs::remove_file(&path);
    }
}
