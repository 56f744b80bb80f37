//! What only the SQLite store does, against real database files: its
//! migrations of old files, its schema version, the journal of a row
//! replaced in place. What every store does is `store::conformance`.

use super::*;
use crate::classify::UaClass;
use crate::click::ClickIdGenerator;

/// `INSERT OR REPLACE` (a hand edit, another tool) deletes the old row
/// without firing SQLite's delete trigger: migration 9 journals the old row
/// as changed, then the new one as created. The journal's other rules are
/// every backend's: `store::conformance`.
#[test]
fn a_link_replaced_in_place_is_journaled_as_changed_then_created() {
    let dir = crate::testing::scratch("replace");
    let store = SqliteStore::open(&dir).expect("open");
    store
        .create_link(crate::backend::conformance_link("a"))
        .expect("create");
    let start = store.last_link_change().expect("last");
    store.with_conn(|c| {
        c.execute_batch(
            "CREATE TEMP TABLE copy AS SELECT * FROM links WHERE code = 'a'; \
                 UPDATE copy SET disabled = 1; \
                 INSERT OR REPLACE INTO links SELECT * FROM copy; \
                 DROP TABLE copy;",
        )
        .expect("replace")
    });
    let changes: Vec<(i64, String, bool)> = store
        .link_changes(start, 100)
        .expect("changes")
        .into_iter()
        .map(|c| (c.seq, c.code, c.created))
        .collect();
    assert_eq!(
        changes,
        [
            (start + 1, "a".to_owned(), false),
            (start + 2, "a".to_owned(), true)
        ]
    );
    assert!(
        store
            .link_by_code("a")
            .expect("read")
            .expect("kept")
            .disabled
    );
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
fn migration_6_keeps_every_click_and_conversions_still_join_by_click_id() {
    use crate::conversions::{ConversionsConfig, Format, import};

    let dir = crate::testing::scratch("migrate-6");
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
            target: 0,
        }])
        .expect("insert");
    assert_eq!(store.clicks(10).expect("clicks").len(), 7);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn newer_schema_is_refused() {
    let dir = crate::testing::scratch("schema");
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
