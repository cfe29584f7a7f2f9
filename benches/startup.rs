//! Start-up of the real binary (built with the bench profile): the time from
//! starting the process to its first `200` on `GET /` (the Functions host's
//! probe, which must come within 100 ms whatever the state of Cosmos DB),
//! and to readiness giving its first answer (`200`, or `503` naming the
//! cause), in three situations:
//! - the embedded store;
//! - Cosmos DB configured, nothing listening at the endpoint;
//! - Cosmos DB configured, the managed identity endpoint refusing tokens
//!   (App Service protocol, played by a thread of this program).
//!
//!     cargo bench --bench startup            # RUNS=20 by default

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

/// Status and body of `GET path`, or `None` when nothing answers.
fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(50)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    Some((status, body))
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An identity endpoint that refuses every token request with the 400 of
/// an identity that is not assigned.
fn refusing_identity_endpoint() -> String {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let url = format!("http://{}/msi/token", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let body = r#"{"statusCode":400,"message":"No User Assigned or Delegated Managed Identity found"}"#;
            let _ = write!(
                reader.get_mut(),
                "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

/// One start: milliseconds to the first `200` on `/`, and to the first
/// readiness answer that is not "still starting".
fn start(env: &[(&str, String)]) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat-sessions"))
        .arg("serve")
        .env("PORT", port.to_string())
        .env("DATA_DIR", dir.path())
        .env("RUST_LOG", "error")
        .env_remove("COSMOS_ENDPOINT")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let probe = loop {
        if let Some((200, _)) = get(addr, "/") {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no answer on /"
        );
        std::thread::sleep(Duration::from_micros(200));
    };
    let ready = loop {
        match get(addr, "/api/health/ready") {
            Some((200, _)) => break started.elapsed(),
            Some((503, body)) if !body.contains("has not finished") => break started.elapsed(),
            _ => {}
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no readiness");
        std::thread::sleep(Duration::from_millis(1));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    (probe.as_secs_f64() * 1000.0, ready.as_secs_f64() * 1000.0)
}

fn summary(mut values: Vec<f64>) -> String {
    values.sort_by(f64::total_cmp);
    format!(
        "min {:7.1}  median {:7.1}  max {:7.1}",
        values[0],
        values[values.len() / 2],
        values[values.len() - 1]
    )
}

fn main() {
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    let key = (
        "COSMOS_KEY",
        "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="
            .to_owned(),
    );
    let nothing_listening = format!("http://127.0.0.1:{}/", free_port());
    let identity = refusing_identity_endpoint();
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("embedded store", vec![]),
        (
            "Cosmos DB, nothing listening",
            vec![("COSMOS_ENDPOINT", nothing_listening.clone()), key],
        ),
        (
            "Cosmos DB, identity refusing tokens",
            vec![
                ("COSMOS_ENDPOINT", nothing_listening),
                ("IDENTITY_ENDPOINT", identity),
                ("IDENTITY_HEADER", "bench".to_owned()),
                (
                    "AZURE_CLIENT_ID",
                    "6f1c1b7e-2f4a-4d7e-9a53-1c2b3d4e5f60".to_owned(),
                ),
            ],
        ),
    ];
    println!("start-up of chat-sessions serve, {runs} runs each, milliseconds from spawn");
    for (name, env) in cases {
        let (probe, ready): (Vec<f64>, Vec<f64>) = (0..runs).map(|_| start(&env)).unzip();
        println!("{name}");
        println!("  first 200 on GET /            {}", summary(probe));
        println!("  first readiness answer        {}", summary(ready));
    }
}
