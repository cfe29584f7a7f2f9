//! The migration on the embedded store from JSONL: result, idempotence,
//! merging, dry runs, stragglers, resumption, the CLI killed with SIGKILL,
//! and the queue function following its own continuation messages.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    time::Duration,
};

use chat_sessions::{
    api::ApiSettings,
    domain::{JsonObject, MessageType, NewMessage, NewSession, SessionId, Timestamp, UserId},
    functions::{
        CONTINUATION_BINDING, FunctionsSettings, MIGRATE_FUNCTION, QUEUE_TRIGGER_BINDING,
        queue::MigrationRequest,
    },
    migration::{self, Checkpoint, Options, Quiet, Report, Resume, SourceSpec, jsonl::JsonlSource},
    store::{DynMigrationStore, MigrationStore as _, Owner},
};
use serde_json::{Value, json};

use crate::{
    common::{TestApp, binary::Binary, json::fixture, sqlite_store},
    legacy_data::{LegacySet, generate, run_pass, verify},
};

/// The set as a JSONL file in a fresh temp directory.
fn write_jsonl(set: &LegacySet) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("legacy.jsonl");
    std::fs::write(&path, set.jsonl()).unwrap();
    (dir, path)
}

async fn migrate(store: &DynMigrationStore, path: &Path, dry_run: bool, run_id: &str) -> Report {
    // Small chunks, so that the external sort really merges several files.
    let mut source = JsonlSource::with_chunk_records(path, 500);
    run_pass(&mut source, store, dry_run, false, run_id).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jsonl_migration_moves_everything_once_and_again_changes_nothing() {
    let set = generate(400, 6, 60, true);
    assert!(set.records.len() > 2000, "thousands of messages");
    let (_dir, path) = write_jsonl(&set);
    let (store, _guard) = sqlite_store();

    let report = migrate(&store, &path, false, "r1").await;
    assert!(report.finished);
    assert_eq!(report.sessions_created as usize, set.sessions().len());
    assert_eq!(report.messages_migrated as usize, set.message_count());
    assert_eq!(report.duplicate_records as usize, set.duplicates);
    assert_eq!(report.orphan_count as usize, set.orphans.len());
    assert_eq!(
        report.orphans.iter().cloned().collect::<BTreeSet<_>>(),
        set.orphans
    );
    assert_eq!(report.conflicts.len(), 1);
    assert_eq!(report.conflicts[0].session_id, set.conflict_session);
    assert!(report.has_problems(), "a conflict needs attention");
    verify(&store, &set).await;

    // Again: nothing new, nothing changed.
    let before = snapshot(&store, &set).await;
    let again = migrate(&store, &path, false, "r2").await;
    assert_eq!(
        (
            again.sessions_created,
            again.sessions_merged,
            again.messages_migrated
        ),
        (0, 0, 0)
    );
    assert_eq!(again.sessions_unchanged as usize, set.sessions().len());
    assert_eq!(again.messages_already_present as usize, set.message_count());
    assert_eq!(
        snapshot(&store, &set).await,
        before,
        "a second run changes nothing"
    );
}

/// Every session's ETag: any write would change one.
async fn snapshot(store: &DynMigrationStore, set: &LegacySet) -> Vec<String> {
    let mut etags = Vec::new();
    for id in set.sessions() {
        let id = SessionId::parse(id).unwrap();
        etags.push(
            store
                .get_session(&Owner::Anonymous, &id)
                .await
                .unwrap()
                .etag
                .to_string(),
        );
    }
    etags
}

#[tokio::test]
async fn a_dry_run_reports_and_writes_nothing() {
    let set = generate(60, 4, 10, true);
    let (_dir, path) = write_jsonl(&set);
    let (store, _guard) = sqlite_store();
    let report = migrate(&store, &path, true, "dry").await;
    assert!(report.dry_run && report.finished);
    assert_eq!(report.sessions_created as usize, set.sessions().len());
    assert_eq!(report.messages_migrated as usize, set.message_count());
    for id in set.sessions() {
        let id = SessionId::parse(id).unwrap();
        assert!(
            store.get_session(&Owner::Anonymous, &id).await.is_err(),
            "dry run created {id}"
        );
    }
    assert_eq!(
        store.load_checkpoint("dry").await.unwrap(),
        None,
        "not even a checkpoint"
    );
}

#[tokio::test]
async fn existing_sessions_are_merged_and_stragglers_picked_up() {
    let set = generate(30, 4, 5, false);
    let (_dir, path) = write_jsonl(&set);
    let (store, _guard) = sqlite_store();
    // A session the new API already wrote to, with the same id and owner.
    let target = set
        .records
        .iter()
        .find(|r| {
            r["session_id"].is_string()
                && r["user_id"].is_string()
                && r["session_id"] != "sess_conflict"
        })
        .unwrap();
    let id = SessionId::parse(target["session_id"].as_str().unwrap()).unwrap();
    let user = UserId::parse(target["user_id"].as_str().unwrap()).unwrap();
    store
        .create_session(
            NewSession::new(
                Some(id.clone()),
                Some(user.clone()),
                Some("kept".into()),
                JsonObject::new(),
                Timestamp::now(),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    let fresh = NewMessage::new(
        None,
        "written by the new API".into(),
        MessageType::User,
        None,
        JsonObject::new(),
    )
    .unwrap();
    store
        .append_message(&Owner::User(user.clone()), &id, fresh)
        .await
        .unwrap();

    let report = migrate(&store, &path, false, "merge").await;
    assert_eq!(report.sessions_merged, 1);
    let session = store
        .get_session(&Owner::User(user.clone()), &id)
        .await
        .unwrap()
        .value;
    assert_eq!(session.session_name.as_deref(), Some("kept"));
    assert!(
        session
            .messages
            .iter()
            .any(|m| m.content == "written by the new API")
    );
    let legacy_count = set
        .records
        .iter()
        .filter(|r| r["session_id"] == id.as_str())
        .count();
    assert_eq!(session.messages.len(), legacy_count + 1);
    assert!(
        session
            .messages
            .windows(2)
            .all(|w| (w[0].created_at, &w[0].id) <= (w[1].created_at, &w[1].id))
    );

    // An old app version writes one more old-style message afterwards.
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(
        &json!({ "id": "m_straggler", "session_id": id.as_str(), "user_id": user.as_str(), "content": "late",
                 "message_type": "user", "metadata": {}, "created_at": "2030-01-01T00:00:00Z" })
        .to_string(),
    );
    text.push('\n');
    std::fs::write(&path, text).unwrap();
    let next = migrate(&store, &path, false, "merge").await;
    assert_eq!((next.sessions_merged, next.messages_migrated), (1, 1));
    let session = store
        .get_session(&Owner::User(user), &id)
        .await
        .unwrap()
        .value;
    assert_eq!(session.messages.last().unwrap().id.as_str(), "m_straggler");
    assert_eq!(session.message_count as usize, legacy_count + 2);
}

#[tokio::test]
async fn a_run_stopped_by_its_budget_resumes_where_it_was() {
    let set = generate(80, 4, 10, true);
    let (_dir, path) = write_jsonl(&set);
    let (store, _guard) = sqlite_store();
    let options = Options {
        batch_size: 20,
        dry_run: false,
        delete_old: false,
        run_id: "slices".into(),
        budget: Some(Duration::ZERO),
        continues_step: None,
    };
    let mut invocations = 0;
    loop {
        let mut source = JsonlSource::with_chunk_records(&path, 100);
        let checkpoint = migration::run(
            &mut source,
            store.as_ref(),
            &options,
            Resume::Store,
            &mut Quiet,
        )
        .await
        .unwrap();
        invocations += 1;
        if checkpoint.report.finished {
            assert_eq!(
                checkpoint.report.messages_migrated as usize,
                set.message_count()
            );
            assert_eq!(checkpoint.report.orphan_count as usize, set.orphans.len());
            break;
        }
        assert!(invocations < 1000, "no progress");
    }
    assert!(invocations > 10, "the budget cut the run into slices");
    verify(&store, &set).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_killed_mid_run_converges_when_started_again() {
    let set = generate(6000, 5, 200, true);
    let (dir, path) = write_jsonl(&set);
    let path_arg = path.to_str().unwrap();
    let store_dir = dir.path().join("store");
    let migrate = ["migrate", "--from-jsonl", path_arg, "--run-id", "crash"];
    let cli = Binary::run(&store_dir, &migrate);
    // Kill it once it has checkpointed some sessions, not all.
    let mut killed_mid_run = false;
    for _ in 0..400 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        if let Ok(store) =
            chat_sessions::store::sqlite::SqliteStore::open(&store_dir, Default::default())
            && let Ok(Some(saved)) = store.load_checkpoint("crash").await
        {
            let checkpoint: Checkpoint = serde_json::from_str(&saved.value).unwrap();
            if checkpoint.report.sessions_created > 50 {
                killed_mid_run = !checkpoint.report.finished;
                break;
            }
        }
    }
    cli.kill(); // SIGKILL
    assert!(killed_mid_run, "the run was killed in the middle");

    let output = Binary::run(&store_dir, &migrate).wait_with_output();
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(1),
        "exit 1: the report has a conflict\n{text}"
    );
    assert!(text.contains("finished"), "{text}");
    let store: DynMigrationStore = std::sync::Arc::new(
        chat_sessions::store::sqlite::SqliteStore::open(&store_dir, Default::default()).unwrap(),
    );
    verify(&store, &set).await;
    let status =
        Binary::run(&store_dir, &["migrate", "--status", "--run-id", "crash"]).wait_with_output();
    assert!(String::from_utf8_lossy(&status.stdout).contains("finished"));
}

/// What the Functions host posts for a queue message with this text: the
/// recorded host payload (tests/fixtures/functions/queue_trigger.json) with
/// this message, delivery count and id.
fn queue_invocation(message: &str, dequeue: u32, id: &str) -> Value {
    let mut payload = fixture("queue_trigger.json");
    payload["Data"][QUEUE_TRIGGER_BINDING] = json!(message);
    payload["Metadata"]["DequeueCount"] = json!(dequeue.to_string());
    payload["Metadata"]["Id"] = json!(format!("\"{id}\""));
    payload
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_function_follows_its_continuations_and_ignores_redeliveries() {
    let set = generate(40, 4, 8, true);
    let (_dir, path) = write_jsonl(&set);
    let (store, guard) = sqlite_store();
    let settings = FunctionsSettings {
        migration_budget: Duration::from_millis(1),
        ..FunctionsSettings::default()
    };
    let app = TestApp::service(
        store.clone(),
        ApiSettings::default(),
        settings,
        Some(SourceSpec::Jsonl(path.clone())),
        Box::new(guard),
    );

    // A dry run first: it reports and writes nothing, across invocations.
    let mut message = r#"{"dry_run":true,"batch_size":10,"run_id":"queue-dry"}"#.to_owned();
    let mut invocations = 0;
    let last_logs = loop {
        let answer = app
            .invoke(
                MIGRATE_FUNCTION,
                queue_invocation(&message, 1, &format!("d{invocations}")),
            )
            .await;
        invocations += 1;
        match answer.outputs.get(CONTINUATION_BINDING) {
            Some(Value::String(next)) => message = next.clone(),
            _ => break answer.logs,
        }
    };
    assert!(invocations > 1);
    assert!(
        last_logs.iter().any(|l| l.contains("dry run")),
        "{last_logs:?}"
    );
    assert!(
        store
            .get_session(
                &Owner::Anonymous,
                &SessionId::parse(set.sessions().into_iter().next().unwrap()).unwrap()
            )
            .await
            .is_err()
    );

    // The real run; every message is delivered twice, as at-least-once
    // queues may: the second delivery must do nothing.
    let mut message = r#"{"dry_run":false,"batch_size":10,"run_id":"queue-real"}"#.to_owned();
    let mut invocations = 0;
    let mut stale = 0;
    loop {
        let answer = app
            .invoke(
                MIGRATE_FUNCTION,
                queue_invocation(&message, 1, &format!("q{invocations}")),
            )
            .await;
        if invocations > 0 {
            let redelivered = app
                .invoke(
                    MIGRATE_FUNCTION,
                    queue_invocation(&message, 2, &format!("q{invocations}")),
                )
                .await;
            assert!(
                redelivered.outputs.is_empty(),
                "a redelivered continuation forks nothing"
            );
            assert!(
                redelivered.logs[0].contains("stale"),
                "{:?}",
                redelivered.logs
            );
            stale += 1;
        }
        invocations += 1;
        match answer.outputs.get(CONTINUATION_BINDING) {
            Some(Value::String(next)) => {
                let parsed: MigrationRequest = serde_json::from_str(next).unwrap();
                assert_eq!(parsed.run_id.as_deref(), Some("queue-real"));
                message = next.clone();
            }
            _ => {
                assert!(
                    answer.logs.iter().any(|l| l.contains("finished")),
                    "{:?}",
                    answer.logs
                );
                break;
            }
        }
        assert!(invocations < 2000, "no end");
    }
    assert!(invocations > 5 && stale > 0);
    verify(&store, &set).await;
}
