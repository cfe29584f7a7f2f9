//! Tool calling: assistant messages with `tool_calls` and the `tool`
//! messages answering them are stored and read back like any other.

use chat_sessions::{
    context::{BudgetTooSmall, CACHE, Chosen, Encoding, Selection, tokens::REPLY_PRIMING},
    domain::{
        ChatMessage, FunctionCall, JsonObject, MessageId, MessageType, NewMessage, SessionId,
        ToolCall, ToolCallType, ToolParts,
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

fn text(id: &str, kind: MessageType, content: &str) -> NewMessage {
    NewMessage::new(
        Some(MessageId::parse(id).unwrap()),
        content.into(),
        kind,
        None,
        JsonObject::new(),
    )
    .unwrap()
}

async fn context(
    store: &DynStore,
    owner: &Owner,
    id: &SessionId,
    budget: u32,
) -> Result<Chosen, BudgetTooSmall> {
    let mut selection = Selection::new(Encoding::O200kBase, budget, &CACHE);
    store.read_context(owner, id, &mut selection).await.unwrap();
    selection.finish()
}

fn cost(messages: &[ChatMessage]) -> u32 {
    messages
        .iter()
        .map(|m| CACHE.message_tokens(Encoding::O200kBase, m))
        .sum()
}

/// The leading system message is kept, then the newest messages that fit,
/// for budgets of 0, 1, exactly fitting, one short and huge.
pub async fn context_keeps_the_system_message_and_the_newest_that_fit(store: DynStore) {
    let alice = user(&unique("alice"));
    let owner = Owner::User(alice.clone());
    let id = created(&store, Some(&alice)).await;
    let mut all = Vec::new();
    let system = text("sys", MessageType::System, "You are a helpful assistant.");
    all.push(
        store
            .append_message(&owner, &id, system)
            .await
            .unwrap()
            .message,
    );
    for i in 0..30 {
        let kind = if i % 2 == 0 {
            MessageType::User
        } else {
            MessageType::Assistant
        };
        let words = "word ".repeat(i % 7 + 1);
        let m = text(
            &format!("m{i:02}"),
            kind,
            &format!("message {i}: {words}ünïcødé 🙂"),
        );
        all.push(store.append_message(&owner, &id, m).await.unwrap().message);
    }
    let system_cost = cost(&all[..1]) + REPLY_PRIMING;
    let newest5 = cost(&all[all.len() - 5..]);

    let exact = context(&store, &owner, &id, system_cost + newest5)
        .await
        .unwrap();
    let mut expected = vec![all[0].clone()];
    expected.extend_from_slice(&all[all.len() - 5..]);
    assert_eq!(exact.messages, expected);
    assert_eq!(exact.tokens, system_cost + newest5);
    assert!(exact.truncated);

    let short = context(&store, &owner, &id, system_cost + newest5 - 1)
        .await
        .unwrap();
    assert_eq!(short.messages.len(), 1 + 4);
    assert_eq!(short.messages[1].id, all[all.len() - 4].id);

    let huge = context(&store, &owner, &id, 10_000_000).await.unwrap();
    assert_eq!(huge.messages, all);
    assert_eq!(huge.tokens, cost(&all) + REPLY_PRIMING);
    assert!(!huge.truncated);

    let only_system = context(&store, &owner, &id, system_cost).await.unwrap();
    assert_eq!(only_system.messages, all[..1]);
    for budget in [0, 1, system_cost - 1] {
        let too_small = context(&store, &owner, &id, budget).await.unwrap_err();
        assert_eq!(too_small.needed, system_cost);
    }

    // Without a system message a budget of 0 or 1 fits nothing, and says so.
    let bare = created(&store, Some(&alice)).await;
    let m = text("only", MessageType::User, "hello world");
    let only = store
        .append_message(&owner, &bare, m)
        .await
        .unwrap()
        .message;
    for budget in [0, 1] {
        let none = context(&store, &owner, &bare, budget).await.unwrap();
        assert_eq!(
            (none.messages.len(), none.tokens, none.truncated),
            (0, 0, true)
        );
    }
    let one = context(&store, &owner, &bare, 100).await.unwrap();
    assert_eq!(one.messages, vec![only.clone()]);
    // "hello world" is 2 tokens: 3 per message + 1 for "user" + 2, and 3 priming.
    assert_eq!(one.tokens, 3 + 1 + 2 + 3);
    let empty = created(&store, Some(&alice)).await;
    let nothing = context(&store, &owner, &empty, 100).await.unwrap();
    assert_eq!(
        (nothing.messages.len(), nothing.tokens, nothing.truncated),
        (0, 0, false)
    );
    let missing = SessionId::parse(unique("missing")).unwrap();
    let mut selection = Selection::new(Encoding::O200kBase, 100, &CACHE);
    let result = store.read_context(&owner, &missing, &mut selection).await;
    assert!(matches!(result, Err(StoreError::NotFound)), "{result:?}");
}

/// An assistant message calling tools and the tool messages answering it
/// are kept or left out together.
pub async fn context_never_splits_a_tool_call_from_its_answers(store: DynStore) {
    let alice = user(&unique("alice"));
    let owner = Owner::User(alice.clone());
    let id = created(&store, Some(&alice)).await;
    let question = text("q", MessageType::User, "What is the weather in Zürich?");
    let mut all = vec![
        store
            .append_message(&owner, &id, question)
            .await
            .unwrap()
            .message,
    ];
    for m in [
        calling("call", "call_1"),
        answering(
            "a1",
            "call_1",
            "12 °C and rain, wind from the west at 20 km/h",
        ),
        text("reply", MessageType::Assistant, "It is 12 °C and raining."),
    ] {
        all.push(store.append_message(&owner, &id, m).await.unwrap().message);
    }
    // Room for the reply and the tool answer, not for the call: the
    // answer goes with its call.
    let budget = cost(&all[2..]) + REPLY_PRIMING;
    let chosen = context(&store, &owner, &id, budget).await.unwrap();
    assert_eq!(chosen.messages, all[3..]);
    assert!(chosen.truncated);
    let group = cost(&all[1..]) + REPLY_PRIMING;
    let chosen = context(&store, &owner, &id, group).await.unwrap();
    assert_eq!(chosen.messages, all[1..]);
    assert_eq!(chosen.tokens, group);
}

/// A long session (sealed pages on Cosmos DB) gives the same choice as the
/// rule applied to all its messages, over several chunks of reading.
pub async fn context_of_a_long_session_reads_back_across_pages(store: DynStore) {
    let alice = user(&unique("alice"));
    let owner = Owner::User(alice.clone());
    let id = created(&store, Some(&alice)).await;
    let filler = "lorem ipsum dolor sit amet ".repeat(8);
    let mut all = Vec::new();
    for (i, kind) in [MessageType::System, MessageType::System]
        .into_iter()
        .enumerate()
    {
        let m = text(&format!("s{i}"), kind, &format!("rule {i}: be brief"));
        all.push(store.append_message(&owner, &id, m).await.unwrap().message);
    }
    for i in 0..400 {
        let kind = if i % 2 == 0 {
            MessageType::User
        } else {
            MessageType::Assistant
        };
        let m = text(&format!("m{i:03}"), kind, &format!("{i} {filler}"));
        all.push(store.append_message(&owner, &id, m).await.unwrap().message);
    }
    for keep in [1usize, 99, 100, 101, 250, 400] {
        let budget = cost(&all[..2]) + cost(&all[all.len() - keep..]) + REPLY_PRIMING;
        let chosen = context(&store, &owner, &id, budget).await.unwrap();
        let mut expected = all[..2].to_vec();
        expected.extend_from_slice(&all[all.len() - keep..]);
        assert_eq!(chosen.messages.len(), expected.len(), "keep {keep}");
        assert_eq!(chosen.messages, expected, "keep {keep}");
        assert_eq!(chosen.truncated, keep < 400);
    }
}
