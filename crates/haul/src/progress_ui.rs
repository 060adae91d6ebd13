//! Showing a download's progress: a live line on a terminal, sized to its width, a plain line every few seconds
//! otherwise.

use std::collections::VecDeque;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use haul_core::units::{format_bytes, format_rate};
use haul_engine::task::spawn;
use haul_engine::{Phase, Progress, ProgressSnapshot};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
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

/// Where progress and messages go: on a terminal, one live line per download (several with `get -j`) under the
/// messages printed above them; otherwise stderr as it is.
#[derive(Clone)]
pub struct Screen {
    display: Display,
    bars: Option<MultiProgress>,
}

impl Screen {
    pub fn new(display: Display) -> Self {
        let bars = match display {
            Display::Bar => Some(MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10))),
            Display::Lines | Display::Quiet => None,
        };
        Self { display, bars }
    }

    /// A message above the live lines: on a terminal wrapped at its spaces to the width, elsewhere (a log) on
    /// one line.
    pub fn say(&self, line: String) {
        match self.display {
            Display::Bar => self.println(wrap(&line, terminal_width().saturating_sub(1))),
            Display::Lines | Display::Quiet => self.println(line),
        }
    }

    /// A line above the live ones (or on stderr).
    pub fn println(&self, line: String) {
        match &self.bars {
            // The live lines cleared, the text written as it is (indicatif's own println pads each line to the
            // width and leaves the last one unended), the live lines drawn again below it.
            Some(bars) => bars.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }
}

pub struct ProgressUi {
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl ProgressUi {
    pub fn start(progress: Arc<Progress>, label: String, screen: &Screen) -> Self {
        let stop = CancellationToken::new();
        let task = match (&screen.bars, screen.display) {
            (_, Display::Quiet) => None,
            (Some(bars), _) => {
                Some(spawn(tracing::info_span!("progress bar"), bar(progress, label, bars.clone(), stop.clone())))
            }
            (None, _) => Some(spawn(tracing::info_span!("progress lines"), lines(progress, label, stop.clone()))),
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

/// Columns of the terminal on stderr; else `COLUMNS`; else 80.
pub fn terminal_width() -> usize {
    // rustix's termios comes with clap's `wrap_help` (terminal_size), which sizes `--help` the same way.
    rustix::termios::tcgetwinsize(std::io::stderr())
        .ok()
        .map(|size| usize::from(size.ws_col))
        .filter(|&columns| columns > 0)
        .or_else(|| std::env::var("COLUMNS").ok().and_then(|text| text.trim().parse().ok()).filter(|&c| c > 0))
        .unwrap_or(80)
}

/// `text` fitted to `width` characters by cutting its middle: `very-long-na…file.iso`.
pub fn shorten_middle(text: &str, width: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= width {
        return text.to_owned();
    }
    if width == 0 {
        return String::new();
    }
    let keep = width - 1;
    let tail = keep / 2;
    let head = keep - tail;
    let mut out: String = chars[..head].iter().collect();
    out.push('…');
    out.extend(&chars[chars.len() - tail..]);
    out
}

/// Greedy word wrap to `width` columns, continuation lines indented by two spaces. A word longer than the width
/// (a long path) keeps a line of its own.
pub fn wrap(text: &str, width: usize) -> String {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    let mut words_on_line = 0;
    // A number stays with its unit: "1.5 MiB", "2.0 s" never break.
    let mut words: Vec<String> = Vec::new();
    for word in text.split(' ') {
        match words.last_mut() {
            Some(last) if is_unit(word) => {
                last.push(' ');
                last.push_str(word);
            }
            _ => words.push(word.to_owned()),
        }
    }
    for word in &words {
        if words_on_line > 0 && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
            line.push_str("  ");
            words_on_line = 0;
        }
        if words_on_line > 0 {
            line.push(' ');
        }
        line.push_str(word);
        words_on_line += 1;
    }
    lines.push(line);
    lines.join("\n")
}

fn is_unit(word: &str) -> bool {
    let unit = word.trim_end_matches([',', ';', ')', '.']);
    let unit = unit.strip_suffix("/s").unwrap_or(unit);
    matches!(unit, "B" | "KiB" | "MiB" | "GiB" | "TiB" | "PiB" | "EiB" | "s" | "min" | "h")
}

/// Elapsed time or ETA: "12.3 s" under a minute, then "2 min 05 s", "1 h 02 min".
pub fn format_elapsed(elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1} s")
    } else {
        let whole = elapsed.as_secs();
        let (hours, minutes, seconds) = (whole / 3600, whole / 60 % 60, whole % 60);
        if hours > 0 { format!("{hours} h {minutes:02} min") } else { format!("{minutes} min {seconds:02} s") }
    }
}

/// Short ETA: "7s", "2m05s", "1h02m".
fn format_eta(secs: u64) -> String {
    let (hours, minutes, seconds) = (secs / 3600, secs / 60 % 60, secs % 60);
    if hours > 99 {
        "--".to_owned()
    } else if hours > 0 {
        format!("{hours}h{minutes:02}m")
    } else if minutes > 0 {
        format!("{minutes}m{seconds:02}s")
    } else {
        format!("{seconds}s")
    }
}

fn connections(snapshot: &ProgressSnapshot, rate: f64) -> String {
    // Bytes moving over no counted connection can only be one stream (a stream written to stdout).
    let n = if snapshot.connections == 0 && rate > 0.0 { 1 } else { snapshot.connections };
    match n {
        0 => "connecting".to_owned(),
        1 => "1 conn".to_owned(),
        n => format!("{n} conns"),
    }
}

/// This run's rate, from the bytes fetched in it over the last few seconds: shown from the first tick, and never
/// inflated by the bytes an earlier run left (so an ETA right after a resume is right).
struct Rate {
    samples: VecDeque<(Instant, u64)>,
}

impl Rate {
    const WINDOW: Duration = Duration::from_secs(5);

    fn new() -> Self {
        Self { samples: VecDeque::new() }
    }

    fn update(&mut self, now: Instant, snapshot: &ProgressSnapshot) -> f64 {
        let fetched = snapshot.fetched_this_run();
        if snapshot.phase != Phase::Downloading {
            self.samples.clear();
            return 0.0;
        }
        if self.samples.back().is_some_and(|&(_, last)| fetched < last) {
            // Started again from zero.
            self.samples.clear();
        }
        self.samples.push_back((now, fetched));
        while self.samples.len() > 2
            && self.samples.get(1).is_some_and(|&(at, _)| now.duration_since(at) >= Self::WINDOW)
        {
            self.samples.pop_front();
        }
        let (since, from) = self.samples[0];
        let elapsed = now.duration_since(since).as_secs_f64();
        if elapsed < 0.2 {
            return snapshot.speed as f64;
        }
        (fetched - from) as f64 / elapsed
    }
}

fn name_of(snapshot: &ProgressSnapshot, label: &str) -> String {
    snapshot
        .destination
        .as_ref()
        .and_then(|path| path.file_name().map(|name| name.to_string_lossy().into_owned()))
        .unwrap_or_else(|| label.to_owned())
}

/// One progress line of at most `width - 1` characters (the last column left free, so no terminal wraps it):
/// `name [=====>     ] 412.3 MiB/1.0 GiB  40% 83.2 MiB/s 4 conns ETA 7s`.
pub fn render(snapshot: &ProgressSnapshot, name: &str, rate: f64, width: usize, spin: usize) -> String {
    let room = width.saturating_sub(1).max(10);
    // Each figure with how long it stays when the line is short of room (the highest stays longest).
    let (stats, fraction): (Vec<(u8, String)>, Option<f64>) = match snapshot.phase {
        Phase::Probing => (vec![(9, "probing…".to_owned())], None),
        phase => {
            let mut stats = Vec::new();
            let fraction = match snapshot.total {
                Some(total) if total > 0 => {
                    let fraction = (snapshot.done as f64 / total as f64).clamp(0.0, 1.0);
                    stats.push((9, format!("{}/{}", format_bytes(snapshot.done), format_bytes(total))));
                    stats.push((5, format!("{:>3.0}%", fraction * 100.0)));
                    Some(fraction)
                }
                _ => {
                    stats.push((9, format_bytes(snapshot.done)));
                    None
                }
            };
            if phase == Phase::Verifying {
                stats.push((8, "verifying".to_owned()));
            } else {
                stats.push((7, format_rate(rate)));
                stats.push((3, connections(snapshot, rate)));
                let eta = match snapshot.total {
                    Some(total) if rate >= 1.0 => {
                        format_eta((total.saturating_sub(snapshot.done) as f64 / rate).ceil() as u64)
                    }
                    _ => "--".to_owned(),
                };
                stats.push((6, format!("ETA {eta}")));
            }
            (stats, fraction)
        }
    };
    // Drop the least useful figures until the rest leaves a name of a dozen characters.
    let mut stats = stats;
    let text_len = |stats: &[(u8, String)]| stats.iter().map(|(_, s)| s.chars().count() + 1).sum::<usize>();
    while stats.len() > 1 && text_len(&stats) + 12 > room {
        let least = stats.iter().enumerate().min_by_key(|(_, (rank, _))| *rank).map_or(0, |(i, _)| i);
        stats.remove(least);
    }
    let stats_text = stats.into_iter().map(|(_, s)| s).collect::<Vec<_>>().join(" ");
    let free = room.saturating_sub(stats_text.chars().count() + 1);
    let name_len = name.chars().count();
    // The bar gets what the name leaves, between 10 and 30 columns; below 10, the name is shortened, and below a
    // name of 12 the bar goes.
    const BAR_MIN: usize = 10;
    const BAR_MAX: usize = 30;
    let bar_room = |name_shown: usize| free.saturating_sub(name_shown + 1);
    let (name_shown, bar_width) = if name_len + 1 + BAR_MIN + 2 <= free {
        (name_len, (bar_room(name_len) - 2).min(BAR_MAX))
    } else if free >= 12 + 1 + BAR_MIN + 2 {
        let name_shown = free - 1 - BAR_MIN - 2;
        (name_shown, BAR_MIN)
    } else {
        (free.min(name_len), 0)
    };
    let mut line = shorten_middle(name, name_shown);
    if bar_width > 0 {
        line.push_str(" [");
        match fraction {
            Some(fraction) => {
                let filled = ((fraction * bar_width as f64) as usize).min(bar_width);
                line.push_str(&"=".repeat(filled));
                if filled < bar_width {
                    line.push('>');
                    line.push_str(&" ".repeat(bar_width - filled - 1));
                }
            }
            None => {
                // No size known: a marker moving back and forth.
                let span = bar_width.saturating_sub(3).max(1);
                let step = spin % (2 * span);
                let at = if step < span { step } else { 2 * span - step };
                let at = at.min(bar_width.saturating_sub(3));
                line.push_str(&" ".repeat(at));
                line.push_str("<=>");
                line.push_str(&" ".repeat(bar_width - at - 3));
            }
        }
        line.push(']');
    }
    line.push(' ');
    line.push_str(&stats_text);
    // Whatever happened above, never more than the room.
    line.chars().take(room).collect()
}

async fn bar(progress: Arc<Progress>, label: String, bars: MultiProgress, stop: CancellationToken) {
    let bar = bars.add(ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden()));
    bar.set_style(ProgressStyle::with_template("{msg}").expect("valid template"));
    let mut rate = Rate::new();
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    let mut spin = 0usize;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.cancelled() => break,
        }
        let snapshot = progress.snapshot();
        let speed = rate.update(Instant::now(), &snapshot);
        if let Some(note) = progress.take_note() {
            // A note may be longer than the terminal: wrapped, not cut.
            let note = wrap(&format!("haul: {note}"), terminal_width().saturating_sub(1));
            bars.suspend(|| eprintln!("{note}"));
        }
        spin += 1;
        bar.set_message(render(&snapshot, &name_of(&snapshot, &label), speed, terminal_width(), spin));
    }
    bar.finish_and_clear();
    bars.remove(&bar);
}

async fn lines(progress: Arc<Progress>, label: String, stop: CancellationToken) {
    let mut rate = Rate::new();
    let mut ticker = tokio::time::interval(Duration::from_secs(2));
    ticker.tick().await;
    rate.update(Instant::now(), &progress.snapshot());
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.cancelled() => break,
        }
        if let Some(note) = progress.take_note() {
            eprintln!("haul: {note}");
        }
        let snapshot = progress.snapshot();
        let speed = rate.update(Instant::now(), &snapshot);
        let name = name_of(&snapshot, &label);
        if snapshot.phase == Phase::Probing {
            eprintln!("{name}: probing");
            continue;
        }
        let amount = match snapshot.total {
            Some(total) if total > 0 => format!(
                "{:.0}% {} of {}",
                snapshot.done as f64 * 100.0 / total as f64,
                format_bytes(snapshot.done),
                format_bytes(total)
            ),
            _ => format_bytes(snapshot.done),
        };
        let eta = match snapshot.total {
            Some(total) if speed >= 1.0 => {
                format!(", ETA {}", format_eta((total.saturating_sub(snapshot.done) as f64 / speed).ceil() as u64))
            }
            _ => String::new(),
        };
        eprintln!("{name}: {amount}, {}, {}{eta}", format_rate(speed), connections(&snapshot, speed));
    }
}
