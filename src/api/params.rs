//! What several endpoints take alike: the `?user_id=` of an endpoint that
//! names one session, and a session id from the path.

use serde::Deserialize;
use utoipa::IntoParams;

use super::ApiError;
use crate::domain::{SessionId, UserId};

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
