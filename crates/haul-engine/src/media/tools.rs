//! Finding yt-dlp, ffmpeg and ffprobe: given by the caller or looked up in the search path it passes (the
//! binary passes `PATH`), once at start-up.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use super::cache::PageCache;
use crate::destination::DestinationPolicy;

/// A program the caller named that is not there.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: no such executable file", path.display())]
pub struct NotExecutable {
    /// `yt-dlp` or `ffmpeg`.
    pub program: &'static str,
    pub path: PathBuf,
}

/// The media programs this server can run; a missing one disables only what needs it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MediaTools {
    pub yt_dlp: Option<PathBuf>,
    pub ffmpeg: Option<PathBuf>,
    pub ffprobe: Option<PathBuf>,
    /// Where yt-dlp may connect; when it refuses anything, yt-dlp runs behind a loopback proxy that applies
    /// it. The service sets it from its HTTP client's policy.
    pub destinations: DestinationPolicy,
    /// Recent page readings, handed out again for the same page and access (clones share them).
    pub pages: PageCache,
}

impl MediaTools {
    /// The given paths (which must exist) or, for those not given, the programs in `search_path` (a list like
    /// `PATH`'s). ffprobe is looked for beside ffmpeg first.
    pub fn discover(
        yt_dlp: Option<PathBuf>,
        ffmpeg: Option<PathBuf>,
        search_path: Option<&OsStr>,
    ) -> Result<Self, NotExecutable> {
        let given = |path: Option<PathBuf>, program: &'static str| match path {
            Some(path) if is_executable(&path) => Ok(Some(path)),
            Some(path) => Err(NotExecutable { program, path }),
            None => Ok(None),
        };
        let on_path = |name: &str| {
            std::env::split_paths(search_path?).map(|dir| dir.join(name)).find(|candidate| is_executable(candidate))
        };
        let yt_dlp = given(yt_dlp, "yt-dlp")?.or_else(|| on_path("yt-dlp"));
        let ffmpeg = given(ffmpeg, "ffmpeg")?.or_else(|| on_path("ffmpeg"));
        let beside = ffmpeg.as_deref().and_then(Path::parent).map(|dir| dir.join("ffprobe"));
        let ffprobe = beside.filter(|path| is_executable(path)).or_else(|| on_path("ffprobe"));
        Ok(Self { yt_dlp, ffmpeg, ffprobe, destinations: DestinationPolicy::allow_all(), pages: PageCache::default() })
    }

    /// No media tools at all: media jobs fail with a clear error, file jobs work.
    pub fn none() -> Self {
        Self::default()
    }

    /// yt-dlp, or why there is none and how to get it.
    pub fn yt_dlp(&self) -> Result<&Path, String> {
        found(&self.yt_dlp, "yt-dlp", "pip install yt-dlp")
    }

    /// ffmpeg, or why there is none and how to get it.
    pub fn ffmpeg(&self) -> Result<&Path, String> {
        found(&self.ffmpeg, "ffmpeg", "apt-get install ffmpeg")
    }

    /// ffprobe, or why there is none and how to get it (it comes with ffmpeg and is looked for beside it).
    pub fn ffprobe(&self) -> Result<&Path, String> {
        found(&self.ffprobe, "ffprobe", "apt-get install ffmpeg")
    }

    /// One line for the start-up banner: what was found where, and what is missing without a program.
    pub fn describe(&self) -> String {
        let one = |name: &str, path: &Option<PathBuf>| match path {
            Some(path) => format!("{name} {}", path.display()),
            None => format!("{name} not found"),
        };
        let mut line =
            [one("yt-dlp", &self.yt_dlp), one("ffmpeg", &self.ffmpeg), one("ffprobe", &self.ffprobe)].join(", ");
        if self.yt_dlp.is_none() {
            line.push_str(" (media pages are downloaded as plain files)");
        } else if self.ffmpeg.is_none() {
            line.push_str(" (no merging, audio or thumbnails from frames)");
        }
        line
    }
}

fn found<'a>(path: &'a Option<PathBuf>, name: &str, install: &str) -> Result<&'a Path, String> {
    path.as_deref()
        .ok_or_else(|| format!("{name} was not found on this machine; install it ({install}) and restart haul"))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}
