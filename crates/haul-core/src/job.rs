//! A download job's identity (`DownloadId`, `AccountId`) and its state machine (`JobState`, `JobAction`,
//! `next_state`); see `STATE.md` beside this crate for the diagram and who triggers what.
//!
//! The transition rules live here, and nowhere else, so that the store, the scheduler and the API all refuse
//! the same illegal requests, and so that every (state, action) pair is covered by one table-driven test.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// Why an identifier given as text was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("invalid download id {0:?}: expected a hyphenated UUID such as 3f2a5c1e-8b7d-4c2a-9e1f-0a1b2c3d4e5f")]
    Download(String),
    #[error("invalid account id {0:?}: expected 32 lowercase hex digits")]
    Account(String),
}

/// Identifies one download across the server: a random (v4) UUID, written lowercase and hyphenated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DownloadId(Uuid);

impl DownloadId {
    /// A fresh random id.
    pub fn new_random() -> Self {
        Self(Uuid::new_v4())
    }

    pub fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl fmt::Display for DownloadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl FromStr for DownloadId {
    type Err = IdError;

    /// Accepts only the hyphenated form (either case): the braced, URN and undashed forms that `Uuid` also
    /// parses would give one download several spellings in URLs and logs.
    fn from_str(text: &str) -> Result<Self, IdError> {
        if text.len() != 36 {
            return Err(IdError::Download(text.to_owned()));
        }
        Uuid::try_parse(text).map(Self).map_err(|_| IdError::Download(text.to_owned()))
    }
}

impl Serialize for DownloadId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DownloadId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Identifies the account that owns downloads: 32 lowercase hex digits (128 random bits).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId(String);

impl AccountId {
    /// A fresh random id. The randomness is the v4 UUID generator's, so core needs no RNG of its own.
    pub fn generate() -> Self {
        Self(Uuid::new_v4().simple().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for AccountId {
    type Err = IdError;

    /// Uppercase is refused rather than folded so that one account never has two spellings.
    fn from_str(text: &str) -> Result<Self, IdError> {
        let valid = text.len() == 32 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if valid { Ok(Self(text.to_owned())) } else { Err(IdError::Account(text.to_owned())) }
    }
}

impl Serialize for AccountId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for AccountId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

crate::named_enum! {
    /// Where a download is in its life.
    pub enum JobState as "download state" {
        /// Waiting for the scheduler to give it a slot.
        Queued = "queued",
        /// Being fetched by the engine on some node.
        Active = "active",
        /// Stopped by the user; keeps its partial file and resumes where it left off.
        Paused = "paused",
        Completed = "completed",
        Failed = "failed",
        Cancelled = "cancelled",
    }
}

impl JobState {
    /// True when no work will happen without a user asking for it again (`Retry` can still revive a failed or
    /// cancelled download; a completed one is final).
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }
}

crate::named_enum! {
    /// What fetches a download.
    pub enum JobKind as "kind" {
        /// Decided when the job first runs: a web page yt-dlp can read is media, anything else a file.
        Auto = "auto",
        /// haul's own HTTP engine fetches the URL as it is.
        File = "file",
        /// A page read by yt-dlp; haul's engine fetches the streams it names and ffmpeg finishes them.
        Media = "media",
        /// A playlist or channel: once read, the parent of one media job per entry, whose state and progress
        /// are theirs. Never claimed itself after that.
        Playlist = "playlist",
    }
}

/// Something that moves a download between states. Who sends each one is in `STATE.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobAction {
    Start,
    Pause,
    Resume,
    Complete,
    Fail,
    Cancel,
    Retry,
}

impl JobAction {
    pub const ALL: [JobAction; 7] =
        [Self::Start, Self::Pause, Self::Resume, Self::Complete, Self::Fail, Self::Cancel, Self::Retry];

    /// The verb, as used in messages and API paths (`pause`, `retry`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Complete => "complete",
            Self::Fail => "fail",
            Self::Cancel => "cancel",
            Self::Retry => "retry",
        }
    }
}

impl fmt::Display for JobAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An action name that is not one of [`JobAction::ALL`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown download action {0:?}; expected one of start, pause, resume, complete, fail, cancel, retry")]
pub struct UnknownAction(pub String);

impl FromStr for JobAction {
    type Err = UnknownAction;

    fn from_str(text: &str) -> Result<Self, UnknownAction> {
        Self::ALL.into_iter().find(|action| action.as_str() == text).ok_or_else(|| UnknownAction(text.to_owned()))
    }
}

/// An action that the download's current state does not allow. It carries the current state because callers
/// answer with it (the API's 409 names it, and the store's `Conflict` keeps it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot {action} a download that is {from}")]
pub struct IllegalTransition {
    pub from: JobState,
    pub action: JobAction,
}

/// The state a download moves to when `action` is applied in state `from`.
pub fn next_state(from: JobState, action: JobAction) -> Result<JobState, IllegalTransition> {
    use JobAction as A;
    use JobState as S;
    let next = match (action, from) {
        (A::Start, S::Queued) => S::Active,
        (A::Pause, S::Queued | S::Active) => S::Paused,
        // Resuming queues rather than starts: the scheduler decides when a slot is free.
        (A::Resume, S::Paused) => S::Queued,
        (A::Complete, S::Active) => S::Completed,
        (A::Fail, S::Active) => S::Failed,
        (A::Cancel, S::Queued | S::Active | S::Paused) => S::Cancelled,
        (A::Retry, S::Failed | S::Cancelled) => S::Queued,
        _ => return Err(IllegalTransition { from, action }),
    };
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use JobAction as A;
    use JobState as S;

    /// Every legal transition; any (state, action) pair not listed here must be refused.
    const LEGAL: &[(JobState, JobAction, JobState)] = &[
        (S::Queued, A::Start, S::Active),
        (S::Queued, A::Pause, S::Paused),
        (S::Active, A::Pause, S::Paused),
        (S::Paused, A::Resume, S::Queued),
        (S::Active, A::Complete, S::Completed),
        (S::Active, A::Fail, S::Failed),
        (S::Queued, A::Cancel, S::Cancelled),
        (S::Active, A::Cancel, S::Cancelled),
        (S::Paused, A::Cancel, S::Cancelled),
        (S::Failed, A::Retry, S::Queued),
        (S::Cancelled, A::Retry, S::Queued),
    ];

    #[test]
    fn next_state_over_every_state_and_action() {
        let mut n_checked = 0;
        for from in JobState::ALL {
            for action in JobAction::ALL {
                let expected = LEGAL.iter().find(|(f, a, _)| *f == from && *a == action).map(|(_, _, to)| *to);
                let got = next_state(from, action);
                match expected {
                    Some(to) => assert_eq!(got, Ok(to), "{action} from {from}"),
                    None => assert_eq!(got, Err(IllegalTransition { from, action }), "{action} from {from}"),
                }
                n_checked += 1;
            }
        }
        assert_eq!(n_checked, 6 * 7);
    }

    #[test]
    fn completed_is_final() {
        for action in JobAction::ALL {
            assert!(next_state(S::Completed, action).is_err(), "{action}");
        }
    }

    #[test]
    fn illegal_transition_names_action_and_current_state() {
        let error = next_state(S::Completed, A::Pause).unwrap_err();
        assert_eq!(error.to_string(), "cannot pause a download that is completed");
        assert_eq!(error.from, S::Completed);
    }

    #[test]
    fn terminal_states() {
        let terminal: Vec<_> = JobState::ALL.into_iter().filter(|s| s.is_terminal()).collect();
        assert_eq!(terminal, [S::Completed, S::Failed, S::Cancelled]);
    }

    #[test]
    fn state_names_round_trip_through_text_and_serde() {
        for state in JobState::ALL {
            assert_eq!(state.as_str().parse::<JobState>(), Ok(state));
            assert_eq!(serde_json::to_string(&state).unwrap(), format!("\"{state}\""));
            assert_eq!(serde_json::from_str::<JobState>(&format!("\"{state}\"")).unwrap(), state);
        }
        for action in JobAction::ALL {
            assert_eq!(action.as_str().parse::<JobAction>(), Ok(action));
            assert_eq!(serde_json::to_string(&action).unwrap(), format!("\"{action}\""));
        }
    }

    #[test]
    fn unknown_state_lists_the_valid_ones() {
        let error = "Done".parse::<JobState>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown download state \"Done\"; expected one of queued, active, paused, completed, failed, cancelled"
        );
        assert!("Queued".parse::<JobState>().is_err(), "state names are case-sensitive");
    }

    #[test]
    fn download_id_is_lowercase_hyphenated() {
        let id: DownloadId = "3F2A5C1E-8B7D-4C2A-9E1F-0A1B2C3D4E5F".parse().unwrap();
        assert_eq!(id.to_string(), "3f2a5c1e-8b7d-4c2a-9e1f-0a1b2c3d4e5f");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"3f2a5c1e-8b7d-4c2a-9e1f-0a1b2c3d4e5f\"");
        assert_eq!(serde_json::from_str::<DownloadId>("\"3f2a5c1e-8b7d-4c2a-9e1f-0a1b2c3d4e5f\"").unwrap(), id);

        let fresh = DownloadId::new_random();
        assert_eq!(fresh.as_uuid().get_version_num(), 4);
        assert_eq!(fresh.to_string().parse::<DownloadId>(), Ok(fresh));
    }

    #[test]
    fn download_id_refuses_other_spellings() {
        for text in [
            "",
            "3f2a5c1e8b7d4c2a9e1f0a1b2c3d4e5f",
            "{3f2a5c1e-8b7d-4c2a-9e1f-0a1b2c3d4e5f}",
            "urn:uuid:3f2a5c1e-8b7d-4c2a-9e1f-0a1b2c3d4e5f",
            "3f2a5c1e-8b7d-4c2a-9e1f-0a1b2c3d4e5g",
        ] {
            assert_eq!(text.parse::<DownloadId>(), Err(IdError::Download(text.to_owned())), "{text}");
        }
        assert!(serde_json::from_str::<DownloadId>("\"nope\"").is_err());
    }

    #[test]
    fn account_id_is_32_lowercase_hex() {
        let generated = AccountId::generate();
        assert_eq!(generated.as_str().len(), 32);
        assert_eq!(generated.as_str().parse::<AccountId>(), Ok(generated.clone()));
        assert_ne!(generated, AccountId::generate());

        let id: AccountId = "0123456789abcdef0123456789abcdef".parse().unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"0123456789abcdef0123456789abcdef\"");
        assert_eq!(serde_json::from_str::<AccountId>("\"0123456789abcdef0123456789abcdef\"").unwrap(), id);

        for text in ["", "0123456789ABCDEF0123456789ABCDEF", "0123456789abcdef0123456789abcde", "g".repeat(32).as_str()]
        {
            assert_eq!(text.parse::<AccountId>(), Err(IdError::Account(text.to_owned())), "{text}");
        }
        assert!(serde_json::from_str::<AccountId>("\"ABC\"").is_err());
    }
}
