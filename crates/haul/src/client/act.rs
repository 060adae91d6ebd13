//! `haul pause`, `resume` and `rm`: one action on each download named by an ID or a unique prefix of one
//! (resolved by [`Resolver`]), or with `--all` on every download the action applies to.

use std::collections::HashSet;
use std::process::ExitCode;

use anyhow::bail;
use haul_api::wire::Download;
use haul_core::job::{DownloadId, JobState};
use reqwest::Method;

use super::render::name;
use super::{Client, RemoteArgs, ServerError, decode, exit_code, report_or_stop, short};

/// `haul pause` and `haul resume`: the downloads to act on.
#[derive(Debug, clap::Args)]
pub struct IdsArgs {
    /// Download IDs, or unique prefixes of them.
    #[arg(value_name = "ID", required_unless_present = "all", conflicts_with = "all")]
    pub ids: Vec<String>,

    /// Every download this applies to (for pause: queued and active ones; for resume: paused ones; for retry:
    /// failed and cancelled ones).
    #[arg(long)]
    pub all: bool,
}

/// `haul rm`: forget downloads on the server (stopping them if they run).
#[derive(Debug, clap::Args)]
pub struct RmArgs {
    /// Download IDs, or unique prefixes of them.
    #[arg(value_name = "ID", required_unless_present = "all", conflicts_with = "all")]
    pub ids: Vec<String>,

    /// Every download (with --state, every download in that state).
    #[arg(long)]
    pub all: bool,

    /// With --all: only downloads in this state (completed, failed, cancelled, ...).
    #[arg(long, value_name = "STATE", requires = "all", value_parser = crate::cli::parse_name::<JobState>)]
    pub state: Option<JobState>,

    /// With --all: only downloads that ended (or, unfinished, were added) longer ago than this: `7d`, `12h`,
    /// `30min`. Housekeeping: `haul rm --all --state completed --older-than 7d`.
    #[arg(long, value_name = "AGE", requires = "all", value_parser = parse_age)]
    pub older_than: Option<std::time::Duration>,

    /// Also delete the finished files (partial files are always removed).
    #[arg(long)]
    pub delete_files: bool,
}

/// An age as `--older-than` takes it (humantime: `7d`, `12h`, `1w 2d`).
pub fn parse_age(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text).map_err(|error| format!("{error}; give an age like 7d, 12h or 30min"))
}

/// `haul set`: change a download on the server.
#[derive(Debug, clap::Args)]
pub struct SetArgs {
    /// The download's ID, or a unique prefix of it.
    #[arg(value_name = "ID")]
    pub id: String,

    /// A new URL for the same file (an expired link); only while the download is paused or failed. `haul retry`
    /// then continues a failed one from its partial file.
    #[arg(long, value_name = "URL", required_unless_present_any = ["priority", "speed_limit"])]
    pub url: Option<String>,

    /// A new priority: higher runs first.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub priority: Option<i32>,

    /// A new speed limit for this download (e.g. 500K, 5M), or off; a running download takes it up at once.
    #[arg(long, value_name = "RATE|off", value_parser = super::limit::parse_rate_or_off)]
    pub speed_limit: Option<super::limit::RateOrOff>,
}

pub async fn set(remote: RemoteArgs, args: SetArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&remote)?;
    let id = match Resolver::default().resolve(&client, &args.id).await {
        Ok(id) => id,
        Err(error) => {
            report_or_stop(&args.id, error)?;
            return Ok(ExitCode::FAILURE);
        }
    };
    let patch = serde_json::json!({"url": args.url, "priority": args.priority});
    let mut patch: serde_json::Map<String, serde_json::Value> = patch
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, value)| !value.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(super::limit::RateOrOff(limit)) = args.speed_limit {
        patch.insert("speed_limit".into(), serde_json::json!(limit));
    }
    match client.call_with(Method::PATCH, &format!("/v1/downloads/{id}"), &patch).await {
        Ok(answer) => {
            let shown = decode::<Download>(&answer, "a download").map(|download| name(&download));
            println!("changed {}  {}", short(&id.to_string()), shown.unwrap_or_default());
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            report_or_stop(&args.id, error)?;
            Ok(ExitCode::FAILURE)
        }
    }
}

pub async fn pause(remote: RemoteArgs, args: IdsArgs) -> anyhow::Result<ExitCode> {
    act(remote, args, Action::Pause).await
}

pub async fn resume(remote: RemoteArgs, args: IdsArgs) -> anyhow::Result<ExitCode> {
    act(remote, args, Action::Resume).await
}

pub async fn retry(remote: RemoteArgs, args: IdsArgs) -> anyhow::Result<ExitCode> {
    act(remote, args, Action::Retry).await
}

pub async fn rm(remote: RemoteArgs, args: RmArgs) -> anyhow::Result<ExitCode> {
    let before = args.older_than.map(|age| {
        let now = haul_core::clock::unix_millis(std::time::SystemTime::now());
        now.saturating_sub(i64::try_from(age.as_millis()).unwrap_or(i64::MAX))
    });
    let action = Action::Remove { delete_files: args.delete_files, only: args.state, before };
    act(remote, IdsArgs { ids: args.ids, all: args.all }, action).await
}

/// What a command (or a key of `ls --watch`) asks of one download.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Action {
    Pause,
    Resume,
    Retry,
    /// `before`: only downloads that ended (or, unfinished, were added) before this unix millisecond.
    Remove {
        delete_files: bool,
        only: Option<JobState>,
        before: Option<i64>,
    },
}

impl Action {
    /// The downloads `--all` selects: those in a state the action is legal from (and, for a removal, in the
    /// state and of the age asked for).
    fn applies_to(self, download: &Download) -> bool {
        let state = download.state;
        match self {
            Self::Pause => matches!(state, JobState::Queued | JobState::Active),
            Self::Resume => state == JobState::Paused,
            Self::Retry => matches!(state, JobState::Failed | JobState::Cancelled),
            Self::Remove { only, before, .. } => {
                only.is_none_or(|only| only == state)
                    && before.is_none_or(|before| download.finished_at.unwrap_or(download.created_at) < before)
            }
        }
    }

    /// The endpoint that does it.
    pub(super) fn request(self, id: DownloadId) -> (Method, String) {
        match self {
            Self::Pause => (Method::POST, format!("/v1/downloads/{id}/pause")),
            Self::Resume => (Method::POST, format!("/v1/downloads/{id}/resume")),
            Self::Retry => (Method::POST, format!("/v1/downloads/{id}/retry")),
            Self::Remove { delete_files, .. } => {
                (Method::DELETE, format!("/v1/downloads/{id}?delete_files={delete_files}"))
            }
        }
    }

    pub(super) fn done(self) -> &'static str {
        match self {
            Self::Pause => "paused",
            Self::Resume => "resumed",
            Self::Retry => "queued again",
            Self::Remove { delete_files: false, .. } => "removed",
            Self::Remove { delete_files: true, .. } => "removed (with its file)",
        }
    }

    pub(super) fn verb(self) -> &'static str {
        match self {
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Retry => "retry",
            Self::Remove { .. } => "remove",
        }
    }
}

/// Resolves the IDs (or, with `--all`, picks the downloads the action applies to), then acts on each one,
/// reporting failures per ID.
async fn act(remote: RemoteArgs, args: IdsArgs, action: Action) -> anyhow::Result<ExitCode> {
    let client = Client::new(&remote)?;
    let mut failed = false;
    // (what the user typed, the download it names)
    let mut targets: Vec<(String, DownloadId)> = Vec::new();
    if args.all {
        let list = client.list_all(None).await?;
        for download in list.downloads {
            if action.applies_to(&download) {
                targets.push((download.id.to_string(), download.id));
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
                    if seen.insert(id) {
                        targets.push((given.clone(), id));
                    }
                }
                Err(error) => {
                    report_or_stop(given, error)?;
                    failed = true;
                }
            }
        }
    }

    for (given, id) in targets {
        let (method, path) = action.request(id);
        match client.call(method, &path).await {
            Ok(answer) => {
                // The action is done whatever the answer looks like; the name only makes the line friendlier.
                let shown = decode::<Download>(&answer, "a download").map(|download| name(&download));
                println!("{} {}  {}", action.done(), short(&id.to_string()), shown.unwrap_or_default());
            }
            // With --all, a download that moved on since the listing (finished, paused elsewhere) is not a
            // failure of this command.
            Err(error) if args.all && error.downcast_ref::<ServerError>().is_some_and(ServerError::is_conflict) => {}
            Err(error) => {
                report_or_stop(&given, error)?;
                failed = true;
            }
        }
    }
    Ok(exit_code(failed))
}

/// Turns what the user typed into download IDs, listing the downloads at most once.
#[derive(Default)]
pub(super) struct Resolver {
    ids: Option<Vec<DownloadId>>,
}

impl Resolver {
    pub(super) async fn resolve(&mut self, client: &Client, given: &str) -> anyhow::Result<DownloadId> {
        let wanted = given.trim().to_ascii_lowercase();
        if wanted.is_empty() {
            bail!("empty download ID");
        }
        // A whole ID is used as it is, without listing.
        if let Ok(id) = wanted.parse::<DownloadId>() {
            return Ok(id);
        }
        if self.ids.is_none() {
            let list = client.list_all(None).await?;
            self.ids = Some(list.downloads.into_iter().map(|download| download.id).collect());
        }
        match_prefix(self.ids.as_deref().unwrap_or_default(), &wanted)
    }
}

/// The one download whose ID starts with `wanted` (lowercase), or why there is not exactly one.
fn match_prefix(ids: &[DownloadId], wanted: &str) -> anyhow::Result<DownloadId> {
    let matches: Vec<DownloadId> = ids.iter().copied().filter(|id| id.to_string().starts_with(wanted)).collect();
    match matches.as_slice() {
        [] => bail!("no download matches ID"),
        [one] => Ok(*one),
        many => {
            const SHOWN: usize = 5;
            let mut names: Vec<String> = many.iter().take(SHOWN).map(DownloadId::to_string).collect();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_resolve_uniquely_or_say_why_not() {
        let ids: Vec<DownloadId> = ["3f2a0000-0000-0000-0000-000000000001", "3f2b0000-0000-0000-0000-000000000002"]
            .map(|text| text.parse().unwrap())
            .to_vec();
        assert_eq!(match_prefix(&ids, "3f2a").unwrap(), ids[0]);
        let ambiguous = match_prefix(&ids, "3f2").unwrap_err().to_string();
        assert!(
            ambiguous.contains("ambiguous")
                && ambiguous.contains(&ids[0].to_string())
                && ambiguous.contains(&ids[1].to_string()),
            "{ambiguous}"
        );
        assert_eq!(match_prefix(&ids, "ff").unwrap_err().to_string(), "no download matches ID");
    }

    #[test]
    fn only_a_whole_hyphenated_id_skips_the_listing() {
        // What `Resolver::resolve` takes as a whole ID; anything else is a prefix to look up.
        assert!("3f2a0000-0000-0000-0000-000000000001".parse::<DownloadId>().is_ok());
        assert!("3F2A0000-0000-0000-0000-000000000001".parse::<DownloadId>().is_ok());
        assert!("3f2a0000-0000-0000-0000-00000000000g".parse::<DownloadId>().is_err());
        assert!("3f2a00000000000000000000000000000001".parse::<DownloadId>().is_err());
        assert!("3f2a".parse::<DownloadId>().is_err());
    }
}
