//! `haul get`: download URLs directly, with a progress bar, resuming what an earlier run left.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use haul_core::job::JobKind;
use haul_core::media::Quality;
use haul_engine::header::{self, HeaderMap, HeaderValue};
use haul_engine::{
    CancellationToken, ClientOptions, DownloadOptions, EngineError, GotMedia, HttpClient, MediaRequest, MediaTools,
    Progress, Target, WriterOptions,
};
use url::Url;

use crate::cli::{GetArgs, media_tools};
use crate::progress_ui::{Display, ProgressUi, Screen};

/// Exit status after Ctrl-C: the conventional 128 + SIGINT, so scripts can tell a pause from a failure.
const EXIT_PAUSED: u8 = 130;

/// Where `haul get` puts what it fetches, decided once from `-o` and `-d`.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Output {
    /// Into this directory under the name the server offers (`-d DIR`, `-o DIR`, or the current directory).
    Dir(PathBuf),
    /// As exactly this file (`-o FILE`).
    File(PathBuf),
    /// Written to stdout as it arrives (`-o -`).
    Stdout,
}

impl Output {
    fn of(args: &GetArgs) -> Self {
        use std::os::unix::ffi::OsStrExt as _;
        match (&args.output, &args.dir) {
            (Some(path), _) if path.as_os_str() == "-" => Self::Stdout,
            // As curl users expect of -o onto a directory: save into it, as -d would. A trailing slash names a
            // directory too, made if missing.
            (Some(path), _) if path.is_dir() || path.as_os_str().as_bytes().ends_with(b"/") => Self::Dir(path.clone()),
            (Some(path), _) => Self::File(path.clone()),
            (None, Some(dir)) => Self::Dir(dir.clone()),
            (None, None) => Self::Dir(PathBuf::from(".")),
        }
    }

    /// Where a video page's work goes: the directory, or the one the named file goes into.
    fn dir(&self) -> PathBuf {
        match self {
            Self::Dir(dir) => dir.clone(),
            Self::File(file) => match file.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
                _ => PathBuf::from("."),
            },
            Self::Stdout => PathBuf::from("."),
        }
    }
}

/// The URLs of an input file: one per line, blank lines and `#` comments skipped. An indented line is one of
/// aria2c's per-download options, which haul does not take: said, with its line number.
fn input_urls(text: &str) -> Result<Vec<String>, String> {
    let mut urls = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            return Err(format!(
                "line {}: {trimmed:?} is an aria2c option for the URL above it; give haul's flags on the command \
                 line instead",
                number + 1
            ));
        }
        urls.push(trimmed.to_owned());
    }
    Ok(urls)
}

/// A path as the messages show it: `report.pdf` rather than `./report.pdf`.
fn shown(path: &Path) -> String {
    path.strip_prefix(".").unwrap_or(path).display().to_string()
}

pub async fn run(mut args: GetArgs) -> anyhow::Result<ExitCode> {
    if let Some(input) = &args.input_file {
        let text = if input.as_os_str() == "-" {
            std::io::read_to_string(std::io::stdin()).context("-i -: cannot read the URLs from stdin")?
        } else {
            std::fs::read_to_string(input).with_context(|| format!("-i: cannot read {}", input.display()))?
        };
        let listed = input_urls(&text).map_err(|message| anyhow::anyhow!("-i {}: {message}", input.display()))?;
        if listed.is_empty() && args.urls.is_empty() {
            bail!("-i {}: no URLs in it (one per line; blank lines and # comments are skipped)", input.display());
        }
        args.urls.extend(listed);
    }
    let output = Output::of(&args);
    if output == Output::Stdout {
        check_stdout_args(&args)?;
    }
    if matches!(output, Output::File(_)) && args.urls.len() > 1 {
        bail!("--output names one file but {} URLs were given; use --dir DIR for several", args.urls.len());
    }
    if !args.mirrors.is_empty() && args.urls.len() > 1 {
        bail!(
            "--mirror names other URLs of one file but {} URLs were given; download them one at a time",
            args.urls.len()
        );
    }
    let urls = args.urls.iter().map(|text| parse_url(text)).collect::<anyhow::Result<Vec<_>>>()?;
    let mirrors = args.mirrors.iter().map(|text| parse_url(text)).collect::<anyhow::Result<Vec<_>>>()?;
    let header_pairs = args
        .headers
        .iter()
        .map(|line| haul_engine::parse_header_line(line))
        .collect::<Result<Vec<(String, String)>, String>>()
        .map_err(anyhow::Error::msg)?;
    let headers = haul_engine::header_map(header_pairs.iter().map(|(name, value)| (name.as_str(), value.as_str())))
        .map_err(anyhow::Error::msg)?;
    let credentials = Credentials::load(&args)?;
    for url in &urls {
        let sent = credentials.headers_for(url, &HeaderMap::new())?;
        if let Some(mirror) = mirrors.iter().find(|mirror| mirror.origin() != url.origin())
            && !sent.is_empty()
        {
            bail!(
                "-u, --netrc and --cookies send credentials to {} only, but --mirror {mirror} is another host; \
                 download from one host, or give its credentials with -H",
                url.host_str().unwrap_or_default()
            );
        }
    }
    let mut client_options = ClientOptions::default();
    if let Some(user_agent) = &args.user_agent {
        client_options.user_agent = user_agent.clone();
    }
    if let Some(secs) = args.timeout {
        client_options.read_timeout = std::time::Duration::from_secs(secs);
    }
    client_options.proxy = args.proxy.clone();
    client_options.ca_certs = args.ca_cert.clone();
    client_options.insecure = args.insecure;
    if args.insecure && !args.quiet {
        eprintln!(
            "haul: warning: --insecure: TLS certificates are not checked, so anyone between here and the host can \
             read and change what is downloaded"
        );
    }
    if let Some(secs) = args.connect_timeout {
        client_options.connect_timeout = std::time::Duration::from_secs(secs);
    }
    let client = HttpClient::new(&client_options)?;
    let display = Display::choose(args.quiet);
    let screen = Screen::new(display);

    let cancel = CancellationToken::new();
    // Ctrl-C or SIGTERM pauses: the engine saves completed ranges and the command exits with status 130.
    haul_engine::task::spawn(tracing::info_span!("signals"), {
        let cancel = cancel.clone();
        async move {
            crate::signals::interrupted().await;
            cancel.cancel();
        }
    });

    // -o - writes the URL's bytes as they come; a video page (streams fetched, then merged by ffmpeg into a file)
    // was refused above, so yt-dlp is not even looked for.
    let media_wanted = (args.kind != JobKind::File || args.wants_audio()) && output != Output::Stdout;
    let tools = if media_wanted { media_tools(args.yt_dlp.clone(), args.ffmpeg.clone())? } else { MediaTools::none() };
    if args.kind == JobKind::Media && tools.yt_dlp.is_none() {
        bail!("--kind media needs yt-dlp: install it (pip install yt-dlp) or pass --yt-dlp PATH");
    }
    // A quality is only for a video page: without yt-dlp the page itself would be saved as if it were the video.
    if args.quality.is_some_and(|quality| quality != Quality::Best) && tools.yt_dlp.is_none() {
        bail!("--quality needs yt-dlp to read the video page: install it (pip install yt-dlp) or pass --yt-dlp PATH");
    }
    if args.wants_audio() && (tools.ffmpeg.is_none() || tools.ffprobe.is_none()) {
        bail!("--audio and --audio-format need ffmpeg and ffprobe: install ffmpeg or pass --ffmpeg PATH");
    }
    let quality = if args.wants_audio() { Quality::Audio } else { args.quality.unwrap_or(Quality::Best) };
    let choice = args.media.choice(false);
    if (choice.format.is_some() || choice.wants_subtitles()) && tools.yt_dlp.is_none() {
        bail!(
            "--format and --subs need yt-dlp to read the video page: install it (pip install yt-dlp) or pass --yt-dlp PATH"
        );
    }
    if (choice.embed_metadata || choice.embed_subtitles) && (tools.ffmpeg.is_none() || tools.ffprobe.is_none()) {
        bail!("--embed-metadata and --embed-subs need ffmpeg and ffprobe: install ffmpeg or pass --ffmpeg PATH");
    }
    // yt-dlp judges its own selector language before anything is fetched: a mistake is a usage error (2).
    if let Some(selector) = &choice.format {
        match haul_engine::check_selector(&tools, selector).await {
            Ok(()) => {}
            Err(EngineError::InvalidRequest(message)) => {
                eprintln!("haul: error: --{message}");
                return Ok(ExitCode::from(2));
            }
            Err(error) => return Err(error.into()),
        }
    }

    if output == Output::Stdout {
        let url = urls.into_iter().next().expect("clap requires a URL");
        let headers = credentials.headers_for(&url, &headers)?;
        return to_stdout(&args, url, client, headers, &screen, cancel).await;
    }

    let count = urls.len();
    let batch = Batch {
        args: &args,
        output: &output,
        mirrors,
        credentials,
        headers,
        header_pairs,
        client,
        screen,
        cancel,
        media_wanted,
        tools,
        quality,
    };
    let started = std::time::Instant::now();
    // -j N: up to N at once, started in the order given.
    let outcomes: Vec<Outcome> = {
        use futures_util::StreamExt as _;
        futures_util::stream::iter(urls)
            .map(|url| batch.fetch(url))
            .buffer_unordered(usize::from(args.jobs))
            .collect()
            .await
    };
    if count > 1 && !args.quiet {
        batch.screen.say(batch_line(&outcomes, started.elapsed()));
    }
    Ok(if outcomes.iter().any(|outcome| matches!(outcome, Outcome::Paused { .. } | Outcome::NotStarted)) {
        ExitCode::from(EXIT_PAUSED)
    } else if outcomes.contains(&Outcome::Failed) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// An entry of a playlist, as `haul get` fetches it: the N-th video of the page when it is read in place, and
/// the playlist's title and the entry's position (for `--name`).
struct EntryOf {
    item: Option<u32>,
    playlist: (String, u32),
    /// The entry's title as the playlist gives it, which wins over its page's (as yt-dlp merges them).
    title: Option<String>,
}

/// The subtitle files a media download saved beside its file, renamed after `output` (`-o FILE`), as
/// `FILE-STEM.LANG.vtt`. One that cannot be moved keeps its name.
fn subtitles_follow(progress: &Progress, output: &Path) {
    let name = output.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    for (lang, path) in progress.media().subtitles.unwrap_or_default() {
        let ext = path.extension().map(|ext| ext.to_string_lossy().into_owned()).unwrap_or_default();
        let moved = output.with_file_name(haul_core::media_choice::subtitle_file_name(&name, &lang, &ext));
        if moved != path && std::fs::symlink_metadata(&moved).is_err() {
            let _ = std::fs::rename(&path, &moved);
        }
    }
}

/// How one URL of a `get` ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// Saved, with the bytes this run fetched.
    Saved {
        fetched: u64,
    },
    /// Already complete (or up to date with -N): nothing fetched.
    Complete,
    /// Stopped by Ctrl-C, its completed ranges kept; with the bytes this run fetched.
    Paused {
        fetched: u64,
    },
    /// Not begun: Ctrl-C came first.
    NotStarted,
    Failed,
}

/// The line after several URLs: `haul: 98 of 100 saved, 2 failed; 1.2 GiB in 12.3 s, 98.1 MiB/s average`.
fn batch_line(outcomes: &[Outcome], elapsed: std::time::Duration) -> String {
    use haul_core::units::{format_bytes, format_rate};
    let count = |wanted: fn(&Outcome) -> bool| outcomes.iter().filter(|outcome| wanted(outcome)).count();
    let saved = count(|outcome| matches!(outcome, Outcome::Saved { .. }));
    let fetched: u64 = outcomes
        .iter()
        .map(|outcome| match outcome {
            Outcome::Saved { fetched } | Outcome::Paused { fetched } => *fetched,
            _ => 0,
        })
        .sum();
    let mut line = format!("haul: {saved} of {} saved", outcomes.len());
    for (n, what) in [
        (count(|outcome| *outcome == Outcome::Complete), "already complete"),
        (count(|outcome| *outcome == Outcome::Failed), "failed"),
        (count(|outcome| matches!(outcome, Outcome::Paused { .. })), "paused"),
        (count(|outcome| *outcome == Outcome::NotStarted), "not started"),
    ] {
        if n > 0 {
            line.push_str(&format!(", {n} {what}"));
        }
    }
    let average = format_rate(fetched as f64 / elapsed.as_secs_f64().max(0.001));
    line.push_str(&format!(
        "; {} in {}, {average} average",
        format_bytes(fetched),
        crate::progress_ui::format_elapsed(elapsed)
    ));
    line
}

/// What every URL of one `haul get` shares, decided once from the command line.
struct Batch<'a> {
    args: &'a GetArgs,
    output: &'a Output,
    mirrors: Vec<Url>,
    credentials: Credentials,
    headers: HeaderMap,
    header_pairs: Vec<(String, String)>,
    client: HttpClient,
    screen: Screen,
    cancel: CancellationToken,
    media_wanted: bool,
    tools: MediaTools,
    quality: Quality,
}

impl Batch<'_> {
    /// With `--audio-format` other than m4a: the m4a a media download made, converted beside it to
    /// `{stem}.{ext}`, the m4a removed. A file already in that format is kept as it is.
    async fn in_audio_format(
        &self,
        done: haul_engine::Downloaded,
        args: &GetArgs,
    ) -> Result<haul_engine::Downloaded, EngineError> {
        let Some(format) = args.audio_format.filter(|format| *format != haul_core::media::AudioFormat::M4a) else {
            return Ok(done);
        };
        if done.path.extension().is_some_and(|ext| ext.eq_ignore_ascii_case(format.ext())) {
            return Ok(done);
        }
        let out = done.path.with_extension(format.ext());
        haul_engine::convert_audio(&self.tools, &done.path, format, &out, &self.cancel, |_| {}).await?;
        let size = std::fs::metadata(&out)
            .map_err(|error| EngineError::Media(format!("cannot read {}: {error}", out.display())))?
            .len();
        if let Err(error) = std::fs::remove_file(&done.path) {
            tracing::warn!(path = %done.path.display(), %error, "cannot remove the m4a the conversion was made from");
        }
        Ok(haul_engine::Downloaded { path: out, size, ..done })
    }

    /// One URL, from probe to the line that says how it ended (for a playlist, each entry's).
    async fn fetch(&self, url: Url) -> Outcome {
        self.fetch_as(url, None).await
    }

    /// A playlist's entries, one after another, each with its own progress and line; how they ended taken
    /// together (paused if any was, else failed if any failed).
    async fn fetch_playlist(
        &self,
        url: &Url,
        title: Option<String>,
        entries: Vec<haul_core::playlist::Entry>,
        total: usize,
    ) -> Outcome {
        let args = self.args;
        if let Output::File(file) = self.output {
            self.screen.println(format!(
                "haul: error: {url} is a playlist of {total} entries, but -o names one file ({}); use -d DIR",
                file.display()
            ));
            return Outcome::Failed;
        }
        let title = title.unwrap_or_else(|| "NA".to_owned());
        if entries.is_empty() {
            let chosen = args.playlist_items.as_ref().map(|items| format!(" in {items}")).unwrap_or_default();
            self.screen.println(format!("haul: error: {url}: the playlist has no entry{chosen} yt-dlp can read"));
            return Outcome::Failed;
        }
        if !args.quiet {
            self.screen.say(format!("playlist {title}: {} of its {total} entries", entries.len()));
        }
        let mut outcomes = Vec::with_capacity(entries.len());
        for entry in entries {
            let Ok(entry_url) = Url::parse(&entry.url) else {
                self.screen.println(format!("haul: error: entry {} of {url} has no URL haul can fetch", entry.index));
                outcomes.push(Outcome::Failed);
                continue;
            };
            let of = EntryOf { item: entry.item, playlist: (title.clone(), entry.index), title: entry.title };
            outcomes.push(Box::pin(self.fetch_as(entry_url, Some(of))).await);
        }
        let fetched: u64 = outcomes
            .iter()
            .map(|outcome| match outcome {
                Outcome::Saved { fetched } | Outcome::Paused { fetched } => *fetched,
                _ => 0,
            })
            .sum();
        if outcomes.iter().any(|outcome| matches!(outcome, Outcome::Paused { .. } | Outcome::NotStarted)) {
            Outcome::Paused { fetched }
        } else if outcomes.contains(&Outcome::Failed) {
            Outcome::Failed
        } else {
            Outcome::Saved { fetched }
        }
    }

    /// One URL, or one entry of a playlist (`of`).
    async fn fetch_as(&self, url: Url, of: Option<EntryOf>) -> Outcome {
        let args = self.args;
        if self.cancel.is_cancelled() {
            return Outcome::NotStarted;
        }
        let target = match self.output {
            Output::File(file) => Target::File(file.clone()),
            Output::Dir(dir) => Target::Dir(dir.clone()),
            Output::Stdout => unreachable!("written by to_stdout"),
        };
        let mut options = DownloadOptions::new(url.clone(), target);
        options.mirrors = self.mirrors.clone();
        options.overwrite = args.overwrite;
        // A file already there and complete is left as it is, as with wget's --no-clobber; --overwrite fetches.
        options.skip_if_complete = true;
        options.connections = args.connections.map(usize::from);
        options.rate_limit = crate::cli::limit(args.limit_rate);
        options.checksum = args.checksum.clone();
        // -u, --netrc and --cookies for this URL's host; the user's -H headers win over them.
        options.headers = match self.credentials.headers_for(&url, &self.headers) {
            Ok(headers) => headers,
            Err(error) => {
                self.screen.println(format!("haul: error: {url}: {error:#}"));
                return Outcome::Failed;
            }
        };
        // -N: fetch only what is newer (or of another size) than the file here, and replace it.
        options.timestamping = args.timestamping && !args.overwrite;
        if let Some(tries) = args.max_tries {
            options.max_attempts = if tries == 0 { u32::MAX } else { tries };
        }
        options.retry_wait = args.retry_wait.map(std::time::Duration::from_secs);

        let started = std::time::Instant::now();
        let progress = Arc::new(Progress::default());
        let ui = ProgressUi::start(progress.clone(), url.to_string(), &self.screen);
        let media = MediaRequest {
            url: url.to_string(),
            media: match args.kind {
                _ if of.is_some() => Some(true),
                JobKind::Media | JobKind::Playlist => Some(true),
                JobKind::File => Some(false),
                JobKind::Auto => None,
            },
            quality: self.quality,
            headers: self.header_pairs.clone(),
            page_headers: options.headers.clone(),
            cookies: args.cookies.clone(),
            dir: self.output.dir(),
            rate_limit: crate::cli::limit(args.limit_rate),
            connections: args.connections.map(usize::from),
            name_template: args.name.clone(),
            playlist_items: args.playlist_items.clone(),
            playlist_item: of.as_ref().and_then(|of| of.item),
            title: of.as_ref().and_then(|of| of.title.clone()),
            playlist: of.map(|of| of.playlist),
            // Off unless asked: `haul get` saves the file as the site serves it, as yt-dlp does.
            choice: args.media.choice(false),
        };
        let got = if self.media_wanted {
            haul_engine::get_media(&self.client, &self.tools, &media, &progress, &self.cancel).await
        } else {
            Ok(None)
        };
        let got = match got {
            Ok(Some(GotMedia::Playlist { title, entries, total })) => {
                ui.finish().await;
                return self.fetch_playlist(&url, title, entries, total).await;
            }
            Ok(Some(GotMedia::Saved(done))) => Ok(Some(done)),
            Ok(None) => Ok(None),
            Err(error) => Err(error),
        };
        let result = match got {
            Ok(Some(done)) => match self.in_audio_format(done, args).await {
                Err(error) => Err(error),
                Ok(done) => match self.output {
                    // A media file is named after its title; -o FILE names it.
                    Output::File(output) if *output != done.path => std::fs::rename(&done.path, output)
                        .map(|()| {
                            subtitles_follow(&progress, output);
                            haul_engine::Downloaded { path: output.clone(), ..done }
                        })
                        .map_err(|error| {
                            EngineError::Media(format!("cannot move it to {}: {error}", output.display()))
                        }),
                    _ => Ok(done),
                },
            },
            Ok(None) => {
                haul_engine::download(self.client.clone(), options, progress.clone(), self.cancel.clone()).await
            }
            Err(error) => Err(error),
        };
        ui.finish().await;
        match result {
            Ok(downloaded) if downloaded.already_complete => {
                if !args.quiet {
                    let line = if args.timestamping {
                        format!(
                            "{} is up to date ({}, not older than the server's); nothing to do",
                            shown(&downloaded.path),
                            haul_core::units::format_bytes(downloaded.size)
                        )
                    } else {
                        format!(
                            "{} is already complete ({}); nothing to do (--overwrite to fetch it again)",
                            shown(&downloaded.path),
                            haul_core::units::format_bytes(downloaded.size)
                        )
                    };
                    self.screen.say(line);
                }
                Outcome::Complete
            }
            Ok(downloaded) => {
                if !args.quiet {
                    self.screen.say(saved_line(&downloaded, started.elapsed()));
                }
                Outcome::Saved { fetched: downloaded.size.saturating_sub(downloaded.resumed_bytes) }
            }
            Err(EngineError::Cancelled) => {
                let snapshot = progress.snapshot();
                let name = snapshot.destination.map_or_else(|| url.to_string(), |path| shown(&path));
                let total = snapshot.total.map_or_else(|| "?".to_owned(), haul_core::units::format_bytes);
                let done = haul_core::units::format_bytes(snapshot.done);
                let line = if snapshot.resumable {
                    format!("haul: paused {name} at {done} of {total}; run the same command again to resume")
                } else {
                    format!(
                        "haul: stopped {name} at {done} of {total}; this host does not take byte ranges, so the \
                         download cannot be resumed: the same command starts it again from the beginning"
                    )
                };
                self.screen.say(line);
                Outcome::Paused { fetched: progress.snapshot().fetched_this_run() }
            }
            Err(error) => {
                self.screen.println(format!("haul: error: {}", with_command_line_hint(&error, &self.tools)));
                Outcome::Failed
            }
        }
    }
}

/// The last line of a download, as aria2c sums one up: `saved ./big.iso (1.0 GiB) in 12.3 s, 83.2 MiB/s
/// average`, and after a resume how much this run fetched (the average is over those bytes only).
fn saved_line(downloaded: &haul_engine::Downloaded, elapsed: std::time::Duration) -> String {
    use haul_core::units::{format_bytes, format_rate};
    let fetched = downloaded.size.saturating_sub(downloaded.resumed_bytes);
    let average = format_rate(fetched as f64 / elapsed.as_secs_f64().max(0.001));
    let mut line = format!(
        "saved {} ({}) in {}, {average} average",
        shown(&downloaded.path),
        format_bytes(downloaded.size),
        crate::progress_ui::format_elapsed(elapsed)
    );
    if downloaded.resumed_bytes > 0 {
        line.push_str(&format!(
            "; {} fetched in this run, {} resumed from an earlier one",
            format_bytes(fetched),
            format_bytes(downloaded.resumed_bytes)
        ));
    }
    line
}

/// What `-o -` cannot do, said before anything is fetched.
fn check_stdout_args(args: &GetArgs) -> anyhow::Result<()> {
    if args.urls.len() > 1 {
        bail!("-o - writes one download to stdout but {} URLs were given; use -d DIR for several", args.urls.len());
    }
    if !args.mirrors.is_empty() {
        bail!("--mirror spreads connections over several URLs, but -o - takes one stream in order; save to a file");
    }
    if args.checksum.is_some() {
        bail!(
            "--checksum checks a file before it takes its name, but -o - writes the bytes out as they arrive; pipe them to sha256sum instead"
        );
    }
    if args.timestamping {
        bail!("-N compares the server's copy with a file here, but -o - writes to stdout; save to a file");
    }
    if args.kind == JobKind::Media || args.wants_audio() || args.quality.is_some() || args.media.any() {
        bail!("-o - writes a file's bytes as they arrive; save a video page with -o FILE or -d DIR");
    }
    Ok(())
}

/// `-o -`: one connection writing the body to stdout in order (progress and messages go to stderr).
async fn to_stdout(
    args: &GetArgs,
    url: Url,
    client: HttpClient,
    headers: haul_engine::header::HeaderMap,
    screen: &Screen,
    cancel: CancellationToken,
) -> anyhow::Result<ExitCode> {
    use std::os::fd::AsFd as _;
    // An async handle on stdout's descriptor: writes go through tokio's blocking pool, one chunk at a time, so a
    // slow reader slows the download (back-pressure) instead of filling memory.
    let descriptor = std::io::stdout().as_fd().try_clone_to_owned().context("cannot use stdout")?;
    let mut stdout = tokio::fs::File::from_std(std::fs::File::from(descriptor));
    let mut options = WriterOptions::new(url.clone(), "stdout");
    options.headers = headers;
    options.rate_limit = crate::cli::limit(args.limit_rate);
    if let Some(tries) = args.max_tries {
        options.max_attempts = if tries == 0 { u32::MAX } else { tries };
    }
    options.retry_wait = args.retry_wait.map(std::time::Duration::from_secs);
    let progress = Arc::new(Progress::default());
    let ui = ProgressUi::start(progress.clone(), url.to_string(), screen);
    let result = haul_engine::download_to_writer(client, options, &mut stdout, progress.clone(), cancel).await;
    ui.finish().await;
    match result {
        Ok(size) => {
            if !args.quiet {
                eprintln!("wrote {} to stdout", haul_core::units::format_bytes(size));
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(EngineError::Cancelled) => {
            let snapshot = progress.snapshot();
            let total = snapshot.total.map_or_else(|| "?".to_owned(), haul_core::units::format_bytes);
            eprintln!(
                "haul: stopped after writing {} of {total} to stdout; a stream cannot be resumed",
                haul_core::units::format_bytes(snapshot.done)
            );
            Ok(ExitCode::from(EXIT_PAUSED))
        }
        Err(error) => {
            eprintln!("haul: error: {}", with_command_line_hint(&error, &MediaTools::none()));
            Ok(ExitCode::FAILURE)
        }
    }
}

/// What `-u`, `--netrc`/`--netrc-file` and `--cookies` give, read once and turned into headers for each URL.
struct Credentials {
    user: Option<(String, String)>,
    /// The text of the netrc file.
    netrc: Option<String>,
    cookies: Vec<haul_core::credentials::Cookie>,
}

impl Credentials {
    fn load(args: &GetArgs) -> anyhow::Result<Self> {
        let netrc_path = match (&args.netrc_file, args.netrc) {
            (Some(file), _) => Some(file.clone()),
            (None, true) => Some(
                directories::BaseDirs::new()
                    .map(|dirs| dirs.home_dir().join(".netrc"))
                    .context("--netrc: no home directory to find .netrc in; pass --netrc-file FILE")?,
            ),
            (None, false) => None,
        };
        let netrc = match netrc_path {
            Some(path) => Some(
                std::fs::read_to_string(&path).with_context(|| format!("--netrc: cannot read {}", path.display()))?,
            ),
            None => None,
        };
        let cookies = match &args.cookies {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("--cookies: cannot read {}", path.display()))?;
                haul_core::credentials::parse_cookies(&text)
                    .map_err(|error| anyhow::anyhow!("--cookies {}: {error}", path.display()))?
            }
            None => Vec::new(),
        };
        Ok(Self { user: args.user.clone(), netrc, cookies })
    }

    /// `base` (the -H headers) with the `Authorization` and `Cookie` these credentials give for `url`: -u, else
    /// the netrc login for its host; an Authorization given with -H wins, and a -H Cookie is sent with the file's.
    fn headers_for(&self, url: &Url, base: &HeaderMap) -> anyhow::Result<HeaderMap> {
        use haul_core::credentials::{basic_authorization, cookie_header, netrc_login};
        let mut headers = base.clone();
        let host = url.host_str().unwrap_or_default();
        let login = self.user.clone().or_else(|| {
            let found = netrc_login(self.netrc.as_deref()?, host)?;
            Some((found.login, found.password))
        });
        let value = |text: &str, what: &str| {
            HeaderValue::from_str(text).with_context(|| format!("{what} cannot be sent in an HTTP header"))
        };
        if let Some((user, password)) = login
            && !headers.contains_key(header::AUTHORIZATION)
        {
            headers.insert(header::AUTHORIZATION, value(&basic_authorization(&user, &password), "the login")?);
        }
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if let Some(cookies) = cookie_header(&self.cookies, url, now) {
            let cookies = match headers.get(header::COOKIE).and_then(|given| given.to_str().ok()) {
                Some(given) => format!("{given}; {cookies}"),
                None => cookies,
            };
            headers.insert(header::COOKIE, value(&cookies, "a cookie of --cookies")?);
        }
        Ok(headers)
    }
}

fn parse_url(text: &str) -> anyhow::Result<Url> {
    let url = Url::parse(text)
        .with_context(|| format!("not a valid URL: {text:?} (expected http://host/path or https://...)"))?;
    haul_engine::check_url(&url)?;
    Ok(url)
}

/// The engine's message with what to do about it on this command line. The engine words its errors for every
/// caller (API clients read them too), so it names no flag; the flags are added here, chosen by the variant.
fn with_command_line_hint(error: &EngineError, tools: &MediaTools) -> String {
    match error {
        EngineError::AlreadyExists(path) => {
            format!("{} already exists; pass --overwrite to replace it or -o to choose another name", shown(path))
        }
        EngineError::InUse(path) => {
            format!("another haul is already downloading {}; let it finish, or stop it first", shown(path))
        }
        EngineError::Io { path, source } => match source.kind() {
            // Completed ranges are kept, so the same command continues where this one stopped.
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
                format!("{}: {source}; free some space, then run the same command again to resume", path.display())
            }
            std::io::ErrorKind::PermissionDenied => format!("{error}; save somewhere else with -d DIR"),
            // -o - into a pipe whose reader stopped (`| head`): the rest has nowhere to go.
            std::io::ErrorKind::BrokenPipe => format!("{} was closed before the end of the download", path.display()),
            _ => error.to_string(),
        },
        EngineError::Certificate { .. } => format!(
            "{error}; pass --ca-cert FILE with that authority's certificate (PEM), or --insecure to skip the check"
        ),
        EngineError::Remote { status: 401 | 403, .. } => format!("{error}; send one with --header 'Name: Value'"),
        EngineError::Media(message) => {
            // A missing program reaches here as `Media`, whose only content is its text: the engine words that
            // case in one place (`MediaTools::yt_dlp` and friends), so its text is matched here, and only for a
            // program that this run indeed has not got.
            let flag = [
                (tools.yt_dlp.is_none(), "yt-dlp", "--yt-dlp PATH"),
                (tools.ffmpeg.is_none(), "ffmpeg", "--ffmpeg PATH"),
                (tools.ffprobe.is_none(), "ffprobe", "--ffmpeg PATH (ffprobe is looked for beside it)"),
            ]
            .into_iter()
            .find(|(absent, program, _)| *absent && message.contains(&format!("{program} was not found")))
            .map(|(_, _, flag)| flag);
            match flag {
                Some(flag) => format!("{message}; if it is installed elsewhere, pass {flag}"),
                None => message.clone(),
            }
        }
        _ => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::io::ErrorKind;
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn output_flags_choose_a_file_a_directory_or_stdout() {
        use clap::Parser as _;
        #[derive(clap::Parser)]
        struct Get {
            #[command(flatten)]
            args: GetArgs,
        }
        let existing = tempfile::tempdir().unwrap();
        let existing = existing.path().to_str().unwrap();
        let cases: Vec<(Vec<&str>, Output)> = vec![
            (vec![], Output::Dir(PathBuf::from("."))),
            (vec!["-d", "d"], Output::Dir(PathBuf::from("d"))),
            (vec!["-o", "f.bin"], Output::File(PathBuf::from("f.bin"))),
            (vec!["-o", "new/f.bin"], Output::File(PathBuf::from("new/f.bin"))),
            (vec!["-o", "new/"], Output::Dir(PathBuf::from("new/"))),
            (vec!["-o", existing], Output::Dir(PathBuf::from(existing))),
            (vec!["-o", "-"], Output::Stdout),
            (vec!["-o", "./-"], Output::File(PathBuf::from("./-"))),
        ];
        for (flags, expected) in cases {
            let get = Get::parse_from(["get"].into_iter().chain(flags.iter().copied()).chain(["http://h/f"]));
            assert_eq!(Output::of(&get.args), expected, "{flags:?}");
        }
    }

    #[test]
    fn engine_errors_gain_the_flags_that_fix_them() {
        let io = |kind: ErrorKind| EngineError::Io { path: PathBuf::from("d/x.bin"), source: kind.into() };
        let remote = |status: u16| EngineError::Remote { url: "http://h/f".into(), status, hint: String::new() };
        let no_tools = MediaTools::none();
        let cases: Vec<(EngineError, &str)> = vec![
            (EngineError::AlreadyExists(PathBuf::from("x.bin")), "x.bin already exists; pass --overwrite"),
            (io(ErrorKind::StorageFull), "run the same command again to resume"),
            (io(ErrorKind::PermissionDenied), "-d DIR"),
            (remote(401), "--header"),
            (remote(403), "--header"),
            (EngineError::Media(no_tools.yt_dlp().unwrap_err()), "--yt-dlp PATH"),
            (EngineError::Media(format!("merging: {}", no_tools.ffmpeg().unwrap_err())), "--ffmpeg PATH"),
            (EngineError::InUse(PathBuf::from("./x.bin")), "another haul is already downloading x.bin;"),
            (
                EngineError::Certificate { url: "https://h/f".into(), host: "h".into(), reason: "expired".into() },
                "(expired); check the URL, or trust the authority that signed it; pass --ca-cert FILE",
            ),
            (
                EngineError::Io { path: PathBuf::from("stdout"), source: ErrorKind::BrokenPipe.into() },
                "stdout was closed before the end of the download",
            ),
        ];
        for (error, expected) in cases {
            let shown = with_command_line_hint(&error, &no_tools);
            assert!(shown.contains(expected), "{error:?}: expected {expected:?} in {shown:?}");
        }
        // Errors no flag fixes are shown as the engine words them.
        for error in [remote(404), io(ErrorKind::Other), EngineError::Media("the page is a playlist".into())] {
            assert_eq!(with_command_line_hint(&error, &no_tools), error.to_string());
        }
        // A program this run has is not the one missing, whatever the text says.
        let with_ytdlp = MediaTools { yt_dlp: Some(PathBuf::from("/bin/yt-dlp")), ..MediaTools::none() };
        let error = EngineError::Media(no_tools.yt_dlp().unwrap_err());
        assert_eq!(with_command_line_hint(&error, &with_ytdlp), error.to_string());
    }
}
