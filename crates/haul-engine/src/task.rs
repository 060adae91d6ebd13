//! One way to start a background task: inside a tracing span, with its failure logged there, so that nothing
//! fails silently in a detached task.

use std::fmt::Display;
use std::future::Future;

use tokio::task::JoinHandle;
use tracing::Instrument as _;

/// What a task ends with: nothing, or a result whose error is worth a log line.
pub trait TaskOutcome {
    fn log(self);
}

impl TaskOutcome for () {
    fn log(self) {}
}

impl<E: Display> TaskOutcome for Result<(), E> {
    fn log(self) {
        if let Err(error) = self {
            tracing::warn!(%error, "task failed");
        }
    }
}

/// Spawns `future` on the runtime in `span`; an error it returns is logged in that span.
pub fn spawn<F>(span: tracing::Span, future: F) -> JoinHandle<()>
where
    F: Future + Send + 'static,
    F::Output: TaskOutcome,
{
    tokio::spawn(async move { future.await.log() }.instrument(span))
}

/// An error and its causes on one line (`cannot open x: permission denied`), for logs.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Wrappers often repeat their cause in their own message.
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot open the store")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn chains_name_every_cause_once() {
        let error = Outer(std::io::Error::other("permission denied"));
        assert_eq!(chain(&error), "cannot open the store: permission denied");
        let repeated = std::io::Error::other(Outer(std::io::Error::other("x")));
        assert_eq!(chain(&repeated), "cannot open the store: x");
    }
}
