//! The mapping of ChatGPT's export, node by node and whole conversations.

use super::mapping::{arguments, call_id, function_name, map_branch};
use super::*;
use crate::domain::UserId;

#[test]
fn ids_are_stable_and_per_owner() {
    let alice = Owner::User(UserId::parse("alice").unwrap());
    let bob = Owner::User(UserId::parse("bob").unwrap());
    assert_eq!(session_id(&alice, "c1"), session_id(&alice, "c1"));
    assert_ne!(session_id(&alice, "c1"), session_id(&bob, "c1"));
    assert_ne!(session_id(&alice, "c1"), session_id(&alice, "c2"));
    assert_ne!(
        session_id(&alice, "c1"),
        session_id(&Owner::Anonymous, "c1")
    );
    assert_eq!(
        message_id("6f2e0c1a-2b7d-4c8e-9f10-3a4b5c6d7e8f").as_str(),
        "chatgpt_6f2e0c1a-2b7d-4c8e-9f10-3a4b5c6d7e8f"
    );
    let odd = message_id("node with spaces/and slashes");
    assert!(odd.as_str().starts_with(PREFIX) && odd.as_str().len() == PREFIX.len() + 32);
}

#[test]
fn epoch_seconds_keep_microseconds() {
    assert_eq!(
        epoch(1_700_000_000.123_456).unwrap().to_string(),
        "2023-11-14T22:13:20.123456Z"
    );
    assert_eq!(epoch(f64::MAX), None);
}

/// The messages `nodes` (id and message JSON, in branch order) become,
/// as JSON the way the API shows them, without the metadata every
/// message has.
fn mapped(nodes: &[(&str, Value)]) -> Vec<Value> {
    let messages: Vec<(&str, Message)> = nodes
        .iter()
        .map(|(id, m)| (*id, serde_json::from_value(m.clone()).unwrap()))
        .collect();
    let branch = messages.iter().map(|(id, m)| (*id, m)).collect();
    map_branch(branch)
        .into_iter()
        .map(|m| {
            let mut value = json!({
                "node": m.node_id,
                "message_type": m.message_type.as_str(),
                "content": m.content,
                "metadata": m.metadata,
            });
            let tools = serde_json::to_value(&m.tools).unwrap();
            value
                .as_object_mut()
                .unwrap()
                .extend(tools.as_object().unwrap().clone());
            value
        })
        .collect()
}

fn node(role: &str, recipient: &str, content: Value) -> Value {
    json!({ "author": { "role": role }, "recipient": recipient, "content": content })
}

fn text(parts: &[&str]) -> Value {
    json!({ "content_type": "text", "parts": parts })
}

#[test]
fn text_for_the_conversation_becomes_a_message_of_its_author() {
    let hidden = json!({ "author": { "role": "system" }, "recipient": "all",
        "content": text(&["You are ChatGPT"]),
        "metadata": { "is_visually_hidden_from_conversation": true } });
    let nodes = [
        ("h", hidden),
        ("s", node("system", "all", text(&["Be brief."]))),
        ("u", node("user", "all", text(&["a", "b"]))),
        (
            "x",
            node(
                "user",
                "all",
                json!({ "content_type": "user_editable_context",
            "user_profile": "p" }),
            ),
        ),
        (
            "t",
            node(
                "assistant",
                "all",
                json!({ "content_type": "thoughts",
            "thoughts": [{ "summary": "s", "content": "c" }] }),
            ),
        ),
        (
            "r",
            node(
                "assistant",
                "all",
                json!({ "content_type": "reasoning_recap",
            "content": "Thought for 2s" }),
            ),
        ),
        ("blank", node("assistant", "all", text(&[" ", ""]))),
        ("a", node("assistant", "all", text(&["c"]))),
        (
            "c",
            node(
                "assistant",
                "all",
                json!({ "content_type": "code", "text": "x = 1" }),
            ),
        ),
    ];
    assert_eq!(
        mapped(&nodes),
        [
            json!({ "node": "s", "message_type": "system", "content": "Be brief.",
                    "metadata": {} }),
            json!({ "node": "u", "message_type": "user", "content": "a\nb",
                    "metadata": {} }),
            json!({ "node": "a", "message_type": "assistant", "content": "c",
                    "metadata": {} }),
            json!({ "node": "c", "message_type": "assistant", "content": "x = 1",
                    "metadata": { "chatgpt_content_type": "code" } }),
        ]
    );
}

#[test]
fn a_call_and_the_tool_node_after_it_are_a_tool_exchange() {
    let run = json!({ "author": { "role": "tool", "name": "python" }, "recipient": "all",
        "content": { "content_type": "execution_output", "text": "" },
        "metadata": { "aggregate_result": { "status": "success", "messages": [
            { "message_type": "image", "image_url": "file-service://file-qq",
              "width": 800, "height": 600 }] } } });
    let nodes = [
        ("u", node("user", "all", text(&["plot it"]))),
        (
            "call-1",
            node(
                "assistant",
                "python",
                json!({ "content_type": "code",
            "language": "python", "text": "plt.plot(x)" }),
            ),
        ),
        // Reasoning between a call and its answer does not part them.
        (
            "t",
            node(
                "assistant",
                "all",
                json!({ "content_type": "thoughts", "thoughts": [] }),
            ),
        ),
        ("run-1", run),
        ("a", node("assistant", "all", text(&["Here it is."]))),
    ];
    let messages = mapped(&nodes);
    assert_eq!(
        messages[1],
        json!({ "node": "call-1", "message_type": "assistant", "content": "",
                "metadata": { "chatgpt_recipient": "python" },
                "tool_calls": [{ "id": "call_call-1", "type": "function",
                    "function": { "name": "python",
                                  "arguments": r#"{"code":"plt.plot(x)"}"# } }] })
    );
    assert_eq!(
        messages[2],
        json!({ "node": "run-1", "message_type": "tool", "content": "[image]",
                "tool_call_id": "call_call-1", "name": "python",
                "metadata": { "chatgpt_content_type": "execution_output",
                    "chatgpt_tool_name": "python", "chatgpt_execution_status": "success",
                    "attachments": [{ "kind": "image", "asset_pointer": "file-service://file-qq",
                                      "width": 800, "height": 600 }] } })
    );
    assert_eq!(messages[3]["content"], "Here it is.");
    assert_eq!(messages.len(), 4);
}

#[test]
fn tool_nodes_answering_no_call_are_system_text_or_left_out() {
    let tool = |name: &str, content: Value| {
        json!({ "author": { "role": "tool", "name": name }, "recipient": "all",
                "content": content })
    };
    let image = json!({ "content_type": "multimodal_text", "parts": [{
        "content_type": "image_asset_pointer", "asset_pointer": "sediment://file_01",
        "size_bytes": 3094420, "width": 1024, "height": 1536 }] });
    let spinner = json!({ "content_type": "tether_browsing_display", "result": "",
                          "summary": "", "assets": null, "tether_id": null });
    let nodes = [
        // The search spinner after an upload answers nothing: left out.
        ("spin", tool("file_search", spinner)),
        (
            "fs",
            tool("file_search", text(&["The files are searchable."])),
        ),
        (
            "draw",
            node(
                "assistant",
                "dalle.text2im",
                text(&[r#"{"prompt":"a fox"}"#]),
            ),
        ),
        ("img", tool("dalle.text2im", image)),
        (
            "note",
            tool("dalle.text2im", text(&["DALL·E displayed 1 images."])),
        ),
        (
            "web",
            node(
                "assistant",
                "web.run",
                json!({ "content_type": "code",
            "language": "unknown", "text": r#"{"search_query":[{"q":"fox"}]}"# }),
            ),
        ),
        // web.run's answers carry no text in the export.
        ("res", tool("web.run", text(&[""]))),
        (
            "odd",
            tool(
                "browser",
                json!({ "content_type": "app_pairing_content", "x": 1 }),
            ),
        ),
    ];
    let messages = mapped(&nodes);
    let summary: Vec<_> = messages
        .iter()
        .map(|m| {
            (
                m["node"].as_str().unwrap(),
                m["message_type"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("fs", "system"),
            ("draw", "assistant"),
            ("img", "tool"),
            ("note", "system"),
            ("web", "assistant"),
            ("res", "tool"),
            ("odd", "system"),
        ]
    );
    assert_eq!(
        messages[0]["metadata"],
        json!({ "chatgpt_author_role": "tool", "chatgpt_tool_name": "file_search" })
    );
    let draw = &messages[1]["tool_calls"][0];
    assert_eq!(draw["function"]["name"], "dalle_text2im");
    assert_eq!(draw["function"]["arguments"], r#"{"prompt":"a fox"}"#);
    assert_eq!(
        messages[1]["metadata"]["chatgpt_recipient"],
        "dalle.text2im"
    );
    assert_eq!(messages[2]["content"], "[image]");
    assert_eq!(messages[2]["tool_call_id"], "call_draw");
    assert_eq!(messages[2]["name"], "dalle_text2im");
    assert_eq!(messages[3]["content"], "DALL·E displayed 1 images.");
    assert_eq!(
        messages[4]["tool_calls"][0]["function"]["arguments"],
        r#"{"search_query":[{"q":"fox"}]}"#
    );
    assert_eq!(messages[5]["content"], "[empty]");
    assert_eq!(messages[5]["name"], "web_run");
    assert_eq!(
        messages[6]["content"],
        r#"{"content_type":"app_pairing_content","x":1}"#
    );
    assert_eq!(
        messages[6]["metadata"]["chatgpt_content_type"],
        "app_pairing_content"
    );
}

#[test]
fn uploads_leave_their_name_and_kind() {
    let photo = json!({ "author": { "role": "user" }, "recipient": "all",
        "content": { "content_type": "multimodal_text", "parts": [{
            "content_type": "image_asset_pointer", "asset_pointer": "file-service://file-3k",
            "size_bytes": 201834, "width": 1024, "height": 768 }] },
        "metadata": { "attachments": [
            { "id": "file-3k", "name": "board.jpg", "mimeType": "image/jpeg", "size": 201834 },
            { "id": "file-9p", "name": "minutes.pdf", "mime_type": "application/pdf",
              "size": 48213 }] } });
    let messages = mapped(&[("p", photo)]);
    assert_eq!(
        messages,
        [json!({ "node": "p", "message_type": "user",
            "content": "[image: board.jpg]\n[file: minutes.pdf]",
            "metadata": { "attachments": [
                { "kind": "image", "name": "board.jpg", "mime_type": "image/jpeg",
                  "asset_pointer": "file-service://file-3k", "size_bytes": 201834,
                  "width": 1024, "height": 768 },
                { "kind": "file", "name": "minutes.pdf", "mime_type": "application/pdf",
                  "size_bytes": 48213 }] } })]
    );
}

#[test]
fn calls_get_valid_stable_names_ids_and_arguments() {
    assert_eq!(function_name("dalle.text2im"), "dalle_text2im");
    assert_eq!(function_name("t2uay3k.sj1i4kz"), "t2uay3k_sj1i4kz");
    assert_eq!(
        function_name("canmore.create_textdoc"),
        "canmore_create_textdoc"
    );
    assert_eq!(function_name(""), "tool");
    assert_eq!(function_name(&"é".repeat(100)), "_".repeat(64));
    assert_eq!(
        call_id("6f2e0c1a-2b7d-4c8e-9f10-3a4b5c6d7e8f"),
        "call_6f2e0c1a-2b7d-4c8e-9f10-3a4b5c6d7e8f"
    );
    assert_eq!(call_id("a b"), call_id("a b"));
    assert_eq!(call_id("a b").len(), "call_".len() + 32);
    assert_eq!(arguments("code", r#"{"q": 1}"#), r#"{"q": 1}"#);
    assert_eq!(
        arguments("code", "print('{}')"),
        r#"{"code":"print('{}')"}"#
    );
    assert_eq!(arguments("text", "[1, 2]"), r#"{"text":"[1, 2]"}"#);
    assert_eq!(arguments("code", "  "), "{}");
    // Whatever the node, the call is one the domain accepts.
    let parts = ToolParts {
        tool_calls: Some(vec![ToolCall {
            id: call_id(&"x".repeat(500)),
            call_type: ToolCallType::Function,
            function: FunctionCall {
                name: function_name(&"n.".repeat(100)),
                arguments: arguments("code", "1"),
            },
        }]),
        ..ToolParts::default()
    };
    assert!(parts.check(MessageType::Assistant).is_ok());
}

#[test]
fn titles_become_valid_names() {
    assert_eq!(
        session_name("  Trip\nplans  ").as_deref(),
        Some("Trip plans")
    );
    assert_eq!(session_name(" \t "), None);
    let long = "é".repeat(300);
    assert_eq!(
        session_name(&long).unwrap().chars().count(),
        MAX_SESSION_NAME_LEN
    );
}

/// A conversation of `nodes` (id, parent, message), with `current_node`.
fn conversation(nodes: &[(&str, Option<&str>, Option<Value>)], current: &str) -> Conversation {
    let mut mapping = serde_json::Map::new();
    for (id, parent, message) in nodes {
        let children: Vec<&str> = nodes
            .iter()
            .filter(|(_, p, _)| *p == Some(*id))
            .map(|(c, _, _)| *c)
            .collect();
        mapping.insert(
            (*id).into(),
            json!({ "id": id, "parent": parent, "children": children, "message": message }),
        );
    }
    serde_json::from_value(json!({
        "id": "c1", "title": "Tree", "create_time": 1.0, "update_time": 100.0,
        "mapping": mapping, "current_node": current,
    }))
    .unwrap()
}

fn at(role: &str, recipient: &str, words: &str, time: f64) -> Option<Value> {
    let mut m = node(role, recipient, text(&[words]));
    m["create_time"] = json!(time);
    Some(m)
}

#[test]
fn every_branch_is_kept_and_left_out_nodes_pass_on_their_place() {
    let mut hidden = at("assistant", "all", "thinking", 31.0).unwrap();
    hidden["metadata"] = json!({ "is_visually_hidden_from_conversation": true });
    let mut context = at("system", "all", "You are ChatGPT", 2.0).unwrap();
    context["metadata"] = json!({ "is_visually_hidden_from_conversation": true });
    let tool = json!({ "author": { "role": "tool", "name": "python" }, "recipient": "all",
        "content": text(&["stdout"]), "create_time": 32.0 });
    let nodes = [
        ("root", None, None),
        ("sys", Some("root"), Some(context)),
        ("q", Some("sys"), at("user", "all", "Q", 10.0)),
        // A regenerated answer: two assistant children of one question.
        ("a", Some("q"), at("assistant", "all", "A, first", 11.0)),
        ("a2", Some("q"), at("assistant", "all", "A, again", 12.0)),
        // An edited question: two user children of one answer.
        ("e1", Some("a2"), at("user", "all", "edit 1", 20.0)),
        (
            "call",
            Some("e1"),
            at("assistant", "python", "print(1)", 21.0),
        ),
        ("e2", Some("a2"), at("user", "all", "edit 2", 30.0)),
        ("h", Some("e2"), Some(hidden)),
        // Under a hidden node, after no call on its own branch: a notice.
        ("t", Some("h"), Some(tool)),
        ("end", Some("t"), at("assistant", "all", "done", 33.0)),
    ];
    let owner = Owner::User(UserId::parse("alice").unwrap());
    let unit = unit(0, conversation(&nodes, "end"), &owner).unwrap();
    let id = |node: &str| message_id(node);
    let tree: Vec<(MessageId, Option<MessageId>, MessageType)> = unit
        .import
        .messages
        .iter()
        .map(|m| (m.id.clone(), m.parent_id.clone(), m.message_type))
        .collect();
    assert_eq!(
        tree,
        [
            (id("q"), None, MessageType::User),
            (id("a"), Some(id("q")), MessageType::Assistant),
            (id("a2"), Some(id("q")), MessageType::Assistant),
            (id("e1"), Some(id("a2")), MessageType::User),
            (id("call"), Some(id("e1")), MessageType::Assistant),
            (id("e2"), Some(id("a2")), MessageType::User),
            (id("t"), Some(id("e2")), MessageType::System),
            (id("end"), Some(id("t")), MessageType::Assistant),
        ]
    );
    assert_eq!(unit.fields.current_message_id, Some(id("end")));
    // A current node left out: its nearest kept ancestor ends the branch.
    let unit = super::unit(0, conversation(&nodes, "h"), &owner).unwrap();
    assert_eq!(unit.fields.current_message_id, Some(id("e2")));
    // The same file read again makes the same messages.
    let again = super::unit(0, conversation(&nodes, "h"), &owner).unwrap();
    assert_eq!(again, unit);
}

#[test]
fn the_branch_to_the_current_node_must_be_whole() {
    let owner = Owner::Anonymous;
    let nodes = [
        ("q", None, at("user", "all", "Q", 10.0)),
        ("a", Some("gone"), at("assistant", "all", "A", 11.0)),
        ("b", Some("q"), at("assistant", "all", "B", 12.0)),
    ];
    // Off the current branch, a missing parent makes a first message.
    let unit = unit(0, conversation(&nodes, "b"), &owner).unwrap();
    let a = unit
        .import
        .messages
        .iter()
        .find(|m| m.id == message_id("a"))
        .unwrap();
    assert_eq!(a.parent_id, None);
    let e = super::unit(0, conversation(&nodes, "a"), &owner).unwrap_err();
    assert!(e.to_string().contains("node gone is not in mapping"), "{e}");
    let looped = [
        ("q", None, at("user", "all", "Q", 10.0)),
        ("x", Some("y"), at("user", "all", "X", 11.0)),
        ("y", Some("x"), at("user", "all", "Y", 12.0)),
    ];
    let e = super::unit(0, conversation(&looped, "q"), &owner).unwrap_err();
    assert!(e.to_string().contains("node x form a cycle"), "{e}");
}
