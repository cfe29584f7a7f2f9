//! Export: one session as a download (`json`, `markdown` or `ndjson`), and
//! everything of the caller as one NDJSON stream. Both are written as they
//! are read, a chunk (a page of the store) at a time: memory stays flat
//! however long the history.

use axum::{
    body::{Body, Bytes},
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use futures::{StreamExt as _, TryStreamExt as _, stream::BoxStream};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::{
    ApiError, AppState,
    extract::{ApiPath, ApiQuery},
    params::session_id,
    stream::stream_session,
};
use crate::{
    domain::{ChatMessage, ChatSession, MessageType, SessionId, SessionSummary, Timestamp, UserId},
    export::{NDJSON, write_message_line, write_session_line},
    store::{
        ExportItem, SessionRead, StoreError, StoreResult,
        export::{SessionExport, export, read_export},
    },
};

/// What a session is exported as.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// The session as `GET` returns it, with every message of its current
    /// branch.
    #[default]
    Json,
    /// `# <name>`, then each message under a heading with its role and time
    /// (a tool message's naming its function), then its tool calls.
    Markdown,
    /// The export stream's lines: the session without messages, then one
    /// message per line, every branch, in creation order.
    Ndjson,
}

/// Query of `GET /api/chat/sessions/{session_id}/export`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportSessionParams {
    /// The user (local mode), or a check against the principal (Easy Auth).
    #[param(value_type = Option<UserId>)]
    pub user_id: Option<String>,
    /// `json` (default), `markdown` or `ndjson`.
    #[param(inline)]
    pub format: Option<ExportFormat>,
}

/// Query of `GET /api/chat/export`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// The user (local mode), or a check against the principal (Easy Auth).
    #[param(value_type = Option<UserId>)]
    pub user_id: Option<String>,
}

/// `GET /api/chat/sessions/{session_id}/export`
#[utoipa::path(
    get,
    path = "/api/chat/sessions/{session_id}/export",
    tag = "export",
    summary = "Download a session",
    description = "The whole session as a file: `json` (the session as GET returns it, every message of its current branch included), `markdown` (the current branch: `# <name>`, then each message under a heading naming its role and time, a tool message's role naming its function as ``Tool (`get_weather`)``; content as written, then an assistant message's tool calls, a paragraph each: `` Calls `get_weather` with `{\"city\":\"Zürich\"}` ``) or `ndjson` (the export format, the whole tree: a `{\"type\":\"session\",…,\"current_message_id\":…}` line, then one `{\"type\":\"message\",…,\"parent_id\":…}` line per message of every branch, in the order they were created). `Content-Disposition: attachment` with a file name made from the session name.",
    params(
        ("session_id" = SessionId, Path, description = "The session."),
        ExportSessionParams,
    ),
    responses((status = 200, description = "The session as a download.",
        content(
            (ChatSession = "application/json"),
            (String = "text/markdown"),
            (String = "application/x-ndjson"),
        ),
        headers(("Content-Disposition" = String, description = "attachment; filename=\"<session name>.<json|md|ndjson>\""))
    ))
)]
pub async fn export_session(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(raw_id): ApiPath<String>,
    ApiQuery(params): ApiQuery<ExportSessionParams>,
) -> Result<Response, ApiError> {
    let owner = state.owner(&headers, params.user_id.as_deref(), None)?;
    let id = session_id(raw_id)?;
    let format = params.format.unwrap_or_default();
    // NDJSON is the export format: every branch. JSON and Markdown show
    // the session as it reads, its current branch.
    let (name, mut response) = if format == ExportFormat::Ndjson {
        let read = read_export(&state.store, &owner, &id, None).await?;
        (file_stem(&read.summary), download(ndjson(read), NDJSON))
    } else {
        let read = state
            .store
            .read_session(&owner, &id, None)
            .await?
            .ok_or_else(|| {
                ApiError::Internal(anyhow::anyhow!("an unconditional read returned no session"))
            })?;
        let name = file_stem(&read.summary);
        let response = match format {
            ExportFormat::Markdown => download(markdown(read), "text/markdown; charset=utf-8"),
            _ => stream_session(id, read)?,
        };
        (name, response)
    };
    let extension = match format {
        ExportFormat::Json => "json",
        ExportFormat::Markdown => "md",
        ExportFormat::Ndjson => "ndjson",
    };
    attach(&mut response, &name, extension);
    Ok(response)
}

/// `GET /api/chat/export`
#[utoipa::path(
    get,
    path = "/api/chat/export",
    tag = "export",
    summary = "Download everything of the user",
    description = "Every session of the caller, active and archived, oldest first, as NDJSON (one JSON object per line): `{\"type\":\"session\",…the session's fields without messages,\"current_message_id\":…}` (the last message of its current branch; `message_count` counts the message lines that follow), then every message of the session, every branch, in the order they were created (a parent before its children), each `{\"type\":\"message\",\"session_id\":…,…the message's fields with its parent_id}`. Streamed as it is read: the server holds one page at a time however much there is. `POST /api/chat/import` takes the same stream back. A stream cut short by a failure ends without its final newline-terminated line and the connection is closed, so a client never mistakes it for a complete export.",
    params(ExportParams),
    responses((status = 200, description = "The user's history as NDJSON.",
        content((String = "application/x-ndjson")),
        headers(("Content-Disposition" = String, description = "attachment; filename=\"chat-export-<date>.ndjson\""))
    ))
)]
pub async fn export_all(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(params): ApiQuery<ExportParams>,
) -> Result<Response, ApiError> {
    let owner = state.owner(&headers, params.user_id.as_deref(), None)?;
    let mut items = export(state.store.clone(), owner);
    // The first read happens before the answer starts, so that a store
    // that is down answers 503 rather than an empty 200.
    let first = items.next().await.transpose()?;
    let items = futures::stream::iter(first.map(Ok)).chain(items);
    let lines = items.map(|item| item.and_then(|item| render_item(&item)));
    let mut response = download(lines.boxed(), NDJSON);
    let date = Timestamp::now()
        .as_datetime()
        .format("%Y-%m-%d")
        .to_string();
    attach(&mut response, &format!("chat-export-{date}"), "ndjson");
    Ok(response)
}

/// An export item as NDJSON lines.
fn render_item(item: &ExportItem) -> StoreResult<Bytes> {
    let mut out = Vec::new();
    let written = match item {
        ExportItem::Session {
            summary,
            current_message_id,
        } => write_session_line(&mut out, summary, current_message_id.as_ref()),
        ExportItem::Messages(session_id, messages) => messages
            .iter()
            .try_for_each(|m| write_message_line(&mut out, session_id, m)),
    };
    written.map_err(|e| StoreError::Internal(e.into()))?;
    Ok(Bytes::from(out))
}

/// The messages of a read, oldest first, a chunk at a time.
fn messages_of(read: SessionRead) -> BoxStream<'static, StoreResult<Vec<ChatMessage>>> {
    let older = futures::stream::iter(read.older).flatten();
    let newest = futures::stream::iter((!read.newest.is_empty()).then_some(Ok(read.newest)));
    older.chain(newest).boxed()
}

fn ndjson(read: SessionExport) -> BoxStream<'static, StoreResult<Bytes>> {
    read.into_items()
        .map(|item| item.and_then(|item| render_item(&item)))
        .boxed()
}

fn markdown(read: SessionRead) -> BoxStream<'static, StoreResult<Bytes>> {
    let title = read
        .summary
        .session_name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| format!("Session {}", read.summary.id));
    let head = Ok(Bytes::from(format!("# {title}\n")));
    let messages = messages_of(read).map_ok(|chunk| {
        let mut out = String::new();
        for m in &chunk {
            markdown_message(&mut out, m);
        }
        Bytes::from(out)
    });
    futures::stream::iter([head]).chain(messages).boxed()
}

/// One message in Markdown: `## <role> · <time>` (a tool message's role
/// naming the function it answers for), its content as written, then a
/// paragraph per tool call, `Calls `name` with `arguments``, the arguments
/// in a code span, or a fenced block when they span lines (a code span
/// cannot hold a blank line).
fn markdown_message(out: &mut String, m: &ChatMessage) {
    use std::fmt::Write as _;
    let role = match m.message_type {
        MessageType::User => "User".to_owned(),
        MessageType::Assistant => "Assistant".to_owned(),
        MessageType::System => "System".to_owned(),
        // The name in a code span: `_` would make emphasis of `_name_`.
        MessageType::Tool => match &m.name {
            Some(name) => format!("Tool ({})", code_span(name)),
            None => "Tool".to_owned(),
        },
    };
    let time = m.created_at.as_datetime().format("%Y-%m-%d %H:%M:%S UTC");
    let _ = write!(out, "\n## {role} · {time}\n");
    // An assistant message that only calls tools has no content.
    if !m.content.trim().is_empty() {
        let _ = write!(out, "\n{}\n", m.content);
    }
    for call in m.tool_calls.iter().flatten() {
        let name = code_span(&call.function.name);
        let arguments = &call.function.arguments;
        let _ = if arguments.trim().is_empty() {
            write!(out, "\nCalls {name}\n")
        } else if arguments.contains(['\n', '\r']) {
            let fence = "`".repeat(longest_backtick_run(arguments).max(2) + 1);
            let body = arguments.trim_end_matches(['\n', '\r']);
            write!(
                out,
                "\nCalls {name} with:\n\n{fence}json\n{body}\n{fence}\n"
            )
        } else {
            write!(out, "\nCalls {name} with {}\n", code_span(arguments))
        };
    }
}

/// `text` as a Markdown code span, shown exactly as written: delimited by
/// more backticks than it holds in a row, and padded with a space where it
/// begins or ends with a backtick or a space (CommonMark strips one space
/// from each side of a span).
fn code_span(text: &str) -> String {
    let ticks = "`".repeat(longest_backtick_run(text) + 1);
    let pad = if text.starts_with(['`', ' ']) || text.ends_with(['`', ' ']) {
        " "
    } else {
        ""
    };
    format!("{ticks}{pad}{text}{pad}{ticks}")
}

/// The most backticks in a row in `text`.
fn longest_backtick_run(text: &str) -> usize {
    text.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

/// A 200 streaming `body` as `content_type`. A failure after the first byte
/// can only cut the stream short; it is logged, and the connection closes
/// without the end of the body.
fn download(body: BoxStream<'static, StoreResult<Bytes>>, content_type: &'static str) -> Response {
    let body = body.map_err(|e| {
        tracing::error!("an export stream failed midway: {e}");
        std::io::Error::other(e.to_string())
    });
    let mut response = (StatusCode::OK, Body::from_stream(body)).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Marks `response` as a download named `stem.extension`, never cached on
/// the way (it is someone's private history).
fn attach(response: &mut Response, stem: &str, extension: &str) {
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&content_disposition(stem, extension)) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// The session name, or its id when it has none.
fn file_stem(summary: &SessionSummary) -> String {
    summary
        .session_name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| summary.id.to_string())
}

/// Longest file name stem, in characters.
const MAX_STEM: usize = 80;

/// `attachment; filename="…"` with an ASCII-only name safe on every file
/// system (letters, digits, space, `-`, `_`; anything else becomes `-`),
/// plus, for a name with other characters, `filename*=UTF-8''…` with the
/// name as written minus what file systems refuse (RFC 6266).
pub fn content_disposition(stem: &str, extension: &str) -> String {
    let mut ascii = String::new();
    for c in stem.chars() {
        let c = if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ' ') {
            c
        } else {
            '-'
        };
        let repeated = matches!(c, '-' | ' ') && ascii.ends_with(c);
        if !repeated {
            ascii.push(c);
        }
    }
    let ascii: String = ascii
        .trim_matches(|c| c == '-' || c == ' ')
        .chars()
        .take(MAX_STEM)
        .collect();
    let ascii = ascii.trim_end_matches([' ', '-']);
    let ascii = if ascii.is_empty() { "session" } else { ascii };
    let mut value = format!("attachment; filename=\"{ascii}.{extension}\"");
    if !stem.is_ascii() {
        let unicode: String = stem
            .chars()
            .map(|c| {
                let refused = c.is_control()
                    || matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|');
                if refused { '-' } else { c }
            })
            .take(MAX_STEM)
            .collect();
        let unicode = unicode.trim_matches(|c: char| c == '.' || c.is_whitespace());
        value.push_str("; filename*=UTF-8''");
        for byte in format!("{unicode}.{extension}").bytes() {
            // RFC 5987 attr-char; everything else percent-encoded.
            if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
                value.push(byte as char);
            } else {
                value.push_str(&format!("%{byte:02X}"));
            }
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::{code_span, content_disposition, markdown_message};
    use crate::domain::{
        ChatMessage, FunctionCall, JsonObject, MessageId, MessageType, Timestamp, ToolCall,
        ToolCallType,
    };

    fn message(message_type: MessageType, content: &str) -> ChatMessage {
        ChatMessage {
            id: MessageId::parse("m1").unwrap(),
            content: content.into(),
            message_type,
            user_id: None,
            metadata: JsonObject::new(),
            created_at: Timestamp::parse("2024-01-01T12:00:00Z").unwrap(),
            tool_calls: None,
            tool_call_id: None,
            name: None,
            parent_id: None,
            edited_at: None,
            siblings: None,
        }
    }

    fn call(name: &str, arguments: &str) -> ToolCall {
        ToolCall {
            id: format!("call_{name}"),
            call_type: ToolCallType::Function,
            function: FunctionCall {
                name: name.into(),
                arguments: arguments.into(),
            },
        }
    }

    fn markdown(m: &ChatMessage) -> String {
        let mut out = String::new();
        markdown_message(&mut out, m);
        out
    }

    #[test]
    fn tool_calls_and_tool_messages_read_as_markdown() {
        let mut calling = message(MessageType::Assistant, "");
        calling.tool_calls = Some(vec![
            call("get_weather", r#"{"city":"Zürich"}"#),
            call("now", ""),
            call("run", "{\n  \"code\": \"```x```\"\n}\n"),
        ]);
        assert_eq!(
            markdown(&calling),
            "\n## Assistant · 2024-01-01 12:00:00 UTC\n\
             \nCalls `get_weather` with `{\"city\":\"Zürich\"}`\n\
             \nCalls `now`\n\
             \nCalls `run` with:\n\n````json\n{\n  \"code\": \"```x```\"\n}\n````\n"
        );
        calling.content = "Let me look.".into();
        calling.tool_calls.as_mut().unwrap().truncate(1);
        assert_eq!(
            markdown(&calling),
            "\n## Assistant · 2024-01-01 12:00:00 UTC\n\nLet me look.\n\
             \nCalls `get_weather` with `{\"city\":\"Zürich\"}`\n"
        );

        let mut answer = message(MessageType::Tool, "12 °C, rain");
        answer.tool_call_id = Some("call_get_weather".into());
        answer.name = Some("_get_weather_".into());
        assert_eq!(
            markdown(&answer),
            "\n## Tool (`_get_weather_`) · 2024-01-01 12:00:00 UTC\n\n12 °C, rain\n"
        );
        answer.name = None;
        assert!(markdown(&answer).starts_with("\n## Tool · 2024"));
        // Other messages are as they always were.
        assert_eq!(
            markdown(&message(MessageType::User, "Hallo **Welt**")),
            "\n## User · 2024-01-01 12:00:00 UTC\n\nHallo **Welt**\n"
        );
    }

    #[test]
    fn code_spans_show_any_text_as_written() {
        assert_eq!(code_span("{}"), "`{}`");
        assert_eq!(code_span("a`b"), "``a`b``");
        assert_eq!(code_span("`x``"), "``` `x`` ```");
        assert_eq!(code_span(" x"), "`  x `");
    }

    #[test]
    fn file_names_are_safe_and_keep_the_name_for_unicode_clients() {
        assert_eq!(
            content_disposition("Trip planning", "json"),
            "attachment; filename=\"Trip planning.json\""
        );
        assert_eq!(
            content_disposition("report_2024", "md"),
            "attachment; filename=\"report_2024.md\""
        );
        let v = content_disposition("../../etc/passwd \"x\"", "ndjson");
        assert_eq!(v, "attachment; filename=\"etc-passwd -x.ndjson\"");
        let v = content_disposition("Köln 🚆", "md");
        assert_eq!(
            v,
            "attachment; filename=\"K-ln.md\"; filename*=UTF-8''K%C3%B6ln%20%F0%9F%9A%86.md"
        );
        assert_eq!(
            content_disposition("???", "json"),
            "attachment; filename=\"session.json\""
        );
    }
}
