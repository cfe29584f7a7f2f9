//! The context read: the session document, then sealed pages newest first
//! only for as long as the selection wants more, so a budget met within the
//! document and its newest page costs at most two point reads (a session
//! sealed before conversations were trees may cost one page more: a chunk's
//! first message names no parent there, and the page before says it).

use async_trait::async_trait;

use super::{
    CosmosStore,
    lineage::{Before, chain},
};
use crate::{
    domain::{ChatMessage, SessionId},
    store::{ContextSink, ContextStore, Owner, StoreResult, leading_system},
};

#[async_trait]
impl ContextStore for CosmosStore {
    async fn read_context(
        &self,
        owner: &Owner,
        id: &SessionId,
        sink: &mut (dyn ContextSink + Send),
    ) -> StoreResult<()> {
        let user = self.partition_of(owner, id).await?;
        let (doc, etag) = self.read_current(user.as_ref(), id).await?;
        if !sink.version(&etag) {
            return Ok(());
        }
        let pages = doc.sealed_page_sizes.len() as u32;
        let layout = doc.layout;
        let mut leading = match (&doc.system_prefix, pages) {
            (_, 0) => leading_system(doc.session.messages.iter()),
            (Some(prefix), _) => prefix.clone(),
            (None, _) => {
                // Not recorded: the pages from the oldest, until a message
                // that is not a system message.
                let mut leading = Vec::new();
                let mut whole = true;
                for page in 0..pages {
                    let messages = self.page(user.as_ref(), id, page, layout).await?;
                    let more = leading_system(messages.iter());
                    whole = more.len() == messages.len();
                    leading.extend(more);
                    if !whole {
                        break;
                    }
                }
                if whole {
                    leading.extend(leading_system(doc.session.messages.iter()));
                }
                leading
            }
        };
        let lead = leading.len() as u64;
        // The branch's first messages: each follows the one before.
        chain(&mut leading, Before::Start);
        if !sink.leading(leading) {
            return Ok(());
        }
        // Position of the first message of each chunk, newest chunk first.
        let mut start = doc.sealed();
        let mut messages = doc.session.messages;
        let mut page = pages;
        // The page before a chunk, when it was read early for its parent.
        let mut read_early = None;
        loop {
            // Parents within the chunk; its first keeps the one it was
            // stored with (every message written since trees has one). One
            // stored before trees has none: the page before says which it
            // follows, read now instead of next.
            let mut before = Before::at(start);
            if page > 0 && messages.first().is_some_and(|m| m.parent_id.is_none()) {
                let earlier = self.page(user.as_ref(), id, page - 1, layout).await?;
                if let Some(last) = earlier.last() {
                    before = Before::Message(last.id.clone());
                }
                read_early = Some(earlier);
            }
            chain(&mut messages, before);
            let end = start + messages.len() as u64;
            let mut newest_first: Vec<ChatMessage> = messages.into_iter().rev().collect();
            newest_first.truncate(end.saturating_sub(start.max(lead)) as usize);
            if newest_first.is_empty() || !sink.older(newest_first) || start <= lead || page == 0 {
                return Ok(());
            }
            page -= 1;
            messages = match read_early.take() {
                Some(earlier) => earlier,
                None => self.page(user.as_ref(), id, page, layout).await?,
            };
            start -= messages.len() as u64;
        }
    }
}

impl CosmosStore {
    async fn page(
        &self,
        user: Option<&crate::domain::UserId>,
        id: &SessionId,
        page: u32,
        layout: u64,
    ) -> StoreResult<Vec<ChatMessage>> {
        Ok(self.read_page(user, id, page, layout).await?.messages)
    }
}
