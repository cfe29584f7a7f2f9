//! What several endpoints take alike: the `?user_id=` of an endpoint that
//! names one session, session and message ids from the path or a body, a
//! page size, a page token that stands for a position, and a body member
//! that may be given as `null`.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Deserializer};
use utoipa::IntoParams;

use super::ApiError;
use crate::domain::{MessageId, SessionId, UserId, ValidationError};

/// `?user_id=` on endpoints that name one session.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserParam {
    /// The user (local mode), or a check against the principal (Easy Auth).
    #[param(value_type = Option<UserId>)]
    pub user_id: Option<String>,
}

/// A session id from the path, checked (422 when it is not one).
pub(super) fn session_id(raw: String) -> Result<SessionId, ApiError> {
    Ok(SessionId::parse(raw)?)
}

/// A message id given as `field` (a path segment, a query parameter, a body
/// member), checked: a 422 names `field`, so the caller knows which id to
/// mend when a request carries several.
pub(super) fn message_id(field: &'static str, raw: String) -> Result<MessageId, ApiError> {
    MessageId::parse(raw).map_err(|e| ValidationError::new(field, e.message).into())
}

/// The page size given as `field` (`default` when absent): 422 unless it is
/// between 1 and `max`.
pub(super) fn page_size(
    field: &str,
    given: Option<u32>,
    default: u32,
    max: u32,
) -> Result<u32, ApiError> {
    let size = given.unwrap_or(default);
    if !(1..=max).contains(&size) {
        return Err(ApiError::Validation(format!(
            "{field}: must be between 1 and {max}"
        )));
    }
    Ok(size)
}

/// An opaque page token standing for position `n`; `tag` (e.g. `m1`)
/// versions its form, and tells the tokens of one pager from another's.
pub(super) fn encode_position(tag: &str, n: u64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{tag}:{n}"))
}

/// The position of a token [`encode_position`] made with `tag`; a 422
/// naming `field` (`what`: cursor, token) for anything else.
pub(super) fn decode_position(
    field: &str,
    what: &str,
    tag: &str,
    token: &str,
) -> Result<u64, ApiError> {
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            s.strip_prefix(tag)
                .and_then(|s| s.strip_prefix(':'))
                .and_then(|n| n.parse().ok())
        })
        .ok_or_else(|| {
            ApiError::Validation(format!("{field}: is not a {what} this service returned"))
        })
}

/// For `#[serde(default, deserialize_with = "present")]`: tells a member
/// given as `null` (`Some(None)`) from one left out (`None`), where the two
/// mean different things (`session_name: null` clears the name,
/// `parent_id: null` starts a new first message).
pub(super) fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}
