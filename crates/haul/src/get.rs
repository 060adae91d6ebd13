//! `haul get`: download URLs directly, with a progress bar, resuming what an earlier run left.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use haul_core::job::JobKind;
use haul_core::media::Quality;
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
    let header_pairs = args
        .headers
        .iter()
        .map(|line| haul_engine::parse_header_line(line))
        .collect::<Result<Vec<(String, String)>, String>>()
        .map_err(anyhow::Error::msg)?;
    let headers = haul_engine::header_map(header_pairs.iter().map(|(name, value)| (name.as_str(), value.as_str())))
        .map_err(anyhow::Error::msg)?;
    let mut client_options = ClientOptions::default();
    if let Some(user_agent) = &args.user_agent {
        client_options.user_agent = user_agent.clone();
    }
    if let Some(secs) = args.timeout {
        client_options.read_timeout = std::time::Duration::from_secs(secs);
    }
    if let Some(secs) = args.connect_timeout {
        client_options.connect_timeout = std::time::Duration::from_secs(secs);
    }
    let client = HttpClient::new(&client_options)?;
    let display = Display::choose(args.quiet);

    let cancel = CancellationToken::new();
    // Ctrl-C or SIGTERM pauses: the engine saves completed ranges and the command exits with status 130.
    haul_engine::task::spawn(tracing::info_span!("signals"), {
        let cancel = cancel.clone();
        async move {
            crate::signals::interrupted().await;
            cancel.cancel();
        }
    });

    let media_wanted = args.kind != JobKind::File || args.audio;
    let tools = if media_wanted { media_tools(args.yt_dlp.clone(), args.ffmpeg.clone())? } else { MediaTools::none() };
    if args.kind == JobKind::Media && tools.yt_dlp.is_none() {
        bail!("--kind media needs yt-dlp: install it (pip install yt-dlp) or pass --yt-dlp PATH");
    }
    // A quality is only for a video page: without yt-dlp the page itself would be saved as if it were the video.
    if args.quality.is_some_and(|quality| quality != Quality::Best) && tools.yt_dlp.is_none() {
        bail!("--quality needs yt-dlp to read the video page: install it (pip install yt-dlp) or pass --yt-dlp PATH");
    }
    if args.audio && (tools.ffmpeg.is_none() || tools.ffprobe.is_none()) {
        bail!("--audio needs ffmpeg and ffprobe: install ffmpeg or pass --ffmpeg PATH");
    }
    let quality = if args.audio { Quality::Audio } else { args.quality.unwrap_or(Quality::Best) };

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
        options.rate_limit = crate::cli::limit(args.limit_rate);
        options.checksum = args.checksum.clone();
        options.headers = headers.clone();
        if let Some(tries) = args.max_tries {
            options.max_attempts = if tries == 0 { u32::MAX } else { tries };
        }

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
            rate_limit: crate::cli::limit(args.limit_rate),
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
                eprintln!("haul: error: {}", with_command_line_hint(&error, &tools));
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

/// The engine's message with what to do about it on this command line. The engine words its errors for every
/// caller (API clients read them too), so it names no flag; the flags are added here, chosen by the variant.
fn with_command_line_hint(error: &EngineError, tools: &MediaTools) -> String {
    match error {
        EngineError::AlreadyExists(path) => {
            format!("{} already exists; pass --overwrite to replace it or -o to choose another name", path.display())
        }
        EngineError::Io { path, source } => match source.kind() {
            // Completed ranges are kept, so the same command continues where this one stopped.
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
                format!("{}: {source}; free some space, then run the same command again to resume", path.display())
            }
            std::io::ErrorKind::PermissionDenied => format!("{error}; save somewhere else with -d DIR"),
            _ => error.to_string(),
        },
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
