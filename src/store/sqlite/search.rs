//! Search on the embedded store: the owner's documents of the FTS5 index
//! that hold a word beginning with each word of the query, read newest
//! first (see `search_index`), each checked by the rules of
//! [`crate::search`] against the stored text (a message's
//! [`crate::search::message_text`]); a page stops as soon as it has one hit
//! more than it shows.

use std::collections::HashMap;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::{
    SqliteStore,
    rows::internal,
    search_index::{SLOT_BITS, SLOT_MASK, bucket, owner_key, stored_message_text},
};
use crate::{
    domain::{MessageId, MessageType, SessionId, Timestamp},
    search::{HitKey, SearchTerms},
    store::{Owner, SearchHit, SearchPage, SearchQuery, SearchStore, StoreError, StoreResult},
};

/// Candidates a page looks at before it answers with what it has found
/// (and a continuation): bounds the work of a query the index cannot
/// narrow, such as one made only of punctuation.
const MAX_CANDIDATES: usize = 5_000;

#[async_trait]
impl SearchStore for SqliteStore {
    async fn search(&self, owner: &Owner, query: &SearchQuery) -> StoreResult<SearchPage> {
        let (owner, query) = (owner.clone(), query.clone());
        self.read(move |conn| {
            // One snapshot for the index and the rows it points at.
            let tx = conn.transaction().map_err(internal)?;
            let page = search_in(&tx, &owner, &query)?;
            tx.finish().map_err(internal)?;
            Ok(page)
        })
        .await
    }
}

/// The FTS5 query: a prefix of the owner's token of each word of the
/// terms (the owner key alone for terms without words, such as `%`), every
/// one a quoted string (never user syntax). Each expansion reads the
/// owner's tokens only.
fn fts_query(owner: &Owner, terms: &SearchTerms) -> String {
    let key = owner_key(owner.user_id().map(|u| u.as_str()));
    let quoted = |word: &str| format!("\"{key}{}\"", word.replace('"', "\"\""));
    let words = terms.index_words();
    if words.is_empty() {
        return quoted("");
    }
    words
        .iter()
        .map(|word| quoted(word) + "*")
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// What a hit shows of its session.
struct SessionInfo {
    visible: bool,
    name: Option<String>,
    is_active: bool,
    updated_at: Timestamp,
}

fn search_in(conn: &Connection, owner: &Owner, query: &SearchQuery) -> StoreResult<SearchPage> {
    let limit = query.limit.clamp(1, 50) as usize;
    // The newest rowid that can hold a hit after the position.
    let upper = match &query.after {
        None => i64::MAX,
        Some(key) if key.is_instant() => bucket(&key.at) - 1,
        Some(key) => bucket(&key.at) + SLOT_MASK,
    };
    let mut candidates = conn
        .prepare_cached(
            "SELECT rowid FROM search_index WHERE search_index MATCH ?1 AND rowid <= ?2 \
             ORDER BY rowid DESC",
        )
        .map_err(internal)?;
    let mut rows = candidates
        .query(params![fts_query(owner, &query.terms), upper])
        .map_err(internal)?;
    let mut sessions: HashMap<String, SessionInfo> = HashMap::new();
    let mut hits = Vec::new();
    // The second of the hit one past the page: every hit of that second is
    // read, then the page is complete.
    let mut cutoff: Option<i64> = None;
    let mut examined = 0usize;
    let mut previous_second: Option<i64> = None;
    let mut stopped_at = None;
    while let Some(row) = rows.next().map_err(internal)? {
        let doc: i64 = row.get(0).map_err(internal)?;
        let second = doc >> SLOT_BITS;
        if let Some(prev) = previous_second
            && second < prev
        {
            if cutoff.is_some() {
                break;
            }
            if examined >= MAX_CANDIDATES {
                stopped_at = Some(HitKey::before(start_of(prev)));
                break;
            }
        }
        previous_second = Some(second);
        examined += 1;
        if let Some(hit) = candidate(conn, doc, owner, query, &mut sessions)? {
            hits.push(hit);
            if hits.len() == limit + 1 {
                cutoff = Some(second);
            }
        }
    }
    Ok(SearchPage::from_hits(hits, query.limit, stopped_at))
}

/// The first instant of a second.
fn start_of(second: i64) -> Timestamp {
    chrono::DateTime::from_timestamp(second, 0)
        .map(Timestamp::from_datetime)
        .unwrap_or_else(Timestamp::now)
}

/// The hit at index document `doc`, if it is one for this query.
fn candidate(
    conn: &Connection,
    doc: i64,
    owner: &Owner,
    query: &SearchQuery,
    sessions: &mut HashMap<String, SessionInfo>,
) -> StoreResult<Option<SearchHit>> {
    let entry: Option<(String, String)> = conn
        .prepare_cached("SELECT session_id, message_id FROM search_entries WHERE doc = ?1")
        .and_then(|mut stmt| {
            stmt.query_row([doc], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(internal)?;
    let Some((session_id, message_id)) = entry else {
        return Ok(None);
    };
    if !sessions.contains_key(&session_id) {
        let info = session_info(conn, owner, &session_id)?;
        sessions.insert(session_id.clone(), info);
    }
    let session = &sessions[&session_id];
    if !session.visible || query.is_active.is_some_and(|a| a != session.is_active) {
        return Ok(None);
    }
    let sid = SessionId::parse(session_id.as_str()).map_err(corrupt)?;
    let (text, message, message_type, at) = if message_id.is_empty() {
        let Some(name) = &session.name else {
            return Ok(None);
        };
        (name.clone(), None, None, session.updated_at)
    } else {
        let row: Option<(String, String, String, Option<String>)> = conn
            .prepare_cached(
                "SELECT content, message_type, created_at, tool FROM messages \
                 WHERE session_id = ?1 AND id = ?2",
            )
            .and_then(|mut stmt| {
                stmt.query_row([&session_id, &message_id], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .optional()
            })
            .map_err(internal)?;
        let Some((content, kind, created_at, tool)) = row else {
            return Ok(None);
        };
        (
            // What the index holds the words of, so a hit on a function
            // name is checked, and snippeted, as found.
            stored_message_text(content, tool.as_deref())?,
            Some(MessageId::parse(message_id).map_err(corrupt)?),
            Some(MessageType::parse(&kind).map_err(corrupt)?),
            Timestamp::parse(&created_at).map_err(corrupt)?,
        )
    };
    let key = HitKey::new(at, &sid, message.as_ref());
    if query.after.as_ref().is_some_and(|after| key <= *after) {
        return Ok(None);
    }
    let Some(snippet) = query.terms.snippet(&text) else {
        return Ok(None);
    };
    Ok(Some(SearchHit {
        session_id: sid,
        session_name: session.name.clone(),
        message_id: message,
        message_type,
        created_at: at,
        snippet,
    }))
}

fn session_info(conn: &Connection, owner: &Owner, id: &str) -> StoreResult<SessionInfo> {
    let row: Option<(Option<String>, Option<String>, bool, String)> = conn
        .prepare_cached(
            "SELECT user_id, session_name, is_active, updated_at FROM sessions WHERE id = ?1",
        )
        .and_then(|mut stmt| {
            stmt.query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .optional()
        })
        .map_err(internal)?;
    let Some((user, name, is_active, updated_at)) = row else {
        return Ok(SessionInfo {
            visible: false,
            name: None,
            is_active: false,
            updated_at: Timestamp::now(),
        });
    };
    // The owner key narrowed the candidates; the owner decides. Anonymous
    // searches only the sessions without an owner.
    let visible = user.as_deref() == owner.user_id().map(|u| u.as_str());
    Ok(SessionInfo {
        visible,
        name,
        is_active,
        updated_at: Timestamp::parse(&updated_at).map_err(corrupt)?,
    })
}

fn corrupt(e: crate::domain::ValidationError) -> StoreError {
    StoreError::Internal(anyhow::anyhow!("a stored value is not valid: {e}"))
}
