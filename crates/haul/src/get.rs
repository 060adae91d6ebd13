//! `haul get`: download URLs directly, with a progress bar, resuming what an earlier run left.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use haul_core::job::JobKind;
use haul_core::media::Quality;
use haul_engine::header::{HeaderMap, HeaderName, HeaderValue};
use haul_engine::{
    CancellationToken, ClientOptions, DownloadOptions, EngineError, HttpClient, MediaRequest, MediaTools, Progress,
    Target,
};
use url::Url;

use crate::cli::{GetArgs, media_tools};
use crate::progress_ui::{Display, ProgressUi};

/// Exit status after Ctrl-C: the conventional 128 + SIGINT, so scripts can tell a pause from a failure.
const EXIT_PAUSED: u8 = 130;

pub async fn run(args: GetArgs) -> anyhow::Result<ExitCode> {
    if args.output.is_some() && args.urls.len() > 1 {
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
    let headers = parse_headers(&args.headers)?;
    let mut client_options = ClientOptions::default();
    if let Some(user_agent) = &args.user_agent {
        client_options.user_agent = user_agent.clone();
    }
    let client = HttpClient::new(&client_options)?;
    let display = Display::choose(args.quiet);

    let cancel = CancellationToken::new();
    tokio::spawn(pause_on_signal(cancel.clone()));

    let media_wanted = args.kind != JobKind::File || args.audio;
    let tools = if media_wanted { media_tools(args.yt_dlp.clone(), args.ffmpeg.clone())? } else { MediaTools::none() };
    if args.kind == JobKind::Media && tools.yt_dlp.is_none() {
        bail!("--kind media needs yt-dlp: install it (pip install yt-dlp) or pass --yt-dlp PATH");
    }
    if args.audio && (tools.ffmpeg.is_none() || tools.ffprobe.is_none()) {
        bail!("--audio needs ffmpeg and ffprobe: install ffmpeg or pass --ffmpeg PATH");
    }
    let quality = if args.audio { Quality::Audio } else { args.quality.unwrap_or(Quality::Best) };
    let header_pairs: Vec<(String, String)> =
        headers.iter().map(|(name, value)| (name.to_string(), value.to_str().unwrap_or_default().to_owned())).collect();

    let mut failed = 0;
    for url in urls {
        let target = match (&args.output, &args.dir) {
            (Some(file), _) => Target::File(file.clone()),
            (None, Some(dir)) => Target::Dir(dir.clone()),
            (None, None) => Target::Dir(PathBuf::from(".")),
        };
        let mut options = DownloadOptions::new(url.clone(), target);
        options.mirrors = mirrors.clone();
        options.overwrite = args.overwrite;
        options.connections = args.connections.map(usize::from);
        options.rate_limit = args.limit_rate;
        options.checksum = args.checksum.clone();
        options.headers = headers.clone();

        let progress = Arc::new(Progress::default());
        let ui = ProgressUi::start(progress.clone(), url.to_string(), display);
        let media = MediaRequest {
            url: url.to_string(),
            media: match args.kind {
                JobKind::Media => Some(true),
                JobKind::File => Some(false),
                JobKind::Auto => None,
            },
            quality,
            headers: header_pairs.clone(),
            dir: match (&args.output, &args.dir) {
                (Some(file), _) => file.parent().map(PathBuf::from).unwrap_or_else(|| PathBuf::from(".")),
                (None, Some(dir)) => dir.clone(),
                (None, None) => PathBuf::from("."),
            },
            rate_limit: args.limit_rate,
            connections: args.connections.map(usize::from),
        };
        let result = match if media_wanted {
            haul_engine::get_media(&client, &tools, &media, &progress, &cancel).await
        } else {
            Ok(None)
        } {
            Ok(Some(done)) => match &args.output {
                // A media file is named after its title; -o names it.
                Some(output) if *output != done.path => std::fs::rename(&done.path, output)
                    .map(|()| haul_engine::Downloaded { path: output.clone(), ..done })
                    .map_err(|error| EngineError::Media(format!("cannot move it to {}: {error}", output.display()))),
                _ => Ok(done),
            },
            Ok(None) => haul_engine::download(client.clone(), options, progress.clone(), cancel.clone()).await,
            Err(error) => Err(error),
        };
        ui.finish().await;
        match result {
            Ok(downloaded) => {
                if !args.quiet {
                    let resumed = if downloaded.resumed_bytes > 0 {
                        format!(", {} of it resumed", haul_core::units::format_bytes(downloaded.resumed_bytes))
                    } else {
                        String::new()
                    };
                    eprintln!(
                        "saved {} ({}{resumed})",
                        downloaded.path.display(),
                        haul_core::units::format_bytes(downloaded.size)
                    );
                }
            }
            Err(EngineError::Cancelled) => {
                let snapshot = progress.snapshot();
                let name = snapshot.destination.map_or_else(|| url.to_string(), |path| path.display().to_string());
                let total = snapshot.total.map_or_else(|| "?".to_owned(), haul_core::units::format_bytes);
                eprintln!(
                    "haul: paused {name} at {} of {total}; run the same command again to resume",
                    haul_core::units::format_bytes(snapshot.done)
                );
                return Ok(ExitCode::from(EXIT_PAUSED));
            }
            Err(error) => {
                eprintln!("haul: error: {error}");
                failed += 1;
            }
        }
    }
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn parse_url(text: &str) -> anyhow::Result<Url> {
    let url = Url::parse(text)
        .with_context(|| format!("not a valid URL: {text:?} (expected http://host/path or https://...)"))?;
    haul_engine::check_url(&url)?;
    Ok(url)
}

/// `Name: Value` lines from `-H`, validated here so a typo fails before any connection opens.
fn parse_headers(lines: &[String]) -> anyhow::Result<HeaderMap> {
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            bail!("header must look like 'Name: Value', got {line:?}");
        };
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .with_context(|| format!("invalid header name in {line:?}"))?;
        let value = HeaderValue::from_str(value.trim()).with_context(|| format!("invalid header value in {line:?}"))?;
        headers.append(name, value);
    }
    Ok(headers)
}

/// Ctrl-C or SIGTERM pauses: the engine saves completed ranges and the command exits with status 130.
async fn pause_on_signal(cancel: CancellationToken) {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => {
                let _ = interrupt.await;
                cancel.cancel();
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    cancel.cancel();
}
