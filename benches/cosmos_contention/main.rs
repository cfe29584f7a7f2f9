//! Many writers appending to one Cosmos DB session at once, on the local
//! Cosmos-compatible server (started here, as the tests do): how long they
//! take, how many requests they need, and how unevenly the wait falls on
//! them (the slowest append beside the median). Each "process" is a store
//! of its own (its own cache and turns) over the same container.
//!
//!     cargo bench --bench cosmos_contention
//!
//! Figures, not pass/fail; each run also checks that every message is stored
//! exactly once.

#[path = "../../tests/it/common/cosmos.rs"]
#[allow(dead_code)] // the integration tests use all of it, this bench a part
mod cosmos;

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use chat_sessions::{
    domain::{JsonObject, MessageId, MessageType, NewMessage},
    store::{StoreError, cosmos::CosmosStore, prelude::*},
};

const APPENDS: usize = 200;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// `processes` stores, each sending its share of the appends at once.
async fn run(processes: usize) {
    let (client, config) = cosmos::server_client().await;
    let mut stores = Vec::new();
    for _ in 0..processes {
        stores.push(
            CosmosStore::open(&client, &config.database, &config.sessions_container)
                .await
                .unwrap(),
        );
    }
    let (owner, id) = cosmos::owned_session(&stores[0], "contention", "s_contention").await;
    let requests_before: u64 = stores.iter().map(|s| s.metrics().requests).sum();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..APPENDS {
        let store = stores[i % processes].clone();
        let (owner, id) = (owner.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            let message_id = MessageId::parse(format!("m{i:03}")).unwrap();
            let t0 = Instant::now();
            let mut unavailable = 0;
            // A client retries 503 with the same message id.
            loop {
                let message = NewMessage::new(
                    Some(message_id.clone()),
                    format!("message {i}"),
                    MessageType::User,
                    None,
                    JsonObject::new(),
                )
                .unwrap();
                match store.append_message(&owner, &id, message).await {
                    Ok(_) => return (t0.elapsed(), unavailable),
                    Err(StoreError::Unavailable { .. }) => unavailable += 1,
                    Err(e) => panic!("append {i}: {e}"),
                }
            }
        }));
    }
    let mut latencies = Vec::new();
    let mut unavailable = 0;
    for task in tasks {
        let (latency, retries) = task.await.unwrap();
        latencies.push(latency);
        unavailable += retries;
    }
    let wall = started.elapsed();
    let requests: u64 = stores.iter().map(|s| s.metrics().requests).sum::<u64>() - requests_before;
    let stored = stores[0].get_session(&owner, &id).await.unwrap().value;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for m in &stored.messages {
        *counts.entry(m.id.to_string()).or_default() += 1;
    }
    assert_eq!(counts.len(), APPENDS, "every message stored");
    assert!(counts.values().all(|&c| c == 1), "each once");
    latencies.sort();
    println!(
        "| {processes} × {} | {:.2} s | {:.0} | {:.2} | {} | {} ms | {} ms | {} ms |",
        APPENDS / processes,
        wall.as_secs_f64(),
        APPENDS as f64 / wall.as_secs_f64(),
        requests as f64 / APPENDS as f64,
        unavailable,
        percentile(&latencies, 0.5).as_millis(),
        percentile(&latencies, 0.99).as_millis(),
        latencies[latencies.len() - 1].as_millis(),
    );
}

#[tokio::main]
async fn main() {
    println!("## {APPENDS} concurrent appends to one session (local Cosmos-compatible server)\n");
    println!(
        "| Processes × appends each | Wall time | Appends/s | Requests per append | 503s retried | Median | p99 | Slowest |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for processes in [1, 4, 8] {
        run(processes).await;
    }
}
