//! The real binary, killed with SIGKILL while serving: everything it
//! acknowledged is there after a restart.

use serde_json::json;

use crate::common::binary::Binary;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let server = Binary::serve(dir.path()).await;
    let app = server.app();
    let session = app
        .post_json(
            "/api/chat/sessions",
            json!({ "user_id": "u1", "session_name": "durable" }),
        )
        .await;
    let id = session["id"].as_str().unwrap().to_owned();
    app.post_all_created(
        &format!("/api/chat/sessions/{id}/messages?user_id=u1"),
        (0..100).map(|i| json!({ "content": format!("m{i}"), "message_type": "user" })),
    )
    .await;
    // SIGKILL: no shutdown hook, no flush.
    server.kill();

    let server = Binary::serve(dir.path()).await;
    let session = server
        .app()
        .get_json(&format!("/api/chat/sessions/{id}?user_id=u1"))
        .await;
    assert_eq!(session["session_name"], "durable");
    assert_eq!(session["message_count"], 100);
    assert_eq!(session["messages"].as_array().unwrap().len(), 100);
}
