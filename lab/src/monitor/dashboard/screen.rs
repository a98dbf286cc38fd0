//! The dashboard drawn with ratatui: a header, then the operations, the errors by code, the
//! alarms and the latest events, each under a rule that carries its title. Pure drawing into a
//! buffer; the terminal itself is the monitor's.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, Widget};

use super::*;

fn state_style(status: AlarmStatus) -> Style {
    match status {
        AlarmStatus::Alarm => Style::new().red().bold(),
        AlarmStatus::Ok => Style::new().green(),
        AlarmStatus::NotObservable => Style::new().dark_gray(),
    }
}

fn event_style(kind: EventKind) -> Style {
    match kind {
        EventKind::Alert => Style::new().red(),
        EventKind::Resolved => Style::new().green(),
    }
}

fn mark_style(mark: char) -> Style {
    match mark {
        '#' => Style::new().red().bold(),
        '.' => Style::new().green(),
        _ => Style::new().dark_gray(),
    }
}

/// A figure that is bad when not zero: red when it is.
fn count_cell(count: u64, colour: Color) -> Cell<'static> {
    let line = Line::from(count.to_string()).right_aligned();
    if count > 0 {
        Cell::from(line).style(Style::new().fg(colour))
    } else {
        Cell::from(line)
    }
}

/// The widest of a column's header and cells, in terminal columns.
fn column_width<'a>(header: &str, cells: impl IntoIterator<Item = &'a str>) -> u16 {
    let widest = cells
        .into_iter()
        .map(|cell| cell.chars().count())
        .fold(header.chars().count(), usize::max);
    u16::try_from(widest).unwrap_or(u16::MAX)
}

/// A section: a rule across the top that carries its title.
fn section(title: String) -> Block<'static> {
    Block::new()
        .borders(Borders::TOP)
        .border_style(Style::new().dark_gray())
        .title(Span::styled(format!(" {title} "), Style::new().bold()))
}

fn height(rows: usize) -> u16 {
    u16::try_from(rows).unwrap_or(u16::MAX)
}

/// Packs `items` joined by `separator` into lines of at most `width` columns, breaking only
/// between items, so that a section's height is known before it is drawn. An item longer than
/// a line gets a line of its own and is cut by the terminal.
fn pack<S: AsRef<str>>(items: &[S], separator: &str, width: u16) -> Vec<String> {
    let width = usize::from(width);
    let mut lines: Vec<String> = Vec::new();
    for item in items.iter().map(AsRef::as_ref) {
        match lines.last_mut() {
            Some(line)
                if line.chars().count() + separator.chars().count() + item.chars().count()
                    <= width =>
            {
                line.push_str(separator);
                line.push_str(item);
            }
            _ => lines.push(item.to_owned()),
        }
    }
    lines
}

/// The error counts as items to pack: comma-separated, or `none`.
fn error_items(errors: &[String]) -> Vec<String> {
    if errors.is_empty() {
        return vec!["none".to_owned()];
    }
    let last = errors.len() - 1;
    errors
        .iter()
        .enumerate()
        .map(|(index, error)| {
            if index < last {
                format!("{error},")
            } else {
                error.clone()
            }
        })
        .collect()
}

impl Widget for &DashboardView {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let seconds = DASHBOARD_WINDOW_MS / 1_000;
        let scale_note: Vec<&str> = self.scale_note.split_whitespace().collect();
        let scale_note = pack(&scale_note, " ", area.width);
        let summary = pack(&self.summary, SUMMARY_SEPARATOR, area.width);
        let errors = pack(&error_items(&self.errors_by_code), " ", area.width);
        let [header, operations, errors_area, alarms, events] = Layout::vertical([
            Constraint::Length(height(1 + scale_note.len() + summary.len())),
            Constraint::Length(height(2 + self.operations.len().max(1))),
            Constraint::Length(height(1 + errors.len())),
            Constraint::Length(height(2 + self.alarms.len())),
            Constraint::Min(2),
        ])
        .areas(area);

        let title = Line::from(vec![
            Span::styled(" order-service monitor ", Style::new().bold()),
            Span::raw(format!(" {}  log: {} ", self.clock, self.source)),
        ]);
        let note = Style::new().dark_gray();
        let lines: Vec<Line> = (scale_note.into_iter().map(|line| Line::styled(line, note)))
            .chain(summary.into_iter().map(Line::from))
            .collect();
        Paragraph::new(lines)
            .block(
                Block::new()
                    .borders(Borders::TOP)
                    .border_style(Style::new().dark_gray())
                    .title(title),
            )
            .render(header, buf);

        self.render_operations(seconds, operations, buf);

        Paragraph::new(errors.into_iter().map(Line::from).collect::<Vec<_>>())
            .block(section(format!("errors by code, last {seconds} s")))
            .render(errors_area, buf);

        self.render_alarms(alarms, buf);
        self.render_events(events, buf);
    }
}

impl DashboardView {
    fn render_operations(&self, seconds: i64, area: Rect, buf: &mut Buffer) {
        let names = column_width(
            "operation",
            self.operations.iter().map(|op| op.name.as_str()),
        );
        let header = Row::new(
            [
                "operation",
                "req/s",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "4xx",
                "5xx",
            ]
            .into_iter()
            .enumerate()
            .map(|(index, title)| {
                let line = Line::from(title);
                Cell::from(if index == 0 {
                    line
                } else {
                    line.right_aligned()
                })
            }),
        )
        .style(Style::new().bold());
        let mut rows: Vec<Row> = self
            .operations
            .iter()
            .map(|op| {
                let figure = |text: &str| Cell::from(Line::from(text.to_owned()).right_aligned());
                Row::new(vec![
                    Cell::from(op.name.clone()),
                    figure(&op.requests_per_second),
                    figure(&op.p50_ms),
                    figure(&op.p95_ms),
                    figure(&op.p99_ms),
                    count_cell(op.client_errors, Color::Yellow),
                    count_cell(op.server_errors, Color::Red),
                ])
            })
            .collect();
        if rows.is_empty() {
            rows.push(Row::new(vec![Cell::from("(no requests)")
                .column_span(7)
                .style(Style::new().dark_gray())]));
        }
        let widths = [
            Constraint::Length(names),
            Constraint::Length(8),
            Constraint::Length(9),
            Constraint::Length(9),
            Constraint::Length(9),
            Constraint::Length(6),
            Constraint::Length(6),
        ];
        Table::new(rows, widths)
            .header(header)
            .block(section(format!("operations, last {seconds} s")))
            .render(area, buf);
    }

    fn render_alarms(&self, area: Rect, buf: &mut Buffer) {
        let evaluated = || {
            self.alarms.iter().filter_map(|alarm| match &alarm.reading {
                AlarmReading::Evaluated { marks, last, rule } => Some((
                    marks.as_str(),
                    last.as_str(),
                    rule.as_str(),
                    alarm.runbook.as_str(),
                )),
                AlarmReading::NotObservable(_) => None,
            })
        };
        let widths = [
            Constraint::Length(column_width(
                "alarm",
                self.alarms.iter().map(|alarm| alarm.name.as_str()),
            )),
            Constraint::Length(column_width("state", ["ALARM"])),
            Constraint::Length(column_width("points", evaluated().map(|(marks, ..)| marks))),
            Constraint::Length(column_width("last", evaluated().map(|(_, last, ..)| last))),
            // The rule and the runbook share what is left in proportion to their widest cells,
            // so that on a narrow terminal both are cut a little rather than one entirely.
            Constraint::Fill(column_width("rule", evaluated().map(|(.., rule, _)| rule))),
            Constraint::Fill(column_width(
                "runbook",
                evaluated().map(|(.., runbook)| runbook),
            )),
        ];
        let header = Row::new(["alarm", "state", "points", "last", "rule", "runbook"])
            .style(Style::new().bold());
        let rows = self.alarms.iter().map(|alarm| {
            let state = Cell::from(state_label(alarm.status)).style(state_style(alarm.status));
            match &alarm.reading {
                // The runbook is left out as in the text: nothing local can trip this alarm.
                AlarmReading::NotObservable(why) => Row::new(vec![
                    Cell::from(alarm.name.clone()),
                    state,
                    Cell::from(*why).column_span(4),
                ])
                .style(Style::new().dark_gray()),
                AlarmReading::Evaluated { marks, last, rule } => Row::new(vec![
                    Cell::from(alarm.name.clone()),
                    state,
                    Cell::from(Line::from(
                        marks
                            .chars()
                            .map(|mark| Span::styled(mark.to_string(), mark_style(mark)))
                            .collect::<Vec<_>>(),
                    )),
                    Cell::from(last.clone()),
                    Cell::from(rule.clone()),
                    Cell::from(alarm.runbook.clone()),
                ]),
            }
        });
        Table::new(rows, widths)
            .header(header)
            .block(section(format!("alarms ({DATAPOINT_LEGEND})")))
            .render(area, buf);
    }

    fn render_events(&self, area: Rect, buf: &mut Buffer) {
        let block = section(format!("events, latest {EVENTS_SHOWN}"))
            .title(Line::from(" q, Esc or Ctrl-C: quit ").right_aligned());
        // When the terminal is too short for all of them, the newest are the ones kept.
        let room = usize::from(block.inner(area).height);
        let lines: Vec<Line> = if self.events.is_empty() {
            vec![Line::styled("(none yet)", Style::new().dark_gray())]
        } else {
            let skipped = self.events.len().saturating_sub(room);
            self.events[skipped..]
                .iter()
                .map(|event| Line::styled(event.line.as_str(), event_style(event.kind)))
                .collect()
        };
        Paragraph::new(lines).block(block).render(area, buf);
    }
}

#[cfg(test)]
mod tests {
    use ratatui::backend::TestBackend;
    use ratatui::style::Modifier;
    use ratatui::Terminal;

    use super::super::tests::{detector_after_a_store_outage, T0};
    use super::*;

    fn draw(view: &DashboardView, width: u16, height: u16) -> Buffer {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
        terminal
            .draw(|frame| frame.render_widget(view, frame.area()))
            .expect("draw");
        terminal.backend().buffer().clone()
    }

    fn row_text(buffer: &Buffer, y: u16) -> String {
        (0..buffer.area.width)
            .map(|x| buffer[(x, y)].symbol())
            .collect()
    }

    /// The position of the first occurrence of `text` on the screen (ASCII only).
    fn find(buffer: &Buffer, text: &str) -> Option<(u16, u16)> {
        (0..buffer.area.height).find_map(|y| {
            let row = row_text(buffer, y);
            row.find(text)
                .map(|x| (u16::try_from(x).expect("a column"), y))
        })
    }

    /// The words of the screen row that shows `text`.
    fn words_of_row_with(buffer: &Buffer, text: &str) -> Vec<String> {
        let (_, y) = find(buffer, text).unwrap_or_else(|| panic!("no {text:?} on screen"));
        row_text(buffer, y)
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }

    /// The cell where `word` starts on the screen row that shows `row_label`.
    fn cell_of(buffer: &Buffer, row_label: &str, word: &str) -> ratatui::buffer::Cell {
        let (_, y) =
            find(buffer, row_label).unwrap_or_else(|| panic!("no {row_label:?} on screen"));
        // Padded, so that a word at either end of the row is found too; the padding makes the
        // index of the space before the word the column of the word itself.
        let x = format!(" {} ", row_text(buffer, y))
            .find(&format!(" {word} "))
            .unwrap_or_else(|| panic!("no {word:?} on the row of {row_label:?}"));
        buffer[(u16::try_from(x).expect("a column"), y)].clone()
    }

    #[test]
    fn the_terminal_dashboard_shows_each_operation_with_its_figures() {
        // GIVEN a detector fed 31 s of log, the last 10 s of which the dashboard covers
        let (detector, events) = detector_after_a_store_outage();
        let view = DashboardView::new(&detector, T0 + 31_000, "functions.log", &events);
        // WHEN it is drawn on a 140x40 terminal
        let screen = draw(&view, 140, 40);
        // THEN every operation has its row: req/s, p50/p95/p99 ms, 4xx, 5xx
        assert_eq!(
            words_of_row_with(&screen, "get-order"),
            ["get-order", "10.0", "50.0", "95.0", "99.0", "0", "0"]
        );
        assert_eq!(
            words_of_row_with(&screen, "create-order"),
            ["create-order", "5.0", "20.0", "20.0", "20.0", "0", "50"]
        );
        assert_eq!(
            words_of_row_with(&screen, "pay-order"),
            ["pay-order", "2.0", "30.0", "30.0", "30.0", "10", "0"]
        );
        assert_eq!(cell_of(&screen, "create-order", "50").fg, Color::Red);
        // AND the header has the clock, the log, and the window's summary
        assert!(find(&screen, &format_ms(T0 + 31_000)).is_some());
        assert!(find(&screen, "log: functions.log").is_some());
        assert!(find(
            &screen,
            "last 10 s: 17.0 req/s   5xx 29.41%   p95 92.0 ms   p99 99.0 ms"
        )
        .is_some());
        assert!(find(&screen, "store-unavailable 50 (fast 50)").is_some());
        // AND the non-2xx answers are counted by code
        assert!(find(
            &screen,
            "409 INSUFFICIENT_BALANCE: 10, 503 STORE_UNAVAILABLE: 50"
        )
        .is_some());
    }

    #[test]
    fn the_terminal_dashboard_colours_each_alarm_by_its_state() {
        // GIVEN api-5xx-rate in ALARM after three bad periods, api-latency-p95 OK, and an alarm
        // with no local signal
        let (detector, events) = detector_after_a_store_outage();
        let view = DashboardView::new(&detector, T0 + 31_000, "functions.log", &events);
        // WHEN it is drawn
        let screen = draw(&view, 140, 40);
        // THEN the alarm in ALARM reads so in bold red, with its datapoints, value, rule, runbook
        assert_eq!(
            words_of_row_with(&screen, "api-5xx-rate "),
            [
                "api-5xx-rate",
                "ALARM",
                "__###",
                "0.2941",
                "5XXError",
                "Average",
                ">",
                "0.05",
                "in",
                "3",
                "of",
                "5",
                "x",
                "10",
                "s",
                "runbooks/api-5xx-rate.md"
            ]
        );
        let alarm = cell_of(&screen, "api-5xx-rate ", "ALARM");
        assert_eq!(alarm.fg, Color::Red);
        assert!(alarm.modifier.contains(Modifier::BOLD));
        // AND the OK alarm is green, the unobservable one dark gray with its reason
        assert_eq!(cell_of(&screen, "api-latency-p95 ", "OK").fg, Color::Green);
        assert_eq!(
            cell_of(&screen, "lambda-concurrency", "n/a").fg,
            Color::DarkGray
        );
        assert!(find(
            &screen,
            "not observable locally: a fixed pool of instances per function"
        )
        .is_some());
    }

    #[test]
    fn the_terminal_dashboard_lists_the_latest_twelve_events_newest_last() {
        // GIVEN the outage's ALERT and 14 more events after it
        let (detector, mut events) = detector_after_a_store_outage();
        assert_eq!(events.len(), 1, "{events:?}");
        let alert = events[0].line();
        for index in 0..14_i64 {
            events.push(AlarmEvent {
                kind: if index % 2 == 0 {
                    EventKind::Resolved
                } else {
                    EventKind::Alert
                },
                alarm: format!("alarm-{index:02}"),
                at_ms: T0 + 40_000 + index * 1_000,
                value: 0.0,
            });
        }
        let view = DashboardView::new(&detector, T0 + 31_000, "functions.log", &events);
        // WHEN it is drawn
        let screen = draw(&view, 140, 40);
        // THEN only the latest twelve are listed, oldest first, coloured by kind
        assert!(find(&screen, &alert).is_none());
        assert!(find(&screen, "alarm-01 ").is_none());
        let (_, first) = find(&screen, "RESOLVED alarm-02 ").expect("the oldest of the twelve");
        let (_, last) = find(&screen, "ALERT alarm-13 ").expect("the newest");
        assert_eq!(last - first, 11);
        assert_eq!(cell_of(&screen, "alarm-13 ", "ALERT").fg, Color::Red);
        assert_eq!(cell_of(&screen, "alarm-12 ", "RESOLVED").fg, Color::Green);
    }

    #[test]
    fn a_short_terminal_keeps_the_newest_events() {
        // GIVEN the outage's ALERT followed by a RESOLVED
        let (detector, mut events) = detector_after_a_store_outage();
        events.push(AlarmEvent {
            kind: EventKind::Resolved,
            alarm: "api-5xx-rate".to_owned(),
            at_ms: T0 + 81_000,
            value: 0.0,
        });
        let view = DashboardView::new(&detector, T0 + 31_000, "functions.log", &events);
        // WHEN it is drawn on a terminal with room for one event only (15 rows above them)
        let screen = draw(&view, 140, 17);
        // THEN that one is the RESOLVED
        assert!(find(&screen, "RESOLVED api-5xx-rate").is_some());
        assert!(find(&screen, "ALERT api-5xx-rate").is_none());
    }

    #[test]
    fn a_narrow_terminal_wraps_the_header_between_figures() {
        // GIVEN the outage
        let (detector, events) = detector_after_a_store_outage();
        let view = DashboardView::new(&detector, T0 + 31_000, "functions.log", &events);
        // WHEN it is drawn 100 columns wide, narrower than the scale note and the summary
        let screen = draw(&view, 100, 40);
        // THEN both wrap between words or figures instead of being cut at the edge
        assert!(find(&screen, "datapoints as in ops/alarms.json").is_some());
        assert!(find(&screen, "last 10 s: 17.0 req/s   5xx 29.41%").is_some());
        assert!(find(&screen, "store-unavailable 50 (fast 50)   store retries 0").is_some());
    }

    #[test]
    fn an_idle_log_says_so_in_every_section() {
        // GIVEN a detector that has seen no line
        let detector = Detector::new(Vec::new());
        let view = DashboardView::new(&detector, T0, "functions.log", &[]);
        // WHEN it is drawn
        let screen = draw(&view, 140, 40);
        // THEN the operations, the errors and the events each say there is nothing yet
        assert!(find(&screen, "(no requests)").is_some());
        let (_, errors_title) = find(&screen, " errors by code").expect("the errors section");
        assert_eq!(row_text(&screen, errors_title + 1).trim_end(), "none");
        assert!(find(&screen, "(none yet)").is_some());
    }

    #[test]
    fn error_counts_are_packed_into_lines_that_fit() {
        // GIVEN three counts
        let items = [
            "401 UNAUTHORIZED: 5",
            "404 ORDER_NOT_FOUND: 4",
            "409 OUT_OF_STOCK: 2",
        ]
        .map(str::to_owned);
        // WHEN they are packed into 44 columns THEN two share a line and none is cut
        assert_eq!(
            pack(&error_items(&items), " ", 44),
            [
                "401 UNAUTHORIZED: 5, 404 ORDER_NOT_FOUND: 4,",
                "409 OUT_OF_STOCK: 2"
            ]
        );
        // AND with one column less, the first break moves
        assert_eq!(
            pack(&error_items(&items), " ", 43),
            [
                "401 UNAUTHORIZED: 5,",
                "404 ORDER_NOT_FOUND: 4, 409 OUT_OF_STOCK: 2"
            ]
        );
        assert_eq!(error_items(&[]), ["none"]);
    }
}
