//! The command line: every flag of every command, validated into typed values in one place.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use haul_core::checksum::ChecksumSpec;

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

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Download URLs to this machine, without a server.
    ///
    /// Each URL is fetched over many connections where the host allows it. Interrupted downloads (Ctrl-C,
    /// a crash, a lost network) continue where they stopped when the same command runs again.
    #[command(
        after_help = "Examples:\n  haul get https://example.com/big.iso\n  haul get -d ~/isos -c 8 --limit-rate 5M https://example.com/a.iso\n  haul get --checksum sha256=9f86d0... -o out.bin https://example.com/f"
    )]
    Get(GetArgs),
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// The URLs to download (http or https), one file each.
    #[arg(required = true, value_name = "URL")]
    pub urls: Vec<String>,

    /// Save as this file (only with one URL).
    #[arg(short, long, value_name = "FILE", conflicts_with = "dir")]
    pub output: Option<PathBuf>,

    /// Save into this directory, under the name the server offers (default: the current directory).
    #[arg(short, long, value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// Use at most this many connections per file [default: adaptive, up to 64].
    #[arg(short = 'c', long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub connections: Option<u16>,

    /// Limit the speed of each download, e.g. 500K, 5M, 1.5G (bytes per second, powers of 1024).
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub limit_rate: Option<u64>,

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

    /// Replace an existing file instead of saving as "name (1).ext".
    #[arg(long)]
    pub overwrite: bool,

    /// Print nothing but errors.
    #[arg(short, long)]
    pub quiet: bool,
}

fn parse_rate(text: &str) -> Result<u64, String> {
    haul_core::units::parse_rate(text).map_err(|error| error.to_string())
}
