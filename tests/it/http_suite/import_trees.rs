//! Trees through `POST /api/chat/import` over HTTP: every branch of
//! ChatGPT's conversations with the one last shown current (each checked
//! through the export, which shows whole trees), and an export imported by
//! another user as copies of their own.

use axum::http::StatusCode;
use chat_sessions::{
    domain::{SessionId, UserId},
    store::{DynStore, Owner},
};
use serde_json::{Value, json};

use super::{
    FIXTURE, FIXTURE_MESSAGES, NDJSON, app, export_lines, exported_trees, history, import, ndjson,
    refused, report, user,
};
use crate::common::{Guard, json::texts};

pub async fn import_of_chatgpt_keeps_every_branch_and_the_current_one(
    store: DynStore,
    guard: Guard,
) {
    let app = app(store, guard);
    let alice = user();
    let file = std::fs::read_to_string(FIXTURE).unwrap();
    let r = import(&app, &alice, "application/json", file.clone()).await;
    assert_eq!(r, report(3, 0, FIXTURE_MESSAGES, 0));
    let sessions = history(&app, &alice).await;
    let all = Value::Array(sessions.clone());
    assert_eq!(
        texts(&all, "session_name"),
        ["Kyōto in spring 🌸", "Résumé de réunion", "日本語の練習"]
    );

    // The session shows the branch of `current_node`: the edited prompt's,
    // not the original; the second version of the German question, not
    // the first; no hidden system node, no custom-instructions context, no
    // root. The web search is a tool call and its answer; the quote the
    // tool added after it answers no call and is kept as a system message.
    let kyoto = &sessions[0];
    assert_eq!(kyoto["message_count"], 7);
    assert_eq!(kyoto["total_message_count"], 11);
    assert_eq!(kyoto["created_at"], "2024-05-01T12:00:00.000000Z");
    assert_eq!(kyoto["updated_at"], "2024-05-01T12:02:10.500000Z");
    assert_eq!(kyoto["is_active"], true);
    assert_eq!(kyoto["user_id"], alice.as_str());
    assert_eq!(
        kyoto["context"],
        json!({
            "imported_from": "chatgpt",
            "chatgpt_conversation_id": "6650a1f2-3b4c-8001-9d2e-4f5a6b7c8d9e",
        })
    );
    assert_eq!(
        texts(&kyoto["messages"], "id"),
        [
            "chatgpt_aaa27c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d",
            "chatgpt_1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
            "chatgpt_aaa2d4e5-f6a7-4b8c-9d0e-1f2a3b4c5d6e",
            "chatgpt_2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6f",
            "chatgpt_3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f",
            "chatgpt_3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e70",
            "chatgpt_4d5e6f7a-8b9c-4d0e-9f1a-2b3c4d5e6f7a",
        ]
    );
    assert_eq!(
        texts(&kyoto["messages"], "message_type"),
        [
            "user",
            "assistant",
            "user",
            "assistant",
            "tool",
            "system",
            "assistant"
        ]
    );
    assert_eq!(
        texts(&kyoto["messages"], "created_at"),
        [
            "2024-05-01T12:01:00.000000Z",
            "2024-05-01T12:01:10.123456Z",
            "2024-05-01T12:01:40.000000Z",
            "2024-05-01T12:01:41.000000Z",
            "2024-05-01T12:01:42.000000Z",
            "2024-05-01T12:01:43.000000Z",
            "2024-05-01T12:02:10.000000Z",
        ]
    );
    let first = &kyoto["messages"][0];
    assert_eq!(
        first["content"],
        "Plan a 3-day trip to Kyōto in spring 🌸 — we love temples & tea."
    );
    assert_eq!(
        kyoto["messages"][1]["content"],
        "Spring plan:\n1. Philosopher's Path under the cherry blossoms\n2. Tea ceremony in Uji (宇治)\n3. Fushimi Inari at dawn"
    );
    assert_eq!(
        kyoto["messages"][1]["metadata"],
        json!({
            "imported_from": "chatgpt",
            "chatgpt_node_id": "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
            "model_slug": "gpt-4o",
        })
    );
    assert_eq!(
        kyoto["messages"][2]["content"],
        "Und das Ganze auf Deutsch, bitte? Grüße aus München!"
    );
    let search_call = "call_2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6f";
    assert_eq!(
        kyoto["messages"][3],
        json!({
            "id": "chatgpt_2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6f",
            "parent_id": "chatgpt_aaa2d4e5-f6a7-4b8c-9d0e-1f2a3b4c5d6e",
            "content": "",
            "message_type": "assistant",
            "user_id": alice.as_str(),
            "created_at": "2024-05-01T12:01:41.000000Z",
            "metadata": {
                "imported_from": "chatgpt",
                "chatgpt_node_id": "2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6f",
                "model_slug": "gpt-4o",
                "chatgpt_recipient": "web",
            },
            "tool_calls": [{
                "id": search_call,
                "type": "function",
                "function": {
                    "name": "web",
                    "arguments": r#"{"code":"search(\"Kyoto Kirschblüte 2024\")"}"#,
                },
            }],
        })
    );
    assert_eq!(
        kyoto["messages"][4],
        json!({
            "id": "chatgpt_3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f",
            "parent_id": "chatgpt_2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6f",
            "content": "Kirschblüte in Kyōto: Ende März bis Anfang April.",
            "message_type": "tool",
            "user_id": alice.as_str(),
            "created_at": "2024-05-01T12:01:42.000000Z",
            "metadata": {
                "imported_from": "chatgpt",
                "chatgpt_node_id": "3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f",
                "chatgpt_content_type": "tether_browsing_display",
                "chatgpt_tool_name": "web",
            },
            "tool_call_id": search_call,
            "name": "web",
        })
    );
    assert_eq!(
        kyoto["messages"][5],
        json!({
            "id": "chatgpt_3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e70",
            "parent_id": "chatgpt_3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f",
            "content": "Die Kirschblüte erreicht Kyōto meist in der letzten Märzwoche.",
            "message_type": "system",
            "user_id": alice.as_str(),
            "created_at": "2024-05-01T12:01:43.000000Z",
            "metadata": {
                "imported_from": "chatgpt",
                "chatgpt_node_id": "3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e70",
                "chatgpt_author_role": "tool",
                "chatgpt_content_type": "tether_quote",
                "chatgpt_tool_name": "web",
                "chatgpt_url": "https://kyoto-sakura.example/blog/2024",
            },
        })
    );

    // A visible system node is kept; of a photo with a question, the text,
    // the photo and the file beside it in the metadata; the code run is a
    // tool call and its output.
    let meeting = &sessions[1];
    assert_eq!(
        texts(&meeting["messages"], "message_type"),
        ["system", "user", "assistant", "tool", "assistant"]
    );
    assert_eq!(
        texts(&meeting["messages"], "content"),
        [
            "Réponds toujours en français, de façon concise.",
            "Voici la photo du tableau blanc. Peux-tu résumer les décisions ?",
            "",
            "(1024, 768)",
            "Décisions :\n• Lancement le 3 juin\n• Budget validé (12 000 €)\n• Zoë pilote la bêta",
        ]
    );
    assert_eq!(
        meeting["messages"][1]["metadata"],
        json!({
            "imported_from": "chatgpt",
            "chatgpt_node_id": "aaa2e1f2-a3b4-4c5d-8e6f-7a8b9c0d1e2f",
            "attachments": [
                {
                    "kind": "image",
                    "name": "tableau.jpg",
                    "mime_type": "image/jpeg",
                    "asset_pointer": "file-service://file-3kQzT9bXyWvU1sR2pN8m",
                    "size_bytes": 184320,
                    "width": 1024,
                    "height": 768,
                },
                {
                    "kind": "file",
                    "name": "compte-rendu.pdf",
                    "mime_type": "application/pdf",
                    "size_bytes": 48213,
                },
            ],
        })
    );
    let run_call = "call_6f7a8b9c-0d1e-4f2a-9b3c-4d5e6f7a8b9c";
    assert_eq!(
        meeting["messages"][2]["tool_calls"],
        json!([{
            "id": run_call,
            "type": "function",
            "function": {
                "name": "python",
                "arguments": r#"{"code":"from PIL import Image\nImage.open('/mnt/data/tableau.jpg').size"}"#,
            },
        }])
    );
    assert_eq!(
        meeting["messages"][2]["metadata"]["chatgpt_recipient"],
        "python"
    );
    let output = &meeting["messages"][3];
    assert_eq!(output["tool_call_id"], run_call);
    assert_eq!(output["name"], "python");
    assert_eq!(
        output["metadata"],
        json!({
            "imported_from": "chatgpt",
            "chatgpt_node_id": "7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c0e",
            "chatgpt_content_type": "execution_output",
            "chatgpt_tool_name": "python",
            "chatgpt_execution_status": "success",
        })
    );
    // Only tool messages answer, only the call makes calls.
    for (i, message) in meeting["messages"].as_array().unwrap().iter().enumerate() {
        assert_eq!(message.get("tool_calls").is_some(), i == 2, "{message}");
        assert_eq!(message.get("tool_call_id").is_some(), i == 3, "{message}");
    }

    // Archived; an answer stamped with its question's time comes a
    // microsecond after it.
    let japanese = &sessions[2];
    assert_eq!(japanese["is_active"], false);
    assert_eq!(japanese["archived_at"], Value::Null);
    assert_eq!(
        texts(&japanese["messages"], "created_at"),
        ["2024-05-03T12:00:03.000000Z", "2024-05-03T12:00:03.000001Z"]
    );
    assert_eq!(
        japanese["messages"][1]["content"],
        "「ありがとうございます」または「誠にありがとうございます」です。"
    );

    // Every branch arrived, each message after the one its parent node
    // became (or, behind a node left out, its nearest kept ancestor): the
    // export shows the whole trees.
    let trees = exported_trees(&app, &alice).await;
    let id = |node: &str| format!("chatgpt_{node}");
    let (current, kyoto_tree) = &trees[0];
    assert_eq!(*current, json!(id("4d5e6f7a-8b9c-4d0e-9f1a-2b3c4d5e6f7a")));
    let first_prompt = id("aaa2b3c4-d5e6-4f70-8a91-b2c3d4e5f607");
    let edited_prompt = id("aaa27c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d");
    let plan = id("1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d");
    let first_question = id("aaa2c1d2-e3f4-4a5b-8c6d-7e8f9a0b1c2d");
    let question = id("aaa2d4e5-f6a7-4b8c-9d0e-1f2a3b4c5d6e");
    assert_eq!(
        *kyoto_tree,
        [
            (first_prompt.clone(), None),
            (
                id("0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"),
                Some(first_prompt)
            ),
            (edited_prompt.clone(), None),
            (plan.clone(), Some(edited_prompt)),
            // The question's first version, answered past a hidden node.
            (first_question.clone(), Some(plan.clone())),
            (
                id("6e7f8a9b-0c1d-4e2f-9a3b-4c5d6e7f8a91"),
                Some(first_question)
            ),
            (question.clone(), Some(plan)),
            (id("2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6f"), Some(question)),
            (
                id("3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f"),
                Some(id("2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6f"))
            ),
            (
                id("3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e70"),
                Some(id("3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f"))
            ),
            (
                id("4d5e6f7a-8b9c-4d0e-9f1a-2b3c4d5e6f7a"),
                Some(id("3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e70"))
            ),
        ]
    );
    assert_eq!(trees[1].1.len(), 5, "a conversation that never branched");
    // A regenerated answer: two answers to one question, the second shown.
    let (current, japanese_tree) = &trees[2];
    let asked = id("aaa2b3c4-d5e6-4f7a-8b9c-0d1e2f3a4b5c");
    assert_eq!(*current, json!(id("9c0d1e2f-3a4b-4c5d-8e6f-7a8b9c0d1e2f")));
    assert_eq!(
        *japanese_tree,
        [
            (asked.clone(), None),
            (
                id("8a9b0c1d-2e3f-4a4b-9c5d-6e7f8a9b0c1e"),
                Some(asked.clone())
            ),
            (id("9c0d1e2f-3a4b-4c5d-8e6f-7a8b9c0d1e2f"), Some(asked)),
        ]
    );

    // Again: nothing added, nothing changed.
    let again = import(&app, &alice, "application/json", file.clone()).await;
    assert_eq!(again, report(0, 0, 0, FIXTURE_MESSAGES));
    assert_eq!(history(&app, &alice).await, sessions);
    // Another user importing the same file gets sessions of their own.
    let bob = user();
    assert_eq!(
        import(&app, &bob, "application/json", file).await,
        report(3, 0, FIXTURE_MESSAGES, 0)
    );
    let bobs = history(&app, &bob).await;
    assert_ne!(bobs[0]["id"], sessions[0]["id"]);
    assert_eq!(bobs[0]["messages"][0]["content"], first["content"]);
}

/// An export imported by another user (a copy given to a colleague, a
/// move to a new account): the sessions the first user has become copies
/// of the importer's own, under ids of their own, the trees whole; the
/// first user's stay as they were; a second import adds nothing.
pub async fn import_of_another_users_export_makes_copies_of_their_own(
    store: DynStore,
    guard: Guard,
) {
    let app = app(store, guard);
    let (alice, bob) = (user(), user());
    let prefix = format!("s_{}", uuid::Uuid::new_v4().simple());
    // Alice's history: two sessions of a file, ChatGPT's branched ones.
    import(&app, &alice, NDJSON, ndjson(&export_lines(&alice, &prefix))).await;
    let fixture = std::fs::read_to_string(FIXTURE).unwrap();
    import(&app, &alice, "application/json", fixture).await;
    let before = history(&app, &alice).await;
    let alices_trees = exported_trees(&app, &alice).await;
    let file = String::from_utf8(
        app.get(&format!("/api/chat/export?user_id={alice}"))
            .await
            .expect_status(StatusCode::OK)
            .body
            .to_vec(),
    )
    .unwrap();
    // Bob imports it, with one new session of his own before hers.
    let bobs_own = json!({
        "type": "session", "id": format!("{prefix}_bobs"), "user_id": bob,
        "session_name": null, "is_active": true, "archived_at": null, "context": {},
        "message_count": 0, "last_message_at": null,
        "created_at": "2020-04-01T00:00:00.000000Z", "updated_at": "2020-04-01T00:00:00.000000Z",
    });
    let file = format!("{}{file}", ndjson(&[bobs_own]));
    let all = 3 + FIXTURE_MESSAGES;
    assert_eq!(
        import(&app, &bob, NDJSON, file.clone()).await,
        report(6, 0, all, 0)
    );
    let bobs = history(&app, &bob).await;
    assert_eq!(bobs.len(), 6);
    assert_eq!(bobs[0]["id"], format!("{prefix}_bobs"), "a free id stays");
    for (copy, original) in bobs[1..].iter().zip(&before) {
        let original_id = original["id"].as_str().unwrap();
        let copy_id = copy["id"].as_str().unwrap();
        let expected = chat_sessions::import::copy_id(
            &Owner::User(UserId::parse(bob.as_str()).unwrap()),
            &SessionId::parse(original_id).unwrap(),
        );
        assert_eq!(copy_id, expected.as_str());
        assert!(copy_id.starts_with(&format!("{original_id}_")), "{copy_id}");
        assert_eq!(copy["user_id"], bob.as_str());
        for member in ["session_name", "context", "is_active", "message_count"] {
            assert_eq!(copy[member], original[member], "{member}");
        }
        assert_eq!(
            texts(&copy["messages"], "id"),
            texts(&original["messages"], "id"),
            "message ids stay"
        );
    }
    // Whole trees: every branch, the same parents and current branch.
    let bobs_trees = exported_trees(&app, &bob).await;
    assert_eq!(bobs_trees[1..], alices_trees[..]);
    assert_eq!(history(&app, &alice).await, before, "Alice's unchanged");
    // Again: Bob's copies found, nothing added; Alice's own file: hers.
    assert_eq!(
        import(&app, &bob, NDJSON, file.clone()).await,
        report(0, 0, 0, all)
    );
    assert_eq!(history(&app, &bob).await, bobs);
    let alices_file = file.split_once('\n').unwrap().1.to_owned();
    assert_eq!(
        import(&app, &alice, NDJSON, alices_file).await,
        report(0, 0, 0, all)
    );
    assert_eq!(history(&app, &alice).await, before);

    // Only when the copy's id is someone else's too is the file refused
    // (409, naming the line), and then nothing is written.
    let carol = user();
    let trip = format!("{prefix}_trip");
    let taken = chat_sessions::import::copy_id(
        &Owner::User(UserId::parse(carol.as_str()).unwrap()),
        &SessionId::parse(trip.as_str()).unwrap(),
    );
    let mallory = user();
    app.post(
        &format!("/api/chat/sessions?user_id={mallory}"),
        json!({ "id": taken.as_str() }),
    )
    .await
    .expect_status(StatusCode::CREATED);
    let detail = refused(&app, &carol, NDJSON, file, StatusCode::CONFLICT).await;
    assert!(
        detail.contains(&trip) && detail.contains("line "),
        "{detail}"
    );
    let list = app
        .get_ok_json(&format!("/api/chat/sessions?user_id={carol}"))
        .await;
    assert_eq!(list["sessions"], json!([]), "not even the free ones");
}
