//! `cargo xtask monitor`: a terminal dashboard over the local function log that evaluates the
//! alarms of `ops/alarms.json` the way CloudWatch does (M of N breaching datapoints, missing data
//! not breaching) and prints `ALERT <alarm> <time> <value>` / `RESOLVED <alarm> <time> <value>`.
//!
//! The detector is a library of pure functions over parsed log records, so the drills run the
//! very same code in-process and the unit tests replay synthetic logs.
//!
//! What is scaled: only the alarm **period** (`TIME_SCALE`: 60 s -> 10 s, 300 s -> 50 s), so a
//! drill detects in seconds instead of minutes. Thresholds, evaluation periods and
//! datapoints-to-alarm are the template's. Sum thresholds therefore apply per local period,
//! which makes count alarms (`> 20 conflicts`) six times less sensitive than per minute.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{IsTerminal, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde::Deserialize;
use serde_json::Value;

use crate::{paths, stack};

/// Local alarm period = template period / `TIME_SCALE` (60 s -> 10 s, 300 s -> 50 s).
pub(crate) const TIME_SCALE: u64 = 6;
/// A period is evaluated this long after it ends, so that late log lines still count.
pub(crate) const GRACE_MS: i64 = 1_000;
/// The window of the dashboard's live figures.
pub(crate) const DASHBOARD_WINDOW_MS: i64 = 10_000;
/// How much history the live monitor keeps (the longest alarm look-back is 5 x 50 s).
const LIVE_RETENTION_MS: i64 = 600_000;

pub(crate) fn scale_note() -> String {
    format!(
        "local alarm period = template period / {TIME_SCALE} (60 s -> {} s, 300 s -> {} s); \
         thresholds and M-of-N datapoints as in ops/alarms.json",
        60 / TIME_SCALE,
        300 / TIME_SCALE
    )
}

mod alarms;
mod bucket;
mod dashboard;
mod parse;
mod tail;

pub(crate) use alarms::*;
pub(crate) use bucket::*;
pub(crate) use dashboard::*;
pub(crate) use parse::*;
pub(crate) use tail::*;

// ------------------------------------------------------------------------------------------
// The command
// ------------------------------------------------------------------------------------------

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// The stack whose log to follow (its functions' port).
    #[arg(long, default_value_t = stack::DEFAULT_PORT)]
    pub port: u16,
    /// Follow this log file instead of the stack's.
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// Read the whole log once from the start, print every ALERT/RESOLVED it implies and the
    /// final dashboard, and exit (no live follow).
    #[arg(long)]
    pub once: bool,
    /// The alarm definitions.
    #[arg(long)]
    pub alarms: Option<PathBuf>,
    /// Print only ALERT/RESOLVED lines and a status line every 10 s (default when stdout is
    /// not a terminal).
    #[arg(long)]
    pub plain: bool,
}

pub(crate) fn log_path_for(port: u16) -> PathBuf {
    stack::log_dir_for(port).join("functions.log")
}

pub fn run(args: &Args) -> Result<()> {
    let alarms = load_alarms(&args.alarms.clone().unwrap_or_else(alarms_path))?;
    let log = args.log.clone().unwrap_or_else(|| log_path_for(args.port));
    let source = log
        .strip_prefix(paths::root())
        .map(|relative| relative.display().to_string())
        .unwrap_or_else(|_| log.display().to_string());
    if args.once {
        return run_once(alarms, &log, &source);
    }
    let mut detector = Detector::new(alarms).with_retention(LIVE_RETENTION_MS);
    let mut tail = LogTail::from_end(&log);
    let dashboard = !args.plain && std::io::stdout().is_terminal();
    let mut events: Vec<AlarmEvent> = Vec::new();
    let mut last_status_line = 0;
    if !dashboard {
        println!("monitoring {source} ({})", scale_note());
    }
    loop {
        let now = now_ms();
        for line in tail.poll() {
            if let Some(event) = parse_line(&line, now) {
                detector.ingest(&event);
            }
        }
        let fresh = detector.evaluate(now);
        let mut stdout = std::io::stdout().lock();
        if dashboard {
            events.extend(fresh);
            let text = render_dashboard(&detector, now, &source, &events);
            write!(stdout, "\x1b[H\x1b[2J{text}")?;
        } else {
            for event in &fresh {
                writeln!(stdout, "{}", event.line())?;
            }
            events.extend(fresh);
            if now - last_status_line >= 10_000 {
                last_status_line = now;
                let window = detector.window(now - DASHBOARD_WINDOW_MS, now);
                writeln!(
                    stdout,
                    "{}  {:.1} req/s  5xx {}  p95 {} ms  alarms in ALARM: {}",
                    format_ms(now),
                    window.requests as f64 / 10.0,
                    window.server_errors,
                    fmt_ms_opt(percentile(&window.latencies, 95.0)),
                    in_alarm(&detector)
                )?;
            }
        }
        stdout.flush()?;
        drop(stdout);
        std::thread::sleep(Duration::from_millis(1_000));
    }
}

fn in_alarm(detector: &Detector) -> String {
    let names: Vec<&str> = detector
        .alarms
        .iter()
        .filter(|alarm| alarm.status == AlarmStatus::Alarm)
        .map(|alarm| alarm.def.name.as_str())
        .collect();
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

/// Replays a whole log: events are evaluated as time advances through the records.
fn run_once(alarms: Vec<AlarmDef>, log: &Path, source: &str) -> Result<()> {
    let text =
        std::fs::read_to_string(log).with_context(|| format!("cannot read {}", log.display()))?;
    let mut detector = Detector::new(alarms);
    let mut clock = i64::MIN;
    let mut events = Vec::new();
    for line in text.lines() {
        let Some(event) = parse_line(line, clock.max(0)) else {
            continue;
        };
        if event.at_ms() > clock {
            clock = event.at_ms();
            events.extend(detector.evaluate(clock));
        }
        detector.ingest(&event);
    }
    if clock == i64::MIN {
        println!("{source}: no request lines");
        return Ok(());
    }
    // Let every period that has data close.
    let longest = detector
        .alarms
        .iter()
        .map(|alarm| alarm.period_ms * i64::from(alarm.def.evaluation_periods))
        .max()
        .unwrap_or(0);
    let end = (clock + longest + GRACE_MS).min(now_ms().max(clock + GRACE_MS));
    let mut t = clock;
    while t < end {
        t = (t + 1_000).min(end);
        events.extend(detector.evaluate(t));
    }
    for event in &events {
        println!("{}", event.line());
    }
    println!();
    print!(
        "{}",
        render_dashboard(&detector, clock + 1_000, source, &events)
    );
    Ok(())
}
