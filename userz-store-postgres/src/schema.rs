//! Schema migrations, run by the adapter under an advisory lock.

use tokio_postgres::Client;

/// Each entry moves the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[r#"
    CREATE TABLE userz_events (
        position        BIGINT  PRIMARY KEY,
        id              UUID    NOT NULL UNIQUE,
        stream          TEXT    NOT NULL,
        version         BIGINT  NOT NULL,
        recorded_at     BIGINT  NOT NULL,
        event_type      TEXT    NOT NULL,
        schema_version  INTEGER NOT NULL,
        payload         BYTEA   NOT NULL,
        causation_id    UUID,
        correlation_id  UUID    NOT NULL,
        UNIQUE (stream, version)
    );
    CREATE TABLE userz_streams (
        stream  TEXT   PRIMARY KEY,
        version BIGINT NOT NULL
    );
    -- One row: the last assigned global position. Appenders lock it until they
    -- commit, so positions become visible strictly in order, without gaps.
    CREATE TABLE userz_head (
        id       INTEGER PRIMARY KEY CHECK (id = 1),
        position BIGINT  NOT NULL
    );
    INSERT INTO userz_head (id, position) VALUES (1, 0);
    CREATE TABLE userz_rm_rows (
        tbl   TEXT  NOT NULL,
        key   TEXT  COLLATE "C" NOT NULL,
        value BYTEA NOT NULL,
        PRIMARY KEY (tbl, key)
    );
    CREATE TABLE userz_rm_checkpoints (
        name     TEXT   PRIMARY KEY,
        position BIGINT NOT NULL
    );
    CREATE TABLE userz_jobs (
        id         UUID      PRIMARY KEY,
        queue      TEXT      NOT NULL,
        payload    BYTEA     NOT NULL,
        seq        BIGSERIAL NOT NULL,
        state      SMALLINT  NOT NULL, -- 0 ready, 1 leased, 2 done
        ready_at   BIGINT    NOT NULL,
        token      UUID,
        expires_at BIGINT,
        deliveries INTEGER   NOT NULL DEFAULT 0
    );
    CREATE INDEX userz_jobs_ready ON userz_jobs (queue, state, ready_at, seq);
"#];

/// Advisory-lock key serialising migrations across processes.
const MIGRATION_LOCK: i64 = 0x7573_6572_7a01;

/// Brings the schema in the client's `search_path` to the current version.
pub(crate) async fn migrate(client: &mut Client) -> Result<(), tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS userz_schema (version INTEGER NOT NULL)").await?;
    let current: i32 = match tx.query_opt("SELECT version FROM userz_schema", &[]).await? {
        Some(row) => row.get(0),
        None => {
            tx.execute("INSERT INTO userz_schema (version) VALUES (0)", &[]).await?;
            0
        }
    };
    let current = usize::try_from(current).unwrap_or(0);
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        tx.batch_execute(sql).await?;
        let v = i32::try_from(i + 1).unwrap_or(i32::MAX);
        tx.execute("UPDATE userz_schema SET version = $1", &[&v]).await?;
    }
    tx.commit().await
}
