//! Starting, telling and recovering, with the real binary: started while
//! its dependencies are not there yet (the identity endpoint refuses
//! tokens, no Cosmos server listens, the database or container is missing)
//! it never exits, answers the host's probe at once, says why in readiness
//! and 503s, and serves once they are there, without a restart. Settings
//! that can never work stop it at once with one line. SIGTERM during
//! concurrent appends loses nothing it acknowledged.

use std::{
    collections::HashSet,
    future::Future,
    path::Path,
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::common::{
    RunningApp,
    binary::Binary,
    cosmos::{EMULATOR_KEY, launch, server_client, server_config, server_port},
    free_port,
    identity::{ACCESS_TOKEN, CLIENT_ID, IDENTITY_SECRET, IdentityEndpoint},
    json,
};

/// Polls `probe` every 100 ms until it gives a value; panics after `limit`.
async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `GET path`: status, `Retry-After`, `Content-Type` and body.
async fn fetch(app: &RunningApp, path: &str) -> (u16, Option<u64>, String, Value) {
    let response = app.client.get(app.url(path)).send().await.unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let retry_after = header("retry-after").and_then(|v| v.parse().ok());
    let content_type = header("content-type").unwrap_or_default();
    let status = response.status().as_u16();
    (
        status,
        retry_after,
        content_type,
        response.json().await.unwrap_or(Value::Null),
    )
}

/// Readiness until it is a 503 whose detail contains every one of
/// `words`; that detail.
async fn not_ready_saying(app: &RunningApp, words: &[&str]) -> String {
    eventually(
        Duration::from_secs(30),
        "readiness naming the cause",
        || async {
            let (status, retry_after, content_type, body) = fetch(app, "/api/health/ready").await;
            if status == 200 {
                panic!("ready too early: {body}");
            }
            assert_eq!(status, 503, "{body}");
            assert_eq!(content_type, "application/problem+json");
            assert!(
                retry_after.is_some_and(|s| s >= 1),
                "Retry-After: {retry_after:?}"
            );
            let detail = body["detail"].as_str().unwrap().to_owned();
            words.iter().all(|w| detail.contains(w)).then_some(detail)
        },
    )
    .await
}

/// While the store cannot be reached: the probe and liveness answer 200,
/// liveness says "connecting", and a data request is a 503 problem with
/// `Retry-After`.
async fn serves_without_its_store(app: &RunningApp) {
    let (status, ..) = fetch(app, "/").await;
    assert_eq!(status, 200);
    let (status, _, _, health) = fetch(app, "/api/health").await;
    assert_eq!(status, 200);
    assert_eq!(health["status"], "ok");
    assert_eq!(health["store"], "cosmos");
    assert_eq!(health["store_state"], "connecting");
    let response = app
        .post("/api/chat/sessions", json!({ "user_id": "u1" }))
        .await;
    assert_eq!(response.status().as_u16(), 503);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry_after), "{retry_after}");
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    // Every capability waits for the store the same way.
    for path in [
        "/api/chat/sessions?user_id=u1",
        "/api/chat/search?q=hello&user_id=u1",
        "/api/chat/export?user_id=u1",
    ] {
        let (status, retry_after, content_type, _) = fetch(app, path).await;
        assert_eq!(status, 503, "{path}");
        assert!(retry_after.is_some(), "{path}");
        assert_eq!(content_type, "application/problem+json", "{path}");
    }
    let erase = app
        .post(
            "/api/chat/erase?user_id=u1",
            json!({ "confirm": "u1", "user_id": "u1" }),
        )
        .await;
    assert_eq!(erase.status().as_u16(), 503);
}

/// Once the store can be reached: readiness turns 200 and a session and a
/// message go in and come back.
async fn serves_once_ready(app: &RunningApp) {
    eventually(Duration::from_secs(60), "readiness 200", || async {
        let (status, _, _, body) = fetch(app, "/api/health/ready").await;
        (status == 200).then_some(body)
    })
    .await;
    let (_, _, _, health) = fetch(app, "/api/health").await;
    assert_eq!(health["store_state"], "ready");
    let id = app.create_session("u1").await;
    let path = format!("/api/chat/sessions/{id}/messages?user_id=u1");
    let sent = app
        .post(&path, json!({ "content": "hello", "message_type": "user" }))
        .await;
    assert_eq!(sent.status().as_u16(), 201);
    let session = app
        .get_json(&format!("/api/chat/sessions/{id}?user_id=u1"))
        .await;
    assert_eq!(json::texts(&session["messages"], "content"), ["hello"]);
    let found = app.get_json("/api/chat/search?q=hello&user_id=u1").await;
    assert_eq!(json::texts(&found["results"], "session_id"), [id.as_str()]);
    let export = app
        .client
        .get(app.url("/api/chat/export?user_id=u1"))
        .send()
        .await
        .unwrap();
    assert_eq!(export.status().as_u16(), 200);
    assert!(export.text().await.unwrap().contains("\"hello\""));
}

fn log_of(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_refusing_tokens_then_assigned() {
    let (_client, config) = server_client().await;
    let identity = IdentityEndpoint::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let endpoint = format!("http://127.0.0.1:{}/", server_port());
    let mut server = Binary::serve_logged(
        dir.path(),
        &[
            ("COSMOS_ENDPOINT", &endpoint),
            ("COSMOS_DATABASE", &config.database),
            ("IDENTITY_ENDPOINT", &identity.url),
            ("IDENTITY_HEADER", IDENTITY_SECRET),
            ("AZURE_CLIENT_ID", CLIENT_ID),
            // The strictest level: not even debug logs may carry a secret.
            ("RUST_LOG", "debug"),
        ],
        &log,
    )
    .await;
    let app = server.app();

    let detail = not_ready_saying(
        &app,
        &[CLIENT_ID, "could not get a token", "has not been assigned"],
    )
    .await;
    serves_without_its_store(&app).await;
    identity.refusing.store(false, Ordering::SeqCst);
    serves_once_ready(&app).await;
    assert!(server.is_running(), "the process never exits");

    // It asked for a Cosmos DB token as the configured identity.
    let asked = identity.asked.lock().unwrap().clone();
    assert!(asked.len() >= 2, "{asked:?}");
    for query in &asked {
        assert_eq!(query["api-version"], "2019-08-01");
        assert_eq!(query["resource"], "https://cosmos.azure.com");
        assert_eq!(query["client_id"], CLIENT_ID);
    }
    // Neither the identity secret nor the token was ever shown.
    let log = log_of(&log);
    assert!(log.contains("has not been assigned"), "the log says why");
    for secret in [IDENTITY_SECRET, ACCESS_TOKEN] {
        assert!(!detail.contains(secret));
        assert!(!log.contains(secret), "{secret} is in the log");
    }
    // Erasing, legacy container included, works once connected.
    let erased = app
        .post(
            "/api/chat/erase?user_id=u1",
            json!({ "confirm": "u1", "user_id": "u1" }),
        )
        .await;
    assert_eq!(erased.status().as_u16(), 200);
    let erased: Value = erased.json().await.unwrap();
    assert_eq!(erased["complete"], true, "{erased}");
    assert_eq!(erased["sessions_deleted"], 1, "{erased}");
}

/// A local Cosmos server on a port chosen before it starts, stopped when
/// dropped.
struct LateServer(std::process::Child);

impl Drop for LateServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_cosmos_server_listening_then_started() {
    server_port(); // installs the server's package
    let port = free_port();
    let mut config = server_config();
    config.endpoint = format!("http://127.0.0.1:{port}/");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let mut server = Binary::serve_logged(
        dir.path(),
        &[
            ("COSMOS_ENDPOINT", &config.endpoint),
            ("COSMOS_KEY", EMULATOR_KEY),
            ("COSMOS_DATABASE", &config.database),
            ("RUST_LOG", "info"),
        ],
        &log,
    )
    .await;
    let app = server.app();

    not_ready_saying(
        &app,
        &[&config.endpoint, "COSMOS_ENDPOINT", "cannot be reached"],
    )
    .await;
    serves_without_its_store(&app).await;
    // The migration's queue function fails the invocation (the queue
    // retries it) and says why.
    let invocation = app
        .client
        .post(app.url("/MigrateChatSessions"))
        .json(&json::fixture("queue_trigger.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(invocation.status().as_u16(), 503);
    let text = invocation.text().await.unwrap();
    assert!(text.contains("not reachable yet"), "{text}");

    let (child, _) = launch(port);
    let _late = LateServer(child);
    let client = chat_sessions::store::cosmos::connect(&config)
        .await
        .unwrap();
    chat_sessions::store::cosmos::init_containers(&client, &config)
        .await
        .unwrap();
    serves_once_ready(&app).await;
    assert!(server.is_running(), "the process never exits");
    assert!(
        !log_of(&log).contains(EMULATOR_KEY),
        "the key is in the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_database_then_container_are_named_until_init_cosmos_creates_them() {
    let config = server_config();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let env = [
        ("COSMOS_ENDPOINT", config.endpoint.as_str()),
        ("COSMOS_KEY", EMULATOR_KEY),
        ("COSMOS_DATABASE", config.database.as_str()),
        ("COSMOS_SESSIONS_CONTAINER", "my_sessions"),
    ];
    let server = Binary::serve_logged(dir.path(), &env, &log).await;
    let app = server.app();

    let quoted = format!("{:?}", config.database);
    not_ready_saying(&app, &[&quoted, "COSMOS_DATABASE", "init-cosmos"]).await;
    let client = chat_sessions::store::cosmos::connect(&config)
        .await
        .unwrap();
    client
        .create_database(&config.database, None)
        .await
        .unwrap();
    not_ready_saying(
        &app,
        &[
            "\"my_sessions\"",
            "COSMOS_SESSIONS_CONTAINER",
            "init-cosmos",
        ],
    )
    .await;
    serves_without_its_store(&app).await;

    // What the detail advises.
    let init = Binary::run_with_output(dir.path(), &["init-cosmos"], &env).wait_with_output();
    assert!(init.status.success(), "{init:?}");
    serves_once_ready(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_that_can_never_work_stop_it_at_once_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let cosmos = ("COSMOS_ENDPOINT", "https://acct.documents.azure.com:443/");
    // (settings, words the one line must contain)
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str]);
    let cases: &[Case] = &[
        (&[("AUTH_MODE", "magic")], &["AUTH_MODE", "magic"]),
        (&[("MAX_BODY_BYTES", "0")], &["MAX_BODY_BYTES", "0"]),
        (
            &[("COSMOS_SEAL_MAX_BYTES", "99")],
            &["COSMOS_SEAL_MAX_BYTES", "99"],
        ),
        (
            &[("COSMOS_ENDPOINT", "acct.documents.azure.com")],
            &["COSMOS_ENDPOINT", "acct.documents.azure.com"],
        ),
        (
            &[("COSMOS_ENDPOINT", "http://acct.documents.azure.com/")],
            &["COSMOS_ENDPOINT", "http://acct.documents.azure.com/"],
        ),
        (
            &[cosmos, ("AZURE_CLIENT_ID", "my-identity")],
            &["AZURE_CLIENT_ID", "my-identity"],
        ),
        (
            &[cosmos, ("COSMOS_DATABASE", "chat/db")],
            &["COSMOS_DATABASE", "chat/db"],
        ),
        (&[cosmos, ("COSMOS_KEY", "not*base64")], &["COSMOS_KEY"]),
    ];
    for (env, words) in cases {
        let port = free_port().to_string();
        let mut env = env.to_vec();
        env.push(("PORT", &port));
        let run = Binary::run_with_output(dir.path(), &["serve"], &env);
        let output = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::task::spawn_blocking(move || run.wait_with_output()),
        )
        .await
        .unwrap_or_else(|_| panic!("{env:?}: still running after 10 s"))
        .unwrap();
        assert_eq!(output.status.code(), Some(1), "{env:?}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{env:?}: {stderr}");
        for word in *words {
            assert!(lines[0].contains(word), "{env:?}: {stderr}");
        }
    }
    // A secret is named, never shown.
    let run = Binary::run_with_output(
        dir.path(),
        &["serve"],
        &[cosmos, ("COSMOS_KEY", "not*base64")],
    );
    let stderr = String::from_utf8(run.wait_with_output().stderr).unwrap();
    assert!(!stderr.contains("not*base64"), "{stderr}");
}

/// Appends from `writers` concurrent clients to one session until the
/// server goes away; the ids of the messages it acknowledged (201).
async fn append_until_stopped(app: &RunningApp, id: &str, writers: usize) -> Vec<String> {
    let url = app.url(&format!("/api/chat/sessions/{id}/messages?user_id=u1"));
    let tasks: Vec<_> = (0..writers)
        .map(|writer| {
            let (client, url) = (app.client.clone(), url.clone());
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                for n in 0.. {
                    let message = format!("msg_w{writer}_{n}");
                    let body = json!({ "id": message, "content": message, "message_type": "user" });
                    match client.post(&url).json(&body).send().await {
                        Ok(r) if r.status().as_u16() == 201 => acknowledged.push(message),
                        Ok(r) => panic!("{message}: {}", r.status()),
                        // The server stopped accepting.
                        Err(_) => break,
                    }
                }
                acknowledged
            })
        })
        .collect();
    let mut acknowledged = Vec::new();
    for task in tasks {
        acknowledged.extend(task.await.unwrap());
    }
    acknowledged
}

/// SIGTERM while `writers` clients append: the process drains and exits 0
/// within its bounded time, and after a restart every acknowledged message
/// is there, once.
async fn sigterm_loses_nothing_acknowledged(data_dir: &Path, env: &[(&str, &str)]) {
    let log = data_dir.join("log");
    let server = Binary::serve_logged(data_dir, env, &log).await;
    let app = server.app();
    eventually(Duration::from_secs(30), "readiness 200", || async {
        (fetch(&app, "/api/health/ready").await.0 == 200).then_some(())
    })
    .await;
    let id = app.create_session("u1").await;
    let appending = append_until_stopped(&app, &id, 8);
    let stop = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        server.terminate();
    };
    let (acknowledged, ()) = tokio::join!(appending, stop);
    let status = server.wait_exit(Duration::from_secs(15)).await;
    assert!(status.success(), "{status:?}\n{}", log_of(&log));
    assert!(log_of(&log).contains("store closed"), "{}", log_of(&log));
    assert!(acknowledged.len() > 8, "{}", acknowledged.len());

    let server = Binary::serve_logged(data_dir, env, &log).await;
    let app = server.app();
    eventually(Duration::from_secs(30), "readiness 200", || async {
        (fetch(&app, "/api/health/ready").await.0 == 200).then_some(())
    })
    .await;
    let session = app
        .get_json(&format!("/api/chat/sessions/{id}?user_id=u1"))
        .await;
    let stored = json::texts(&session["messages"], "id");
    let unique: HashSet<&str> = stored.iter().copied().collect();
    assert_eq!(unique.len(), stored.len(), "a message is stored twice");
    assert_eq!(session["message_count"], stored.len());
    let lost: Vec<_> = acknowledged
        .iter()
        .filter(|m| !unique.contains(m.as_str()))
        .collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    server.terminate();
    assert!(server.wait_exit(Duration::from_secs(15)).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_concurrent_appends_embedded() {
    let dir = tempfile::tempdir().unwrap();
    sigterm_loses_nothing_acknowledged(dir.path(), &[("RUST_LOG", "info")]).await;
    // Closed cleanly: the write-ahead log was folded into the database.
    let wal = dir.path().join("chat-sessions.sqlite3-wal");
    assert!(!wal.exists(), "the SQLite WAL is left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_concurrent_appends_cosmos() {
    let (_client, config) = server_client().await;
    let dir = tempfile::tempdir().unwrap();
    sigterm_loses_nothing_acknowledged(
        dir.path(),
        &[
            ("COSMOS_ENDPOINT", &config.endpoint),
            ("COSMOS_KEY", EMULATOR_KEY),
            ("COSMOS_DATABASE", &config.database),
            ("RUST_LOG", "info"),
        ],
    )
    .await;
}
