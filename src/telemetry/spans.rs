//! Spans: one server span per request or invocation, which the work runs
//! in (as OpenTelemetry's current context), and children recorded after
//! the fact with their real start and end (a Cosmos DB operation reports
//! its diagnostics when it has ended). With no exporter configured there
//! is no tracer: nothing is built, but the caller's `traceparent` still
//! becomes the current context, so log lines carry the caller's trace id.

use std::{sync::OnceLock, time::SystemTime};

use opentelemetry::{
    Context, KeyValue,
    propagation::TextMapPropagator as _,
    trace::{SpanKind, Status, TraceContextExt as _, Tracer as _},
};
use opentelemetry_sdk::{propagation::TraceContextPropagator, trace::SdkTracer};

static TRACER: OnceLock<SdkTracer> = OnceLock::new();

/// Makes `tracer` the one spans are made with (exporting starts).
pub(super) fn install(tracer: SdkTracer) {
    let _ = TRACER.set(tracer);
}

/// Whether spans are recorded (an exporter is configured).
pub fn recording() -> bool {
    TRACER.get().is_some()
}

/// The caller's trace context, from the W3C `traceparent` (and
/// `tracestate`) headers; empty when there is none or it is malformed.
pub fn caller(headers: &http::HeaderMap) -> Context {
    if !headers.contains_key("traceparent") {
        return Context::new();
    }
    TraceContextPropagator::new().extract_with_context(
        &Context::new(),
        &opentelemetry_http::HeaderExtractor(headers),
    )
}

/// Starts the server span `name` under `parent` and returns the context
/// the work runs in (`parent` itself when spans are not recorded).
pub fn start_server(
    name: &'static str,
    attributes: impl IntoIterator<Item = KeyValue>,
    parent: Context,
) -> Context {
    let Some(tracer) = TRACER.get() else {
        return parent;
    };
    let span = tracer
        .span_builder(name)
        .with_kind(SpanKind::Server)
        .with_attributes(attributes)
        .start_with_context(tracer, &parent);
    parent.with_span(span)
}

/// Ends the server span of `cx` (started by [`start_server`]) with these
/// final attributes; `failed` marks it an error (a 5xx, a failed
/// invocation).
pub fn end_server(cx: &Context, attributes: Vec<KeyValue>, failed: bool) {
    if !recording() {
        return;
    }
    let span = cx.span();
    span.set_attributes(attributes);
    if failed {
        span.set_status(Status::error(""));
    }
    span.end();
}

/// What kind of child span [`record`] makes.
#[derive(Debug, Clone, Copy)]
pub enum Child {
    /// A request to another service (Cosmos DB).
    Client,
    /// Work inside this process (the embedded store's writer).
    Internal,
}

/// Records a span that has already ended, as a child of the current
/// context's span.
pub fn record(
    kind: Child,
    name: String,
    started: SystemTime,
    ended: SystemTime,
    attributes: Vec<KeyValue>,
    failed: bool,
) {
    let Some(tracer) = TRACER.get() else {
        return;
    };
    Context::map_current(|parent| {
        use opentelemetry::trace::Span as _;
        let mut span = tracer
            .span_builder(name)
            .with_kind(match kind {
                Child::Client => SpanKind::Client,
                Child::Internal => SpanKind::Internal,
            })
            .with_start_time(started)
            .with_attributes(attributes)
            .start_with_context(tracer, parent);
        if failed {
            span.set_status(Status::error(""));
        }
        span.end_with_timestamp(ended);
    });
}

/// The current trace and span ids (hex), when there is a valid current
/// span context: what log lines carry.
pub fn current_ids() -> Option<(String, String)> {
    Context::map_current(|cx| {
        let span = cx.span();
        let context = span.span_context();
        context.is_valid().then(|| {
            (
                context.trace_id().to_string(),
                context.span_id().to_string(),
            )
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_callers_traceparent_becomes_the_parent() {
        let mut headers = http::HeaderMap::new();
        assert!(!caller(&headers).span().span_context().is_valid());
        headers.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        let cx = caller(&headers);
        let _guard = cx.attach();
        let (trace, span) = current_ids().unwrap();
        assert_eq!(trace, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(span, "00f067aa0ba902b7");
        headers.insert("traceparent", "garbage".parse().unwrap());
        assert!(!caller(&headers).span().span_context().is_valid());
    }
}
