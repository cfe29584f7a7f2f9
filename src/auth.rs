//! Who the caller is. In Azure, App Service Authentication ("Easy Auth")
//! authenticates every request before it reaches the function and passes the
//! principal in `X-MS-CLIENT-PRINCIPAL-*` headers, which it strips from
//! incoming client requests, so they can be trusted. Locally there is no
//! authentication and the caller names the user.

use axum::http::HeaderMap;
use base64::{Engine as _, engine::general_purpose::STANDARD};
use serde::Deserialize;

use crate::{domain::UserId, store::Owner};

/// How the user of a request is determined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthMode {
    /// Local development: the `user_id` parameter or body field, if any.
    #[default]
    None,
    /// Azure: the principal App Service Authentication put in the headers.
    EasyAuth,
}

impl std::str::FromStr for AuthMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" | "" => Ok(Self::None),
            "easyauth" => Ok(Self::EasyAuth),
            other => Err(format!("AUTH_MODE must be none or easyauth, not {other:?}")),
        }
    }
}

/// Why a request's user could not be determined.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No principal on a request that needs one.
    #[error("this API requires an authenticated user")]
    Unauthenticated,
    /// A `user_id` that differs from the principal.
    #[error("user_id does not match the authenticated user")]
    Forbidden,
    /// A `user_id` that is not a valid user id.
    #[error("{0}")]
    Invalid(String),
}

/// The principal header with the user's id.
pub const PRINCIPAL_ID_HEADER: &str = "x-ms-client-principal-id";
/// The header with the whole principal, base64 JSON.
pub const PRINCIPAL_HEADER: &str = "x-ms-client-principal";

#[derive(Deserialize)]
struct Principal {
    #[serde(default)]
    claims: Vec<Claim>,
}

#[derive(Deserialize)]
struct Claim {
    typ: String,
    val: String,
}

/// The authenticated user's id from Easy Auth headers, if any.
fn principal_id(headers: &HeaderMap) -> Option<String> {
    if let Some(id) = headers
        .get(PRINCIPAL_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
    {
        return Some(id.to_owned());
    }
    // Some providers only send the encoded principal; its object id (or
    // subject) claim is the same id the -ID header would carry.
    let encoded = headers.get(PRINCIPAL_HEADER)?.to_str().ok()?;
    let principal: Principal =
        serde_json::from_slice(&STANDARD.decode(encoded.trim()).ok()?).ok()?;
    [
        "http://schemas.microsoft.com/identity/claims/objectidentifier",
        "oid",
        "sub",
    ]
    .iter()
    .find_map(|wanted| principal.claims.iter().find(|c| c.typ == *wanted))
    .map(|c| c.val.clone())
}

/// Resolves the owner of a request. `requested` is the `user_id` the caller
/// passed (query parameter or body field).
pub fn resolve_owner(
    mode: AuthMode,
    headers: &HeaderMap,
    requested: Option<&str>,
) -> Result<Owner, AuthError> {
    let requested = requested
        .map(|raw| UserId::parse(raw).map_err(|e| AuthError::Invalid(e.to_string())))
        .transpose()?;
    match mode {
        AuthMode::None => Ok(requested.map_or(Owner::Anonymous, Owner::User)),
        AuthMode::EasyAuth => {
            let principal = principal_id(headers).ok_or(AuthError::Unauthenticated)?;
            let principal = UserId::parse(principal).map_err(|_| AuthError::Unauthenticated)?;
            match requested {
                Some(asked) if asked != principal => Err(AuthError::Forbidden),
                _ => Ok(Owner::User(principal)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn local_mode_takes_the_requested_user_or_none() {
        let none = HeaderMap::new();
        assert_eq!(
            resolve_owner(AuthMode::None, &none, None),
            Ok(Owner::Anonymous)
        );
        assert_eq!(
            resolve_owner(AuthMode::None, &none, Some("u1")),
            Ok(Owner::User(UserId::parse("u1").unwrap()))
        );
        assert!(matches!(
            resolve_owner(AuthMode::None, &none, Some("")),
            Err(AuthError::Invalid(_))
        ));
    }

    #[test]
    fn easy_auth_requires_a_principal_and_rejects_other_users() {
        let none = HeaderMap::new();
        assert_eq!(
            resolve_owner(AuthMode::EasyAuth, &none, None),
            Err(AuthError::Unauthenticated)
        );
        let alice = headers(&[(PRINCIPAL_ID_HEADER, "alice")]);
        assert_eq!(
            resolve_owner(AuthMode::EasyAuth, &alice, Some("alice")),
            Ok(Owner::User(UserId::parse("alice").unwrap()))
        );
        assert_eq!(
            resolve_owner(AuthMode::EasyAuth, &alice, Some("bob")),
            Err(AuthError::Forbidden)
        );
    }

    #[test]
    fn easy_auth_reads_the_encoded_principal() {
        let principal = r#"{"auth_typ":"aad","claims":[{"typ":"name","val":"A"},{"typ":"http://schemas.microsoft.com/identity/claims/objectidentifier","val":"oid-1"}]}"#;
        let map = headers(&[(PRINCIPAL_HEADER, &STANDARD.encode(principal))]);
        assert_eq!(
            resolve_owner(AuthMode::EasyAuth, &map, None),
            Ok(Owner::User(UserId::parse("oid-1").unwrap()))
        );
    }
}
