//! Tells the service manager (systemd, `Type=notify`) when the server is
//! ready and when it begins to stop: `READY=1` once both listeners accept
//! connections and the store is open, `STOPPING=1` when it stops accepting
//! and drains. A datagram to `$NOTIFY_SOCKET` through the `sd-notify` crate;
//! nothing at all when the variable is unset (not started by systemd).

use sd_notify::NotifyState;
use tracing::warn;

/// Both listeners are bound and accepting, the store is open.
pub(super) fn ready() {
    send(&[NotifyState::Ready, NotifyState::Status("serving")]);
}

/// Shutdown began: no new connections, in-flight requests drain.
pub(super) fn stopping() {
    send(&[
        NotifyState::Stopping,
        NotifyState::Status("draining connections"),
    ]);
}

fn send(states: &[NotifyState<'_>]) {
    // A service manager that cannot be told is not a reason to stop
    // serving: with `Type=notify` it times the start out on its own.
    if let Err(e) = sd_notify::notify(states) {
        warn!(error = %e, "cannot notify the service manager ($NOTIFY_SOCKET)");
    }
}
