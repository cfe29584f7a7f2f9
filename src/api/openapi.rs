//! The OpenAPI 3.1 document, generated from the annotations of the handlers in
//! the route table and completed from it (operation ids, error responses), so the
//! code is its only source. `openapi.json` at the repo root is a checked-in
//! copy that a test keeps equal to this.

use std::{borrow::Cow, sync::OnceLock};

use utoipa::{
    OpenApi, PartialSchema, ToSchema,
    openapi::{
        ContentBuilder, ObjectBuilder, RefOr, ResponseBuilder, Type,
        header::HeaderBuilder,
        schema::{KnownFormat, Schema, SchemaFormat},
    },
};

use super::{
    error::PROBLEM_JSON,
    routes::{Operations, ROUTES},
};
use crate::domain::{MAX_ID_LEN, MAX_USER_ID_LEN, MessageId, SessionId, Timestamp, UserId};

/// Pattern of session and message ids.
pub const ID_PATTERN: &str = "^[A-Za-z0-9_.:-]{1,128}$";
/// Pattern of user ids: no control characters.
pub const USER_ID_PATTERN: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]{1,256}$";

fn id_schema(description: &str, example: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(MAX_ID_LEN))
        .pattern(Some(ID_PATTERN))
        .description(Some(description))
        .examples([serde_json::json!(example)])
        .into()
}

impl PartialSchema for SessionId {
    fn schema() -> RefOr<Schema> {
        id_schema(
            "A session id: generated as session_<random>_<YYYYMMDD_HHMMSS>, or the client's own.",
            "session_3f9a1c0b7d2e_20240101_120000",
        )
    }
}
impl ToSchema for SessionId {}

impl PartialSchema for MessageId {
    fn schema() -> RefOr<Schema> {
        id_schema(
            "A message id: generated as msg_<uuid v7>, or the client's own (makes retries safe).",
            "msg_0193e3c4-7b1a-7c2e-9f00-1a2b3c4d5e6f",
        )
    }
}
impl ToSchema for MessageId {}

impl PartialSchema for UserId {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(MAX_USER_ID_LEN))
            .pattern(Some(USER_ID_PATTERN))
            .description(Some("A user id (the Easy Auth principal id in Azure)."))
            .examples([serde_json::json!("user_123")])
            .into()
    }
}
impl ToSchema for UserId {}

impl PartialSchema for Timestamp {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .description(Some(
                "RFC 3339 in UTC with a six-digit fraction and Z; string order is time order.",
            ))
            .examples([serde_json::json!("2024-01-01T12:00:00.000000Z")])
            .into()
    }
}
impl ToSchema for Timestamp {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Timestamp")
    }
}

/// The document's own part; the operations come from the route table.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "chat-sessions",
        description = "Chat history as one document per session. Every error is RFC 9457 application/problem+json.",
        license(name = "MIT")
    ),
    components(schemas(super::error::Problem, super::context::ContextFormat)),
    modifiers(&EasyAuth),
    security(("easyAuthBearer" = []), ("easyAuthCookie" = []), ())
)]
struct ApiDoc;

/// How a caller authenticates in Azure, where App Service Authentication
/// (Easy Auth) stands in front of every route: a Microsoft Entra access
/// token as a bearer token, or the session cookie a browser gets from
/// `/.auth/login/aad`. Locally (`AUTH_MODE=local`) neither is needed, hence
/// the empty alternative in `security`.
struct EasyAuth;

impl utoipa::Modify for EasyAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "easyAuthBearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A Microsoft Entra access token for the app registration Easy Auth validates (audience api://<appId>); see docs/deploy.md.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "easyAuthCookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "AppServiceAuthSession",
                "The session cookie App Service Authentication sets after a sign-in at /.auth/login/aad (browsers send it by themselves).",
            ))),
        );
    }
}

/// The problem response of `status` on an operation of `route`.
fn problem_response(status: u16, route: &str) -> utoipa::openapi::Response {
    let description = match status {
        400 => "The body is not JSON.",
        401 => "No authenticated user (AUTH_MODE=easyauth).",
        403 => "user_id names another user than the authenticated one.",
        404 if route.contains("{message_id}") => {
            "No such session for this user, or no such message in it."
        }
        404 => "No such session for this user.",
        409 => "The id is already taken (for an import: by another user's session).",
        412 => "If-Match does not match the session's ETag.",
        413 => "The body is larger than MAX_BODY_BYTES (an import: IMPORT_MAX_BYTES).",
        415 => "The body is declared as something other than JSON.",
        422 => "Valid JSON or parameters with invalid values.",
        500 => "A fault of the service; the body says no more.",
        503 => "The store is throttled or unavailable; retry after Retry-After seconds.",
        507 => {
            "The embedded store's disk is full (type storage-full), or its data directory \
                cannot be written (storage-unavailable): nothing was kept; reads go on."
        }
        _ => "An error.",
    };
    let mut response = ResponseBuilder::new().description(description).content(
        PROBLEM_JSON,
        ContentBuilder::new()
            .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                "Problem",
            ))))
            .build(),
    );
    if status == 503 {
        response = response.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .minimum(Some(1)),
                )
                .description(Some("Seconds to wait before retrying."))
                .build(),
        );
    }
    response.build()
}

/// The whole document: generated paths, with operation ids and the error
/// responses of each operation taken from the route table.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(Operations::openapi());
    for route in ROUTES {
        let Some(item) = doc.paths.paths.get_mut(&route.openapi_path()) else {
            panic!(
                "{} {} has no OpenAPI annotation",
                route.method,
                route.path()
            );
        };
        let operation = match route.method.as_str() {
            "GET" => item.get.as_mut(),
            "POST" => item.post.as_mut(),
            "PUT" => item.put.as_mut(),
            "PATCH" => item.patch.as_mut(),
            "DELETE" => item.delete.as_mut(),
            _ => None,
        }
        .unwrap_or_else(|| panic!("{} {} has no OpenAPI operation", route.method, route.path()));
        operation.operation_id = Some(route.function.to_owned());
        for status in route.problems {
            operation.responses.responses.insert(
                status.to_string(),
                RefOr::T(problem_response(*status, route.route)),
            );
        }
    }
    doc
}

/// OpenAPI links from a created resource to what can be done with it next,
/// for clients and for stateful fuzzing (create, read, post, edit, delete).
/// Written into the JSON directly: utoipa 5 serialises `Link` with
/// snake_case keys.
fn add_links(doc: &mut serde_json::Value) {
    let session = serde_json::json!({
        "session_id": "$response.body#/id", "user_id": "$response.body#/user_id",
    });
    let legacy = serde_json::json!({
        "session_id": "$response.body#/session_id", "user_id": "$response.body#/user_id",
    });
    // A message appended: its session is the request's, the message the
    // answer's.
    let message = serde_json::json!({
        "session_id": "$request.path.session_id",
        "message_id": "$response.body#/id",
        "user_id": "$response.body#/user_id",
    });
    let links: [(&str, &str, serde_json::Value, &[&str]); 3] = [
        (
            "/api/chat/sessions",
            "post",
            session,
            &[
                "GetSession",
                "UpdateSession",
                "DeleteSession",
                "SendMessage",
                "GetSessionTree",
            ],
        ),
        (
            "/api/chat/message",
            "post",
            legacy,
            &["GetChatHistory", "GetSession"],
        ),
        (
            "/api/chat/sessions/{session_id}/messages",
            "post",
            message,
            &["EditMessage", "DeleteMessage"],
        ),
    ];
    for (path, method, parameters, targets) in links {
        let response = &mut doc["paths"][path][method]["responses"]["201"];
        for target in targets {
            response["links"][*target] = serde_json::json!({
                "operationId": target,
                "parameters": parameters,
            });
        }
    }
}

/// The document as pretty JSON, as served and checked in.
pub fn document_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        let mut doc = serde_json::to_value(document()).expect("the document serialises");
        add_links(&mut doc);
        let mut text = serde_json::to_string_pretty(&doc).expect("the document serialises");
        text.push('\n');
        text
    })
}
