//! Retrying outbound calls, owned once: a bounded number of retries of
//! transient failures with doubling backoff (at least as long as a server's
//! `Retry-After`), each retry logged. Used by short-link expansion, the Awin
//! pull and bulk-job webhooks.

use std::time::Duration;

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Retries after the first attempt (0: one attempt only).
    pub retries: u32,
    /// The wait before the first retry; it doubles before each next one.
    pub first: Duration,
}

impl Backoff {
    /// The wait before retry number `retry + 1`: `first × 2^retry`, the
    /// doubling stopping at 2^16, saturating.
    pub fn delay(&self, retry: u32) -> Duration {
        self.first.saturating_mul(1u32 << retry.min(16))
    }
}

/// Every attempt failed transiently: the last reason and how many attempts
/// were made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exhausted {
    /// The last attempt's reason.
    pub reason: String,
    /// Attempts made.
    pub attempts: u32,
}

impl std::fmt::Display for Exhausted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.attempts;
        write!(
            f,
            "{} ({n} attempt{})",
            self.reason,
            if n == 1 { "" } else { "s" }
        )
    }
}

/// The retries of one call: after each transient failure,
/// [`Retries::failed`] waits before the next attempt, or says the call has
/// run out of retries. A loop owns the attempts (so an attempt may borrow
/// anything), this owns the policy:
///
/// ```ignore
/// let mut retries = Retries::new(backoff, "short-link expansion");
/// loop {
///     match attempt().await {
///         Ok(v) => return Ok(v),
///         Err(Transient(reason)) => retries.failed(reason, None).await?,
///         Err(Final(e)) => return Err(e),
///     }
/// }
/// ```
#[derive(Debug)]
pub struct Retries {
    backoff: Backoff,
    what: &'static str,
    made: u32,
}

impl Retries {
    /// No attempt made yet; `what` names the call in the log.
    pub fn new(backoff: Backoff, what: &'static str) -> Retries {
        Retries {
            backoff,
            what,
            made: 0,
        }
    }

    /// Whether a retry may still follow the attempt that just failed
    /// (before [`Retries::failed`] is told of it).
    pub fn left(&self) -> bool {
        self.made < self.backoff.retries
    }

    /// An attempt failed transiently for `reason` (and the server asked to
    /// wait `after`): waits `first × 2^retry`, at least `after`, and returns
    /// for the next attempt; or, when the retries are used up, returns why.
    pub async fn failed(
        &mut self,
        reason: String,
        after: Option<Duration>,
    ) -> Result<(), Exhausted> {
        let retry = self.made;
        self.made = self.made.saturating_add(1);
        if retry >= self.backoff.retries {
            return Err(Exhausted {
                reason,
                attempts: self.made,
            });
        }
        let delay = self.backoff.delay(retry);
        let delay = after.map_or(delay, |a| a.max(delay));
        tracing::warn!(
            call = self.what,
            attempt = self.made,
            retries = self.backoff.retries,
            retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            reason = %reason,
            "outbound call failed, retrying"
        );
        tokio::time::sleep(delay).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUICK: Backoff = Backoff {
        retries: 2,
        first: Duration::from_millis(1),
    };

    #[test]
    fn backoff_doubles_and_saturates() {
        let b = Backoff {
            retries: 9,
            first: Duration::from_millis(200),
        };
        assert_eq!(b.delay(0), Duration::from_millis(200));
        assert_eq!(b.delay(1), Duration::from_millis(400));
        assert_eq!(b.delay(2), Duration::from_millis(800));
        assert_eq!(b.delay(16), b.first * 65_536);
        assert_eq!(b.delay(40), b.first * 65_536, "the doubling stops");
        let huge = Backoff {
            retries: 1,
            first: Duration::MAX,
        };
        assert_eq!(huge.delay(3), Duration::MAX);
    }

    /// Attempts made until one succeeds (`Ok`) or the retries run out.
    async fn run(backoff: Backoff, outcomes: &[Option<Duration>]) -> Result<usize, Exhausted> {
        let mut retries = Retries::new(backoff, "test");
        for (n, after) in outcomes.iter().enumerate() {
            match after {
                None => return Ok(n + 1),
                Some(after) => retries.failed(format!("down {n}"), Some(*after)).await?,
            }
        }
        Ok(outcomes.len())
    }

    #[tokio::test]
    async fn transient_failures_are_retried_until_one_succeeds() {
        let zero = Some(Duration::ZERO);
        assert_eq!(run(QUICK, &[zero, zero, None]).await, Ok(3));
    }

    #[tokio::test]
    async fn retries_stop_at_the_bound_with_the_last_reason() {
        let zero = Some(Duration::ZERO);
        let e = run(QUICK, &[zero, zero, zero, None]).await;
        let e = e.expect_err("out of retries");
        assert_eq!(
            e,
            Exhausted {
                reason: "down 2".into(),
                attempts: 3
            }
        );
        assert_eq!(e.to_string(), "down 2 (3 attempts)");
        let once = Backoff {
            retries: 0,
            ..QUICK
        };
        let e = run(once, &[zero]).await.expect_err("no retry");
        assert_eq!(e.to_string(), "down 0 (1 attempt)");
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_waits_the_backoff_or_the_servers_retry_after_if_longer() {
        let started = tokio::time::Instant::now();
        let mut retries = Retries::new(QUICK, "test");
        retries.failed("a".into(), None).await.expect("retry");
        assert_eq!(started.elapsed(), Duration::from_millis(1));
        retries
            .failed("b".into(), Some(Duration::from_secs(3)))
            .await
            .expect("retry");
        assert_eq!(started.elapsed(), Duration::from_millis(3001));
    }
}
