//! Admission control of the public host: a concurrency limit with load
//! shedding, as a tower layer.
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
//! batch − 1)`, where the batch is `max / (4 × SHARDS)`: about half of `max`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use http::{HeaderValue, Request, Response, StatusCode, header};
use pin_project_lite::pin_project;
use tower::Service;

use super::{Body, Conn, text};
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

/// The public host's outer tower service on one connection: admission
/// (limit and shedding) around `inner`, and the connection's request count
/// for its header-read watchdog. It holds only per-connection state, so the
/// per-request clone hyper makes of it touches no line another core writes.
#[derive(Debug, Clone)]
pub(super) struct Admitted<S> {
    inner: S,
    conn: Arc<Conn>,
}

impl<S> Admitted<S> {
    pub(super) fn new(inner: S, conn: Arc<Conn>) -> Self {
        Admitted { inner, conn }
    }
}

impl<S> Service<Request<hyper::body::Incoming>> for Admitted<S>
where
    S: Service<Request<hyper::body::Incoming>, Response = Response<Body>, Error = Infallible>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = AdmittedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<hyper::body::Incoming>) -> Self::Future {
        self.conn.control.started.fetch_add(1, Ordering::AcqRel);
        let shard = self.conn.app.admission.enter();
        let guard = Guard {
            conn: Arc::clone(&self.conn),
            shard,
        };
        match shard {
            Some(_) => AdmittedFuture {
                inner: Some(self.inner.call(req)),
                shed: None,
                _guard: guard,
            },
            None => {
                self.conn.app.metrics.rejected(false, false);
                let mut r = text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "overloaded, retry shortly\n",
                );
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                AdmittedFuture {
                    inner: None,
                    shed: Some(r),
                    _guard: guard,
                }
            }
        }
    }
}

/// Gives the permit back and counts the request finished when the request's
/// future completes or is dropped (a client that hangs up).
#[derive(Debug)]
struct Guard {
    conn: Arc<Conn>,
    shard: Option<usize>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(shard) = self.shard {
            self.conn.app.admission.leave(shard);
        }
        self.conn.control.finished.fetch_add(1, Ordering::AcqRel);
    }
}

pin_project! {
    /// The future of [`Admitted`]: the inner future, or a ready 503.
    #[derive(Debug)]
    pub(super) struct AdmittedFuture<F> {
        #[pin]
        inner: Option<F>,
        shed: Option<Response<Body>>,
        _guard: Guard,
    }
}

impl<F> Future for AdmittedFuture<F>
where
    F: Future<Output = Result<Response<Body>, Infallible>>,
{
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.inner.as_pin_mut() {
            Some(inner) => inner.poll(cx),
            None => Poll::Ready(Ok(this.shed.take().unwrap_or_else(|| {
                text(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n")
            }))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
