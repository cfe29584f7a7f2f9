//! Where old messages come from: what a legacy record is, what a source
//! yields, and the sources a run can be pointed at.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{cosmos_source, jsonl};

/// One old-style message, as the old store kept it. Lenient: whatever can be
/// read is kept, so that a bad record can still be reported by its id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LegacyMessage {
    /// The message id.
    pub id: Option<String>,
    /// The session it belongs to; absent or null for an orphan.
    #[serde(default)]
    pub session_id: Option<String>,
    /// Its user.
    #[serde(default)]
    pub user_id: Option<String>,
    /// The text.
    #[serde(default)]
    pub content: Option<String>,
    /// `user`, `assistant` or `system`.
    #[serde(default)]
    pub message_type: Option<String>,
    /// Free-form data.
    #[serde(default)]
    pub metadata: Option<Value>,
    /// When it was written.
    #[serde(default)]
    pub created_at: Option<String>,
}

/// A legacy record with what the source needs to delete it.
#[derive(Debug, Clone, PartialEq)]
pub struct LegacyRecord {
    /// The message.
    pub message: LegacyMessage,
    /// The source's handle for deleting it (Cosmos: its partition key value).
    pub handle: Value,
}

/// What a source yields.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// Every legacy record of one session.
    Session {
        /// The legacy `session_id`.
        session_id: String,
        /// Its records, in any order.
        records: Vec<LegacyRecord>,
    },
    /// A record without a session: reported, never moved or deleted.
    Orphan(LegacyRecord),
    /// Something that is not a legacy message at all (e.g. a line that is
    /// not JSON); `what` says where it is.
    Unreadable {
        /// Where and why.
        what: String,
    },
}

/// Where the old messages come from.
#[async_trait]
pub trait LegacySource: Send {
    /// Starts the pass at `position` (as an earlier [`position`](Self::position)
    /// returned), or at the beginning.
    async fn start(&mut self, position: Option<&str>) -> anyhow::Result<()>;
    /// The next item; `None` at the end of the pass.
    async fn next_item(&mut self) -> anyhow::Result<Option<Item>>;
    /// Where a pass resumed now would start, at the latest: everything
    /// before it has been yielded. Resuming may yield some items again;
    /// the engine is idempotent.
    fn position(&self) -> Option<String>;
    /// What deletes old records, if this source can.
    fn deleter(&self) -> Option<Arc<dyn Deleter>>;
}

/// Deletes old records; shared by the sessions migrated side by side.
#[async_trait]
pub trait Deleter: Send + Sync {
    /// Deletes one old record (already gone counts as deleted).
    async fn delete(&self, record: &LegacyRecord) -> anyhow::Result<()>;
}

/// Where a run reads the old messages from.
#[derive(Clone)]
pub enum SourceSpec {
    /// A JSONL file.
    Jsonl(std::path::PathBuf),
    /// The old Cosmos DB container and its partition key path.
    Cosmos {
        /// The container.
        container: azure_data_cosmos::ContainerClient,
        /// E.g. `/session_id`.
        partition_key_path: String,
    },
}

impl std::fmt::Debug for SourceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Jsonl(path) => write!(f, "Jsonl({})", path.display()),
            Self::Cosmos {
                partition_key_path, ..
            } => write!(f, "Cosmos(partitioned by {partition_key_path})"),
        }
    }
}

impl SourceSpec {
    /// A source reading `batch_size` records per page.
    pub fn open(&self, batch_size: u32) -> Box<dyn LegacySource> {
        match self {
            Self::Jsonl(path) => Box::new(jsonl::JsonlSource::new(path)),
            Self::Cosmos {
                container,
                partition_key_path,
            } => Box::new(cosmos_source::CosmosLegacySource::new(
                container.clone(),
                partition_key_path,
                batch_size,
            )),
        }
    }
}

/// Reads legacy messages from JSON text (one object), for sources.
pub fn parse_legacy(value: Value) -> Result<LegacyMessage, String> {
    serde_json::from_value(value).map_err(|e| e.to_string())
}
