//! [`ServiceError`]: why a service call failed, split by what the API answers.

use haul_core::job::JobState;
use haul_store::StoreError;

/// Why a service call failed. Messages are for the client and name no command-line flag: the API shows them
/// as they are, and the CLI adds its own hints.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request is malformed; the message says what to change.
    #[error("{0}")]
    Invalid(String),
    /// A URL whose scheme haul does not fetch.
    #[error("{0}")]
    UnsupportedScheme(String),
    /// A URL whose address the server's destination policy keeps out of reach (loopback, private, ...).
    #[error("{0}")]
    RefusedDestination(String),
    #[error("{0}")]
    NotFound(String),
    /// The download is not in a state that allows this; `current` is the state it is in, and the message
    /// names it.
    #[error("{message}")]
    Conflict { current: JobState, message: String },
    /// The account keeps as many downloads as the server allows; the message says how many.
    #[error("{0}")]
    LimitReached(String),
    /// Something this server cannot do (media work without media tools); the message says what.
    #[error("{0}")]
    Unsupported(String),
    /// The account's archive holds what the add names (a video, or the same version of a file): not downloaded
    /// again unless the add says `force`. The message names the earlier download and how to force it.
    #[error("{message}")]
    AlreadyDownloaded { download: Option<haul_core::job::DownloadId>, message: String },
    /// Something broke inside haul; the source chain is for the log, not for the client.
    #[error("internal error: {0}")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ServiceError {
    pub(crate) fn internal(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Internal(error.into())
    }
}

impl From<StoreError> for ServiceError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(what) => Self::NotFound(format!("{what} not found")),
            StoreError::Conflict { current, message } => Self::Conflict { current, message },
            StoreError::Duplicate(message) => Self::Invalid(message),
            other @ StoreError::Other { .. } => Self::Internal(Box::new(other)),
        }
    }
}
