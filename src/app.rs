//! Wiring: the one place that builds the whole service from [`Config`]. It
//! opens the store the settings choose (Cosmos DB when `COSMOS_ENDPOINT` is
//! set, else the embedded store) and the migration's legacy source, and puts
//! the HTTP API and the Azure Functions invocations on one router. To serve,
//! Cosmos DB is connected in the background ([`start_backend`]), so that the
//! service answers from its first moment whatever the state of the account.

use std::sync::{Arc, OnceLock};

use axum::Router;
use azure_data_cosmos::CosmosClient;

use crate::{
    api::{self, ApiSettings, AppState},
    config::Config,
    functions::{self, FunctionsSettings, FunctionsState},
    migration::SourceSpec,
    store::{
        Backoff, Cause, DynLegacyEraser, DynMigrationStore, DynSearchStore, LegacyErased,
        LegacyEraser, StoreError, StoreResult, StoreState, Unready,
        cosmos::{self, CosmosStore},
        sqlite::SqliteStore,
    },
};

/// The storage the service runs on.
#[derive(Debug, Clone)]
pub struct Backend {
    /// Where sessions live (with what the migration needs of the store).
    pub store: DynMigrationStore,
    /// Search over the same store.
    pub search: DynSearchStore,
    /// Where the migration reads old messages: the legacy Cosmos container,
    /// or the `MIGRATION_JSONL` file; empty when there is neither (or, while
    /// Cosmos DB is being connected, not yet).
    pub legacy: Arc<OnceLock<SourceSpec>>,
    /// The background connection, while there is one (to stop it when
    /// the service stops).
    pub connecting: Option<tokio::task::AbortHandle>,
}

/// Opens the configured store and legacy source now, or fails with the
/// cause (for the CLI, which has nothing to do without them).
pub async fn open_backend(config: &Config) -> anyhow::Result<Backend> {
    let Some(settings) = &config.cosmos else {
        return open_embedded(config);
    };
    log_cosmos(settings);
    let (client, store) = cosmos::open(settings, cosmos::account(settings)?)
        .await
        .map_err(|why| anyhow::anyhow!("{why}"))?;
    let legacy = Arc::new(OnceLock::new());
    if let Some(source) = legacy_source(&client, settings).await {
        let _ = legacy.set(source);
    }
    let store = Arc::new(store);
    Ok(Backend {
        store: store.clone(),
        search: store,
        legacy,
        connecting: None,
    })
}

/// Opens the configured store for serving: the embedded store at once;
/// Cosmos DB in the background, retried with backoff for as long as it
/// takes, so that the service answers from the start and says why the
/// store is not there yet. Settings that can never work were refused by
/// [`Config`] already; this only fails when the embedded store cannot be
/// opened. Must run inside the Tokio runtime.
pub fn start_backend(config: &Config) -> anyhow::Result<Backend> {
    let Some(settings) = &config.cosmos else {
        return open_embedded(config);
    };
    log_cosmos(settings);
    let store = Arc::new(CosmosStore::connecting(settings));
    let legacy = Arc::new(OnceLock::new());
    let (connecting, slot, settings) = (store.clone(), legacy.clone(), settings.clone());
    let task = tokio::spawn(async move {
        connecting
            .connect(Backoff::default(), || async {
                // Setting up the credential builds an HTTP client: done here,
                // so that nothing delays the first answer. It fails only
                // when the platform offers no usable managed identity.
                let account = cosmos::account(&settings).map_err(|e| {
                    Unready::new(
                        Cause::Other {
                            reason: format!("{e:#}"),
                        },
                        std::time::Duration::ZERO,
                    )
                })?;
                let (client, container) = cosmos::reach(&settings, account).await?;
                if slot.get().is_none()
                    && let Some(source) = legacy_source(&client, &settings).await
                {
                    let _ = slot.set(source);
                }
                Ok(container)
            })
            .await;
    });
    Ok(Backend {
        store: store.clone(),
        search: store,
        legacy,
        connecting: Some(task.abort_handle()),
    })
}

fn open_embedded(config: &Config) -> anyhow::Result<Backend> {
    let store = SqliteStore::open_with(&config.data_dir, config.sqlite())?;
    tracing::info!(path = %store.path().display(), "using the embedded store");
    let legacy = Arc::new(OnceLock::new());
    if let Some(path) = &config.migration_jsonl {
        let _ = legacy.set(SourceSpec::Jsonl(path.clone()));
    }
    let store = Arc::new(store);
    Ok(Backend {
        store: store.clone(),
        search: store,
        legacy,
        connecting: None,
    })
}

fn log_cosmos(settings: &cosmos::CosmosConfig) {
    tracing::info!(
        endpoint = %settings.endpoint,
        database = %settings.database,
        container = %settings.sessions_container,
        auth = settings.auth_kind(),
        "using Cosmos DB"
    );
}

/// The legacy container, when it exists (else the migration is off).
async fn legacy_source(
    client: &CosmosClient,
    settings: &cosmos::CosmosConfig,
) -> Option<SourceSpec> {
    match client
        .database_client(&settings.database)
        .container_client(&settings.legacy_container, None)
        .await
    {
        Ok(container) => Some(SourceSpec::Cosmos {
            container,
            partition_key_path: settings.legacy_partition_key.clone(),
        }),
        Err(e) => {
            tracing::warn!(container = %settings.legacy_container, "no legacy container, the migration is off: {e}");
            None
        }
    }
}

/// The settings of the HTTP API.
pub fn api_settings(config: &Config) -> ApiSettings {
    ApiSettings {
        auth_mode: config.auth_mode,
        max_body_bytes: config.max_body_bytes,
        bench_routes: config.bench_routes,
        import_max_bytes: config.import_max_bytes,
        cors: config.cors_allowed_origins.clone(),
        server_timing: config.telemetry.server_timing,
        limits: config.limits.clone(),
        ..ApiSettings::default()
    }
}

/// The settings of the non-HTTP functions.
pub fn functions_settings(config: &Config) -> FunctionsSettings {
    FunctionsSettings {
        max_body_bytes: config.max_body_bytes,
        migration_sweep_enabled: config.migration_sweep_enabled,
        migration_budget: config.migration_budget,
        retention: config.retention,
        retention_sweep_enabled: config.retention_sweep_enabled,
        ..FunctionsSettings::default()
    }
}

/// The whole service over `backend`, as `serve` runs it.
pub fn router(config: &Config, backend: Backend) -> Router {
    let mut api =
        AppState::new(backend.store.clone(), api_settings(config)).with_search(backend.search);
    let eraser: Option<DynLegacyEraser> = match backend.legacy.get() {
        Some(source) => source.eraser(),
        // Cosmos DB is being connected: the legacy container is known once
        // it is.
        None if backend.connecting.is_some() => Some(Arc::new(PendingEraser {
            source: backend.legacy.clone(),
            store: backend.store.clone(),
        })),
        None => None,
    };
    if let Some(eraser) = eraser {
        api = api.with_legacy_eraser(eraser);
    }
    let functions = FunctionsState::new(backend.store, functions_settings(config))
        .with_pending_migration_source(backend.legacy);
    service(api, functions)
}

/// The HTTP API as the Functions host forwards it, plus the
/// `POST /<FunctionName>` invocations of the host's other triggers (and of
/// HTTP functions when forwarding is off, which go through the same API).
pub fn service(api: AppState, functions: FunctionsState) -> Router {
    let api = api::router(api);
    api.clone().merge(functions::router(api, functions))
}

/// Erases legacy documents through the legacy container once Cosmos DB is
/// connected (which is when the container is known); until then it answers
/// "unavailable", so that an erase never skips the legacy documents.
#[derive(Debug)]
struct PendingEraser {
    source: Arc<OnceLock<SourceSpec>>,
    store: DynMigrationStore,
}

#[async_trait::async_trait]
impl LegacyEraser for PendingEraser {
    async fn erase_legacy(
        &self,
        user: &crate::domain::UserId,
        deadline: std::time::Instant,
    ) -> StoreResult<LegacyErased> {
        match self.source.get().and_then(SourceSpec::eraser) {
            Some(eraser) => eraser.erase_legacy(user, deadline).await,
            None if matches!(self.store.state(), StoreState::Connecting { .. }) => {
                Err(StoreError::Unavailable { retry_after: None })
            }
            // Connected, and there is no legacy container: nothing to erase.
            None => Ok(LegacyErased {
                messages: 0,
                complete: true,
            }),
        }
    }
}
