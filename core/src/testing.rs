//! Helpers shared by core's unit tests.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh, empty folder unique to this test process and call, named after
/// `name` (removed first if a previous run left it).
pub(crate) fn scratch(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "lw-core-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        panic!("cannot create {}: {e}", dir.display());
    }
    dir
}

/// The variable that names the PostgreSQL server the tests use.
pub(crate) const TEST_DATABASE_URL: &str = "LINKWRIGHT_TEST_DATABASE_URL";

/// A fresh, empty PostgreSQL database for one test, created on the server
/// at `LINKWRIGHT_TEST_DATABASE_URL` and dropped (its connections closed)
/// when this is dropped. Drop it after the stores using it.
#[derive(Debug)]
pub(crate) struct PgDatabase {
    /// The new database's URL.
    pub(crate) url: String,
    admin_url: String,
    name: String,
}

impl PgDatabase {
    /// Creates `lw_<pid>_<n>`. Panics when the variable is unset: the
    /// PostgreSQL tests are never skipped.
    pub(crate) fn create() -> PgDatabase {
        static N: AtomicUsize = AtomicUsize::new(0);
        let Ok(admin_url) = std::env::var(TEST_DATABASE_URL) else {
            panic!(
                "set {TEST_DATABASE_URL} (a PostgreSQL URL whose user may create databases) \
                 or run scripts/test, which starts a cluster"
            );
        };
        let name = format!(
            "lw_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let url = with_database(&admin_url, &name);
        admin(
            &admin_url,
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE); CREATE DATABASE {name}"),
        )
        .unwrap_or_else(|e| panic!("cannot create the test database {name}: {e}"));
        PgDatabase {
            url,
            admin_url,
            name,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let dropped = admin(
            &self.admin_url,
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
        if let Err(e) = dropped
            && !std::thread::panicking()
        {
            panic!("cannot drop the test database {}: {e}", self.name);
        }
    }
}

/// `url` with its database replaced by `name` (a URL, or libpq's
/// `key=value` form, where a later key wins).
fn with_database(url: &str, name: &str) -> String {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let mut parsed = url::Url::parse(url)
            .unwrap_or_else(|e| panic!("{TEST_DATABASE_URL} is not a valid URL: {e}"));
        parsed.set_path(&format!("/{name}"));
        parsed.into()
    } else {
        format!("{url} dbname={name}")
    }
}

/// Runs `sql` on the server at `url`, on a thread of its own (so that it
/// works inside and outside a tokio runtime).
fn admin(url: &str, sql: String) -> Result<(), String> {
    let url = url.to_owned();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(async {
            let (client, connection) =
                tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .map_err(|e| format!("cannot connect to {TEST_DATABASE_URL}: {e}"))?;
            let connection = tokio::spawn(connection);
            // Statement by statement: CREATE DATABASE refuses to run in
            // the implicit transaction of a multi-statement string.
            for statement in sql.split("; ") {
                client
                    .batch_execute(statement)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            drop(client);
            let _ = connection.await;
            Ok(())
        })
    })
    .join()
    .map_err(|_| "the admin thread panicked".to_owned())?
}
