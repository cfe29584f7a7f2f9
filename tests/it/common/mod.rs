//! Test helpers: the router called in-process with real HTTP requests, the
//! router served on a loopback port, the real binary as a child process
//! ([`binary`]), the Cosmos DB backends ([`cosmos`]), and what the tests
//! check JSON with ([`json`]).

pub mod binary;
pub mod cosmos;
pub mod identity;
pub mod json;
pub mod telemetry;

use std::{
    net::{SocketAddr, TcpListener},
    sync::Arc,
};

use axum::{
    Router,
    body::{Body, Bytes},
    http::{HeaderMap, Method, Request, StatusCode, header},
};
use chat_sessions::{
    api::{self, ApiSettings, AppState},
    app,
    functions::{FunctionsSettings, FunctionsState, InvocationResponse},
    migration::SourceSpec,
    store::{
        DynMigrationStore, DynStore,
        sqlite::{Durability, SqliteStore},
    },
};
use http_body_util::BodyExt as _;
use serde_json::Value;
use tower::ServiceExt as _;

/// Whatever keeps a store alive for a test: a temp directory, a client.
pub type Guard = Box<dyn std::any::Any + Send + Sync>;

/// The router over a store, plus whatever keeps the store alive.
pub struct TestApp {
    pub router: Router,
    _guard: Guard,
}

/// A fresh embedded store in a temp directory.
pub fn sqlite_store() -> (DynMigrationStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), Durability::Normal).unwrap();
    (Arc::new(store), dir)
}

/// The service over the embedded store in `dir`, with default settings
/// (for tests that also open the same file themselves, or another process
/// does).
pub fn app_over_sqlite(dir: &std::path::Path) -> TestApp {
    let store = SqliteStore::open(dir, Durability::Normal).unwrap();
    TestApp::over(Arc::new(store), ApiSettings::default(), Box::new(()))
}

impl TestApp {
    /// The whole service over a fresh embedded store with default settings.
    pub fn new() -> Self {
        Self::with_settings(ApiSettings::default())
    }

    /// The whole service over a fresh embedded store.
    pub fn with_settings(settings: ApiSettings) -> Self {
        let (store, dir) = sqlite_store();
        Self::service(
            store,
            settings,
            FunctionsSettings::default(),
            None,
            Box::new(dir),
        )
    }

    /// The whole service over a fresh embedded store, with these settings of
    /// the non-HTTP functions.
    pub fn with_functions(settings: FunctionsSettings) -> Self {
        let (store, dir) = sqlite_store();
        Self::service(store, ApiSettings::default(), settings, None, Box::new(dir))
    }

    /// The HTTP API alone over a state the test assembled.
    pub fn over_state(state: AppState, guard: Guard) -> Self {
        Self {
            router: api::router(state),
            _guard: guard,
        }
    }

    /// The HTTP API alone over any store.
    pub fn over(store: DynStore, settings: ApiSettings, guard: Guard) -> Self {
        Self {
            router: api::router(AppState::new(store, settings)),
            _guard: guard,
        }
    }

    /// The HTTP API alone over a store that also searches.
    pub fn searchable<S>(store: Arc<S>, settings: ApiSettings, guard: Guard) -> Self
    where
        S: chat_sessions::store::SessionStore + chat_sessions::store::SearchStore,
    {
        Self {
            router: api::router(AppState::new(store.clone(), settings).with_search(store)),
            _guard: guard,
        }
    }

    /// The whole service (the API and the Functions invocations), as
    /// `serve` builds it, over `store` and the migration's `source`.
    pub fn service(
        store: DynMigrationStore,
        api: ApiSettings,
        functions: FunctionsSettings,
        source: Option<SourceSpec>,
        guard: Guard,
    ) -> Self {
        let mut functions = FunctionsState::new(store.clone(), functions);
        if let Some(source) = source {
            functions = functions.with_migration_source(source);
        }
        Self {
            router: app::service(AppState::new(store, api), functions),
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

    /// GET `uri`; the body as JSON, whatever the status.
    pub async fn get_json(&self, uri: &str) -> Value {
        self.get(uri).await.json()
    }

    /// GET `uri`, expecting 200; the body as JSON.
    pub async fn get_ok_json(&self, uri: &str) -> Value {
        self.get(uri).await.expect_status(StatusCode::OK).json()
    }

    /// GET `uri`; its ETag.
    pub async fn etag(&self, uri: &str) -> String {
        self.get(uri).await.header("etag").unwrap().to_owned()
    }

    pub async fn post(&self, uri: &str, body: Value) -> TestResponse {
        self.request(Method::POST, uri).json(&body).send().await
    }

    pub async fn put(&self, uri: &str, body: Value) -> TestResponse {
        self.request(Method::PUT, uri).json(&body).send().await
    }

    pub async fn patch(&self, uri: &str, body: Value) -> TestResponse {
        self.request(Method::PATCH, uri).json(&body).send().await
    }

    pub async fn delete(&self, uri: &str) -> TestResponse {
        self.request(Method::DELETE, uri).send().await
    }

    /// Every message of session `id` through the messages pager, `limit` a
    /// page, following `next_before` to the end (each page 200): newest
    /// first, as a JSON array.
    pub async fn messages_paged(&self, id: &str, user: &str, limit: usize) -> Value {
        let first = format!("/api/chat/sessions/{id}/messages?user_id={user}&limit={limit}");
        let mut messages = Vec::new();
        let mut uri = first.clone();
        loop {
            let mut page = self.get_ok_json(&uri).await;
            messages.append(page["messages"].as_array_mut().unwrap());
            match page["next_before"].as_str() {
                Some(cursor) => uri = format!("{first}&before={cursor}"),
                None => break,
            }
        }
        Value::Array(messages)
    }

    /// Invokes the function `function` as the Functions host does (POST
    /// `/<function>` with the invocation payload): 200, and the answer.
    pub async fn invoke(&self, function: &str, payload: Value) -> InvocationResponse {
        self.post(&format!("/{function}"), payload)
            .await
            .expect_status(StatusCode::OK)
            .invocation()
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

    /// The body as the answer to a Functions host invocation.
    pub fn invocation(&self) -> InvocationResponse {
        serde_json::from_slice(&self.body).unwrap()
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

/// A loopback listener on a port the OS picked: how every test server gets
/// its port.
pub fn loopback_listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").unwrap()
}

/// A free loopback port, for a server in another process.
pub fn free_port() -> u16 {
    loopback_listener().local_addr().unwrap().port()
}

/// A server on a loopback port (the router in this process, or the real
/// binary), with a client.
pub struct RunningApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    _guard: Guard,
}

impl RunningApp {
    /// A client of the server at `addr`; `guard` lives as long as this.
    pub fn at(addr: SocketAddr, guard: Guard) -> Self {
        RunningApp {
            addr,
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .build()
                .unwrap(),
            _guard: guard,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Creates a session for `user` over the socket and returns its id.
    pub async fn create_session(&self, user: &str) -> String {
        let created = self
            .post_json("/api/chat/sessions", serde_json::json!({ "user_id": user }))
            .await;
        created["id"].as_str().unwrap().to_owned()
    }

    /// POST `body` to `path` over the socket.
    pub async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// POST `body` to `path` over the socket; the answer as JSON.
    pub async fn post_json(&self, path: &str, body: Value) -> Value {
        self.post(path, body).await.json().await.unwrap()
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

    /// Posts `body` as a real client does: a 503 (which must say when to
    /// retry, `Retry-After`) or a broken connection is sent again, the same
    /// body (so the same message id), after a pause (`Retry-After`, capped
    /// at 100 ms to keep tests fast), until a 2xx, which it returns. Any
    /// other answer fails the test: a 4xx, or a 5xx but 503 with
    /// `Retry-After`.
    pub async fn post_until_stored(
        &self,
        path: &str,
        body: &Value,
    ) -> (reqwest::StatusCode, Value) {
        let url = self.url(path);
        for _ in 0..200 {
            let response = match self.client.post(&url).json(body).send().await {
                Ok(response) => response,
                Err(e) => {
                    assert!(!e.is_builder(), "{e}");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                }
            };
            let status = response.status();
            if status.is_success() {
                return (status, response.json().await.unwrap());
            }
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
            let text = response.text().await.unwrap_or_default();
            assert!(
                status == reqwest::StatusCode::SERVICE_UNAVAILABLE && retry_after.is_some(),
                "POST {path}: {status} (Retry-After {retry_after:?}) {text}"
            );
            let pause = std::time::Duration::from_secs(retry_after.unwrap_or(1));
            tokio::time::sleep(pause.min(std::time::Duration::from_millis(100))).await;
        }
        panic!("POST {path}: no 2xx after 200 attempts");
    }

    /// POSTs every body to `path` at once, each from its own task, and
    /// asserts that every one was stored. A body with a message `id` is
    /// posted as a careful client does: a 503 (the store's answer when
    /// optimistic concurrency on one hot document runs past its deadline)
    /// is retried with the same id after its `Retry-After`, and then 201, or
    /// 200 for "already stored by the attempt that answered 503", is success.
    /// A body without an id must be created at the first attempt.
    pub async fn post_all_created(&self, path: &str, bodies: impl IntoIterator<Item = Value>) {
        use reqwest::StatusCode as S;
        let url = self.url(path);
        let posts: Vec<_> = bodies
            .into_iter()
            .map(|body| {
                let (client, url) = (self.client.clone(), url.clone());
                tokio::spawn(async move {
                    let retryable = body.get("id").is_some();
                    for attempt in 0..20 {
                        let answer = client.post(&url).json(&body).send().await.unwrap();
                        match answer.status() {
                            S::CREATED => return,
                            S::OK if attempt > 0 => return,
                            S::SERVICE_UNAVAILABLE if retryable => {
                                let wait: u64 = answer
                                    .headers()
                                    .get("retry-after")
                                    .expect("a 503 carries Retry-After")
                                    .to_str()
                                    .unwrap()
                                    .parse()
                                    .unwrap();
                                tokio::time::sleep(std::time::Duration::from_secs(wait.min(2)))
                                    .await;
                            }
                            other => panic!("{body}: answered {other}"),
                        }
                    }
                    panic!("{body}: still 503 after 20 attempts");
                })
            })
            .collect();
        for post in posts {
            post.await.unwrap();
        }
    }
}

/// Serves the API over `store` on a free loopback port, in this process.
pub async fn spawn_app(store: DynStore, guard: Guard) -> RunningApp {
    let listener = loopback_listener();
    listener.set_nonblocking(true).unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let addr = listener.local_addr().unwrap();
    let router = api::router(AppState::new(store, ApiSettings::default()));
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    RunningApp::at(addr, guard)
}
