//! The one error type of the HTTP API, answered as RFC 9457
//! `application/problem+json`.

use std::time::Duration;

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

use crate::{
    domain::ValidationError,
    limits::{Refusal, refusals},
    store::StoreError,
};

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Everything a request can fail with. Client mistakes carry a message meant
/// for the caller; [`ApiError::Internal`] carries a cause that is logged and
/// never sent.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body is not JSON.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no authenticated principal.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: the principal asked for another user's data.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such session for this user, or no such route.
    #[error("{0}")]
    NotFound(String),
    /// 405: the route exists, the method does not.
    #[error("this method is not allowed on this resource")]
    MethodNotAllowed,
    /// 409: the id is taken.
    #[error("{0}")]
    Conflict(String),
    /// 412: `If-Match` did not match.
    #[error("{0}")]
    PreconditionFailed(String),
    /// 413: the body is over the configured limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 415: the body is declared as something other than JSON.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422: well-formed JSON or parameters with invalid values.
    #[error("{0}")]
    Validation(String),
    /// 503: the store is throttled or unreachable; retry later.
    #[error(
        "the service is temporarily unavailable: its store cannot be reached or is busy; retry \
         after the time in Retry-After (GET /api/health/ready says why)"
    )]
    Unavailable {
        /// Sent as `Retry-After`.
        retry_after: Duration,
    },
    /// 503 from readiness: the store cannot serve; `detail` says why in an
    /// operator's words.
    #[error("{detail}")]
    NotReady {
        /// Why, and what to do.
        detail: String,
        /// Sent as `Retry-After`.
        retry_after: Duration,
    },
    /// 507: the disk under the store is full; nothing of the request was
    /// kept. Reads go on.
    #[error(
        "the disk of this service's data directory is full: nothing of this request was kept. \
         Reads still work; retry once space has been freed (GET /api/health/ready says when)"
    )]
    StorageFull,
    /// 507: the store's data directory cannot be written (read-only, or
    /// gone); nothing of the request was kept.
    #[error(
        "this service's data directory cannot be written (it is read-only, or gone): nothing of \
         this request was kept. GET /api/health/ready says what to do"
    )]
    StorageUnavailable {
        /// What the store said, for the log only.
        reason: String,
    },
    /// A limit refused the request: 503 for the instance's limits, 429
    /// for the user's write rate, 408 for a body sent too slowly. Counted
    /// and logged where it is made ([`ApiError::refused`]).
    #[error("{}", refusal_detail(*refusal))]
    Refused {
        /// Which limit.
        refusal: Refusal,
        /// Sent as `Retry-After` (not for 408).
        retry_after: Duration,
    },
    /// 500: a fault of ours; the cause is logged only.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// The RFC 9457 body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind.
    pub title: &'static str,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong with this request.
    pub detail: String,
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unavailable { .. } | Self::NotReady { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::StorageFull | Self::StorageUnavailable { .. } => StatusCode::INSUFFICIENT_STORAGE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Refused { refusal, .. } => match refusal {
                Refusal::UserRate => StatusCode::TOO_MANY_REQUESTS,
                Refusal::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
                _ => StatusCode::SERVICE_UNAVAILABLE,
            },
        }
    }

    fn slug_and_title(&self) -> (&'static str, &'static str) {
        match self {
            Self::BadRequest(_) => ("malformed-request", "Malformed request"),
            Self::Unauthorized(_) => ("unauthenticated", "Authentication required"),
            Self::Forbidden(_) => ("forbidden", "Forbidden"),
            Self::NotFound(_) => ("not-found", "Not found"),
            Self::MethodNotAllowed => ("method-not-allowed", "Method not allowed"),
            Self::Conflict(_) => ("conflict", "Conflict"),
            Self::PreconditionFailed(_) => ("precondition-failed", "Precondition failed"),
            Self::PayloadTooLarge(_) => ("payload-too-large", "Payload too large"),
            Self::UnsupportedMediaType(_) => ("unsupported-media-type", "Unsupported media type"),
            Self::Validation(_) => ("validation-error", "Invalid request"),
            Self::Unavailable { .. } => ("unavailable", "Service unavailable"),
            Self::NotReady { .. } => ("not-ready", "Not ready"),
            Self::StorageFull => ("storage-full", "Insufficient storage"),
            Self::StorageUnavailable { .. } => ("storage-unavailable", "Insufficient storage"),
            Self::Internal(_) => ("internal-error", "Internal server error"),
            Self::Refused { refusal, .. } => (
                refusal.slug(),
                match refusal {
                    Refusal::UserRate => "Too many requests",
                    Refusal::BodyTimeout => "Request timeout",
                    _ => "Service unavailable",
                },
            ),
        }
    }

    /// The body this error is answered with.
    pub fn problem(&self) -> Problem {
        let (slug, title) = self.slug_and_title();
        Problem {
            kind: format!("urn:chat-sessions:problem:{slug}"),
            title,
            status: self.status().as_u16(),
            detail: self.to_string(),
        }
    }

    /// A refusal by `refusal` of a request by `user` (when known), counted
    /// and logged (at most once a minute per user) now.
    pub fn refused(refusal: Refusal, retry_after: Duration, user: Option<&str>) -> Self {
        refusals::refused(refusal, user);
        Self::Refused {
            refusal,
            retry_after,
        }
    }

    /// A 404 for a session that does not exist for this user.
    pub fn session_not_found() -> Self {
        Self::NotFound("no chat session with this id exists for this user".into())
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        Self::Validation(e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::session_not_found(),
            StoreError::MessageNotFound => {
                Self::NotFound("this chat session has no message with this id".into())
            }
            StoreError::Conflict(detail) => Self::Conflict(detail),
            StoreError::PreconditionFailed => Self::PreconditionFailed(
                "the session changed since the ETag in If-Match was issued; fetch it again".into(),
            ),
            StoreError::Invalid(v) => v.into(),
            StoreError::Unavailable { retry_after } => Self::Unavailable {
                retry_after: retry_after.unwrap_or(Duration::from_secs(1)),
            },
            StoreError::StorageFull => Self::StorageFull,
            StoreError::StorageUnavailable(reason) => Self::StorageUnavailable { reason },
            StoreError::Internal(cause) => Self::Internal(cause),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            Self::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "request failed")
            }
            Self::Unavailable { .. } => tracing::warn!("store unavailable; answering 503"),
            // The store's (and the system's) words stay in the log: the
            // answer names no path.
            Self::StorageFull => tracing::warn!("the data directory's disk is full; answering 507"),
            Self::StorageUnavailable { reason } => {
                tracing::warn!(
                    reason,
                    "the data directory cannot be written; answering 507"
                )
            }
            _ => {}
        }
        let problem = self.problem();
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (self.status(), body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        let retry_after = match &self {
            Self::Unavailable { retry_after } | Self::NotReady { retry_after, .. } => {
                Some(retry_after)
            }
            Self::Refused {
                refusal,
                retry_after,
            } if *refusal != Refusal::BodyTimeout => Some(retry_after),
            _ => None,
        };
        if matches!(
            self,
            Self::Refused {
                refusal: Refusal::BodyTimeout,
                ..
            }
        ) {
            // What is left of the body will not be read: the connection
            // cannot carry another request.
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(retry_after) = retry_after {
            let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// What a refusal tells the caller: which limit, and what to do.
fn refusal_detail(refusal: Refusal) -> &'static str {
    match refusal {
        Refusal::InFlight => {
            "this instance is at its limit of requests in flight (MAX_REQUESTS_IN_FLIGHT): \
             retry after the time in Retry-After"
        }
        Refusal::Imports => {
            "this instance is running as many imports as it takes at once \
             (MAX_IMPORTS_IN_FLIGHT): nothing was imported; send the file again after the time \
             in Retry-After"
        }
        Refusal::Exports => {
            "this instance is running as many exports of all of a user's data as it takes at \
             once (MAX_EXPORTS_IN_FLIGHT): retry after the time in Retry-After"
        }
        Refusal::Erases => {
            "this instance is running as many erases as it takes at once (MAX_ERASES_IN_FLIGHT): \
             nothing was erased; retry after the time in Retry-After"
        }
        Refusal::UserRate => {
            "this user writes faster than this service allows (USER_WRITE_RATE writes a second, \
             in bursts of USER_WRITE_BURST): nothing of this request was kept; retry after the \
             time in Retry-After"
        }
        Refusal::BodyTimeout => {
            "the request body did not arrive in time (BODY_READ_TIMEOUT_SECONDS): nothing of this \
             request was kept"
        }
    }
}
