//! Replaying every saved event and judging each answer against its expectation.

use super::*;

#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub expectation: Expectation,
    pub status: Option<u16>,
    pub code: Option<String>,
    pub replayed: bool,
    pub elapsed: Duration,
    /// Why it failed; `None` when the answer was the expected one.
    pub problem: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Report {
    pub target: String,
    pub payload: Payload,
    pub outcomes: Vec<Outcome>,
    pub elapsed: Duration,
}

impl Report {
    pub(crate) fn failures(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|outcome| outcome.problem.is_some())
            .count()
    }

    pub(crate) fn passed(&self) -> bool {
        self.failures() == 0 && !self.outcomes.is_empty()
    }
}

fn check(expectation: &Expectation, answer: &HttpResponse) -> Option<String> {
    let mut problems = Vec::new();
    if answer.status != expectation.status {
        problems.push(format!(
            "status {} (want {})",
            answer.status, expectation.status
        ));
    }
    let code = answer.code();
    if let Some(want) = &expectation.code {
        if code.as_deref() != Some(want.as_str()) {
            problems.push(format!(
                "code {} (want {want})",
                code.as_deref().unwrap_or("none")
            ));
        }
    }
    let replayed = answer.header("idempotent-replayed") == Some("true");
    if let Some(want) = expectation.replayed {
        if replayed != want {
            problems.push(format!("idempotent-replayed {replayed} (want {want})"));
        }
    }
    if answer.status >= 400 && answer.header("content-type") != Some("application/problem+json") {
        problems.push(format!(
            "content-type {} (want application/problem+json)",
            answer.header("content-type").unwrap_or("none")
        ));
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}

/// Sends every payload 2.0 event of `expected.json` in order and checks each answer.
pub(crate) fn replay_all(target: &Target, secret: &str, events_dir: &Path) -> Result<Report> {
    replay(target, secret, events_dir, Payload::V2)
}

/// Sends every event of `expected.json` in `payload`'s copy, in order, and checks each
/// answer. A failure to send one event is recorded as its outcome; the replay goes on.
pub(crate) fn replay(
    target: &Target,
    secret: &str,
    events_dir: &Path,
    payload: Payload,
) -> Result<Report> {
    let expectations = load_expectations(events_dir)?;
    if expectations.is_empty() {
        bail!(
            "{} lists no events",
            events_dir.join("expected.json").display()
        );
    }
    eprintln!(
        "Replaying {} {} events to {} ...",
        expectations.len(),
        payload.name(),
        target.describe()
    );
    let started = Instant::now();
    let mut outcomes = Vec::with_capacity(expectations.len());
    for expectation in expectations {
        let sent = load_event(&payload.path(events_dir, &expectation.event), secret)
            .and_then(|event| send(target, &expectation.function, &event));
        let outcome = match sent {
            Ok(answer) => Outcome {
                problem: check(&expectation, &answer),
                status: Some(answer.status),
                code: answer.code(),
                replayed: answer.header("idempotent-replayed") == Some("true"),
                elapsed: answer.elapsed,
                expectation,
            },
            Err(error) => Outcome {
                expectation,
                status: None,
                code: None,
                replayed: false,
                elapsed: Duration::ZERO,
                problem: Some(format!("{error:#}")),
            },
        };
        outcomes.push(outcome);
    }
    Ok(Report {
        target: target.describe(),
        payload,
        outcomes,
        elapsed: started.elapsed(),
    })
}

fn describe(status: Option<u16>, code: Option<&str>, replayed: bool) -> String {
    let mut text = status.map_or_else(|| "-".to_owned(), |status| status.to_string());
    if let Some(code) = code {
        text.push(' ');
        text.push_str(code);
    }
    if replayed {
        text.push_str(" replayed");
    }
    text
}

pub(crate) fn print_report(report: &Report) {
    let rows: Vec<[String; 6]> = report
        .outcomes
        .iter()
        .enumerate()
        .map(|(index, outcome)| {
            let want = &outcome.expectation;
            [
                (index + 1).to_string(),
                want.event.clone(),
                want.function.clone(),
                describe(
                    Some(want.status),
                    want.code.as_deref(),
                    want.replayed == Some(true),
                ),
                describe(outcome.status, outcome.code.as_deref(), outcome.replayed),
                format!("{:.1}", outcome.elapsed.as_secs_f64() * 1_000.0),
            ]
        })
        .collect();
    let header = ["#", "event", "function", "expected", "got", "ms"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let line = |cells: [&str; 6], verdict: &str| {
        println!(
            "{:>w0$}  {:<w1$}  {:<w2$}  {:<w3$}  {:<w4$}  {:>w5$}  {verdict}",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            cells[4],
            cells[5],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
            w4 = widths[4],
            w5 = widths[5],
        );
    };
    line(header, "result");
    for (row, outcome) in rows.iter().zip(&report.outcomes) {
        let verdict = match &outcome.problem {
            None => "ok".to_owned(),
            Some(problem) => format!("FAIL: {problem}"),
        };
        line(
            [&row[0], &row[1], &row[2], &row[3], &row[4], &row[5]],
            &verdict,
        );
    }
    let mut latencies: Vec<f64> = report
        .outcomes
        .iter()
        .filter(|outcome| outcome.status.is_some())
        .map(|outcome| outcome.elapsed.as_secs_f64() * 1_000.0)
        .collect();
    latencies.sort_by(f64::total_cmp);
    let median = latencies.get(latencies.len() / 2).copied().unwrap_or(0.0);
    let max = latencies.last().copied().unwrap_or(0.0);
    println!(
        "{} of {} {} events as expected via {} in {:.2} s (median {median:.1} ms, max {max:.1} ms)",
        report.outcomes.len() - report.failures(),
        report.outcomes.len(),
        report.payload.name(),
        report.target,
        report.elapsed.as_secs_f64(),
    );
}
