//! Output for people (aligned tables) and for scripts (JSON), chosen by `--format`.
//!
//! Every command builds one serializable value; `--format json` prints it as is (the shapes are
//! documented in the README and stay stable), `--format table` renders it with comfy-table.

use std::io::Write;

use comfy_table::presets::UTF8_BORDERS_ONLY;
use comfy_table::{Cell, CellAlignment, ContentArrangement, Table};
use serde::Serialize;

/// How to print results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// Aligned tables for people.
    Table,
    /// JSON for scripts (one document per command).
    Json,
}

/// Prints `value` as pretty JSON followed by a newline.
pub(crate) fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut stdout, value)?;
    writeln!(stdout)?;
    Ok(())
}

/// Prints a line for people.
pub(crate) fn print_line(text: &str) -> anyhow::Result<()> {
    writeln!(std::io::stdout().lock(), "{text}")?;
    Ok(())
}

/// A table under construction; numeric columns are right-aligned.
pub(crate) struct TableBuilder {
    table: Table,
    numeric: Vec<bool>,
}

impl TableBuilder {
    /// Starts a table with these headers; `numeric[i]` right-aligns column `i`.
    pub(crate) fn new(headers: &[&str], numeric: &[bool]) -> Self {
        let mut table = Table::new();
        table
            .load_preset(UTF8_BORDERS_ONLY)
            .set_content_arrangement(ContentArrangement::Dynamic);
        table.set_header(headers.iter().map(Cell::new));
        TableBuilder {
            table,
            numeric: numeric.to_vec(),
        }
    }

    /// Adds one row.
    pub(crate) fn row(&mut self, cells: Vec<String>) {
        let cells = cells.into_iter().enumerate().map(|(column, text)| {
            let cell = Cell::new(text);
            if self.numeric.get(column).copied().unwrap_or(false) {
                cell.set_alignment(CellAlignment::Right)
            } else {
                cell
            }
        });
        self.table.add_row(cells);
    }

    /// Prints the table (or a note when it has no rows).
    pub(crate) fn print(self, empty_note: &str) -> anyhow::Result<()> {
        if self.table.row_count() == 0 {
            return print_line(empty_note);
        }
        print_line(&self.table.to_string())
    }
}

/// Formats a byte count for people: `1.5 MB`.
pub(crate) fn bytes(count: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = count as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{count} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Formats a count with thousands separators: `1,234,567`.
pub(crate) fn count(value: u64) -> String {
    let digits = value.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (position, digit) in digits.chars().enumerate() {
        if position > 0 && (digits.len() - position).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

/// Formats Unix seconds as an RFC 3339 UTC time.
pub(crate) fn time(unix_seconds: i64) -> String {
    jiff::Timestamp::from_second(unix_seconds).map_or_else(
        |_| unix_seconds.to_string(),
        |timestamp| timestamp.to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_bytes_uses_decimal_units() {
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1_500_000), "1.5 MB");
        assert_eq!(bytes(2_000_000_000), "2.0 GB");
    }

    #[test]
    fn test_count_groups_thousands() {
        assert_eq!(count(0), "0");
        assert_eq!(count(1234), "1,234");
        assert_eq!(count(1_234_567), "1,234,567");
    }

    #[test]
    fn test_time_formats_rfc3339() {
        assert_eq!(time(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
