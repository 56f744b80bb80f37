//! The click log: redirects hand click events to a bounded queue and never
//! wait; a background thread writes them to the store in batched
//! transactions.
//!
//! The writer wakes every flush interval (or when told to stop), drains the
//! queue, and writes what it found in transactions of at most `batch_size`
//! events. Producers never wake it, so a redirect costs one lock-free queue
//! push and no system call. A full queue drops the event and counts it
//! (`linkwright_clicklog_dropped_total`).
//!
//! Durability: a clean shutdown ([`ClickLog::shutdown`], on SIGTERM/SIGINT)
//! drains the whole queue, so no click is lost. A crash loses the events
//! still queued: at most those of the last flush interval (200 ms by
//! default), and never more than the queue's capacity. A failed write keeps
//! its batch and retries on the next wake-up.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use tracing::{error, info};

use crate::click::ClickIdGenerator;
use crate::config::ClickLogConfig;
use crate::metrics::Metrics;
use crate::store::{ClickEvent, Store};

/// The producer side of the click log, shared by every request.
#[derive(Debug)]
pub struct ClickLog {
    tx: SyncSender<ClickEvent>,
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Debug)]
struct Shared {
    /// Events in the queue (sent, not yet taken by the writer).
    depth: AtomicI64,
    stop: AtomicBool,
    metrics: Arc<Metrics>,
}

impl ClickLog {
    /// Starts the writer thread.
    pub fn start(
        store: Arc<dyn Store>,
        ids: Arc<ClickIdGenerator>,
        config: ClickLogConfig,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<ClickLog> {
        let (tx, rx) = sync_channel(config.queue_capacity);
        let shared = Arc::new(Shared {
            depth: AtomicI64::new(0),
            stop: AtomicBool::new(false),
            metrics,
        });
        let writer_shared = Arc::clone(&shared);
        let writer = std::thread::Builder::new()
            .name("click-log-writer".into())
            .spawn(move || write_loop(rx, store, ids, config, writer_shared))?;
        Ok(ClickLog {
            tx,
            shared,
            writer: Mutex::new(Some(writer)),
        })
    }

    /// Queues an event without waiting; false (and counted) if the queue is
    /// full or the writer has stopped.
    pub fn record(&self, event: ClickEvent) -> bool {
        match self.tx.try_send(event) {
            Ok(()) => {
                self.shared.depth.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.shared.metrics.clicks_dropped.increment(1);
                false
            }
        }
    }

    /// Events waiting in the queue.
    pub fn depth(&self) -> i64 {
        self.shared.depth.load(Ordering::Relaxed)
    }

    /// Stops the writer after it has written everything queued, and waits
    /// for it. Idempotent.
    pub fn shutdown(&self) {
        let handle = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(handle) = handle {
            self.shared.stop.store(true, Ordering::Release);
            handle.thread().unpark();
            if handle.join().is_err() {
                error!("click log writer panicked");
            }
        }
    }
}

impl Drop for ClickLog {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn write_loop(
    rx: Receiver<ClickEvent>,
    store: Arc<dyn Store>,
    ids: Arc<ClickIdGenerator>,
    config: ClickLogConfig,
    shared: Arc<Shared>,
) {
    let mut batch: Vec<ClickEvent> = Vec::with_capacity(config.batch_size);
    let mut written_total: u64 = 0;
    loop {
        // Read the flag before draining: everything sent before `shutdown`
        // set it is in the queue now and is drained below.
        let stopping = shared.stop.load(Ordering::Acquire);
        loop {
            // A batch that failed to write is kept and retried first.
            let mut taken = 0;
            while batch.len() < config.batch_size {
                match rx.try_recv() {
                    Ok(event) => {
                        batch.push(event);
                        taken += 1;
                    }
                    Err(_) => break,
                }
            }
            shared.depth.fetch_sub(taken, Ordering::Relaxed);
            if batch.is_empty() {
                break;
            }
            let started = Instant::now();
            if let Err(e) = store.insert_clicks(&batch) {
                shared.metrics.clicklog_errors.increment(1);
                error!(error = %e, events = batch.len(), "click log write failed; will retry");
                // Do not spin: retry on the next wake-up (at shutdown, once
                // more below).
                break;
            }
            shared
                .metrics
                .flush_duration
                .record(started.elapsed().as_secs_f64());
            shared.metrics.clicks_written.increment(batch.len() as u64);
            written_total += batch.len() as u64;
            batch.clear();
        }
        shared
            .metrics
            .queue_depth
            .set(shared.depth.load(Ordering::Relaxed).max(0) as f64);
        if let Err(e) = store.save_click_state(ids.state()) {
            error!(error = %e, "saving the click ID state failed");
        }
        if stopping {
            if !batch.is_empty() {
                if let Err(e) = store.insert_clicks(&batch) {
                    error!(error = %e, lost = batch.len(), "click log: final write failed; events lost");
                    shared.metrics.clicks_dropped.increment(batch.len() as u64);
                } else {
                    shared.metrics.clicks_written.increment(batch.len() as u64);
                    written_total += batch.len() as u64;
                }
            }
            info!(written = written_total, "click log drained and stopped");
            return;
        }
        std::thread::park_timeout(config.flush_interval);
    }
}
