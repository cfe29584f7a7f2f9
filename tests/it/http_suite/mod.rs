//! The HTTP API suite: every endpoint and every error, through the router,
//! checked on status codes, headers and bodies. Every backend runs it
//! through `http_suite!`.

mod lifecycle;
pub use lifecycle::*;

use std::collections::HashSet;

use axum::http::{Method, StatusCode};
use chat_sessions::{api::ApiSettings, auth::AuthMode, store::DynStore};
use serde_json::{Value, json};

mod import;
pub use import::*;
mod import_trees;
pub use import_trees::*;
mod tree;
pub use tree::*;
mod tree_writes;
pub use tree_writes::*;

use crate::common::{
    Guard, TestApp,
    json::{message_members, session_members, sorted_keys, texts},
};

/// One `#[tokio::test]` per behaviour; `$factory` is an async expression
/// yielding `(DynStore, guard)`.
#[macro_export]
macro_rules! http_suite {
    ($factory:expr) => {
        $crate::http_suite!(@tests $factory;
            probe_and_health_answer_at_once,
            create_returns_201_with_location_etag_and_the_seed_shape,
            create_accepts_a_bare_post_and_client_ids,
            create_with_a_taken_id_is_409,
            create_rejects_invalid_input_with_422_and_stores_nothing,
            malformed_json_is_400_and_other_media_types_415,
            body_over_the_limit_is_413,
            get_returns_messages_in_order_with_etag_and_304,
            a_tail_and_a_listing_revalidate_with_if_none_match,
            get_of_a_missing_or_foreign_session_is_404,
            list_pages_without_messages_and_validates_parameters,
            list_filters_by_is_active,
            put_updates_and_bumps_updated_at,
            put_honours_if_match,
            put_rejects_unknown_fields_and_bad_values,
            delete_is_204_then_404_and_honours_if_match,
            send_message_updates_the_session,
            send_message_validates_and_changes_nothing,
            send_message_retry_is_idempotent,
            legacy_history_serves_old_style_messages,
            legacy_post_creates_or_appends,
            unknown_route_is_404_and_wrong_method_405,
            easy_auth_takes_the_user_from_the_principal,
            local_mode_reaches_sessions_by_id_alone,
            conflicting_user_ids_in_query_and_body_are_403,
            repeated_gets_always_show_the_latest_version,
            optional_bodies_may_be_absent_or_null,
            messages_pager_and_messages_limit,
            export_session_in_each_format_as_a_download,
            export_session_refuses_bad_input_and_other_users,
            export_all_streams_every_session_of_the_caller,
            exports_follow_the_easy_auth_principal,
            erase_refuses_anything_but_the_callers_own_id,
            erase_deletes_everything_of_the_caller_and_nothing_else,
            erase_resumes_when_a_request_runs_out_of_time,
            archived_at_follows_is_active,
            import_of_an_export_keeps_everything_and_is_idempotent,
            import_adds_to_an_existing_session_only_what_it_lacks,
            import_of_chatgpt_keeps_every_branch_and_the_current_one,
            a_bad_line_or_conversation_is_refused_naming_it_and_nothing_is_written,
            import_of_another_users_export_makes_copies_of_their_own,
            import_has_its_own_size_limit_and_media_types,
            import_goes_to_the_easy_auth_principal,
            export_erase_import_round_trip_gives_the_same_history,
            export_then_import_gives_back_tool_calls_and_tool_messages,
            a_client_that_knows_nothing_of_branches_sees_the_seed_shape,
            parent_id_starts_a_branch_and_null_a_new_first_message,
            a_retry_with_a_parent_is_safe_and_another_parent_conflicts,
            an_unknown_or_foreign_parent_is_422_naming_it_and_changes_nothing,
            message_id_reads_another_branch_and_leaves_the_current_one,
            put_current_message_id_switches_the_branch_under_if_match,
            the_tree_lists_every_branch_in_pages,
            patch_edits_a_message_in_place_under_if_match,
            delete_removes_a_message_or_its_subtree_under_if_match,
            another_users_session_is_404_on_every_tree_endpoint_under_easy_auth,
            an_edit_counts_against_the_write_rate_and_the_routes_know_their_methods,
            the_plain_get_shows_siblings,
        );
    };
    (@tests $factory:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let (store, guard) = $factory.await;
                http_suite::$name(store, Box::new(guard)).await;
            }
        )*
    };
}

pub(crate) fn app(store: DynStore, guard: Guard) -> TestApp {
    TestApp::over(store, ApiSettings::default(), guard)
}

pub(crate) fn user() -> String {
    format!("user_{}", uuid::Uuid::new_v4().simple())
}

fn session_uri(id: &str, user: &str) -> String {
    format!("/api/chat/sessions/{id}?user_id={user}")
}

pub async fn probe_and_health_answer_at_once(store: DynStore, guard: Guard) {
    let app = app(store, guard);
    let r = app.get("/").await.expect_status(StatusCode::OK);
    assert_eq!(&r.body[..], b"ok");
    let health = app.get_ok_json("/api/health").await;
    assert_eq!(health["status"], "ok");
    assert_eq!(health["store_state"], "ready");
    let ready = app.get_ok_json("/api/health/ready").await;
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["store"], health["store"]);
}

pub async fn create_returns_201_with_location_etag_and_the_seed_shape(
    store: DynStore,
    guard: Guard,
) {
    let app = app(store, guard);
    let u = user();
    let r = app
        .post(
            "/api/chat/sessions",
            json!({ "user_id": u, "session_name": "Shopping Chat", "context": { "k": 1 } }),
        )
        .await
        .expect_status(StatusCode::CREATED);
    let body = r.json();
    let id = body["id"].as_str().unwrap();
    assert_eq!(
        r.header("location"),
        Some(format!("/api/chat/sessions/{id}").as_str())
    );
    assert!(
        r.header("etag")
            .is_some_and(|e| e.starts_with('"') && e.ends_with('"'))
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    // The seed's id shape: session_<random>_<YYYYMMDD_HHMMSS>.
    let parts: Vec<&str> = id.split('_').collect();
    assert_eq!(parts.len(), 4, "{id}");
    assert_eq!(parts[0], "session");
    assert_eq!(parts[2].len(), 8);
    assert_eq!(parts[3].len(), 6);
    assert_eq!(sorted_keys(&body), session_members());
    assert_eq!(body["user_id"], u.as_str());
    assert_eq!(body["session_name"], "Shopping Chat");
    assert_eq!(body["is_active"], true);
    assert_eq!(body["context"], json!({ "k": 1 }));
    assert_eq!(body["messages"], json!([]));
    assert_eq!(body["message_count"], 0);
    assert_eq!(body["last_message_at"], Value::Null);
    let created_at = body["created_at"].as_str().unwrap();
    assert!(created_at.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(created_at).is_ok());
    // Following Location finds it.
    let got = app
        .get(
            r.header("location")
                .map(|l| format!("{l}?user_id={u}"))
                .unwrap()
                .as_str(),
        )
        .await;
    assert_eq!(got.expect_status(StatusCode::OK).json(), body);
}

pub async fn create_accepts_a_bare_post_and_client_ids(store: DynStore, guard: Guard) {
    let app = app(store, guard);
    let r = app
        .request(Method::POST, "/api/chat/sessions")
        .send()
        .await
        .expect_status(StatusCode::CREATED);
    assert_eq!(r.json()["user_id"], Value::Null);
    assert_eq!(r.json()["session_name"], Value::Null);
    let u = user();
    let id = format!("client:{}", uuid::Uuid::new_v4().simple());
    let r = app
        .post(
            &format!("/api/chat/sessions?user_id={u}"),
            json!({ "id": id }),
        )
        .await
        .expect_status(StatusCode::CREATED);
    assert_eq!(r.json()["id"], id.as_str());
    assert_eq!(r.json()["user_id"], u.as_str());
}

pub async fn create_with_a_taken_id_is_409(store: DynStore, guard: Guard) {
    let app = app(store, guard);
    let u = user();
    let id = format!("s_{}", uuid::Uuid::new_v4().simple());
    app.post(
        "/api/chat/sessions",
        json!({ "id": id, "user_id": u, "session_name": "first" }),
    )
    .await
    .expect_status(StatusCode::CREATED);
    app.post(
        "/api/chat/sessions",
        json!({ "id": id, "user_id": u, "session_name": "second" }),
    )
    .await
    .expect_problem(StatusCode::CONFLICT);
    let s = app.get_ok_json(&session_uri(&id, &u)).await;
    assert_eq!(s["session_name"], "first");
}

pub async fn create_rejects_invalid_input_with_422_and_stores_nothing(
    store: DynStore,
    guard: Guard,
) {
    let app = app(store, guard);
    let u = user();
    for body in [
        json!({ "user_id": u, "id": "has space" }),
        json!({ "user_id": u, "id": "" }),
        json!({ "user_id": u, "id": "x".repeat(129) }),
        json!({ "user_id": u, "session_name": "n".repeat(257) }),
        json!({ "user_id": u, "context": [1, 2] }),
        json!({ "user_id": u, "context": "text" }),
        json!({ "user_id": u, "unexpected": true }),
        json!({ "user_id": "" }),
        json!([]),
    ] {
        let problem = app
            .post("/api/chat/sessions", body.clone())
            .await
            .expect_problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert!(!problem["detail"].as_str().unwrap().is_empty(), "{body}");
    }
    let list = app
        .get_ok_json(&format!("/api/chat/sessions?user_id={u}"))
        .await;
    assert_eq!(list["sessions"], json!([]));
}

pub async fn malformed_json_is_400_and_other_media_types_415(store: DynStore, guard: Guard) {
    let app = app(store, guard);
    let u = user();
    app.request(Method::POST, &format!("/api/chat/sessions?user_id={u}"))
        .raw(Some("application/json"), "{\"session_name\": ")
        .send()
        .await
        .expect_problem(StatusCode::BAD_REQUEST);
    app.request(Method::POST, &format!("/api/chat/sessions?user_id={u}"))
        .raw(Some("application/x-www-form-urlencoded"), "session_name=x")
        .send()
        .await
        .expect_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // fetch() with a string body sends text/plain: accepted as JSON.
    app.request(Method::POST, &format!("/api/chat/sessions?user_id={u}"))
        .raw(
            Some("text/plain;charset=UTF-8"),
            "{\"session_name\":\"plain\"}",
        )
        .send()
        .await
        .expect_status(StatusCode::CREATED);
    let list = app
        .get_json(&format!("/api/chat/sessions?user_id={u}"))
        .await;
    assert_eq!(list["sessions"].as_array().unwrap().len(), 1);
}

pub async fn body_over_the_limit_is_413(store: DynStore, guard: Guard) {
    let settings = ApiSettings {
        max_body_bytes: 4096,
        ..ApiSettings::default()
    };
    let app = TestApp::over(store, settings, guard);
    let u = user();
    let id = app.create_session(&u).await;
    let big = "x".repeat(5000);
    app.post(
        &format!("/api/chat/sessions/{id}/messages?user_id={u}"),
        json!({ "content": big, "message_type": "user" }),
    )
    .await
    .expect_problem(StatusCode::PAYLOAD_TOO_LARGE);
    let s = app.get_json(&session_uri(&id, &u)).await;
    assert_eq!(s["message_count"], 0);
    app.post(
        &format!("/api/chat/sessions/{id}/messages?user_id={u}"),
        json!({ "content": "x".repeat(3000), "message_type": "user" }),
    )
    .await
    .expect_status(StatusCode::CREATED);
}

async fn post_message(
    app: &TestApp,
    id: &str,
    u: &str,
    body: Value,
) -> crate::common::TestResponse {
    app.post(
        &format!("/api/chat/sessions/{id}/messages?user_id={u}"),
        body,
    )
    .await
}

pub async fn get_returns_messages_in_order_with_etag_and_304(store: DynStore, guard: Guard) {
    let app = app(store, guard);
    let u = user();
    let id = app.create_session(&u).await;
    for (i, kind) in ["user", "assistant", "user"].iter().enumerate() {
        post_message(
            &app,
            &id,
            &u,
            json!({ "content": format!("m{i}"), "message_type": kind }),
        )
        .await
        .expect_status(StatusCode::CREATED);
    }
    let r = app
        .get(&session_uri(&id, &u))
        .await
        .expect_status(StatusCode::OK);
    let etag = r.header("etag").unwrap().to_owned();
    let s = r.json();
    assert_eq!(texts(&s["messages"], "content"), ["m0", "m1", "m2"]);
    assert_eq!(s["messages"][1]["message_type"], "assistant");
    assert_eq!(s["message_count"], 3);
    let not_modified = app
        .request(Method::GET, &session_uri(&id, &u))
        .header("if-none-match", &etag)
        .send()
        .await
        .expect_status(StatusCode::NOT_MODIFIED);
    assert_eq!(not_modified.header("etag"), Some(etag.as_str()));
    assert!(not_modified.body.is_empty());
    app.request(Method::GET, &session_uri(&id, &u))
        .header("if-none-match", "\"something-else\"")
        .send()
        .await
        .expect_status(StatusCode::OK);
}

/// What the web app's refresh relies on: the newest message alone
/// (`messages_limit`) and a listing's page answer 304 while nothing changed,
/// and 200 once something did. A listing carries an `ETag` where the store
/// keeps a version of the owner's sessions (the embedded store).
pub async fn a_tail_and_a_listing_revalidate_with_if_none_match(store: DynStore, guard: Guard) {
    let app = app(store, guard);
    let (u, other) = (user(), user());
    let id = app.create_session(&u).await;
    app.create_session(&other).await;
    let tail = format!("{}&messages_limit=1", session_uri(&id, &u));
    let etag = app
        .get(&tail)
        .await
        .expect_status(StatusCode::OK)
        .header("etag")
        .unwrap()
        .to_owned();
    let r = app
        .request(Method::GET, &tail)
        .header("if-none-match", &etag)
        .send()
        .await
        .expect_status(StatusCode::NOT_MODIFIED);
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    assert!(r.body.is_empty());

    let list = format!("/api/chat/sessions?user_id={u}&limit=30");
    let first = app.get(&list).await.expect_status(StatusCode::OK);
    let list_etag = first.header("etag").map(str::to_owned);
    if let Some(tag) = &list_etag {
        app.request(Method::GET, &list)
            .header("if-none-match", tag)
            .send()
            .await
            .expect_status(StatusCode::NOT_MODIFIED);
        // Another user's tag never stands for this user's page, even at the
        // same version (under Easy Auth both ask the same URL).
        let theirs = app
            .get(&format!("/api/chat/sessions?user_id={other}&limit=30"))
            .await
            .expect_status(StatusCode::OK);
        assert_ne!(theirs.header("etag"), Some(tag.as_str()));
    }

    post_message(
        &app,
        &id,
        &u,
        json!({ "content": "new", "message_type": "user" }),
    )
    .await
    .expect_status(StatusCode::CREATED);
    let r = app
        .request(Method::GET, &tail)
        .header("if-none-match", &etag)
        .send()
        .await
        .expect_status(StatusCode::OK);
    assert_eq!(r.json()["messages"][0]["content"], "new");
    assert_ne!(r.header("etag"), Some(etag.as_str()));
    if let Some(tag) = &list_etag {
        let r = app
            .request(Method::GET, &list)
            .header("if-none-match", tag)
            .send()
            .await
            .expect_status(StatusCode::OK);
        assert_eq!(r.json()["sessions"][0]["message_count"], 1);
        assert_ne!(r.header("etag"), Some(tag.as_str()));
    }
}

pub async fn get_of_a_missing_or_foreign_session_is_404(store: DynStore, guard: Guard) {
    let app = app(store, guard);
    let (alice, bob) = (user(), user());
    let id = app.create_session(&alice).await;
    app.get(&session_uri("session_missing_1", &alice))
        .await
        .expect_problem(StatusCode::NOT_FOUND);
    app.get(&session_uri(&id, &bob))
        .await
        .expect_problem(StatusCode::NOT_FOUND);
    app.get(&format!("/api/chat/sessions/bad%20id?user_id={alice}"))
        .await
        .expect_problem(StatusCode::UNPROCESSABLE_ENTITY);
}

pub async fn list_pages_without_messages_and_validates_parameters(store: DynStore, guard: Guard) {
    let app = app(store, guard);
    let (alice, bob) = (user(), user());
    let mut ids = HashSet::new();
    for _ in 0..5 {
        let id = app.create_session(&alice).await;
        post_message(
            &app,
            &id,
            &alice,
            json!({ "content": "hi", "message_type": "user" }),
        )
        .await;
        ids.insert(id);
    }
    app.create_session(&bob).await;
    let mut seen = HashSet::new();
    let mut token: Option<String> = None;
    loop {
        let mut uri = format!("/api/chat/sessions?user_id={alice}&limit=2");
        if let Some(t) = &token {
            uri.push_str(&format!("&continuation_token={t}"));
        }
        let page = app.get_ok_json(&uri).await;
        let sessions = page["sessions"].as_array().unwrap();
        assert!(sessions.len() <= 2);
        for s in sessions {
            assert!(s.get("messages").is_none(), "listing leaves messages out");
            assert_eq!(s["message_count"], 1);
            assert!(seen.insert(s["id"].as_str().unwrap().to_owned()));
        }
        match page["continuation_token"].as_str() {
            Some(t) => token = Some(t.to_owned()),
            None => {
                assert_eq!(page["continuation_token"], Value::Null);
                break;
            }
        }
    }
    assert_eq!(seen, ids);
    for bad in [
        "limit=0",
        "limit=201",
        "limit=ten",
        "is_active=maybe",
        "continuation_token=forged",
    ] {
        app.get(&format!("/api/chat/sessions?user_id={alice}&{bad}"))
            .await
            .expect_problem(StatusCode::UNPROCESSABLE_ENTITY);
    }
    let all = app
        .get_json(&format!("/api/chat/sessions?user_id={alice}&limit=200"))
        .await;
    assert_eq!(all["sessions"].as_array().unwrap().len(), 5);
}

pub async fn list_filters_by_is_active(store: DynStore, guard: Guard) {
    let app = app(store, guard);
    let u = user();
    let active = app.create_session(&u).await;
    let archived = app.create_session(&u).await;
    app.put(&session_uri(&archived, &u), json!({ "is_active": false }))
        .await
        .expect_status(StatusCode::OK);
    for (filter, expected) in [("true", active), ("false", archived)] {
        let listed = app
            .get_json(&format!(
                "/api/chat/sessions?user_id={u}&is_active={filter}"
            ))
            .await;
        assert_eq!(texts(&listed["sessions"], "id"), [expected]);
    }
}

pub async fn put_updates_and_bumps_updated_at(store: DynStore, guard: Guard) {
    let app = app(store, guard);
    let u = user();
    let id = app.create_session(&u).await;
    let before = app.get_json(&session_uri(&id, &u)).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let r = app
        .put(
            &session_uri(&id, &u),
            json!({ "session_name": "Renamed", "is_active": false, "context": { "a": [1] } }),
        )
        .await
        .expect_status(StatusCode::OK);
    assert!(r.header("etag").is_some());
    let s = r.json();
    assert_eq!(s["session_name"], "Renamed");
    assert_eq!(s["is_active"], false);
    assert_eq!(s["context"], json!({ "a": [1] }));
    assert!(s["updated_at"].as_str().unwrap() > before["updated_at"].as_str().unwrap());
    assert_eq!(s["created_at"], before["created_at"]);
    // null clears the name; absent members stay.
    let s = app
        .put(&session_uri(&id, &u), json!({ "session_name": null }))
        .await
        .expect_status(StatusCode::OK)
        .json();
    assert_eq!(s["session_name"], Value::Null);
    assert_eq!(s["is_active"], false);
    app.put(
        &session_uri("session_missing_2", &u),
        json!({ "is_active": true }),
    )
    .await
    .expect_problem(StatusCode::NOT_FOUND);
}

pub async fn put_honours_if_match(store: DynStore, guard: Guard) {
    let app = app(store, guard);
    let u = user();
    let id = app.create_session(&u).await;
    let uri = session_uri(&id, &u);
    let rename_if_match = |tag: &str, name: &str| {
        app.request(Method::PUT, &uri)
            .header("if-match", tag)
            .json(&json!({ "session_name": name }))
            .send()
    };
    let stale = app.etag(&uri).await;
    post_message(
        &app,
        &id,
        &u,
        json!({ "content": "moves the etag", "message_type": "user" }),
    )
    .await;
    let current = app.get(&uri).await;
    let current_etag = current.header("etag").unwrap().to_owned();
    rename_if_match(&stale, "lost update")
        .await
        .expect_problem(StatusCode::PRECONDITION_FAILED);
    assert_eq!(
        app.get_json(&uri).await,
        current.json(),
        "a 412 changes nothing"
    );
    let r = rename_if_match(&format!("{stale}, {current_etag}"), "fresh")
        .await
        .expect_status(StatusCode::OK);
    assert_ne!(r.header("etag"), Some(current_etag.as_str()));
    rename_if_match("*", "any")
        .await
        .expect_status(StatusCode::OK);
    // Garbled or empty conditions never let a write through.
    for garbled in ["garbled", "", " , "] {
        rename_if_match(garbled, "x")
            .await
            .expect_problem(StatusCode::PRECONDITION_FAILED);
    }
    // A tag sent without its quotes is still that tag.
    let current = app.etag(&uri).await;
    rename_if_match(current.trim_matches('"'), "unquoted")
        .await
        .expect_status(StatusCode::OK);
    // A weak tag is well-formed but never matches (strong comparison).
    rename_if_match("W/\"whatever\"", "x")
        .await
        .expect_problem(StatusCode::PRECONDITION_FAILED);
}

pub async fn put_rejects_unknown_fields_and_bad_values(store: DynStore, guard: Guard) {
    let app = app(store, guard);
    let u = user();
    let id = app.create_session(&u).await;
    let before = app.get_json(&session_uri(&id, &u)).await;
    for body in [
        json!({ "messages": [] }),
        json!({ "message_count": 5 }),
        json!({ "is_active": "no" }),
        json!({ "session_name": "n".repeat(300) }),
        json!({ "context": 3 }),
    ] {
        app.put(&session_uri(&id, &u), body.clone())
            .await
            .expect_problem(StatusCode::UNPROCESSABLE_ENTITY);
    }
    assert_eq!(app.get_json(&session_uri(&id, &u)).await, before);
}

pub async fn delete_is_204_then_404_and_honours_if_match(store: DynStore, guard: Guard) {
    let app = app(store, guard);
    let (alice, bob) = (user(), user());
    let id = app.create_session(&alice).await;
    app.delete(&session_uri(&id, &bob))
        .await
        .expect_problem(StatusCode::NOT_FOUND);
    app.request(Method::DELETE, &session_uri(&id, &alice))
        .header("if-match", "\"stale\"")
        .send()
        .await
        .expect_problem(StatusCode::PRECONDITION_FAILED);
    let r = app
        .delete(&session_uri(&id, &alice))
        .await
        .expect_status(StatusCode::NO_CONTENT);
    assert!(r.body.is_empty());
    app.get(&session_uri(&id, &alice))
        .await
        .expect_problem(StatusCode::NOT_FOUND);
    app.delete(&session_uri(&id, &alice))
        .await
        .expect_problem(StatusCode::NOT_FOUND);
}

pub async fn send_message_updates_the_session(store: DynStore, guard: Guard) {
    let app = app(store, guard);
    let u = user();
    let id = app.create_session(&u).await;
    let before = app.get_json(&session_uri(&id, &u)).await;
    let r = post_message(
        &app,
        &id,
        &u,
        json!({ "content": "Hello!", "message_type": "user", "metadata": { "lang": "en" } }),
    )
    .await
    .expect_status(StatusCode::CREATED);
    assert!(r.header("etag").is_some());
    let m = r.json();
    assert!(m["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(m["content"], "Hello!");
    assert_eq!(m["message_type"], "user");
    assert_eq!(m["user_id"], u.as_str());
    assert_eq!(m["metadata"], json!({ "lang": "en" }));
    assert_eq!(sorted_keys(&m), message_members());
    let s = app.get_json(&session_uri(&id, &u)).await;
    assert_eq!(s["message_count"], 1);
    assert_eq!(s["last_message_at"], m["created_at"]);
    assert!(s["updated_at"].as_str().unwrap() >= before["updated_at"].as_str().unwrap());
    assert_eq!(s["messages"][0], m);
    // The seed's own example posts without user_id.
    let r = app
        .post(
            &format!("/api/chat/sessions/{id}/messages"),
            json!({ "content": "Hi! How can I help you?", "message_type": "assistant" }),
        )
        .await
        .expect_status(StatusCode::CREATED);
    assert_eq!(r.json()["user_id"], u.as_str());
}

pub async fn send_message_validates_and_changes_nothing(store: DynStore, guard: Guard) {
    let app = app(store, guard);
    let u = user();
    let id = app.create_session(&u).await;
    let before = app.get_json(&session_uri(&id, &u)).await;
    for body in [
        json!({ "content": "", "message_type": "user" }),
        json!({ "content": "   ", "message_type": "user" }),
        json!({ "content": "x", "message_type": "robot" }),
        json!({ "content": "x" }),
        json!({ "message_type": "user" }),
        json!({ "content": "x", "message_type": "user", "id": "bad id" }),
        json!({ "content": "x", "message_type": "user", "metadata": [] }),
        json!({ "content": 5, "message_type": "user" }),
        json!({ "content": "x", "message_type": "user", "extra": 1 }),
    ] {
        post_message(&app, &id, &u, body)
            .await
            .expect_problem(StatusCode::UNPROCESSABLE_ENTITY);
    }
    assert_eq!(app.get_json(&session_uri(&id, &u)).await, before);
    post_message(
        &app,
        "session_missing_3",
        &u,
        json!({ "content": "x", "message_type": "user" }),
    )
    .await
    .expect_problem(StatusCode::NOT_FOUND);
}

pub async fn send_message_retry_is_idempotent(store: DynStore, guard: Guard) {
    let app = app(store, guard);
    let u = user();
    let id = app.create_session(&u).await;
    let body = json!({ "id": "msg_client_1", "content": "once", "message_type": "user" });
    let first = post_message(&app, &id, &u, body.clone())
        .await
        .expect_status(StatusCode::CREATED)
        .json();
    let again = post_message(&app, &id, &u, body.clone())
        .await
        .expect_status(StatusCode::OK)
        .json();
    assert_eq!(first, again);
    post_message(
        &app,
        &id,
        &u,
        json!({ "id": "msg_client_1", "content": "different", "message_type": "user" }),
    )
    .await
    .expect_problem(StatusCode::CONFLICT);
    let s = app.get_json(&session_uri(&id, &u)).await;
    assert_eq!(s["message_count"], 1);
    assert_eq!(s["messages"][0]["content"], "once");
}

pub async fn legacy_history_serves_old_style_messages(store: DynStore, guard: Guard) {
    let app = app(store, guard);
    let u = user();
    let id = app.create_session(&u).await;
    for (i, kind) in ["user", "assistant"].iter().enumerate() {
        post_message(
            &app,
            &id,
            &u,
            json!({ "content": format!("m{i}"), "message_type": kind, "metadata": { "i": i } }),
        )
        .await;
    }
    let r = app
        .get(&format!("/api/chat/history?session_id={id}&user_id={u}"))
        .await
        .expect_status(StatusCode::OK);
    let history = r.json();
    let list = history.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["content"], "m0");
    assert_eq!(list[1]["message_type"], "assistant");
    for m in list {
        assert_eq!(
            sorted_keys(m),
            [
                "content",
                "created_at",
                "id",
                "message_type",
                "metadata",
                "session_id",
                "user_id"
            ]
        );
        assert_eq!(m["session_id"], id.as_str());
        assert_eq!(m["user_id"], u.as_str());
    }
    assert_eq!(list[1]["metadata"], json!({ "i": 1 }));
    let unknown = app
        .get(&format!(
            "/api/chat/history?session_id=session_unknown&user_id={u}"
        ))
        .await;
    assert_eq!(unknown.expect_status(StatusCode::OK).json(), json!([]));
    app.get(&format!("/api/chat/history?user_id={u}"))
        .await
        .expect_problem(StatusCode::UNPROCESSABLE_ENTITY);
}

pub async fn legacy_post_creates_or_appends(store: DynStore, guard: Guard) {
    let app = app(store, guard);
    let u = user();
    // No session id: a new session is created.
    let r = app
        .post(
            "/api/chat/message",
            json!({ "content": "first", "user_id": u }),
        )
        .await
        .expect_status(StatusCode::CREATED);
    let m = r.json();
    assert_eq!(m["message_type"], "user");
    assert_eq!(m["user_id"], u.as_str());
    let sid = m["session_id"].as_str().unwrap().to_owned();
    assert!(sid.starts_with("session_"));
    // The named session, which exists now: appended; unknown members ignored.
    let r = app
        .post("/api/chat/message", json!({ "content": "second", "message_type": "assistant", "session_id": sid, "user_id": u, "timestamp": "ignored" }))
        .await
        .expect_status(StatusCode::CREATED);
    assert_eq!(r.json()["session_id"], sid.as_str());
    // A named session that does not exist yet is created with that id.
    let named = format!("legacy_{}", uuid::Uuid::new_v4().simple());
    app.post(
        "/api/chat/message",
        json!({ "content": "third", "session_id": named, "user_id": u, "metadata": { "a": 1 } }),
    )
    .await
    .expect_status(StatusCode::CREATED);
    let s = app.get_json(&session_uri(&sid, &u)).await;
    assert_eq!(s["message_count"], 2);
    let named_session = app.get_ok_json(&session_uri(&named, &u)).await;
    assert_eq!(named_session["messages"][0]["metadata"], json!({ "a": 1 }));
    for bad in [
        json!({ "content": "" }),
        json!({ "content": "x", "message_type": "bot" }),
        json!({ "content": "x", "session_id": "a b" }),
    ] {
        app.post("/api/chat/message", bad)
            .await
            .expect_problem(StatusCode::UNPROCESSABLE_ENTITY);
    }
}

pub async fn unknown_route_is_404_and_wrong_method_405(store: DynStore, guard: Guard) {
    let app = app(store, guard);
    app.get("/api/nothing/here")
        .await
        .expect_problem(StatusCode::NOT_FOUND);
    let r = app
        .request(Method::PATCH, "/api/chat/sessions/x")
        .send()
        .await;
    let allow = r.header("allow").unwrap_or("").to_owned();
    r.expect_problem(StatusCode::METHOD_NOT_ALLOWED);
    for m in ["GET", "PUT", "DELETE"] {
        assert!(allow.contains(m), "Allow: {allow}");
    }
    app.request(Method::DELETE, "/api/chat/history")
        .send()
        .await
        .expect_problem(StatusCode::METHOD_NOT_ALLOWED);
}

pub async fn easy_auth_takes_the_user_from_the_principal(store: DynStore, guard: Guard) {
    let settings = ApiSettings {
        auth_mode: AuthMode::EasyAuth,
        ..ApiSettings::default()
    };
    let app = TestApp::over(store, settings, guard);
    let (alice, bob) = (user(), user());
    app.get("/api/chat/sessions")
        .await
        .expect_problem(StatusCode::UNAUTHORIZED);
    app.post("/api/chat/sessions", json!({}))
        .await
        .expect_problem(StatusCode::UNAUTHORIZED);
    // A request as Easy Auth forwards it for `principal`.
    let as_principal = |principal: &str, method: Method, uri: &str| {
        app.request(method, uri)
            .header("x-ms-client-principal-id", principal)
    };
    let r = as_principal(&alice, Method::POST, "/api/chat/sessions")
        .json(&json!({ "session_name": "mine" }))
        .send()
        .await
        .expect_status(StatusCode::CREATED);
    let id = r.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(r.json()["user_id"], alice.as_str());
    as_principal(
        &alice,
        Method::GET,
        &format!("/api/chat/sessions?user_id={bob}"),
    )
    .send()
    .await
    .expect_problem(StatusCode::FORBIDDEN);
    let uri = format!("/api/chat/sessions/{id}");
    for method in [Method::GET, Method::DELETE] {
        as_principal(&bob, method, &uri)
            .send()
            .await
            .expect_problem(StatusCode::NOT_FOUND);
    }
    let listed = as_principal(&alice, Method::GET, "/api/chat/sessions")
        .send()
        .await
        .expect_status(StatusCode::OK)
        .json();
    assert_eq!(listed["sessions"][0]["id"], id.as_str());
}

pub async fn local_mode_reaches_sessions_by_id_alone(store: DynStore, guard: Guard) {
    let app = app(store, guard);
    let u = user();
    let id = app.create_session(&u).await;
    app.get(&format!("/api/chat/sessions/{id}"))
        .await
        .expect_status(StatusCode::OK);
    app.get(&format!("/api/chat/sessions/{id}?user_id={}", user()))
        .await
        .expect_problem(StatusCode::NOT_FOUND);
}

pub async fn conflicting_user_ids_in_query_and_body_are_403(store: DynStore, guard: Guard) {
    let app = app(store, guard);
    app.post(
        &format!("/api/chat/sessions?user_id={}", user()),
        json!({ "user_id": user() }),
    )
    .await
    .expect_problem(StatusCode::FORBIDDEN);
}

pub async fn repeated_gets_always_show_the_latest_version(store: DynStore, guard: Guard) {
    let app = app(store, guard);
    let (alice, bob) = (user(), user());
    let id = app.create_session(&alice).await;
    let mut etags = HashSet::new();
    for i in 0..3 {
        let r = app
            .get(&session_uri(&id, &alice))
            .await
            .expect_status(StatusCode::OK);
        assert_eq!(r.json()["message_count"], i);
        assert_eq!(r.json()["messages"].as_array().unwrap().len(), i as usize);
        assert!(
            etags.insert(r.header("etag").unwrap().to_owned()),
            "a new version has a new ETag"
        );
        post_message(
            &app,
            &id,
            &alice,
            json!({ "content": format!("m{i}"), "message_type": "user" }),
        )
        .await
        .expect_status(StatusCode::CREATED);
    }
    app.put(
        &session_uri(&id, &alice),
        json!({ "session_name": "renamed" }),
    )
    .await
    .expect_status(StatusCode::OK);
    assert_eq!(
        app.get_json(&session_uri(&id, &alice)).await["session_name"],
        "renamed"
    );
    // A cached rendering is never shown to another user.
    app.get(&session_uri(&id, &bob))
        .await
        .expect_problem(StatusCode::NOT_FOUND);
    let etag = app.etag(&session_uri(&id, &alice)).await;
    app.request(Method::GET, &session_uri(&id, &bob))
        .header("if-none-match", &etag)
        .send()
        .await
        .expect_problem(StatusCode::NOT_FOUND);
    app.delete(&session_uri(&id, &alice))
        .await
        .expect_status(StatusCode::NO_CONTENT);
    app.get(&session_uri(&id, &alice))
        .await
        .expect_problem(StatusCode::NOT_FOUND);
}

/// Found by schemathesis: the document allows these bodies to be left out or
/// null, and the service agrees.
pub async fn optional_bodies_may_be_absent_or_null(store: DynStore, guard: Guard) {
    let app = app(store, guard);
    let u = user();
    let created = app
        .request(Method::POST, &format!("/api/chat/sessions?user_id={u}"))
        .raw(Some("application/json"), "null")
        .send()
        .await
        .expect_status(StatusCode::CREATED)
        .json();
    let id = created["id"].as_str().unwrap();
    let touched = app
        .request(Method::PUT, &session_uri(id, &u))
        .send()
        .await
        .expect_status(StatusCode::OK)
        .json();
    assert_eq!(touched["session_name"], created["session_name"]);
    assert!(touched["updated_at"].as_str() >= created["updated_at"].as_str());
    // A body that is JSON but not an object is still refused.
    app.request(Method::PUT, &session_uri(id, &u))
        .raw(Some("application/json"), "[]")
        .send()
        .await
        .expect_problem(StatusCode::UNPROCESSABLE_ENTITY);
}

pub async fn messages_pager_and_messages_limit(store: DynStore, guard: Guard) {
    let app = app(store, guard);
    let u = user();
    let id = app.create_session(&u).await;
    for i in 0..7 {
        post_message(
            &app,
            &id,
            &u,
            json!({ "content": format!("m{i}"), "message_type": "user" }),
        )
        .await
        .expect_status(StatusCode::CREATED);
    }
    let paged = app.messages_paged(&id, &u, 3).await;
    assert_eq!(
        texts(&paged, "content"),
        ["m6", "m5", "m4", "m3", "m2", "m1", "m0"],
        "newest first, each once"
    );
    for bad in ["limit=0", "limit=201", "before=forged"] {
        app.get(&format!(
            "/api/chat/sessions/{id}/messages?user_id={u}&{bad}"
        ))
        .await
        .expect_problem(StatusCode::UNPROCESSABLE_ENTITY);
    }
    app.get(&format!(
        "/api/chat/sessions/{id}/messages?user_id={}",
        user()
    ))
    .await
    .expect_problem(StatusCode::NOT_FOUND);
    let tail = app
        .get_ok_json(&format!(
            "/api/chat/sessions/{id}?user_id={u}&messages_limit=2"
        ))
        .await;
    assert_eq!(texts(&tail["messages"], "content"), ["m5", "m6"]);
    assert_eq!(tail["message_count"], 7);
    app.get(&format!(
        "/api/chat/sessions/{id}?user_id={u}&messages_limit=0"
    ))
    .await
    .expect_problem(StatusCode::UNPROCESSABLE_ENTITY);
    // The full GET still returns everything afterwards.
    let full = app.get_json(&session_uri(&id, &u)).await;
    assert_eq!(full["messages"].as_array().unwrap().len(), 7);
}
