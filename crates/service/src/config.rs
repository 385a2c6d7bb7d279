//! Service configuration: a TOML file, then `HEAPFLEET_*` environment variables, then flags,
//! each overriding the one before.
//!
//! Each service declares two types: a clap `Args` struct whose fields are all `Option`s with
//! `env = "HEAPFLEET_..."` (clap gives a flag precedence over its variable), and a serde struct
//! for the file, with the same fields, also `Option`s, and `deny_unknown_fields` so a typo in
//! the file is an error rather than a silently ignored setting. The service's `resolve`
//! takes the first value set among flag/env and file, else its default, and validates the
//! result, failing with one line that names the setting.

use std::path::Path;

use anyhow::Context;
use serde::de::DeserializeOwned;

/// Reads and parses a TOML config file; the error names the file and the offending key.
pub fn read_file<T: DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    parse_toml(&text).with_context(|| format!("config file {}", path.display()))
}

/// Parses TOML config text, with the parser's message on one line.
pub fn parse_toml<T: DeserializeOwned>(text: &str) -> anyhow::Result<T> {
    toml::from_str(text).map_err(|error| {
        let message = error.message().to_owned();
        match error.span() {
            Some(span) => {
                let line = text.as_bytes()[..span.start.min(text.len())]
                    .iter()
                    .filter(|&&byte| byte == b'\n')
                    .count()
                    + 1;
                anyhow::anyhow!("line {line}: {message}")
            }
            None => anyhow::anyhow!("{message}"),
        }
    })
}

/// The S3 settings a config may hold. Credentials are read from the standard `AWS_*`
/// variables (or the platform's credential chain), never from config files.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3File {
    /// Endpoint of an S3-compatible server, e.g. `http://minio:9000`.
    pub endpoint: Option<String>,
    /// Region (default `us-east-1`).
    pub region: Option<String>,
    /// Allow a plain `http://` endpoint.
    pub allow_http: Option<bool>,
}

impl S3File {
    /// The S3 options: the `AWS_*` environment, with this file's settings where it has them.
    pub fn options(&self) -> heapfleet_objects::S3Options {
        let mut options = heapfleet_objects::S3Options::from_env();
        if let Some(endpoint) = &self.endpoint {
            options.endpoint = Some(endpoint.clone());
        }
        if let Some(region) = &self.region {
            options.region = Some(region.clone());
        }
        if let Some(allow_http) = self.allow_http {
            options.allow_http = allow_http;
        }
        options
    }
}

/// The S3 flags every service that reads or writes dump files takes; each also reads a
/// `HEAPFLEET_S3_*` variable and overrides the file's `[s3]` table.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct S3Args {
    /// Endpoint of an S3-compatible server (credentials come from AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY).
    #[arg(long = "s3-endpoint", env = "HEAPFLEET_S3_ENDPOINT")]
    pub endpoint: Option<String>,
    /// S3 region [default: us-east-1].
    #[arg(long = "s3-region", env = "HEAPFLEET_S3_REGION")]
    pub region: Option<String>,
    /// Allow a plain-http S3 endpoint.
    #[arg(long = "s3-allow-http", env = "HEAPFLEET_S3_ALLOW_HTTP")]
    pub allow_http: Option<bool>,
}

impl S3Args {
    /// The S3 options: these flags over the file's `[s3]` table over the `AWS_*` environment.
    pub fn options(&self, file: S3File) -> heapfleet_objects::S3Options {
        S3File {
            endpoint: self.endpoint.clone().or(file.endpoint),
            region: self.region.clone().or(file.region),
            allow_http: self.allow_http.or(file.allow_http),
        }
        .options()
    }
}

/// Returns the first of `flag_or_env` and `file`, else `default`.
pub fn pick<T>(flag_or_env: Option<T>, file: Option<T>, default: T) -> T {
    flag_or_env.or(file).unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        listen: Option<String>,
    }

    #[test]
    fn test_parse_toml_names_the_line_of_an_unknown_key() {
        let sample: Sample = parse_toml("listen = \"127.0.0.1:1\"\n").unwrap();
        assert_eq!(sample.listen.as_deref(), Some("127.0.0.1:1"));
        let error = parse_toml::<Sample>("listen = \"x\"\nlisten_port = 3\n").unwrap_err();
        let text = format!("{error:#}");
        assert!(
            text.contains("line 2") && text.contains("listen_port"),
            "{text}"
        );
    }

    #[test]
    fn test_pick_prefers_flag_then_file_then_default() {
        assert_eq!(pick(Some(1), Some(2), 3), 1);
        assert_eq!(pick(None, Some(2), 3), 2);
        assert_eq!(pick(None, None, 3), 3);
    }
}
