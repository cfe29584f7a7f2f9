//! What Cosmos DB costs per API operation and per message: requests, the
//! request units (RU) the SDK's in-memory emulator charges, and what Azure
//! would bill by Microsoft's published table (`model.rs`), from the size of
//! every item each request read or wrote (the store's item log). Also the
//! alternatives: the old one-document-per-message model and a whole-document
//! rewrite per message (as LangChain's `CosmosDBChatMessageHistory` does).
//!
//!     cargo bench --bench cosmos_requests [-- api|lengths|sweep|tree]
//!
//! The emulator charges RU linearly in the document size rounded up to a
//! power of two KB, and queries a flat 1 RU: not what Azure bills, so the
//! decisions rest on the published table. Figures, not pass/fail.

#[path = "../../tests/it/common/cosmos.rs"]
#[allow(dead_code)] // the integration tests use all of it, this bench a part
mod cosmos;

mod api;
mod lengths;
mod model;
mod sweep;
mod tree;

use chat_sessions::{
    domain::{ChatMessage, JsonObject, MessageId, MessageType, NewMessage, Timestamp, UserId},
    store::cosmos::{CosmosStore, ItemIo},
};

/// What one operation cost.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cost {
    /// Requests sent to Cosmos DB.
    pub requests: f64,
    /// RU as the emulator charged them.
    pub emulator_ru: f64,
    /// RU by the published table.
    pub model_ru: f64,
}

impl Cost {
    /// The mean of several.
    pub fn mean(costs: &[Cost]) -> Cost {
        let n = costs.len().max(1) as f64;
        Cost {
            requests: costs.iter().map(|c| c.requests).sum::<f64>() / n,
            emulator_ru: costs.iter().map(|c| c.emulator_ru).sum::<f64>() / n,
            model_ru: costs.iter().map(|c| c.model_ru).sum::<f64>() / n,
        }
    }
}

/// Runs `operation` and returns its result with what it cost.
pub async fn measure<T>(store: &CosmosStore, operation: impl Future<Output = T>) -> (T, Cost) {
    store.take_item_log();
    let before = store.metrics();
    let out = operation.await;
    let used = store.metrics() - before;
    let log: Vec<ItemIo> = store.take_item_log();
    (
        out,
        Cost {
            requests: used.requests as f64,
            emulator_ru: used.request_units,
            model_ru: model::total(&log),
        },
    )
}

/// Content that makes a stored message about 600 bytes long (id, type,
/// user, metadata and timestamp included): a typical chat message.
pub fn typical_content() -> String {
    const TEXT: &str = "Sure — here is how to reset the router: unplug it for thirty seconds, plug it back in, wait until the status light turns solid green, then reconnect your laptop to the network and open the admin page at 192.168.1.1 to check that the firmware is current. If the light keeps blinking amber, hold the reset button for ten seconds; that restores the factory settings, so write down your Wi-Fi name and password first. Tell me what the light does and we will take it from there, step by step, until it works.";
    let frame = ChatMessage {
        tool_calls: None,
        tool_call_id: None,
        name: None,
        parent_id: None,
        edited_at: None,
        siblings: None,
        id: MessageId::generate(),
        content: String::new(),
        message_type: MessageType::Assistant,
        user_id: Some(UserId::parse("user_123").unwrap()),
        metadata: JsonObject::new(),
        created_at: Timestamp::now(),
    };
    let frame_len = serde_json::to_vec(&frame).unwrap().len();
    TEXT.chars().take(600 - frame_len).collect()
}

/// A typical message to append, alternating user and assistant.
pub fn typical_message(content: &str, i: usize) -> NewMessage {
    let kind = if i.is_multiple_of(2) {
        MessageType::User
    } else {
        MessageType::Assistant
    };
    NewMessage::new(None, content.to_owned(), kind, None, JsonObject::new()).unwrap()
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; other arguments pick sections.
    let picked: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wants = |section: &str| picked.is_empty() || picked.iter().any(|p| p == section);
    let content = typical_content();
    if wants("api") {
        let (store, _client) = cosmos::emulator_cosmos_store().await;
        store.start_item_log();
        api::run(&store, &content).await;
    }
    if wants("lengths") {
        lengths::run(&content).await;
    }
    if wants("sweep") {
        sweep::run(&content).await;
    }
    if wants("tree") {
        tree::run(&content).await;
    }
}
