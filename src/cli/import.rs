//! `chat-sessions import --user U FILE`: a file of sessions (this service's
//! export, or ChatGPT's `conversations.json`) brought into a user's history,
//! as `POST /api/chat/import` does, with a progress bar on a terminal.

use std::{
    io::IsTerminal as _,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::Context as _;

use crate::{
    app,
    config::{Config, Overrides},
    domain::UserId,
    import::{self, Format, ImportError, Progress},
    store::{ImportStore, Owner},
};

/// Flags of `import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The user the sessions will belong to (user ids inside the file are
    /// not used).
    #[arg(long, value_name = "USER_ID")]
    pub user: String,
    /// The file: an export of this service (NDJSON) or ChatGPT's
    /// conversations.json; `-` reads standard input.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Check the file and say what it holds; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Directory of the embedded store [env: DATA_DIR] [default: ./data]
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// Runs the command; the exit code is 0 when the file was imported (or, with
/// `--dry-run`, is fine), 1 when it was refused (nothing was written), 2
/// when the store failed midway (importing the file again completes it).
pub async fn run(args: ImportArgs) -> anyhow::Result<i32> {
    let owner = Owner::User(UserId::parse(args.user.clone()).context("--user")?);
    let file = if args.file.as_os_str() == "-" {
        // Read twice (checked, then written): standard input is spooled to
        // an unnamed temporary file first, gone whatever happens.
        let mut spool = tempfile::tempfile().context("creating a temporary file")?;
        std::io::copy(&mut std::io::stdin().lock(), &mut spool)
            .context("reading standard input")?;
        spool
    } else {
        std::fs::File::open(&args.file)
            .with_context(|| format!("reading {}", args.file.display()))?
    };
    if args.dry_run {
        return Ok(match import::validate(&file, &owner) {
            Ok(format) => {
                let what = match format {
                    Format::Export => "an export of this service",
                    Format::ChatGpt => "a ChatGPT conversations.json",
                    Format::Empty => "empty",
                };
                print_out(&format!("{}: {what}, fine to import", args.file.display()));
                0
            }
            Err(e) => {
                eprintln!("{}: {e}", args.file.display());
                1
            }
        });
    }
    let config = Config::from_env(Overrides {
        data_dir: args.data_dir.clone(),
        ..Overrides::default()
    })?;
    let backend = app::open_backend(&config).await?;
    let store: &dyn ImportStore = backend.store.as_ref();
    let mut bar = None;
    let mut last_line = Instant::now();
    let mut progress = |p: Progress| {
        if std::io::stderr().is_terminal() {
            let bar = bar.get_or_insert_with(|| new_bar(p.messages_total));
            bar.set_position(p.messages_done);
            bar.set_message(format!("sessions {}/{}", p.sessions_done, p.sessions_total));
        } else if last_line.elapsed() >= Duration::from_secs(5) {
            last_line = Instant::now();
            tracing::info!(
                "import progress: sessions {}/{}, messages {}/{}",
                p.sessions_done,
                p.sessions_total,
                p.messages_done,
                p.messages_total
            );
        }
    };
    let result = import::run(store, &owner, file, &mut progress).await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    match result {
        Ok(report) => {
            print_out(&serde_json::to_string_pretty(&report)?);
            Ok(0)
        }
        Err(e @ ImportError::Store(_)) => {
            eprintln!(
                "import failed (the sessions before were imported; run it again to complete it): {e}"
            );
            Ok(2)
        }
        Err(e) => {
            eprintln!("{}: {e}; nothing was imported", args.file.display());
            Ok(1)
        }
    }
}

fn new_bar(messages: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(messages);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} messages, {msg} ({elapsed})")
    {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Prints to stdout; a closed pipe (`| head`) is not an error worth a panic.
fn print_out(text: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout(), "{text}");
}
