//! The client commands `haul add`, `ls`, `pause`, `resume` and `rm`: they drive a running `haul serve` over
//! its native `/v1` JSON API with the server's bearer token.
//!
//! Every command resolves the token first (`--token`, `HAUL_TOKEN`, else `<data-dir>/token`), accepts download
//! IDs as unique prefixes, reports a failure per ID as `haul: error: <id>: <server message>` and carries on
//! with the rest, and exits 1 if anything failed. An unreachable server stops the command at once: every
//! further request would fail the same way.

use std::collections::{BTreeMap, HashSet};
use std::fmt::{self, Write as _};
use std::io::{IsTerminal as _, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use haul_core::checksum::ChecksumSpec;
use haul_core::units::{format_bytes, format_duration, format_rate};
use haul_engine::header::{HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

/// Where the server is and how to authenticate to it; flattened into every client command.
#[derive(Debug, clap::Args)]
pub struct RemoteArgs {
    /// Base URL of the haul server.
    #[arg(long, env = "HAUL_HOST", default_value = "http://127.0.0.1:1700", global = true, value_name = "URL")]
    pub host: String,

    /// API token [default: read from <DATA_DIR>/token].
    #[arg(long, env = "HAUL_TOKEN", global = true, hide_env_values = true, value_name = "TOKEN")]
    pub token: Option<String>,

    /// Data directory of the server, whose token file is read when no token is given.
    #[arg(long, env = "HAUL_DATA_DIR", default_value = "haul-data", global = true, value_name = "DIR")]
    pub data_dir: PathBuf,
}

/// `haul add`: queue downloads on the server.
#[derive(Debug, clap::Args)]
pub struct AddArgs {
    /// The URLs to download (http or https); each becomes one download on the server.
    #[arg(value_name = "URL", required_unless_present = "batch")]
    pub urls: Vec<String>,

    /// Also read URLs from FILE, one per line; blank lines and lines starting with '#' are skipped; '-' reads
    /// standard input.
    #[arg(long, value_name = "FILE")]
    pub batch: Option<PathBuf>,

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

    /// Limit the speed of each download, e.g. 500K, 5M, 1.5G (bytes per second, powers of 1024).
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
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

    /// For video pages: best, 2160p, 1440p, 1080p, 720p, 480p or 360p (the best at or under that height).
    #[arg(short = 'q', long, value_name = "QUALITY", value_parser = parse_quality, conflicts_with = "audio")]
    pub quality: Option<String>,

    /// Only the sound, as an m4a file (from a video page or a video file; needs ffmpeg on the server).
    #[arg(long)]
    pub audio: bool,

    /// What fetches it: auto (a video page yt-dlp can read is media, anything else a file), file or media.
    #[arg(long, value_name = "KIND", value_parser = ["auto", "file", "media"])]
    pub kind: Option<String>,

    /// Print the created downloads as a JSON array instead of their IDs.
    #[arg(long)]
    pub json: bool,
}

/// `haul ls`: list downloads, or show one.
#[derive(Debug, clap::Args)]
pub struct LsArgs {
    /// Show only this download (an ID or a unique prefix of one).
    #[arg(value_name = "ID")]
    pub id: Option<String>,

    /// Only downloads in this state.
    #[arg(long, value_name = "STATE", conflicts_with = "id",
        value_parser = ["queued", "active", "paused", "completed", "failed", "cancelled"])]
    pub state: Option<String>,

    /// Print the server's JSON.
    #[arg(long, conflicts_with = "watch")]
    pub json: bool,

    /// Redraw every second, with progress bars, until Ctrl-C.
    #[arg(short, long)]
    pub watch: bool,

    /// Show at most this many downloads (newest first).
    #[arg(long, value_name = "N", conflicts_with = "id")]
    pub limit: Option<u32>,
}

/// `haul pause` and `haul resume`: the downloads to act on.
#[derive(Debug, clap::Args)]
pub struct IdsArgs {
    /// Download IDs, or unique prefixes of them.
    #[arg(value_name = "ID", required_unless_present = "all", conflicts_with = "all")]
    pub ids: Vec<String>,

    /// Every download this applies to (for pause: queued and active ones; for resume: paused ones).
    #[arg(long)]
    pub all: bool,
}

/// `haul rm`: forget downloads on the server (stopping them if they run).
#[derive(Debug, clap::Args)]
pub struct RmArgs {
    /// Download IDs, or unique prefixes of them.
    #[arg(value_name = "ID", required = true)]
    pub ids: Vec<String>,

    /// Also delete the finished files (partial files are always removed).
    #[arg(long)]
    pub delete_files: bool,
}

fn parse_rate(text: &str) -> Result<u64, String> {
    haul_core::units::parse_rate(text).map_err(|error| error.to_string())
}

/// Checked here so a typo fails before anything is sent; the server gets the text as typed.
fn parse_checksum(text: &str) -> Result<String, String> {
    text.parse::<ChecksumSpec>().map(|_| text.to_owned()).map_err(|error| error.to_string())
}

// ---------------------------------------------------------------------------------------------------------------
// Commands

/// A video quality as `--quality` takes it (audio has its own flag).
fn parse_quality(text: &str) -> Result<String, String> {
    crate::cli::parse_video_quality(text).map(|quality| quality.to_string())
}

pub async fn add(remote: RemoteArgs, args: AddArgs) -> anyhow::Result<ExitCode> {
    let mut urls = args.urls.clone();
    if let Some(batch) = &args.batch {
        urls.extend(read_batch(batch)?);
    }
    if urls.is_empty() {
        bail!("no URLs to add: give URLs on the command line or in the --batch file");
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

    let mut created = Vec::new();
    let mut failed = false;
    for url in &urls {
        let mut body = json!({
            "url": url,
            "mirrors": args.mirrors,
            "headers": headers,
            "priority": args.priority,
            "paused": args.paused,
        });
        for (key, value) in [
            ("filename", args.filename.clone().map(Value::from)),
            ("directory", args.directory.clone().map(Value::from)),
            ("checksum", args.checksum.clone().map(Value::from)),
            ("connections", args.connections.map(Value::from)),
            ("speed_limit", args.limit_rate.map(Value::from)),
            ("quality", if args.audio { Some("audio".into()) } else { args.quality.clone().map(Value::from) }),
            ("kind", args.kind.clone().map(Value::from)),
        ] {
            if let Some(value) = value {
                body[key] = value;
            }
        }
        match client.call(Method::POST, "/v1/downloads", Some(&body)).await {
            Ok(job) => {
                if !args.json {
                    println!("{}", job["id"].as_str().unwrap_or("?"));
                }
                created.push(job);
            }
            Err(error) if error.is::<Unreachable>() => return Err(error),
            Err(error) => {
                eprintln!("haul: error: {url}: {error:#}");
                failed = true;
            }
        }
    }
    if args.json {
        println!("{}", pretty(&Value::Array(created)));
    }
    Ok(exit_code(failed))
}

pub async fn ls(remote: RemoteArgs, args: LsArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&remote)?;
    let mut resolver = Resolver::default();
    let id = match &args.id {
        None => None,
        Some(given) => match resolver.resolve(&client, given).await {
            Ok(id) => Some(id),
            Err(error) if error.is::<Unreachable>() => return Err(error),
            Err(error) => {
                eprintln!("haul: error: {given}: {error:#}");
                return Ok(ExitCode::FAILURE);
            }
        },
    };

    if !args.watch {
        return match &id {
            Some(id) => {
                let job = client.call(Method::GET, &format!("/v1/downloads/{id}"), None).await?;
                if args.json {
                    println!("{}", pretty(&job));
                } else {
                    print!("{}", render_detail(&Download::from_value(&job)?));
                }
                Ok(ExitCode::SUCCESS)
            }
            None => {
                let list = client.list(args.state.as_deref(), args.limit).await?;
                if args.json {
                    println!("{}", pretty(&list));
                } else {
                    print!("{}", render_table(&downloads_of(&list)?, total_of(&list), false));
                }
                Ok(ExitCode::SUCCESS)
            }
        };
    }

    let terminal = std::io::stdout().is_terminal();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let screen = match &id {
            Some(id) => {
                let job = client.call(Method::GET, &format!("/v1/downloads/{id}"), None).await?;
                render_detail(&Download::from_value(&job)?)
            }
            None => {
                let list = client.list(args.state.as_deref(), args.limit).await?;
                render_table(&downloads_of(&list)?, total_of(&list), true)
            }
        };
        let mut out = std::io::stdout().lock();
        // Home and clear on a terminal; a pipe gets one snapshot after another, separated by a blank line.
        let written = if terminal { write!(out, "\x1b[H\x1b[2J{screen}") } else { writeln!(out, "{screen}") };
        if written.and_then(|()| out.flush()).is_err() {
            // The reader went away (e.g. `| head`): nothing left to do.
            return Ok(ExitCode::SUCCESS);
        }
        drop(out);
        tokio::select! {
            _ = &mut ctrl_c => return Ok(ExitCode::SUCCESS),
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

pub async fn pause(remote: RemoteArgs, args: IdsArgs) -> anyhow::Result<ExitCode> {
    act(remote, args, Action::Pause).await
}

pub async fn resume(remote: RemoteArgs, args: IdsArgs) -> anyhow::Result<ExitCode> {
    act(remote, args, Action::Resume).await
}

pub async fn rm(remote: RemoteArgs, args: RmArgs) -> anyhow::Result<ExitCode> {
    let action = Action::Remove { delete_files: args.delete_files };
    act(remote, IdsArgs { ids: args.ids, all: false }, action).await
}

#[derive(Clone, Copy, Debug)]
enum Action {
    Pause,
    Resume,
    Remove { delete_files: bool },
}

impl Action {
    /// States `--all` selects: those the action is legal from.
    fn applies_to(self, state: &str) -> bool {
        match self {
            Self::Pause => matches!(state, "queued" | "active"),
            Self::Resume => state == "paused",
            Self::Remove { .. } => true,
        }
    }

    fn request(self, id: &str) -> (Method, String) {
        match self {
            Self::Pause => (Method::POST, format!("/v1/downloads/{id}/pause")),
            Self::Resume => (Method::POST, format!("/v1/downloads/{id}/resume")),
            Self::Remove { delete_files } => {
                (Method::DELETE, format!("/v1/downloads/{id}?delete_files={delete_files}"))
            }
        }
    }

    fn done(self) -> &'static str {
        match self {
            Self::Pause => "paused",
            Self::Resume => "resumed",
            Self::Remove { delete_files: false } => "removed",
            Self::Remove { delete_files: true } => "removed (with its file)",
        }
    }

    fn verb(self) -> &'static str {
        match self {
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Remove { .. } => "remove",
        }
    }
}

/// Resolves the IDs (or, with `--all`, picks the downloads the action applies to), then acts on each one,
/// reporting failures per ID.
async fn act(remote: RemoteArgs, args: IdsArgs, action: Action) -> anyhow::Result<ExitCode> {
    let client = Client::new(&remote)?;
    let mut failed = false;
    // (what the user typed, the full ID)
    let mut targets: Vec<(String, String)> = Vec::new();
    if args.all {
        let list = client.list(None, None).await?;
        for download in downloads_of(&list)? {
            if action.applies_to(&download.state) {
                targets.push((download.id.clone(), download.id));
            }
        }
        if targets.is_empty() {
            eprintln!("haul: nothing to {}", action.verb());
        }
    } else {
        let mut resolver = Resolver::default();
        let mut seen = HashSet::new();
        for given in &args.ids {
            match resolver.resolve(&client, given).await {
                Ok(id) => {
                    if seen.insert(id.clone()) {
                        targets.push((given.clone(), id));
                    }
                }
                Err(error) if error.is::<Unreachable>() => return Err(error),
                Err(error) => {
                    eprintln!("haul: error: {given}: {error:#}");
                    failed = true;
                }
            }
        }
    }

    for (given, id) in targets {
        let (method, path) = action.request(&id);
        match client.call(method, &path, None).await {
            Ok(job) => {
                let download = Download::from_value(&job).ok();
                let name = download.as_ref().map(Download::name).unwrap_or_default();
                println!("{} {}  {name}", action.done(), short(&id));
            }
            Err(error) if error.is::<Unreachable>() => return Err(error),
            // With --all, a download that moved on since the listing (finished, paused elsewhere) is not a
            // failure of this command.
            Err(error) if args.all && error.downcast_ref::<ServerError>().is_some_and(ServerError::is_conflict) => {}
            Err(error) => {
                eprintln!("haul: error: {given}: {error:#}");
                failed = true;
            }
        }
    }
    Ok(exit_code(failed))
}

fn exit_code(failed: bool) -> ExitCode {
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
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

/// `Name: Value` lines from `-H`, checked here so a typo fails before anything is sent; a repeated name is sent
/// once with its values joined by ", ".
fn parse_headers(lines: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            bail!("header must look like 'Name: Value', got {line:?}");
        };
        let (name, value) = (name.trim(), value.trim());
        HeaderName::from_bytes(name.as_bytes()).with_context(|| format!("invalid header name in {line:?}"))?;
        HeaderValue::from_str(value).with_context(|| format!("invalid header value in {line:?}"))?;
        headers
            .entry(name.to_owned())
            .and_modify(|existing| {
                existing.push_str(", ");
                existing.push_str(value);
            })
            .or_insert_with(|| value.to_owned());
    }
    Ok(headers)
}

// ---------------------------------------------------------------------------------------------------------------
// Talking to the server

/// The server could not be reached at all; stops the command rather than failing every ID the same way.
#[derive(Debug)]
struct Unreachable {
    host: String,
    detail: String,
}

impl fmt::Display for Unreachable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot reach the haul server at {}: is `haul serve` running?", self.host)?;
        if !self.detail.is_empty() {
            write!(f, " ({})", self.detail)?;
        }
        Ok(())
    }
}

impl std::error::Error for Unreachable {}

/// The server answered with an error; `message` is the server's own.
#[derive(Debug)]
struct ServerError {
    status: StatusCode,
    message: String,
}

impl ServerError {
    fn is_conflict(&self) -> bool {
        self.status == StatusCode::CONFLICT
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ServerError {}

struct Client {
    http: reqwest::Client,
    /// Without a trailing slash.
    base: String,
    token: String,
}

impl Client {
    fn new(remote: &RemoteArgs) -> anyhow::Result<Self> {
        let base = normalize_host(&remote.host)?;
        let token = resolve_token(remote.token.as_deref(), &remote.data_dir)?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("haul/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot set up the HTTP client")?;
        Ok(Self { http, base, token })
    }

    /// One API request; the JSON answer, or the server's error message.
    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let mut request = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|error| self.transport_error(error))?;
        let status = response.status();
        let text = response.text().await.map_err(|error| self.transport_error(error))?;
        let parsed: Option<Value> = serde_json::from_str(&text).ok();
        if status.is_success() {
            return parsed.with_context(|| {
                format!("the server at {} answered {status} with something other than JSON; is it haul?", self.base)
            });
        }
        let message = parsed
            .as_ref()
            .and_then(|body| body["error"]["message"].as_str())
            .map(str::to_owned)
            .unwrap_or_else(|| format!("the server at {} answered {status}; is it a haul server?", self.base));
        Err(ServerError { status, message }.into())
    }

    async fn list(&self, state: Option<&str>, limit: Option<u32>) -> anyhow::Result<Value> {
        let mut query = Vec::new();
        if let Some(state) = state {
            query.push(format!("state={state}"));
        }
        if let Some(limit) = limit {
            query.push(format!("limit={limit}"));
        }
        let path =
            if query.is_empty() { "/v1/downloads".to_owned() } else { format!("/v1/downloads?{}", query.join("&")) };
        self.call(Method::GET, &path, None).await
    }

    fn transport_error(&self, error: reqwest::Error) -> anyhow::Error {
        if error.is_connect() {
            // "Connection refused" is what the message already says; other causes (DNS, TLS) are worth showing.
            let detail = root_cause(&error);
            let detail = if detail.to_ascii_lowercase().contains("refused") { String::new() } else { detail };
            Unreachable { host: self.base.clone(), detail }.into()
        } else if error.is_timeout() {
            anyhow::anyhow!("the haul server at {} did not answer in time", self.base)
        } else {
            anyhow::anyhow!("request to the haul server at {} failed: {}", self.base, root_cause(&error))
        }
    }
}

fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

/// `host:port` is taken as `http://host:port`; a trailing slash is dropped.
fn normalize_host(host: &str) -> anyhow::Result<String> {
    let host = host.trim();
    let with_scheme = if host.contains("://") { host.to_owned() } else { format!("http://{host}") };
    let url = url::Url::parse(&with_scheme)
        .with_context(|| format!("--host {host:?} is not a URL (expected e.g. http://127.0.0.1:1700)"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        bail!("--host {host:?} must be an http or https URL, e.g. http://127.0.0.1:1700");
    }
    Ok(with_scheme.trim_end_matches('/').to_owned())
}

/// `--token` / `HAUL_TOKEN`, else the server's token file in the data directory.
fn resolve_token(given: Option<&str>, data_dir: &Path) -> anyhow::Result<String> {
    if let Some(token) = given.map(str::trim).filter(|token| !token.is_empty()) {
        return Ok(token.to_owned());
    }
    let path = data_dir.join("token");
    let missing = || {
        anyhow::anyhow!(
            "no API token: pass --token, set HAUL_TOKEN, or run on the server's machine where {} exists \
             (haul token prints it)",
            path.display()
        )
    };
    match std::fs::read_to_string(&path) {
        Ok(text) if text.trim().is_empty() => Err(missing()),
        Ok(text) => Ok(text.trim().to_owned()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Err(missing()),
        Err(error) => Err(error).with_context(|| format!("cannot read the API token from {}", path.display())),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// IDs

/// Turns what the user typed into full download IDs, listing the downloads at most once.
#[derive(Default)]
struct Resolver {
    ids: Option<Vec<String>>,
}

impl Resolver {
    async fn resolve(&mut self, client: &Client, given: &str) -> anyhow::Result<String> {
        let wanted = given.trim().to_ascii_lowercase();
        if wanted.is_empty() {
            bail!("empty download ID");
        }
        if is_full_id(&wanted) {
            return Ok(wanted);
        }
        if self.ids.is_none() {
            let list = client.list(None, None).await?;
            self.ids = Some(downloads_of(&list)?.into_iter().map(|download| download.id).collect());
        }
        let ids = self.ids.as_deref().unwrap_or_default();
        match_prefix(ids, &wanted)
    }
}

/// A whole UUID in its hyphenated form: used as-is, without listing.
fn is_full_id(text: &str) -> bool {
    text.len() == 36
        && text
            .char_indices()
            .all(|(i, c)| if matches!(i, 8 | 13 | 18 | 23) { c == '-' } else { c.is_ascii_hexdigit() })
}

fn match_prefix(ids: &[String], wanted: &str) -> anyhow::Result<String> {
    let matches: Vec<&String> = ids.iter().filter(|id| id.to_ascii_lowercase().starts_with(wanted)).collect();
    match matches.as_slice() {
        [] => bail!("no download matches ID"),
        [one] => Ok((*one).clone()),
        many => {
            const SHOWN: usize = 5;
            let mut names: Vec<&str> = many.iter().take(SHOWN).map(|id| id.as_str()).collect();
            let more = many.len().saturating_sub(SHOWN);
            let rest = if more > 0 { format!(" and {more} more") } else { String::new() };
            names.sort_unstable();
            bail!(
                "ID prefix is ambiguous, it matches {} downloads: {}{rest}; give more characters",
                many.len(),
                names.join(", ")
            )
        }
    }
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

// ---------------------------------------------------------------------------------------------------------------
// Output

/// What the client shows of a download; lenient, so a newer server's extra fields or states do not break it.
#[derive(Debug, Deserialize)]
struct Download {
    id: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    filename: Option<String>,
    #[serde(default)]
    directory: Option<String>,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    bytes_done: u64,
    #[serde(default)]
    speed: u64,
    #[serde(default)]
    eta_secs: Option<u64>,
    #[serde(default)]
    connections: u32,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    mirrors: Vec<String>,
    #[serde(default)]
    checksum: Option<String>,
    #[serde(default)]
    priority: i32,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    quality: String,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    duration: Option<f64>,
    #[serde(default)]
    width: Option<u32>,
    #[serde(default)]
    height: Option<u32>,
    #[serde(default)]
    format: Option<String>,
}

impl Download {
    fn from_value(value: &Value) -> anyhow::Result<Self> {
        Self::deserialize(value).context("the server sent a download in a shape this client does not know")
    }

    fn name(&self) -> String {
        self.filename.clone().unwrap_or_else(|| self.url.clone())
    }

    /// Fraction done, when the size is known.
    fn fraction(&self) -> Option<f64> {
        if self.state == "completed" {
            return Some(1.0);
        }
        match self.size {
            Some(0) => Some(0.0),
            Some(size) => Some((self.bytes_done as f64 / size as f64).clamp(0.0, 1.0)),
            None => None,
        }
    }

    fn percent(&self) -> String {
        match self.fraction() {
            // Floor, so 99.9% does not read as done.
            Some(fraction) => format!("{}%", (fraction * 100.0).floor() as u32),
            None => "-".to_owned(),
        }
    }

    fn size_text(&self) -> String {
        match self.size {
            Some(size) => format_bytes(size),
            None if self.bytes_done > 0 => format!("{}+", format_bytes(self.bytes_done)),
            None => "-".to_owned(),
        }
    }

    fn speed_text(&self) -> String {
        if self.state == "active" { format_rate(self.speed as f64) } else { "-".to_owned() }
    }
}

fn downloads_of(list: &Value) -> anyhow::Result<Vec<Download>> {
    let Some(items) = list["downloads"].as_array() else {
        bail!("the server's download list has no \"downloads\" array; is it a haul server?");
    };
    items.iter().map(Download::from_value).collect()
}

fn total_of(list: &Value) -> Option<u64> {
    list["total"].as_u64()
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

const BAR_WIDTH: usize = 20;

fn bar(fraction: Option<f64>) -> String {
    match fraction {
        Some(fraction) => {
            let filled = ((fraction * BAR_WIDTH as f64).floor() as usize).min(BAR_WIDTH);
            format!("[{}{}]", "#".repeat(filled), "-".repeat(BAR_WIDTH - filled))
        }
        None => format!("[{}]", " ".repeat(BAR_WIDTH)),
    }
}

/// The download table: ID, STATE, PROGRESS, (a bar when watching,) SIZE, SPEED, NAME.
fn render_table(downloads: &[Download], total: Option<u64>, with_bar: bool) -> String {
    if downloads.is_empty() {
        return "no downloads\n".to_owned();
    }
    let mut header = vec!["ID", "STATE", "PROGRESS"];
    if with_bar {
        header.push("");
    }
    header.extend(["SIZE", "SPEED", "NAME"]);
    let mut rows: Vec<Vec<String>> = vec![header.into_iter().map(str::to_owned).collect()];
    for download in downloads {
        let mut row = vec![short(&download.id).to_owned(), download.state.clone(), download.percent()];
        if with_bar {
            row.push(bar(download.fraction()));
        }
        row.extend([download.size_text(), download.speed_text(), download.name()]);
        rows.push(row);
    }
    let columns = rows[0].len();
    let widths: Vec<usize> =
        (0..columns).map(|c| rows.iter().map(|row| row[c].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == columns {
                line.push_str(cell);
            } else {
                // Numbers right-aligned, words left-aligned.
                let right = matches!(rows[0][c].as_str(), "PROGRESS" | "SIZE" | "SPEED");
                let pad = widths[c] - cell.chars().count();
                if right {
                    line.push_str(&" ".repeat(pad));
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    line.push_str(&" ".repeat(pad));
                }
                line.push_str("  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    if let Some(total) = total.filter(|&total| total > downloads.len() as u64) {
        let _ = writeln!(out, "({} of {total} shown; raise --limit for more)", downloads.len());
    }
    out
}

/// One download, field by field.
fn render_detail(download: &Download) -> String {
    let mut out = String::new();
    let mut field = |name: &str, value: &str| {
        let _ = writeln!(out, "{name:<12}{value}");
    };
    field("id", &download.id);
    field("state", &download.state);
    field("name", &download.name());
    field("url", &download.url);
    for mirror in &download.mirrors {
        field("mirror", mirror);
    }
    if let Some(directory) = &download.directory {
        field("directory", directory);
    }
    if download.kind == "media" || download.quality != "best" && !download.quality.is_empty() {
        let mut media = format!("{} ({})", download.kind, download.quality);
        if let (Some(width), Some(height)) = (download.width, download.height) {
            media.push_str(&format!(", {width}x{height}"));
        }
        if let Some(duration) = download.duration {
            media.push_str(&format!(", {}", format_duration(Duration::from_secs_f64(duration.max(0.0)))));
        }
        if let Some(format) = &download.format {
            media.push_str(&format!(", formats {format}"));
        }
        field("media", &media);
    }
    if let Some(title) = &download.title {
        field("title", title);
    }
    let done = format_bytes(download.bytes_done);
    let progress = match download.size {
        Some(size) => format!("{} {} of {} {}", download.percent(), done, format_bytes(size), bar(download.fraction())),
        None => format!("{done} (size unknown)"),
    };
    field("progress", &progress);
    if download.state == "active" {
        field("speed", &download.speed_text());
        if let Some(eta) = download.eta_secs {
            field("eta", &format_duration(Duration::from_secs(eta)));
        }
        field("connections", &download.connections.to_string());
    }
    if download.priority != 0 {
        field("priority", &download.priority.to_string());
    }
    if let Some(checksum) = &download.checksum {
        field("checksum", checksum);
    }
    if let Some(error) = &download.error {
        field("error", error);
    }
    out
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
    fn prefixes_resolve_uniquely_or_say_why_not() {
        let ids = ["3f2a0000-0000-0000-0000-000000000001", "3f2b0000-0000-0000-0000-000000000002"]
            .map(str::to_owned)
            .to_vec();
        assert_eq!(match_prefix(&ids, "3f2a").unwrap(), ids[0]);
        let ambiguous = match_prefix(&ids, "3f2").unwrap_err().to_string();
        assert!(ambiguous.contains("ambiguous") && ambiguous.contains(&ids[0]) && ambiguous.contains(&ids[1]));
        assert_eq!(match_prefix(&ids, "ff").unwrap_err().to_string(), "no download matches ID");
        assert!(is_full_id("3f2a0000-0000-0000-0000-000000000001"));
        assert!(!is_full_id("3f2a0000-0000-0000-0000-00000000000g"));
        assert!(!is_full_id("3f2a"));
    }

    #[test]
    fn hosts_get_a_scheme_and_lose_the_trailing_slash() {
        assert_eq!(normalize_host("127.0.0.1:1700").unwrap(), "http://127.0.0.1:1700");
        assert_eq!(normalize_host("https://h.example/").unwrap(), "https://h.example");
        assert!(normalize_host("ftp://h").is_err());
        assert!(normalize_host("http://").is_err());
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

    #[test]
    fn token_comes_from_the_flag_then_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(resolve_token(Some(" t "), dir.path()).unwrap(), "t");
        let missing = resolve_token(None, dir.path()).unwrap_err().to_string();
        assert!(missing.starts_with("no API token") && missing.contains("token"), "{missing}");
        std::fs::write(dir.path().join("token"), "secret\n").unwrap();
        assert_eq!(resolve_token(None, dir.path()).unwrap(), "secret");
    }

    #[test]
    fn table_shows_progress_and_falls_back_to_the_url() {
        let list = json!({"downloads": [
            {"id": "3f2a5c1e-8b7d-4c2a-9e1f-0a1b2c3d4e5f", "url": "http://h/a.bin", "state": "active",
             "filename": null, "size": 1024, "bytes_done": 512, "speed": 2048},
            {"id": "00000000-8b7d-4c2a-9e1f-0a1b2c3d4e5f", "url": "http://h/b", "state": "queued",
             "filename": "b.iso", "size": null, "bytes_done": 0, "speed": 0},
        ], "total": 3});
        let table = render_table(&downloads_of(&list).unwrap(), total_of(&list), true);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("ID") && lines[0].ends_with("NAME"), "{table}");
        assert!(lines[1].starts_with("3f2a5c1e  active") && lines[1].contains("50%"), "{table}");
        assert!(lines[1].contains("2.0 KiB/s") && lines[1].ends_with("http://h/a.bin"), "{table}");
        assert!(lines[1].contains("[##########----------]"), "{table}");
        assert!(lines[2].ends_with("b.iso"), "{table}");
        assert!(lines[3].contains("2 of 3"), "{table}");
    }
}
