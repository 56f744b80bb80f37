//! The SQLite store against real database files: links, the journal,
//! clicks in both tables, migrations, the click ID state.

use super::*;
use crate::classify::UaClass;
use crate::click::ClickIdGenerator;
use crate::template::Template;

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
        targeting: None,
    }
}

#[test]
fn links_round_trip_and_survive_reopening() {
    let dir = crate::testing::scratch("roundtrip");
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
    let dir = crate::testing::scratch("changes");
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
    let dir = crate::testing::scratch("batch");
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
    let dir = crate::testing::scratch("conflict");
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
    let dir = crate::testing::scratch("ua");
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
            target: 0,
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
    let dir = crate::testing::scratch("clicks");
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
                target: 0,
            },
            ClickEvent {
                click_id: None,
                link_id: link.id,
                at_ms: 2,
                bot: true,
                referrer_host: None,
                ua_class: UaClass::Bot,
                country: None,
                target: 0,
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
    let dir = crate::testing::scratch("click-rollback");
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
            target: 0,
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
    let dir = crate::testing::scratch("click-tables");
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
                target: 0,
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
fn click_state_only_moves_forward() {
    let dir = crate::testing::scratch("state");
    let store = SqliteStore::open(&dir).expect("open");
    assert_eq!(store.load_click_state().expect("load"), 0);
    store.save_click_state(100).expect("save");
    store.save_click_state(50).expect("save");
    assert_eq!(store.load_click_state().expect("load"), 100);
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
