//! What every read of the current branch adds to the messages it found:
//! their `parent_id` (a message stored before conversations were trees
//! has none, and on the current branch each message follows the one before
//! it) and their `siblings`, from the session document's `forks`, with no
//! other read.

use std::collections::HashMap;

use super::documents::Fork;
use crate::domain::{ChatMessage, MessageId};

/// What comes before a stretch of the current branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Before {
    /// Nothing: the stretch starts the branch.
    Start,
    /// This message.
    Message(MessageId),
    /// Not read: the stretch's first message keeps the parent it was
    /// stored with.
    Unread,
}

impl Before {
    /// What comes before a stretch starting at `position`, when nothing
    /// before it was read.
    pub(super) fn at(position: u64) -> Self {
        if position == 0 {
            Self::Start
        } else {
            Self::Unread
        }
    }
}

/// Sets `parent_id` along `messages`, a stretch of the current branch:
/// each follows the one before it, the first follows `before`.
pub(super) fn chain(messages: &mut [ChatMessage], before: Before) {
    let mut previous = match before {
        Before::Start => Some(None),
        Before::Message(id) => Some(Some(id)),
        Before::Unread => None,
    };
    for message in messages {
        if let Some(parent) = previous {
            message.parent_id = parent;
        }
        previous = Some(Some(message.id.clone()));
    }
}

/// The messages `ids` that `by_id` holds, in that order.
pub(super) fn pick(
    by_id: &HashMap<&MessageId, &ChatMessage>,
    ids: &[MessageId],
) -> Vec<ChatMessage> {
    ids.iter()
        .filter_map(|id| by_id.get(id).map(|m| (*m).clone()))
        .collect()
}

/// The messages `ids` (a path, in order) that `by_id` holds, [`chain`]ed:
/// each after the one before it, the first after `before`.
pub(super) fn chained(
    by_id: &HashMap<&MessageId, &ChatMessage>,
    ids: &[MessageId],
    before: Before,
) -> Vec<ChatMessage> {
    let mut out = pick(by_id, ids);
    chain(&mut out, before);
    out
}

/// The stored form of `messages`, the current branch's messages of one
/// document (the session's or a sealed page): only the first names its
/// parent (which is in another document); every other one follows the one
/// before it, so it says nothing (`null`). A parent id in each of 50 typical
/// messages would make them outgrow one document.
pub(super) fn unchain(messages: &mut [ChatMessage]) {
    for message in messages.iter_mut().skip(1) {
        message.parent_id = None;
    }
}

/// Marks `siblings` on the messages of a stretch of the current branch
/// (whose `parent_id`s are [`chain`]ed) that have any, from `forks`.
pub(super) fn mark(messages: &mut [ChatMessage], forks: &[Fork]) {
    if forks.is_empty() {
        return;
    }
    let by_parent: HashMap<Option<&MessageId>, &Vec<MessageId>> = forks
        .iter()
        .map(|f| (f.parent.as_ref(), &f.children))
        .collect();
    for message in messages {
        message.siblings = by_parent
            .get(&message.parent_id.as_ref())
            .filter(|children| children.len() > 1 && children.contains(&message.id))
            .map(|children| (*children).clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{JsonObject, MessageType, Timestamp};

    fn id(s: &str) -> MessageId {
        MessageId::parse(s).unwrap()
    }

    fn message(s: &str, parent: Option<&str>) -> ChatMessage {
        ChatMessage {
            id: id(s),
            content: s.into(),
            message_type: MessageType::User,
            user_id: None,
            metadata: JsonObject::new(),
            created_at: Timestamp::now(),
            tool_calls: None,
            tool_call_id: None,
            name: None,
            parent_id: parent.map(id),
            edited_at: None,
            siblings: None,
        }
    }

    #[test]
    fn old_messages_follow_the_one_before_and_siblings_come_from_forks() {
        let mut stretch = vec![message("b", None), message("c", None), message("d", None)];
        chain(&mut stretch, Before::Unread);
        assert_eq!(stretch[0].parent_id, None, "unread: as stored");
        assert_eq!(stretch[2].parent_id, Some(id("c")));
        chain(&mut stretch, Before::Message(id("a")));
        assert_eq!(stretch[0].parent_id, Some(id("a")));
        let forks = [Fork {
            parent: Some(id("b")),
            children: vec![id("c"), id("c2")],
        }];
        mark(&mut stretch, &forks);
        assert_eq!(stretch[1].siblings, Some(vec![id("c"), id("c2")]));
        assert_eq!(stretch[0].siblings, None);
        assert_eq!(stretch[2].siblings, None);
        let mut first = vec![message("a", Some("stale"))];
        chain(&mut first, Before::Start);
        assert_eq!(first[0].parent_id, None);
        unchain(&mut stretch);
        assert_eq!(stretch[0].parent_id, Some(id("a")), "the first keeps it");
        assert!(stretch[1..].iter().all(|m| m.parent_id.is_none()));
        chain(&mut stretch, Before::Unread);
        assert_eq!(stretch[2].parent_id, Some(id("c")), "and reads it back");
    }
}
