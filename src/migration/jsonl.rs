//! Legacy messages from a JSONL file (one old-style message per line): an
//! export, or the old data of a local installation.
//!
//! Memory stays bounded whatever the file's size: a first pass sorts chunks
//! of records by session id into temporary files; a k-way merge then yields
//! each session's records together. Records without a session and unreadable
//! lines go to a side file and are yielded after the sessions. A position is
//! the last session id yielded (or how many side records were), so a resumed
//! pass skips what was done.

use std::{
    cmp::Reverse,
    collections::BinaryHeap,
    fs::File,
    io::{BufRead, BufReader, BufWriter, Lines, Write},
    path::{Path, PathBuf},
};

use anyhow::Context as _;
use async_trait::async_trait;
use serde_json::Value;

use super::{Item, LegacyRecord, LegacySource, parse_legacy};

/// Records sorted in memory at once during the first pass.
pub const DEFAULT_CHUNK_RECORDS: usize = 50_000;

/// A JSONL file of legacy messages.
pub struct JsonlSource {
    path: PathBuf,
    chunk_records: usize,
    work: Option<tempfile::TempDir>,
    merge: Option<Merge>,
    extras: Option<Lines<BufReader<File>>>,
    pending: Option<(String, String)>,
    last_session: Option<String>,
    extras_done: u64,
}

/// The k-way merge over sorted chunk files.
struct Merge {
    readers: Vec<Lines<BufReader<File>>>,
    heap: BinaryHeap<Reverse<(String, usize, String)>>,
}

impl Merge {
    fn pop(&mut self) -> anyhow::Result<Option<(String, String)>> {
        let Some(Reverse((session, chunk, line))) = self.heap.pop() else {
            return Ok(None);
        };
        if let Some(next) = self.readers[chunk].next() {
            let next = next?;
            let (key, rest) = split_keyed(&next)?;
            self.heap.push(Reverse((key, chunk, rest)));
        }
        Ok(Some((session, line)))
    }
}

/// Chunk files hold `<session id as JSON>\t<original line>`.
fn split_keyed(line: &str) -> anyhow::Result<(String, String)> {
    let (key, rest) = line.split_once('\t').context("corrupt sort chunk")?;
    Ok((serde_json::from_str(key)?, rest.to_owned()))
}

impl JsonlSource {
    /// A source over `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self::with_chunk_records(path, DEFAULT_CHUNK_RECORDS)
    }

    /// A source over `path` sorting `chunk_records` records in memory at a time.
    pub fn with_chunk_records(path: impl Into<PathBuf>, chunk_records: usize) -> Self {
        Self {
            path: path.into(),
            chunk_records: chunk_records.max(1),
            work: None,
            merge: None,
            extras: None,
            pending: None,
            last_session: None,
            extras_done: 0,
        }
    }
}

/// The first pass: sorted chunks, and the side file of orphans and
/// unreadable lines. Returns the chunk files and the side file.
fn sort_chunks(
    path: &Path,
    dir: &Path,
    chunk_records: usize,
) -> anyhow::Result<(Vec<PathBuf>, PathBuf)> {
    let input =
        BufReader::new(File::open(path).with_context(|| format!("opening {}", path.display()))?);
    let extras_path = dir.join("extras.jsonl");
    let mut extras = BufWriter::new(File::create(&extras_path)?);
    let mut chunks = Vec::new();
    let mut chunk: Vec<(String, String)> = Vec::with_capacity(chunk_records.min(1 << 16));
    let flush =
        |chunk: &mut Vec<(String, String)>, chunks: &mut Vec<PathBuf>| -> anyhow::Result<()> {
            if chunk.is_empty() {
                return Ok(());
            }
            chunk.sort_by(|a, b| a.0.cmp(&b.0));
            let file = dir.join(format!("chunk-{}.tsv", chunks.len()));
            let mut out = BufWriter::new(File::create(&file)?);
            for (session, line) in chunk.drain(..) {
                writeln!(out, "{}\t{line}", serde_json::to_string(&session)?)?;
            }
            out.flush()?;
            chunks.push(file);
            Ok(())
        };
    for (number, line) in input.lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        let session = serde_json::from_str::<Value>(trimmed)
            .ok()
            .filter(Value::is_object)
            .map(|v| {
                v.get("session_id")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            });
        match session {
            Some(Some(session)) if !session.is_empty() => {
                chunk.push((session, trimmed.to_owned()));
                if chunk.len() >= chunk_records {
                    flush(&mut chunk, &mut chunks)?;
                }
            }
            // Parsed, but no session: an orphan.
            Some(_) => writeln!(extras, "{}", serde_json::json!({ "orphan": trimmed }))?,
            None => writeln!(
                extras,
                "{}",
                serde_json::json!({ "unreadable": format!("{} line {}: not a JSON object", path.display(), number + 1) })
            )?,
        }
    }
    flush(&mut chunk, &mut chunks)?;
    extras.flush()?;
    Ok((chunks, extras_path))
}

fn record(line: &str) -> Result<LegacyRecord, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
    Ok(LegacyRecord {
        message: parse_legacy(value)?,
        handle: Value::Null,
    })
}

#[async_trait]
impl LegacySource for JsonlSource {
    async fn start(&mut self, position: Option<&str>) -> anyhow::Result<()> {
        let dir = tempfile::tempdir().context("creating a temporary directory for sorting")?;
        let (path, chunk_records, dir_path) =
            (self.path.clone(), self.chunk_records, dir.path().to_owned());
        let (chunk_files, extras_path) =
            tokio::task::spawn_blocking(move || sort_chunks(&path, &dir_path, chunk_records))
                .await??;
        let mut merge = Merge {
            readers: Vec::new(),
            heap: BinaryHeap::new(),
        };
        for (index, file) in chunk_files.iter().enumerate() {
            let mut lines = BufReader::new(File::open(file)?).lines();
            if let Some(first) = lines.next() {
                let (key, rest) = split_keyed(&first?)?;
                merge.heap.push(Reverse((key, index, rest)));
            }
            merge.readers.push(lines);
        }
        self.merge = Some(merge);
        self.extras = Some(BufReader::new(File::open(extras_path)?).lines());
        self.work = Some(dir);
        self.pending = None;
        self.last_session = None;
        self.extras_done = 0;
        // Skip what an earlier invocation of this pass did.
        match position.map(|p| p.split_once(':')) {
            None => {}
            Some(Some(("s", session))) => {
                let session: String = serde_json::from_str(session)?;
                while let Some((key, line)) = self.merge.as_mut().expect("set above").pop()? {
                    if key > session {
                        self.pending = Some((key, line));
                        break;
                    }
                }
                self.last_session = Some(session);
            }
            Some(Some(("x", count))) => {
                let count: u64 = count.parse()?;
                self.merge = None;
                let extras = self.extras.as_mut().expect("set above");
                for _ in 0..count {
                    if extras.next().is_none() {
                        break;
                    }
                }
                self.extras_done = count;
            }
            Some(_) => anyhow::bail!("not a JSONL position: {position:?}"),
        }
        Ok(())
    }

    async fn next_item(&mut self) -> anyhow::Result<Option<Item>> {
        if let Some(merge) = self.merge.as_mut() {
            let first = match self.pending.take() {
                Some(first) => Some(first),
                None => merge.pop()?,
            };
            if let Some((session, line)) = first {
                let mut lines = vec![line];
                while let Some((key, line)) = merge.pop()? {
                    if key != session {
                        self.pending = Some((key, line));
                        break;
                    }
                    lines.push(line);
                }
                let mut records = Vec::with_capacity(lines.len());
                let mut unreadable = Vec::new();
                for line in &lines {
                    match record(line) {
                        Ok(r) => records.push(r),
                        Err(e) => unreadable.push(e),
                    }
                }
                self.last_session = Some(session.clone());
                if records.is_empty() {
                    return Ok(Some(Item::Unreadable {
                        what: format!("session {session}: {}", unreadable.join("; ")),
                    }));
                }
                return Ok(Some(Item::Session {
                    session_id: session,
                    records,
                }));
            }
            self.merge = None;
        }
        let Some(extras) = self.extras.as_mut() else {
            return Ok(None);
        };
        let Some(line) = extras.next() else {
            return Ok(None);
        };
        self.extras_done += 1;
        let value: Value = serde_json::from_str(&line?)?;
        if let Some(what) = value.get("unreadable").and_then(Value::as_str) {
            return Ok(Some(Item::Unreadable {
                what: what.to_owned(),
            }));
        }
        let original = value
            .get("orphan")
            .and_then(Value::as_str)
            .unwrap_or_default();
        Ok(Some(match record(original) {
            Ok(record) => Item::Orphan(record),
            Err(e) => Item::Unreadable { what: e },
        }))
    }

    fn position(&self) -> Option<String> {
        if self.merge.is_some() {
            let session = self.last_session.as_ref()?;
            Some(format!("s:{}", serde_json::to_string(session).ok()?))
        } else {
            Some(format!("x:{}", self.extras_done))
        }
    }

    fn deleter(&self) -> Option<std::sync::Arc<dyn super::Deleter>> {
        // A file is an export or an old installation's data: left as it is.
        None
    }
}
