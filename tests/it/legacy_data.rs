//! A generated legacy data set (old one-document-per-message records) with
//! what makes real data hard: orphans, a session whose messages disagree on
//! the user, duplicate deliveries, timestamps out of order, messages without
//! a user, and sessions without any user; plus the expected result.

use std::collections::{BTreeMap, BTreeSet};

use chat_sessions::{
    domain::{SessionId, Timestamp},
    migration::{self, LegacySource, Options, Quiet, Report, Resume},
    store::{DynMigrationStore, Owner, StoreError},
};
use serde_json::{Value, json};

/// The data set.
pub struct LegacySet {
    /// Every record, in the order a source would hold them (shuffled).
    pub records: Vec<Value>,
    /// Ids of records without a session.
    pub orphans: BTreeSet<String>,
    /// The session whose messages carry two user ids.
    pub conflict_session: String,
    /// How many records are exact duplicates of another.
    pub duplicates: usize,
}

/// What a migrated message is compared on.
pub type Key = (String, String, String, String, String, String);

/// A tiny deterministic generator (no dependency, same data every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `sessions` sessions of 1..=2×`per_session` messages over `users` users.
pub fn generate(sessions: usize, per_session: usize, users: usize, duplicates: bool) -> LegacySet {
    let mut rng = Lcg(42);
    let mut records = Vec::new();
    for s in 0..sessions {
        let session_id = format!("sess_{s:05}");
        let user = if s % 17 == 0 {
            None
        } else {
            Some(format!("user_{:03}", s % users))
        };
        let count = 1 + rng.below((2 * per_session) as u64) as usize;
        for m in 0..count {
            // Out of order: timestamps jump around the session's day; some
            // share a second (ties broken by id); some have no zone suffix.
            let seconds = rng.below(86_400);
            let created_at = if m % 5 == 0 {
                format!(
                    "2023-06-{:02}T{:02}:{:02}:{:02}",
                    1 + s % 28,
                    seconds / 3600,
                    seconds / 60 % 60,
                    seconds % 60
                )
            } else {
                format!(
                    "2023-06-{:02}T{:02}:{:02}:{:02}.{:06}Z",
                    1 + s % 28,
                    seconds / 3600,
                    seconds / 60 % 60,
                    seconds % 60,
                    rng.below(1_000_000)
                )
            };
            // Some messages (the assistant's, say) were stored without a user.
            let message_user = if m % 4 == 3 { None } else { user.clone() };
            let message_type = ["user", "assistant", "system"][m % 3];
            records.push(json!({
                "id": format!("m_{s:05}_{m:03}"),
                "session_id": session_id,
                "user_id": message_user,
                "content": format!("message {m} of session {s}: {}", "lorem ipsum ".repeat(1 + (m % 7))),
                "message_type": message_type,
                "metadata": if m % 2 == 0 { json!({}) } else { json!({ "n": m, "tags": ["a", "b"], "deep": { "x": null } }) },
                "created_at": created_at,
            }));
        }
    }
    let conflict_session = "sess_conflict".to_owned();
    for (i, user) in ["user_a", "user_b"].iter().enumerate() {
        records.push(json!({
            "id": format!("m_conflict_{i}"), "session_id": conflict_session, "user_id": user,
            "content": "who am I?", "message_type": "user", "metadata": {}, "created_at": "2023-06-01T00:00:00Z",
        }));
    }
    let mut orphans = BTreeSet::new();
    for i in 0..12 {
        let id = format!("m_orphan_{i:02}");
        let mut record = json!({
            "id": id, "user_id": "user_001", "content": "lost", "message_type": "user",
            "metadata": {}, "created_at": "2023-06-02T00:00:00Z",
        });
        if i % 2 == 0 {
            record["session_id"] = Value::Null;
        }
        records.push(record);
        orphans.insert(id);
    }
    let mut duplicate_count = 0;
    if duplicates {
        // At-least-once writers stored some messages twice.
        for i in (0..records.len()).step_by(97) {
            if records[i]["session_id"].is_string()
                && records[i]["session_id"] != conflict_session.as_str()
            {
                records.push(records[i].clone());
                duplicate_count += 1;
            }
        }
    }
    // Shuffle, as a store scan would return them.
    for i in (1..records.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        records.swap(i, j);
    }
    LegacySet {
        records,
        orphans,
        conflict_session,
        duplicates: duplicate_count,
    }
}

fn key(session_id: &str, m: &Value) -> Key {
    let created_at = Timestamp::parse(m["created_at"].as_str().unwrap())
        .unwrap()
        .to_string();
    (
        session_id.to_owned(),
        m["id"].as_str().unwrap().to_owned(),
        m["content"].as_str().unwrap().to_owned(),
        m["message_type"].as_str().unwrap().to_owned(),
        m["metadata"].to_string(),
        created_at,
    )
}

impl LegacySet {
    /// What the sessions must hold after a migration: every record minus
    /// orphans and the conflict, once each.
    pub fn expected(&self) -> BTreeSet<Key> {
        self.records
            .iter()
            .filter(|r| {
                r["session_id"].is_string() && r["session_id"] != self.conflict_session.as_str()
            })
            .map(|r| key(r["session_id"].as_str().unwrap(), r))
            .collect()
    }

    /// The session ids that must exist afterwards.
    pub fn sessions(&self) -> BTreeSet<String> {
        self.expected().into_iter().map(|k| k.0).collect()
    }

    /// Number of migratable messages (distinct).
    pub fn message_count(&self) -> usize {
        self.expected().len()
    }

    /// The records as JSONL text.
    pub fn jsonl(&self) -> String {
        let mut text = String::new();
        for r in &self.records {
            text.push_str(&r.to_string());
            text.push('\n');
        }
        text
    }
}

/// Reads back every expected session and checks it against the legacy set:
/// the exact multiset of messages, order, counters and owner.
pub async fn verify(store: &DynMigrationStore, set: &LegacySet) {
    let mut found = BTreeSet::new();
    let mut owners: BTreeMap<String, Option<String>> = BTreeMap::new();
    for r in &set.records {
        if let Some(session) = r["session_id"].as_str()
            && let Some(user) = r["user_id"].as_str()
        {
            owners.insert(session.to_owned(), Some(user.to_owned()));
        }
    }
    for session_id in set.sessions() {
        let id = SessionId::parse(session_id.clone()).unwrap();
        let session = store
            .get_session(&Owner::Anonymous, &id)
            .await
            .unwrap_or_else(|e| panic!("session {session_id} missing: {e}"))
            .value;
        assert_eq!(
            session.user_id.as_ref().map(|u| u.as_str().to_owned()),
            owners.get(&session_id).cloned().flatten(),
            "owner of {session_id}"
        );
        assert_eq!(session.message_count as usize, session.messages.len());
        assert!(
            session
                .messages
                .windows(2)
                .all(|w| (w[0].created_at, &w[0].id) <= (w[1].created_at, &w[1].id)),
            "messages of {session_id} in (created_at, id) order"
        );
        assert_eq!(
            session.last_message_at,
            session.messages.last().map(|m| m.created_at)
        );
        assert_eq!(session.created_at, session.messages[0].created_at);
        for m in &session.messages {
            let value = serde_json::to_value(m).unwrap();
            assert!(found.insert(key(&session_id, &value)), "{} twice", m.id);
        }
    }
    assert_eq!(
        found,
        set.expected(),
        "migrated messages = legacy set minus orphans and conflicts"
    );
    let conflict = SessionId::parse(set.conflict_session.clone()).unwrap();
    assert!(matches!(
        store.get_session(&Owner::Anonymous, &conflict).await,
        Err(StoreError::NotFound)
    ));
}

/// One whole migration pass from `source` into `store`, batches of 200.
pub async fn run_pass(
    source: &mut dyn LegacySource,
    store: &DynMigrationStore,
    dry_run: bool,
    delete_old: bool,
    run_id: &str,
) -> Report {
    let options = Options {
        batch_size: 200,
        dry_run,
        delete_old,
        run_id: run_id.into(),
        budget: None,
        continues_step: None,
    };
    migration::run(
        source,
        store.as_ref(),
        &options,
        Resume::new_run(dry_run),
        &mut Quiet,
    )
    .await
    .unwrap()
    .report
}
