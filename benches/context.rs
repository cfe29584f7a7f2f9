//! The context read on the embedded store: a session of 10,000 messages of
//! ~60 tokens (a system message first), a budget of 8,000 tokens, one call
//! at a time through `ContextStore::read_context` and the selection, as the
//! endpoint does. Latency with the process's token-count cache warm (every
//! call after the first), and with an empty cache on every call (what the
//! cache saves), and the tokenizer alone on the same text.
//!
//!     cargo bench --bench context
//!
//! Figures, not pass/fail; `scripts/bench.sh` measures the same over HTTP.

use std::time::{Duration, Instant};

use chat_sessions::{
    context::{CACHE, Encoding, Selection, TokenCache},
    domain::{ChatMessage, JsonObject, MessageId, MessageType, SessionId, Timestamp, UserId},
    store::{
        Owner, SessionImport,
        prelude::*,
        sqlite::{Durability, SqliteStore},
    },
};

const MESSAGES: usize = 10_000;
const BUDGET: u32 = 8_000;
const CALLS: usize = 2_000;

fn session(user: &UserId) -> Vec<ChatMessage> {
    let text = "Sure, here is how to reset the router: unplug it for thirty seconds, plug it \
                back in, wait until the light turns solid green, then reconnect and open the \
                admin page to check the firmware. Tell me what the light does.";
    let start = Timestamp::parse("2024-01-01T00:00:00.000000Z").unwrap();
    (0..MESSAGES)
        .map(|i| ChatMessage {
            id: MessageId::parse(format!("m{i:05}")).unwrap(),
            content: if i == 0 {
                "You are a patient support assistant.".into()
            } else {
                format!("{i}: {text}")
            },
            message_type: match i {
                0 => MessageType::System,
                i if i % 2 == 1 => MessageType::User,
                _ => MessageType::Assistant,
            },
            user_id: Some(user.clone()),
            metadata: JsonObject::new(),
            created_at: Timestamp::from_datetime(
                start.as_datetime() + chrono::Duration::seconds(i as i64),
            ),
            tool_calls: None,
            tool_call_id: None,
            name: None,
            parent_id: None,
            edited_at: None,
            siblings: None,
        })
        .collect()
}

/// One context read with `cache` (or an empty one), timed; and how many
/// messages it chose.
async fn timed(
    store: &SqliteStore,
    owner: &Owner,
    id: &SessionId,
    cache: Option<&TokenCache>,
) -> (Duration, usize) {
    let fresh = TokenCache::default();
    let cache = cache.unwrap_or(&fresh);
    let started = Instant::now();
    let mut selection = Selection::new(Encoding::O200kBase, BUDGET, cache);
    store.read_context(owner, id, &mut selection).await.unwrap();
    let answer = selection.finish().unwrap();
    (started.elapsed(), answer.messages.len())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn report(name: &str, mut times: Vec<Duration>) {
    times.sort();
    println!(
        "| {name} | {:.3} | {:.3} | {:.3} |",
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        percentile(&times, 0.99).as_secs_f64() * 1e3,
        times.last().unwrap().as_secs_f64() * 1e3,
    );
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), Durability::Normal).unwrap();
    let user = UserId::parse("bench").unwrap();
    let id = SessionId::parse("s_context").unwrap();
    let messages = session(&user);
    store
        .import_messages(SessionImport {
            id: id.clone(),
            user_id: Some(user.clone()),
            messages: messages.clone(),
        })
        .await
        .unwrap();
    let owner = Owner::User(user);

    let mut chosen = 0;
    let mut warm = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        let (t, n) = timed(&store, &owner, &id, Some(&CACHE)).await;
        warm.push(t);
        chosen = n;
    }
    let mut cold = Vec::with_capacity(CALLS / 10);
    for _ in 0..CALLS / 10 {
        cold.push(timed(&store, &owner, &id, None).await.0);
    }
    let newest: String = messages[MESSAGES - chosen..]
        .iter()
        .map(|m| m.content.as_str())
        .collect();
    let mut tokenizer = Vec::new();
    for _ in 0..CALLS / 10 {
        let started = Instant::now();
        std::hint::black_box(Encoding::O200kBase.count(&newest));
        tokenizer.push(started.elapsed());
    }
    println!(
        "## Context read, embedded store: {MESSAGES} messages, budget {BUDGET} tokens, {chosen} messages chosen\n"
    );
    println!("| | p50 ms | p99 ms | max ms |\n|---|---:|---:|---:|");
    report("read + select, counts cached (warm)", warm);
    report("read + select, empty cache every call", cold);
    report("tokenizing the chosen text alone", tokenizer);
}
