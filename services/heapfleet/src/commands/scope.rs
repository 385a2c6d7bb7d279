//! Turning scope flags and selector strings into the query layer's dump selection.

use anyhow::{Context, bail};
use heapfleet_query::model::DumpQuery;

use crate::cli::{ScopeArgs, parse_time};

/// The dumps `--host/--pid/--role/--label/--since/--until` select.
pub(crate) fn scope_query(scope: &ScopeArgs) -> DumpQuery {
    DumpQuery {
        host: scope.host.clone(),
        pid: scope.pid,
        role: scope.role.clone(),
        labels: scope.labels.iter().cloned().collect(),
        taken_after: scope.since,
        taken_before: scope.until,
        status: None,
    }
}

/// Parses `key=value[,key=value...]`: host, role, pid, since and until select by process and
/// time, any other key is a label. An empty selector selects everything.
pub(crate) fn parse_selector(text: &str) -> anyhow::Result<DumpQuery> {
    let mut query = DumpQuery::default();
    for part in text
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
    {
        let (key, value) = part
            .split_once('=')
            .with_context(|| format!("selector part {part:?} is not key=value"))?;
        if key.is_empty() {
            bail!("selector part {part:?} has an empty key");
        }
        match key {
            "host" => query.host = Some(value.to_owned()),
            "role" => query.role = Some(value.to_owned()),
            "pid" => {
                query.pid = Some(
                    value
                        .parse()
                        .with_context(|| format!("pid {value:?} is not a number"))?,
                );
            }
            "since" => query.taken_after = Some(parse_time(value).map_err(anyhow::Error::msg)?),
            "until" => query.taken_before = Some(parse_time(value).map_err(anyhow::Error::msg)?),
            label => {
                query.labels.insert(label.to_owned(), value.to_owned());
            }
        }
    }
    Ok(query)
}

/// Splits `FILE:LINE` at its last colon.
pub(crate) fn parse_site(text: &str) -> anyhow::Result<(String, u32)> {
    let (file, line) = text
        .rsplit_once(':')
        .with_context(|| format!("site {text:?} is not FILE:LINE"))?;
    if file.is_empty() {
        bail!("site {text:?} has no file");
    }
    let line = line
        .parse()
        .with_context(|| format!("site {text:?}: line {line:?} is not a number"))?;
    Ok((file.to_owned(), line))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_parse_selector_reads_special_keys_and_labels() {
        let query = parse_selector("host=web-1, version=1.3,pid=42,since=1700000000").unwrap();
        assert_eq!(query.host.as_deref(), Some("web-1"));
        assert_eq!(query.pid, Some(42));
        assert_eq!(query.taken_after, Some(1_700_000_000));
        assert_eq!(query.labels.get("version").map(String::as_str), Some("1.3"));
        assert_eq!(parse_selector("").unwrap(), DumpQuery::default());
        for bad in ["host", "=x", "pid=abc", "until=yesterday"] {
            assert!(parse_selector(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn test_parse_site_splits_at_the_last_colon() {
        assert_eq!(
            parse_site("C:/app/x.rb:12").unwrap(),
            ("C:/app/x.rb".to_owned(), 12)
        );
        assert!(parse_site("app/x.rb").is_err());
        assert!(parse_site(":12").is_err());
        assert!(parse_site("x.rb:twelve").is_err());
    }
}
