//! What each node of a conversation's tree becomes: text, a tool call,
//! the tool message answering it, or a notice (see the module
//! documentation of `chatgpt`).

use super::*;

/// One node of a conversation, as the walk of its tree reaches it (a
/// parent before its children).
pub(super) struct Step<'a> {
    pub(super) node_id: &'a str,
    /// The step of its parent node; `None` for a root.
    pub(super) parent: Option<usize>,
    /// Its message, if it has one.
    pub(super) message: Option<&'a Message>,
}

/// What one node of the tree becomes, before its time is set.
pub(super) struct Mapped<'a> {
    pub(super) node_id: &'a str,
    /// The message it follows: the one its nearest kept ancestor became
    /// (an index into the mapped messages); `None` for a first message.
    pub(super) parent: Option<usize>,
    pub(super) message: &'a Message,
    pub(super) message_type: MessageType,
    pub(super) content: String,
    pub(super) tools: ToolParts,
    /// Metadata beyond what every imported message has.
    pub(super) metadata: JsonObject,
}

/// The messages of a branch's nodes, in order (each follows the one before
/// it): [`map_tree`] of a tree without forks.
#[cfg(test)]
pub(super) fn map_branch<'a>(branch: Vec<(&'a str, &'a Message)>) -> Vec<Mapped<'a>> {
    let steps: Vec<Step<'a>> = branch
        .into_iter()
        .enumerate()
        .map(|(i, (node_id, message))| Step {
            node_id,
            parent: i.checked_sub(1),
            message: Some(message),
        })
        .collect();
    map_tree(&steps).0
}

/// The messages of the tree's nodes (see the module documentation), in the
/// order of `steps`, each after the message of its nearest kept ancestor: a
/// node left out (hidden, reasoning, without a message) passes its place to
/// its children. Each call to a tool is answered by the first tool node
/// kept after it on the same branch, when one comes before any other
/// message. Also returns, for each step, the message it is or follows
/// (its own, or its nearest kept ancestor's).
pub(super) fn map_tree<'a>(steps: &[Step<'a>]) -> (Vec<Mapped<'a>>, Vec<Option<usize>>) {
    let mut mapped: Vec<Mapped<'a>> = Vec::new();
    // Per step: the message it is or follows, and the call that message
    // makes while no tool node answered it (its id and function name).
    type Place = (Option<usize>, Option<(String, String)>);
    let mut places: Vec<Place> = Vec::with_capacity(steps.len());
    for step in steps {
        let (kept, open) = step
            .parent
            .and_then(|p| places.get(p).cloned())
            .unwrap_or((None, None));
        let made = step
            .message
            .filter(|m| !m.is_hidden())
            .and_then(|message| made(message, step.node_id, open.clone()).map(|m| (message, m)));
        let Some((message, (message_type, content, tools, metadata))) = made else {
            places.push((kept, open));
            continue;
        };
        let open = tools.tool_calls.as_ref().and_then(|calls| {
            calls
                .first()
                .map(|call| (call.id.clone(), call.function.name.clone()))
        });
        places.push((Some(mapped.len()), open));
        mapped.push(Mapped {
            node_id: step.node_id,
            parent: kept,
            message,
            message_type,
            content,
            tools,
            metadata,
        });
    }
    let follows = places.into_iter().map(|(kept, _)| kept).collect();
    (mapped, follows)
}

/// What one node becomes, `open` the call waiting for an answer on its
/// branch: `None` for a node left out.
fn made(message: &Message, node_id: &str, open: Option<(String, String)>) -> Option<Made> {
    let role = message.author.role.as_str();
    match (role, message.tool_recipient()) {
        ("assistant", Some(recipient)) => Some(call(message, node_id, recipient)),
        ("tool", _) => match open {
            Some((call_id, name)) => Some(answer(message, call_id, name)),
            None => unanswering(message),
        },
        ("user", None) => said(message, MessageType::User),
        ("assistant", None) => said(message, MessageType::Assistant),
        ("system", None) => said(message, MessageType::System),
        _ => None,
    }
}

/// A message's type, content, tool parts and own metadata.
type Made = (MessageType, String, ToolParts, JsonObject);

/// Text of the user, the assistant or the system: `None` for content this
/// import leaves out (reasoning, context) and for a blank node.
fn said(message: &Message, message_type: MessageType) -> Option<Made> {
    if !matches!(message.content_type(), "text" | "multimodal_text" | "code") {
        return None;
    }
    let (content, metadata) = text_and_metadata(message)?;
    Some((message_type, content, ToolParts::default(), metadata))
}

/// An assistant node addressed to `recipient`: a message making one call.
fn call(message: &Message, node_id: &str, recipient: &str) -> Made {
    let text = message
        .content
        .as_ref()
        .map(parts::read)
        .unwrap_or_default()
        .text;
    let call = ToolCall {
        id: call_id(node_id),
        call_type: ToolCallType::Function,
        function: FunctionCall {
            name: function_name(recipient),
            arguments: arguments(message.content_type(), &text),
        },
    };
    let mut metadata = JsonObject::new();
    // The name as ChatGPT wrote it, which the function's name may not be.
    metadata.insert("chatgpt_recipient".into(), json!(recipient));
    let tools = ToolParts {
        tool_calls: Some(vec![call]),
        ..ToolParts::default()
    };
    (MessageType::Assistant, String::new(), tools, metadata)
}

/// A tool node answering the call `call_id` to function `name`.
fn answer(message: &Message, call_id: String, name: String) -> Made {
    let (content, mut metadata) =
        text_and_metadata(message).unwrap_or_else(|| ("[empty]".into(), JsonObject::new()));
    tool_metadata(message, &mut metadata);
    let tools = ToolParts {
        tool_call_id: Some(call_id),
        name: Some(name),
        ..ToolParts::default()
    };
    (MessageType::Tool, content, tools, metadata)
}

/// A tool node answering no call: a system message, unless it is blank.
fn unanswering(message: &Message) -> Option<Made> {
    let (content, mut metadata) = text_and_metadata(message)?;
    metadata.insert("chatgpt_author_role".into(), json!("tool"));
    tool_metadata(message, &mut metadata);
    Some((MessageType::System, content, ToolParts::default(), metadata))
}

/// The node's text, else a placeholder for its attachments, else (for a
/// tool's node of an unknown content type) its content as JSON; with the
/// metadata saying what it was: `None` when there is nothing to show.
fn text_and_metadata(message: &Message) -> Option<(String, JsonObject)> {
    let read = message.read();
    let mut metadata = JsonObject::new();
    let content_type = message.content_type();
    if !matches!(content_type, "" | "text" | "multimodal_text") {
        metadata.insert("chatgpt_content_type".into(), json!(content_type));
    }
    let content = if !read.text.trim().is_empty() {
        read.text
    } else if !read.attachments.is_empty() {
        parts::placeholder(&read.attachments)
    } else if message.author.role == "tool" {
        message.content.as_ref().and_then(parts::unknown_as_json)?
    } else {
        return None;
    };
    if !read.attachments.is_empty() {
        let attachments = read.attachments.into_iter().map(Value::Object).collect();
        metadata.insert("attachments".into(), Value::Array(attachments));
    }
    Some((content, metadata))
}

/// What a tool's node says of itself beyond its text: the tool's name as
/// ChatGPT wrote it, a code run's status (`success`,
/// `failed_with_in_kernel_exception`, …) and the source of a quote or page.
fn tool_metadata(message: &Message, metadata: &mut JsonObject) {
    if let Some(name) = message.tool_name() {
        metadata.insert("chatgpt_tool_name".into(), json!(name));
    }
    let status = message
        .metadata()
        .and_then(|m| m.aggregate_result.as_ref())
        .and_then(|r| r.get("status"))
        .and_then(Value::as_str);
    if let Some(status) = status {
        metadata.insert("chatgpt_execution_status".into(), json!(status));
    }
    let url = message
        .content
        .as_ref()
        .and_then(|c| c.get("url"))
        .and_then(Value::as_str);
    if let Some(url) = url {
        metadata.insert("chatgpt_url".into(), json!(url));
    }
}

/// A call's arguments, a JSON text: the node's text when it is a JSON
/// object (as `web.run`'s and image generation's are), else the text under
/// `code` (for code, `python`'s) or `text`; `{}` for none.
pub(super) fn arguments(content_type: &str, text: &str) -> String {
    if serde_json::from_str::<JsonObject>(text).is_ok() {
        return text.to_owned();
    }
    if text.trim().is_empty() {
        return "{}".into();
    }
    let key = if content_type == "code" {
        "code"
    } else {
        "text"
    };
    json!({ key: text }).to_string()
}

/// A recipient as a function name: 1 to 64 of `[A-Za-z0-9_-]`, any other
/// character an `_` (`dalle.text2im` → `dalle_text2im`).
pub(super) fn function_name(recipient: &str) -> String {
    let name: String = recipient
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if name.is_empty() { "tool".into() } else { name }
}

/// The id of the call node `node_id` makes: `call_` and what its message's
/// id has after the prefix (the node id, or its digest), so as stable as
/// the message id and as safe.
pub(super) fn call_id(node_id: &str) -> String {
    let message_id = message_id(node_id);
    format!("call_{}", &message_id.as_str()[PREFIX.len()..])
}
