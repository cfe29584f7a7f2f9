//! Reads of the current branch: the session document, and its sealed pages
//! only as far as the read reaches (all of them for the whole session, the
//! newest few for a tail or a page). Every message read gets its
//! `parent_id` (the one before it; a legacy message has none stored) and
//! its `siblings` (from the document's `forks`): no other read, except for
//! the parent of the first message read when it is a legacy message whose
//! predecessor is in an unread page (one page read; sessions sealed before
//! conversations were trees only).

use async_trait::async_trait;
use futures::StreamExt as _;

use super::{
    CosmosStore,
    documents::SessionDoc,
    errors::again_if_stale,
    lineage::{Before, chain, mark},
    seal::PAGE_READS_AT_ONCE,
};
use crate::{
    domain::{ChatMessage, ChatSession, MessageId, SessionId, UserId},
    store::{
        ETag, MessagePage, MessageQuery, Owner, ReadStore, SessionRead, StoreResult, Versioned,
    },
};

#[async_trait]
impl ReadStore for CosmosStore {
    async fn get_session_if_changed(
        &self,
        owner: &Owner,
        id: &SessionId,
        known: Option<&ETag>,
    ) -> StoreResult<Option<Versioned<ChatSession>>> {
        let user = self.partition_of(owner, id).await?;
        let user = user.as_ref();
        again_if_stale(|| async move {
            let Some((doc, etag)) = self.read_doc(user, id, known).await? else {
                return Ok(None);
            };
            self.remember(user, &doc, &etag);
            Ok(Some(Versioned {
                value: self.whole(user, doc).await?,
                etag,
            }))
        })
        .await
    }

    async fn read_session(
        &self,
        owner: &Owner,
        id: &SessionId,
        known: Option<&ETag>,
    ) -> StoreResult<Option<SessionRead>> {
        let user = self.partition_of(owner, id).await?;
        let Some((mut doc, etag)) = self.read_doc(user.as_ref(), id, known).await? else {
            return Ok(None);
        };
        self.remember(user.as_ref(), &doc, &etag);
        let pages = doc.sealed_page_sizes.len() as u32;
        // A document written before trees names no parent for its first
        // message: the newest page says which it is. That page is read now,
        // and handed to the stream below instead of being read again.
        let mut newest_page = None;
        if pages > 0
            && doc
                .session
                .messages
                .first()
                .is_some_and(|m| m.parent_id.is_none())
        {
            let read = self
                .read_page(user.as_ref(), id, pages - 1, doc.layout)
                .await?;
            newest_page = Some(read.messages);
        }
        let before = newest_page
            .as_ref()
            .and_then(|m| m.last())
            .map(|m| m.id.clone());
        // Taken, not cloned: past this point the document's counters, forks
        // and layout are read, never its messages (the parent of the first
        // comes from a page, as it sits at the sealed count).
        let mut newest = std::mem::take(&mut doc.session.messages);
        self.lineage(user.as_ref(), &doc, &mut newest, doc.sealed(), before)
            .await?;
        // The pages, one point read each, a few ahead of the stream only;
        // each chunk's first message follows the chunk before.
        let older = (pages > 0).then(|| {
            let (store, id, layout) = (self.clone(), id.clone(), doc.layout);
            let forks = doc.forks.clone();
            futures::stream::iter(0..pages)
                .map(move |page| {
                    let (store, user, id) = (store.clone(), user.clone(), id.clone());
                    let read_already = if page + 1 == pages {
                        newest_page.take()
                    } else {
                        None
                    };
                    async move {
                        if let Some(messages) = read_already {
                            return Ok(messages);
                        }
                        let read = store.read_page(user.as_ref(), &id, page, layout).await?;
                        Ok(read.messages)
                    }
                })
                .buffered(PAGE_READS_AT_ONCE)
                .scan(
                    Before::Start,
                    move |before, chunk: StoreResult<Vec<ChatMessage>>| {
                        let chunk = chunk.map(|mut messages| {
                            chain(&mut messages, std::mem::replace(before, Before::Unread));
                            if let Some(last) = messages.last() {
                                *before = Before::Message(last.id.clone());
                            }
                            mark(&mut messages, &forks);
                            messages
                        });
                        futures::future::ready(Some(chunk))
                    },
                )
                .boxed()
        });
        Ok(Some(SessionRead {
            summary: doc.session.summary(),
            etag,
            newest,
            older,
        }))
    }

    async fn get_session_tail(
        &self,
        owner: &Owner,
        id: &SessionId,
        limit: u32,
    ) -> StoreResult<Versioned<ChatSession>> {
        let user = self.partition_of(owner, id).await?;
        let user = user.as_ref();
        again_if_stale(|| async move {
            let (mut doc, etag) = self.read_current(user, id).await?;
            self.remember(user, &doc, &etag);
            let limit = limit as usize;
            // Taken, not cloned: the message before the ones kept is either
            // among those read or in a page (`lineage` reads no more of them).
            let mut messages = std::mem::take(&mut doc.session.messages);
            // Older messages only when the document does not hold enough.
            let mut page = doc.sealed_page_sizes.len() as u32;
            while messages.len() < limit && page > 0 {
                page -= 1;
                let mut older = self.read_page(user, id, page, doc.layout).await?.messages;
                older.append(&mut messages);
                messages = older;
            }
            let keep = messages.len().min(limit);
            let cut = messages.len() - keep;
            let before = cut.checked_sub(1).map(|at| messages[at].id.clone());
            messages.drain(..cut);
            let position = doc.session.message_count - messages.len() as u64;
            self.lineage(user, &doc, &mut messages, position, before)
                .await?;
            let mut session = doc.session;
            session.messages = messages;
            Ok(Versioned {
                value: session,
                etag,
            })
        })
        .await
    }

    async fn list_messages(
        &self,
        owner: &Owner,
        id: &SessionId,
        query: MessageQuery,
    ) -> StoreResult<MessagePage> {
        let user = self.partition_of(owner, id).await?;
        let user = user.as_ref();
        again_if_stale(|| async move {
            let (doc, etag) = self.read_current(user, id).await?;
            self.remember(user, &doc, &etag);
            self.page_of_messages(user, &doc, query).await
        })
        .await
    }
}

impl CosmosStore {
    /// Every message of the session: its sealed pages, then its document;
    /// parents and siblings filled in.
    pub(super) async fn whole(
        &self,
        user: Option<&UserId>,
        doc: SessionDoc,
    ) -> StoreResult<ChatSession> {
        let pages = doc.sealed_page_sizes.len() as u32;
        let mut session = doc.session;
        if pages > 0 {
            let read = self
                .read_pages(user, &session.id, 0..pages, doc.layout)
                .await?;
            let mut messages: Vec<ChatMessage> =
                read.into_iter().flat_map(|p| p.messages).collect();
            messages.append(&mut session.messages);
            session.messages = messages;
        }
        chain(&mut session.messages, Before::Start);
        mark(&mut session.messages, &doc.forks);
        Ok(session)
    }

    /// The id of the message at `position` - 1 of the current branch, read
    /// from the document or its page.
    async fn message_before(
        &self,
        user: Option<&UserId>,
        doc: &SessionDoc,
        position: u64,
    ) -> StoreResult<Option<MessageId>> {
        let Some(at) = position.checked_sub(1) else {
            return Ok(None);
        };
        let sealed = doc.sealed();
        if at >= sealed {
            return Ok(doc
                .session
                .messages
                .get((at - sealed) as usize)
                .map(|m| m.id.clone()));
        }
        let Some(page) = doc.page_of(at) else {
            return Ok(None);
        };
        let read = self
            .read_page(user, &doc.session.id, page, doc.layout)
            .await?;
        let offset = (at - doc.page_start(page)) as usize;
        Ok(read.messages.get(offset).map(|m| m.id.clone()))
    }

    /// Gives `messages`, the current branch from `position` on, their
    /// parents and siblings; `before` is the message before them, if read.
    async fn lineage(
        &self,
        user: Option<&UserId>,
        doc: &SessionDoc,
        messages: &mut [ChatMessage],
        position: u64,
        before: Option<MessageId>,
    ) -> StoreResult<()> {
        chain(
            messages,
            before.map_or(Before::at(position), Before::Message),
        );
        if let Some(first) = messages.first_mut()
            && first.parent_id.is_none()
            && position > 0
        {
            first.parent_id = self.message_before(user, doc, position).await?;
        }
        mark(messages, &doc.forks);
        Ok(())
    }

    /// The messages of `query` out of version `doc`: the pages that hold
    /// them, then the document.
    async fn page_of_messages(
        &self,
        user: Option<&UserId>,
        doc: &SessionDoc,
        query: MessageQuery,
    ) -> StoreResult<MessagePage> {
        let id = &doc.session.id;
        let sealed = doc.sealed();
        let total = sealed + doc.session.messages.len() as u64;
        let end = query.before.map_or(total, |b| b.min(total));
        let start = end.saturating_sub(u64::from(query.limit));
        let mut messages = Vec::new();
        // The message before `start`, when a chunk read holds it.
        let mut before = None;
        let mut offset = 0u64;
        for (page, &size) in doc.sealed_page_sizes.iter().enumerate() {
            let (from, to) = (offset, offset + u64::from(size));
            offset = to;
            if to <= start || from >= end {
                continue;
            }
            let page_messages = self
                .read_page(user, id, page as u32, doc.layout)
                .await?
                .messages;
            let lo = (start.max(from) - from) as usize;
            let hi = (end.min(to) - from) as usize;
            if messages.is_empty() && lo > 0 {
                before = Some(page_messages[lo - 1].id.clone());
            }
            messages.extend_from_slice(&page_messages[lo..hi]);
        }
        if end > sealed {
            let lo = (start.max(sealed) - sealed) as usize;
            let hi = (end - sealed) as usize;
            if messages.is_empty() && lo > 0 {
                before = Some(doc.session.messages[lo - 1].id.clone());
            }
            messages.extend_from_slice(&doc.session.messages[lo..hi]);
        }
        self.lineage(user, doc, &mut messages, start, before)
            .await?;
        messages.reverse();
        Ok(MessagePage {
            messages,
            next_before: (start > 0).then_some(start),
        })
    }
}
