//! Bulk link jobs (placeholder until the job runner lands).

use std::sync::Arc;

use axum::Router;

use crate::server::App;

/// The jobs routes.
pub(super) fn routes() -> Router<Arc<App>> {
    Router::new()
}

/// Resumes jobs interrupted by a restart.
pub fn resume_jobs(_app: Arc<App>) {}
