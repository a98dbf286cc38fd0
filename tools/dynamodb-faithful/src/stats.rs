//! What went through the proxy: per operation and per partition, the requests, the conflicts
//! and throttles the proxy raised, and the capacity units consumed; rendered as JSON
//! (`GET /_faithful/stats`) and as the text summary printed on exit and on SIGUSR1.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use derive_more::{Add, Sum};
use serde::{Deserialize, Serialize};

use crate::capacity::Limits;

/// One operation's figures; they add up field by field.
#[derive(Debug, Clone, Default, PartialEq, Add, Sum, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationStats {
    /// Requests received.
    pub requests: u64,
    /// Requests sent on to DynamoDB Local.
    pub forwarded: u64,
    /// Refused for a transaction conflict (by the proxy's model).
    pub conflicts: u64,
    /// Refused (wholly, or some of a batch) for a partition's throughput.
    pub throttled: u64,
    /// Resent transactions refused while their first request ran.
    pub in_progress: u64,
    /// Answered by an injected fault.
    pub injected: u64,
    /// Answers from DynamoDB Local that report a failed condition.
    pub condition_failures: u64,
    pub read_units: f64,
    pub write_units: f64,
    /// Sum of the forwarded requests' latencies through DynamoDB Local, and of their service
    /// times (the part that was DynamoDB Local's own work, not queueing).
    pub latency_ms: f64,
    pub service_ms: f64,
}

/// One partition's figures; they add up field by field.
#[derive(Debug, Clone, Default, PartialEq, Add, Sum, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartitionStats {
    pub read_units: f64,
    pub write_units: f64,
    pub throttled: u64,
    pub conflicts: u64,
}

/// Everything counted so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub seconds: f64,
    pub limits: Option<Limits>,
    pub hold_ms: u64,
    /// Connections accepted, and those closed at once during an injected outage.
    pub connections: u64,
    pub refused_connections: u64,
    pub operations: BTreeMap<String, OperationStats>,
    pub partitions: BTreeMap<String, PartitionStats>,
}

impl Summary {
    /// The operation totals.
    pub fn total(&self) -> OperationStats {
        self.operations.values().cloned().sum()
    }

    /// One operation's figures (zero when it was never seen).
    pub fn operation(&self, name: &str) -> OperationStats {
        self.operations.get(name).cloned().unwrap_or_default()
    }

    /// The text summary: a line per operation, then the busiest partitions.
    pub fn render(&self, busiest: usize) -> String {
        let mut text = String::new();
        let limits = self.limits.map_or_else(
            || "unlimited".to_owned(),
            |limits| {
                format!(
                    "{} WCU/s, {} RCU/s per partition",
                    limits.write_units_per_second, limits.read_units_per_second
                )
            },
        );
        let _ = writeln!(
            text,
            "dynamodb-faithful: {:.1} s; {limits}; hold +{} ms",
            self.seconds, self.hold_ms
        );
        let _ = writeln!(
            text,
            "{:<20} {:>9} {:>9} {:>9} {:>9} {:>7} {:>9} {:>10} {:>10} {:>8} {:>8}",
            "operation",
            "requests",
            "forwarded",
            "conflicts",
            "throttled",
            "inprog",
            "condfail",
            "WCU",
            "RCU",
            "lat ms",
            "svc ms"
        );
        let mut rows: Vec<(&str, OperationStats)> = self
            .operations
            .iter()
            .map(|(name, stats)| (name.as_str(), stats.clone()))
            .collect();
        rows.push(("total", self.total()));
        for (name, stats) in rows {
            let per = |sum: f64| {
                if stats.forwarded == 0 {
                    0.0
                } else {
                    sum / stats.forwarded as f64
                }
            };
            let _ = writeln!(
                text,
                "{name:<20} {:>9} {:>9} {:>9} {:>9} {:>7} {:>9} {:>10.1} {:>10.1} {:>8.2} {:>8.2}",
                stats.requests,
                stats.forwarded,
                stats.conflicts,
                stats.throttled,
                stats.in_progress,
                stats.condition_failures,
                stats.write_units,
                stats.read_units,
                per(stats.latency_ms),
                per(stats.service_ms),
            );
        }
        let mut partitions: Vec<(&String, &PartitionStats)> = self.partitions.iter().collect();
        partitions.sort_by(|a, b| {
            let load = |stats: &PartitionStats| stats.write_units + stats.read_units / 3.0;
            load(b.1).total_cmp(&load(a.1))
        });
        let _ = writeln!(text, "busiest partitions (units/s over the run):");
        for (partition, stats) in partitions.into_iter().take(busiest) {
            let rate = |units: f64| units / self.seconds.max(0.001);
            let _ = writeln!(
                text,
                "  {partition:<48} WCU {:>10.1} ({:>7.1}/s)  RCU {:>10.1} ({:>7.1}/s)  throttled {:>6}  conflicts {:>6}",
                stats.write_units,
                rate(stats.write_units),
                stats.read_units,
                rate(stats.read_units),
                stats.throttled,
                stats.conflicts
            );
        }
        text
    }
}

/// The counters, shared by every connection.
#[derive(Debug)]
pub(crate) struct Stats {
    started: Instant,
    summary: Mutex<Summary>,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            summary: Mutex::new(Summary::default()),
        }
    }
}

impl Stats {
    fn lock(&self) -> MutexGuard<'_, Summary> {
        self.summary.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Changes one operation's figures.
    pub(crate) fn operation(&self, name: &str, change: impl FnOnce(&mut OperationStats)) {
        change(self.lock().operations.entry(name.to_owned()).or_default());
    }

    /// Changes one partition's figures.
    pub(crate) fn partition(&self, name: &str, change: impl FnOnce(&mut PartitionStats)) {
        change(self.lock().partitions.entry(name.to_owned()).or_default());
    }

    /// A copy of everything so far, with the settings in force.
    pub(crate) fn snapshot(&self, limits: Limits, hold: Duration) -> Summary {
        let mut summary = self.lock().clone();
        summary.seconds = self.started.elapsed().as_secs_f64();
        summary.limits = Some(limits);
        summary.hold_ms = hold.as_millis() as u64;
        summary
    }

    /// Counts a connection, and whether it was refused.
    pub(crate) fn connection(&self, refused: bool) {
        let mut summary = self.lock();
        summary.connections += 1;
        if refused {
            summary.refused_connections += 1;
        }
    }

    /// Starts counting afresh.
    pub(crate) fn reset(&self) {
        *self.lock() = Summary::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_totals_operations_and_ranks_partitions() {
        let stats = Stats::default();
        stats.operation("PutItem", |s| {
            s.requests += 2;
            s.forwarded += 2;
            s.write_units += 2.0;
        });
        stats.operation("TransactWriteItems", |s| {
            s.requests += 3;
            s.forwarded += 1;
            s.conflicts += 1;
            s.throttled += 1;
            s.write_units += 4.0;
        });
        stats.partition("t/cold", |p| p.write_units += 1.0);
        stats.partition("t/hot", |p| {
            p.write_units += 5.0;
            p.throttled += 1;
        });
        let summary = stats.snapshot(Limits::PRODUCTION, Duration::from_millis(7));
        let total = summary.total();
        assert_eq!(
            (total.requests, total.forwarded, total.conflicts),
            (5, 3, 1)
        );
        assert_eq!(total.write_units, 6.0);
        let text = summary.render(1);
        assert!(text.contains("hold +7 ms"), "{text}");
        assert!(text.contains("t/hot"), "{text}");
        assert!(!text.contains("t/cold"), "only the busiest: {text}");
    }
}
