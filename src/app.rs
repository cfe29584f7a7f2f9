//! Wiring: the one place that builds the whole service from [`Config`]. It
//! opens the store the settings choose (Cosmos DB when `COSMOS_ENDPOINT` is
//! set, else the embedded store) and the migration's legacy source, and puts
//! the HTTP API and the Azure Functions invocations on one router.

use std::sync::Arc;

use axum::Router;

use crate::{
    api::{self, ApiSettings, AppState},
    config::Config,
    functions::{self, FunctionsSettings, FunctionsState},
    migration::SourceSpec,
    store::{DynMigrationStore, DynSearchStore, cosmos, sqlite::SqliteStore},
};

/// The opened storage.
#[derive(Debug, Clone)]
pub struct Backend {
    /// Where sessions live (with what the migration needs of the store).
    pub store: DynMigrationStore,
    /// Search over the same store.
    pub search: DynSearchStore,
    /// Where the migration reads old messages: the legacy Cosmos container,
    /// or the `MIGRATION_JSONL` file; `None` when there is neither.
    pub legacy: Option<SourceSpec>,
}

/// Opens the configured store and legacy source.
pub async fn open_backend(config: &Config) -> anyhow::Result<Backend> {
    if let Some(settings) = &config.cosmos {
        tracing::info!(
            endpoint = %settings.endpoint,
            database = %settings.database,
            container = %settings.sessions_container,
            auth = settings.auth_kind(),
            "using Cosmos DB"
        );
        let client = cosmos::connect(settings).await?;
        let store =
            cosmos::CosmosStore::open(&client, &settings.database, &settings.sessions_container)
                .await?
                .with_seal_policy(settings.seal);
        let legacy = match client
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
        };
        let store = Arc::new(store);
        return Ok(Backend {
            store: store.clone(),
            search: store,
            legacy,
        });
    }
    let store = SqliteStore::open(&config.data_dir, config.durability)?;
    tracing::info!(path = %store.path().display(), "using the embedded store");
    let store = Arc::new(store);
    Ok(Backend {
        store: store.clone(),
        search: store,
        legacy: config.migration_jsonl.clone().map(SourceSpec::Jsonl),
    })
}

/// The settings of the HTTP API.
pub fn api_settings(config: &Config) -> ApiSettings {
    ApiSettings {
        auth_mode: config.auth_mode,
        max_body_bytes: config.max_body_bytes,
        bench_routes: config.bench_routes,
        import_max_bytes: config.import_max_bytes,
        cors: config.cors_allowed_origins.clone(),
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
    if let Some(eraser) = backend.legacy.as_ref().and_then(SourceSpec::eraser) {
        api = api.with_legacy_eraser(eraser);
    }
    let mut functions = FunctionsState::new(backend.store, functions_settings(config));
    if let Some(source) = backend.legacy {
        functions = functions.with_migration_source(source);
    }
    service(api, functions)
}

/// The HTTP API as the Functions host forwards it, plus the
/// `POST /<FunctionName>` invocations of the host's other triggers (and of
/// HTTP functions when forwarding is off, which go through the same API).
pub fn service(api: AppState, functions: FunctionsState) -> Router {
    let api = api::router(api);
    api.clone().merge(functions::router(api, functions))
}
