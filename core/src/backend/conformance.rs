//! The store conformance suite: what every backend of [`Store`] must do,
//! written once against `&dyn Store` and run against each backend
//! (`backend::conformance::sqlite::…` on a scratch folder,
//! `backend::conformance::postgres::…` on a fresh database from
//! `LINKWRIGHT_TEST_DATABASE_URL`). What only one backend has (SQLite's
//! migrations of old files, say) is tested beside that backend.

use std::collections::HashSet;

use linkwright_plugin_sdk::SubIdEncoding;

use super::*;
use crate::classify::UaClass;
use crate::click::ClickId;
use crate::click::ClickIdGenerator;
use crate::money::Micros;
use crate::store::{
    Availability, ClickBreakdown, ClickEvent, DayStats, Link, LinkFilter, LinkStats, LinkUpdate,
    NewLink, StoreError, StoredClick, Totals,
};
use crate::targeting::{BuiltTarget, Targeting, Why};
use crate::template::Template;
use crate::testing::PgDatabase;

/// A backend under test: its store, and ways to reach its database
/// besides the store, with SQL both backends understand.
trait Harness {
    /// The store under test.
    fn store(&self) -> &dyn Store;
    /// A second store on the same database, as another process or
    /// instance opens it.
    fn reopen(&self) -> Box<dyn Store>;
    /// Runs statements behind the store's back, as a hand edit would.
    fn exec(&self, sql: &str);
    /// The first column of a query's rows, as integers.
    fn integers(&self, sql: &str) -> Vec<i64>;
}

struct Sqlite {
    store: SqliteStore,
    dir: std::path::PathBuf,
}

impl Sqlite {
    fn new(name: &str) -> Sqlite {
        let dir = crate::testing::scratch(name);
        Sqlite {
            store: SqliteStore::open(&dir).expect("open"),
            dir,
        }
    }
}

impl Drop for Sqlite {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

impl Harness for Sqlite {
    fn store(&self) -> &dyn Store {
        &self.store
    }
    fn reopen(&self) -> Box<dyn Store> {
        Box::new(SqliteStore::open(&self.dir).expect("reopen"))
    }
    fn exec(&self, sql: &str) {
        self.store
            .with_conn(|c| c.execute_batch(sql))
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    fn integers(&self, sql: &str) -> Vec<i64> {
        self.store.with_conn(|c| {
            let mut stmt = c.prepare(sql).expect("prepare");
            stmt.query_map([], |r| r.get(0))
                .expect("query")
                .collect::<Result<_, _>>()
                .expect("rows")
        })
    }
}

struct Postgres {
    store: PgStore,
    /// Dropped after the store (fields drop in order).
    db: PgDatabase,
}

impl Postgres {
    fn new() -> Postgres {
        let db = PgDatabase::create();
        Postgres {
            store: PgStore::connect(&db.url).expect("connect"),
            db,
        }
    }
}

impl Harness for Postgres {
    fn store(&self) -> &dyn Store {
        &self.store
    }
    fn reopen(&self) -> Box<dyn Store> {
        Box::new(PgStore::connect(&self.db.url).expect("reconnect"))
    }
    fn exec(&self, sql: &str) {
        self.store
            .execute_batch(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    fn integers(&self, sql: &str) -> Vec<i64> {
        self.store.query_integers(sql).expect("query")
    }
}

/// Each test once per backend.
macro_rules! conformance {
    (@in $sqlite:ident, $postgres:ident: $($test:ident),* $(,)?) => {
        mod $sqlite {
            $(
                #[test]
                fn $test() {
                    super::$test(&super::Sqlite::new(stringify!($test)));
                }
            )*
        }
        mod $postgres {
            $(
                #[test]
                fn $test() {
                    super::$test(&super::Postgres::new());
                }
            )*
        }
    };
    (@more $($test:ident),* $(,)?) => {
        mod more_sqlite {
            $(
                #[test]
                fn $test() {
                    super::$test(&super::Sqlite::new(stringify!($test)));
                }
            )*
        }
        mod more_postgres {
            $(
                #[test]
                fn $test() {
                    super::$test(&super::Postgres::new());
                }
            )*
        }
    };
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $test() {
                    super::$test(&super::Sqlite::new(stringify!($test)));
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $test() {
                    super::$test(&super::Postgres::new());
                }
            )*
        }
    };
}

conformance!(
    links_round_trip_and_a_second_store_reads_them,
    every_change_to_links_is_journaled_in_order_and_pruning_keeps_the_newest,
    concurrent_link_writers_get_consecutive_change_numbers,
    a_batch_of_links_answers_each_as_one_by_one_in_one_transaction,
    taken_custom_code_is_a_conflict_and_generated_codes_are_unique,
    request_and_source_keys_find_the_existing_link_until_it_is_deleted,
    updates_change_only_the_fields_given,
    links_are_listed_by_filter_in_creation_order,
    targeting_round_trips_and_localized_links_are_due_by_their_check,
    availability_answers_replace_older_ones,
    every_user_agent_class_is_stored_as_its_index_and_read_back_by_name,
    clicks_are_stored_in_batches_and_read_back,
    a_failed_click_batch_leaves_nothing_behind,
    insert_clicks_puts_clicks_with_and_without_an_id_in_their_tables,
    a_replayed_click_batch_adds_nothing,
    link_stats_sum_clicks_and_counted_conversions_by_day,
    click_breakdown_counts_human_clicks_by_group_since_a_time,
    click_state_only_moves_forward,
);

pub(crate) fn new_link(code: Option<&str>) -> NewLink {
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

fn all_links(store: &dyn Store) -> Vec<Link> {
    store
        .list_links(&LinkFilter {
            limit: 100,
            ..Default::default()
        })
        .expect("list")
}

fn human(id: ClickId, link_id: i64, at_ms: i64) -> ClickEvent {
    ClickEvent {
        click_id: Some(id),
        link_id,
        at_ms,
        bot: false,
        referrer_host: None,
        ua_class: UaClass::Desktop,
        country: None,
        target: 0,
    }
}

fn bot(link_id: i64, at_ms: i64) -> ClickEvent {
    ClickEvent {
        click_id: None,
        link_id,
        at_ms,
        bot: true,
        referrer_host: None,
        ua_class: UaClass::Bot,
        country: None,
        target: 0,
    }
}

fn links_round_trip_and_a_second_store_reads_them(h: &dyn Harness) {
    let created = h
        .store()
        .create_link(new_link(Some("echo")))
        .expect("create");
    let other = h.reopen();
    let read = other.link_by_code("echo").expect("read").expect("exists");
    assert_eq!(read, created);
    assert_eq!(
        read.template().display(),
        "https://www.amazon.com/dp/B08N5WRWNW?tag=t-20&ascsubtag={click_id}"
    );
    assert!(other.link_by_code("nope").expect("read").is_none());
}

fn every_change_to_links_is_journaled_in_order_and_pruning_keeps_the_newest(h: &dyn Harness) {
    let store = h.store();
    assert_eq!(store.last_link_change().expect("last"), 0);
    store.create_link(new_link(Some("a"))).expect("create");
    let start = store.last_link_change().expect("last");
    assert!(start > 0);
    store.create_link(new_link(Some("b"))).expect("create");
    assert!(store.set_disabled("a", true).expect("disable"));
    assert!(store.delete_link("b").expect("delete"));
    // A taken code changes nothing, nor does a missing one.
    assert!(store.create_link(new_link(Some("a"))).is_err());
    assert!(!store.set_disabled("nope", true).expect("disable"));
    // Nor does the store alone: whoever writes `links` is journaled.
    h.exec("UPDATE links SET name = 'by hand' WHERE code = 'a'");
    // A renamed code: both the old and the new one changed.
    h.exec("UPDATE links SET code = 'a2' WHERE code = 'a'");

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
        ]
    );
    let seqs: Vec<i64> = changes.iter().map(|c| c.seq).collect();
    assert_eq!(seqs, (start + 1..=start + 6).collect::<Vec<_>>());
    assert_eq!(store.last_link_change().expect("last"), start + 6);
    assert_eq!(store.link_changes(start, 2).expect("limit").len(), 2);
    assert!(store.link_changes(start + 6, 100).expect("none").is_empty());

    // `start` itself and the four after it are older than the newest 2.
    assert_eq!(
        store.prune_link_changes(2, 4).expect("prune"),
        4,
        "at most the limit"
    );
    assert_eq!(store.prune_link_changes(2, 100).expect("prune"), 1);
    let kept = store.link_changes(0, 100).expect("kept");
    assert_eq!(
        kept.iter().map(|c| c.seq).collect::<Vec<_>>(),
        [start + 5, start + 6]
    );
    // The newest stays, so numbering goes on from it.
    assert_eq!(store.prune_link_changes(0, 100).expect("prune"), 1);
    store.create_link(new_link(Some("c"))).expect("create");
    assert_eq!(store.last_link_change().expect("last"), start + 7);
}

/// Writers on several threads (and, for a shared database, on several
/// connections): every change is numbered once, with no gap and no number
/// twice, and a change rolled back gives its number back.
fn concurrent_link_writers_get_consecutive_change_numbers(h: &dyn Harness) {
    const THREADS: usize = 4;
    const LINKS: usize = 10;
    let second = h.reopen();
    let stores: [&dyn Store; 2] = [h.store(), second.as_ref()];
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let store = stores[t % 2];
            s.spawn(move || {
                for i in 0..LINKS {
                    let code = format!("t{t}-{i}");
                    store.create_link(new_link(Some(&code))).expect("create");
                    assert!(store.set_disabled(&code, true).expect("disable"));
                    // A taken code: no change, no number used.
                    assert!(matches!(
                        store.create_link(new_link(Some(&code))),
                        Err(StoreError::Conflict(_))
                    ));
                }
            });
        }
    });
    // A change rolled back gives its number back.
    h.exec("BEGIN; UPDATE links SET name = 'rolled back' WHERE code = 't0-0'; ROLLBACK;");
    h.store()
        .create_link(new_link(Some("last")))
        .expect("create");
    let changes = h.store().link_changes(0, 1000).expect("changes");
    let seqs: Vec<i64> = changes.iter().map(|c| c.seq).collect();
    let n = (THREADS * LINKS * 2 + 1) as i64;
    assert_eq!(seqs, (1..=n).collect::<Vec<_>>());
    let created: HashSet<&str> = changes
        .iter()
        .filter(|c| c.created)
        .map(|c| c.code.as_str())
        .collect();
    assert_eq!(created.len(), THREADS * LINKS + 1);
    assert_eq!(second.last_link_change().expect("last"), n);
}

fn a_batch_of_links_answers_each_as_one_by_one_in_one_transaction(h: &dyn Harness) {
    let store = h.store();
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
    assert_eq!(
        all_links(store).len(),
        3,
        "before, the first item and `taken`"
    );
    assert_eq!(
        store.link_by_code(&first.code).expect("read").as_ref(),
        Some(first)
    );
    // Two creations in the batch, one before it: three changes.
    assert_eq!(store.last_link_change().expect("last"), 3);
}

fn taken_custom_code_is_a_conflict_and_generated_codes_are_unique(h: &dyn Harness) {
    let store = h.store();
    store.create_link(new_link(Some("taken"))).expect("first");
    assert!(matches!(
        store.create_link(new_link(Some("taken"))),
        Err(StoreError::Conflict(c)) if c == "taken"
    ));
    let a = store.create_link(new_link(None)).expect("a");
    let b = store.create_link(new_link(None)).expect("b");
    assert_ne!(a.code, b.code);
    let listed = all_links(store);
    assert_eq!(listed.len(), 3);
    let page = store
        .list_links(&LinkFilter {
            after_id: Some(listed[0].id),
            limit: 1,
            ..Default::default()
        })
        .expect("page");
    assert_eq!(page, vec![listed[1].clone()]);
    // A deleted link's code stays taken.
    assert!(store.delete_link("taken").expect("delete"));
    assert!(!store.delete_link("taken").expect("deleted already"));
    assert!(store.link_by_code("taken").expect("read").is_none());
    assert!(matches!(
        store.create_link(new_link(Some("taken"))),
        Err(StoreError::Conflict(c)) if c == "taken"
    ));
}

fn request_and_source_keys_find_the_existing_link_until_it_is_deleted(h: &dyn Harness) {
    let store = h.store();
    let by_request = store
        .create_link(NewLink {
            request_key: Some("req".into()),
            ..new_link(None)
        })
        .expect("create");
    let by_source = store
        .create_link(NewLink {
            source_key: Some("https://shop.example/p/1".into()),
            ..new_link(None)
        })
        .expect("create");
    assert_eq!(
        store.link_by_request_key("req").expect("read"),
        Some(by_request.clone())
    );
    assert_eq!(
        store
            .link_by_source_key("https://shop.example/p/1")
            .expect("read"),
        Some(by_source.clone())
    );
    assert_eq!(
        by_source.source_key.as_deref(),
        Some("https://shop.example/p/1")
    );
    assert!(matches!(
        store.create_link(NewLink {
            request_key: Some("req".into()),
            ..new_link(Some("custom"))
        }),
        Err(StoreError::Duplicate(l)) if *l == by_request
    ));
    assert!(matches!(
        store.create_link(NewLink {
            source_key: Some("https://shop.example/p/1".into()),
            ..new_link(None)
        }),
        Err(StoreError::Duplicate(l)) if *l == by_source
    ));
    // The same request again, naming the code it made (a client's
    // retry): the link it made, not a conflict. A key taken wins over a
    // code taken by another link too.
    assert!(matches!(
        store.create_link(NewLink {
            request_key: Some("req".into()),
            ..new_link(Some(&by_request.code))
        }),
        Err(StoreError::Duplicate(l)) if *l == by_request
    ));
    assert!(matches!(
        store.create_link(NewLink {
            request_key: Some("req".into()),
            ..new_link(Some(&by_source.code))
        }),
        Err(StoreError::Duplicate(l)) if *l == by_request
    ));
    assert!(matches!(
        store.create_link(NewLink {
            source_key: Some("https://shop.example/p/1".into()),
            ..new_link(Some(&by_request.code))
        }),
        Err(StoreError::Duplicate(l)) if *l == by_source
    ));
    // Deleting frees both keys: the same request makes a new link.
    assert!(store.delete_link(&by_request.code).expect("delete"));
    assert!(store.delete_link(&by_source.code).expect("delete"));
    assert!(store.link_by_request_key("req").expect("read").is_none());
    let again = store
        .create_link(NewLink {
            request_key: Some("req".into()),
            source_key: Some("https://shop.example/p/1".into()),
            ..new_link(None)
        })
        .expect("create again");
    assert_ne!(again.id, by_request.id);
    assert_eq!(store.link_by_request_key("req").expect("read"), Some(again));
}

fn updates_change_only_the_fields_given(h: &dyn Harness) {
    let store = h.store();
    let link = store
        .create_link(NewLink {
            request_key: Some("req".into()),
            ..new_link(Some("u"))
        })
        .expect("create");
    assert!(
        store
            .update_link("nope", &LinkUpdate::default())
            .expect("update")
            .is_none()
    );
    let unchanged = store
        .update_link("u", &LinkUpdate::default())
        .expect("update")
        .expect("exists");
    assert_eq!(unchanged, link);

    let renamed = store
        .update_link(
            "u",
            &LinkUpdate {
                name: Some(None),
                campaign: Some(Some("autumn".into())),
                tags: Some(vec!["a".into(), "b".into()]),
                disabled: Some(true),
                ..Default::default()
            },
        )
        .expect("update")
        .expect("exists");
    assert_eq!(
        renamed,
        Link {
            name: None,
            campaign: Some("autumn".into()),
            tags: vec!["a".into(), "b".into()],
            disabled: true,
            ..link.clone()
        }
    );
    // The request still finds it: nothing that makes it was changed.
    assert_eq!(
        store.link_by_request_key("req").expect("read"),
        Some(renamed.clone())
    );

    let mut template = link.template();
    template.built.destination = "https://www.amazon.de/dp/B08N5WRWNW".into();
    template.built.prefix = "https://www.amazon.de/dp/B08N5WRWNW?tag=t-21&ascsubtag=".into();
    template.built.suffix = "&x=1".into();
    template.built.marketplace = Some("amazon.de".into());
    template.built.subid_max_len = 0;
    template.built.subid_encoding = SubIdEncoding::Alphanumeric;
    let moved = store
        .update_link(
            "u",
            &LinkUpdate {
                destination: Some(("https://www.amazon.de/dp/B08N5WRWNW".into(), template)),
                ..Default::default()
            },
        )
        .expect("update")
        .expect("exists");
    assert_eq!(moved.input, "https://www.amazon.de/dp/B08N5WRWNW");
    assert_eq!(moved.destination, "https://www.amazon.de/dp/B08N5WRWNW");
    assert_eq!(moved.marketplace.as_deref(), Some("amazon.de"));
    assert_eq!(
        (
            moved.subid_max_len,
            moved.subid_encoding,
            moved.template_suffix.as_str()
        ),
        (0, SubIdEncoding::Alphanumeric, "&x=1")
    );
    assert_eq!(moved.campaign.as_deref(), Some("autumn"), "kept");
    // A new destination is a new link as far as idempotency goes.
    assert!(store.link_by_request_key("req").expect("read").is_none());

    store
        .update_link(
            "u",
            &LinkUpdate {
                disabled: Some(false),
                ..Default::default()
            },
        )
        .expect("update");
    assert!(
        !store
            .link_by_code("u")
            .expect("read")
            .expect("exists")
            .disabled
    );

    // forget_request alone clears the key too.
    let other = store
        .create_link(NewLink {
            request_key: Some("req2".into()),
            ..new_link(None)
        })
        .expect("create");
    store
        .update_link(
            &other.code,
            &LinkUpdate {
                forget_request: true,
                ..Default::default()
            },
        )
        .expect("update")
        .expect("exists");
    assert!(store.link_by_request_key("req2").expect("read").is_none());

    assert!(store.delete_link("u").expect("delete"));
    assert!(
        store
            .update_link(
                "u",
                &LinkUpdate {
                    disabled: Some(true),
                    ..Default::default()
                }
            )
            .expect("update")
            .is_none(),
        "a deleted link is not updated"
    );
    assert!(!store.set_disabled("u", true).expect("disable"));
}

fn links_are_listed_by_filter_in_creation_order(h: &dyn Harness) {
    let store = h.store();
    let make = |code: &str, f: &dyn Fn(&mut NewLink)| {
        let mut new = new_link(Some(code));
        f(&mut new);
        store.create_link(new).expect("create")
    };
    let a = make("a", &|_| {});
    let b = make("b", &|n| {
        n.template.provider = "awin".into();
        n.template.built.marketplace = None;
        n.name = Some("Garden CHAIRS".into());
        n.campaign = None;
        n.tags = vec!["garden".into(), "video".into()];
    });
    let c = make("c", &|n| {
        n.name = None;
        n.input = "https://shop.example/Lamp".into();
        n.tags = vec![];
    });
    let d = make("gone", &|_| {});
    assert!(store.delete_link(&d.code).expect("delete"));
    assert!(store.set_disabled("c", true).expect("disable"));
    let c = Link {
        disabled: true,
        ..c
    };

    let list = |f: LinkFilter| -> Vec<String> {
        store
            .list_links(&LinkFilter { limit: 100, ..f })
            .expect("list")
            .into_iter()
            .map(|l| l.code)
            .collect()
    };
    assert_eq!(
        list(LinkFilter::default()),
        ["a", "b", "c"],
        "not the deleted one"
    );
    assert_eq!(
        store
            .list_links(&LinkFilter {
                limit: 100,
                ..Default::default()
            })
            .expect("list"),
        vec![a.clone(), b.clone(), c.clone()]
    );
    let cases: Vec<(LinkFilter, Vec<&str>)> = vec![
        (
            LinkFilter {
                provider: Some("awin".into()),
                ..Default::default()
            },
            vec!["b"],
        ),
        (
            LinkFilter {
                marketplace: Some("amazon.com".into()),
                ..Default::default()
            },
            vec!["a", "c"],
        ),
        (
            LinkFilter {
                campaign: Some("spring".into()),
                ..Default::default()
            },
            vec!["a", "c"],
        ),
        (
            LinkFilter {
                tag: Some("video".into()),
                ..Default::default()
            },
            vec!["a", "b"],
        ),
        (
            LinkFilter {
                tag: Some("vid".into()),
                ..Default::default()
            },
            vec![],
        ),
        (
            LinkFilter {
                name: Some("chairs".into()),
                ..Default::default()
            },
            vec!["b"],
        ),
        (
            LinkFilter {
                search: Some("LAMP".into()),
                ..Default::default()
            },
            vec!["c"],
        ),
        (
            LinkFilter {
                search: Some("b08n5".into()),
                ..Default::default()
            },
            vec!["a", "b", "c"],
        ),
        (
            LinkFilter {
                disabled: Some(true),
                ..Default::default()
            },
            vec!["c"],
        ),
        (
            LinkFilter {
                disabled: Some(false),
                provider: Some("amazon".into()),
                ..Default::default()
            },
            vec!["a"],
        ),
        (
            LinkFilter {
                after_id: Some(a.id),
                ..Default::default()
            },
            vec!["b", "c"],
        ),
    ];
    for (filter, expected) in cases {
        assert_eq!(list(filter.clone()), expected, "{filter:?}");
    }
    assert_eq!(
        store
            .list_links(&LinkFilter {
                limit: 2,
                ..Default::default()
            })
            .expect("list")
            .len(),
        2
    );
}

fn localized(checked_ms: i64, retry: bool) -> Targeting {
    Targeting {
        localize: true,
        checked_ms,
        retry_availability: retry,
        ..Default::default()
    }
}

fn targeting_round_trips_and_localized_links_are_due_by_their_check(h: &dyn Harness) {
    let store = h.store();
    let with = |code: &str, targeting: Option<Targeting>| {
        store
            .create_link(NewLink {
                targeting,
                ..new_link(Some(code))
            })
            .expect("create")
    };
    let routed = Targeting {
        rule_targets: vec![1],
        targets: vec![BuiltTarget {
            provider: "amazon".into(),
            destination: "https://www.amazon.de/dp/B08N5WRWNW".into(),
            marketplace: Some("amazon.de".into()),
            prefix: "https://www.amazon.de/dp/B08N5WRWNW?tag=t-21&ascsubtag=".into(),
            suffix: String::new(),
            why: Why::Rule,
        }],
        ..Default::default()
    };
    let r = with("routed", Some(routed.clone()));
    assert_eq!(
        store.link_by_code("routed").expect("read").expect("exists"),
        r
    );
    assert_eq!(r.targeting, Some(routed));
    with("old", Some(localized(100, false)));
    with("new", Some(localized(5_000, false)));
    with("never", Some(localized(0, false)));
    with("retry", Some(localized(9_000, true)));
    with("plain", None);
    let gone = with("gone", Some(localized(1, false)));
    assert!(store.delete_link(&gone.code).expect("delete"));

    let due = |before: i64, limit: usize| -> Vec<String> {
        store
            .localized_links(before, limit)
            .expect("due")
            .into_iter()
            .map(|l| l.code)
            .collect()
    };
    // Oldest check first; a link whose check failed is due whatever its time.
    assert_eq!(due(1_000, 10), ["never", "old", "retry"]);
    assert_eq!(due(10_000, 10), ["never", "old", "new", "retry"]);
    assert_eq!(due(10_000, 2), ["never", "old"]);

    // Checked again: the new time is stored and read back.
    let updated = store
        .update_link(
            "old",
            &LinkUpdate {
                targeting: Some(Some(localized(2_000, false))),
                ..Default::default()
            },
        )
        .expect("update")
        .expect("exists");
    assert_eq!(updated.targeting, Some(localized(2_000, false)));
    assert_eq!(due(1_000, 10), ["never", "retry"]);
    // Targeting removed: no longer localized.
    let removed = store
        .update_link(
            "never",
            &LinkUpdate {
                targeting: Some(None),
                ..Default::default()
            },
        )
        .expect("update")
        .expect("exists");
    assert_eq!(removed.targeting, None);
    assert_eq!(due(1_000, 10), ["retry"]);
}

fn availability_answers_replace_older_ones(h: &dyn Harness) {
    let store = h.store();
    let answer = |marketplace: &str, available: bool, checked_ms: i64| Availability {
        asin: "B08N5WRWNW".into(),
        marketplace: marketplace.into(),
        available,
        title: available.then(|| format!("Echo ({marketplace})")),
        checked_ms,
    };
    assert!(store.availability("B08N5WRWNW").expect("read").is_empty());
    store
        .save_availability(&[
            answer("amazon.de", true, 1),
            answer("amazon.co.uk", false, 1),
            answer("Amazon.fr", true, 1),
        ])
        .expect("save");
    store
        .save_availability(&[answer("amazon.co.uk", true, 2)])
        .expect("save");
    store
        .save_availability(&[Availability {
            asin: "OTHER".into(),
            ..answer("amazon.de", false, 3)
        }])
        .expect("save");
    // By marketplace, in byte order.
    assert_eq!(
        store.availability("B08N5WRWNW").expect("read"),
        [
            answer("Amazon.fr", true, 1),
            answer("amazon.co.uk", true, 2),
            answer("amazon.de", true, 1),
        ]
    );
    assert_eq!(store.availability("OTHER").expect("read").len(), 1);
}

fn every_user_agent_class_is_stored_as_its_index_and_read_back_by_name(h: &dyn Harness) {
    let store = h.store();
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
    let stored = h.integers(
        "SELECT CAST(ua AS BIGINT) FROM clicks_by_id \
         UNION ALL SELECT CAST(ua AS BIGINT) FROM clicks_without_id ORDER BY 1",
    );
    assert_eq!(stored, [0, 1, 2, 3, 4]);
}

fn clicks_are_stored_in_batches_and_read_back(h: &dyn Harness) {
    let store = h.store();
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
                target: 2,
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
    assert_eq!(
        clicks,
        [
            StoredClick {
                click_id: Some(id.as_str().to_owned()),
                code: "c".into(),
                at_ms: 1,
                bot: false,
                referrer_host: Some("news.example".into()),
                ua_class: "mobile".into(),
                country: Some("DE".into()),
            },
            StoredClick {
                click_id: None,
                code: "c".into(),
                at_ms: 2,
                bot: true,
                referrer_host: None,
                ua_class: "bot".into(),
                country: None,
            }
        ]
    );
    assert_eq!(
        h.integers("SELECT CAST(target AS BIGINT) FROM clicks ORDER BY at_ms"),
        [2, 0]
    );
    assert_eq!(store.clicks(1).expect("clicks").len(), 1);
    // An empty batch is no error.
    store.insert_clicks(&[]).expect("insert nothing");
}

fn a_failed_click_batch_leaves_nothing_behind(h: &dyn Harness) {
    let store = h.store();
    let link = store.create_link(new_link(Some("c"))).expect("create");
    let ids = ClickIdGenerator::new(0);
    let mut batch: Vec<ClickEvent> = (0..100).map(|i| human(ids.next_id(), link.id, i)).collect();
    // A click ID twice: the store refuses row 40, after rows before it
    // went in.
    batch[40].click_id = batch[10].click_id;
    assert!(store.insert_clicks(&batch).is_err());
    assert!(store.clicks(1000).expect("clicks").is_empty());
    assert_eq!(store.link_stats(link.id).expect("stats").total.clicks, 0);
    batch[40].click_id = Some(ids.next_id());
    store.insert_clicks(&batch).expect("insert");
    assert_eq!(store.clicks(1000).expect("clicks").len(), 100);
    assert_eq!(store.link_stats(link.id).expect("stats").total.clicks, 100);
}

fn insert_clicks_puts_clicks_with_and_without_an_id_in_their_tables(h: &dyn Harness) {
    let store = h.store();
    let link = store.create_link(new_link(Some("c"))).expect("create");
    let ids = ClickIdGenerator::new(0);
    // Human clicks and bot hits interleaved, as the click log hands them
    // over, more than one multi-row statement's worth of each.
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
    let counts = || {
        (
            h.integers("SELECT count(*) FROM clicks_by_id"),
            h.integers("SELECT count(*) FROM clicks_without_id"),
        )
    };
    assert_eq!(counts(), (vec![200], vec![100]));
    let expected: Vec<StoredClick> = batch
        .iter()
        .map(|e| StoredClick {
            click_id: e.click_id.map(|id| id.as_str().to_owned()),
            code: "c".into(),
            at_ms: e.at_ms,
            bot: e.bot,
            referrer_host: e.referrer_host.as_deref().map(str::to_owned),
            ua_class: e.ua_class.as_str().to_owned(),
            country: e
                .country
                .map(|cc| String::from_utf8_lossy(&cc).into_owned()),
        })
        .collect();
    assert_eq!(store.clicks(1000).expect("clicks"), expected);
    let stats = store.link_stats(link.id).expect("stats");
    assert_eq!((stats.total.clicks, stats.total.bot_hits), (200, 100));

    // A click ID already stored fails the next batch whole: its bot hit
    // and rollup counts are not kept either.
    let again = [batch[1].clone(), batch[0].clone()];
    assert!(store.insert_clicks(&again).is_err());
    assert_eq!(counts(), (vec![200], vec![100]));
    let stats = store.link_stats(link.id).expect("stats");
    assert_eq!((stats.total.clicks, stats.total.bot_hits), (200, 100));
}

fn a_replayed_click_batch_adds_nothing(h: &dyn Harness) {
    let store = h.store();
    let link = store.create_link(new_link(Some("c"))).expect("create");
    let ids = ClickIdGenerator::new(0);
    let first: Vec<ClickEvent> = (0..10).map(|i| human(ids.next_id(), link.id, i)).collect();
    assert_eq!(store.insert_new_clicks(&first).expect("insert"), 10);
    // The same clicks, two new ones, one of them twice, and a bot hit
    // (without an ID: always new).
    let fresh = human(ids.next_id(), link.id, 20);
    let mut replay = first.clone();
    replay.push(fresh.clone());
    replay.push(fresh.clone());
    replay.push(human(ids.next_id(), link.id, 21));
    replay.push(bot(link.id, 22));
    assert_eq!(store.insert_new_clicks(&replay).expect("replay"), 3);
    assert_eq!(store.insert_new_clicks(&first).expect("again"), 0);
    assert_eq!(store.clicks(100).expect("clicks").len(), 13);
    let stats = store.link_stats(link.id).expect("stats");
    assert_eq!((stats.total.clicks, stats.total.bot_hits), (12, 1));
    assert_eq!(store.insert_new_clicks(&[]).expect("nothing"), 0);
}

fn link_stats_sum_clicks_and_counted_conversions_by_day(h: &dyn Harness) {
    let store = h.store();
    let link = store.create_link(new_link(Some("s"))).expect("create");
    let other = store.create_link(new_link(Some("o"))).expect("create");
    let ids = ClickIdGenerator::new(0);
    let day = crate::clock::MS_PER_DAY;
    // 2026-01-01 is day 20454.
    let d0 = 20_454 * day;
    store
        .insert_clicks(&[
            human(ids.next_id(), link.id, d0 + 5),
            human(ids.next_id(), link.id, d0 + 6),
            bot(link.id, d0 + 7),
            human(ids.next_id(), link.id, d0 + day),
            human(ids.next_id(), other.id, d0),
        ])
        .expect("insert");
    // In a second batch, the rollup adds to the day's row.
    store
        .insert_clicks(&[human(ids.next_id(), link.id, d0 + 9)])
        .expect("insert");
    let conversion = |key: &str, kind: &str, link_id: i64, at: i64, status: &str| {
        format!(
            "INSERT INTO conversions (provider, kind, row_key, link_id, event_ms, quantity, \
             returns, revenue_micros, commission_micros, status, imported_ms, updated_ms) \
             VALUES ('amazon', '{kind}', '{key}', {link_id}, {at}, 3, 1, 30000000, 1500000, \
             '{status}', 0, 0);"
        )
    };
    h.exec(
        &[
            conversion("1", "earnings", link.id, d0 + 100, "shipped"),
            conversion("2", "earnings", link.id, d0 + 2 * day, "Pending"),
            // Not counted: declined, deleted, Amazon's Orders rows, another link.
            conversion("3", "earnings", link.id, d0 + 100, "DECLINED"),
            conversion("4", "earnings", link.id, d0 + 100, "deleted"),
            conversion("5", "orders", link.id, d0 + 100, "shipped"),
            conversion("6", "earnings", other.id, d0 + 100, "shipped"),
        ]
        .concat(),
    );
    let stats = store.link_stats(link.id).expect("stats");
    let totals = |clicks, bot_hits, conversions, items, revenue, commission| Totals {
        clicks,
        bot_hits,
        conversions,
        items,
        revenue: Micros(revenue),
        commission: Micros(commission),
        earnings_per_click: Micros(commission).per(clicks),
    };
    assert_eq!(
        stats,
        LinkStats {
            total: totals(4, 1, 2, 4, 60_000_000, 3_000_000),
            by_day: vec![
                DayStats {
                    day: "2026-01-01".into(),
                    total: totals(3, 1, 1, 2, 30_000_000, 1_500_000),
                },
                DayStats {
                    day: "2026-01-02".into(),
                    total: totals(1, 0, 0, 0, 0, 0),
                },
                DayStats {
                    day: "2026-01-03".into(),
                    total: totals(0, 0, 1, 2, 30_000_000, 1_500_000),
                },
            ],
        }
    );
    assert_eq!(store.link_stats(9_999).expect("none"), LinkStats::default());
}

fn click_breakdown_counts_human_clicks_by_group_since_a_time(h: &dyn Harness) {
    let store = h.store();
    let a = store.create_link(new_link(Some("a"))).expect("create");
    let b = store.create_link(new_link(Some("b"))).expect("create");
    let ids = ClickIdGenerator::new(0);
    let now = crate::clock::now_ms();
    let click = |link_id: i64,
                 at_ms: i64,
                 country: Option<&[u8; 2]>,
                 ua: UaClass,
                 referrer: Option<&str>| {
        ClickEvent {
            country: country.copied(),
            ua_class: ua,
            referrer_host: referrer.map(Into::into),
            ..human(ids.next_id(), link_id, at_ms)
        }
    };
    // Click IDs follow the clock; those before `since` carry old times.
    let old = ClickEvent {
        click_id: Some(ClickId::first_at(now - 10_000)),
        ..click(a.id, now - 10_000, Some(b"JP"), UaClass::Mobile, None)
    };
    store
        .insert_clicks(&[
            old,
            click(
                a.id,
                now,
                Some(b"DE"),
                UaClass::Mobile,
                Some("news.example"),
            ),
            click(a.id, now, Some(b"DE"), UaClass::Desktop, Some("")),
            click(a.id, now, Some(b"FR"), UaClass::Mobile, None),
            click(a.id, now, None, UaClass::Tablet, Some("news.example")),
            click(b.id, now, Some(b"US"), UaClass::Other, Some("t.co")),
            // Bot hits (no click ID) are not counted.
            ClickEvent {
                country: Some(*b"CN"),
                ..bot(a.id, now)
            },
        ])
        .expect("insert");
    let pairs = |v: &[(&str, u64)]| -> Vec<(String, u64)> {
        v.iter().map(|(g, n)| ((*g).to_owned(), *n)).collect()
    };
    let of_a = store
        .click_breakdown(Some(a.id), now - 1_000, 10)
        .expect("breakdown");
    assert_eq!(
        of_a,
        ClickBreakdown {
            countries: pairs(&[("DE", 2), ("FR", 1), ("unknown", 1)]),
            devices: pairs(&[("mobile", 2), ("desktop", 1), ("tablet", 1)]),
            referrers: pairs(&[("direct", 2), ("news.example", 2)]),
        }
    );
    let all = store
        .click_breakdown(None, now - 1_000, 2)
        .expect("breakdown");
    assert_eq!(
        all,
        ClickBreakdown {
            countries: pairs(&[("DE", 2), ("FR", 1)]),
            devices: pairs(&[("mobile", 2), ("desktop", 1)]),
            referrers: pairs(&[("direct", 2), ("news.example", 2)]),
        }
    );
    let since_old = store
        .click_breakdown(Some(a.id), now - 20_000, 10)
        .expect("breakdown");
    assert_eq!(since_old.countries[0], ("DE".to_owned(), 2));
    assert!(since_old.countries.contains(&("JP".to_owned(), 1)));
}

fn click_state_only_moves_forward(h: &dyn Harness) {
    let store = h.store();
    assert_eq!(store.load_click_state().expect("load"), 0);
    store.save_click_state(100).expect("save");
    store.save_click_state(50).expect("save");
    assert_eq!(store.load_click_state().expect("load"), 100);
    assert_eq!(h.reopen().load_click_state().expect("load"), 100);
}

conformance!(
    @more
    api_keys_are_created_checked_listed_and_revoked,
    a_job_keeps_its_items_and_counts_each_outcome_once,
    a_job_is_held_by_one_runner_until_its_claim_runs_out_or_is_given_back,
    concurrent_claimers_never_get_the_same_job,
    conversion_imports_attribute_by_click_and_update_by_identity,
    reports_group_clicks_and_counted_conversions_alike_by_every_grouping,
);

fn api_keys_are_created_checked_listed_and_revoked(h: &dyn Harness) {
    use crate::keys::{self, AuthFailure, Scope};
    let store = h.store();
    let (read, secret) = keys::create_key(store, " reporting ", &[Scope::Read]).expect("create");
    assert_eq!(read.name, "reporting");
    let (write, _) = keys::create_key(store, "ci", &[Scope::Write, Scope::Read]).expect("create");
    assert_eq!(write.scopes, vec![Scope::Read, Scope::Write]);
    let header = format!("Bearer {secret}");
    let found = keys::authenticate(store, Some(header.as_bytes())).expect("authenticated");
    assert_eq!(found, read);
    // Another instance on the same database sees the key at once.
    let other = h.reopen();
    assert_eq!(
        keys::authenticate(&*other, Some(header.as_bytes())).expect("authenticated"),
        read
    );
    // The secret with its last character changed (to one it is not).
    let other_char = if secret.ends_with('X') { 'Y' } else { 'X' };
    let wrong = format!("Bearer {}{other_char}", &secret[..secret.len() - 1]);
    assert!(matches!(
        keys::authenticate(store, Some(wrong.as_bytes())),
        Err(keys::AuthError::Refused(AuthFailure::Unknown))
    ));
    let listed = keys::list_keys(store).expect("list");
    assert_eq!(listed.len(), 2);
    assert!(listed.contains(&read) && listed.contains(&write));
    keys::revoke_key(store, &read.id).expect("revoke");
    keys::revoke_key(store, &read.id).expect("revoking twice is fine");
    assert!(matches!(
        keys::authenticate(&*other, Some(header.as_bytes())),
        Err(keys::AuthError::Refused(AuthFailure::Revoked))
    ));
    assert!(
        keys::key_by_id(store, &read.id)
            .expect("by id")
            .expect("kept")
            .revoked
    );
    assert!(matches!(
        keys::revoke_key(store, "nosuchkey123"),
        Err(keys::KeyError::NotFound(_))
    ));
}

/// A lease for `owner` taken at `now_ms`, until `until_ms`.
fn lease(owner: &str, now_ms: i64, until_ms: i64) -> crate::jobs::Lease<'_> {
    crate::jobs::Lease {
        owner,
        now_ms,
        until_ms,
    }
}

/// A claimed job's start, or a panic naming what was found instead.
fn started(found: Option<crate::jobs::Claimed>) -> crate::jobs::JobStart {
    match found {
        Some(crate::jobs::Claimed::Started(start)) => start,
        other => panic!("not started: {other:?}"),
    }
}

fn a_job_keeps_its_items_and_counts_each_outcome_once(h: &dyn Harness) {
    use crate::jobs::{self, JobStatus};
    let store = h.store();
    let items: Vec<serde_json::Value> = (0..3)
        .map(|i| serde_json::json!({"url": format!("https://www.amazon.com/dp/B0000000{i}")}))
        .collect();
    let job = jobs::new_job(store, &items, Some("https://hooks.example.com/x")).expect("job");
    assert_eq!(
        store.unfinished_jobs().expect("unfinished"),
        vec![job.job_id.clone()]
    );
    let start = started(
        store
            .start_job(&job.job_id, lease("a", 1_000, 2_000))
            .expect("start"),
    );
    assert_eq!(start.summary.status, JobStatus::Running);
    assert_eq!(
        start.webhook_url.as_deref(),
        Some("https://hooks.example.com/x")
    );
    let seqs: Vec<i64> = start.pending.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(seqs, vec![0, 1, 2]);
    assert_eq!(start.pending[1].1, items[1].to_string());
    assert!(
        store
            .record_job_items(
                &job.job_id,
                "a",
                &[
                    (0, "{\"a\":0}".into(), true),
                    (1, "{\"e\":1}".into(), false),
                ],
            )
            .expect("record")
    );
    // Recording the same item again changes nothing.
    assert!(
        store
            .record_job_items(&job.job_id, "a", &[(0, "{\"again\":0}".into(), false)])
            .expect("record")
    );
    // Its claim ran out: another store (instance) takes it over.
    let again = started(
        h.reopen()
            .start_job(&job.job_id, lease("b", 3_000, 4_000))
            .expect("start"),
    );
    assert_eq!(again.pending, vec![(2, items[2].to_string())]);
    assert_eq!(
        (
            again.summary.processed,
            again.summary.ok,
            again.summary.errors
        ),
        (2, 1, 1)
    );
    assert!(
        store
            .record_job_items(&job.job_id, "b", &[(2, "{\"a\":2}".into(), true)])
            .expect("record")
    );
    assert!(
        store
            .finish_job(&job.job_id, "b", JobStatus::Done, None, 42)
            .expect("finish")
    );
    let done = store
        .job_summary(&job.job_id)
        .expect("summary")
        .expect("found");
    assert_eq!(
        (done.status, done.processed, done.ok, done.finished_ms),
        (JobStatus::Done, 3, 2, Some(42))
    );
    assert!(store.unfinished_jobs().expect("unfinished").is_empty());
    let (summary, rows) = store.job_items(&job.job_id).expect("items").expect("found");
    assert_eq!(summary, done);
    assert_eq!(
        rows[0],
        (items[0].to_string(), Some("{\"a\":0}".to_owned()))
    );
    assert_eq!(rows[1].1.as_deref(), Some("{\"e\":1}"));
    assert!(store.job_summary("job_nosuch").expect("summary").is_none());
    assert!(
        store
            .start_job("job_nosuch", lease("a", 0, 1))
            .expect("start")
            .is_none()
    );
}

/// Claims: the oldest job nobody holds goes to the first claimer; a live
/// claim keeps it from every other runner (their renewals, records and
/// ends are refused) until it runs out or is given back; an ended job is
/// never claimed.
fn a_job_is_held_by_one_runner_until_its_claim_runs_out_or_is_given_back(h: &dyn Harness) {
    use crate::jobs::{self, Claimed, JobStatus};
    let store = h.store();
    let other = h.reopen();
    let item = [serde_json::json!({"asin": "B08N5WRWNW"})];
    let first = jobs::new_job(store, &item, None).expect("job").job_id;
    // Created later (ids are random: the order is by creation time).
    h.exec(&format!(
        "UPDATE jobs SET created_ms = created_ms - 1000 WHERE id = '{first}'"
    ));
    let second = jobs::new_job(store, &item, None).expect("job").job_id;

    let a = store.claim_job(lease("a", 1_000, 2_000)).expect("claim");
    assert_eq!(a.expect("a job").summary.job_id, first, "oldest first");
    let b = other.claim_job(lease("b", 1_000, 2_000)).expect("claim");
    let b = b.expect("a job");
    assert_eq!(b.summary.job_id, second);
    assert_eq!(b.summary.status, JobStatus::Running);
    assert_eq!(b.pending.len(), 1);
    assert!(
        store
            .claim_job(lease("c", 1_500, 2_500))
            .expect("claim")
            .is_none()
    );
    match store
        .start_job(&first, lease("c", 1_500, 2_500))
        .expect("start")
    {
        Some(Claimed::Elsewhere(summary)) => assert_eq!(summary.job_id, first),
        other => panic!("a held job was started: {other:?}"),
    }

    // Only the holder renews, records and ends.
    assert!(!store.renew_job_claim(&first, "b", 9_000).expect("renew"));
    assert!(store.renew_job_claim(&first, "a", 3_000).expect("renew"));
    let outcome = [(0, "{}".to_owned(), true)];
    assert!(
        !other
            .record_job_items(&first, "b", &outcome)
            .expect("record")
    );
    assert_eq!(
        store
            .job_summary(&first)
            .expect("summary")
            .expect("found")
            .processed,
        0,
        "a refused record writes nothing"
    );
    assert!(
        !other
            .finish_job(&first, "b", JobStatus::Done, None, 1)
            .expect("finish")
    );

    // At 2,500 b's claim has run out, a's (renewed) has not.
    let taken = store.claim_job(lease("a", 2_500, 3_500)).expect("claim");
    assert_eq!(taken.expect("a job").summary.job_id, second);
    assert!(
        store
            .claim_job(lease("c", 2_500, 3_500))
            .expect("claim")
            .is_none()
    );
    assert!(
        !other
            .record_job_items(&second, "b", &outcome)
            .expect("record")
    );
    assert!(!other.renew_job_claim(&second, "b", 9_000).expect("renew"));
    assert!(
        store
            .record_job_items(&second, "a", &outcome)
            .expect("record")
    );

    // Given back, a job is claimable at once.
    assert!(!store.release_job_claim(&first, "b").expect("release"));
    assert!(store.release_job_claim(&first, "a").expect("release"));
    let start = started(
        other
            .start_job(&first, lease("b", 2_600, 3_600))
            .expect("start"),
    );
    assert_eq!(start.summary.job_id, first);

    // Ended jobs are never claimed, however old their claim.
    assert!(
        store
            .finish_job(&second, "a", JobStatus::Done, None, 2_700)
            .expect("finish")
    );
    assert!(
        other
            .finish_job(&first, "b", JobStatus::Failed, Some("broken"), 2_700)
            .expect("finish")
    );
    assert!(!store.renew_job_claim(&second, "a", 9_000).expect("renew"));
    assert!(
        store
            .claim_job(lease("c", 99_000, 100_000))
            .expect("claim")
            .is_none()
    );
    match store
        .start_job(&first, lease("c", 99_000, 100_000))
        .expect("start")
    {
        Some(Claimed::Elsewhere(summary)) => {
            assert_eq!(summary.status, JobStatus::Failed);
            assert_eq!(summary.failure.as_deref(), Some("broken"));
        }
        other => panic!("an ended job was started: {other:?}"),
    }
}

/// Claimers on stores of their own (as instances are), all at once:
/// every job is claimed exactly once.
fn concurrent_claimers_never_get_the_same_job(h: &dyn Harness) {
    use std::sync::Barrier;
    const JOBS: usize = 40;
    const CLAIMERS: usize = 4;
    let store = h.store();
    let item = [serde_json::json!({"asin": "B08N5WRWNW"})];
    let mut ids: Vec<String> = (0..JOBS)
        .map(|_| {
            crate::jobs::new_job(store, &item, None)
                .expect("job")
                .job_id
        })
        .collect();
    let stores: Vec<Box<dyn Store>> = (0..CLAIMERS).map(|_| h.reopen()).collect();
    let barrier = Barrier::new(CLAIMERS);
    let mut claimed: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = stores
            .iter()
            .enumerate()
            .map(|(i, claimer)| {
                let barrier = &barrier;
                scope.spawn(move || {
                    let owner = format!("claimer{i}");
                    let mut mine = Vec::new();
                    barrier.wait();
                    while let Some(start) = claimer
                        .claim_job(lease(&owner, 1_000, 60_000))
                        .expect("claim")
                    {
                        mine.push(start.summary.job_id);
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("claimer"))
            .collect()
    });
    claimed.sort();
    ids.sort();
    assert_eq!(claimed, ids, "each job claimed once, none left");
}

fn conversion_imports_attribute_by_click_and_update_by_identity(h: &dyn Harness) {
    use crate::conversions::{self, ConversionsConfig, Format};
    let store = h.store();
    let link = store.create_link(new_link(Some("conv"))).expect("create");
    let ids = ClickIdGenerator::new(0);
    let click = ids.next_id();
    let day = 20_454 * crate::clock::MS_PER_DAY;
    store
        .insert_clicks(&[human(click, link.id, day)])
        .expect("insert");
    let csv = |status: &str| {
        format!(
            "Transaction ID,Advertiser ID,Advertiser Name,Click Ref,Transaction Date,\
             Commission Status,Sale Amount,Commission Amount,Currency\n\
             1001,7,Shop,{},01/01/2026 10:00:00,{status},120.00,6.00,GBP\n\
             1002,7,Shop,NOPE,01/01/2026,pending,10.00,0.50,GBP\n",
            click.as_str()
        )
    };
    let config = ConversionsConfig::default();
    let first = conversions::import(store, &config, Format::AwinCsv, csv("pending").as_bytes())
        .expect("import");
    assert_eq!(
        (first.inserted, first.updated, first.unattributed),
        (2, 0, 1)
    );
    let same = conversions::import(store, &config, Format::AwinCsv, csv("pending").as_bytes())
        .expect("import");
    assert_eq!((same.inserted, same.updated, same.unchanged), (0, 0, 2));
    let approved = conversions::import(store, &config, Format::AwinCsv, csv("approved").as_bytes())
        .expect("import");
    assert_eq!(
        (approved.inserted, approved.updated, approved.unchanged),
        (0, 1, 1)
    );
    let stats = store.link_stats(link.id).expect("stats");
    assert_eq!(stats.total.clicks, 1);
    assert_eq!(stats.total.conversions, 1);
    assert_eq!(stats.total.commission, Micros(6_000_000));
    assert_eq!(
        h.integers("SELECT count(*) FROM conversions WHERE link_id IS NULL"),
        vec![1]
    );
}

/// A report row: group, name, then clicks, bot hits, conversions, items,
/// revenue and commission (micro-units).
#[allow(clippy::too_many_arguments)]
fn report_row(
    group: &str,
    name: Option<&str>,
    clicks: u64,
    bot_hits: u64,
    conversions: u64,
    items: i64,
    revenue: i64,
    commission: i64,
) -> crate::reports::ReportRow {
    let conversion_rate = if clicks == 0 {
        0.0
    } else {
        (conversions as f64 / clicks as f64 * 1e6).round() / 1e6
    };
    crate::reports::ReportRow {
        group: group.into(),
        name: name.map(str::to_owned),
        sums: Totals {
            clicks,
            bot_hits,
            conversions,
            items,
            revenue: Micros(revenue),
            commission: Micros(commission),
            earnings_per_click: Micros(commission).per(clicks),
        },
        conversion_rate,
    }
}

fn reports_group_clicks_and_counted_conversions_alike_by_every_grouping(h: &dyn Harness) {
    use crate::reports::{GroupBy, ReportQuery, ReportRow};
    let store = h.store();
    let link = |code: &str,
                provider: &str,
                marketplace: Option<&str>,
                campaign: Option<&str>,
                name: Option<&str>,
                targeting: Option<Targeting>| {
        let mut new = new_link(Some(code));
        new.template.provider = provider.into();
        new.template.built.marketplace = marketplace.map(str::to_owned);
        new.template.built.destination = format!("https://shop.example/{code}");
        new.campaign = campaign.map(str::to_owned);
        new.name = name.map(str::to_owned);
        new.targeting = targeting;
        store.create_link(new).expect("create")
    };
    // `a`: amazon.com, spring. `b`: another network, no marketplace or
    // campaign. `t`: amazon.com, spring, with a target serving amazon.de.
    let a = link(
        "a",
        "amazon",
        Some("amazon.com"),
        Some("spring"),
        Some("Echo video"),
        None,
    );
    let b = link("b", "awin", None, None, None, None);
    let t = link(
        "t",
        "amazon",
        Some("amazon.com"),
        Some("spring"),
        Some("Targeted"),
        Some(Targeting {
            rule_targets: vec![1],
            targets: vec![BuiltTarget {
                provider: "amazon".into(),
                destination: "https://www.amazon.de/dp/B08N5WRWNW".into(),
                marketplace: Some("amazon.de".into()),
                prefix: "https://www.amazon.de/dp/B08N5WRWNW?tag=t-21&ascsubtag=".into(),
                suffix: String::new(),
                why: Why::Rule,
            }],
            ..Default::default()
        }),
    );

    let ids = ClickIdGenerator::new(0);
    let day = crate::clock::MS_PER_DAY;
    let hour = 3_600_000;
    // 2026-01-01 (day 20454) and 2026-01-02 are the report's days.
    let d0 = 20_454 * day;
    let d1 = d0 + day;
    let at = |event: ClickEvent, country: Option<&[u8; 2]>, target: u8| ClickEvent {
        country: country.copied(),
        target,
        ..event
    };
    let (a_us, t_de, b_us) = (ids.next_id(), ids.next_id(), ids.next_id());
    store
        .insert_clicks(&[
            // Before the range: not counted.
            at(human(ids.next_id(), a.id, d0 - hour), Some(b"US"), 0),
            at(human(a_us, a.id, d0 + hour), Some(b"US"), 0),
            at(human(ids.next_id(), a.id, d0 + 2 * hour), Some(b"US"), 0),
            bot(a.id, d0 + 3 * hour),
            at(human(t_de, t.id, d0 + 4 * hour), Some(b"DE"), 1),
            at(human(ids.next_id(), t.id, d0 + 5 * hour), Some(b"DE"), 1),
            at(human(ids.next_id(), a.id, d1 + hour), Some(b"GB"), 0),
            at(human(b_us, b.id, d1 + 2 * hour), Some(b"US"), 0),
            at(bot(b.id, d1 + 3 * hour), Some(b"US"), 0),
            at(human(ids.next_id(), t.id, d1 + 4 * hour), Some(b"US"), 0),
            // After the range: not counted.
            at(human(ids.next_id(), b.id, d1 + day), Some(b"US"), 0),
        ])
        .expect("insert");

    // (provider, kind, row key, click, link, time, quantity, returns,
    // revenue, commission, status, currency)
    type Conv<'a> = (
        &'a str,
        &'a str,
        &'a str,
        Option<&'a ClickId>,
        Option<i64>,
        i64,
        (i64, i64),
        (i64, i64),
        &'a str,
        &'a str,
    );
    let conversions: [Conv<'_>; 7] = [
        // Counted.
        (
            "amazon",
            "earnings",
            "1",
            Some(&a_us),
            Some(a.id),
            d0 + 6 * hour,
            (2, 0),
            (20_000_000, 1_000_000),
            "shipped",
            "USD",
        ),
        (
            "amazon",
            "earnings",
            "2",
            Some(&t_de),
            Some(t.id),
            d1 + 6 * hour,
            (1, 0),
            (50_000_000, 2_500_000),
            "Pending",
            "EUR",
        ),
        (
            "awin",
            "sale",
            "3",
            Some(&b_us),
            Some(b.id),
            d1 + 6 * hour,
            (3, 1),
            (30_000_000, 3_000_000),
            "approved",
            "USD",
        ),
        // Unattributed: no click, no link.
        (
            "awin",
            "sale",
            "4",
            None,
            None,
            d0 + 7 * hour,
            (1, 0),
            (10_000_000, 500_000),
            "approved",
            "EUR",
        ),
        // Not counted: declined, Amazon's Orders row, after the range.
        (
            "awin",
            "sale",
            "5",
            Some(&b_us),
            Some(b.id),
            d1 + 7 * hour,
            (1, 0),
            (9_000_000, 900_000),
            "DECLINED",
            "GBP",
        ),
        (
            "amazon",
            "orders",
            "6",
            Some(&a_us),
            Some(a.id),
            d0 + 6 * hour,
            (2, 0),
            (20_000_000, 1_000_000),
            "shipped",
            "USD",
        ),
        (
            "awin",
            "sale",
            "7",
            Some(&b_us),
            Some(b.id),
            d1 + day,
            (1, 0),
            (9_000_000, 900_000),
            "approved",
            "GBP",
        ),
    ];
    let sql: String = conversions
        .iter()
        .map(|(provider, kind, key, click, link_id, event_ms, (q, r), (rev, com), status, currency)| {
            let click = click.map_or("NULL".to_owned(), |c| format!("'{}'", c.as_str()));
            let link_id = link_id.map_or("NULL".to_owned(), |l| l.to_string());
            format!(
                "INSERT INTO conversions (provider, kind, row_key, click_id, link_id, event_ms, \
                 quantity, returns, revenue_micros, commission_micros, status, currency, \
                 imported_ms, updated_ms) VALUES ('{provider}', '{kind}', '{key}', {click}, \
                 {link_id}, {event_ms}, {q}, {r}, {rev}, {com}, '{status}', '{currency}', 0, 0);"
            )
        })
        .collect();
    h.exec(&sql);

    let report = |group_by: GroupBy| {
        store
            .report(&ReportQuery {
                from_day: 20_454,
                to_day: 20_455,
                group_by,
            })
            .unwrap_or_else(|e| panic!("{group_by}: {e}"))
    };
    let r = report_row;
    let expected: [(GroupBy, Vec<ReportRow>); 7] = [
        (
            GroupBy::Day,
            vec![
                r("2026-01-01", None, 4, 1, 2, 3, 30_000_000, 1_500_000),
                r("2026-01-02", None, 3, 1, 2, 3, 80_000_000, 5_500_000),
            ],
        ),
        (
            GroupBy::Link,
            vec![
                r("a", Some("Echo video"), 3, 1, 1, 2, 20_000_000, 1_000_000),
                r("b", None, 1, 1, 1, 2, 30_000_000, 3_000_000),
                r("t", Some("Targeted"), 3, 0, 1, 1, 50_000_000, 2_500_000),
                r("unattributed", None, 0, 0, 1, 1, 10_000_000, 500_000),
            ],
        ),
        (
            GroupBy::Campaign,
            vec![
                r("(none)", None, 1, 1, 1, 2, 30_000_000, 3_000_000),
                r("spring", None, 6, 1, 2, 3, 70_000_000, 3_500_000),
                r("unattributed", None, 0, 0, 1, 1, 10_000_000, 500_000),
            ],
        ),
        (
            // The unattributed conversion under the network that reported it.
            GroupBy::Provider,
            vec![
                r("amazon", None, 6, 1, 2, 3, 70_000_000, 3_500_000),
                r("awin", None, 1, 1, 2, 3, 40_000_000, 3_500_000),
            ],
        ),
        (
            // A targeted click (and its conversion) under the marketplace
            // its target served.
            GroupBy::Marketplace,
            vec![
                r("(none)", None, 1, 1, 1, 2, 30_000_000, 3_000_000),
                r("amazon.com", None, 4, 1, 1, 2, 20_000_000, 1_000_000),
                r("amazon.de", None, 2, 0, 1, 1, 50_000_000, 2_500_000),
                r("unattributed", None, 0, 0, 1, 1, 10_000_000, 500_000),
            ],
        ),
        (
            // Conversions under their click's country; without a click
            // (or a country), `(none)`.
            GroupBy::Country,
            vec![
                r("(none)", None, 0, 1, 1, 1, 10_000_000, 500_000),
                r("DE", None, 2, 0, 1, 1, 50_000_000, 2_500_000),
                r("GB", None, 1, 0, 0, 0, 0, 0),
                r("US", None, 4, 1, 2, 4, 50_000_000, 4_000_000),
            ],
        ),
        (
            GroupBy::Target,
            vec![
                r("a#0", Some("amazon.com"), 3, 1, 1, 2, 20_000_000, 1_000_000),
                r(
                    "b#0",
                    Some("https://shop.example/b"),
                    1,
                    1,
                    1,
                    2,
                    30_000_000,
                    3_000_000,
                ),
                r("t#0", Some("amazon.com"), 1, 0, 0, 0, 0, 0),
                r("t#1", Some("amazon.de"), 2, 0, 1, 1, 50_000_000, 2_500_000),
                r("unattributed", None, 0, 0, 1, 1, 10_000_000, 500_000),
            ],
        ),
    ];
    for (group_by, rows) in expected {
        let report = report(group_by);
        assert_eq!(
            (report.from.as_str(), report.to.as_str(), report.group_by),
            ("2026-01-01", "2026-01-02", group_by)
        );
        assert_eq!(report.rows, rows, "{group_by}");
        assert_eq!(
            report.totals,
            r("total", None, 7, 2, 4, 6, 110_000_000, 7_000_000),
            "{group_by}"
        );
        assert_eq!(report.currencies, ["EUR", "USD"], "{group_by}");
    }
}

conformance!(
    @in nodes_sqlite, nodes_postgres:
    two_owners_lease_different_nodes_and_a_restart_finds_its_own,
    an_expired_lease_is_taken_over_and_its_old_owner_cannot_renew_it,
    a_released_node_is_free_and_only_its_owner_releases_it,
);

fn two_owners_lease_different_nodes_and_a_restart_finds_its_own(h: &dyn Harness) {
    use crate::nodes::Leased;
    let s = h.store();
    assert_eq!(
        s.lease_node("a", None, 0, 100).expect("a"),
        Leased::Granted(0)
    );
    // Another process on the same database.
    let other = h.reopen();
    assert_eq!(
        other.lease_node("b", None, 0, 100).expect("b"),
        Leased::Granted(1)
    );
    assert_eq!(
        s.lease_node("a", None, 10, 110).expect("a again"),
        Leased::Granted(0)
    );
    assert_eq!(
        other.lease_node("c", Some(1), 10, 110).expect("c"),
        Leased::Taken {
            node: 1,
            owner: "b".into(),
            expires_ms: 100
        }
    );
    assert_eq!(
        other.lease_node("c", Some(9), 10, 110).expect("c"),
        Leased::Granted(9)
    );
    assert_eq!(
        other.lease_node("d", None, 10, 110).expect("d"),
        Leased::Granted(2)
    );
    assert_eq!(
        h.integers("SELECT expires_ms FROM node_leases ORDER BY node_id"),
        vec![110, 100, 110, 110]
    );
}

fn an_expired_lease_is_taken_over_and_its_old_owner_cannot_renew_it(h: &dyn Harness) {
    use crate::nodes::Leased;
    let s = h.store();
    assert_eq!(
        s.lease_node("a", None, 0, 100).expect("a"),
        Leased::Granted(0)
    );
    assert!(s.renew_node(0, "a", 200).expect("renew"));
    assert!(matches!(
        s.lease_node("b", Some(0), 199, 300).expect("b early"),
        Leased::Taken {
            expires_ms: 200,
            ..
        }
    ));
    // Expired at 200: the lowest free node is 0 again.
    assert_eq!(
        s.lease_node("b", None, 200, 300).expect("b"),
        Leased::Granted(0)
    );
    assert!(!s.renew_node(0, "a", 400).expect("a lost it"));
    assert!(s.renew_node(0, "b", 400).expect("b renews"));
    assert_eq!(
        h.integers("SELECT expires_ms FROM node_leases WHERE node_id = 0"),
        vec![400]
    );
}

fn a_released_node_is_free_and_only_its_owner_releases_it(h: &dyn Harness) {
    use crate::nodes::Leased;
    let s = h.store();
    assert_eq!(
        s.lease_node("a", Some(5), 0, 100).expect("a"),
        Leased::Granted(5)
    );
    assert!(!s.release_node(5, "b").expect("not b's"));
    assert!(s.release_node(5, "a").expect("a's"));
    assert!(!s.release_node(5, "a").expect("gone"));
    assert_eq!(
        s.lease_node("b", Some(5), 1, 100).expect("b"),
        Leased::Granted(5)
    );
    assert_eq!(h.integers("SELECT count(*) FROM node_leases"), vec![1]);
}
