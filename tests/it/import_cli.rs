//! `chat-sessions import`: the real binary importing files into the
//! embedded store, its report on stdout and its exit codes.

use chat_sessions::{
    domain::UserId,
    store::{ListQuery, Owner, prelude::*, sqlite::SqliteStore},
};
use serde_json::{Value, json};

use crate::common::binary::Binary;

const FIXTURE: &str = "tests/fixtures/chatgpt/conversations.json";

fn import(store_dir: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let mut all = vec!["import"];
    all.extend_from_slice(args);
    let output = Binary::run(store_dir, &all).wait_with_output();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

async fn session_count(store_dir: &std::path::Path, user: &str) -> usize {
    let store = SqliteStore::open(store_dir, Default::default()).unwrap();
    let page = store
        .list_sessions(
            &Owner::User(UserId::parse(user).unwrap()),
            &ListQuery {
                limit: 200,
                is_active: None,
                continuation: None,
            },
        )
        .await
        .unwrap();
    page.sessions.len()
}

#[tokio::test]
async fn the_cli_imports_once_reports_and_refuses_a_bad_file_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let (code, out) = import(&store_dir, &["--user", "alice", FIXTURE]);
    assert_eq!(code, Some(0), "{out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        report,
        json!({ "sessions_created": 3, "sessions_updated": 0, "messages_added": 19, "messages_skipped": 0 })
    );
    assert_eq!(session_count(&store_dir, "alice").await, 3);
    let (code, out) = import(&store_dir, &["--user", "alice", FIXTURE]);
    assert_eq!(code, Some(0));
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["messages_skipped"], 19);
    assert_eq!(report["messages_added"], 0);

    // A file whose second conversation is broken: exit 1, nothing written.
    let mut conversations: Value =
        serde_json::from_str(&std::fs::read_to_string(FIXTURE).unwrap()).unwrap();
    conversations[1]["mapping"] = json!("not a mapping");
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, conversations.to_string()).unwrap();
    let bad = bad.to_str().unwrap();
    let (code, _) = import(&store_dir, &["--user", "bob", bad]);
    assert_eq!(code, Some(1));
    assert_eq!(session_count(&store_dir, "bob").await, 0);
    // --dry-run checks without a store.
    let (code, out) = import(&store_dir, &["--user", "bob", "--dry-run", FIXTURE]);
    assert_eq!(code, Some(0));
    assert!(out.contains("ChatGPT"), "{out}");
    let (code, _) = import(&store_dir, &["--user", "bob", "--dry-run", bad]);
    assert_eq!(code, Some(1));
    assert_eq!(session_count(&store_dir, "bob").await, 0);
}
