//! `chat-sessions search --user U "terms"`: searches one user's history on
//! the configured store (the embedded one, or Cosmos DB when
//! `COSMOS_ENDPOINT` is set) with the rules of `GET /api/chat/search`, and
//! prints the hits as a table or, with `--json`, as the API's JSON.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

use crate::{
    api::search::{DEFAULT_SEARCH_LIMIT, MAX_SEARCH_LIMIT, SearchResult, SearchResults},
    app,
    config::{Config, Overrides},
    domain::UserId,
    search::{HitKey, SearchTerms},
    store::{Owner, SearchHit, SearchQuery},
};

/// Arguments of `search`.
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Whose history; without it, the sessions that have no owner.
    #[arg(long, value_name = "USER_ID")]
    pub user: Option<String>,
    /// What to look for: terms separated by spaces, every one must match
    /// (case-insensitive, at the beginning of a word).
    pub terms: String,
    /// Most hits to print (they are fetched page by page, newest first).
    #[arg(long, default_value_t = DEFAULT_SEARCH_LIMIT as usize)]
    pub limit: usize,
    /// Only active (`true`) or archived (`false`) sessions.
    #[arg(long, value_name = "BOOL")]
    pub active: Option<bool>,
    /// Print the API's JSON (`{"results": […], "continuation_token": …}`)
    /// instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The embedded store's directory (default: `DATA_DIR`, or `./data`).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// Runs the command.
pub async fn run(args: SearchArgs) -> anyhow::Result<()> {
    let config = Config::from_env(Overrides {
        data_dir: args.data_dir.clone(),
        ..Overrides::default()
    })?;
    let owner = match &args.user {
        Some(user) => Owner::User(UserId::parse(user.clone()).context("--user")?),
        None => Owner::Anonymous,
    };
    let terms = SearchTerms::parse(&args.terms).context("the search terms")?;
    let backend = app::open_backend(&config).await?;
    let mut hits: Vec<SearchHit> = Vec::new();
    let mut after: Option<HitKey> = None;
    let mut more = None;
    while hits.len() < args.limit {
        let query = SearchQuery {
            terms: terms.clone(),
            limit: (args.limit - hits.len()).clamp(1, MAX_SEARCH_LIMIT as usize) as u32,
            is_active: args.active,
            after: after.take(),
        };
        let page = backend.search.search(&owner, &query).await?;
        hits.extend(page.hits);
        more = page.continuation.clone();
        match page.continuation {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let results = SearchResults {
        results: hits.into_iter().map(SearchResult::from).collect(),
        continuation_token: more.map(|key| key.to_token()),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        print!("{}", table(&results.results));
    }
    Ok(())
}

/// The hits as aligned columns: when, session, message (or `name`), who,
/// snippet on one line.
fn table(results: &[SearchResult]) -> String {
    let rows: Vec<[String; 5]> = results
        .iter()
        .map(|r| {
            [
                r.created_at.to_string(),
                r.session_id.to_string(),
                r.message_id
                    .as_ref()
                    .map_or_else(|| "(name)".to_owned(), ToString::to_string),
                r.message_type
                    .map_or_else(|| "-".to_owned(), |t| t.as_str().to_owned()),
                r.snippet.split_whitespace().collect::<Vec<_>>().join(" "),
            ]
        })
        .collect();
    let header = ["CREATED_AT", "SESSION", "MESSAGE", "TYPE", "SNIPPET"].map(String::from);
    let mut widths = [0usize; 4];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter().zip(row) {
            out.push_str(cell);
            out.push_str(&" ".repeat(w - cell.chars().count() + 2));
        }
        out.push_str(&row[4]);
        out.push('\n');
    }
    if rows.is_empty() {
        out.push_str("(no hits)\n");
    }
    out
}
