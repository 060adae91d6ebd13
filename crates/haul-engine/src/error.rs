//! The one error type at the engine's boundary, with the variants a caller acts on.

use std::path::PathBuf;

/// Why a download did not finish.
///
/// Variants are split by what the caller does next: `Cancelled` means progress was saved and the same
/// download can be resumed; `Network` may succeed later; the others need a changed request or a human.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The request itself is unusable (bad URL, bad header, conflicting options).
    #[error("{0}")]
    InvalidRequest(String),

    /// The server answered with an error status that retrying will not fix (404, 403, 410, ...).
    #[error("{url}: server answered {status}{hint}")]
    Remote { url: String, status: u16, hint: String },

    /// Transient failures (timeouts, resets, cut bodies, 5xx) persisted past the retry budget.
    #[error("{url}: {message} (gave up after {attempts} attempts without progress)")]
    Network { url: String, message: String, attempts: u32 },

    /// The host cannot be reached at all and retrying will not change that: its name does not resolve,
    /// nothing listens on its port, or its TLS certificate is not valid for it.
    #[error("{url}: {message}")]
    Unreachable { url: String, message: String },

    /// The host's TLS certificate is not one this client trusts for it (unknown authority, another host's name,
    /// expired); retrying will not change that.
    #[error(
        "{url}: the TLS certificate of {host} is not valid for it ({reason}); check the URL, or trust the authority that signed it"
    )]
    Certificate { url: String, host: String, reason: String },

    /// The server contradicts itself (lengths or ranges that do not add up); retrying will not help.
    #[error("{url}: {message}")]
    Protocol { url: String, message: String },

    /// Reading or writing a local file failed (full disk, permissions, missing directory).
    #[error("{}: {source}{}", path.display(), io_advice(source))]
    Io { path: PathBuf, source: std::io::Error },

    /// The finished file does not hash to what the user asked for; it was not put in place.
    #[error(
        "checksum mismatch for {path}: expected {algorithm}={expected}, got {actual}; the file was not kept under its final name"
    )]
    ChecksumMismatch { path: PathBuf, algorithm: &'static str, expected: String, actual: String },

    /// A directory the file goes into does not exist and cannot be made; `reason` names what stands in the way
    /// (a file where a directory should be, a directory that is not writable).
    #[error("cannot create the directory {}: {reason}", path.display())]
    CreateDir { path: PathBuf, reason: String },

    /// Another run (another `haul get`, or another job) is downloading the same file right now: its `.part` is
    /// locked. Nothing was touched.
    #[error("another haul is already downloading {}; let it finish, or stop it first", .0.display())]
    InUse(PathBuf),

    /// The destination exists and the caller did not allow replacing it.
    #[error("{0} already exists; choose another name or allow replacing it")]
    AlreadyExists(PathBuf),

    /// The destination is one the server's policy keeps out of reach (loopback, private, link-local, ...).
    #[error(transparent)]
    Refused(#[from] crate::destination::Refused),

    /// A media step failed: yt-dlp could not read the page, no format fits, ffmpeg failed, or a tool is missing.
    /// The message says which and what to do.
    #[error("{0}")]
    Media(String),

    /// The caller stopped the download; completed ranges are saved and a later run resumes them.
    #[error("download paused")]
    Cancelled,
}

/// What a person can do about a local I/O failure; completed ranges are kept, so the advice is to resume.
/// Worded for every caller: the CLI adds its own flags.
fn io_advice(error: &std::io::Error) -> &'static str {
    match error.kind() {
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
            "; free some space, then resume the download"
        }
        std::io::ErrorKind::PermissionDenied => "; the directory is not writable",
        std::io::ErrorKind::NotFound => "; the directory does not exist",
        _ => "",
    }
}

impl EngineError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }

    /// True when the same request may succeed later without any change.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Network { .. } | Self::Cancelled)
    }
}
