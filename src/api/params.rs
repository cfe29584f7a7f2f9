//! What several endpoints take alike: the `?user_id=` of an endpoint that
//! names one session, session and message ids from the path or a body, and
//! a body member that may be given as `null`.

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
