//! The Azure Functions app: the function folders agree with the router, and
//! the host's real payloads (fixtures) replayed against the router get the
//! answers the host needs.

use std::{collections::BTreeSet, path::Path};

use axum::http::{Method, StatusCode};
use chat_sessions::{
    api::routes::ROUTES,
    functions::{
        CONTINUATION_BINDING, FunctionsSettings, HTTP_OUTPUT_BINDING, HTTP_TRIGGER_BINDING,
        InvocationRequest, MIGRATE_FUNCTION, QUEUE_TRIGGER_BINDING, RETENTION_FUNCTION,
        SWEEP_FUNCTION, queue::MigrationRequest,
    },
};
use serde_json::{Value, json};

use crate::common::{
    TestApp, TestResponse,
    json::{fixture, read_json},
};

const NON_HTTP_FUNCTIONS: [&str; 3] = [MIGRATE_FUNCTION, SWEEP_FUNCTION, RETENTION_FUNCTION];

/// Every folder under functions/: (name, function.json).
fn function_folders() -> Vec<(String, Value)> {
    let mut folders: Vec<_> = std::fs::read_dir("functions")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .map(|p| {
            let name = p.file_name().unwrap().to_str().unwrap().to_owned();
            (name, read_json(&p.join("function.json")))
        })
        .collect();
    folders.sort_by(|a, b| a.0.cmp(&b.0));
    folders
}

/// A route's path with every `{param}` filled in.
fn concrete(route: &str) -> String {
    let filled: Vec<String> = route
        .split('/')
        .map(|seg| {
            if seg.starts_with('{') {
                "session_probe_1".into()
            } else {
                seg.into()
            }
        })
        .collect();
    format!("/api/{}", filled.join("/"))
}

fn is_routed(r: &TestResponse) -> bool {
    r.status != StatusCode::METHOD_NOT_ALLOWED
        && !(r.status == StatusCode::NOT_FOUND && r.json()["detail"] == "no such route")
}

#[tokio::test]
async fn every_function_folder_is_served_and_every_route_has_a_folder() {
    let app = TestApp::new();
    let folders = function_folders();
    let mut http_functions = BTreeSet::new();
    for (name, function) in &folders {
        assert!(
            name.chars().next().unwrap().is_ascii_alphabetic()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
            "{name}: not a valid function name"
        );
        let bindings = function["bindings"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: no bindings"));
        let trigger = bindings.iter().find(|b| b["direction"] == "in").unwrap();
        match trigger["type"].as_str().unwrap() {
            "httpTrigger" => {
                // Forwarding needs exactly one httpTrigger and one http output.
                assert_eq!(bindings.len(), 2, "{name}");
                assert!(
                    bindings.iter().any(|b| b["type"] == "http"
                        && b["direction"] == "out"
                        && b["name"] == HTTP_OUTPUT_BINDING),
                    "{name}"
                );
                assert_eq!(trigger["name"], HTTP_TRIGGER_BINDING, "{name}");
                assert_eq!(
                    trigger["authLevel"], "anonymous",
                    "{name}: Easy Auth authenticates, not function keys"
                );
                let methods = trigger["methods"].as_array().unwrap();
                assert_eq!(methods.len(), 1, "{name}: one method per function");
                let method = methods[0].as_str().unwrap().to_ascii_uppercase();
                let route = trigger["route"].as_str().unwrap();
                assert!(
                    !route.starts_with("api/") && !route.starts_with('/'),
                    "{name}: route without the api/ prefix"
                );
                let entry = ROUTES
                    .iter()
                    .find(|r| r.function == name)
                    .unwrap_or_else(|| panic!("{name}: no entry in the route table"));
                assert_eq!(entry.method.as_str(), method, "{name}");
                assert_eq!(entry.route, route, "{name}");
                let method = Method::from_bytes(method.as_bytes()).unwrap();
                let r = app.request(method.clone(), &concrete(route)).send().await;
                assert!(
                    is_routed(&r),
                    "{name}: {method} {route} is not served: {r:?}"
                );
                http_functions.insert(name.clone());
            }
            "queueTrigger" | "timerTrigger" => {
                assert!(
                    NON_HTTP_FUNCTIONS.contains(&name.as_str()),
                    "{name}: unexpected non-HTTP function"
                );
                let r = app
                    .post(&format!("/{name}"), json!({ "Data": {}, "Metadata": {} }))
                    .await;
                assert!(is_routed(&r), "{name}: POST /{name} is not served");
            }
            other => panic!("{name}: unexpected trigger {other}"),
        }
    }
    let table: BTreeSet<String> = ROUTES.iter().map(|r| r.function.to_owned()).collect();
    assert_eq!(
        http_functions, table,
        "every route has exactly one function folder"
    );
    for name in NON_HTTP_FUNCTIONS {
        assert!(
            folders.iter().any(|(n, _)| n == name),
            "{name} folder missing"
        );
    }
}

#[test]
fn the_migration_functions_are_wired_to_the_queue() {
    let folders = function_folders();
    let get = |name: &str| folders.iter().find(|(n, _)| n == name).unwrap().1.clone();
    let migrate = get(MIGRATE_FUNCTION);
    let bindings = migrate["bindings"].as_array().unwrap();
    let trigger = &bindings[0];
    assert_eq!(trigger["type"], "queueTrigger");
    assert_eq!(trigger["name"], QUEUE_TRIGGER_BINDING);
    assert_eq!(trigger["queueName"], "chat-migration");
    assert_eq!(trigger["connection"], "AzureWebJobsStorage");
    for function in [migrate.clone(), get(SWEEP_FUNCTION)] {
        let out = function["bindings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["direction"] == "out")
            .unwrap()
            .clone();
        assert_eq!(out["type"], "queue");
        assert_eq!(out["name"], CONTINUATION_BINDING);
        assert_eq!(out["queueName"], "chat-migration");
    }
    assert_eq!(
        get(SWEEP_FUNCTION)["bindings"][0]["schedule"],
        "%MIGRATION_SWEEP_SCHEDULE%"
    );
}

#[test]
fn host_json_runs_this_binary_with_forwarding() {
    let host = read_json(Path::new("host.json"));
    assert_eq!(host["version"], "2.0");
    assert_eq!(
        host["customHandler"]["description"]["defaultExecutablePath"],
        "chat-sessions"
    );
    assert_eq!(host["customHandler"]["enableForwardingHttpRequest"], true);
    assert_eq!(
        host["extensionBundle"]["id"],
        "Microsoft.Azure.Functions.ExtensionBundle"
    );
    assert_eq!(host["extensionBundle"]["version"], "[4.*, 5.0.0)");
    assert_eq!(host["extensions"]["http"]["routePrefix"], "api");
    assert!(
        host["extensions"]["queues"]["maxDequeueCount"]
            .as_u64()
            .is_some()
    );
    assert!(
        host["extensions"]["queues"]["visibilityTimeout"]
            .as_str()
            .is_some()
    );
}

#[test]
fn local_settings_example_names_every_setting_the_app_reads() {
    let example = read_json(Path::new("local.settings.json.example"));
    let values = example["Values"].as_object().unwrap();
    assert!(
        values.values().all(Value::is_string),
        "Values must be a flat string map"
    );
    for setting in [
        "AUTH_MODE",
        "DATA_DIR",
        "MAX_BODY_BYTES",
        "SQLITE_SYNCHRONOUS",
        "RUST_LOG",
        "MIGRATION_SWEEP_ENABLED",
        "AzureWebJobsStorage",
    ] {
        assert!(values.contains_key(setting), "{setting} missing");
    }
    assert_eq!(values["AUTH_MODE"], "none");
    assert_eq!(values["AzureWebJobsStorage"], "UseDevelopmentStorage=true");
}

#[test]
fn queue_fixtures_decode_single_and_double_encoded_messages() {
    let expected = MigrationRequest {
        dry_run: false,
        delete_old: false,
        batch_size: 500,
        run_id: Some("run-1".into()),
        ..MigrationRequest::default()
    };
    for name in ["queue_trigger.json", "queue_trigger_double_encoded.json"] {
        let invocation: InvocationRequest = serde_json::from_value(fixture(name)).unwrap();
        let request: MigrationRequest = invocation.queue_message(QUEUE_TRIGGER_BINDING).unwrap();
        assert_eq!(request, expected, "{name}");
        assert_eq!(invocation.dequeue_count(), Some(1), "{name}");
        assert_eq!(
            invocation.metadata_text("Id").as_deref(),
            Some("7c5d2b5e-3f1a-4a43-9a55-0a3c1e4b9d21")
        );
    }
    let malformed: InvocationRequest =
        serde_json::from_value(fixture("queue_trigger_malformed.json")).unwrap();
    let err = malformed
        .queue_message::<MigrationRequest>(QUEUE_TRIGGER_BINDING)
        .unwrap_err();
    assert!(err.0.contains("not JSON"), "{err}");
}

#[tokio::test]
async fn a_malformed_queue_message_is_refused_so_it_reaches_the_poison_queue() {
    let app = TestApp::new();
    let migrate = format!("/{MIGRATE_FUNCTION}");
    let r = app
        .post(&migrate, fixture("queue_trigger_malformed.json"))
        .await;
    assert!(
        !r.status.is_success(),
        "a 2xx would delete the message for good"
    );
    let body = r.invocation();
    assert!(
        body.outputs.is_empty(),
        "no continuation for a malformed message"
    );
    assert!(body.logs[0].contains("malformed"), "{:?}", body.logs);
    // Well-formed JSON with a typo is refused the same way.
    let mut typo = fixture("queue_trigger.json");
    typo["Data"][QUEUE_TRIGGER_BINDING] = json!("{\"dryrun\": false}");
    let r = app.post(&migrate, typo).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // Not an invocation payload at all.
    app.request(Method::POST, &migrate)
        .raw(Some("application/json"), "[")
        .send()
        .await
        .expect_problem(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_timer_sweep_enqueues_a_run_only_when_enabled() {
    let off = TestApp::new();
    let body = off
        .invoke(SWEEP_FUNCTION, fixture("timer_trigger.json"))
        .await;
    assert!(body.outputs.is_empty());
    assert!(body.logs[0].contains("disabled"));

    let on = TestApp::with_functions(FunctionsSettings {
        migration_sweep_enabled: true,
        ..FunctionsSettings::default()
    });
    let body = on
        .invoke(SWEEP_FUNCTION, fixture("timer_trigger.json"))
        .await;
    let text = body.outputs[CONTINUATION_BINDING]
        .as_str()
        .expect("the queue output is JSON text");
    let run: MigrationRequest = serde_json::from_str(text).unwrap();
    assert!(!run.dry_run && !run.delete_old);
    assert!(run.run_id.unwrap().starts_with("sweep-"));
}

#[tokio::test]
async fn a_non_forwarded_http_invocation_is_answered_through_the_router() {
    let app = TestApp::new();
    let invocation = fixture("http_not_forwarded.json");
    // Before the session exists: the API's 404 problem, inside Outputs.res.
    let body = app.invoke("GetSession", invocation.clone()).await;
    let res = &body.outputs[HTTP_OUTPUT_BINDING];
    assert_eq!(res["statusCode"], 404);
    assert_eq!(res["headers"]["content-type"], "application/problem+json");
    app.post(
        "/api/chat/sessions",
        json!({ "id": "session_abc_20240101_120000", "user_id": "user_123" }),
    )
    .await
    .expect_status(StatusCode::CREATED);
    let body = app.invoke("GetSession", invocation).await;
    let res = &body.outputs[HTTP_OUTPUT_BINDING];
    assert_eq!(res["statusCode"], 200);
    assert!(res["headers"]["etag"].is_string());
    let session: Value = serde_json::from_str(res["body"].as_str().unwrap()).unwrap();
    assert_eq!(session["id"], "session_abc_20240101_120000");
    assert_eq!(session["user_id"], "user_123");
}
