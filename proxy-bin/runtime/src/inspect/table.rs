//! `--format table`: one line per request and its answer, in aligned columns, for people.
//!
//! A request's row waits until its answer arrives (or its connection ends), then joins the
//! rows printed next; rows are printed in blocks of [`BLOCK`], each block aligned on its own, so
//! that memory stays bounded on long captures. Events (gaps, resyncs…) are printed among the rows
//! as lines starting with `!`. The totals follow the table.

use std::collections::HashMap;
use std::io::Write;

use metaprotocol_core::MessageType;

use super::output::{EventLine, MessageLine, Place, Report, Totals, Ts};
use crate::RuntimeError;

/// Rows printed at once (and aligned together).
pub const BLOCK: usize = 1000;

const HEADER: [&str; 10] =
    ["TIME", "CONN", "CLIENT -> SERVER", "PROTOCOL", "ID", "REQUEST", "ANSWER", "LATENCY", "ROUTE", "DESTINATION"];

#[derive(Debug, Clone)]
struct Row {
    cells: [String; 10],
    /// Sorts the block: the request's capture time, then its exchange.
    key: (Option<Ts>, u64),
}

#[derive(Debug)]
enum Entry {
    Row(Box<Row>),
    Note((Option<Ts>, u64), String),
}

impl Entry {
    fn key(&self) -> (Option<Ts>, u64) {
        match self {
            Entry::Row(r) => r.key,
            Entry::Note(k, _) => *k,
        }
    }
}

/// The table report.
pub struct TableReport<'w> {
    out: &'w mut dyn Write,
    waiting: HashMap<u64, Row>,
    done: Vec<Entry>,
    routes: bool,
}

fn dash(s: Option<String>) -> String {
    s.filter(|s| !s.is_empty()).unwrap_or_else(|| "-".to_string())
}

fn conn(place: &Place<'_>) -> String {
    match place.connection {
        Some(c) => format!("#{c}"),
        None => place.file.to_string(),
    }
}

fn is_answer(t: MessageType) -> bool {
    matches!(t, MessageType::Response | MessageType::Error | MessageType::Pong)
}

fn describe(line: &MessageLine<'_>) -> String {
    let md = line.metadata();
    match (md.message_type, line.operation.is_empty()) {
        (MessageType::Request, false) => line.operation.clone(),
        (t, true) => t.as_str().to_string(),
        (t, false) => format!("{} {}", t.as_str(), line.operation),
    }
}

impl<'w> TableReport<'w> {
    /// Writing to `out`; `routes` adds the dry run's columns.
    pub fn new(out: &'w mut dyn Write, routes: bool) -> Self {
        TableReport { out, waiting: HashMap::new(), done: Vec::new(), routes }
    }

    fn push(&mut self, entry: Entry) -> Result<(), RuntimeError> {
        self.done.push(entry);
        if self.done.len() >= BLOCK {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), RuntimeError> {
        let columns = if self.routes { HEADER.len() } else { HEADER.len() - 2 };
        let mut widths = [0usize; HEADER.len()];
        for (w, h) in widths.iter_mut().zip(HEADER) {
            *w = h.chars().count();
        }
        for entry in &self.done {
            if let Entry::Row(r) = entry {
                for (w, c) in widths.iter_mut().zip(&r.cells) {
                    *w = (*w).max(c.chars().count());
                }
            }
        }
        // In request order (they were completed in answer order).
        self.done.sort_by_key(Entry::key);
        let header = Row { cells: HEADER.map(str::to_string), key: (None, 0) };
        let rows = std::iter::once(Entry::Row(Box::new(header))).chain(self.done.drain(..));
        let mut text = String::new();
        for entry in rows {
            match entry {
                Entry::Note(_, n) => text.push_str(&format!("! {n}\n")),
                Entry::Row(r) => {
                    let cells = r.cells.iter().zip(widths).take(columns);
                    let line: Vec<String> = cells.map(|(c, w)| format!("{c:<w$}")).collect();
                    text.push_str(line.join("  ").trim_end());
                    text.push('\n');
                }
            }
        }
        self.out.write_all(text.as_bytes()).map_err(RuntimeError::Output)
    }

    fn row(line: &MessageLine<'_>, answer: String) -> Row {
        let place = line.place();
        let md = line.metadata();
        let peers = match (place.src, place.dst, place.direction) {
            (Some(s), Some(d), Some("server_to_client")) => format!("{d} -> {s}"),
            (Some(s), Some(d), _) => format!("{s} -> {d}"),
            _ => "-".to_string(),
        };
        let (route, dest) = match (line.route, line.upstream) {
            (Some(d), _) => (d.route.clone().unwrap_or_else(|| "(no route)".to_string()), d.destination()),
            (None, Some(u)) if u.subsets.is_empty() => ("(upstream leg)".to_string(), u.cluster.clone()),
            (None, Some(u)) => ("(upstream leg)".to_string(), format!("{}/{}", u.cluster, u.subsets.join(","))),
            _ => ("-".to_string(), "-".to_string()),
        };
        Row {
            cells: [
                dash(place.ts.map(|t| t.time_of_day())),
                conn(&place),
                peers,
                dash(place.protocol.map(str::to_string)),
                md.request_id.to_string(),
                describe(line),
                answer,
                "-".to_string(),
                route,
                dest,
            ],
            key: (place.ts, line.exchange.unwrap_or(0)),
        }
    }
}

impl Report for TableReport<'_> {
    fn message(&mut self, line: &MessageLine<'_>) -> Result<(), RuntimeError> {
        let md = line.metadata();
        if is_answer(md.message_type) {
            let answer = match md.message_type {
                MessageType::Response => format!("response {}", md.response_status.as_str()),
                t => t.as_str().to_string(),
            };
            let row = match line.exchange.and_then(|e| self.waiting.remove(&e)) {
                Some(mut row) => {
                    row.cells[6] = answer;
                    row.cells[7] = line.latency_us.map_or("-".to_string(), |us| format!("{:.3} ms", us / 1000.0));
                    row
                }
                None => {
                    let mut row = Self::row(line, answer);
                    row.cells[5] = "(request not captured)".to_string();
                    row
                }
            };
            return self.push(Entry::Row(Box::new(row)));
        }
        let expects = matches!(md.message_type, MessageType::Request | MessageType::StreamInit | MessageType::Ping);
        match line.exchange {
            Some(e) if expects => {
                self.waiting.insert(e, Self::row(line, "(waiting)".to_string()));
                Ok(())
            }
            _ => self.push(Entry::Row(Box::new(Self::row(line, "(one-way)".to_string())))),
        }
    }

    fn event(&mut self, line: &EventLine<'_>) -> Result<(), RuntimeError> {
        if line.event == "unanswered" {
            if let Some(mut row) = line.exchange.and_then(|e| self.waiting.remove(&e)) {
                row.cells[6] = "(no answer)".to_string();
                return self.push(Entry::Row(Box::new(row)));
            }
        }
        let place = line.place();
        let at = dash(place.ts.map(|t| t.time_of_day()));
        let peers = match (place.src, place.dst) {
            (Some(s), Some(d)) => format!(" {s} -> {d}"),
            _ => String::new(),
        };
        let key = (place.ts, line.exchange.unwrap_or(0));
        self.push(Entry::Note(key, format!("{at} {}{peers}: {}: {}", conn(&place), line.event, line.detail)))
    }

    fn finish(&mut self, totals: &Totals, _summary: bool) -> Result<(), RuntimeError> {
        let mut left: Vec<(u64, Row)> = self.waiting.drain().collect();
        left.sort_by_key(|(e, _)| *e);
        for (_, mut row) in left {
            row.cells[6] = "(no answer)".to_string();
            self.done.push(Entry::Row(Box::new(row)));
        }
        self.flush()?;
        let t = totals;
        let mut text = format!(
            "\n{} messages: {} requests, {} answered, {} unanswered, {} answers without their request\n",
            t.messages, t.requests, t.answered, t.unanswered, t.unpaired_answers
        );
        if t.packets > 0 {
            text.push_str(&format!(
                "{} packets, {} TCP connections; {} gaps ({} bytes), {} decode errors, {} resyncs ({} bytes skipped), {} streams end inside a message\n",
                t.packets, t.connections, t.gaps, t.gap_bytes, t.decode_errors, t.resyncs, t.skipped_bytes, t.incomplete
            ));
        } else if t.decode_errors > 0 {
            text.push_str(&format!("{} decode errors\n", t.decode_errors));
        }
        if let Some(d) = &t.dry_run {
            text.push_str(&format!("dry run ({}): {} requests on listeners", d.config, d.requests));
            for (name, n) in &d.listeners {
                text.push_str(&format!(" [{name}: {n}]"));
            }
            text.push('\n');
            let mut rows: Vec<(String, u64)> = Vec::new();
            rows.extend(d.routes.iter().map(|(k, v)| (format!("route {k}"), *v)));
            rows.extend(d.destinations.iter().map(|(k, v)| (format!("to {k}"), *v)));
            rows.push(("unmatched (route_not_found)".to_string(), d.unmatched));
            rows.push(("not on a listener (upstream legs, other)".to_string(), d.not_on_a_listener));
            let width = rows.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
            for (k, v) in rows {
                text.push_str(&format!("  {k:<width$}  {v}\n"));
            }
        }
        self.out.write_all(text.as_bytes()).map_err(RuntimeError::Output)?;
        self.out.flush().map_err(RuntimeError::Output)
    }
}
