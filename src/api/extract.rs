//! Extractors whose rejections are our problem responses.

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request, rejection::QueryRejection},
    http::{header, request::Parts},
};
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// A JSON body. Malformed JSON is a 400, JSON of the wrong shape a 422, a body
/// over the limit a 413. An empty (or `null`) body reads as `{}` so endpoints whose
/// fields are all optional accept a bare POST. A missing or `text/plain`
/// content type is accepted, since `fetch` with a string body sends
/// `text/plain`; other declared types (forms, multipart) are a 415.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(value) = req.headers().get(header::CONTENT_TYPE) {
            let essence = value
                .to_str()
                .unwrap_or("")
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            let json_like = essence == "application/json"
                || essence.ends_with("+json")
                || essence == "text/plain"
                || essence.is_empty();
            if !json_like {
                return Err(ApiError::UnsupportedMediaType(format!(
                    "the body must be JSON (Content-Type: application/json), not {essence}"
                )));
            }
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if let Some(timed_out) = super::admit::BodyTimedOut::refusal(&rejection) {
                timed_out
            } else if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge("the request body is larger than the limit".into())
            } else {
                ApiError::BadRequest(format!("could not read the request body: {rejection}"))
            }
        })?;
        // No body, or a JSON null, reads as an empty object.
        let trimmed = bytes.trim_ascii();
        let text: &[u8] = if trimmed.is_empty() || trimmed == b"null" {
            b"{}"
        } else {
            &bytes
        };
        // The path of a wrong value (`tool_calls[0].type`) goes into the
        // answer, so a caller knows which member to mend.
        let mut de = serde_json::Deserializer::from_slice(text);
        let value = serde_path_to_error::deserialize(&mut de)
            .map_err(|e| (e.path().to_string(), e.into_inner()))
            .and_then(|value| de.end().map(|()| value).map_err(|e| (".".into(), e)));
        value.map(ApiJson).map_err(|(path, e)| {
            use serde_json::error::Category;
            match e.classify() {
                Category::Data if path == "." => ApiError::Validation(format!("invalid body: {e}")),
                Category::Data => ApiError::Validation(format!("invalid body: {path}: {e}")),
                Category::Syntax | Category::Eof | Category::Io => {
                    ApiError::BadRequest(format!("the body is not valid JSON: {e}"))
                }
            }
        })
    }
}

/// Query parameters; a value of the wrong type is a 422.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e: QueryRejection| ApiError::Validation(e.body_text()))
    }
}

/// A path parameter; an undecodable one is a 422.
#[derive(Debug, Clone, Default)]
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e| ApiError::Validation(e.body_text()))
    }
}
