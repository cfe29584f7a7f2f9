//! The command line: one binary, several subcommands.

use std::{net::IpAddr, path::PathBuf, sync::Arc};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use crate::{
    api::{AppState, app},
    config::{Config, Overrides},
    migration::SourceSpec,
    store::{self, DynMigrationStore, sqlite::SqliteStore},
};

/// Chat-session history service and its tools.
#[derive(Debug, Parser)]
#[command(name = "chat-sessions", version, about)]
pub struct Cli {
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API (what the Azure Functions host runs).
    Serve(ServeArgs),
    /// Print the OpenAPI document (the source of `openapi.json`).
    Openapi,
    /// Create the Cosmos DB database and containers (local emulators, key
    /// auth; in Azure the infra provisions them).
    InitCosmos,
    /// Move old one-document-per-message data into sessions.
    Migrate(MigrateArgs),
}

/// Flags of `migrate`.
#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// Read and report only; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Delete each old message once its session, read back, holds it
    /// (Cosmos legacy container only).
    #[arg(long, conflicts_with = "dry_run")]
    pub delete_old: bool,
    /// Read old messages from this JSONL file instead of the legacy Cosmos
    /// container.
    #[arg(long, value_name = "FILE")]
    pub from_jsonl: Option<PathBuf>,
    /// Old messages read per page.
    #[arg(long, default_value_t = crate::jobs::DEFAULT_BATCH_SIZE,
          value_parser = clap::value_parser!(u32).range(1..=crate::jobs::MAX_BATCH_SIZE as i64))]
    pub batch_size: u32,
    /// Names the run; a killed run started again with the same id resumes.
    #[arg(long, default_value = "cli")]
    pub run_id: String,
    /// Show the run's checkpoint and exit.
    #[arg(long)]
    pub status: bool,
    /// Directory of the embedded store [env: DATA_DIR] [default: ./data]
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// Flags of `serve`.
#[derive(Debug, Default, clap::Args)]
pub struct ServeArgs {
    /// Port to listen on (ignored when the Functions host sets
    /// FUNCTIONS_CUSTOMHANDLER_PORT) [env: PORT] [default: 7071]
    #[arg(long)]
    pub port: Option<u16>,
    /// Address to listen on [env: HOST] [default: 127.0.0.1]
    #[arg(long)]
    pub host: Option<IpAddr>,
    /// Directory of the embedded store [env: DATA_DIR] [default: ./data]
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// Parses the command line and runs it.
pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Openapi) = cli.command {
        print!("{}", crate::api::openapi::document_json());
        return Ok(());
    }
    init_logging();
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    match cli.command.unwrap_or(Command::Serve(ServeArgs::default())) {
        Command::Serve(args) => runtime.block_on(serve(args)),
        Command::Openapi => Ok(()),
        Command::InitCosmos => runtime.block_on(init_cosmos()),
        Command::Migrate(args) => {
            let code = runtime.block_on(crate::migrate_cli::run(args))?;
            std::process::exit(code);
        }
    }
}

fn init_logging() {
    use std::io::IsTerminal as _;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Logs go to stderr, so that stdout carries only what a command prints
    // (a migration report, the OpenAPI document); the Functions host
    // collects both.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// The configured store (Cosmos DB when `COSMOS_ENDPOINT` is set, else the
/// embedded store) and where the migration reads old messages: the legacy
/// Cosmos container, or the `MIGRATION_JSONL` file.
pub async fn open_backend(
    config: &Config,
) -> anyhow::Result<(DynMigrationStore, Option<SourceSpec>)> {
    if let Some(cosmos) = &config.cosmos {
        tracing::info!(
            endpoint = %cosmos.endpoint,
            database = %cosmos.database,
            container = %cosmos.sessions_container,
            auth = cosmos.auth_kind(),
            "using Cosmos DB"
        );
        let client = store::cosmos::connect(cosmos).await?;
        let store =
            store::cosmos::CosmosStore::open(&client, &cosmos.database, &cosmos.sessions_container)
                .await?
                .with_seal_policy(cosmos.seal);
        let legacy = match client
            .database_client(&cosmos.database)
            .container_client(&cosmos.legacy_container, None)
            .await
        {
            Ok(container) => Some(SourceSpec::Cosmos {
                container,
                partition_key_path: cosmos.legacy_partition_key.clone(),
            }),
            Err(e) => {
                tracing::warn!(container = %cosmos.legacy_container, "no legacy container, the migration is off: {e}");
                None
            }
        };
        return Ok((Arc::new(store), legacy));
    }
    let store = SqliteStore::open(&config.data_dir, config.durability)?;
    tracing::info!(path = %store.path().display(), "using the embedded store");
    Ok((
        Arc::new(store),
        config.migration_jsonl.clone().map(SourceSpec::Jsonl),
    ))
}

async fn init_cosmos() -> anyhow::Result<()> {
    let config = Config::from_env(Overrides::default())?;
    let cosmos = config
        .cosmos
        .context("COSMOS_ENDPOINT is not set: there is no Cosmos DB to initialise")?;
    if cosmos.key.is_none() {
        anyhow::bail!(
            "init-cosmos needs COSMOS_KEY (an emulator's key): with Entra ID the data plane cannot \
             create containers; in Azure, infra/ provisions them"
        );
    }
    let client = store::cosmos::connect(&cosmos).await?;
    store::cosmos::init_containers(&client, &cosmos).await
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = Config::from_env(Overrides {
        port: args.port,
        host: args.host,
        data_dir: args.data_dir,
    })?;
    // Bind before opening the store so the host's first probe of `/` is
    // answered as soon as possible; the store opens in milliseconds anyway.
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let (store, legacy) = open_backend(&config).await?;
    let mut state = AppState::new(store.clone(), config.api_settings());
    if let Some(source) = legacy {
        state = state.with_migration_source(source, store);
    }
    tracing::info!(address = %listener.local_addr()?, auth_mode = ?config.auth_mode, "serving");
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving HTTP")
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}
