//! Showing a download's progress: a live bar on a terminal, a plain line every few seconds otherwise.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use haul_core::units::{format_bytes, format_rate};
use haul_engine::task::spawn;
use haul_engine::{Phase, Progress};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Copy, Debug)]
pub enum Display {
    Bar,
    Lines,
    Quiet,
}

impl Display {
    pub fn choose(quiet: bool) -> Self {
        if quiet {
            Self::Quiet
        } else if std::io::stderr().is_terminal() {
            Self::Bar
        } else {
            Self::Lines
        }
    }
}

pub struct ProgressUi {
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl ProgressUi {
    pub fn start(progress: Arc<Progress>, label: String, display: Display) -> Self {
        let stop = CancellationToken::new();
        let task = match display {
            Display::Quiet => None,
            Display::Bar => Some(spawn(tracing::info_span!("progress bar"), bar(progress, label, stop.clone()))),
            Display::Lines => Some(spawn(tracing::info_span!("progress lines"), lines(progress, label, stop.clone()))),
        };
        Self { stop, task }
    }

    pub async fn finish(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

fn name_of(progress: &Progress, label: &str) -> String {
    progress
        .snapshot()
        .destination
        .and_then(|path| path.file_name().map(|name| name.to_string_lossy().into_owned()))
        .unwrap_or_else(|| label.to_owned())
}

async fn bar(progress: Arc<Progress>, label: String, stop: CancellationToken) {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(10));
    let known = ProgressStyle::with_template(
        "{prefix:.bold} [{bar:30.cyan/blue}] {bytes}/{total_bytes} {percent:>3}% {msg} ETA {eta}",
    )
    .expect("valid template")
    .progress_chars("=> ");
    let unknown = ProgressStyle::with_template("{prefix:.bold} {spinner} {bytes} {msg}").expect("valid template");
    bar.set_style(unknown.clone());
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.cancelled() => break,
        }
        let snapshot = progress.snapshot();
        bar.set_prefix(name_of(&progress, &label));
        match snapshot.total {
            Some(total) if bar.length() != Some(total) => {
                bar.set_style(known.clone());
                bar.set_length(total);
            }
            _ => {}
        }
        bar.set_position(snapshot.done);
        let phase = match snapshot.phase {
            Phase::Probing => "probing".to_owned(),
            Phase::Verifying => "verifying".to_owned(),
            Phase::Downloading | Phase::Done => {
                let plural = if snapshot.connections == 1 { "" } else { "s" };
                format!("{} {} conn{plural}", format_rate(snapshot.speed as f64), snapshot.connections)
            }
        };
        bar.set_message(phase);
        if let Some(note) = progress.take_note() {
            bar.println(format!("haul: {note}"));
        }
    }
    bar.finish_and_clear();
}

async fn lines(progress: Arc<Progress>, label: String, stop: CancellationToken) {
    let mut ticker = tokio::time::interval(Duration::from_secs(2));
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.cancelled() => break,
        }
        if let Some(note) = progress.take_note() {
            eprintln!("haul: {note}");
        }
        let snapshot = progress.snapshot();
        let name = name_of(&progress, &label);
        let amount = match snapshot.total {
            Some(total) if total > 0 => format!(
                "{:.0}% {} of {}",
                snapshot.done as f64 * 100.0 / total as f64,
                format_bytes(snapshot.done),
                format_bytes(total)
            ),
            _ => format_bytes(snapshot.done),
        };
        eprintln!("{name}: {amount}, {}, {} connections", format_rate(snapshot.speed as f64), snapshot.connections);
    }
}
