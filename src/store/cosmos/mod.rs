//! The production store: Azure Cosmos DB for NoSQL through the official SDK.
//!
//! One document per session, exactly the seed's JSON plus a `doc_type`
//! discriminator, in a container partitioned by `/user_id` (sessions without
//! an owner live in the `null` partition).
//!
//! Request budget: a read is one point read (with `If-None-Match` when the
//! caller knows a version: a 304 costs no transfer); a listing page is one
//! single-partition query that leaves `messages` out; an update is one
//! server-side patch; an append is one server-side patch guarded by the ETag
//! of the version this process last wrote or read, or, when it knows none or
//! another writer got in between, a read plus that patch (appends from one
//! process take turns per session). Only local mode without a user
//! (`Owner::Anonymous`) needs one extra cross-partition query to find a
//! session's partition.
//!
//! The files of this module, one concern each: `documents` (what is stored),
//! `errors` (SDK errors, ETags, retries, stale reads), `metrics`, `read`,
//! `current` (the current branch's messages), `write` and `append` (the
//! [`SessionStore`] operations), `cache` (the versions this process knows)
//! and `turns` (appends to a session take turns), `seal` (long sessions'
//! sealed pages); conversations as trees: `branch` (the
//! [`BranchStore`](super::BranchStore) operations), `fork` (appends that
//! branch), `shape` (what a tree change reads, and its tree), `relayout`
//! (what it writes), `commit` (the one transactional batch), `lineage`
//! (parents and siblings on reads) and `filter` (the alternatives' ids);
//! `import`, `import_tree` and `checkpoint` (the migration's
//! [`MigrationStore`] side and file imports), `export`, `erase` and
//! `retention` (those capabilities), `client` (configuration, connection,
//! container setup) and `health` (connecting at start, readiness, causes
//! in operator words). The trait impls below only delegate to them.

use std::sync::Arc;

use anyhow::Context as _;
use async_trait::async_trait;
use azure_data_cosmos::{ContainerClient, CosmosClient};

use super::{
    Appended, Backoff, Connection, ContextSink, ETag, ImportOutcome, ListQuery, MessagePage,
    MessageQuery, MigrationStore, Owner, SessionImport, SessionPage, SessionRead, SessionStore,
    StoreResult, StoreState, Unready, Versioned,
};
use crate::domain::{ChatSession, NewMessage, NewSession, SessionId, SessionPatch};

mod append;
mod branch;
mod cache;
mod checkpoint;
mod client;
mod commit;
mod context;
mod current;
mod documents;
mod erase;
mod errors;
mod export;
mod filter;
mod fork;
mod health;
mod import;
mod import_tree;
mod lineage;
mod metrics;
mod read;
mod relayout;
mod retention;
mod seal;
mod search;
mod shape;
mod telemetry;
mod turns;
mod write;

pub use client::{
    CosmosConfig, account, check_endpoint, check_name, client, connect, identity, init_containers,
    sessions_indexing_policy,
};
pub use documents::{BRANCH_DOC_TYPE, CHECKPOINT_DOC_TYPE, PAGE_DOC_TYPE, SESSION_DOC_TYPE};
pub use health::{Target, open, reach};
pub use metrics::{ItemIo, Metrics, MetricsSnapshot};
pub use seal::SealPolicy;

/// Its name for people, in the causes and logs of connecting.
const BACKEND: &str = "Cosmos DB";

/// The Cosmos DB store over one sessions container.
#[derive(Clone)]
pub struct CosmosStore {
    /// The sessions container, once reached (see [`Connection`]).
    connection: Arc<Connection<ContainerClient>>,
    metrics: Arc<Metrics>,
    seal: SealPolicy,
    target: Arc<Target>,
    /// The sessions this process wrote or read lately, for 1-request appends.
    versions: Arc<cache::Versions>,
    /// Appends to one session from this process take turns.
    turns: Arc<turns::Turns>,
}

impl std::fmt::Debug for CosmosStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CosmosStore").finish_non_exhaustive()
    }
}

impl CosmosStore {
    /// The store over container `name` of `database`, through `client`.
    pub async fn open(client: &CosmosClient, database: &str, name: &str) -> anyhow::Result<Self> {
        let container = client
            .database_client(database)
            .container_client(name, None)
            .await
            .with_context(|| format!("opening Cosmos DB container {database}/{name}"))?;
        Ok(Self::over(
            Connection::connected(BACKEND, container),
            Target {
                database: database.to_owned(),
                container: name.to_owned(),
                ..Target::default()
            },
        ))
    }

    /// The store `config` describes, not connected yet: its operations
    /// answer "unavailable" until [`connect`](Self::connect) reaches it.
    pub fn connecting(config: &CosmosConfig) -> Self {
        Self::over(Connection::new(BACKEND), Target::of(config)).with_seal_policy(config.seal)
    }

    fn over(connection: Connection<ContainerClient>, target: Target) -> Self {
        Self {
            connection: Arc::new(connection),
            metrics: Arc::default(),
            seal: SealPolicy::default(),
            target: Arc::new(target),
            versions: Arc::default(),
            turns: Arc::default(),
        }
    }

    /// Reaches the container with `attempt` (see
    /// [`Connection::connect`]); returns once it has.
    pub async fn connect<F, Fut>(&self, backoff: Backoff, attempt: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<ContainerClient, Unready>>,
    {
        self.connection.connect(backoff, attempt).await;
    }

    /// The container, or "unavailable" while it is being reached (tests and
    /// tools also inspect stored documents through it).
    pub fn container(&self) -> StoreResult<&ContainerClient> {
        self.connection.ready()
    }
}

#[async_trait]
impl SessionStore for CosmosStore {
    fn kind(&self) -> &'static str {
        "cosmos"
    }

    async fn create_session(&self, new: NewSession) -> StoreResult<Versioned<ChatSession>> {
        self.create(new).await
    }

    async fn get_session_if_changed(
        &self,
        owner: &Owner,
        id: &SessionId,
        known: Option<&ETag>,
    ) -> StoreResult<Option<Versioned<ChatSession>>> {
        self.get_if_changed(owner, id, known).await
    }

    async fn read_session(
        &self,
        owner: &Owner,
        id: &SessionId,
        known: Option<&ETag>,
    ) -> StoreResult<Option<SessionRead>> {
        self.read_streamed(owner, id, known).await
    }

    async fn get_session_tail(
        &self,
        owner: &Owner,
        id: &SessionId,
        limit: u32,
    ) -> StoreResult<Versioned<ChatSession>> {
        self.tail(owner, id, limit).await
    }

    async fn list_messages(
        &self,
        owner: &Owner,
        id: &SessionId,
        query: MessageQuery,
    ) -> StoreResult<MessagePage> {
        self.message_page(owner, id, query).await
    }

    async fn read_context(
        &self,
        owner: &Owner,
        id: &SessionId,
        sink: &mut (dyn ContextSink + Send),
    ) -> StoreResult<()> {
        self.context(owner, id, sink).await
    }

    async fn list_sessions(&self, owner: &Owner, query: &ListQuery) -> StoreResult<SessionPage> {
        self.session_page(owner, query).await
    }

    async fn update_session(
        &self,
        owner: &Owner,
        id: &SessionId,
        patch: &SessionPatch,
        if_match: Option<&ETag>,
    ) -> StoreResult<Versioned<ChatSession>> {
        self.update(owner, id, patch, if_match).await
    }

    async fn delete_session(
        &self,
        owner: &Owner,
        id: &SessionId,
        if_match: Option<&ETag>,
    ) -> StoreResult<()> {
        self.delete(owner, id, if_match).await
    }

    async fn append_message(
        &self,
        owner: &Owner,
        id: &SessionId,
        message: NewMessage,
    ) -> StoreResult<Appended> {
        self.append(owner, id, message).await
    }

    fn state(&self) -> StoreState {
        self.connection.state()
    }

    async fn check_ready(&self) -> Result<(), Unready> {
        let target = &self.target;
        self.connection
            .check_ready(async |container| health::probe(container, target).await)
            .await
    }
}

#[async_trait]
impl MigrationStore for CosmosStore {
    async fn import_messages(&self, import: SessionImport) -> StoreResult<ImportOutcome> {
        self.import(import).await
    }

    async fn load_checkpoint(&self, run_id: &str) -> StoreResult<Option<Versioned<String>>> {
        self.read_checkpoint(run_id).await
    }

    async fn save_checkpoint(
        &self,
        run_id: &str,
        state: &str,
        expected: Option<&ETag>,
    ) -> StoreResult<ETag> {
        self.write_checkpoint(run_id, state, expected).await
    }
}
