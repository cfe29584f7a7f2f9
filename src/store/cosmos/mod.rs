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
//! The files of this module. Each capability of the store contract is
//! implemented in the file of its name (see [`crate::store`]): `read` (the
//! current branch: the document and its sealed pages), `list`, `write`,
//! `append`, `context`, `branch`, `export`, `import`, `erase`, `retention`,
//! `search`, `health` (connecting at start, readiness, causes in operator
//! words) and `migration` (the [`MigrationStore`](super::MigrationStore)
//! side and its checkpoints). Under them: `documents` (what is stored),
//! `errors` (SDK errors, ETags, retries, stale reads), `fetch` (finding and
//! point-reading a session document), `metrics` and `telemetry`, `cache`
//! (the versions this process knows) and `turns` (appends to a session
//! take turns), `seal` (long sessions' sealed pages), `client`
//! (configuration, connection, container setup); for conversations as
//! trees: `fork` (appends that branch), `shape` (what a tree change reads,
//! and its tree), `relayout` (what it writes), `commit` (the one
//! transactional batch), `lineage` (parents and siblings on reads),
//! `filter` (the alternatives' ids) and `import_tree` (a file's tree).

use std::sync::Arc;

use anyhow::Context as _;
use azure_data_cosmos::{ContainerClient, CosmosClient};

use super::{Backoff, Connection, StoreResult, Unready};

mod append;
mod branch;
mod cache;
mod client;
mod commit;
mod context;
mod documents;
mod erase;
mod errors;
mod export;
mod fetch;
mod filter;
mod fork;
mod health;
mod import;
mod import_tree;
mod lineage;
mod list;
mod metrics;
mod migration;
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
