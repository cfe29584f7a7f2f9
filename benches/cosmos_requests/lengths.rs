//! What a message costs by session length: a session grown by appends to
//! 10,000 typical messages, with the cost of an append (sealing amortized:
//! the mean over the last 50 appends, which span about one seal at the
//! default policy), of a full read and of a tail read at 10, 50, 200, 1,000
//! and 10,000 messages, and of a context read of 8,000 tokens; beside the
//! old one-document-per-message model and a whole-document rewrite per
//! message, by the same published table.

use chat_sessions::{
    context::{CACHE, Encoding, Selection},
    store::{
        MessageQuery,
        cosmos::{CosmosStore, SealPolicy},
        prelude::*,
    },
};
use serde_json::json;

use crate::{
    Cost, cosmos, measure,
    model::{MAX_ITEM_BYTES, read_ru, write_ru},
    typical_message,
};

const CHECKPOINTS: [usize; 5] = [10, 50, 200, 1000, 10_000];

/// What this design costs at one session length.
struct AtLength {
    messages: usize,
    append: Cost,
    append_max_ru: f64,
    building: Cost,
    full: Cost,
    tail: Cost,
    newest_page: Cost,
    context: Cost,
}

/// Grows a session by appends and measures at the checkpoints.
async fn grow(store: &CosmosStore, content: &str, checkpoints: &[usize]) -> Vec<AtLength> {
    let (owner, id) = crate::cosmos::owned_session(store, "lengths", "s_lengths").await;
    let mut appends: Vec<Cost> = Vec::new();
    let mut out = Vec::new();
    let last = checkpoints.iter().copied().max().unwrap_or(0);
    for i in 0..last {
        let (result, cost) = measure(
            store,
            store.append_message(&owner, &id, typical_message(content, i)),
        )
        .await;
        assert!(result.unwrap().created);
        appends.push(cost);
        let n = i + 1;
        if !checkpoints.contains(&n) {
            continue;
        }
        let window = &appends[n - n.min(50)..];
        let (full, full_cost) = measure(store, store.get_session(&owner, &id)).await;
        assert_eq!(full.unwrap().value.messages.len(), n);
        let (tail, tail_cost) = measure(store, store.get_session_tail(&owner, &id, 50)).await;
        assert_eq!(tail.unwrap().value.messages.len(), n.min(50));
        let query = MessageQuery {
            limit: 50,
            before: None,
        };
        let (page, page_cost) = measure(store, store.list_messages(&owner, &id, query)).await;
        assert_eq!(page.unwrap().messages.len(), n.min(50));
        let mut selection = Selection::new(Encoding::O200kBase, 8000, &CACHE);
        let (read, context_cost) =
            measure(store, store.read_context(&owner, &id, &mut selection)).await;
        read.unwrap();
        assert!(!selection.finish().unwrap().messages.is_empty());
        out.push(AtLength {
            messages: n,
            append: Cost::mean(window),
            append_max_ru: window.iter().map(|c| c.model_ru).fold(0.0, f64::max),
            building: Cost::mean(&appends),
            full: full_cost,
            tail: tail_cost,
            newest_page: page_cost,
            context: context_cost,
        });
    }
    out
}

/// Bytes of an item as stored, read back raw.
async fn stored_bytes(
    container: &azure_data_cosmos::ContainerClient,
    partition: &str,
    id: &str,
) -> usize {
    container
        .read_item(partition.to_owned(), id, None)
        .await
        .unwrap()
        .into_body()
        .single()
        .unwrap()
        .len()
}

pub async fn run(content: &str) {
    let (store, client) = cosmos::emulator_cosmos_store().await;
    store.start_item_log();
    let measured = grow(&store, content, &CHECKPOINTS).await;

    // Sizes for the alternatives, as stored: an old per-message document,
    // and a session document's own fields plus one message each.
    let database = client.database_client("chat");
    let legacy = database
        .container_client("chat_messages", None)
        .await
        .unwrap();
    let old_doc = json!({
        "id": "msg_0193a6f0-0000-7000-8000-000000000000", "session_id": "session_3f9a1c0b7d2e_20240101_120000",
        "user_id": "user_123", "content": content, "message_type": "assistant", "metadata": {},
        "created_at": "2024-01-01T12:00:00.000000Z",
    });
    let old_id = old_doc["id"].as_str().unwrap();
    let old_partition = old_doc["session_id"].as_str().unwrap();
    legacy
        .create_item(old_partition.to_owned(), old_id, &old_doc, None)
        .await
        .unwrap();
    let old_bytes = stored_bytes(&legacy, old_partition, old_id).await;
    let sessions = database
        .container_client("chat_sessions", None)
        .await
        .unwrap();
    let (owner, empty) = crate::cosmos::owned_session(&store, "lengths", "s_empty").await;
    let session_bytes = stored_bytes(&sessions, "lengths", empty.as_str()).await;
    let appended = store
        .append_message(&owner, &empty, typical_message(content, 1))
        .await
        .unwrap();
    let message_bytes = serde_json::to_vec(&appended.message).unwrap().len();
    let rewrite_bytes = |n: usize| session_bytes + n * (message_bytes + 1);

    println!(
        "## Cost per message by session length (typical messages of {message_bytes} bytes; old-model document {old_bytes} bytes; {:?})\n",
        SealPolicy::default()
    );
    println!(
        "| Messages | Append: requests | Append RU (mean of last 50) | Append RU (max of last 50) | Append RU (mean since the first) | Full read: requests | Full read RU | Tail 50: requests | Tail 50 RU | Newest page: requests | Newest page RU | Context 8,000 tokens: requests | Context RU |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for m in &measured {
        println!(
            "| {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} | {:.2} | {:.0} | {:.2} | {:.0} | {:.2} | {:.0} | {:.2} |",
            m.messages,
            m.append.requests,
            m.append.model_ru,
            m.append_max_ru,
            m.building.model_ru,
            m.full.requests,
            m.full.model_ru,
            m.tail.requests,
            m.tail.model_ru,
            m.newest_page.requests,
            m.newest_page.model_ru,
            m.context.requests,
            m.context.model_ru,
        );
    }
    println!("\nThe same, beside the alternatives (RU by the published table):\n");
    println!(
        "| Messages | Append: this | Append: old model | Append: rewrite | This ÷ old | Full read: this | Full read: old model (query) | Full read: rewrite | Tail 50: this | Tail 50: old model (query) | Tail 50: rewrite |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let old_append = write_ru(old_bytes);
    for m in &measured {
        let n = m.messages;
        let whole = rewrite_bytes(n);
        let rewrite = |ru: f64| {
            if whole > MAX_ITEM_BYTES {
                "over 2 MB".to_owned()
            } else {
                format!("{ru:.2}")
            }
        };
        println!(
            "| {n} | {:.2} | {:.2} | {} | {:.2}× | {:.2} | {:.2} | {} | {:.2} | {:.2} | {} |",
            m.append.model_ru,
            old_append,
            rewrite(write_ru(whole)),
            m.append.model_ru / old_append,
            m.full.model_ru,
            read_ru(n * old_bytes),
            rewrite(read_ru(whole)),
            m.tail.model_ru,
            read_ru(n.min(50) * old_bytes),
            rewrite(read_ru(whole)),
        );
    }
    println!(
        "\nOld model: an append is one insert of its own document; a read is one query, charged as a point read of the bytes it returns (the table has no query figures; a real query costs at least 2–3 RU). Rewrite: each append upserts the whole session document (one request, no read), each read reads all of it.\n"
    );
}
