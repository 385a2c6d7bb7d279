//! Dump file names: `heap-<unix_ts>.dump` (the original README's form) and
//! `heap-<pid>-<unix_ts>-<jobs>.dump` (the Sidekiq middleware's form), optionally `.gz`.

use serde::Serialize;

/// What a dump's file name says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DumpFileName {
    /// The writing process's pid, when the name carries it.
    pub pid: Option<u32>,
    /// When the dump was taken, in Unix seconds.
    pub taken_at_unix: i64,
    /// The process's jobs counter at dump time, when the name carries it.
    pub jobs: Option<u64>,
}

/// Why a file name could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileNameError {
    /// The name has neither known form.
    #[error(
        "file name {0:?} has no timestamp: expected heap-<unix_ts>.dump or heap-<pid>-<unix_ts>-<jobs>.dump"
    )]
    NoTimestamp(String),
}

/// Unix seconds of 2001-09-09; earlier "timestamps" are more likely pids or counters.
const MIN_PLAUSIBLE_UNIX_SECONDS: i64 = 1_000_000_000;
/// Unix seconds of 2286-11-20.
const MAX_PLAUSIBLE_UNIX_SECONDS: i64 = 9_999_999_999;

/// Reads pid, timestamp and jobs counter from a dump's file name (not a path).
pub fn parse_dump_file_name(file_name: &str) -> Result<DumpFileName, FileNameError> {
    let no_timestamp = || FileNameError::NoTimestamp(file_name.to_owned());
    let stem = file_name.strip_suffix(".gz").unwrap_or(file_name);
    let stem = stem
        .strip_suffix(".dump")
        .or_else(|| stem.strip_suffix(".json"))
        .or_else(|| stem.strip_suffix(".jsonl"))
        .unwrap_or(stem);
    let fields = stem.strip_prefix("heap-").ok_or_else(no_timestamp)?;
    let numbers: Vec<&str> = fields.split('-').collect();
    if numbers
        .iter()
        .any(|number| number.is_empty() || !number.bytes().all(|byte| byte.is_ascii_digit()))
    {
        return Err(no_timestamp());
    }
    let timestamp = |text: &str| {
        text.parse::<i64>().ok().filter(|seconds| {
            (MIN_PLAUSIBLE_UNIX_SECONDS..=MAX_PLAUSIBLE_UNIX_SECONDS).contains(seconds)
        })
    };
    match numbers.as_slice() {
        [seconds] => Ok(DumpFileName {
            pid: None,
            taken_at_unix: timestamp(seconds).ok_or_else(no_timestamp)?,
            jobs: None,
        }),
        [pid, seconds, jobs] => Ok(DumpFileName {
            pid: Some(pid.parse().map_err(|_| no_timestamp())?),
            taken_at_unix: timestamp(seconds).ok_or_else(no_timestamp)?,
            jobs: Some(jobs.parse().map_err(|_| no_timestamp())?),
        }),
        _ => Err(no_timestamp()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_parse_dump_file_name_reads_both_forms() {
        assert_eq!(
            parse_dump_file_name("heap-1700000000.dump"),
            Ok(DumpFileName {
                pid: None,
                taken_at_unix: 1_700_000_000,
                jobs: None
            })
        );
        assert_eq!(
            parse_dump_file_name("heap-4242-1700000060-1500.dump.gz"),
            Ok(DumpFileName {
                pid: Some(4242),
                taken_at_unix: 1_700_000_060,
                jobs: Some(1500)
            })
        );
    }

    #[test]
    fn test_parse_dump_file_name_rejects_names_without_timestamp() {
        for name in [
            "dump.json",
            "heap.dump",
            "heap-abc.dump",
            "heap-12-34.dump",
            "heap-42.dump",
            "heap-1-2-3-4.dump",
            "heap--1700000000.dump",
        ] {
            let error = parse_dump_file_name(name).unwrap_err();
            assert!(
                error.to_string().contains("no timestamp"),
                "{name}: {error}"
            );
        }
    }
}
