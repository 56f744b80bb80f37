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
