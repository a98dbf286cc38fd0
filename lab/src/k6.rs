//! A k6 scenario running in the background, for the commands that act while it runs (the
//! drills, `flash-sale`): started in its own process group, stopped like Ctrl-C stops it (so
//! it still writes its summary), its summary and ledger lines read back.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::Value;

use crate::paths;
use crate::process::{self, Signal};

/// One value of a k6 summary (`--summary-export` / `handleSummary`'s data): `field` ("count",
/// "rate", "p(95)", "max" ...) of `metric` (with its tags: `flash_sold{product:p-1}`). Every
/// reader of a summary (the load-test report, the drills, the flash sale) reads it here.
pub(crate) fn summary_value(summary: &Value, metric: &str, field: &str) -> Option<f64> {
    summary
        .get("metrics")?
        .get(metric)?
        .get("values")?
        .get(field)?
        .as_f64()
}

/// A k6 scenario running in the background, its stdout (ledger lines, summary) in a file.
#[derive(Debug)]
pub(crate) struct K6Run {
    pub name: String,
    child: Child,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    pub report_dir: PathBuf,
    pub exit_code: Option<i32>,
    pub started_ms: i64,
    pub stopped_ms: Option<i64>,
}

impl K6Run {
    /// Starts `k6 run` on `script` (relative to the workspace root) with `env`.
    pub(crate) fn spawn(
        name: &str,
        script: &str,
        env: &[(String, String)],
        report_dir: &Path,
    ) -> Result<Self> {
        std::fs::create_dir_all(report_dir)?;
        let stdout = report_dir.join("k6-stdout.txt");
        let stderr = report_dir.join("k6-stderr.txt");
        let mut command = Command::new(crate::install::k6());
        command
            .args([
                "run",
                "-q",
                "--no-usage-report",
                "--log-output=stdout",
                "--log-format=raw",
            ])
            .arg(script)
            .current_dir(paths::root())
            .env("K6_NO_USAGE_REPORT", "true")
            .env("REPORT_DIR", report_dir)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout)?)
            .stderr(std::fs::File::create(&stderr)?)
            // Its own process group: a Ctrl-C on the drill must not kill k6 before the drill
            // has restored the fault; the drill stops it.
            .process_group(0);
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command
            .spawn()
            .context("cannot start k6 (run `cargo xtask install`)")?;
        Ok(Self {
            name: name.to_owned(),
            child,
            stdout,
            stderr,
            report_dir: report_dir.to_owned(),
            exit_code: None,
            started_ms: crate::clock::now_ms(),
            stopped_ms: None,
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn running(&mut self) -> bool {
        match self.child.try_wait() {
            Ok(Some(status)) => {
                self.exit_code = status.code();
                if self.stopped_ms.is_none() {
                    self.stopped_ms = Some(crate::clock::now_ms());
                }
                false
            }
            Ok(None) => true,
            Err(_) => false,
        }
    }

    /// Waits for k6 to end by itself, up to `timeout`.
    pub(crate) fn wait(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if !self.running() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        !self.running()
    }

    /// Stops k6 like Ctrl-C does (it still writes its summary), then hard after `timeout`.
    pub(crate) fn stop(&mut self, timeout: Duration) {
        if !self.running() {
            return;
        }
        self.stopped_ms = Some(crate::clock::now_ms());
        process::signal(self.pid(), Signal::SIGINT);
        if !self.wait(timeout) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    pub(crate) fn summary(&self) -> Option<Value> {
        let text = std::fs::read_to_string(self.report_dir.join("summary.json")).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// The `LEDGER {json}` lines printed so far.
    pub(crate) fn ledger(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.stdout)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| line.strip_prefix("LEDGER "))
            .filter_map(|json| serde_json::from_str(json).ok())
            .collect()
    }
}

impl Drop for K6Run {
    fn drop(&mut self) {
        if self.running() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_value_is_read_by_metric_with_its_tags_and_field() {
        let summary = serde_json::json!({"metrics": {
            "http_reqs": {"type": "counter", "values": {"count": 12.0, "rate": 2.0}},
            "flash_sold{product:p/1}": {"values": {"count": 3.0}},
        }});
        assert_eq!(summary_value(&summary, "http_reqs", "rate"), Some(2.0));
        assert_eq!(
            summary_value(&summary, "flash_sold{product:p/1}", "count"),
            Some(3.0)
        );
        assert_eq!(summary_value(&summary, "http_reqs", "p(95)"), None);
        assert_eq!(summary_value(&summary, "flash_sold", "count"), None);
    }
}
