//! The lifecycle endpoints over HTTP (issue 10): session downloads, the
//! user's export stream, erase, and `archived_at`.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use chat_sessions::{api::ApiSettings, auth::AuthMode, store::DynStore};
use serde_json::{Value, json};

use super::{app, session_uri, user};
use crate::common::{Guard, TestApp, TestResponse};

/// Creates a session named `name` for `owner` with `contents` as messages
/// (alternately user and assistant); its id.
async fn session_with(app: &TestApp, owner: &str, name: &str, contents: &[&str]) -> String {
    let r = app
        .post(
            "/api/chat/sessions",
            json!({ "user_id": owner, "session_name": name, "context": { "topic": "trip" } }),
        )
        .await
        .expect_status(StatusCode::CREATED);
    let id = r.json()["id"].as_str().unwrap().to_owned();
    for (i, content) in contents.iter().enumerate() {
        let kind = if i % 2 == 0 { "user" } else { "assistant" };
        app.post(
            &format!("/api/chat/sessions/{id}/messages?user_id={owner}"),
            json!({ "content": content, "message_type": kind, "metadata": { "i": i } }),
        )
        .await
        .expect_status(StatusCode::CREATED);
    }
    id
}

/// The lines of an NDJSON body, parsed; each line ends with a newline.
fn ndjson_lines(r: &TestResponse) -> Vec<Value> {
    let text = std::str::from_utf8(&r.body).unwrap();
    assert!(text.is_empty() || text.ends_with('\n'), "{text}");
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}")))
        .collect()
}

pub async fn export_session_in_each_format_as_a_download(store: DynStore, guard: Guard) {
    let app = app(store, guard);
    let u = user();
    let contents = ["Hallo **Welt**", "Grüße aus Köln 🚆\nzweite Zeile"];
    let id = session_with(&app, &u, "Reise nach Köln", &contents).await;
    let session = app.get_ok_json(&session_uri(&id, &u)).await;
    let base = format!("/api/chat/sessions/{id}/export?user_id={u}");

    // json (the default): the session as GET returns it.
    for uri in [base.clone(), format!("{base}&format=json")] {
        let r = app.get(&uri).await.expect_status(StatusCode::OK);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(
            r.header("content-disposition"),
            Some(
                "attachment; filename=\"Reise nach K-ln.json\"; filename*=UTF-8''Reise%20nach%20K%C3%B6ln.json"
            )
        );
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert_eq!(r.json(), session);
    }

    let r = app
        .get(&format!("{base}&format=markdown"))
        .await
        .expect_status(StatusCode::OK);
    assert_eq!(
        r.header("content-type"),
        Some("text/markdown; charset=utf-8")
    );
    assert!(
        r.header("content-disposition")
            .unwrap()
            .starts_with("attachment; filename=\"Reise nach K-ln.md\"")
    );
    let text = std::str::from_utf8(&r.body).unwrap();
    let time = |i: usize| {
        let t = session["messages"][i]["created_at"].as_str().unwrap();
        format!("{} {} UTC", &t[..10], &t[11..19])
    };
    assert_eq!(
        text,
        format!(
            "# Reise nach Köln\n\n## User · {}\n\n{}\n\n## Assistant · {}\n\n{}\n",
            time(0),
            contents[0],
            time(1),
            contents[1]
        )
    );

    let r = app
        .get(&format!("{base}&format=ndjson"))
        .await
        .expect_status(StatusCode::OK);
    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
    assert!(
        r.header("content-disposition")
            .unwrap()
            .starts_with("attachment; filename=\"Reise nach K-ln.ndjson\"")
    );
    let lines = ndjson_lines(&r);
    assert_eq!(lines.len(), 3);
    let mut head = session.clone();
    head.as_object_mut().unwrap().remove("messages");
    head["type"] = json!("session");
    head["current_message_id"] = session["messages"][1]["id"].clone();
    assert_eq!(lines[0], head);
    for (i, line) in lines[1..].iter().enumerate() {
        let mut message = session["messages"][i].clone();
        message["type"] = json!("message");
        message["session_id"] = json!(id);
        assert_eq!(*line, message);
    }

    // A session without a name is named by its id.
    let unnamed = app.create_session(&u).await;
    let r = app
        .get(&format!(
            "/api/chat/sessions/{unnamed}/export?user_id={u}&format=markdown"
        ))
        .await
        .expect_status(StatusCode::OK);
    assert_eq!(
        r.header("content-disposition"),
        Some(format!("attachment; filename=\"{unnamed}.md\"").as_str())
    );
    assert_eq!(
        std::str::from_utf8(&r.body).unwrap(),
        format!("# Session {unnamed}\n")
    );
}

pub async fn export_session_refuses_bad_input_and_other_users(store: DynStore, guard: Guard) {
    let app = app(store, guard);
    let (alice, bob) = (user(), user());
    let id = session_with(&app, &alice, "mine", &["hi"]).await;
    let uri = format!("/api/chat/sessions/{id}/export");
    app.get(&format!("{uri}?user_id={alice}&format=pdf"))
        .await
        .expect_problem(StatusCode::UNPROCESSABLE_ENTITY);
    app.get(&format!("{uri}?user_id={bob}"))
        .await
        .expect_problem(StatusCode::NOT_FOUND);
    app.get(&format!("/api/chat/sessions/nope/export?user_id={alice}"))
        .await
        .expect_problem(StatusCode::NOT_FOUND);
    app.get(&format!("/api/chat/sessions/a%2Fb/export?user_id={alice}"))
        .await
        .expect_problem(StatusCode::UNPROCESSABLE_ENTITY);
    app.request(Method::POST, &format!("{uri}?user_id={alice}"))
        .send()
        .await
        .expect_problem(StatusCode::METHOD_NOT_ALLOWED);
}

pub async fn export_all_streams_every_session_of_the_caller(store: DynStore, guard: Guard) {
    let app = app(store, guard);
    let (alice, bob) = (user(), user());
    let first = session_with(&app, &alice, "first", &["a", "b", "c"]).await;
    let archived = session_with(&app, &alice, "archived", &["old"]).await;
    app.put(
        &session_uri(&archived, &alice),
        json!({ "is_active": false }),
    )
    .await
    .expect_status(StatusCode::OK);
    let empty = session_with(&app, &alice, "empty", &[]).await;
    session_with(&app, &bob, "bob's", &["not alice's"]).await;

    let r = app
        .get(&format!("/api/chat/export?user_id={alice}"))
        .await
        .expect_status(StatusCode::OK);
    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
    let disposition = r.header("content-disposition").unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"chat-export-")
            && disposition.ends_with(".ndjson\""),
        "{disposition}"
    );
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let lines = ndjson_lines(&r);
    let mut sessions = Vec::new();
    let mut current: Option<String> = None;
    for line in &lines {
        match line["type"].as_str().unwrap() {
            "session" => {
                assert!(line.get("messages").is_none());
                assert_eq!(line["user_id"], alice.as_str());
                let id = line["id"].as_str().unwrap().to_owned();
                let full = app.get_ok_json(&session_uri(&id, &alice)).await;
                let mut expected = full.clone();
                expected.as_object_mut().unwrap().remove("messages");
                expected["type"] = json!("session");
                expected["current_message_id"] = full["messages"]
                    .as_array()
                    .unwrap()
                    .last()
                    .map_or(Value::Null, |m| m["id"].clone());
                assert_eq!(*line, expected);
                sessions.push((id.clone(), full["messages"].clone(), Vec::new()));
                current = Some(id);
            }
            "message" => {
                assert_eq!(line["session_id"].as_str(), current.as_deref());
                let mut message = line.clone();
                let object = message.as_object_mut().unwrap();
                object.remove("type");
                object.remove("session_id");
                sessions.last_mut().unwrap().2.push(message);
            }
            other => panic!("unexpected line type {other}"),
        }
    }
    let ids: Vec<&str> = sessions.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(ids, [first.as_str(), archived.as_str(), empty.as_str()]);
    for (id, expected, got) in &sessions {
        assert_eq!(Value::Array(got.clone()), *expected, "{id}");
    }
    assert_eq!(lines.len(), 3 + 4);

    // A user with nothing gets an empty export.
    let r = app
        .get(&format!("/api/chat/export?user_id={}", user()))
        .await
        .expect_status(StatusCode::OK);
    assert!(r.body.is_empty());
    app.get("/api/chat/export?user_id=")
        .await
        .expect_problem(StatusCode::UNPROCESSABLE_ENTITY);
}

pub async fn exports_follow_the_easy_auth_principal(store: DynStore, guard: Guard) {
    let settings = ApiSettings {
        auth_mode: AuthMode::EasyAuth,
        ..ApiSettings::default()
    };
    let app = TestApp::over(store, settings, guard);
    let (alice, bob) = (user(), user());
    app.get("/api/chat/export")
        .await
        .expect_problem(StatusCode::UNAUTHORIZED);
    let as_principal = |principal: &str, method: Method, uri: &str| {
        app.request(method, uri)
            .header("x-ms-client-principal-id", principal)
    };
    let id = as_principal(&alice, Method::POST, "/api/chat/sessions")
        .json(&json!({ "session_name": "mine" }))
        .send()
        .await
        .expect_status(StatusCode::CREATED)
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    as_principal(
        &bob,
        Method::GET,
        &format!("/api/chat/sessions/{id}/export"),
    )
    .send()
    .await
    .expect_problem(StatusCode::NOT_FOUND);
    as_principal(
        &alice,
        Method::GET,
        &format!("/api/chat/export?user_id={bob}"),
    )
    .send()
    .await
    .expect_problem(StatusCode::FORBIDDEN);
    let bobs = as_principal(&bob, Method::GET, "/api/chat/export")
        .send()
        .await
        .expect_status(StatusCode::OK);
    assert!(bobs.body.is_empty());
    let alices = as_principal(&alice, Method::GET, "/api/chat/export")
        .send()
        .await
        .expect_status(StatusCode::OK);
    assert_eq!(ndjson_lines(&alices)[0]["id"], id.as_str());
    // Bob cannot erase Alice, even naming her.
    as_principal(&bob, Method::POST, "/api/chat/erase")
        .json(&json!({ "confirm": alice }))
        .send()
        .await
        .expect_problem(StatusCode::UNPROCESSABLE_ENTITY);
    as_principal(
        &bob,
        Method::POST,
        &format!("/api/chat/erase?user_id={alice}"),
    )
    .json(&json!({ "confirm": alice }))
    .send()
    .await
    .expect_problem(StatusCode::FORBIDDEN);
    as_principal(&alice, Method::GET, &format!("/api/chat/sessions/{id}"))
        .send()
        .await
        .expect_status(StatusCode::OK);
    let erased = as_principal(&alice, Method::POST, "/api/chat/erase")
        .json(&json!({ "confirm": alice }))
        .send()
        .await
        .expect_status(StatusCode::OK)
        .json();
    assert_eq!(erased["sessions_deleted"], 1);
}

pub async fn erase_refuses_anything_but_the_callers_own_id(store: DynStore, guard: Guard) {
    let app = app(store, guard);
    let alice = user();
    let id = session_with(&app, &alice, "keep", &["still here"]).await;
    let before = app.get_ok_json(&session_uri(&id, &alice)).await;
    let erase = format!("/api/chat/erase?user_id={alice}");
    for body in [
        json!({ "confirm": "someone else" }),
        json!({ "confirm": alice.to_uppercase() }),
        json!({ "confirm": format!(" {alice}") }),
        json!({}),
        json!({ "confirm": alice, "extra": 1 }),
        json!({ "confirm": 5 }),
    ] {
        app.post(&erase, body)
            .await
            .expect_problem(StatusCode::UNPROCESSABLE_ENTITY);
    }
    // Nobody to erase without a user.
    app.post("/api/chat/erase", json!({ "confirm": "" }))
        .await
        .expect_problem(StatusCode::UNPROCESSABLE_ENTITY);
    app.request(Method::POST, &erase)
        .raw(Some("application/json"), "{\"confirm\":")
        .send()
        .await
        .expect_problem(StatusCode::BAD_REQUEST);
    app.request(Method::POST, &erase)
        .raw(
            Some("application/x-www-form-urlencoded"),
            format!("confirm={alice}"),
        )
        .send()
        .await
        .expect_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    app.get(&erase)
        .await
        .expect_problem(StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(app.get_ok_json(&session_uri(&id, &alice)).await, before);
}

pub async fn erase_deletes_everything_of_the_caller_and_nothing_else(
    store: DynStore,
    guard: Guard,
) {
    let app = app(store, guard);
    let (alice, bob) = (user(), user());
    let a1 = session_with(&app, &alice, "one", &["a", "b"]).await;
    let a2 = session_with(&app, &alice, "two", &["c"]).await;
    let b1 = session_with(&app, &bob, "bob", &["d"]).await;
    let bob_before = app.get_ok_json(&session_uri(&b1, &bob)).await;

    let r = app
        .post(
            "/api/chat/erase",
            json!({ "confirm": alice, "user_id": alice }),
        )
        .await
        .expect_status(StatusCode::OK);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.json(),
        json!({ "sessions_deleted": 2, "messages_deleted": 3, "legacy_messages_deleted": 0, "complete": true })
    );
    for id in [&a1, &a2] {
        app.get(&session_uri(id, &alice))
            .await
            .expect_problem(StatusCode::NOT_FOUND);
    }
    let export = app
        .get(&format!("/api/chat/export?user_id={alice}"))
        .await
        .expect_status(StatusCode::OK);
    assert!(export.body.is_empty());
    let listed = app
        .get_ok_json(&format!("/api/chat/sessions?user_id={alice}"))
        .await;
    assert_eq!(listed["sessions"], json!([]));
    assert_eq!(app.get_ok_json(&session_uri(&b1, &bob)).await, bob_before);
    // Again: nothing left to delete.
    let again = app
        .post(
            &format!("/api/chat/erase?user_id={alice}"),
            json!({ "confirm": alice }),
        )
        .await
        .expect_status(StatusCode::OK)
        .json();
    assert_eq!(
        again,
        json!({ "sessions_deleted": 0, "messages_deleted": 0, "legacy_messages_deleted": 0, "complete": true })
    );
}

pub async fn erase_resumes_when_a_request_runs_out_of_time(store: DynStore, guard: Guard) {
    let settings = ApiSettings {
        erase_budget: Duration::ZERO,
        ..ApiSettings::default()
    };
    let app = TestApp::over(store, settings, guard);
    let alice = user();
    for _ in 0..120 {
        app.create_session(&alice).await;
    }
    let erase = format!("/api/chat/erase?user_id={alice}");
    let mut total = 0;
    let mut requests = 0;
    loop {
        let r = app
            .post(&erase, json!({ "confirm": alice }))
            .await
            .expect_status(StatusCode::OK)
            .json();
        requests += 1;
        total += r["sessions_deleted"].as_u64().unwrap();
        if r["complete"] == json!(true) {
            break;
        }
        assert!(r["sessions_deleted"].as_u64().unwrap() > 0);
        assert!(requests < 100);
    }
    assert!(
        requests > 1,
        "120 sessions with no time: more than one request"
    );
    assert_eq!(total, 120);
    let listed = app
        .get_ok_json(&format!("/api/chat/sessions?user_id={alice}"))
        .await;
    assert_eq!(listed["sessions"], json!([]));
}

pub async fn archived_at_follows_is_active(store: DynStore, guard: Guard) {
    let app = app(store, guard);
    let alice = user();
    let id = app.create_session(&alice).await;
    let uri = session_uri(&id, &alice);
    assert_eq!(app.get_ok_json(&uri).await["archived_at"], Value::Null);
    let archived = app
        .put(&uri, json!({ "is_active": false }))
        .await
        .expect_status(StatusCode::OK)
        .json();
    let at = archived["archived_at"].as_str().unwrap().to_owned();
    assert_eq!(archived["updated_at"].as_str().unwrap(), at);
    let renamed = app
        .put(&uri, json!({ "session_name": "later", "is_active": false }))
        .await
        .expect_status(StatusCode::OK)
        .json();
    assert_eq!(renamed["archived_at"], at.as_str(), "kept while archived");
    let listed = app
        .get_ok_json(&format!(
            "/api/chat/sessions?user_id={alice}&is_active=false"
        ))
        .await;
    assert_eq!(listed["sessions"][0]["archived_at"], at.as_str());
    let restored = app
        .put(&uri, json!({ "is_active": true }))
        .await
        .expect_status(StatusCode::OK)
        .json();
    assert_eq!(restored["archived_at"], Value::Null);
    assert_eq!(app.get_ok_json(&uri).await["archived_at"], Value::Null);
}
