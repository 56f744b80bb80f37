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
