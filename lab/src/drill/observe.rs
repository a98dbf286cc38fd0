//! The in-process detector of a drill: a thread follows the function log, feeds the monitor's
//! detector and evaluates the alarms every 250 ms, printing ALERT / RESOLVED as they happen.
//! A second thread is a canary: one request a second through the gateway with the drill's own
//! HTTP client (`support::http`), which sees what the function log cannot (hangs, timeouts,
//! missing `Retry-After`).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::monitor::{self, AlarmDef, AlarmEvent, AlarmStatus, Detector, EventKind, LogTail};

use super::support::http;
use crate::http::HttpResponse;

#[derive(Debug)]
pub(super) struct Observed {
    pub detector: Detector,
    pub events: Vec<AlarmEvent>,
    pub lines: u64,
}

impl Observed {
    pub(super) fn alert_of(&self, alarm: &str, from_ms: i64) -> Option<&AlarmEvent> {
        self.events.iter().find(|event| {
            event.kind == EventKind::Alert && event.alarm == alarm && event.at_ms >= from_ms
        })
    }

    pub(super) fn in_alarm(&self) -> Vec<String> {
        self.detector
            .alarms
            .iter()
            .filter(|alarm| alarm.status == AlarmStatus::Alarm)
            .map(|alarm| alarm.def.name.clone())
            .collect()
    }
}

/// Follows the log in a background thread.
#[derive(Debug)]
pub(super) struct Observer {
    shared: Arc<Mutex<Observed>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn lock(shared: &Mutex<Observed>) -> MutexGuard<'_, Observed> {
    shared.lock().unwrap_or_else(|poison| poison.into_inner())
}

impl Observer {
    /// Starts following `log` from its current end.
    pub(super) fn start(log: &Path, alarms: Vec<AlarmDef>) -> Self {
        let shared = Arc::new(Mutex::new(Observed {
            detector: Detector::new(alarms),
            events: Vec::new(),
            lines: 0,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let mut tail = LogTail::from_end(log);
        let thread = {
            let shared = shared.clone();
            let stop = stop.clone();
            std::thread::spawn(move || loop {
                let finishing = stop.load(Ordering::SeqCst);
                let now = crate::clock::now_ms();
                let lines = tail.poll();
                {
                    let mut observed = lock(&shared);
                    observed.lines += lines.len() as u64;
                    for line in &lines {
                        if let Some(event) = monitor::parse_line(line, now) {
                            observed.detector.ingest(&event);
                        }
                    }
                    let fresh = observed.detector.evaluate(now);
                    for event in &fresh {
                        println!("  {}", event.line());
                    }
                    observed.events.extend(fresh);
                }
                if finishing {
                    break;
                }
                std::thread::sleep(Duration::from_millis(250));
            })
        };
        Self {
            shared,
            stop,
            thread: Some(thread),
        }
    }

    pub(super) fn with<R>(&self, read: impl FnOnce(&Observed) -> R) -> R {
        read(&lock(&self.shared))
    }

    /// Reads what is left in the log and stops following it.
    pub(super) fn finish(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.finish();
    }
}

/// One canary request.
#[derive(Debug, Clone)]
pub(super) struct Probe {
    pub at_ms: i64,
    pub result: HttpResponse,
}

/// Sends `GET url` once a second (each in its own thread, so a hanging call does not delay
/// the next) until stopped.
#[derive(Debug)]
pub(super) struct Canary {
    pub probes: Arc<Mutex<Vec<Probe>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Canary {
    pub(super) fn start(url: String, token: String, timeout: Duration) -> Self {
        let probes: Arc<Mutex<Vec<Probe>>> = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let probes = probes.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut calls = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let (url, token, probes) = (url.clone(), token.clone(), probes.clone());
                    calls.push(std::thread::spawn(move || {
                        let at_ms = crate::clock::now_ms();
                        let result = http("GET", &url, Some(&token), None, None, timeout);
                        probes
                            .lock()
                            .unwrap_or_else(|poison| poison.into_inner())
                            .push(Probe { at_ms, result });
                    }));
                    std::thread::sleep(Duration::from_secs(1));
                }
                for call in calls {
                    let _ = call.join();
                }
            })
        };
        Self {
            probes,
            stop,
            thread: Some(thread),
        }
    }

    pub(super) fn finish(&mut self) -> Vec<Probe> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let mut probes = self
            .probes
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone();
        probes.sort_by_key(|probe| probe.at_ms);
        probes
    }
}

impl Drop for Canary {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}
