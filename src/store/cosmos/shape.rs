//! What a tree operation reads of a session, and no more: its document,
//! the current branch from some sealed page on (read backwards, newest page
//! first, only as far as the operation reaches), and the alternatives (one
//! query, only when the operation needs them). Then the tree of what was
//! read, in creation order.
//!
//! The current branch is kept positionally (each message follows the one
//! before it), so the part of it before the pages read is never needed:
//! an operation reaching back to a message reads the pages from that one
//! on, which are also the pages it may have to rewrite.

use std::collections::HashMap;

use azure_data_cosmos::{FeedScope, Query};
use futures::TryStreamExt as _;

use super::{
    CosmosStore,
    documents::{BRANCH_DOC_TYPE, BranchDoc, Fork, SessionDoc, json_len, partition},
    errors::{stale, store_error},
    lineage::{Before, chain},
    metrics::ItemIo,
};
use crate::{
    domain::{ChatMessage, MessageId, Node, SessionId, Timestamp, Tree, UserId},
    store::{ETag, StoreResult},
};

/// A session as far as a tree operation read it.
#[derive(Debug, Clone)]
pub(super) struct Shape {
    pub(super) doc: SessionDoc,
    pub(super) etag: ETag,
    /// The first sealed page read (the number of pages when none was).
    pub(super) first_page: u32,
    /// The position of `branch[0]` on the current branch.
    pub(super) start: u64,
    /// The current branch from `start` on, `parent_id`s written out (the
    /// first one's as stored, when `start > 0`).
    pub(super) branch: Vec<ChatMessage>,
    /// Every document holding alternatives, once read.
    pub(super) alternatives: Option<Vec<BranchDoc>>,
}

/// Where a message of the session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Place {
    /// On the current branch, at this position.
    Branch(u64),
    /// In `alternatives[doc].messages[at]`.
    Alternative { doc: usize, at: usize },
}

impl Shape {
    /// The session as its document alone shows it.
    pub(super) fn of(doc: SessionDoc, etag: ETag) -> Self {
        let start = doc.sealed();
        let mut branch = doc.session.messages.clone();
        chain(&mut branch, Before::at(start));
        Self {
            first_page: doc.sealed_page_sizes.len() as u32,
            start,
            branch,
            alternatives: (doc.alternative_count() == 0).then(Vec::new),
            etag,
            doc,
        }
    }

    /// Takes `messages`, the newest sealed page of this version as an
    /// earlier read found it, as if read back now.
    pub(super) fn adopt_newest_page(&mut self, messages: Vec<ChatMessage>) {
        let pages = self.doc.sealed_page_sizes.len() as u32;
        if self.first_page != pages || pages == 0 {
            return;
        }
        self.prepend(pages - 1, messages);
    }

    /// Puts `messages`, the current branch from sealed page `page` up to
    /// what this holds, in front of it, their parents written out.
    fn prepend(&mut self, page: u32, mut messages: Vec<ChatMessage>) {
        let start = self.doc.page_start(page);
        chain(&mut messages, Before::at(start));
        if let (Some(last), Some(next)) = (messages.last(), self.branch.first_mut()) {
            next.parent_id = Some(last.id.clone());
        }
        messages.append(&mut self.branch);
        self.branch = messages;
        self.first_page = page;
        self.start = start;
    }

    /// The session's id.
    pub(super) fn id(&self) -> &SessionId {
        &self.doc.session.id
    }

    /// The current branch's last message, if read.
    pub(super) fn last(&self) -> Option<&ChatMessage> {
        self.branch.last()
    }

    /// Where message `id` is, among what was read.
    pub(super) fn place(&self, id: &MessageId) -> Option<Place> {
        if let Some(at) = self.branch.iter().position(|m| m.id == *id) {
            return Some(Place::Branch(self.start + at as u64));
        }
        self.alternatives
            .iter()
            .flatten()
            .enumerate()
            .find_map(|(doc, d)| {
                d.messages
                    .iter()
                    .position(|m| m.id == *id)
                    .map(|at| Place::Alternative { doc, at })
            })
    }

    /// Message `id`, among what was read.
    pub(super) fn message(&self, id: &MessageId) -> Option<&ChatMessage> {
        match self.place(id)? {
            Place::Branch(at) => self.branch.get((at - self.start) as usize),
            Place::Alternative { doc, at } => self.alternatives.as_ref()?[doc].messages.get(at),
        }
    }

    /// Every message read, the current branch's and the alternatives', by
    /// id.
    pub(super) fn by_id(&self) -> HashMap<&MessageId, &ChatMessage> {
        self.branch
            .iter()
            .chain(self.alternative_messages())
            .map(|m| (&m.id, m))
            .collect()
    }

    /// Every alternative read, in the order the documents hold them.
    pub(super) fn alternative_messages(&self) -> impl Iterator<Item = &ChatMessage> {
        self.alternatives
            .iter()
            .flatten()
            .flat_map(|d| d.messages.iter())
    }

    /// Where the path to `id` meets the current branch: the first message
    /// up from it (itself included) that is not an alternative; `None` when
    /// the path starts off the branch (an alternative first message). Needs
    /// the alternatives read.
    pub(super) fn anchor(&self, id: &MessageId) -> Option<MessageId> {
        let parents: HashMap<&MessageId, Option<&MessageId>> = self
            .alternative_messages()
            .map(|m| (&m.id, m.parent_id.as_ref()))
            .collect();
        let mut at = id;
        for _ in 0..=parents.len() {
            match parents.get(at) {
                None => return Some(at.clone()),
                Some(None) => return None,
                Some(Some(parent)) => at = parent,
            }
        }
        None // a cycle in damaged data: treat its top as a first message
    }

    /// The tree of everything read. The current branch before `start` is
    /// not in it: `branch[0]` stands as a first message then, and callers
    /// look no higher than that.
    pub(super) fn tree(&self) -> Tree {
        Tree::new(self.creation_order())
    }

    /// Everything read, in creation order (see [`tree`](Self::tree)).
    pub(super) fn creation_order(&self) -> Vec<Node> {
        creation_order(
            self.branch
                .iter()
                .enumerate()
                .map(|(i, m)| (m, self.start + i as u64))
                .chain(
                    self.alternative_messages()
                        .enumerate()
                        .map(|(i, m)| (m, ALTERNATIVES_AFTER + i as u64)),
                ),
            self.start > 0 && !self.branch.is_empty(),
            &self.doc.forks,
        )
    }
}

/// Where alternatives come in the tie-break of creation order (after the
/// current branch, whatever its length).
pub(super) const ALTERNATIVES_AFTER: u64 = 1 << 48;

/// The tree of `messages`, each with its tie-break (the current branch's
/// messages by position, then the alternatives in the order read), in
/// creation order: by `created_at`; among the same `created_at` (imported
/// siblings may share one) children in the order `forks` lists them, then
/// by that tie-break; and never a child before its parent (clocks of
/// several instances may disagree). With `cut`, the first message of the
/// current branch read follows a message not read: it is made a first
/// message.
pub(super) fn tree_of<'a>(
    messages: impl Iterator<Item = (&'a ChatMessage, u64)>,
    cut: bool,
    forks: &[Fork],
) -> Tree {
    Tree::new(creation_order(messages, cut, forks))
}

/// The nodes of [`tree_of`], in creation order.
pub(super) fn creation_order<'a>(
    messages: impl Iterator<Item = (&'a ChatMessage, u64)>,
    cut: bool,
    forks: &[Fork],
) -> Vec<Node> {
    let ranks: HashMap<&MessageId, u64> = forks
        .iter()
        .flat_map(|f| f.children.iter().zip(0..))
        .collect();
    // (created_at, rank among its siblings, tie-break, id, parent)
    type Row<'m> = (Timestamp, u64, u64, &'m MessageId, Option<&'m MessageId>);
    let mut rows: Vec<Row> = messages
        .map(|(m, tie)| {
            let rank = ranks.get(&m.id).copied().unwrap_or(0);
            (m.created_at, rank, tie, &m.id, m.parent_id.as_ref())
        })
        .collect();
    rows.sort_by_key(|r| (r.0, r.1, r.2));
    if cut && let Some(first) = rows.iter_mut().min_by_key(|r| r.2) {
        first.4 = None;
    }
    let present: std::collections::HashSet<&MessageId> = rows.iter().map(|r| r.3).collect();
    // Emit in that order, holding back a message until its parent is out.
    let mut waiting: HashMap<&MessageId, Vec<usize>> = HashMap::new();
    let mut out: Vec<Node> = Vec::with_capacity(rows.len());
    let mut emitted: std::collections::HashSet<&MessageId> = std::collections::HashSet::new();
    for i in 0..rows.len() {
        let parent = rows[i].4.filter(|p| present.contains(*p));
        if let Some(p) = parent
            && !emitted.contains(p)
        {
            waiting.entry(p).or_default().push(i);
            continue;
        }
        let mut ready = vec![i];
        while let Some(j) = ready.pop() {
            let (_, _, _, id, parent) = rows[j];
            out.push(Node {
                id: id.clone(),
                parent: parent.cloned(),
                order: out.len() as u64,
            });
            emitted.insert(id);
            if let Some(mut children) = waiting.remove(id) {
                children.reverse();
                ready.extend(children);
            }
        }
    }
    // Left waiting only in a cycle (damaged data): last, as they came.
    let mut left: Vec<usize> = waiting.into_values().flatten().collect();
    left.sort_unstable();
    for j in left {
        let (_, _, _, id, parent) = rows[j];
        out.push(Node {
            id: id.clone(),
            parent: parent.cloned(),
            order: out.len() as u64,
        });
    }
    out
}

impl CosmosStore {
    /// Reads the sealed page before what `shape` holds; false when there
    /// is none.
    pub(super) async fn read_back(
        &self,
        user: Option<&UserId>,
        shape: &mut Shape,
    ) -> StoreResult<bool> {
        if shape.first_page == 0 {
            return Ok(false);
        }
        let page = shape.first_page - 1;
        let read = self
            .read_page(user, shape.id(), page, shape.doc.layout)
            .await?;
        shape.prepend(page, read.messages);
        Ok(true)
    }

    /// Reads back until `shape` holds message `id` of the current branch;
    /// its position, or `None` when the branch does not hold it.
    pub(super) async fn read_back_to(
        &self,
        user: Option<&UserId>,
        shape: &mut Shape,
        id: &MessageId,
    ) -> StoreResult<Option<u64>> {
        loop {
            if let Some(at) = shape.branch.iter().position(|m| m.id == *id) {
                return Ok(Some(shape.start + at as u64));
            }
            if !self.read_back(user, shape).await? {
                return Ok(None);
            }
        }
    }

    /// Reads every sealed page `shape` lacks, a few at a time.
    pub(super) async fn read_back_all(
        &self,
        user: Option<&UserId>,
        shape: &mut Shape,
    ) -> StoreResult<()> {
        if shape.first_page == 0 {
            return Ok(());
        }
        let pages = self
            .read_pages(user, shape.id(), 0..shape.first_page, shape.doc.layout)
            .await?;
        shape.prepend(0, pages.into_iter().flat_map(|p| p.messages).collect());
        Ok(())
    }

    /// Reads the session's alternatives into `shape` (one single-partition
    /// query), unless it has them.
    pub(super) async fn read_alternatives(
        &self,
        user: Option<&UserId>,
        shape: &mut Shape,
    ) -> StoreResult<()> {
        if shape.alternatives.is_none() {
            shape.alternatives = Some(
                self.alternatives_of(user, shape.id(), shape.doc.layout)
                    .await?,
            );
        }
        Ok(())
    }

    /// Every document of session `id` holding alternatives, by id; one
    /// written under a later layout than `layout` makes the read stale.
    pub(super) async fn alternatives_of(
        &self,
        user: Option<&UserId>,
        id: &SessionId,
        layout: u64,
    ) -> StoreResult<Vec<BranchDoc>> {
        let query =
            Query::from("SELECT * FROM c WHERE c.doc_type = @type AND c.session_id = @session")
                .with_parameter("@type", BRANCH_DOC_TYPE)
                .and_then(|q| q.with_parameter("@session", id.as_str()))
                .map_err(store_error)?;
        let mut pages = self
            .container()?
            .query_items::<BranchDoc>(query, FeedScope::partition(partition(user)), None)
            .await
            .map_err(store_error)?
            .into_pages();
        let mut docs = Vec::new();
        while let Some(page) = pages.try_next().await.map_err(store_error)? {
            self.metrics
                .record(page.headers().request_charge().map(|c| c.value()));
            self.io(|| ItemIo::Query(json_len(&page.items())));
            docs.extend(page.into_items());
        }
        if docs.iter().any(|d| d.layout > layout) {
            return Err(stale());
        }
        docs.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(docs)
    }

    /// The stored message `id` among the session's alternatives, if there.
    pub(super) async fn find_alternative(
        &self,
        user: Option<&UserId>,
        doc: &SessionDoc,
        id: &MessageId,
    ) -> StoreResult<Option<ChatMessage>> {
        if !doc.alternatives.as_ref().is_some_and(|f| f.may_hold(id)) {
            return Ok(None);
        }
        let docs = self
            .alternatives_of(user, &doc.session.id, doc.layout)
            .await?;
        Ok(docs
            .into_iter()
            .flat_map(|d| d.messages)
            .find(|m| m.id == *id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{JsonObject, MessageType};

    fn message(id: &str, parent: Option<&str>, micros: i64) -> ChatMessage {
        let at = chrono::DateTime::from_timestamp_micros(1_700_000_000_000_000 + micros).unwrap();
        ChatMessage {
            id: MessageId::parse(id).unwrap(),
            content: id.into(),
            message_type: MessageType::User,
            user_id: None,
            metadata: JsonObject::new(),
            created_at: Timestamp::from_datetime(at),
            tool_calls: None,
            tool_call_id: None,
            name: None,
            parent_id: parent.map(|p| MessageId::parse(p).unwrap()),
            edited_at: None,
            siblings: None,
        }
    }

    fn ids(v: &[MessageId]) -> Vec<&str> {
        v.iter().map(MessageId::as_str).collect()
    }

    #[test]
    fn creation_order_is_by_time_then_tie_break_never_a_child_first() {
        // c's clock ran behind: it claims to be older than its parent b.
        let branch = [message("a", None, 0), message("b", Some("a"), 5)];
        let alternatives = [
            message("c", Some("b"), 3),
            message("b2", Some("a"), 5),
            message("c2", Some("b2"), 9),
        ];
        let tree = tree_of(
            branch.iter().enumerate().map(|(i, m)| (m, i as u64)).chain(
                alternatives
                    .iter()
                    .enumerate()
                    .map(|(i, m)| (m, 100 + i as u64)),
            ),
            false,
            &[],
        );
        let a = MessageId::parse("a").unwrap();
        assert_eq!(ids(&tree.branch_through(&a)), ["a", "b2", "c2"]);
        let b = MessageId::parse("b").unwrap();
        assert_eq!(tree.children(Some(&b)).len(), 1);
        assert_eq!(ids(&tree.branch_through(&b)), ["a", "b", "c"]);
        // Cut: the first branch message read stands as a first message.
        let cut = tree_of([(&branch[1], 7)].into_iter(), true, &[]);
        // Siblings of one time, in the order their parent's fork lists.
        let forks = [Fork {
            parent: Some(a.clone()),
            children: vec![MessageId::parse("b2").unwrap(), b.clone()],
        }];
        let tied = tree_of(
            branch.iter().zip(0..).chain(alternatives.iter().zip(100..)),
            false,
            &forks,
        );
        assert_eq!(ids(&tied.branch_through(&a)), ["a", "b", "c"]);
        assert_eq!(cut.children(None), [&b]);
    }
}
