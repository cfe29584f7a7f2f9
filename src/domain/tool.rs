//! Tool calling as LLM apps store it: the calls an assistant message makes
//! and the tool message answering one, in the OpenAI Chat Completions shape
//! (`tool_calls[].id/type/function.{name,arguments}`, `tool_call_id`,
//! `name`), so a history can be sent back to a model as it is.

use serde::{Deserialize, Serialize};

use super::{MessageType, ValidationError};

/// Longest accepted tool call id, in characters (OpenAI's are ~40).
pub const MAX_TOOL_CALL_ID_LEN: usize = 256;
/// Most tool calls one assistant message may carry.
pub const MAX_TOOL_CALLS: usize = 128;

/// One call an assistant message makes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolCall {
    /// The call's id, which the tool message answering it names as
    /// `tool_call_id`; unique within the message.
    pub id: String,
    /// Always `function`.
    #[serde(rename = "type")]
    pub call_type: ToolCallType,
    /// The function called.
    pub function: FunctionCall,
}

/// What kind of tool a call is; Chat Completions has only functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ToolCallType {
    /// A function call.
    Function,
}

/// The function a tool call names, with its arguments as the model wrote
/// them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FunctionCall {
    /// The function's name: 1–64 letters, digits, `_` or `-`.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub name: String,
    /// The arguments, a JSON text as the model produced it. Kept as it
    /// came: models sometimes write invalid JSON, and a history keeps it.
    pub arguments: String,
}

/// The tool-calling parts of a message, all optional; as JSON, the members
/// a message has beside its content (none when it has none).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolParts {
    /// The calls an assistant message makes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// The call a tool message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// The function a tool message answers for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl ToolParts {
    /// Checks the parts against the message's type: `tool_calls` only on
    /// assistant messages (at least one, ids unique), `tool_call_id` (required)
    /// and `name` only on tool messages.
    pub fn check(&self, message_type: MessageType) -> Result<(), ValidationError> {
        if let Some(calls) = &self.tool_calls {
            if message_type != MessageType::Assistant {
                return Err(ValidationError::new(
                    "tool_calls",
                    "only an assistant message may carry tool calls",
                ));
            }
            check_calls(calls)?;
        }
        let is_tool = message_type == MessageType::Tool;
        match (&self.tool_call_id, is_tool) {
            (None, true) => {
                return Err(ValidationError::new(
                    "tool_call_id",
                    "a tool message must name the call it answers",
                ));
            }
            (Some(_), false) => {
                return Err(ValidationError::new(
                    "tool_call_id",
                    "only a tool message answers a tool call",
                ));
            }
            (Some(id), true) => check_call_id("tool_call_id", id)?,
            (None, false) => {}
        }
        if let Some(name) = &self.name {
            if !is_tool {
                return Err(ValidationError::new(
                    "name",
                    "only a tool message names the function it answers for",
                ));
            }
            check_function_name("name", name)?;
        }
        Ok(())
    }

    /// Whether there are no tool parts at all (most messages).
    pub fn is_empty(&self) -> bool {
        self.tool_calls.is_none() && self.tool_call_id.is_none() && self.name.is_none()
    }

    /// Whether the message calls tools (its content may then be empty).
    pub fn calls_tools(&self) -> bool {
        self.tool_calls.as_ref().is_some_and(|c| !c.is_empty())
    }

    /// The names of the functions called, for search.
    pub fn function_names(&self) -> impl Iterator<Item = &str> {
        self.tool_calls
            .iter()
            .flatten()
            .map(|call| call.function.name.as_str())
    }
}

fn check_calls(calls: &[ToolCall]) -> Result<(), ValidationError> {
    if calls.is_empty() || calls.len() > MAX_TOOL_CALLS {
        return Err(ValidationError::new(
            "tool_calls",
            format!("must hold 1 to {MAX_TOOL_CALLS} calls (leave it out for none)"),
        ));
    }
    for (i, call) in calls.iter().enumerate() {
        check_call_id("tool_calls[].id", &call.id)?;
        check_function_name("tool_calls[].function.name", &call.function.name)?;
        if calls[..i].iter().any(|earlier| earlier.id == call.id) {
            return Err(ValidationError::new(
                "tool_calls[].id",
                format!("{} is used by two calls of this message", call.id),
            ));
        }
    }
    Ok(())
}

fn check_call_id(field: &'static str, id: &str) -> Result<(), ValidationError> {
    let len = id.chars().count();
    if len == 0 || len > MAX_TOOL_CALL_ID_LEN || id.chars().any(char::is_control) {
        return Err(ValidationError::new(
            field,
            format!("must be 1 to {MAX_TOOL_CALL_ID_LEN} characters, without control characters"),
        ));
    }
    Ok(())
}

fn check_function_name(field: &'static str, name: &str) -> Result<(), ValidationError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
    if !ok {
        return Err(ValidationError::new(
            field,
            "must be 1 to 64 letters, digits, _ or -",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(id: &str, name: &str) -> ToolCall {
        ToolCall {
            id: id.into(),
            call_type: ToolCallType::Function,
            function: FunctionCall {
                name: name.into(),
                arguments: "{}".into(),
            },
        }
    }

    #[test]
    fn each_part_belongs_to_its_message_type() {
        let calls = ToolParts {
            tool_calls: Some(vec![call("c1", "get_weather")]),
            ..ToolParts::default()
        };
        assert!(calls.check(MessageType::Assistant).is_ok());
        assert_eq!(
            calls.check(MessageType::User).unwrap_err().field,
            "tool_calls"
        );

        let answer = ToolParts {
            tool_call_id: Some("c1".into()),
            name: Some("get_weather".into()),
            ..ToolParts::default()
        };
        assert!(answer.check(MessageType::Tool).is_ok());
        assert_eq!(
            answer.check(MessageType::Assistant).unwrap_err().field,
            "tool_call_id"
        );
        let missing = ToolParts::default().check(MessageType::Tool).unwrap_err();
        assert_eq!(missing.field, "tool_call_id");
    }

    #[test]
    fn malformed_calls_are_refused() {
        let check = |calls: Vec<ToolCall>| {
            ToolParts {
                tool_calls: Some(calls),
                ..ToolParts::default()
            }
            .check(MessageType::Assistant)
            .map_err(|e| e.field)
        };
        assert_eq!(check(vec![]), Err("tool_calls"));
        assert_eq!(check(vec![call("", "f")]), Err("tool_calls[].id"));
        assert_eq!(
            check(vec![call("a", "has space")]),
            Err("tool_calls[].function.name")
        );
        assert_eq!(
            check(vec![call("a", "f"), call("a", "g")]),
            Err("tool_calls[].id")
        );
        assert_eq!(check(vec![call("a", "f"), call("b", "g")]), Ok(()));
    }
}
