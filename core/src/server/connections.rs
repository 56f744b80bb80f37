//! The public host's connections: the stall watchdog and graceful shutdown.
//!
//! Both reach a connection through its own [`Conn`]: a signal word and the
//! waker of the task serving it. One watchdog task walks the live
//! connections once per period, and shutdown walks them once; serving a
//! request touches no timer and nothing another connection shares (hyper's
//! header-read timer arms a tokio timer per request; a per-connection
//! `select!` over a sleep and a shared shutdown `Notify` polls both, and
//! locks the `Notify`'s mutex, on every wake-up).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::sync::Notify;
use tracing::debug;

/// A connection's signal: nothing yet.
const RUN: u8 = 0;
/// Finish the request in flight, then close (graceful shutdown).
const DRAIN: u8 = 1;
/// Close now: no request head arrived within the watchdog's period.
const CLOSE: u8 = 2;

/// One connection's request counters, and what the watchdog and shutdown
/// need to reach it. Only that connection's tasks write the counters, so
/// they sit on no cache line another core writes per request.
#[derive(Debug, Default)]
pub(crate) struct Control {
    /// Requests started (counted by admission).
    pub(crate) started: AtomicU64,
    /// Requests finished (counted by admission).
    pub(crate) finished: AtomicU64,
    signal: AtomicU8,
    waker: Mutex<Option<Waker>>,
    /// Requests started at the watchdog's previous look (`u64::MAX`: none yet).
    seen: AtomicU64,
}

impl Control {
    pub(crate) fn new() -> Control {
        Control {
            signal: AtomicU8::new(RUN),
            seen: AtomicU64::new(u64::MAX),
            ..Control::default()
        }
    }

    fn waker(&self) -> MutexGuard<'_, Option<Waker>> {
        self.waker.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Raises `signal` (never lowers it: a close beats a drain) and wakes
    /// the connection's task.
    fn send(&self, signal: u8) {
        self.signal.fetch_max(signal, Ordering::AcqRel);
        if let Some(w) = self.waker().as_ref() {
            w.wake_by_ref();
        }
    }
}

/// The live public connections.
#[derive(Debug, Default)]
pub(crate) struct Connections {
    live: Mutex<Live>,
    /// Notified when the last connection ends.
    idle: Notify,
}

#[derive(Debug, Default)]
struct Live {
    next: u64,
    conns: HashMap<u64, Weak<Control>>,
}

impl Connections {
    fn live(&self) -> MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a connection until the returned guard is dropped.
    pub(crate) fn register(self: &Arc<Self>, conn: &Arc<Control>) -> Registered {
        let mut live = self.live();
        let id = live.next;
        live.next += 1;
        live.conns.insert(id, Arc::downgrade(conn));
        Registered {
            connections: Arc::clone(self),
            id,
        }
    }

    fn each(&self, f: impl Fn(&Control)) {
        let conns: Vec<Arc<Control>> = self
            .live()
            .conns
            .values()
            .filter_map(Weak::upgrade)
            .collect();
        for c in &conns {
            f(c);
        }
    }

    /// Closes every connection that went a whole `period` (between two
    /// calls) with no request in flight and no new request head: it is idle,
    /// or too slow to send its headers. Called once per period, a connection
    /// stays open without sending a request head for at least one period and
    /// at most two.
    pub(crate) fn close_stalled(&self) {
        self.each(|c| {
            let started = c.started.load(Ordering::Acquire);
            let idle = started == c.finished.load(Ordering::Acquire);
            let seen = c.seen.swap(started, Ordering::AcqRel);
            if idle && started == seen {
                debug!("closing a public connection that sent no request head in time");
                c.send(CLOSE);
            }
        });
    }

    /// Asks every connection to finish its request in flight and close.
    pub(crate) fn drain(&self) {
        self.each(|c| c.send(DRAIN));
    }

    /// Resolves once no connection is left.
    pub(crate) async fn drained(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.live().conns.is_empty() {
                return;
            }
            notified.await;
        }
    }

    /// Runs the watchdog every `period` until the task is aborted.
    pub(crate) async fn watch(self: Arc<Self>, period: Duration) {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            self.close_stalled();
        }
    }
}

/// Keeps a connection in [`Connections`] while it lives.
#[derive(Debug)]
pub(crate) struct Registered {
    connections: Arc<Connections>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut live = self.connections.live();
        live.conns.remove(&self.id);
        if live.conns.is_empty() {
            self.connections.idle.notify_waiters();
        }
    }
}

/// Serves a connection (`served`) until it ends, the watchdog closes it
/// (resolves to `None`), or shutdown has drained it; `graceful_shutdown` is
/// how to ask it to finish its request in flight and stop.
pub(crate) async fn supervise<F: Future>(
    control: &Control,
    served: F,
    graceful_shutdown: fn(Pin<&mut F>),
) -> Option<F::Output> {
    let served = std::pin::pin!(served);
    Supervised {
        control,
        served,
        graceful_shutdown,
        draining: false,
        registered: false,
    }
    .await
}

struct Supervised<'a, F> {
    control: &'a Control,
    served: Pin<&'a mut F>,
    graceful_shutdown: fn(Pin<&mut F>),
    draining: bool,
    /// Whether the task's waker is in `control` (a task's waker never
    /// changes, so once is enough).
    registered: bool,
}

impl<F: Future> Future for Supervised<'_, F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if !this.registered {
            let mut waker = this.control.waker();
            if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *waker = Some(cx.waker().clone());
            }
            this.registered = true;
        }
        // Read after the waker is in place, so a signal sent meanwhile is
        // either seen here or wakes the task again.
        match this.control.signal.load(Ordering::Acquire) {
            CLOSE => return Poll::Ready(None),
            DRAIN if !this.draining => {
                this.draining = true;
                (this.graceful_shutdown)(this.served.as_mut());
            }
            _ => {}
        }
        this.served.as_mut().poll(cx).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    /// A connection that never ends by itself; it ends at its next poll
    /// once asked to shut down gracefully.
    struct Idle {
        shut: Arc<AtomicBool>,
    }

    impl Future for Idle {
        type Output = ();
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
            if self.shut.load(Ordering::Acquire) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }
    }

    fn shut_down(idle: Pin<&mut Idle>) {
        idle.shut.store(true, Ordering::Release);
    }

    /// Serves an `Idle` connection on a task; its output, and whether it
    /// was shut down gracefully.
    fn serve(connections: &Arc<Connections>) -> tokio::task::JoinHandle<(Option<()>, bool)> {
        let control = Arc::new(Control::new());
        let registered = connections.register(&control);
        tokio::spawn(async move {
            let shut = Arc::new(AtomicBool::new(false));
            let idle = Idle {
                shut: Arc::clone(&shut),
            };
            let out = supervise(&control, idle, shut_down).await;
            drop(registered);
            (out, shut.load(Ordering::Acquire))
        })
    }

    #[test]
    fn an_idle_connection_is_closed_at_the_second_look_a_busy_one_is_not() {
        let connections = Arc::new(Connections::default());
        let (idle, busy) = (Arc::new(Control::new()), Arc::new(Control::new()));
        let _a = connections.register(&idle);
        let _b = connections.register(&busy);
        connections.close_stalled();
        // The busy connection starts a request between the looks and is
        // still in it at the second.
        busy.started.fetch_add(1, Ordering::AcqRel);
        connections.close_stalled();
        assert_eq!(idle.signal.load(Ordering::Acquire), CLOSE);
        assert_eq!(busy.signal.load(Ordering::Acquire), RUN);
        // It finishes and starts nothing more for a whole period: closed.
        busy.finished.fetch_add(1, Ordering::AcqRel);
        connections.close_stalled();
        assert_eq!(busy.signal.load(Ordering::Acquire), CLOSE);
    }

    #[test]
    fn a_connection_that_sends_a_request_every_period_stays_open() {
        let connections = Arc::new(Connections::default());
        let c = Arc::new(Control::new());
        let _r = connections.register(&c);
        for _ in 0..10 {
            connections.close_stalled();
            c.started.fetch_add(1, Ordering::AcqRel);
            c.finished.fetch_add(1, Ordering::AcqRel);
        }
        connections.close_stalled();
        assert_eq!(c.signal.load(Ordering::Acquire), RUN);
    }

    #[tokio::test]
    async fn a_stalled_connection_is_dropped_not_drained_and_unregisters() {
        let connections = Arc::new(Connections::default());
        let task = serve(&connections);
        tokio::task::yield_now().await;
        connections.close_stalled();
        connections.close_stalled();
        let joined = tokio::time::timeout(Duration::from_secs(5), task).await;
        assert_eq!(
            joined.ok().and_then(Result::ok),
            Some((None, false)),
            "closed at once, without a graceful shutdown"
        );
        tokio::time::timeout(Duration::from_secs(5), connections.drained())
            .await
            .expect("no connection left");
    }

    #[tokio::test]
    async fn drain_shuts_every_connection_down_gracefully_and_waits_for_them() {
        let connections = Arc::new(Connections::default());
        let tasks: Vec<_> = (0..3).map(|_| serve(&connections)).collect();
        tokio::task::yield_now().await;
        connections.drain();
        tokio::time::timeout(Duration::from_secs(5), connections.drained())
            .await
            .expect("every connection ended");
        for t in tasks {
            assert_eq!(t.await.ok(), Some((Some(()), true)));
        }
    }

    #[tokio::test]
    async fn drained_is_immediate_without_connections() {
        let connections = Connections::default();
        tokio::time::timeout(Duration::from_secs(5), connections.drained())
            .await
            .expect("nothing to wait for");
    }
}
