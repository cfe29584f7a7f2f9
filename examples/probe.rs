// Scratch: index size per rowid layout (not committed).
use rusqlite::{Connection, functions::FunctionFlags};
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (src, scratch, slot_bits, epoch): (&str, &str, i64, i64) = (
        &args[1],
        &args[2],
        args[3].parse().unwrap(),
        args[4].parse().unwrap(),
    );
    let prefix = args.get(5).cloned().unwrap_or("10 11 12".into());
    let _ = std::fs::remove_file(scratch);
    let conn = Connection::open(scratch).unwrap();
    conn.execute_batch("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;")
        .unwrap();
    conn.execute(&format!("ATTACH 'file:{src}?mode=ro' AS src"), [])
        .unwrap();
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    conn.create_scalar_function("w", 2, flags, |ctx| {
        let user: Option<String> = ctx.get(0)?;
        let text: String = ctx.get(1)?;
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in user.unwrap_or_default().bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        let key = format!("§{:08x}", h >> 32);
        let mut out = key.clone();
        for word in chat_sessions::search::index_text(&text)
            .split(' ')
            .filter(|w| !w.is_empty())
        {
            out.push(' ');
            out.push_str(&key);
            out.push_str(word);
        }
        Ok(out)
    })
    .unwrap();
    conn.execute_batch(&format!("CREATE VIRTUAL TABLE f USING fts5(words, content='', contentless_delete=1, detail='none', tokenize='ascii', prefix='{prefix}')")).unwrap();
    let t = std::time::Instant::now();
    conn.execute(&format!(
        "INSERT INTO f (rowid, words) SELECT (((e.doc >> 30) - {epoch}) << {slot_bits}) + (e.doc & 1073741823), \
         w(s.user_id, COALESCE(CASE WHEN e.message_id = '' THEN s.session_name ELSE \
         (SELECT m.content FROM src.messages m WHERE m.session_id = e.session_id AND m.id = e.message_id) END, '')) \
         FROM src.search_entries e JOIN src.sessions s ON s.id = e.session_id ORDER BY e.doc"), []).unwrap();
    let size = |c: &Connection| -> f64 {
        c.query_row(
            "SELECT SUM(pgsize) FROM dbstat WHERE name LIKE 'f_%'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap() as f64
            / 1048576.0
    };
    println!(
        "slot_bits {slot_bits} epoch {epoch} prefix '{prefix}': {:.1} MiB in {:.0?}",
        size(&conn),
        t.elapsed()
    );
    if args.get(6).is_some() {
        conn.execute("INSERT INTO f(f) VALUES('optimize')", [])
            .unwrap();
        conn.execute_batch("VACUUM").unwrap();
        println!("  optimized: {:.1} MiB", size(&conn));
    }
}
