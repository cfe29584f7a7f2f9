//! `chat-sessions serve`: the HTTP API and the Functions invocations on one
//! port, until SIGTERM or Ctrl-C.

use std::{net::IpAddr, path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context as _;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use tokio::net::TcpListener;

use crate::{
    app,
    config::{Config, Overrides},
    store::DynMigrationStore,
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

/// How long requests in flight may take to finish after SIGTERM (or
/// Ctrl-C) before the process stops without them. Ordinary requests take
/// milliseconds; a migration invocation cut here fails, and its queue
/// message is retried (the migration is idempotent).
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the service: answers from the first moment (the store connects in
/// the background), and on SIGTERM stops accepting, lets the requests in
/// flight finish for up to [`DRAIN_TIMEOUT`], and closes the store.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = Config::from_env(Overrides {
        port: args.port,
        host: args.host,
        data_dir: args.data_dir,
    })?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let backend = app::start_backend(&config)?;
    let (store, connecting) = (backend.store.clone(), backend.connecting.clone());
    tracing::info!(address = %listener.local_addr()?, auth_mode = ?config.auth_mode, "serving");
    let router = app::router(&config, backend);
    serve_http(
        listener,
        router,
        config.limits.header_read_timeout,
        shutdown_signal(),
    )
    .await;
    if let Some(connecting) = connecting {
        connecting.abort();
    }
    close(store).await
}

/// Serves `router` on `listener` until `stop`, then lets the requests in
/// flight finish for up to [`DRAIN_TIMEOUT`]. HTTP/1.1, as the Functions
/// host forwards it. With `header_timeout`, a client must send a request's
/// headers within it (a connection idle that long between requests is
/// closed too): a client that trickles its headers (slowloris) holds a
/// connection no longer. The body's deadline is the router's
/// (`crate::api::admit`).
async fn serve_http(
    listener: TcpListener,
    router: Router,
    header_timeout: Option<Duration>,
    stop: impl std::future::Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    if let Some(timeout) = header_timeout {
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(timeout);
    }
    tokio::pin!(stop);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let service = TowerToHyperService::new(router.clone());
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // A client that goes away, or is too slow, is its own affair.
            let _ = connection.await;
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN_TIMEOUT) => tracing::warn!(
            "requests still running {} s after the signal are cut (unanswered, so nothing \
             they did was acknowledged)",
            DRAIN_TIMEOUT.as_secs()
        ),
    }
}

/// A connection that failed while being accepted is dropped; anything else
/// (out of file descriptors) is logged, and accepting pauses a second
/// rather than spinning.
async fn accept_failed(e: &std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!("accepting a connection failed: {e}");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Closes the store by dropping the last handle: the embedded store then
/// commits what is queued and closes its file; Cosmos DB has nothing to
/// flush. The connection tasks that held the service let go of it just
/// after the server returns, so this waits for them a little.
async fn close(store: DynMigrationStore) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while Arc::strong_count(&store) > 1 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let others = Arc::strong_count(&store) - 1;
    // Closing the embedded store blocks briefly: off the async threads.
    tokio::task::spawn_blocking(move || drop(store))
        .await
        .context("closing the store")?;
    if others == 0 {
        tracing::info!("store closed; stopped");
    } else {
        tracing::info!("stopped; the store closes as the {others} tasks still holding it end");
    }
    Ok(())
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
