//! `haul add`: queue downloads on the server, one `CreateDownload` per URL.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use haul_api::wire::{CreateDownload, Download, Rate};
use haul_core::checksum::ChecksumSpec;
use haul_core::job::JobKind;
use haul_core::media::Quality;
use reqwest::Method;
use serde_json::Value;

use super::{Client, RemoteArgs, decode, exit_code, pretty, report_or_stop};
use crate::cli::parse_video_quality;

/// `haul add`: queue downloads on the server.
#[derive(Debug, clap::Args)]
pub struct AddArgs {
    /// The URLs to download (http or https); each becomes one download on the server.
    #[arg(value_name = "URL", required_unless_present = "input_file")]
    pub urls: Vec<String>,

    /// Also read URLs from FILE, one per line; blank lines and lines starting with '#' are skipped; '-' reads
    /// standard input (as haul get -i, wget -i and aria2c -i).
    #[arg(short = 'i', long, alias = "batch", value_name = "FILE")]
    pub input_file: Option<PathBuf>,

    /// Print nothing but errors (without it, the ID of each download made, one per line).
    #[arg(short, long, conflicts_with = "json")]
    pub quiet: bool,

    /// Save as this file name (only with one URL).
    #[arg(short = 'o', long, value_name = "NAME")]
    pub filename: Option<String>,

    /// Save into this directory, relative to the server's downloads directory.
    #[arg(short = 'd', long, value_name = "DIR")]
    pub directory: Option<String>,

    /// Verify the finished file: sha256=HEX, sha1=HEX or md5=HEX (only with one URL).
    #[arg(long, value_name = "ALGO=HEX", value_parser = parse_checksum)]
    pub checksum: Option<String>,

    /// Send this request header to the origin, e.g. -H 'Cookie: a=b' (repeatable).
    #[arg(short = 'H', long = "header", value_name = "'NAME: VALUE'")]
    pub headers: Vec<String>,

    /// Use at most this many connections per file [default: adaptive].
    #[arg(short = 'c', long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub connections: Option<u32>,

    /// Limit the speed of each download, e.g. 500K, 5M, 1.5G (bytes per second, powers of 1024); 0 is no limit.
    #[arg(long, value_name = "RATE", value_parser = crate::cli::parse_limit)]
    pub limit_rate: Option<u64>,

    /// Higher runs first.
    #[arg(long, value_name = "N", default_value_t = 0, allow_negative_numbers = true)]
    pub priority: i32,

    /// Create the downloads paused: nothing is fetched until `haul resume`.
    #[arg(long)]
    pub paused: bool,

    /// Another URL serving the same file (only with one URL; repeatable).
    #[arg(long = "mirror", value_name = "URL")]
    pub mirrors: Vec<String>,

    /// For video pages: best, a height such as 1080p, 720p or 240 (the best at or under it, else the smallest
    /// there is), or worst (the smallest video). `haul formats URL` shows what each picks.
    #[arg(long, value_name = "QUALITY", value_parser = parse_video_quality, conflicts_with = "audio")]
    pub quality: Option<Quality>,

    /// Only the sound, as an m4a file (from a video page or a video file; needs ffmpeg on the server).
    #[arg(long)]
    pub audio: bool,

    /// What fetches it: auto (a video page yt-dlp can read is media, anything else a file), file or media.
    #[arg(long, value_name = "KIND", value_parser = crate::cli::parse_kind)]
    pub kind: Option<JobKind>,

    /// For video pages: how to name the file, with fields in braces: '{title} [{id}].{ext}' (title, id,
    /// uploader, date, height, ext, playlist, playlist_index). Default: '{title}__{id}.{ext}'.
    #[arg(long, value_name = "TEMPLATE", value_parser = crate::cli::checked_name_template)]
    pub name: Option<String>,

    /// For a playlist or channel: which entries to download, by position from 1 (1-5,8,12-). Each entry
    /// becomes a download of its own under the playlist's.
    #[arg(long, value_name = "ITEMS", value_parser = crate::cli::parse_playlist_items)]
    pub playlist_items: Option<haul_core::playlist::PlaylistItems>,
    #[command(flatten)]
    pub media: crate::cli::MediaFlags,
    /// Download it even if the account's archive says it was downloaded already (the same video, or the same
    /// version of the same file). Without it such a URL is skipped with a message; `haul archive ls` lists what
    /// the archive holds.
    #[arg(long)]
    pub force: bool,

    /// Print the created downloads as a JSON array instead of their IDs.
    #[arg(long)]
    pub json: bool,
}

/// Checked here so a typo fails before anything is sent; the server gets the text as typed.
fn parse_checksum(text: &str) -> Result<String, String> {
    text.parse::<ChecksumSpec>().map(|_| text.to_owned()).map_err(|error| error.to_string())
}

pub async fn add(remote: RemoteArgs, args: AddArgs) -> anyhow::Result<ExitCode> {
    let mut urls = args.urls.clone();
    if let Some(input) = &args.input_file {
        urls.extend(read_batch(input)?);
    }
    if urls.is_empty() {
        bail!("no URLs to add: give URLs on the command line or in the -i file");
    }
    if urls.len() > 1 {
        for (given, flag) in [
            (args.filename.is_some(), "-o/--filename"),
            (args.checksum.is_some(), "--checksum"),
            (!args.mirrors.is_empty(), "--mirror"),
        ] {
            if given {
                bail!("{flag} applies to one file, but {} URLs were given; add them one at a time", urls.len());
            }
        }
    }
    let headers = parse_headers(&args.headers)?;
    let client = Client::new(&remote)?;

    // The server's JSON of each download made, for --json.
    let mut created: Vec<Value> = Vec::new();
    let mut failed = false;
    for url in &urls {
        let request = create_request(&args, url, &headers);
        let answer = match client.call_with(Method::POST, "/v1/downloads", &request).await {
            Ok(answer) => answer,
            // In the archive: skipped, as yt-dlp skips what its --download-archive holds; not a failure.
            Err(error) if let Some(message) = already_downloaded(&error) => {
                if !args.quiet {
                    eprintln!("haul: skipped {url}: {message}");
                }
                continue;
            }
            Err(error) => {
                report_or_stop(url, error)?;
                failed = true;
                continue;
            }
        };
        let download: Download = decode(&answer, "a download")?;
        if !args.json && !args.quiet {
            println!("{}", download.id);
        }
        created.push(answer);
    }
    if args.json {
        println!("{}", pretty(&Value::Array(created)));
    }
    Ok(exit_code(failed))
}

/// The request for one URL; options the user did not give are left out, so the server's defaults apply.
fn create_request(args: &AddArgs, url: &str, headers: &BTreeMap<String, String>) -> CreateDownload {
    let quality = if args.audio { Some(Quality::Audio) } else { args.quality };
    CreateDownload {
        url: url.to_owned(),
        mirrors: args.mirrors.clone(),
        filename: args.filename.clone(),
        directory: args.directory.clone(),
        checksum: args.checksum.clone(),
        headers: headers.clone(),
        connections: args.connections,
        speed_limit: crate::cli::limit(args.limit_rate).map(Rate::BytesPerSecond),
        priority: args.priority,
        paused: args.paused,
        title: None,
        quality: quality.map(|quality| quality.to_string()),
        kind: args.kind.map(|kind| kind.to_string()),
        playlist_items: args.playlist_items.as_ref().map(ToString::to_string),
        name_template: args.name.clone(),
        prefer: args.media.prefer.map(|prefer| prefer.to_string()),
        vcodec: args.media.vcodec.map(|vcodec| vcodec.to_string()),
        format: args.media.format.as_ref().map(ToString::to_string),
        subtitles: args.media.subs.iter().flat_map(|langs| &langs.0).map(|lang| lang.as_str().to_owned()).collect(),
        auto_subtitles: args.media.auto_subs,
        embed_subtitles: args.media.embed_subs,
        // Left out unless given: the server's default (on) applies.
        embed_metadata: (args.media.embed_metadata || args.media.no_embed_metadata)
            .then(|| args.media.embed_metadata_or(true)),
        force: args.force,
    }
}

/// The server's `already_downloaded` answer, told in this command's words: which download, and the flags.
fn already_downloaded(error: &anyhow::Error) -> Option<String> {
    let error = error.downcast_ref::<super::ServerError>()?;
    if error.code.as_deref() != Some("already_downloaded") {
        return None;
    }
    // The server's message ends with what to do in the API's terms; these are the command line's.
    let what = error.message.split_once("; add it with force").map_or(error.message.as_str(), |(what, _)| what);
    Some(format!("{what}; pass --force to download it again (haul archive ls lists what was downloaded)"))
}

/// URLs from a `--batch` file (or standard input for `-`): one per line, blank lines and `#` comments skipped.
fn read_batch(path: &Path) -> anyhow::Result<Vec<String>> {
    let text = if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("cannot read URLs from standard input")?;
        text
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read the batch file {}", path.display()))?
    };
    Ok(batch_urls(&text))
}

fn batch_urls(text: &str) -> Vec<String> {
    text.lines().map(str::trim).filter(|line| !line.is_empty() && !line.starts_with('#')).map(str::to_owned).collect()
}

/// `Name: Value` lines from `-H`, checked here so a typo fails before anything is sent. The API takes headers as
/// a JSON object, so a repeated name is sent once with its values joined by ", ", as HTTP allows.
fn parse_headers(lines: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for line in lines {
        let (name, value) = haul_engine::parse_header_line(line).map_err(anyhow::Error::msg)?;
        headers
            .entry(name)
            .and_modify(|existing| {
                existing.push_str(", ");
                existing.push_str(&value);
            })
            .or_insert(value);
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_skips_blank_lines_and_comments() {
        let text = "# list\nhttp://a/1\n\n   \n  http://a/2  \n#http://a/3\n";
        assert_eq!(batch_urls(text), ["http://a/1", "http://a/2"]);
    }

    #[test]
    fn headers_are_checked_and_repeats_joined() {
        let headers = parse_headers(&["Cookie: a=b".to_owned(), "cookie: c=d".to_owned()]).unwrap();
        assert_eq!(headers.len(), 2, "names are kept as typed: {headers:?}");
        let headers = parse_headers(&["X-A: 1".to_owned(), "X-A: 2".to_owned()]).unwrap();
        assert_eq!(headers["X-A"], "1, 2");
        assert!(parse_headers(&["no colon".to_owned()]).is_err());
        assert!(parse_headers(&["bad name: x".to_owned()]).is_err());
    }
}
