//! Edits and deletes of one message, and who may do them: another user's
//! session, the write rate, the methods of the message route.

use axum::http::{Method, StatusCode};
use chat_sessions::{api::ApiSettings, auth::AuthMode, limits::LimitSettings, store::DynStore};
use futures::FutureExt as _;
use serde_json::{Value, json};

use super::{
    app,
    tree::{forked, message_uri, say, session_uri, whole_tree},
    user,
};
use crate::common::{Guard, TestApp, json::texts};

pub async fn patch_edits_a_message_in_place_under_if_match(store: DynStore, guard: Guard) {
    let app = app(store, guard);
    let (u, other) = (user(), user());
    let id = forked(&app, &u).await;
    let uri = session_uri(&id, &u);
    let before = app.get(&uri).await;
    let etag = before.header("etag").unwrap().to_owned();
    let original = before.json()["messages"][1].clone();
    let edit = |tag: &str, message: &str, body: Value| {
        app.request(Method::PATCH, &message_uri(&id, message, &u))
            .header("if-match", tag)
            .json(&body)
            .send()
    };
    edit("\"stale\"", "a1b", json!({ "content": "lost" }))
        .await
        .expect_problem(StatusCode::PRECONDITION_FAILED);
    for body in [
        json!({}),
        json!({ "content": null, "metadata": null }),
        json!({ "content": "" }),
        json!({ "content": "   " }),
        json!({ "content": 5 }),
        json!({ "metadata": [] }),
        json!({ "content": "x", "message_type": "assistant" }),
        json!({ "content": "x", "parent_id": "u1" }),
    ] {
        edit(&etag, "a1b", body.clone())
            .await
            .expect_problem(StatusCode::UNPROCESSABLE_ENTITY);
    }
    assert_eq!(
        app.get_ok_json(&uri).await,
        before.json(),
        "nothing changed"
    );
    let r = edit(&etag, "a1b", json!({ "content": "better answer" }))
        .await
        .expect_status(StatusCode::OK);
    let edited_etag = r.header("etag").unwrap().to_owned();
    assert_ne!(edited_etag, etag);
    let edited = r.json();
    assert_eq!(edited["content"], "better answer");
    assert!(edited["edited_at"].as_str().unwrap() >= original["created_at"].as_str().unwrap());
    for same in [
        "id",
        "parent_id",
        "created_at",
        "message_type",
        "metadata",
        "user_id",
    ] {
        assert_eq!(edited[same], original[same], "{same}");
    }
    // What every read shows next: the GET (whose rendering was cached),
    // the pager and the context.
    let got = app.get(&uri).await;
    assert_eq!(got.header("etag"), Some(edited_etag.as_str()));
    // The ETag read before the edit is stale now.
    edit(&etag, "a1b", json!({ "content": "lost" }))
        .await
        .expect_problem(StatusCode::PRECONDITION_FAILED);
    let unchanged = app.get(&uri).await;
    assert_eq!(unchanged.header("etag"), Some(edited_etag.as_str()));
    assert_eq!(unchanged.json(), got.json(), "a 412 changes nothing");
    // The session read also shows the message's alternatives.
    let mut shown = got.json()["messages"][1].clone();
    assert!(shown["siblings"].is_array(), "{shown}");
    shown.as_object_mut().unwrap().remove("siblings");
    assert_eq!(shown, edited);
    let page = app
        .get_ok_json(&format!(
            "/api/chat/sessions/{id}/messages?user_id={u}&limit=1"
        ))
        .await;
    let mut paged = page["messages"][0].clone();
    paged.as_object_mut().unwrap().remove("siblings");
    assert_eq!(paged, edited);
    let context = app
        .get_ok_json(&format!(
            "/api/chat/sessions/{id}/context?user_id={u}&max_tokens=1000"
        ))
        .await;
    assert_eq!(context["messages"][1]["content"], "better answer");
    // Metadata alone, of a message on another branch, unconditionally.
    let r = app
        .patch(
            &message_uri(&id, "u2", &u),
            json!({ "metadata": { "flag": true } }),
        )
        .await
        .expect_status(StatusCode::OK);
    assert_eq!(r.json()["metadata"], json!({ "flag": true }));
    assert_eq!(r.json()["content"], "u2");
    let problem = app
        .patch(&message_uri(&id, "nope", &u), json!({ "content": "x" }))
        .await
        .expect_problem(StatusCode::NOT_FOUND);
    assert!(
        problem["detail"].as_str().unwrap().contains("no message"),
        "{problem}"
    );
    for uri in [
        message_uri(&id, "a1b", &other),
        message_uri("session_none", "a1b", &u),
    ] {
        let problem = app
            .patch(&uri, json!({ "content": "x" }))
            .await
            .expect_problem(StatusCode::NOT_FOUND);
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("no chat session")
        );
    }
    app.patch(&message_uri(&id, "bad%20id", &u), json!({ "content": "x" }))
        .await
        .expect_problem(StatusCode::UNPROCESSABLE_ENTITY);
}

pub async fn delete_removes_a_message_or_its_subtree_under_if_match(store: DynStore, guard: Guard) {
    let app = app(store, guard);
    let (u, other) = (user(), user());
    let id = forked(&app, &u).await;
    let uri = session_uri(&id, &u);
    let etag = app.etag(&uri).await;
    let delete = |message: &str, query: &str, tag: Option<&str>| {
        let mut request = app.request(
            Method::DELETE,
            &format!("{}{query}", message_uri(&id, message, &u)),
        );
        if let Some(tag) = tag {
            request = request.header("if-match", tag);
        }
        request.send()
    };
    delete("a1", "", Some("\"stale\""))
        .await
        .expect_problem(StatusCode::PRECONDITION_FAILED);
    delete("a1", "&subtree=maybe", None)
        .await
        .expect_problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.etag(&uri).await, etag, "nothing changed");
    // a1 alone, off the current branch: its reply now follows its parent.
    let r = delete("a1", "", Some(&etag))
        .await
        .expect_status(StatusCode::NO_CONTENT);
    assert!(r.body.is_empty());
    let after = app.get(&uri).await;
    assert_eq!(r.header("etag"), after.header("etag"));
    assert_ne!(r.header("etag"), Some(etag.as_str()));
    // The ETag read before the delete is stale now.
    delete("u2", "", Some(&etag))
        .await
        .expect_problem(StatusCode::PRECONDITION_FAILED);
    let unchanged = app.get(&uri).await;
    assert_eq!(unchanged.header("etag"), after.header("etag"));
    assert_eq!(unchanged.json(), after.json(), "a 412 changes nothing");
    let session = after.json();
    assert_eq!(texts(&session["messages"], "id"), ["u1", "a1b"]);
    assert_eq!(session["total_message_count"], 4);
    let (tree, _) = whole_tree(&app, &id, &u, 100).await;
    assert_eq!(tree[1]["id"], "u2");
    assert_eq!(tree[1]["parent_id"], "u1");
    // u2 and everything under it.
    delete("u2", "&subtree=true", None)
        .await
        .expect_status(StatusCode::NO_CONTENT);
    let (tree, _) = whole_tree(&app, &id, &u, 100).await;
    assert_eq!(texts(&Value::Array(tree), "id"), ["u1", "a1b"]);
    // The current branch's last message: the branch ends at its parent.
    delete("a1b", "&subtree=false", None)
        .await
        .expect_status(StatusCode::NO_CONTENT);
    let session = app.get_ok_json(&uri).await;
    assert_eq!(texts(&session["messages"], "id"), ["u1"]);
    assert_eq!(session["message_count"], 1);
    assert_eq!(session["total_message_count"], 1);
    assert_eq!(
        session["last_message_at"],
        session["messages"][0]["created_at"]
    );
    // In the middle of the current branch: the rest moves up.
    say(&app, &id, &u, "x2", None).await;
    say(&app, &id, &u, "x3", None).await;
    delete("x2", "", None)
        .await
        .expect_status(StatusCode::NO_CONTENT);
    let session = app.get_ok_json(&uri).await;
    assert_eq!(texts(&session["messages"], "id"), ["u1", "x3"]);
    assert_eq!(session["messages"][1]["parent_id"], "u1");
    assert_eq!(say(&app, &id, &u, "x4", None).await["parent_id"], "x3");
    let problem = delete("a1", "", None)
        .await
        .expect_problem(StatusCode::NOT_FOUND);
    assert!(problem["detail"].as_str().unwrap().contains("no message"));
    app.delete(&message_uri(&id, "u1", &other))
        .await
        .expect_problem(StatusCode::NOT_FOUND);
    assert_eq!(app.get_ok_json(&uri).await["message_count"], 3);
}

pub async fn another_users_session_is_404_on_every_tree_endpoint_under_easy_auth(
    store: DynStore,
    guard: Guard,
) {
    let settings = ApiSettings {
        auth_mode: AuthMode::EasyAuth,
        ..ApiSettings::default()
    };
    let app = TestApp::over(store, settings, guard);
    let (alice, bob) = (user(), user());
    let as_user = |who: &str, method: Method, uri: &str| {
        app.request(method, uri)
            .header("x-ms-client-principal-id", who)
    };
    let id = as_user(&alice, Method::POST, "/api/chat/sessions")
        .send()
        .await
        .expect_status(StatusCode::CREATED)
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let base = format!("/api/chat/sessions/{id}");
    as_user(&alice, Method::POST, &format!("{base}/messages"))
        .json(&json!({ "id": "m1", "content": "mine", "message_type": "user" }))
        .send()
        .await
        .expect_status(StatusCode::CREATED);
    let requests = [
        (Method::GET, format!("{base}?message_id=m1"), None),
        (
            Method::PUT,
            base.clone(),
            Some(json!({ "current_message_id": "m1" })),
        ),
        (Method::GET, format!("{base}/tree"), None),
        (
            Method::POST,
            format!("{base}/messages"),
            Some(json!({ "content": "x", "message_type": "user", "parent_id": "m1" })),
        ),
        (
            Method::PATCH,
            format!("{base}/messages/m1"),
            Some(json!({ "content": "x" })),
        ),
        (Method::DELETE, format!("{base}/messages/m1"), None),
    ];
    // Alice's session and its tree as they are before Bob tries.
    let read = |uri: String| {
        as_user(&alice, Method::GET, &uri)
            .send()
            .map(|r| r.expect_status(StatusCode::OK))
    };
    let session = read(base.clone()).await;
    let etag = session.header("etag").unwrap().to_owned();
    let tree = read(format!("{base}/tree")).await.json();
    for (method, uri, body) in &requests {
        let mut request = as_user(&bob, method.clone(), uri);
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.expect_problem(StatusCode::NOT_FOUND);
    }
    let after = read(base.clone()).await;
    assert_eq!(
        after.header("etag"),
        Some(etag.as_str()),
        "Bob changed nothing"
    );
    assert_eq!(after.json(), session.json());
    assert_eq!(read(format!("{base}/tree")).await.json(), tree);
    for (method, uri, body) in requests {
        let mut request = as_user(&alice, method.clone(), &uri);
        if let Some(body) = &body {
            request = request.json(body);
        }
        assert!(request.send().await.status.is_success(), "{method} {uri}");
    }
}

pub async fn an_edit_counts_against_the_write_rate_and_the_routes_know_their_methods(
    store: DynStore,
    guard: Guard,
) {
    let settings = ApiSettings {
        limits: LimitSettings {
            user_write_rate: 0.001,
            user_write_burst: 3,
            ..LimitSettings::off()
        },
        ..ApiSettings::default()
    };
    let app = TestApp::over(store, settings, guard);
    let u = user();
    let id = app.create_session(&u).await;
    say(&app, &id, &u, "m1", None).await;
    let uri = message_uri(&id, "m1", &u);
    let edit = || app.patch(&uri, json!({ "content": "edited" }));
    edit().await.expect_status(StatusCode::OK);
    let r = edit().await;
    assert!(r.header("retry-after").is_some());
    let problem = r.expect_problem(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(problem["type"], "urn:chat-sessions:problem:rate-limited");
    // Deletes do not count, as deleting a session does not.
    app.delete(&message_uri(&id, "m1", &u))
        .await
        .expect_status(StatusCode::NO_CONTENT);
    let r = app.get(&message_uri(&id, "m1", &u)).await;
    let allow = r.header("allow").unwrap_or("").to_owned();
    r.expect_problem(StatusCode::METHOD_NOT_ALLOWED);
    assert!(
        allow.contains("PATCH") && allow.contains("DELETE"),
        "{allow}"
    );
}

/// The plain `GET` marks the alternatives of the current branch's messages
/// too (`siblings`), as the branch read and the switch do.
pub async fn the_plain_get_shows_siblings(store: DynStore, guard: Guard) {
    let app = app(store, guard);
    let u = user();
    let id = forked(&app, &u).await;
    let session = app.get_ok_json(&session_uri(&id, &u)).await;
    assert_eq!(session["messages"][1]["siblings"], json!(["a1", "a1b"]));
    assert!(session["messages"][0].get("siblings").is_none());
    let tail = app
        .get_ok_json(&format!("{}&messages_limit=1", session_uri(&id, &u)))
        .await;
    assert_eq!(tail["messages"][0]["siblings"], json!(["a1", "a1b"]));
}
