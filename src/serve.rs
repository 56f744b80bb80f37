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
        // The handlers are installed before the addresses are printed: a
        // supervisor (or a test) that sends SIGTERM as soon as it reads them
        // gets a clean shutdown, not the default action of the signal.
        let shutdown = shutdown_signal();
        println!("public http://{}", server.public_addr());
        println!("admin http://{}", server.admin_addr());
        server.run(shutdown).await;
        Ok(())
    })
}

/// Installs the SIGTERM and SIGINT handlers now; the future resolves on
/// either signal.
pub(crate) fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received"),
                _ = int.recv() => tracing::info!("SIGINT received"),
            },
            (term, int) => {
                let e = term.err().or(int.err());
                tracing::error!(error = ?e, "cannot listen for SIGTERM and SIGINT; serving until killed");
                std::future::pending::<()>().await;
            }
        }
    }
}
