//! Tool messages and the context read over HTTP, and token counts checked
//! against an independent implementation (js-tiktoken, in
//! `tests/fixtures/tokens/counts.json`; `scripts/token-fixture/` made it).

use axum::http::StatusCode;
use chat_sessions::context::Encoding;
use serde_json::{Value, json};

use crate::common::TestApp;

fn fixture() -> Value {
    serde_json::from_str(include_str!("../fixtures/tokens/counts.json")).unwrap()
}

#[test]
fn token_counts_equal_the_reference_implementation() {
    let fixture = fixture();
    let texts = fixture["texts"].as_array().unwrap();
    assert!(texts.len() >= 30);
    for encoding in Encoding::ALL {
        for case in texts {
            let text = case["text"].as_str().unwrap();
            assert_eq!(
                u64::from(encoding.count(text)),
                case[encoding.as_str()].as_u64().unwrap(),
                "{} in {}",
                case["name"],
                encoding.as_str()
            );
        }
    }
}

#[test]
fn chat_counts_follow_openais_recipe() {
    let fixture = fixture();
    for encoding in Encoding::ALL {
        for chat in fixture["chats"].as_array().unwrap() {
            let total: u32 = chat["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    let members: Vec<(&str, &str)> = m
                        .as_object()
                        .unwrap()
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str().unwrap()))
                        .collect();
                    encoding.chat_message(&members)
                })
                .sum::<u32>()
                + chat_sessions::context::tokens::REPLY_PRIMING;
            assert_eq!(
                u64::from(total),
                chat[encoding.as_str()].as_u64().unwrap(),
                "{} in {}",
                chat["name"],
                encoding.as_str()
            );
        }
    }
}

async fn post(app: &TestApp, id: &str, body: Value) -> Value {
    app.post(
        &format!("/api/chat/sessions/{id}/messages?user_id=alice"),
        body,
    )
    .await
    .expect_status(StatusCode::CREATED)
    .json()
}

#[tokio::test]
async fn tool_messages_are_stored_and_validated() {
    let app = TestApp::new();
    let id = app.create_session("alice").await;
    let call = json!({"id": "call_1", "type": "function",
        "function": {"name": "get_weather", "arguments": "{\"city\":\"Zürich\"}"}});
    let calling = post(
        &app,
        &id,
        json!({"message_type": "assistant", "tool_calls": [call]}),
    )
    .await;
    assert_eq!(calling["content"], "");
    assert_eq!(calling["tool_calls"], json!([call]));
    let answer = post(
        &app,
        &id,
        json!({"message_type": "tool", "content": "12 °C",
        "tool_call_id": "call_1", "name": "get_weather"}),
    )
    .await;
    assert_eq!(answer["tool_call_id"], "call_1");
    assert_eq!(answer["name"], "get_weather");
    let plain = post(&app, &id, json!({"message_type": "user", "content": "hi"})).await;
    assert!(plain.get("tool_calls").is_none() && plain.get("tool_call_id").is_none());

    let uri = format!("/api/chat/sessions/{id}/messages?user_id=alice");
    let bad = [
        (
            json!({"message_type": "tool", "content": "x"}),
            "tool_call_id",
        ),
        (
            json!({"message_type": "user", "content": "x", "tool_call_id": "c"}),
            "tool_call_id",
        ),
        (
            json!({"message_type": "user", "content": "x", "tool_calls": [call]}),
            "tool_calls",
        ),
        (
            json!({"message_type": "assistant", "tool_calls": []}),
            "tool_calls",
        ),
        (
            json!({"message_type": "assistant", "tool_calls": [{"id": "c", "type": "function",
            "function": {"name": "bad name", "arguments": "{}"}}]}),
            "tool_calls",
        ),
        (
            json!({"message_type": "assistant", "tool_calls": [{"id": "c", "type": "code",
            "function": {"name": "f", "arguments": "{}"}}]}),
            "tool_calls",
        ),
        (
            json!({"message_type": "assistant", "tool_calls": [{"id": "c", "type": "function",
            "function": {"name": "f", "arguments": {}}}]}),
            "tool_calls",
        ),
        (
            json!({"message_type": "assistant", "tool_calls": "no"}),
            "tool_calls",
        ),
        (json!({"message_type": "assistant"}), "content"),
        (
            json!({"message_type": "tool", "content": "x", "tool_call_id": "c", "name": "a b"}),
            "name",
        ),
    ];
    for (body, field) in bad {
        let problem = app
            .post(&uri, body.clone())
            .await
            .expect_problem(StatusCode::UNPROCESSABLE_ENTITY);
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains(field), "{body}: {detail}");
    }
    let session = app
        .get_ok_json(&format!("/api/chat/sessions/{id}?user_id=alice"))
        .await;
    assert_eq!(session["message_count"], 3);
    assert_eq!(session["messages"][0]["tool_calls"], json!([call]));
}

#[tokio::test]
async fn context_answers_in_either_format_and_refuses_bad_parameters() {
    let app = TestApp::new();
    let id = app.create_session("alice").await;
    post(
        &app,
        &id,
        json!({"message_type": "system", "content": "Be brief."}),
    )
    .await;
    post(
        &app,
        &id,
        json!({"message_type": "user", "content": "hello world"}),
    )
    .await;
    let call = json!({"id": "call_1", "type": "function",
        "function": {"name": "clock", "arguments": "{}"}});
    post(
        &app,
        &id,
        json!({"message_type": "assistant", "tool_calls": [call]}),
    )
    .await;
    post(
        &app,
        &id,
        json!({"message_type": "tool", "content": "12:00", "tool_call_id": "call_1"}),
    )
    .await;
    let base = format!("/api/chat/sessions/{id}/context?user_id=alice");

    let openai = app.get_ok_json(&format!("{base}&max_tokens=1000")).await;
    assert_eq!(openai["truncated"], false);
    assert_eq!(openai["encoding"], "o200k_base");
    assert_eq!(openai["max_tokens"], 1000);
    assert_eq!(
        openai["messages"],
        json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hello world"},
            {"role": "assistant", "content": null, "tool_calls": [call]},
            {"role": "tool", "content": "12:00", "tool_call_id": "call_1"},
        ])
    );
    let tokens = openai["tokens"].as_u64().unwrap();
    // The same question again is answered from the rendered copy while the
    // session is unchanged, and afresh once it changed.
    assert_eq!(
        app.get_ok_json(&format!("{base}&max_tokens=1000")).await,
        openai
    );
    post(
        &app,
        &id,
        json!({"message_type": "assistant", "content": "It is noon."}),
    )
    .await;
    let after = app.get_ok_json(&format!("{base}&max_tokens=1000")).await;
    assert_eq!(after["messages"].as_array().unwrap().len(), 5);
    assert_eq!(after["messages"][4]["content"], "It is noon.");
    app.delete(&format!("/api/chat/sessions/{id}?user_id=alice"))
        .await;
    app.get(&format!("{base}&max_tokens=1000"))
        .await
        .expect_problem(StatusCode::NOT_FOUND);
    let id = app.create_session("alice").await;
    post(
        &app,
        &id,
        json!({"message_type": "system", "content": "Be brief."}),
    )
    .await;
    post(
        &app,
        &id,
        json!({"message_type": "user", "content": "hello world"}),
    )
    .await;
    post(
        &app,
        &id,
        json!({"message_type": "assistant", "tool_calls": [call]}),
    )
    .await;
    post(
        &app,
        &id,
        json!({"message_type": "tool", "content": "12:00", "tool_call_id": "call_1"}),
    )
    .await;
    let base = format!("/api/chat/sessions/{id}/context?user_id=alice");
    let native = app
        .get_ok_json(&format!(
            "{base}&max_tokens=1000&format=native&encoding=cl100k_base"
        ))
        .await;
    assert_eq!(native["messages"][2]["message_type"], "assistant");
    assert_eq!(
        native["messages"][3]["id"]
            .as_str()
            .map(|s| s.starts_with("msg_")),
        Some(true)
    );
    assert_eq!(native["encoding"], "cl100k_base");

    // Exactly the tokens counted fit everything; one less leaves out the
    // oldest non-system message only.
    let exact = app
        .get_ok_json(&format!("{base}&max_tokens={tokens}"))
        .await;
    assert_eq!(
        (
            exact["messages"].as_array().unwrap().len(),
            exact["truncated"].clone()
        ),
        (4, json!(false))
    );
    let less = app
        .get_ok_json(&format!("{base}&max_tokens={}", tokens - 1))
        .await;
    assert_eq!(less["messages"].as_array().unwrap().len(), 3);
    assert_eq!(less["truncated"], true);
    let problem = app
        .get(&format!("{base}&max_tokens=2"))
        .await
        .expect_problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(problem["detail"].as_str().unwrap().contains("max_tokens"));

    for (query, parameter) in [
        ("", "max_tokens"),
        ("&max_tokens=", "max_tokens"),
        ("&max_tokens=ten", "max_tokens"),
        ("&max_tokens=-1", "max_tokens"),
        ("&max_tokens=1.5", "max_tokens"),
        ("&max_tokens=99999999999", "max_tokens"),
        ("&max_tokens=10&encoding=gpt2", "encoding"),
        ("&max_tokens=10&format=anthropic", "format"),
    ] {
        let problem = app
            .get(&format!("{base}{query}"))
            .await
            .expect_problem(StatusCode::UNPROCESSABLE_ENTITY);
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains(parameter), "{query}: {detail}");
    }
    app.get(&format!(
        "/api/chat/sessions/{id}/context?user_id=mallory&max_tokens=10"
    ))
    .await
    .expect_problem(StatusCode::NOT_FOUND);
    app.get("/api/chat/sessions/nope/context?user_id=alice&max_tokens=10")
        .await
        .expect_problem(StatusCode::NOT_FOUND);
}

/// On Cosmos DB a budget met within the session document and its newest
/// sealed page costs at most two point reads however long the session, the
/// leading system message included (the document keeps a copy once page 0
/// holds it). Counted by the store's request counter against the local
/// server.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_context_read_on_cosmos_costs_at_most_two_reads() {
    use chat_sessions::{
        context::{CACHE, Selection},
        domain::{JsonObject, MessageType, NewMessage},
        store::{cosmos::SealPolicy, prelude::*},
    };
    let (client, config) = crate::common::cosmos::server_client().await;
    let store = chat_sessions::store::cosmos::CosmosStore::open(
        &client,
        &config.database,
        &config.sessions_container,
    )
    .await
    .unwrap();
    let store = store.with_seal_policy(SealPolicy {
        max_bytes: SealPolicy::MIN_BYTES,
        page_bytes: SealPolicy::page_bytes_for(SealPolicy::MIN_BYTES),
        max_messages: Some(10),
    });
    let (owner, id) = crate::common::cosmos::owned_session(&store, "ctx_reads", "s_ctx").await;
    let message = |kind, content: String| {
        NewMessage::new(None, content, kind, None, JsonObject::new()).unwrap()
    };
    let system = message(MessageType::System, "You are terse.".into());
    store.append_message(&owner, &id, system).await.unwrap();
    for i in 0..300 {
        let kind = if i % 2 == 0 {
            MessageType::User
        } else {
            MessageType::Assistant
        };
        let m = message(kind, format!("message number {i} of a long chat"));
        store.append_message(&owner, &id, m).await.unwrap();
    }
    let all = store.get_session(&owner, &id).await.unwrap().value.messages;
    for (budget, at_most) in [(60, 2), (120, 2), (100_000, u64::MAX)] {
        let before = store.metrics();
        let answered = server_answers(&config.endpoint, &config.database, 0)
            .await
            .1;
        let mut selection = Selection::new(Encoding::O200kBase, budget, &CACHE);
        store
            .read_context(&owner, &id, &mut selection)
            .await
            .unwrap();
        let requests = (store.metrics() - before).requests;
        // Counted at the server too: its log of the requests it answered.
        let at_server = server_answers(&config.endpoint, &config.database, answered)
            .await
            .0;
        assert_eq!(at_server, requests, "budget {budget}");
        let chosen = selection.finish().unwrap();
        assert_eq!(chosen.messages[0], all[0], "the system message comes first");
        let rest = &chosen.messages[1..];
        assert_eq!(
            rest,
            &all[all.len() - rest.len()..],
            "an unbroken run of the newest"
        );
        assert!(requests <= at_most, "budget {budget}: {requests} requests");
        if at_most == 2 {
            assert!(rest.len() >= 3, "budget {budget} holds several messages");
        } else {
            assert_eq!(chosen.messages, all);
        }
    }
}

#[tokio::test]
async fn the_legacy_endpoint_refuses_tool_messages() {
    let app = TestApp::new();
    let problem = app
        .post(
            "/api/chat/message?user_id=alice",
            json!({"content": "12 °C", "message_type": "tool"}),
        )
        .await
        .expect_problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(problem["detail"].as_str().unwrap().contains("message_type"));
    let doc: Value = serde_json::from_str(chat_sessions::api::openapi::document_json()).unwrap();
    assert_eq!(
        doc["components"]["schemas"]["LegacyMessageType"]["enum"],
        json!(["user", "assistant", "system"])
    );
}

/// How many requests for `database` the local Cosmos server answered after
/// its answer numbered `after`, and the number of its latest answer.
async fn server_answers(endpoint: &str, database: &str, after: u64) -> (u64, u64) {
    let log: Vec<Value> = reqwest::get(format!("{endpoint}_launcher/charges"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let path = format!("/dbs/{database}/");
    let count = log
        .iter()
        .filter(|e| e["seq"].as_u64().unwrap() > after)
        .filter(|e| e["path"].as_str().unwrap().contains(&path))
        .count() as u64;
    (count, log.last().map_or(0, |e| e["seq"].as_u64().unwrap()))
}
