//! The click log: redirects journal each click and hand it to a per-thread
//! buffer without waiting; a background thread writes the buffers to the
//! store in batched transactions.
//!
//! Each thread appends to its own shard ([`crate::shard`]): a `Vec` behind a
//! mutex that only that thread and, once per flush interval, the writer
//! touch. A redirect costs an uncontended lock, a record copied into the
//! thread's journal segment and a push: no atomic on a cache line another
//! core writes, no system call, no wait for disk. Producers never wake the
//! writer. It wakes every flush interval, takes each shard's events by
//! swapping in an empty buffer (buffers are recycled, so the steady state
//! allocates nothing), merges them in click-ID order, and writes them in
//! transactions of at most `batch_size` events.
//!
//! Crash safety: a click with a click ID (a human's, whose sub-ID went out
//! in the `Location`) is first appended to the shard's journal segment, a
//! file under `<data dir>/journal` mapped into memory
//! ([`linkwright_journal`]; the record's layout is [`record`]'s alone), and
//! only then buffered, before the 302 is written. The page cache holds it
//! from that moment, so it outlives the process: at the next start
//! [`replay`] reads the segments a dead process left and inserts their
//! clicks, once each (the click ID is the key). A segment is removed once
//! every click in it is in the store. A thread of the journal's own (a
//! sync can take long on a busy disk; the writer must not wait for it)
//! syncs the live segments to disk every `sync_interval`, so power loss
//! loses at most the clicks of one interval, and makes spare segments for
//! busy shards, so that a redirect rarely makes one. Bot hits have no click ID, so a replay could not tell a stored
//! one from a new one: they are not journaled, and a crash loses those of
//! the last flush interval. If no segment can be made (disk full, folder
//! not writable), the click is dropped and counted
//! (`linkwright_clicklog_dropped_total`, and
//! `linkwright_clicklog_journal_errors_total` for the failure, logged once
//! per failing spell); the redirect is still answered. The writer tries again
//! at each wake-up.
//!
//! Bound: the shards together hold about `queue_capacity` events. Each
//! shard holds at most a share of it: `queue_capacity / (n + 1)`, where `n`
//! is the number of shards that had events at the writer's last pass (the
//! busy threads), and the `+ 1` leaves room for one thread that starts
//! recording. The writer adjusts the share at every pass; it starts at half
//! the capacity. So the total stays within `queue_capacity`, except in the
//! interval in which several threads start recording at once (each may then
//! fill one share before the writer sees it). A thread whose shard is full
//! (the writer starved of CPU, the store slow or down) still journals a
//! click with a click ID, marks its segment as holding clicks not buffered
//! and counts it (`linkwright_clicklog_overflowed_total`): at its next pass
//! the writer seals that segment and, once the events it took with it are
//! written, inserts the segment's clicks from the segment itself (each
//! once: those that went through a buffer are skipped), and only then
//! removes it. So an answered click is never dropped for want of buffer
//! room while the disk takes it; the backlog beyond `queue_capacity` is on
//! disk, not in memory. A bot hit (not journaled) finding its shard full is
//! dropped and counted (`linkwright_clicklog_dropped_total`), even if other
//! shards have room.
//!
//! Shutdown: a clean shutdown ([`ClickLog::shutdown`], on SIGTERM/SIGINT)
//! closes every shard, writes everything they held and removes the
//! segments, so no accepted click is lost; if that final write fails twice,
//! the journaled clicks stay in their segments for the next start and only
//! bot hits are lost (logged and counted as dropped). A click recorded after
//! the shards closed is refused and counted as dropped. A failed write
//! keeps its events and retries them on the next wake-up; until it succeeds
//! the writer takes nothing more from the shards, which fill up: their
//! clicks then stay in the journal alone (bot hits are dropped), so memory
//! stays bounded while the store is down, and the disk holds the backlog.

mod record;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use linkwright_journal::{Segment, Syncer};
use tracing::{error, info, warn};

use crate::click::{ClickId, ClickIdGenerator};
use crate::config::ClickLogConfig;
use crate::metrics::Metrics;
use crate::shard::Sharded;
use crate::store::{ClickEvent, ClickStore, StoreError};

/// The producer side of the click log, shared by every request.
#[derive(Debug)]
pub struct ClickLog {
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// Syncs the journal and makes spare segments.
    journal: Mutex<Option<JoinHandle<()>>>,
}

/// One thread's buffer.
#[derive(Debug, Default)]
struct Shard {
    /// Events recorded and not yet taken by the writer.
    events: Vec<ClickEvent>,
    /// Set by the writer's final pass: the shard accepts nothing more.
    closed: bool,
    /// The journal segment this shard's clicks go to now.
    segment: Option<Segment>,
    /// A fresh segment the writer made ready for when `segment` is full.
    spare: Option<Segment>,
    /// `segment` holds clicks that are not in `events`: journaled when the
    /// shard was full (see [`Sealed::overflowed`]).
    overflowed: bool,
    /// Full segments, each of whose clicks is in `events`, was taken by the
    /// writer before, or (if it overflowed) is in the segment only.
    sealed: Vec<Sealed>,
}

/// A journal segment no longer appended to.
#[derive(Debug)]
struct Sealed {
    segment: Segment,
    /// Some of its clicks were journaled while the shard was full, and
    /// never buffered: the writer inserts them from the segment itself
    /// (every click in it, each once: those it wrote already are skipped)
    /// before removing it.
    overflowed: bool,
}

/// Where the journal segments go, and how they are made.
#[derive(Debug)]
struct Journal {
    dir: PathBuf,
    segment_bytes: usize,
    /// The file names of this process's segments start with this.
    prefix: String,
    next: AtomicU64,
    /// No segment could be made lately: producers drop clicks without
    /// trying, and the writer tries again at each wake-up.
    failing: AtomicBool,
    /// Segments were created or removed since the folder was last synced.
    dir_dirty: AtomicBool,
    /// Segments sealed since the last sync: synced once more, then dropped.
    sealed_unsynced: Mutex<Vec<Syncer>>,
}

impl Journal {
    fn new(dir: &Path, segment_bytes: usize, metrics: &Metrics) -> Journal {
        let journal = Journal {
            dir: dir.to_owned(),
            segment_bytes,
            prefix: format!("{:013}-{}", crate::clock::now_ms(), std::process::id()),
            next: AtomicU64::new(0),
            failing: AtomicBool::new(false),
            dir_dirty: AtomicBool::new(false),
            sealed_unsynced: Mutex::new(Vec::new()),
        };
        if let Err(e) = std::fs::create_dir_all(dir) {
            journal.failed(&e, metrics);
        }
        journal
    }

    /// A new, empty segment; None (logged and counted) if it cannot be
    /// made.
    fn create(&self, metrics: &Metrics) -> Option<Segment> {
        if self.failing.load(Ordering::Relaxed) {
            // The folder may have been missing: make it if it can be now.
            let _ = std::fs::create_dir_all(&self.dir);
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(format!("{}-{n:06}.seg", self.prefix));
        match Segment::create(&path, self.segment_bytes, record::KIND) {
            Ok(segment) => {
                self.dir_dirty.store(true, Ordering::Relaxed);
                if self.failing.swap(false, Ordering::Relaxed) {
                    info!(dir = %self.dir.display(), "click journal: segments can be made again; clicks are recorded");
                }
                Some(segment)
            }
            Err(e) => {
                self.failed(&e, metrics);
                None
            }
        }
    }

    fn failed(&self, e: &std::io::Error, metrics: &Metrics) {
        metrics.journal_errors.increment(1);
        if !self.failing.swap(true, Ordering::Relaxed) {
            error!(
                dir = %self.dir.display(),
                error = %e,
                "click journal: cannot make a segment; clicks are dropped and counted \
                 (linkwright_clicklog_dropped_total) until one can be made"
            );
        }
    }

    fn remove(&self, segment: Segment, metrics: &Metrics) {
        let path = segment.path().to_owned();
        if let Err(e) = segment.remove() {
            metrics.journal_errors.increment(1);
            warn!(path = %path.display(), error = %e, "click journal: cannot remove a written segment");
        }
        self.dir_dirty.store(true, Ordering::Relaxed);
    }
}

struct Shared {
    shards: Sharded<Mutex<Shard>>,
    /// Most events one shard holds now (see the module doc). Written by the
    /// writer only when it changes, so producers read a line that stays in
    /// their cache.
    per_shard: AtomicUsize,
    /// `queue_capacity`.
    capacity: usize,
    stop: AtomicBool,
    metrics: Arc<Metrics>,
    /// Time of the oldest event the writer has taken and not yet written
    /// (Unix ms; 0: none), for the write-lag metric.
    held_oldest_ms: AtomicI64,
    /// None: clicks are not journaled (tests of the buffering alone).
    journal: Option<Journal>,
}

impl std::fmt::Debug for Shared {
    // Not the buffered events: there may be thousands.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("per_shard", &self.per_shard)
            .field("stop", &self.stop)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Events buffered in the shards.
    fn depth(&self) -> usize {
        self.shards.iter().map(|s| lock(s).events.len()).sum()
    }

    /// Gives each busy shard a spare segment, made here rather than on a
    /// redirect; while segments cannot be made, tries one.
    fn prepare_segments(&self) {
        let Some(journal) = &self.journal else {
            return;
        };
        let metrics = &self.metrics;
        for shard in self.shards.iter() {
            let failing = journal.failing.load(Ordering::Relaxed);
            let wanted = {
                let s = lock(shard);
                s.spare.is_none() && !s.closed && (s.segment.is_some() || failing)
            };
            if !wanted {
                continue;
            }
            // Made without the shard's lock: the file is written in full.
            let Some(spare) = journal.create(metrics) else {
                return;
            };
            let mut s = lock(shard);
            if s.spare.is_none() && !s.closed {
                s.spare = Some(spare);
            } else {
                drop(s);
                journal.remove(spare, metrics);
            }
        }
    }

    /// Syncs the live and retired segments, and the folder, to disk: what
    /// power loss can take is what was journaled since.
    fn sync_journal(&self) {
        let Some(journal) = &self.journal else {
            return;
        };
        let mut syncers = std::mem::take(&mut *lock(&journal.sealed_unsynced));
        for shard in self.shards.iter() {
            syncers.extend(lock(shard).segment.as_ref().map(Segment::syncer));
        }
        for syncer in syncers {
            if let Err(e) = syncer.sync() {
                self.metrics.journal_errors.increment(1);
                error!(error = %e, "click journal: sync failed");
            }
        }
        if journal.dir_dirty.swap(false, Ordering::Relaxed)
            && let Err(e) = linkwright_journal::sync_dir(&journal.dir)
        {
            self.metrics.journal_errors.increment(1);
            error!(error = %e, "click journal: folder sync failed");
        }
    }

    /// The journal thread: every `interval`, gives busy shards spare
    /// segments and syncs the journal, until shutdown.
    fn journal_loop(&self, interval: Duration) {
        loop {
            let deadline = Instant::now() + interval;
            while !self.stop.load(Ordering::Acquire) {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                std::thread::park_timeout(deadline - now);
            }
            if self.stop.load(Ordering::Acquire) {
                return;
            }
            self.prepare_segments();
            self.sync_journal();
        }
    }

    /// Appends a click to the shard's journal segment; false if it could
    /// not be (no segment can be made).
    #[inline]
    fn journal(&self, shard: &mut Shard, e: &ClickEvent) -> bool {
        let Some(journal) = &self.journal else {
            return true;
        };
        let len = record::encoded_len(e);
        if let Some(segment) = &mut shard.segment
            && segment.append(len, |out| record::encode(e, out))
        {
            return true;
        }
        self.journal_in_next_segment(journal, shard, e, len)
    }

    /// The shard's segment is full, or it has none: seals the full one and
    /// appends to the spare, or to a new segment.
    #[cold]
    fn journal_in_next_segment(
        &self,
        journal: &Journal,
        shard: &mut Shard,
        e: &ClickEvent,
        len: usize,
    ) -> bool {
        if let Some(full) = shard.segment.take() {
            if full.records() == 0 {
                // Larger than a whole segment: a config with tiny segments.
                shard.segment = Some(full);
                return false;
            }
            lock(&journal.sealed_unsynced).push(full.syncer());
            let overflowed = std::mem::take(&mut shard.overflowed);
            shard.sealed.push(Sealed {
                segment: full,
                overflowed,
            });
        }
        let next = match shard.spare.take() {
            Some(spare) => spare,
            None if journal.failing.load(Ordering::Relaxed) => return false,
            None => match journal.create(&self.metrics) {
                Some(segment) => segment,
                None => return false,
            },
        };
        shard
            .segment
            .insert(next)
            .append(len, |out| record::encode(e, out))
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding a shard lock except an allocation
    // failure; the buffer is still a valid Vec then.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ClickLog {
    /// Starts the writer thread. Clicks are journaled in segments under
    /// `journal` (created if missing); run [`replay`] over that folder
    /// first. None: not journaled (a crash loses the last flush interval).
    pub fn start(
        store: Arc<dyn ClickStore>,
        ids: Arc<ClickIdGenerator>,
        config: ClickLogConfig,
        metrics: Arc<Metrics>,
        journal: Option<&Path>,
    ) -> std::io::Result<ClickLog> {
        let journal = journal.map(|dir| Journal::new(dir, config.segment_bytes, &metrics));
        let shared = Arc::new(Shared {
            shards: Sharded::new(|| Mutex::new(Shard::default())),
            per_shard: AtomicUsize::new(config.queue_capacity.div_ceil(2)),
            capacity: config.queue_capacity,
            stop: AtomicBool::new(false),
            metrics,
            held_oldest_ms: AtomicI64::new(0),
            journal,
        });
        let writer = Writer {
            shared: Arc::clone(&shared),
            store,
            // Only IDs minted from now on need the state saved.
            saved: ids.state(),
            ids,
            batch_size: config.batch_size,
            held: Vec::new(),
            spare: Vec::new(),
            retired: Vec::new(),
            written_total: 0,
            unsure: false,
        };
        let flush_interval = config.flush_interval;
        let writer = std::thread::Builder::new()
            .name("click-log-writer".into())
            .spawn(move || writer.run(flush_interval))?;
        // Disk syncs and new segments on a thread of their own: a sync can
        // take long on a busy disk, and the writer must not wait for it.
        let journal = if shared.journal.is_some() {
            let shared = Arc::clone(&shared);
            let interval = config.sync_interval;
            Some(
                std::thread::Builder::new()
                    .name("click-journal".into())
                    .spawn(move || shared.journal_loop(interval))?,
            )
        } else {
            None
        };
        Ok(ClickLog {
            shared,
            writer: Mutex::new(Some(writer)),
            journal: Mutex::new(journal),
        })
    }

    /// Journals a click (one with a click ID) and buffers the event in the
    /// calling thread's shard without waiting; if that shard is full, a
    /// journaled click stays in its segment only (counted as overflowed).
    /// False (and counted as dropped) if the log has shut down, the journal
    /// has no room, or the shard is full and the event is not journaled.
    pub fn record(&self, event: ClickEvent) -> bool {
        {
            let shared = &*self.shared;
            let mut shard = lock(shared.shards.local());
            let room = shard.events.len() < shared.per_shard.load(Ordering::Relaxed);
            if !shard.closed && room {
                if event.click_id.is_none() || shared.journal(&mut shard, &event) {
                    shard.events.push(event);
                    return true;
                }
            } else if !shard.closed
                && event.click_id.is_some()
                && shared.journal.is_some()
                && shared.journal(&mut shard, &event)
            {
                // The shard is full, but the click is journaled: it stays
                // in its segment only, and the writer inserts it from there.
                shard.overflowed = true;
                shared.metrics.clicks_overflowed.increment(1);
                return true;
            }
        }
        self.shared.metrics.clicks_dropped.increment(1);
        false
    }

    /// Events buffered and not yet taken by the writer.
    pub fn depth(&self) -> i64 {
        self.shared.depth() as i64
    }

    /// Time (Unix ms) of the oldest event not yet written, buffered or held
    /// by the writer; None if every event is written. For metrics: takes
    /// each shard's lock in turn.
    pub fn oldest_unwritten_ms(&self) -> Option<i64> {
        let held = self.shared.held_oldest_ms.load(Ordering::Relaxed);
        self.shared
            .shards
            .iter()
            .filter_map(|s| lock(s).events.first().map(|e| e.at_ms))
            .chain((held != 0).then_some(held))
            .min()
    }

    /// Stops the writer after it has written everything recorded, and waits
    /// for it. Later events are refused. Idempotent.
    pub fn shutdown(&self) {
        let journal = lock(&self.journal).take();
        if let Some(handle) = journal {
            self.shared.stop.store(true, Ordering::Release);
            handle.thread().unpark();
            if handle.join().is_err() {
                error!("click journal thread panicked");
            }
        }
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

/// What [`replay`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Replayed {
    /// Segments read and removed.
    pub segments: usize,
    /// Clicks read from them.
    pub clicks: usize,
    /// Of those, clicks that were not in the store yet.
    pub inserted: usize,
    /// Segments or records that could not be read (logged; a segment is
    /// then left in place).
    pub unreadable: usize,
}

/// Inserts into the store the clicks of the journal segments in `dir` that
/// no live process holds (those a process that died left), each click once
/// however often it is replayed, in transactions of at most `batch_size`,
/// and removes the segments. Run it before [`ClickLog::start`]. A segment
/// that cannot be read is logged and left in place; a store error stops the
/// replay (the segments not yet removed stay for the next try).
pub fn replay(
    dir: &Path,
    store: &dyn ClickStore,
    batch_size: usize,
) -> Result<Replayed, StoreError> {
    let mut done = Replayed::default();
    let mut paths: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "seg"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(done),
        Err(e) => {
            error!(dir = %dir.display(), error = %e, "click journal: cannot list the folder; nothing replayed");
            done.unreadable += 1;
            return Ok(done);
        }
    };
    // File names start with the writer's start time: oldest first.
    paths.sort();
    for path in paths {
        let segment = match linkwright_journal::open(&path) {
            Ok(Some(segment)) => segment,
            // A live process's segment.
            Ok(None) => continue,
            Err(e) => {
                error!(error = %e, "click journal: segment left unread");
                done.unreadable += 1;
                continue;
            }
        };
        let kind = segment.kind();
        if kind.id != record::KIND.id || kind.version > record::VERSION {
            error!(
                path = %path.display(),
                kind = kind.id,
                version = kind.version,
                "click journal: segment of another kind or a newer version left unread"
            );
            done.unreadable += 1;
            continue;
        }
        let mut events = Vec::new();
        for bytes in segment.records() {
            match record::decode(kind.version, bytes) {
                Ok(event) => events.push(event),
                Err(e) => {
                    error!(path = %path.display(), error = %e, "click journal: record skipped");
                    done.unreadable += 1;
                }
            }
        }
        for batch in events.chunks(batch_size.max(1)) {
            done.inserted += store.insert_new_clicks(batch)?;
        }
        done.clicks += events.len();
        if let Err(e) = segment.remove() {
            warn!(path = %path.display(), error = %e, "click journal: cannot remove a replayed segment");
        }
        done.segments += 1;
    }
    if done.segments > 0 {
        if let Err(e) = linkwright_journal::sync_dir(dir) {
            warn!(dir = %dir.display(), error = %e, "click journal: folder sync failed");
        }
        info!(
            segments = done.segments,
            clicks = done.clicks,
            new = done.inserted,
            "click journal replayed: clicks a previous run answered are stored"
        );
    }
    Ok(done)
}

/// The writer thread's state.
struct Writer {
    shared: Arc<Shared>,
    store: Arc<dyn ClickStore>,
    ids: Arc<ClickIdGenerator>,
    batch_size: usize,
    /// Events taken from the shards and not yet written, each take merged
    /// by click ID. A failed write leaves them here for the next wake-up.
    /// It keeps the capacity of the largest take (up to `queue_capacity`
    /// events, ~64 bytes each), besides the shards' and spare buffers.
    held: Vec<ClickEvent>,
    /// Empty buffers (with their capacity) to swap into the shards.
    spare: Vec<Vec<ClickEvent>>,
    /// Sealed journal segments taken from the shards: every click in them
    /// is in `held`, written, or (in a segment that overflowed) in the
    /// segment only. Once `held` is all written, the overflowed ones are
    /// inserted from their records, and then they are removed.
    retired: Vec<Sealed>,
    written_total: u64,
    /// The click ID state last saved (at the start: the state then, from
    /// which no ID has been minted yet).
    saved: u64,
    /// The last write failed: its batch may have been stored all the same
    /// (a database that committed and went away before answering), so it
    /// is written again with `insert_new_clicks`, which skips the clicks
    /// already there instead of failing on them forever.
    unsure: bool,
}

impl Writer {
    fn run(mut self, wake: Duration) {
        loop {
            let stopping = self.wait(wake);
            if stopping {
                self.final_pass();
            } else {
                self.pass();
            }
            self.shared
                .metrics
                .queue_depth
                .set(self.shared.depth() as f64);
            self.save_state();
            if stopping {
                info!(
                    written = self.written_total,
                    "click log drained and stopped"
                );
                return;
            }
        }
    }

    /// Saves the click ID generator's state if IDs were minted since the
    /// last save: an idle server writes nothing (it used to commit a page to
    /// the WAL at every wake-up, five times a second).
    fn save_state(&mut self) {
        let state = self.ids.state();
        if self.saved == state {
            return;
        }
        match self.store.save_click_state(state) {
            Ok(()) => self.saved = state,
            Err(e) => error!(error = %e, "saving the click ID state failed"),
        }
    }

    /// Sleeps for the flush interval, or until shutdown asks; true if it
    /// did. A spurious wake-up does not end the interval early.
    fn wait(&self, interval: Duration) -> bool {
        let deadline = Instant::now().checked_add(interval);
        loop {
            if self.shared.stop.load(Ordering::Acquire) {
                return true;
            }
            match deadline {
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return false;
                    }
                    std::thread::park_timeout(deadline - now);
                }
                None => std::thread::park(),
            }
        }
    }

    /// One wake-up: retries what a failed write left, then takes every
    /// shard's events and writes them. After a failed write it takes
    /// nothing more until the retry succeeds, so what the writer holds stays
    /// within one pass's take (about `queue_capacity`; see the module doc).
    fn pass(&mut self) {
        if !self.write() {
            return;
        }
        let busy = self.take_all(false);
        let shared = &self.shared;
        let share = shared.capacity.div_ceil(busy + 1);
        if shared.per_shard.load(Ordering::Relaxed) != share {
            shared.per_shard.store(share, Ordering::Relaxed);
        }
        if self.write() {
            self.retire();
        }
    }

    /// At shutdown: closes every shard (later events are refused and
    /// counted), then writes everything, retrying a failed write once, and
    /// removes every journal segment. If the write still fails, the
    /// journaled clicks stay in their segments for the next start's
    /// replay; the bot hits are lost, logged and counted as dropped.
    fn final_pass(&mut self) {
        self.take_all(true);
        if (self.write() || self.write()) && (self.retire() || self.retire()) {
            let Some(journal) = &self.shared.journal else {
                return;
            };
            for shard in self.shared.shards.iter() {
                let mut shard = lock(shard);
                for segment in shard.segment.take().into_iter().chain(shard.spare.take()) {
                    journal.remove(segment, &self.shared.metrics);
                }
            }
            self.shared.sync_journal();
            return;
        }
        let journaled = self.shared.journal.is_some();
        let lost = self
            .held
            .iter()
            .filter(|e| !journaled || e.click_id.is_none())
            .count();
        error!(
            lost,
            kept = self.held.len() - lost,
            "click log: final write failed; journaled clicks are kept for the next start, the rest is lost"
        );
        self.shared.metrics.clicks_dropped.increment(lost as u64);
        self.held.clear();
        self.retired.clear();
        self.shared.sync_journal();
    }

    /// Removes the retired segments, once every click in them is written:
    /// those that overflowed have their clicks inserted from the segment
    /// first (each once). False if such an insert failed: that segment and
    /// the others not yet done stay retired for the next pass.
    fn retire(&mut self) -> bool {
        let shared = Arc::clone(&self.shared);
        let Some(journal) = &shared.journal else {
            self.retired.clear();
            return true;
        };
        // Oldest first: their clicks land at the right edge of the index.
        let mut retired = std::mem::take(&mut self.retired).into_iter();
        while let Some(sealed) = retired.next() {
            if sealed.overflowed
                && let Err(e) = self.insert_from(&sealed.segment)
            {
                shared.metrics.clicklog_errors.increment(1);
                error!(error = %e, path = %sealed.segment.path().display(), "click log: writing the clicks kept in a journal segment failed; will retry");
                self.retired.push(sealed);
                self.retired.extend(retired);
                return false;
            }
            journal.remove(sealed.segment, &shared.metrics);
        }
        true
    }

    /// Inserts the clicks of an overflowed segment, each once (those that
    /// went through the buffers are in the store already, and skipped).
    fn insert_from(&mut self, segment: &Segment) -> Result<(), StoreError> {
        let mut events = Vec::with_capacity(segment.records() as usize);
        for bytes in segment.payloads() {
            match record::decode(record::VERSION, bytes) {
                Ok(event) => events.push(event),
                // This process wrote it: a bug, not a torn record.
                Err(e) => error!(error = %e, "click journal: own record unreadable, skipped"),
            }
        }
        for batch in events.chunks(self.batch_size.max(1)) {
            let inserted = self.store.insert_new_clicks(batch)?;
            self.shared
                .metrics
                .clicks_written
                .increment(inserted as u64);
            self.written_total += inserted as u64;
        }
        Ok(())
    }

    /// Takes every shard's events, swapping a spare buffer into each (with
    /// `close`, the shards accept nothing more), and appends them to `held`
    /// merged in click-ID order; the number of shards that had events.
    ///
    /// Each shard is in order already (a thread mints increasing IDs; with
    /// more threads than shards, threads share a shard and the merge is
    /// then only mostly in order, which costs speed, not events), but
    /// the shards' runs overlap in time. Written one run after another, each
    /// run's rows would land between the rows just written for the one
    /// before, splitting pages all along the right edge of the click-ID
    /// index: SQLite rebalanced a page every ~11 rows, and the writer spent
    /// ~17% more per click than with the runs merged.
    fn take_all(&mut self, close: bool) -> usize {
        let mut runs: Vec<Vec<ClickEvent>> = Vec::new();
        for shard in self.shared.shards.iter() {
            let mut shard = lock(shard);
            shard.closed |= close;
            self.retired.append(&mut shard.sealed);
            if std::mem::take(&mut shard.overflowed)
                && let Some(live) = shard.segment.take()
            {
                // Its overflowed clicks are inserted from it once the events
                // taken with it are written; the next click opens another.
                if let Some(journal) = &self.shared.journal {
                    lock(&journal.sealed_unsynced).push(live.syncer());
                }
                self.retired.push(Sealed {
                    segment: live,
                    overflowed: true,
                });
                // The spare takes over now, so the next click does not make
                // a segment on the redirect path; the journal thread makes
                // the shard a new spare.
                shard.segment = shard.spare.take();
            }
            if !shard.events.is_empty() {
                let spare = self.spare.pop().unwrap_or_default();
                runs.push(std::mem::replace(&mut shard.events, spare));
            }
        }
        let busy = runs.len();
        merge_by_click_id(&mut self.held, &mut runs);
        self.note_held();
        self.spare.extend(runs);
        busy
    }

    /// Writes `held` in transactions of at most `batch_size` events,
    /// removing what was written. False if a write failed; its events and
    /// those after it stay in `held`.
    fn write(&mut self) -> bool {
        let mut done = 0;
        let mut ok = true;
        while done < self.held.len() {
            let end = self.held.len().min(done + self.batch_size);
            let batch = &self.held[done..end];
            let started = Instant::now();
            let result = if self.unsure {
                self.store.insert_new_clicks(batch).map(|_| ())
            } else {
                self.store.insert_clicks(batch)
            };
            if let Err(e) = result {
                self.shared.metrics.clicklog_errors.increment(1);
                error!(error = %e, events = batch.len(), "click log write failed; will retry");
                self.unsure = true;
                ok = false;
                break;
            }
            self.unsure = false;
            let metrics = &self.shared.metrics;
            metrics
                .flush_duration
                .record(started.elapsed().as_secs_f64());
            metrics.batch_size.record(batch.len() as f64);
            metrics.clicks_written.increment(batch.len() as u64);
            self.written_total += batch.len() as u64;
            done = end;
        }
        self.held.drain(..done);
        self.note_held();
        ok
    }

    /// Publishes the time of the oldest event held (for the lag metric).
    fn note_held(&self) {
        // `held` is in click-ID order, which is time order.
        let oldest = self.held.first().map_or(0, |e| e.at_ms);
        self.shared.held_oldest_ms.store(oldest, Ordering::Relaxed);
    }
}

/// Appends the events of `runs` to `out`, merged by click ID: if each run is
/// in click-ID order, so is what is appended. Events without an ID (bots)
/// go out as soon as they head their run. The runs are left empty, with
/// their capacity.
fn merge_by_click_id(out: &mut Vec<ClickEvent>, runs: &mut [Vec<ClickEvent>]) {
    if let [run] = runs {
        out.append(run);
        return;
    }
    out.reserve(runs.iter().map(Vec::len).sum());
    let mut runs: Vec<_> = runs.iter_mut().map(|run| run.drain(..)).collect();
    let head = |run: &std::vec::Drain<'_, ClickEvent>| run.as_slice().first().map(|e| e.click_id);
    loop {
        let mut first: Option<(usize, Option<ClickId>)> = None;
        for (i, run) in runs.iter().enumerate() {
            if let Some(id) = head(run)
                && first.is_none_or(|(_, min)| id < min)
            {
                first = Some((i, id));
            }
        }
        let Some((i, _)) = first else { break };
        out.extend(runs[i].next());
    }
}

impl Drop for Writer {
    /// After the final pass there is nothing left. If the writer panicked,
    /// this closes the shards, so that no event is accepted into a buffer
    /// nobody writes, and counts what they and `held` kept as dropped.
    fn drop(&mut self) {
        let mut lost = std::mem::take(&mut self.held).len();
        for shard in self.shared.shards.iter() {
            let mut shard = lock(shard);
            shard.closed = true;
            lost += std::mem::take(&mut shard.events).len();
        }
        if lost > 0 {
            error!(lost, "click log writer stopped early; events lost");
            self.shared.metrics.clicks_dropped.increment(lost as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::atomic::AtomicUsize;
    use std::sync::mpsc;

    use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

    use crate::backend::SqliteStore;
    use crate::classify::UaClass;
    use crate::store::{LinkStore, StoreError, StoredClick};

    /// Metrics in a recorder of their own, so that tests running in parallel
    /// do not share counters.
    fn local_metrics() -> (Arc<Metrics>, PrometheusHandle) {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let metrics =
            ::metrics::with_local_recorder(&recorder, || Metrics::new(std::iter::empty()));
        (Arc::new(metrics), handle)
    }

    fn counter(handle: &PrometheusHandle, name: &str) -> u64 {
        handle
            .render()
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or(0)
    }

    const DROPPED: &str = "linkwright_clicklog_dropped_total";
    const WRITTEN: &str = "linkwright_clicklog_written_total";
    const ERRORS: &str = "linkwright_clicklog_write_errors_total";
    const JOURNAL_ERRORS: &str = "linkwright_clicklog_journal_errors_total";
    const OVERFLOWED: &str = "linkwright_clicklog_overflowed_total";
    /// A flush interval no test waits out: the writer only writes at shutdown.
    const NEVER: Duration = Duration::from_secs(3600);

    fn config(queue_capacity: usize, batch_size: usize, flush: Duration) -> ClickLogConfig {
        ClickLogConfig {
            queue_capacity,
            batch_size,
            flush_interval: flush,
            sync_interval: NEVER,
            segment_bytes: 64 * 1024,
        }
    }

    /// The shared state of a log of `capacity` (each shard starting at half).
    fn shared(capacity: usize, metrics: Arc<Metrics>) -> Arc<Shared> {
        Arc::new(Shared {
            shards: Sharded::new(|| Mutex::new(Shard::default())),
            per_shard: AtomicUsize::new(capacity.div_ceil(2)),
            capacity,
            stop: AtomicBool::new(false),
            metrics,
            held_oldest_ms: AtomicI64::new(0),
            journal: None,
        })
    }

    /// A writer driven by the test itself (no thread).
    fn writer(
        shared: Arc<Shared>,
        store: &Arc<MemStore>,
        ids: Arc<ClickIdGenerator>,
        batch_size: usize,
    ) -> Writer {
        Writer {
            shared,
            store: Arc::clone(store) as Arc<dyn ClickStore>,
            saved: ids.state(),
            ids,
            batch_size,
            held: Vec::new(),
            spare: Vec::new(),
            retired: Vec::new(),
            written_total: 0,
            unsure: false,
        }
    }

    /// A click log over `store` with its writer thread, minting from a
    /// generator of its own.
    fn start(store: &Arc<MemStore>, config: ClickLogConfig, metrics: Arc<Metrics>) -> ClickLog {
        ClickLog::start(
            Arc::clone(store) as Arc<dyn ClickStore>,
            Arc::new(ClickIdGenerator::new(0)),
            config,
            metrics,
            None,
        )
        .expect("start")
    }

    /// A human click as the redirect path records it.
    fn event(ids: &ClickIdGenerator, link_id: i64) -> ClickEvent {
        let id = ids.next_id();
        ClickEvent {
            click_id: Some(id),
            link_id,
            at_ms: id.unix_ms(),
            bot: false,
            referrer_host: Some("news.example".into()),
            ua_class: UaClass::Desktop,
            country: Some(*b"DE"),
            target: 0,
        }
    }

    /// Keeps clicks in memory. Its first `fail` click writes fail; every
    /// write is reported on `writes` as (events, succeeded), then, if there
    /// is a `gate`, waits for a message on it before it returns.
    #[derive(Debug)]
    struct MemStore {
        clicks: Mutex<Vec<ClickEvent>>,
        fail: AtomicUsize,
        /// Writes that store their clicks and then report a failure, as a
        /// database that commits and goes away before answering.
        lose_answer: AtomicUsize,
        writes: mpsc::Sender<(usize, bool)>,
        gate: Mutex<Option<mpsc::Receiver<()>>>,
        saved: Mutex<Vec<u64>>,
    }

    impl MemStore {
        fn new(fail: usize) -> (Arc<MemStore>, mpsc::Receiver<(usize, bool)>) {
            let (writes, rx) = mpsc::channel();
            let store = MemStore {
                clicks: Mutex::new(Vec::new()),
                fail: AtomicUsize::new(fail),
                lose_answer: AtomicUsize::new(0),
                writes,
                gate: Mutex::new(None),
                saved: Mutex::new(Vec::new()),
            };
            (Arc::new(store), rx)
        }

        fn clicks(&self) -> Vec<ClickEvent> {
            lock(&self.clicks).clone()
        }
    }

    impl ClickStore for MemStore {
        fn insert_clicks(&self, clicks: &[ClickEvent]) -> Result<(), StoreError> {
            let failing = self
                .fail
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok();
            if !failing {
                lock(&self.clicks).extend_from_slice(clicks);
            }
            let _ = self.writes.send((clicks.len(), !failing));
            if let Some(gate) = lock(&self.gate).as_ref() {
                let _ = gate.recv();
            }
            if failing {
                return Err(StoreError::Timeout(Duration::ZERO));
            }
            if self
                .lose_answer
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok()
            {
                return Err(StoreError::Timeout(Duration::ZERO));
            }
            Ok(())
        }
        fn insert_new_clicks(&self, clicks: &[ClickEvent]) -> Result<usize, StoreError> {
            // Failures are injected in this retry path as in the first try.
            if self
                .fail
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok()
            {
                let _ = self.writes.send((clicks.len(), false));
                return Err(StoreError::Timeout(Duration::ZERO));
            }
            let mut stored = lock(&self.clicks);
            let before = stored.len();
            for c in clicks {
                if c.click_id.is_none() || !stored.iter().any(|s| s.click_id == c.click_id) {
                    stored.push(c.clone());
                }
            }
            let _ = self.writes.send((clicks.len(), true));
            Ok(stored.len() - before)
        }
        fn load_click_state(&self) -> Result<u64, StoreError> {
            Ok(0)
        }
        fn save_click_state(&self, state: u64) -> Result<(), StoreError> {
            lock(&self.saved).push(state);
            Ok(())
        }
        fn clicks(&self, _: usize) -> Result<Vec<StoredClick>, StoreError> {
            unreachable!("the click log writes clicks only")
        }
    }

    #[test]
    fn concurrent_clicks_are_each_stored_once() {
        const THREADS: usize = 8;
        const PER_THREAD: usize = 5_000;
        let dir = crate::testing::scratch("concurrent");
        let store = Arc::new(SqliteStore::open(&dir).expect("open"));
        let link_id = store.with_conn(|c| {
            c.execute(
                "INSERT INTO links (code, provider, input, destination, template_prefix, \
                 template_suffix, subid_max_len, subid_encoding, created_ms) \
                 VALUES ('c', 'amazon', 'x', 'x', 'x', '', 0, 'url_safe', 0)",
                [],
            )
            .expect("link");
            c.last_insert_rowid()
        });
        let ids = Arc::new(ClickIdGenerator::new(0));
        let (metrics, handle) = local_metrics();
        // Small shards, small batches and a short interval: some clicks
        // find their shard full and are kept in the journal only, the rest
        // go through many passes and transactions.
        let log = ClickLog::start(
            Arc::clone(&store) as Arc<dyn ClickStore>,
            Arc::clone(&ids),
            config(crate::shard::SHARDS * 1024, 50, Duration::from_millis(1)),
            metrics,
            Some(&dir.join("journal")),
        )
        .expect("start");
        let accepted: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..THREADS)
                .map(|_| {
                    s.spawn(|| {
                        let mut mine = Vec::new();
                        for i in 0..PER_THREAD {
                            if i % 100 == 0 {
                                // Let the writer in now and then (2 cores).
                                std::thread::yield_now();
                            }
                            let e = event(&ids, link_id);
                            let id = e.click_id.as_ref().expect("human").as_str().to_owned();
                            if log.record(e) {
                                mine.push(id);
                            }
                        }
                        mine
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("producer"))
                .collect()
        });
        log.shutdown();

        let attempted = THREADS * PER_THREAD;
        let stored = store.clicks(attempted + 1).expect("clicks");
        let stored_ids: HashSet<String> = stored
            .iter()
            .map(|c| c.click_id.clone().expect("human"))
            .collect();
        assert_eq!(
            accepted.len(),
            attempted,
            "every click journaled, so accepted (beyond the buffers' room: kept in the journal only)"
        );
        assert_eq!(stored.len(), accepted.len(), "each accepted event once");
        assert_eq!(stored_ids, accepted.iter().cloned().collect::<HashSet<_>>());
        assert_eq!(
            accepted.len() as u64 + counter(&handle, DROPPED),
            attempted as u64
        );
        assert_eq!(counter(&handle, WRITTEN), accepted.len() as u64);
        assert_eq!(log.depth(), 0);
        drop(log);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn threads_events_are_written_merged_in_click_id_order() {
        let (store, _writes) = MemStore::new(0);
        let ids = ClickIdGenerator::new(0);
        let (metrics, _) = local_metrics();
        let log = start(&store, config(1 << 16, 7, NEVER), metrics);
        // Three threads take turns minting, so each shard holds every third
        // ID: runs that overlap, as under load. A bot hit has no ID.
        let turn = Mutex::new(0usize);
        std::thread::scope(|s| {
            for me in 0..3 {
                let (ids, log, turn) = (&ids, &log, &turn);
                s.spawn(move || {
                    let mut mine = 0;
                    while mine < 20 {
                        let mut t = lock(turn);
                        if *t % 3 == me {
                            assert!(log.record(event(ids, 1)));
                            *t += 1;
                            mine += 1;
                        }
                    }
                    let mut bot = event(ids, 1);
                    (bot.click_id, bot.bot) = (None, true);
                    assert!(log.record(bot));
                });
            }
        });
        log.shutdown();
        let written = store.clicks();
        assert_eq!(written.len(), 63);
        let ids: Vec<ClickId> = written.iter().filter_map(|c| c.click_id).collect();
        assert_eq!(ids.len(), 60);
        assert!(ids.is_sorted(), "written in click-ID order: {ids:?}");
    }

    #[test]
    fn the_click_id_state_is_saved_only_when_ids_were_minted() {
        let (store, _writes) = MemStore::new(0);
        let ids = Arc::new(ClickIdGenerator::new(0));
        let (metrics, _) = local_metrics();
        let mut writer = writer(shared(1, metrics), &store, Arc::clone(&ids), 1);
        writer.save_state();
        assert!(
            lock(&store.saved).is_empty(),
            "nothing minted, nothing saved"
        );
        ids.next_id();
        writer.save_state();
        writer.save_state();
        // Past the thread's block of IDs: the generator's state moves on.
        for _ in 0..100 {
            ids.next_id();
        }
        writer.save_state();
        let saved = lock(&store.saved).clone();
        assert_eq!(saved.len(), 2, "{saved:?}");
        assert_eq!(saved[1], ids.state());
        assert!(saved[0] < saved[1]);
    }

    #[test]
    fn without_a_journal_a_full_shard_refuses_and_counts() {
        let (store, _writes) = MemStore::new(0);
        let ids = ClickIdGenerator::new(0);
        let (metrics, handle) = local_metrics();
        let log = start(&store, config(6, 100, NEVER), metrics);
        // All from this thread: one shard, which holds half the capacity
        // until the writer has seen how many threads record.
        let results: Vec<bool> = (0..10).map(|_| log.record(event(&ids, 1))).collect();
        assert_eq!(results, [[true; 3].as_slice(), &[false; 7]].concat());
        assert_eq!(log.depth(), 3);
        assert_eq!(counter(&handle, DROPPED), 7);
        assert!(store.clicks().is_empty(), "the writer has not woken yet");
        log.shutdown();
        assert_eq!(store.clicks().len(), 3);
        assert_eq!(counter(&handle, WRITTEN), 3);
        assert_eq!(log.depth(), 0);
    }

    #[test]
    fn each_shard_gets_a_share_of_the_capacity_by_how_many_threads_record() {
        let (store, _writes) = MemStore::new(0);
        let ids = ClickIdGenerator::new(0);
        let (metrics, _handle) = local_metrics();
        let shared = shared(12, metrics);
        let mut writer = writer(
            Arc::clone(&shared),
            &store,
            Arc::new(ClickIdGenerator::new(0)),
            100,
        );
        let log = ClickLog {
            shared: Arc::clone(&shared),
            writer: Mutex::new(None),
            journal: Mutex::new(None),
        };
        let record = |n: usize| (0..n).filter(|_| log.record(event(&ids, 1))).count();
        // Before any pass: half the capacity per shard.
        assert_eq!(record(10), 6);
        // Two more threads record (in other shards: threads take shard
        // indexes in turn); the pass sees three busy shards.
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| record(1));
            }
        });
        writer.pass();
        let share = shared.per_shard.load(Ordering::Relaxed);
        // 12 / (3 + 1); 12 / (2 + 1) if another test's thread took a shard
        // index in between and two of these threads share a shard.
        assert!(share == 3 || share == 4, "{share}");
        assert_eq!(record(10), share, "this thread's shard holds its share");
        // Only this thread records now: its share grows back to half.
        writer.pass();
        assert_eq!(shared.per_shard.load(Ordering::Relaxed), 6);
        assert_eq!(
            store.clicks().len() as i64 + log.depth(),
            (6 + 2 + share) as i64
        );
    }

    #[test]
    fn events_during_and_after_shutdown_are_refused_and_counted() {
        let (store, writes) = MemStore::new(0);
        let (open_gate, gate) = mpsc::channel();
        *lock(&store.gate) = Some(gate);
        let ids = ClickIdGenerator::new(0);
        let (metrics, handle) = local_metrics();
        let log = start(&store, config(1024, 100, NEVER), metrics);
        let before = event(&ids, 1);
        assert!(log.record(before.clone()));
        std::thread::scope(|s| {
            s.spawn(|| log.shutdown());
            // The final write has begun (and waits for the gate): the
            // shards were closed before it.
            let (n, _) = writes
                .recv_timeout(Duration::from_secs(30))
                .expect("the final write");
            let during = log.record(event(&ids, 1));
            open_gate.send(()).expect("the writer waits");
            assert_eq!(n, 1);
            assert!(!during, "refused during the final write");
        });
        assert_eq!(
            store.clicks(),
            vec![before],
            "shutdown writes what it holds"
        );
        assert!(!log.record(event(&ids, 1)), "refused after shutdown");
        std::thread::scope(|s| {
            s.spawn(|| assert!(!log.record(event(&ids, 1)), "every shard is closed"));
        });
        assert_eq!(counter(&handle, DROPPED), 3);
        assert_eq!(log.depth(), 0);
        assert_eq!(store.clicks().len(), 1);
    }

    #[test]
    fn a_failed_write_is_retried_on_the_next_wake_up() {
        let (store, writes) = MemStore::new(1);
        let ids = ClickIdGenerator::new(0);
        let (metrics, handle) = local_metrics();
        let log = start(&store, config(1024, 4, Duration::from_millis(1)), metrics);
        let recorded: Vec<ClickEvent> = (0..10).map(|_| event(&ids, 1)).collect();
        for e in &recorded {
            assert!(log.record(e.clone()));
        }
        // Wait (before any shutdown) until the writer's own wake-ups have
        // written all ten, after the first write failed.
        let (mut written, mut failed) = (0, 0);
        while written < recorded.len() {
            let (n, ok) = writes
                .recv_timeout(Duration::from_secs(30))
                .expect("the writer keeps writing");
            if ok {
                written += n;
            } else {
                failed += 1;
            }
        }
        assert_eq!(failed, 1);
        log.shutdown();
        assert_eq!(store.clicks(), recorded, "nothing lost, nothing twice");
        assert_eq!(counter(&handle, ERRORS), 1);
        assert_eq!(counter(&handle, WRITTEN), 10);
        assert_eq!(counter(&handle, DROPPED), 0);
    }

    #[test]
    fn the_oldest_unwritten_click_is_buffered_or_held_after_a_failed_write() {
        let (store, _writes) = MemStore::new(1);
        let ids = Arc::new(ClickIdGenerator::new(0));
        let (metrics, _handle) = local_metrics();
        let shared = shared(1024, metrics);
        let log = ClickLog {
            shared: Arc::clone(&shared),
            writer: Mutex::new(None),
            journal: Mutex::new(None),
        };
        assert_eq!(log.oldest_unwritten_ms(), None, "nothing recorded");
        let first = event(&ids, 1);
        let oldest = first.at_ms;
        assert!(log.record(first));
        assert!(log.record(event(&ids, 1)));
        assert_eq!(log.oldest_unwritten_ms(), Some(oldest), "buffered");
        let mut w = writer(shared, &store, Arc::clone(&ids), 100);
        // The write fails: the writer holds the events, still unwritten.
        w.pass();
        assert_eq!(log.depth(), 0, "taken from the buffers");
        assert_eq!(
            log.oldest_unwritten_ms(),
            Some(oldest),
            "held by the writer"
        );
        // The retry writes them.
        w.pass();
        assert_eq!(store.clicks().len(), 2);
        assert_eq!(log.oldest_unwritten_ms(), None, "all written");
    }

    #[test]
    fn a_batch_stored_though_its_write_failed_is_not_stored_twice() {
        let (store, writes) = MemStore::new(0);
        store.lose_answer.store(1, Ordering::Relaxed);
        let ids = ClickIdGenerator::new(0);
        let (metrics, handle) = local_metrics();
        let log = start(&store, config(1024, 4, Duration::from_millis(1)), metrics);
        let recorded: Vec<ClickEvent> = (0..10).map(|_| event(&ids, 1)).collect();
        for e in &recorded {
            assert!(log.record(e.clone()));
        }
        // The first write stores and "fails"; the retry skips what is there.
        let mut retried = false;
        while !retried {
            let (_, ok) = writes
                .recv_timeout(Duration::from_secs(30))
                .expect("the writer keeps writing");
            retried = ok && counter(&handle, ERRORS) == 1 && store.clicks().len() == recorded.len();
        }
        log.shutdown();
        assert_eq!(store.clicks(), recorded, "nothing lost, nothing twice");
        assert_eq!(counter(&handle, ERRORS), 1);
        assert_eq!(counter(&handle, DROPPED), 0);
    }

    #[test]
    fn the_final_write_is_retried_once_then_counted_as_lost() {
        for (fail, kept) in [(1, 5), (2, 0)] {
            let (store, _writes) = MemStore::new(fail);
            let ids = ClickIdGenerator::new(0);
            let (metrics, handle) = local_metrics();
            let log = start(&store, config(1024, 100, NEVER), metrics);
            for _ in 0..5 {
                assert!(log.record(event(&ids, 1)));
            }
            log.shutdown();
            assert_eq!(store.clicks().len(), kept, "failing {fail} times");
            assert_eq!(counter(&handle, WRITTEN), kept as u64);
            assert_eq!(counter(&handle, DROPPED), 5 - kept as u64);
        }
    }

    /// A log journaling under `dir` with no writer thread: what a process
    /// that dies before its writer wakes leaves behind.
    fn unwritten_log(dir: &Path, segment_bytes: usize, metrics: Arc<Metrics>) -> ClickLog {
        small_log(dir, segment_bytes, 1 << 20, metrics)
    }

    /// [`unwritten_log`] with a queue of `capacity`.
    fn small_log(
        dir: &Path,
        segment_bytes: usize,
        capacity: usize,
        metrics: Arc<Metrics>,
    ) -> ClickLog {
        let journal = Journal::new(dir, segment_bytes, &metrics);
        let shared = shared(capacity, metrics);
        let shared = Arc::new(Shared {
            journal: Some(journal),
            ..Arc::into_inner(shared).expect("only owner")
        });
        ClickLog {
            shared,
            writer: Mutex::new(None),
            journal: Mutex::new(None),
        }
    }

    fn sqlite_with_link(dir: &Path) -> (Arc<SqliteStore>, i64) {
        let store = Arc::new(SqliteStore::open(dir).expect("open"));
        let link_id = store.with_conn(|c| {
            c.execute(
                "INSERT INTO links (code, provider, input, destination, template_prefix, \
                 template_suffix, subid_max_len, subid_encoding, created_ms) \
                 VALUES ('c', 'amazon', 'x', 'x', 'x', '', 0, 'url_safe', 0)",
                [],
            )
            .expect("link");
            c.last_insert_rowid()
        });
        (store, link_id)
    }

    /// The click IDs in a SQLite store, in its order (time, then ID).
    fn stored_ids(store: &SqliteStore) -> Vec<String> {
        store
            .clicks(100_000)
            .expect("clicks")
            .into_iter()
            .map(|c| c.click_id.expect("human"))
            .collect()
    }

    /// The click IDs of recorded human clicks, as text, in order.
    fn recorded_ids(events: &[ClickEvent]) -> Vec<String> {
        events
            .iter()
            .map(|e| e.click_id.expect("human").to_string())
            .collect()
    }

    fn segment_files(dir: &Path) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.sort();
        files
    }

    #[test]
    fn clicks_a_dead_process_never_wrote_are_replayed_once_however_often_replayed() {
        let dir = crate::testing::scratch("replay");
        let journal = dir.join("journal");
        let (store, link_id) = sqlite_with_link(&dir);
        let ids = ClickIdGenerator::new(0);
        let (metrics, _handle) = local_metrics();
        // Small segments: the clicks span several, full and partly full.
        let log = unwritten_log(&journal, 4096, metrics);
        let recorded: Vec<ClickEvent> = (0..500).map(|_| event(&ids, link_id)).collect();
        for e in &recorded {
            assert!(log.record(e.clone()));
        }
        let mut bot = event(&ids, link_id);
        (bot.click_id, bot.bot) = (None, true);
        assert!(log.record(bot), "a bot hit is buffered, not journaled");
        assert!(
            replay(&journal, &*store, 100).expect("replay").segments == 0,
            "the segments of a live log are not touched"
        );
        // The process dies: its buffers go, its segments stay.
        drop(log);
        let files = segment_files(&journal);
        assert!(files.len() > 5, "{files:?}");
        let copies: Vec<(PathBuf, Vec<u8>)> = files
            .iter()
            .map(|f| (f.clone(), std::fs::read(f).expect("read")))
            .collect();

        let first = replay(&journal, &*store, 100).expect("replay");
        assert_eq!(
            (first.clicks, first.inserted, first.unreadable),
            (500, 500, 0)
        );
        assert!(segment_files(&journal).is_empty(), "replayed segments go");
        let stored: HashSet<String> = stored_ids(&store).into_iter().collect();
        let want: HashSet<String> = recorded_ids(&recorded).into_iter().collect();
        assert_eq!(stored, want);

        // A crash in the middle of a replay leaves segments whose clicks
        // are stored already: a second replay adds none of them again.
        for (path, bytes) in &copies {
            std::fs::write(path, bytes).expect("restore");
        }
        let second = replay(&journal, &*store, 100).expect("replay");
        assert_eq!((second.clicks, second.inserted), (500, 0));
        assert_eq!(store.clicks(1000).expect("clicks").len(), 500);
        assert_eq!(store.link_stats(link_id).expect("stats").total.clicks, 500);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn an_unwritable_journal_drops_and_counts_clicks_and_redirects_go_on() {
        let dir = crate::testing::scratch("unwritable");
        // The journal's folder is a file: no segment can be made there.
        let journal = dir.join("journal");
        std::fs::write(&journal, b"not a folder").expect("file");
        let (store, _writes) = MemStore::new(0);
        let ids = ClickIdGenerator::new(0);
        let (metrics, handle) = local_metrics();
        let log = ClickLog::start(
            Arc::clone(&store) as Arc<dyn ClickStore>,
            Arc::new(ClickIdGenerator::new(0)),
            config(1024, 100, NEVER),
            metrics,
            Some(&journal),
        )
        .expect("starts all the same");
        assert!(!log.record(event(&ids, 1)), "not journaled, not recorded");
        assert!(!log.record(event(&ids, 1)));
        let mut bot = event(&ids, 1);
        (bot.click_id, bot.bot) = (None, true);
        assert!(log.record(bot), "bot hits are not journaled");
        assert_eq!(counter(&handle, DROPPED), 2);
        assert!(counter(&handle, JOURNAL_ERRORS) >= 1);
        log.shutdown();
        assert_eq!(store.clicks().len(), 1);
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A writer over `store` for a log made by [`unwritten_log`].
    fn sqlite_writer(log: &ClickLog, store: &Arc<SqliteStore>, batch_size: usize) -> Writer {
        let ids = Arc::new(ClickIdGenerator::new(0));
        Writer {
            shared: Arc::clone(&log.shared),
            store: Arc::clone(store) as Arc<dyn ClickStore>,
            saved: ids.state(),
            ids,
            batch_size,
            held: Vec::new(),
            spare: Vec::new(),
            retired: Vec::new(),
            written_total: 0,
            unsure: false,
        }
    }

    #[test]
    fn clicks_beyond_a_full_shard_are_kept_in_the_journal_and_written_from_it() {
        let dir = crate::testing::scratch("overflow");
        let journal = dir.join("journal");
        let (store, link_id) = sqlite_with_link(&dir);
        let ids = ClickIdGenerator::new(0);
        let (metrics, handle) = local_metrics();
        // Small segments (about 90 clicks each) and a shard that holds 10.
        let log = small_log(&journal, 4096, 20, Arc::clone(&metrics));
        let mut w = sqlite_writer(&log, &store, 64);
        let recorded: Vec<ClickEvent> = (0..300).map(|_| event(&ids, link_id)).collect();
        for e in &recorded {
            assert!(log.record(e.clone()), "accepted: journaled");
        }
        let mut bot = event(&ids, link_id);
        (bot.click_id, bot.bot) = (None, true);
        assert!(!log.record(bot), "a bot hit is not journaled: dropped");
        assert_eq!(log.depth(), 10, "the buffer holds its share only");
        assert_eq!(counter(&handle, OVERFLOWED), 290);
        assert_eq!(counter(&handle, DROPPED), 1);
        assert!(segment_files(&journal).len() >= 3);

        w.pass();
        assert_eq!(
            stored_ids(&store),
            recorded_ids(&recorded),
            "every click, once each, in order"
        );
        assert_eq!(store.link_stats(link_id).expect("stats").total.clicks, 300);
        assert_eq!(counter(&handle, WRITTEN), 300);
        assert!(
            segment_files(&journal).is_empty(),
            "the segment in use was sealed, written from and removed"
        );
        // The next click opens a new segment, and goes through the buffer.
        assert!(log.record(event(&ids, link_id)));
        assert_eq!(segment_files(&journal).len(), 1);
        w.pass();
        assert_eq!(store.clicks(1000).expect("clicks").len(), 301);

        // Overflowing again, with a spare segment ready (the journal
        // thread's work): the pass seals the segment in use and puts the
        // spare in its place, so the next click makes no segment.
        for _ in 0..30 {
            assert!(log.record(event(&ids, link_id)));
        }
        log.shared.prepare_segments();
        let before: Vec<PathBuf> = segment_files(&journal);
        assert_eq!(before.len(), 2, "the segment in use and a spare");
        w.pass();
        let after = segment_files(&journal);
        assert_eq!(after.len(), 1, "the spare is in use");
        assert!(log.record(event(&ids, link_id)));
        assert_eq!(segment_files(&journal), after, "no segment made");
        assert_eq!(store.clicks(1000).expect("clicks").len(), 331);
        assert_eq!(counter(&handle, OVERFLOWED), 310);
        drop(w);
        std::fs::remove_dir_all(&dir).ok();
    }

    /// The click IDs of `events`, sorted (a store need not keep the order).
    fn id_set(events: &[ClickEvent]) -> Vec<ClickId> {
        let mut ids: Vec<ClickId> = events.iter().filter_map(|e| e.click_id).collect();
        ids.sort();
        ids
    }

    #[test]
    fn while_the_store_is_down_clicks_pile_up_in_the_journal_not_in_memory() {
        let dir = crate::testing::scratch("outage");
        let journal = dir.join("journal");
        let (store, _writes) = MemStore::new(0);
        let ids = ClickIdGenerator::new(0);
        let (metrics, handle) = local_metrics();
        // A shard holds 5 (one thread records: half the capacity).
        let log = small_log(&journal, 4096, 10, Arc::clone(&metrics));
        let mut w = writer(
            Arc::clone(&log.shared),
            &store,
            Arc::new(ClickIdGenerator::new(0)),
            100,
        );
        let mut recorded = Vec::new();
        let mut record = |n: usize| {
            for _ in 0..n {
                let e = event(&ids, 1);
                assert!(log.record(e.clone()));
                recorded.push(e);
            }
        };
        record(50);
        // The store goes down: the pass's write fails (twice: the first
        // write, then the retry of its batch), so it keeps what it took
        // and takes nothing more, and segments are not removed.
        store.fail.store(2, Ordering::Relaxed);
        w.pass();
        record(200);
        w.pass();
        assert_eq!(log.depth(), 5, "memory stays bounded");
        assert!(store.clicks().is_empty());
        assert!(counter(&handle, ERRORS) >= 1);
        // Back: the held batch, the buffers, then the journal's backlog.
        w.pass();
        let stored = store.clicks();
        assert_eq!(stored.len(), recorded.len(), "nothing twice");
        assert!(id_set(&stored) == id_set(&recorded), "nothing lost");
        assert_eq!(counter(&handle, DROPPED), 0);
        assert_eq!(counter(&handle, WRITTEN), 250);
        assert!(segment_files(&journal).is_empty());
        drop(w);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_clean_shutdown_writes_the_clicks_kept_in_the_journal_too() {
        let dir = crate::testing::scratch("overflow-shutdown");
        let journal = dir.join("journal");
        let (store, _writes) = MemStore::new(0);
        let ids = ClickIdGenerator::new(0);
        let (metrics, handle) = local_metrics();
        let mut cfg = config(8, 100, NEVER);
        cfg.segment_bytes = 4096;
        let log = ClickLog::start(
            Arc::clone(&store) as Arc<dyn ClickStore>,
            Arc::new(ClickIdGenerator::new(0)),
            cfg,
            metrics,
            Some(&journal),
        )
        .expect("start");
        let recorded: Vec<ClickEvent> = (0..1000).map(|_| event(&ids, 1)).collect();
        for e in &recorded {
            assert!(log.record(e.clone()));
        }
        assert_eq!(counter(&handle, OVERFLOWED), 996, "a shard holds 4 of 8");
        log.shutdown();
        let stored = store.clicks();
        assert_eq!(stored.len(), recorded.len(), "nothing twice");
        assert!(id_set(&stored) == id_set(&recorded), "nothing lost");
        assert_eq!(counter(&handle, DROPPED), 0);
        assert!(segment_files(&journal).is_empty());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn segments_go_once_their_clicks_are_written_and_a_clean_shutdown_leaves_none() {
        let dir = crate::testing::scratch("retire");
        let journal = dir.join("journal");
        let (store, _writes) = MemStore::new(0);
        let ids = ClickIdGenerator::new(0);
        let (metrics, handle) = local_metrics();
        let mut cfg = config(1 << 16, 100, NEVER);
        cfg.segment_bytes = 4096;
        let log = ClickLog::start(
            Arc::clone(&store) as Arc<dyn ClickStore>,
            Arc::new(ClickIdGenerator::new(0)),
            cfg,
            metrics,
            Some(&journal),
        )
        .expect("start");
        for _ in 0..1000 {
            assert!(log.record(event(&ids, 1)));
        }
        assert!(segment_files(&journal).len() > 10);
        log.shutdown();
        assert_eq!(store.clicks().len(), 1000);
        assert!(segment_files(&journal).is_empty());
        assert_eq!(counter(&handle, JOURNAL_ERRORS), 0);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_pass_removes_the_segments_it_wrote_and_keeps_the_one_in_use() {
        let dir = crate::testing::scratch("pass");
        let journal = dir.join("journal");
        let (store, _writes) = MemStore::new(0);
        let ids = ClickIdGenerator::new(0);
        let (metrics, _handle) = local_metrics();
        let log = unwritten_log(&journal, 4096, Arc::clone(&metrics));
        let mut w = writer(
            Arc::clone(&log.shared),
            &store,
            Arc::new(ClickIdGenerator::new(0)),
            100,
        );
        for _ in 0..300 {
            assert!(log.record(event(&ids, 1)));
        }
        let before = segment_files(&journal).len();
        w.pass();
        assert_eq!(store.clicks().len(), 300);
        assert_eq!(segment_files(&journal).len(), 1, "of {before}");
        log.shared.prepare_segments();
        assert_eq!(segment_files(&journal).len(), 2, "and a spare");
        log.shared.sync_journal();
        drop(w);
        std::fs::remove_dir_all(&dir).ok();
    }
}
