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

use self::schema::MIGRATIONS;
use super::Backend;
use crate::clock::MS_PER_DAY;
use crate::clock::now_ms;
use crate::store::{
    Availability, ClickBreakdown, ClickEvent, ClickStore, Link, LinkChange, LinkFilter, LinkStats,
    LinkStore, LinkUpdate, NewLink, StoreError, StoredClick, generate_code,
};
use crate::targeting::Targeting;

mod conversions;
mod jobs;
mod keys;
mod nodes;
mod reports;
mod schema;
mod stats;
#[cfg(test)]
pub(crate) use conversions::{CLICK_SQL, EXISTING_SQL};

/// The database file's name inside the data folder.
pub const DB_FILE: &str = "linkwright.db";

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

    /// The click writer's connection (the rollup's readers use it too).
    fn click_conn(&self) -> MutexGuard<'_, Connection> {
        lock(&self.clicks)
    }
}

const LINK_COLUMNS: &str = "id, code, provider, input, destination, template_prefix, template_suffix, \
     subid_max_len, subid_encoding, name, marketplace, campaign, tags, params, source_key, \
     created_ms, disabled, targeting";

/// Rows per multi-row click insert.
const INSERT_ROWS: usize = 64;

/// The click tables' columns after the key, in binding order.
const CLICK_COLUMNS: &str = "link_id, at_ms, bot, referrer_host, ua, country, target";

/// Columns bound per click row: the click ID (in `clicks_by_id` only), then
/// [`CLICK_COLUMNS`].
const BY_ID_WIDTH: usize = 8;
const WITHOUT_ID_WIDTH: usize = 7;

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
    )?;
    stmt.raw_bind_parameter(first + 6, c.target)
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

/// Adds `clicks` to the per-link, per-UTC-day rollup that reports read, in
/// the transaction that inserts them. A batch usually touches few
/// (link, day) pairs: sum them here, then one upsert per pair.
fn add_to_rollup<'a>(
    tx: &rusqlite::Transaction<'_>,
    clicks: impl Iterator<Item = &'a ClickEvent>,
) -> rusqlite::Result<()> {
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
    let targeting: Option<String> = row.get(17)?;
    let targeting = match targeting.as_deref().map(serde_json::from_str) {
        None => None,
        Some(Ok(t)) => Some(t),
        Some(Err(e)) => return Ok(Err(corrupt(format!("targeting: {e}")))),
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
        targeting,
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

/// A link's targeting as stored: JSON, or NULL for none.
fn targeting_json(targeting: Option<&Targeting>) -> Option<String> {
    targeting
        .filter(|t| !t.is_empty() || t.localize)
        .and_then(|t| serde_json::to_string(t).ok())
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
    let targeting = targeting_json(new.targeting.as_ref());
    let t = &new.template;
    // A generated code may collide; try a few fresh ones.
    let attempts = if new.code.is_some() { 1 } else { 8 };
    for _ in 0..attempts {
        let code = new.code.clone().unwrap_or_else(generate_code);
        let result = conn
            .prepare_cached(
                "INSERT INTO links (code, provider, input, destination, template_prefix, \
                 template_suffix, subid_max_len, subid_encoding, name, marketplace, campaign, \
                 tags, params, source_key, created_ms, request_key, targeting) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
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
                targeting,
            ]);
        match result {
            Ok(_) => {
                return Ok(new.into_link(conn.last_insert_rowid(), code, created_ms));
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

impl Backend for SqliteStore {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn schema_version(&self) -> Result<i64, StoreError> {
        SqliteStore::schema_version(self)
    }
}

impl LinkStore for SqliteStore {
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
             AND (?8 IS NULL OR instr(lower(coalesce(name, '') || char(10) || code || char(10) \
                  || input || char(10) || destination), lower(?8)) > 0) \
             AND (?9 IS NULL OR disabled = ?9) \
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
                filter.limit as i64,
                filter.search,
                filter.disabled
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
        if let Some(targeting) = &update.targeting {
            tx.execute(
                "UPDATE links SET targeting = ?1 WHERE code = ?2",
                params![targeting_json(targeting.as_ref()), code],
            )?;
        }
        if update.forget_request {
            // Other rules make it another link as far as idempotency goes
            // (the request key digests the rules it was made with).
            tx.execute(
                "UPDATE links SET request_key = NULL WHERE code = ?1",
                params![code],
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

    fn availability(&self, asin: &str) -> Result<Vec<Availability>, StoreError> {
        let conn = lock(&self.links);
        let mut stmt = conn.prepare_cached(
            "SELECT asin, marketplace, available, title, checked_ms FROM availability \
             WHERE asin = ?1 ORDER BY marketplace",
        )?;
        let rows = stmt.query_map([asin], |r| {
            Ok(Availability {
                asin: r.get(0)?,
                marketplace: r.get(1)?,
                available: r.get(2)?,
                title: r.get(3)?,
                checked_ms: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn save_availability(&self, answers: &[Availability]) -> Result<(), StoreError> {
        let mut conn = lock(&self.links);
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT OR REPLACE INTO availability (asin, marketplace, available, title, \
                 checked_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for a in answers {
                stmt.execute(params![
                    a.asin,
                    a.marketplace,
                    a.available,
                    a.title,
                    a.checked_ms
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn localized_links(
        &self,
        checked_before_ms: i64,
        limit: usize,
    ) -> Result<Vec<Link>, StoreError> {
        let conn = lock(&self.links);
        let sql = format!(
            "SELECT {LINK_COLUMNS} FROM links WHERE deleted_ms IS NULL \
             AND targeting IS NOT NULL AND json_extract(targeting, '$.localize') = 1 \
             AND (coalesce(json_extract(targeting, '$.checked_ms'), 0) < ?1 \
                  OR json_extract(targeting, '$.retry_availability') = 1) \
             ORDER BY coalesce(json_extract(targeting, '$.checked_ms'), 0) LIMIT ?2"
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![checked_before_ms, limit as i64], link_from_row)?;
        let mut links = Vec::new();
        for row in rows {
            links.push(row??);
        }
        Ok(links)
    }

    fn link_stats(&self, link_id: i64) -> Result<LinkStats, StoreError> {
        stats::link_stats(&self.click_conn(), link_id)
    }

    fn click_breakdown(
        &self,
        link_id: Option<i64>,
        since_ms: i64,
        top: usize,
    ) -> Result<ClickBreakdown, StoreError> {
        stats::click_breakdown(&self.click_conn(), link_id, since_ms, top)
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
}

impl ClickStore for SqliteStore {
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
            add_to_rollup(&tx, clicks.iter())?;
        }
        tx.commit()?;
        Ok(())
    }

    fn insert_new_clicks(&self, clicks: &[ClickEvent]) -> Result<usize, StoreError> {
        // One row at a time: a multi-row `INSERT OR IGNORE` does not say
        // which rows it ignored, and only the new ones count in the rollup.
        // This is the replay of a crashed run's journal, not the hot path.
        let mut conn = lock(&self.clicks);
        let tx = conn.transaction()?;
        let mut new = Vec::with_capacity(clicks.len());
        {
            let by_id_columns = format!("click_id, {CLICK_COLUMNS}");
            let mut by_id = tx.prepare_cached(
                &insert_clicks_sql("clicks_by_id", &by_id_columns, BY_ID_WIDTH, 1).replacen(
                    "OR FAIL",
                    "OR IGNORE",
                    1,
                ),
            )?;
            let mut without_id = tx.prepare_cached(&insert_clicks_sql(
                "clicks_without_id",
                CLICK_COLUMNS,
                WITHOUT_ID_WIDTH,
                1,
            ))?;
            for c in clicks {
                let inserted = if c.click_id.is_some() {
                    bind_by_id(&mut by_id, 1, c)?;
                    by_id.raw_execute()?
                } else {
                    bind_click_columns(&mut without_id, 1, c)?;
                    without_id.raw_execute()?
                };
                if inserted > 0 {
                    new.push(c);
                }
            }
            add_to_rollup(&tx, new.iter().copied())?;
        }
        tx.commit()?;
        Ok(new.len())
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
mod tests;
