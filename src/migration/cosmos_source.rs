//! Legacy messages from the old Cosmos DB container.
//!
//! The container is scanned page by page (a continuation token is the
//! position, so an invocation resumes where the last one stopped). For every
//! session first seen in a page, all of its records are fetched with one
//! query (single-partition when the old container is partitioned by
//! `/session_id`), so each session is migrated whole. A session met again
//! on a later page is simply migrated again: that adds nothing.

use std::collections::{HashSet, VecDeque};

use anyhow::Context as _;
use async_trait::async_trait;
use azure_data_cosmos::{
    ContainerClient, FeedScope, PartitionKey, Query,
    feed::{ContinuationToken, QueryPageIterator},
    options::{MaxItemCountHint, QueryOptions},
};
use futures::TryStreamExt as _;
use serde_json::Value;

use super::{Deleter, Item, LegacyRecord, LegacySource, parse_legacy};

/// Sessions remembered as done within one invocation, at most.
const SEEN_LIMIT: usize = 100_000;

/// The old per-message container.
pub struct CosmosLegacySource {
    container: ContainerClient,
    /// The old container's partition key path, e.g. `/session_id`.
    partition_key_path: String,
    page_size: u32,
    pages: Option<QueryPageIterator<Value>>,
    page_start: Option<String>,
    buffer: VecDeque<Item>,
    seen: HashSet<String>,
    ended: bool,
}

impl CosmosLegacySource {
    /// A source over `container`, partitioned by `partition_key_path`,
    /// reading `page_size` records per scan page.
    pub fn new(container: ContainerClient, partition_key_path: &str, page_size: u32) -> Self {
        Self {
            container,
            partition_key_path: partition_key_path.to_owned(),
            page_size: page_size.clamp(1, 1000),
            pages: None,
            page_start: None,
            buffer: VecDeque::new(),
            seen: HashSet::new(),
            ended: false,
        }
    }

    /// The partition key value of a stored document.
    fn partition_value(&self, doc: &Value) -> Value {
        doc.pointer(&self.partition_key_path)
            .cloned()
            .unwrap_or(Value::Null)
    }

    fn record(&self, doc: Value) -> Result<LegacyRecord, String> {
        let handle = self.partition_value(&doc);
        Ok(LegacyRecord {
            message: parse_legacy(doc)?,
            handle,
        })
    }

    /// Reads the next scan page and turns it into items.
    async fn fill(&mut self) -> anyhow::Result<()> {
        let Some(pages) = self.pages.as_mut() else {
            return Ok(());
        };
        self.page_start = Some(pages.to_continuation_token()?.as_str().to_owned());
        let Some(page) = pages
            .try_next()
            .await
            .context("scanning the legacy container")?
        else {
            self.ended = true;
            return Ok(());
        };
        let mut sessions = Vec::new();
        for doc in page.into_items() {
            match doc.get("session_id").and_then(Value::as_str) {
                Some(session) if !session.is_empty() => {
                    if self.seen.insert(session.to_owned()) {
                        sessions.push(session.to_owned());
                    }
                }
                _ => self.buffer.push_back(match self.record(doc) {
                    Ok(record) => Item::Orphan(record),
                    Err(e) => Item::Unreadable {
                        what: format!("legacy document: {e}"),
                    },
                }),
            }
        }
        for session_id in sessions {
            let mut records = Vec::new();
            let docs =
                session_records(&self.container, &self.partition_key_path, &session_id).await?;
            for doc in docs {
                match self.record(doc) {
                    Ok(record) => records.push(record),
                    Err(e) => self.buffer.push_back(Item::Unreadable {
                        what: format!("session {session_id}: {e}"),
                    }),
                }
            }
            if !records.is_empty() {
                self.buffer.push_back(Item::Session {
                    session_id,
                    records,
                });
            }
        }
        if self.seen.len() > SEEN_LIMIT {
            self.seen.clear();
        }
        Ok(())
    }
}

/// Every record of one session: one query, in its partition when the old
/// container is partitioned by session.
async fn session_records(
    container: &ContainerClient,
    partition_key_path: &str,
    session_id: &str,
) -> anyhow::Result<Vec<Value>> {
    let query =
        Query::from("SELECT * FROM c WHERE c.session_id = @s").with_parameter("@s", session_id)?;
    let scope = if partition_key_path == "/session_id" {
        FeedScope::partition(session_id.to_owned())
    } else {
        FeedScope::full_container()
    };
    let docs: Vec<Value> = container
        .query_items::<Value>(query, scope, None)
        .await?
        .try_collect()
        .await?;
    Ok(docs)
}

pub(super) fn to_partition_key(value: &Value) -> anyhow::Result<PartitionKey> {
    Ok(match value {
        Value::String(s) => PartitionKey::from(s.clone()),
        Value::Null => PartitionKey::from(PartitionKey::NULL),
        Value::Bool(b) => PartitionKey::from(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => PartitionKey::from(i),
            None => PartitionKey::try_from(n.as_f64().unwrap_or_default())?,
        },
        other => anyhow::bail!("unsupported partition key value {other}"),
    })
}

#[async_trait]
impl LegacySource for CosmosLegacySource {
    async fn start(&mut self, position: Option<&str>) -> anyhow::Result<()> {
        let limit = std::num::NonZeroU32::new(self.page_size).expect("clamped to at least 1");
        let mut options =
            QueryOptions::default().with_max_item_count(MaxItemCountHint::Limit(limit));
        if let Some(token) = position {
            options =
                options.with_continuation_token(ContinuationToken::from_string(token.to_owned()));
        }
        let pages = self
            .container
            .query_items::<Value>(
                Query::from("SELECT * FROM c"),
                FeedScope::full_container(),
                Some(options),
            )
            .await
            .context("starting the scan of the legacy container")?
            .into_pages();
        self.pages = Some(pages);
        self.page_start = position.map(str::to_owned);
        self.buffer.clear();
        self.seen.clear();
        self.ended = false;
        Ok(())
    }

    async fn next_item(&mut self) -> anyhow::Result<Option<Item>> {
        while self.buffer.is_empty() && !self.ended {
            self.fill().await?;
        }
        Ok(self.buffer.pop_front())
    }

    fn position(&self) -> Option<String> {
        // The start of the page being worked through: resuming redoes at
        // most that page.
        self.page_start.clone()
    }

    fn deleter(&self) -> Option<std::sync::Arc<dyn Deleter>> {
        Some(std::sync::Arc::new(CosmosDeleter {
            container: self.container.clone(),
        }))
    }
}

/// Deletes old documents by id and partition key value.
struct CosmosDeleter {
    container: ContainerClient,
}

#[async_trait]
impl Deleter for CosmosDeleter {
    async fn delete(&self, record: &LegacyRecord) -> anyhow::Result<()> {
        let id = record
            .message
            .id
            .as_deref()
            .context("a legacy record without an id")?;
        match self
            .container
            .delete_item(to_partition_key(&record.handle)?, id, None)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.status().is_not_found() => Ok(()),
            Err(e) => Err(anyhow::Error::new(e).context(format!("deleting legacy message {id}"))),
        }
    }
}
