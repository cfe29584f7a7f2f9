//! Admission: the per-instance limits as tower layers around the routes
//! ([`AdmitLayer`]: requests in flight, imports, whole-user exports,
//! erases), and the deadline of a request body ([`BodyDeadlineLayer`]).
//!
//! A request beyond a limit is answered at once (load shedding, never a
//! queue): 503 problem+json with `Retry-After`, its type naming the limit.
//! Two things tower's `ConcurrencyLimit` + `LoadShed` do not do, which is
//! why this is a layer of its own over a [`Semaphore`]: the permit is held
//! until a streamed answer (an export) has been sent, not just until its
//! headers are; and a refused request's body is read and dropped before
//! the answer (up to the largest body a route takes, within the body's
//! deadline), so that a client still uploading (an import) reads the 503
//! rather than a connection reset.

use std::{
    convert::Infallible,
    future::Future as _,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    body::{Body, Bytes, HttpBody},
    extract::Request,
    http::{HeaderMap, Uri},
    response::{IntoResponse as _, Response},
};
use futures::future::BoxFuture;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::{Layer, Service};

use super::{ApiError, ApiSettings};
use crate::{
    auth::PRINCIPAL_ID_HEADER,
    limits::{Refusal, rate::UserRate},
    store::Owner,
};

/// `Retry-After` of a refusal by the cap on requests in flight: they
/// mostly take milliseconds.
const IN_FLIGHT_RETRY_AFTER: Duration = Duration::from_secs(1);
/// `Retry-After` of a refusal by the caps on imports, exports and erases,
/// which take seconds.
const HEAVY_RETRY_AFTER: Duration = Duration::from_secs(5);

/// The per-instance limits a route counts against (the route table says
/// which).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Only the cap on requests in flight (most routes).
    InFlight,
    /// None: the probes, the OpenAPI document and the web app's files are
    /// never shed.
    Uncounted,
    /// The cap on imports, and the one on requests in flight.
    Imports,
    /// The cap on whole-user exports, and the one on requests in flight.
    Exports,
    /// The cap on erases, and the one on requests in flight.
    Erases,
}

/// The limits of one router: the gates of its routes and the per-user
/// write rate.
#[derive(Debug, Default)]
pub struct Admission {
    in_flight: Option<Arc<Gate>>,
    imports: Option<Arc<Gate>>,
    exports: Option<Arc<Gate>>,
    erases: Option<Arc<Gate>>,
    user_rate: Option<UserRate>,
}

impl Admission {
    /// The limits `settings` set.
    pub fn new(settings: &ApiSettings) -> Self {
        let limits = &settings.limits;
        let drain = settings.import_max_bytes.max(settings.max_body_bytes);
        let heavy = |max, refusal| Gate::new(max, refusal, HEAVY_RETRY_AFTER, drain);
        Self {
            in_flight: Gate::new(
                limits.max_in_flight,
                Refusal::InFlight,
                IN_FLIGHT_RETRY_AFTER,
                drain,
            ),
            imports: Gate::lending(heavy(limits.max_imports, Refusal::Imports)),
            exports: heavy(limits.max_exports, Refusal::Exports),
            erases: heavy(limits.max_erases, Refusal::Erases),
            user_rate: UserRate::new(limits.user_write_rate, limits.user_write_burst),
        }
    }

    /// The gates a route with `limit` passes, innermost first: its own
    /// kind's, then the instance's cap on requests in flight.
    pub fn gates(&self, limit: Limit) -> impl Iterator<Item = Arc<Gate>> {
        let own = match limit {
            Limit::Imports => self.imports.clone(),
            Limit::Exports => self.exports.clone(),
            Limit::Erases => self.erases.clone(),
            Limit::InFlight | Limit::Uncounted => None,
        };
        let counted = limit != Limit::Uncounted;
        own.into_iter()
            .chain(self.in_flight.clone().filter(|_| counted))
    }

    /// Takes one write of `owner` from its bucket, or refuses it (429).
    pub fn write(&self, owner: &Owner) -> Result<(), ApiError> {
        let Some(rate) = &self.user_rate else {
            return Ok(());
        };
        let user = owner.user_id().map(|u| u.as_str());
        rate.take(user.unwrap_or(""), std::time::Instant::now())
            .map_err(|wait| ApiError::refused(Refusal::UserRate, wait, user))
    }
}

/// The longest a refused request's body is read for, whatever the body
/// deadline (which may be off).
const DRAIN_AT_MOST: Duration = Duration::from_secs(30);

/// One limit: how many requests may pass at once, and how a request
/// beyond it is answered.
#[derive(Debug)]
pub struct Gate {
    semaphore: Arc<Semaphore>,
    refusal: Refusal,
    retry_after: Duration,
    /// The most of a refused request's body that is read before answering.
    drain_bytes: usize,
    /// Whether the handler gets the permit too ([`Lent`]), to keep it for
    /// work that outlives the request.
    lend: bool,
}

/// A gate's permit, lent to the handler (in the request's extensions):
/// the gate counts the request until both the answer and every clone of
/// this are gone. An import keeps it for its own task, which goes on when
/// the client has gone.
#[derive(Debug, Clone)]
// Never read: it is held, and released when the last clone is dropped.
pub struct Lent(#[allow(dead_code)] Arc<OwnedSemaphorePermit>);

impl Gate {
    /// `max` requests at once (`None` when `max` is 0: no limit); beyond
    /// them, `refusal` with `retry_after`, after reading up to
    /// `drain_bytes` of the body.
    pub fn new(
        max: usize,
        refusal: Refusal,
        retry_after: Duration,
        drain_bytes: usize,
    ) -> Option<Arc<Self>> {
        (max > 0).then(|| {
            Arc::new(Self {
                semaphore: Arc::new(Semaphore::new(max)),
                refusal,
                retry_after,
                drain_bytes,
                lend: false,
            })
        })
    }

    /// The same gate, lending its permits to the handler ([`Lent`]).
    fn lending(gate: Option<Arc<Self>>) -> Option<Arc<Self>> {
        gate.map(|gate| {
            Arc::new(Self {
                semaphore: gate.semaphore.clone(),
                lend: true,
                ..*gate
            })
        })
    }

    /// Requests that may still pass now.
    pub fn available(&self) -> usize {
        self.semaphore.available_permits()
    }

    async fn refuse(&self, request: Request) -> Response {
        let (parts, body) = request.into_parts();
        let user = caller(&parts.headers, &parts.uri);
        let error = ApiError::refused(self.refusal, self.retry_after, user.as_deref());
        drain(body, self.drain_bytes).await;
        error.into_response()
    }
}

/// Who a refused request is from, for the refusal's log line only (hashed
/// there): the Easy Auth principal, else the `user_id` in the query.
/// Not checked: the request is not served.
fn caller(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    if let Some(principal) = headers.get(PRINCIPAL_ID_HEADER)
        && let Ok(principal) = principal.to_str()
    {
        return Some(principal.to_owned());
    }
    url::form_urlencoded::parse(uri.query()?.as_bytes())
        .find(|(k, _)| k == "user_id")
        .map(|(_, v)| v.into_owned())
}

/// Reads and drops `body`, up to `limit` bytes and [`DRAIN_AT_MOST`].
pub async fn drain(mut body: Body, limit: usize) {
    if body.is_end_stream() {
        return;
    }
    let read = async {
        let mut seen = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, Bytes::len);
            if seen > limit {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_AT_MOST, read).await;
}

/// Puts a [`Gate`] around a route.
#[derive(Debug, Clone)]
pub struct AdmitLayer(pub Arc<Gate>);

impl<S> Layer<S> for AdmitLayer {
    type Service = Admit<S>;

    fn layer(&self, inner: S) -> Admit<S> {
        Admit {
            inner,
            gate: self.0.clone(),
        }
    }
}

/// A route behind a [`Gate`].
#[derive(Debug, Clone)]
pub struct Admit<S> {
    inner: S,
    gate: Arc<Gate>,
}

impl<S> Service<Request> for Admit<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        match self.gate.semaphore.clone().try_acquire_owned() {
            Ok(permit) if self.gate.lend => {
                let permit = Lent(Arc::new(permit));
                request.extensions_mut().insert(permit.clone());
                let answer = self.inner.call(request);
                Box::pin(async move { Ok(hold(answer.await?, permit)) })
            }
            Ok(permit) => {
                let answer = self.inner.call(request);
                Box::pin(async move { Ok(hold(answer.await?, permit)) })
            }
            Err(_) => {
                let gate = self.gate.clone();
                Box::pin(async move { Ok(gate.refuse(request).await) })
            }
        }
    }
}

/// Keeps `permit` until `response` has been sent: released now when the
/// answer is whole already, else with its (streamed) body.
fn hold<P: Send + 'static>(response: Response, permit: P) -> Response {
    if response.body().size_hint().exact().is_some() {
        return response;
    }
    response.map(|body| {
        Body::new(body.map_frame(move |frame| {
            let _held = &permit;
            frame
        }))
    })
}

/// The body of a request must have arrived within its deadline, counted
/// from when its headers did; after it, reading it fails with
/// [`BodyTimedOut`] (answered 408, and the connection closed).
#[derive(Debug, Clone, Copy)]
pub struct BodyDeadlineLayer(pub Duration);

impl<S> Layer<S> for BodyDeadlineLayer {
    type Service = BodyDeadline<S>;

    fn layer(&self, inner: S) -> BodyDeadline<S> {
        BodyDeadline {
            inner,
            timeout: self.0,
        }
    }
}

/// A service whose request bodies have a deadline.
#[derive(Debug, Clone)]
pub struct BodyDeadline<S> {
    inner: S,
    timeout: Duration,
}

impl<S> Service<Request> for BodyDeadline<S>
where
    S: Service<Request>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> S::Future {
        // A request without a body (most reads) costs nothing.
        if request.body().is_end_stream() {
            return self.inner.call(request);
        }
        let deadline = tokio::time::Instant::now() + self.timeout;
        self.inner.call(request.map(|inner| {
            Body::new(DeadlineBody {
                inner,
                deadline,
                timer: None,
            })
        }))
    }
}

/// Reading a request body took longer than its deadline.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the request body did not arrive before its deadline (BODY_READ_TIMEOUT_SECONDS)")]
pub struct BodyTimedOut;

impl BodyTimedOut {
    /// The 408 refusal when reading a body failed because of its deadline
    /// (`error`, or an error it wraps, is a [`BodyTimedOut`]); `None` when
    /// it failed otherwise.
    pub fn refusal(error: &(dyn std::error::Error + 'static)) -> Option<ApiError> {
        let mut at = Some(error);
        while let Some(e) = at {
            if e.is::<Self>() {
                return Some(ApiError::refused(
                    Refusal::BodyTimeout,
                    Duration::ZERO,
                    None,
                ));
            }
            at = e.source();
        }
        None
    }
}

/// A body that fails with [`BodyTimedOut`] once `deadline` passes while it
/// waits for data. The timer is made only when the body has to wait.
struct DeadlineBody {
    inner: Body,
    deadline: tokio::time::Instant,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        let deadline = this.deadline;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
