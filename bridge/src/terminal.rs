//! What the operator commands print: for a person at a terminal, a table in local time
//! (and colour, unless `NO_COLOR` is set); for a pipe or a file, JSON lines and no escape
//! codes.

use std::io::IsTerminal;

use inbox_core::State;
use inbox_core::model::StatusView;

use crate::tail::WebhookChange;

/// Whether `stream` is a terminal that takes colour (<https://no-color.org>).
pub fn colour(stream: &impl IsTerminal) -> bool {
    stream.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// A progress bar for `len` steps of `what`, on stderr when it is a terminal (hidden
/// otherwise, so a log or a pipe gets no escape codes); it moves while a long step runs.
pub fn progress(len: usize, what: &str) -> indicatif::ProgressBar {
    let style = indicatif::ProgressStyle::with_template(&format!(
        "{{spinner}} {what} {{bar:40}} {{pos}}/{{len}} {{msg}}"
    ))
    .expect("a valid template");
    let bar = indicatif::ProgressBar::new(len as u64).with_style(style);
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

/// Unix milliseconds as this machine's local time, to the second.
pub fn local_time(ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(at) => at
            .to_zoned_datetime(jiff::tz::TimeZone::system())
            .strftime("%Y-%m-%d %H:%M:%S")
            .to_string(),
        Err(_) => ms.to_string(),
    }
}

/// The webhooks as a table: one line each, columns padded to fit.
pub fn table(views: &[StatusView], colour: bool) -> String {
    let header = [
        "RECEIVED",
        "ID",
        "ORIGIN",
        "TYPE",
        "STATUS",
        "TRIES",
        "LAST ERROR",
    ];
    let rows: Vec<[String; 7]> = views
        .iter()
        .map(|v| {
            [
                local_time(v.received_at),
                v.id.clone(),
                clean(&v.origin),
                clean(&v.event_type),
                v.status.to_string(),
                v.attempts.to_string(),
                v.last_error.as_deref().map(one_line).unwrap_or_default(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[String], paint: Option<State>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let last = i + 1 == cells.len();
            let padded = if last {
                cell.clone()
            } else {
                format!("{cell:<width$}  ", width = widths[i])
            };
            match paint {
                Some(state) if colour && i == 4 => {
                    out.push_str(&format!("\x1b[{}m{padded}\x1b[0m", code(state)))
                }
                _ => out.push_str(&padded),
            }
        }
        out.trim_end().to_owned()
    };
    let mut out = line(&header.map(str::to_owned), None);
    out.push('\n');
    for (row, view) in rows.iter().zip(views) {
        out.push_str(&line(row, Some(view.status)));
        out.push('\n');
    }
    out
}

/// A line of `inbox tail`: when, which, and what became of it.
pub fn event_line(event: &WebhookChange, colour: bool) -> String {
    let webhook = event.webhook();
    let (at, what) = match event {
        WebhookChange::Arrived { .. } => {
            (webhook.received_at, format!("arrived, {}", webhook.status))
        }
        WebhookChange::Changed { from, .. } => {
            (webhook.updated_at, format!("{from} -> {}", webhook.status))
        }
    };
    let what = if colour {
        format!("\x1b[{}m{what}\x1b[0m", code(webhook.status))
    } else {
        what
    };
    let mut line = format!(
        "{}  {}  {} {}  {what}",
        local_time(at),
        webhook.id,
        clean(&webhook.origin),
        clean(&webhook.event_type)
    );
    if let (WebhookChange::Changed { .. }, Some(error)) = (event, &webhook.last_error) {
        line.push_str(&format!(" ({})", one_line(error)));
    }
    line
}

/// Text from a sender or a processor, with no control character left to move the cursor,
/// clear the screen or change the terminal's title.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// The first line of an error, shortened for a table cell.
fn one_line(error: &str) -> String {
    let first = clean(error.lines().next().unwrap_or_default());
    if first.chars().count() > 60 {
        first.chars().take(59).chain(['…']).collect()
    } else {
        first
    }
}

/// The SGR colour of a state: green done, yellow on its way, red for an operator.
fn code(state: State) -> &'static str {
    match state {
        State::Completed => "32",
        State::Received | State::Processing => "36",
        State::Failed => "33",
        State::OperatorRequired => "31",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(status: State, error: Option<&str>) -> StatusView {
        StatusView {
            id: "7c2d0f52-7a4e-5b8e-9a63-4b5e0c1d2e3f".into(),
            origin: "stripe".into(),
            event_type: "charge.succeeded".into(),
            status,
            attempts: 3,
            last_error: error.map(str::to_owned),
            received_at: 1_700_000_000_000,
            updated_at: 1_700_000_000_000,
            next_attempt_at: None,
        }
    }

    #[test]
    fn tables_line_up_and_paint_only_when_asked() {
        let views = [
            view(State::Completed, None),
            view(State::OperatorRequired, Some("rejected: 410\nGone")),
        ];
        let plain = table(&views, false);
        let lines: Vec<_> = plain.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("RECEIVED"));
        let column = lines[0].find("STATUS").unwrap();
        assert_eq!(&lines[2][column..column + 17], "operator_required");
        assert!(lines[2].ends_with("rejected: 410"));
        assert!(!plain.contains('\x1b'));
        let painted = table(&views, true);
        assert!(painted.contains("\x1b[31moperator_required"));
    }

    #[test]
    fn tail_lines_say_what_changed_and_why() {
        let event = WebhookChange::Changed {
            from: State::Processing,
            webhook: view(State::Failed, Some("destination answered 503")),
        };
        let line = event_line(&event, false);
        assert!(
            line.ends_with("processing -> failed (destination answered 503)"),
            "{line}"
        );
        assert!(line.contains("stripe charge.succeeded"));
        let mut hostile = view(State::Failed, Some("\x1b]0;pwned\x07 500"));
        hostile.event_type = "order\x1b[2J".into();
        let line = event_line(
            &WebhookChange::Changed {
                from: State::Processing,
                webhook: hostile,
            },
            false,
        );
        assert!(!line.contains('\x1b') && !line.contains('\x07'), "{line:?}");
        assert!(event_line(&event, true).contains("\x1b[33m"));
    }
}
