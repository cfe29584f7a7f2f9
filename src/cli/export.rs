//! `chat-sessions export --user U [--out FILE]`: everything of one user as
//! the export stream (NDJSON, as `GET /api/chat/export` serves it), to a
//! file or stdout, with a progress bar on a terminal.

use std::{
    io::{IsTerminal as _, Write as _},
    path::PathBuf,
    time::Duration,
};

use anyhow::Context as _;
use futures::TryStreamExt as _;

use crate::{
    app,
    config::{Config, Overrides},
    domain::UserId,
    export::{write_message_line, write_session_line},
    store::{ExportItem, Owner, export::export},
};

/// Flags of `export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The user whose sessions to export.
    #[arg(long, value_name = "USER_ID")]
    pub user: String,
    /// Write to this file (created only once the export is complete);
    /// stdout when omitted.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Directory of the embedded store [env: DATA_DIR] [default: ./data]
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// What was written.
#[derive(Debug, Default)]
struct Counts {
    sessions: u64,
    messages: u64,
    bytes: u64,
}

/// Runs the command.
pub async fn run(args: ExportArgs) -> anyhow::Result<()> {
    let user = UserId::parse(args.user.clone()).context("--user")?;
    let config = Config::from_env(Overrides {
        data_dir: args.data_dir.clone(),
        ..Overrides::default()
    })?;
    let backend = app::open_backend(&config).await?;
    // A file is written beside its final name and renamed at the end, so an
    // export that fails midway never looks like a complete one.
    let (mut out, finish): (Box<dyn std::io::Write>, Option<tempfile::NamedTempFile>) =
        match &args.out {
            Some(path) => {
                let dir = path
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(std::path::Path::new("."));
                let file = tempfile::NamedTempFile::new_in(dir)
                    .with_context(|| format!("creating a file in {}", dir.display()))?;
                let writer = std::io::BufWriter::new(file.reopen()?);
                (Box::new(writer), Some(file))
            }
            None => (
                Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
                None,
            ),
        };
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    });
    let mut counts = Counts::default();
    let mut items = export(backend.store.clone(), Owner::User(user.clone()));
    let mut buffer = Vec::new();
    while let Some(item) = items.try_next().await? {
        buffer.clear();
        match &item {
            ExportItem::Session {
                summary,
                current_message_id,
            } => {
                counts.sessions += 1;
                write_session_line(&mut buffer, summary, current_message_id.as_ref())?;
            }
            ExportItem::Messages(session_id, messages) => {
                counts.messages += messages.len() as u64;
                for m in messages {
                    write_message_line(&mut buffer, session_id, m)?;
                }
            }
        }
        out.write_all(&buffer).context("writing the export")?;
        counts.bytes += buffer.len() as u64;
        if let Some(bar) = &bar {
            bar.set_message(format!(
                "{} sessions, {} messages, {}",
                counts.sessions,
                counts.messages,
                indicatif::HumanBytes(counts.bytes)
            ));
        }
    }
    out.flush().context("writing the export")?;
    drop(out);
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if let (Some(file), Some(path)) = (finish, &args.out) {
        file.persist(path)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    eprintln!(
        "exported {} sessions and {} messages of user {user}",
        counts.sessions, counts.messages
    );
    Ok(())
}
