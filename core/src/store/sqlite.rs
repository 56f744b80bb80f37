//! The embedded store: one SQLite file in WAL mode under the data folder.
//!
//! Two connections: one for links (reads and writes from request handlers and
//! the CLI), one for the click log's background writer, so that a batch of
//! clicks never blocks a link lookup. Schema changes are numbered migrations
//! tracked in `PRAGMA user_version`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use linkwright_plugin_sdk::SubIdEncoding;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OptionalExtension, Row, Statement, ToSql, params};

use super::{
    ClickEvent, Link, LinkChange, LinkFilter, LinkStats, LinkUpdate, NewLink, Store, StoreError,
    StoredClick, generate_code,
};
use crate::clock::MS_PER_DAY;
use crate::clock::now_ms;

/// The database file's name inside the data folder.
pub const DB_FILE: &str = "linkwright.db";

/// Migrations, in order; `user_version` is the number applied.
const MIGRATIONS: &[&str] = &[
    // 1: links, clicks, meta.
    r#"
    CREATE TABLE links (
        id              INTEGER PRIMARY KEY,
        code            TEXT NOT NULL UNIQUE,
        provider        TEXT NOT NULL,
        input           TEXT NOT NULL,
        destination     TEXT NOT NULL,
        template_prefix TEXT NOT NULL,
        template_suffix TEXT NOT NULL,
        subid_max_len   INTEGER NOT NULL,
        subid_encoding  TEXT NOT NULL,
        name            TEXT,
        marketplace     TEXT,
        campaign        TEXT,
        tags            TEXT NOT NULL DEFAULT '[]',
        params          TEXT NOT NULL DEFAULT '[]',
        source_key      TEXT UNIQUE,
        created_ms      INTEGER NOT NULL,
        disabled        INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX links_provider ON links(provider, id);
    CREATE TABLE clicks (
        id            INTEGER PRIMARY KEY,
        click_id      TEXT,
        link_id       INTEGER NOT NULL REFERENCES links(id),
        at_ms         INTEGER NOT NULL,
        bot           INTEGER NOT NULL,
        referrer_host TEXT,
        ua_class      TEXT NOT NULL,
        country       TEXT
    );
    CREATE UNIQUE INDEX clicks_click_id ON clicks(click_id) WHERE click_id IS NOT NULL;
    CREATE INDEX clicks_link_at ON clicks(link_id, at_ms);
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    );
    "#,
    // 2: API keys, bulk jobs.
    r#"
    CREATE TABLE api_keys (
        id          TEXT PRIMARY KEY,
        name        TEXT NOT NULL,
        secret_hash BLOB NOT NULL,
        scopes      TEXT NOT NULL,
        created_ms  INTEGER NOT NULL,
        revoked_ms  INTEGER
    );
    CREATE TABLE jobs (
        id           TEXT PRIMARY KEY,
        status       TEXT NOT NULL,
        total        INTEGER NOT NULL,
        processed    INTEGER NOT NULL DEFAULT 0,
        ok           INTEGER NOT NULL DEFAULT 0,
        errors       INTEGER NOT NULL DEFAULT 0,
        webhook_url  TEXT,
        created_ms   INTEGER NOT NULL,
        finished_ms  INTEGER,
        failure      TEXT
    );
    CREATE TABLE job_items (
        job_id  TEXT NOT NULL REFERENCES jobs(id),
        seq     INTEGER NOT NULL,
        request TEXT NOT NULL,
        result  TEXT,
        PRIMARY KEY (job_id, seq)
    ) WITHOUT ROWID;
    "#,
    // 3: idempotent creation and soft deletion of links.
    r#"
    ALTER TABLE links ADD COLUMN request_key TEXT;
    ALTER TABLE links ADD COLUMN deleted_ms INTEGER;
    CREATE UNIQUE INDEX links_request_key ON links(request_key) WHERE request_key IS NOT NULL;
    "#,
    // 4: conversions imported from the networks' reports, and a per-link,
    // per-day click rollup kept up to date by the click writer (reports read
    // it instead of scanning raw clicks). Money is integer micro-units.
    r#"
    CREATE TABLE conversions (
        id                INTEGER PRIMARY KEY,
        provider          TEXT NOT NULL,
        kind              TEXT NOT NULL,
        row_key           TEXT NOT NULL,
        sub_id            TEXT,
        click_id          TEXT,
        link_id           INTEGER REFERENCES links(id),
        tracking_id       TEXT,
        event_ms          INTEGER NOT NULL,
        product_id        TEXT,
        product_name      TEXT,
        quantity          INTEGER NOT NULL DEFAULT 0,
        returns           INTEGER NOT NULL DEFAULT 0,
        price_micros      INTEGER NOT NULL DEFAULT 0,
        revenue_micros    INTEGER NOT NULL DEFAULT 0,
        commission_micros INTEGER NOT NULL DEFAULT 0,
        status            TEXT NOT NULL,
        currency          TEXT,
        imported_ms       INTEGER NOT NULL,
        updated_ms        INTEGER NOT NULL,
        UNIQUE (provider, kind, row_key)
    );
    CREATE INDEX conversions_event ON conversions(event_ms);
    CREATE INDEX conversions_link ON conversions(link_id, event_ms);
    CREATE INDEX conversions_sub_id ON conversions(sub_id) WHERE link_id IS NULL;
    CREATE TABLE click_rollup (
        link_id  INTEGER NOT NULL,
        day      INTEGER NOT NULL,
        clicks   INTEGER NOT NULL DEFAULT 0,
        bot_hits INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (link_id, day)
    ) WITHOUT ROWID;
    INSERT INTO click_rollup (link_id, day, clicks, bot_hits)
        SELECT link_id, at_ms / 86400000, sum(bot = 0), sum(bot = 1) FROM clicks GROUP BY 1, 2;
    "#,
    // 5: per-link questions are answered by click_rollup, so raw clicks need
    // no (link, time) index: one B-tree less to update on every click.
    r#"
    DROP INDEX clicks_link_at;
    "#,
    // 6: clicks split by whether they carry a click ID. Those that do (every
    // human click) go in a WITHOUT ROWID table keyed by the ID: one B-tree
    // per insert instead of the rowid table plus the unique `clicks_click_id`
    // index (IDs are time-ordered, so inserts land at the right edge). Those
    // that don't (bot hits, HEAD requests) keep a plain rowid table. Readers
    // see both through the view `clicks`, with the columns of the old table
    // but `id`; `click_id = ?` on the view searches the primary key (the
    // other half's click ID is NULL, so a non-NULL ID skips its scan). Both
    // tables keep `bot`: the store takes any event, and one the redirect
    // never makes (a human without an ID, a bot with one) reads back as it
    // went in. Ordered copies, so each table is built in key order.
    r#"
    CREATE TABLE clicks_by_id (
        click_id      TEXT PRIMARY KEY,
        link_id       INTEGER NOT NULL REFERENCES links(id),
        at_ms         INTEGER NOT NULL,
        bot           INTEGER NOT NULL,
        referrer_host TEXT,
        ua_class      TEXT NOT NULL,
        country       TEXT
    ) WITHOUT ROWID;
    CREATE TABLE clicks_without_id (
        id            INTEGER PRIMARY KEY,
        link_id       INTEGER NOT NULL REFERENCES links(id),
        at_ms         INTEGER NOT NULL,
        bot           INTEGER NOT NULL,
        referrer_host TEXT,
        ua_class      TEXT NOT NULL,
        country       TEXT
    );
    INSERT INTO clicks_by_id (click_id, link_id, at_ms, bot, referrer_host, ua_class, country)
        SELECT click_id, link_id, at_ms, bot, referrer_host, ua_class, country
        FROM clicks WHERE click_id IS NOT NULL ORDER BY click_id;
    INSERT INTO clicks_without_id (id, link_id, at_ms, bot, referrer_host, ua_class, country)
        SELECT id, link_id, at_ms, bot, referrer_host, ua_class, country
        FROM clicks WHERE click_id IS NULL ORDER BY id;
    DROP TABLE clicks;
    CREATE VIEW clicks (click_id, link_id, at_ms, bot, referrer_host, ua_class, country) AS
        SELECT click_id, link_id, at_ms, bot, referrer_host, ua_class, country FROM clicks_by_id
        UNION ALL
        SELECT NULL, link_id, at_ms, bot, referrer_host, ua_class, country FROM clicks_without_id;
    "#,
    // 7: a journal of link changes, so that a server's caches learn of
    // changes made by another process (the CLI, another instance sharing
    // the store). Triggers write it, whoever changes `links`. `seq` is
    // max + 1 (never the newest row is pruned), so the numbers have no
    // holes except below the oldest row kept.
    r#"
    CREATE TABLE link_changes (
        seq     INTEGER PRIMARY KEY,
        code    TEXT NOT NULL,
        created INTEGER NOT NULL
    );
    CREATE TRIGGER link_created AFTER INSERT ON links BEGIN
        INSERT INTO link_changes (code, created) VALUES (NEW.code, 1);
    END;
    CREATE TRIGGER link_updated AFTER UPDATE ON links BEGIN
        INSERT INTO link_changes (code, created) VALUES (OLD.code, 0);
        INSERT INTO link_changes (code, created)
            SELECT NEW.code, 0 WHERE NEW.code IS NOT OLD.code;
    END;
    CREATE TRIGGER link_removed AFTER DELETE ON links BEGIN
        INSERT INTO link_changes (code, created) VALUES (OLD.code, 0);
    END;
    "#,
    // 8: the user-agent class as a small integer (`ua`: 0 bot, 1 mobile,
    // 2 tablet, 3 desktop, 4 other; `UaClass::index`) instead of its name:
    // ~6 bytes less per click row, and no text to bind per click. The click
    // writer spent ~15% less per row. The view `clicks` still shows the name.
    r#"
    DROP VIEW clicks;
    CREATE TABLE clicks_by_id_8 (
        click_id      TEXT PRIMARY KEY,
        link_id       INTEGER NOT NULL REFERENCES links(id),
        at_ms         INTEGER NOT NULL,
        bot           INTEGER NOT NULL,
        referrer_host TEXT,
        ua            INTEGER NOT NULL,
        country       TEXT
    ) WITHOUT ROWID;
    CREATE TABLE clicks_without_id_8 (
        id            INTEGER PRIMARY KEY,
        link_id       INTEGER NOT NULL REFERENCES links(id),
        at_ms         INTEGER NOT NULL,
        bot           INTEGER NOT NULL,
        referrer_host TEXT,
        ua            INTEGER NOT NULL,
        country       TEXT
    );
    INSERT INTO clicks_by_id_8 (click_id, link_id, at_ms, bot, referrer_host, ua, country)
        SELECT click_id, link_id, at_ms, bot, referrer_host,
            CASE ua_class WHEN 'bot' THEN 0 WHEN 'mobile' THEN 1 WHEN 'tablet' THEN 2
                WHEN 'desktop' THEN 3 ELSE 4 END,
            country
        FROM clicks_by_id ORDER BY click_id;
    INSERT INTO clicks_without_id_8 (id, link_id, at_ms, bot, referrer_host, ua, country)
        SELECT id, link_id, at_ms, bot, referrer_host,
            CASE ua_class WHEN 'bot' THEN 0 WHEN 'mobile' THEN 1 WHEN 'tablet' THEN 2
                WHEN 'desktop' THEN 3 ELSE 4 END,
            country
        FROM clicks_without_id ORDER BY id;
    DROP TABLE clicks_by_id;
    DROP TABLE clicks_without_id;
    ALTER TABLE clicks_by_id_8 RENAME TO clicks_by_id;
    ALTER TABLE clicks_without_id_8 RENAME TO clicks_without_id;
    CREATE VIEW clicks (click_id, link_id, at_ms, bot, referrer_host, ua_class, country) AS
        SELECT click_id, link_id, at_ms, bot, referrer_host,
            CASE ua WHEN 0 THEN 'bot' WHEN 1 THEN 'mobile' WHEN 2 THEN 'tablet'
                WHEN 3 THEN 'desktop' ELSE 'other' END,
            country
        FROM clicks_by_id
        UNION ALL
        SELECT NULL, link_id, at_ms, bot, referrer_host,
            CASE ua WHEN 0 THEN 'bot' WHEN 1 THEN 'mobile' WHEN 2 THEN 'tablet'
                WHEN 3 THEN 'desktop' ELSE 'other' END,
            country
        FROM clicks_without_id;
    "#,
    // 9: a link replaced in place (`INSERT OR REPLACE`, as a hand edit or
    // another tool might do) deletes the old row without firing
    // `link_removed` (SQLite fires delete triggers for a REPLACE only with
    // `recursive_triggers` on), so it was journaled as a creation only and
    // running servers kept the old row cached. Before any insert, every row
    // the new one would replace (by id, code, source key or request key) is
    // journaled as changed. A plain insert that conflicts fails and takes
    // this with it, so the store's own creations journal nothing more.
    r#"
    CREATE TRIGGER link_replacing BEFORE INSERT ON links BEGIN
        INSERT INTO link_changes (code, created)
            SELECT code, 0 FROM links
            WHERE id = NEW.id OR code = NEW.code
                OR source_key = NEW.source_key OR request_key = NEW.request_key;
    END;
    "#,
];

/// SQLite-backed [`Store`].
#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    links: Mutex<Connection>,
    clicks: Mutex<Connection>,
}

fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // A panic while holding the lock cannot leave SQLite inconsistent (each
    // statement is atomic), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn open(path: &Path, foreign_keys: bool) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(
        None,
        "foreign_keys",
        if foreign_keys { "ON" } else { "OFF" },
    )?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StoreError::SchemaTooNew {
            found: version,
            known,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `data_dir`, applying migrations.
    pub fn open(data_dir: &Path) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::Io {
            path: data_dir.display().to_string(),
            source,
        })?;
        let path = data_dir.join(DB_FILE);
        let mut links = open(&path, true)?;
        migrate(&mut links)?;
        // The clicks connection does without foreign key checks: with them,
        // every click row costs a lookup of its `link_id` in `links`, and
        // that check can never fail. A click names a link the redirect just
        // read from this store (committed before any command or API call
        // answered), and links are never removed: deleting one only sets
        // `deleted_ms`, so its clicks stay valid for reports. This
        // connection writes only the click tables (`clicks_by_id`,
        // `clicks_without_id`), `click_rollup` (no foreign keys) and `meta`; the links connection keeps the checks for everything
        // else. (A noticeable share of the cost per click: see
        // `benches/clicklog.rs` and benches/RESULTS.md.)
        let clicks = open(&path, false)?;
        Ok(SqliteStore {
            path,
            links: Mutex::new(links),
            clicks: Mutex::new(clicks),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The number of migrations applied (`PRAGMA user_version`); after
    /// [`SqliteStore::open`], all that this build knows.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(lock(&self.links).pragma_query_value(None, "user_version", |r| r.get(0))?)
    }

    /// Runs `f` on the links connection, for modules that keep their own
    /// tables in this database (API keys, jobs). Do not call it re-entrantly.
    pub fn with_conn<R>(&self, f: impl FnOnce(&Connection) -> R) -> R {
        f(&lock(&self.links))
    }
}

const LINK_COLUMNS: &str = "id, code, provider, input, destination, template_prefix, template_suffix, \
     subid_max_len, subid_encoding, name, marketplace, campaign, tags, params, source_key, \
     created_ms, disabled";

/// Rows per multi-row click insert.
const INSERT_ROWS: usize = 64;

/// The click tables' columns after the key, in binding order.
const CLICK_COLUMNS: &str = "link_id, at_ms, bot, referrer_host, ua, country";

/// Columns bound per click row: the click ID (in `clicks_by_id` only), then
/// [`CLICK_COLUMNS`].
const BY_ID_WIDTH: usize = 7;
const WITHOUT_ID_WIDTH: usize = 6;

/// `INSERT OR FAIL INTO {table} ({columns}) VALUES (?,...), ...`: `rows`
/// rows of `width` parameters each.
///
/// `OR FAIL`, not the default `ABORT`: under `ABORT` a multi-row statement
/// keeps a statement journal (a copy of every page before it changes it) so
/// that a constraint failure on one row can undo the rows before it. The
/// clicks go in one transaction that [`Store::insert_clicks`] rolls back
/// whole on any error, so undoing one statement buys nothing (figures from
/// `benches/clicklog.rs` in benches/RESULTS.md).
fn insert_clicks_sql(table: &str, columns: &str, width: usize, rows: usize) -> String {
    let mut sql = format!("INSERT OR FAIL INTO {table} ({columns}) VALUES ");
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        sql.push('(');
        for j in 0..width {
            if j > 0 {
                sql.push(',');
            }
            sql.push('?');
        }
        sql.push(')');
    }
    sql
}

/// Text bound as the bytes it is, for values known to be ASCII (a click ID
/// is 13 base-62 digits): no UTF-8 check on the way in.
struct AsciiText<'a>(&'a [u8]);

impl ToSql for AsciiText<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(ValueRef::Text(self.0)))
    }
}

/// Binds `c`'s [`CLICK_COLUMNS`] from parameter `first` (1-based) on.
fn bind_click_columns(
    stmt: &mut Statement<'_>,
    first: usize,
    c: &ClickEvent,
) -> rusqlite::Result<()> {
    stmt.raw_bind_parameter(first, c.link_id)?;
    stmt.raw_bind_parameter(first + 1, c.at_ms)?;
    stmt.raw_bind_parameter(first + 2, c.bot)?;
    stmt.raw_bind_parameter(first + 3, c.referrer_host.as_deref())?;
    stmt.raw_bind_parameter(first + 4, c.ua_class.index() as i64)?;
    stmt.raw_bind_parameter(
        first + 5,
        c.country
            .as_ref()
            .and_then(|cc| std::str::from_utf8(cc).ok()),
    )
}

/// Binds a row of `clicks_by_id` (the event has a click ID).
fn bind_by_id(stmt: &mut Statement<'_>, first: usize, c: &ClickEvent) -> rusqlite::Result<()> {
    let id = c.click_id.as_ref().map(|id| AsciiText(id.as_bytes()));
    stmt.raw_bind_parameter(first, id)?;
    bind_click_columns(stmt, first + 1, c)
}

/// Binds one click row's parameters from a 1-based position.
type BindRow = fn(&mut Statement<'_>, usize, &ClickEvent) -> rusqlite::Result<()>;

/// Inserts `events` through `many` (`INSERT_ROWS` rows per execution) and
/// the remainder through `one`, binding each row's `width` parameters with
/// `bind`.
fn insert_rows(
    many: &mut Statement<'_>,
    one: &mut Statement<'_>,
    events: &[&ClickEvent],
    width: usize,
    bind: BindRow,
) -> rusqlite::Result<()> {
    let mut chunks = events.chunks_exact(INSERT_ROWS);
    for chunk in &mut chunks {
        for (i, c) in chunk.iter().enumerate() {
            bind(many, 1 + i * width, c)?;
        }
        many.raw_execute()?;
    }
    for c in chunks.remainder() {
        bind(one, 1, c)?;
        one.raw_execute()?;
    }
    Ok(())
}

fn encoding_name(e: SubIdEncoding) -> &'static str {
    match e {
        SubIdEncoding::Alphanumeric => "alphanumeric",
        SubIdEncoding::UrlSafe => "url_safe",
    }
}

fn link_from_row(row: &Row<'_>) -> rusqlite::Result<Result<Link, StoreError>> {
    let corrupt = |message: String| StoreError::Corrupt {
        table: "links",
        message,
    };
    let encoding: String = row.get(8)?;
    let tags: String = row.get(12)?;
    let params: String = row.get(13)?;
    let subid_encoding = match encoding.as_str() {
        "alphanumeric" => SubIdEncoding::Alphanumeric,
        "url_safe" => SubIdEncoding::UrlSafe,
        other => return Ok(Err(corrupt(format!("unknown sub-ID encoding `{other}`")))),
    };
    let tags = match serde_json::from_str(&tags) {
        Ok(t) => t,
        Err(e) => return Ok(Err(corrupt(format!("tags: {e}")))),
    };
    let params = match serde_json::from_str(&params) {
        Ok(p) => p,
        Err(e) => return Ok(Err(corrupt(format!("params: {e}")))),
    };
    Ok(Ok(Link {
        id: row.get(0)?,
        code: row.get(1)?,
        provider: row.get(2)?,
        input: row.get(3)?,
        destination: row.get(4)?,
        template_prefix: row.get(5)?,
        template_suffix: row.get(6)?,
        subid_max_len: row.get(7)?,
        subid_encoding,
        name: row.get(9)?,
        marketplace: row.get(10)?,
        campaign: row.get(11)?,
        tags,
        params,
        source_key: row.get(14)?,
        created_ms: row.get(15)?,
        disabled: row.get(16)?,
    }))
}

fn one_link(conn: &Connection, column: &str, value: &str) -> Result<Option<Link>, StoreError> {
    let sql =
        format!("SELECT {LINK_COLUMNS} FROM links WHERE {column} = ?1 AND deleted_ms IS NULL");
    let mut stmt = conn.prepare_cached(&sql)?;
    stmt.query_row([value], link_from_row)
        .optional()?
        .transpose()
}

fn is_unique_violation(e: &rusqlite::Error, column: &str) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, Some(msg))
        if f.code == rusqlite::ErrorCode::ConstraintViolation && msg.contains(column))
}

/// Inserts one link on `conn` (inside the caller's transaction, if any),
/// generating a code if none is given: [`Store::create_link`]'s work, and
/// each item's of [`Store::create_links`]. A failed `INSERT` undoes only
/// itself, so a batch's transaction goes on after an item's conflict.
fn insert_link(conn: &Connection, new: NewLink, created_ms: i64) -> Result<Link, StoreError> {
    let tags = serde_json::to_string(&new.tags).unwrap_or_else(|_| "[]".into());
    let params = serde_json::to_string(&new.params).unwrap_or_else(|_| "[]".into());
    let t = &new.template;
    // A generated code may collide; try a few fresh ones.
    let attempts = if new.code.is_some() { 1 } else { 8 };
    for _ in 0..attempts {
        let code = new.code.clone().unwrap_or_else(generate_code);
        let result = conn
            .prepare_cached(
                "INSERT INTO links (code, provider, input, destination, template_prefix, \
                 template_suffix, subid_max_len, subid_encoding, name, marketplace, campaign, \
                 tags, params, source_key, created_ms, request_key) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
            )?
            .execute(params![
                code,
                t.provider,
                new.input,
                t.destination,
                t.prefix,
                t.suffix,
                t.subid_max_len,
                encoding_name(t.subid_encoding),
                new.name,
                t.marketplace,
                new.campaign,
                tags,
                params,
                new.source_key,
                created_ms,
                new.request_key,
            ]);
        match result {
            Ok(_) => {
                return Ok(Link {
                    id: conn.last_insert_rowid(),
                    code,
                    provider: t.provider.clone(),
                    input: new.input,
                    destination: t.destination.clone(),
                    template_prefix: t.prefix.clone(),
                    template_suffix: t.suffix.clone(),
                    subid_max_len: t.subid_max_len,
                    subid_encoding: t.subid_encoding,
                    name: new.name,
                    marketplace: t.marketplace.clone(),
                    campaign: new.campaign,
                    tags: new.tags,
                    params: new.params,
                    source_key: new.source_key,
                    created_ms,
                    disabled: false,
                });
            }
            Err(e) if is_unique_violation(&e, "links.code") => {
                if new.code.is_some() {
                    return Err(StoreError::Conflict(code));
                }
            }
            Err(e) => {
                // The same request (or /go URL) made a link first: the
                // unique index says so; answer with that link.
                let key = [
                    ("request_key", &new.request_key),
                    ("source_key", &new.source_key),
                ]
                .into_iter()
                .find_map(|(column, key)| {
                    Some((column, key.as_deref()?)).filter(|_| is_unique_violation(&e, column))
                });
                if let Some((column, key)) = key
                    && let Some(existing) = one_link(conn, column, key)?
                {
                    return Err(StoreError::Duplicate(Box::new(existing)));
                }
                return Err(e.into());
            }
        }
    }
    Err(StoreError::Conflict("(generated)".into()))
}

impl Store for SqliteStore {
    fn create_link(&self, new: NewLink) -> Result<Link, StoreError> {
        insert_link(&lock(&self.links), new, now_ms())
    }

    fn create_links(
        &self,
        links: Vec<NewLink>,
    ) -> Result<Vec<Result<Link, StoreError>>, StoreError> {
        let conn = lock(&self.links);
        let created_ms = now_ms();
        let tx = conn.unchecked_transaction()?;
        let mut made = Vec::with_capacity(links.len());
        for new in links {
            match insert_link(&tx, new, created_ms) {
                Ok(link) => made.push(Ok(link)),
                Err(e @ (StoreError::Conflict(_) | StoreError::Duplicate(_))) => made.push(Err(e)),
                // Anything else: the whole batch fails, nothing is kept.
                Err(e) => return Err(e),
            }
        }
        tx.commit()?;
        Ok(made)
    }

    fn link_by_code(&self, code: &str) -> Result<Option<Link>, StoreError> {
        one_link(&lock(&self.links), "code", code)
    }

    fn link_by_source_key(&self, key: &str) -> Result<Option<Link>, StoreError> {
        one_link(&lock(&self.links), "source_key", key)
    }

    fn list_links(&self, filter: &LinkFilter) -> Result<Vec<Link>, StoreError> {
        let conn = lock(&self.links);
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {LINK_COLUMNS} FROM links WHERE id > ?1 AND deleted_ms IS NULL \
             AND (?2 IS NULL OR provider = ?2) AND (?3 IS NULL OR marketplace = ?3) \
             AND (?4 IS NULL OR campaign = ?4) \
             AND (?5 IS NULL OR EXISTS (SELECT 1 FROM json_each(links.tags) WHERE value = ?5)) \
             AND (?6 IS NULL OR instr(lower(coalesce(name, '')), lower(?6)) > 0) \
             ORDER BY id LIMIT ?7"
        ))?;
        let rows = stmt.query_map(
            params![
                filter.after_id.unwrap_or(0),
                filter.provider,
                filter.marketplace,
                filter.campaign,
                filter.tag,
                filter.name,
                filter.limit as i64
            ],
            link_from_row,
        )?;
        rows.map(|r| r?).collect()
    }

    fn link_by_request_key(&self, key: &str) -> Result<Option<Link>, StoreError> {
        one_link(&lock(&self.links), "request_key", key)
    }

    fn set_disabled(&self, code: &str, disabled: bool) -> Result<bool, StoreError> {
        let changed = lock(&self.links)
            .prepare_cached(
                "UPDATE links SET disabled = ?1 WHERE code = ?2 AND deleted_ms IS NULL",
            )?
            .execute(params![disabled, code])?;
        Ok(changed > 0)
    }

    fn update_link(&self, code: &str, update: &LinkUpdate) -> Result<Option<Link>, StoreError> {
        let mut conn = lock(&self.links);
        let tx = conn.transaction()?;
        let exists: Option<i64> = tx
            .query_row(
                "SELECT id FROM links WHERE code = ?1 AND deleted_ms IS NULL",
                [code],
                |r| r.get(0),
            )
            .optional()?;
        if exists.is_none() {
            return Ok(None);
        }
        if let Some(name) = &update.name {
            tx.execute(
                "UPDATE links SET name = ?1 WHERE code = ?2",
                params![name, code],
            )?;
        }
        if let Some(campaign) = &update.campaign {
            tx.execute(
                "UPDATE links SET campaign = ?1 WHERE code = ?2",
                params![campaign, code],
            )?;
        }
        if let Some(tags) = &update.tags {
            let tags = serde_json::to_string(tags).unwrap_or_else(|_| "[]".into());
            tx.execute(
                "UPDATE links SET tags = ?1 WHERE code = ?2",
                params![tags, code],
            )?;
        }
        if let Some(disabled) = update.disabled {
            tx.execute(
                "UPDATE links SET disabled = ?1 WHERE code = ?2",
                params![disabled, code],
            )?;
        }
        if let Some((input, t)) = &update.destination {
            // A new destination is a new link as far as idempotency goes.
            tx.execute(
                "UPDATE links SET input = ?1, provider = ?2, destination = ?3, template_prefix = ?4, \
                 template_suffix = ?5, subid_max_len = ?6, subid_encoding = ?7, marketplace = ?8, \
                 request_key = NULL WHERE code = ?9",
                params![
                    input,
                    t.provider,
                    t.destination,
                    t.prefix,
                    t.suffix,
                    t.subid_max_len,
                    encoding_name(t.subid_encoding),
                    t.marketplace,
                    code
                ],
            )?;
        }
        let link = one_link(&tx, "code", code)?;
        tx.commit()?;
        Ok(link)
    }

    fn delete_link(&self, code: &str) -> Result<bool, StoreError> {
        let changed = lock(&self.links)
            .prepare_cached(
                "UPDATE links SET deleted_ms = ?1, request_key = NULL, source_key = NULL \
                 WHERE code = ?2 AND deleted_ms IS NULL",
            )?
            .execute(params![now_ms(), code])?;
        Ok(changed > 0)
    }

    fn link_stats(&self, link_id: i64) -> Result<LinkStats, StoreError> {
        super::stats::link_stats(&lock(&self.clicks), link_id)
    }

    fn insert_clicks(&self, clicks: &[ClickEvent]) -> Result<(), StoreError> {
        // Clicks with a click ID (humans) and without (bots, HEAD requests)
        // go in their own tables (migration 6).
        let (by_id, without_id): (Vec<&ClickEvent>, Vec<&ClickEvent>) =
            clicks.iter().partition(|c| c.click_id.is_some());
        let mut conn = lock(&self.clicks);
        let tx = conn.transaction()?;
        {
            // Rows go in statements of INSERT_ROWS rows each (fewer statement
            // executions per click), the remainder one by one.
            let by_id_columns = format!("click_id, {CLICK_COLUMNS}");
            let tables: [(&str, &str, usize, BindRow, &[&ClickEvent]); 2] = [
                (
                    "clicks_by_id",
                    &by_id_columns,
                    BY_ID_WIDTH,
                    bind_by_id,
                    &by_id,
                ),
                (
                    "clicks_without_id",
                    CLICK_COLUMNS,
                    WITHOUT_ID_WIDTH,
                    bind_click_columns,
                    &without_id,
                ),
            ];
            for (table, columns, width, bind, events) in tables {
                if events.is_empty() {
                    continue;
                }
                let sql = |rows| insert_clicks_sql(table, columns, width, rows);
                insert_rows(
                    &mut *tx.prepare_cached(&sql(INSERT_ROWS))?,
                    &mut *tx.prepare_cached(&sql(1))?,
                    events,
                    width,
                    bind,
                )?;
            }
            // The per-link, per-UTC-day rollup that reports read moves in the
            // same transaction as the clicks. A batch usually touches few
            // (link, day) pairs: sum them here, then one upsert per pair.
            let mut rollup: HashMap<(i64, i64), (i64, i64), foldhash::fast::RandomState> =
                HashMap::default();
            for c in clicks {
                let sums = rollup
                    .entry((c.link_id, c.at_ms.div_euclid(MS_PER_DAY)))
                    .or_default();
                if c.bot {
                    sums.1 += 1;
                } else {
                    sums.0 += 1;
                }
            }
            let mut pairs: Vec<_> = rollup.into_iter().collect();
            // In key order, so consecutive upserts land on neighbouring pages.
            pairs.sort_unstable_by_key(|(key, _)| *key);
            let mut upsert = tx.prepare_cached(
                "INSERT INTO click_rollup (link_id, day, clicks, bot_hits) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT(link_id, day) DO UPDATE SET clicks = clicks + excluded.clicks, \
                 bot_hits = bot_hits + excluded.bot_hits",
            )?;
            for ((link_id, day), (humans, bots)) in pairs {
                upsert.execute(params![link_id, day, humans, bots])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn clicks(&self, limit: usize) -> Result<Vec<StoredClick>, StoreError> {
        let conn = lock(&self.clicks);
        let mut stmt = conn.prepare_cached(
            "SELECT c.click_id, l.code, c.at_ms, c.bot, c.referrer_host, c.ua_class, c.country \
             FROM clicks c JOIN links l ON l.id = c.link_id ORDER BY c.at_ms, c.click_id LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit as i64], |r| {
            Ok(StoredClick {
                click_id: r.get(0)?,
                code: r.get(1)?,
                at_ms: r.get(2)?,
                bot: r.get(3)?,
                referrer_host: r.get(4)?,
                ua_class: r.get(5)?,
                country: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn last_link_change(&self) -> Result<i64, StoreError> {
        Ok(lock(&self.links).query_row(
            "SELECT coalesce(max(seq), 0) FROM link_changes",
            [],
            |r| r.get(0),
        )?)
    }

    fn link_changes(&self, after: i64, limit: usize) -> Result<Vec<LinkChange>, StoreError> {
        let conn = lock(&self.links);
        let mut stmt = conn.prepare_cached(
            "SELECT seq, code, created FROM link_changes WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![after, limit as i64], |r| {
            Ok(LinkChange {
                seq: r.get(0)?,
                code: r.get(1)?,
                created: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn prune_link_changes(&self, keep: usize, limit: usize) -> Result<usize, StoreError> {
        Ok(lock(&self.links).execute(
            "DELETE FROM link_changes WHERE seq IN (SELECT seq FROM link_changes \
             WHERE seq <= (SELECT max(seq) FROM link_changes) - ?1 ORDER BY seq LIMIT ?2)",
            params![keep.max(1) as i64, limit as i64],
        )?)
    }

    fn load_click_state(&self) -> Result<u64, StoreError> {
        let value: Option<i64> = lock(&self.clicks)
            .query_row(
                "SELECT value FROM meta WHERE key = 'click_id_state'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        Ok(value.unwrap_or(0) as u64)
    }

    fn save_click_state(&self, state: u64) -> Result<(), StoreError> {
        lock(&self.clicks).execute(
            "INSERT INTO meta (key, value) VALUES ('click_id_state', ?1) \
             ON CONFLICT(key) DO UPDATE SET value = max(value, excluded.value)",
            [state as i64],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::UaClass;
    use crate::click::ClickIdGenerator;
    use crate::template::Template;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("lw-store-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn new_link(code: Option<&str>) -> NewLink {
        NewLink {
            code: code.map(str::to_owned),
            input: "https://www.amazon.com/x/dp/B08N5WRWNW".into(),
            template: Template {
                provider: "amazon".into(),
                built: linkwright_model::template::Built {
                    prefix: "https://www.amazon.com/dp/B08N5WRWNW?tag=t-20&ascsubtag=".into(),
                    suffix: String::new(),
                    destination: "https://www.amazon.com/dp/B08N5WRWNW".into(),
                    marketplace: Some("amazon.com".into()),
                    subid_max_len: 64,
                    subid_encoding: SubIdEncoding::UrlSafe,
                },
            },
            name: Some("Echo video".into()),
            campaign: Some("spring".into()),
            tags: vec!["video".into()],
            params: vec![("tag".into(), "t-20".into())],
            source_key: None,
            request_key: None,
        }
    }

    #[test]
    fn links_round_trip_and_survive_reopening() {
        let dir = temp_dir("roundtrip");
        let created = {
            let store = SqliteStore::open(&dir).expect("open");
            store.create_link(new_link(Some("echo"))).expect("create")
        };
        let store = SqliteStore::open(&dir).expect("reopen");
        let read = store.link_by_code("echo").expect("read").expect("exists");
        assert_eq!(read, created);
        assert_eq!(
            read.template().display(),
            "https://www.amazon.com/dp/B08N5WRWNW?tag=t-20&ascsubtag={click_id}"
        );
        assert!(store.link_by_code("nope").expect("read").is_none());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn every_change_to_links_is_journaled_in_order_and_pruning_keeps_the_newest() {
        let dir = temp_dir("changes");
        let store = SqliteStore::open(&dir).expect("open");
        assert_eq!(store.last_link_change().expect("last"), 0);
        store.create_link(new_link(Some("a"))).expect("create");
        let start = store.last_link_change().expect("last");
        assert!(start > 0);
        store.create_link(new_link(Some("b"))).expect("create");
        assert!(store.set_disabled("a", true).expect("disable"));
        assert!(store.delete_link("b").expect("delete"));
        // A taken code changes nothing.
        assert!(store.create_link(new_link(Some("a"))).is_err());
        // Nor does the store alone: whoever writes `links` is journaled.
        store.with_conn(|c| {
            c.execute("UPDATE links SET name = 'by hand' WHERE code = 'a'", [])
                .expect("update")
        });
        // A renamed code: both the old and the new one changed.
        store.with_conn(|c| {
            c.execute("UPDATE links SET code = 'a2' WHERE code = 'a'", [])
                .expect("rename")
        });
        // A row replaced in place: the old one changed, then the new one
        // was created (SQLite fires no delete trigger for a REPLACE).
        store.with_conn(|c| {
            c.execute_batch(
                "CREATE TEMP TABLE copy AS SELECT * FROM links WHERE code = 'a2'; \
                 UPDATE copy SET disabled = 1; \
                 INSERT OR REPLACE INTO links SELECT * FROM copy; \
                 DROP TABLE copy;",
            )
            .expect("replace")
        });

        let changes = store.link_changes(start, 100).expect("changes");
        let seen: Vec<(&str, bool)> = changes
            .iter()
            .map(|c| (c.code.as_str(), c.created))
            .collect();
        assert_eq!(
            seen,
            [
                ("b", true),
                ("a", false),
                ("b", false),
                ("a", false),
                ("a", false),
                ("a2", false),
                ("a2", false),
                ("a2", true)
            ]
        );
        assert!(
            store
                .link_by_code("a2")
                .expect("read")
                .expect("kept")
                .disabled
        );
        let seqs: Vec<i64> = changes.iter().map(|c| c.seq).collect();
        assert_eq!(seqs, (start + 1..=start + 8).collect::<Vec<_>>());
        assert_eq!(store.last_link_change().expect("last"), start + 8);
        assert_eq!(store.link_changes(start, 2).expect("limit").len(), 2);
        assert!(store.link_changes(start + 8, 100).expect("none").is_empty());

        // `start` itself and the seven after it are older than the newest 2.
        assert_eq!(
            store.prune_link_changes(2, 4).expect("prune"),
            4,
            "at most the limit"
        );
        assert_eq!(store.prune_link_changes(2, 100).expect("prune"), 3);
        let kept = store.link_changes(0, 100).expect("kept");
        assert_eq!(
            kept.iter().map(|c| c.seq).collect::<Vec<_>>(),
            [start + 7, start + 8]
        );
        // The newest stays, so numbering goes on from it.
        store.prune_link_changes(0, 100).expect("prune");
        store.create_link(new_link(Some("c"))).expect("create");
        assert_eq!(store.last_link_change().expect("last"), start + 9);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_batch_of_links_answers_each_as_one_by_one_in_one_transaction() {
        let dir = temp_dir("batch");
        let store = SqliteStore::open(&dir).expect("open");
        let keyed = |code: Option<&str>, key: &str| NewLink {
            request_key: Some(key.into()),
            ..new_link(code)
        };
        let before = store
            .create_link(keyed(Some("before"), "k0"))
            .expect("before");
        let made = store
            .create_links(vec![
                keyed(None, "k1"),
                keyed(Some("taken"), "k2"),
                // Taken by the item before it in the same batch.
                keyed(Some("taken"), "k3"),
                // The same request as the first item, and as a link made
                // before the batch.
                keyed(None, "k1"),
                keyed(None, "k0"),
            ])
            .expect("batch");
        assert_eq!(made.len(), 5);
        let first = made[0].as_ref().expect("made");
        assert_eq!(made[1].as_ref().expect("made").code, "taken");
        assert!(matches!(&made[2], Err(StoreError::Conflict(c)) if c == "taken"));
        assert!(matches!(&made[3], Err(StoreError::Duplicate(l)) if **l == *first));
        assert!(matches!(&made[4], Err(StoreError::Duplicate(l)) if **l == before));
        let all = store
            .list_links(&LinkFilter {
                limit: 10,
                ..Default::default()
            })
            .expect("list");
        assert_eq!(all.len(), 3, "before, the first item and `taken`");
        assert_eq!(
            store.link_by_code(&first.code).expect("read").as_ref(),
            Some(first)
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn taken_custom_code_is_a_conflict_and_generated_codes_are_unique() {
        let dir = temp_dir("conflict");
        let store = SqliteStore::open(&dir).expect("open");
        store.create_link(new_link(Some("taken"))).expect("first");
        assert!(matches!(
            store.create_link(new_link(Some("taken"))),
            Err(StoreError::Conflict(c)) if c == "taken"
        ));
        let a = store.create_link(new_link(None)).expect("a");
        let b = store.create_link(new_link(None)).expect("b");
        assert_ne!(a.code, b.code);
        let listed = store
            .list_links(&LinkFilter {
                limit: 10,
                ..Default::default()
            })
            .expect("list");
        assert_eq!(listed.len(), 3);
        let page = store
            .list_links(&LinkFilter {
                after_id: Some(listed[0].id),
                limit: 1,
                ..Default::default()
            })
            .expect("page");
        assert_eq!(page, vec![listed[1].clone()]);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn every_user_agent_class_is_stored_as_its_index_and_read_back_by_name() {
        let dir = temp_dir("ua");
        let store = SqliteStore::open(&dir).expect("open");
        let link = store.create_link(new_link(Some("u"))).expect("create");
        let ids = ClickIdGenerator::new(0);
        let events: Vec<ClickEvent> = UaClass::ALL
            .iter()
            .enumerate()
            .map(|(i, &class)| ClickEvent {
                // Both tables: with and without a click ID.
                click_id: (i % 2 == 0).then(|| ids.next_id()),
                link_id: link.id,
                at_ms: i as i64,
                bot: class == UaClass::Bot,
                referrer_host: None,
                ua_class: class,
                country: None,
            })
            .collect();
        store.insert_clicks(&events).expect("insert");
        let read: Vec<String> = store
            .clicks(10)
            .expect("clicks")
            .into_iter()
            .map(|c| c.ua_class)
            .collect();
        let names: Vec<&str> = UaClass::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(read, names);
        let stored: Vec<i64> = store.with_conn(|c| {
            let mut s = c
                .prepare(
                    "SELECT ua FROM clicks_by_id UNION ALL SELECT ua FROM clicks_without_id \
                     ORDER BY 1",
                )
                .expect("prepare");
            s.query_map([], |r| r.get(0))
                .expect("query")
                .collect::<Result<_, _>>()
                .expect("rows")
        });
        assert_eq!(stored, [0, 1, 2, 3, 4]);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn clicks_are_stored_in_batches_and_read_back() {
        let dir = temp_dir("clicks");
        let store = SqliteStore::open(&dir).expect("open");
        let link = store.create_link(new_link(Some("c"))).expect("create");
        let ids = ClickIdGenerator::new(0);
        let id = ids.next_id();
        store
            .insert_clicks(&[
                ClickEvent {
                    click_id: Some(id),
                    link_id: link.id,
                    at_ms: 1,
                    bot: false,
                    referrer_host: Some("news.example".into()),
                    ua_class: UaClass::Mobile,
                    country: Some(*b"DE"),
                },
                ClickEvent {
                    click_id: None,
                    link_id: link.id,
                    at_ms: 2,
                    bot: true,
                    referrer_host: None,
                    ua_class: UaClass::Bot,
                    country: None,
                },
            ])
            .expect("insert");
        let clicks = store.clicks(10).expect("clicks");
        assert_eq!(clicks.len(), 2);
        assert_eq!(clicks[0].click_id.as_deref(), Some(id.as_str()));
        assert_eq!(clicks[0].country.as_deref(), Some("DE"));
        assert_eq!(clicks[0].ua_class, "mobile");
        assert!(clicks[1].bot && clicks[1].click_id.is_none());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_failed_click_batch_leaves_nothing_behind() {
        let dir = temp_dir("click-rollback");
        let store = SqliteStore::open(&dir).expect("open");
        let link = store.create_link(new_link(Some("c"))).expect("create");
        let ids = ClickIdGenerator::new(0);
        let mut batch: Vec<ClickEvent> = (0..100)
            .map(|i| ClickEvent {
                click_id: Some(ids.next_id()),
                link_id: link.id,
                at_ms: i,
                bot: false,
                referrer_host: None,
                ua_class: UaClass::Desktop,
                country: None,
            })
            .collect();
        // A click ID twice: the unique index refuses row 40, inside the
        // first multi-row statement, after rows of it went in.
        batch[40].click_id = batch[10].click_id;
        assert!(store.insert_clicks(&batch).is_err());
        assert!(store.clicks(1000).expect("clicks").is_empty());
        assert_eq!(store.link_stats(link.id).expect("stats").total.clicks, 0);
        batch[40].click_id = Some(ids.next_id());
        store.insert_clicks(&batch).expect("insert");
        assert_eq!(store.clicks(1000).expect("clicks").len(), 100);
        assert_eq!(store.link_stats(link.id).expect("stats").total.clicks, 100);
        std::fs::remove_dir_all(&dir).ok();
    }

    /// `(click_id, link_id, at_ms, bot, referrer_host, ua_class, country)`.
    type ClickColumns = (
        Option<String>,
        i64,
        i64,
        bool,
        Option<String>,
        String,
        Option<String>,
    );

    /// Every row of `clicks` (the table before migration 6, the view after).
    fn click_rows(conn: &Connection) -> Vec<ClickColumns> {
        let mut stmt = conn
            .prepare(
                "SELECT click_id, link_id, at_ms, bot, referrer_host, ua_class, country \
                 FROM clicks ORDER BY at_ms, click_id",
            )
            .expect("prepare");
        stmt.query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
    }

    fn count(conn: &Connection, table: &str) -> i64 {
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .expect("count")
    }

    #[test]
    fn insert_clicks_puts_clicks_with_and_without_an_id_in_their_tables() {
        let dir = temp_dir("click-tables");
        let store = SqliteStore::open(&dir).expect("open");
        let link = store.create_link(new_link(Some("c"))).expect("create");
        let ids = ClickIdGenerator::new(0);
        // 200 human clicks (3 full multi-row statements and 8 rows one by
        // one) and 100 bot hits (one full statement and 36 one by one),
        // interleaved as the click log hands them over.
        let batch: Vec<ClickEvent> = (0..300)
            .map(|i| {
                let bot = i % 3 == 0;
                ClickEvent {
                    click_id: (!bot).then(|| ids.next_id()),
                    link_id: link.id,
                    at_ms: 1_000 + i,
                    bot,
                    referrer_host: (i % 2 == 0).then(|| format!("r{i}.example").into()),
                    ua_class: if bot { UaClass::Bot } else { UaClass::Mobile },
                    country: (i % 5 == 0).then_some(*b"FR"),
                }
            })
            .collect();
        store.insert_clicks(&batch).expect("insert");

        let (by_id, without_id, rows) = store.with_conn(|c| {
            (
                count(c, "clicks_by_id"),
                count(c, "clicks_without_id"),
                click_rows(c),
            )
        });
        assert_eq!((by_id, without_id), (200, 100));
        let expected: Vec<ClickColumns> = batch
            .iter()
            .map(|e| {
                (
                    e.click_id.map(|id| id.as_str().to_owned()),
                    e.link_id,
                    e.at_ms,
                    e.bot,
                    e.referrer_host.as_deref().map(str::to_owned),
                    e.ua_class.as_str().to_owned(),
                    e.country
                        .map(|cc| String::from_utf8_lossy(&cc).into_owned()),
                )
            })
            .collect();
        assert_eq!(rows, expected);
        // Store::clicks reads both, in time order.
        let stored = store.clicks(1000).expect("clicks");
        assert_eq!(stored.len(), 300);
        assert!(stored.windows(2).all(|w| w[0].at_ms < w[1].at_ms));
        let stats = store.link_stats(link.id).expect("stats");
        assert_eq!((stats.total.clicks, stats.total.bot_hits), (200, 100));

        // A click ID already stored fails the next batch whole: its bot hit
        // and rollup counts are not kept either.
        let again = [batch[1].clone(), batch[0].clone()];
        assert!(store.insert_clicks(&again).is_err());
        let counts = store.with_conn(|c| (count(c, "clicks_by_id"), count(c, "clicks_without_id")));
        assert_eq!(counts, (200, 100));
        let stats = store.link_stats(link.id).expect("stats");
        assert_eq!((stats.total.clicks, stats.total.bot_hits), (200, 100));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn migration_6_keeps_every_click_and_conversions_still_join_by_click_id() {
        use crate::conversions::{ConversionsConfig, Format, import};

        let dir = temp_dir("migrate-6");
        std::fs::create_dir_all(&dir).expect("dir");
        // A database as version 5 left it: human clicks, bot hits, and a
        // human hit without a click ID (as tests and tools wrote them).
        let before = {
            let mut conn = Connection::open(dir.join(DB_FILE)).expect("raw");
            let tx = conn.transaction().expect("tx");
            for sql in &MIGRATIONS[..5] {
                tx.execute_batch(sql).expect("migration");
            }
            tx.pragma_update(None, "user_version", 5).expect("version");
            tx.execute_batch(
                "INSERT INTO links (id, code, provider, input, destination, template_prefix, \
                 template_suffix, subid_max_len, subid_encoding, created_ms) VALUES \
                 (1, 'a', 'amazon', 'x', 'x', 'x', '', 64, 'url_safe', 0), \
                 (2, 'b', 'amazon', 'x', 'x', 'x', '', 64, 'url_safe', 0); \
                 INSERT INTO clicks (id, click_id, link_id, at_ms, bot, referrer_host, ua_class, \
                 country) VALUES \
                 (1, '0TbB9kQ2mXr01', 1, 1000, 0, 'news.example', 'mobile', 'DE'), \
                 (2, NULL, 1, 1000, 1, NULL, 'bot', NULL), \
                 (3, '0TbB9kQ2mXr02', 2, 1001, 0, NULL, 'desktop', NULL), \
                 (4, NULL, 2, 1002, 1, 't.co', 'bot', 'US'), \
                 (5, '0TbB9kQ2mXr03', 1, 1003, 0, NULL, 'tablet', NULL), \
                 (6, NULL, 1, 1004, 0, NULL, 'other', NULL);",
            )
            .expect("rows");
            let rows = click_rows(&tx);
            tx.commit().expect("commit");
            rows
        };
        assert_eq!(before.len(), 6);

        let store = SqliteStore::open(&dir).expect("migrate");
        store.with_conn(|c| {
            let version: i64 = c
                .pragma_query_value(None, "user_version", |r| r.get(0))
                .expect("version");
            assert_eq!(version, MIGRATIONS.len() as i64);
            assert_eq!(click_rows(c), before, "every row kept, as it was");
            assert_eq!(count(c, "clicks_by_id"), 3);
            assert_eq!(count(c, "clicks_without_id"), 3);
        });
        let codes: Vec<(Option<String>, String)> = store
            .clicks(10)
            .expect("clicks")
            .into_iter()
            .map(|c| (c.click_id, c.code))
            .collect();
        assert_eq!(codes[0], (None, "a".to_owned()), "ties: no click ID first");
        assert_eq!(codes[1], (Some("0TbB9kQ2mXr01".to_owned()), "a".to_owned()));

        // An earnings report naming the third click by its ID is attributed
        // to its link; the row without a sub-ID is not.
        let earnings = "Fee-Earnings reports from 11-01-2026 to 11-30-2026\n\
Category\tName\tASIN\tSeller\tTracking ID\tDate Shipped\tPrice($)\tItems Shipped\tReturns\tRevenue($)\tAd Fees($)\tDevice Type Group\tSub Tag\n\
Electronics\tEcho Dot\tB09B8V1LZ3\tAmazon.com\tlw-20\t2026-11-03\t49.99\t2\t0\t99.98\t3.00\tDESKTOP\t0TbB9kQ2mXr02\n\
Books\tRust\t1718503105\tAmazon.com\tlw-20\t2026-11-04\t39.95\t1\t0\t39.95\t1.00\tPHONE\t\n";
        let summary = import(
            &store,
            &ConversionsConfig::default(),
            Format::AmazonEarnings,
            earnings.as_bytes(),
        )
        .expect("import");
        assert_eq!((summary.inserted, summary.unattributed), (2, 1));
        let links: Vec<(Option<String>, Option<i64>)> = store.with_conn(|c| {
            let mut s = c
                .prepare("SELECT sub_id, link_id FROM conversions ORDER BY id")
                .expect("prepare");
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .expect("query")
                .collect::<Result<_, _>>()
                .expect("rows")
        });
        assert_eq!(links[0], (Some("0TbB9kQ2mXr02".to_owned()), Some(2)));
        assert_eq!(links[1].1, None);

        // New clicks land in the new tables beside the moved ones.
        let id = ClickIdGenerator::new(0).next_id();
        store
            .insert_clicks(&[ClickEvent {
                click_id: Some(id),
                link_id: 1,
                at_ms: 2_000,
                bot: false,
                referrer_host: None,
                ua_class: UaClass::Desktop,
                country: None,
            }])
            .expect("insert");
        assert_eq!(store.clicks(10).expect("clicks").len(), 7);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn click_state_only_moves_forward() {
        let dir = temp_dir("state");
        let store = SqliteStore::open(&dir).expect("open");
        assert_eq!(store.load_click_state().expect("load"), 0);
        store.save_click_state(100).expect("save");
        store.save_click_state(50).expect("save");
        assert_eq!(store.load_click_state().expect("load"), 100);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = temp_dir("schema");
        drop(SqliteStore::open(&dir).expect("open"));
        let conn = Connection::open(dir.join(DB_FILE)).expect("raw");
        conn.pragma_update(None, "user_version", 99).expect("bump");
        drop(conn);
        assert!(matches!(
            SqliteStore::open(&dir),
            Err(StoreError::SchemaTooNew { found: 99, .. })
        ));
        std::fs::remove_dir_all(&dir).ok();
    }
}
