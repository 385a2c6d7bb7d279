//! [`TelemetryConfig`]: what to export and where, resolved from the standard `OTEL_*`
//! variables (and `RUST_LOG` for the log filter).
//!
//! Resolution reads an injected lookup function, not the process environment, so every rule
//! here is unit-tested without touching global state; [`TelemetryConfig::from_env`] passes the
//! real environment.

use crate::error::TelemetryError;

/// The only OTLP transport this build speaks: gRPC (port 4317), through the workspace's tonic.
const PROTOCOL_GRPC: &str = "grpc";

/// What one telemetry signal (traces or metrics) does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Export {
    /// Nothing leaves the process: no endpoint is configured, or the signal's exporter is
    /// `none`.
    Off,
    /// Sent over OTLP/gRPC to this endpoint (`http://collector:4317`).
    Otlp {
        /// The collector's URL.
        endpoint: String,
    },
}

impl Export {
    /// Whether anything is exported.
    pub fn is_on(&self) -> bool {
        matches!(self, Export::Otlp { .. })
    }
}

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Lines for people; coloured only when stderr is a terminal.
    #[default]
    Text,
    /// One JSON object per line (timestamp, level, target, fields, span), for log pipelines.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = TelemetryError;

    fn from_str(text: &str) -> Result<LogFormat, TelemetryError> {
        match text.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(TelemetryError::Config(format!(
                "{LOG_FORMAT_VARIABLE}={other:?} is not a log format: use text or json"
            ))),
        }
    }
}

/// The variable that picks the log format (`text` or `json`).
pub const LOG_FORMAT_VARIABLE: &str = "HEAPFLEET_LOG_FORMAT";

/// How a process reports what it does: logs, traces and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// `service.name` of every span and metric (`OTEL_SERVICE_NAME`, else the binary's name).
    pub service_name: String,
    /// The log filter (`RUST_LOG`, else the default the binary asks for), in `EnvFilter` syntax.
    pub log_filter: String,
    /// How log lines look (`HEAPFLEET_LOG_FORMAT`, else text).
    pub log_format: LogFormat,
    /// Whether spans get OpenTelemetry contexts at all (`OTEL_SDK_DISABLED=true` turns it off).
    /// With it on, logs carry trace ids and trace context propagates even when nothing is
    /// exported, so a request can still be followed through the logs of several services.
    pub sdk_enabled: bool,
    /// Where spans go.
    pub traces: Export,
    /// Where metrics go.
    pub metrics: Export,
}

impl TelemetryConfig {
    /// Logs only, at `log_filter` unless `RUST_LOG` says otherwise: what the quick CLI
    /// commands use, so they start no exporter and no background thread.
    pub fn logs_only(log_filter: &str, lookup: impl Fn(&str) -> Option<String>) -> TelemetryConfig {
        // A filter that does not parse falls back to the default, as a typo in RUST_LOG should
        // neither stop a server nor make the CLI chatty.
        let rust_log = non_empty(lookup("RUST_LOG"))
            .filter(|filter| tracing_subscriber::EnvFilter::try_new(filter).is_ok());
        // Likewise a log format this build does not know: the quick commands keep text (the
        // servers refuse it, see `from_lookup`).
        let log_format = non_empty(lookup(LOG_FORMAT_VARIABLE))
            .and_then(|format| format.parse().ok())
            .unwrap_or_default();
        TelemetryConfig {
            service_name: String::new(),
            log_filter: rust_log.unwrap_or_else(|| log_filter.to_owned()),
            log_format,
            sdk_enabled: false,
            traces: Export::Off,
            metrics: Export::Off,
        }
    }

    /// Resolves the configuration of a server process named `default_service_name` from the
    /// process environment (see [`TelemetryConfig::from_lookup`]).
    pub fn from_env(
        default_service_name: &str,
        default_log_filter: &str,
    ) -> Result<TelemetryConfig, TelemetryError> {
        TelemetryConfig::from_lookup(default_service_name, default_log_filter, |name| {
            std::env::var(name).ok()
        })
    }

    /// Resolves the configuration from `lookup` (a variable's value by name):
    ///
    /// - `OTEL_SDK_DISABLED=true`: no OpenTelemetry at all, logs only.
    /// - `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`, else
    ///   `OTEL_EXPORTER_OTLP_ENDPOINT`: where each signal goes. No endpoint, no export.
    /// - `OTEL_TRACES_EXPORTER` / `OTEL_METRICS_EXPORTER`: `otlp` (the default) or `none`.
    /// - `OTEL_EXPORTER_OTLP_PROTOCOL` (and the per-signal forms): only `grpc`.
    /// - `OTEL_SERVICE_NAME`, else `default_service_name`; `RUST_LOG`, else
    ///   `default_log_filter`; `HEAPFLEET_LOG_FORMAT` (`text` or `json`), else text.
    ///
    /// An empty variable counts as unset, as the OpenTelemetry specification asks. The SDK
    /// reads the rest of the standard variables itself (`OTEL_RESOURCE_ATTRIBUTES`,
    /// `OTEL_TRACES_SAMPLER[_ARG]`, `OTEL_BSP_*`, `OTEL_METRIC_EXPORT_INTERVAL`,
    /// `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_TIMEOUT`). A value this build cannot
    /// honour is an error rather than silently ignored.
    pub fn from_lookup(
        default_service_name: &str,
        default_log_filter: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<TelemetryConfig, TelemetryError> {
        let mut config = TelemetryConfig::logs_only(default_log_filter, &lookup);
        if let Some(format) = non_empty(lookup(LOG_FORMAT_VARIABLE)) {
            config.log_format = format.parse()?;
        }
        config.service_name = non_empty(lookup("OTEL_SERVICE_NAME"))
            .unwrap_or_else(|| default_service_name.to_owned());
        let disabled = non_empty(lookup("OTEL_SDK_DISABLED"));
        match disabled.as_deref().map(str::to_ascii_lowercase).as_deref() {
            Some("true") => return Ok(config),
            None | Some("false") => {}
            Some(_) => {
                return Err(TelemetryError::Config(format!(
                    "OTEL_SDK_DISABLED={:?} is neither true nor false",
                    disabled.unwrap_or_default()
                )));
            }
        }
        config.sdk_enabled = true;
        config.traces = resolve_signal(&lookup, "TRACES")?;
        config.metrics = resolve_signal(&lookup, "METRICS")?;
        Ok(config)
    }
}

/// Resolves one signal (`TRACES` or `METRICS`, as the variables spell it).
fn resolve_signal(
    lookup: &impl Fn(&str) -> Option<String>,
    signal: &str,
) -> Result<Export, TelemetryError> {
    let exporter_variable = format!("OTEL_{signal}_EXPORTER");
    match non_empty(lookup(&exporter_variable)).as_deref() {
        None | Some("otlp") => {}
        Some("none") => return Ok(Export::Off),
        Some(other) => {
            return Err(TelemetryError::Config(format!(
                "{exporter_variable}={other:?} is not supported: use otlp or none"
            )));
        }
    }
    let protocol_variables = [
        format!("OTEL_EXPORTER_OTLP_{signal}_PROTOCOL"),
        "OTEL_EXPORTER_OTLP_PROTOCOL".to_owned(),
    ];
    // The signal's own variable wins over the general one, as for the endpoint.
    if let Some((variable, protocol)) = protocol_variables
        .iter()
        .find_map(|variable| non_empty(lookup(variable)).map(|value| (variable, value)))
        && protocol != PROTOCOL_GRPC
    {
        return Err(TelemetryError::Config(format!(
            "{variable}={protocol:?} is not supported: this build exports OTLP over grpc \
             (port 4317)"
        )));
    }
    let endpoint = non_empty(lookup(&format!("OTEL_EXPORTER_OTLP_{signal}_ENDPOINT")))
        .or_else(|| non_empty(lookup("OTEL_EXPORTER_OTLP_ENDPOINT")));
    Ok(match endpoint {
        Some(endpoint) => Export::Otlp { endpoint },
        None => Export::Off,
    })
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|value| !value.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn resolve(variables: &[(&str, &str)]) -> Result<TelemetryConfig, TelemetryError> {
        let map: HashMap<String, String> = variables
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        TelemetryConfig::from_lookup("heapfleet-gateway", "info", |name| map.get(name).cloned())
    }

    #[test]
    fn test_from_lookup_exports_nothing_without_an_endpoint() {
        let config = resolve(&[]).unwrap();
        assert_eq!(config.service_name, "heapfleet-gateway");
        assert_eq!(config.log_filter, "info");
        assert!(config.sdk_enabled);
        assert_eq!(config.traces, Export::Off);
        assert_eq!(config.metrics, Export::Off);
    }

    #[test]
    fn test_from_lookup_uses_the_general_and_the_signal_endpoints() {
        let config = resolve(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://metrics:4317"),
            ("OTEL_SERVICE_NAME", "gateway-eu"),
            ("RUST_LOG", "debug"),
        ])
        .unwrap();
        assert_eq!(config.service_name, "gateway-eu");
        assert_eq!(config.log_filter, "debug");
        assert_eq!(
            config.traces,
            Export::Otlp {
                endpoint: "http://collector:4317".to_owned()
            }
        );
        assert_eq!(
            config.metrics,
            Export::Otlp {
                endpoint: "http://metrics:4317".to_owned()
            }
        );
    }

    #[test]
    fn test_from_lookup_turns_signals_off() {
        let config = resolve(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_METRICS_EXPORTER", "none"),
        ])
        .unwrap();
        assert!(config.traces.is_on());
        assert_eq!(config.metrics, Export::Off);

        let disabled = resolve(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_SDK_DISABLED", "TRUE"),
        ])
        .unwrap();
        assert!(!disabled.sdk_enabled);
        assert_eq!(
            (disabled.traces, disabled.metrics),
            (Export::Off, Export::Off)
        );
    }

    #[test]
    fn test_from_lookup_treats_empty_values_as_unset() {
        let config = resolve(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", ""),
            ("OTEL_SERVICE_NAME", " "),
            ("OTEL_TRACES_EXPORTER", ""),
            ("RUST_LOG", ""),
        ])
        .unwrap();
        assert_eq!(config.service_name, "heapfleet-gateway");
        assert_eq!(config.log_filter, "info");
        assert_eq!(config.traces, Export::Off);
    }

    #[test]
    fn test_log_format_is_text_unless_json_is_asked_for() {
        assert_eq!(resolve(&[]).unwrap().log_format, LogFormat::Text);
        assert_eq!(
            resolve(&[("HEAPFLEET_LOG_FORMAT", "JSON")])
                .unwrap()
                .log_format,
            LogFormat::Json
        );
        // A server refuses a format it does not know; a quick command keeps text.
        assert!(matches!(
            resolve(&[("HEAPFLEET_LOG_FORMAT", "logfmt")]),
            Err(TelemetryError::Config(_))
        ));
        let quick = TelemetryConfig::logs_only("warn", |name| {
            (name == "HEAPFLEET_LOG_FORMAT").then(|| "logfmt".to_owned())
        });
        assert_eq!(quick.log_format, LogFormat::Text);
    }

    #[test]
    fn test_from_lookup_refuses_what_this_build_cannot_honour() {
        for variables in [
            &[("OTEL_TRACES_EXPORTER", "zipkin")][..],
            &[("OTEL_METRICS_EXPORTER", "prometheus")],
            &[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")],
            &[
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json"),
            ],
            &[("OTEL_SDK_DISABLED", "yes")],
        ] {
            assert!(
                matches!(resolve(variables), Err(TelemetryError::Config(_))),
                "{variables:?}"
            );
        }
        // A signal that is off is not checked further.
        resolve(&[
            ("OTEL_TRACES_EXPORTER", "none"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json"),
            ("OTEL_METRICS_EXPORTER", "none"),
        ])
        .unwrap();
    }

    #[test]
    fn test_logs_only_reads_rust_log() {
        let config = TelemetryConfig::logs_only("warn", |name| {
            (name == "RUST_LOG").then(|| "heapfleet=debug".to_owned())
        });
        assert_eq!(config.log_filter, "heapfleet=debug");
        let typo = TelemetryConfig::logs_only("warn", |name| {
            (name == "RUST_LOG").then(|| "heapfleet=[".to_owned())
        });
        assert_eq!(typo.log_filter, "warn");
        assert!(!config.sdk_enabled);
        assert!(!config.traces.is_on() && !config.metrics.is_on());
    }
}
