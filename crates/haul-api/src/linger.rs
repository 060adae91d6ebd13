//! Reading what a refused request still sends, so its client hears the refusal.
//!
//! A handler that refuses a body (413 for one over [`crate::MAX_JSON_BODY`], judged from `Content-Length` before
//! a byte is read) answers while the client is still writing. hyper then closes a connection whose unread bytes
//! sit in the kernel, the kernel answers them with a reset, and a client still writing loses the answer with the
//! connection: `reqwest` reports "IncompleteMessage", `curl` "Connection reset by peer". Like nginx's lingering
//! close, every request body here is wrapped so that dropping it unfinished hands the rest to a task that reads
//! and discards it (at most [`DRAIN_LIMIT`] bytes within [`DRAIN_TIME`]); the client finishes writing and reads
//! the answer. A body larger than that is not worth the bandwidth: its client sees the reset.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt as _;

/// The most of an unwanted body read to let its client hear the answer.
pub const DRAIN_LIMIT: u64 = 64 * 1024 * 1024;
/// How long an unwanted body may take to arrive.
pub const DRAIN_TIME: Duration = Duration::from_secs(10);

/// Middleware: wraps each request body in a [`Lingering`] one.
pub async fn lingering(request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let declared = body.size_hint().exact();
    if declared == Some(0) || body.is_end_stream() {
        return next.run(Request::from_parts(parts, body)).await;
    }
    next.run(Request::from_parts(parts, Body::new(Lingering { inner: Some(body), read: 0 }))).await
}

/// A request body that, dropped before its end, is read to its end in the background.
struct Lingering {
    inner: Option<Body>,
    read: u64,
}

impl HttpBody for Lingering {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let Some(inner) = self.inner.as_mut() else { return Poll::Ready(None) };
        let polled = Pin::new(inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                let length = frame.data_ref().map_or(0, |data| data.len() as u64);
                self.read += length;
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => self.inner = None,
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(|inner| inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.as_ref().map_or_else(|| SizeHint::with_exact(0), |inner| inner.size_hint())
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        let Some(inner) = self.inner.take() else { return };
        if inner.is_end_stream() {
            return;
        }
        // What is left, when the client said; a body without a length is read up to the same limit.
        let left = inner.size_hint().exact().map(|total| total.saturating_sub(self.read));
        if left.is_some_and(|left| left > DRAIN_LIMIT) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        runtime.spawn(async move {
            let _ = tokio::time::timeout(DRAIN_TIME, drain(inner)).await;
        });
    }
}

/// Reads and discards `body` up to [`DRAIN_LIMIT`] bytes.
async fn drain(mut body: Body) {
    let mut read = 0u64;
    while let Some(Ok(frame)) = body.frame().await {
        read += frame.data_ref().map_or(0, |data| data.len() as u64);
        if read > DRAIN_LIMIT {
            return;
        }
    }
}
