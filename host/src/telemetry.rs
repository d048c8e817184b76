//! Trace context across the process's edges: taken from a request's
//! `traceparent` header, and carried with a document job through Redis to
//! the workers that parse its batches. Where no trace exporter is installed
//! (see `warmlane`'s `telemetry` module) every function here does nothing.

use std::collections::HashMap;

use opentelemetry::trace::TraceContextExt;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Makes `span` (not yet entered) a child of the W3C trace context
/// `traceparent`, when there is a valid one, and records its trace id in
/// the span's `trace_id` field so that its logs carry it.
pub(crate) fn continue_from(span: &Span, traceparent: Option<&str>) {
    if let Some(tp) = traceparent.filter(|t| !t.is_empty()) {
        let carrier = HashMap::from([("traceparent".to_string(), tp.to_string())]);
        let parent = opentelemetry::global::get_text_map_propagator(|p| p.extract(&carrier));
        if parent.span().span_context().is_valid() {
            let _ = span.set_parent(parent);
        }
    }
    mark(span);
}

/// Records `span`'s trace id in its `trace_id` field (a span without one
/// is left alone).
pub(crate) fn mark(span: &Span) {
    let context = span.context();
    let span_context = context.span().span_context().clone();
    if span_context.is_valid() {
        span.record("trace_id", span_context.trace_id().to_string());
    }
}

/// Whether the current span belongs to a recorded trace.
pub(crate) fn in_trace() -> bool {
    Span::current().context().span().span_context().is_valid()
}

/// `span`'s W3C `traceparent`, to carry its context to another process;
/// `None` when traces are not recorded.
pub(crate) fn traceparent(span: &Span) -> Option<String> {
    let context = span.context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&context, &mut carrier));
    carrier.remove("traceparent")
}

/// Runs `f` on a blocking thread inside the current span, so the spans it
/// opens are its children.
pub(crate) fn spawn_blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> tokio::task::JoinHandle<T> {
    let span = Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f))
}
