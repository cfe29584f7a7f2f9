//! Search over HTTP (`GET /api/chat/search`) on the embedded store and the
//! local Cosmos server; through the real binary (serve and the `search`
//! subcommand); the embedded index's own promises (built for files made
//! before search, always in step with the data, bounded work per page); and
//! hits in sealed pages of long Cosmos sessions.

use std::{collections::HashSet, sync::Arc};

use axum::http::StatusCode;
use chat_sessions::{
    api::ApiSettings,
    auth::AuthMode,
    search::SearchTerms,
    store::{
        cosmos::SealPolicy,
        prelude::*,
        sqlite::{Durability, SqliteStore},
    },
};
use futures::TryStreamExt as _;
use serde_json::{Value, json};

use crate::{
    common::{TestApp, binary::Binary, cosmos},
    conformance::search::search_all,
};

/// Percent-encodes a query parameter value.
fn enc(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn user() -> String {
    format!("user_{}", uuid::Uuid::new_v4().simple())
}

fn search_uri(user: &str, q: &str) -> String {
    format!("/api/chat/search?user_id={user}&q={}", enc(q))
}

/// One `#[tokio::test]` per behaviour; `$factory` yields `(Arc<S>, guard)`.
macro_rules! search_http_suite {
    ($factory:expr) => {
        search_http_suite!(@tests $factory;
            search_answers_hits_in_the_documented_shape,
            blank_or_overlong_q_is_422,
            bad_limit_or_token_is_422,
            any_characters_in_q_answer_200,
            pages_walk_every_hit_once,
            local_mode_searches_the_given_users_history_only,
        );
    };
    (@tests $factory:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let (store, guard) = $factory.await;
                let app = $crate::common::TestApp::searchable(
                    store, chat_sessions::api::ApiSettings::default(), Box::new(guard));
                $crate::search::$name(app).await;
            }
        )*
    };
}

mod sqlite {
    search_http_suite!(async {
        let dir = tempfile::tempdir().unwrap();
        let store = super::SqliteStore::open(dir.path(), super::Durability::Normal).unwrap();
        (std::sync::Arc::new(store), dir)
    });
}

mod cosmos_server {
    search_http_suite!(async {
        let (store, client) = crate::common::cosmos::server_cosmos_store().await;
        (std::sync::Arc::new(store), client)
    });
}

/// A session of `user` named `name` holding `contents`; its id.
async fn session(app: &TestApp, user: &str, name: &str, contents: &[&str]) -> String {
    let id = app
        .post(
            "/api/chat/sessions",
            json!({"user_id": user, "session_name": name}),
        )
        .await
        .expect_status(StatusCode::CREATED)
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for content in contents {
        app.post(
            &format!("/api/chat/sessions/{id}/messages?user_id={user}"),
            json!({"content": content, "message_type": "assistant"}),
        )
        .await
        .expect_status(StatusCode::CREATED);
    }
    id
}

pub async fn search_answers_hits_in_the_documented_shape(app: TestApp) {
    let u = user();
    let id = session(
        &app,
        &u,
        "Trip to Lisbon",
        &["…the tram to Belém leaves from…"],
    )
    .await;
    let r = app
        .get(&search_uri(&u, "TRAM belém"))
        .await
        .expect_status(StatusCode::OK);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let body = r.json();
    let mut keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["continuation_token", "results"]);
    assert_eq!(body["continuation_token"], Value::Null);
    let hits = body["results"].as_array().unwrap();
    assert_eq!(hits.len(), 1);
    let hit = hits[0].as_object().unwrap();
    let mut keys: Vec<&str> = hit.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "created_at",
            "message_id",
            "message_type",
            "session_id",
            "session_name",
            "snippet"
        ]
    );
    assert_eq!(hit["session_id"], id.as_str());
    assert_eq!(hit["session_name"], "Trip to Lisbon");
    assert_eq!(hit["message_type"], "assistant");
    assert_eq!(hit["snippet"], "…the tram to Belém leaves from…");
    // The hit opens, and the message is there with that time.
    let session = app
        .get_ok_json(&format!("/api/chat/sessions/{id}?user_id={u}"))
        .await;
    let m = &session["messages"][0];
    assert_eq!(m["id"], hit["message_id"]);
    assert_eq!(m["created_at"], hit["created_at"]);
    // A name hit has no message.
    let names = app.get_ok_json(&search_uri(&u, "lisbon")).await;
    let name_hit = &names["results"][0];
    assert_eq!(name_hit["message_id"], Value::Null);
    assert_eq!(name_hit["message_type"], Value::Null);
    assert_eq!(name_hit["created_at"], session["updated_at"]);
}

pub async fn blank_or_overlong_q_is_422(app: TestApp) {
    let u = user();
    session(&app, &u, "x", &["hello"]).await;
    for uri in [
        format!("/api/chat/search?user_id={u}"),
        search_uri(&u, ""),
        search_uri(&u, "   \t\n "),
        search_uri(&u, &"a".repeat(513)),
        search_uri(&u, &"é".repeat(513)),
    ] {
        let problem = app
            .get(&uri)
            .await
            .expect_problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            problem["detail"].as_str().unwrap().contains('q'),
            "{problem}"
        );
    }
    app.get(&search_uri(&u, &"é".repeat(512)))
        .await
        .expect_status(StatusCode::OK);
}

pub async fn bad_limit_or_token_is_422(app: TestApp) {
    let u = user();
    let base = search_uri(&u, "hello");
    for extra in [
        "&limit=0",
        "&limit=51",
        "&limit=abc",
        "&limit=-1",
        "&is_active=maybe",
        "&continuation_token=not-a-token",
        "&continuation_token=czEKeAp5Cno",
    ] {
        app.get(&format!("{base}{extra}"))
            .await
            .expect_problem(StatusCode::UNPROCESSABLE_ENTITY);
    }
    for ok in [
        "&limit=1",
        "&limit=50",
        "&is_active=false",
        "&continuation_token=",
    ] {
        app.get(&format!("{base}{ok}"))
            .await
            .expect_status(StatusCode::OK);
    }
}

pub async fn any_characters_in_q_answer_200(app: TestApp) {
    let u = user();
    session(
        &app,
        &u,
        "odd",
        &["SELECT * FROM c WHERE 1=1; -- \"x\" 50% a_b \\ (NEAR) AND OR"],
    )
    .await;
    for q in [
        "\"",
        "\"unterminated",
        "*",
        "a*",
        "-",
        "-x",
        ":",
        "col:val",
        "(",
        ")",
        "(a OR b)",
        "AND",
        "OR",
        "NOT",
        "NEAR",
        "NEAR(a b)",
        "%",
        "_",
        "\\",
        "\\\\\\",
        "'; DROP TABLE messages; --",
        "SELECT * FROM c",
        "^$.|?+[]{}",
        "(?=x)",
        "\u{0}",
        "\u{7f}",
        "🦀",
        "x\u{301}",
        "İ",
    ] {
        let body = app.get_ok_json(&search_uri(&u, q)).await;
        let terms = SearchTerms::parse(q).unwrap();
        for hit in body["results"].as_array().unwrap() {
            assert!(
                terms.matches(hit["snippet"].as_str().unwrap()),
                "{q}: {hit}"
            );
        }
    }
    // Literal: the punctuation is found where it is written.
    let hits = app.get_ok_json(&search_uri(&u, "50% a_b (NEAR)")).await;
    assert_eq!(hits["results"].as_array().unwrap().len(), 1);
}

pub async fn pages_walk_every_hit_once(app: TestApp) {
    let u = user();
    let mut expected = 0;
    for s in 0..3 {
        let contents: Vec<String> = (0..7).map(|i| format!("walrus number {s}.{i}")).collect();
        let refs: Vec<&str> = contents.iter().map(String::as_str).collect();
        session(&app, &u, &format!("walruses {s}"), &refs).await;
        expected += 8;
    }
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut uri = format!("{}&limit=4", search_uri(&u, "walrus"));
        if let Some(t) = &token {
            uri.push_str(&format!("&continuation_token={}", enc(t)));
        }
        let page = app.get_ok_json(&uri).await;
        let results = page["results"].as_array().unwrap();
        assert!(results.len() <= 4);
        for r in results {
            seen.push((
                r["created_at"].as_str().unwrap().to_owned(),
                r["session_id"].as_str().unwrap().to_owned(),
                r["message_id"].as_str().unwrap_or("").to_owned(),
            ));
        }
        match page["continuation_token"].as_str() {
            Some(t) => token = Some(t.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), expected);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), expected);
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted, "newest first, ties by ids");
}

pub async fn local_mode_searches_the_given_users_history_only(app: TestApp) {
    let (alice, bob) = (user(), user());
    session(&app, &alice, "alice's", &["shared word"]).await;
    session(&app, &bob, "bob's", &["shared word"]).await;
    // Local mode: the user_id decides.
    let a = app.get_ok_json(&search_uri(&alice, "shared")).await;
    assert_eq!(a["results"].as_array().unwrap().len(), 1);
    // Anonymous local mode searches sessions without an owner: none here.
    let anon = app.get_ok_json("/api/chat/search?q=shared").await;
    assert_eq!(anon["results"], json!([]));
}

/// Easy Auth: the principal decides; no principal is 401, another user 403.
#[tokio::test]
async fn easy_auth_takes_the_searcher_from_the_principal() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path(), Durability::Normal).unwrap());
    let settings = ApiSettings {
        auth_mode: AuthMode::EasyAuth,
        ..ApiSettings::default()
    };
    let app = TestApp::searchable(store, settings, Box::new(dir));
    let (alice, bob) = (user(), user());
    for who in [&alice, &bob] {
        let id = app
            .request(axum::http::Method::POST, "/api/chat/sessions")
            .header("x-ms-client-principal-id", who)
            .json(&json!({}))
            .send()
            .await
            .expect_status(StatusCode::CREATED)
            .json()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        app.request(
            axum::http::Method::POST,
            &format!("/api/chat/sessions/{id}/messages"),
        )
        .header("x-ms-client-principal-id", who)
        .json(&json!({"content": "private diary", "message_type": "user"}))
        .send()
        .await
        .expect_status(StatusCode::CREATED);
    }
    app.get("/api/chat/search?q=diary")
        .await
        .expect_problem(StatusCode::UNAUTHORIZED);
    app.request(
        axum::http::Method::GET,
        &format!("/api/chat/search?q=diary&user_id={bob}"),
    )
    .header("x-ms-client-principal-id", &alice)
    .send()
    .await
    .expect_problem(StatusCode::FORBIDDEN);
    let mine = app
        .request(axum::http::Method::GET, "/api/chat/search?q=diary")
        .header("x-ms-client-principal-id", &alice)
        .send()
        .await
        .expect_status(StatusCode::OK)
        .json();
    let results = mine["results"].as_array().unwrap();
    assert_eq!(results.len(), 1);
    let id = results[0]["session_id"].as_str().unwrap();
    app.request(axum::http::Method::GET, &format!("/api/chat/sessions/{id}"))
        .header("x-ms-client-principal-id", &alice)
        .send()
        .await
        .expect_status(StatusCode::OK);
}

/// The real binary serves search (the wiring of `app`), and the `search`
/// subcommand prints the same hits as a table or as the API's JSON.
#[tokio::test]
async fn the_binary_serves_search_and_the_cli_prints_it() {
    let dir = tempfile::tempdir().unwrap();
    let u = user();
    {
        let server = Binary::serve(dir.path()).await;
        let app = server.app();
        let id = app.create_session(&u).await;
        app.post(
            &format!("/api/chat/sessions/{id}/messages?user_id={u}"),
            json!({"content": "Kubernetes pods restart", "message_type": "user"}),
        )
        .await;
        let found = app
            .get_json(&format!("/api/chat/search?user_id={u}&q=kube"))
            .await;
        assert_eq!(found["results"][0]["snippet"], "Kubernetes pods restart");
        server.kill();
    }
    let out =
        Binary::run(dir.path(), &["search", "--user", &u, "KUBE pod", "--json"]).wait_with_output();
    assert!(out.status.success());
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["results"][0]["snippet"], "Kubernetes pods restart");
    assert_eq!(json["continuation_token"], Value::Null);
    let out = Binary::run(dir.path(), &["search", "--user", &u, "pods"]).wait_with_output();
    assert!(out.status.success());
    let table = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("CREATED_AT"), "{table}");
    assert!(lines[1].ends_with("Kubernetes pods restart"), "{table}");
    let out = Binary::run(dir.path(), &["search", "--user", &u, "nothing"]).wait_with_output();
    assert!(String::from_utf8(out.stdout).unwrap().contains("(no hits)"));
    let out = Binary::run(dir.path(), &["search", "--user", &u, "  "]).wait_with_output();
    assert!(!out.status.success(), "blank terms are refused");
}

fn rusqlite_open(dir: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.join(chat_sessions::store::sqlite::DB_FILE)).unwrap()
}

/// After appends, renames, imports and deletes, the index holds exactly one
/// entry per message and per named session.
#[tokio::test]
async fn the_index_stays_in_step_with_the_data() {
    use chat_sessions::{
        domain::SessionPatch,
        store::{MigrationStore, Owner, SessionImport},
    };
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), Durability::Normal).unwrap();
    let alice = crate::conformance::user("alice");
    let owner = Owner::User(alice.clone());
    let mut ids = Vec::new();
    for s in 0..6 {
        let id = crate::conformance::sid(&format!("session_step_{s}"));
        store
            .create_session(crate::conformance::new_session(&id, Some(&alice)))
            .await
            .unwrap();
        for i in 0..5 {
            store
                .append_message(
                    &owner,
                    &id,
                    crate::conformance::message(Some(&format!("m{i}")), "x y"),
                )
                .await
                .unwrap();
        }
        ids.push(id);
    }
    let rename = SessionPatch {
        session_name: Some(None),
        ..SessionPatch::default()
    };
    store
        .update_session(&owner, &ids[0], &rename, None)
        .await
        .unwrap();
    store.delete_session(&owner, &ids[1], None).await.unwrap();
    store
        .import_messages(SessionImport {
            id: ids[2].clone(),
            user_id: Some(alice.clone()),
            messages: vec![chat_sessions::domain::ChatMessage {
                tool_calls: None,
                tool_call_id: None,
                name: None,
                parent_id: None,
                edited_at: None,
                siblings: None,
                id: chat_sessions::domain::MessageId::parse("legacy").unwrap(),
                content: "older".into(),
                message_type: chat_sessions::domain::MessageType::User,
                user_id: None,
                metadata: Default::default(),
                created_at: chat_sessions::domain::Timestamp::parse("2001-01-01T00:00:00Z")
                    .unwrap(),
            }],
        })
        .await
        .unwrap();
    let conn = rusqlite_open(dir.path());
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    let messages = count("SELECT count(*) FROM messages");
    let named = count("SELECT count(*) FROM sessions WHERE session_name IS NOT NULL");
    assert_eq!(messages, 5 * 5 + 1);
    assert_eq!(named, 4);
    assert_eq!(
        count("SELECT count(*) FROM search_entries"),
        messages + named
    );
    assert_eq!(
        count(
            "SELECT count(*) FROM messages m JOIN search_entries e \
             ON e.session_id = m.session_id AND e.message_id = m.id"
        ),
        messages
    );
    assert_eq!(search_all(&store, &owner, "older", 10).await.len(), 1);
    assert_eq!(search_all(&store, &owner, "x", 50).await.len(), 25);
}

/// Long Cosmos sessions keep their oldest messages in sealed pages; search
/// finds them like any other, with the session's name, in order.
#[tokio::test]
async fn hits_in_sealed_pages_are_found() {
    use chat_sessions::store::Owner;
    let (store, _client) = cosmos::server_cosmos_store().await;
    let store = Arc::new(store.with_seal_policy(SealPolicy {
        max_bytes: 16 * 1024,
        page_bytes: SealPolicy::page_bytes_for(16 * 1024),
        max_messages: Some(8),
    }));
    let alice = crate::conformance::user(&crate::conformance::unique("alice"));
    let owner = Owner::User(alice.clone());
    let id = crate::conformance::sid(&crate::conformance::unique("long"));
    let mut new = crate::conformance::new_session(&id, Some(&alice));
    new.session_name = Some("Long haul".into());
    store.create_session(new).await.unwrap();
    for i in 0..40 {
        let text = if i % 5 == 0 {
            format!("marker {i}")
        } else {
            format!("filler {i}")
        };
        store
            .append_message(
                &owner,
                &id,
                crate::conformance::message(Some(&format!("m{i:02}")), &text),
            )
            .await
            .unwrap();
    }
    let pages: Vec<Value> = store
        .container()
        .unwrap()
        .query_items::<Value>(
            azure_data_cosmos::Query::from("SELECT * FROM c WHERE c.doc_type = 'session_page'"),
            azure_data_cosmos::FeedScope::partition(alice.as_str().to_owned()),
            None,
        )
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert!(pages.len() >= 2, "the session was sealed into pages");
    assert!(pages.iter().all(|p| p["updated_at"].is_string()));
    for limit in [2, 3, 50] {
        let hits = search_all(&*store, &owner, "marker", limit).await;
        let ids: Vec<String> = hits
            .iter()
            .map(|h| h.message_id.as_ref().unwrap().to_string())
            .collect();
        assert_eq!(
            ids,
            ["m35", "m30", "m25", "m20", "m15", "m10", "m05", "m00"]
        );
        assert!(
            hits.iter()
                .all(|h| h.session_name.as_deref() == Some("Long haul"))
        );
    }
}
