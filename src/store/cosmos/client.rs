//! Reaching the account: the configuration, the client (account key for
//! emulators, else Entra ID) and the containers created for local runs.

use std::sync::Arc;

use anyhow::Context as _;
use azure_data_cosmos::{AccountEndpoint, AccountReference, CosmosClient, CosmosError};

use super::SealPolicy;
use crate::store::health::Identity;

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
        match identity(self) {
            None => "account key (emulator)",
            Some(Identity::DeveloperLogin) => "developer tools (az / azd login)",
            Some(_) => "managed identity",
        }
    }
}

/// Checks `COSMOS_ENDPOINT` as the SDK will when connecting, so that an
/// endpoint that can never work stops the program at start: an absolute
/// `https://` URL, or `http://` to a local emulator (loopback, or the host
/// named by `AZURE_COSMOS_EMULATOR_HOST`, which the SDK also reads).
pub fn check_endpoint(endpoint: &str, emulator_host: Option<&str>) -> anyhow::Result<()> {
    let parsed: AccountEndpoint = endpoint
        .parse()
        .map_err(|_| anyhow::anyhow!("COSMOS_ENDPOINT={endpoint:?} is not a URL"))?;
    let url = parsed.url();
    let host = url.host_str().unwrap_or_default();
    let emulator = ["localhost", "127.0.0.1", "[::1]"]
        .iter()
        .chain(emulator_host.iter())
        .any(|h| host.eq_ignore_ascii_case(h));
    match url.scheme() {
        "https" => Ok(()),
        "http" if emulator => Ok(()),
        "http" => anyhow::bail!(
            "COSMOS_ENDPOINT={endpoint:?} is plain http:// to a host that is not a local emulator; \
             use the account's https:// endpoint (or name an emulator host in \
             AZURE_COSMOS_EMULATOR_HOST)"
        ),
        other => anyhow::bail!(
            "COSMOS_ENDPOINT={endpoint:?} has scheme {other:?}; it must be https:// (or http:// \
             for a local emulator)"
        ),
    }
}

/// Whether `name` can be a Cosmos DB database or container id: 1–255
/// characters, none of `/ \ # ?`, no trailing space.
pub fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.chars().count() > 255 {
        Err("it must have 1 to 255 characters")
    } else if name.contains(['/', '\\', '#', '?']) {
        Err("it must not contain / \\ # or ?")
    } else if name.ends_with(' ') {
        Err("it must not end with a space")
    } else {
        Ok(())
    }
}

/// How the client signs in, as readiness names it; `None` with an account
/// key.
pub fn identity(config: &CosmosConfig) -> Option<Identity> {
    if config.key.is_some() {
        None
    } else if let Some(id) = &config.client_id {
        Some(Identity::UserAssigned(id.clone()))
    } else if std::env::var_os("IDENTITY_ENDPOINT").is_some() {
        Some(Identity::SystemAssigned)
    } else {
        Some(Identity::DeveloperLogin)
    }
}

/// The account and its credential, checked without the network: an error
/// here is a setting that can never work (a malformed endpoint, a managed
/// identity the platform cannot provide), not an outage.
///
/// Account key when given (emulators), else managed identity in Azure
/// (user-assigned with `AZURE_CLIENT_ID`), else the developer's `az`/`azd`
/// login. The identity endpoint is retried only briefly: connection
/// attempts are retried by the caller, with backoff, and a failure that
/// comes back fast can be reported fast.
pub fn account(config: &CosmosConfig) -> anyhow::Result<AccountReference> {
    let endpoint: AccountEndpoint = config.endpoint.parse().with_context(|| {
        format!(
            "COSMOS_ENDPOINT={:?} is not a valid endpoint",
            config.endpoint
        )
    })?;
    if let Some(key) = &config.key {
        return Ok(AccountReference::with_authentication_key(
            endpoint,
            key.clone(),
        ));
    }
    let credential: Arc<dyn azure_core::credentials::TokenCredential> = match identity(config) {
        Some(Identity::DeveloperLogin) => azure_identity::DeveloperToolsCredential::new(None)
            .context("setting up the developer login (az / azd) for Cosmos DB")?,
        _ => {
            use azure_core::{
                http::{ClientOptions, ExponentialRetryOptions, RetryOptions},
                time::Duration,
            };
            let retry = RetryOptions::exponential(ExponentialRetryOptions {
                initial_delay: Duration::milliseconds(200),
                max_retries: 3,
                max_total_elapsed: Duration::seconds(10),
                max_delay: Duration::seconds(2),
            });
            azure_identity::ManagedIdentityCredential::new(Some(
                azure_identity::ManagedIdentityCredentialOptions {
                    user_assigned_id: config
                        .client_id
                        .clone()
                        .map(azure_identity::UserAssignedId::ClientId),
                    client_options: ClientOptions {
                        retry,
                        ..Default::default()
                    },
                },
            ))
            .context("setting up the managed identity for Cosmos DB")?
        }
    };
    Ok(AccountReference::with_credential(endpoint, credential))
}

/// A client of `account` (from [`account`]). This reaches the account (it
/// reads its properties), so it fails while the account cannot be reached
/// or no token can be had. A plain-`http://` endpoint can only be a local
/// emulator (the SDK refuses it for anything but loopback), so HTTP/2 and
/// binary encoding, which emulators lack, are turned off for it.
pub async fn client(
    config: &CosmosConfig,
    account: AccountReference,
) -> anyhow::Result<CosmosClient> {
    use azure_data_cosmos::{
        CosmosRuntime, RoutingStrategy,
        options::{BinaryEncodingOptions, ConnectionPoolOptions, Region},
    };
    // Every operation is reported (spans, metrics, the request's cost).
    let mut builder =
        CosmosClient::builder().with_diagnostics_handler(Arc::new(super::telemetry::Report));
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

/// A client for the configured account ([`account`], then [`client`]), for
/// tools that need it now or fail (`init-cosmos`, `migrate`).
pub async fn connect(config: &CosmosConfig) -> anyhow::Result<CosmosClient> {
    client(config, account(config)?).await
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
