//! What Azure would bill: Microsoft's published request charges by item size
//! (session consistency), interpolated linearly between the published sizes
//! (and along the last segment beyond the largest). Cosmos DB charges a point
//! operation by the size of the whole item it reads or writes — a patch too.
//!
//! The table has no figures for queries: a query page is charged here as a
//! point read of the bytes it returns, a lower bound (a real query costs at
//! least about 2–3 RU).

use chat_sessions::store::cosmos::ItemIo;

/// Point read: (KB, RU).
const READ: [(f64, f64); 6] = [
    (1.0, 1.00),
    (32.0, 2.19),
    (64.0, 4.76),
    (128.0, 9.95),
    (256.0, 20.28),
    (512.0, 40.95),
];

/// Write (create, replace, upsert, patch): (KB, RU).
const WRITE: [(f64, f64); 11] = [
    (1.0, 4.95),
    (2.0, 6.29),
    (4.0, 6.67),
    (8.0, 7.04),
    (16.0, 9.52),
    (32.0, 11.23),
    (64.0, 22.67),
    (128.0, 48.19),
    (256.0, 98.29),
    (512.0, 184.57),
    (1024.0, 625.0),
];

/// The largest item Cosmos DB stores.
pub const MAX_ITEM_BYTES: usize = 2 * 1024 * 1024;

fn interpolate(table: &[(f64, f64)], bytes: usize) -> f64 {
    let kb = bytes as f64 / 1024.0;
    if kb <= table[0].0 {
        return table[0].1;
    }
    let segment = table
        .windows(2)
        .find(|w| kb <= w[1].0)
        .unwrap_or(&table[table.len() - 2..]);
    let ((x0, y0), (x1, y1)) = (segment[0], segment[1]);
    y0 + (kb - x0) * (y1 - y0) / (x1 - x0)
}

/// RU of a point read of an item of `bytes`.
pub fn read_ru(bytes: usize) -> f64 {
    interpolate(&READ, bytes)
}

/// RU of writing an item of `bytes`.
pub fn write_ru(bytes: usize) -> f64 {
    interpolate(&WRITE, bytes)
}

/// RU of what one request did, by the table.
pub fn ru(io: &ItemIo) -> f64 {
    match *io {
        ItemIo::Read(bytes) | ItemIo::Query(bytes) => read_ru(bytes),
        ItemIo::Write(bytes) => write_ru(bytes),
    }
}

/// RU of everything in a log, by the table.
pub fn total(log: &[ItemIo]) -> f64 {
    log.iter().map(ru).sum()
}
