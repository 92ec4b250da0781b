//! What every server of the binary shares: a loopback listener and the shutdown signal (Ctrl-C or
//! SIGTERM).

use tokio::net::TcpListener;

use crate::error::StandinError;

/// Binds `127.0.0.1:port`; port 0 picks a free one.
pub async fn bind_loopback(port: u16) -> Result<TcpListener, StandinError> {
    let addr = format!("127.0.0.1:{port}");
    TcpListener::bind(&addr)
        .await
        .map_err(|source| StandinError::Bind { addr, source })
}

/// Resolves on Ctrl-C, or on SIGTERM where the platform has it.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };

    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for sigterm");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    tokio::select! {
        () = ctrl_c => tracing::info!("ctrl-c received, shutting down"),
        () = terminate => tracing::info!("sigterm received, shutting down"),
    }
}
