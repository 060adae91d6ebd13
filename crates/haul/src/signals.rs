//! The one way the binary waits for a person (Ctrl-C) or a service manager (SIGTERM) to ask it to stop.

/// Resolves on the first Ctrl-C (SIGINT) or SIGTERM.
///
/// Each handler is installed when this future is first polled; from then on the signal no longer ends the
/// process by itself, so callers poll it before the work they want to stop cleanly. A handler that cannot be
/// installed is logged and left out: that signal then keeps its default effect of ending the process at once,
/// which is the best that can be done without it, and the other one still works.
pub async fn interrupted() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for Ctrl-C; it will end haul without saving progress");
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = interrupt => {}
        () = terminated() => {}
    }
}

/// Resolves on SIGTERM; never where it cannot be listened for.
#[cfg(unix)]
async fn terminated() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            // `None` means no signal can arrive any more, which is not a request to stop.
            if terminate.recv().await.is_none() {
                std::future::pending::<()>().await;
            }
        }
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGTERM; it will end haul without saving progress");
            std::future::pending::<()>().await;
        }
    }
}

/// Other systems have no SIGTERM; Ctrl-C is the only request to stop.
#[cfg(not(unix))]
async fn terminated() {
    std::future::pending::<()>().await;
}
