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

/// A connection's signals, as bits. None: serve on.
const RUN: u8 = 0;
/// Finish the request in flight, then close (graceful shutdown).
const DRAIN: u8 = 1;
/// The watchdog saw no request head for a whole period: close, if the
/// connection's own task still finds no request in flight.
const STALLED: u8 = 2;
/// Close now, whatever is in flight (the shutdown deadline ran out).
const ABORT: u8 = 4;

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

    /// Sets `signal`'s bit and wakes the connection's task.
    fn send(&self, signal: u8) {
        self.signal.fetch_or(signal, Ordering::AcqRel);
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

    /// Closes every connection that was idle at two calls in a row with no
    /// request started in between: it sent no request head for a whole
    /// period, being idle or too slow to send its headers. Called once per
    /// period, a connection stays open without sending a request head for
    /// at least one period and at most two; then it is asked to shut down
    /// gracefully (HTTP/2: GOAWAY), and dropped at the next call if it is
    /// still there and still idle (at most three periods in all). The close
    /// is decided on the connection's own task ([`Supervised`]), which keeps
    /// the connection if a request started meanwhile.
    pub(crate) fn close_stalled(&self) {
        self.each(|c| {
            let started = c.started.load(Ordering::Acquire);
            let idle = started == c.finished.load(Ordering::Acquire);
            let seen = c
                .seen
                .swap(if idle { started } else { u64::MAX }, Ordering::AcqRel);
            if idle && started == seen {
                debug!("closing a public connection that sent no request head in time");
                c.send(STALLED);
            }
        });
    }

    /// Closes every connection now, requests in flight or not.
    pub(crate) fn abort(&self) {
        self.each(|c| c.send(ABORT));
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
        registered: None,
    }
    .await
}

struct Supervised<'a, F> {
    control: &'a Control,
    served: Pin<&'a mut F>,
    graceful_shutdown: fn(Pin<&mut F>),
    draining: bool,
    /// The waker last put in `control`: it is put there again only when the
    /// task's waker changes (for a spawned task, never), so a poll takes no
    /// lock.
    registered: Option<Waker>,
}

impl<F: Future> Future for Supervised<'_, F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if !this
            .registered
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            *this.control.waker() = Some(cx.waker().clone());
            this.registered = Some(cx.waker().clone());
        }
        // Read after the waker is in place, so a signal sent meanwhile is
        // either seen here or wakes the task again.
        let signal = this.control.signal.load(Ordering::Acquire);
        if signal & ABORT != 0 {
            return Poll::Ready(None);
        }
        if signal & STALLED != 0 {
            // Requests are counted started in `served.poll`, on this task:
            // none can start between this check and what follows.
            let c = this.control;
            let idle = c.started.load(Ordering::Acquire) == c.finished.load(Ordering::Acquire);
            if idle && this.draining {
                // Asked to close already (by an earlier stall or by
                // shutdown), and still here at a later look (a client that
                // keeps a request head half sent): drop it. Usually that is
                // a period after the ask; on a starved runtime that handled
                // the first stall late, less. An HTTP/2 client has had the
                // GOAWAY by then (it goes out in the poll that asks), so it
                // still sees a clean close.
                return Poll::Ready(None);
            }
            c.signal.fetch_and(!STALLED, Ordering::AcqRel);
            if idle {
                // First ask it to close: an HTTP/2 connection sends GOAWAY,
                // so its client knows no request was lost and opens a new
                // one; an idle HTTP/1 one closes at once.
                this.draining = true;
                (this.graceful_shutdown)(this.served.as_mut());
            }
            // Otherwise a request started after the watchdog looked: serve it.
        }
        if signal & DRAIN != 0 && !this.draining {
            this.draining = true;
            (this.graceful_shutdown)(this.served.as_mut());
        }
        this.served.as_mut().poll(cx).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    /// A connection that never ends by itself; it ends at its next poll
    /// once asked to shut down gracefully, unless it `ignores_shutdown`
    /// (like a client that keeps a request head half sent).
    struct Idle {
        shut: Arc<AtomicBool>,
        ignores_shutdown: bool,
    }

    impl Future for Idle {
        type Output = ();
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
            if self.shut.load(Ordering::Acquire) && !self.ignores_shutdown {
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
        serve_with(connections, Arc::new(Control::new()), false)
    }

    /// [`serve`], on a given `control`.
    fn serve_with(
        connections: &Arc<Connections>,
        control: Arc<Control>,
        ignores_shutdown: bool,
    ) -> tokio::task::JoinHandle<(Option<()>, bool)> {
        let registered = connections.register(&control);
        tokio::spawn(async move {
            let shut = Arc::new(AtomicBool::new(false));
            let idle = Idle {
                shut: Arc::clone(&shut),
                ignores_shutdown,
            };
            let out = supervise(&control, idle, shut_down).await;
            drop(registered);
            (out, shut.load(Ordering::Acquire))
        })
    }

    /// Lets the spawned connection tasks run until they wait again.
    async fn let_tasks_run() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    /// What a served connection's task ended with (`None`: it did not end
    /// within 5 s).
    async fn ended(
        task: tokio::task::JoinHandle<(Option<()>, bool)>,
    ) -> Option<(Option<()>, bool)> {
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .ok()
            .and_then(Result::ok)
    }

    /// Waits until no connection is registered.
    async fn all_gone(connections: &Connections) {
        tokio::time::timeout(Duration::from_secs(5), connections.drained())
            .await
            .expect("no connection left");
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
        assert_eq!(idle.signal.load(Ordering::Acquire), STALLED);
        assert_eq!(busy.signal.load(Ordering::Acquire), RUN);
        // It finishes: idle at the next look, but not yet for a whole
        // period; closed at the look after.
        busy.finished.fetch_add(1, Ordering::AcqRel);
        connections.close_stalled();
        assert_eq!(busy.signal.load(Ordering::Acquire), RUN);
        connections.close_stalled();
        assert_eq!(busy.signal.load(Ordering::Acquire), STALLED);
    }

    #[tokio::test]
    async fn a_connection_with_a_request_started_after_the_look_is_kept() {
        let connections = Arc::new(Connections::default());
        let control = Arc::new(Control::new());
        let task = serve_with(&connections, Arc::clone(&control), false);
        tokio::task::yield_now().await;
        connections.close_stalled();
        connections.close_stalled();
        assert_eq!(control.signal.load(Ordering::Acquire), STALLED);
        // The watchdog decided on an idle connection, but a request head is
        // counted before the connection's task looks at the signal.
        control.started.fetch_add(1, Ordering::AcqRel);
        let_tasks_run().await;
        assert!(!task.is_finished(), "a request is in flight: kept open");
        assert_eq!(
            control.signal.load(Ordering::Acquire),
            RUN,
            "the close is withdrawn"
        );
        // It finishes; two idle looks later the connection is asked to
        // close, and does.
        control.finished.fetch_add(1, Ordering::AcqRel);
        connections.close_stalled();
        connections.close_stalled();
        assert_eq!(ended(task).await, Some((Some(()), true)));
    }

    #[tokio::test]
    async fn abort_closes_connections_with_requests_in_flight() {
        let connections = Arc::new(Connections::default());
        let control = Arc::new(Control::new());
        control.started.fetch_add(1, Ordering::AcqRel);
        let task = serve_with(&connections, control, false);
        tokio::task::yield_now().await;
        connections.abort();
        assert_eq!(ended(task).await, Some((None, false)));
        all_gone(&connections).await;
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
    async fn a_stalled_connection_is_shut_down_gracefully_and_unregisters() {
        let connections = Arc::new(Connections::default());
        let task = serve(&connections);
        tokio::task::yield_now().await;
        connections.close_stalled();
        connections.close_stalled();
        assert_eq!(
            ended(task).await,
            Some((Some(()), true)),
            "asked to shut down gracefully, and ended so"
        );
        all_gone(&connections).await;
    }

    #[tokio::test]
    async fn a_stalled_connection_that_does_not_close_is_dropped_at_the_next_look() {
        let connections = Arc::new(Connections::default());
        let control = Arc::new(Control::new());
        let task = serve_with(&connections, Arc::clone(&control), true);
        tokio::task::yield_now().await;
        connections.close_stalled();
        connections.close_stalled();
        let_tasks_run().await;
        assert!(!task.is_finished(), "asked to close, not dropped yet");
        assert_eq!(control.signal.load(Ordering::Acquire), RUN);
        connections.close_stalled();
        assert_eq!(
            ended(task).await,
            Some((None, true)),
            "dropped a period after the graceful shutdown it ignored"
        );
        all_gone(&connections).await;
    }

    #[tokio::test]
    async fn a_stall_during_shutdown_drops_a_connection_that_is_not_closing() {
        let connections = Arc::new(Connections::default());
        let control = Arc::new(Control::new());
        let task = serve_with(&connections, Arc::clone(&control), true);
        tokio::task::yield_now().await;
        connections.drain();
        let_tasks_run().await;
        assert!(!task.is_finished(), "asked to shut down, not dropped");
        connections.close_stalled();
        connections.close_stalled();
        assert_eq!(ended(task).await, Some((None, true)));
    }

    #[tokio::test]
    async fn after_a_stall_and_shutdown_a_request_in_flight_is_kept() {
        let connections = Arc::new(Connections::default());
        let control = Arc::new(Control::new());
        let task = serve_with(&connections, Arc::clone(&control), true);
        tokio::task::yield_now().await;
        connections.close_stalled();
        connections.close_stalled();
        let_tasks_run().await;
        // Asked to close by the stall, then by shutdown: still here.
        connections.drain();
        let_tasks_run().await;
        assert!(!task.is_finished());
        // A request starts (the half-sent head completes): a stall signal
        // that comes while it is in flight does not drop the connection.
        control.started.fetch_add(1, Ordering::AcqRel);
        control.send(STALLED);
        let_tasks_run().await;
        assert!(!task.is_finished(), "a request is in flight: kept");
        assert_eq!(control.signal.load(Ordering::Acquire) & STALLED, 0);
        connections.abort();
        assert_eq!(ended(task).await, Some((None, true)));
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
