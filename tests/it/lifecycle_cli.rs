//! Issue 10 from a terminal and from the Functions host: `chat-sessions
//! export`, `erase` and `retention` (the real binary), and the
//! `RetentionSweep` timer (the host's payload replayed against the router).
//! On the embedded store, whose file a test can age directly.

use std::path::Path;

use axum::http::StatusCode;
use chat_sessions::{
    api::ApiSettings,
    functions::{FunctionsSettings, RETENTION_FUNCTION},
    retention::RetentionPolicy,
    store::sqlite::DB_FILE,
};
use serde_json::json;

use crate::common::{TestApp, app_over_sqlite, binary::Binary, json::fixture, sqlite_store};

async fn seed(app: &TestApp) {
    for (owner, messages) in [("alice", 2), ("alice", 1), ("bob", 1)] {
        let id = app.create_session(owner).await;
        for i in 0..messages {
            app.post(
                &format!("/api/chat/sessions/{id}/messages?user_id={owner}"),
                json!({ "content": format!("Grüße {i}"), "message_type": "user" }),
            )
            .await
            .expect_status(StatusCode::CREATED);
        }
    }
}

/// Makes every session of the file look untouched (and archived, if so)
/// since 2020.
fn age(dir: &Path) {
    let conn = chat_sessions::store::sqlite::tool_connection(&dir.join(DB_FILE)).unwrap();
    conn.execute_batch(
        "UPDATE sessions SET updated_at = '2020-01-01T00:00:00.000000Z', \
         archived_at = CASE WHEN archived_at IS NULL THEN NULL \
         ELSE '2020-01-01T00:00:00.000000Z' END",
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_export_writes_the_http_export_stream() {
    let dir = tempfile::tempdir().unwrap();
    let app = app_over_sqlite(dir.path());
    seed(&app).await;
    let http = app
        .get("/api/chat/export?user_id=alice")
        .await
        .expect_status(StatusCode::OK)
        .body;
    assert_eq!(std::str::from_utf8(&http).unwrap().lines().count(), 2 + 3);
    let out = dir.path().join("alice.ndjson");
    let run = Binary::run(
        dir.path(),
        &["export", "--user", "alice", "--out", out.to_str().unwrap()],
    )
    .wait_with_output();
    assert!(run.status.success());
    assert_eq!(std::fs::read(&out).unwrap(), http.to_vec());
    let stdout = Binary::run(dir.path(), &["export", "--user", "alice"]).wait_with_output();
    assert!(stdout.status.success());
    assert_eq!(stdout.stdout, http.to_vec());
    // A file that cannot be written fails the command and leaves nothing.
    let nowhere = dir.path().join("missing-dir").join("x.ndjson");
    let failed = Binary::run(
        dir.path(),
        &[
            "export",
            "--user",
            "alice",
            "--out",
            nowhere.to_str().unwrap(),
        ],
    )
    .wait_with_output();
    assert!(!failed.status.success());
    assert!(!nowhere.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_erase_needs_yes_and_erases_one_user() {
    let dir = tempfile::tempdir().unwrap();
    let app = app_over_sqlite(dir.path());
    seed(&app).await;
    let refused = Binary::run(dir.path(), &["erase", "--user", "alice"]).wait_with_output();
    assert!(!refused.status.success(), "no --yes, no erase");
    let alice = app.get_ok_json("/api/chat/sessions?user_id=alice").await;
    assert_eq!(alice["sessions"].as_array().unwrap().len(), 2);

    let erased = Binary::run(dir.path(), &["erase", "--user", "alice", "--yes"]).wait_with_output();
    assert!(erased.status.success());
    assert_eq!(
        String::from_utf8_lossy(&erased.stdout).trim(),
        "erased user alice: 2 sessions, 3 messages, 0 legacy messages deleted"
    );
    let alice = app.get_ok_json("/api/chat/sessions?user_id=alice").await;
    assert_eq!(alice["sessions"], json!([]));
    let bob = app.get_ok_json("/api/chat/sessions?user_id=bob").await;
    assert_eq!(bob["sessions"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_retention_reports_archives_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let app = app_over_sqlite(dir.path());
    seed(&app).await;
    let off = Binary::run(dir.path(), &["retention"]).wait_with_output();
    assert!(off.status.success());
    assert!(String::from_utf8_lossy(&off.stdout).contains("retention is off"));
    age(dir.path());
    let archive = [("RETENTION_ARCHIVE_AFTER_DAYS", "30")];
    let dry =
        Binary::run_with_env(dir.path(), &["retention", "--dry-run"], &archive).wait_with_output();
    let text = String::from_utf8_lossy(&dry.stdout).to_string();
    assert!(dry.status.success());
    assert!(text.contains("would archive: 3 sessions"), "{text}");
    assert!(text.contains("deleting: off"), "{text}");
    let active = app
        .get_ok_json("/api/chat/sessions?user_id=alice&is_active=true")
        .await;
    assert_eq!(active["sessions"].as_array().unwrap().len(), 2, "dry run");

    let wet = Binary::run_with_env(dir.path(), &["retention"], &archive).wait_with_output();
    let text = String::from_utf8_lossy(&wet.stdout).to_string();
    assert!(text.contains("archived: 3 sessions"), "{text}");
    let archived = app
        .get_ok_json("/api/chat/sessions?user_id=alice&is_active=false")
        .await;
    assert_eq!(archived["sessions"].as_array().unwrap().len(), 2);
    assert!(archived["sessions"][0]["archived_at"].is_string());

    age(dir.path());
    let delete = [("RETENTION_DELETE_AFTER_DAYS", "30")];
    let wet = Binary::run_with_env(dir.path(), &["retention"], &delete).wait_with_output();
    let text = String::from_utf8_lossy(&wet.stdout).to_string();
    assert!(text.contains("deleted: 3 sessions (4 messages)"), "{text}");
    let alice = app.get_ok_json("/api/chat/sessions?user_id=alice").await;
    assert_eq!(alice["sessions"], json!([]));
    let bad = Binary::run_with_env(
        dir.path(),
        &["retention"],
        &[("RETENTION_DELETE_AFTER_DAYS", "0")],
    )
    .wait_with_output();
    assert!(!bad.status.success(), "0 days is refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retention_sweep_is_off_unless_enabled_and_configured() {
    let timer = fixture("timer_trigger.json");
    let disabled = TestApp::with_functions(FunctionsSettings {
        retention: RetentionPolicy {
            archive_after_days: Some(1),
            delete_after_days: None,
        },
        ..FunctionsSettings::default()
    });
    let body = disabled.invoke(RETENTION_FUNCTION, timer.clone()).await;
    assert!(body.outputs.is_empty());
    assert!(body.logs[0].contains("disabled"), "{:?}", body.logs);
    let unconfigured = TestApp::with_functions(FunctionsSettings {
        retention_sweep_enabled: true,
        ..FunctionsSettings::default()
    });
    let body = unconfigured.invoke(RETENTION_FUNCTION, timer.clone()).await;
    assert!(body.logs[0].contains("retention is off"), "{:?}", body.logs);

    let (store, dir) = sqlite_store();
    let app = TestApp::service(
        store,
        ApiSettings::default(),
        FunctionsSettings {
            retention_sweep_enabled: true,
            retention: RetentionPolicy {
                archive_after_days: Some(30),
                delete_after_days: Some(90),
            },
            ..FunctionsSettings::default()
        },
        None,
        Box::new(()),
    );
    let old = app.create_session("alice").await;
    age(dir.path());
    let fresh = app.create_session("alice").await;
    let body = app.invoke(RETENTION_FUNCTION, timer.clone()).await;
    let logs = body.logs.join("\n");
    assert!(logs.contains("archived: 1 sessions"), "{logs}");
    assert!(logs.contains("deleted: 0 sessions"), "{logs}");
    let uri = |id: &str| format!("/api/chat/sessions/{id}?user_id=alice");
    assert_eq!(app.get_ok_json(&uri(&old)).await["is_active"], false);
    assert_eq!(app.get_ok_json(&uri(&fresh)).await["is_active"], true);
    // A malformed invocation is refused, as for the other timer.
    app.post(&format!("/{RETENTION_FUNCTION}"), json!("nonsense"))
        .await
        .expect_problem(StatusCode::BAD_REQUEST);
    drop(dir);
}
