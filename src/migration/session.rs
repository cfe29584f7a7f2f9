//! One legacy session: its records checked (one owner, valid messages,
//! duplicates agreeing), then imported, read back and its old records
//! deleted, or, in a dry run, previewed.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;

use super::{Conflict, Deleter, Item, LegacyMessage, LegacyRecord, Options, Report};
use crate::{
    domain::{ChatMessage, JsonObject, MessageId, MessageType, SessionId, Timestamp, UserId},
    store::{MigrationStore, Owner, SessionImport, SessionStore, StoreError},
};

/// The records of one session, checked: the owner, the messages to import in
/// order, and the records each message came from (for deletion).
struct Checked {
    user_id: Option<UserId>,
    messages: Vec<ChatMessage>,
    /// Records whose message is in `messages`, by message id.
    sources: HashMap<String, Vec<LegacyRecord>>,
}

fn check(records: Vec<LegacyRecord>, report: &mut Report) -> Result<Checked, String> {
    let users: BTreeSet<&str> = records
        .iter()
        .filter_map(|r| r.message.user_id.as_deref())
        .collect();
    if users.len() > 1 {
        return Err(format!(
            "messages carry different user ids: {}",
            users.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    let user_id = match users.into_iter().next() {
        Some(user) => Some(UserId::parse(user).map_err(|e| format!("bad user id: {e}"))?),
        None => None,
    };
    let mut by_id: BTreeMap<String, (ChatMessage, Vec<LegacyRecord>)> = BTreeMap::new();
    for record in records {
        let message = match to_message(&record.message) {
            Ok(message) => message,
            Err(why) => {
                report.note_invalid(format!(
                    "{} ({why})",
                    record.message.id.as_deref().unwrap_or("<no id>")
                ));
                continue;
            }
        };
        match by_id.get_mut(message.id.as_str()) {
            Some((first, copies)) => {
                if first.content != message.content
                    || first.message_type != message.message_type
                    || first.metadata != message.metadata
                    || first.created_at != message.created_at
                {
                    return Err(format!(
                        "message id {} appears with different contents",
                        message.id
                    ));
                }
                report.duplicate_records += 1;
                copies.push(record);
            }
            None => {
                by_id.insert(message.id.as_str().to_owned(), (message, vec![record]));
            }
        }
    }
    let mut messages = Vec::with_capacity(by_id.len());
    let mut sources = HashMap::with_capacity(by_id.len());
    for (id, (message, copies)) in by_id {
        messages.push(message);
        sources.insert(id, copies);
    }
    messages.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    Ok(Checked {
        user_id,
        messages,
        sources,
    })
}

fn to_message(legacy: &LegacyMessage) -> Result<ChatMessage, String> {
    let id = MessageId::parse(legacy.id.clone().ok_or("no id")?).map_err(|e| e.to_string())?;
    let message_type = MessageType::parse(legacy.message_type.as_deref().ok_or("no message_type")?)
        .map_err(|e| e.to_string())?;
    let created_at = Timestamp::parse(legacy.created_at.as_deref().ok_or("no created_at")?)
        .map_err(|e| e.to_string())?;
    let metadata = match &legacy.metadata {
        None | Some(Value::Null) => JsonObject::new(),
        Some(Value::Object(map)) => map.clone(),
        Some(_) => return Err("metadata is not an object".into()),
    };
    let user_id = legacy
        .user_id
        .as_deref()
        .map(UserId::parse)
        .transpose()
        .map_err(|e| e.to_string())?;
    Ok(ChatMessage {
        id,
        content: legacy.content.clone().ok_or("no content")?,
        message_type,
        user_id,
        metadata,
        created_at,
        tool_calls: None,
        tool_call_id: None,
        name: None,
        // Legacy sessions are linear: the store reads a message without a
        // parent as following the one before it.
        parent_id: None,
        edited_at: None,
        siblings: None,
    })
}

/// Migrates one item of the source into `report`. Fails only for a fault
/// of the storage under the store (a full disk), which ends the run.
pub(super) async fn migrate_item(
    item: Item,
    deleter: Option<&dyn Deleter>,
    store: &dyn MigrationStore,
    options: &Options,
    report: &mut Report,
) -> Result<(), StoreError> {
    let (session_id, records) = match item {
        Item::Orphan(record) => {
            let id = record.message.id.as_deref().unwrap_or("<no id>");
            tracing::info!(
                message_id = id,
                "orphan: legacy message without session_id, left in place"
            );
            report.note_orphan(id);
            return Ok(());
        }
        Item::Unreadable { what } => {
            tracing::warn!("unreadable legacy record, left in place: {what}");
            report.note_invalid(what);
            return Ok(());
        }
        Item::Session {
            session_id,
            records,
        } => (session_id, records),
    };
    let conflict = |report: &mut Report, reason: String| {
        tracing::warn!(session_id = %session_id, "conflict, session left untouched: {reason}");
        report.conflicts.push(Conflict {
            session_id: session_id.clone(),
            reason,
        });
    };
    let id = match SessionId::parse(session_id.clone()) {
        Ok(id) => id,
        Err(e) => {
            for record in &records {
                report.note_invalid(format!(
                    "{} (session id {session_id:?}: {e})",
                    record.message.id.as_deref().unwrap_or("<no id>")
                ));
            }
            return Ok(());
        }
    };
    let checked = match check(records, report) {
        Ok(checked) if checked.messages.is_empty() => return Ok(()),
        Ok(checked) => checked,
        Err(reason) => {
            conflict(report, reason);
            return Ok(());
        }
    };
    if options.dry_run {
        preview(store, &id, checked, report).await;
        return Ok(());
    }
    let import = SessionImport {
        id: id.clone(),
        user_id: checked.user_id.clone(),
        messages: checked.messages,
    };
    let wanted: Vec<MessageId> = import.messages.iter().map(|m| m.id.clone()).collect();
    let outcome = match store.import_messages(import).await {
        Ok(outcome) => outcome,
        Err(StoreError::Conflict(reason)) => {
            conflict(report, reason);
            return Ok(());
        }
        // Every session after it would fail alike: the run stops.
        Err(e) if e.is_storage() => return Err(e),
        Err(e) => {
            tracing::error!(session_id = %session_id, "import failed: {e}");
            report.errors.push(format!("session {session_id}: {e}"));
            return Ok(());
        }
    };
    if outcome.created {
        report.sessions_created += 1;
    } else if outcome.added > 0 {
        report.sessions_merged += 1;
    } else {
        report.sessions_unchanged += 1;
    }
    report.messages_migrated += outcome.added;
    report.messages_already_present += outcome.already_present;
    crate::telemetry::instruments::migration_progress(
        outcome.added,
        u64::from(outcome.created || outcome.added > 0),
    );
    let Some(deleter) = deleter else {
        return Ok(());
    };
    // Delete only what the session, read back now, holds.
    let owner = checked
        .user_id
        .clone()
        .map_or(Owner::Anonymous, Owner::User);
    let stored = match store.get_session(&owner, &id).await {
        Ok(stored) => stored.value,
        Err(e) => {
            report.errors.push(format!(
                "session {session_id}: read-back failed, nothing deleted: {e}"
            ));
            return Ok(());
        }
    };
    let present: BTreeSet<&str> = stored.messages.iter().map(|m| m.id.as_str()).collect();
    for message_id in &wanted {
        if !present.contains(message_id.as_str()) {
            report.errors.push(format!(
                "session {session_id}: message {message_id} missing after import; nothing of it deleted"
            ));
            continue;
        }
        for record in checked
            .sources
            .get(message_id.as_str())
            .into_iter()
            .flatten()
        {
            match deleter.delete(record).await {
                Ok(()) => report.old_deleted += 1,
                Err(e) => report
                    .errors
                    .push(format!("deleting old message {message_id}: {e:#}")),
            }
        }
    }
    Ok(())
}

/// A dry run's view of one session: what an import would do.
async fn preview(store: &dyn SessionStore, id: &SessionId, checked: Checked, report: &mut Report) {
    match store.get_session(&Owner::Anonymous, id).await {
        Ok(existing) if existing.value.user_id != checked.user_id => {
            report.conflicts.push(Conflict {
                session_id: id.to_string(),
                reason: format!("session {id} exists with another owner"),
            })
        }
        Ok(existing) => {
            let present: BTreeSet<&str> = existing
                .value
                .messages
                .iter()
                .map(|m| m.id.as_str())
                .collect();
            let missing = checked
                .messages
                .iter()
                .filter(|m| !present.contains(m.id.as_str()))
                .count() as u64;
            if missing == 0 {
                report.sessions_unchanged += 1;
            } else {
                report.sessions_merged += 1;
            }
            report.messages_migrated += missing;
            report.messages_already_present += checked.messages.len() as u64 - missing;
        }
        Err(StoreError::NotFound) => {
            report.sessions_created += 1;
            report.messages_migrated += checked.messages.len() as u64;
        }
        Err(e) => report.errors.push(format!("session {id}: {e}")),
    }
}
