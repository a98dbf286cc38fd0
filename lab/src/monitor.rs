//! `cargo xtask monitor`: a terminal dashboard over the local function log that evaluates the
//! alarms of `ops/alarms.json` the way CloudWatch does (M of N breaching datapoints, missing data
//! not breaching) and prints `ALERT <alarm> <time> <value>` / `RESOLVED <alarm> <time> <value>`.
//!
//! On a terminal the dashboard takes the whole screen (ratatui) until `q`, `Esc` or Ctrl-C;
//! `--plain`, `--once` and a stdout that is not a terminal print lines instead.
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
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::DefaultTerminal;
use serde::Deserialize;
use serde_json::Value;

use crate::clock::{format_ms, now_ms, parse_rfc3339_ms};
use crate::{paths, state};

/// Local alarm period = template period / `TIME_SCALE` (60 s -> 10 s, 300 s -> 50 s).
pub(crate) const TIME_SCALE: u64 = 6;
/// A period is evaluated this long after it ends, so that late log lines still count.
pub(crate) const GRACE_MS: i64 = 1_000;
/// The window of the dashboard's live figures.
pub(crate) const DASHBOARD_WINDOW_MS: i64 = 10_000;
/// How much history the live monitor keeps (the longest alarm look-back is 5 x 50 s).
const LIVE_RETENTION_MS: i64 = 600_000;
/// How often the full-screen dashboard reads the log, evaluates the alarms and redraws.
const REDRAW_EVERY: Duration = Duration::from_millis(1_000);

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
mod detector;
mod parse;
mod tail;

pub(crate) use alarms::*;
pub(crate) use bucket::*;
pub(crate) use dashboard::*;
pub(crate) use detector::*;
pub(crate) use parse::*;
pub(crate) use tail::*;

// ------------------------------------------------------------------------------------------
// The command
// ------------------------------------------------------------------------------------------

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// The stack whose log to follow (its functions' port).
    #[arg(long, default_value_t = state::DEFAULT_PORT)]
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
    state::log_dir_for(port).join("functions.log")
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
    let detector = Detector::new(alarms).with_retention(LIVE_RETENTION_MS);
    let tail = LogTail::from_end(&log);
    if !args.plain && std::io::stdout().is_terminal() {
        return follow_on_screen(tail, detector, &source);
    }
    follow_plain(tail, detector, &source)
}

/// Reads the lines the log gained and evaluates the alarms at `now`: the state changes.
fn read_and_evaluate(tail: &mut LogTail, detector: &mut Detector, now: i64) -> Vec<AlarmEvent> {
    for line in tail.poll() {
        if let Some(event) = parse_line(&line, now) {
            detector.ingest(&event);
        }
    }
    detector.evaluate(now)
}

/// Follows the log, printing every ALERT/RESOLVED and a status line every 10 s.
fn follow_plain(mut tail: LogTail, mut detector: Detector, source: &str) -> Result<()> {
    let mut events: Vec<AlarmEvent> = Vec::new();
    let mut last_status_line = 0;
    println!("monitoring {source} ({})", scale_note());
    loop {
        let now = now_ms();
        let fresh = read_and_evaluate(&mut tail, &mut detector, now);
        let mut stdout = std::io::stdout().lock();
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
        stdout.flush()?;
        drop(stdout);
        std::thread::sleep(Duration::from_millis(1_000));
    }
}

/// Follows the log on the full screen until the user quits. The terminal is restored on every
/// way out: returning (quit or error) restores it here, and a panic restores it through the
/// hook that `ratatui::try_init` installs.
fn follow_on_screen(mut tail: LogTail, mut detector: Detector, source: &str) -> Result<()> {
    let mut terminal = match ratatui::try_init() {
        Ok(terminal) => terminal,
        Err(error) => {
            // Raw mode may be on even though the alternate screen could not be entered.
            ratatui::restore();
            return Err(error).context("cannot take over the terminal");
        }
    };
    let outcome = redraw_until_quit(&mut terminal, &mut tail, &mut detector, source);
    ratatui::restore();
    outcome
}

/// Reads the log and redraws every `REDRAW_EVERY`, watching the keyboard in between.
fn redraw_until_quit(
    terminal: &mut DefaultTerminal,
    tail: &mut LogTail,
    detector: &mut Detector,
    source: &str,
) -> Result<()> {
    let mut events: Vec<AlarmEvent> = Vec::new();
    loop {
        let now = now_ms();
        events.extend(read_and_evaluate(tail, detector, now));
        let view = DashboardView::new(detector, now, source, &events);
        terminal.draw(|frame| frame.render_widget(&view, frame.area()))?;
        let next_redraw = Instant::now() + REDRAW_EVERY;
        loop {
            let left = next_redraw.saturating_duration_since(Instant::now());
            if left.is_zero() || !event::poll(left)? {
                break;
            }
            match event::read()? {
                Event::Key(key) if quits(&key) => return Ok(()),
                // Redraw the same view at the new size now rather than at the next tick.
                Event::Resize(..) => {
                    terminal.draw(|frame| frame.render_widget(&view, frame.area()))?;
                }
                _ => {}
            }
        }
    }
}

/// `q`, `Esc` or Ctrl-C (raw mode delivers Ctrl-C as a key, not as SIGINT).
fn quits(key: &KeyEvent) -> bool {
    if key.kind != KeyEventKind::Press {
        return false;
    }
    match key.code {
        KeyCode::Char('q') | KeyCode::Esc => true,
        KeyCode::Char('c') => key.modifiers.contains(KeyModifiers::CONTROL),
        _ => false,
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
        DashboardView::new(&detector, clock + 1_000, source, &events).text()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q_esc_and_ctrl_c_quit_and_other_keys_do_not() {
        // GIVEN key presses WHEN they are read THEN only q, Esc and Ctrl-C quit
        let press = |code, modifiers| KeyEvent::new(code, modifiers);
        assert!(quits(&press(KeyCode::Char('q'), KeyModifiers::NONE)));
        assert!(quits(&press(KeyCode::Esc, KeyModifiers::NONE)));
        assert!(quits(&press(KeyCode::Char('c'), KeyModifiers::CONTROL)));
        assert!(!quits(&press(KeyCode::Char('c'), KeyModifiers::NONE)));
        assert!(!quits(&press(KeyCode::Char('x'), KeyModifiers::NONE)));
        assert!(!quits(&press(KeyCode::Enter, KeyModifiers::NONE)));
        // AND a key release, which some terminals report, is not a press
        let release = KeyEvent::new_with_kind(
            KeyCode::Char('q'),
            KeyModifiers::NONE,
            KeyEventKind::Release,
        );
        assert!(!quits(&release));
    }
}
