//! What only the PostgreSQL store does: its migrations under concurrent
//! start-up, its schema version, its errors, and its runtime bridge used
//! from inside another runtime. What every store does is
//! `store::conformance`.

use super::*;
use crate::testing::PgDatabase;

#[test]
fn newer_schema_is_refused() {
    let db = PgDatabase::create();
    let store = PgStore::connect(&db.url).expect("connect");
    assert_eq!(
        store.schema_version().expect("version"),
        schema::MIGRATIONS.len() as i64
    );
    store
        .execute_batch("INSERT INTO schema_version (version, applied_ms) VALUES (99, 0)")
        .expect("bump");
    drop(store);
    match PgStore::connect(&db.url) {
        Err(StoreError::SchemaTooNew { found: 99, known }) => {
            assert_eq!(known, schema::MIGRATIONS.len() as i64)
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[test]
fn instances_starting_together_migrate_once() {
    let db = PgDatabase::create();
    let stores: Vec<PgStore> = std::thread::scope(|s| {
        let starts: Vec<_> = (0..4)
            .map(|_| s.spawn(|| PgStore::connect(&db.url)))
            .collect();
        starts
            .into_iter()
            .map(|t| t.join().expect("thread").expect("connect"))
            .collect()
    });
    let applied = stores[0]
        .query_integers("SELECT version FROM schema_version ORDER BY version")
        .expect("versions");
    assert_eq!(
        applied,
        (1..=schema::MIGRATIONS.len() as i64).collect::<Vec<_>>()
    );
    drop(stores);
}

#[test]
fn an_unreachable_server_is_a_pool_error_that_names_the_cause() {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let err = PgStore::connect(&format!("postgres://linkwright@127.0.0.1:{port}/none"))
        .expect_err("nothing listens");
    assert!(matches!(err, StoreError::PostgresPool(_)), "{err:?}");
    let message = err.to_string();
    assert!(
        message.starts_with("no connection to PostgreSQL: ") && message.contains("refused"),
        "{message}"
    );
}

#[test]
fn a_malformed_url_is_refused_before_connecting() {
    let err = PgStore::connect("postgres://host:notaport/db").expect_err("bad port");
    assert!(matches!(err, StoreError::Postgres(_)), "{err:?}");
    assert!(err.to_string().starts_with("PostgreSQL: "), "{err}");
}

#[test]
fn statement_errors_carry_the_servers_message() {
    let db = PgDatabase::create();
    let store = PgStore::connect(&db.url).expect("connect");
    let err = store
        .execute_batch("SELECT * FROM no_such_table")
        .expect_err("no table");
    assert!(
        err.to_string()
            .contains("relation \"no_such_table\" does not exist"),
        "{err}"
    );
}

/// The server calls the store on tokio's blocking pool and may drop it
/// from an async task: neither may panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_works_from_a_runtimes_blocking_pool_and_drops_inside_it() {
    let db = PgDatabase::create();
    let url = db.url.clone();
    let store = tokio::task::spawn_blocking(move || PgStore::connect(&url))
        .await
        .expect("join")
        .expect("connect");
    let store = std::sync::Arc::new(store);
    let s = store.clone();
    let state = tokio::task::spawn_blocking(move || {
        s.save_click_state(7)?;
        s.load_click_state()
    })
    .await
    .expect("join")
    .expect("state");
    assert_eq!(state, 7);
    // The last owner goes in an async task.
    tokio::spawn(async move { drop(store) })
        .await
        .expect("dropped without panicking");
}

#[test]
fn clicks_go_by_copy_into_monthly_partitions_and_old_months_are_dropped_whole() {
    use crate::classify::UaClass;
    use crate::click::ClickIdGenerator;
    use crate::store::{ClickEvent, ClickStore, LinkStore};
    let db = PgDatabase::create();
    let store = PgStore::connect_with(&db.url, 2).expect("connect");
    let link = store
        .create_link(crate::backend::conformance_link("parts"))
        .expect("create");
    let now = crate::clock::now_ms();
    let month = partitions::month_of(now);
    // Partitions for this month and the next are there from the start.
    let parts = |store: &PgStore| {
        store
            .query_integers(
                "SELECT substring(c.relname from '_([0-9]{6})$')::BIGINT FROM pg_inherits i \
                 JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent \
                 WHERE p.relname = 'clicks_by_id' AND c.relname <> 'clicks_by_id_default' \
                 ORDER BY 1",
            )
            .expect("partitions")
    };
    let yyyymm = |m: i64| (m.div_euclid(12)) * 100 + m.rem_euclid(12) + 1;
    assert_eq!(parts(&store), vec![yyyymm(month), yyyymm(month + 1)]);
    // Three months ago, as a store running then would have made it.
    let old = partitions::month_start_ms(month - 3) + 1_000;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let past = partitions::Partitions::new(0);
    let pool = store.pool.clone();
    rt.block_on(async { past.maintain(&pool, old).await })
        .expect("old partitions");
    let click = |at_ms: i64, id| ClickEvent {
        click_id: Some(id),
        link_id: link.id,
        at_ms,
        bot: false,
        referrer_host: None,
        ua_class: UaClass::Desktop,
        country: Some(*b"DE"),
        target: 0,
    };
    let ids = ClickIdGenerator::new(0);
    let old_id = crate::click::ClickId::first_at(old);
    store
        .insert_clicks(&[
            click(old, old_id),
            click(now, ids.next_id()),
            click(now, ids.next_id()),
        ])
        .expect("insert by COPY");
    let count = |store: &PgStore, sql: &str| store.query_integers(sql).expect("count")[0];
    assert_eq!(
        count(
            &store,
            &format!("SELECT count(*) FROM clicks_by_id_{}", yyyymm(month - 3))
        ),
        1
    );
    assert_eq!(
        count(
            &store,
            &format!("SELECT count(*) FROM clicks_by_id_{}", yyyymm(month))
        ),
        2
    );
    assert_eq!(
        count(&store, "SELECT count(*) FROM clicks_by_id_default"),
        0
    );
    // The next start keeps 2 months: the old one's partitions go, its sums stay.
    drop(store);
    let store = PgStore::connect_with(&db.url, 2).expect("reconnect");
    assert_eq!(parts(&store), vec![yyyymm(month), yyyymm(month + 1)]);
    assert_eq!(count(&store, "SELECT count(*) FROM clicks_by_id"), 2);
    assert_eq!(
        count(&store, "SELECT sum(clicks)::BIGINT FROM click_rollup"),
        3
    );
    assert_eq!(store.link_stats(link.id).expect("stats").total.clicks, 3);
    // A replay of a click from a dropped month lands in the default partition.
    assert_eq!(
        store
            .insert_new_clicks(&[click(old, crate::click::ClickId::first_at(old + 5))])
            .expect("replay"),
        1
    );
    assert_eq!(
        count(&store, "SELECT count(*) FROM clicks_by_id_default"),
        1
    );
}

/// The listener tells of each change once it is committed, and when its
/// connection is cut (its backend terminated, as a restart of the server
/// or a network failure would) it connects again, says it is listening
/// (changes made meanwhile are read from the journal), and pushes again.
#[test]
fn the_link_change_listener_pushes_each_change_and_listens_again_after_losing_its_connection() {
    use crate::store::{LinkChangePush, LinkStore};
    let db = PgDatabase::create();
    let store = PgStore::connect(&db.url).expect("connect");
    let other = PgStore::connect(&db.url).expect("connect");
    let (tx, rx) = std::sync::mpsc::channel();
    assert!(store.push_link_changes(std::sync::Arc::new(move |push| {
        let _ = tx.send(push);
    })));
    let next = || {
        rx.recv_timeout(Duration::from_secs(10))
            .expect("a push within 10 s")
    };
    assert_eq!(next(), LinkChangePush::Listening);
    other
        .create_link(crate::backend::conformance::new_link(Some("one")))
        .expect("create");
    assert_eq!(next(), LinkChangePush::Made(1));

    let terminated = other
        .query_integers(&format!(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) AS ended \
             FROM pg_stat_activity WHERE datname = current_database() \
             AND application_name = '{}') AS listeners WHERE ended",
            listen::APPLICATION_NAME
        ))
        .expect("terminate");
    assert_eq!(terminated, vec![1], "the listener's one connection");
    // Made while the listener is away or coming back: pushed or not, it is
    // in the journal when the listener says it listens again.
    assert!(other.set_disabled("one", true).expect("disable"));
    let mut pushes = Vec::new();
    while pushes.last() != Some(&LinkChangePush::Listening) {
        pushes.push(next());
    }
    assert!(
        pushes[..pushes.len() - 1]
            .iter()
            .all(|p| *p == LinkChangePush::Made(2)),
        "{pushes:?}"
    );
    assert_eq!(other.last_link_change().expect("journal"), 2);
    assert!(other.set_disabled("one", false).expect("enable"));
    let after = next();
    let after = match after {
        // Pushed after the listener was back: the one before comes first.
        LinkChangePush::Made(2) => next(),
        other => other,
    };
    assert_eq!(after, LinkChangePush::Made(3));
    drop(store);
    drop(other);
}
