//! The command line: every flag of every command, validated into typed values in one place.

use std::net::SocketAddr;
use std::path::PathBuf;

use haul_core::account::KeyKind;
use haul_core::job::{JobKind, JobState};
use haul_core::media::Quality;
use haul_core::media_choice::{Container, FormatSelector, MediaChoice, SubtitleLang, VideoCodec};
use haul_core::net::Cidr;

use clap::builder::TypedValueParser as _;
use clap::{Args, Parser, Subcommand};
use haul_core::checksum::ChecksumSpec;

pub use crate::client::{AddArgs, IdsArgs, LsArgs, RemoteArgs, RmArgs, SetArgs};
pub use crate::logs::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "haul",
    version,
    about = "Fast, resumable downloads: a server, its client, and a standalone downloader."
)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug); HAUL_LOG=filter overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// How log lines on stderr are written: text for people, or one JSON object per line for a log collector.
    #[arg(long, env = "HAUL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    /// The config file, whose keys are these long flags (listen = "0.0.0.0:1700", max-active = 5, ...) [default:
    /// ~/.config/haul/config.toml, or $XDG_CONFIG_HOME/haul/config.toml, when it exists].
    #[arg(long, env = "HAUL_CONFIG", value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

/// The command line with `get` put in where the first word is a URL: `haul URL` is `haul get URL`, as
/// `curl URL` and `aria2c URL` work.
pub fn with_implied_get(args: impl IntoIterator<Item = std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let mut args: Vec<_> = args.into_iter().collect();
    let first_is_url = args.get(1).and_then(|arg| arg.to_str()).is_some_and(|arg| {
        arg.split_once("://")
            .is_some_and(|(scheme, _)| !scheme.is_empty() && scheme.bytes().all(|b| b.is_ascii_alphabetic()))
    });
    if first_is_url {
        args.insert(1, "get".into());
    }
    args
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the settings haul serve would run with here, and where each comes from (the command line, the
    /// environment, the config file or the default).
    Config,

    /// List the formats a video page offers (yt-dlp -F), and which of them each --quality picks.
    #[command(
        after_help = "Examples:\n  haul formats https://example.com/watch?v=abc\n  haul formats --json https://example.com/watch?v=abc"
    )]
    Formats(FormatsArgs),

    /// Download URLs to this machine, without a server.
    ///
    /// Each URL is fetched over many connections where the host allows it. Interrupted downloads (Ctrl-C,
    /// a crash, a lost network) continue where they stopped when the same command runs again.
    #[command(
        after_help = "Examples:\n  haul get https://example.com/big.iso\n  haul get -d ~/isos -c 8 --limit-rate 5M https://example.com/a.iso\n  haul get --checksum sha256=9f86d0... -o out.bin https://example.com/f"
    )]
    Get(GetArgs),

    /// Run the download server: the HTTP API, the queue and the downloads.
    #[command(
        after_help = "Examples:\n  haul serve\n  haul serve --listen 0.0.0.0:1700 --data-dir /srv/haul --max-active 5"
    )]
    Serve(ServeArgs),

    /// Print the API token of a data directory (created on first use), or replace it with --rotate.
    Token(TokenArgs),

    /// Create a database's tables, or bring them up to date, and exit: what `haul serve` does at start-up. For a
    /// PostgreSQL database, before its nodes start.
    Migrate {
        #[command(flatten)]
        store: StoreArgs,
    },

    /// Manage accounts (each sees only its own downloads).
    Account {
        #[command(flatten)]
        store: StoreArgs,
        #[command(subcommand)]
        command: AccountCommand,
    },

    /// Manage API keys; a key belongs to one account.
    Key {
        #[command(flatten)]
        store: StoreArgs,
        #[command(subcommand)]
        command: KeyCommand,
    },

    /// Queue downloads on a running server.
    Add {
        #[command(flatten)]
        remote: RemoteArgs,
        #[command(flatten)]
        args: AddArgs,
    },

    /// List a running server's downloads (or show one), optionally as a live table.
    Ls {
        #[command(flatten)]
        remote: RemoteArgs,
        #[command(flatten)]
        args: LsArgs,
    },

    /// Pause downloads on a running server; their partial files are kept.
    Pause {
        #[command(flatten)]
        remote: RemoteArgs,
        #[command(flatten)]
        args: IdsArgs,
    },

    /// Resume paused downloads on a running server.
    Resume {
        #[command(flatten)]
        remote: RemoteArgs,
        #[command(flatten)]
        args: IdsArgs,
    },

    /// Queue failed or cancelled downloads on a running server again (a failed one continues from its partial
    /// file; give an expired link's download a new URL first with haul set ID --url URL).
    Retry {
        #[command(flatten)]
        remote: RemoteArgs,
        #[command(flatten)]
        args: IdsArgs,
    },

    /// Change a download on a running server: a new URL for a paused or failed one, a priority, or a speed limit.
    Set {
        #[command(flatten)]
        remote: RemoteArgs,
        #[command(flatten)]
        args: SetArgs,
    },

    /// Remove downloads from a running server (the files stay unless --delete-files).
    Rm {
        #[command(flatten)]
        remote: RemoteArgs,
        #[command(flatten)]
        args: RmArgs,
    },

    /// Show or change a running server's bandwidth: one limit for every download together, limits per host,
    /// and a schedule. Running downloads take a change up at once.
    #[command(
        after_help = "Examples:\n  haul limit                     # show the settings and what holds now\n  haul limit 10M                 # every download together at most 10 MiB/s\n  haul limit off\n  haul limit 2M --for example.com\n  haul limit --schedule \"mon-fri 08:00-18:00 2M; * 00:00-06:00 unlimited; sat,sun 00:00-24:00 pause\""
    )]
    Limit {
        #[command(flatten)]
        remote: RemoteArgs,
        #[command(flatten)]
        args: crate::client::LimitArgs,
    },

    /// Manage the account's webhooks on a running server: signed POSTs of its downloads' events.
    Webhook {
        #[command(flatten)]
        remote: RemoteArgs,
        #[command(subcommand)]
        command: crate::client::WebhookCommand,
    },

    /// See or forget what the account has downloaded: videos (by site and id) and files (by URL and version)
    /// that `haul add` skips unless --force.
    Archive {
        #[command(flatten)]
        remote: RemoteArgs,
        #[command(subcommand)]
        command: crate::client::ArchiveCommand,
    },

    /// Manage the account's cookie jar on a running server: a browser's cookies.txt, sent with the account's
    /// downloads to the sites it names (and given to yt-dlp), never shown back.
    Cookies {
        #[command(flatten)]
        remote: RemoteArgs,
        #[command(subcommand)]
        command: crate::client::CookiesCommand,
    },

    /// Manage the account's rules (categories) on a running server: the directory and priority new downloads
    /// get by host, URL pattern or file type.
    Rule {
        #[command(flatten)]
        remote: RemoteArgs,
        #[command(subcommand)]
        command: crate::client::RuleCommand,
    },
}

#[derive(Debug, Args)]
pub struct DataDirArgs {
    /// Where haul keeps its database, token and (unless --downloads-dir) downloads; the same whatever the
    /// current directory.
    #[arg(long, env = "HAUL_DATA_DIR", default_value_os_t = default_data_dir(), value_name = "DIR", global = true)]
    pub data_dir: PathBuf,
}

/// The platform's place for an application's data: `$XDG_DATA_HOME/haul`, else `~/.local/share/haul`; `haul-data`
/// under the current directory only on a system without a home directory.
pub fn default_data_dir() -> PathBuf {
    directories::BaseDirs::new().map_or_else(|| PathBuf::from("haul-data"), |dirs| dirs.data_dir().join("haul"))
}

/// `haul token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(flatten)]
    pub store: StoreArgs,

    /// Revoke the current token and write a new one (printed, and saved to DIR/token). A running server refuses
    /// the old token from its next request on; clients reading DIR/token pick up the new one.
    #[arg(long)]
    pub rotate: bool,
}

/// The database of a data directory, for the commands that manage it directly.
#[derive(Debug, Args)]
pub struct StoreArgs {
    #[command(flatten)]
    pub data: DataDirArgs,

    /// Database URL [default: sqlite://DIR/haul.db].
    #[arg(long, env = "HAUL_DATABASE", value_name = "URL", global = true, hide_env_values = true)]
    pub database: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Create an account and print its id.
    Add {
        name: String,
        #[arg(long)]
        email: Option<String>,
    },
    /// List accounts.
    Ls,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create a key for an account and print its secret (shown once; only a hash is stored).
    Create {
        /// The account's name.
        #[arg(long)]
        account: String,
        /// Which API the key opens: bearer (native, Surge, yt-dlp web app, Cloudflare tokens), videodb (sk-...),
        /// or cloudflare-global (X-Auth-Key).
        #[arg(long, default_value = "bearer", value_parser = parse_name::<KeyKind>)]
        kind: KeyKind,
    },
    /// List keys (never their secrets).
    Ls,
    /// Revoke a key by its id or a unique prefix of it.
    Revoke { id: String },
}

/// One of a closed set of names (a key kind, a download kind), as clap's value parser.
pub fn parse_name<T>(text: &str) -> Result<T, String>
where
    T: std::str::FromStr<Err = haul_core::names::UnknownName>,
{
    text.parse().map_err(|error: haul_core::names::UnknownName| error.to_string())
}

/// Waits between attempts, as `--webhook-retry` takes them.
#[derive(Clone, Debug, PartialEq)]
pub struct Delays(pub Vec<std::time::Duration>);

/// `10,30,60` or `0.2,0.5`: seconds, at least one, none negative or above a day.
pub fn parse_delays(text: &str) -> Result<Delays, String> {
    let delays = text
        .split(',')
        .map(|part| {
            let seconds: f64 = part.trim().parse().map_err(|_| format!("{part:?} is not a number of seconds"))?;
            if !(0.0..=86_400.0).contains(&seconds) {
                return Err(format!("{part} seconds is out of range (0 to 86400)"));
            }
            Ok(std::time::Duration::from_secs_f64(seconds))
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Delays(delays))
}

/// A node id: letters, digits, `.`, `_` and `-`, as it appears in logs, leases and URLs.
pub fn parse_node_id(text: &str) -> Result<String, String> {
    let valid = !text.is_empty()
        && text.len() <= 64
        && text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if valid {
        Ok(text.to_owned())
    } else {
        Err(format!("{text:?} is not a node id: use 1-64 letters, digits, '.', '_' or '-'"))
    }
}

/// A video quality as `--quality` takes it (the sound alone has `--audio`).
pub fn parse_video_quality(text: &str) -> Result<Quality, String> {
    match text.parse::<Quality>().map_err(|error| error.to_string())? {
        Quality::Audio => Err("use --audio for the sound alone".into()),
        quality => Ok(quality),
    }
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on; the default accepts connections from this machine only.
    #[arg(long, env = "HAUL_LISTEN", default_value = "127.0.0.1:1700", value_name = "ADDR:PORT", value_parser = parse_listen)]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub data: DataDirArgs,

    /// Where finished files go; absolute or relative to the current directory [default: DIR/downloads]. A
    /// request's own `directory` stays inside it.
    #[arg(long, env = "HAUL_DOWNLOADS_DIR", value_name = "DIR")]
    pub downloads_dir: Option<PathBuf>,

    /// Database URL [default: sqlite://DIR/haul.db].
    #[arg(long, env = "HAUL_DATABASE", value_name = "URL", hide_env_values = true)]
    pub database: Option<String>,

    /// Connections to one host across all running downloads, so that the server's own downloads never take all
    /// of a host's slots and fail each other with 503; 0 is no limit.
    #[arg(long, env = "HAUL_MAX_CONNECTIONS_PER_HOST", default_value_t = 32, value_name = "N")]
    pub max_connections_per_host: usize,

    /// How many downloads run at once; the rest wait in order of priority.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=1000).map(usize::from))]
    pub max_active: usize,

    /// Seconds a client may take to send a request's headers, and to start its next request on a kept-alive
    /// connection; slower ones are closed.
    #[arg(long, default_value_t = 10, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_timeout: u64,

    /// Downloads one account may keep, in any state; adding more is refused (429) until some are removed.
    #[arg(long, default_value_t = 100_000, value_name = "N")]
    pub max_jobs_per_account: u64,

    /// Entries of one playlist or channel that become downloads at most; the rest are left out (choose others
    /// with `--playlist-items`).
    #[arg(long, default_value_t = 1000, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub max_playlist_entries: u64,

    /// Do not continue the downloads that were running when the server stopped: they wait paused, with their
    /// partial files kept, until resumed.
    #[arg(long)]
    pub no_resume: bool,

    /// This node's name, when several servers share one PostgreSQL database: its leases on jobs, `haul ls`'s
    /// NODE column and `GET /v1/nodes` show it. Unique per node [default: with PostgreSQL, the host name and a
    /// hash of the data directory; with SQLite, `local`].
    #[arg(long, alias = "node", env = "HAUL_NODE_ID", value_name = "NAME", value_parser = parse_node_id)]
    pub node_id: Option<String>,

    /// Seconds a node's claim on a job holds without renewal (it renews every second): when a node dies, another
    /// takes its downloads over this long after its last renewal.
    #[arg(long, default_value_t = 30, value_name = "SECS", value_parser = clap::value_parser!(u64).range(2..=3600))]
    pub lease: u64,

    /// The URL other nodes reach this node's API at, to fetch the files it holds when each node has its own
    /// downloads directory [default: http://LISTEN when it names an address, else none].
    #[arg(long, env = "HAUL_ADVERTISE_URL", value_name = "URL")]
    pub advertise_url: Option<String>,

    /// Forget downloads this long after they ended (e.g. 30d, 12h), as `haul rm` would, checking every ten
    /// minutes; the finished files stay unless --forget-files [default: keep every download].
    #[arg(long, value_name = "AGE", value_parser = crate::client::parse_age)]
    pub forget_after: Option<std::time::Duration>,

    /// The end states --forget-after forgets, comma-separated: completed, failed, cancelled.
    #[arg(long, value_name = "STATES", default_value = "completed", value_delimiter = ',',
        value_parser = parse_end_state, requires = "forget_after")]
    pub forget_states: Vec<JobState>,

    /// With --forget-after: remove the finished files of the downloads forgotten too.
    #[arg(long, requires = "forget_after")]
    pub forget_files: bool,

    /// Bytes per second for every download of this server together (e.g. 10M); 0 lifts it. Stored, so it holds
    /// across restarts until changed (haul limit, PATCH /v1/settings) [default: the stored setting, else none].
    #[arg(long, value_name = "RATE", value_parser = parse_limit)]
    pub speed_limit: Option<u64>,

    /// A limit for all downloads from one host (the host of the URL added): HOST=RATE, e.g. example.com=2M; a rate
    /// of 0 lifts it. Repeatable; stored like --speed-limit.
    #[arg(long, value_name = "HOST=RATE", value_parser = parse_host_limit)]
    pub host_limit: Vec<(String, u64)>,

    /// Switch the server-wide limit, or pause the queue, by local time: rules DAYS HH:MM-HH:MM RATE|unlimited|pause
    /// separated by ';' (the first that matches holds), e.g. "mon-fri 08:00-18:00 2M; * 00:00-06:00 unlimited".
    /// "off" removes a stored one. Stored like --speed-limit.
    #[arg(long, value_name = "RULES", value_parser = parse_schedule)]
    pub schedule: Option<String>,
    /// Seconds to wait after each failed webhook delivery attempt, the last one repeating until 25 hours after
    /// the event, when the delivery is given up: comma-separated, fractions allowed.
    #[arg(long, value_name = "SECS,...", default_value = "10,30,60,300,900,3600", value_parser = parse_delays)]
    pub webhook_retry: Delays,

    /// The local address downloads connect from (curl's --interface): one uplink of several, or one address per
    /// node where a host limits each client address.
    #[arg(long, value_name = "IP")]
    pub local_address: Option<std::net::IpAddr>,

    /// Also serve Prometheus metrics at /metrics on this address, without a token, for a scraper on a network
    /// only the operator reaches (on the API's own listener, /metrics needs the server's token).
    #[arg(long, env = "HAUL_METRICS_LISTEN", value_name = "ADDR:PORT", value_parser = parse_listen)]
    pub metrics_listen: Option<SocketAddr>,

    /// Move a foreign API to another path, or switch it off: `videodb=/vdb`, `surge=off`. Repeatable. APIs:
    /// ytdlp-app (/api), surge (/), videodb (/videodb), cloudflare (/client/v4).
    #[arg(long, value_name = "API=/PATH|off")]
    pub mount: Vec<String>,

    /// Also serve one foreign API at the root of a listener of its own, for clients that cannot take a base
    /// path: `videodb=127.0.0.1:8002`. Repeatable.
    #[arg(long, value_name = "API=ADDR:PORT")]
    pub listen_dialect: Vec<String>,

    /// Serve the yt-dlp web app's API without a token, as the original app did (`ytdlp-app` is the only API
    /// that can be opened). Anyone who can reach the server can then use it as the default account.
    #[arg(long, value_name = "API")]
    pub open_dialect: Vec<String>,

    /// The web page at / (sign in with the token or a key): on, or off to serve only the APIs.
    #[arg(long, value_name = "on|off", default_value = "on", value_parser = ["on", "off"])]
    pub ui: String,

    /// The yt-dlp program for media pages [default: yt-dlp on PATH].
    #[arg(long, env = "HAUL_YT_DLP", value_name = "PATH")]
    pub yt_dlp: Option<PathBuf>,

    /// The ffmpeg program for merging streams, audio files and thumbnails [default: ffmpeg on PATH; ffprobe is
    /// looked for beside it].
    #[arg(long, env = "HAUL_FFMPEG", value_name = "PATH")]
    pub ffmpeg: Option<PathBuf>,

    /// The URL clients reach this server at, for the download links the VideoDB and Cloudflare APIs hand out
    /// (e.g. https://haul.example.com) [default: the address each client used].
    #[arg(long, env = "HAUL_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,

    /// Also fetch from this address range (CIDR, e.g. 192.168.1.0/24 or 127.0.0.1/32), which the server
    /// otherwise refuses as private, loopback or link-local. Repeatable.
    #[arg(long, value_name = "CIDR", value_parser = parse_cidr)]
    pub allow_net: Vec<Cidr>,

    /// Fetch from every address, private, loopback and link-local ranges included: for a server only trusted
    /// people can reach, on a home or office network. Without it, downloads (redirects, yt-dlp and thumbnails
    /// included) may reach public addresses only.
    #[arg(long)]
    pub allow_private: bool,

    /// Also trust the certificate authorities in this PEM file for HTTPS downloads, beside the system's (whose
    /// store SSL_CERT_FILE and SSL_CERT_DIR replace). Repeatable.
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// The URLs to download (http or https), one file each.
    #[arg(required_unless_present = "input_file", value_name = "URL")]
    pub urls: Vec<String>,

    /// Also download the URLs in FILE, one per line (`-` reads them from stdin; blank lines and `#` comments are
    /// skipped), as wget -i and aria2c -i take them.
    #[arg(short = 'i', long, value_name = "FILE")]
    pub input_file: Option<PathBuf>,

    /// Save as this file (only with one URL; missing directories are made). An existing directory (or a path
    /// ending in /) saves into it, as -d does; - writes the file to stdout over one connection.
    #[arg(short, long, value_name = "FILE", conflicts_with = "dir")]
    pub output: Option<PathBuf>,

    /// Accepted as curl takes it; haul always makes the directories -o and -d name.
    #[arg(long, hide = true)]
    pub create_dirs: bool,

    /// Save into this directory, under the name the server offers (default: the current directory).
    #[arg(short, long, value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// Download this many of the URLs at once (several URLs, or -i), as aria2c -j does; one after another by
    /// default.
    #[arg(short = 'j', long, value_name = "N", default_value_t = 1,
        value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: u16,

    /// Use at most this many connections per file [default: adaptive, up to 64].
    #[arg(short = 'c', long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub connections: Option<u16>,

    /// Limit the speed of each download, e.g. 500K, 5M, 1.5G (bytes per second, powers of 1024); 0 is no limit.
    #[arg(long, value_name = "RATE", value_parser = parse_limit)]
    pub limit_rate: Option<u64>,

    /// Attempts without progress before a download gives up (transient failures only: a host that cannot be
    /// reached, or a 4xx answer, fails at once); 0 retries for ever [default: 8].
    #[arg(long, value_name = "N")]
    pub max_tries: Option<u32>,

    /// Seconds to wait between attempts, instead of the growing backoff (250 ms doubling to 8 s); a server's
    /// Retry-After wins either way.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub retry_wait: Option<u64>,

    /// Seconds a connection may deliver nothing before it is dropped and its bytes fetched again [default: 30].
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub timeout: Option<u64>,

    /// Send every request through this proxy (http://HOST:PORT, user:password@ allowed) instead of the
    /// environment's http_proxy / https_proxy / all_proxy (which apply otherwise, except for the hosts no_proxy
    /// lists).
    #[arg(long, value_name = "URL")]
    pub proxy: Option<String>,

    /// Also trust the certificate authorities in this PEM file, beside the system's (whose store SSL_CERT_FILE
    /// and SSL_CERT_DIR replace). Repeatable.
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Vec<PathBuf>,

    /// Do not check TLS certificates at all (as curl -k): anyone between here and the host can then read and
    /// change the download. For a host whose certificate is known to be broken; prefer --ca-cert.
    #[arg(short = 'k', long)]
    pub insecure: bool,

    /// Seconds to wait for a connection to open [default: 15].
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub connect_timeout: Option<u64>,

    /// Verify the finished file before it takes its name: sha256=HEX, sha1=HEX or md5=HEX.
    #[arg(long, value_name = "ALGO=HEX")]
    pub checksum: Option<ChecksumSpec>,

    /// Send this request header, e.g. -H 'Cookie: a=b' (repeatable).
    #[arg(short = 'H', long = "header", value_name = "'NAME: VALUE'")]
    pub headers: Vec<String>,

    /// The User-Agent header to send.
    #[arg(short = 'A', long, value_name = "UA")]
    pub user_agent: Option<String>,

    /// Another URL serving the same file; connections are spread over all of them (repeatable).
    #[arg(long = "mirror", value_name = "URL")]
    pub mirrors: Vec<String>,

    /// HTTP Basic authentication as user:password, sent to the URL's host only (never across a redirect to
    /// another host).
    #[arg(short = 'u', long = "user", value_name = "USER:PASSWORD", value_parser = parse_user)]
    pub user: Option<(String, String)>,

    /// Take the login for the URL's host from ~/.netrc (machine, login, password; else default), as curl and
    /// wget do; -u wins over it.
    #[arg(long)]
    pub netrc: bool,

    /// As --netrc, from this file.
    #[arg(long, value_name = "FILE")]
    pub netrc_file: Option<PathBuf>,

    /// Send the cookies of this Netscape cookies.txt (as curl -b, wget --load-cookies and yt-dlp --cookies read
    /// it) that match the URL: domain, path, secure and expiry.
    #[arg(long, value_name = "FILE")]
    pub cookies: Option<PathBuf>,

    /// Download only when the server's copy is newer than the file already here (its Last-Modified after the
    /// file's modification time) or of another size, replacing it; otherwise say it is up to date.
    #[arg(short = 'N', long)]
    pub timestamping: bool,

    /// Fetch again and replace an existing file: without it, a complete copy (same size, not older than the
    /// server's) is left as it is and a different file of the same name kept, the new one saved as "name (1).ext".
    #[arg(long)]
    pub overwrite: bool,

    /// Print nothing but errors.
    #[arg(short, long)]
    pub quiet: bool,

    /// For video pages: best, a height such as 1080p, 720p or 240 (the best at or under it, else the smallest
    /// there is), or worst (the smallest video). `haul formats URL` shows what each picks.
    #[arg(long, value_name = "QUALITY", value_parser = parse_video_quality, conflicts_with = "audio")]
    pub quality: Option<Quality>,

    /// Only the sound, as an m4a file (from a video page or a video file; needs ffmpeg).
    #[arg(long)]
    pub audio: bool,

    /// Name a video page's file by this template instead of its title: fields {title}, {id}, {uploader}, {date}
    /// (YYYY-MM-DD), {height}, {ext} (added at the end when left out), and for a playlist's entries {playlist}
    /// and {playlist_index}, e.g. '{title} [{id}].{ext}'.
    #[arg(long, value_name = "TEMPLATE", value_parser = parse_name_template, conflicts_with = "output")]
    pub name: Option<haul_core::media::NameTemplate>,

    /// For a playlist or channel: which entries to download, by position from 1 (1-5,8,12-); all of them
    /// otherwise, one after another.
    #[arg(long, value_name = "ITEMS", value_parser = parse_playlist_items)]
    pub playlist_items: Option<haul_core::playlist::PlaylistItems>,

    /// Only the sound, in this format: m4a, mp3 (192 kbit/s), opus (128 kbit/s), flac or wav (implies --audio).
    #[arg(long, value_name = "FORMAT", value_parser = parse_name::<haul_core::media::AudioFormat>,
        conflicts_with = "quality")]
    pub audio_format: Option<haul_core::media::AudioFormat>,

    /// What fetches it: auto (a video page yt-dlp can read is media, anything else the file as it is), file or
    /// media.
    #[arg(long, value_name = "KIND", default_value = "auto", value_parser = parse_kind)]
    pub kind: JobKind,

    #[command(flatten)]
    pub media: MediaFlags,

    /// The yt-dlp program for video pages [default: yt-dlp on PATH].
    #[arg(long, env = "HAUL_YT_DLP", value_name = "PATH")]
    pub yt_dlp: Option<PathBuf>,

    /// The ffmpeg program [default: ffmpeg on PATH].
    #[arg(long, env = "HAUL_FFMPEG", value_name = "PATH")]
    pub ffmpeg: Option<PathBuf>,
}

/// A `-u user:password`, as clap's value parser.
fn parse_user(text: &str) -> Result<(String, String), String> {
    haul_core::credentials::parse_user(text)
}

/// A rate as `--limit-rate` takes it, as clap's value parser.
/// A `--limit-rate`: a rate, or 0 for none (as aria2c and wget take it); read with [`limit`].
pub fn parse_limit(text: &str) -> Result<u64, String> {
    haul_core::units::parse_size(text).map_err(|error| error.to_string().replace("size", "rate"))
}

/// A state a download ends in, for `--forget-states`.
pub fn parse_end_state(text: &str) -> Result<JobState, String> {
    match text.trim().parse::<JobState>() {
        Ok(state) if state.is_terminal() => Ok(state),
        _ => Err(format!("{text:?} is not a state a download ends in; use completed, failed or cancelled")),
    }
}

/// `haul formats`.
#[derive(Debug, Args)]
pub struct FormatsArgs {
    /// The video page.
    pub url: String,

    /// Print yt-dlp's formats as JSON (id, ext, width, height, vcodec, acodec, tbr, filesize) instead of a table.
    #[arg(long)]
    pub json: bool,

    /// A Netscape cookies.txt for pages that need a login.
    #[arg(long, value_name = "FILE")]
    pub cookies: Option<PathBuf>,

    /// The yt-dlp program [default: yt-dlp on PATH].
    #[arg(long, env = "HAUL_YT_DLP", value_name = "PATH")]
    pub yt_dlp: Option<PathBuf>,
}

/// A video page's choices beyond its quality, the same on `haul get` and `haul add`.
#[derive(Debug, Clone, Default, Args)]
pub struct MediaFlags {
    /// For video pages: prefer this container, mp4 or webm. Among the formats the quality allows, those in it
    /// win (WebM video and audio are merged into a .webm); the page's others when it has none.
    #[arg(long, value_name = "CONTAINER", value_parser = parse_name::<Container>, help_heading = "Video formats")]
    pub prefer: Option<Container>,

    /// For video pages: prefer this video codec, av1, vp9 or h264. Among the formats the quality allows, those in
    /// it win; the page's others when it has none (for a requirement, say it in --format).
    #[arg(long, value_name = "CODEC", value_parser = parse_name::<VideoCodec>, help_heading = "Video formats")]
    pub vcodec: Option<VideoCodec>,

    /// For video pages: a yt-dlp format selector, e.g. 'bv*[vcodec^=av01]+ba/b' or '137+140', which decides alone
    /// (no --quality, --prefer or --vcodec with it). yt-dlp checks it before anything is fetched.
    #[arg(long, value_name = "SELECTOR", value_parser = parse_selector, help_heading = "Video formats",
        conflicts_with_all = ["quality", "prefer", "vcodec", "audio"])]
    pub format: Option<FormatSelector>,

    /// Save the page's subtitles in these languages beside the file, as NAME.LANG.vtt (or .srt): e.g. en,de, or
    /// all.
    #[arg(long, value_name = "LANGS", value_parser = parse_subtitle_langs, help_heading = "Subtitles")]
    pub subs: Option<Langs>,

    /// With --subs: take the site's automatic captions for a language it has no subtitles in.
    #[arg(long, requires = "subs", help_heading = "Subtitles")]
    pub auto_subs: bool,

    /// With --subs: also put the subtitles into the file as subtitle streams (MP4, WebM, MKV).
    #[arg(long, requires = "subs", help_heading = "Subtitles")]
    pub embed_subs: bool,

    /// Put title, artist (the uploader), date, chapters and the thumbnail as cover art into the file, where its
    /// container takes them (no cover art in WebM or Ogg). Default: off for `haul get` (the file as the site
    /// serves it, as yt-dlp does), on for a server.
    #[arg(long, overrides_with = "no_embed_metadata", help_heading = "Metadata")]
    pub embed_metadata: bool,

    /// Leave the file as the site serves it: no title, artist, date, chapters or cover art added.
    #[arg(long, overrides_with = "embed_metadata", help_heading = "Metadata")]
    pub no_embed_metadata: bool,
}

impl MediaFlags {
    /// The choice as kept, with `embed_metadata` when neither flag is given.
    pub fn choice(&self, embed_metadata: bool) -> MediaChoice {
        MediaChoice {
            prefer: self.prefer,
            vcodec: self.vcodec,
            format: self.format.clone(),
            subtitles: self.subs.clone().map(|langs| langs.0).unwrap_or_default(),
            auto_subtitles: self.auto_subs,
            embed_subtitles: self.embed_subs,
            embed_metadata: self.embed_metadata_or(embed_metadata),
        }
    }

    /// `--embed-metadata` / `--no-embed-metadata`, the last given winning; `default` without either.
    pub fn embed_metadata_or(&self, default: bool) -> bool {
        if self.embed_metadata {
            true
        } else if self.no_embed_metadata {
            false
        } else {
            default
        }
    }

    /// Whether any of these asks for a video page.
    pub fn any(&self) -> bool {
        self.prefer.is_some() || self.vcodec.is_some() || self.format.is_some() || self.subs.is_some()
    }
}

/// `--format`: the selector's shape checked here (one line, one download); yt-dlp judges the rest.
pub fn parse_selector(text: &str) -> Result<FormatSelector, String> {
    text.parse().map_err(|error: haul_core::media_choice::SelectorError| error.to_string())
}

/// The languages of `--subs`, as one value (clap would take a `Vec` for several occurrences).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Langs(pub Vec<SubtitleLang>);

/// `--subs en,de`.
pub fn parse_subtitle_langs(text: &str) -> Result<Langs, String> {
    let langs = haul_core::media_choice::parse_langs(text).map_err(|error| error.to_string())?;
    if langs.is_empty() {
        return Err("no language given; write codes such as en,de, or all".into());
    }
    if langs.len() > haul_core::media_choice::MAX_SUBTITLE_LANGS {
        return Err(format!("at most {} languages", haul_core::media_choice::MAX_SUBTITLE_LANGS));
    }
    Ok(Langs(langs))
}

/// `--name`: a file name template, checked here so that a mistake stops the command before anything is fetched.
/// `--kind`: what a user may ask for (a playlist is haul's to decide, once it has read the page).
pub fn parse_kind(text: &str) -> Result<JobKind, String> {
    match parse_name::<JobKind>(text)? {
        JobKind::Playlist => Err("a playlist is found by reading the page: use auto or media".into()),
        kind => Ok(kind),
    }
}

/// `--playlist-items 1-5,8`.
pub fn parse_playlist_items(text: &str) -> Result<haul_core::playlist::PlaylistItems, String> {
    text.parse().map_err(|error: haul_core::playlist::ItemsError| error.to_string())
}

pub fn parse_name_template(text: &str) -> Result<haul_core::media::NameTemplate, String> {
    text.parse().map_err(|error: haul_core::media::TemplateError| error.to_string())
}

/// A name template checked here, sent as written (`haul add --name`).
pub fn checked_name_template(text: &str) -> Result<String, String> {
    parse_name_template(text).map(|_| text.to_owned())
}

/// `--host-limit HOST=RATE`.
pub fn parse_host_limit(text: &str) -> Result<(String, u64), String> {
    let (host, rate) =
        text.split_once('=').ok_or_else(|| format!("{text:?} is not HOST=RATE (e.g. example.com=2M)"))?;
    Ok((host.trim().to_owned(), parse_limit(rate)?))
}

/// `--schedule`: checked here so that a mistake stops the command with the rule named; "off" is none.
pub fn parse_schedule(text: &str) -> Result<String, String> {
    if matches!(text.trim(), "" | "off" | "none") {
        return Ok(String::new());
    }
    let schedule: haul_core::schedule::Schedule =
        text.parse().map_err(|e: haul_core::schedule::ScheduleError| e.to_string())?;
    Ok(schedule.to_string())
}

/// A `--limit-rate` as a limit: 0 is none.
pub fn limit(rate: Option<u64>) -> Option<u64> {
    rate.filter(|rate| *rate > 0)
}

/// A `--listen` address: `ADDR:PORT` or `HOST:PORT` (`localhost:1700`), resolved once, at start.
pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    if let Ok(address) = text.parse() {
        return Ok(address);
    }
    let mut resolved = std::net::ToSocketAddrs::to_socket_addrs(text).map_err(|error| {
        format!("{text:?} is not ADDR:PORT or HOST:PORT (such as 127.0.0.1:1700 or localhost:1700): {error}")
    })?;
    resolved.next().ok_or_else(|| format!("{text:?} resolves to no address"))
}

/// The media programs: the paths given with `--yt-dlp` / `--ffmpeg`, else those on `PATH`.
pub fn media_tools(yt_dlp: Option<PathBuf>, ffmpeg: Option<PathBuf>) -> anyhow::Result<haul_engine::MediaTools> {
    let search_path = std::env::var_os("PATH");
    haul_engine::MediaTools::discover(yt_dlp, ffmpeg, search_path.as_deref())
        .map_err(|error| anyhow::anyhow!("--{} {error}", error.program))
}

fn parse_cidr(text: &str) -> Result<Cidr, String> {
    text.parse().map_err(|error: haul_core::net::CidrError| error.to_string())
}

impl ServeArgs {
    /// Which destinations the server's downloads may reach.
    pub fn destinations(&self) -> haul_engine::DestinationPolicy {
        if self.allow_private {
            haul_engine::DestinationPolicy::allow_all()
        } else {
            haul_engine::DestinationPolicy::public_only(self.allow_net.clone())
        }
    }
}

impl GetArgs {
    /// The sound alone is wanted: `--audio` or `--audio-format`.
    pub fn wants_audio(&self) -> bool {
        self.audio || self.audio_format.is_some()
    }
}
