//! The accept loop: HTTP/1.1 on hyper with the limits a server exposed to strangers needs, which
//! `axum::serve` does not offer.
//!
//! - **A cap on open connections** (a semaphore): past it, new connections wait in the kernel's backlog
//!   instead of taking the file descriptors the server needs for its downloads and its database.
//! - **A header-read timeout** that also bounds how long a kept-alive connection may sit idle: a client that
//!   trickles its headers a byte at a time, or opens connections and says nothing, is closed after it.
//! - **Graceful shutdown with a bound**: on the stop signal no new connection is accepted, open ones finish
//!   their current request, and whatever still runs after the grace period (an event stream) is dropped.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How many connections one listener keeps open and how long a client may take to send a request's headers.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    /// From the connection's start or the end of its last response to the last byte of the next request's
    /// headers.
    pub header_timeout: Duration,
    /// How long open connections get to finish when the server stops.
    pub shutdown_grace: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self { max_connections: 1024, header_timeout: Duration::from_secs(10), shutdown_grace: Duration::from_secs(5) }
    }
}

impl ConnectionLimits {
    /// The default, with the connection cap kept under the process's file descriptor limit (a quarter of it is
    /// left for downloads, the database and the media tools).
    pub fn for_fd_limit(fd_limit: Option<u64>) -> Self {
        let mut limits = Self::default();
        if let Some(fds) = fd_limit {
            let usable = usize::try_from(fds - fds / 4).unwrap_or(usize::MAX);
            limits.max_connections = limits.max_connections.min(usable).max(16);
        }
        limits
    }
}

/// Serves `router` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let stopping = CancellationToken::new();
    let connections = TaskTracker::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => permit.map_err(std::io::Error::other)?,
            () = &mut shutdown => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of file descriptors, or a connection reset before it was accepted: wait a moment
                // rather than spin, and go on.
                tracing::warn!(%error, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let stopping = stopping.clone();
        connections.spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
            let connection = builder.serve_connection(TokioIo::new(stream), service).with_upgrades();
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                () = stopping.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
            drop(permit);
        });
    }
    stopping.cancel();
    connections.close();
    if tokio::time::timeout(limits.shutdown_grace, connections.wait()).await.is_err() {
        tracing::info!("connections still open after the grace period were dropped");
    }
    Ok(())
}
