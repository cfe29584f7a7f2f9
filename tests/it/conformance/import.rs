//! The `ImportStore` side of the suite: whole sessions brought in from a
//! file with their own fields, ids and times (created once, merged after),
//! sessions of every length, and the check for other owners' sessions.

use chat_sessions::{
    domain::{ChatMessage, MessageId, MessageType, SessionId, Timestamp, UserId},
    store::{
        DynMigrationStore, ImportOutcome, ListQuery, Owner, SessionFields, SessionImport,
        StoreError,
    },
};
use serde_json::json;

use super::{chained, new_session, sid, unique, user};

fn at(text: &str) -> Timestamp {
    Timestamp::parse(text).unwrap()
}

fn message(id: &str, time: &str, owner: Option<&UserId>) -> ChatMessage {
    ChatMessage {
        tool_calls: None,
        tool_call_id: None,
        name: None,
        parent_id: None,
        edited_at: None,
        siblings: None,
        id: MessageId::parse(id).unwrap(),
        content: format!("Grüße, {id} ✓"),
        message_type: MessageType::Assistant,
        user_id: owner.cloned(),
        metadata: json!({ "model": "x", "n": [1, 2.5] })
            .as_object()
            .unwrap()
            .clone(),
        created_at: at(time),
    }
}

fn fields() -> SessionFields {
    SessionFields {
        session_name: Some("Reise nach Kyōto".into()),
        context: json!({ "topic": "travel", "nested": { "a": null } })
            .as_object()
            .unwrap()
            .clone(),
        is_active: false,
        archived_at: Some(at("2024-02-01T08:00:00.000001Z")),
        created_at: at("2024-01-01T00:00:00.5Z"),
        updated_at: at("2024-02-01T08:00:00.000001Z"),
        current_message_id: None,
    }
}

fn import_of(id: &SessionId, owner: Option<&UserId>, messages: Vec<ChatMessage>) -> SessionImport {
    SessionImport {
        id: id.clone(),
        user_id: owner.cloned(),
        messages,
    }
}

fn ids(messages: &[ChatMessage]) -> Vec<&str> {
    messages.iter().map(|m| m.id.as_str()).collect()
}

pub async fn import_session_creates_it_with_the_files_fields_and_order(store: DynMigrationStore) {
    let alice = user(&unique("alice"));
    let id = sid(&unique("s"));
    // Two messages of one instant, their ids against alphabetical order:
    // the order given is kept, as it was served before an export.
    let mut messages = vec![
        message("m_c", "2024-01-01T00:00:01Z", Some(&alice)),
        message("m_b", "2024-01-01T00:00:02Z", Some(&alice)),
        message("m_a", "2024-01-01T00:00:02Z", Some(&alice)),
    ];
    // Edited before its export: the time it was edited comes back too.
    messages[1].edited_at = Some(at("2024-01-03T00:00:00Z"));
    let outcome = store
        .import_session(fields(), import_of(&id, Some(&alice), messages.clone()))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        ImportOutcome {
            created: true,
            added: 3,
            already_present: 0
        }
    );
    let s = store
        .get_session(&Owner::User(alice.clone()), &id)
        .await
        .unwrap()
        .value;
    let f = fields();
    assert_eq!(s.user_id.as_ref(), Some(&alice));
    assert_eq!(s.session_name, f.session_name);
    assert_eq!(s.context, f.context);
    assert!(!s.is_active);
    assert_eq!(s.archived_at, f.archived_at);
    assert_eq!(s.created_at, f.created_at);
    assert_eq!(s.updated_at, f.updated_at);
    assert_eq!(s.message_count, 3);
    assert_eq!(s.last_message_at, Some(at("2024-01-01T00:00:02Z")));
    assert_eq!(
        s.messages,
        chained(&messages),
        "ids, contents, metadata, times, order; each follows the one before"
    );
    let listed = store
        .list_sessions(
            &Owner::User(alice),
            &ListQuery {
                limit: 50,
                is_active: Some(false),
                continuation: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(listed.sessions.len(), 1);
    assert_eq!(listed.sessions[0], s.summary());
}

pub async fn import_session_creates_a_session_without_messages(store: DynMigrationStore) {
    let alice = user(&unique("alice"));
    let id = sid(&unique("s"));
    let outcome = store
        .import_session(fields(), import_of(&id, Some(&alice), Vec::new()))
        .await
        .unwrap();
    assert!(outcome.created);
    assert_eq!(outcome.added, 0);
    let s = store
        .get_session(&Owner::User(alice.clone()), &id)
        .await
        .unwrap()
        .value;
    assert_eq!(s.message_count, 0);
    assert_eq!(s.last_message_at, None);
    assert_eq!(s.updated_at, fields().updated_at);
    let again = store
        .import_session(fields(), import_of(&id, Some(&alice), Vec::new()))
        .await
        .unwrap();
    assert_eq!(again, ImportOutcome::default());
}

pub async fn import_session_into_an_existing_session_adds_only_what_it_lacks(
    store: DynMigrationStore,
) {
    let alice = user(&unique("alice"));
    let owner = Owner::User(alice.clone());
    let id = sid(&unique("s"));
    let first = vec![message("m_1", "2024-01-01T00:00:01Z", Some(&alice))];
    store
        .import_session(fields(), import_of(&id, Some(&alice), first))
        .await
        .unwrap();
    store
        .update_session(
            &owner,
            &id,
            &chat_sessions::domain::SessionPatch {
                session_name: Some(Some("renamed since".into())),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    let before = store.get_session(&owner, &id).await.unwrap().value;
    // The same message with other content, and two new ones.
    let mut changed = message("m_1", "2024-01-01T00:00:01Z", Some(&alice));
    changed.content = "rewritten".into();
    let file = vec![
        changed,
        message("m_2", "2024-01-01T00:00:02Z", Some(&alice)),
        message("m_3", "2024-03-01T00:00:00Z", Some(&alice)),
    ];
    let mut other_fields = fields();
    other_fields.session_name = Some("from the file".into());
    other_fields.is_active = true;
    let outcome = store
        .import_session(
            other_fields.clone(),
            import_of(&id, Some(&alice), file.clone()),
        )
        .await
        .unwrap();
    assert_eq!(
        outcome,
        ImportOutcome {
            created: false,
            added: 2,
            already_present: 1
        }
    );
    let after = store.get_session(&owner, &id).await.unwrap().value;
    assert_eq!(ids(&after.messages), ["m_1", "m_2", "m_3"]);
    assert_eq!(after.messages[0], before.messages[0], "stored content wins");
    assert_eq!(after.messages[1..], chained(&file)[1..]);
    assert_eq!(after.session_name.as_deref(), Some("renamed since"));
    assert_eq!(after.is_active, before.is_active);
    assert_eq!(after.context, before.context);
    assert_eq!(after.message_count, 3);
    assert_eq!(after.last_message_at, Some(at("2024-03-01T00:00:00Z")));
    assert!(after.updated_at >= at("2024-03-01T00:00:00Z"));
    let again = store
        .import_session(other_fields, import_of(&id, Some(&alice), file))
        .await
        .unwrap();
    assert_eq!(again.added, 0);
    assert_eq!(again.already_present, 3);
    assert_eq!(store.get_session(&owner, &id).await.unwrap().value, after);
}

/// A session far larger than one Cosmos document may be (2 MB): it goes
/// into sealed pages there, and reads back whole and in order everywhere.
pub async fn import_session_of_any_length_reads_back_whole(store: DynMigrationStore) {
    let alice = user(&unique("alice"));
    let id = sid(&unique("s"));
    let body = "x".repeat(1000);
    let messages: Vec<ChatMessage> = (0..3000)
        .map(|i| {
            let mut m = message(&format!("m_{i:05}"), "2024-01-01T00:00:00Z", Some(&alice));
            m.created_at = Timestamp::from_datetime(
                at("2024-01-01T00:00:00Z").as_datetime() + chrono::Duration::seconds(i),
            );
            m.content = format!("{i} {body}");
            m
        })
        .collect();
    let outcome = store
        .import_session(fields(), import_of(&id, Some(&alice), messages.clone()))
        .await
        .unwrap();
    assert_eq!(outcome.added, 3000);
    let s = store
        .get_session(&Owner::User(alice.clone()), &id)
        .await
        .unwrap()
        .value;
    assert_eq!(s.message_count, 3000);
    assert!(
        s.messages == chained(&messages),
        "all 3000 messages, in order"
    );
    let again = store
        .import_session(fields(), import_of(&id, Some(&alice), messages))
        .await
        .unwrap();
    assert_eq!((again.added, again.already_present), (0, 3000));
}

pub async fn sessions_of_others_names_only_other_owners_sessions(store: DynMigrationStore) {
    let (alice, bob) = (user(&unique("alice")), user(&unique("bob")));
    let (mine, bobs, unowned, missing) = (
        sid(&unique("mine")),
        sid(&unique("bobs")),
        sid(&unique("unowned")),
        sid(&unique("missing")),
    );
    store
        .create_session(new_session(&mine, Some(&alice)))
        .await
        .unwrap();
    store
        .create_session(new_session(&bobs, Some(&bob)))
        .await
        .unwrap();
    store
        .create_session(new_session(&unowned, None))
        .await
        .unwrap();
    let all = [mine.clone(), bobs.clone(), unowned.clone(), missing.clone()];
    let mut of_others = store
        .sessions_of_others(&Owner::User(alice.clone()), &all)
        .await
        .unwrap();
    of_others.sort();
    let mut expected = vec![bobs.clone(), unowned.clone()];
    expected.sort();
    assert_eq!(of_others, expected);
    let mut of_others = store
        .sessions_of_others(&Owner::Anonymous, &all)
        .await
        .unwrap();
    of_others.sort();
    let mut expected = vec![mine, bobs];
    expected.sort();
    assert_eq!(of_others, expected);
    // More ids than one query takes.
    let many: Vec<SessionId> = (0..250).map(|i| sid(&format!("{missing}_{i}"))).collect();
    assert!(
        store
            .sessions_of_others(&Owner::User(alice), &many)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn import_session_into_another_owners_session_conflicts_and_changes_nothing(
    store: DynMigrationStore,
) {
    let (alice, mallory) = (user(&unique("alice")), user(&unique("mallory")));
    let id = sid(&unique("s"));
    store
        .create_session(new_session(&id, Some(&alice)))
        .await
        .unwrap();
    let before = store
        .get_session(&Owner::User(alice.clone()), &id)
        .await
        .unwrap();
    let result = store
        .import_session(
            fields(),
            import_of(
                &id,
                Some(&mallory),
                vec![message("m_1", "2024-01-01T00:00:01Z", Some(&mallory))],
            ),
        )
        .await;
    assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
    let after = store.get_session(&Owner::User(alice), &id).await.unwrap();
    assert_eq!(before, after);
}
