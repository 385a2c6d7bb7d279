//! W3C trace context (`traceparent`, `tracestate`) in and out of a process: gRPC metadata on
//! each call, and the text a queued job carries from its upload to its ingest.
//!
//! Always the W3C format, whatever global propagator is set, so what the gateway writes into the
//! catalog is what the ingester reads back.

use std::collections::HashMap;

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The W3C header that carries the trace and parent span ids.
pub const TRACEPARENT: &str = "traceparent";

/// The W3C header that carries vendor trace state.
pub const TRACESTATE: &str = "tracestate";

/// Writes `context`'s span (if it has a valid one) into `carrier` as W3C headers.
pub fn inject(context: &Context, carrier: &mut dyn Injector) {
    TraceContextPropagator::new().inject_context(context, carrier);
}

/// Writes the current `tracing` span's OpenTelemetry context into `carrier`: what a client does
/// before each call. Nothing is written outside a span or without the OpenTelemetry layer.
pub fn inject_current(carrier: &mut dyn Injector) {
    inject(&tracing::Span::current().context(), carrier);
}

/// Reads W3C headers from `carrier` into a context whose span is the remote caller's; an empty
/// context when they are missing or malformed.
pub fn extract(carrier: &dyn Extractor) -> Context {
    TraceContextPropagator::new().extract(carrier)
}

/// Returns the current `tracing` span's context as a `traceparent` value (with `tracestate`
/// appended after a newline when there is one), for a job to carry; `None` outside a traced
/// span.
pub fn current_trace_context() -> Option<String> {
    let mut headers: HashMap<String, String> = HashMap::new();
    inject_current(&mut headers);
    let traceparent = headers.remove(TRACEPARENT)?;
    Some(match headers.remove(TRACESTATE) {
        Some(tracestate) if !tracestate.is_empty() => format!("{traceparent}\n{tracestate}"),
        _ => traceparent,
    })
}

/// Parses what [`current_trace_context`] wrote back into the span context it names (marked
/// remote), for a span link; `None` when the text is not a valid trace context.
pub fn span_context_from_text(text: &str) -> Option<SpanContext> {
    let mut lines = text.splitn(2, '\n');
    let mut headers: HashMap<String, String> = HashMap::new();
    headers.insert(TRACEPARENT.to_owned(), lines.next()?.trim().to_owned());
    if let Some(tracestate) = lines.next() {
        headers.insert(TRACESTATE.to_owned(), tracestate.trim().to_owned());
    }
    let context = extract(&headers);
    let span_context = context.span().span_context().clone();
    span_context.is_valid().then_some(span_context)
}

/// Returns the trace id of `span` as 32 hex digits, `None` when it has no OpenTelemetry
/// context (telemetry is off).
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    let span_ref = context.span();
    let span_context = span_ref.span_context();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}

/// Records `span`'s trace id in its `trace_id` field, so every log line inside it shows the id
/// to search the tracing backend for. The span must declare `trace_id = tracing::field::Empty`
/// and have its parent set already: reading the context starts the span.
pub fn record_trace_id(span: &tracing::Span) {
    if let Some(trace_id) = trace_id(span) {
        span.record("trace_id", trace_id.as_str());
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanId, TraceFlags, TraceId, TraceState};

    use super::*;

    #[test]
    fn test_span_context_from_text_reads_a_traceparent() {
        let text = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let span_context = span_context_from_text(text).unwrap();
        assert_eq!(
            span_context.trace_id(),
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap()
        );
        assert_eq!(
            span_context.span_id(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap()
        );
        assert!(span_context.is_sampled());
        assert!(span_context.is_remote());
    }

    #[test]
    fn test_span_context_from_text_keeps_the_trace_state() {
        let text = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00\nvendor=value";
        let span_context = span_context_from_text(text).unwrap();
        assert!(!span_context.is_sampled());
        assert_eq!(span_context.trace_state().get("vendor"), Some("value"));
    }

    #[test]
    fn test_span_context_from_text_rejects_garbage() {
        for text in [
            "",
            "traceparent",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "zz-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(span_context_from_text(text), None, "{text:?}");
        }
    }

    #[test]
    fn test_inject_writes_what_extract_reads() {
        let span_context = SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        );
        let context = Context::new().with_remote_span_context(span_context.clone());
        let mut headers: HashMap<String, String> = HashMap::new();
        inject(&context, &mut headers);
        assert_eq!(
            headers.get(TRACEPARENT).map(String::as_str),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        );
        let extracted = extract(&headers);
        assert_eq!(
            extracted.span().span_context().span_id(),
            span_context.span_id()
        );
    }

    #[test]
    fn test_current_trace_context_is_none_outside_a_traced_span() {
        assert_eq!(current_trace_context(), None);
        let span = tracing::info_span!("untraced", trace_id = tracing::field::Empty);
        let _entered = span.enter();
        assert_eq!(current_trace_context(), None);
        assert_eq!(trace_id(&span), None);
    }
}
