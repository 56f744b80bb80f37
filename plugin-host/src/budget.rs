//! Plugin calls within a time budget: each call runs on a worker thread of
//! a small pool while the caller waits at most the budget for its answer.
//!
//! Plugin code runs in this process and a thread cannot be stopped from the
//! outside, so a call past its budget is *abandoned*, not cancelled: its
//! worker stays with it (forever, for a plugin that never returns) and the
//! caller gets [`Overrun`] at once. The host then quarantines the provider
//! (see `Instance::quarantine`), so one hanging plugin holds at most the
//! workers of the calls already running when it overran, never one more per
//! request. Idle workers exit after [`IDLE`]; a busy one is never reused
//! until its call returns.

use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// How long an idle worker waits for another call before it exits.
const IDLE: Duration = Duration::from_secs(60);

type Job = Box<dyn FnOnce() + Send>;

/// The idle workers, each by its id and the sender of its job channel.
#[derive(Debug, Default)]
struct Pool {
    idle: Mutex<Vec<(u64, mpsc::Sender<Job>)>>,
    next_id: std::sync::atomic::AtomicU64,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(Pool::default)
}

/// A call did not answer within its budget (it may still be running).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overrun {
    /// The budget ran out.
    TimedOut,
    /// No worker thread could be started, or the worker died without an
    /// answer.
    NoWorker,
}

/// Runs `f` on a worker thread and waits at most `budget` for its result.
pub fn run<T: Send + 'static>(
    budget: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Overrun> {
    let (answer, result) = mpsc::sync_channel(1);
    spawn(move || {
        // The caller may have given up: then nobody reads the answer.
        let _ = answer.send(f());
    })?;
    result.recv_timeout(budget).map_err(|e| match e {
        mpsc::RecvTimeoutError::Timeout => Overrun::TimedOut,
        mpsc::RecvTimeoutError::Disconnected => Overrun::NoWorker,
    })
}

/// Hands `job` to an idle worker, or to a new one: the caller watches the
/// job's progress itself (see `Providers::build_many`).
pub fn spawn(job: impl FnOnce() + Send + 'static) -> Result<(), Overrun> {
    let mut job: Job = Box::new(job);
    loop {
        let worker = pool().idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match worker {
            Some((_, sender)) => match sender.send(job) {
                Ok(()) => break,
                // That worker has exited: try another.
                Err(mpsc::SendError(back)) => job = back,
            },
            None => {
                spawn_worker(job).map_err(|_| Overrun::NoWorker)?;
                break;
            }
        }
    }
    Ok(())
}

/// Starts a worker with its first job; after each job it offers itself to
/// the pool again, and exits after [`IDLE`] without work.
fn spawn_worker(first: Job) -> std::io::Result<()> {
    let id = pool()
        .next_id
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (sender, jobs) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("plugin-call".to_owned())
        .spawn(move || {
            first();
            loop {
                pool()
                    .idle
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((id, sender.clone()));
                let job = match jobs.recv_timeout(IDLE) {
                    Ok(job) => job,
                    Err(_) => {
                        let mut idle = pool().idle.lock().unwrap_or_else(|p| p.into_inner());
                        match idle.iter().position(|(i, _)| *i == id) {
                            Some(at) => {
                                idle.swap_remove(at);
                                return;
                            }
                            // A caller took this worker just now: its job
                            // is on the way.
                            None => {
                                drop(idle);
                                match jobs.recv() {
                                    Ok(job) => job,
                                    Err(_) => return,
                                }
                            }
                        }
                    }
                };
                job();
            }
        })
        .map(drop)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_call_within_its_budget_answers() {
        assert_eq!(run(Duration::from_secs(5), || 6 * 7), Ok(42));
    }

    #[test]
    fn a_call_past_its_budget_is_abandoned_and_the_caller_answered() {
        let (release, wait) = mpsc::channel::<()>();
        let started = std::time::Instant::now();
        let outcome = run(Duration::from_millis(50), move || {
            // Blocks until the test lets it go: a plugin that hangs.
            let _ = wait.recv();
            1
        });
        assert_eq!(outcome, Err(Overrun::TimedOut));
        assert!(started.elapsed() < Duration::from_secs(5));
        // The pool still serves other calls meanwhile, on another worker.
        assert_eq!(run(Duration::from_secs(5), || 2), Ok(2));
        drop(release);
    }

    #[test]
    fn workers_are_reused() {
        let first = run(Duration::from_secs(5), || std::thread::current().id()).unwrap();
        let mut same = false;
        for _ in 0..20 {
            same |= run(Duration::from_secs(5), || std::thread::current().id()).unwrap() == first;
        }
        // Tests run in parallel and share the pool, so only "at least once".
        assert!(same, "no call ran on a worker used before");
    }
}
