//! Reaching the account: the configuration, the client (account key for
//! emulators, else Entra ID) and the containers created for local runs.

use std::sync::Arc;

use anyhow::Context as _;
use azure_data_cosmos::{CosmosClient, CosmosError};

use super::SealPolicy;

/// Where and how to reach Cosmos DB. The account key, when there is one, is
/// never printed (`Debug` leaves it out).
#[derive(Clone)]
pub struct CosmosConfig {
    /// `COSMOS_ENDPOINT`, e.g. `https://<account>.documents.azure.com:443/`.
    pub endpoint: String,
    /// `COSMOS_DATABASE` (default `chat`).
    pub database: String,
    /// `COSMOS_SESSIONS_CONTAINER` (default `chat_sessions`).
    pub sessions_container: String,
    /// `COSMOS_LEGACY_CONTAINER` (default `chat_messages`), read by the migration.
    pub legacy_container: String,
    /// `COSMOS_LEGACY_PARTITION_KEY` (default `/session_id`).
    pub legacy_partition_key: String,
    /// `COSMOS_KEY`: account-key auth, for local emulators only.
    pub key: Option<azure_core::credentials::Secret>,
    /// `AZURE_CLIENT_ID`: the user-assigned managed identity to use.
    pub client_id: Option<String>,
    /// `COSMOS_REGION` (default: the app's `REGION_NAME`, else East US): the
    /// region the SDK routes to first.
    pub region: String,
    /// `COSMOS_SEAL_MAX_BYTES` / `COSMOS_SEAL_PAGE_BYTES` /
    /// `COSMOS_SEAL_MAX_MESSAGES`: when a session document moves its oldest
    /// messages into a sealed page, and how many.
    pub seal: SealPolicy,
}

impl std::fmt::Debug for CosmosConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CosmosConfig")
            .field("endpoint", &self.endpoint)
            .field("database", &self.database)
            .field("sessions_container", &self.sessions_container)
            .field("legacy_container", &self.legacy_container)
            .field("auth", &self.auth_kind())
            .field("region", &self.region)
            .field("seal", &self.seal)
            .finish()
    }
}

impl CosmosConfig {
    /// How the client authenticates, for logs.
    pub fn auth_kind(&self) -> &'static str {
        if self.key.is_some() {
            "account key (emulator)"
        } else if self.client_id.is_some() || std::env::var_os("IDENTITY_ENDPOINT").is_some() {
            "managed identity"
        } else {
            "developer tools (az / azd login)"
        }
    }
}

/// A client for the configured account: account key when given (emulators),
/// else managed identity in Azure (user-assigned with `AZURE_CLIENT_ID`),
/// else the developer's `az`/`azd` login. A plain-`http://` endpoint can only
/// be a local emulator (the SDK refuses it for anything but loopback), so
/// HTTP/2 and binary encoding, which emulators lack, are turned off for it.
pub async fn connect(config: &CosmosConfig) -> anyhow::Result<CosmosClient> {
    use azure_data_cosmos::{
        AccountEndpoint, AccountReference, CosmosRuntime, RoutingStrategy,
        options::{BinaryEncodingOptions, ConnectionPoolOptions, Region},
    };
    let endpoint: AccountEndpoint = config.endpoint.parse().with_context(|| {
        format!(
            "COSMOS_ENDPOINT {:?} is not a valid endpoint",
            config.endpoint
        )
    })?;
    let account = match &config.key {
        Some(key) => AccountReference::with_authentication_key(endpoint, key.clone()),
        None => {
            let credential: Arc<dyn azure_core::credentials::TokenCredential> =
                if config.client_id.is_some() || std::env::var_os("IDENTITY_ENDPOINT").is_some() {
                    azure_identity::ManagedIdentityCredential::new(Some(
                        azure_identity::ManagedIdentityCredentialOptions {
                            user_assigned_id: config
                                .client_id
                                .clone()
                                .map(azure_identity::UserAssignedId::ClientId),
                            ..Default::default()
                        },
                    ))?
                } else {
                    azure_identity::DeveloperToolsCredential::new(None)?
                };
            AccountReference::with_credential(endpoint, credential)
        }
    };
    let mut builder = CosmosClient::builder();
    if config.endpoint.starts_with("http://") {
        let pool = ConnectionPoolOptions::builder()
            .with_is_http2_allowed(false)
            .build()?;
        builder = builder
            .with_runtime(
                CosmosRuntime::builder()
                    .with_connection_pool(pool)
                    .build()
                    .await?,
            )
            .with_binary_encoding_options(BinaryEncodingOptions::new().with_enabled(false));
    }
    builder
        .build(
            account,
            RoutingStrategy::ProximityTo(Region::new(config.region.clone())),
        )
        .await
        .context("connecting to Cosmos DB")
}

/// Creates the database and containers if missing (local emulators: needs
/// key auth; in Azure, infra provisions them). The sessions container is
/// partitioned by `/user_id` and indexes only what queries use.
pub async fn init_containers(client: &CosmosClient, config: &CosmosConfig) -> anyhow::Result<()> {
    use azure_data_cosmos::models::{ContainerProperties, IndexingPolicy, PartitionKeyDefinition};
    let exists = |e: &CosmosError| e.status().is_conflict();
    match client.create_database(&config.database, None).await {
        Ok(_) => tracing::info!(database = %config.database, "created database"),
        Err(e) if exists(&e) => {}
        Err(e) => return Err(anyhow::Error::new(e).context("creating the database")),
    }
    let database = client.database_client(&config.database);
    let sessions = ContainerProperties::new(
        config.sessions_container.clone(),
        PartitionKeyDefinition::from("/user_id"),
    )
    .with_indexing_policy(sessions_indexing_policy());
    let legacy = ContainerProperties::new(
        config.legacy_container.clone(),
        PartitionKeyDefinition::from(config.legacy_partition_key.clone()),
    )
    .with_indexing_policy(IndexingPolicy::default().with_included_path("/*"));
    for props in [sessions, legacy] {
        let name = props.id.clone();
        match database.create_container(props, None).await {
            Ok(_) => tracing::info!(container = %name, "created container"),
            Err(e) if exists(&e) => tracing::info!(container = %name, "container exists"),
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!("creating container {name}")));
            }
        }
    }
    Ok(())
}

/// Index what the queries filter and sort on; leave out message bodies and
/// free-form context, which no query reads and which would only cost write RU.
pub fn sessions_indexing_policy() -> azure_data_cosmos::models::IndexingPolicy {
    azure_data_cosmos::models::IndexingPolicy::default()
        .with_included_path("/*")
        .with_excluded_path("/messages/*")
        .with_excluded_path("/context/*")
        .with_excluded_path("/\"_etag\"/?")
}
