//! Search latency on the embedded store, per kind of query, and the index's
//! size on disk.
//!
//!     cargo bench --bench search                 # 1,000,000 messages: 1,000 users × 1,000
//!     SEARCH_BENCH_HEAVY=1 cargo bench --bench search   # also one user with 1,000,000
//!     SEARCH_BENCH_USERS=100 SEARCH_BENCH_PER_USER=10000 cargo bench --bench search  # 10,000 each
//!     SEARCH_BENCH_USERS=20 cargo bench --bench search  # a quick try
//!     SEARCH_BENCH_COSMOS=1 cargo bench --bench search  # requests per page on the local Cosmos server
//!
//! The data is generated once through the store's own write path (the
//! migration's import, whose triggers keep the index in step) into
//! `target/bench-search/` (`SEARCH_BENCH_DIR` to change it) and reused by
//! later runs. Messages are 8–40 words drawn from a Zipf distribution over
//! 50,000 words (real stop words first, then made-up words), in sessions of
//! 50 messages with three-word names, spread over 2024. Every latency is one
//! `SearchStore::search` call for a first page of 20, through the store's
//! reader pool, with a warm cache.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use chat_sessions::{
    domain::{
        ChatMessage, JsonObject, MessageId, MessageType, SessionId, SessionPatch, Timestamp, UserId,
    },
    search::SearchTerms,
    store::{
        Owner, SearchQuery, SessionImport,
        prelude::*,
        sqlite::{DB_FILE, Durability, SqliteStore},
    },
};
use rand::{Rng, SeedableRng, rngs::StdRng};

#[path = "../tests/it/common/cosmos.rs"]
#[allow(dead_code)] // the integration tests use all of it, this bench a part
mod cosmos;

const VOCABULARY: usize = 50_000;
const PER_SESSION: usize = 50;
const SAMPLES: usize = 300;

const STOP_WORDS: &[&str] = &[
    "the", "to", "and", "a", "of", "is", "in", "it", "you", "that", "for", "on", "with", "this",
    "be", "are", "can", "as", "have", "not", "or", "your", "at", "by", "if", "an", "will", "from",
    "but", "so", "what", "do", "all", "we", "my", "there", "more", "one", "about", "which",
];

/// The words and their Zipf cumulative weights.
struct Words {
    words: Vec<String>,
    cumulative: Vec<f64>,
}

impl Words {
    fn new(rng: &mut StdRng) -> Self {
        let letters = "etaoinshrdlcumwfgypbvkjxqz".as_bytes();
        let mut words: Vec<String> = STOP_WORDS.iter().map(|w| w.to_string()).collect();
        let mut seen: std::collections::HashSet<String> = words.iter().cloned().collect();
        while words.len() < VOCABULARY {
            let len = rng.random_range(3..=10);
            // Skewed towards frequent letters, like real words.
            let word: String = (0..len)
                .map(|_| {
                    let i = (rng.random::<f64>().powi(2) * letters.len() as f64) as usize;
                    letters[i.min(letters.len() - 1)] as char
                })
                .collect();
            if seen.insert(word.clone()) {
                words.push(word);
            }
        }
        let mut total = 0.0;
        let cumulative = (1..=VOCABULARY)
            .map(|rank| {
                total += 1.0 / rank as f64;
                total
            })
            .collect();
        Self { words, cumulative }
    }

    fn rank(&self, rng: &mut StdRng) -> usize {
        let x = rng.random::<f64>() * self.cumulative[VOCABULARY - 1];
        self.cumulative.partition_point(|&c| c < x)
    }

    fn sentence(&self, rng: &mut StdRng) -> String {
        let n = rng.random_range(8..=40);
        let mut out = String::new();
        for i in 0..n {
            let word = &self.words[self.rank(rng)];
            if i > 0 {
                out.push(if rng.random_ratio(1, 12) { ',' } else { ' ' });
                if out.ends_with(',') {
                    out.push(' ');
                }
            }
            if i == 0 {
                let mut c = word.chars();
                out.extend(c.next().map(|f| f.to_ascii_uppercase()));
                out.push_str(c.as_str());
            } else {
                out.push_str(word);
            }
        }
        out.push('.');
        out
    }
}

fn user_id(i: usize) -> UserId {
    UserId::parse(format!("user_{i:04}")).unwrap()
}

/// Generates `users` × `per_user` messages into `dir`, unless already there.
async fn generate(dir: &Path, users: usize, per_user: usize) -> SqliteStore {
    let marker = dir.join("generated");
    let store = SqliteStore::open(dir, Durability::Normal).unwrap();
    if marker.exists() {
        return store;
    }
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(7);
    let words = Words::new(&mut rng);
    let year = Timestamp::parse("2024-01-01T00:00:00Z")
        .unwrap()
        .as_datetime();
    let sessions = per_user / PER_SESSION;
    let store = Arc::new(store);
    let mut pending = Vec::new();
    // Sessions of all users interleaved in time, as they would be written.
    for s in 0..sessions {
        for u in 0..users {
            let start = year
                + chrono::Duration::seconds(
                    ((s * users + u) as i64 * 365 * 86_400) / (sessions * users) as i64,
                );
            let messages: Vec<ChatMessage> = (0..PER_SESSION)
                .map(|m| ChatMessage {
                    tool_calls: None,
                    tool_call_id: None,
                    name: None,
                    parent_id: None,
                    edited_at: None,
                    siblings: None,
                    id: MessageId::parse(format!("m{m:03}")).unwrap(),
                    content: words.sentence(&mut rng),
                    message_type: if m % 2 == 0 {
                        MessageType::User
                    } else {
                        MessageType::Assistant
                    },
                    user_id: Some(user_id(u)),
                    metadata: JsonObject::new(),
                    created_at: Timestamp::from_datetime(
                        start + chrono::Duration::seconds(m as i64 * 30),
                    ),
                })
                .collect();
            let id = SessionId::parse(format!("s_{u:04}_{s:06}")).unwrap();
            let import = SessionImport {
                id: id.clone(),
                user_id: Some(user_id(u)),
                messages,
            };
            // Imports make sessions without names: name them the way a
            // user does, through the same write path.
            let name = (0..3)
                .map(|_| words.words[words.rank(&mut rng)].clone())
                .collect::<Vec<_>>()
                .join(" ");
            let patch = SessionPatch {
                session_name: Some(Some(name)),
                ..SessionPatch::default()
            };
            let (store, owner) = (store.clone(), Owner::User(user_id(u)));
            pending.push(tokio::spawn(async move {
                store.import_messages(import).await.unwrap();
                store
                    .update_session(&owner, &id, &patch, None)
                    .await
                    .unwrap();
            }));
            if pending.len() >= 256 {
                for p in pending.drain(..) {
                    p.await.unwrap();
                }
            }
        }
        if s % 10 == 9 {
            eprintln!(
                "  {} of {} messages written ({:.0?})",
                (s + 1) * users * PER_SESSION,
                sessions * users * PER_SESSION,
                started.elapsed()
            );
        }
    }
    for p in pending {
        p.await.unwrap();
    }
    let conn = rusqlite::Connection::open(dir.join(DB_FILE)).unwrap();
    let count: i64 = conn
        .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
        .unwrap();
    eprintln!("generated {count} messages in {:.1?}", started.elapsed());
    drop(conn);
    std::fs::write(&marker, b"").unwrap();
    Arc::try_unwrap(store).unwrap()
}

/// Bytes on disk per table and index, by name.
fn sizes(dir: &Path) -> Vec<(String, i64)> {
    let conn = rusqlite::Connection::open(dir.join(DB_FILE)).unwrap();
    let mut stmt = conn
        .prepare("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn report_sizes(dir: &Path) {
    let sizes = sizes(dir);
    let sum = |pred: &dyn Fn(&str) -> bool| -> i64 {
        sizes.iter().filter(|(n, _)| pred(n)).map(|(_, b)| b).sum()
    };
    let index = sum(&|n| n.starts_with("search_") || n.starts_with("sqlite_autoindex_search_"));
    let messages = sum(&|n| n == "messages" || n.starts_with("sqlite_autoindex_messages"));
    let total = sum(&|_| true);
    println!("\nsize on disk (dbstat):");
    for (name, bytes) in &sizes {
        println!("  {name:<34} {:>8.1} MiB", *bytes as f64 / 1048576.0);
    }
    println!(
        "  messages (table + unique index): {:.1} MiB; search index (FTS5 + entries): {:.1} MiB = {:.2}× the messages; whole file {:.1} MiB",
        messages as f64 / 1048576.0,
        index as f64 / 1048576.0,
        index as f64 / messages as f64,
        total as f64 / 1048576.0
    );
}

/// The queries of each kind for one user, from their own messages where a
/// kind needs a hit.
fn queries(dir: &Path, user: &UserId, rng: &mut StdRng) -> Vec<(&'static str, Vec<String>)> {
    let conn = rusqlite::Connection::open(dir.join(DB_FILE)).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT m.content FROM messages m JOIN sessions s ON s.id = m.session_id \
             WHERE s.user_id = ?1 ORDER BY random() LIMIT ?2",
        )
        .unwrap();
    let contents: Vec<String> = stmt
        .query_map(rusqlite::params![user.as_str(), SAMPLES as i64], |r| {
            r.get(0)
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut generator = StdRng::seed_from_u64(7);
    let words = Words::new(&mut generator);
    let rank: std::collections::HashMap<&str, usize> = words
        .words
        .iter()
        .enumerate()
        .map(|(i, w)| (w.as_str(), i))
        .collect();
    let tokens = |c: &str| -> Vec<String> {
        c.split(|ch: char| !ch.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect()
    };
    let rare: Vec<String> = contents
        .iter()
        .map(|c| {
            tokens(c)
                .into_iter()
                .max_by_key(|w| rank.get(w.as_str()).copied().unwrap_or(0))
                .unwrap()
        })
        .collect();
    let three: Vec<String> = contents
        .iter()
        .map(|c| {
            let mut mid: Vec<String> = tokens(c)
                .into_iter()
                .filter(|w| rank.get(w.as_str()).is_some_and(|&r| r >= 40))
                .collect();
            mid.dedup();
            mid.truncate(3);
            mid.join(" ")
        })
        .filter(|q| q.split(' ').count() == 3)
        .collect();
    let two: Vec<String> = contents
        .iter()
        .map(|c| {
            let t = tokens(c);
            let w = &t[rng.random_range(0..t.len())];
            w.chars().take(2).collect()
        })
        .collect();
    let letters = "abcdefghijklmnopqrstuvwxyz".as_bytes();
    let one: Vec<String> = (0..SAMPLES)
        .map(|_| (letters[rng.random_range(0..26)] as char).to_string())
        .collect();
    let common: Vec<String> = (0..SAMPLES)
        .map(|_| STOP_WORDS[rng.random_range(0..5)].to_owned())
        .collect();
    let nowhere: Vec<String> = (0..SAMPLES)
        .map(|_| {
            (0..8)
                .map(|_| letters[rng.random_range(0..26)] as char)
                .collect::<String>()
                + "qq"
        })
        .collect();
    vec![
        ("rare word", rare),
        ("common word", common),
        ("1-letter prefix", one),
        ("2-letter prefix", two),
        ("three terms", three),
        ("found nowhere", nowhere),
    ]
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

async fn measure(store: &SqliteStore, dir: &Path, user: &UserId, label: &str) {
    let mut rng = StdRng::seed_from_u64(11);
    let owner = Owner::User(user.clone());
    println!("\n{label} ({user}): first page of 20, {SAMPLES} queries per kind");
    println!(
        "  {:<16} {:>9} {:>9} {:>9} {:>12}",
        "kind", "p50", "p99", "max", "hits (mean)"
    );
    for (kind, qs) in queries(dir, user, &mut rng) {
        let run = |q: &String| SearchQuery {
            terms: SearchTerms::parse(q).unwrap(),
            limit: 20,
            is_active: None,
            after: None,
        };
        for q in qs.iter().take(30) {
            store.search(&owner, &run(q)).await.unwrap();
        }
        let mut times = Vec::with_capacity(qs.len());
        let mut hits = 0usize;
        for q in &qs {
            let query = run(q);
            let t = Instant::now();
            let page = store.search(&owner, &query).await.unwrap();
            times.push(t.elapsed());
            hits += page.hits.len();
        }
        times.sort_unstable();
        println!(
            "  {kind:<16} {:>9.2?} {:>9.2?} {:>9.2?} {:>12.1}",
            percentile(&times, 0.50),
            percentile(&times, 0.99),
            times[times.len() - 1],
            hits as f64 / qs.len() as f64
        );
    }
}

/// Requests served so far by the local Cosmos server, counted by the server.
async fn served(port: u16) -> u64 {
    let url = format!("http://127.0.0.1:{port}/_launcher/requests");
    let counts: serde_json::Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    counts["total"].as_u64().unwrap()
}

/// Requests per search page on the local Cosmos server, counted there, for
/// one user with `sessions` × 50 messages.
async fn cosmos(sessions: usize) {
    let (store, _client) = cosmos::server_cosmos_store().await;
    let port = cosmos::server_port();
    let mut rng = StdRng::seed_from_u64(7);
    let words = Words::new(&mut rng);
    let user = user_id(0);
    let owner = Owner::User(user.clone());
    let start = Timestamp::parse("2024-01-01T00:00:00Z")
        .unwrap()
        .as_datetime();
    let mut contents = Vec::new();
    for s in 0..sessions {
        let id = SessionId::parse(format!("s_{s:06}")).unwrap();
        let messages: Vec<ChatMessage> = (0..PER_SESSION)
            .map(|m| {
                let content = words.sentence(&mut rng);
                contents.push(content.clone());
                ChatMessage {
                    tool_calls: None,
                    tool_call_id: None,
                    name: None,
                    parent_id: None,
                    edited_at: None,
                    siblings: None,
                    id: MessageId::parse(format!("m{m:03}")).unwrap(),
                    content,
                    message_type: MessageType::User,
                    user_id: Some(user.clone()),
                    metadata: JsonObject::new(),
                    created_at: Timestamp::from_datetime(
                        start + chrono::Duration::seconds((s * PER_SESSION + m) as i64 * 600),
                    ),
                }
            })
            .collect();
        store
            .import_messages(SessionImport {
                id: id.clone(),
                user_id: Some(user.clone()),
                messages,
            })
            .await
            .unwrap();
        // One session in 20 renamed now: a rename moves the session's
        // `updated_at`, which orders the documents a search reads.
        if s % 20 != 0 {
            continue;
        }
        let name = (0..3)
            .map(|_| words.words[words.rank(&mut rng)].clone())
            .collect::<Vec<_>>()
            .join(" ");
        let patch = SessionPatch {
            session_name: Some(Some(name)),
            ..SessionPatch::default()
        };
        store
            .update_session(&owner, &id, &patch, None)
            .await
            .unwrap();
    }
    println!(
        "\nCosmos DB, local server: one user, {} sessions × {PER_SESSION} messages; requests per \
         search page counted by the server (GET /_launcher/requests)",
        sessions
    );
    println!(
        "  {:<16} {:>10} {:>10} {:>12} {:>12}",
        "kind", "page 1", "page 2", "hits p.1", "ms p.1"
    );
    let kinds = cosmos_queries(&contents, &words, &mut rng);
    for (kind, qs) in kinds {
        let (mut first, mut second, mut hits, mut ms) = (Vec::new(), Vec::new(), 0, 0.0);
        for q in &qs {
            let mut query = SearchQuery {
                terms: SearchTerms::parse(q).unwrap(),
                limit: 20,
                is_active: None,
                after: None,
            };
            let before = served(port).await;
            let t = Instant::now();
            let page = store.search(&owner, &query).await.unwrap();
            ms += t.elapsed().as_secs_f64() * 1000.0;
            first.push(served(port).await - before);
            hits += page.hits.len();
            if let Some(next) = page.continuation {
                query.after = Some(next);
                let before = served(port).await;
                store.search(&owner, &query).await.unwrap();
                second.push(served(port).await - before);
            }
        }
        let mean = |v: &[u64]| {
            if v.is_empty() {
                "-".to_owned()
            } else {
                format!(
                    "{:.2} (≤{})",
                    v.iter().sum::<u64>() as f64 / v.len() as f64,
                    v.iter().max().unwrap()
                )
            }
        };
        println!(
            "  {kind:<16} {:>10} {:>10} {:>12.1} {:>12.1}",
            mean(&first),
            mean(&second),
            hits as f64 / qs.len() as f64,
            ms / qs.len() as f64
        );
    }
}

/// The same kinds of query as on the embedded store, from `contents`.
fn cosmos_queries(
    contents: &[String],
    words: &Words,
    rng: &mut StdRng,
) -> Vec<(&'static str, Vec<String>)> {
    let rank: std::collections::HashMap<&str, usize> = words
        .words
        .iter()
        .enumerate()
        .map(|(i, w)| (w.as_str(), i))
        .collect();
    let pick = |rng: &mut StdRng| -> Vec<String> {
        let c = &contents[rng.random_range(0..contents.len())];
        c.split(|ch: char| !ch.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect()
    };
    let n = 20;
    let rare = (0..n)
        .map(|_| {
            pick(rng)
                .into_iter()
                .max_by_key(|w| rank.get(w.as_str()).copied().unwrap_or(0))
                .unwrap()
        })
        .collect();
    let common = (0..n).map(|i| STOP_WORDS[i % 5].to_owned()).collect();
    let one = (0..n)
        .map(|_| ((b'a' + rng.random_range(0..26u8)) as char).to_string())
        .collect();
    let two = (0..n)
        .map(|_| {
            let t = pick(rng);
            t[rng.random_range(0..t.len())].chars().take(2).collect()
        })
        .collect();
    let three = (0..n)
        .map(|_| pick(rng).into_iter().take(3).collect::<Vec<_>>().join(" "))
        .collect();
    let nowhere = (0..n).map(|i| format!("zqxnowhere{i}")).collect();
    vec![
        ("rare word", rare),
        ("common word", common),
        ("1-letter prefix", one),
        ("2-letter prefix", two),
        ("three terms", three),
        ("found nowhere", nowhere),
    ]
}

fn bench_dir(name: &str) -> PathBuf {
    std::env::var_os("SEARCH_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-search"))
        .join(name)
}

#[tokio::main]
async fn main() {
    if std::env::var_os("SEARCH_BENCH_COSMOS").is_some() {
        cosmos(200).await;
        return;
    }
    let env = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (users, per_user) = (
        env("SEARCH_BENCH_USERS", 1000),
        env("SEARCH_BENCH_PER_USER", 1_000),
    );
    let dir = bench_dir(&format!("users-{users}x{per_user}"));
    println!("data: {}", dir.display());
    let store = generate(&dir, users, per_user).await;
    report_sizes(&dir);
    measure(&store, &dir, &user_id(0), "first user").await;
    let last = format!("user #{users}");
    measure(&store, &dir, &user_id(users - 1), &last).await;
    drop(store);
    if std::env::var_os("SEARCH_BENCH_HEAVY").is_some() {
        let dir = bench_dir("heavy-1x1000000");
        println!("\ndata: {}", dir.display());
        let store = generate(&dir, 1, 1_000_000).await;
        report_sizes(&dir);
        measure(&store, &dir, &user_id(0), "heavy user").await;
    }
}
