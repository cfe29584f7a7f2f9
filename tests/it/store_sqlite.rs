//! The conformance suite on the embedded SQLite store.

use crate::conformance;

use std::sync::Arc;

use chat_sessions::store::{
    DynMigrationStore,
    sqlite::{Durability, SqliteStore},
};

async fn sqlite() -> (DynMigrationStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), Durability::Normal).unwrap();
    (Arc::new(store), dir)
}

conformance_suite!(sqlite());

/// The same suite with `Durability::Full`, whose writes are answered by the
/// thread that flushes the WAL rather than by the writer.
mod full_durability {
    use crate::conformance;

    crate::conformance_suite!(async {
        let dir = tempfile::tempdir().unwrap();
        let store = super::SqliteStore::open(dir.path(), super::Durability::Full).unwrap();
        (std::sync::Arc::new(store) as super::DynMigrationStore, dir)
    });
}

mod search {
    crate::search_suite!(async {
        let dir = tempfile::tempdir().unwrap();
        let store = super::SqliteStore::open(dir.path(), super::Durability::Normal).unwrap();
        (std::sync::Arc::new(store), dir)
    });
}

#[tokio::test]
async fn data_survives_reopening_the_file() {
    use chat_sessions::store::{Owner, SessionStore as _};
    let dir = tempfile::tempdir().unwrap();
    let alice = conformance::user("alice");
    let id = conformance::sid("session_reopen");
    {
        let store = SqliteStore::open(dir.path(), Durability::Full).unwrap();
        store
            .create_session(conformance::new_session(&id, Some(&alice)))
            .await
            .unwrap();
        store
            .append_message(
                &Owner::User(alice.clone()),
                &id,
                conformance::message(Some("m1"), "kept"),
            )
            .await
            .unwrap();
    }
    let store = SqliteStore::open(dir.path(), Durability::Full).unwrap();
    let s = store
        .get_session(&Owner::User(alice), &id)
        .await
        .unwrap()
        .value;
    assert_eq!(s.messages[0].content, "kept");
    assert_eq!(s.message_count, 1);
}
