//! Tool calling: assistant messages with `tool_calls` and the `tool`
//! messages answering them are stored and read back like any other.

use chat_sessions::{
    domain::{
        FunctionCall, JsonObject, MessageId, MessageType, NewMessage, ToolCall, ToolCallType,
        ToolParts,
    },
    store::{DynStore, MessageQuery, Owner, StoreError},
};

use super::{created, unique, user};

/// An assistant message calling `get_weather` as `call_id`, without text.
pub fn calling(id: &str, call_id: &str) -> NewMessage {
    NewMessage::with_tools(
        Some(MessageId::parse(id).unwrap()),
        String::new(),
        MessageType::Assistant,
        None,
        JsonObject::new(),
        ToolParts {
            tool_calls: Some(vec![ToolCall {
                id: call_id.into(),
                call_type: ToolCallType::Function,
                function: FunctionCall {
                    name: "get_weather".into(),
                    arguments: r#"{"city":"Zürich"}"#.into(),
                },
            }]),
            ..ToolParts::default()
        },
    )
    .unwrap()
}

/// The tool message answering `call_id`.
pub fn answering(id: &str, call_id: &str, content: &str) -> NewMessage {
    NewMessage::with_tools(
        Some(MessageId::parse(id).unwrap()),
        content.into(),
        MessageType::Tool,
        None,
        JsonObject::new(),
        ToolParts {
            tool_call_id: Some(call_id.into()),
            name: Some("get_weather".into()),
            ..ToolParts::default()
        },
    )
    .unwrap()
}

pub async fn tool_calls_and_tool_messages_round_trip(store: DynStore) {
    let alice = user(&unique("alice"));
    let owner = Owner::User(alice.clone());
    let id = created(&store, Some(&alice)).await;
    let call = calling("m1", "call_1");
    let answer = answering("m2", "call_1", "12 °C, rain");
    let stored_call = store
        .append_message(&owner, &id, call.clone())
        .await
        .unwrap();
    let stored_answer = store
        .append_message(&owner, &id, answer.clone())
        .await
        .unwrap();
    assert_eq!(stored_call.message.tool_calls, call.tools.tool_calls);
    assert_eq!(stored_call.message.content, "");
    assert_eq!(
        stored_answer.message.tool_call_id.as_deref(),
        Some("call_1")
    );
    assert_eq!(stored_answer.message.name.as_deref(), Some("get_weather"));
    assert_eq!(stored_answer.message.message_type, MessageType::Tool);

    let read = store.get_session(&owner, &id).await.unwrap().value;
    assert_eq!(
        read.messages,
        vec![stored_call.message.clone(), stored_answer.message.clone()]
    );
    let page = store
        .list_messages(
            &owner,
            &id,
            MessageQuery {
                limit: 10,
                before: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        page.messages,
        vec![stored_answer.message, stored_call.message]
    );

    // A retry is recognised by its tool parts too.
    let again = store
        .append_message(&owner, &id, call.clone())
        .await
        .unwrap();
    assert!(!again.created);
    let mut other = call;
    other.tools.tool_calls.as_mut().unwrap()[0]
        .function
        .arguments = "{}".into();
    let conflict = store.append_message(&owner, &id, other).await;
    assert!(
        matches!(conflict, Err(StoreError::Conflict(_))),
        "{conflict:?}"
    );
    let after = store.get_session(&owner, &id).await.unwrap().value;
    assert_eq!(after.message_count, 2);
}
