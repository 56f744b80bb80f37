//! The webhook a job calls when it ends: its summary POSTed with bounded
//! retries; a failure is logged and never changes the job.

use std::sync::OnceLock;

use tracing::{error, info, warn};

use super::{JobSummary, WEBHOOK_BACKOFF, WEBHOOK_RETRIES, WEBHOOK_TIMEOUT};
use crate::retry::{Backoff, Retries};

/// The one webhook client: 5 s connect and overall timeouts, no redirects.
pub(super) fn webhook_client() -> Option<&'static reqwest::Client> {
    static CLIENT: OnceLock<Option<reqwest::Client>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .connect_timeout(WEBHOOK_TIMEOUT)
                .timeout(WEBHOOK_TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("linkwright/", env!("CARGO_PKG_VERSION")))
                .build()
                .inspect_err(|e| error!(error = %e, "cannot build the webhook HTTP client"))
                .ok()
        })
        .as_ref()
}

/// POSTs the job summary to its webhook: retried ([`WEBHOOK_RETRIES`]
/// times, doubling from [`WEBHOOK_BACKOFF`]) on connection errors, timeouts
/// and 5xx. Only logs: a webhook never changes the job.
pub(super) async fn notify(url: &str, summary: &JobSummary) {
    let Some(client) = webhook_client() else {
        return;
    };
    let job_id = summary.job_id.as_str();
    let backoff = Backoff {
        retries: WEBHOOK_RETRIES,
        first: WEBHOOK_BACKOFF,
    };
    let mut retries = Retries::new(backoff, "bulk job webhook");
    loop {
        let reason = match client.post(url).json(summary).send().await {
            Ok(r) if r.status().is_success() => {
                info!(job_id, status = r.status().as_u16(), "webhook delivered");
                crate::metrics::webhook("delivered");
                return;
            }
            Ok(r) if r.status().is_server_error() => format!("answered {}", r.status()),
            Ok(r) => {
                warn!(
                    job_id,
                    status = r.status().as_u16(),
                    "webhook refused; not retried"
                );
                crate::metrics::webhook("refused");
                return;
            }
            Err(e) if e.is_builder() => {
                warn!(job_id, error = %e, "webhook request cannot be built; not retried");
                crate::metrics::webhook("failed");
                return;
            }
            Err(e) => e.to_string(),
        };
        if let Err(gave_up) = retries.failed(reason, None).await {
            warn!(job_id, error = %gave_up, "webhook failed; giving up");
            crate::metrics::webhook("failed");
            return;
        }
    }
}
