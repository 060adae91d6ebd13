//! What haul asks of yt-dlp: a page's video described as JSON (`-J`), and, for formats haul's engine does not
//! fetch itself (HLS, DASH fragments), the download.

use std::path::Path;
use std::time::Duration;

use haul_core::media::MediaInfo;
use tokio_util::sync::CancellationToken;

use super::MediaTools;
use super::process::{Finished, command, run};
use super::proxy::GuardProxy;
use crate::error::EngineError;

/// How long reading a page may take before haul gives up on it.
const EXTRACT_TIMEOUT: Duration = Duration::from_secs(120);

/// The page's video as yt-dlp understands it; `Media` when yt-dlp cannot read the page.
pub(crate) async fn extract(
    tools: &MediaTools,
    url: &str,
    access: Access<'_>,
    cancel: &CancellationToken,
) -> Result<MediaInfo, EngineError> {
    let mut cmd = command(tools.yt_dlp().map_err(EngineError::Media)?);
    cmd.args(["-J", "--no-playlist", "--no-warnings", "--no-progress", "--ignore-config"]);
    let proxy = guard(tools, &mut cmd).await?;
    let _jar = access.pass(&mut cmd)?;
    cmd.arg("--").arg(url);
    let timeout = cancel.child_token();
    let reading = run(cmd, "yt-dlp (reading the page)", true, &timeout, |_| {});
    let finished = tokio::select! {
        finished = reading => refused_first(finished, proxy.as_ref())?,
        _ = tokio::time::sleep(EXTRACT_TIMEOUT) => {
            timeout.cancel();
            return Err(EngineError::Media(format!(
                "yt-dlp took over {} s to read {url}; try again later", EXTRACT_TIMEOUT.as_secs()
            )));
        }
    };
    serde_json::from_str(&finished.stdout)
        .map_err(|error| EngineError::Media(format!("yt-dlp described {url} in a way haul cannot read: {error}")))
}

/// What yt-dlp's downloader reports, from the progress template below.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Report {
    pub(crate) downloaded: u64,
    pub(crate) total: Option<u64>,
    pub(crate) speed: u64,
}

const PROGRESS_TEMPLATE: &str = "download:haul-progress %(progress.downloaded_bytes)s %(progress.total_bytes)s \
                                 %(progress.total_bytes_estimate)s %(progress.speed)s";

fn parse_report(line: &str) -> Option<Report> {
    let mut fields = line.strip_prefix("haul-progress ")?.split_whitespace();
    let number =
        |text: Option<&str>| text.and_then(|text| text.parse::<f64>().ok()).filter(|n| n.is_finite() && *n >= 0.0);
    let downloaded = number(fields.next())? as u64;
    let total = number(fields.next()).or(number(fields.next())).map(|n| n as u64);
    let speed = number(fields.next()).unwrap_or(0.0) as u64;
    Some(Report { downloaded, total, speed })
}

/// Downloads formats `spec` of `url` into `dir` as `media.EXT` with yt-dlp's own downloader (merging with
/// ffmpeg when the spec joins two formats), continuing from what an earlier, stopped run left in `dir`.
/// Returns the file it made.
pub(crate) async fn download(
    tools: &MediaTools,
    url: &str,
    spec: &str,
    access: Access<'_>,
    dir: &Path,
    cancel: &CancellationToken,
    mut on_report: impl FnMut(Report),
) -> Result<std::path::PathBuf, EngineError> {
    let mut cmd = command(tools.yt_dlp().map_err(EngineError::Media)?);
    let proxy = guard(tools, &mut cmd).await?;
    cmd.args(["--no-playlist", "--no-warnings", "--ignore-config", "--newline", "--continue", "--no-mtime"])
        .args(["--progress-template", PROGRESS_TEMPLATE, "-f", spec, "--merge-output-format", "mp4"])
        .arg("-P")
        .arg(dir)
        .args(["-o", "media.%(ext)s"]);
    if let Ok(ffmpeg) = tools.ffmpeg() {
        cmd.arg("--ffmpeg-location").arg(ffmpeg);
    }
    let _jar = access.pass(&mut cmd)?;
    cmd.arg("--").arg(url);
    let finished = run(cmd, "yt-dlp (downloading)", false, cancel, |line| {
        if let Some(report) = parse_report(line) {
            on_report(report);
        }
    })
    .await;
    refused_first(finished, proxy.as_ref())?;
    finished_file(dir)
}

/// What yt-dlp sends to the page: the job's headers and the user's cookies.txt.
#[derive(Clone, Copy)]
pub(crate) struct Access<'a> {
    pub(crate) headers: &'a [(String, String)],
    pub(crate) cookies: Option<&'a Path>,
}

impl Access<'_> {
    /// `--add-headers` and `--cookies` on `cmd`; the copy of the cookies lives as long as the value returned.
    fn pass(self, cmd: &mut tokio::process::Command) -> Result<Option<CookieJar>, EngineError> {
        for (name, value) in self.headers {
            cmd.arg("--add-headers").arg(format!("{name}:{value}"));
        }
        CookieJar::pass(self.cookies, cmd)
    }
}

/// A private copy of the user's cookies.txt for one yt-dlp run: yt-dlp writes its cookie jar back when it
/// exits, and the user's file is theirs. Removed when dropped.
struct CookieJar {
    path: std::path::PathBuf,
}

impl CookieJar {
    /// `--cookies COPY` on `cmd` when there are cookies to send.
    fn pass(cookies: Option<&Path>, cmd: &mut tokio::process::Command) -> Result<Option<Self>, EngineError> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let Some(cookies) = cookies else { return Ok(None) };
        let text = std::fs::read(cookies).map_err(|error| {
            EngineError::Media(format!("cannot read the cookies file {}: {error}", cookies.display()))
        })?;
        let path = std::env::temp_dir().join(format!("haul-cookies-{}.txt", uuid::Uuid::new_v4()));
        let jar = Self { path };
        // Only this user may read it, as the cookies are a login.
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&jar.path)
            .and_then(|mut file| file.write_all(&text))
            .map_err(|error| EngineError::Media(format!("cannot copy the cookies for yt-dlp: {error}")))?;
        cmd.arg("--cookies").arg(&jar.path);
        Ok(Some(jar))
    }
}

impl Drop for CookieJar {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Points yt-dlp at a guard proxy when the destination policy refuses anything, and keeps it to its own
/// downloader, so no request of this run leaves without the policy's check. The proxy lives as long as the
/// returned value.
async fn guard(tools: &MediaTools, cmd: &mut tokio::process::Command) -> Result<Option<GuardProxy>, EngineError> {
    if tools.destinations.allows_everything() {
        return Ok(None);
    }
    let proxy = GuardProxy::start(tools.destinations.clone())
        .await
        .map_err(|error| EngineError::Media(format!("cannot start the proxy yt-dlp's requests go through: {error}")))?;
    // `native`: HLS and DASH fragments through yt-dlp itself (through the proxy), never ffmpeg or aria2c.
    cmd.arg("--proxy").arg(proxy.url()).args(["--downloader", "native"]);
    Ok(Some(proxy))
}

/// yt-dlp's outcome, except that a failure after the proxy refused a destination is that refusal: it says
/// which address and why, where yt-dlp would say "HTTP Error 403".
fn refused_first(finished: Result<Finished, EngineError>, proxy: Option<&GuardProxy>) -> Result<Finished, EngineError> {
    match (finished, proxy.and_then(GuardProxy::first_refusal)) {
        (Err(EngineError::Cancelled), _) => Err(EngineError::Cancelled),
        (Err(_), Some(refused)) => Err(EngineError::Refused(refused)),
        (finished, _) => finished,
    }
}

/// The file yt-dlp left in `dir`: `media.EXT`, not a part or a fragment.
fn finished_file(dir: &Path) -> Result<std::path::PathBuf, EngineError> {
    let entries = std::fs::read_dir(dir).map_err(|error| EngineError::io(dir, error))?;
    entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| {
            let name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default();
            name.starts_with("media.") && name.matches('.').count() == 1 && path.is_file()
        })
        .ok_or_else(|| EngineError::Media("yt-dlp finished but left no file; see the server log".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines() {
        let line = "haul-progress 1024 4096 NA 512.5";
        assert_eq!(parse_report(line), Some(Report { downloaded: 1024, total: Some(4096), speed: 512 }));
        let estimated = "haul-progress 10 NA 3000.0 NA";
        assert_eq!(parse_report(estimated), Some(Report { downloaded: 10, total: Some(3000), speed: 0 }));
        assert_eq!(parse_report("[download] 10%"), None);
        assert_eq!(parse_report("haul-progress NA NA NA NA"), None);
    }
}
