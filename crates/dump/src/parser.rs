//! The push parser: splits byte chunks into lines, scans each line, and tells a [`Visitor`].
//!
//! Lines wholly inside a chunk are scanned in place; a line that straddles chunks is assembled in
//! `carry`, whose size is capped by [`ParseOptions::max_line_bytes`]. A longer line is skipped
//! (reported as [`BadLineReason::TooLong`]) without buffering it, so memory stays bounded whatever
//! the input.

use memchr::memchr;
use serde::{Deserialize, Serialize};

use crate::error::{BadLine, BadLineReason, ParseError};
use crate::record::{ObjectRecord, Record};
use crate::scan::{parse_line, parse_line_checked};

/// Receives every parsed record and every bad line, in dump order.
pub trait Visitor {
    /// Called once per record with its 1-based line number.
    fn record(&mut self, line_number: u64, record: &Record<'_>);

    /// Called once per bad line (repaired or skipped). The default does nothing: the parser
    /// already counts bad lines and keeps the first ones in [`ParseStats::bad_line_samples`].
    fn bad_line(&mut self, _bad_line: &BadLine) {}
}

/// How to parse.
#[derive(Debug, Clone)]
pub struct ParseOptions {
    /// Stop at the first line that is not valid JSON (checked with a full JSON parser).
    pub strict: bool,
    /// Lines longer than this are skipped and reported; Ruby writes lines of several MB.
    pub max_line_bytes: usize,
    /// Fail once the decompressed dump exceeds this many bytes (protects against gzip bombs).
    pub max_dump_bytes: Option<u64>,
    /// How many bad lines to keep in [`ParseStats::bad_line_samples`]; all are counted.
    pub max_reported_bad_lines: usize,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            strict: false,
            max_line_bytes: 32 * 1024 * 1024,
            max_dump_bytes: None,
            max_reported_bad_lines: 100,
        }
    }
}

/// What a parse saw.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParseStats {
    /// Decompressed bytes parsed.
    pub bytes: u64,
    /// Lines seen, bad ones included.
    pub lines: u64,
    /// Heap-object records.
    pub objects: u64,
    /// ROOT records.
    pub roots: u64,
    /// SHAPE records.
    pub shapes: u64,
    /// Bad lines, repaired or skipped.
    pub bad_lines: u64,
    /// Bad lines that were repaired and used.
    pub repaired_lines: u64,
    /// Bad lines that were skipped.
    pub skipped_lines: u64,
    /// Whether the input stopped early (a truncated gzip stream, a line cut short at the end).
    pub truncated: bool,
    /// The first bad lines, with their line numbers and reasons.
    pub bad_line_samples: Vec<BadLine>,
}

/// A push parser for one dump. Feed it chunks, then call [`DumpParser::finish`].
#[derive(Debug)]
pub struct DumpParser {
    options: ParseOptions,
    stats: ParseStats,
    /// The start of a line that began in an earlier chunk.
    carry: Vec<u8>,
    /// Set while discarding the rest of a line that exceeded `max_line_bytes`.
    skipping_long_line: bool,
    /// Whether the chunk being parsed (or the carried line) may hold a NUL byte.
    may_hold_nul: bool,
}

impl DumpParser {
    /// Returns a parser with the given options.
    pub fn new(options: ParseOptions) -> Self {
        DumpParser {
            options,
            stats: ParseStats::default(),
            carry: Vec::new(),
            skipping_long_line: false,
            may_hold_nul: true,
        }
    }

    /// Returns what the parser has seen so far.
    pub fn stats(&self) -> &ParseStats {
        &self.stats
    }

    /// Parses every complete line in `chunk`, keeping an incomplete last line for later.
    pub fn feed<V: Visitor>(&mut self, chunk: &[u8], visitor: &mut V) -> Result<(), ParseError> {
        self.stats.bytes += chunk.len() as u64;
        if let Some(limit) = self.options.max_dump_bytes
            && self.stats.bytes > limit
        {
            return Err(ParseError::TooLarge { limit });
        }
        let mut rest = chunk;
        // One scan of the chunk is far cheaper than one per line; NUL bytes are rare.
        self.may_hold_nul = memchr(0, chunk).is_some() || !self.carry.is_empty();
        if self.skipping_long_line || !self.carry.is_empty() {
            let Some(newline) = memchr(b'\n', rest) else {
                self.extend_carry(rest, visitor)?;
                return Ok(());
            };
            self.extend_carry(&rest[..newline], visitor)?;
            if self.skipping_long_line {
                self.skipping_long_line = false;
            } else {
                let line = std::mem::take(&mut self.carry);
                self.process_line(&line, visitor)?;
                self.carry = line;
                self.carry.clear();
            }
            rest = &rest[newline + 1..];
            self.may_hold_nul = memchr(0, chunk).is_some();
        }
        while let Some(newline) = memchr(b'\n', rest) {
            self.process_line(&rest[..newline], visitor)?;
            rest = &rest[newline + 1..];
        }
        self.extend_carry(rest, visitor)
    }

    /// Parses the last line if the input did not end with a newline, and returns the totals.
    pub fn finish<V: Visitor>(mut self, visitor: &mut V) -> Result<ParseStats, ParseError> {
        if self.skipping_long_line {
            // The over-long line was already reported when it crossed the limit.
        } else if !self.carry.is_empty() {
            let line = std::mem::take(&mut self.carry);
            // A complete last line without a newline is fine; a cut one is a truncated tail.
            if parse_line(&line).is_ok() {
                self.process_line(&line, visitor)?;
            } else {
                self.stats.lines += 1;
                self.stats.truncated = true;
                self.report(BadLineReason::Truncated, visitor)?;
            }
        }
        Ok(self.stats)
    }

    /// Records that the input ended early (for example a gzip stream cut short), then finishes.
    pub fn finish_truncated<V: Visitor>(
        mut self,
        visitor: &mut V,
    ) -> Result<ParseStats, ParseError> {
        self.stats.truncated = true;
        if self.options.strict {
            let line_number = self.stats.lines + 1;
            return Err(ParseError::Strict(BadLine {
                line_number,
                reason: BadLineReason::Truncated,
            }));
        }
        if !self.skipping_long_line && !self.carry.is_empty() {
            self.carry.clear();
            self.stats.lines += 1;
            self.report(BadLineReason::Truncated, visitor)?;
        }
        Ok(self.stats)
    }

    /// Appends part of a line to `carry`, or starts skipping it once it is too long.
    fn extend_carry<V: Visitor>(&mut self, part: &[u8], visitor: &mut V) -> Result<(), ParseError> {
        if self.skipping_long_line || part.is_empty() {
            return Ok(());
        }
        if self.carry.len() + part.len() > self.options.max_line_bytes {
            self.carry.clear();
            self.carry.shrink_to(64 * 1024);
            self.skipping_long_line = true;
            self.stats.lines += 1;
            let limit = self.options.max_line_bytes;
            return self.report(BadLineReason::TooLong { limit }, visitor);
        }
        self.carry.extend_from_slice(part);
        Ok(())
    }

    fn process_line<V: Visitor>(&mut self, line: &[u8], visitor: &mut V) -> Result<(), ParseError> {
        self.stats.lines += 1;
        let line_number = self.stats.lines;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > self.options.max_line_bytes {
            let limit = self.options.max_line_bytes;
            return self.report(BadLineReason::TooLong { limit }, visitor);
        }
        if self.options.strict
            && let Err(error) = serde_json::from_slice::<serde::de::IgnoredAny>(line)
        {
            let reason = BadLineReason::InvalidJson(error.to_string());
            return Err(ParseError::Strict(BadLine {
                line_number,
                reason,
            }));
        }
        // Clean lines (nearly all) take the fast path; anything unusual, and every line in
        // strict mode or in a chunk with a NUL byte, takes the general scanner.
        let mut record = Record::Object(ObjectRecord::default());
        if !self.options.strict
            && !self.may_hold_nul
            && crate::fast::parse_clean_line_into(line, &mut record)
        {
            match &record {
                Record::Object(_) => self.stats.objects += 1,
                Record::Root(_) => self.stats.roots += 1,
                Record::Shape(_) => self.stats.shapes += 1,
            }
            visitor.record(line_number, &record);
            return Ok(());
        }
        match parse_line_checked(line, self.may_hold_nul) {
            Ok(parsed) => {
                if let Some(reason) = parsed.repair {
                    self.report(reason, visitor)?;
                }
                match &parsed.record {
                    Record::Object(_) => self.stats.objects += 1,
                    Record::Root(_) => self.stats.roots += 1,
                    Record::Shape(_) => self.stats.shapes += 1,
                }
                visitor.record(line_number, &parsed.record);
                Ok(())
            }
            Err(reason) => self.report(reason, visitor),
        }
    }

    /// Counts a bad line for the current line number; fatal only in strict mode.
    fn report<V: Visitor>(
        &mut self,
        reason: BadLineReason,
        visitor: &mut V,
    ) -> Result<(), ParseError> {
        let bad_line = BadLine {
            line_number: self.stats.lines,
            reason,
        };
        if self.options.strict {
            return Err(ParseError::Strict(bad_line));
        }
        self.stats.bad_lines += 1;
        if bad_line.reason.is_repaired() {
            self.stats.repaired_lines += 1;
        } else {
            self.stats.skipped_lines += 1;
        }
        visitor.bad_line(&bad_line);
        if self.stats.bad_line_samples.len() < self.options.max_reported_bad_lines {
            self.stats.bad_line_samples.push(bad_line);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Collects (line number, address or root name) for each record.
    #[derive(Default)]
    struct Collect(Vec<(u64, String)>);

    impl Visitor for Collect {
        fn record(&mut self, line_number: u64, record: &Record<'_>) {
            let what = match record {
                Record::Object(object) => format!("{:#x}", object.address),
                Record::Root(root) => root.root.decode().into_owned(),
                Record::Shape(_) => "shape".to_owned(),
            };
            self.0.push((line_number, what));
        }
    }

    const DUMP: &[u8] = b"{\"type\":\"ROOT\", \"root\":\"vm\", \"references\":[\"0x1\"]}\n\
        {\"address\":\"0x1\", \"type\":\"STRING\", \"memsize\":40}\n\
        not json\n\
        {\"address\":\"0x2\", \"type\":\"ARRAY\", \"memsize\":40}\n";

    fn parse_in_chunks(
        input: &[u8],
        chunk_size: usize,
        options: ParseOptions,
    ) -> (Collect, ParseStats) {
        let mut parser = DumpParser::new(options);
        let mut collect = Collect::default();
        for chunk in input.chunks(chunk_size) {
            parser.feed(chunk, &mut collect).unwrap();
        }
        let stats = parser.finish(&mut collect).unwrap();
        (collect, stats)
    }

    #[test]
    fn test_dump_parser_gives_same_result_for_any_chunking() {
        let (whole, whole_stats) = parse_in_chunks(DUMP, DUMP.len(), ParseOptions::default());
        assert_eq!(
            whole.0,
            vec![
                (1, "vm".to_owned()),
                (2, "0x1".to_owned()),
                (4, "0x2".to_owned())
            ]
        );
        assert_eq!(whole_stats.bad_lines, 1);
        assert_eq!(whole_stats.bad_line_samples[0].line_number, 3);
        for chunk_size in [1, 2, 3, 7, 50] {
            let (chunked, chunked_stats) =
                parse_in_chunks(DUMP, chunk_size, ParseOptions::default());
            assert_eq!(chunked.0, whole.0, "chunk size {chunk_size}");
            assert_eq!(chunked_stats, whole_stats, "chunk size {chunk_size}");
        }
    }

    #[test]
    fn test_dump_parser_reports_truncated_tail() {
        let input = b"{\"address\":\"0x1\", \"type\":\"STRING\", \"memsize\":40}\n{\"address\":\"0x2\", \"ty";
        let (collect, stats) = parse_in_chunks(input, 16, ParseOptions::default());
        assert_eq!(collect.0.len(), 1);
        assert!(stats.truncated);
        assert_eq!(
            stats.bad_line_samples,
            vec![BadLine {
                line_number: 2,
                reason: BadLineReason::Truncated
            }]
        );
    }

    #[test]
    fn test_dump_parser_accepts_complete_last_line_without_newline() {
        let input = b"{\"address\":\"0x1\", \"type\":\"STRING\", \"memsize\":40}";
        let (collect, stats) = parse_in_chunks(input, 5, ParseOptions::default());
        assert_eq!(collect.0, vec![(1, "0x1".to_owned())]);
        assert_eq!(stats.bad_lines, 0);
        assert!(!stats.truncated);
    }

    #[test]
    fn test_dump_parser_skips_overlong_lines_with_bounded_memory() {
        let mut input = b"{\"address\":\"0x1\", \"type\":\"STRING\", \"value\":\"".to_vec();
        input.extend(std::iter::repeat_n(b'x', 10_000));
        input
            .extend_from_slice(b"\", \"memsize\":40}\n{\"address\":\"0x2\", \"type\":\"ARRAY\"}\n");
        let options = ParseOptions {
            max_line_bytes: 1_000,
            ..ParseOptions::default()
        };
        for chunk_size in [64, 100_000] {
            let (collect, stats) = parse_in_chunks(&input, chunk_size, options.clone());
            assert_eq!(
                collect.0,
                vec![(2, "0x2".to_owned())],
                "chunk size {chunk_size}"
            );
            assert_eq!(
                stats.bad_line_samples,
                vec![BadLine {
                    line_number: 1,
                    reason: BadLineReason::TooLong { limit: 1_000 }
                }]
            );
        }
    }

    #[test]
    fn test_dump_parser_strict_mode_stops_at_first_bad_line() {
        let mut parser = DumpParser::new(ParseOptions {
            strict: true,
            ..ParseOptions::default()
        });
        let error = parser.feed(DUMP, &mut Collect::default()).unwrap_err();
        match error {
            ParseError::Strict(bad_line) => assert_eq!(bad_line.line_number, 3),
            other => panic!("expected a strict-mode error, got {other}"),
        }
    }

    /// Deterministic xorshift, so a failure reproduces.
    fn next_random(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn test_dump_parser_survives_mutated_real_lines() {
        // Real lines of each kind; mutations flip, insert, delete and cut bytes, favouring the
        // bytes JSON cares about. The property: no panic, every line accounted for.
        let seeds: [&[u8]; 4] = [
            br#"{"address":"0x7f3056e1c138", "type":"CLASS", "class":"0x7f3053177f20", "superclass":"0x7f3056e1c480", "real_class_name":"Class", "singleton":true, "references":["0x7f3056e1c480", "0x7f3053177e58"], "memsize":752, "flags":{"wb_protected":true, "old":true, "uncollectible":true, "marked":true}}"#,
            br#"{"address":"0x7f30566375f8", "type":"STRING", "class":"0x7f305663a438", "frozen":true, "embedded":true, "fstring":true, "bytesize":9, "value":"object_id", "encoding":"US-ASCII", "file":"/app/a.rb", "line":3, "method":"x", "generation":4, "memsize":40, "flags":{"wb_protected":true}}"#,
            br#"{"type":"ROOT", "root":"vm", "references":["0x7f3056defcc8", "0x7f3056637fd0"]}"#,
            br#"{"address":"0x7f3056e1c020", "type":"IMEMO", "class":"0x7f3056e08a48", "imemo_type":"ment", "references":["0x7f3056e1c110"], "memsize":48}"#,
        ];
        let interesting = [
            b'"', b'\\', b'{', b'}', b'[', b']', b',', b':', 0, 0xff, b'\n', b' ',
        ];
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut input = Vec::new();
        for _ in 0..20_000 {
            let mut line = seeds[(next_random(&mut state) % seeds.len() as u64) as usize].to_vec();
            for _ in 0..1 + next_random(&mut state) % 4 {
                let position = (next_random(&mut state) % (line.len() as u64 + 1)) as usize;
                let byte = if next_random(&mut state).is_multiple_of(2) {
                    interesting[(next_random(&mut state) % interesting.len() as u64) as usize]
                } else {
                    next_random(&mut state) as u8
                };
                match next_random(&mut state) % 4 {
                    0 if position < line.len() => line[position] = byte,
                    1 => line.insert(position, byte),
                    2 if position < line.len() => {
                        line.remove(position);
                    }
                    _ => line.truncate(position),
                }
            }
            input.extend_from_slice(&line);
            input.push(b'\n');
        }
        let newlines = input.iter().filter(|&&byte| byte == b'\n').count() as u64;
        for chunk_size in [7, 4096, input.len()] {
            let (collect, stats) = parse_in_chunks(&input, chunk_size, ParseOptions::default());
            assert_eq!(stats.lines, newlines, "chunk size {chunk_size}");
            assert_eq!(
                stats.objects + stats.roots + stats.shapes + stats.skipped_lines,
                stats.lines,
                "every line is a record or a skipped bad line"
            );
            assert_eq!(
                collect.0.len() as u64,
                stats.objects + stats.roots + stats.shapes
            );
            assert!(stats.bad_lines > 0 && stats.objects > 0);
        }
    }

    #[test]
    fn test_dump_parser_enforces_decompressed_size_limit() {
        let mut parser = DumpParser::new(ParseOptions {
            max_dump_bytes: Some(10),
            ..ParseOptions::default()
        });
        let error = parser.feed(DUMP, &mut Collect::default()).unwrap_err();
        assert!(matches!(error, ParseError::TooLarge { limit: 10 }));
    }
}
