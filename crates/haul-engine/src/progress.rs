//! Live progress of one download, written by its connections as atomics and read out as a snapshot.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;

/// What a download is doing right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Probing,
    Downloading,
    Verifying,
    Done,
}

const UNKNOWN: u64 = u64::MAX;

/// Shared by the engine (writer) and whoever shows progress (reader). Cheap to read at any rate.
#[derive(Debug)]
pub struct Progress {
    total: AtomicU64,
    done: AtomicU64,
    resumed: AtomicU64,
    speed: AtomicU64,
    connections: AtomicUsize,
    replaced: AtomicU64,
    /// Requests tried again, by [`RetryCause`].
    retries: [AtomicU64; RetryCause::ALL.len()],
    phase: AtomicU8,
    destination: OnceLock<PathBuf>,
    note: Mutex<Option<String>>,
    media: Mutex<MediaFacts>,
    media_changed: AtomicBool,
    /// Whether a stop keeps what was fetched for a later run: false on a host that ignores Range.
    resumable: AtomicBool,
}

/// What a media job has learned about its video so far; each field once known.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MediaFacts {
    pub title: Option<String>,
    /// Seconds.
    pub duration: Option<f64>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// The formats chosen, in yt-dlp's spelling (`v720+a1`).
    pub format: Option<String>,
    /// The thumbnail's file name in the thumbnails directory.
    pub thumbnail: Option<String>,
    /// The subtitle files saved beside the file: language and where.
    pub subtitles: Option<Vec<(String, std::path::PathBuf)>>,
}

/// A consistent-enough read of [`Progress`] at one moment.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ProgressSnapshot {
    /// Size of the file, when the server told it.
    pub total: Option<u64>,
    /// Bytes written to disk and recorded (resumed bytes included).
    pub done: u64,
    /// Of `done`, the bytes an earlier run left that this run kept: the point this run resumed at. Lowered when
    /// the download has to start again below it (a host without Range), so it never counts bytes fetched again.
    pub resumed: u64,
    /// Recent throughput in bytes per second.
    pub speed: u64,
    /// Connections currently transferring.
    pub connections: usize,
    /// Connections dropped for running far below the others, their remainder fetched again on new ones.
    pub replaced_connections: u64,
    /// Requests tried again so far, indexed as [`RetryCause::ALL`].
    pub retries: [u64; RetryCause::ALL.len()],
    pub phase: Phase,
    /// Where the file will be put once complete, known after probing.
    pub destination: Option<PathBuf>,
    /// Whether a stop now keeps what was fetched for a later run: false on a host that ignores Range, where
    /// the next run starts from the beginning.
    pub resumable: bool,
}

impl ProgressSnapshot {
    /// Bytes of the file fetched in this run (`done` less what was resumed): what a rate or an ETA is made of.
    pub fn fetched_this_run(&self) -> u64 {
        self.done.saturating_sub(self.resumed)
    }
}

/// Why a request was tried again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryCause {
    /// The host refused for now: 429 or 503, or the connection was refused.
    Busy,
    /// The connection broke after bytes had come (a reset, a body cut short); asked again at once for the rest.
    Interrupted,
    /// Another failure before any byte came: a network error, a timeout, another 5xx.
    Failed,
}

impl RetryCause {
    pub const ALL: [RetryCause; 3] = [Self::Busy, Self::Interrupted, Self::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Busy => "busy",
            Self::Interrupted => "interrupted",
            Self::Failed => "failed",
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self {
            total: AtomicU64::new(UNKNOWN),
            done: AtomicU64::new(0),
            resumed: AtomicU64::new(0),
            speed: AtomicU64::new(0),
            connections: AtomicUsize::new(0),
            replaced: AtomicU64::new(0),
            retries: Default::default(),
            phase: AtomicU8::new(Phase::Probing as u8),
            destination: OnceLock::new(),
            note: Mutex::new(None),
            media: Mutex::new(MediaFacts::default()),
            media_changed: AtomicBool::new(false),
            resumable: AtomicBool::new(true),
        }
    }
}

impl Progress {
    pub fn snapshot(&self) -> ProgressSnapshot {
        let total = self.total.load(Ordering::Relaxed);
        ProgressSnapshot {
            total: (total != UNKNOWN).then_some(total),
            done: self.done.load(Ordering::Relaxed),
            resumed: self.resumed.load(Ordering::Relaxed),
            speed: self.speed.load(Ordering::Relaxed),
            connections: self.connections.load(Ordering::Relaxed),
            replaced_connections: self.replaced.load(Ordering::Relaxed),
            retries: std::array::from_fn(|i| self.retries[i].load(Ordering::Relaxed)),
            phase: match self.phase.load(Ordering::Relaxed) {
                0 => Phase::Probing,
                1 => Phase::Downloading,
                2 => Phase::Verifying,
                _ => Phase::Done,
            },
            destination: self.destination.get().cloned(),
            resumable: self.resumable.load(Ordering::Relaxed),
        }
    }

    /// Whether a stop keeps what was fetched (the host takes Range); set once the probe knows.
    pub(crate) fn set_resumable(&self, resumable: bool) {
        self.resumable.store(resumable, Ordering::Relaxed);
    }

    /// The last notable event (a restart, a lowered connection count), for a human to read.
    pub fn take_note(&self) -> Option<String> {
        self.note.lock().take()
    }

    pub(crate) fn note(&self, text: String) {
        *self.note.lock() = Some(text);
    }

    pub(crate) fn set_total(&self, total: Option<u64>) {
        self.total.store(total.unwrap_or(UNKNOWN), Ordering::Relaxed);
    }

    /// A run starts (or starts over) with `kept` bytes from an earlier run already done.
    pub(crate) fn begin_run(&self, kept: u64) {
        self.resumed.store(kept, Ordering::Relaxed);
        self.done.store(kept, Ordering::Relaxed);
    }

    pub(crate) fn set_done(&self, done: u64) {
        // Going back below where the run resumed (the host sent the file from zero again) means those earlier
        // bytes are being fetched again, not resumed.
        self.resumed.fetch_min(done, Ordering::Relaxed);
        self.done.store(done, Ordering::Relaxed);
    }

    pub(crate) fn add_done(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn set_speed(&self, bytes_per_second: u64) {
        self.speed.store(bytes_per_second, Ordering::Relaxed);
    }

    pub(crate) fn set_connections(&self, n: usize) {
        self.connections.store(n, Ordering::Relaxed);
    }

    pub(crate) fn count_replaced_connection(&self) {
        self.replaced.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_retry(&self, cause: RetryCause) {
        self.retries[cause as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Relaxed);
    }

    pub(crate) fn set_destination(&self, path: PathBuf) {
        let _ = self.destination.set(path);
    }

    /// What a media job knows now, for whoever reports it (the service writes it to the store).
    pub(crate) fn set_media(&self, facts: MediaFacts) {
        *self.media.lock() = facts;
        self.media_changed.store(true, Ordering::Release);
    }

    /// The media facts as they are now.
    pub fn media(&self) -> MediaFacts {
        self.media.lock().clone()
    }

    /// The media facts, if they changed since the last call.
    pub fn take_media_change(&self) -> Option<MediaFacts> {
        self.media_changed.swap(false, Ordering::AcqRel).then(|| self.media.lock().clone())
    }
}
