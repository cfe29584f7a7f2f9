//! Reading an import file as a stream: a bounded buffer over the file, the
//! format told from its first character, and a meter of how far one unit
//! (a session with its messages, a conversation) has read, which stops a
//! unit larger than [`MAX_UNIT_BYTES`] while it is being read, before it
//! costs memory.

use std::{
    cell::Cell,
    fs::File,
    io::{self, BufRead, BufReader, Read, Seek as _, SeekFrom},
    rc::Rc,
};

use super::{Format, ImportError};
use crate::store::StoreError;

/// The largest one session (with its messages) or one ChatGPT
/// conversation may be in a file: what one unit may cost in memory while
/// it is parsed and written is a small multiple of this.
pub const MAX_UNIT_BYTES: u64 = 8 * 1024 * 1024;

/// The reader's buffer.
const BUFFER_BYTES: usize = 64 * 1024;

/// How far a unit has read: bytes read since [`Meter::start`].
#[derive(Debug, Clone, Default)]
pub(super) struct Meter {
    read: Rc<Cell<u64>>,
    start: Rc<Cell<u64>>,
}

impl Meter {
    /// A new unit starts here.
    pub(super) fn start(&self) {
        self.start.set(self.read.get());
    }

    /// Bytes read since the unit started.
    pub(super) fn unit_bytes(&self) -> u64 {
        self.read.get() - self.start.get()
    }
}

/// A unit read past [`MAX_UNIT_BYTES`]: the read that would pass it fails
/// with this inside an [`io::Error`].
#[derive(Debug, thiserror::Error)]
#[error("larger than {MAX_UNIT_BYTES} bytes")]
pub(super) struct UnitTooLarge;

impl UnitTooLarge {
    /// Whether `error` is this.
    pub(super) fn is(error: &io::Error) -> bool {
        error.get_ref().is_some_and(|e| e.is::<Self>())
    }
}

/// The file, counted by a [`Meter`].
pub(super) struct Metered {
    file: File,
    meter: Meter,
}

impl Read for Metered {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Reads from the buffer's refill: the unit's bound is checked at
        // the file, one buffer ahead at most.
        if self.meter.unit_bytes() > MAX_UNIT_BYTES + BUFFER_BYTES as u64 {
            return Err(io::Error::other(UnitTooLarge));
        }
        let n = self.file.read(buf)?;
        self.meter.read.set(self.meter.read.get() + n as u64);
        Ok(n)
    }
}

/// The file from its start, buffered and metered, with its format; a BOM
/// and the blanks before the first character are read already.
pub(super) fn open(file: &File) -> Result<(BufReader<Metered>, Meter, Format), ImportError> {
    let mut file = file.try_clone().map_err(read_failed)?;
    file.seek(SeekFrom::Start(0)).map_err(read_failed)?;
    let meter = Meter::default();
    let mut reader = BufReader::with_capacity(
        BUFFER_BYTES,
        Metered {
            file,
            meter: meter.clone(),
        },
    );
    let mut first = true;
    let format = loop {
        let buf = reader.fill_buf().map_err(read_failed)?;
        if first && buf.starts_with(b"\xEF\xBB\xBF") {
            reader.consume(3);
            first = false;
            continue;
        }
        first = false;
        let Some(&byte) = buf.first() else {
            break Format::Empty;
        };
        if byte.is_ascii_whitespace() {
            reader.consume(1);
            continue;
        }
        break super::detect(&[byte])?;
    };
    Ok((reader, meter, format))
}

/// A failure to read the file back (the spooled upload, or the file the
/// CLI was given): a fault, not the file's.
pub(super) fn read_failed(e: io::Error) -> ImportError {
    ImportError::Store(StoreError::Internal(anyhow::anyhow!(
        "reading the import file: {e}"
    )))
}
