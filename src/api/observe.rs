//! What each function tells the operator and the caller: a server span
//! named by its Azure Function (child of the caller's `traceparent`, as the
//! Functions host sends it), the duration and request units as metrics,
//! and a `Server-Timing` header with the time spent in the store and, on
//! Cosmos DB, the request units charged. The HTTP endpoints and the host's
//! queue and timer invocations (`crate::functions`) all go through it.

use std::{
    convert::Infallible,
    future::Future,
    sync::Arc,
    task::{Context as Poll, Poll as Polled},
    time::Instant,
};

use axum::{
    extract::Request,
    http::{HeaderValue, Method, header::HeaderName},
    response::Response,
};
use futures::future::BoxFuture;
use opentelemetry::{Context, KeyValue, context::FutureExt as _, trace::TraceContextExt as _};
use tower::{Layer, Service};

use crate::telemetry::{cost, instruments::FunctionMetrics, spans};

/// `Server-Timing` (not among axum's header constants).
const SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");

/// What one route reports itself as. The attributes are built once per
/// route, not per request.
#[derive(Debug, Clone)]
pub struct Observed {
    /// The Azure Function name (`SendMessage`), the span's name.
    pub function: &'static str,
    /// Whether it is an HTTP endpoint (else a queue or timer invocation of
    /// the host, which fails on any non-2xx).
    pub http: bool,
    /// Whether answers carry `Server-Timing`.
    pub server_timing: bool,
    /// The server span's first attributes: `faas.name`, `faas.trigger`
    /// and, for HTTP, `http.request.method` and `http.route`.
    span_attributes: Arc<[KeyValue]>,
    /// Its duration and request-unit metrics.
    metrics: Arc<FunctionMetrics>,
}

impl Observed {
    /// An HTTP endpoint: `method` on `route`
    /// (`/api/chat/sessions/{session_id}`, the template the server matches).
    pub fn http(function: &'static str, method: &Method, route: &str, server_timing: bool) -> Self {
        let route: Arc<str> = route.into();
        let method = method.as_str().to_owned();
        Self {
            function,
            http: true,
            server_timing,
            span_attributes: Arc::new([
                KeyValue::new("faas.name", function),
                KeyValue::new("faas.trigger", "http"),
                KeyValue::new("http.request.method", method.clone()),
                KeyValue::new("http.route", route.clone()),
            ]),
            metrics: Arc::new(FunctionMetrics::new(
                function,
                Arc::new([
                    KeyValue::new("faas.name", function),
                    KeyValue::new("http.request.method", method),
                    KeyValue::new("http.route", route),
                ]),
            )),
        }
    }

    /// A queue (`pubsub`) or timer invocation of the host.
    pub fn invocation(function: &'static str, trigger: &'static str) -> Self {
        let attributes: Arc<[KeyValue]> = Arc::new([
            KeyValue::new("faas.name", function),
            KeyValue::new("faas.trigger", trigger),
        ]);
        Self {
            function,
            http: false,
            server_timing: false,
            span_attributes: attributes.clone(),
            metrics: Arc::new(FunctionMetrics::new(function, attributes)),
        }
    }
}

/// Puts [`Observe`] around one route (or the host's invocation).
#[derive(Debug, Clone)]
pub struct ObserveLayer(pub Observed);

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Observe<S> {
        Observe {
            inner,
            observed: self.0.clone(),
        }
    }
}

/// The middleware of one route (see the module's comment). A service of
/// its own rather than `axum::middleware::from_fn`, which clones the route
/// for every request: this only wraps the route's future.
#[derive(Debug, Clone)]
pub struct Observe<S> {
    inner: S,
    observed: Observed,
}

impl<S> Service<Request> for Observe<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Poll<'_>) -> Polled<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let started = Instant::now();
        let parent = spans::caller(request.headers());
        let answer = self.inner.call(request);
        let observed = self.observed.clone();
        Box::pin(async move { Ok(observe(observed, started, parent, answer).await) })
    }
}

/// Runs the route's `answer` in the request's span and cost tally, and
/// reports what it came to.
async fn observe(
    observed: Observed,
    started: Instant,
    parent: Context,
    answer: impl Future<Output = Result<Response, Infallible>>,
) -> Response {
    let answer = async move {
        match answer.await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    };
    // The work runs in a context only when there is one to carry: a span
    // being recorded, or the caller's trace for the log lines.
    let (mut response, cost, cx) = if spans::recording() || parent.has_active_span() {
        let cx = start(&observed, parent);
        let (response, cost) = cost::measure(answer).with_context(cx.clone()).await;
        (response, cost, Some(cx))
    } else {
        let (response, cost) = cost::measure(answer).await;
        (response, cost, None)
    };
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    if observed.server_timing
        && let Ok(value) =
            HeaderValue::from_maybe_shared(bytes::Bytes::from(cost.server_timing(elapsed)))
    {
        response.headers_mut().insert(SERVER_TIMING, value);
    }
    if let Some(cx) = cx.filter(|_| spans::recording()) {
        end(&observed, &cx, status, &cost);
    }
    let status_code = observed.http.then_some(status);
    observed
        .metrics
        .ended(status_code, elapsed, cost.request_charge());
    response
}

/// The server span of one request, under the caller's.
fn start(observed: &Observed, parent: Context) -> Context {
    if !spans::recording() {
        return parent;
    }
    let attributes = observed.span_attributes.iter().cloned();
    spans::start_server(observed.function, attributes, parent)
}

/// Ends the server span with what the request came to.
fn end(observed: &Observed, cx: &Context, status: u16, cost: &cost::Cost) {
    let mut attributes = vec![KeyValue::new(
        "http.response.status_code",
        i64::from(status),
    )];
    if let Some(charge) = cost.request_charge() {
        attributes.push(KeyValue::new("chat_sessions.request_charge", charge));
        attributes.push(KeyValue::new(
            "chat_sessions.store.requests",
            cost.cosmos_requests() as i64,
        ));
    }
    // A failed invocation is any non-2xx (the host retries it).
    let failed = status >= 500 || (!observed.http && status >= 300);
    spans::end_server(cx, attributes, failed);
}
