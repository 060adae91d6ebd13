//! `haul get`'s progress display as a user sees it: the real binary in a pseudo-terminal 80 columns wide
//! (util-linux `script`), against a throttled origin on loopback, and with stderr not a terminal.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use haul_test_support::{Origin, OriginOptions};

const MIB: u64 = 1 << 20;
const WIDTH: usize = 80;
/// 66 characters: most of the terminal on its own.
const LONG_NAME: &str = "ubuntu-24.04.1-desktop-amd64-with-a-long-descriptive-suffix-v2.iso";

/// `haul ARGS` run in `dir` inside a pseudo-terminal of 80 columns; stdout of `script` is everything the terminal
/// got.
fn in_terminal(dir: &Path, args: &[String]) -> Command {
    let quoted: Vec<String> = args.iter().map(|arg| format!("'{arg}'")).collect();
    let inner = format!("stty cols {WIDTH} rows 24; exec '{}' {}", env!("CARGO_BIN_EXE_haul"), quoted.join(" "));
    let mut command = Command::new("script");
    command
        .args(["-qfec", &inner, "/dev/null"])
        .env_remove("HAUL_LOG")
        .env_remove("RUST_LOG")
        .env_remove("COLUMNS")
        .env_remove("NO_COLOR")
        .env("TERM", "xterm-256color")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// The screen's text: ANSI escapes removed, split on `\r` and `\n` into the lines that were visible one after the
/// other, empty ones left out.
fn visible_lines(raw: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(raw);
    let mut plain = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            plain.push(c);
            continue;
        }
        match chars.next() {
            // CSI: parameters up to a final byte in @..~.
            Some('[') => {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            // OSC: up to BEL or ST.
            Some(']') => {
                while let Some(c) = chars.next() {
                    if c == '\x07' || (c == '\x1b' && chars.next_if_eq(&'\\').is_some()) {
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    plain.split(['\r', '\n']).flat_map(wrapped).filter(|line| !line.is_empty()).collect()
}

/// One written line as the terminal shows it. indicatif pads each of several live lines with spaces to the full
/// width and lets the terminal's wrap start the next: a line whose last column is such a space goes on in the
/// next row. A line of text too long for the row is kept whole, so `assert_fits` sees it.
fn wrapped(line: &str) -> Vec<String> {
    let chars: Vec<char> = line.chars().collect();
    let mut rows = Vec::new();
    let mut start = 0;
    while chars.len() - start > WIDTH && chars[start + WIDTH - 1] == ' ' {
        rows.push(chars[start..start + WIDTH].iter().collect::<String>().trim_end().to_owned());
        start += WIDTH;
    }
    rows.push(chars[start..].iter().collect::<String>().trim_end().to_owned());
    rows
}

fn assert_fits(lines: &[String]) {
    for line in lines {
        assert!(
            line.chars().count() <= WIDTH,
            "a line of {} characters:\n{line}\nall:\n{}",
            line.chars().count(),
            lines.join("\n")
        );
    }
}

/// The summary from its first line (`saved ...`) to the end, wrapped lines joined again.
fn summary(lines: &[String]) -> String {
    let start = lines
        .iter()
        .rposition(|line| line.starts_with("saved"))
        .unwrap_or_else(|| panic!("no summary:\n{}", lines.join("\n")));
    lines[start..].iter().map(|line| line.trim()).collect::<Vec<_>>().join(" ")
}

/// The rates shown on progress lines, in bytes per second.
fn rates(lines: &[String]) -> Vec<f64> {
    let mut rates = Vec::new();
    for line in lines {
        let words: Vec<&str> = line.split(' ').collect();
        for pair in words.windows(2) {
            let factor = match pair[1] {
                "B/s" => 1.0,
                "KiB/s" => 1024.0,
                "MiB/s" => MIB as f64,
                "GiB/s" => (1024 * MIB) as f64,
                _ => continue,
            };
            if let Ok(value) = pair[0].parse::<f64>() {
                rates.push(value * factor);
            }
        }
    }
    rates
}

fn recorded_bytes(record: &Path) -> u64 {
    let Ok(text) = std::fs::read(record) else { return 0 };
    let Ok(record) = serde_json::from_slice::<serde_json::Value>(&text) else { return 0 };
    record["done"].as_array().map_or(0, |done| {
        done.iter().map(|r| r[1].as_u64().unwrap_or(0).saturating_sub(r[0].as_u64().unwrap_or(0))).sum()
    })
}

async fn wait_until(awaited: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !condition() {
        assert!(Instant::now() < deadline, "gave up waiting for {awaited}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `haul` process `script` runs (its only child, after `exec`).
fn haul_under(script: &Child) -> Option<u32> {
    let output = Command::new("pgrep").args(["-P", &script.id().to_string()]).output().ok()?;
    String::from_utf8_lossy(&output.stdout).lines().next()?.trim().parse().ok()
}

/// Interrupts `haul` (as Ctrl-C would) once `record` holds bytes, and waits for it to end.
async fn interrupt_midway(mut child: Child, record: &Path) -> Output {
    wait_until("the first run to record bytes", || {
        assert!(child.try_wait().unwrap().is_none(), "haul finished before it was interrupted");
        recorded_bytes(record) >= MIB / 2
    })
    .await;
    let pid = haul_under(&child).expect("haul runs under script");
    assert!(Command::new("kill").args(["-INT", &pid.to_string()]).status().unwrap().success());
    child.wait_with_output().unwrap()
}

fn throttled(options: OriginOptions) -> OriginOptions {
    OriginOptions { per_connection_rate: Some(MIB), ..options }
}

#[tokio::test(flavor = "multi_thread")]
async fn progress_fits_80_columns_and_the_summary_gives_size_time_and_average_speed() {
    let origin = Origin::start(throttled(OriginOptions::default())).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let args = ["get".into(), "-c".into(), "2".into(), "-d".into(), ".".into(), origin.url(3 * MIB, LONG_NAME)];
    let output = in_terminal(dir.path(), &args).output().unwrap();
    let lines = visible_lines(&output.stdout);
    assert!(output.status.success(), "{}", lines.join("\n"));
    assert_fits(&lines);
    let progress: Vec<&String> = lines.iter().filter(|line| line.contains(" [") && line.contains("ETA")).collect();
    assert!(progress.len() >= 5, "progress lines:\n{}", lines.join("\n"));
    assert!(progress.iter().all(|line| line.starts_with("ubuntu-2") && line.contains('…')), "{}", lines.join("\n"));
    assert!(progress.iter().any(|line| line.contains("2 conns")), "{}", lines.join("\n"));
    // Speed from the first second: at 1 MiB/s a second holds ten ticks; one of them shows a rate already.
    assert!(progress.iter().take(10).any(|line| !line.contains(" 0 B/s")), "{}", lines.join("\n"));
    let summary = summary(&lines);
    assert!(summary.starts_with(&format!("saved {LONG_NAME} (3.0 MiB) in ")), "{summary}");
    assert!(
        summary.contains("(3.0 MiB) in ") && summary.contains(" s, ") && summary.ends_with("/s average"),
        "{summary}"
    );
    assert!(!summary.contains("resumed"), "{summary}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_without_range_shows_one_conn() {
    let origin = Origin::start(throttled(OriginOptions { no_range: true, ..OriginOptions::default() })).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let args = ["get".into(), "-d".into(), ".".into(), origin.url(2 * MIB, LONG_NAME)];
    let output = in_terminal(dir.path(), &args).output().unwrap();
    let lines = visible_lines(&output.stdout);
    assert!(output.status.success(), "{}", lines.join("\n"));
    assert_fits(&lines);
    let progress: Vec<&String> = lines.iter().filter(|line| line.contains("ETA")).collect();
    assert!(progress.iter().any(|line| line.contains(" 1 conn ")), "{}", lines.join("\n"));
    assert!(!lines.iter().any(|line| line.contains("1 conns") || line.contains("0 conns")), "{}", lines.join("\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resumed_run_says_what_it_fetched_and_rates_only_its_own_bytes() {
    let size = 4 * MIB;
    let origin = Origin::start(throttled(OriginOptions::default())).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let args = ["get".into(), "-c".into(), "1".into(), "-d".into(), ".".into(), origin.url(size, LONG_NAME)];
    let record = dir.path().join(format!("{LONG_NAME}.part.haul"));
    let first = interrupt_midway(in_terminal(dir.path(), &args).spawn().unwrap(), &record).await;
    let lines = visible_lines(&first.stdout);
    assert_eq!(first.status.code(), Some(130), "{}", lines.join("\n"));
    assert_fits(&lines);
    assert!(lines.iter().any(|line| line.contains("run the same command again to resume")), "{}", lines.join("\n"));
    let kept = recorded_bytes(&record);
    assert!(kept > 0 && kept < size, "kept {kept}");

    let second = in_terminal(dir.path(), &args).output().unwrap();
    let lines = visible_lines(&second.stdout);
    assert!(second.status.success(), "{}", lines.join("\n"));
    assert_fits(&lines);
    // The bytes already on disk are no part of this run's rate (nor, then, of its ETA): never far above 1 MiB/s.
    let shown = rates(&lines);
    assert!(!shown.is_empty() && shown.iter().all(|&rate| rate < 2.0 * MIB as f64), "{shown:?}\n{}", lines.join("\n"));
    let summary = summary(&lines);
    assert!(summary.contains("(4.0 MiB) in ") && summary.contains("/s average"), "{summary}");
    assert!(summary.contains("fetched in this run") && summary.contains("resumed from an earlier one"), "{summary}");
}

/// Plain lines when stderr is not a terminal; a host without Range starts again from zero and the summary does
/// not claim the bytes of the first run as resumed.
#[tokio::test(flavor = "multi_thread")]
async fn plain_lines_and_no_resumed_bytes_claimed_after_a_restart_from_zero() {
    let size = 3 * MIB;
    let origin = Origin::start(throttled(OriginOptions { no_range: true, ..OriginOptions::default() })).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = origin.url(size, LONG_NAME);
    let record = dir.path().join(format!("{LONG_NAME}.part.haul"));
    let haul = || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_haul"));
        command.env_remove("HAUL_LOG").env_remove("RUST_LOG").args(["get", "-d"]).arg(dir.path()).arg(&url);
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        command
    };
    let mut child = haul().spawn().unwrap();
    wait_until("the first run to record bytes", || {
        assert!(child.try_wait().unwrap().is_none(), "haul finished before it was interrupted");
        recorded_bytes(&record) > 0
            || std::fs::metadata(dir.path().join(format!("{LONG_NAME}.part"))).is_ok_and(|m| m.len() > MIB / 2)
    })
    .await;
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let first = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&first.stderr).into_owned();
    assert_eq!(first.status.code(), Some(130), "{text}");
    // Ctrl-C says so, rather than promising a resume the host cannot give.
    assert!(text.contains("this host does not take byte ranges, so the download cannot be resumed"), "{text}");
    assert!(!text.contains("run the same command again to resume"), "{text}");

    let second = haul().output().unwrap();
    let text = String::from_utf8_lossy(&second.stderr).into_owned();
    assert!(second.status.success(), "{text}");
    assert!(!text.contains('\x1b') && !text.contains('\r'), "{text:?}");
    let lines: Vec<&str> = text.lines().collect();
    // Every two seconds: `NAME: 40% 1.2 MiB of 3.0 MiB, 1.0 MiB/s, 1 conn, ETA 2s`.
    let progress: Vec<&&str> = lines.iter().filter(|line| line.starts_with(&format!("{LONG_NAME}: "))).collect();
    assert!(!progress.is_empty(), "{text}");
    assert!(progress.iter().all(|line| line.contains(" of 3.0 MiB, ") && line.contains("/s, 1 conn")), "{text}");
    let summary = lines.last().unwrap();
    assert!(
        summary.starts_with("saved ") && summary.contains("(3.0 MiB) in ") && summary.ends_with("/s average"),
        "{text}"
    );
    assert!(!summary.contains("resumed"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_show_a_live_line_each_and_a_total_at_the_end() {
    let origin = Origin::start(throttled(OriginOptions::default())).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let names = ["first-of-three.bin", "second-of-three.bin", "third-of-three.bin"];
    let mut args: Vec<String> = ["get", "-j", "3", "-c", "1", "-d", "."].map(String::from).to_vec();
    args.extend(names.iter().map(|name| origin.url(2 * MIB, name)));
    let output = in_terminal(dir.path(), &args).output().unwrap();
    let lines = visible_lines(&output.stdout);
    assert!(output.status.success(), "{}", lines.join("\n"));
    assert_fits(&lines);
    for name in names {
        let live = lines.iter().filter(|line| line.starts_with(name) && line.contains("ETA")).count();
        assert!(live >= 3, "{name}: {live} progress lines:\n{}", lines.join("\n"));
        assert!(lines.iter().any(|line| line.starts_with(&format!("saved {name} (2.0 MiB)"))), "{}", lines.join("\n"));
    }
    let total = lines.last().unwrap();
    assert!(total.starts_with("haul: 3 of 3 saved; 6.0 MiB in "), "{}", lines.join("\n"));
}
