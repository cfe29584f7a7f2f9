//! The migration's side of the embedded store: legacy messages merged into
//! their sessions in the writer's transaction (the merge is shared with file
//! imports, in `import`), and each run's checkpoint, written by
//! compare-and-set.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::{
    SqliteStore,
    import::import_into,
    rows::{internal, new_etag},
};
use crate::{
    domain::Timestamp,
    store::{
        ETag, ImportOutcome, MigrationStore, SessionImport, StoreError, StoreResult, Versioned,
    },
};

#[async_trait]
impl MigrationStore for SqliteStore {
    async fn import_messages(&self, import: SessionImport) -> StoreResult<ImportOutcome> {
        self.write(move |tx| import_into(tx, import, None)).await
    }

    async fn load_checkpoint(&self, run_id: &str) -> StoreResult<Option<Versioned<String>>> {
        let run_id = run_id.to_owned();
        self.read(move |conn| {
            conn.query_row(
                "SELECT state, etag FROM migration_checkpoints WHERE run_id = ?1",
                [run_id],
                |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?)),
            )
            .optional()
            .map_err(internal)
            .map(|found| {
                found.map(|(state, etag)| Versioned {
                    value: state,
                    etag: ETag::new(etag),
                })
            })
        })
        .await
    }

    async fn save_checkpoint(
        &self,
        run_id: &str,
        state: &str,
        expected: Option<&ETag>,
    ) -> StoreResult<ETag> {
        let (run_id, state, expected) = (run_id.to_owned(), state.to_owned(), expected.cloned());
        self.write(move |tx| {
            let current: Option<String> = tx
                .query_row(
                    "SELECT etag FROM migration_checkpoints WHERE run_id = ?1",
                    [&run_id],
                    |row| row.get(0),
                )
                .optional()
                .map_err(internal)?;
            if current.map(ETag::new) != expected {
                return Err(StoreError::PreconditionFailed);
            }
            let etag = new_etag();
            tx.execute(
                "INSERT INTO migration_checkpoints (run_id, state, etag, updated_at) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (run_id) DO UPDATE SET \
                 state = excluded.state, etag = excluded.etag, updated_at = excluded.updated_at",
                params![run_id, state, etag, Timestamp::now().to_string()],
            )
            .map_err(internal)?;
            Ok(ETag::new(etag))
        })
        .await
    }
}
