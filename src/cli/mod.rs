//! The command line: one binary, a file per subcommand. `serve` (the
//! default) is what the Azure Functions host runs.

use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::telemetry::{Telemetry, TelemetrySettings};

pub mod erase;
pub mod export;
pub mod import;
pub mod init_cosmos;
pub mod migrate;
pub mod openapi;
pub mod retention;
pub mod search;
pub mod serve;

/// Chat-session history service and its tools.
#[derive(Debug, Parser)]
#[command(
    name = "chat-sessions",
    version,
    about,
    after_help = "With no command it serves, as `chat-sessions serve` with its defaults \
                  (http://127.0.0.1:7071, the embedded store in ./data unless COSMOS_ENDPOINT \
                  is set). Settings come from the environment: docs/configuration.md."
)]
pub struct Cli {
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API (what the Azure Functions host runs).
    Serve(serve::ServeArgs),
    /// Print the OpenAPI document (the source of `openapi.json`).
    Openapi,
    /// Create the Cosmos DB database and containers (local emulators, key
    /// auth; in Azure the infra provisions them).
    #[command(
        after_help = "Reads COSMOS_ENDPOINT and COSMOS_KEY (an emulator's key; required), \
                            COSMOS_DATABASE, COSMOS_SESSIONS_CONTAINER, COSMOS_LEGACY_CONTAINER and \
                            COSMOS_LEGACY_PARTITION_KEY \
                            (docs/configuration.md)."
    )]
    InitCosmos,
    /// Move old one-document-per-message data into sessions.
    Migrate(migrate::MigrateArgs),
    /// Search one user's chat history (the rules of `GET /api/chat/search`).
    Search(search::SearchArgs),
    /// Write everything of one user as the export stream (NDJSON).
    Export(export::ExportArgs),
    /// Delete everything of one user (sessions and legacy messages).
    Erase(erase::EraseArgs),
    /// Archive and delete old sessions by the retention settings.
    #[command(
        after_help = "Reads RETENTION_ARCHIVE_AFTER_DAYS and RETENTION_DELETE_AFTER_DAYS \
                            (both unset: retention is off and nothing happens), and the store's \
                            settings: COSMOS_ENDPOINT and the rest, or DATA_DIR \
                            (docs/configuration.md)."
    )]
    Retention(retention::RetentionArgs),
    /// Import a user's sessions from a file (an export of this service, or
    /// ChatGPT's conversations.json).
    Import(import::ImportArgs),
}

/// Parses the command line and runs it.
pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Openapi) = cli.command {
        openapi::run();
        return Ok(());
    }
    let telemetry = Telemetry::start(&TelemetrySettings::from_env()?, "info")?;
    let outcome = run(cli
        .command
        .unwrap_or(Command::Serve(serve::ServeArgs::default())));
    // What is still queued leaves before the process does (a stopped
    // exporter costs at most this).
    telemetry.shutdown(Duration::from_secs(2));
    match outcome? {
        0 => Ok(()),
        code => std::process::exit(code),
    }
}

/// Runs `command`; its exit code (the migration and import say more than
/// success or failure).
fn run(command: Command) -> anyhow::Result<i32> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let done = |result: anyhow::Result<()>| result.map(|()| 0);
    match command {
        Command::Serve(args) => {
            let served = runtime.block_on(serve::run(args));
            // Tasks still running (requests cut after the drain) are
            // dropped, which closes the store if they held it last.
            runtime.shutdown_timeout(Duration::from_secs(5));
            done(served)
        }
        Command::Openapi => Ok(0),
        Command::InitCosmos => {
            done(runtime.block_on(job("chat-sessions init-cosmos", init_cosmos::run())))
        }
        Command::Migrate(args) => {
            runtime.block_on(job("chat-sessions migrate", migrate::run(args)))
        }
        Command::Search(args) => {
            done(runtime.block_on(job("chat-sessions search", search::run(args))))
        }
        Command::Export(args) => {
            done(runtime.block_on(job("chat-sessions export", export::run(args))))
        }
        Command::Erase(args) => {
            done(runtime.block_on(job("chat-sessions erase", erase::run(args))))
        }
        Command::Retention(args) => {
            done(runtime.block_on(job("chat-sessions retention", retention::run(args))))
        }
        Command::Import(args) => runtime.block_on(job("chat-sessions import", import::run(args))),
    }
}

/// Runs a subcommand as one trace (when exporting: a root span `name`,
/// e.g. `chat-sessions migrate`, its Cosmos DB operations beneath it), and
/// says at the end what it cost on Cosmos DB.
async fn job<T>(
    name: &'static str,
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    use opentelemetry::{KeyValue, context::FutureExt as _};

    use crate::telemetry::{cost, instruments, spans};
    let started = std::time::Instant::now();
    let cx = spans::start_server(
        name,
        vec![
            KeyValue::new("faas.name", name),
            KeyValue::new("faas.trigger", "other"),
        ],
        opentelemetry::Context::new(),
    );
    let (outcome, cost) = cost::measure(work).with_context(cx.clone()).await;
    let charge = cost.request_charge();
    let mut attributes = vec![KeyValue::new(
        "chat_sessions.store.requests",
        cost.cosmos_requests() as i64,
    )];
    if let Some(charge) = charge {
        attributes.push(KeyValue::new("chat_sessions.request_charge", charge));
        tracing::info!(
            requests = cost.cosmos_requests(),
            request_units = charge,
            "{name}: Cosmos DB charged {charge:.2} request units"
        );
    }
    spans::end_server(&cx, attributes, outcome.is_err());
    let attributes = std::sync::Arc::new([
        KeyValue::new("faas.name", name),
        KeyValue::new("faas.trigger", "other"),
    ]);
    instruments::FunctionMetrics::new(name, attributes).ended(None, started.elapsed(), charge);
    outcome
}
