//! Admission control of the public host: a concurrency limit with load
//! shedding, taken and given back around each request by the public
//! host's service (`public::Public`).
//!
//! tower's `ConcurrencyLimit` keeps one semaphore for all requests: every
//! request clones its `Arc`, takes a permit and gives it back (which locks
//! the semaphore's waiter list), all on cache lines that both cores write.
//! At redirect rates that contention costs more than the redirect itself.
//!
//! [`Admission`] keeps the same bound with sharded permits. All `max`
//! permits start in a shared pool; each thread's shard takes them from the
//! pool in batches and gives batches back when it holds too many, so a
//! request usually takes and returns a permit from its own shard's cache
//! line. Permits are conserved, so **no more than `max` requests are ever in
//! flight**. A request that finds neither its shard nor the pool with a
//! permit is shed at once (503 with `Retry-After`), never queued. Permits
//! parked in other threads' shards are not borrowed, so shedding can start
//! before `max` requests are in flight, but not before `max - SHARDS × (2 ×
//! batch − 1)`, where the batch is `max / (4 × SHARDS)` (at least 1): about
//! `max / 2 + SHARDS` for a `max` of at least `4 × SHARDS` (64). Below that
//! the batch is 1 and up to `SHARDS` permits can sit idle in other threads'
//! shards, which for `max ≤ SHARDS` can be all of them: a limit that small
//! can shed with few requests in flight when requests move between threads.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::Response;

use super::{Body, Conn, overloaded};
use crate::shard::{self, SHARDS, Sharded};

/// Sharded permits for at most `max` requests in flight.
#[derive(Debug)]
pub(crate) struct Admission {
    /// Permits no shard holds.
    pool: AtomicUsize,
    /// Permits held by each shard, free for its threads' requests.
    local: Sharded<AtomicUsize>,
    /// Permits a shard takes from the pool at a time.
    batch: usize,
    #[cfg(test)]
    max: usize,
}

impl Admission {
    /// At most `max` (at least 1) requests in flight.
    pub(crate) fn new(max: usize) -> Admission {
        let max = max.max(1);
        Admission {
            pool: AtomicUsize::new(max),
            local: Sharded::new(|| AtomicUsize::new(0)),
            batch: (max / (4 * SHARDS)).max(1),
            #[cfg(test)]
            max,
        }
    }

    /// Takes a permit; `None` if none is free. The permit must be given back
    /// with [`Admission::leave`] and the shard index returned here.
    pub(crate) fn enter(&self) -> Option<usize> {
        let shard = shard::index();
        let local = self.local.get(shard);
        if take(local, 1) == 1 {
            return Some(shard);
        }
        // The shard is empty: take a batch from the pool, keep all but one.
        let got = take(&self.pool, self.batch);
        if got == 0 {
            return None;
        }
        if got > 1 {
            local.fetch_add(got - 1, Ordering::AcqRel);
        }
        Some(shard)
    }

    /// Gives back a permit taken by [`Admission::enter`] on `shard`.
    pub(crate) fn leave(&self, shard: usize) {
        let local = self.local.get(shard);
        let held = local.fetch_add(1, Ordering::AcqRel) + 1;
        // Keep one batch for the next requests; give the rest back so idle
        // shards do not sit on permits that busy ones need.
        if held >= 2 * self.batch {
            let back = take(local, self.batch);
            self.pool.fetch_add(back, Ordering::AcqRel);
        }
    }

    #[cfg(test)]
    /// Requests in flight now (a snapshot: permits not in the pool or a
    /// shard).
    pub(crate) fn in_flight(&self) -> usize {
        let free = self.pool.load(Ordering::Acquire)
            + self
                .local
                .iter()
                .map(|l| l.load(Ordering::Acquire))
                .sum::<usize>();
        self.max.saturating_sub(free)
    }
}

/// Takes up to `want` from `from` without going below zero; returns how
/// many it took.
fn take(from: &AtomicUsize, want: usize) -> usize {
    let mut current = from.load(Ordering::Acquire);
    loop {
        let n = current.min(want);
        if n == 0 {
            return 0;
        }
        match from.compare_exchange_weak(current, current - n, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => return n,
            Err(actual) => current = actual,
        }
    }
}

/// Admits a request on connection `conn`: counts it started (for the
/// connection's header-read watchdog) and takes a permit. `None`: shed; the
/// request is counted finished and refused (see [`shed`]).
pub(super) fn admit(conn: &Arc<Conn>) -> Option<Permit<&Arc<Conn>>> {
    conn.control.started.fetch_add(1, Ordering::AcqRel);
    match conn.app.admission.enter() {
        Some(shard) => Some(Permit { conn, shard }),
        None => {
            conn.control.finished.fetch_add(1, Ordering::AcqRel);
            None
        }
    }
}

/// The answer to a shed request: 503 with `Retry-After`, counted.
pub(super) fn shed(conn: &Conn) -> Response<Body> {
    conn.app.metrics.rejected(false, false);
    overloaded()
}

/// An admitted request's permit: given back, and the request counted
/// finished, when it is dropped. A request answered at once holds it by
/// reference (no reference count to touch); one that waits holds it owned
/// ([`Permit::owned`]), so a client that hangs up meanwhile gives it back
/// when its future is dropped.
#[derive(Debug)]
pub(super) struct Permit<C: AsRef<Conn>> {
    conn: C,
    shard: usize,
}

impl<C: AsRef<Conn>> Permit<C> {
    /// The connection the request came on.
    pub(super) fn conn(&self) -> &Conn {
        self.conn.as_ref()
    }
}

impl<'a> Permit<&'a Arc<Conn>> {
    /// The connection the request came on, for as long as the permit's
    /// borrow.
    pub(super) fn arc(&self) -> &'a Arc<Conn> {
        self.conn
    }

    /// The same permit, owning its connection.
    pub(super) fn owned(self) -> Permit<Arc<Conn>> {
        let owned = Permit {
            conn: Arc::clone(self.conn),
            shard: self.shard,
        };
        // Moved, not given back.
        std::mem::forget(self);
        owned
    }
}

impl<C: AsRef<Conn>> Drop for Permit<C> {
    fn drop(&mut self) {
        let conn = self.conn.as_ref();
        conn.app.admission.leave(self.shard);
        conn.control.finished.fetch_add(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    #[test]
    fn never_more_than_max_in_flight_and_every_permit_comes_back() {
        for max in [1, 7, 64, 1000] {
            let a = Admission::new(max);
            // One thread takes everything it can: exactly max.
            let held: Vec<usize> = std::iter::from_fn(|| a.enter()).collect();
            assert_eq!(held.len(), max, "max {max}");
            assert_eq!(a.in_flight(), max);
            assert_eq!(a.enter(), None, "shed at the limit");
            for shard in held {
                a.leave(shard);
            }
            assert_eq!(a.in_flight(), 0, "max {max}");
        }
    }

    #[test]
    fn concurrent_threads_share_the_bound() {
        let max = 200;
        let a = Admission::new(max);
        let threads = shard::SHARDS + 3;
        // Every thread grabs as many as it can, holds them until all threads
        // have grabbed, then gives them back. The sum is at most max, and at
        // least what the pool guarantees.
        let barrier = std::sync::Barrier::new(threads);
        let taken: Vec<usize> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(|| {
                        let held: Vec<usize> = std::iter::from_fn(|| a.enter()).collect();
                        let n = held.len();
                        barrier.wait();
                        assert!(a.in_flight() <= max);
                        barrier.wait();
                        for shard in held {
                            a.leave(shard);
                        }
                        n
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or(0)).collect()
        });
        let total: usize = taken.iter().sum();
        assert_eq!(total, max, "greedy takers leave nothing unclaimed");
        assert_eq!(a.in_flight(), 0);
        assert_eq!(a.enter().map(|_| ()), Some(()));
    }

    /// A connection of an app with no providers, at most `max` requests in
    /// flight.
    fn conn(name: &str, max: usize) -> (Arc<Conn>, std::path::PathBuf) {
        let dir = crate::testing::scratch(name);
        let mut config = crate::config::Config::from_toml_str("").expect("empty config");
        config.server.data_dir = dir.clone();
        config.server.max_concurrent_requests = max;
        let providers = Arc::new(config.load_providers());
        let app = Arc::new(super::super::App::new(&config, providers).expect("app"));
        let conn = Arc::new(Conn {
            app: Arc::new(super::super::PublicHost::new(app, &config.server)),
            control: Arc::new(super::super::connections::Control::new()),
            peer: std::net::Ipv4Addr::LOCALHOST.into(),
        });
        (conn, dir)
    }

    #[test]
    fn requests_past_the_limit_are_shed_and_every_request_is_counted_finished() {
        let (conn, dir) = conn("shed", 2);
        let counts = |c: &Conn| {
            (
                c.control.started.load(Ordering::Acquire),
                c.control.finished.load(Ordering::Acquire),
            )
        };
        let first = admit(&conn).expect("first admitted");
        // The second waits on the store: it owns its permit.
        let second = admit(&conn).expect("second admitted").owned();
        assert!(admit(&conn).is_none(), "the third is over the limit");
        assert_eq!(shed(&conn).status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            counts(&conn),
            (3, 1),
            "the shed request is finished at once"
        );
        drop(first);
        let third = admit(&conn).expect("a permit came back");
        drop((second, third));
        assert_eq!(counts(&conn), (4, 4));
        assert_eq!(conn.app.admission.in_flight(), 0);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_busy_shard_gives_surplus_back_to_the_pool() {
        let max = 4 * SHARDS * 10;
        let a = Admission::new(max);
        let held: Vec<usize> = (0..max / 2).filter_map(|_| a.enter()).collect();
        assert_eq!(held.len(), max / 2);
        for shard in held {
            a.leave(shard);
        }
        // This thread's shard keeps less than two batches; the rest is
        // pooled again, for other threads.
        assert!(a.pool.load(Ordering::Acquire) > max - 2 * a.batch);
    }
}
