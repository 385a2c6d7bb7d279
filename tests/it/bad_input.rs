//! The bad-input corpus (tests/fixtures/dumps/bad, described line by line in EXPECTED.md): every
//! bad line is reported with its number, the rest of the dump is used, strict mode stops at the
//! first bad line, and nothing panics.

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
