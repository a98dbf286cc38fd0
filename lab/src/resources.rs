//! Samples CPU and RSS of the local stack's processes (DynamoDB Local's JVM, cargo lambda
//! watch, each function instance) from the process table while a load runs, and summarises
//! start vs. end and peaks, so a report can say what saturated first and whether memory drifted.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use order_service::app::FUNCTIONS;
use serde::Serialize;

use crate::process;
use crate::state::StackState;

#[derive(Debug, Clone)]
struct ProcessSample {
    group: String,
    pid: u32,
    cpu_ms: u64,
    rss_kb: u64,
}

fn sample(dynamodb_pid: u32, watch_pgid: u32) -> Vec<ProcessSample> {
    let Ok(table) = process::Table::read(&[]) else {
        return Vec::new();
    };
    table
        .iter()
        .filter_map(|process| {
            let is_function = FUNCTIONS.contains(&process.name.as_str());
            // The watch process and everything it started (its function instances). k6 is sampled too: on a two-core machine the load generator
            // competes for the same CPU as the service, and a report should say how much it
            // took.
            let group = if process.pid == dynamodb_pid {
                "dynamodb-local"
            } else if ((is_function || process.name == crate::gateway::BINARY)
                && table.descends_from(process.pid, watch_pgid))
                || process.name == "k6"
            {
                process.name.as_str()
            } else {
                return None;
            };
            Some(ProcessSample {
                group: group.to_owned(),
                pid: process.pid,
                cpu_ms: process.cpu_ms,
                rss_kb: process.rss_kb,
            })
        })
        .collect()
}

/// Per process group (e.g. all `create-order` instances together).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GroupUsage {
    pub processes: usize,
    pub rss_start_mb: f64,
    pub rss_end_mb: f64,
    pub rss_peak_mb: f64,
    pub cpu_avg_percent: f64,
    pub cpu_peak_percent: f64,
    /// CPU time the group used over the sampled window (user + system), in seconds.
    pub cpu_seconds: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ResourceSummary {
    pub interval_seconds: f64,
    pub samples: usize,
    pub groups: BTreeMap<String, GroupUsage>,
    /// (seconds since start, group, cpu %, rss MiB) rows.
    #[serde(skip)]
    pub series: Vec<(f64, String, f64, f64)>,
}

impl ResourceSummary {
    /// The group with the highest average CPU: what saturates first as load grows.
    pub(crate) fn busiest(&self) -> Option<(&String, &GroupUsage)> {
        self.groups
            .iter()
            .max_by(|a, b| a.1.cpu_avg_percent.total_cmp(&b.1.cpu_avg_percent))
    }
}

pub(crate) struct ResourceSampler {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<ResourceSummary>,
}

impl ResourceSampler {
    pub(crate) fn start(state: &StackState, interval: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let (dynamodb_pid, watch_pgid) = (state.dynamodb_pid, state.watch_pgid);
        let handle = std::thread::spawn(move || {
            let started = Instant::now();
            let mut previous: BTreeMap<u32, u64> = BTreeMap::new();
            let mut per_group: BTreeMap<String, Vec<(f64, f64, usize, f64)>> = BTreeMap::new();
            let mut summary = ResourceSummary {
                interval_seconds: interval.as_secs_f64(),
                ..ResourceSummary::default()
            };
            let mut last = Instant::now();
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                if last.elapsed() < interval {
                    continue;
                }
                let elapsed = last.elapsed().as_secs_f64();
                last = Instant::now();
                let mut groups: BTreeMap<String, (f64, f64, usize, f64)> = BTreeMap::new();
                for process in sample(dynamodb_pid, watch_pgid) {
                    let cpu_seconds = previous
                        .insert(process.pid, process.cpu_ms)
                        .map_or(0.0, |before| {
                            process.cpu_ms.saturating_sub(before) as f64 / 1_000.0
                        });
                    let entry = groups.entry(process.group).or_default();
                    entry.0 += cpu_seconds / elapsed * 100.0;
                    entry.1 += process.rss_kb as f64 / 1_024.0;
                    entry.2 += 1;
                    entry.3 += cpu_seconds;
                }
                summary.samples += 1;
                let at = started.elapsed().as_secs_f64();
                for (group, (cpu, rss, count, cpu_seconds)) in groups {
                    summary.series.push((at, group.clone(), cpu, rss));
                    per_group
                        .entry(group)
                        .or_default()
                        .push((cpu, rss, count, cpu_seconds));
                }
            }
            for (group, rows) in per_group {
                // The first row has no CPU delta yet; leave it out of the CPU figures.
                let cpu: Vec<f64> = rows.iter().skip(1).map(|row| row.0).collect();
                let usage = GroupUsage {
                    processes: rows.iter().map(|row| row.2).max().unwrap_or(0),
                    rss_start_mb: rows.first().map_or(0.0, |row| row.1),
                    rss_end_mb: rows.last().map_or(0.0, |row| row.1),
                    rss_peak_mb: rows.iter().map(|row| row.1).fold(0.0, f64::max),
                    cpu_avg_percent: if cpu.is_empty() {
                        0.0
                    } else {
                        cpu.iter().sum::<f64>() / cpu.len() as f64
                    },
                    cpu_peak_percent: cpu.iter().copied().fold(0.0, f64::max),
                    cpu_seconds: rows.iter().map(|row| row.3).sum(),
                };
                summary.groups.insert(group, usage);
            }
            summary
        });
        Self { stop, handle }
    }

    pub(crate) fn finish(self) -> ResourceSummary {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or_default()
    }
}
