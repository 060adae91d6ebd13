//! `haul ls --watch` on a terminal: a live table sized to the terminal, with totals, colours by state, and keys
//! that pause, resume (or retry) and remove the selected download.
//!
//! Plain ANSI escapes and termios (rustix): the alternate screen and raw input while the view runs, put back by
//! [`Screen`] on every way out (a key, Ctrl-C, SIGTERM, an error, a panic). The list comes from
//! `GET /v1/downloads` every second and after every action; what is drawn is [`frame`], a function of the state
//! and the terminal's size alone, so its layout is tested at any width without a terminal.

use std::collections::VecDeque;
use std::fs::File;
use std::future::Future;
use std::io::{IsTerminal as _, Read as _, Write as _};
use std::os::fd::{AsFd as _, OwnedFd};
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::{Mutex, Once, PoisonError};
use std::time::Duration;

use haul_api::wire::{Download, DownloadList};
use haul_core::job::{DownloadId, JobState};
use haul_core::units::{format_bytes, format_rate};
use reqwest::{Method, StatusCode};
use rustix::termios::{OptionalActions, Termios, tcgetattr, tcgetwinsize, tcsetattr};
use serde_json::Value;
use tokio::sync::mpsc;

use super::act::Action;
use super::render::{bar_of, eta_text, fraction, name, percent, size_text, speed_text};
use super::{Client, ServerError, decode, short};

/// What the view lists.
pub(super) enum Source {
    /// `ls [--state S] [--limit N]`.
    List { state: Option<JobState>, limit: Option<u32>, parent: Option<DownloadId> },
    /// `ls ID`: that download alone.
    One(DownloadId),
}

impl Source {
    async fn fetch(&self, client: &Client) -> anyhow::Result<DownloadList> {
        match self {
            Self::List { state, limit, parent } => {
                decode(&client.list(*state, *limit, *parent).await?, "a download list")
            }
            Self::One(id) => match client.call(Method::GET, &format!("/v1/downloads/{id}")).await {
                Ok(json) => Ok(DownloadList { downloads: vec![decode(&json, "a download")?], total: 1, next: None }),
                // Removed, here or elsewhere: nothing left to show.
                Err(error)
                    if error
                        .downcast_ref::<ServerError>()
                        .is_some_and(|error| error.status == StatusCode::NOT_FOUND) =>
                {
                    Ok(DownloadList { downloads: Vec::new(), total: 0, next: None })
                }
                Err(error) => Err(error),
            },
        }
    }

    /// The filters, for the idle status line: ", state paused, at most 5".
    fn describe(&self) -> String {
        match self {
            Self::List { state, limit, parent } => {
                let mut text = String::new();
                if let Some(parent) = parent {
                    text.push_str(&format!(", entries of {parent}"));
                }
                if let Some(state) = state {
                    text.push_str(&format!(", state {state}"));
                }
                if let Some(limit) = limit {
                    text.push_str(&format!(", at most {limit}"));
                }
                text
            }
            Self::One(id) => format!(", download {id}"),
        }
    }
}

/// Runs the view until q, Esc, Ctrl-C or SIGTERM. `host` is the server's base URL, shown on the status line.
pub(super) async fn watch(client: &Client, source: Source, host: &str) -> anyhow::Result<ExitCode> {
    // The signal handlers go in before the terminal changes, so a signal can never end the process with the
    // terminal left raw.
    let mut stop: Pin<Box<dyn Future<Output = ()>>> = Box::pin(crate::signals::interrupted());
    tokio::select! {
        biased;
        () = &mut stop => return Ok(ExitCode::SUCCESS),
        () = std::future::ready(()) => {}
    }
    // A server that cannot be reached stops the command before the screen changes, as plain `ls` does.
    let first = source.fetch(client).await?;

    let keyboard = keyboard();
    let colour = colour_wanted();
    let _screen = Screen::enter(keyboard.as_ref(), colour)?;
    let mut session = Session { stop, keys: keyboard.and_then(read_keys), pending: VecDeque::new() };
    let mut view = View::new(first, format!("{host}{}", source.describe()), session.keys.is_some());
    let mut resized = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change()).ok();
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + SECOND, SECOND);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut refresh = false;
    loop {
        while let Some(key) = session.pending.pop_front() {
            match view.on_key(key) {
                Command::Nothing => {}
                Command::Quit => return Ok(ExitCode::SUCCESS),
                Command::Act(action, id) => {
                    let (method, path) = action.request(id);
                    let Some(answer) = session.during(client.call(method, &path)).await else {
                        return Ok(ExitCode::SUCCESS);
                    };
                    view.acted(action, id, answer);
                    refresh = true;
                }
            }
        }
        if refresh {
            let Some(fetched) = session.during(source.fetch(client)).await else {
                return Ok(ExitCode::SUCCESS);
            };
            view.refreshed(fetched);
            tick.reset();
            refresh = false;
        }
        let (width, height) = terminal_size();
        view.scroll(table_rows(&view, width, height));
        if draw(&frame(&view, width, height, colour)).is_err() {
            // The terminal went away: nobody is left to show anything to.
            return Ok(ExitCode::SUCCESS);
        }
        tokio::select! {
            () = &mut session.stop => return Ok(ExitCode::SUCCESS),
            bytes = next_bytes(&mut session.keys) => {
                if !session.take(bytes) {
                    return Ok(ExitCode::SUCCESS);
                }
            }
            _ = tick.tick() => refresh = true,
            () = next_resize(&mut resized) => {}
        }
    }
}

const SECOND: Duration = Duration::from_secs(1);

// ---------------------------------------------------------------------------------------------------------------
// Waiting for the server while keys keep coming

/// What stops the view, and the keys typed so far.
struct Session {
    stop: Pin<Box<dyn Future<Output = ()>>>,
    keys: Option<mpsc::UnboundedReceiver<Vec<u8>>>,
    pending: VecDeque<Key>,
}

impl Session {
    /// `work`'s result, or `None` when a signal or Ctrl-C comes first; other keys typed meanwhile wait their turn.
    async fn during<T>(&mut self, work: impl Future<Output = T>) -> Option<T> {
        tokio::pin!(work);
        loop {
            tokio::select! {
                out = &mut work => return Some(out),
                () = &mut self.stop => return None,
                bytes = next_bytes(&mut self.keys) => {
                    if !self.take(bytes) {
                        return None;
                    }
                }
            }
        }
    }

    /// Queues the keys in `bytes`; false on Ctrl-C, which ends the view at once.
    fn take(&mut self, bytes: Option<Vec<u8>>) -> bool {
        let Some(bytes) = bytes else {
            // The keyboard's reader ended (end of input): the view goes on without keys.
            self.keys = None;
            return true;
        };
        for key in parse_keys(&bytes) {
            if key == Key::CtrlC {
                return false;
            }
            self.pending.push_back(key);
        }
        true
    }
}

async fn next_bytes(keys: &mut Option<mpsc::UnboundedReceiver<Vec<u8>>>) -> Option<Vec<u8>> {
    match keys {
        Some(keys) => keys.recv().await,
        None => std::future::pending().await,
    }
}

async fn next_resize(resized: &mut Option<tokio::signal::unix::Signal>) {
    if let Some(signal) = resized
        && signal.recv().await.is_some()
    {
        return;
    }
    std::future::pending().await
}

// ---------------------------------------------------------------------------------------------------------------
// The terminal

/// The terminal the keys come from: stdin when it is one, else the controlling terminal; none without either
/// (the view then runs without keys, until Ctrl-C or SIGTERM).
fn keyboard() -> Option<OwnedFd> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return stdin.as_fd().try_clone_to_owned().ok();
    }
    File::options().read(true).write(true).open("/dev/tty").ok().map(OwnedFd::from)
}

/// A thread reading the keyboard (blocking reads, so no async runtime waits on it at exit), handing each read
/// over as it comes.
fn read_keys(tty: OwnedFd) -> Option<mpsc::UnboundedReceiver<Vec<u8>>> {
    let mut input = File::from(tty);
    let (sender, receiver) = mpsc::unbounded_channel();
    let reader = move || {
        let mut buffer = [0_u8; 256];
        loop {
            match input.read(&mut buffer) {
                Ok(0) => return,
                Ok(read) => {
                    if sender.send(buffer[..read].to_vec()).is_err() {
                        return;
                    }
                }
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    };
    std::thread::Builder::new().name("haul-keys".to_owned()).spawn(reader).ok()?;
    Some(receiver)
}

/// Colours unless `NO_COLOR` is set (to anything but nothing) or the terminal is `dumb`.
fn colour_wanted() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty());
    let dumb = std::env::var_os("TERM").is_some_and(|term| term == "dumb");
    !no_color && !dumb
}

/// Columns and rows of the terminal on stdout; 80 by 24 when it does not say.
fn terminal_size() -> (usize, usize) {
    match tcgetwinsize(std::io::stdout()) {
        Ok(size) if size.ws_col > 0 && size.ws_row > 0 => (usize::from(size.ws_col), usize::from(size.ws_row)),
        _ => (80, 24),
    }
}

/// One whole frame in one write: each line cleared and drawn from the top left.
fn draw(lines: &[String]) -> std::io::Result<()> {
    let mut text = String::from("\x1b[H");
    for (index, line) in lines.iter().enumerate() {
        if index > 0 {
            // Raw mode: a line feed alone would not return to the first column.
            text.push_str("\r\n");
        }
        text.push_str("\x1b[2K");
        text.push_str(line);
    }
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// The alternate screen, raw input, no cursor and no line wrap while it lives; everything put back when it is
/// dropped, and before a panic's message is printed, so the message lands on the normal screen.
struct Screen;

/// What putting the terminal back takes; `None` once done.
static RESTORE: Mutex<Option<Restore>> = Mutex::new(None);

struct Restore {
    /// The keyboard's terminal and its settings before raw mode.
    tty: Option<(OwnedFd, Termios)>,
    colour: bool,
}

impl Screen {
    fn enter(tty: Option<&OwnedFd>, colour: bool) -> anyhow::Result<Self> {
        let tty = match tty {
            Some(tty) => {
                let saved = tcgetattr(tty)?;
                let mut raw = saved.clone();
                raw.make_raw();
                tcsetattr(tty, OptionalActions::Now, &raw)?;
                Some((tty.try_clone()?, saved))
            }
            None => None,
        };
        *RESTORE.lock().unwrap_or_else(PoisonError::into_inner) = Some(Restore { tty, colour });
        static HOOK: Once = Once::new();
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                restore();
                previous(info);
            }));
        });
        let screen = Self;
        let mut out = std::io::stdout().lock();
        out.write_all(b"\x1b[?1049h\x1b[?7l\x1b[?25l")?;
        out.flush()?;
        Ok(screen)
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore();
    }
}

/// Leaves the alternate screen (last, so it is the final thing the terminal gets) and the raw mode; once.
fn restore() {
    let Some(restore) = RESTORE.lock().unwrap_or_else(PoisonError::into_inner).take() else { return };
    let mut out = std::io::stdout().lock();
    let reset = if restore.colour { "\x1b[0m" } else { "" };
    let _ = write!(out, "{reset}\x1b[?7h\x1b[?25h\x1b[?1049l");
    let _ = out.flush();
    if let Some((tty, saved)) = restore.tty {
        let _ = tcsetattr(&tty, OptionalActions::Now, &saved);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Keys

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Key {
    Up,
    Down,
    PageUp,
    PageDown,
    Home,
    End,
    Delete,
    Esc,
    CtrlC,
    Char(char),
}

/// The keys in what one read of a raw terminal returned. A terminal sends an escape sequence in one write, so
/// an ESC that ends a read is the Esc key.
fn parse_keys(bytes: &[u8]) -> Vec<Key> {
    let mut keys = Vec::new();
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        index += 1;
        match byte {
            0x03 => keys.push(Key::CtrlC),
            0x1b if matches!(bytes.get(index), Some(b'[' | b'O')) => {
                // CSI or SS3: parameters, then a final byte in @..~.
                let start = index + 1;
                let mut end = start;
                while end < bytes.len() && !(0x40..=0x7e).contains(&bytes[end]) {
                    end += 1;
                }
                let Some(&last) = bytes.get(end) else { break };
                let parameters = &bytes[start..end];
                index = end + 1;
                let key = match (last, parameters) {
                    (b'A', _) => Some(Key::Up),
                    (b'B', _) => Some(Key::Down),
                    (b'H', _) => Some(Key::Home),
                    (b'F', _) => Some(Key::End),
                    (b'~', b"1" | b"7") => Some(Key::Home),
                    (b'~', b"4" | b"8") => Some(Key::End),
                    (b'~', b"3") => Some(Key::Delete),
                    (b'~', b"5") => Some(Key::PageUp),
                    (b'~', b"6") => Some(Key::PageDown),
                    _ => None,
                };
                keys.extend(key);
            }
            0x1b => keys.push(Key::Esc),
            b' '..=b'~' => keys.push(Key::Char(char::from(byte))),
            _ => {}
        }
    }
    keys
}

// ---------------------------------------------------------------------------------------------------------------
// What the view knows and does

/// What a key asks of the loop.
#[derive(Debug, PartialEq)]
enum Command {
    Nothing,
    Quit,
    Act(Action, DownloadId),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tone {
    Info,
    Error,
}

struct View {
    list: DownloadList,
    /// The selected download, followed by its ID while the list changes order.
    selected: Option<DownloadId>,
    /// Where the selection is, for when its download leaves the list.
    index: usize,
    /// The first row shown.
    offset: usize,
    /// Rows that fit, from the last draw: what Page Up / Page Down move.
    page: usize,
    /// The answer to the last action, until the next key.
    status: Option<(String, Tone)>,
    /// Why the last refresh failed, until one succeeds.
    trouble: Option<String>,
    /// The download a `d` asked to remove, awaiting y or n.
    confirm: Option<DownloadId>,
    /// The server and the filters.
    about: String,
    /// Whether keys can be read at all.
    keys: bool,
}

impl View {
    fn new(list: DownloadList, about: String, keys: bool) -> Self {
        let mut view = Self {
            list: DownloadList { downloads: Vec::new(), total: 0, next: None },
            selected: None,
            index: 0,
            offset: 0,
            page: 1,
            status: None,
            trouble: None,
            confirm: None,
            about,
            keys,
        };
        view.refreshed(Ok(list));
        view
    }

    fn downloads(&self) -> &[Download] {
        &self.list.downloads
    }

    fn selected_download(&self) -> Option<&Download> {
        self.downloads().get(self.index).filter(|download| Some(download.id) == self.selected)
    }

    /// A new list, or why there is none this time (the last one stays on screen).
    fn refreshed(&mut self, fetched: anyhow::Result<DownloadList>) {
        match fetched {
            Ok(list) => {
                self.list = list;
                self.trouble = None;
            }
            Err(error) => {
                self.trouble = Some(format!("{error:#}"));
                return;
            }
        }
        let count = self.downloads().len();
        match self.selected.and_then(|id| self.downloads().iter().position(|download| download.id == id)) {
            Some(index) => self.index = index,
            None => {
                self.index = self.index.min(count.saturating_sub(1));
                self.selected = self.downloads().get(self.index).map(|download| download.id);
            }
        }
        if let Some(id) = self.confirm
            && !self.downloads().iter().any(|download| download.id == id)
        {
            self.confirm = None;
            self.status = Some((format!("{} is gone", short(&id.to_string())), Tone::Info));
        }
    }

    fn select(&mut self, index: usize) {
        let count = self.downloads().len();
        if count == 0 {
            return;
        }
        self.index = index.min(count - 1);
        self.selected = Some(self.downloads()[self.index].id);
    }

    /// Keeps the selection within the `rows` shown.
    fn scroll(&mut self, rows: usize) {
        self.page = rows.max(1);
        let count = self.downloads().len();
        self.offset = self.offset.min(count.saturating_sub(rows));
        if self.index < self.offset {
            self.offset = self.index;
        } else if rows > 0 && self.index >= self.offset + rows {
            self.offset = self.index + 1 - rows;
        }
    }

    fn on_key(&mut self, key: Key) -> Command {
        if let Some(id) = self.confirm.take() {
            return match key {
                Key::Char('y' | 'Y') => {
                    Command::Act(Action::Remove { delete_files: false, only: None, before: None }, id)
                }
                Key::CtrlC => Command::Quit,
                _ => {
                    self.status = Some((format!("kept {}", short(&id.to_string())), Tone::Info));
                    Command::Nothing
                }
            };
        }
        self.status = None;
        match key {
            Key::Char('q') | Key::Esc | Key::CtrlC => return Command::Quit,
            Key::Up | Key::Char('k') => self.select(self.index.saturating_sub(1)),
            Key::Down | Key::Char('j') => self.select(self.index + 1),
            Key::PageUp => self.select(self.index.saturating_sub(self.page)),
            Key::PageDown => self.select(self.index + self.page),
            Key::Home | Key::Char('g') => self.select(0),
            Key::End | Key::Char('G') => self.select(usize::MAX),
            Key::Char('p') => return self.act_on_selected(|_| Action::Pause),
            Key::Char('r') => {
                return self.act_on_selected(|state| match state {
                    JobState::Failed | JobState::Cancelled => Action::Retry,
                    _ => Action::Resume,
                });
            }
            Key::Char('d') | Key::Delete => {
                if let Some(download) = self.selected_download() {
                    let (id, shown) = (download.id, shorten_middle(&name(download), 32));
                    self.confirm = Some(id);
                    self.status = Some((
                        format!("remove {} {shown}? (a finished file stays) y/n", short(&id.to_string())),
                        Tone::Info,
                    ));
                } else {
                    self.status = Some(("no download selected".to_owned(), Tone::Error));
                }
            }
            _ => {}
        }
        Command::Nothing
    }

    fn act_on_selected(&mut self, action: impl FnOnce(JobState) -> Action) -> Command {
        match self.selected_download() {
            Some(download) => Command::Act(action(download.state), download.id),
            None => {
                self.status = Some(("no download selected".to_owned(), Tone::Error));
                Command::Nothing
            }
        }
    }

    /// The server's answer to an action, as `haul pause` and the others would say it.
    fn acted(&mut self, action: Action, id: DownloadId, answer: anyhow::Result<Value>) {
        let id_text = short(&id.to_string()).to_owned();
        self.status = Some(match answer {
            Ok(answer) => {
                let shown = decode::<Download>(&answer, "a download").map(|download| name(&download));
                (format!("{} {id_text}  {}", action.done(), shown.unwrap_or_default()), Tone::Info)
            }
            Err(error) => (format!("cannot {} {id_text}: {error:#}", action.verb()), Tone::Error),
        });
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Drawing

/// Everything under the table: the selected download's detail (two lines on a terminal of 12 rows or more), the
/// totals (on two lines where one is too narrow), the status and the keys.
fn bottom(view: &View, width: usize, height: usize, colour: bool) -> Vec<String> {
    let mut lines = detail(view, width, if height >= 12 { 2 } else { 1 }, colour);
    lines.extend(totals(view, width, colour));
    lines.push(status(view, width, colour));
    lines.push(footer(view, width, colour));
    lines
}

/// Downloads that fit under the header.
fn table_rows(view: &View, width: usize, height: usize) -> usize {
    height.saturating_sub(bottom(view, width, height, false).len() + 1)
}

/// The whole screen: exactly `height` lines, none wider than `width` characters.
fn frame(view: &View, width: usize, height: usize, colour: bool) -> Vec<String> {
    let bottom = bottom(view, width, height, colour);
    let mut lines = table(view, width, height.saturating_sub(bottom.len()), colour);
    lines.extend(bottom);
    // A terminal too short for everything keeps the bottom: the keys and the status come first.
    let extra = lines.len().saturating_sub(height);
    lines.drain(..extra);
    lines
}

/// SGR parameters.
const BOLD: &str = "1";
const DIM: &str = "2";
const REVERSE: &str = "7";
const RED: &str = "31";
const GREEN: &str = "32";
const YELLOW: &str = "33";
const MAGENTA: &str = "35";
const CYAN: &str = "36";

fn state_colour(state: JobState) -> &'static str {
    match state {
        JobState::Active => GREEN,
        JobState::Queued => CYAN,
        JobState::Paused => YELLOW,
        JobState::Failed => RED,
        JobState::Cancelled => MAGENTA,
        JobState::Completed => DIM,
    }
}

/// One screen line: text that never passes `max` characters, with styles only when colours are on.
struct Line {
    text: String,
    width: usize,
    max: usize,
    colour: bool,
    /// The style of the whole line (e.g. reverse for the selected row), which each styled piece returns to.
    base: String,
}

impl Line {
    fn new(max: usize, colour: bool, base: &[&str]) -> Self {
        let base = base.iter().filter(|style| !style.is_empty()).copied().collect::<Vec<_>>().join(";");
        let mut line = Self { text: String::new(), width: 0, max, colour, base };
        if colour && !line.base.is_empty() {
            line.text = format!("\x1b[{}m", line.base);
        }
        line
    }

    fn push(&mut self, text: &str) {
        self.styled(text, "");
    }

    /// `text` in `style` (SGR parameters), cut where the line ends.
    fn styled(&mut self, text: &str, style: &str) {
        let room = self.max.saturating_sub(self.width);
        let count = text.chars().count();
        let text: String = if count > room { text.chars().take(room).collect() } else { text.to_owned() };
        if text.is_empty() {
            return;
        }
        self.width += count.min(room);
        if self.colour && !style.is_empty() {
            let back = if self.base.is_empty() { "0".to_owned() } else { format!("0;{}", self.base) };
            self.text.push_str(&format!("\x1b[{style}m{text}\x1b[{back}m"));
        } else {
            self.text.push_str(&text);
        }
    }

    fn pad_to(&mut self, width: usize) {
        let pad = width.min(self.max).saturating_sub(self.width);
        self.push(&" ".repeat(pad));
    }

    fn finish(self) -> String {
        let mut text = self.text;
        if self.colour && !self.base.is_empty() {
            text.push_str("\x1b[0m");
        }
        text
    }
}

/// A whole line in one style.
fn plain(text: &str, width: usize, colour: bool, style: &str) -> String {
    let mut line = Line::new(width, colour, &[]);
    line.styled(text, style);
    line.finish()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Column {
    Id,
    State,
    Percent,
    Size,
    Speed,
    Eta,
}

impl Column {
    const ALL: [Self; 6] = [Self::Id, Self::State, Self::Percent, Self::Size, Self::Speed, Self::Eta];

    fn title(self) -> &'static str {
        match self {
            Self::Id => "ID",
            Self::State => "STATE",
            Self::Percent => "%",
            Self::Size => "SIZE",
            Self::Speed => "SPEED",
            Self::Eta => "ETA",
        }
    }

    fn cell(self, download: &Download) -> String {
        match self {
            Self::Id => short(&download.id.to_string()).to_owned(),
            Self::State => download.state.to_string(),
            Self::Percent => percent(download),
            Self::Size => size_text(download),
            Self::Speed => speed_text(download),
            Self::Eta => eta_text(download),
        }
    }

    /// Numbers line up on the right.
    fn right(self) -> bool {
        matches!(self, Self::Percent | Self::Size | Self::Speed | Self::Eta)
    }
}

/// The selection mark, and the space between columns.
const MARK: usize = 2;
const GAP: usize = 2;
/// Columns give way until the name has this much.
const MIN_NAME: usize = 12;
/// A bar only where the name keeps this much, and only this long or longer (brackets included)...
const NAME_BESIDE_BAR: usize = 24;
const MIN_BAR: usize = 12;
/// ... and no longer than this.
const MAX_BAR: usize = 32;

/// Which columns fit the width, how wide each is, and what is left for the bar and the name.
struct Layout {
    columns: Vec<(Column, usize)>,
    /// The bar's width with its brackets; 0 for none.
    bar: usize,
    name: usize,
}

impl Layout {
    fn fit(width: usize, downloads: &[Download]) -> Self {
        let mut columns: Vec<(Column, usize)> = Column::ALL
            .iter()
            .map(|&column| {
                let widest = downloads.iter().map(|download| column.cell(download).chars().count()).max();
                (column, widest.unwrap_or(0).max(column.title().len()))
            })
            .collect();
        let used = |columns: &[(Column, usize)]| MARK + columns.iter().map(|(_, width)| width + GAP).sum::<usize>();
        // The least telling columns go first on a narrow terminal; ID, state and name always stay.
        for dropped in [Column::Eta, Column::Speed, Column::Size, Column::Percent] {
            if width.saturating_sub(used(&columns)) >= MIN_NAME {
                break;
            }
            columns.retain(|(column, _)| *column != dropped);
        }
        let rest = width.saturating_sub(used(&columns));
        let has_percent = columns.iter().any(|(column, _)| *column == Column::Percent);
        let bar = rest.saturating_sub(NAME_BESIDE_BAR + GAP).min(MAX_BAR);
        let bar = if bar >= MIN_BAR && has_percent { bar } else { 0 };
        let name = rest.saturating_sub(if bar > 0 { bar + GAP } else { 0 });
        Self { columns, bar, name }
    }
}

/// The header and as many rows as fit in `height` lines (padded with empty ones).
fn table(view: &View, width: usize, height: usize, colour: bool) -> Vec<String> {
    let mut lines = Vec::with_capacity(height);
    if height == 0 {
        return lines;
    }
    let downloads = view.downloads();
    let layout = Layout::fit(width, downloads);
    let mut header = Line::new(width, colour, &[BOLD]);
    header.push(&" ".repeat(MARK));
    for &(column, column_width) in &layout.columns {
        cell(&mut header, column.title(), column_width, column.right(), "");
        if column == Column::Percent && layout.bar > 0 {
            cell(&mut header, "", layout.bar, false, "");
        }
    }
    header.push("NAME");
    lines.push(header.finish());

    if downloads.is_empty() {
        let empty = if view.list.total > 0 { "no downloads on this page" } else { "no downloads" };
        lines.push(plain(&format!("{}{empty}", " ".repeat(MARK)), width, colour, DIM));
    }
    for (index, download) in downloads.iter().enumerate().skip(view.offset).take(height - 1) {
        let selected = Some(download.id) == view.selected && index == view.index;
        let dim = if download.state == JobState::Completed { DIM } else { "" };
        let mut line = Line::new(width, colour, &[dim, if selected { REVERSE } else { "" }]);
        line.push(if selected { "> " } else { "  " });
        for &(column, column_width) in &layout.columns {
            let style = if column == Column::State { state_colour(download.state) } else { "" };
            cell(&mut line, &column.cell(download), column_width, column.right(), style);
            if column == Column::Percent && layout.bar > 0 {
                let bar = bar_of(fraction(download), layout.bar - 2);
                cell(&mut line, &bar, layout.bar, false, state_colour(download.state));
            }
        }
        line.push(&shorten_middle(&name(download), layout.name));
        if selected {
            line.pad_to(width);
        }
        lines.push(line.finish());
    }
    lines.resize(height, String::new());
    lines
}

/// One cell padded to `width`, then the gap.
fn cell(line: &mut Line, text: &str, width: usize, right: bool, style: &str) {
    let pad = " ".repeat(width.saturating_sub(text.chars().count()));
    if right {
        line.push(&pad);
    }
    line.styled(text, style);
    if !right {
        line.push(&pad);
    }
    line.push(&" ".repeat(GAP));
}

/// `text` fitted to `width` characters by cutting its middle: `very-long-na…file.iso`.
fn shorten_middle(text: &str, width: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= width {
        return text.to_owned();
    }
    if width == 0 {
        return String::new();
    }
    let tail = (width - 1) / 2;
    let head = width - 1 - tail;
    let mut out: String = chars[..head].iter().collect();
    out.push('…');
    out.extend(&chars[chars.len() - tail..]);
    out
}

/// The selected download in full: why it failed, else its name and URL; over `lines` lines.
fn detail(view: &View, width: usize, lines: usize, colour: bool) -> Vec<String> {
    let mut out = Vec::with_capacity(lines);
    if let Some(download) = view.selected_download() {
        let id = short(&download.id.to_string()).to_owned();
        let (text, style) = match (&download.error, download.state) {
            (Some(error), JobState::Failed | JobState::Cancelled) => {
                let reason = error.split_whitespace().collect::<Vec<_>>().join(" ");
                (format!("{id} {}: {reason}", download.state), RED)
            }
            _ => {
                let mut text = format!("{id} {}", name(download));
                if download.state == JobState::Active && download.connections > 0 {
                    let plural = if download.connections == 1 { "" } else { "s" };
                    text.push_str(&format!(" · {} connection{plural}", download.connections));
                }
                // The URL last: the longest, and the least often needed.
                if download.filename.is_some() {
                    text.push_str(&format!(" · {}", download.url));
                }
                (text, "")
            }
        };
        let chars: Vec<char> = text.chars().collect();
        for (number, chunk) in chars.chunks(width.max(1)).take(lines).enumerate() {
            let mut piece: String = chunk.iter().collect();
            // More than fits: the last line says so.
            if number + 1 == lines && chars.len() > width * lines && width > 0 {
                piece.pop();
                piece.push('…');
            }
            out.push(plain(&piece, width, colour, style));
        }
    }
    out.resize(lines, String::new());
    out
}

/// Downloads per state, their speed and their bytes: `3 downloads: 1 active, 1 failed · 1.2 MiB/s · 5.0 MiB of
/// 12.0 MiB`, on two lines (counts, then amounts) where that is too wide.
fn totals(view: &View, width: usize, colour: bool) -> Vec<String> {
    let downloads = view.downloads();
    let shown = downloads.len() as u64;
    let plural = if view.list.total == 1 { "" } else { "s" };
    let mut counts = if view.list.total > shown {
        format!("{shown} of {} download{plural}", view.list.total)
    } else {
        format!("{shown} download{plural}")
    };
    let states = [
        JobState::Active,
        JobState::Queued,
        JobState::Paused,
        JobState::Completed,
        JobState::Failed,
        JobState::Cancelled,
    ];
    let per_state: Vec<String> = states
        .iter()
        .filter_map(|&state| {
            let count = downloads.iter().filter(|download| download.state == state).count();
            (count > 0).then(|| format!("{count} {state}"))
        })
        .collect();
    if !per_state.is_empty() {
        counts.push_str(&format!(": {}", per_state.join(", ")));
    }
    let speed: u64 = downloads.iter().filter(|download| download.state == JobState::Active).map(|d| d.speed).sum();
    let done: u64 = downloads
        .iter()
        .map(|download| match (download.state, download.size) {
            (JobState::Completed, Some(size)) => size,
            _ => download.bytes_done,
        })
        .sum();
    let size: u64 = downloads.iter().map(|download| download.size.unwrap_or(download.bytes_done)).sum();
    // A size not known yet makes the total a lower bound.
    let unknown = downloads.iter().any(|download| download.size.is_none() && download.state != JobState::Completed);
    let more = if unknown { "+" } else { "" };
    let amounts = format!("{} · {} of {}{more}", format_rate(speed as f64), format_bytes(done), format_bytes(size));
    let one = format!("{counts} · {amounts}");
    if one.chars().count() <= width {
        vec![plain(&one, width, colour, BOLD)]
    } else {
        vec![plain(&counts, width, colour, BOLD), plain(&amounts, width, colour, BOLD)]
    }
}

/// The question, the last action's answer, a refresh that failed, or else where the list comes from.
fn status(view: &View, width: usize, colour: bool) -> String {
    if view.confirm.is_some()
        && let Some((text, _)) = &view.status
    {
        return plain(text, width, colour, &format!("{BOLD};{YELLOW}"));
    }
    match (&view.status, &view.trouble) {
        (Some((text, Tone::Info)), _) => plain(text, width, colour, ""),
        (Some((text, Tone::Error)), _) => plain(text, width, colour, RED),
        (None, Some(trouble)) => plain(trouble, width, colour, RED),
        (None, None) => plain(&view.about, width, colour, DIM),
    }
}

fn footer(view: &View, width: usize, colour: bool) -> String {
    let choices: &[&str] = if view.confirm.is_some() {
        &["y remove  n keep"]
    } else if view.keys {
        &["↑/↓ j/k select  p pause  r resume/retry  d remove  q quit", "↑↓ p pause r resume d remove q quit"]
    } else {
        &["Ctrl-C quits (no keyboard: input is not a terminal)", "Ctrl-C quits"]
    };
    // The shorter wording where the full one is too wide.
    let text = choices.iter().find(|text| text.chars().count() <= width).unwrap_or(&choices[choices.len() - 1]);
    plain(text, width, colour, DIM)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn download(number: u8, state: JobState, filename: &str, size: Option<u64>, done: u64) -> Download {
        let id = format!("{number:08x}-8b7d-4c2a-9e1f-0a1b2c3d4e5f");
        let mut download = super::super::render::tests::download(&id, state, Some(filename), size, done);
        download.url = format!("http://h/{filename}");
        let active = state == JobState::Active;
        download.speed = if active { 123 << 10 } else { 0 };
        download.eta_secs = active.then_some(4000);
        download.connections = 4;
        download.error =
            (state == JobState::Failed).then(|| "http://h/x: server answered 404 Not Found; check the URL".into());
        download
    }

    fn sample() -> View {
        let long = "ubuntu-24.04.1-desktop-amd64-with-a-long-descriptive-suffix-v2.iso";
        let downloads = vec![
            download(1, JobState::Active, long, Some(5 << 30), 1 << 30),
            download(2, JobState::Paused, "b.iso", Some(10 << 20), 1 << 20),
            download(3, JobState::Failed, "c.bin", None, 0),
            download(4, JobState::Completed, "d.bin", Some(1 << 20), 1 << 20),
        ];
        View::new(DownloadList { downloads, total: 4, next: None }, "http://127.0.0.1:1700".into(), true)
    }

    /// The text a frame shows, escapes removed.
    fn visible(line: &str) -> String {
        let mut out = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    #[test]
    fn every_line_fits_the_terminal_and_the_frame_fills_it() {
        for width in [20, 40, 60, 80, 100, 132, 200] {
            for height in [3, 8, 24] {
                for colour in [false, true] {
                    let mut view = sample();
                    view.scroll(table_rows(&view, width, height));
                    let lines = frame(&view, width, height, colour);
                    assert_eq!(lines.len(), height, "{width}x{height}");
                    for line in &lines {
                        let shown = visible(line);
                        assert!(shown.chars().count() <= width, "{width}x{height}: {shown:?}");
                        assert!(colour || !line.contains('\x1b'), "an escape without colours: {line:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn eighty_columns_keep_every_column_and_shorten_the_name_in_the_middle() {
        let view = sample();
        let lines: Vec<String> = frame(&view, 80, 24, false).iter().map(|line| visible(line)).collect();
        let header = &lines[0];
        for title in ["ID", "STATE", "%", "SIZE", "SPEED", "ETA", "NAME"] {
            assert!(header.contains(title), "{header}");
        }
        assert!(lines[1].starts_with("> 00000001  active") && lines[1].contains('…'), "{}", lines[1]);
        assert!(lines[1].trim_end().ends_with("v2.iso") && lines[1].contains("123.0 KiB/s"), "{}", lines[1]);
        assert!(lines[1].contains("1h 06m") && lines[1].contains("20%"), "{}", lines[1]);
        // Too long for one line of 80: counts, then amounts.
        let at = lines.iter().position(|line| line.starts_with("4 downloads:")).expect("a totals line");
        assert_eq!(lines[at], "4 downloads: 1 active, 1 paused, 1 completed, 1 failed");
        assert_eq!(lines[at + 1], "123.0 KiB/s · 1.0 GiB of 5.0 GiB+");
        let wide: Vec<String> = frame(&view, 120, 24, false).iter().map(|line| visible(line)).collect();
        assert!(wide.iter().any(|line| line.starts_with("4 downloads: 1 active") && line.ends_with("5.0 GiB+")));
        // A bar where there is room for it.
        let wide: Vec<String> = frame(&view, 200, 24, false).iter().map(|line| visible(line)).collect();
        assert!(wide[1].contains("[####") && !wide[1].contains('…'), "{}", wide[1]);
        assert!(!lines[1].contains("[#"), "{}", lines[1]);
    }

    #[test]
    fn a_failed_download_says_why_when_selected() {
        let mut view = sample();
        for key in parse_keys(b"jj") {
            assert_eq!(view.on_key(key), Command::Nothing);
        }
        let lines: Vec<String> = frame(&view, 80, 24, false).iter().map(|line| visible(line)).collect();
        assert!(lines[3].starts_with("> 00000003  failed"), "{lines:#?}");
        let why = "00000003 failed: http://h/x: server answered 404 Not Found; check the URL";
        assert!(lines.iter().any(|line| line == why), "{lines:#?}");
    }

    #[test]
    fn states_have_colours_and_the_selected_row_is_reversed() {
        let view = sample();
        let lines = frame(&view, 100, 24, true);
        assert!(lines[1].starts_with("\x1b[7m") && lines[1].contains("\x1b[32mactive"), "{:?}", lines[1]);
        assert!(lines[2].contains("\x1b[33mpaused") && lines[3].contains("\x1b[31mfailed"), "{lines:?}");
        assert!(lines[4].starts_with("\x1b[2m"), "completed is dim: {:?}", lines[4]);
    }

    #[test]
    fn keys_select_act_and_ask_before_removing() {
        let mut view = sample();
        let first = view.downloads()[0].id;
        assert!(matches!(view.on_key(Key::Char('p')), Command::Act(Action::Pause, id) if id == first));
        assert!(matches!(view.on_key(Key::Char('r')), Command::Act(Action::Resume, id) if id == first));
        view.on_key(Key::End);
        assert_eq!(view.selected, Some(view.downloads()[3].id));
        view.on_key(Key::Up);
        let failed = view.downloads()[2].id;
        assert!(matches!(view.on_key(Key::Char('r')), Command::Act(Action::Retry, id) if id == failed));
        // d asks; anything but y keeps it.
        assert_eq!(view.on_key(Key::Delete), Command::Nothing);
        assert!(view.confirm == Some(failed) && view.status.as_ref().unwrap().0.contains("y/n"));
        assert_eq!(view.on_key(Key::Char('n')), Command::Nothing);
        assert_eq!(view.status.as_ref().unwrap().0, "kept 00000003");
        view.on_key(Key::Char('d'));
        assert!(matches!(view.on_key(Key::Char('y')), Command::Act(Action::Remove { delete_files: false, .. }, id)
            if id == failed));
        assert_eq!(view.on_key(Key::Char('q')), Command::Quit);
        assert_eq!(view.on_key(Key::Esc), Command::Quit);
    }

    #[test]
    fn the_selection_follows_its_download_and_stays_in_view() {
        let mut view = sample();
        view.on_key(Key::Down);
        let chosen = view.selected.unwrap();
        let mut reordered = view.list.downloads.clone();
        reordered.reverse();
        view.refreshed(Ok(DownloadList { downloads: reordered, total: 4, next: None }));
        assert_eq!((view.selected, view.index), (Some(chosen), 2));
        // Gone: the row in its place is selected.
        let rest: Vec<Download> = view.list.downloads.iter().filter(|d| d.id != chosen).cloned().collect();
        view.refreshed(Ok(DownloadList { downloads: rest, total: 3, next: None }));
        assert_eq!(view.index, 2);
        assert_eq!(view.selected, Some(view.list.downloads[2].id));
        // Two rows shown: the last one selected scrolls the table.
        view.on_key(Key::End);
        view.scroll(2);
        assert_eq!(view.offset, 1);
        view.on_key(Key::Home);
        view.scroll(2);
        assert_eq!(view.offset, 0);
    }

    #[test]
    fn key_sequences_are_read_whole() {
        assert_eq!(parse_keys(b"\x1b[A\x1b[B\x1bOA"), vec![Key::Up, Key::Down, Key::Up]);
        assert_eq!(parse_keys(b"\x1b[3~p\x03"), vec![Key::Delete, Key::Char('p'), Key::CtrlC]);
        assert_eq!(parse_keys(b"\x1b[5~\x1b[6~\x1b[H\x1b[4~"), vec![Key::PageUp, Key::PageDown, Key::Home, Key::End]);
        assert_eq!(parse_keys(b"\x1b"), vec![Key::Esc]);
        assert_eq!(parse_keys(b"\x1bq"), vec![Key::Esc, Key::Char('q')]);
        // An unknown sequence is skipped whole; a cut one ends the read.
        assert_eq!(parse_keys(b"\x1b[1;5Cj\x1b[1"), vec![Key::Char('j')]);
    }

    #[test]
    fn names_are_cut_in_the_middle() {
        assert_eq!(shorten_middle("abcdefghij", 5), "ab…ij");
        assert_eq!(shorten_middle("abc", 5), "abc");
        assert_eq!(shorten_middle("abc", 0), "");
    }
}
