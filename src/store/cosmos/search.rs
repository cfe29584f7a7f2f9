//! Search on Cosmos DB: one single-partition query per result page, over
//! the owner's session documents and sealed pages, newest first.
//!
//! Message bodies are not indexed (it keeps writes cheap), so the query
//! scans the owner's partition, and only theirs. Each term becomes a
//! `REGEXMATCH` of its characters in every case ([`SearchTerms::pattern`]),
//! which keeps every message that could match and drops most that cannot;
//! the rules of [`crate::search`] then decide in Rust, on the message's
//! [`message_text`] (its content and its tool calls' function names). Documents come
//! ordered by `updated_at`, which bounds every hit they hold (a session's
//! `updated_at` is at least its newest message's `created_at`; a sealed
//! page's is its newest message's), so reading stops as soon as the page
//! has one hit more than it shows that is newer than anything still unread.
//! A common word is then one request; a word found nowhere reads the whole
//! partition.

use std::{collections::HashMap, num::NonZeroU32};

use async_trait::async_trait;
use azure_data_cosmos::{
    FeedScope, Query,
    options::{MaxItemCountHint, QueryOptions},
};
use futures::TryStreamExt as _;
use serde::Deserialize;

use super::{
    CosmosStore,
    documents::{BRANCH_DOC_TYPE, PAGE_DOC_TYPE, SESSION_DOC_TYPE, partition},
    errors::store_error,
};
use crate::{
    domain::{MessageId, MessageType, SessionId, Timestamp, ToolParts},
    search::{HitKey, SearchTerms, message_text},
    store::{Owner, SearchHit, SearchPage, SearchQuery, SearchStore, StoreError, StoreResult},
};

/// Documents per request: a page of results usually needs far fewer.
const DOCS_PER_REQUEST: u32 = 100;

/// A document as the search query returns it: a session's own fields (or a
/// page's session id) and its messages that may match.
#[derive(Debug, Deserialize)]
struct Row {
    id: String,
    doc_type: String,
    #[serde(default)]
    session_id: Option<String>,
    #[serde(default)]
    session_name: Option<String>,
    #[serde(default)]
    is_active: Option<bool>,
    #[serde(default)]
    updated_at: Option<Timestamp>,
    #[serde(default)]
    hits: Vec<MessageRow>,
}

#[derive(Debug, Deserialize)]
struct MessageRow {
    id: MessageId,
    message_type: MessageType,
    created_at: Timestamp,
    content: String,
    /// Its `tool_calls`, whose function names it is found by too.
    #[serde(flatten)]
    tools: ToolParts,
}

/// The query: every session document that has a candidate message, a name
/// that may match, or sealed pages or alternatives (whose hits need its
/// name); every page and document of alternatives with a candidate message
/// (search covers every branch). Kept flat: the local test server's parser
/// slows down exponentially with nested parentheses (so no parentheses
/// around the `OR`: `AND` binds first).
///
/// A candidate message's content matches every term, or its tool calls (as
/// JSON text) match any term: a message that matches by its
/// [`message_text`] without its content matching has a term in a function
/// name, and names stand in the JSON as written (1–64 of `A-Za-z0-9_-`).
/// The JSON also holds ids and arguments; what they let through, Rust drops.
fn search_sql(terms: &SearchTerms, after: Option<&HitKey>) -> StoreResult<Query> {
    let message_filter = if after.is_some() {
        "m.created_at <= @at AND REGEXMATCH(m.content, @pattern) \
         OR m.created_at <= @at AND REGEXMATCH(TOSTRING(m.tool_calls), @any)"
    } else {
        "REGEXMATCH(m.content, @pattern) OR REGEXMATCH(TOSTRING(m.tool_calls), @any)"
    };
    let sql = format!(
        "SELECT c.id, c.doc_type, c.session_id, c.session_name, c.is_active, c.updated_at, \
         ARRAY(SELECT m.id, m.message_type, m.created_at, m.content, m.tool_calls \
               FROM m IN c.messages WHERE {message_filter}) AS hits \
         FROM c WHERE c.doc_type IN (@session, @page, @branch) \
         AND (EXISTS(SELECT VALUE m FROM m IN c.messages WHERE {message_filter}) \
              OR IS_DEFINED(c.sealed_page_sizes) OR IS_DEFINED(c.alternatives) \
              OR REGEXMATCH(c.session_name, @pattern)) \
         ORDER BY c.updated_at DESC"
    );
    let mut query = Query::from(sql)
        .with_parameter("@session", SESSION_DOC_TYPE)
        .and_then(|q| q.with_parameter("@page", PAGE_DOC_TYPE))
        .and_then(|q| q.with_parameter("@branch", BRANCH_DOC_TYPE))
        .and_then(|q| q.with_parameter("@pattern", terms.pattern()))
        .and_then(|q| q.with_parameter("@any", terms.any_pattern()))
        .map_err(store_error)?;
    if let Some(after) = after {
        query = query
            .with_parameter("@at", after.at.to_string())
            .map_err(store_error)?;
    }
    Ok(query)
}

/// A session's own fields, as its hits show them.
struct SessionInfo {
    name: Option<String>,
    is_active: bool,
}

/// Hits of a sealed page whose session document has not come yet.
struct Pending {
    session_id: String,
    hits: Vec<MessageRow>,
}

/// Turns rows into hits, in the order they come.
struct Collector<'q> {
    query: &'q SearchQuery,
    sessions: HashMap<String, SessionInfo>,
    pending: Vec<Pending>,
    hits: Vec<SearchHit>,
}

impl Collector<'_> {
    /// Whether every hit still unread sorts after the first `limit + 1`
    /// found: unread documents hold nothing newer than `bound`.
    fn complete_before(&mut self, bound: Timestamp) -> bool {
        let limit = self.query.limit as usize;
        if self.hits.len() <= limit {
            return false;
        }
        self.hits.select_nth_unstable_by_key(limit, SearchHit::key);
        self.hits[limit].created_at > bound
    }

    fn take(&mut self, row: Row) -> StoreResult<()> {
        if row.doc_type == SESSION_DOC_TYPE {
            let info = SessionInfo {
                name: row.session_name,
                is_active: row.is_active.unwrap_or(true),
            };
            if let (Some(name), Some(at)) = (&info.name, row.updated_at) {
                let id = session_id(&row.id)?;
                self.consider(&id, &info, name, None, None, at);
            }
            self.sessions.insert(row.id.clone(), info);
            self.messages(&row.id, row.hits)?;
            // The pages that came before their session (same updated_at).
            let waiting: Vec<Pending> = self
                .pending
                .extract_if(.., |p| p.session_id == row.id)
                .collect();
            for page in waiting {
                self.messages(&page.session_id, page.hits)?;
            }
        } else if let Some(session) = row.session_id {
            if self.sessions.contains_key(&session) {
                self.messages(&session, row.hits)?;
            } else {
                self.pending.push(Pending {
                    session_id: session,
                    hits: row.hits,
                });
            }
        }
        Ok(())
    }

    fn messages(&mut self, session: &str, rows: Vec<MessageRow>) -> StoreResult<()> {
        let Some(info) = self.sessions.remove(session) else {
            return Ok(());
        };
        let id = session_id(session)?;
        for m in rows {
            self.consider(
                &id,
                &info,
                &message_text(&m.content, m.tools.function_names()),
                Some(m.id),
                Some(m.message_type),
                m.created_at,
            );
        }
        self.sessions.insert(session.to_owned(), info);
        Ok(())
    }

    fn consider(
        &mut self,
        session_id: &SessionId,
        info: &SessionInfo,
        text: &str,
        message_id: Option<MessageId>,
        message_type: Option<MessageType>,
        at: Timestamp,
    ) {
        if self.query.is_active.is_some_and(|a| a != info.is_active) {
            return;
        }
        let key = HitKey::new(at, session_id, message_id.as_ref());
        if self.query.after.as_ref().is_some_and(|after| key <= *after) {
            return;
        }
        if let Some(snippet) = self.query.terms.snippet(text) {
            self.hits.push(SearchHit {
                session_id: session_id.clone(),
                session_name: info.name.clone(),
                message_id,
                message_type,
                created_at: at,
                snippet,
            });
        }
    }
}

fn session_id(raw: &str) -> StoreResult<SessionId> {
    SessionId::parse(raw)
        .map_err(|e| StoreError::Internal(anyhow::anyhow!("a stored session id is not valid: {e}")))
}

#[async_trait]
impl SearchStore for CosmosStore {
    async fn search(&self, owner: &Owner, query: &SearchQuery) -> StoreResult<SearchPage> {
        let sql = search_sql(&query.terms, query.after.as_ref())?;
        let options = QueryOptions::default().with_max_item_count(MaxItemCountHint::Limit(
            NonZeroU32::new(DOCS_PER_REQUEST).expect("not zero"),
        ));
        let mut pages = self
            .container()?
            .query_items::<Row>(
                sql,
                FeedScope::partition(partition(owner.user_id())),
                Some(options),
            )
            .await
            .map_err(store_error)?
            .into_pages();
        let mut collector = Collector {
            query,
            sessions: HashMap::new(),
            pending: Vec::new(),
            hits: Vec::new(),
        };
        'pages: while let Some(page) = pages.try_next().await.map_err(store_error)? {
            self.metrics
                .record(page.headers().request_charge().map(|c| c.value()));
            for row in page.into_items() {
                // A document without `updated_at` (a page sealed before
                // pages had one) bounds nothing: read on.
                if let Some(bound) = row.updated_at
                    && collector.complete_before(bound)
                {
                    break 'pages;
                }
                collector.take(row)?;
            }
        }
        // Hits of pages whose session never came belong to a session being
        // deleted (its document goes first): they are not shown.
        Ok(SearchPage::from_hits(collector.hits, query.limit, None))
    }
}
