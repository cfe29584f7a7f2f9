//! The embedded store's disk: a full one (a small tmpfs mounted under the
//! data directory, filled by appends and grown again) and the WAL's bound.
//! Mounting needs root, as CI runs the tests; without it these tests fail
//! saying so, they never skip.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use chat_sessions::store::{
    Owner,
    prelude::*,
    sqlite::{DB_FILE, Durability, SqliteSettings, SqliteStore},
};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    common::{RunningApp, binary::Binary},
    conformance,
};

/// A tmpfs of a given size, mounted on a fresh directory; unmounted when
/// dropped, whatever happened (drop it after whatever holds files in it).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        mount(
            &["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"],
            dir.path(),
        );
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn resize(&self, size: &str) {
        mount(&["-o", &format!("remount,size={size}")], self.path());
    }
}

fn mount(args: &[&str], dir: &Path) {
    let output = Command::new("mount").args(args).arg(dir).output();
    match output {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "mount {args:?} {} failed: {} (this test needs root to mount a small filesystem, as \
             CI runs it)",
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => panic!("mount(8) cannot be run: {e}"),
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount").arg(self.path()).status();
        if !unmounted.is_ok_and(|s| s.success()) {
            // Still busy (a process not reaped yet): detach it now, freed
            // once the last file in it closes.
            let _ = Command::new("umount").arg("-l").arg(self.path()).status();
        }
    }
}

const USER: &str = "u1";

/// A 3 KB message with the id `id`.
fn message(id: &str) -> Value {
    let words = "the disk fills up one append at a time while nothing acknowledged is lost ";
    json!({ "id": id, "content": words.repeat(40), "message_type": "user" })
}

/// Appends message `id`; its status, after checking that a refusal is the
/// storage-full problem.
async fn append(app: &RunningApp, session: &str, id: &str, data: &Path) -> StatusCode {
    let path = format!("/api/chat/sessions/{session}/messages?user_id={USER}");
    let answer = app.post(&path, message(id)).await;
    let status = answer.status();
    if status == StatusCode::INSUFFICIENT_STORAGE {
        let kind = answer.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(kind, "application/problem+json");
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body["type"], "urn:chat-sessions:problem:storage-full");
        assert_eq!(body["status"], 507);
        let detail = body["detail"].as_str().unwrap();
        assert!(
            detail.contains("disk") && detail.contains("full"),
            "{detail}"
        );
        assert!(!detail.contains(data.to_str().unwrap()), "{detail}");
        assert!(!detail.contains("SQLite"), "{detail}");
    } else {
        assert_eq!(
            status,
            StatusCode::CREATED,
            "{}",
            answer.text().await.unwrap()
        );
    }
    status
}

/// The ids of the session's messages, in order.
async fn stored(app: &RunningApp, session: &str) -> Vec<String> {
    let path = format!("/api/chat/sessions/{session}?user_id={USER}");
    let answer = app.client.get(app.url(&path)).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let body: Value = answer.json().await.unwrap();
    body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn readiness(app: &RunningApp) -> (StatusCode, Value) {
    let answer = app
        .client
        .get(app.url("/api/health/ready"))
        .send()
        .await
        .unwrap();
    (answer.status(), answer.json().await.unwrap())
}

/// What the appends were answered: stored (201) or refused (507).
#[derive(Default)]
struct Answers {
    created: Vec<String>,
    refused: Vec<String>,
}

impl Answers {
    fn note(&mut self, id: &str, status: StatusCode) {
        let list = match status {
            StatusCode::CREATED => &mut self.created,
            _ => &mut self.refused,
        };
        list.push(id.to_owned());
    }

    /// The session holds every message answered 201, in order, and none
    /// answered 507.
    fn check(&self, stored: &[String]) {
        assert_eq!(stored, self.created);
        assert!(self.refused.iter().all(|id| !stored.contains(id)));
    }
}

/// Fills the disk with appends, one after the other, until five in a row
/// are refused. A refusal is not the end of all writes: the next, smaller
/// one may fit in what the failed one left allocated in the WAL, and a
/// checkpoint that needed no new page lets SQLite start the WAL over.
async fn fill(app: &RunningApp, session: &str, data: &Path, answers: &mut Answers) {
    let mut in_a_row = 0;
    for n in 0..2_000 {
        let id = format!("m{n}");
        let status = append(app, session, &id, data).await;
        answers.note(&id, status);
        in_a_row = if status == StatusCode::CREATED {
            0
        } else {
            in_a_row + 1
        };
        if in_a_row == 5 {
            return;
        }
    }
    panic!("2,000 appends of 3 KB did not fill a 4 MB disk");
}

/// The real binary on a 4 MB disk, filled by appends: they answer 507 and
/// keep nothing (one after the other, and 16 at once), readiness right
/// after a refusal is 503 naming the disk, reads, the listing and the
/// export go on. Grown, the disk is ready again before any write, takes
/// appends at once, without a restart, and every message answered 201 is
/// there, none answered 507 (also after a restart).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_by_name_and_recovers_when_it_grows() {
    let disk = Tmpfs::mount("4m");
    let data = disk.path().join("data");
    let mut server = Binary::serve(&data).await;
    let app = server.app();
    let session = app.create_session(USER).await;
    let mut answers = Answers::default();
    fill(&app, &session, &data, &mut answers).await;
    assert!(answers.created.len() >= 5, "{:?}", answers.created);
    // Nothing was written since the last refusal.
    let (status, problem) = readiness(&app).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("is full") && detail.contains("(DATA_DIR)"),
        "{detail}"
    );

    // Many at once, in groups: each answered 201 or 507, and kept as told.
    let burst: Vec<_> = (0..16).map(|n| format!("burst{n}")).collect();
    let statuses =
        futures::future::join_all(burst.iter().map(|id| append(&app, &session, id, &data)));
    for (id, status) in burst.iter().zip(statuses.await) {
        answers.note(id, status);
    }
    answers.check(&stored(&app, &session).await);
    let list = app
        .get_json(&format!("/api/chat/sessions?user_id={USER}"))
        .await;
    assert_eq!(list["sessions"][0]["message_count"], answers.created.len());
    let export = app
        .client
        .get(app.url(&format!("/api/chat/export?user_id={USER}")))
        .send()
        .await
        .unwrap();
    assert_eq!(export.status(), StatusCode::OK);

    disk.resize("64m");
    // Ready again from the room on the disk alone, before any write.
    assert_eq!(readiness(&app).await.0, StatusCode::OK);
    assert_eq!(
        append(&app, &session, "after", &data).await,
        StatusCode::CREATED
    );
    answers.note("after", StatusCode::CREATED);
    answers.check(&stored(&app, &session).await);
    assert!(server.is_running());
    // And after a restart, from the file alone.
    server.kill();
    let server = Binary::serve(&data).await;
    answers.check(&stored(&server.app(), &session).await);
}

/// Runs the CLI on `data`: it exits with `code` and one line on stderr
/// saying the disk is full.
fn expect_one_line(data: &Path, args: &[&str], env: &[(&str, &str)], code: i32) {
    let output = Binary::run_with_output(data, args, env).wait_with_output();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(output.status.code(), Some(code), "{args:?}: {stderr}");
    assert_eq!(lines.len(), 1, "{args:?}: {stderr}");
    assert!(
        lines[0].contains("the disk holding the data directory is full"),
        "{args:?}: {stderr}"
    );
}

/// An export file of one session of `USER` untouched since 2024 (a
/// retention candidate), with `messages` messages of 3 KB.
fn old_session(messages: usize) -> String {
    let mut lines = vec![json!({
        "type": "session", "id": "old", "user_id": USER, "session_name": "old",
        "is_active": true, "archived_at": null, "context": {}, "message_count": messages,
        "last_message_at": "2024-03-01T09:00:00.000000Z",
        "created_at": "2024-03-01T08:00:00.000000Z", "updated_at": "2024-03-01T09:00:00.000000Z",
    })];
    lines.extend((0..messages).map(|n| {
        json!({
            "type": "message", "session_id": "old", "id": format!("o{n}"),
            "content": message("")["content"], "message_type": "user", "user_id": USER,
            "metadata": {}, "created_at": "2024-03-01T09:00:00.000000Z",
        })
    }));
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// Fills the file system at `dir` to its last byte, then gives `bytes`
/// back.
fn fill_to_the_last_byte_but(dir: &Path, bytes: u64) {
    let path = dir.join("filler");
    let mut filler = std::fs::File::create(&path).unwrap();
    let block = vec![0u8; 4096];
    while std::io::Write::write_all(&mut filler, &block).is_ok() {}
    let len = std::fs::metadata(&path).unwrap().len();
    filler.set_len(len.saturating_sub(bytes)).unwrap();
}

/// Every command that writes (`import`, `migrate`, `retention`, `erase`),
/// with the store closed on a full disk: with no byte left (they cannot
/// even open the store: its shared-memory index cannot grow), then with
/// 40 KiB (room to open it, not to write): each stops with one line saying
/// the disk is full, and the database file is left as it was.
#[test]
fn cli_commands_on_a_full_disk_stop_with_one_line() {
    let disk = Tmpfs::mount("1m");
    let data = disk.path().join("data");
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.ndjson");
    std::fs::write(&old, old_session(20)).unwrap();
    let jsonl = dir.path().join("legacy.jsonl");
    let record = json!({ "id": "l1", "session_id": "legacy", "user_id": USER, "content": "old",
                         "message_type": "user", "metadata": {}, "created_at": "2024-01-01T00:00:00Z" });
    std::fs::write(&jsonl, format!("{record}\n")).unwrap();
    let (old, jsonl) = (old.to_str().unwrap(), jsonl.to_str().unwrap());
    let created = Binary::run(&data, &["import", "--user", USER, old]).wait_with_output();
    assert!(created.status.success());
    let before = std::fs::read(data.join(DB_FILE)).unwrap();

    let fixture = "tests/fixtures/chatgpt/conversations.json";
    let retention = [("RETENTION_ARCHIVE_AFTER_DAYS", "1")];
    for (room, import, migrate, write) in [(0, 1, 1, 1), (40 * 1024, 2, 2, 1)] {
        fill_to_the_last_byte_but(disk.path(), room);
        expect_one_line(&data, &["import", "--user", "u2", fixture], &[], import);
        expect_one_line(&data, &["migrate", "--from-jsonl", jsonl], &[], migrate);
        expect_one_line(&data, &["retention"], &retention, write);
        expect_one_line(&data, &["erase", "--user", USER, "--yes"], &[], write);
        assert!(
            std::fs::read(data.join(DB_FILE)).unwrap() == before,
            "the database file changed"
        );
    }
}

/// WAL file's size in the store's directory.
fn wal_bytes(dir: &Path) -> u64 {
    let mut wal = dir.join(DB_FILE).into_os_string();
    wal.push("-wal");
    std::fs::metadata(PathBuf::from(wal)).map_or(0, |m| m.len())
}

/// A burst of appends that grows the WAL past its bound (a reader holding
/// an old snapshot keeps SQLite from starting it over meanwhile), then a
/// quiet moment: the WAL file is back under its bound, and every message
/// is there.
#[tokio::test]
async fn the_wal_is_cut_back_to_its_bound_once_writes_stop() {
    const BOUND: u64 = 256 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_with(
        dir.path(),
        SqliteSettings {
            durability: Durability::Full,
            wal_max_bytes: BOUND,
        },
    )
    .unwrap();
    let alice = conformance::user("alice");
    let owner = Owner::User(alice.clone());
    let id = conformance::sid("burst");
    store
        .create_session(conformance::new_session(&id, Some(&alice)))
        .await
        .unwrap();
    let reader = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
    reader
        .execute_batch("BEGIN; SELECT count(*) FROM sessions;")
        .unwrap();
    let content = "a burst of appends grows the write-ahead log ".repeat(60);
    let appends = (0..200).map(|n| {
        let message = conformance::message(Some(&format!("m{n}")), &content);
        store.append_message(&owner, &id, message)
    });
    for appended in futures::future::join_all(appends).await {
        appended.unwrap();
    }
    assert!(
        wal_bytes(dir.path()) > BOUND,
        "the burst did not grow the WAL past its bound"
    );
    reader.execute_batch("COMMIT").unwrap();
    drop(reader);

    let deadline = Instant::now() + Duration::from_secs(10);
    while wal_bytes(dir.path()) > BOUND {
        assert!(
            Instant::now() < deadline,
            "the WAL still takes {} bytes, over its bound of {BOUND}",
            wal_bytes(dir.path())
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let session = store.get_session(&owner, &id).await.unwrap().value;
    assert_eq!(session.messages.len(), 200);
}

/// The data directory removed under the running binary: SQLite would go on
/// writing into the deleted file (and lose it all at exit); instead writes
/// are soon refused with 507 naming the directory's state, and readiness
/// says what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_data_directory_refuses_writes_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Binary::serve(&data).await;
    let app = server.app();
    let session = app.create_session(USER).await;
    assert_eq!(
        append(&app, &session, "m0", &data).await,
        StatusCode::CREATED
    );
    std::fs::remove_dir_all(&data).unwrap();

    // Noticed within a moment (the store looks every second when idle).
    let path = format!("/api/chat/sessions/{session}/messages?user_id={USER}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let body: Value = loop {
        let answer = app
            .post(&path, message(&uuid::Uuid::new_v4().to_string()))
            .await;
        if answer.status() == StatusCode::INSUFFICIENT_STORAGE {
            break answer.json().await.unwrap();
        }
        assert_eq!(answer.status(), StatusCode::CREATED);
        assert!(
            Instant::now() < deadline,
            "writes into the deleted file went on"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        body["type"],
        "urn:chat-sessions:problem:storage-unavailable"
    );
    let detail = body["detail"].as_str().unwrap();
    assert!(!detail.contains(data.to_str().unwrap()), "{detail}");
    let (status, problem) = readiness(&app).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("cannot be written") && detail.contains("(DATA_DIR)"),
        "{detail}"
    );
}
