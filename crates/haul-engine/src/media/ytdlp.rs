//! What haul asks of yt-dlp: a page's video described as JSON (`-J`), and, for formats haul's engine does not
//! fetch itself (HLS, DASH fragments), the download.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use haul_core::media::MediaInfo;
use haul_core::media_choice::FormatSelector;
use tokio::io::AsyncWriteExt as _;
use tokio_util::sync::CancellationToken;

use super::MediaTools;
use super::cache::{KeyParts, PageKey};
use super::process::{Finished, Started, command, run, start};
use super::proxy::GuardProxy;
use crate::error::EngineError;

/// How long reading a page may take before haul gives up on it.
const EXTRACT_TIMEOUT: Duration = Duration::from_secs(120);

/// The format spec yt-dlp picks by default when ffmpeg can merge (`YoutubeDL._default_format_spec`). Named, it
/// spares the `ffmpeg -bsfs` run yt-dlp otherwise makes on every `-J` to decide that (about 0.1 s); haul
/// chooses formats itself from `formats`, which the spec does not change, and `b` falls back to any format
/// when none has both video and audio, so the spec never fails a page with formats.
const FORMAT_SPEC: &str = "bv*+ba/b";

/// The page's video as yt-dlp understands it; `Media` when yt-dlp cannot read the page. A reading of the same
/// page with the same access made in the last minutes is handed out again (see [`super::cache`]). `early` is a
/// yt-dlp started for this page and access before it was known to be a page; it reads it unless the reading is
/// kept already.
pub(crate) async fn extract(
    tools: &MediaTools,
    url: &str,
    access: Access<'_>,
    early: Option<Early>,
    cancel: &CancellationToken,
) -> Result<MediaInfo, EngineError> {
    let program = tools.yt_dlp().map_err(EngineError::Media)?;
    let (key, reading) = match early {
        Some(early) => (early.key, Reading::Early(Box::new(early))),
        None => {
            let cookies = access.read_cookies().await?;
            let key = page_key(tools, program, url, access.headers, cookies.as_deref());
            (key, Reading::Now { program, headers: access.headers, cookies })
        }
    };
    let started = std::time::Instant::now();
    let reading = tools.pages.get_or_read(key, reading.read(tools, url, cancel));
    let (info, read_now) = tokio::select! {
        reading = reading => reading?,
        // A request waiting for another's reading of the page still stops when its own job does.
        _ = cancel.cancelled() => return Err(EngineError::Cancelled),
    };
    let elapsed_ms = started.elapsed().as_millis() as u64;
    if read_now {
        tracing::debug!(elapsed_ms, "yt-dlp read the page");
    } else {
        tracing::debug!(elapsed_ms, "yt-dlp read the page minutes ago; its reading is used again");
    }
    Ok(info)
}

/// The key of a page reading with this access; `None` without yt-dlp or when the cookies cannot be read.
pub(crate) async fn key_of(tools: &MediaTools, url: &str, access: Access<'_>) -> Option<PageKey> {
    let program = tools.yt_dlp().ok()?;
    let cookies = access.read_cookies().await.ok()?;
    Some(page_key(tools, program, url, access.headers, cookies.as_deref()))
}

fn page_key(
    tools: &MediaTools,
    program: &Path,
    url: &str,
    headers: &[(String, String)],
    cookies: Option<&[u8]>,
) -> PageKey {
    let policy = format!("{:?}", tools.destinations);
    PageKey::new(&KeyParts { program, policy: &policy, url, headers, cookies })
}

/// How a page is read when no kept reading will do.
enum Reading<'a> {
    /// `yt-dlp -J ... -- URL`, started now.
    Now { program: &'a Path, headers: &'a [(String, String)], cookies: Option<Vec<u8>> },
    /// A yt-dlp started early, waiting for the URL.
    Early(Box<Early>),
}

impl Reading<'_> {
    async fn read(self, tools: &MediaTools, url: &str, cancel: &CancellationToken) -> Result<MediaInfo, EngineError> {
        let (started, proxy, _jar) = match self {
            Reading::Now { program, headers, cookies } => {
                let (mut cmd, proxy, jar) = reading_command(tools, program, headers, cookies.as_deref()).await?;
                cmd.arg("--").arg(url);
                (start(cmd, READING)?, proxy, jar)
            }
            Reading::Early(early) => {
                let Early { started, stdin, proxy, jar, permit, .. } = *early;
                drop(permit);
                // The URL is the whole batch file: yt-dlp reads it to the end, then reads the page.
                let handed = async {
                    let mut stdin = stdin;
                    stdin.write_all(format!("{url}\n").as_bytes()).await?;
                    stdin.shutdown().await
                };
                // A yt-dlp that died before reading it says why when it is waited for.
                if let Err(error) = handed.await {
                    tracing::debug!(%error, "yt-dlp started early did not take the URL");
                }
                (started, proxy, jar)
            }
        };
        let timeout = cancel.child_token();
        let reading = started.finish(true, &timeout, |_| {});
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
}

const READING: &str = "yt-dlp (reading the page)";

/// `yt-dlp -J` with everything but the URL, behind the guard proxy when the policy refuses anything.
async fn reading_command(
    tools: &MediaTools,
    program: &Path,
    headers: &[(String, String)],
    cookies: Option<&[u8]>,
) -> Result<(tokio::process::Command, Option<GuardProxy>, Option<CookieJar>), EngineError> {
    let mut cmd = command(program);
    // `--flat-playlist`: a playlist's entries as links to their pages, each read when its own job runs, instead of
    // every page read now (a channel of a thousand videos would take as many page loads before anything starts).
    // `--no-playlist` reads only the video of a page that is both (a video in a playlist).
    cmd.args(["-J", "--no-playlist", "--flat-playlist", "--no-warnings", "--no-progress", "--ignore-config"]);
    cmd.args(["-f", FORMAT_SPEC]);
    let proxy = guard(tools, &mut cmd).await?;
    pass_headers(headers, &mut cmd);
    let jar = CookieJar::pass(cookies, &mut cmd)?;
    Ok((cmd, proxy, jar))
}

/// At most one yt-dlp started early at a time in this process: one whose URL turns out not to be a page is
/// Python start-up thrown away, and a batch of such URLs must not spend a core on it.
static EARLY_STARTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// Early starts thrown away in a row (their URL was not a page). At [`EARLY_WASTE_LIMIT`] there are none until a
/// page is seen, so a batch of files whose URLs have no extension costs that many Python start-ups, not one each.
static EARLY_WASTED: AtomicU32 = AtomicU32::new(0);
const EARLY_WASTE_LIMIT: u32 = 2;

/// A `yt-dlp -J` started before it is known whether its URL is a page: Python and yt-dlp's modules load (a few
/// hundred ms of CPU) while haul looks at the URL. yt-dlp waits for the URL on its stdin (`--batch-file -`),
/// so it asks nothing of any host before it has the URL. Dropped without reading, it is killed.
pub(crate) struct Early {
    started: Started,
    stdin: tokio::process::ChildStdin,
    proxy: Option<GuardProxy>,
    jar: Option<CookieJar>,
    key: PageKey,
    /// Held until the URL is handed over (see [`EARLY_STARTS`]).
    permit: tokio::sync::SemaphorePermit<'static>,
}

impl Early {
    /// A yt-dlp for `url` with `access`, waiting for the URL; `None` when another early start is running, the
    /// reading is kept already, or the URL cannot go through a batch file.
    pub(crate) async fn start(tools: &MediaTools, url: &str, access: Access<'_>) -> Option<Early> {
        // yt-dlp's batch file drops leading and trailing blanks, comment lines, and the rest of a line after a
        // blank and `#`: a URL where any of that would change it goes on the command line instead.
        if url.chars().any(char::is_whitespace) || url.starts_with(['#', ';', ']']) {
            return None;
        }
        let program = tools.yt_dlp().ok()?;
        if EARLY_WASTED.load(Ordering::Relaxed) >= EARLY_WASTE_LIMIT {
            return None;
        }
        let permit = EARLY_STARTS.try_acquire().ok()?;
        let cookies = access.read_cookies().await.ok()?;
        let key = page_key(tools, program, url, access.headers, cookies.as_deref());
        if tools.pages.has(key) {
            return None;
        }
        let (mut cmd, proxy, jar) = reading_command(tools, program, access.headers, cookies.as_deref()).await.ok()?;
        // `--quiet`: no "Reading URLs from STDIN" prompt on stderr (`-J` is quiet already).
        cmd.args(["--quiet", "--batch-file", "-"]).stdin(std::process::Stdio::piped());
        let mut started = start(cmd, READING).ok()?;
        let stdin = started.stdin()?;
        Some(Early { started, stdin, proxy, jar, key, permit })
    }

    /// The URL is not a page: this start was for nothing (and it is killed).
    pub(crate) fn discard(self) {
        EARLY_WASTED.fetch_add(1, Ordering::Relaxed);
    }

    /// A URL turned out to be a page: early starts pay again.
    pub(crate) fn page_seen() {
        EARLY_WASTED.store(0, Ordering::Relaxed);
    }
}

/// A reading written back for yt-dlp (`--load-info-json`), with the formats haul read of it, so yt-dlp can say
/// which of them a selector picks without asking the site anything again.
struct InfoFile {
    path: std::path::PathBuf,
}

impl InfoFile {
    fn write(info: &MediaInfo) -> Result<Self, EngineError> {
        let json = serde_json::json!({
            "id": info.id.clone().unwrap_or_else(|| "media".into()),
            "title": info.title.clone().unwrap_or_else(|| "media".into()),
            "extractor": "generic",
            "extractor_key": "Generic",
            "webpage_url": "http://127.0.0.1/",
            "formats": info.formats,
        });
        let path = std::env::temp_dir().join(format!("haul-info-{}.json", uuid::Uuid::new_v4()));
        let file = Self { path };
        std::fs::write(&file.path, json.to_string())
            .map_err(|error| EngineError::Media(format!("cannot write the page's formats for yt-dlp: {error}")))?;
        Ok(file)
    }
}

impl Drop for InfoFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The format ids yt-dlp's selector `selector` picks from `info`'s formats (one, or a video and an audio to
/// merge), asked of yt-dlp offline; yt-dlp's own message when it picks none ("Requested format is not
/// available") or cannot parse it.
pub(crate) async fn pick(
    tools: &MediaTools,
    info: &MediaInfo,
    selector: &FormatSelector,
    cancel: &CancellationToken,
) -> Result<Vec<String>, EngineError> {
    let program = tools.yt_dlp().map_err(EngineError::Media)?;
    let file = InfoFile::write(info)?;
    let mut cmd = command(program);
    cmd.args(["--ignore-config", "--no-warnings", "-J", "-f", selector.as_str(), "--load-info-json"]).arg(&file.path);
    // Nothing here asks the network; should a yt-dlp ever do, it goes through the destination policy as
    // every other run does.
    let _proxy = guard(tools, &mut cmd).await?;
    let finished = run(cmd, "yt-dlp (choosing formats)", true, cancel, |_| {}).await.map_err(|error| match error {
        EngineError::Media(message) => {
            EngineError::Media(format!("format {:?}: {}", selector.as_str(), yt_dlp_words(&message)))
        }
        other => other,
    })?;
    #[derive(serde::Deserialize)]
    struct Picked {
        format_id: Option<String>,
        #[serde(default)]
        requested_formats: Vec<PickedFormat>,
    }
    #[derive(serde::Deserialize)]
    struct PickedFormat {
        format_id: String,
    }
    let picked: Picked = serde_json::from_str(&finished.stdout)
        .map_err(|error| EngineError::Media(format!("yt-dlp chose formats in a way haul cannot read: {error}")))?;
    let ids: Vec<String> = if picked.requested_formats.is_empty() {
        picked.format_id.into_iter().collect()
    } else {
        picked.requested_formats.into_iter().map(|format| format.format_id).collect()
    };
    if ids.is_empty() {
        return Err(EngineError::Media(format!("format {:?} picks no format", selector.as_str())));
    }
    Ok(ids)
}

/// Whether yt-dlp parses `selector`: it is tried on a one-format reading, offline, so only a selector yt-dlp
/// cannot parse is refused (`InvalidRequest`, in yt-dlp's words); whether a page has what it asks for is known
/// when the page is read.
pub(crate) async fn check_selector(tools: &MediaTools, selector: &FormatSelector) -> Result<(), EngineError> {
    let sample = MediaInfo {
        id: Some("check".into()),
        title: Some("check".into()),
        formats: vec![haul_core::media::Format {
            format_id: "0".into(),
            url: Some("http://127.0.0.1/0.mp4".into()),
            ext: Some("mp4".into()),
            protocol: Some("http".into()),
            height: Some(360),
            vcodec: Some("avc1.64001e".into()),
            acodec: Some("mp4a.40.2".into()),
            ..Default::default()
        }],
        ..MediaInfo::default()
    };
    match pick(tools, &sample, selector, &CancellationToken::new()).await {
        Ok(_) => Ok(()),
        Err(EngineError::Media(message)) if message.contains("Invalid") || message.contains("SyntaxError") => {
            let words = message.split_once(": ").map_or(message.as_str(), |(_, words)| words);
            Err(EngineError::InvalidRequest(format!(
                "format {:?} is not a selector yt-dlp takes: {words}",
                selector.as_str()
            )))
        }
        // Parsed, but the sample has nothing it asks for: a page may.
        Err(EngineError::Media(message)) if message.contains("not available") || message.contains("picks no") => Ok(()),
        Err(other) => Err(other),
    }
}

/// yt-dlp's own words from the end of its stderr: the `ERROR:` line, or a Python `SyntaxError: ...` (how it
/// refuses a selector it cannot parse), without the traceback.
fn yt_dlp_words(message: &str) -> String {
    for marker in ["SyntaxError: ", "ERROR: "] {
        if let Some(at) = message.rfind(marker) {
            let rest = &message[at + marker.len()..];
            let line = rest.split(';').next().unwrap_or(rest).trim();
            // yt-dlp's `[generic] id: ` prefix names the page, which the caller already knows.
            let mut line = line;
            if line.starts_with('[')
                && let Some((_, tail)) = line.split_once("] ")
            {
                line = tail;
                if let Some((id, tail)) = line.split_once(": ")
                    && !id.contains(' ')
                {
                    line = tail;
                }
            }
            return line.trim_end_matches(". Use --list-formats for a list of available formats").to_owned();
        }
    }
    message.to_owned()
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

#[allow(clippy::too_many_arguments)]
/// Downloads formats `spec` of `url` into `dir` as `media.EXT` with yt-dlp's own downloader (merging with
/// ffmpeg into `merge_ext` when the spec joins two formats), continuing from what an earlier, stopped run left in `dir`.
/// Returns the file it made.
pub(crate) async fn download(
    tools: &MediaTools,
    url: &str,
    spec: &str,
    merge_ext: &str,
    access: Access<'_>,
    dir: &Path,
    cancel: &CancellationToken,
    mut on_report: impl FnMut(Report),
) -> Result<std::path::PathBuf, EngineError> {
    let mut cmd = command(tools.yt_dlp().map_err(EngineError::Media)?);
    let proxy = guard(tools, &mut cmd).await?;
    cmd.args(["--no-playlist", "--no-warnings", "--ignore-config", "--newline", "--continue", "--no-mtime"])
        .args(["--progress-template", PROGRESS_TEMPLATE, "-f", spec, "--merge-output-format", merge_ext])
        .arg("-P")
        .arg(dir)
        .args(["-o", "media.%(ext)s"]);
    if let Ok(ffmpeg) = tools.ffmpeg() {
        cmd.arg("--ffmpeg-location").arg(ffmpeg);
    }
    let _jar = access.pass(&mut cmd).await?;
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
    async fn pass(self, cmd: &mut tokio::process::Command) -> Result<Option<CookieJar>, EngineError> {
        pass_headers(self.headers, cmd);
        CookieJar::pass(self.read_cookies().await?.as_deref(), cmd)
    }

    /// The cookies file's bytes.
    async fn read_cookies(self) -> Result<Option<Vec<u8>>, EngineError> {
        let Some(cookies) = self.cookies else { return Ok(None) };
        tokio::fs::read(cookies)
            .await
            .map(Some)
            .map_err(|error| EngineError::Media(format!("cannot read the cookies file {}: {error}", cookies.display())))
    }
}

fn pass_headers(headers: &[(String, String)], cmd: &mut tokio::process::Command) {
    for (name, value) in headers {
        cmd.arg("--add-headers").arg(format!("{name}:{value}"));
    }
}

/// A private copy of the user's cookies.txt for one yt-dlp run: yt-dlp writes its cookie jar back when it
/// exits, and the user's file is theirs. Removed when dropped.
struct CookieJar {
    path: std::path::PathBuf,
}

impl CookieJar {
    /// `--cookies COPY` on `cmd` when there are cookies to send.
    fn pass(cookies: Option<&[u8]>, cmd: &mut tokio::process::Command) -> Result<Option<Self>, EngineError> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let Some(text) = cookies else { return Ok(None) };
        let path = std::env::temp_dir().join(format!("haul-cookies-{}.txt", uuid::Uuid::new_v4()));
        let jar = Self { path };
        // Only this user may read it, as the cookies are a login.
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&jar.path)
            .and_then(|mut file| file.write_all(text))
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

    fn tools() -> MediaTools {
        let missing = haul_test_support::missing_tools();
        assert!(missing.is_empty(), "the media tests need {} on PATH", missing.join(", "));
        MediaTools::discover(None, None, std::env::var_os("PATH").as_deref()).unwrap()
    }

    fn running(pid: u32) -> bool {
        // A killed child is reaped by tokio's orphan queue; until then it is a zombie, which is not running.
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')))
    }

    /// A yt-dlp started early asks nothing of any host until it has the URL, reads the page once it has it,
    /// and is killed when it is not needed. (One test: early starts are counted process-wide.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_early_yt_dlp_waits_for_the_url_and_is_killed_when_unused() {
        let site = haul_test_support::MediaSite::start().await.unwrap();
        let tools = tools();
        let access = Access { headers: &[], cookies: None };
        let cancel = CancellationToken::new();

        let page = site.muxed("Early");
        let early = Early::start(&tools, &page, access).await.expect("an early start");
        // Time enough for Python and yt-dlp's modules to load, and for yt-dlp to ask for the page if it would.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(site.requests(&page), 0, "nothing asked before the URL");
        assert!(Early::start(&tools, &site.muxed("Second"), access).await.is_none(), "one early start at a time");
        let info = extract(&tools, &page, access, Some(early), &cancel).await.unwrap();
        assert_eq!(info.title.as_deref(), Some("Early (1)"));
        assert_eq!(site.requests(&page), 1);
        // Kept now: no early start for it, and the next reading is the kept one.
        assert!(Early::start(&tools, &page, access).await.is_none());
        extract(&tools, &page, access, None, &cancel).await.unwrap();
        assert_eq!(site.requests(&page), 1);

        let unused = site.muxed("Unused");
        let early = Early::start(&tools, &unused, access).await.expect("the permit is free again");
        let pid = early.started.id().expect("a pid");
        assert!(running(pid));
        drop(early);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while running(pid) {
            assert!(std::time::Instant::now() < deadline, "yt-dlp {pid} outlived its early start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(site.requests(&unused), 0);

        // Thrown away twice in a row (the URLs were files): no more early starts until a page is seen.
        for _ in 0..EARLY_WASTE_LIMIT {
            Early::start(&tools, &unused, access).await.expect("an early start").discard();
        }
        assert!(Early::start(&tools, &unused, access).await.is_none());
        Early::page_seen();
        assert!(Early::start(&tools, &unused, access).await.is_some());
    }
}
