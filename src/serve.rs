//! `linkwright serve`: both listeners until SIGTERM or SIGINT.

use std::sync::Arc;

use anyhow::{Context, Result};
use linkwright_core::app::App;
use linkwright_core::config::Config;
use linkwright_core::server::Server;

pub(crate) fn serve(config: Config) -> Result<()> {
    let providers = Arc::new(config.load_providers_probed(crate::probe_command()));
    for r in providers.refused() {
        tracing::warn!(provider = %r.name, reason = %r.error, "provider refused; serving without it");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let app = Arc::new(App::new(&config, providers)?);
        let server = Server::bind(config, app)?;
        println!("public http://{}", server.public_addr());
        println!("admin http://{}", server.admin_addr());
        server.run(shutdown_signal()).await;
        Ok(())
    })
}

/// Resolves on SIGTERM or SIGINT.
pub(crate) async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM; use SIGINT");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
}
