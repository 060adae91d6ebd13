//! `haul archive ls|rm|clear`: the account's download archive on a running server (`/v1/archive`): what `haul add`
//! skips unless `--force`. Entries are named by ID (or a unique prefix) or as `EXTRACTOR:VIDEO_ID`.

use std::process::ExitCode;

use anyhow::bail;
use haul_api::wire::{ArchiveEntry, ArchiveList, Forgotten};
use reqwest::Method;

use super::{Client, RemoteArgs, decode, pretty, short};

#[derive(Debug, clap::Subcommand)]
pub enum ArchiveCommand {
    /// List what the account has downloaded, newest first.
    Ls {
        /// Print the server's JSON answer (every page) instead.
        #[arg(long)]
        json: bool,
    },
    /// Forget entries, so that adding their video or file downloads it again.
    #[command(after_help = "Examples:\n  haul archive rm 3f2a5c1e\n  haul archive rm youtube:dQw4w9WgXcQ")]
    Rm {
        /// An entry's ID (or a unique prefix of it), or EXTRACTOR:VIDEO_ID as `haul archive ls` shows them.
        #[arg(required = true, value_name = "ENTRY")]
        entries: Vec<String>,
    },
    /// Forget the whole archive.
    Clear,
}

pub async fn archive(remote: RemoteArgs, command: ArchiveCommand) -> anyhow::Result<ExitCode> {
    let client = Client::new(&remote)?;
    match command {
        ArchiveCommand::Ls { json } => {
            let entries = all(&client).await?;
            if json {
                println!("{}", pretty(&serde_json::to_value(&entries)?));
                return Ok(ExitCode::SUCCESS);
            }
            if entries.is_empty() {
                println!("the archive is empty; downloads are recorded in it when they complete");
                return Ok(ExitCode::SUCCESS);
            }
            println!("{:<8}  {:<36}  {:<8}  {:<40}  URL", "ID", "VIDEO", "DOWNLOAD", "TITLE");
            for entry in &entries {
                println!(
                    "{:<8}  {:<36}  {:<8}  {:<40}  {}",
                    short(&entry.id),
                    shown_key(entry),
                    entry.download.as_deref().map_or("-", short),
                    shortened(entry.title.as_deref().unwrap_or("-"), 40),
                    entry.url
                );
            }
        }
        ArchiveCommand::Rm { entries } => {
            let archive = all(&client).await?;
            for given in &entries {
                let entry = resolve(&archive, given)?;
                client.call(Method::DELETE, &format!("/v1/archive/{}", entry.id)).await?;
                println!("forgot {} ({})", shown_key(entry), entry.title.as_deref().unwrap_or(&entry.url));
            }
        }
        ArchiveCommand::Clear => {
            let answer = client.call(Method::DELETE, "/v1/archive").await?;
            let forgotten: Forgotten = decode(&answer, "a count")?;
            println!("forgot {} archive entries", forgotten.removed);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Every entry, page after page.
async fn all(client: &Client) -> anyhow::Result<Vec<ArchiveEntry>> {
    let mut path = "/v1/archive?limit=1000".to_owned();
    let mut entries = Vec::new();
    loop {
        let page: ArchiveList = decode(&client.call(Method::GET, &path).await?, "an archive list")?;
        entries.extend(page.entries);
        match page.next {
            Some(next) => path = next,
            None => return Ok(entries),
        }
    }
}

/// `youtube:dQw4w9WgXcQ`, as `rm` takes it.
fn shown_key(entry: &ArchiveEntry) -> String {
    format!("{}:{}", entry.extractor, entry.video_id)
}

/// At most `width` characters, an ellipsis marking the cut.
fn shortened(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// The entry `given` names: `EXTRACTOR:VIDEO_ID` exactly (the extractor in any case), else an ID or its unique
/// prefix.
fn resolve<'a>(archive: &'a [ArchiveEntry], given: &str) -> anyhow::Result<&'a ArchiveEntry> {
    let given = given.trim();
    if given.is_empty() {
        bail!("an empty entry names nothing; give an ID or EXTRACTOR:VIDEO_ID (haul archive ls lists them)");
    }
    if let Some((extractor, video_id)) = given.split_once(':')
        && let Some(entry) =
            archive.iter().find(|entry| entry.extractor.eq_ignore_ascii_case(extractor) && entry.video_id == video_id)
    {
        return Ok(entry);
    }
    let prefix = given.to_ascii_lowercase();
    let matching: Vec<&ArchiveEntry> = archive.iter().filter(|entry| entry.id.starts_with(&prefix)).collect();
    match matching.as_slice() {
        [entry] => Ok(entry),
        [] => bail!("no archive entry {given}; haul archive ls lists them"),
        many => bail!("archive entry ID {given} matches {} entries; give more of it", many.len()),
    }
}
