//! The OpenAPI document: generated from the code, served, checked in, and in
//! agreement with the route table (and so with the router and the function
//! folders, which tests/it/functions.rs checks against the same table).

use std::collections::BTreeSet;

use axum::http::StatusCode;
use chat_sessions::api::{openapi::document_json, routes::ROUTES};
use serde_json::Value;

use crate::common::{
    TestApp,
    json::{message_members, session_members},
};

fn document() -> Value {
    serde_json::from_str(document_json()).unwrap()
}

#[test]
fn the_checked_in_copy_is_the_generated_document() {
    let checked_in =
        std::fs::read_to_string("openapi.json").expect("openapi.json at the repo root");
    if checked_in != document_json() {
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write("openapi.json", document_json()).unwrap();
            return;
        }
        panic!(
            "openapi.json differs from the generated document; run \
             `cargo run -q -- openapi > openapi.json` (or UPDATE_OPENAPI=1 cargo test --test it openapi)"
        );
    }
}

#[tokio::test]
async fn the_document_is_served() {
    let app = TestApp::new();
    let r = app
        .get("/api/openapi.json")
        .await
        .expect_status(StatusCode::OK);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json(), document());
}

#[test]
fn paths_and_operations_are_exactly_the_route_table() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if ["get", "post", "put", "delete", "patch", "head", "options"]
                .contains(&method.as_str())
            {
                documented.insert((
                    path.clone(),
                    method.to_uppercase(),
                    op["operationId"].as_str().unwrap().to_owned(),
                ));
            }
        }
    }
    let table: BTreeSet<_> = ROUTES
        .iter()
        .map(|r| {
            (
                r.openapi_path(),
                r.method.to_string(),
                r.function.to_owned(),
            )
        })
        .collect();
    assert_eq!(documented, table);
}

#[test]
fn every_error_response_is_a_problem_and_the_contract_headers_are_there() {
    let doc = document();
    let paths = doc["paths"].as_object().unwrap();
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            for (status, response) in op["responses"].as_object().unwrap() {
                let code: u16 = status.parse().unwrap();
                if code >= 400 {
                    let content = response["content"]
                        .as_object()
                        .unwrap_or_else(|| panic!("{method} {path} {status}"));
                    assert_eq!(
                        content.keys().collect::<Vec<_>>(),
                        ["application/problem+json"],
                        "{method} {path} {status}"
                    );
                }
                if code == 503 {
                    assert!(
                        response["headers"]["Retry-After"].is_object(),
                        "{method} {path}"
                    );
                }
            }
        }
    }
    let create = &paths["/api/chat/sessions"]["post"]["responses"]["201"]["headers"];
    assert!(create["Location"].is_object() && create["ETag"].is_object());
    let put = &paths["/api/chat/sessions/{session_id}"]["put"];
    assert!(
        put["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "If-Match" && p["in"] == "header")
    );
    assert!(put["responses"]["412"].is_object());
    let get = &paths["/api/chat/sessions/{session_id}"]["get"]["responses"];
    assert!(
        get["200"]["headers"]["ETag"].is_object()
            && get["304"].is_object()
            && get["404"].is_object()
    );
}

#[test]
fn schemas_match_the_seed_json() {
    let doc = document();
    let schemas = &doc["components"]["schemas"];
    let fields = |name: &str| -> BTreeSet<String> {
        schemas[name]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    };
    let required = |name: &str| -> BTreeSet<String> {
        schemas[name]["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    let session: BTreeSet<String> = session_members().into_iter().map(String::from).collect();
    assert_eq!(fields("ChatSession"), session);
    assert_eq!(
        required("ChatSession"),
        session,
        "every member is always present (null where nullable)"
    );
    let message: BTreeSet<String> = message_members().into_iter().map(String::from).collect();
    // The seed's members and parent_id, always present; the tool-calling
    // ones, edited_at and siblings beside them only on the messages that
    // have them.
    let mut with_tools = message.clone();
    with_tools.extend(
        [
            "tool_calls",
            "tool_call_id",
            "name",
            "edited_at",
            "siblings",
        ]
        .map(String::from),
    );
    assert_eq!(fields("ChatMessage"), with_tools);
    assert_eq!(required("ChatMessage"), message);
    assert_eq!(
        schemas["MessageType"]["enum"],
        serde_json::json!(["user", "assistant", "system", "tool"])
    );
    assert_eq!(schemas["Timestamp"]["format"], "date-time");
    // Nullable members are null-or-value, as in the seed's example.
    for member in ["user_id", "last_message_at"] {
        let one_of = schemas["ChatSession"]["properties"][member]["oneOf"]
            .as_array()
            .unwrap();
        assert!(one_of.iter().any(|s| s["type"] == "null"), "{member}");
    }
    assert_eq!(schemas["Problem"]["required"].as_array().unwrap().len(), 4);
}

#[test]
fn the_document_says_how_a_caller_authenticates_in_azure() {
    let doc = document();
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["easyAuthBearer"]["type"], "http");
    assert_eq!(schemes["easyAuthBearer"]["scheme"], "bearer");
    assert_eq!(schemes["easyAuthCookie"]["type"], "apiKey");
    assert_eq!(schemes["easyAuthCookie"]["in"], "cookie");
    assert_eq!(schemes["easyAuthCookie"]["name"], "AppServiceAuthSession");
    // Either credential, or none (local mode).
    assert_eq!(
        doc["security"],
        serde_json::json!([{"easyAuthBearer": []}, {"easyAuthCookie": []}, {}])
    );
}

#[test]
fn every_reference_resolves() {
    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    out.push(r);
                }
                map.values().for_each(|v| refs(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let doc = document();
    let mut found = Vec::new();
    refs(&doc, &mut found);
    assert!(!found.is_empty());
    // A schema named only by a parameter's value_type is not collected by
    // itself: a client generator stops at the dangling reference.
    let dangling: BTreeSet<&str> = found
        .into_iter()
        .filter(|r| {
            r.strip_prefix('#')
                .and_then(|pointer| doc.pointer(pointer))
                .is_none()
        })
        .collect();
    assert!(dangling.is_empty(), "references to nothing: {dangling:?}");
}
