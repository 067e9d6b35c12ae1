//! What a command prints: an aligned table for people, or one JSON
//! document for scripts (`--format json`). Each command builds its JSON
//! value and its table from the same data.

use std::io::Write;

use serde_json::Value;

use crate::cli::error::CliError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// One JSON document for scripts.
    Json,
}

/// Columns with a header row, left-aligned, two spaces apart.
pub struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&'static str]) -> Table {
        Table {
            header: header.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn print(&self) -> Result<(), CliError> {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.len()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                if let Some(width) = widths.get_mut(i) {
                    *width = (*width).max(cell.chars().count());
                }
            }
        }
        let mut out = String::new();
        let header: Vec<String> = self.header.iter().map(|h| h.to_string()).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                let width = widths.get(i).copied().unwrap_or(0);
                if i + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<width$}  "));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        print_text(&out)
    }
}

pub fn print_json(value: &Value) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".to_string());
    print_text(&format!("{text}\n"))
}

/// What a delete command removed (`kind` is "topic" or "group"), then its
/// first error if any: the others were still attempted.
pub fn print_deleted(
    format: Format,
    kind: &str,
    deleted: &[String],
    first_error: Option<CliError>,
) -> Result<(), CliError> {
    match format {
        Format::Json => print_json(&serde_json::json!({ "deleted": deleted }))?,
        Format::Table => {
            let text: String = deleted
                .iter()
                .map(|name| format!("deleted {kind} {name}\n"))
                .collect();
            print_text(&text)?;
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Writes `text` to stdout as it is.
pub fn print_text(text: &str) -> Result<(), CliError> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(CliError::Stdout)
}

/// A list of node ids as `1,2,3`.
pub fn ids(nodes: &[i32]) -> String {
    nodes
        .iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}
