//! The tree operations ([`BranchStore`]) on this backend. The current branch
//! stays where a session's messages have always been (the document and its
//! sealed pages); the other messages are in documents of alternatives
//! (`session_branch`) beside them. A change reads the session document, the
//! alternatives when it needs them (one query) and the pages from the first
//! position it touches on, then writes everything in one transactional
//! batch guarded by the document's ETag (`relayout`, `commit`); a change
//! too large for one batch is refused. Reads that see alternatives check
//! that the document did not change meanwhile (a conditional read).

use std::time::Instant;

use async_trait::async_trait;

use super::{
    CosmosStore,
    documents::SessionDoc,
    errors::{APPEND_DEADLINE, again_if_stale, backoff, busy, is_stale},
    fork::with_branch,
    lineage::{Before, chain, chained, mark, pick, unchain},
    relayout::{Plan, full_change, plan},
    shape::{Place, Shape},
};
use crate::{
    domain::{
        ChatMessage, ChatSession, DeleteScope, MessageEdit, MessageId, SessionId, Timestamp, UserId,
    },
    store::{
        BranchStore, ETag, Owner, StoreError, StoreResult, TreePage, TreeQuery, Versioned,
        branch::unknown_message,
    },
};

/// Whether an earlier attempt of a tree write failed: it may have been
/// applied all the same (an answer lost after the write, which the SDK's
/// retry then meets as another writer's 412).
#[derive(Debug, Clone, Copy, Default)]
struct Tries {
    ambiguous: bool,
}

impl CosmosStore {
    /// Runs a tree write on the session's freshest version until it goes
    /// through: again after another writer got in between (unless the
    /// caller named the version, `if_match`), after a page rewritten under
    /// the read, and after a failure that may or may not have applied it;
    /// within the append deadline. Writes to one session from this process
    /// take turns with its appends.
    async fn tree_write<T, F, Fut>(
        &self,
        user: Option<&UserId>,
        id: &SessionId,
        if_match: Option<&ETag>,
        mut write: F,
    ) -> StoreResult<T>
    where
        F: FnMut(Tries) -> Fut,
        Fut: std::future::Future<Output = StoreResult<T>>,
    {
        let key = (user.cloned(), id.clone());
        let Some(_turn) = self.turns.take(&key, APPEND_DEADLINE).await else {
            return Err(busy());
        };
        let started = Instant::now();
        let mut tries = Tries::default();
        let mut attempt = 0u32;
        loop {
            let error = match write(tries).await {
                Err(e) if is_stale(&e) => StoreError::PreconditionFailed,
                Err(e) => e,
                ok => return ok,
            };
            self.versions.forget(&key);
            let again = match &error {
                StoreError::PreconditionFailed => if_match.is_none(),
                StoreError::Unavailable { .. } => true,
                _ => false,
            };
            tries.ambiguous = true;
            if !again || started.elapsed() >= APPEND_DEADLINE {
                return Err(error);
            }
            tokio::time::sleep(backoff(attempt)).await;
            attempt += 1;
        }
    }

    /// The session's document, as a shape, if it is still the version the
    /// caller named.
    async fn shape_at(
        &self,
        user: Option<&UserId>,
        id: &SessionId,
        if_match: Option<&ETag>,
    ) -> StoreResult<Shape> {
        let (doc, etag) = self.read_current(user, id).await?;
        if if_match.is_some_and(|expected| *expected != etag) {
            return Err(StoreError::PreconditionFailed);
        }
        Ok(Shape::of(doc, etag))
    }

    /// The whole session, its alternatives read, checked to be one version.
    async fn whole_tree(&self, user: Option<&UserId>, id: &SessionId) -> StoreResult<Shape> {
        let mut shape = self.shape_at(user, id, None).await?;
        self.read_back_all(user, &mut shape).await?;
        if shape.doc.alternative_count() > 0 {
            self.read_alternatives(user, &mut shape).await?;
            // Alternatives deleted after the document was read leave no
            // trace in the query: the document must still be that version.
            if self.read_doc(user, id, Some(&shape.etag)).await?.is_some() {
                return Err(super::errors::stale());
            }
        }
        Ok(shape)
    }

    /// The session as it reads after a change to `doc`: the pages before
    /// the shape's start (unchanged), then `branch`.
    async fn session_after(
        &self,
        user: Option<&UserId>,
        shape: &Shape,
        doc: &SessionDoc,
        branch: Vec<ChatMessage>,
    ) -> StoreResult<ChatSession> {
        let mut messages: Vec<ChatMessage> = self
            .read_pages(user, shape.id(), 0..shape.first_page, doc.layout)
            .await?
            .into_iter()
            .flat_map(|p| p.messages)
            .collect();
        messages.extend(branch);
        chain(&mut messages, Before::Start);
        mark(&mut messages, &doc.forks);
        let mut session = doc.session.clone();
        session.messages = messages;
        Ok(session)
    }

    /// Reads what a change around message `id` needs: the alternatives, and
    /// the current branch from where `id`'s path meets it (from the first
    /// message when it starts off the branch); `None` when the session has
    /// no such message.
    async fn reach(
        &self,
        user: Option<&UserId>,
        shape: &mut Shape,
        id: &MessageId,
    ) -> StoreResult<Option<Place>> {
        self.read_alternatives(user, shape).await?;
        let anchor = match shape.place(id) {
            Some(Place::Alternative { .. }) => shape.anchor(id),
            _ => match self.read_back_to(user, shape, id).await? {
                Some(_) => Some(id.clone()),
                None => return Ok(None),
            },
        };
        match anchor {
            Some(anchor) if self.read_back_to(user, shape, &anchor).await?.is_some() => {}
            _ => self.read_back_all(user, shape).await?,
        }
        Ok(shape.place(id))
    }

    async fn switch_once(
        &self,
        user: Option<&UserId>,
        id: &SessionId,
        message: &MessageId,
        if_match: Option<&ETag>,
    ) -> StoreResult<Versioned<ChatSession>> {
        let mut shape = self.shape_at(user, id, if_match).await?;
        if self.reach(user, &mut shape, message).await?.is_none() {
            return Err(unknown_message("current_message_id", message));
        }
        let mut ids = shape.tree().branch_through(message);
        if shape.start > 0 && ids.first() != shape.branch.first().map(|m| &m.id) {
            self.read_back_all(user, &mut shape).await?;
            ids = shape.tree().branch_through(message);
        }
        let branch = chained(&shape.by_id(), &ids, Before::Unread);
        let unchanged = branch
            .iter()
            .map(|m| &m.id)
            .eq(shape.branch.iter().map(|m| &m.id));
        if unchanged {
            let session = self.session_after(user, &shape, &shape.doc, branch).await?;
            return Ok(Versioned {
                value: session,
                etag: shape.etag,
            });
        }
        let change = with_branch(&shape, branch.clone(), Timestamp::now());
        let plan = plan(&self.seal, &shape, change);
        plan.check("current_message_id")?;
        let etag = self.commit(user, &plan, &shape.etag).await?;
        let session = self.session_after(user, &shape, &plan.doc, branch).await?;
        Ok(Versioned {
            value: session,
            etag,
        })
    }

    async fn edit_once(
        &self,
        user: Option<&UserId>,
        id: &SessionId,
        message: &MessageId,
        edit: &MessageEdit,
        if_match: Option<&ETag>,
    ) -> StoreResult<Versioned<ChatMessage>> {
        let mut shape = self.shape_at(user, id, if_match).await?;
        let may_be_alternative = shape
            .doc
            .alternatives
            .as_ref()
            .is_some_and(|f| f.may_hold(message));
        if may_be_alternative && shape.place(message).is_none() {
            self.read_alternatives(user, &mut shape).await?;
        }
        if shape.place(message).is_none() {
            self.read_back_to(user, &mut shape, message).await?;
        }
        let place = shape.place(message).ok_or(StoreError::MessageNotFound)?;
        let now = Timestamp::now();
        let mut edited = shape
            .message(message)
            .cloned()
            .ok_or(StoreError::MessageNotFound)?;
        edit.apply_to(&mut edited, now)?;
        let plan = edit_plan(&shape, place, &edited, now);
        let etag = self.commit(user, &plan, &shape.etag).await?;
        edited.siblings = None;
        Ok(Versioned {
            value: edited,
            etag,
        })
    }

    async fn delete_once(
        &self,
        user: Option<&UserId>,
        id: &SessionId,
        message: &MessageId,
        scope: DeleteScope,
        if_match: Option<&ETag>,
        tries: Tries,
    ) -> StoreResult<ETag> {
        let mut shape = self.shape_at(user, id, if_match).await?;
        let Some(place) = self.reach(user, &mut shape, message).await? else {
            // A delete whose answer was lost, tried again: done already.
            return if tries.ambiguous {
                Ok(shape.etag)
            } else {
                Err(StoreError::MessageNotFound)
            };
        };
        // Its parent's children change: the parent must be read too.
        if let Place::Branch(at) = place
            && at == shape.start
            && at > 0
        {
            self.read_back(user, &mut shape).await?;
        }
        let tree = shape.tree();
        let parent = tree.parent(message).cloned();
        if parent.is_none() {
            // Among the first messages: all of the branch is needed.
            self.read_back_all(user, &mut shape).await?;
        }
        let tree = shape.tree();
        let gone: std::collections::HashSet<MessageId> = match scope {
            DeleteScope::Message => [message.clone()].into(),
            DeleteScope::Subtree => tree.subtree(message).into_iter().collect(),
        };
        let adopt = |m: &ChatMessage| {
            let mut m = m.clone();
            if m.parent_id.as_ref() == Some(message) {
                m.parent_id = parent.clone();
            }
            m
        };
        let mut branch: Vec<ChatMessage> = match shape.place(message) {
            Some(Place::Branch(at)) if scope == DeleteScope::Subtree => {
                shape.branch[..(at - shape.start) as usize].to_vec()
            }
            _ => shape
                .branch
                .iter()
                .filter(|m| m.id != *message)
                .map(adopt)
                .collect(),
        };
        if shape.start == 0 {
            chain(&mut branch, Before::Start);
        }
        let alternatives: Vec<ChatMessage> = shape
            .alternative_messages()
            .filter(|m| !gone.contains(&m.id))
            .map(adopt)
            .collect();
        let change = full_change(&shape, branch, alternatives, Timestamp::now());
        let plan = plan(&self.seal, &shape, change);
        plan.check("message_id")?;
        self.commit(user, &plan, &shape.etag).await
    }
}

/// The writes of an edit: the one document holding the message, and the
/// session document (its version moves; a page or an alternative written
/// again moves its layout).
fn edit_plan(shape: &Shape, place: Place, edited: &ChatMessage, now: Timestamp) -> Plan {
    let mut doc = shape.doc.clone();
    doc.session.updated_at = doc.session.updated_at.max(now);
    let mut plan = Plan {
        pages: Vec::new(),
        gone_pages: Vec::new(),
        branches: Vec::new(),
        gone_branches: Vec::new(),
        gone_bytes: Vec::new(),
        newest_page: None,
        doc,
    };
    let sealed = shape.doc.sealed();
    let layout = shape.doc.layout + 1;
    match place {
        Place::Branch(at) if at >= sealed => {
            let at = (at - sealed) as usize;
            plan.doc.session.messages[at] = edited.clone();
            unchain(&mut plan.doc.session.messages[at.saturating_sub(1)..]);
        }
        Place::Branch(at) => {
            let pages = &shape.doc.sealed_page_sizes;
            let page = shape.doc.page_of(at).unwrap_or_default();
            let from = (shape.doc.page_start(page) - shape.start) as usize;
            let mut messages = shape.branch[from..from + pages[page as usize] as usize].to_vec();
            for m in &mut messages {
                if m.id == edited.id {
                    *m = edited.clone();
                }
            }
            unchain(&mut messages);
            if let Some(prefix) = plan.doc.system_prefix.as_mut() {
                for m in prefix.iter_mut().filter(|m| m.id == edited.id) {
                    *m = edited.clone();
                }
            }
            let user = shape.doc.session.user_id.clone();
            plan.pages.push(super::documents::PageDoc::sealed(
                shape.id(),
                user,
                page,
                messages,
                layout,
            ));
            plan.doc.layout = layout;
        }
        Place::Alternative { doc, at } => {
            let mut stored = shape.alternatives.as_ref().expect("read")[doc].clone();
            stored.messages[at] = edited.clone();
            stored.layout = layout;
            plan.branches.push(stored);
            plan.doc.layout = layout;
        }
    }
    plan
}

#[async_trait]
impl BranchStore for CosmosStore {
    async fn read_branch(
        &self,
        owner: &Owner,
        id: &SessionId,
        message: &MessageId,
    ) -> StoreResult<Versioned<ChatSession>> {
        let user = self.partition_of(owner, id).await?;
        let user = user.as_ref();
        again_if_stale(|| async move {
            let shape = self.whole_tree(user, id).await?;
            let tree = shape.tree();
            if !tree.contains(message) {
                return Err(unknown_message("message_id", message));
            }
            let mut messages =
                chained(&shape.by_id(), &tree.branch_through(message), Before::Start);
            tree.mark_siblings(&mut messages);
            let mut session = shape.doc.session;
            session.message_count = messages.len() as u64;
            session.last_message_at = messages.last().map(|m| m.created_at);
            session.messages = messages;
            Ok(Versioned {
                value: session,
                etag: shape.etag,
            })
        })
        .await
    }

    async fn switch_branch(
        &self,
        owner: &Owner,
        id: &SessionId,
        message: &MessageId,
        if_match: Option<&ETag>,
    ) -> StoreResult<Versioned<ChatSession>> {
        let user = self.partition_of(owner, id).await?;
        let user = user.as_ref();
        self.tree_write(user, id, if_match, |_| {
            self.switch_once(user, id, message, if_match)
        })
        .await
    }

    async fn list_tree(
        &self,
        owner: &Owner,
        id: &SessionId,
        query: TreeQuery,
    ) -> StoreResult<TreePage> {
        let user = self.partition_of(owner, id).await?;
        let user = user.as_ref();
        again_if_stale(|| async move {
            let shape = self.whole_tree(user, id).await?;
            let order = shape.creation_order();
            let limit = query.limit.clamp(1, 1000) as usize;
            let from = usize::try_from(query.after)
                .unwrap_or(usize::MAX)
                .min(order.len());
            let to = (from + limit).min(order.len());
            let ids: Vec<MessageId> = order[from..to].iter().map(|n| n.id.clone()).collect();
            let messages = pick(&shape.by_id(), &ids);
            Ok(TreePage {
                messages,
                current_message_id: shape.last().map(|m| m.id.clone()),
                next_after: (to < order.len()).then_some(to as u64),
                etag: shape.etag,
            })
        })
        .await
    }

    async fn edit_message(
        &self,
        owner: &Owner,
        id: &SessionId,
        message: &MessageId,
        edit: &MessageEdit,
        if_match: Option<&ETag>,
    ) -> StoreResult<Versioned<ChatMessage>> {
        let user = self.partition_of(owner, id).await?;
        let user = user.as_ref();
        self.tree_write(user, id, if_match, |_| {
            self.edit_once(user, id, message, edit, if_match)
        })
        .await
    }

    async fn delete_message(
        &self,
        owner: &Owner,
        id: &SessionId,
        message: &MessageId,
        scope: DeleteScope,
        if_match: Option<&ETag>,
    ) -> StoreResult<ETag> {
        let user = self.partition_of(owner, id).await?;
        let user = user.as_ref();
        self.tree_write(user, id, if_match, |tries| {
            self.delete_once(user, id, message, scope, if_match, tries)
        })
        .await
    }
}
