//! Running yt-dlp and ffmpeg: each in a process group of its own, so that stopping one (pause, cancel,
//! shutdown) also ends the children it started (yt-dlp runs ffmpeg), and no process outlives its job.

use std::path::Path;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio_util::sync::CancellationToken;

use crate::error::EngineError;

/// The last bytes of stderr kept for an error message.
const STDERR_TAIL: usize = 2000;

/// What a finished process printed.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) stdout: String,
}

/// A command for `program` that will run in a new process group with no stdin.
pub(crate) fn command(program: &Path) -> Command {
    let mut command = Command::new(program);
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0).kill_on_drop(true);
    command
}

/// Runs `command` to the end, handing each stdout line to `on_line` (and keeping all of stdout when `keep`).
/// Cancelling kills the whole process group and answers [`EngineError::Cancelled`]; a non-zero exit is an error
/// naming `what` with the end of stderr.
pub(crate) async fn run(
    command: Command,
    what: &str,
    keep: bool,
    cancel: &CancellationToken,
    on_line: impl FnMut(&str),
) -> Result<Finished, EngineError> {
    start(command, what)?.finish(keep, cancel, on_line).await
}

/// A started process, for a caller that writes to its stdin (`command` must pipe it) before it waits for it.
/// Dropped unfinished, it is killed with its process group.
pub(crate) struct Started {
    child: Option<Child>,
    group: Option<rustix::process::Pid>,
    what: String,
}

/// Starts `command`; see [`Started`].
pub(crate) fn start(mut command: Command, what: &str) -> Result<Started, EngineError> {
    let child = command.spawn().map_err(|error| EngineError::Media(format!("cannot start {what}: {error}")))?;
    let group = child.id().and_then(|pid| rustix::process::Pid::from_raw(pid as i32));
    Ok(Started { child: Some(child), group, what: what.to_owned() })
}

impl Started {
    /// The process's stdin, once (when the command piped it).
    pub(crate) fn stdin(&mut self) -> Option<ChildStdin> {
        self.child.as_mut().and_then(|child| child.stdin.take())
    }

    #[cfg(test)]
    pub(crate) fn id(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Waits for the process as [`run`] does.
    pub(crate) async fn finish(
        mut self,
        keep: bool,
        cancel: &CancellationToken,
        mut on_line: impl FnMut(&str),
    ) -> Result<Finished, EngineError> {
        let mut child = self.child.take().expect("a started process is finished once");
        let what = std::mem::take(&mut self.what);
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let read_stderr = async move {
            let mut text = Vec::new();
            let _ = stderr.read_to_end(&mut text).await;
            String::from_utf8_lossy(&text).into_owned()
        };
        let read_stdout = async {
            let mut lines = BufReader::new(stdout).lines();
            let mut kept = String::new();
            while let Ok(Some(line)) = lines.next_line().await {
                on_line(&line);
                if keep {
                    kept.push_str(&line);
                    kept.push('\n');
                }
            }
            kept
        };
        let work = async { tokio::join!(read_stdout, read_stderr, child.wait()) };
        let finished = tokio::select! {
            finished = work => Some(finished),
            _ = cancel.cancelled() => None,
        };
        let Some((stdout, stderr, status)) = finished else {
            kill_group(self.group);
            let _ = child.wait().await;
            return Err(EngineError::Cancelled);
        };
        let status = status.map_err(|error| EngineError::Media(format!("{what}: {error}")))?;
        if status.success() {
            return Ok(Finished { stdout });
        }
        let trimmed = stderr.trim();
        let start = trimmed.char_indices().rev().nth(STDERR_TAIL).map_or(0, |(i, _)| i);
        Err(EngineError::Media(format!("{what} failed ({status}): {}", last_lines(&trimmed[start..]))))
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        if self.child.is_some() {
            // Unfinished: the child itself goes with `kill_on_drop`, anything it started with the group.
            kill_group(self.group);
        }
    }
}

/// The whole group: yt-dlp's ffmpeg children too.
fn kill_group(group: Option<rustix::process::Pid>) {
    if let Some(group) = group {
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
    }
}

/// The error lines of a tool's stderr, or its last lines: what a person needs to see.
fn last_lines(stderr: &str) -> String {
    let errors: Vec<&str> = stderr.lines().filter(|line| line.contains("ERROR")).collect();
    let chosen: Vec<&str> = if errors.is_empty() {
        stderr.lines().rev().take(3).collect::<Vec<_>>().into_iter().rev().collect()
    } else {
        errors
    };
    let text = chosen.join("; ");
    if text.is_empty() { "no message".to_owned() } else { text }
}
