//! `haul ls --watch` on a terminal as a person uses it: the real binary in a pseudo-terminal of 80 by 24 (util-linux
//! `script`, which hands its stdin to the terminal, so keys are written there) against a real `haul serve` on
//! loopback, with downloads held active by a speed limit. Each check reads what the terminal received and what
//! the API says, polling with deadlines.

use std::io::{Read as _, Write as _};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

use haul_test_support::{Origin, OriginOptions};
use serde_json::{Value, json};

const MIB: u64 = 1 << 20;
const WIDTH: usize = 80;
const HEIGHT: usize = 24;
/// 66 characters: too long for the NAME column of an 80-column terminal.
const LONG_NAME: &str = "ubuntu-24.04.1-desktop-amd64-with-a-long-descriptive-suffix-v2.iso";
/// Printed by the shell after `haul` ends: whether the terminal was left raw.
const SANE: &str = "terminal: sane";
const RAW: &str = "terminal: raw";

struct Server {
    child: Child,
    base: String,
    token: String,
    origin: Origin,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut child = common::serve_command(dir.path(), &[]).stderr(Stdio::null()).spawn().unwrap();
        let base = common::listening(&mut child);
        let token = common::token_of(dir.path());
        // Slow enough that a download stays active for minutes. The origin is slow rather than the job given a
        // speed limit: a rate-limited job takes up to the server's 10 s stop wait to pause, and a resume within
        // that time fails with "another haul is already downloading" (the engine's limiter sleeps through the
        // cancel), which is the engine's to fix, not the view's.
        let options = OriginOptions {
            per_connection_rate: Some(64 << 10),
            aggregate_rate: Some(256 << 10),
            ..OriginOptions::default()
        };
        let origin = Origin::start(options).await.unwrap();
        Self { child, base, token, origin, _dir: dir }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        common::call(&self.base, &self.token, method, path, body).await
    }

    /// Adds a download: its ID.
    async fn add(&self, body: Value) -> String {
        let (status, answer) = self.call(reqwest::Method::POST, "/v1/downloads", Some(body)).await;
        assert_eq!(status, 201, "{answer}");
        answer["id"].as_str().unwrap().to_owned()
    }

    /// A download that stays active: 64 MiB at 256 KiB/s at most.
    async fn add_slow(&self, name: &str) -> String {
        self.add(json!({"url": self.origin.url(64 * MIB, name), "kind": "file"})).await
    }

    async fn add_paused(&self, name: &str) -> String {
        self.add(json!({"url": self.origin.url(MIB, name), "kind": "file", "paused": true})).await
    }

    /// A download whose origin answers 404, once it has failed; its ID and error.
    async fn add_failed(&self) -> (String, String) {
        let url = self.origin.url(MIB, "gone.bin").replace("/data/", "/nothing/");
        let id = self.add(json!({"url": url, "kind": "file"})).await;
        let failed = self.wait_state(&id, Some("failed")).await;
        (id, failed["error"].as_str().unwrap().to_owned())
    }

    /// The download's state; `None` once it is gone.
    async fn state(&self, id: &str) -> (Option<String>, Value) {
        let (status, body) = self.call(reqwest::Method::GET, &format!("/v1/downloads/{id}"), None).await;
        match status {
            200 => (Some(body["state"].as_str().unwrap().to_owned()), body),
            404 => (None, body),
            _ => panic!("GET /v1/downloads/{id}: {status} {body}"),
        }
    }

    /// Polls until the download is in `state` (`None`: removed); the deadline only bounds a hung test.
    async fn wait_state(&self, id: &str, state: Option<&str>) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (now, body) = self.state(id).await;
            if now.as_deref() == state {
                return body;
            }
            assert!(Instant::now() < deadline, "gave up waiting for {id} to be {state:?}; it is {now:?}: {body}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `haul ls --watch ARGS` running in a pseudo-terminal, and everything the terminal has received so far.
struct Watch {
    script: Child,
    keys: ChildStdin,
    received: Arc<Mutex<Vec<u8>>>,
}

impl Watch {
    fn start(server: &Server, args: &[&str], no_color: bool) -> Self {
        Self::launch(server, args, no_color, "")
    }

    /// `redirect` follows the command line as the shell reads it (`< /dev/null`). After `haul` ends, the shell
    /// says whether the terminal is still raw, and exits with haul's status.
    fn launch(server: &Server, args: &[&str], no_color: bool, redirect: &str) -> Self {
        let mut words = vec![env!("CARGO_BIN_EXE_haul"), "ls", "--watch", "--host", &server.base, "--token"];
        words.push(&server.token);
        words.extend(args);
        let quoted: Vec<String> = words.iter().map(|word| format!("'{word}'")).collect();
        let inner = format!(
            "stty cols {WIDTH} rows {HEIGHT}; {} {redirect}; status=$?; \
             if stty -a | tr ' ;' '\\n\\n' | grep -qx -e -icanon -e -echo; then echo '{RAW}'; else echo '{SANE}'; fi; \
             exit $status",
            quoted.join(" ")
        );
        let mut command = Command::new("script");
        command
            .args(["-qfec", &inner, "/dev/null"])
            .env("TERM", "xterm-256color")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for variable in ["HAUL_HOST", "HAUL_TOKEN", "HAUL_DATA_DIR", "HAUL_LOG", "RUST_LOG", "COLUMNS", "NO_COLOR"] {
            command.env_remove(variable);
        }
        if no_color {
            command.env("NO_COLOR", "1");
        }
        let mut script = command.spawn().unwrap();
        let keys = script.stdin.take().unwrap();
        let mut stdout = script.stdout.take().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&received);
        std::thread::spawn(move || {
            let mut buffer = [0_u8; 4096];
            while let Ok(read @ 1..) = stdout.read(&mut buffer) {
                sink.lock().unwrap().extend_from_slice(&buffer[..read]);
            }
        });
        Self { script, keys, received }
    }

    fn raw(&self) -> String {
        String::from_utf8_lossy(&self.received.lock().unwrap()).into_owned()
    }

    fn press(&mut self, keys: &str) {
        self.keys.write_all(keys.as_bytes()).unwrap();
        self.keys.flush().unwrap();
    }

    /// The first complete screen (newest first) that `wanted` accepts; every screen seen must fit the terminal.
    async fn screen(&mut self, what: &str, wanted: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let raw = self.raw();
            let screens = screens(&raw);
            for screen in &screens {
                assert_fits(screen);
            }
            if let Some(screen) = screens.iter().rev().find(|screen| wanted(screen)) {
                return screen.clone();
            }
            if let Some(status) = self.script.try_wait().unwrap() {
                panic!("haul ended ({status}) before showing {what}; the terminal got:\n{}", printable(&raw));
            }
            assert!(
                Instant::now() < deadline,
                "gave up waiting for {what}; last screen:\n{}",
                screens.last().map(|screen| screen.join("\n")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for the end; what the terminal received, once `haul` and the shell after it are done.
    async fn finish(mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = self.script.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "haul did not end:\n{}", printable(&self.raw()));
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        // The reader thread drains what is left.
        let raw = loop {
            let raw = self.raw();
            if raw.contains(SANE) || raw.contains(RAW) || Instant::now() > deadline {
                break raw;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(status.success(), "ls --watch exited with {status}:\n{}", printable(&raw));
        raw
    }

    /// The `haul` process: the shell's child under `script`.
    fn haul_pid(&self) -> u32 {
        let children = |parent: u32| -> Vec<u32> {
            let output = Command::new("pgrep").args(["-P", &parent.to_string()]).output().unwrap();
            String::from_utf8_lossy(&output.stdout).lines().filter_map(|line| line.trim().parse().ok()).collect()
        };
        let mut queue = vec![self.script.id()];
        while let Some(pid) = queue.pop() {
            let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if name.trim() == "haul" {
                return pid;
            }
            queue.extend(children(pid));
        }
        panic!("no haul process under script {}", self.script.id());
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.script.kill();
        let _ = self.script.wait();
    }
}

/// The screens drawn so far: each starts at the top left (ESC [ H); one is complete once the next one (or the
/// way out of the alternate screen) follows. Escapes are removed and each screen split into its lines.
fn screens(raw: &str) -> Vec<Vec<String>> {
    let pieces: Vec<&str> = raw.split("\x1b[H").skip(1).collect();
    let complete = match pieces.last() {
        Some(last) if last.contains("\x1b[?1049l") => pieces.len(),
        _ => pieces.len().saturating_sub(1),
    };
    pieces[..complete]
        .iter()
        .map(|piece| {
            let piece = piece.split("\x1b[?1049l").next().unwrap_or_default();
            strip(piece).split("\r\n").map(|line| line.trim_end().to_owned()).collect()
        })
        .collect()
}

/// `text` without its CSI escapes.
fn strip(text: &str) -> String {
    let mut plain = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            plain.push(c);
            continue;
        }
        if chars.next() == Some('[') {
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        }
    }
    plain
}

/// The SGR escapes (ESC [ ... m) in `text`.
fn sgr_escapes(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("\x1b[") {
        let after = &rest[start + 2..];
        let end = after.find(|c: char| ('@'..='~').contains(&c)).unwrap_or(after.len());
        if after[end..].starts_with('m') {
            found.push(format!("ESC[{}m", &after[..end]));
        }
        rest = &after[end.min(after.len())..];
    }
    found
}

fn printable(raw: &str) -> String {
    raw.replace('\x1b', "ESC")
}

fn assert_fits(screen: &[String]) {
    assert!(screen.len() <= HEIGHT, "{} lines:\n{}", screen.len(), screen.join("\n"));
    for line in screen {
        let width = line.chars().count();
        assert!(width <= WIDTH, "a line of {width} characters:\n{line}\nscreen:\n{}", screen.join("\n"));
    }
}

/// The row of the download with this ID (its first 8 characters, after the selection mark).
fn row<'a>(screen: &'a [String], id: &str) -> Option<&'a String> {
    screen.iter().find(|line| line.get(2..10) == Some(&id[..8]))
}

/// The totals: the line that counts the downloads, with the next one, where the amounts go when one line is too
/// narrow for both.
fn totals(screen: &[String]) -> Option<String> {
    let at = screen.iter().position(|line| {
        let mut words = line.split(' ');
        words.next().is_some_and(|count| count.parse::<u64>().is_ok()) && line.contains(" download")
    })?;
    Some(format!("{} · {}", screen[at], screen.get(at + 1).map_or("", String::as_str)))
}

/// What the terminal got after `haul` left the alternate screen: only the shell's word on the terminal.
fn after_exit(raw: &str) -> &str {
    let end =
        raw.rfind("\x1b[?1049l").unwrap_or_else(|| panic!("never left the alternate screen:\n{}", printable(raw)));
    raw[end + "\x1b[?1049l".len()..].trim()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_view_fits_80_columns_with_totals_colours_and_why_a_download_failed_then_q_restores_the_terminal() {
    let server = Server::start().await;
    // Newest first: the slow one is the first row, the failed one the third.
    let (failed, reason) = server.add_failed().await;
    let paused = server.add_paused("paused.bin").await;
    let slow = server.add_slow(LONG_NAME).await;
    server.wait_state(&slow, Some("active")).await;

    let mut watch = Watch::start(&server, &[], false);
    let screen = watch
        .screen("the three downloads and their totals", |screen| {
            [&slow, &paused, &failed].iter().all(|id| row(screen, id).is_some())
                && totals(screen).is_some_and(|line| line.contains("1 active") && !line.contains("0 B/s"))
                // Named (not the URL) once the server has asked the origin.
                && row(screen, &slow).is_some_and(|line| line.contains("ubuntu-24"))
        })
        .await;
    let header = &screen[0];
    for title in ["ID", "STATE", "%", "SIZE", "SPEED", "ETA", "NAME"] {
        assert!(header.split_whitespace().any(|word| word == title), "no {title}: {header}");
    }
    let first = row(&screen, &slow).unwrap();
    assert!(first.starts_with(&format!("> {}  active", &slow[..8])), "the first row is selected: {first}");
    assert!(first.contains("64.0 MiB") && first.contains("KiB/s") && first.contains('…'), "{first}");
    assert!(first.ends_with("v2.iso") && first.contains("ubuntu-24"), "the name is cut in the middle: {first}");
    assert!(row(&screen, &paused).unwrap().contains("paused"), "{screen:#?}");
    let totals = totals(&screen).unwrap();
    assert!(totals.starts_with("3 downloads: 1 active, 1 paused, 1 failed"), "{totals}");
    // Sizes not known yet (paused before the first request, failed at it) make the total a lower bound.
    assert!(totals.contains(" of 64.0 MiB+"), "bytes done of the known sizes: {totals}");
    assert!(screen.iter().any(|line| line.contains("p pause") && line.contains("q quit")), "{screen:#?}");
    // Colours by state: the active one green, the failed one red.
    let raw = watch.raw();
    assert!(raw.contains("\x1b[32mactive") && raw.contains("\x1b[31mfailed"), "{}", printable(&raw));

    // Down twice (an arrow, then j) selects the failed one, and the detail line says why it failed.
    watch.press("\x1b[B");
    watch.press("j");
    let prefix: String = reason.chars().take(40).collect();
    let screen = watch
        .screen("the failed download selected, with its reason", |screen| {
            row(screen, &failed).is_some_and(|line| line.starts_with("> "))
                && screen.iter().any(|line| line.starts_with(&format!("{} failed: {prefix}", &failed[..8])))
        })
        .await;
    assert!(row(&screen, &slow).unwrap().starts_with("  "), "one selection only: {screen:#?}");

    watch.press("q");
    let raw = watch.finish().await;
    assert_eq!(after_exit(&raw), SANE, "the terminal is put back:\n{}", printable(&raw));
    assert!(raw.contains("\x1b[?1049h"), "the view used the alternate screen");
    // Quitting the view touches no download.
    assert_eq!(server.state(&slow).await.0.as_deref(), Some("active"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_pause_resume_and_remove_the_selected_download() {
    let server = Server::start().await;
    let id = server.add_slow("slow.bin").await;
    server.wait_state(&id, Some("active")).await;
    let short = &id[..8];
    let mut watch = Watch::start(&server, &[], false);
    watch.screen("the active download", |screen| row(screen, &id).is_some_and(|line| line.contains("active"))).await;

    watch.press("p");
    server.wait_state(&id, Some("paused")).await;
    watch
        .screen("the pause acknowledged", |screen| {
            screen.iter().any(|line| line.starts_with(&format!("paused {short}  ")) && line.ends_with("slow.bin"))
                && row(screen, &id).is_some_and(|line| line.contains("paused"))
        })
        .await;

    watch.press("r");
    server.wait_state(&id, Some("active")).await;
    watch.screen("the resume acknowledged", |screen| screen.iter().any(|line| line.starts_with("resumed "))).await;

    // d asks first; n keeps it.
    watch.press("d");
    watch
        .screen("the question", |screen| {
            screen.iter().any(|line| {
                line.starts_with(&format!("remove {short} ")) && line.contains("slow.bin?") && line.ends_with("y/n")
            })
        })
        .await;
    watch.press("n");
    watch.screen("the download kept", |screen| screen.iter().any(|line| line == &format!("kept {short}"))).await;
    assert!(server.state(&id).await.0.is_some(), "n removed it");

    // The Delete key, then y: removed, as `haul rm` does.
    watch.press("\x1b[3~");
    watch.screen("the question again", |screen| screen.iter().any(|line| line.ends_with("y/n"))).await;
    watch.press("y");
    server.wait_state(&id, None).await;
    watch
        .screen("the removal acknowledged", |screen| {
            screen.iter().any(|line| line.starts_with(&format!("removed {short}")))
                && row(screen, &id).is_none()
                && screen.iter().any(|line| line.starts_with("0 downloads"))
        })
        .await;

    // Ctrl-C (a key in raw mode, not a signal) ends the view cleanly.
    watch.press("\x03");
    let raw = watch.finish().await;
    assert_eq!(after_exit(&raw), SANE, "{}", printable(&raw));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_color_means_no_sgr_filters_hold_and_sigterm_or_esc_restore_the_terminal() {
    let server = Server::start().await;
    let paused = server.add_paused("kept-paused.bin").await;
    let slow = server.add_slow("slow.bin").await;
    server.wait_state(&slow, Some("active")).await;

    // --state: only the paused one; NO_COLOR: not one SGR escape; SIGTERM: out cleanly.
    let mut watch = Watch::start(&server, &["--state", "paused"], true);
    let screen = watch.screen("the paused download", |screen| row(screen, &paused).is_some()).await;
    assert!(row(&screen, &slow).is_none(), "--state paused shows an active one: {screen:#?}");
    assert!(totals(&screen).unwrap().starts_with("1 download: 1 paused"), "{screen:#?}");
    assert!(screen.iter().any(|line| line.contains("state paused")), "the filter is named: {screen:#?}");
    let pid = watch.haul_pid();
    assert!(Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap().success());
    let raw = watch.finish().await;
    assert_eq!(after_exit(&raw), SANE, "{}", printable(&raw));
    let escapes = sgr_escapes(&raw);
    assert!(escapes.is_empty(), "NO_COLOR=1, yet: {escapes:?}");
    assert!(screens(&raw).iter().all(|screen| row(screen, &slow).is_none()));

    // --limit 1: the newest one, and the totals say how many there are; Esc quits.
    let mut watch = Watch::start(&server, &["--limit", "1"], false);
    let screen = watch.screen("one of two", |screen| row(screen, &slow).is_some()).await;
    assert!(row(&screen, &paused).is_none(), "{screen:#?}");
    assert!(totals(&screen).unwrap().starts_with("1 of 2 downloads: 1 active"), "{screen:#?}");
    watch.press("\x1b");
    let raw = watch.finish().await;
    assert_eq!(after_exit(&raw), SANE, "{}", printable(&raw));
    assert!(!sgr_escapes(&raw).is_empty(), "colours without NO_COLOR");
}

/// Where stdin is not a terminal but stdout is, the view still runs (keys from the controlling terminal).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_view_needs_only_stdout_to_be_a_terminal() {
    let server = Server::start().await;
    let paused = server.add_paused("p.bin").await;
    let mut watch = Watch::launch(&server, &[], false, "< /dev/null");
    watch.screen("the download", |screen| row(screen, &paused).is_some()).await;
    watch.press("q");
    let raw = watch.finish().await;
    assert_eq!(after_exit(&raw), SANE, "{}", printable(&raw));
}
