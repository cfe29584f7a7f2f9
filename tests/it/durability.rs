//! The real binary, killed with SIGKILL while serving: everything it
//! acknowledged is there after a restart.

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start(data_dir: &std::path::Path) -> Server {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_chat-sessions"))
        .arg("serve")
        .env("PORT", port.to_string())
        .env("DATA_DIR", data_dir)
        .env("RUST_LOG", "warn")
        .env_remove("FUNCTIONS_CUSTOMHANDLER_PORT")
        .stdout(Stdio::null())
        .spawn()
        .expect("the binary starts");
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = reqwest::get(format!("{base}/")).await
            && r.status().is_success()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "server did not answer GET / in 20 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Server { child, base }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let mut server = start(dir.path()).await;
    let session: Value = client
        .post(format!("{}/api/chat/sessions", server.base))
        .json(&json!({ "user_id": "u1", "session_name": "durable" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = session["id"].as_str().unwrap().to_owned();
    let url = format!("{}/api/chat/sessions/{id}/messages?user_id=u1", server.base);
    let posts: Vec<_> = (0..100)
        .map(|i| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                client
                    .post(&url)
                    .json(&json!({ "content": format!("m{i}"), "message_type": "user" }))
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    for post in posts {
        assert_eq!(post.await.unwrap(), reqwest::StatusCode::CREATED);
    }
    // SIGKILL: no shutdown hook, no flush.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    drop(server);

    let server = start(dir.path()).await;
    let session: Value = client
        .get(format!("{}/api/chat/sessions/{id}?user_id=u1", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(session["session_name"], "durable");
    assert_eq!(session["message_count"], 100);
    assert_eq!(session["messages"].as_array().unwrap().len(), 100);
}
