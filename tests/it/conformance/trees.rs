//! Conversation trees through export and import: every branch exported
//! with its parents and the end of the current branch.

use chat_sessions::{
    domain::{ChatMessage, MessageId, MessageType, Parent, SessionId, SessionSummary, Timestamp},
    store::{
        DynMigrationStore, DynStore, ExportItem, Owner, SessionImport, TreeQuery, export::export,
    },
};
use futures::TryStreamExt as _;
use serde_json::json;

use super::{created, message, sid, unique, user};

fn mid(id: &str) -> MessageId {
    MessageId::parse(id).unwrap()
}

/// Each message's id and parent, in order.
fn shape(messages: &[ChatMessage]) -> Vec<(&str, Option<&str>)> {
    messages
        .iter()
        .map(|m| (m.id.as_str(), m.parent_id.as_ref().map(MessageId::as_str)))
        .collect()
}

/// Appends `id` to session `session` of `owner` under `parent`.
async fn append(store: &DynStore, owner: &Owner, session: &SessionId, id: &str, parent: Parent) {
    let mut new = message(Some(id), &format!("Text of {id} · ünïcødé"));
    new.parent = parent;
    store.append_message(owner, session, new).await.unwrap();
}

/// Every message of session `id` (all branches, creation order), and the
/// end of its current branch, read a page at a time.
async fn whole_tree(
    store: &DynStore,
    owner: &Owner,
    id: &SessionId,
) -> (Vec<ChatMessage>, Option<MessageId>) {
    let mut messages = Vec::new();
    let mut after = 0;
    loop {
        let page = store
            .list_tree(owner, id, TreeQuery { limit: 2, after })
            .await
            .unwrap();
        messages.extend(page.messages);
        match page.next_after {
            Some(next) => after = next,
            None => return (messages, page.current_message_id),
        }
    }
}

/// A session's tree as `export` hands it over.
struct Exported {
    summary: SessionSummary,
    current: Option<MessageId>,
    messages: Vec<ChatMessage>,
}

async fn exported(store: &DynStore, owner: &Owner) -> Vec<Exported> {
    let items: Vec<ExportItem> = export(store.clone(), owner.clone())
        .try_collect()
        .await
        .unwrap();
    let mut out: Vec<Exported> = Vec::new();
    for item in items {
        match item {
            ExportItem::Session {
                summary,
                current_message_id,
            } => out.push(Exported {
                summary,
                current: current_message_id,
                messages: Vec::new(),
            }),
            ExportItem::Messages(id, messages) => {
                let last = out.last_mut().expect("messages after their session");
                assert_eq!(last.summary.id, id);
                last.messages.extend(messages);
            }
        }
    }
    out
}

/// A session branched three ways: m1 → m2, m1 → m2b → m3 (current, by a
/// switch back to it), and a second first message r.
async fn branched(store: &DynStore, owner: &Owner) -> SessionId {
    let id = created(store, owner.user_id()).await;
    append(store, owner, &id, "m1", Parent::Latest).await;
    append(store, owner, &id, "m2", Parent::Latest).await;
    append(store, owner, &id, "m2b", Parent::Message(mid("m1"))).await;
    append(store, owner, &id, "m3", Parent::Latest).await;
    append(store, owner, &id, "r", Parent::Root).await;
    store
        .switch_branch(owner, &id, &mid("m3"), None)
        .await
        .unwrap();
    id
}

/// Messages of a file from before trees (no parents), one a second.
fn old_chain(prefix: &str, n: usize) -> Vec<ChatMessage> {
    (0..n)
        .map(|i| ChatMessage {
            id: mid(&format!("{prefix}{i}")),
            content: format!("old {i}"),
            message_type: MessageType::User,
            user_id: None,
            metadata: json!({ "i": i }).as_object().unwrap().clone(),
            created_at: Timestamp::parse(&format!("2023-05-01T00:00:{i:02}Z")).unwrap(),
            tool_calls: None,
            tool_call_id: None,
            name: None,
            parent_id: None,
            edited_at: None,
            siblings: None,
        })
        .collect()
}

pub async fn export_writes_every_branch_with_parents_and_the_current_one(
    migration: DynMigrationStore,
) {
    let store: DynStore = migration.clone();
    let alice = Owner::User(user(&unique("alice")));
    let tree = branched(&store, &alice).await;
    let linear = created(&store, alice.user_id()).await;
    append(&store, &alice, &linear, "l1", Parent::Latest).await;
    append(&store, &alice, &linear, "l2", Parent::Latest).await;
    let old = sid(&unique("old"));
    migration
        .import_messages(SessionImport {
            id: old.clone(),
            user_id: alice.user_id().cloned(),
            messages: old_chain("o", 3),
        })
        .await
        .unwrap();
    let empty = created(&store, alice.user_id()).await;

    let export = exported(&store, &alice).await;
    let of = |id: &SessionId| export.iter().find(|e| e.summary.id == *id).unwrap();
    let t = of(&tree);
    assert_eq!(
        shape(&t.messages),
        [
            ("m1", None),
            ("m2", Some("m1")),
            ("m2b", Some("m1")),
            ("m3", Some("m2b")),
            ("r", None),
        ],
        "every branch, in creation order, with parents"
    );
    assert_eq!(t.current, Some(mid("m3")));
    assert_eq!(
        (t.summary.message_count, t.summary.total_message_count),
        (5, 5),
        "the file counts every message that follows"
    );
    let stored = store.get_session(&alice, &tree).await.unwrap().value;
    assert_eq!(stored.message_count, 3);
    assert_eq!(t.summary.last_message_at, stored.last_message_at);
    let (all, current) = whole_tree(&store, &alice, &tree).await;
    assert_eq!(current, Some(mid("m3")));
    assert_eq!(t.messages, all, "the messages as the tree lists them");

    let l = of(&linear);
    assert_eq!(shape(&l.messages), [("l1", None), ("l2", Some("l1"))]);
    assert_eq!(l.current, Some(mid("l2")));
    // Stored without parents: the export says whom each follows.
    let o = of(&old);
    assert_eq!(
        shape(&o.messages),
        [("o0", None), ("o1", Some("o0")), ("o2", Some("o1"))]
    );
    assert_eq!(o.current, Some(mid("o2")));
    assert_eq!(
        (o.summary.message_count, o.summary.total_message_count),
        (3, 3)
    );
    let e = of(&empty);
    assert_eq!((e.current.as_ref(), e.messages.len()), (None, 0));
}
