//! Schema and migrations (tracked with `PRAGMA user_version`).

use rusqlite::Connection;

/// Each entry moves the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: events, stream heads, read models, checkpoints, jobs, cache.
    r#"
    CREATE TABLE events (
        position        INTEGER PRIMARY KEY AUTOINCREMENT,
        id              BLOB    NOT NULL UNIQUE,
        stream          TEXT    NOT NULL,
        version         INTEGER NOT NULL,
        recorded_at     INTEGER NOT NULL,
        event_type      TEXT    NOT NULL,
        schema_version  INTEGER NOT NULL,
        payload         BLOB    NOT NULL,
        causation_id    BLOB,
        correlation_id  BLOB    NOT NULL,
        UNIQUE (stream, version)
    );
    CREATE TABLE streams (
        stream  TEXT PRIMARY KEY,
        version INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE rm_rows (
        tbl   TEXT NOT NULL,
        key   TEXT NOT NULL,
        value BLOB NOT NULL,
        PRIMARY KEY (tbl, key)
    ) WITHOUT ROWID;
    CREATE TABLE rm_checkpoints (
        name     TEXT PRIMARY KEY,
        position INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE jobs (
        id         BLOB PRIMARY KEY,
        queue      TEXT    NOT NULL,
        payload    BLOB    NOT NULL,
        seq        INTEGER NOT NULL,
        state      INTEGER NOT NULL, -- 0 ready, 1 leased, 2 done
        ready_at   INTEGER NOT NULL,
        token      BLOB,
        expires_at INTEGER,
        deliveries INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    CREATE INDEX jobs_ready ON jobs (queue, state, ready_at, seq);
    CREATE INDEX jobs_seq ON jobs (seq);
    CREATE TABLE cache (
        key        TEXT PRIMARY KEY,
        value      BLOB NOT NULL,
        expires_at INTEGER
    ) WITHOUT ROWID;
    "#,
];

/// Brings `conn`'s database to the current schema.
pub(crate) fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let current: usize = conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))?.try_into().unwrap_or(0);
    if current > MIGRATIONS.len() {
        return Err(rusqlite::Error::InvalidParameterName(format!(
            "database schema version {current} is newer than this build ({})",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))?;
        tx.commit()?;
    }
    Ok(())
}
