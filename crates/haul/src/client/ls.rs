//! `haul ls`: the server's downloads as a table, one download field by field, or either redrawn every second:
//! the interactive view of `watch.rs` on a terminal, plain snapshots otherwise.

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::time::Duration;

use haul_api::wire::{Download, DownloadList};
use haul_core::job::{DownloadId, JobState};
use reqwest::Method;

use super::act::Resolver;
use super::render::{render_detail, render_table};
use super::watch::{Source, watch};
use super::{Client, RemoteArgs, decode, pretty, report_or_stop};
use crate::cli::parse_name;

/// `haul ls`: list downloads, or show one.
#[derive(Debug, clap::Args)]
pub struct LsArgs {
    /// Show only this download (an ID or a unique prefix of one).
    #[arg(value_name = "ID")]
    pub id: Option<String>,

    /// Only downloads in this state: queued, active, paused, completed, failed or cancelled.
    #[arg(long, value_name = "STATE", conflicts_with = "id", value_parser = parse_name::<JobState>)]
    pub state: Option<JobState>,

    /// Print the server's JSON.
    #[arg(long, conflicts_with = "watch")]
    pub json: bool,

    /// Redraw every second until Ctrl-C. On a terminal: a live table sized to it, with totals and colours
    /// (none with NO_COLOR), and keys for the selected download: Up/Down or k/j select, p pauses, r resumes (or
    /// retries a failed one), d or Delete removes it after a y (its finished file stays), q or Esc quits.
    /// Otherwise one plain table after another, separated by a blank line.
    #[arg(short, long)]
    pub watch: bool,

    /// Only the entries of this playlist (an ID or a unique prefix of one).
    #[arg(long, value_name = "ID", conflicts_with = "id")]
    pub parent: Option<String>,

    /// Show at most this many downloads (newest first).
    #[arg(long, value_name = "N", conflicts_with = "id")]
    pub limit: Option<u32>,
}

pub async fn ls(remote: RemoteArgs, args: LsArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&remote)?;
    let parent = match &args.parent {
        None => None,
        Some(given) => match Resolver::default().resolve(&client, given).await {
            Ok(id) => Some(id),
            Err(error) => {
                report_or_stop(given, error)?;
                return Ok(ExitCode::FAILURE);
            }
        },
    };
    let id = match &args.id {
        None => None,
        Some(given) => match Resolver::default().resolve(&client, given).await {
            Ok(id) => Some(id),
            Err(error) => {
                report_or_stop(given, error)?;
                return Ok(ExitCode::FAILURE);
            }
        },
    };

    if args.json {
        let answer = match id {
            Some(id) => client.call(Method::GET, &format!("/v1/downloads/{id}")).await?,
            None => client.list(args.state, args.limit, parent).await?,
        };
        println!("{}", pretty(&answer));
        return Ok(ExitCode::SUCCESS);
    }
    if !args.watch {
        print!("{}", screen(&client, (id, parent), &args, false).await?);
        return Ok(ExitCode::SUCCESS);
    }

    if std::io::stdout().is_terminal() {
        let source = match id {
            Some(id) => Source::One(id),
            None => Source::List { state: args.state, limit: args.limit, parent },
        };
        return watch(&client, source, &client.base).await;
    }
    // One future for the whole watch, so its signal handlers are installed once, at the first wait below.
    let interrupted = crate::signals::interrupted();
    tokio::pin!(interrupted);
    loop {
        let screen = screen(&client, (id, parent), &args, true).await?;
        let mut out = std::io::stdout().lock();
        // A pipe or a file gets one snapshot after another, separated by a blank line.
        let written = writeln!(out, "{screen}");
        if written.and_then(|()| out.flush()).is_err() {
            // The reader went away (e.g. `| head`): nothing left to do.
            return Ok(ExitCode::SUCCESS);
        }
        drop(out);
        tokio::select! {
            () = &mut interrupted => return Ok(ExitCode::SUCCESS),
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// What `ls` shows once: the one download's fields, or the table (with bars when watching).
async fn screen(
    client: &Client,
    (id, parent): (Option<DownloadId>, Option<DownloadId>),
    args: &LsArgs,
    watching: bool,
) -> anyhow::Result<String> {
    Ok(match id {
        Some(id) => {
            let download: Download =
                decode(&client.call(Method::GET, &format!("/v1/downloads/{id}")).await?, "a download")?;
            render_detail(&download)
        }
        None => {
            let list: DownloadList = decode(&client.list(args.state, args.limit, parent).await?, "a download list")?;
            render_table(&list, watching)
        }
    })
}
