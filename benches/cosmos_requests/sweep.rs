//! Choosing the seal policy: sessions grown by appends to 2,000 typical
//! messages under candidate thresholds and page sizes, each measured against
//! the three goals — an append within 2× the old model's insert at any
//! length with sealing amortized (the worst mean over 50 consecutive
//! appends), a session of up to 50 messages one point read, the newest 50
//! at most two point reads (sampled every 10 appends).

use chat_sessions::store::{
    cosmos::{CosmosStore, SealPolicy},
    prelude::*,
};

use crate::{Cost, cosmos, measure, model::write_ru, typical_message};

/// An old-model document holding a typical message, as stored (measured by
/// the `lengths` section; under 1 KB, so its insert is the table's first
/// figure either way).
const OLD_MODEL_BYTES: usize = 1000;

const MESSAGES: usize = 2000;
const WINDOW: usize = 50;
const KIB: usize = 1024;

struct Outcome {
    policy: SealPolicy,
    first_50_ru: f64,
    worst_window_ru: f64,
    steady_ru: f64,
    steady_requests: f64,
    max_ru: f64,
    reads_at_50: f64,
    worst_tail_reads: f64,
    full_read: Cost,
    pages: usize,
}

async fn try_policy(policy: SealPolicy, content: &str) -> Outcome {
    let (store, _client) = cosmos::emulator_cosmos_store().await;
    let store: CosmosStore = store.with_seal_policy(policy);
    store.start_item_log();
    let (owner, id) = cosmos::owned_session(&store, "sweep", "s_sweep").await;
    let mut appends = Vec::with_capacity(MESSAGES);
    let mut reads_at_50 = 0.0;
    let mut worst_tail_reads: f64 = 0.0;
    for i in 0..MESSAGES {
        let (_, cost) = measure(
            &store,
            store.append_message(&owner, &id, typical_message(content, i)),
        )
        .await;
        appends.push(cost);
        let n = i + 1;
        if n == 50 {
            let (_, cost) = measure(&store, store.get_session(&owner, &id)).await;
            reads_at_50 = cost.requests;
        }
        if n >= 50 && n % 10 == 0 {
            let (_, cost) = measure(&store, store.get_session_tail(&owner, &id, 50)).await;
            worst_tail_reads = worst_tail_reads.max(cost.requests);
        }
    }
    let (full, full_read) = measure(&store, store.get_session(&owner, &id)).await;
    assert_eq!(full.unwrap().value.messages.len(), MESSAGES);
    let ru: Vec<f64> = appends.iter().map(|c| c.model_ru).collect();
    let worst_window_ru = ru
        .windows(WINDOW)
        .map(|w| w.iter().sum::<f64>() / WINDOW as f64)
        .fold(0.0, f64::max);
    let steady = Cost::mean(&appends[MESSAGES / 2..]);
    Outcome {
        policy: policy.clamped(),
        first_50_ru: Cost::mean(&appends[..50]).model_ru,
        worst_window_ru,
        steady_ru: steady.model_ru,
        steady_requests: steady.requests,
        max_ru: ru.iter().copied().fold(0.0, f64::max),
        reads_at_50,
        worst_tail_reads,
        full_read,
        pages: full_read.requests as usize - 1,
    }
}

/// Candidate thresholds and page sizes, and the old default for reference.
fn candidates() -> Vec<SealPolicy> {
    let mut out = Vec::new();
    for max in [24 * KIB, 32 * KIB, 40 * KIB, 48 * KIB] {
        for page in [max / 2, max * 3 / 4, max - max / 8, max - 2 * KIB] {
            out.push(SealPolicy {
                max_bytes: max,
                page_bytes: page,
                max_messages: None,
            });
        }
    }
    out.push(SealPolicy {
        max_bytes: 512 * KIB,
        page_bytes: 256 * KIB,
        max_messages: None,
    });
    out
}

pub async fn run(content: &str) {
    println!(
        "## Choosing the seal policy ({MESSAGES} typical messages appended; RU by the published table; goal: append ≤ {:.2} RU, twice the old model's insert of a typical message)\n",
        2.0 * write_ru(OLD_MODEL_BYTES)
    );
    println!(
        "| Threshold | Page | Append RU, first 50 | Append RU, worst 50 in a row | Append RU, steady (last 1,000) | Requests per append, steady | Largest single append RU | Reads of 50 messages | Reads of the newest 50, worst | Full read of 2,000: reads, RU |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for policy in candidates() {
        let o = try_policy(policy, content).await;
        println!(
            "| {} KiB | {} KiB | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} | {:.0} | {} pages + 1, {:.1} |",
            o.policy.max_bytes / KIB,
            o.policy.page_bytes / KIB,
            o.first_50_ru,
            o.worst_window_ru,
            o.steady_ru,
            o.steady_requests,
            o.max_ru,
            o.reads_at_50,
            o.worst_tail_reads,
            o.pages,
            o.full_read.model_ru,
        );
    }
    println!();
}
