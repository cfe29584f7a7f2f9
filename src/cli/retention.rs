//! `chat-sessions retention [--dry-run]`: applies the retention rules
//! (`RETENTION_ARCHIVE_AFTER_DAYS`, `RETENTION_DELETE_AFTER_DAYS`) now, to
//! every user's sessions, and reports what it did (or would do).

use std::time::{Duration, Instant};

use crate::{
    app,
    config::{Config, Overrides},
    domain::Timestamp,
    retention,
    store::SessionStore,
};

/// Flags of `retention`.
#[derive(Debug, clap::Args)]
pub struct RetentionArgs {
    /// Report what would be archived and deleted; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Directory of the embedded store [env: DATA_DIR] [default: ./data]
    #[arg(long)]
    pub data_dir: Option<std::path::PathBuf>,
}

/// Runs the command.
pub async fn run(args: RetentionArgs) -> anyhow::Result<()> {
    let config = Config::from_env(Overrides {
        data_dir: args.data_dir.clone(),
        ..Overrides::default()
    })?;
    if config.retention.is_off() {
        println!(
            "retention is off: set RETENTION_ARCHIVE_AFTER_DAYS and/or RETENTION_DELETE_AFTER_DAYS"
        );
        return Ok(());
    }
    let backend = app::open_backend(&config).await?;
    let store: &dyn SessionStore = backend.store.as_ref();
    // No time limit from a terminal: it runs until done.
    let report = retention::run(
        store,
        config.retention,
        Timestamp::now(),
        args.dry_run,
        Instant::now() + Duration::from_secs(100 * 365 * 86_400),
    )
    .await?;
    print!("{report}");
    Ok(())
}
