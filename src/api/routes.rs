//! The one table of HTTP endpoints. The router is built from it, and the
//! Azure Functions folders (`functions/*/function.json`) are checked against
//! it, so the three cannot drift apart.

use axum::{
    http::Method,
    routing::{MethodFilter, MethodRouter, on},
};

use super::{AppState, legacy, meta, openapi, sessions};

/// What an endpoint does; each has exactly one handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// Liveness of the service.
    Health,
    /// A page of the user's sessions.
    ListSessions,
    /// A new session.
    CreateSession,
    /// One session with its messages.
    GetSession,
    /// Rename, archive, or change the context of a session.
    UpdateSession,
    /// Remove a session and its messages.
    DeleteSession,
    /// Append a message to a session.
    SendMessage,
    /// Page through a session's messages, newest first.
    ListMessages,
    /// Legacy: a session's messages in the old per-message shape.
    GetChatHistory,
    /// Legacy: post a message, creating its session if needed.
    PostChatMessage,
    /// The OpenAPI document of this API.
    OpenApi,
}

impl Endpoint {
    /// The error statuses this endpoint can answer (all as
    /// `application/problem+json`); the OpenAPI document lists exactly these.
    pub fn problem_statuses(self) -> &'static [u16] {
        match self {
            Self::Health | Self::OpenApi => &[500],
            Self::ListSessions => &[401, 403, 422, 500, 503],
            Self::CreateSession => &[400, 401, 403, 409, 413, 415, 422, 500, 503],
            Self::GetSession => &[401, 403, 404, 422, 500, 503],
            Self::UpdateSession => &[400, 401, 403, 404, 412, 413, 415, 422, 500, 503],
            Self::DeleteSession => &[401, 403, 404, 412, 422, 500, 503],
            Self::SendMessage => &[400, 401, 403, 404, 409, 413, 415, 422, 500, 503],
            Self::ListMessages => &[401, 403, 404, 422, 500, 503],
            Self::GetChatHistory => &[401, 403, 422, 500, 503],
            Self::PostChatMessage => &[400, 401, 403, 404, 409, 413, 415, 422, 500, 503],
        }
    }
}

/// One HTTP function: its Azure Functions name, method and route.
#[derive(Debug, Clone)]
pub struct Route {
    /// The function (folder) name under `functions/`.
    pub function: &'static str,
    /// The single method it accepts.
    pub method: Method,
    /// The route as in `function.json`: without the `api/` prefix, with
    /// `{name}` parameters (the syntax axum uses too).
    pub route: &'static str,
    /// What it does.
    pub endpoint: Endpoint,
}

/// Every HTTP endpoint of the API.
#[rustfmt::skip]
pub const ROUTES: &[Route] = &[
    Route { function: "Health", method: Method::GET, route: "health", endpoint: Endpoint::Health },
    Route { function: "ListSessions", method: Method::GET, route: "chat/sessions", endpoint: Endpoint::ListSessions },
    Route { function: "CreateSession", method: Method::POST, route: "chat/sessions", endpoint: Endpoint::CreateSession },
    Route { function: "GetSession", method: Method::GET, route: "chat/sessions/{session_id}", endpoint: Endpoint::GetSession },
    Route { function: "UpdateSession", method: Method::PUT, route: "chat/sessions/{session_id}", endpoint: Endpoint::UpdateSession },
    Route { function: "DeleteSession", method: Method::DELETE, route: "chat/sessions/{session_id}", endpoint: Endpoint::DeleteSession },
    Route { function: "SendMessage", method: Method::POST, route: "chat/sessions/{session_id}/messages", endpoint: Endpoint::SendMessage },
    Route { function: "ListMessages", method: Method::GET, route: "chat/sessions/{session_id}/messages", endpoint: Endpoint::ListMessages },
    Route { function: "GetChatHistory", method: Method::GET, route: "chat/history", endpoint: Endpoint::GetChatHistory },
    Route { function: "PostChatMessage", method: Method::POST, route: "chat/message", endpoint: Endpoint::PostChatMessage },
    Route { function: "OpenApi", method: Method::GET, route: "openapi.json", endpoint: Endpoint::OpenApi },
];

/// The prefix the Functions host puts before every HTTP route.
pub const ROUTE_PREFIX: &str = "/api/";

impl Route {
    /// The path the service sees (the host forwards it with the prefix).
    pub fn path(&self) -> String {
        format!("{ROUTE_PREFIX}{}", self.route)
    }

    /// The handler, accepting only this route's method.
    pub fn method_router(&self) -> MethodRouter<AppState> {
        let filter =
            MethodFilter::try_from(self.method.clone()).expect("routes use standard methods");
        match self.endpoint {
            Endpoint::Health => on(filter, meta::health),
            Endpoint::ListSessions => on(filter, sessions::list),
            Endpoint::CreateSession => on(filter, sessions::create),
            Endpoint::GetSession => on(filter, sessions::get),
            Endpoint::UpdateSession => on(filter, sessions::update),
            Endpoint::DeleteSession => on(filter, sessions::delete),
            Endpoint::SendMessage => on(filter, sessions::send_message),
            Endpoint::ListMessages => on(filter, sessions::list_messages),
            Endpoint::GetChatHistory => on(filter, legacy::history),
            Endpoint::PostChatMessage => on(filter, legacy::post_message),
            Endpoint::OpenApi => on(filter, openapi::serve),
        }
    }
}
