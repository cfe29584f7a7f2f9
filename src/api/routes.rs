//! The one table of HTTP endpoints. Each line registers a handler with its
//! Azure Function name, method, route and the problem statuses it answers;
//! from it come the router (with the per-instance limit each route
//! counts against), the OpenAPI operations (the handlers'
//! `#[utoipa::path]` annotations, gathered here), and the checks of the
//! function folders (`functions/*/function.json`), so they cannot drift
//! apart.

use axum::{
    http::Method,
    routing::{MethodFilter, MethodRouter, on},
};

use super::{
    AppState, admit::Limit, context, erase, export, import, legacy, messages, meta, search,
    sessions, tree, ui,
};

/// One HTTP endpoint: its Azure Functions name, method, route and handler.
#[derive(Debug, Clone)]
pub struct Route {
    /// The function (folder) name under `functions/`, and the OpenAPI
    /// `operationId`.
    pub function: &'static str,
    /// The single method it accepts.
    pub method: Method,
    /// The route as in `function.json`: without the `api/` prefix, with
    /// `{name}` parameters (the syntax axum uses too).
    pub route: &'static str,
    /// The error statuses it can answer (all as `application/problem+json`);
    /// the OpenAPI document lists exactly these.
    pub problems: &'static [u16],
    /// The per-instance limits it counts against.
    pub limit: Limit,
    /// The handler, accepting only `method`.
    handler: fn() -> MethodRouter<AppState>,
}

/// Declares [`ROUTES`] and [`Operations`] from one list, so a handler is
/// named once.
macro_rules! endpoints {
    ($(
        $function:ident: $method:ident $route:literal => $module:ident::$handler:ident,
        $(limit $limit:ident,)?
        problems [$($status:literal),*];
    )*) => {
        /// Every HTTP endpoint of the API.
        pub const ROUTES: &[Route] = &[$(
            Route {
                function: stringify!($function),
                method: Method::$method,
                route: $route,
                problems: &[$($status),*],
                limit: endpoints!(@limit $($limit)?),
                handler: || on(MethodFilter::$method, $module::$handler),
            },
        )*];

        /// The OpenAPI operations of every handler in [`ROUTES`].
        #[derive(utoipa::OpenApi)]
        #[openapi(paths($($module::$handler),*))]
        pub struct Operations;
    };
    (@limit) => { Limit::InFlight };
    (@limit $limit:ident) => { Limit::$limit };
}

endpoints! {
    Health: GET "health" => meta::health,
        limit Uncounted,
        problems [500];
    Ready: GET "health/ready" => meta::ready,
        limit Uncounted,
        problems [500, 503];
    ListSessions: GET "chat/sessions" => sessions::list,
        problems [401, 403, 422, 500, 503];
    CreateSession: POST "chat/sessions" => sessions::create,
        problems [400, 401, 403, 408, 409, 413, 415, 422, 429, 500, 503, 507];
    GetSession: GET "chat/sessions/{session_id}" => sessions::get,
        problems [401, 403, 404, 422, 500, 503];
    UpdateSession: PUT "chat/sessions/{session_id}" => sessions::update,
        problems [400, 401, 403, 404, 408, 412, 413, 415, 422, 500, 503, 507];
    DeleteSession: DELETE "chat/sessions/{session_id}" => sessions::delete,
        problems [401, 403, 404, 412, 422, 500, 503, 507];
    SendMessage: POST "chat/sessions/{session_id}/messages" => messages::send_message,
        problems [400, 401, 403, 404, 408, 409, 413, 415, 422, 429, 500, 503, 507];
    ListMessages: GET "chat/sessions/{session_id}/messages" => messages::list_messages,
        problems [401, 403, 404, 422, 500, 503];
    GetSessionContext: GET "chat/sessions/{session_id}/context" => context::context,
        problems [401, 403, 404, 422, 500, 503];
    GetSessionTree: GET "chat/sessions/{session_id}/tree" => tree::get_tree,
        problems [401, 403, 404, 422, 500, 503];
    EditMessage: PATCH "chat/sessions/{session_id}/messages/{message_id}" => tree::edit_message,
        problems [400, 401, 403, 404, 408, 412, 413, 415, 422, 429, 500, 503, 507];
    DeleteMessage: DELETE "chat/sessions/{session_id}/messages/{message_id}" => tree::delete_message,
        problems [401, 403, 404, 412, 422, 500, 503, 507];
    GetChatHistory: GET "chat/history" => legacy::history,
        problems [401, 403, 422, 500, 503];
    PostChatMessage: POST "chat/message" => legacy::post_message,
        problems [400, 401, 403, 404, 408, 409, 413, 415, 422, 429, 500, 503, 507];
    SearchHistory: GET "chat/search" => search::search,
        problems [401, 403, 422, 500, 503];
    OpenApi: GET "openapi.json" => meta::openapi,
        limit Uncounted,
        problems [500];
    ExportSession: GET "chat/sessions/{session_id}/export" => export::export_session,
        problems [401, 403, 404, 422, 500, 503];
    ExportUserData: GET "chat/export" => export::export_all,
        limit Exports,
        problems [401, 403, 422, 500, 503];
    EraseUserData: POST "chat/erase" => erase::erase,
        limit Erases,
        problems [400, 401, 403, 408, 413, 415, 422, 500, 503, 507];
    ImportHistory: POST "chat/import" => import::import_history,
        limit Imports,
        problems [400, 401, 403, 408, 409, 413, 415, 422, 429, 500, 503, 507];
    WebApp: GET "ui/{*path}" => ui::file,
        limit Uncounted,
        problems [404];
}

/// The prefix the Functions host puts before every HTTP route.
pub const ROUTE_PREFIX: &str = "/api/";

impl Route {
    /// The path the service sees (the host forwards it with the prefix).
    pub fn path(&self) -> String {
        format!("{ROUTE_PREFIX}{}", self.route)
    }

    /// The path as the OpenAPI document names it (`{*path}` is `{path}`).
    pub fn openapi_path(&self) -> String {
        self.path().replace("{*", "{")
    }

    /// Whether `path` (as the service sees it, with the prefix) is this
    /// route's: literal segments equal, `{name}` any one segment, `{*name}`
    /// all the rest.
    pub fn matches(&self, path: &str) -> bool {
        let Some(mut actual) = path.strip_prefix(ROUTE_PREFIX).map(|p| p.split('/')) else {
            return false;
        };
        for expected in self.route.split('/') {
            if expected.starts_with("{*") {
                return actual.next().is_some_and(|s| !s.is_empty());
            }
            match actual.next() {
                Some(segment) if expected.starts_with('{') => {
                    if segment.is_empty() {
                        return false;
                    }
                }
                Some(segment) if segment == expected => {}
                _ => return false,
            }
        }
        actual.next().is_none()
    }

    /// The handler, accepting only this route's method.
    pub fn method_router(&self) -> MethodRouter<AppState> {
        (self.handler)()
    }
}
