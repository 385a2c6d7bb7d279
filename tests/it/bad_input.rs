//! The bad-input corpus (tests/fixtures/dumps/bad, described line by line in EXPECTED.md): every
//! bad line is reported with its number, the rest of the dump is used, strict mode stops at the
//! first bad line, and nothing panics. Inputs too big to commit (a gzip bomb) or made from the
//! committed ones (misnamed, corrupt gzip) are written at test time. The same corpus through the
//! gateway and an ingester: services/ingester/tests/bad_input.rs.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use heapfleet_dump::{BadLineReason, ParseError, ParseOptions};
use heapfleet_tests::{aggregate_file, aggregate_file_with, fixture, workspace_root};

fn bad_line_numbers(file: &str) -> (Vec<u64>, heapfleet_dump::ParseStats) {
    let parse = aggregate_file(&fixture(&format!("dumps/bad/{file}")))
        .unwrap()
        .aggregates
        .parse;
    (
        parse
            .bad_line_samples
            .iter()
            .map(|bad| bad.line_number)
            .collect(),
        parse,
    )
}

#[test]
fn test_invalid_lines_are_reported_and_repaired_where_possible() {
    let (numbers, parse) = bad_line_numbers("invalid-lines.dump");
    assert_eq!(numbers, vec![4, 7, 9, 12, 14, 16, 18]);
    assert_eq!(parse.lines, 20);
    // Unescaped quotes (4, 7), backslashes (9), a NUL (12) and bad UTF-8 (14) are repaired and
    // used; garbage (16) and the blank line (18) are skipped.
    assert_eq!(parse.repaired_lines, 5);
    assert_eq!(parse.skipped_lines, 2);
    assert_eq!(parse.objects, 18);
    let reasons: Vec<&BadLineReason> = parse
        .bad_line_samples
        .iter()
        .map(|bad| &bad.reason)
        .collect();
    assert_eq!(reasons[0], &BadLineReason::UnescapedQuote);
    assert_eq!(reasons[2], &BadLineReason::InvalidEscape);
    assert_eq!(reasons[3], &BadLineReason::NulByte);
    assert!(matches!(reasons[4], BadLineReason::InvalidUtf8(_)));
    assert_eq!(reasons[6], &BadLineReason::Blank);
}

#[test]
fn test_repaired_class_name_resolves() {
    let aggregates = aggregate_file(&fixture("dumps/bad/invalid-lines.dump"))
        .unwrap()
        .aggregates;
    let sites_with_file: Vec<_> = aggregates
        .sites
        .iter()
        .filter_map(|row| row.site.file.clone())
        .collect();
    assert!(
        sites_with_file
            .iter()
            .any(|file| file == r#"app/views/we"ird.rb"#),
        "{sites_with_file:?}"
    );
    assert!(
        sites_with_file
            .iter()
            .any(|file| file == r"C:\app\models\user.rb"),
        "{sites_with_file:?}"
    );
}

#[test]
fn test_truncated_tails_keep_the_lines_before_the_cut() {
    let (numbers, parse) = bad_line_numbers("truncated.dump");
    assert_eq!(numbers, vec![30]);
    assert!(parse.truncated);
    assert_eq!(parse.objects + parse.roots, 29);

    let (numbers, parse) = bad_line_numbers("truncated.dump.gz");
    assert_eq!(numbers, vec![69]);
    assert!(parse.truncated);
    assert_eq!(parse.objects + parse.roots, 68);
}

#[test]
fn test_empty_and_binary_inputs_are_not_fatal() {
    let (numbers, parse) = bad_line_numbers("empty.dump");
    assert!(numbers.is_empty());
    assert_eq!((parse.lines, parse.objects), (0, 0));

    let (numbers, parse) = bad_line_numbers("binary.dump");
    assert_eq!(numbers, (1..=14).collect::<Vec<u64>>());
    assert_eq!(parse.objects, 0);
}

#[test]
fn test_strict_mode_stops_at_first_bad_line() {
    let strict = ParseOptions {
        strict: true,
        ..ParseOptions::default()
    };
    let error = aggregate_file_with(&fixture("dumps/bad/invalid-lines.dump"), &strict)
        .err()
        .expect("strict mode fails");
    match error.downcast_ref::<ParseError>() {
        Some(ParseError::Strict(bad_line)) => assert_eq!(bad_line.line_number, 4),
        other => panic!("expected a strict-mode error, got {other:?} ({error:#})"),
    }
}

#[test]
fn test_lines_over_three_megabytes_parse() {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new("bash")
        .arg(workspace_root().join("scripts/make-bad-dumps.sh"))
        .arg(dir.path())
        .arg("huge-line.dump")
        .status()
        .unwrap();
    assert!(status.success());
    let path = dir.path().join("huge-line.dump");
    let aggregated = aggregate_file(&path).unwrap().aggregates;
    assert_eq!(aggregated.parse.bad_lines, 0);
    assert_eq!(aggregated.parse.lines, 8413);
    let biggest = aggregated
        .sites
        .iter()
        .map(|row| row.totals.bytesize)
        .max()
        .unwrap();
    assert!(
        biggest >= 3_300_000,
        "the 3.3 MB string is counted: {biggest}"
    );

    // With a limit below the line's length it is skipped and reported, not fatal.
    let limited = ParseOptions {
        max_line_bytes: 1_000_000,
        ..ParseOptions::default()
    };
    let parse = aggregate_file_with(&path, &limited)
        .unwrap()
        .aggregates
        .parse;
    assert_eq!(parse.bad_lines, 1);
    assert!(matches!(
        parse.bad_line_samples[0].reason,
        BadLineReason::TooLong { .. }
    ));
}

/// `bytes` gzipped into `dir/name`; returns the path.
fn write_gzip(dir: &Path, name: &str, bytes: &[u8], members: usize) -> std::path::PathBuf {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, encoder.finish().unwrap().repeat(members)).unwrap();
    path
}

#[test]
fn test_misnamed_files_are_read_by_their_content() {
    let dir = tempfile::tempdir().unwrap();
    let plain = std::fs::read(fixture("dumps/bad/invalid-lines.dump")).unwrap();
    let plain_named_gz = dir.path().join("plain.dump.gz");
    std::fs::write(&plain_named_gz, &plain).unwrap();
    let gzip_named_plain = write_gzip(dir.path(), "gzip.dump", &plain, 1);
    for path in [plain_named_gz, gzip_named_plain] {
        let parse = aggregate_file(&path).unwrap().aggregates.parse;
        assert_eq!(
            (parse.lines, parse.objects, parse.bad_lines, parse.truncated),
            (20, 18, 7, false),
            "{}",
            path.display()
        );
    }
}

#[test]
fn test_gzip_bomb_stops_at_the_decompressed_limit() {
    let dir = tempfile::tempdir().unwrap();
    // 1 MiB of valid object lines per member, 512 members: 512 MiB decompressed from ~1 MB.
    let line = b"{\"address\":\"0x7f0000000001\", \"type\":\"STRING\", \"memsize\":40}\n";
    let member: Vec<u8> = line.iter().copied().cycle().take(1 << 20).collect();
    let bomb = write_gzip(dir.path(), "bomb.dump.gz", &member, 512);
    assert!(std::fs::metadata(&bomb).unwrap().len() < 4 << 20);
    let limited = ParseOptions {
        max_dump_bytes: Some(8 << 20),
        ..ParseOptions::default()
    };
    let error = aggregate_file_with(&bomb, &limited)
        .err()
        .expect("the bomb is over the limit");
    match error.downcast_ref::<ParseError>() {
        Some(ParseError::TooLarge { limit }) => assert_eq!(*limit, 8 << 20),
        other => panic!("expected the size limit, got {other:?} ({error:#})"),
    }
    assert!(
        error
            .to_string()
            .contains("exceeds the limit of 8388608 bytes"),
        "{error}"
    );
    // NUL bytes and no newline: one endless line, skipped as too long, then stopped the same.
    let zeros = write_gzip(dir.path(), "zeros.dump.gz", &vec![0; 1 << 20], 512);
    let error = aggregate_file_with(&zeros, &limited)
        .err()
        .expect("the bomb is over the limit");
    assert!(
        matches!(
            error.downcast_ref::<ParseError>(),
            Some(ParseError::TooLarge { .. })
        ),
        "{error:#}"
    );
}

#[test]
fn test_corrupt_gzip_is_an_error_and_a_cut_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let plain = std::fs::read(fixture("dumps/bad/invalid-lines.dump")).unwrap();
    let path = write_gzip(dir.path(), "corrupt.dump.gz", &plain.repeat(50), 1);
    // The trailer's CRC-32 (the 8 bytes before the last 4) no longer matches the content.
    let mut bytes = std::fs::read(&path).unwrap();
    let crc = bytes.len() - 8;
    bytes[crc] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let error = aggregate_file(&path).err().expect("corrupt gzip fails");
    assert!(
        matches!(
            error.downcast_ref::<ParseError>(),
            Some(ParseError::CorruptGzip { .. })
        ),
        "{error:#}"
    );
    // The committed cut stream is still a truncated dump, not an error.
    let parse = aggregate_file(&fixture("dumps/bad/truncated.dump.gz"))
        .unwrap()
        .aggregates
        .parse;
    assert!(parse.truncated);
}
