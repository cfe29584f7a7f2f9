//! Rendered listings are cached on the owner's sessions version (embedded
//! store): a listing is never stale, also when another process (here a
//! tool's own connection to the file) changes the sessions, and one owner's
//! cached listing is never another's.

use axum::http::StatusCode;
use chat_sessions::store::sqlite::{DB_FILE, tool_connection};
use serde_json::{Value, json};

use crate::common::app_over_sqlite;

fn names(listing: &Value) -> Vec<(String, u64)> {
    listing["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["session_name"].as_str().unwrap_or("").to_owned(),
                s["message_count"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn listings_follow_every_change_including_other_processes() {
    let dir = tempfile::tempdir().unwrap();
    let app = app_over_sqlite(dir.path());
    let mut ids = Vec::new();
    for name in ["one", "two", "three"] {
        let id = app.create_session("alice").await;
        app.put(
            &format!("/api/chat/sessions/{id}?user_id=alice"),
            json!({ "session_name": name }),
        )
        .await
        .expect_status(StatusCode::OK);
        ids.push(id);
    }
    let list = "/api/chat/sessions?user_id=alice&limit=2";
    let first = app.get_ok_json(list).await;
    assert_eq!(
        names(&first),
        [("three".into(), 0), ("two".into(), 0)],
        "newest first"
    );
    // Unchanged: the same body (served from the cache).
    assert_eq!(app.get_ok_json(list).await, first);
    // Another owner's listing of the same query is theirs alone.
    assert_eq!(
        names(
            &app.get_ok_json("/api/chat/sessions?user_id=bob&limit=2")
                .await
        ),
        []
    );
    assert_eq!(
        names(&app.get_ok_json("/api/chat/sessions?limit=2").await),
        [],
        "sessions without an owner"
    );

    // Through the API: an append moves "one" to the front with its count.
    app.post(
        &format!("/api/chat/sessions/{}/messages?user_id=alice", ids[0]),
        json!({ "content": "hi", "message_type": "user" }),
    )
    .await
    .expect_status(StatusCode::CREATED);
    assert_eq!(
        names(&app.get_ok_json(list).await),
        [("one".into(), 1), ("three".into(), 0)]
    );

    // Another process renames one session and deletes another in the file.
    let conn = tool_connection(&dir.path().join(DB_FILE)).unwrap();
    conn.execute(
        "UPDATE sessions SET session_name = 'renamed elsewhere' WHERE id = ?1",
        [&ids[0]],
    )
    .unwrap();
    conn.execute("DELETE FROM sessions WHERE id = ?1", [&ids[2]])
        .unwrap();
    drop(conn);
    assert_eq!(
        names(&app.get_ok_json(list).await),
        [("renamed elsewhere".into(), 1), ("two".into(), 0)]
    );

    // The continuation page is cached apart from the first.
    let all = app
        .get_ok_json("/api/chat/sessions?user_id=alice&limit=1")
        .await;
    let token = all["continuation_token"].as_str().unwrap().to_owned();
    let second = app
        .get_ok_json(&format!(
            "/api/chat/sessions?user_id=alice&limit=1&continuation_token={token}"
        ))
        .await;
    assert_eq!(names(&second), [("two".into(), 0)]);
}
