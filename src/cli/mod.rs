//! The command line: one binary, a file per subcommand. `serve` (the
//! default) is what the Azure Functions host runs.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

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
    Serve(serve::ServeArgs),
    /// Print the OpenAPI document (the source of `openapi.json`).
    Openapi,
    /// Create the Cosmos DB database and containers (local emulators, key
    /// auth; in Azure the infra provisions them).
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
    init_logging();
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    match cli
        .command
        .unwrap_or(Command::Serve(serve::ServeArgs::default()))
    {
        Command::Serve(args) => runtime.block_on(serve::run(args)),
        Command::Openapi => Ok(()),
        Command::InitCosmos => runtime.block_on(init_cosmos::run()),
        Command::Migrate(args) => {
            let code = runtime.block_on(migrate::run(args))?;
            std::process::exit(code);
        }
        Command::Search(args) => runtime.block_on(search::run(args)),
        Command::Export(args) => runtime.block_on(export::run(args)),
        Command::Erase(args) => runtime.block_on(erase::run(args)),
        Command::Retention(args) => runtime.block_on(retention::run(args)),
        Command::Import(args) => {
            let code = runtime.block_on(import::run(args))?;
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
