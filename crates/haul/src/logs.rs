//! Logs on stderr through `tracing`, as text or JSON lines, and the server's one line per change of a
//! download's state.
//!
//! Every line is passed through [`haul_core::redact::secrets`] before it is written: request spans (a URI's
//! `?token=`, a link's `signature=`), an HTTP client's error quoting a URL with a password in it, a bearer
//! token, a job's URL. Done at the writer, so no log line at any level, from any crate, in either format, can
//! carry those secrets out.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::io::{IsTerminal as _, Write};
use std::time::{Duration, Instant};

use haul_core::job::{AccountId, DownloadId, JobState};
use haul_core::units::{format_bytes, format_duration, format_rate};
use haul_engine::CancellationToken;
use haul_engine::service::{DownloadView, Engine, Event, EventKind};
use tokio::sync::broadcast::error::RecvError;
use tracing_subscriber::fmt::MakeWriter;

/// The target of the job lines, which `haul serve` shows at its default level.
const JOBS: &str = "haul::jobs";

/// How log lines are written (`--log-format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// For people: a time, a level and a sentence; coloured only on a terminal.
    #[default]
    Text,
    /// One JSON object per line, for a log collector.
    Json,
}

/// Logs go to stderr; `HAUL_LOG` (or `RUST_LOG`) overrides the level chosen by `-v`. A server (`server`) shows
/// its job lines without `-v`; every other command is quiet below a warning.
pub fn init(verbose: u8, format: LogFormat, server: bool) {
    let default = match verbose {
        0 if server => "warn,haul::jobs=info",
        0 => "warn",
        1 => "info,haul=info",
        2 => "debug",
        _ => "trace",
    };
    let filter = std::env::var("HAUL_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|spec| tracing_subscriber::EnvFilter::try_new(spec).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => {
            builder.with_writer(RedactedStderr { json: false }).with_ansi(colour_on_stderr()).with_target(false).init()
        }
        // The target stays in JSON: it is what a collector filters the job lines by (`haul::jobs`).
        LogFormat::Json => {
            builder.json().flatten_event(true).with_writer(RedactedStderr { json: true }).with_ansi(false).init()
        }
    }
}

/// Colour codes only for a person at a terminal, and not for one who asked for none (`NO_COLOR`, non-empty).
fn colour_on_stderr() -> bool {
    let declined = std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty());
    std::io::stderr().is_terminal() && !declined
}

/// Hands each event a buffer and writes it to stderr, secrets masked, when the event is done.
struct RedactedStderr {
    json: bool,
}

impl<'a> MakeWriter<'a> for RedactedStderr {
    type Writer = EventBuffer;

    fn make_writer(&'a self) -> EventBuffer {
        EventBuffer { text: Vec::with_capacity(256), json: self.json }
    }
}

/// One event's text; the formatter writes it in pieces, and it leaves in one piece on drop.
struct EventBuffer {
    text: Vec<u8>,
    json: bool,
}

impl Write for EventBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.text.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for EventBuffer {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.text);
        let masked = if self.json { masked_json(&text) } else { haul_core::redact::secrets(&text) };
        // A log line that cannot be written has nowhere else to go.
        let _ = std::io::stderr().lock().write_all(masked.as_bytes());
    }
}

/// A JSON line with its secrets masked, and still JSON. Masking the line as text keeps the formatter's order
/// of fields, and nearly always leaves valid JSON; but a secret's value is cut at a quote, and in JSON a quote
/// inside a string is escaped (`\"`), so the cut can take the backslash and end the string early. A line that
/// no longer parses is masked string by string instead.
fn masked_json(line: &str) -> Cow<'_, str> {
    let masked = haul_core::redact::secrets(line);
    if matches!(masked, Cow::Borrowed(_)) || serde_json::from_str::<serde::de::IgnoredAny>(&masked).is_ok() {
        return masked;
    }
    match serde_json::from_str::<serde_json::Value>(line) {
        Ok(mut value) => {
            mask_strings(&mut value);
            Cow::Owned(format!("{value}\n"))
        }
        // Not JSON to begin with (nothing the formatter writes): masked as text.
        Err(_) => masked,
    }
}

fn mask_strings(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(text) => {
            if let Cow::Owned(masked) = haul_core::redact::secrets(text) {
                *text = masked;
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(mask_strings),
        serde_json::Value::Object(fields) => fields.values_mut().for_each(mask_strings),
        _ => {}
    }
}

/// The server's log of its downloads: one line (at info, target `haul::jobs`) each time one is added, starts,
/// pauses, resumes, is queued again, completes, fails, is cancelled or removed, and for each one the server's
/// stop interrupts. Progress ticks are not logged.
pub struct JobLog {
    engine: Engine,
    format: LogFormat,
    /// Account names, looked up once each.
    accounts: HashMap<AccountId, String>,
    /// The downloads running on this server: when their current run started and what was on disk then, for the
    /// time and average speed of the run when it completes.
    runs: HashMap<DownloadId, Run>,
    /// Events read from the engine's history that may also still come through the channel.
    replayed: HashSet<u64>,
    /// The newest event logged.
    last_id: u64,
}

struct Run {
    since: Instant,
    bytes_before: u64,
    account: AccountId,
}

impl JobLog {
    pub fn new(engine: Engine, format: LogFormat) -> Self {
        Self { engine, format, accounts: HashMap::new(), runs: HashMap::new(), replayed: HashSet::new(), last_id: 0 }
    }

    /// Logs the engine's events until `stop`, then a line for each download the stop interrupted. Cancel
    /// `stop` after the engine has shut down, so every event of the shutdown is logged first.
    pub async fn run(mut self, stop: CancellationToken) {
        // Subscribe before reading the history, so an event emitted between the two is in one or the other:
        // the engine starts resuming downloads before this task exists.
        let mut events = self.engine.subscribe();
        self.replay(0).await;
        loop {
            // Biased: events already sent are logged before the stop is noticed.
            let received = tokio::select! {
                biased;
                received = events.recv() => received,
                () = stop.cancelled() => break,
            };
            match received {
                Ok(event) if self.replayed.remove(&event.id) => {}
                Ok(event) => self.log(event).await,
                // Fallen behind the channel: the history has what was missed.
                Err(RecvError::Lagged(_)) => self.replay(self.last_id).await,
                Err(RecvError::Closed) => break,
            }
        }
        self.log_interrupted().await;
    }

    async fn replay(&mut self, since: u64) {
        let events = self.engine.events_since(since);
        self.replayed = events.iter().map(|event| event.id).collect();
        for event in events {
            self.log(event).await;
        }
    }

    async fn log(&mut self, event: Event) {
        self.last_id = self.last_id.max(event.id);
        let download = &event.download;
        let kind = event.kind;
        let mut line = JobLine::new(kind.as_str(), download);
        let name = display_name(download);
        line.message = match kind {
            EventKind::Progress => return,
            EventKind::Added => format!("added: {}", download.url),
            EventKind::Started => {
                self.runs.insert(
                    download.id,
                    Run { since: Instant::now(), bytes_before: download.bytes_done, account: event.account.clone() },
                );
                match download.size {
                    Some(size) if download.bytes_done > 0 => {
                        format!("started: {name}, from {} of {}", format_bytes(download.bytes_done), format_bytes(size))
                    }
                    _ => format!("started: {name}"),
                }
            }
            EventKind::Completed => {
                let run = self.runs.remove(&download.id);
                let size = download.size.unwrap_or(download.bytes_done);
                let (elapsed, fetched) = match run {
                    Some(run) => (run.since.elapsed(), size.saturating_sub(run.bytes_before)),
                    // Started before this log was listening: the job's own times, from its first start.
                    None => (job_elapsed(download), size),
                };
                let speed = fetched as f64 / elapsed.as_secs_f64().max(0.001);
                line.elapsed_ms = Some(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX));
                line.speed = Some(speed as u64);
                line.fetched = Some(fetched);
                let resumed =
                    if fetched < size { format!(" ({} in this run)", format_bytes(fetched)) } else { "".into() };
                format!(
                    "completed: {name}, {}{resumed} in {} ({})",
                    format_bytes(size),
                    seconds(elapsed),
                    format_rate(speed)
                )
            }
            EventKind::Failed => {
                self.runs.remove(&download.id);
                let reason = download.error.as_deref().unwrap_or("no reason recorded");
                // An engine error names the URL it failed on; a name that is the URL is not said twice.
                if reason.contains(&name) { format!("failed: {reason}") } else { format!("failed: {name}: {reason}") }
            }
            EventKind::Paused => {
                self.runs.remove(&download.id);
                let why = download.error.as_deref().map(|error| format!(" ({error})")).unwrap_or_default();
                format!("paused: {name}{}{why}", at(download))
            }
            EventKind::Resumed => format!("resumed: {name} (queued)"),
            EventKind::Retried => format!("queued again: {name}{}", at(download)),
            EventKind::Queued => {
                self.runs.remove(&download.id);
                format!("back in the queue (the schedule paused it): {name}{}", at(download))
            }
            EventKind::Cancelled => {
                self.runs.remove(&download.id);
                format!("cancelled: {name}")
            }
            EventKind::Removed => {
                self.runs.remove(&download.id);
                format!("removed: {name}")
            }
        };
        line.account = self.account_name(&event.account).await;
        line.emit(self.format);
    }

    /// A line for each download that was running when the server stopped: its job stays active in the store
    /// and continues at the next start, and the engine emits no event for it.
    async fn log_interrupted(&mut self) {
        let runs: Vec<_> = self.runs.drain().collect();
        for (id, run) in runs {
            let Ok(download) = self.engine.get(&run.account, id).await else { continue };
            // A run that ended without an event of its own (its lease went to another node) is not ours.
            if download.state != JobState::Active {
                continue;
            }
            let mut line = JobLine::new("stopped", &download);
            line.message = format!("stopped with the server: {}{}", display_name(&download), at(&download));
            line.account = self.account_name(&run.account).await;
            line.emit(self.format);
        }
    }

    async fn account_name(&mut self, account: &AccountId) -> String {
        if let Some(name) = self.accounts.get(account) {
            return name.clone();
        }
        // An account removed since keeps its id in the line.
        let name = self.engine.account_name(account).await.unwrap_or_else(|_| account.to_string());
        self.accounts.insert(account.clone(), name.clone());
        name
    }
}

/// One job line: a sentence for people, and in JSON the same facts as fields.
struct JobLine {
    event: &'static str,
    download: DownloadId,
    account: String,
    account_id: AccountId,
    url: String,
    name: Option<String>,
    state: JobState,
    size: Option<u64>,
    bytes_done: u64,
    /// Completed only: the run's time, the bytes it fetched (less than `size` after a resume), and their
    /// average rate in bytes per second.
    elapsed_ms: Option<u64>,
    fetched: Option<u64>,
    speed: Option<u64>,
    error: Option<String>,
    /// After `download ID `.
    message: String,
}

impl JobLine {
    fn new(event: &'static str, download: &DownloadView) -> Self {
        Self {
            event,
            download: download.id,
            account: String::new(),
            account_id: download.account.clone(),
            url: download.url.clone(),
            name: download.filename.clone(),
            state: download.state,
            size: download.size,
            bytes_done: download.bytes_done,
            elapsed_ms: None,
            fetched: None,
            speed: None,
            error: download.error.clone(),
            message: String::new(),
        }
    }

    fn emit(self, format: LogFormat) {
        // The id as `haul ls` shows it (the client commands take the prefix); JSON has it whole.
        let id = self.download.to_string();
        let short = id.get(..8).unwrap_or(&id);
        let account = &self.account;
        match format {
            LogFormat::Text => tracing::info!(target: JOBS, "download {short} (account {account}) {}", self.message),
            LogFormat::Json => tracing::info!(
                target: JOBS,
                event = self.event,
                download = %self.download,
                account = %self.account,
                account_id = %self.account_id,
                url = %self.url,
                name = self.name,
                state = %self.state,
                size = self.size,
                bytes_done = self.bytes_done,
                elapsed_ms = self.elapsed_ms,
                fetched = self.fetched,
                speed = self.speed,
                error = self.error,
                "download {short} (account {account}) {}",
                self.message
            ),
        }
    }
}

/// The file's name once chosen, else the URL it comes from.
fn display_name(download: &DownloadView) -> String {
    download.filename.clone().or_else(|| download.title.clone()).unwrap_or_else(|| download.url.clone())
}

/// ` at 1.0 MiB of 2.0 MiB`, or nothing before any byte arrived.
fn at(download: &DownloadView) -> String {
    match (download.bytes_done, download.size) {
        (0, _) => String::new(),
        (done, Some(size)) => format!(" at {} of {}", format_bytes(done), format_bytes(size)),
        (done, None) => format!(" at {}", format_bytes(done)),
    }
}

/// From the job's first start to its end, as the store recorded them.
fn job_elapsed(download: &DownloadView) -> Duration {
    match (download.started_at, download.finished_at) {
        (Some(started), Some(finished)) => Duration::from_millis(u64::try_from(finished - started).unwrap_or(0)),
        _ => Duration::ZERO,
    }
}

/// A run's length: tenths of a second below a minute (a log line is read after the fact, so 0.4s is worth
/// telling from 0s), then as progress lines show it.
fn seconds(elapsed: Duration) -> String {
    if elapsed < Duration::from_secs(60) { format!("{:.1}s", elapsed.as_secs_f64()) } else { format_duration(elapsed) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_stay_json_with_their_secrets_masked() {
        // (line as the formatter wrote it, the value of its "message" once masked)
        let cases = [
            (r#"{"message":"no secret here","level":"INFO"}"#, "no secret here"),
            (r#"{"message":"GET http://h/f?token=abc&x=1","level":"INFO"}"#, "GET http://h/f?token=***&x=1"),
            // A quoted URL: the text mask would take the backslash of `\"` and end the string early.
            (
                r#"{"message":"GET \"http://h/f?token=abc\" failed","level":"WARN"}"#,
                r#"GET "http://h/f?token=***" failed"#,
            ),
            (r#"{"message":"fetch \"http://user:pw@h/f\"","level":"WARN"}"#, r#"fetch "http://***@h/f""#),
        ];
        for (line, message) in cases {
            let line = format!("{line}\n");
            let masked = masked_json(&line);
            assert!(masked.ends_with('\n'), "{masked}");
            let value: serde_json::Value = serde_json::from_str(&masked).unwrap_or_else(|e| panic!("{e}: {masked}"));
            assert_eq!(value["message"], message, "{line}");
            assert!(value["level"].is_string(), "{masked}");
        }
    }

    #[test]
    fn run_lengths_read_after_the_fact() {
        let cases = [(400, "0.4s"), (12_345, "12.3s"), (59_940, "59.9s"), (185_000, "3m 05s")];
        for (millis, text) in cases {
            assert_eq!(seconds(Duration::from_millis(millis)), text);
        }
    }
}
