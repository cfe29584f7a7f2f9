//! Telemetry, with the real binary and local destinations that decode what
//! arrives (`common::telemetry`): spans of a request and of its Cosmos DB
//! operations with the request charges the Cosmos server reported, the
//! caller's `traceparent` kept, metrics, logs with trace ids, Application
//! Insights ingestion signed in with the managed identity, nothing a user
//! wrote in any byte sent, exporters that are down or hang costing the API
//! nothing, `Server-Timing`, and log lines graded as the Functions host
//! grades them.

use std::{collections::HashMap, path::Path, time::Duration};

use serde_json::{Value, json};

use crate::common::{
    binary::Binary,
    cosmos::{EMULATOR_KEY, server_client},
    identity::{ACCESS_TOKEN, CLIENT_ID, IDENTITY_SECRET, IdentityEndpoint},
    telemetry::{Receiver, attributes, hex},
};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

fn traceparent() -> String {
    format!("00-{TRACE_ID}-{PARENT_ID}-01")
}

/// Settings that export quickly to `receiver` over OTLP.
fn otlp(receiver: &Receiver) -> Vec<(&'static str, String)> {
    vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url.clone()),
        ("OTEL_BSP_SCHEDULE_DELAY", "50".into()),
        ("OTEL_METRIC_EXPORT_INTERVAL", "200".into()),
        ("RUST_LOG", "info".into()),
    ]
}

fn borrowed<'a>(settings: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    settings.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// The Cosmos server's log of the charges it answered.
async fn charge_log(endpoint: &str) -> Vec<Value> {
    reqwest::get(format!("{endpoint}_launcher/charges"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The Cosmos server's charges of the requests for `database` after the
/// answer numbered `after`.
async fn charges_since(endpoint: &str, database: &str, after: u64) -> Vec<f64> {
    let path = format!("/dbs/{database}/");
    charge_log(endpoint)
        .await
        .iter()
        .filter(|e| e["seq"].as_u64().unwrap() > after)
        .filter(|e| e["path"].as_str().unwrap().contains(&path))
        .map(|e| e["charge"].as_f64().unwrap())
        .collect()
}

/// The number of the Cosmos server's latest answer.
async fn last_charge(endpoint: &str) -> u64 {
    charge_log(endpoint)
        .await
        .last()
        .map_or(0, |e| e["seq"].as_u64().unwrap())
}

/// Appends a message to `user_1`'s `session` with the test's
/// `traceparent`; the 201 answer.
async fn append_traced(app: &crate::common::RunningApp, session: &str) -> reqwest::Response {
    let answer = app
        .client
        .post(app.url(&format!(
            "/api/chat/sessions/{session}/messages?user_id=user_1"
        )))
        .header("traceparent", traceparent())
        .json(&json!({ "content": "Hello!", "message_type": "user" }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 201);
    answer
}

/// Erases `user_1` with the test's `traceparent` (the erase logs a line).
async fn erase_traced(app: &crate::common::RunningApp) {
    let erased = app
        .client
        .post(app.url("/api/chat/erase?user_id=user_1"))
        .header("traceparent", traceparent())
        .json(&json!({ "confirm": "user_1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(erased.status(), 200);
}

/// Waits until the store is connected (Cosmos DB connects in the
/// background).
async fn store_ready(app: &crate::common::RunningApp) {
    for _ in 0..200 {
        let ready = app.client.get(app.url("/api/health/ready")).send().await;
        if ready.is_ok_and(|r| r.status() == 200) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the store never became ready");
}

fn sorted(mut values: Vec<f64>) -> Vec<f64> {
    values.sort_by(f64::total_cmp);
    values
}

/// `Server-Timing`'s request units (`cosmos;desc="9.52 RU in 1 requests"`).
fn timing_units(header: &str) -> Option<f64> {
    let desc = header.split("cosmos;desc=\"").nth(1)?;
    desc.split(' ').next()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_on_cosmos_is_one_server_span_whose_children_carry_the_charges_the_server_reported()
 {
    let (_client, config) = server_client().await;
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut settings = otlp(&receiver);
    settings.extend([
        ("COSMOS_ENDPOINT", config.endpoint.clone()),
        ("COSMOS_KEY", EMULATOR_KEY.into()),
        ("COSMOS_DATABASE", config.database.clone()),
    ]);
    let server = Binary::serve_with(dir.path(), &borrowed(&settings)).await;
    let app = server.app();
    store_ready(&app).await;
    let session = app.create_session("user_1").await;

    let before = last_charge(&config.endpoint).await;
    let answer = append_traced(&app, &session).await;
    let timing = answer.headers()["server-timing"]
        .to_str()
        .unwrap()
        .to_owned();
    let reported = charges_since(&config.endpoint, &config.database, before).await;
    assert!(!reported.is_empty(), "the append reached the Cosmos server");

    let server_span = receiver
        .eventually("the SendMessage server span", |r| {
            r.spans().into_iter().find(|s| s.name == "SendMessage")
        })
        .await;
    assert_eq!(hex(&server_span.trace_id), TRACE_ID, "the caller's trace");
    assert_eq!(
        hex(&server_span.parent_span_id),
        PARENT_ID,
        "the caller's span"
    );
    let attrs = attributes(&server_span.attributes);
    assert_eq!(attrs["faas.name"], "SendMessage");
    assert_eq!(
        attrs["http.route"],
        "/api/chat/sessions/{session_id}/messages"
    );
    assert_eq!(attrs["http.request.method"], "POST");
    assert_eq!(attrs["http.response.status_code"], 201);

    let children: Vec<_> = receiver
        .spans()
        .into_iter()
        .filter(|s| s.parent_span_id == server_span.span_id)
        .collect();
    let charges: Vec<f64> = children
        .iter()
        .map(|s| {
            let a = attributes(&s.attributes);
            assert_eq!(a["db.system.name"], "azure.cosmosdb", "{}", s.name);
            assert_eq!(a["db.collection.name"], "chat_sessions");
            assert_eq!(a["db.namespace"], config.database.as_str());
            assert!(a.contains_key("db.operation.name"));
            a["azure.cosmosdb.operation.request_charge"]
                .as_f64()
                .unwrap()
        })
        .collect();
    // Each operation was one request here (no retries), so the spans'
    // charges are the server's, one for one.
    assert_eq!(sorted(charges.clone()), sorted(reported.clone()));
    let total: f64 = reported.iter().sum();
    let span_total = attrs["chat_sessions.request_charge"].as_f64().unwrap();
    assert!((span_total - total).abs() < 0.01, "{span_total} vs {total}");
    assert_eq!(attrs["chat_sessions.store.requests"], reported.len() as i64);
    let timed = timing_units(&timing).unwrap_or_else(|| panic!("{timing}"));
    assert!((timed - total).abs() < 0.01, "{timing} vs {total}");

    // A metric is collected one instrument after the other, so an export
    // may hold some of a request's metrics and the next one the rest.
    let expected = [
        "chat_sessions.function.request_charge",
        "azure.cosmosdb.client.operation.request_charge",
        "db.client.operation.duration",
        "http.server.request.duration",
        "chat_sessions.cache.lookups",
    ];
    receiver
        .eventually("the request's metrics", |r| {
            let names = r.metric_names();
            expected
                .iter()
                .all(|e| names.iter().any(|n| n == e))
                .then_some(())
        })
        .await;
    // The append's points (an export may come before they are collected):
    // its request units under its function, its duration under its
    // function, route and status.
    let charged = receiver
        .eventually("the append's points", |r| {
            let is = |a: &HashMap<String, String>, key: &str, value: &str| {
                a.get(key).is_some_and(|v| v == value)
            };
            let timed = r
                .histogram_points("http.server.request.duration")
                .iter()
                .any(|(a, n, _)| {
                    is(a, "faas.name", "SendMessage")
                        && is(a, "http.route", "/api/chat/sessions/{session_id}/messages")
                        && is(a, "http.request.method", "POST")
                        && is(a, "http.response.status_code", "201")
                        && *n == 1
                });
            let charges = r.histogram_points("chat_sessions.function.request_charge");
            let charged = charges
                .iter()
                .find(|(a, n, _)| is(a, "faas.name", "SendMessage") && *n == 1);
            charged.filter(|_| timed).map(|(_, _, sum)| *sum)
        })
        .await;
    assert!((charged - total).abs() < 0.01, "{charged} vs {total}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_record_of_a_request_carries_its_trace_on_every_destination_and_line() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let settings = otlp(&receiver);
    let stdout = dir.path().join("stdout");
    let stderr = dir.path().join("stderr");
    let mut settings = borrowed(&settings);
    settings.push(("LOG_FORMAT", "json"));
    let server = Binary::serve_as_host(dir.path(), &settings, &stdout, &stderr).await;
    let app = server.app();
    app.create_session("user_1").await;
    erase_traced(&app).await;

    let record = receiver
        .eventually("the erase's log record", |r| {
            r.log_records()
                .into_iter()
                .find(|l| format!("{:?}", l.body).contains("erased a user's data"))
        })
        .await;
    assert_eq!(hex(&record.trace_id), TRACE_ID);
    let server_span = receiver
        .eventually("the EraseUserData span", |r| {
            r.spans().into_iter().find(|s| s.name == "EraseUserData")
        })
        .await;
    assert_eq!(
        record.span_id, server_span.span_id,
        "logged inside its span"
    );

    // The same record as a JSON line on stdout (information, under the
    // host), with the same ids.
    server.terminate();
    let line = eventually_line(&stdout, "erased a user's data").await;
    let line: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["trace_id"], TRACE_ID);
    assert_eq!(line["span_id"], hex(&server_span.span_id));
    assert_eq!(line["sessions"], 1);
}

async fn eventually_line(path: &Path, containing: &str) -> String {
    for _ in 0..100 {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains(containing)) {
            return line.to_owned();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no line with {containing:?} in {}", path.display());
}

/// How the Functions host grades a line of a custom handler: stdout is
/// information; on stderr "warn" makes a warning, else "error", "fail" or
/// "severe" an error, else information.
fn host_grade(stderr: bool, line: &str) -> &'static str {
    let lower = line.to_ascii_lowercase();
    if !stderr {
        "INFO"
    } else if lower.contains("warn") {
        "WARN"
    } else if ["error", "fail", "severe"]
        .iter()
        .any(|w| lower.contains(w))
    {
        "ERROR"
    } else {
        "INFO"
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_the_host_each_line_is_shown_at_the_level_it_was_written_with() {
    let dir = tempfile::tempdir().unwrap();
    let stdout = dir.path().join("stdout");
    let stderr = dir.path().join("stderr");
    let settings = [("RUST_LOG", "debug")];
    let server = Binary::serve_as_host(dir.path(), &settings, &stdout, &stderr).await;
    let app = server.app();
    app.create_session("user_1").await;
    // A malformed queue message logs an error ("rejecting malformed
    // migration message …").
    let malformed = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/functions/queue_trigger_malformed.json"
    ))
    .unwrap();
    let refused = app
        .client
        .post(app.url("/MigrateChatSessions"))
        .header("content-type", "application/json")
        .body(malformed)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    // With no exporter, a line still carries the caller's trace.
    erase_traced(&app).await;
    server.terminate();
    server.wait_exit(Duration::from_secs(20)).await;
    let erase_line = eventually_line(&stdout, "erased a user's data").await;
    assert!(
        erase_line.contains(&format!("trace_id={TRACE_ID} span_id={PARENT_ID}")),
        "{erase_line}"
    );

    let mut levels = std::collections::BTreeMap::<&str, usize>::new();
    for (path, on_stderr) in [(&stdout, false), (&stderr, true)] {
        for line in std::fs::read_to_string(path).unwrap().lines() {
            let level = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]
                .into_iter()
                .find(|l| line.split_whitespace().nth(1) == Some(*l))
                .unwrap_or_else(|| panic!("a line without its level: {line}"));
            let shown = match level {
                "TRACE" | "DEBUG" => "INFO",
                other => other,
            };
            assert_eq!(host_grade(on_stderr, line), shown, "{line}");
            // Information and below on stdout, which the host never grades
            // by words; warnings and errors on stderr.
            assert_eq!(on_stderr, matches!(level, "WARN" | "ERROR"), "{line}");
            *levels.entry(level).or_default() += 1;
        }
    }
    for level in ["INFO", "ERROR"] {
        assert!(levels.contains_key(level), "no {level} line: {levels:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn application_insights_gets_the_request_signed_in_with_the_managed_identity() {
    let receiver = Receiver::start().await;
    let identity = IdentityEndpoint::start().await;
    identity
        .refusing
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let connection = format!(
        "InstrumentationKey=00000000-0000-0000-0000-0000000000ab;IngestionEndpoint={}/",
        receiver.url
    );
    let authentication = format!("Authorization=AAD;ClientId={CLIENT_ID}");
    let settings = [
        ("APPLICATIONINSIGHTS_CONNECTION_STRING", connection.as_str()),
        (
            "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
            authentication.as_str(),
        ),
        ("IDENTITY_ENDPOINT", identity.url.as_str()),
        ("IDENTITY_HEADER", IDENTITY_SECRET),
        ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "200"),
    ];
    let log = dir.path().join("log");
    let server = Binary::serve_logged(dir.path(), &settings, &log).await;
    let app = server.app();
    let session = app.create_session("user_1").await;
    append_traced(&app, &session).await;

    let request = receiver
        .eventually("the SendMessage request telemetry", |r| {
            r.got()
                .envelopes
                .iter()
                .find(|e| {
                    e["data"]["baseType"] == "RequestData"
                        && e["data"]["baseData"]["properties"]["faas.name"] == "SendMessage"
                })
                .cloned()
        })
        .await;
    assert_eq!(request["tags"]["ai.operation.id"], TRACE_ID);
    assert_eq!(request["data"]["baseData"]["responseCode"], "201");
    assert_eq!(request["iKey"], "00000000-0000-0000-0000-0000000000ab");
    receiver
        .eventually("metrics", |r| {
            r.got()
                .envelopes
                .iter()
                .any(|e| e["data"]["baseType"] == "MetricData")
                .then_some(())
        })
        .await;

    let got = receiver.got();
    assert!(!got.authorizations.is_empty());
    for auth in &got.authorizations {
        assert_eq!(
            auth,
            &format!("Bearer {ACCESS_TOKEN}"),
            "every export signed in"
        );
    }
    drop(got);
    let asked = identity.asked.lock().unwrap().clone();
    assert!(
        asked.iter().any(|q| q.get("resource").map(String::as_str)
            == Some("https://monitor.azure.com")
            && q.get("client_id").map(String::as_str) == Some(CLIENT_ID)),
        "a token for Azure Monitor, as the configured identity: {asked:?}"
    );
    let logged = std::fs::read_to_string(&log).unwrap();
    for secret in [ACCESS_TOKEN, IDENTITY_SECRET, "0000000000ab"] {
        assert!(!logged.contains(secret), "{secret} in the log: {logged}");
    }
}

/// Stores a marker in everything a user writes and names, does everything
/// to it, and looks for the marker in every byte that left for either
/// destination.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_a_user_wrote_or_is_called_reaches_a_destination() {
    let (_client, config) = server_client().await;
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut settings = otlp(&receiver);
    settings.extend([
        ("COSMOS_ENDPOINT", config.endpoint.clone()),
        ("COSMOS_KEY", EMULATOR_KEY.into()),
        ("COSMOS_DATABASE", config.database.clone()),
        (
            "APPLICATIONINSIGHTS_CONNECTION_STRING",
            format!(
                "InstrumentationKey=00000000-0000-0000-0000-0000000000cd;IngestionEndpoint={}/",
                receiver.url
            ),
        ),
        ("RUST_LOG", "debug".into()),
    ]);
    let log = dir.path().join("log");
    let server = Binary::serve_logged(dir.path(), &borrowed(&settings), &log).await;
    let app = server.app();
    store_ready(&app).await;
    let user = "usermarker7f3a";
    let markers = [
        user,
        "namemarker91c2",
        "contextmarker55d0",
        "contentmarker0b8e",
        "metadatamarker3e11",
    ];
    let created = app
        .post_json(
            "/api/chat/sessions",
            json!({
                "user_id": user,
                "session_name": "namemarker91c2",
                "context": { "topic": "contextmarker55d0" }
            }),
        )
        .await;
    let session = created["id"].as_str().unwrap().to_owned();
    let base = format!("/api/chat/sessions/{session}");
    let posted = app
        .post(
            &format!("{base}/messages?user_id={user}"),
            json!({
                "content": "contentmarker0b8e",
                "message_type": "user",
                "metadata": { "note": "metadatamarker3e11" }
            }),
        )
        .await;
    assert_eq!(posted.status(), 201);
    for path in [
        format!("{base}?user_id={user}"),
        format!("{base}/messages?user_id={user}"),
        format!("/api/chat/sessions?user_id={user}"),
        format!("/api/chat/search?user_id={user}&q=contentmarker0b8e"),
        format!("{base}/export?user_id={user}&format=markdown"),
        format!("/api/chat/export?user_id={user}"),
        format!("/api/chat/history?session_id={session}&user_id={user}"),
        format!("/api/chat/sessions/missing?user_id={user}"),
    ] {
        let answer = app.client.get(app.url(&path)).send().await.unwrap();
        assert!(
            answer.status().as_u16() < 500,
            "{path}: {}",
            answer.status()
        );
        answer.bytes().await.unwrap();
    }
    let erased = app
        .post(
            &format!("/api/chat/erase?user_id={user}"),
            json!({ "confirm": user }),
        )
        .await;
    assert_eq!(erased.status(), 200);
    receiver
        .eventually("the erase's span on both destinations", |r| {
            let otlp = r.spans().iter().any(|s| s.name == "EraseUserData");
            let insights = r
                .got()
                .envelopes
                .iter()
                .any(|e| e["data"]["baseData"]["properties"]["faas.name"] == "EraseUserData");
            (otlp && insights).then_some(())
        })
        .await;
    server.terminate();
    server.wait_exit(Duration::from_secs(20)).await;

    let got = receiver.got();
    assert!(got.raw.len() > 4, "both destinations got data");
    for (i, bytes) in got.raw.iter().enumerate() {
        let text = String::from_utf8_lossy(bytes);
        for marker in markers {
            assert!(
                !text.contains(marker)
                    && !bytes.windows(marker.len()).any(|w| w == marker.as_bytes()),
                "{marker} left in export {i}: {text}"
            );
        }
    }
}

/// Destinations that refuse connections or never answer: the API answers
/// as before, spans beyond the bounded queue are dropped and counted, the
/// process's memory stays flat, and SIGTERM still ends it promptly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exporter_down_or_hanging_costs_the_api_nothing() {
    let hanging = Receiver::hanging().await;
    let down = format!("http://127.0.0.1:{}", crate::common::free_port());
    for endpoint in [down, hanging.url.clone()] {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let settings = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "64"),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "200"),
        ];
        let mut server = Binary::serve_logged(dir.path(), &settings, &log).await;
        let app = server.app();
        let session = app.create_session("user_1").await;
        let path = format!("/api/chat/sessions/{session}?user_id=user_1");
        let get_many = |n: usize| {
            let app = &app;
            let path = &path;
            async move {
                for _ in 0..n {
                    let answer = app.client.get(app.url(path)).send().await.unwrap();
                    assert_eq!(answer.status(), 200);
                }
            }
        };
        get_many(500).await;
        let after_warmup = resident_kib(&mut server);
        get_many(3000).await;
        let after_more = resident_kib(&mut server);
        assert!(
            after_more < after_warmup + 16 * 1024,
            "{endpoint}: memory grew from {after_warmup} KiB to {after_more} KiB"
        );
        server.terminate();
        let status = server.wait_exit(Duration::from_secs(20)).await;
        assert!(status.success(), "{status:?}");
        // Every span is accounted for: dropped from the full queue, or lost
        // with a failed export.
        let logged = std::fs::read_to_string(&log).unwrap();
        let lost = logged
            .lines()
            .find(|l| {
                l.contains("telemetry items were lost in this run") && l.contains("signal=spans")
            })
            .unwrap_or_else(|| panic!("{endpoint}: no count of lost spans in {logged}"));
        let count = |field: &str| -> u64 {
            lost.split(&format!("{field}="))
                .nth(1)
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{field} in {lost}"))
        };
        assert!(
            count("queue_full") + count("export_failed") >= 3500,
            "{endpoint}: {lost}"
        );
    }
}

/// The process's resident memory, from /proc.
fn resident_kib(server: &mut Binary) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_timing_is_on_every_answer_unless_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let server = Binary::serve(dir.path()).await;
    let app = server.app();
    let answer = app
        .client
        .get(app.url("/api/chat/sessions?user_id=u"))
        .send()
        .await
        .unwrap();
    let timing = answer.headers()["server-timing"].to_str().unwrap();
    assert!(timing.starts_with("total;dur="), "{timing}");
    assert!(timing.contains(", store;dur="), "{timing}");
    assert!(
        !timing.contains("cosmos"),
        "no request units on the embedded store"
    );
    drop(server);

    let off = Binary::serve_with(dir.path(), &[("SERVER_TIMING", "off")]).await;
    let app = off.app();
    let answer = app
        .client
        .get(app.url("/api/chat/sessions?user_id=u"))
        .send()
        .await
        .unwrap();
    assert!(answer.headers().get("server-timing").is_none());
}

/// A CLI job is one trace, and the migration's progress is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_run_from_the_command_line_is_one_trace_with_its_progress() {
    let receiver = Receiver::start().await;
    let set = crate::legacy_data::generate(20, 3, 4, false);
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("legacy.jsonl");
    std::fs::write(&jsonl, set.jsonl()).unwrap();
    let settings = otlp(&receiver);
    let output = Binary::run_with_env(
        &dir.path().join("store"),
        &["migrate", "--from-jsonl", jsonl.to_str().unwrap()],
        &borrowed(&settings),
    )
    .wait_with_output();
    // Exit 1: the generated set has a conflict, left for an operator.
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let report = String::from_utf8_lossy(&output.stdout);
    let migrated: f64 = report
        .split("messages: ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{report}"));
    // The process exported before it exited.
    let job = receiver
        .spans()
        .into_iter()
        .find(|s| s.name == "chat-sessions migrate")
        .expect("the job's span");
    assert_eq!(attributes(&job.attributes)["faas.trigger"], "other");
    let writes = receiver
        .spans()
        .into_iter()
        .filter(|s| s.trace_id == job.trace_id && s.name == "sqlite.writer.commit")
        .count();
    assert!(writes > 0, "the store's writes are in the job's trace");
    let moved: f64 = receiver
        .counter_points("chat_sessions.migration.messages_moved")
        .into_iter()
        .map(|(_, value)| value)
        .fold(0.0, f64::max);
    assert_eq!(
        moved, migrated,
        "every message moved is counted (cumulative)"
    );
}
