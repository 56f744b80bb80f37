//! Link changes pushed to this instance as they are committed: a connection
//! of its own, outside the pool, LISTENs on the channel the journal's
//! trigger NOTIFYs (schema migration 2) and hands each notification to the
//! follower. When the connection is lost it connects again, and once it
//! listens again says so ([`LinkChangePush::Listening`]): notifications sent
//! meanwhile are gone, and the follower reads them from the journal.

use std::future::poll_fn;
use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::{AsyncMessage, Config, NoTls};
use tracing::{debug, info, warn};

use crate::store::{LinkChangePush, OnLinkChange, StoreError};

/// The channel the trigger of migration 2 notifies.
pub(super) const CHANNEL: &str = "linkwright_link_changes";
/// The listener's `application_name`, so that `pg_stat_activity` tells
/// it from the pool's connections.
pub(super) const APPLICATION_NAME: &str = "linkwright link changes";
/// How often the listener checks its connection with an empty query: a
/// server gone without closing the socket would otherwise leave it waiting
/// for notifications that never come.
const PING_EVERY: Duration = Duration::from_secs(15);
/// How long that check may take.
const PING_TIMEOUT: Duration = Duration::from_secs(10);
/// The first wait before connecting again, doubled after each failure up
/// to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Listens for as long as the runtime it runs on, connecting again
/// whenever the connection is lost.
pub(super) async fn listen(mut config: Config, on_change: OnLinkChange) {
    config.application_name(APPLICATION_NAME);
    let mut retry = RETRY_FIRST;
    loop {
        let mut listened = false;
        let lost = listen_once(&config, &on_change, &mut listened).await;
        if listened {
            retry = RETRY_FIRST;
        }
        warn!(
            error = %lost,
            retry_ms = retry.as_millis() as u64,
            "the link change listener lost its connection; link changes are read on the polling schedule until it is back"
        );
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(RETRY_MAX);
    }
}

/// One connection: connects, listens, tells `on_change` of each
/// notification until the connection fails; why it did.
async fn listen_once(config: &Config, on_change: &OnLinkChange, listened: &mut bool) -> StoreError {
    let (client, mut connection) = match config.connect(NoTls).await {
        Ok(connected) => connected,
        Err(e) => return e.into(),
    };
    // The connection is driven here, not by `client`: polling it for
    // messages is also what sends the client's queries.
    let forward = Arc::clone(on_change);
    let driver = tokio::spawn(async move {
        loop {
            match poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => match n.payload().parse() {
                    Ok(seq) => forward(LinkChangePush::Made(seq)),
                    // Not the trigger's: still a reason to read the journal.
                    Err(_) => forward(LinkChangePush::Listening),
                },
                Some(Ok(AsyncMessage::Notice(notice))) => {
                    debug!(notice = %notice, "link change listener: server notice");
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return StoreError::from(e),
                None => return StoreError::Task("the server closed the connection".into()),
            }
        }
    });
    // Dropping the handle does not stop the task: abort it whatever way
    // this returns (the connection then closes).
    struct AbortOnDrop(tokio::task::JoinHandle<StoreError>);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let mut driver = AbortOnDrop(driver);
    if let Err(e) = client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
        return e.into();
    }
    *listened = true;
    info!("listening for link changes");
    // Listening from here on: whatever was committed before is in the
    // journal, read after this.
    on_change(LinkChangePush::Listening);
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        tokio::select! {
            ended = &mut driver.0 => {
                return ended.unwrap_or_else(|e| StoreError::Task(format!("the listener's connection task failed: {e}")));
            }
            _ = ping.tick() => {
                match tokio::time::timeout(PING_TIMEOUT, client.simple_query("")).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return e.into(),
                    Err(_) => return StoreError::Timeout(PING_TIMEOUT),
                }
            }
        }
    }
}
