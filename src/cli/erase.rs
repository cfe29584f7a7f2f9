//! `chat-sessions erase --user U --yes`: deletes every session of one user
//! (sealed pages and search entries included) and, with Cosmos DB, their
//! documents in the legacy container, as `POST /api/chat/erase` does.

use std::{
    io::IsTerminal as _,
    time::{Duration, Instant},
};

use anyhow::Context as _;

use crate::{
    app,
    config::{Config, Overrides},
    domain::UserId,
    store::erase::{Erasure, erase_user},
};

/// Flags of `erase`.
#[derive(Debug, clap::Args)]
pub struct EraseArgs {
    /// The user whose data to erase.
    #[arg(long, value_name = "USER_ID")]
    pub user: String,
    /// Really erase (there is no undo).
    #[arg(long)]
    pub yes: bool,
    /// Directory of the embedded store [env: DATA_DIR] [default: ./data]
    #[arg(long)]
    pub data_dir: Option<std::path::PathBuf>,
}

/// Runs the command.
pub async fn run(args: EraseArgs) -> anyhow::Result<()> {
    let user = UserId::parse(args.user.clone()).context("--user")?;
    if !args.yes {
        anyhow::bail!(
            "erasing user {user} deletes all their sessions and legacy messages for good; run again with --yes"
        );
    }
    let config = Config::from_env(Overrides {
        data_dir: args.data_dir.clone(),
        ..Overrides::default()
    })?;
    let backend = app::open_backend(&config).await?;
    let legacy = backend.legacy.as_ref().and_then(|l| l.eraser());
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    });
    let mut total = Erasure::default();
    // Rounds of a few seconds, to show progress; each continues the last.
    loop {
        let round = erase_user(
            backend.store.as_ref(),
            legacy.as_deref(),
            &user,
            Instant::now() + Duration::from_secs(2),
        )
        .await?;
        total.sessions_deleted += round.sessions_deleted;
        total.messages_deleted += round.messages_deleted;
        total.legacy_messages_deleted += round.legacy_messages_deleted;
        if let Some(bar) = &bar {
            bar.set_message(summary(&total));
        }
        if round.complete {
            break;
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    println!("erased user {user}: {}", summary(&total));
    Ok(())
}

fn summary(e: &Erasure) -> String {
    format!(
        "{} sessions, {} messages, {} legacy messages deleted",
        e.sessions_deleted, e.messages_deleted, e.legacy_messages_deleted
    )
}
