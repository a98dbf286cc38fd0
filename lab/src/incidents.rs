//! `cargo xtask incidents`: MTTD, MTTR and MTBF from `reports/incidents.jsonl`, per drill and for
//! real incidents, with the trend of the last run against the earlier ones.
//!
//! One JSON object per line. Drills append their own (`kind: "drill"`); a real incident is
//! recorded by hand after its post-mortem, for example:
//!
//! ```text
//! {"kind":"real","title":"pay-order canary panic","severity":"SEV2","started":"2026-03-04T10:00:00Z",
//!  "t0":"2026-03-04T10:02:00Z","detected":"2026-03-04T10:05:10Z","mitigated":"2026-03-04T10:09:00Z",
//!  "recovered":"2026-03-04T10:15:00Z"}
//! ```
//!
//! T0 is `injected` (drills) or `t0` (real incidents): the start of impact. MTTD = detected - T0,
//! MTTR = recovered - T0 (time to restore), MTTM = mitigated - T0.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::clock::{format_ms, parse_rfc3339_ms};
use crate::paths;

/// Whether a record is of a drill or of a real incident (`"kind": "drill"` / `"real"`).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum IncidentKind {
    /// Appended by `cargo xtask drill`.
    #[default]
    Drill,
    /// Recorded by hand after a post-mortem.
    Real,
}

/// One line of `reports/incidents.jsonl`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct IncidentRecord {
    pub kind: IncidentKind,
    /// The drill's name (drills only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// When the drill (or the incident response) started.
    pub started: String,
    /// T0: the fault injected / impact started.
    #[serde(alias = "t0")]
    pub injected: String,
    pub detected: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detected_by: Option<String>,
    pub mitigated: Option<String>,
    pub recovered: Option<String>,
    /// When the last alarm returned to OK.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved: Option<String>,
    /// Failed requests by HTTP status ("503", "500"), plus "transport" for calls that got no
    /// answer at all (timeouts, refused connections; from k6).
    #[serde(default)]
    pub failed_requests: BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_writes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_writes_lost: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_clean: Option<bool>,
    /// Whether every expectation of the drill held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passed: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
}

impl IncidentRecord {
    pub(crate) fn t0_ms(&self) -> Option<i64> {
        parse_rfc3339_ms(&self.injected)
    }

    fn since_t0(&self, at: &Option<String>) -> Option<f64> {
        let t0 = self.t0_ms()?;
        let at = parse_rfc3339_ms(at.as_deref()?)?;
        Some((at - t0) as f64 / 1_000.0)
    }

    pub(crate) fn mttd_seconds(&self) -> Option<f64> {
        self.since_t0(&self.detected)
    }

    pub(crate) fn mttr_seconds(&self) -> Option<f64> {
        self.since_t0(&self.recovered)
    }

    pub(crate) fn mttm_seconds(&self) -> Option<f64> {
        self.since_t0(&self.mitigated)
    }

    /// The series this record belongs to: the drill's name, or `real`.
    pub(crate) fn series(&self) -> String {
        match self.kind {
            IncidentKind::Drill => format!(
                "drill {}",
                self.drill.clone().unwrap_or_else(|| "?".to_owned())
            ),
            IncidentKind::Real => "real".to_owned(),
        }
    }
}

pub(crate) fn incidents_path() -> PathBuf {
    paths::reports().join("incidents.jsonl")
}

/// Appends one record as a line.
pub(crate) fn append(record: &IncidentRecord) -> Result<()> {
    use std::io::Write;
    let path = incidents_path();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    writeln!(file, "{}", serde_json::to_string(record)?)?;
    Ok(())
}

/// Parses the file; bad lines are reported and skipped.
pub(crate) fn parse(text: &str) -> (Vec<IncidentRecord>, Vec<String>) {
    let mut records = Vec::new();
    let mut problems = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<IncidentRecord>(line) {
            Ok(record) if record.t0_ms().is_some() => records.push(record),
            Ok(_) => problems.push(format!(
                "line {}: T0 (injected/t0) is not an RFC 3339 time",
                number + 1
            )),
            Err(error) => problems.push(format!("line {}: {error}", number + 1)),
        }
    }
    (records, problems)
}

// ------------------------------------------------------------------------------------------
// Statistics
// ------------------------------------------------------------------------------------------

pub(crate) fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    Some(if sorted.len().is_multiple_of(2) {
        (sorted[middle - 1] + sorted[middle]) / 2.0
    } else {
        sorted[middle]
    })
}

pub(crate) fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// Mean time between the starts (T0) of consecutive incidents, in seconds.
pub(crate) fn mtbf_start_to_start(records: &[&IncidentRecord]) -> Option<f64> {
    let mut starts: Vec<i64> = records.iter().filter_map(|record| record.t0_ms()).collect();
    starts.sort_unstable();
    let gaps: Vec<f64> = starts
        .windows(2)
        .map(|pair| (pair[1] - pair[0]) as f64 / 1_000.0)
        .collect();
    mean(&gaps)
}

/// Mean of T0[n+1] - recovered[n] (the runbook's MTBF: time up between failures), in seconds.
pub(crate) fn mtbf_recovered_to_start(records: &[&IncidentRecord]) -> Option<f64> {
    let mut sorted: Vec<&&IncidentRecord> = records.iter().collect();
    sorted.sort_by_key(|record| record.t0_ms());
    let gaps: Vec<f64> = sorted
        .windows(2)
        .filter_map(|pair| {
            let recovered = parse_rfc3339_ms(pair[0].recovered.as_deref()?)?;
            Some((pair[1].t0_ms()? - recovered) as f64 / 1_000.0)
        })
        .collect();
    mean(&gaps)
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SeriesStats {
    pub series: String,
    pub runs: usize,
    pub passed: usize,
    pub mttd: Vec<f64>,
    pub mttr: Vec<f64>,
    pub mtbf_start: Option<f64>,
    pub mtbf_up: Option<f64>,
    pub failed_requests: u64,
    pub writes_lost: u64,
    pub audits_dirty: usize,
}

pub(crate) fn series_stats(records: &[IncidentRecord]) -> Vec<SeriesStats> {
    let mut groups: BTreeMap<String, Vec<&IncidentRecord>> = BTreeMap::new();
    for record in records {
        groups.entry(record.series()).or_default().push(record);
    }
    groups
        .into_iter()
        .map(|(series, mut group)| {
            group.sort_by_key(|record| record.t0_ms());
            SeriesStats {
                runs: group.len(),
                passed: group
                    .iter()
                    .filter(|record| record.passed == Some(true))
                    .count(),
                mttd: group
                    .iter()
                    .filter_map(|record| record.mttd_seconds())
                    .collect(),
                mttr: group
                    .iter()
                    .filter_map(|record| record.mttr_seconds())
                    .collect(),
                mtbf_start: mtbf_start_to_start(&group),
                mtbf_up: mtbf_recovered_to_start(&group),
                failed_requests: group
                    .iter()
                    .map(|record| record.failed_requests.values().sum::<u64>())
                    .sum(),
                writes_lost: group
                    .iter()
                    .filter_map(|record| record.acknowledged_writes_lost)
                    .sum(),
                audits_dirty: group
                    .iter()
                    .filter(|record| record.audit_clean == Some(false))
                    .count(),
                series,
            }
        })
        .collect()
}

/// The last value against the median of the earlier ones: (last, previous median, change).
pub(crate) fn trend(values: &[f64]) -> Option<(f64, f64, f64)> {
    let (last, earlier) = values.split_last()?;
    let previous = median(earlier)?;
    Some((*last, previous, *last - previous))
}

fn seconds(value: Option<f64>) -> String {
    match value {
        None => "-".to_owned(),
        Some(value) if value.abs() >= 86_400.0 => format!("{:.1} d", value / 86_400.0),
        Some(value) if value.abs() >= 3_600.0 => format!("{:.1} h", value / 3_600.0),
        Some(value) if value.abs() >= 120.0 => format!("{:.1} min", value / 60.0),
        Some(value) => format!("{value:.1} s"),
    }
}

fn trend_text(values: &[f64]) -> String {
    match trend(values) {
        None => "n/a (one run)".to_owned(),
        Some((last, previous, change)) => {
            let arrow = if change.abs() <= 0.1 * previous.abs().max(1.0) {
                "≈"
            } else if change > 0.0 {
                "▲ worse"
            } else {
                "▼ better"
            };
            format!(
                "{} vs {} {arrow}",
                seconds(Some(last)),
                seconds(Some(previous))
            )
        }
    }
}

/// The whole text the command prints.
pub(crate) fn render(records: &[IncidentRecord], source: &str) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "Incidents from {source}: {} record(s)\n\n",
        records.len()
    ));
    if records.is_empty() {
        out.push_str(
            "Nothing recorded yet: run `cargo xtask drill <name>`, or append a real incident.\n",
        );
        return out;
    }
    let stats = series_stats(records);
    out.push_str(&format!(
        "{:<24} {:>4} {:>6} {:>10} {:>10} {:>10} {:>10} {:>10} {:>11} {:>7} {:>6}\n",
        "series",
        "n",
        "passed",
        "MTTD med",
        "MTTD mean",
        "MTTR med",
        "MTTR mean",
        "MTTR max",
        "MTBF",
        "failed",
        "lost"
    ));
    for row in &stats {
        out.push_str(&format!(
            "{:<24} {:>4} {:>6} {:>10} {:>10} {:>10} {:>10} {:>10} {:>11} {:>7} {:>6}\n",
            row.series,
            row.runs,
            if row.series.starts_with("drill") {
                format!("{}/{}", row.passed, row.runs)
            } else {
                "-".to_owned()
            },
            seconds(median(&row.mttd)),
            seconds(mean(&row.mttd)),
            seconds(median(&row.mttr)),
            seconds(mean(&row.mttr)),
            seconds(row.mttr.iter().copied().reduce(f64::max)),
            seconds(row.mtbf_start),
            row.failed_requests,
            row.writes_lost
        ));
    }
    let drills: Vec<&IncidentRecord> = records
        .iter()
        .filter(|record| record.kind == IncidentKind::Drill)
        .collect();
    let real: Vec<&IncidentRecord> = records
        .iter()
        .filter(|record| record.kind == IncidentKind::Real)
        .collect();
    out.push_str(
        "\nMTBF is the mean time between the starts (T0) of consecutive incidents of a series.\n",
    );
    for (label, group) in [("all drills", &drills), ("real incidents", &real)] {
        if group.is_empty() {
            continue;
        }
        let mttd: Vec<f64> = group
            .iter()
            .filter_map(|record| record.mttd_seconds())
            .collect();
        let mttr: Vec<f64> = group
            .iter()
            .filter_map(|record| record.mttr_seconds())
            .collect();
        out.push_str(&format!(
            "{label}: n={}  MTTD median {} / mean {}  MTTR median {} / mean {}  MTBF start-to-start {}  recovered-to-next-start {}\n",
            group.len(),
            seconds(median(&mttd)),
            seconds(mean(&mttd)),
            seconds(median(&mttr)),
            seconds(mean(&mttr)),
            seconds(mtbf_start_to_start(group)),
            seconds(mtbf_recovered_to_start(group)),
        ));
    }
    out.push_str(
        "\nTrend (the last run against the median of the earlier runs of the same series):\n",
    );
    for row in &stats {
        out.push_str(&format!(
            "  {:<24} MTTD {:<32} MTTR {}\n",
            row.series,
            trend_text(&row.mttd),
            trend_text(&row.mttr)
        ));
    }
    let mut latest: Vec<&IncidentRecord> = records.iter().collect();
    latest.sort_by_key(|record| std::cmp::Reverse(record.t0_ms()));
    out.push_str("\nLatest runs:\n");
    for record in latest.iter().take(10) {
        let failed: u64 = record.failed_requests.values().sum();
        out.push_str(&format!(
            "  {}  {:<24} MTTD {:>8}  MTTM {:>8}  MTTR {:>8}  failed {:>6}  lost {}  audit {}  {}\n",
            record.t0_ms().map(format_ms).unwrap_or_default(),
            record.series(),
            seconds(record.mttd_seconds()),
            seconds(record.mttm_seconds()),
            seconds(record.mttr_seconds()),
            failed,
            record.acknowledged_writes_lost.map_or("-".to_owned(), |lost| lost.to_string()),
            match record.audit_clean {
                Some(true) => "clean",
                Some(false) => "VIOLATED",
                None => "-",
            },
            match record.passed {
                Some(true) => "PASSED".to_owned(),
                Some(false) => format!("FAILED: {}", record.failures.join("; ")),
                None => String::new(),
            }
        ));
    }
    out.push_str("\nLimits of these numbers:\n");
    for limit in [
        "Small samples: with a handful of runs per series one outlier moves the mean a lot; read \
         the median and the max, and don't call a trend until it holds over several runs (and quarters).",
        "Drills are not incidents: the fault, its start and the expected alarm are known and the \
         responder is a program. Drill MTTD/MTTR are lower bounds that measure the alarms and the \
         self-healing paths; never mix them with real incidents (separate series above).",
        "Locally the alarm periods are scaled down (60 s -> 10 s), so drill MTTD is about 6x shorter \
         than the same alarm on AWS (3 of 5 one-minute datapoints is ~3 min there).",
        "MTTR here is to recovery seen in the request log (first clean window), not to the alarm's \
         OK, which adds the alarm's clearing delay (see `resolved` in the jsonl).",
        "Drill MTBF is the spacing of drill runs, i.e. a schedule, not a reliability figure; only \
         the real-incident MTBF says how often we break, and better detection lowers it.",
    ] {
        out.push_str(&format!("- {limit}\n"));
    }
    out
}

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// The incident log (default reports/incidents.jsonl).
    #[arg(long)]
    pub file: Option<PathBuf>,
}

pub fn run(args: &Args) -> Result<()> {
    let path = args.file.clone().unwrap_or_else(incidents_path);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(error) => return Err(error).with_context(|| format!("cannot read {}", path.display())),
    };
    let (records, problems) = parse(&text);
    for problem in &problems {
        eprintln!("skipped {problem}");
    }
    let source = path
        .strip_prefix(paths::root())
        .map(|relative| relative.display().to_string())
        .unwrap_or_else(|_| path.display().to_string());
    print!("{}", render(&records, &source));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drill(
        name: &str,
        t0: &str,
        detected_after: i64,
        recovered_after: i64,
        passed: bool,
    ) -> IncidentRecord {
        let t0_ms = parse_rfc3339_ms(t0).expect("t0");
        IncidentRecord {
            kind: IncidentKind::Drill,
            drill: Some(name.to_owned()),
            started: format_ms(t0_ms - 20_000),
            injected: format_ms(t0_ms),
            detected: Some(format_ms(t0_ms + detected_after * 1_000)),
            mitigated: Some(format_ms(t0_ms + 30_000)),
            recovered: Some(format_ms(t0_ms + recovered_after * 1_000)),
            passed: Some(passed),
            failed_requests: BTreeMap::from([("503".to_owned(), 10)]),
            acknowledged_writes_lost: Some(0),
            audit_clean: Some(true),
            ..IncidentRecord::default()
        }
    }

    #[test]
    fn mttd_and_mttr_are_measured_from_t0() {
        // GIVEN a drill detected after 25 s and recovered after 41 s
        let record = drill("store-outage", "2026-11-25T10:00:00Z", 25, 41, true);
        // WHEN measured THEN MTTD and MTTR count from the injection
        assert_eq!(record.mttd_seconds(), Some(25.0));
        assert_eq!(record.mttr_seconds(), Some(41.0));
        assert_eq!(record.mttm_seconds(), Some(30.0));
    }

    #[test]
    fn series_separate_drills_and_real_incidents_with_median_mean_and_mtbf() {
        // GIVEN three store-outage drills an hour apart and one real incident
        let mut records = vec![
            drill("store-outage", "2026-11-25T10:00:00Z", 20, 40, true),
            drill("store-outage", "2026-11-25T11:00:00Z", 30, 50, true),
            drill("store-outage", "2026-11-25T12:00:00Z", 100, 60, false),
        ];
        let real: IncidentRecord = serde_json::from_str(
            r#"{"kind":"real","title":"x","started":"2026-11-20T10:00:00Z","t0":"2026-11-20T10:00:00Z","detected":"2026-11-20T10:03:00Z","mitigated":null,"recovered":"2026-11-20T10:10:00Z"}"#,
        )
        .expect("a real incident with t0");
        records.push(real);
        // WHEN the series are computed
        let stats = series_stats(&records);
        // THEN drills and real incidents are apart, with median, mean and MTBF start to start
        let outage = stats
            .iter()
            .find(|row| row.series == "drill store-outage")
            .expect("series");
        assert_eq!(outage.runs, 3);
        assert_eq!(outage.passed, 2);
        assert_eq!(median(&outage.mttd), Some(30.0));
        assert_eq!(mean(&outage.mttd), Some(50.0));
        assert_eq!(outage.mtbf_start, Some(3_600.0));
        // recovered 10:00:40 -> next T0 11:00:00 = 3560 s; 11:00:50 -> 12:00:00 = 3550 s
        assert_eq!(outage.mtbf_up, Some(3_555.0));
        let real = stats.iter().find(|row| row.series == "real").expect("real");
        assert_eq!(real.mttd, vec![180.0]);
        // AND the trend compares the last run with the median of the earlier ones
        assert_eq!(trend(&outage.mttd), Some((100.0, 25.0, 75.0)));
        let text = render(&records, "test");
        assert!(text.contains("drill store-outage"));
        assert!(text.contains("Limits of these numbers"));
    }

    #[test]
    fn bad_lines_are_skipped_and_reported() {
        // GIVEN a file with a good line, garbage and a line without T0
        let good =
            serde_json::to_string(&drill("bad-deploy", "2026-11-25T10:00:00Z", 31, 47, true))
                .expect("json");
        let text = format!("{good}\nnot json\n{{\"kind\":\"real\",\"started\":\"x\",\"injected\":\"yesterday\",\"detected\":null,\"mitigated\":null,\"recovered\":null}}\n");
        // WHEN parsed THEN one record and two problems
        let (records, problems) = parse(&text);
        assert_eq!(records.len(), 1);
        assert_eq!(problems.len(), 2);
    }

    #[test]
    fn the_kind_reads_and_writes_as_the_documented_words() {
        // GIVEN a drill's record and a real incident's line as the module doc shows it
        let drill = drill("store-outage", "2026-11-25T10:00:00Z", 25, 41, true);
        let text = serde_json::to_string(&drill).expect("json");
        // THEN the kind is the word `drill`, and both read back as what they were
        assert!(text.starts_with(r#"{"kind":"drill","#), "{text}");
        assert_eq!(
            serde_json::from_str::<IncidentRecord>(&text).ok(),
            Some(drill)
        );
        let real: IncidentRecord = serde_json::from_str(
            r#"{"kind":"real","started":"2026-03-04T10:00:00Z","t0":"2026-03-04T10:02:00Z","detected":null,"mitigated":null,"recovered":null}"#,
        )
        .expect("a real incident");
        assert_eq!(real.kind, IncidentKind::Real);
        assert_eq!(real.series(), "real");
        // AND a kind that is neither is a bad line, not a series of its own
        let (records, problems) = parse(
            r#"{"kind":"game-day","started":"x","t0":"2026-03-04T10:02:00Z","detected":null,"mitigated":null,"recovered":null}"#,
        );
        assert!(records.is_empty());
        assert_eq!(problems.len(), 1);
    }
}
