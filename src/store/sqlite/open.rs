//! Opening the store: the schema brought up to date on the writer's
//! connection, the writer thread started, the reader connections made.

use std::{
    path::Path,
    sync::{Arc, Mutex},
};

use anyhow::Context as _;

use super::{
    DB_FILE, Durability, Inner, SqliteSettings, SqliteStore, connection::open_connection, schema,
    storage::Disk, writer,
};

impl SqliteStore {
    /// Opens (creating if needed) the store in `data_dir`, with the default
    /// settings but `durability`.
    pub fn open(data_dir: &Path, durability: Durability) -> anyhow::Result<Self> {
        Self::open_with(data_dir, durability.into())
    }

    /// Opens (creating if needed) the store in `data_dir`.
    pub fn open_with(data_dir: &Path, settings: SqliteSettings) -> anyhow::Result<Self> {
        let durability = settings.durability;
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating data directory {}", data_dir.display()))?;
        let path = data_dir.join(DB_FILE);
        let writer = open_connection(&path, durability, true)?;
        schema::prepare(&writer)?;
        let inline_readers = (0..4)
            .map(|_| {
                let conn = open_connection(&path, durability, false)?;
                conn.busy_timeout(std::time::Duration::ZERO)?;
                Ok(conn)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let disk =
            Arc::new(Disk::new(&path).with_context(|| format!("looking at {}", path.display()))?);
        let (jobs, writer) = writer::start(writer, &path, settings, disk.clone())?;
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                durability,
                jobs,
                writer: Mutex::new(Some(writer)),
                readers: Mutex::new(Vec::new()),
                read_slots: tokio::sync::Semaphore::new(super::READERS),
                inline_readers: Mutex::new(inline_readers),
                disk,
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }
}
