//! The HTTP API on the embedded store: the shared suite, plus what only this
//! file can set up (a failing store, a real socket, many clients).

use std::{collections::HashSet, sync::Arc};

use crate::{
    common::{TestApp, json::texts, spawn_app, sqlite_store},
    http_suite,
};
use async_trait::async_trait;
use axum::http::StatusCode;
use chat_sessions::{
    api::ApiSettings,
    domain::{
        ChatMessage, ChatSession, DeleteScope, MessageEdit, MessageId, NewMessage, NewSession,
        SessionId, SessionPatch,
    },
    store::{
        AppendStore, Appended, BranchStore, ContextSink, ContextStore, DynStore, ETag, EraseStore,
        Erased, ExportStore, HealthStore, ImportOutcome, ImportStore, ListQuery, ListStore,
        MessagePage, MessageQuery, Owner, ReadStore, RetentionStore, SessionFields, SessionImport,
        SessionPage, SessionRead, StoreError, StoreResult, TreePage, TreeQuery, Versioned,
        WriteStore, export::SummaryStream, retention::CandidateStream,
    },
};
use futures::StreamExt as _;
use serde_json::json;

async fn sqlite() -> (DynStore, tempfile::TempDir) {
    let (store, dir) = sqlite_store();
    (store, dir)
}

http_suite!(sqlite());

/// A store whose every call fails the way `make` says: to see what callers
/// get when the backend breaks.
#[derive(Debug)]
struct BrokenStore(fn() -> StoreError);

impl HealthStore for BrokenStore {
    fn kind(&self) -> &'static str {
        "broken"
    }
}

#[async_trait]
impl ReadStore for BrokenStore {
    async fn get_session_if_changed(
        &self,
        _: &Owner,
        _: &SessionId,
        _: Option<&ETag>,
    ) -> StoreResult<Option<Versioned<ChatSession>>> {
        Err((self.0)())
    }
    async fn read_session(
        &self,
        _: &Owner,
        _: &SessionId,
        _: Option<&ETag>,
    ) -> StoreResult<Option<SessionRead>> {
        Err((self.0)())
    }
    async fn get_session_tail(
        &self,
        _: &Owner,
        _: &SessionId,
        _: u32,
    ) -> StoreResult<Versioned<ChatSession>> {
        Err((self.0)())
    }
    async fn list_messages(
        &self,
        _: &Owner,
        _: &SessionId,
        _: MessageQuery,
    ) -> StoreResult<MessagePage> {
        Err((self.0)())
    }
}

#[async_trait]
impl ListStore for BrokenStore {
    async fn list_sessions(&self, _: &Owner, _: &ListQuery) -> StoreResult<SessionPage> {
        Err((self.0)())
    }
}

#[async_trait]
impl ContextStore for BrokenStore {
    async fn read_context(
        &self,
        _: &Owner,
        _: &SessionId,
        _: &mut (dyn ContextSink + Send),
    ) -> StoreResult<()> {
        Err((self.0)())
    }
}

#[async_trait]
impl WriteStore for BrokenStore {
    async fn create_session(&self, _: NewSession) -> StoreResult<Versioned<ChatSession>> {
        Err((self.0)())
    }
    async fn update_session(
        &self,
        _: &Owner,
        _: &SessionId,
        _: &SessionPatch,
        _: Option<&ETag>,
    ) -> StoreResult<Versioned<ChatSession>> {
        Err((self.0)())
    }
    async fn delete_session(&self, _: &Owner, _: &SessionId, _: Option<&ETag>) -> StoreResult<()> {
        Err((self.0)())
    }
}

#[async_trait]
impl AppendStore for BrokenStore {
    async fn append_message(
        &self,
        _: &Owner,
        _: &SessionId,
        _: NewMessage,
    ) -> StoreResult<Appended> {
        Err((self.0)())
    }
}

#[async_trait]
impl BranchStore for BrokenStore {
    async fn read_branch(
        &self,
        _: &Owner,
        _: &SessionId,
        _: &MessageId,
    ) -> StoreResult<Versioned<ChatSession>> {
        Err((self.0)())
    }
    async fn switch_branch(
        &self,
        _: &Owner,
        _: &SessionId,
        _: &MessageId,
        _: Option<&ETag>,
    ) -> StoreResult<Versioned<ChatSession>> {
        Err((self.0)())
    }
    async fn list_tree(&self, _: &Owner, _: &SessionId, _: TreeQuery) -> StoreResult<TreePage> {
        Err((self.0)())
    }
    async fn edit_message(
        &self,
        _: &Owner,
        _: &SessionId,
        _: &MessageId,
        _: &MessageEdit,
        _: Option<&ETag>,
    ) -> StoreResult<Versioned<ChatMessage>> {
        Err((self.0)())
    }
    async fn delete_message(
        &self,
        _: &Owner,
        _: &SessionId,
        _: &MessageId,
        _: DeleteScope,
        _: Option<&ETag>,
    ) -> StoreResult<ETag> {
        Err((self.0)())
    }
}

impl ExportStore for BrokenStore {
    fn all_sessions(&self, _: &Owner) -> SummaryStream {
        let error = (self.0)();
        futures::stream::once(async move { Err(error) }).boxed()
    }
}

#[async_trait]
impl EraseStore for BrokenStore {
    async fn erase_user(
        &self,
        _: &chat_sessions::domain::UserId,
        _: std::time::Instant,
    ) -> StoreResult<Erased> {
        Err((self.0)())
    }
}

#[async_trait]
impl ImportStore for BrokenStore {
    async fn session_owners(
        &self,
        _: &[SessionId],
    ) -> StoreResult<Vec<(SessionId, Option<chat_sessions::domain::UserId>)>> {
        Err((self.0)())
    }
    async fn import_session(
        &self,
        _: SessionFields,
        _: SessionImport,
    ) -> StoreResult<ImportOutcome> {
        Err((self.0)())
    }
}

impl RetentionStore for BrokenStore {
    fn untouched_before(&self, _: chat_sessions::domain::Timestamp) -> CandidateStream {
        let error = (self.0)();
        futures::stream::once(async move { Err(error) }).boxed()
    }
    fn archived_before(&self, _: chat_sessions::domain::Timestamp) -> CandidateStream {
        let error = (self.0)();
        futures::stream::once(async move { Err(error) }).boxed()
    }
}

#[tokio::test]
async fn internal_errors_are_500_without_internals() {
    let store = Arc::new(BrokenStore(|| {
        StoreError::Internal(anyhow::anyhow!(
            "disk I/O error at /secret/path AccountKey=abc"
        ))
    }));
    let app = TestApp::over(store, ApiSettings::default(), Box::new(()));
    for r in [
        app.get("/api/chat/sessions/s1").await,
        app.get("/api/chat/sessions").await,
        app.post(
            "/api/chat/sessions/s1/messages",
            json!({ "content": "x", "message_type": "user" }),
        )
        .await,
        app.post(
            "/api/chat/import",
            json!([{ "id": "c1", "create_time": 1.7e9, "mapping": {} }]),
        )
        .await,
    ] {
        let text = String::from_utf8_lossy(&r.body).to_string();
        let problem = r.expect_problem(StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(problem["detail"], "internal error");
        assert!(
            !text.contains("secret") && !text.contains("AccountKey"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn a_throttled_store_is_503_with_retry_after() {
    let store = Arc::new(BrokenStore(|| StoreError::Unavailable {
        retry_after: Some(std::time::Duration::from_millis(2500)),
    }));
    let app = TestApp::over(store, ApiSettings::default(), Box::new(()));
    let r = app.get("/api/chat/sessions/s1").await;
    assert_eq!(r.header("retry-after"), Some("3"));
    r.expect_problem(StatusCode::SERVICE_UNAVAILABLE);
}

/// 200 clients posting at once to one session over real sockets: every
/// message stored once, the count exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_posts_over_http_lose_nothing() {
    let (store, dir) = sqlite_store();
    let server = spawn_app(store, Box::new(dir)).await;
    let id = server.create_session("u1").await;
    let url = server.url(&format!("/api/chat/sessions/{id}/messages?user_id=u1"));
    let posts: Vec<_> = (0..200)
        .map(|i| {
            let (client, url) = (server.client.clone(), url.clone());
            tokio::spawn(async move {
                // Every third message is sent twice, as a client retry would.
                let body = json!({ "id": format!("msg_{i}"), "content": format!("message {i}"), "message_type": "user" });
                let first = client.post(&url).json(&body).send().await.unwrap().status();
                if i % 3 == 0 {
                    let again = client.post(&url).json(&body).send().await.unwrap().status();
                    assert_eq!(again, reqwest::StatusCode::OK);
                }
                first
            })
        })
        .collect();
    for post in posts {
        assert_eq!(post.await.unwrap(), reqwest::StatusCode::CREATED);
    }
    let session = server
        .get_json(&format!("/api/chat/sessions/{id}?user_id=u1"))
        .await;
    assert_eq!(session["message_count"], 200);
    let ids: HashSet<&str> = texts(&session["messages"], "id").into_iter().collect();
    assert_eq!(ids.len(), 200);
}
