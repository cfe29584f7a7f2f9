//! `chat-sessions serve`: the HTTP API and the Functions invocations on one
//! port, until SIGTERM or Ctrl-C.

use std::{net::IpAddr, path::PathBuf};

use anyhow::Context as _;

use crate::{
    app,
    config::{Config, Overrides},
};

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

/// Runs the service.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
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
    let backend = app::open_backend(&config).await?;
    tracing::info!(address = %listener.local_addr()?, auth_mode = ?config.auth_mode, "serving");
    axum::serve(listener, app::router(&config, backend))
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
