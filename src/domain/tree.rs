//! A session as a tree of messages: every message follows its parent (the
//! first ones follow none), and the session shows one branch of it, from a
//! first message down to a leaf. Both stores keep that branch materialized
//! (it is what `messages` holds) and use [`Tree`] to find another one.

use std::collections::HashMap;

use super::{JsonObject, MessageId, ValidationError, check_message, message::ChatMessage};

/// Where an appended message goes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Parent {
    /// After the current branch's last message (no `parent_id` sent).
    #[default]
    Latest,
    /// A new first message (`parent_id: null`): a new root branch.
    Root,
    /// After this message of the session.
    Message(MessageId),
}

impl Parent {
    /// The parent this append asks for, when it names one.
    pub fn named(&self) -> Option<Option<&MessageId>> {
        match self {
            Self::Latest => None,
            Self::Root => Some(None),
            Self::Message(id) => Some(Some(id)),
        }
    }

    /// Whether a message stored with `stored` as its parent answers a retry
    /// of this append: a retry without `parent_id` matches any parent.
    pub fn matches(&self, stored: Option<&MessageId>) -> bool {
        self.named().is_none_or(|named| named == stored)
    }
}

/// One message's place in the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The message.
    pub id: MessageId,
    /// The message it follows; `None` for a first message.
    pub parent: Option<MessageId>,
    /// When it was created relative to the session's other messages (any
    /// increasing number; a child is always created after its parent).
    pub order: u64,
}

/// A session's messages as a tree, for finding branches. Built from every
/// message's [`Node`]; messages whose parent is missing count as first
/// messages, so a damaged tree still reads.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    nodes: Vec<Node>,
    index: HashMap<MessageId, usize>,
    /// Children of each message (`None`: the first messages), oldest first.
    children: HashMap<Option<MessageId>, Vec<usize>>,
}

impl Tree {
    /// The tree of `nodes`, in any order.
    pub fn new(mut nodes: Vec<Node>) -> Self {
        nodes.sort_by_key(|n| n.order);
        let index: HashMap<MessageId, usize> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.clone(), i))
            .collect();
        let mut children: HashMap<Option<MessageId>, Vec<usize>> = HashMap::new();
        for (i, node) in nodes.iter().enumerate() {
            let parent = node.parent.clone().filter(|p| index.contains_key(p));
            children.entry(parent).or_default().push(i);
        }
        Self {
            nodes,
            index,
            children,
        }
    }

    /// Number of messages.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether there are no messages.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Whether `id` is a message of the tree.
    pub fn contains(&self, id: &MessageId) -> bool {
        self.index.contains_key(id)
    }

    /// The parent of `id` (`None` for a first message or an unknown id).
    pub fn parent(&self, id: &MessageId) -> Option<&MessageId> {
        let node = &self.nodes[*self.index.get(id)?];
        node.parent.as_ref().filter(|p| self.index.contains_key(*p))
    }

    /// The children of `parent` (`None`: the first messages), oldest first.
    pub fn children(&self, parent: Option<&MessageId>) -> Vec<&MessageId> {
        self.children
            .get(&parent.cloned())
            .map(|c| c.iter().map(|&i| &self.nodes[i].id).collect())
            .unwrap_or_default()
    }

    /// The messages that share `id`'s parent, `id` included, oldest first.
    pub fn siblings(&self, id: &MessageId) -> Vec<&MessageId> {
        self.children(self.parent(id))
    }

    /// The messages from a first message down to `id`, in order.
    pub fn path_to(&self, id: &MessageId) -> Vec<MessageId> {
        let mut path = Vec::new();
        let mut at = Some(id);
        while let Some(id) = at.filter(|id| self.contains(id)) {
            path.push(id.clone());
            at = self.parent(id);
            if path.len() >= self.nodes.len() {
                break; // no path is longer: a cycle in damaged data ends here
            }
        }
        path.reverse();
        path
    }

    /// The branch that shows `id`: the path to it, continued along the most
    /// recently created child down to a leaf. Empty for an unknown id.
    pub fn branch_through(&self, id: &MessageId) -> Vec<MessageId> {
        let mut branch = self.path_to(id);
        while let Some(last) = branch.last() {
            let Some(&newest) = self
                .children
                .get(&Some(last.clone()))
                .and_then(|c| c.last())
            else {
                break;
            };
            if branch.len() >= self.nodes.len() {
                break;
            }
            branch.push(self.nodes[newest].id.clone());
        }
        branch
    }

    /// `id` and every message under it, parents before children.
    pub fn subtree(&self, id: &MessageId) -> Vec<MessageId> {
        let mut out = Vec::new();
        if !self.contains(id) {
            return out;
        }
        let mut stack = vec![id.clone()];
        while let Some(at) = stack.pop() {
            for child in self.children(Some(&at)).into_iter().rev() {
                stack.push(child.clone());
            }
            out.push(at);
            if out.len() >= self.nodes.len() {
                break;
            }
        }
        out
    }

    /// Sets `siblings` on each of `branch`'s messages that has any: the ids
    /// of it and its siblings, oldest first (what a "‹ 2/3 ›" control needs).
    pub fn mark_siblings(&self, branch: &mut [ChatMessage]) {
        for message in branch {
            let siblings = self.siblings(&message.id);
            message.siblings =
                (siblings.len() > 1).then(|| siblings.into_iter().cloned().collect());
        }
    }
}

/// A change to one message's content or metadata (`PATCH`), validated.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MessageEdit {
    /// New content.
    pub content: Option<String>,
    /// New metadata, replacing the old.
    pub metadata: Option<JsonObject>,
}

impl MessageEdit {
    /// Applies the edit to `message`, marking it edited at `now`; fails,
    /// changing nothing, when the result breaks a message rule.
    pub fn apply_to(
        &self,
        message: &mut ChatMessage,
        now: super::Timestamp,
    ) -> Result<(), ValidationError> {
        if let Some(content) = &self.content {
            check_message(content, message.message_type, &message.tool_parts())?;
            message.content = content.clone();
        }
        if let Some(metadata) = &self.metadata {
            message.metadata = metadata.clone();
        }
        message.edited_at = Some(now);
        Ok(())
    }
}

/// What a message delete removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeleteScope {
    /// The message alone; its children follow its parent instead.
    #[default]
    Message,
    /// The message and everything under it.
    Subtree,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> MessageId {
        MessageId::parse(s).unwrap()
    }

    fn tree(edges: &[(&str, Option<&str>)]) -> Tree {
        Tree::new(
            edges
                .iter()
                .enumerate()
                .map(|(i, (m, p))| Node {
                    id: id(m),
                    parent: p.map(id),
                    order: i as u64,
                })
                .collect(),
        )
    }

    #[test]
    fn a_branch_runs_through_a_message_to_the_newest_leaf() {
        // a - b - c
        //   \ b2 - c2
        //        \ c3
        let t = tree(&[
            ("a", None),
            ("b", Some("a")),
            ("c", Some("b")),
            ("b2", Some("a")),
            ("c2", Some("b2")),
            ("c3", Some("b2")),
        ]);
        let names = |v: Vec<MessageId>| v.iter().map(|m| m.to_string()).collect::<Vec<_>>();
        assert_eq!(names(t.branch_through(&id("a"))), ["a", "b2", "c3"]);
        assert_eq!(names(t.branch_through(&id("b"))), ["a", "b", "c"]);
        assert_eq!(names(t.branch_through(&id("c2"))), ["a", "b2", "c2"]);
        assert_eq!(names(t.path_to(&id("c3"))), ["a", "b2", "c3"]);
        assert_eq!(t.siblings(&id("b2")), [&id("b"), &id("b2")]);
        assert_eq!(t.siblings(&id("a")), [&id("a")]);
        assert_eq!(names(t.subtree(&id("b2"))), ["b2", "c2", "c3"]);
        assert!(t.branch_through(&id("zz")).is_empty());
    }

    #[test]
    fn a_missing_parent_makes_a_first_message_and_a_cycle_ends() {
        let t = tree(&[("a", Some("gone")), ("x", Some("y")), ("y", Some("x"))]);
        assert_eq!(t.path_to(&id("a")), [id("a")]);
        assert!(t.path_to(&id("x")).len() <= 3);
        assert_eq!(t.children(None), [&id("a")]);
    }

    #[test]
    fn a_retry_without_a_parent_matches_any_parent() {
        assert!(Parent::Latest.matches(Some(&id("a"))));
        assert!(Parent::Root.matches(None));
        assert!(!Parent::Root.matches(Some(&id("a"))));
        assert!(Parent::Message(id("a")).matches(Some(&id("a"))));
        assert!(!Parent::Message(id("a")).matches(None));
    }
}
