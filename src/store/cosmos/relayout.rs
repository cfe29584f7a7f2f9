//! From what a tree operation decided (the new current branch, what
//! becomes of the other messages) to the documents it writes, all in one
//! transactional batch: the session document (guarded by its ETag), the
//! sealed pages from the first position that changed on (laid out again as
//! a seal would: full pages, the newest messages in the document), and the
//! documents of alternatives that changed. Pages before that position and
//! alternatives left alone are not touched.

use std::collections::{HashMap, HashSet};

use super::{
    SealPolicy,
    documents::{BranchDoc, Fork, PageDoc, SessionDoc, json_len, page_id},
    filter::Filter,
    lineage::unchain,
    shape::{ALTERNATIVES_AFTER, Shape, tree_of},
};
use crate::{
    domain::{ChatMessage, MessageId, Timestamp, ValidationError},
    store::{StoreError, StoreResult, leading_system},
};

/// Operations one transactional batch may hold.
pub(super) const MAX_BATCH_OPERATIONS: usize = 100;
/// Bytes of documents one transactional batch may carry: Cosmos DB's 2 MB
/// request limit, less room for the batch's own framing.
pub(super) const MAX_BATCH_BYTES: usize = 1_900_000;

/// What a tree operation decided.
#[derive(Debug)]
pub(super) struct Change {
    /// The current branch from the shape's `start` on, `parent_id`s written
    /// out.
    pub(super) branch: Vec<ChatMessage>,
    /// The messages off the current branch afterwards.
    pub(super) alternatives: Alternatives,
    /// The document's `forks` afterwards.
    pub(super) forks: Vec<Fork>,
    /// The document's `alternatives` afterwards.
    pub(super) filter: Option<Filter>,
    /// `total_message_count` afterwards.
    pub(super) total: u64,
    /// When it happens (`updated_at` moves up to it).
    pub(super) now: Timestamp,
}

/// What becomes of the messages off the current branch.
#[derive(Debug)]
pub(super) enum Alternatives {
    /// The stored ones stay as they are; these (which left the current
    /// branch) join them.
    Added(Vec<ChatMessage>),
    /// All of them, oldest first (the shape read them all): stored ones
    /// missing here go, changed ones are written again.
    All(Vec<ChatMessage>),
}

/// The writes of one tree operation.
#[derive(Debug)]
pub(super) struct Plan {
    /// The session document, replaced if it still has the version read.
    pub(super) doc: SessionDoc,
    /// Sealed pages written (new or replacing).
    pub(super) pages: Vec<PageDoc>,
    /// Ids of sealed pages deleted.
    pub(super) gone_pages: Vec<String>,
    /// Documents of alternatives written (new or replacing).
    pub(super) branches: Vec<BranchDoc>,
    /// Ids of documents of alternatives deleted.
    pub(super) gone_branches: Vec<String>,
    /// The sizes of the documents deleted, about (a delete costs what a
    /// write of the item costs), for the item log.
    pub(super) gone_bytes: Vec<usize>,
    /// The messages of the newest sealed page afterwards, when known (for
    /// the next append's cache).
    pub(super) newest_page: Option<Vec<ChatMessage>>,
}

impl Plan {
    /// Operations of the batch.
    pub(super) fn operations(&self) -> usize {
        1 + self.pages.len()
            + self.gone_pages.len()
            + self.branches.len()
            + self.gone_branches.len()
    }

    /// Bytes of documents the batch carries.
    pub(super) fn bytes(&self) -> usize {
        json_len(&self.doc)
            + self.pages.iter().map(json_len).sum::<usize>()
            + self.branches.iter().map(json_len).sum::<usize>()
    }

    /// Refuses a change that one transactional batch cannot hold, naming
    /// `field` (what the request named).
    pub(super) fn check(&self, field: &'static str) -> StoreResult<()> {
        let (operations, bytes) = (self.operations(), self.bytes());
        if operations <= MAX_BATCH_OPERATIONS && bytes <= MAX_BATCH_BYTES {
            return Ok(());
        }
        Err(StoreError::Invalid(ValidationError::new(
            field,
            format!(
                "this change would rewrite {operations} documents ({:.1} MB) of this session at \
                 once, more than one atomic write holds ({MAX_BATCH_OPERATIONS} documents, \
                 {:.1} MB); branching, switching or deleting this far back in a session this \
                 long is not supported",
                bytes as f64 / 1e6,
                MAX_BATCH_BYTES as f64 / 1e6
            ),
        )))
    }
}

/// The writes that make `change` of `shape` true.
pub(super) fn plan(policy: &SealPolicy, shape: &Shape, change: Change) -> Plan {
    let old = &shape.doc;
    let layout = old.layout + 1;
    let common = shape
        .branch
        .iter()
        .zip(&change.branch)
        .take_while(|(a, b)| a.id == b.id)
        .count() as u64;
    let changed_at = shape.start + common;
    let pages = old.sealed_page_sizes.len() as u32;
    // The first page that changes (none: the change is in the document).
    let first = old.page_of(changed_at).unwrap_or(pages);
    let from = (old.page_start(first) - shape.start) as usize;
    let mut doc = old.clone();
    doc.forks = change.forks;
    doc.alternatives = change.filter;
    doc.session.total_message_count = change.total;
    doc.session.message_count = shape.start + change.branch.len() as u64;
    doc.session.last_message_at = change.branch.last().map(|m| m.created_at);
    doc.session.updated_at = doc.session.updated_at.max(change.now);
    doc.sealed_page_sizes.truncate(first as usize);
    doc.session.messages = Vec::new();
    let stretch = &change.branch[from..];
    let sizes = lay_out(
        policy,
        json_len(&doc) - doc.allowance(),
        stretch,
        first < pages,
    );
    let session = doc.session.id.clone();
    let user = doc.session.user_id.clone();
    let mut at = 0;
    let mut written: Vec<PageDoc> = Vec::with_capacity(sizes.len());
    for (i, size) in sizes.into_iter().enumerate() {
        let mut messages = stretch[at..at + size].to_vec();
        unchain(&mut messages);
        let page = first + i as u32;
        written.push(PageDoc::sealed(
            &session,
            user.clone(),
            page,
            messages,
            layout,
        ));
        at += size;
    }
    doc.session.messages = stretch[at..].to_vec();
    unchain(&mut doc.session.messages);
    doc.sealed_page_sizes
        .extend(written.iter().map(|p| p.messages.len() as u32));
    if first == 0 {
        // As the first seal does: the leading system messages, when their
        // run ends inside page 0.
        doc.system_prefix = written.first().and_then(|page| {
            let leading = leading_system(page.messages.iter());
            (leading.len() < page.messages.len()).then_some(leading)
        });
    }
    let gone: Vec<u32> = (first + written.len() as u32..pages).collect();
    let mut gone_bytes: Vec<usize> = gone.iter().map(|&p| page_bytes(shape, p)).collect();
    let gone_pages = gone.iter().map(|&page| page_id(&session, page)).collect();
    let (branches, gone_branches) = branch_writes(policy, shape, change.alternatives, layout);
    gone_bytes.extend(gone_branches.iter().map(|id| {
        shape
            .alternatives
            .iter()
            .flatten()
            .find(|d| d.id == *id)
            .map_or(0, json_len)
    }));
    let newest_page = newest_page(shape, &doc, first, &written);
    let mut plan = Plan {
        doc,
        pages: written,
        gone_pages,
        branches,
        gone_branches,
        gone_bytes,
        newest_page,
    };
    // A change of the document alone keeps its layout (the one cloned).
    if plan.operations() > 1 {
        plan.doc.layout = layout;
    }
    plan
}

/// How `stretch` (the current branch from the first page that changes on)
/// is laid out: the sizes of the pages to write, the rest going into a
/// document of `base` bytes without messages. All of it in the document
/// when the change is within it (`rewriting` false) and it fits there; else
/// as an import lays a session out, the oldest in full pages and the newest
/// (what a seal leaves) in the document, so that appends go on for a while
/// before the next seal. Messages are measured as stored (no parent).
fn lay_out(
    policy: &SealPolicy,
    base: usize,
    stretch: &[ChatMessage],
    rewriting: bool,
) -> Vec<usize> {
    let bare: Vec<ChatMessage> = stretch
        .iter()
        .map(|m| ChatMessage {
            parent_id: None,
            ..m.clone()
        })
        .collect();
    let mut rest = &bare[..];
    let len = base + 64 + rest.iter().map(|m| json_len(m) + 1).sum::<usize>();
    let mut sizes = Vec::new();
    if !rewriting && !policy.over(len, rest.len(), 0, 0) {
        return sizes;
    }
    while rest.len() > policy.kept_len(rest) {
        let take = policy
            .page_len(rest.iter())
            .min(rest.len() - policy.kept_len(rest))
            .max(1);
        sizes.push(take);
        rest = &rest[take..];
    }
    sizes
}

/// About the stored size of old sealed page `page` (read into `shape`).
fn page_bytes(shape: &Shape, page: u32) -> usize {
    let doc = &shape.doc;
    let from = doc.page_start(page).saturating_sub(shape.start) as usize;
    let size = doc.sealed_page_sizes[page as usize] as usize;
    let messages = shape.branch.get(from..from + size).unwrap_or_default();
    messages.iter().map(|m| json_len(m) + 1).sum::<usize>() + 200
}

/// The newest page's messages after the plan, when written or read.
fn newest_page(
    shape: &Shape,
    doc: &SessionDoc,
    first: u32,
    written: &[PageDoc],
) -> Option<Vec<ChatMessage>> {
    let pages = doc.sealed_page_sizes.len() as u32;
    if pages == 0 {
        return None;
    }
    let newest = pages - 1;
    if newest >= first {
        return written.last().map(|p| p.messages.clone());
    }
    if newest < shape.first_page {
        return None;
    }
    let from = (doc.page_start(newest) - shape.start) as usize;
    let size = doc.sealed_page_sizes[newest as usize] as usize;
    shape.branch.get(from..from + size).map(<[_]>::to_vec)
}

/// The documents of alternatives to write and to delete.
fn branch_writes(
    policy: &SealPolicy,
    shape: &Shape,
    alternatives: Alternatives,
    layout: u64,
) -> (Vec<BranchDoc>, Vec<String>) {
    let session = shape.id();
    let user = shape.doc.session.user_id.clone();
    let chunked = |messages: &[ChatMessage]| -> Vec<BranchDoc> {
        let mut out = Vec::new();
        let mut rest = messages;
        while !rest.is_empty() {
            let take = policy.page_len(rest.iter());
            out.push(BranchDoc::new(
                session,
                user.clone(),
                rest[..take].to_vec(),
                layout,
            ));
            rest = &rest[take..];
        }
        out
    };
    let all = match alternatives {
        Alternatives::Added(added) => return (chunked(&added), Vec::new()),
        Alternatives::All(all) => all,
    };
    let order: Vec<MessageId> = all.iter().map(|m| m.id.clone()).collect();
    let mut left: HashMap<MessageId, ChatMessage> =
        all.into_iter().map(|m| (m.id.clone(), m)).collect();
    let mut written = Vec::new();
    let mut gone = Vec::new();
    for stored in shape.alternatives.iter().flatten() {
        let kept: Vec<ChatMessage> = stored
            .messages
            .iter()
            .filter_map(|m| left.remove(&m.id))
            .collect();
        if kept.is_empty() {
            gone.push(stored.id.clone());
        } else if kept != stored.messages {
            let again = BranchDoc::new(session, user.clone(), kept, layout);
            if again.id != stored.id {
                gone.push(stored.id.clone());
            }
            written.push(again);
        }
    }
    let new: Vec<ChatMessage> = order.iter().filter_map(|id| left.remove(id)).collect();
    written.extend(chunked(&new));
    // An id both deleted and written again is only written.
    let rewritten: HashSet<&String> = written.iter().map(|d| &d.id).collect();
    gone.retain(|id| !rewritten.contains(id));
    (written, gone)
}

/// The change that makes `branch` (from the shape's `start` on) the
/// current branch and `alternatives` every message read that is off it,
/// `parent_id`s as they should be: `forks`, the filter and the total
/// follow from them.
pub(super) fn full_change(
    shape: &Shape,
    branch: Vec<ChatMessage>,
    alternatives: Vec<ChatMessage>,
    now: Timestamp,
) -> Change {
    full_change_ordered(shape, branch, alternatives, now, &[])
}

/// [`full_change`], where siblings of one `created_at` not in the
/// session's `forks` come in the order `order` lists them (a file's).
pub(super) fn full_change_ordered(
    shape: &Shape,
    branch: Vec<ChatMessage>,
    alternatives: Vec<ChatMessage>,
    now: Timestamp,
    order: &[Fork],
) -> Change {
    let hints: Vec<Fork> = shape.doc.forks.iter().chain(order).cloned().collect();
    let tree = tree_of(
        branch
            .iter()
            .enumerate()
            .map(|(i, m)| (m, shape.start + i as u64))
            .chain(
                alternatives
                    .iter()
                    .enumerate()
                    .map(|(i, m)| (m, ALTERNATIVES_AFTER + i as u64)),
            ),
        shape.start > 0 && !branch.is_empty(),
        &hints,
    );
    // Forks before what was read are as they were; those of what was read
    // are found again.
    let read: HashSet<&MessageId> = shape
        .branch
        .iter()
        .chain(shape.alternative_messages())
        .map(|m| &m.id)
        .collect();
    let mut forks: Vec<Fork> = shape
        .doc
        .forks
        .iter()
        .filter(|f| match &f.parent {
            Some(parent) => !read.contains(parent),
            None => shape.start > 0,
        })
        .cloned()
        .collect();
    // Each parent read (the start too, when read) with the message after
    // it on the branch: walked in step, as ids on a branch are unique.
    let on_branch = branch.iter().map(|m| Some(&m.id));
    let keys = (shape.start == 0)
        .then_some(None)
        .into_iter()
        .chain(on_branch.clone());
    let nexts = on_branch
        .skip(usize::from(shape.start > 0))
        .chain(std::iter::once(None));
    for (key, next) in keys.zip(nexts) {
        let children = tree.children(key);
        if children.iter().any(|c| Some(*c) != next) {
            forks.push(Fork {
                parent: key.cloned(),
                children: children.into_iter().cloned().collect(),
            });
        }
    }
    let before = shape.branch.len() + shape.alternative_messages().count();
    let after = branch.len() + alternatives.len();
    let total = shape.doc.session.total_message_count + after as u64 - before as u64;
    let filter = Filter::of(alternatives.iter().map(|m| &m.id));
    Change {
        branch,
        alternatives: Alternatives::All(alternatives),
        forks,
        filter,
        total,
        now,
    }
}
