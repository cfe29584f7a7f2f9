//! `chat-sessions retention [--dry-run]`: applies the retention rules
//! (`RETENTION_ARCHIVE_AFTER_DAYS`, `RETENTION_DELETE_AFTER_DAYS`) now, to
//! every user's sessions, and reports what it did (or would do), with a
//! progress line on a terminal.

use std::{
    io::IsTerminal as _,
    time::{Duration, Instant},
};

use crate::{
    app,
    config::{Config, Overrides},
    domain::Timestamp,
    retention::{self, RetentionReport},
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
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    });
    let show = |report: &RetentionReport| {
        if let Some(bar) = &bar {
            let (archived, deleted) = if report.dry_run {
                ("would archive", "would delete")
            } else {
                ("archived", "deleted")
            };
            bar.set_message(format!(
                "{archived} {} sessions, {deleted} {} ({} messages), skipped {}",
                report.archived, report.deleted, report.messages_deleted, report.skipped
            ));
        }
    };
    // No time limit from a terminal: it runs until done.
    let report = retention::run_with_progress(
        store,
        config.retention,
        Timestamp::now(),
        args.dry_run,
        Instant::now() + Duration::from_secs(100 * 365 * 86_400),
        &show,
    )
    .await;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    print!("{}", report?);
    Ok(())
}
