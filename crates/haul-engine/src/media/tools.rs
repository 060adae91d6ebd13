//! Finding yt-dlp, ffmpeg and ffprobe: given on the command line or looked up on PATH, once at start-up.

use std::path::{Path, PathBuf};

/// The media programs this server can run; a missing one disables only what needs it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MediaTools {
    pub yt_dlp: Option<PathBuf>,
    pub ffmpeg: Option<PathBuf>,
    pub ffprobe: Option<PathBuf>,
}

impl MediaTools {
    /// The given paths (which must exist) or, for those not given, the programs on PATH. ffprobe is looked for
    /// beside ffmpeg first.
    pub fn discover(yt_dlp: Option<PathBuf>, ffmpeg: Option<PathBuf>) -> Result<Self, String> {
        let given = |path: Option<PathBuf>, flag: &str| match path {
            Some(path) if is_executable(&path) => Ok(Some(path)),
            Some(path) => Err(format!("{flag} {}: no such executable file", path.display())),
            None => Ok(None),
        };
        let yt_dlp = given(yt_dlp, "--yt-dlp")?.or_else(|| on_path("yt-dlp"));
        let ffmpeg = given(ffmpeg, "--ffmpeg")?.or_else(|| on_path("ffmpeg"));
        let beside = ffmpeg.as_deref().and_then(Path::parent).map(|dir| dir.join("ffprobe"));
        let ffprobe = beside.filter(|path| is_executable(path)).or_else(|| on_path("ffprobe"));
        Ok(Self { yt_dlp, ffmpeg, ffprobe })
    }

    /// No media tools at all: media jobs fail with a clear error, file jobs work.
    pub fn none() -> Self {
        Self::default()
    }

    /// yt-dlp, or why there is none and how to get it.
    pub fn yt_dlp(&self) -> Result<&Path, String> {
        found(&self.yt_dlp, "yt-dlp", "pip install yt-dlp", "--yt-dlp PATH")
    }

    /// ffmpeg, or why there is none and how to get it.
    pub fn ffmpeg(&self) -> Result<&Path, String> {
        found(&self.ffmpeg, "ffmpeg", "apt-get install ffmpeg", "--ffmpeg PATH")
    }

    /// ffprobe, or why there is none and how to get it (it comes with ffmpeg and is looked for beside it).
    pub fn ffprobe(&self) -> Result<&Path, String> {
        found(&self.ffprobe, "ffprobe", "apt-get install ffmpeg", "--ffmpeg PATH with ffprobe beside it")
    }

    /// One line for the start-up banner: what was found where.
    pub fn describe(&self) -> String {
        let one = |name: &str, path: &Option<PathBuf>| match path {
            Some(path) => format!("{name} {}", path.display()),
            None => format!("{name} not found"),
        };
        let mut line =
            [one("yt-dlp", &self.yt_dlp), one("ffmpeg", &self.ffmpeg), one("ffprobe", &self.ffprobe)].join(", ");
        if self.yt_dlp.is_none() {
            line.push_str(" (media pages are downloaded as plain files; --yt-dlp PATH)");
        } else if self.ffmpeg.is_none() {
            line.push_str(" (no merging, audio or thumbnails from frames; --ffmpeg PATH)");
        }
        line
    }
}

fn found<'a>(path: &'a Option<PathBuf>, name: &str, install: &str, flag: &str) -> Result<&'a Path, String> {
    path.as_deref().ok_or_else(|| {
        format!("{name} was not found on this server: install it ({install}) and restart haul serve, or start it with {flag}")
    })
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}
