//! A conversation as a tree, over HTTP: appends under a chosen parent
//! (`parent_id`), reading another branch (`GET …?message_id=`), switching
//! the current one (`PUT` with `current_message_id`), the whole tree
//! (`GET …/tree`), editing (`PATCH …/messages/{id}`) and deleting (`DELETE
//! …/messages/{id}`), each with its errors; and a client that knows nothing
//! of branches sees what it always saw.
//!
//! Reads and appends here; edits, deletes and who may do them in
//! `tree_writes`. Part of `http_suite!`, so every backend runs them.

use axum::http::{Method, StatusCode};
use chat_sessions::store::DynStore;
use serde_json::{Value, json};

use super::{app, user};
use crate::common::{
    Guard, TestApp, TestResponse,
    json::{message_members, session_members, sorted_keys, texts},
};

pub(super) fn session_uri(id: &str, user: &str) -> String {
    format!("/api/chat/sessions/{id}?user_id={user}")
}

pub(super) fn message_uri(id: &str, message: &str, user: &str) -> String {
    format!("/api/chat/sessions/{id}/messages/{message}?user_id={user}")
}

pub(super) async fn post(app: &TestApp, id: &str, user: &str, body: Value) -> TestResponse {
    app.post(
        &format!("/api/chat/sessions/{id}/messages?user_id={user}"),
        body,
    )
    .await
}

/// Appends `content` (a user message) under `parent` (`None`: no
/// `parent_id` sent); 201, the stored message.
pub(super) async fn say(
    app: &TestApp,
    id: &str,
    user: &str,
    content: &str,
    parent: Option<Value>,
) -> Value {
    let mut body = json!({ "id": content, "content": content, "message_type": "user" });
    if let Some(parent) = parent {
        body["parent_id"] = parent;
    }
    post(app, id, user, body)
        .await
        .expect_status(StatusCode::CREATED)
        .json()
}

/// A session of `user` holding `u1 → a1 → u2 → a2`, then `a1b` posted under
/// `u1` (an answer regenerated): the current branch is `u1 → a1b`.
pub(super) async fn forked(app: &TestApp, user: &str) -> String {
    let id = app.create_session(user).await;
    say(app, &id, user, "u1", None).await;
    say(app, &id, user, "a1", None).await;
    say(app, &id, user, "u2", None).await;
    say(app, &id, user, "a2", None).await;
    say(app, &id, user, "a1b", Some(json!("u1"))).await;
    id
}

/// Every page of the tree of `id`, `limit` a page: the messages in order,
/// and the `current_message_id` of each page.
pub(super) async fn whole_tree(
    app: &TestApp,
    id: &str,
    user: &str,
    limit: u32,
) -> (Vec<Value>, Vec<Value>) {
    let first = format!("/api/chat/sessions/{id}/tree?user_id={user}&limit={limit}");
    let (mut messages, mut currents) = (Vec::new(), Vec::new());
    let mut uri = first.clone();
    loop {
        let mut page = app.get_ok_json(&uri).await;
        let batch = page["messages"].as_array_mut().unwrap();
        assert!(batch.len() <= limit as usize);
        messages.append(batch);
        currents.push(page["current_message_id"].clone());
        match page["continuation_token"].as_str() {
            Some(token) => uri = format!("{first}&continuation_token={token}"),
            None => break,
        }
    }
    (messages, currents)
}

/// The `(id, parent_id)` of each message of a list.
pub(super) fn edges(messages: &[Value]) -> Vec<(String, Value)> {
    messages
        .iter()
        .map(|m| (m["id"].as_str().unwrap().to_owned(), m["parent_id"].clone()))
        .collect()
}

pub async fn a_client_that_knows_nothing_of_branches_sees_the_seed_shape(
    store: DynStore,
    guard: Guard,
) {
    let app = app(store, guard);
    let u = user();
    let id = app.create_session(&u).await;
    let first = post(
        &app,
        &id,
        &u,
        json!({ "content": "Hello!", "message_type": "user" }),
    )
    .await
    .expect_status(StatusCode::CREATED)
    .json();
    let second = post(
        &app,
        &id,
        &u,
        json!({ "content": "Hi!", "message_type": "assistant" }),
    )
    .await
    .expect_status(StatusCode::CREATED)
    .json();
    // The seed's members, plus parent_id on a message (the one before it)
    // and total_message_count on a session (equal to message_count).
    assert_eq!(sorted_keys(&first), message_members());
    assert_eq!(first["parent_id"], Value::Null);
    assert_eq!(second["parent_id"], first["id"]);
    let session = app.get_ok_json(&session_uri(&id, &u)).await;
    assert_eq!(sorted_keys(&session), session_members());
    assert_eq!(session["messages"], json!([first, second]));
    assert_eq!(session["message_count"], 2);
    assert_eq!(session["total_message_count"], 2);
    for m in session["messages"].as_array().unwrap() {
        assert_eq!(
            sorted_keys(m),
            message_members(),
            "no siblings, no edited_at"
        );
    }
    let listed = app
        .get_ok_json(&format!("/api/chat/sessions?user_id={u}"))
        .await;
    assert_eq!(listed["sessions"][0]["message_count"], 2);
    assert_eq!(listed["sessions"][0]["total_message_count"], 2);
    let page = app
        .get_ok_json(&format!("/api/chat/sessions/{id}/messages?user_id={u}"))
        .await;
    assert_eq!(page["messages"], json!([second, first]));
}

pub async fn parent_id_starts_a_branch_and_null_a_new_first_message(store: DynStore, guard: Guard) {
    let app = app(store, guard);
    let u = user();
    let id = forked(&app, &u).await;
    let r = app
        .get(&session_uri(&id, &u))
        .await
        .expect_status(StatusCode::OK);
    let session = r.json();
    assert_eq!(texts(&session["messages"], "id"), ["u1", "a1b"]);
    assert_eq!(session["messages"][1]["parent_id"], "u1");
    assert_eq!(session["message_count"], 2);
    assert_eq!(session["total_message_count"], 5);
    assert_eq!(
        session["last_message_at"],
        session["messages"][1]["created_at"]
    );
    // Appends without parent_id follow the current branch.
    let next = say(&app, &id, &u, "u2b", None).await;
    assert_eq!(next["parent_id"], "a1b");
    // null: a new first message (the first one edited and sent again).
    let root = say(&app, &id, &u, "u1b", Some(Value::Null)).await;
    assert_eq!(root["parent_id"], Value::Null);
    let session = app.get_ok_json(&session_uri(&id, &u)).await;
    assert_eq!(texts(&session["messages"], "id"), ["u1b"]);
    assert_eq!(session["message_count"], 1);
    assert_eq!(session["total_message_count"], 7);
}

pub async fn a_retry_with_a_parent_is_safe_and_another_parent_conflicts(
    store: DynStore,
    guard: Guard,
) {
    let app = app(store, guard);
    let u = user();
    let id = forked(&app, &u).await;
    let body =
        json!({ "id": "a1c", "content": "again", "message_type": "assistant", "parent_id": "u1" });
    let first = post(&app, &id, &u, body.clone())
        .await
        .expect_status(StatusCode::CREATED);
    let etag = first.header("etag").unwrap().to_owned();
    let again = post(&app, &id, &u, body.clone())
        .await
        .expect_status(StatusCode::OK);
    assert_eq!(again.json(), first.json());
    assert_eq!(again.header("etag"), Some(etag.as_str()), "nothing stored");
    // Without parent_id a retry matches whatever parent was stored.
    let mut bare = body.clone();
    bare.as_object_mut().unwrap().remove("parent_id");
    post(&app, &id, &u, bare)
        .await
        .expect_status(StatusCode::OK);
    let mut elsewhere = body.clone();
    elsewhere["parent_id"] = json!("u2");
    post(&app, &id, &u, elsewhere)
        .await
        .expect_problem(StatusCode::CONFLICT);
    assert_eq!(app.etag(&session_uri(&id, &u)).await, etag);
}

pub async fn an_unknown_or_foreign_parent_is_422_naming_it_and_changes_nothing(
    store: DynStore,
    guard: Guard,
) {
    let app = app(store, guard);
    let (u, other) = (user(), user());
    let id = forked(&app, &u).await;
    let elsewhere = app.create_session(&u).await;
    say(&app, &elsewhere, &u, "far", None).await;
    let before = app.get_ok_json(&session_uri(&id, &u)).await;
    for parent in [json!("nope"), json!("far"), json!("bad id"), json!(5)] {
        let problem = post(
            &app,
            &id,
            &u,
            json!({ "content": "x", "message_type": "user", "parent_id": parent }),
        )
        .await
        .expect_problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            problem["detail"].as_str().unwrap().contains("parent_id"),
            "{problem}"
        );
    }
    assert_eq!(app.get_ok_json(&session_uri(&id, &u)).await, before);
    post(
        &app,
        &id,
        &other,
        json!({ "content": "x", "message_type": "user", "parent_id": "u1" }),
    )
    .await
    .expect_problem(StatusCode::NOT_FOUND);
}

pub async fn message_id_reads_another_branch_and_leaves_the_current_one(
    store: DynStore,
    guard: Guard,
) {
    let app = app(store, guard);
    let (u, other) = (user(), user());
    let id = forked(&app, &u).await;
    // The plain read first, so that its rendering is cached.
    let plain = app
        .get(&session_uri(&id, &u))
        .await
        .expect_status(StatusCode::OK);
    let etag = plain.header("etag").unwrap().to_owned();
    let uri = format!("{}&message_id=a1", session_uri(&id, &u));
    let r = app.get(&uri).await.expect_status(StatusCode::OK);
    assert_eq!(
        r.header("etag"),
        Some(etag.as_str()),
        "the session's version"
    );
    let branch = r.json();
    assert_eq!(texts(&branch["messages"], "id"), ["u1", "a1", "u2", "a2"]);
    assert_eq!(branch["message_count"], 4);
    assert_eq!(branch["total_message_count"], 5);
    assert_eq!(
        branch["last_message_at"],
        branch["messages"][3]["created_at"]
    );
    assert_eq!(branch["messages"][1]["siblings"], json!(["a1", "a1b"]));
    assert!(branch["messages"][0].get("siblings").is_none());
    // The path to a message, then its newest replies.
    let through_u1 = app
        .get_ok_json(&format!("{}&message_id=u1", session_uri(&id, &u)))
        .await;
    assert_eq!(texts(&through_u1["messages"], "id"), ["u1", "a1b"]);
    // With messages_limit: the newest N of that branch.
    let tail = app.get_ok_json(&format!("{uri}&messages_limit=2")).await;
    assert_eq!(texts(&tail["messages"], "id"), ["u2", "a2"]);
    assert_eq!(tail["message_count"], 4);
    app.request(Method::GET, &uri)
        .header("if-none-match", &etag)
        .send()
        .await
        .expect_status(StatusCode::NOT_MODIFIED);
    // Neither served from nor put into the plain read's cache.
    let again = app
        .get(&session_uri(&id, &u))
        .await
        .expect_status(StatusCode::OK);
    assert_eq!(again.json(), plain.json());
    assert_eq!(texts(&again.json()["messages"], "id"), ["u1", "a1b"]);
    for bad in [
        "message_id=nope",
        "message_id=bad%20id",
        "message_id=",
        "message_id=a1&messages_limit=0",
    ] {
        let problem = app
            .get(&format!("{}&{bad}", session_uri(&id, &u)))
            .await
            .expect_problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            problem["detail"].as_str().unwrap().contains("message"),
            "{bad}: {problem}"
        );
    }
    app.get(&format!("{}&message_id=a1", session_uri(&id, &other)))
        .await
        .expect_problem(StatusCode::NOT_FOUND);
}

pub async fn put_current_message_id_switches_the_branch_under_if_match(
    store: DynStore,
    guard: Guard,
) {
    let app = app(store, guard);
    let (u, other) = (user(), user());
    let id = forked(&app, &u).await;
    let uri = session_uri(&id, &u);
    let before = app.get(&uri).await;
    let etag = before.header("etag").unwrap().to_owned();
    let switch = |tag: &str, body: Value| {
        app.request(Method::PUT, &uri)
            .header("if-match", tag)
            .json(&body)
            .send()
    };
    switch("\"stale\"", json!({ "current_message_id": "a2" }))
        .await
        .expect_problem(StatusCode::PRECONDITION_FAILED);
    assert_eq!(
        app.get_ok_json(&uri).await,
        before.json(),
        "a 412 changes nothing"
    );
    // Combined with another change: refused, nothing changed.
    for body in [
        json!({ "current_message_id": "a2", "session_name": "x" }),
        json!({ "current_message_id": "a2", "session_name": null }),
        json!({ "current_message_id": "a2", "is_active": false }),
        json!({ "current_message_id": "a2", "context": {} }),
        json!({ "current_message_id": "nope" }),
        json!({ "current_message_id": "bad id" }),
        json!({ "current_message_id": 1 }),
    ] {
        let problem = switch(&etag, body.clone())
            .await
            .expect_problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("current_message_id"),
            "{body}: {problem}"
        );
    }
    assert_eq!(app.get_ok_json(&uri).await, before.json());
    let r = switch(&etag, json!({ "current_message_id": "a1", "user_id": u }))
        .await
        .expect_status(StatusCode::OK);
    let switched_etag = r.header("etag").unwrap().to_owned();
    assert_ne!(switched_etag, etag);
    let switched = r.json();
    // Through a1, continued along its newest replies.
    assert_eq!(texts(&switched["messages"], "id"), ["u1", "a1", "u2", "a2"]);
    assert_eq!(switched["messages"][1]["siblings"], json!(["a1", "a1b"]));
    assert_eq!(switched["message_count"], 4);
    assert_eq!(switched["total_message_count"], 5);
    let got = app.get(&uri).await;
    assert_eq!(got.header("etag"), Some(switched_etag.as_str()));
    assert_eq!(
        texts(&got.json()["messages"], "id"),
        ["u1", "a1", "u2", "a2"]
    );
    // The ETag read before the switch is stale now.
    switch(&etag, json!({ "current_message_id": "a1b" }))
        .await
        .expect_problem(StatusCode::PRECONDITION_FAILED);
    let unchanged = app.get(&uri).await;
    assert_eq!(unchanged.header("etag"), Some(switched_etag.as_str()));
    assert_eq!(unchanged.json(), got.json(), "a 412 changes nothing");
    // Appends follow the new current branch.
    assert_eq!(say(&app, &id, &u, "u3", None).await["parent_id"], "a2");
    // null leaves the branch: a PUT like any other.
    let r = app
        .put(&uri, json!({ "current_message_id": null }))
        .await
        .expect_status(StatusCode::OK);
    assert_eq!(r.json()["message_count"], 5);
    app.put(
        &session_uri(&id, &other),
        json!({ "current_message_id": "a1" }),
    )
    .await
    .expect_problem(StatusCode::NOT_FOUND);
}

pub async fn the_tree_lists_every_branch_in_pages(store: DynStore, guard: Guard) {
    let app = app(store, guard);
    let (u, other) = (user(), user());
    let id = forked(&app, &u).await;
    say(&app, &id, &u, "u2b", None).await;
    say(&app, &id, &u, "r2", Some(Value::Null)).await;
    let session = app.get(&session_uri(&id, &u)).await;
    let expected = vec![
        ("u1".to_owned(), Value::Null),
        ("a1".to_owned(), json!("u1")),
        ("u2".to_owned(), json!("a1")),
        ("a2".to_owned(), json!("u2")),
        ("a1b".to_owned(), json!("u1")),
        ("u2b".to_owned(), json!("a1b")),
        ("r2".to_owned(), Value::Null),
    ];
    for limit in [1, 3, 7, 1000] {
        let (messages, currents) = whole_tree(&app, &id, &u, limit).await;
        assert_eq!(edges(&messages), expected, "limit {limit}");
        assert!(currents.iter().all(|c| c == "r2"), "{currents:?}");
        assert_eq!(currents.len(), 7_usize.div_ceil(limit as usize).max(1));
    }
    let first = format!("/api/chat/sessions/{id}/tree?user_id={u}&limit=3");
    let r = app.get(&first).await.expect_status(StatusCode::OK);
    assert_eq!(
        r.header("etag"),
        session.header("etag"),
        "the session's version"
    );
    let page = r.json();
    assert_eq!(page["messages"][0]["content"], "u1");
    assert_eq!(sorted_keys(&page["messages"][0]), message_members());
    let token = page["continuation_token"].as_str().unwrap().to_owned();
    app.request(Method::GET, &first)
        .header("if-none-match", session.header("etag").unwrap())
        .send()
        .await
        .expect_status(StatusCode::NOT_MODIFIED);
    // A message appended while a client pages comes on a later page.
    say(&app, &id, &u, "late", None).await;
    let mut rest = Vec::new();
    let mut next = Some(token);
    while let Some(token) = next {
        let mut page = app
            .get_ok_json(&format!("{first}&continuation_token={token}"))
            .await;
        rest.append(page["messages"].as_array_mut().unwrap());
        next = page["continuation_token"].as_str().map(str::to_owned);
    }
    assert_eq!(
        texts(&Value::Array(rest), "id"),
        ["a2", "a1b", "u2b", "r2", "late"]
    );
    for bad in [
        "limit=0",
        "limit=1001",
        "limit=ten",
        "continuation_token=forged",
    ] {
        app.get(&format!("/api/chat/sessions/{id}/tree?user_id={u}&{bad}"))
            .await
            .expect_problem(StatusCode::UNPROCESSABLE_ENTITY);
    }
    app.get(&format!("/api/chat/sessions/{id}/tree?user_id={other}"))
        .await
        .expect_problem(StatusCode::NOT_FOUND);
    app.get(&format!("/api/chat/sessions/session_none/tree?user_id={u}"))
        .await
        .expect_problem(StatusCode::NOT_FOUND);
    let empty = app.create_session(&u).await;
    let page = app
        .get_ok_json(&format!("/api/chat/sessions/{empty}/tree?user_id={u}"))
        .await;
    assert_eq!(
        page,
        json!({ "messages": [], "current_message_id": null, "continuation_token": null })
    );
}
