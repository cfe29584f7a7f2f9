//! `chat-sessions migrate`: the migration from a terminal, with a progress
//! bar on a terminal and plain log lines otherwise.

use std::{
    io::IsTerminal as _,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::Context as _;

use crate::{
    app,
    config::{Config, Overrides},
    migration::{
        self, Checkpoint, DEFAULT_BATCH_SIZE, MAX_BATCH_SIZE, Options, Progress, Report, Resume,
        RunError, SourceSpec,
    },
};

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
    #[arg(long, default_value_t = DEFAULT_BATCH_SIZE,
          value_parser = clap::value_parser!(u32).range(1..=MAX_BATCH_SIZE as i64))]
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

/// Progress on a terminal: a spinner with the running counts.
struct Bar(indicatif::ProgressBar);

impl Progress for Bar {
    fn batch_done(&mut self, r: &Report) {
        self.0.set_message(summary(r));
        self.0.tick();
    }
}

/// Progress elsewhere: a log line every few seconds.
struct Lines {
    last: Instant,
}

impl Progress for Lines {
    fn batch_done(&mut self, r: &Report) {
        if self.last.elapsed() >= Duration::from_secs(5) {
            self.last = Instant::now();
            tracing::info!("migration progress: {}", summary(r));
        }
    }
}

fn summary(r: &Report) -> String {
    format!(
        "sessions {} created / {} merged / {} unchanged, messages {} migrated / {} present, {} orphans, {} conflicts",
        r.sessions_created,
        r.sessions_merged,
        r.sessions_unchanged,
        r.messages_migrated,
        r.messages_already_present,
        r.orphan_count,
        r.conflicts.len()
    )
}

/// Prints to stdout; a closed pipe (`| head`) is not an error worth a panic.
fn print_out(text: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout(), "{text}");
}

/// Runs the command; the exit code is 0 when all went well, 1 when the report
/// has conflicts, invalid records or errors, 2 when the run failed.
pub async fn run(args: MigrateArgs) -> anyhow::Result<i32> {
    let config = Config::from_env(Overrides {
        data_dir: args.data_dir.clone(),
        ..Overrides::default()
    })?;
    let app::Backend { store, legacy, .. } = app::open_backend(&config).await?;
    if args.status {
        let text = match store.load_checkpoint(&args.run_id).await? {
            None => format!("no checkpoint for run {}", args.run_id),
            Some(saved) => {
                let checkpoint: Checkpoint =
                    serde_json::from_str(&saved.value).context("the checkpoint is unreadable")?;
                format!(
                    "{}\n  step: {}\n  resumes at: {}",
                    checkpoint.report,
                    checkpoint.step,
                    checkpoint.position.as_deref().unwrap_or("the beginning")
                )
            }
        };
        print_out(&text);
        return Ok(0);
    }
    let source = match (&args.from_jsonl, legacy) {
        (Some(path), _) => SourceSpec::Jsonl(path.clone()),
        (
            None,
            Some(SourceSpec::Cosmos {
                container,
                partition_key_path,
            }),
        ) => SourceSpec::Cosmos {
            container,
            partition_key_path,
        },
        (None, _) => anyhow::bail!(
            "no legacy source: pass --from-jsonl FILE, or set COSMOS_ENDPOINT to read the legacy container"
        ),
    };
    if args.delete_old && matches!(source, SourceSpec::Jsonl(_)) {
        anyhow::bail!(
            "--delete-old works on the legacy Cosmos container only; a JSONL file is left as it is"
        );
    }
    let options = Options {
        batch_size: args.batch_size,
        dry_run: args.dry_run,
        delete_old: args.delete_old,
        run_id: args.run_id.clone(),
        budget: None,
        continues_step: None,
    };
    let resume = Resume::new_run(args.dry_run);
    let mut progress: Box<dyn Progress> = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(200));
        Box::new(Bar(bar))
    } else {
        Box::new(Lines {
            last: Instant::now(),
        })
    };
    let mut source = source.open(args.batch_size);
    let result = migration::run(
        source.as_mut(),
        store.as_ref(),
        &options,
        resume,
        progress.as_mut(),
    )
    .await;
    drop(progress);
    match result {
        Ok(checkpoint) => {
            print_out(&checkpoint.report.to_string());
            Ok(if checkpoint.report.has_problems() {
                1
            } else {
                0
            })
        }
        // Another process is running this migration (the CLI never
        // continues a queue message, so a stale one cannot happen here).
        Err(e @ (RunError::Superseded(_) | RunError::Stale { .. })) => {
            eprintln!("{e}; stopped");
            Ok(2)
        }
        Err(RunError::Failed(e)) => {
            eprintln!("migration failed (run it again to resume): {e:#}");
            Ok(2)
        }
    }
}
