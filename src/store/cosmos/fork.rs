//! Appending where the current branch does not end: under an earlier
//! message (a new branch), as a new first message, or after a last message
//! that already has children. The path to the parent plus the new message
//! becomes the current branch; what followed the parent on it moves into
//! alternatives — all in one transactional batch with the session document.
//!
//! A parent on the current branch needs the session document and the pages
//! from the parent's on, nothing else: the new sibling joins the `forks` the
//! document keeps, and the messages leaving the branch go into new
//! documents of alternatives (no other alternative changes). A parent among
//! the alternatives needs them all (one query) to find its path.

use super::{
    CosmosStore,
    documents::{Fork, SessionDoc},
    filter::Filter,
    lineage::{Before, chained},
    relayout::{Alternatives, Change, full_change, plan},
    shape::{Place, Shape},
};
use crate::{
    domain::{ChatMessage, MessageId, NewMessage, Parent, Timestamp, UserId},
    store::{Appended, ETag, StoreResult, branch::unknown_message},
};

/// Where the new message goes.
enum Under {
    /// After the branch's message at this position (`None`: as a first
    /// message).
    Branch(Option<u64>),
    /// After this alternative.
    Alternative(MessageId),
}

/// A time for a message created now that sorts after everything the
/// session holds (creation order decides which child is the newest), even
/// when this instance's clock is behind another's.
pub(super) fn creation_time(doc: &SessionDoc) -> Timestamp {
    let session = &doc.session;
    let floor = session
        .updated_at
        .max(session.last_message_at.unwrap_or(session.updated_at));
    let next = Timestamp::from_datetime(floor.as_datetime() + chrono::Duration::microseconds(1));
    Timestamp::now().max(next)
}

impl CosmosStore {
    /// Appends `message` where it branches, to version `etag` of `doc`
    /// (read just now, with its newest page's messages when a sealed one;
    /// the message id is in neither the document nor the alternatives).
    /// `Ok` with a replay when the message turns out stored in a page read
    /// on the way.
    pub(super) async fn append_branching(
        &self,
        user: Option<&UserId>,
        message: &NewMessage,
        doc: SessionDoc,
        etag: ETag,
        newest_page: Option<Vec<ChatMessage>>,
    ) -> StoreResult<Appended> {
        let mut shape = Shape::of(doc, etag);
        if let Some(page) = newest_page {
            shape.adopt_newest_page(page);
        }
        let under = self.place_parent(user, &mut shape, &message.parent).await?;
        if let Some(stored) = shape.message(&message.id) {
            return Appended::replay(stored.clone(), message, shape.etag.clone());
        }
        let now = creation_time(&shape.doc);
        let parent = match &under {
            Under::Branch(None) => None,
            Under::Branch(Some(at)) => Some(shape.branch[(at - shape.start) as usize].id.clone()),
            Under::Alternative(id) => Some(id.clone()),
        };
        let stored = ChatMessage::stored(
            message.clone(),
            message
                .user_id
                .clone()
                .or_else(|| shape.doc.session.user_id.clone()),
            now,
            parent,
        );
        let change = match under {
            Under::Branch(at) => match on_branch(&shape, at, &stored, now) {
                Some(change) => change,
                None => {
                    // The filter of alternatives is full: built afresh,
                    // from all of them.
                    self.read_alternatives(user, &mut shape).await?;
                    let keep = at.map_or(0, |at| at + 1 - shape.start) as usize;
                    let mut branch = shape.branch[..keep].to_vec();
                    branch.push(stored.clone());
                    with_branch(&shape, branch, now)
                }
            },
            Under::Alternative(parent) => {
                let mut branch = self.path_to(user, &mut shape, &parent).await?;
                branch.push(stored.clone());
                with_branch(&shape, branch, now)
            }
        };
        let plan = plan(&self.seal, &shape, change);
        plan.check("parent_id")?;
        let etag = self.commit(user, &plan, &shape.etag).await?;
        Ok(Appended {
            message: stored,
            created: true,
            etag,
        })
    }

    /// Finds where `parent` is, reading what that takes: the pages back to
    /// it when it is on the current branch (all of them for a first
    /// message), the alternatives when the filter says it may be one.
    async fn place_parent(
        &self,
        user: Option<&UserId>,
        shape: &mut Shape,
        parent: &Parent,
    ) -> StoreResult<Under> {
        let named = match parent {
            Parent::Root => None,
            Parent::Message(id) => Some(id.clone()),
            Parent::Latest => {
                if shape.branch.is_empty() {
                    self.read_back(user, shape).await?;
                }
                shape.last().map(|m| m.id.clone())
            }
        };
        let Some(named) = named else {
            self.read_back_all(user, shape).await?;
            return Ok(Under::Branch(None));
        };
        if let Some(Place::Branch(at)) = shape.place(&named) {
            return Ok(Under::Branch(Some(at)));
        }
        if shape
            .doc
            .alternatives
            .as_ref()
            .is_some_and(|f| f.may_hold(&named))
        {
            self.read_alternatives(user, shape).await?;
            if let Some(Place::Alternative { .. }) = shape.place(&named) {
                return Ok(Under::Alternative(named));
            }
        }
        match self.read_back_to(user, shape, &named).await? {
            Some(at) => Ok(Under::Branch(Some(at))),
            None => Err(unknown_message("parent_id", &named)),
        }
    }

    /// The path from the current branch's start (or the first message)
    /// down to alternative `id`, `parent_id`s written out, with the pages
    /// it needs read; the alternatives are read.
    pub(super) async fn path_to(
        &self,
        user: Option<&UserId>,
        shape: &mut Shape,
        id: &MessageId,
    ) -> StoreResult<Vec<ChatMessage>> {
        match shape.anchor(id) {
            Some(anchor) if self.read_back_to(user, shape, &anchor).await?.is_some() => {}
            // A first message, or a parent nobody holds (damaged data): the
            // path starts the session.
            _ => self.read_back_all(user, shape).await?,
        }
        let ids = shape.tree().path_to(id);
        let mut path = chained(&shape.by_id(), &ids, Before::Unread);
        if shape.start > 0 && path.first().map(|m| &m.id) != shape.branch.first().map(|m| &m.id) {
            // Not through what was read: from the first message, then.
            self.read_back_all(user, shape).await?;
            path = chained(&shape.by_id(), &shape.tree().path_to(id), Before::Unread);
        }
        Ok(path)
    }
}

/// The change making `branch` (from the shape's start on) current, every
/// other message read an alternative.
pub(super) fn with_branch(shape: &Shape, branch: Vec<ChatMessage>, now: Timestamp) -> Change {
    let on: std::collections::HashSet<&MessageId> = branch.iter().map(|m| &m.id).collect();
    let alternatives: Vec<ChatMessage> = shape
        .branch
        .iter()
        .chain(shape.alternative_messages())
        .filter(|m| !on.contains(&m.id))
        .cloned()
        .collect();
    drop(on);
    full_change(shape, branch, alternatives, now)
}

/// The change appending `stored` after the branch's message at `at`
/// (`None`: as a first message; the shape then holds the whole branch)
/// without reading the alternatives: what followed it joins them. `None`
/// when the filter of alternatives would be too full; it is then built
/// afresh from all of them.
fn on_branch(
    shape: &Shape,
    at: Option<u64>,
    stored: &ChatMessage,
    now: Timestamp,
) -> Option<Change> {
    let doc = &shape.doc;
    let keep = at.map_or(0, |at| at + 1 - shape.start) as usize;
    let detached = shape.branch[keep..].to_vec();
    let filter = if detached.is_empty() {
        doc.alternatives.clone()
    } else {
        let count = doc.alternative_count() + detached.len() as u64;
        match &doc.alternatives {
            None => Filter::of(detached.iter().map(|m| &m.id)),
            Some(filter) if filter.holds_well(count) => {
                let mut filter = filter.clone();
                for m in &detached {
                    filter.insert(&m.id);
                }
                Some(filter)
            }
            Some(_) => return None,
        }
    };
    let parent = stored.parent_id.as_ref();
    let gone: std::collections::HashSet<&MessageId> = detached.iter().map(|m| &m.id).collect();
    let mut forks: Vec<Fork> = doc
        .forks
        .iter()
        .filter(|f| f.parent.as_ref().is_none_or(|p| !gone.contains(p)))
        .filter(|f| f.parent.as_ref() != parent)
        .cloned()
        .collect();
    let mut children: Vec<MessageId> = match doc.fork_of(parent) {
        Some(fork) => fork.children.clone(),
        None => detached.first().map(|m| m.id.clone()).into_iter().collect(),
    };
    children.push(stored.id.clone());
    if children.len() > 1 {
        forks.push(Fork {
            parent: parent.cloned(),
            children,
        });
    }
    let mut branch = shape.branch[..keep].to_vec();
    branch.push(stored.clone());
    Some(Change {
        branch,
        alternatives: Alternatives::Added(detached),
        forks,
        filter,
        total: doc.session.total_message_count + 1,
        now,
    })
}
