//! The walk of a conversation's tree of nodes (`mapping`): every node, a
//! parent before its children, siblings oldest first, and where
//! `current_node` is.

use std::collections::HashMap;

use serde_json::Value;

use super::{Conversation, Node, mapping::Step};

/// A conversation's nodes in walking order.
pub(super) struct Walk<'a> {
    /// Every node of `mapping`, each after its parent.
    pub(super) steps: Vec<Step<'a>>,
    /// The step of `current_node` (`None`: an empty conversation).
    pub(super) current: Option<usize>,
}

/// Walks `conversation`'s tree from its roots, depth first. The branch to
/// `current_node` must be whole, as ChatGPT shows it: every node on it in
/// `mapping` and no cycle (else the fault, in words). A node elsewhere whose
/// parent is missing starts a branch of its own, so that nothing written is
/// lost; one in a cycle is a fault too, since no order can hold it.
pub(super) fn walk(conversation: &Conversation) -> Result<Walk<'_>, String> {
    let mapping = &conversation.mapping;
    let Some(current) = conversation.current_node.as_deref() else {
        return if mapping.is_empty() {
            Ok(Walk {
                steps: Vec::new(),
                current: None,
            })
        } else {
            Err("has no current_node".into())
        };
    };
    check_branch(mapping, current)?;
    // Children by parent, siblings oldest first: where their parent's
    // `children` lists them (ChatGPT's order), then by time, then by id, so
    // that the walk is the same however the object's members come.
    let mut children: HashMap<Option<&str>, Vec<&str>> = HashMap::new();
    for (id, node) in mapping {
        let parent = node.parent.as_deref().filter(|p| mapping.contains_key(*p));
        children.entry(parent).or_default().push(id.as_str());
    }
    for (parent, siblings) in &mut children {
        let listed = parent
            .and_then(|p| mapping.get(p))
            .map(listed_children)
            .unwrap_or_default();
        siblings.sort_by(|a, b| {
            let rank = |id: &str| listed.iter().position(|c| *c == id).unwrap_or(usize::MAX);
            let time = |id: &str| created(&mapping[id]).unwrap_or(f64::NEG_INFINITY);
            rank(a)
                .cmp(&rank(b))
                .then(time(a).total_cmp(&time(b)))
                .then(a.cmp(b))
        });
    }
    let mut steps: Vec<Step<'_>> = Vec::with_capacity(mapping.len());
    let mut at: HashMap<&str, usize> = HashMap::with_capacity(mapping.len());
    // Depth first, each sibling list pushed in reverse so it pops in order.
    let mut stack: Vec<(&str, Option<usize>)> = children
        .get(&None)
        .map(|roots| roots.iter().rev().map(|id| (*id, None)).collect())
        .unwrap_or_default();
    while let Some((id, parent)) = stack.pop() {
        let (id, node) = mapping
            .get_key_value(id)
            .expect("walked ids come from the mapping");
        let step = steps.len();
        at.insert(id.as_str(), step);
        steps.push(Step {
            node_id: id.as_str(),
            parent,
            message: node.message.as_ref(),
        });
        if let Some(below) = children.get(&Some(id.as_str())) {
            stack.extend(below.iter().rev().map(|c| (*c, Some(step))));
        }
    }
    if steps.len() < mapping.len() {
        let mut stuck: Vec<&str> = mapping
            .keys()
            .map(String::as_str)
            .filter(|id| !at.contains_key(id))
            .collect();
        stuck.sort_unstable();
        return Err(format!("the parents of node {} form a cycle", stuck[0]));
    }
    Ok(Walk {
        current: at.get(current).copied(),
        steps,
    })
}

/// The branch from `current` up to its root: every node in `mapping`, no
/// cycle.
fn check_branch(mapping: &HashMap<String, Node>, current: &str) -> Result<(), String> {
    let mut at = current;
    let mut length = 0;
    loop {
        let node = mapping
            .get(at)
            .ok_or_else(|| format!("node {at} is not in mapping"))?;
        length += 1;
        if length > mapping.len() {
            return Err(format!("the parents of node {at} form a cycle"));
        }
        match node.parent.as_deref() {
            Some(parent) => at = parent,
            None => return Ok(()),
        }
    }
}

/// The ids a node's `children` lists, in order (none when it is not an
/// array of strings).
fn listed_children(node: &Node) -> Vec<&str> {
    node.children
        .as_ref()
        .and_then(Value::as_array)
        .map(|ids| ids.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// When a node's message was written, if it says.
fn created(node: &Node) -> Option<f64> {
    node.message.as_ref().and_then(|m| m.create_time)
}
