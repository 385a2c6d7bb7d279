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

/// The width tables fit: `COLUMNS` when set, else the terminal's, else 120 (a pipe, a CI log).
fn table_width(terminal: Option<u16>) -> u16 {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|columns| columns.trim().parse::<u16>().ok())
        .filter(|&columns| columns >= 20)
        .or(terminal)
        .unwrap_or(120)
}

/// A table under construction; numeric columns are right-aligned. Printed, it fits the
/// terminal's width (see [`table_width`]) with one line per row: numbers, times and columns
/// kept whole ([`TableBuilder::keep_whole`]) take the width they need; the other columns share
/// the rest, the narrow ones first, and a cell longer than its column is cut short with `…`.
pub(crate) struct TableBuilder {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
    numeric: Vec<bool>,
    /// Columns never to be cut ([`TableBuilder::keep_whole`]).
    whole: Vec<usize>,
}

impl TableBuilder {
    /// Starts a table with these headers; `numeric[i]` right-aligns column `i`.
    pub(crate) fn new(headers: &[&str], numeric: &[bool]) -> Self {
        TableBuilder {
            headers: headers.iter().map(|header| (*header).to_owned()).collect(),
            rows: Vec::new(),
            numeric: numeric.to_vec(),
            whole: Vec::new(),
        }
    }

    /// Never cuts column `column` (a site's `file:line`): the other columns give way.
    pub(crate) fn keep_whole(mut self, column: usize) -> Self {
        self.whole.push(column);
        self
    }

    /// Adds one row.
    pub(crate) fn row(&mut self, cells: Vec<String>) {
        // One line per row: a line break in a cell would split it.
        self.rows.push(
            cells
                .into_iter()
                .map(|cell| cell.replace(['\n', '\r'], " "))
                .collect(),
        );
    }

    /// The table as text, at most `width` columns wide unless its uncut columns alone are
    /// wider.
    fn render(self, width: u16) -> String {
        let columns = self.headers.len();
        let length = |text: &str| text.chars().count();
        // A header wider than its column's values gives way down to 6 characters.
        let needed: Vec<usize> = (0..columns)
            .map(|column| {
                let values = self
                    .rows
                    .iter()
                    .filter_map(|row| row.get(column))
                    .map(|cell| length(cell))
                    .max()
                    .unwrap_or(0);
                values.max(length(&self.headers[column]).min(6))
            })
            .collect();
        let uncut = |column: usize| {
            self.whole.contains(&column)
                || self.rows.iter().all(|row| {
                    row.get(column).is_none_or(|cell| {
                        cell.is_empty()
                            || self.numeric.get(column).copied().unwrap_or(false)
                            || is_time(cell)
                    })
                })
        };
        // Each column takes its content, its padding and a separator; the borders two more.
        let mut left = usize::from(width).saturating_sub(2 + 3 * columns);
        let mut widths = needed.clone();
        for column in (0..columns).filter(|&column| uncut(column)) {
            left = left.saturating_sub(needed[column]);
        }
        let mut flexible: Vec<usize> = (0..columns).filter(|&column| !uncut(column)).collect();
        flexible.sort_by_key(|&column| needed[column]);
        let mut remaining = flexible.len();
        for column in flexible {
            let share = (left / remaining.max(1)).max(1);
            widths[column] = needed[column].min(share);
            left = left.saturating_sub(widths[column]);
            remaining -= 1;
        }
        let mut table = Table::new();
        table
            .load_preset(UTF8_BORDERS_ONLY)
            .set_content_arrangement(ContentArrangement::Disabled);
        table.set_header(
            self.headers
                .iter()
                .enumerate()
                .map(|(column, header)| Cell::new(elide(header, widths[column]))),
        );
        for row in &self.rows {
            table.add_row(row.iter().enumerate().map(|(column, text)| {
                let cell = Cell::new(elide(text, widths[column]));
                if self.numeric.get(column).copied().unwrap_or(false) {
                    cell.set_alignment(CellAlignment::Right)
                } else {
                    cell
                }
            }));
        }
        table.to_string()
    }

    /// Prints the table (or a note when it has no rows).
    pub(crate) fn print(self, empty_note: &str) -> anyhow::Result<()> {
        if self.rows.is_empty() {
            return print_line(empty_note);
        }
        let terminal = Table::new().width();
        print_line(&self.render(table_width(terminal)))
    }
}

/// `text` cut to `width` characters with `…` where it was cut: at the end, or for a path
/// (`/` in it) at the start, so that a file's name and line stay.
fn elide(text: &str, width: usize) -> String {
    let length = text.chars().count();
    if length <= width {
        return text.to_owned();
    }
    let kept = width.saturating_sub(1);
    if text.contains('/') {
        let tail: String = text.chars().skip(length - kept).collect();
        format!("…{tail}")
    } else {
        let mut cut: String = text.chars().take(kept).collect();
        cut.push('…');
        cut
    }
}

/// Whether `text` is a time as [`time`] writes it.
fn is_time(text: &str) -> bool {
    text.parse::<jiff::Timestamp>().is_ok()
}

/// Short, unambiguous names for the files of the sites a table shows: a gem's file as
/// `gem-version/path` (from its gem directory), Ruby's own library as `ruby/path`, and the
/// app's files relative to the app root, the longest directory all of them share, which
/// [`SiteNames::root`] gives to print once above the table.
pub(crate) struct SiteNames {
    root: String,
}

impl SiteNames {
    /// Names for the files in `files`.
    pub(crate) fn new<'a>(files: impl IntoIterator<Item = &'a str>) -> SiteNames {
        let mut root: Option<&str> = None;
        for file in files {
            if library_name(file).is_some() {
                continue;
            }
            let directory = file.rsplit_once('/').map_or("", |(directory, _)| directory);
            root = Some(match root {
                None => directory,
                Some(root) => common_directory(root, directory),
            });
        }
        SiteNames {
            root: root.unwrap_or_default().to_owned(),
        }
    }

    /// The app root app files are shown relative to (`""`: none).
    pub(crate) fn root(&self) -> &str {
        &self.root
    }

    /// The short name of `file`.
    pub(crate) fn file(&self, file: &str) -> String {
        if let Some(name) = library_name(file) {
            return name;
        }
        match file.strip_prefix(&self.root) {
            Some(rest) if !self.root.is_empty() && rest.starts_with('/') => rest[1..].to_owned(),
            _ => file.to_owned(),
        }
    }
}

/// `gem-version/path` for a file in a gem directory, `ruby/path` for one of Ruby's own library.
fn library_name(file: &str) -> Option<String> {
    if heapfleet_analysis::gem_from_path(file).is_some() {
        let start = file.rfind("/gems/")? + "/gems/".len();
        return Some(file[start..].to_owned());
    }
    let start = file.rfind("/lib/ruby/")? + "/lib/ruby/".len();
    Some(format!("ruby/{}", &file[start..]))
}

/// The longest directory `left` and `right` both lie in (whole path components).
fn common_directory<'a>(left: &'a str, right: &str) -> &'a str {
    let mut length = 0;
    for (left_part, right_part) in left.split('/').zip(right.split('/')) {
        if left_part != right_part {
            break;
        }
        length += left_part.len() + 1;
    }
    &left[..length.saturating_sub(1).min(left.len())]
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
    fn test_site_names_are_short_and_unambiguous() {
        let files = [
            "/srv/app/app/jobs/report_job.rb",
            "/srv/app/lib/payloads.rb",
            "/srv/app/vendor/bundle/ruby/3.2.0/gems/activesupport-7.1.3/lib/active_support/cache.rb",
            "/usr/lib/ruby/3.2.0/json/common.rb",
        ];
        let names = SiteNames::new(files);
        assert_eq!(names.root(), "/srv/app");
        assert_eq!(names.file(files[0]), "app/jobs/report_job.rb");
        assert_eq!(names.file(files[1]), "lib/payloads.rb");
        assert_eq!(
            names.file(files[2]),
            "activesupport-7.1.3/lib/active_support/cache.rb"
        );
        assert_eq!(names.file(files[3]), "ruby/3.2.0/json/common.rb");
        // A file outside the root keeps its whole path; a root is a whole directory.
        assert_eq!(names.file("/srv/application.rb"), "/srv/application.rb");
        assert_eq!(
            SiteNames::new(["/srv/app1/a.rb", "/srv/app2/b.rb"]).root(),
            "/srv"
        );
        assert_eq!(SiteNames::new(["/srv/app/a.rb"]).root(), "/srv/app");
    }

    #[test]
    fn test_tables_fit_their_width_without_splitting_numbers_or_times() {
        for width in [80u16, 100, 120] {
            let mut table = TableBuilder::new(
                &["leak", "site", "since", "bytes/dump"],
                &[true, false, false, true],
            );
            for leak in 1..4u64 {
                table.row(vec![
                    leak.to_string(),
                    format!("app/jobs/a_rather_long_directory_name/and_a_long_file_name_{leak}.rb:{leak}"),
                    time(1_700_000_000 + leak as i64),
                    bytes(3_800_000 * leak),
                ]);
            }
            let text = table.render(width);
            for line in text.lines() {
                assert!(
                    line.chars().count() <= usize::from(width),
                    "{width}: {line}"
                );
            }
            for leak in 1..4u64 {
                let when = time(1_700_000_000 + leak as i64);
                let size = bytes(3_800_000 * leak);
                assert!(
                    text.contains(&when),
                    "{width}: {when} split or cut:\n{text}"
                );
                assert!(
                    text.contains(&size),
                    "{width}: {size} split or cut:\n{text}"
                );
            }
            // One line per row: 3 rows, the header and 3 border lines.
            assert_eq!(text.lines().count(), 7, "{width}:\n{text}");
        }
    }

    #[test]
    fn test_elide_keeps_a_paths_end() {
        assert_eq!(elide("short", 10), "short");
        assert_eq!(elide("a long description", 7), "a long…");
        assert_eq!(elide("/srv/app/lib/payloads.rb:12", 15), "…payloads.rb:12");
    }

    #[test]
    fn test_time_formats_rfc3339() {
        assert_eq!(time(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
