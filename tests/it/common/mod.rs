//! Test helpers: the router called in-process with real HTTP requests, and
//! the real server on a loopback port.

#![allow(dead_code)]

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Router,
    body::{Body, Bytes},
    http::{HeaderMap, Method, Request, StatusCode, header},
};
use chat_sessions::{
    api::{ApiSettings, AppState, app},
    store::{
        DynStore,
        sqlite::{Durability, SqliteStore},
    },
};
use http_body_util::BodyExt as _;
use serde_json::Value;
use tower::ServiceExt as _;

/// The router over a store, plus whatever keeps the store alive.
pub struct TestApp {
    pub router: Router,
    pub store: DynStore,
    _guard: Box<dyn std::any::Any + Send + Sync>,
}

/// A fresh embedded store in a temp directory.
pub fn sqlite_store() -> (DynStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), Durability::Normal).unwrap();
    (Arc::new(store), dir)
}

impl TestApp {
    /// The API over a fresh embedded store with default settings.
    pub fn new() -> Self {
        Self::with_settings(ApiSettings::default())
    }

    /// The API over a fresh embedded store.
    pub fn with_settings(settings: ApiSettings) -> Self {
        let (store, dir) = sqlite_store();
        Self::over(store, settings, Box::new(dir))
    }

    /// The API over any store.
    pub fn over(
        store: DynStore,
        settings: ApiSettings,
        guard: Box<dyn std::any::Any + Send + Sync>,
    ) -> Self {
        let router = app(AppState::new(store.clone(), settings));
        Self {
            router,
            store,
            _guard: guard,
        }
    }

    /// The API over any store, with the state adjusted by `adjust`.
    pub fn over_state(
        store: DynStore,
        settings: ApiSettings,
        guard: Box<dyn std::any::Any + Send + Sync>,
        adjust: impl FnOnce(AppState) -> AppState,
    ) -> Self {
        let router = app(adjust(AppState::new(store.clone(), settings)));
        Self {
            router,
            store,
            _guard: guard,
        }
    }

    pub fn request(&self, method: Method, uri: &str) -> TestRequest {
        TestRequest {
            router: self.router.clone(),
            builder: Request::builder().method(method).uri(uri),
            body: Body::empty(),
        }
    }

    pub async fn get(&self, uri: &str) -> TestResponse {
        self.request(Method::GET, uri).send().await
    }

    pub async fn post(&self, uri: &str, body: Value) -> TestResponse {
        self.request(Method::POST, uri).json(&body).send().await
    }

    pub async fn put(&self, uri: &str, body: Value) -> TestResponse {
        self.request(Method::PUT, uri).json(&body).send().await
    }

    pub async fn delete(&self, uri: &str) -> TestResponse {
        self.request(Method::DELETE, uri).send().await
    }

    /// Creates a session for `user` and returns its id.
    pub async fn create_session(&self, user: &str) -> String {
        let r = self
            .post("/api/chat/sessions", serde_json::json!({ "user_id": user }))
            .await
            .expect_status(StatusCode::CREATED);
        r.json()["id"].as_str().unwrap().to_owned()
    }
}

pub struct TestRequest {
    router: Router,
    builder: axum::http::request::Builder,
    body: Body,
}

impl TestRequest {
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.builder = self.builder.header(name, value);
        self
    }

    pub fn json(mut self, value: &Value) -> Self {
        self.builder = self
            .builder
            .header(header::CONTENT_TYPE, "application/json");
        self.body = Body::from(serde_json::to_vec(value).unwrap());
        self
    }

    pub fn raw(mut self, content_type: Option<&str>, body: impl Into<Body>) -> Self {
        if let Some(ct) = content_type {
            self.builder = self.builder.header(header::CONTENT_TYPE, ct);
        }
        self.body = body.into();
        self
    }

    pub async fn send(self) -> TestResponse {
        let request = self.builder.body(self.body).unwrap();
        let response = self.router.oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        TestResponse {
            status,
            headers,
            body,
        }
    }
}

#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl TestResponse {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn expect_status(self, status: StatusCode) -> Self {
        assert_eq!(
            self.status,
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        self
    }

    /// Asserts an RFC 9457 problem with `status` and returns its body.
    pub fn expect_problem(self, status: StatusCode) -> Value {
        let this = self.expect_status(status);
        assert_eq!(
            this.header("content-type"),
            Some("application/problem+json")
        );
        let body = this.json();
        assert_eq!(body["status"], status.as_u16());
        assert!(body["type"].as_str().is_some_and(|t| !t.is_empty()));
        assert!(body["title"].as_str().is_some_and(|t| !t.is_empty()));
        assert!(body["detail"].as_str().is_some_and(|t| !t.is_empty()));
        body
    }
}

/// The real server on a loopback port, in this process.
pub struct RunningApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    _guard: Box<dyn std::any::Any + Send + Sync>,
}

impl RunningApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Creates a session for `user` over the socket and returns its id.
    pub async fn create_session(&self, user: &str) -> String {
        let created: Value = self
            .client
            .post(self.url("/api/chat/sessions"))
            .json(&serde_json::json!({ "user_id": user }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        created["id"].as_str().unwrap().to_owned()
    }

    /// GET `path` over the socket, as JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        self.client
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

/// Serves the API over `store` on 127.0.0.1:0.
pub async fn spawn_app(store: DynStore, guard: Box<dyn std::any::Any + Send + Sync>) -> RunningApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = app(AppState::new(store, ApiSettings::default()));
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    RunningApp {
        addr,
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .unwrap(),
        _guard: guard,
    }
}
