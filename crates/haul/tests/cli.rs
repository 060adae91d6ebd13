//! `haul get` as a user runs it: the real binary against a real origin on loopback, including SIGKILL and
//! Ctrl-C in the middle of a download.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use haul_test_support::{Origin, OriginOptions};
use sha2::{Digest, Sha256};

const MIB: u64 = 1 << 20;

fn haul() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_haul"));
    command.env_remove("HAUL_LOG").env_remove("RUST_LOG");
    command
}

fn sha256_of(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

fn run(command: &mut Command) -> Output {
    command.stdin(Stdio::null()).output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn recorded_bytes(record: &Path) -> u64 {
    let Ok(text) = std::fs::read(record) else { return 0 };
    let Ok(record) = serde_json::from_slice::<serde_json::Value>(&text) else { return 0 };
    record["done"].as_array().unwrap().iter().map(|r| r[1].as_u64().unwrap() - r[0].as_u64().unwrap()).sum()
}

/// Polls `condition` until it holds; fails naming what was awaited if it does not within a generous deadline.
/// The deadline only bounds a hung test: how long the wait took is never asserted.
async fn wait_until(awaited: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !condition() {
        assert!(Instant::now() < deadline, "gave up waiting for {awaited}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn get_downloads_into_a_directory() {
    let origin = Origin::start(OriginOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let output = run(haul().arg("get").arg("-d").arg(dir.path()).arg(origin.url(5 * MIB, "five.bin")));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(sha256_of(&dir.path().join("five.bin")), origin.handle().file_sha256(5 * MIB, "five.bin"));
    assert!(stderr(&output).contains("saved"), "{}", stderr(&output));
}

#[tokio::test(flavor = "multi_thread")]
async fn quiet_prints_nothing_and_output_names_the_file() {
    let origin = Origin::start(OriginOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("chosen.name");
    let output = run(haul().args(["get", "-q", "-c", "4", "-o"]).arg(&target).arg(origin.url(MIB, "x.bin")));
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(output.stdout.is_empty() && output.stderr.is_empty(), "{}", stderr(&output));
    assert_eq!(sha256_of(&target), origin.handle().file_sha256(MIB, "x.bin"));
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_exit_non_zero_with_one_line_reason() {
    let origin = Origin::start(OriginOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["not a url".into()], "not a valid URL"),
        (vec!["ftp://example.com/x".into()], "http or https"),
        (vec![format!("http://{}/missing", origin.addr())], "404"),
        (vec!["--checksum".into(), "sha256=abc".into(), origin.url(MIB, "c.bin")], "sha256"),
        (vec!["--checksum".into(), format!("md5={}", "0".repeat(32)), origin.url(MIB, "c.bin")], "checksum mismatch"),
        (vec!["--limit-rate".into(), "fast".into(), origin.url(MIB, "c.bin")], "fast"),
        (vec!["-H".into(), "NoColon".into(), origin.url(MIB, "c.bin")], "Name: Value"),
        (
            vec!["--mirror".into(), origin.url(MIB, "c.bin"), origin.url(MIB, "a"), origin.url(MIB, "b")],
            "one at a time",
        ),
    ];
    for (args, expected) in cases {
        let output = run(haul().arg("get").arg("-d").arg(dir.path()).args(&args));
        let text = stderr(&output);
        assert!(!output.status.success(), "{args:?} should fail");
        assert!(text.contains(expected), "{args:?}: expected {expected:?} in {text:?}");
        assert!(text.trim().lines().count() <= 3, "{args:?}: keep it short: {text}");
    }
    assert!(!dir.path().join("c.bin").exists(), "a checksum mismatch leaves no final file");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_mid_download_resumes_without_refetching() {
    let size = 24 * MIB;
    let origin =
        Origin::start(OriginOptions { per_connection_rate: Some(MIB), ..OriginOptions::default() }).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = origin.url(size, "big.bin");
    let record = dir.path().join("big.bin.part.haul");

    let mut child =
        haul().args(["get", "-q", "-c", "8", "-d"]).arg(dir.path()).arg(&url).stdin(Stdio::null()).spawn().unwrap();
    wait_until("haul get to record 6 MiB in big.bin.part.haul", || {
        assert!(child.try_wait().unwrap().is_none(), "haul exited before it was killed");
        recorded_bytes(&record) >= 6 * MIB
    })
    .await;
    child.kill().unwrap(); // SIGKILL: no chance to save anything more
    child.wait().unwrap();
    let saved = recorded_bytes(&record);
    assert!(saved >= 6 * MIB && saved < size, "recorded {saved}");

    origin.handle().reset_stats();
    let output = run(haul().args(["get", "-d"]).arg(dir.path()).arg(&url));
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("resumed"), "{}", stderr(&output));
    assert_eq!(sha256_of(&dir.path().join("big.bin")), origin.handle().file_sha256(size, "big.bin"));
    let refetched = origin.handle().stats().body_bytes_sent;
    assert!(refetched <= size - saved + MIB, "second run fetched {refetched} bytes although {saved} were saved");
    assert!(!record.exists() && !dir.path().join("big.bin.part").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_pauses_with_status_130_and_the_same_command_finishes() {
    let size = 16 * MIB;
    let origin =
        Origin::start(OriginOptions { per_connection_rate: Some(MIB), ..OriginOptions::default() }).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = origin.url(size, "p.bin");
    let record = dir.path().join("p.bin.part.haul");
    let mut child = haul()
        .args(["get", "-c", "4", "-d"])
        .arg(dir.path())
        .arg(&url)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once the download is under way: its signal handler is installed before any byte is fetched.
    wait_until("haul get to record its first bytes in p.bin.part.haul", || {
        assert!(child.try_wait().unwrap().is_none(), "haul exited before it was interrupted");
        recorded_bytes(&record) > 0
    })
    .await;
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130), "{}", stderr(&output));
    assert!(stderr(&output).contains("run the same command again to resume"), "{}", stderr(&output));
    assert!(recorded_bytes(&record) > 0, "a pause saves progress");

    let output = run(haul().args(["get", "-d"]).arg(dir.path()).arg(&url));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(sha256_of(&dir.path().join("p.bin")), origin.handle().file_sha256(size, "p.bin"));
}

#[test]
fn help_explains_the_get_command() {
    let output = run(haul().args(["get", "--help"]));
    let text = String::from_utf8_lossy(&output.stdout);
    for expected in ["--connections", "--limit-rate", "--checksum", "--mirror", "Examples"] {
        assert!(text.contains(expected), "missing {expected} in help:\n{text}");
    }
}

/// A small tmpfs mounted for the life of the guard; `None` where this machine does not allow mounting.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        mounted.then_some(Self { dir })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn full_disk_fails_clearly_and_keeps_what_was_written() {
    let Some(disk) = SmallDisk::mount("2m") else {
        eprintln!("not run: this machine does not allow mounting a tmpfs (needs root)");
        return;
    };
    let origin = Origin::start(OriginOptions::default()).await.unwrap();
    let output = run(haul().args(["get", "-q", "-d"]).arg(disk.dir.path()).arg(origin.url(8 * MIB, "big.bin")));
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("No space left on device"), "{text}");
    assert!(text.contains("free some space"), "{text}");
    assert!(text.contains("run the same command again to resume"), "the command line's own hint: {text}");
    assert!(!disk.dir.path().join("big.bin").exists(), "no final file from a failed download");
    // The space is reserved before the file is fetched: only the first request's answer was on its way,
    // dropped when the reservation failed; no debris is left.
    assert!(origin.handle().stats().body_bytes_sent <= haul_engine::FIRST_REQUEST, "{:?}", origin.handle().stats());
    assert!(std::fs::read_dir(disk.dir.path()).unwrap().next().is_none(), "nothing left on the full disk");
}

#[tokio::test(flavor = "multi_thread")]
async fn get_makes_one_file_of_a_video_page() {
    use haul_test_support::{MediaSite, codec_types, media};
    let site = MediaSite::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let get = |args: &[&str]| {
        let output = run(haul().current_dir(dir.path()).arg("get").arg("-q").args(args));
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
    };

    // Separate video and audio streams, fetched by haul and merged into one mp4 named after the page.
    get(&[&site.dash("Talk: one/two")]);
    let merged = dir.path().join("Talk_ one_two (1).mp4");
    assert_eq!(codec_types(&merged), ["video", "audio"], "{:?}", std::fs::read_dir(dir.path()).unwrap().count());
    assert!(site.requests(media::VIDEO_720) > 0 && site.requests(media::AUDIO) > 0);
    // The sound alone, and a quality under the best, saved under the name asked for.
    get(&["--audio", &site.muxed("Song")]);
    assert_eq!(codec_types(dir.path().join("Song (1).m4a")), ["audio"]);
    // In another format: only the mp3 is left (and -o names it), in the codec asked for.
    get(&["--audio-format", "mp3", &site.muxed("Song in mp3")]);
    let mp3 = dir.path().join("Song in mp3 (1).mp3");
    assert_eq!(codec_types(&mp3), ["audio"]);
    assert_eq!(haul_test_support::ffprobe(&mp3)["streams"][0]["codec_name"], "mp3");
    get(&["--audio-format", "opus", "-o", "song.opus", &site.dash("Song in opus")]);
    assert_eq!(haul_test_support::ffprobe(dir.path().join("song.opus"))["streams"][0]["codec_name"], "opus");
    get(&["--quality", "360p", "-o", "small.mp4", &site.muxed("Small")]);
    let small = haul_test_support::ffprobe(dir.path().join("small.mp4"));
    assert_eq!(small["streams"][0]["height"], 360, "{small}");
    // A page that is not a video is saved as it is; nothing is left behind in the directory.
    get(&[&site.plain_html()]);
    let mut names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|entry| entry.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(
        names,
        ["Song (1).m4a", "Song in mp3 (1).mp3", "Talk_ one_two (1).mp4", "plain.html", "small.mp4", "song.opus"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn habits_from_curl_and_aria2c_work() {
    let origin = Origin::start(OriginOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // `haul URL` is `haul get URL`, and `--limit-rate 0` is no limit, as in aria2c.
    let url = origin.url(MIB, "plain.bin");
    let output = run(haul().current_dir(dir.path()).arg(&url).args(["-q", "--limit-rate", "0"]));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(sha256_of(&dir.path().join("plain.bin")), origin.handle().file_sha256(MIB, "plain.bin"));
    let output = run(haul().current_dir(dir.path()).arg(&url).args(["--limit-rate", "fast"]));
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("rate"), "{}", stderr(&output));
    // A word that is not a URL is still a command (with clap's suggestion for a typo).
    let output = run(haul().arg("sever"));
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("serve"), "{}", stderr(&output));
    // `haul add`'s -q is not a quality: one meaning per short flag across commands.
    let help = String::from_utf8(run(haul().args(["add", "--help"])).stdout).unwrap();
    assert!(!help.contains("-q, --quality"), "{help}");
}

#[test]
fn serve_listens_on_a_host_name() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = haul()
        .args(["serve", "--listen", "localhost:0", "--data-dir"])
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        line.starts_with("haul listening on http://127.0.0.1:") || line.starts_with("haul listening on http://[::1]:"),
        "{line}"
    );
    let output = run(haul().args(["serve", "--listen", "no-such-host.invalid:1700", "--data-dir"]).arg(dir.path()));
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("HOST:PORT"), "{}", stderr(&output));
}

#[test]
fn hosts_that_cannot_be_reached_fail_at_once_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on: bind one, note it, and close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    for (url, expected) in [
        ("http://no-such-host.invalid/file.bin".to_owned(), "cannot resolve the host name \"no-such-host.invalid\""),
        (format!("http://127.0.0.1:{port}/file.bin"), &*format!("connection refused by 127.0.0.1 port {port}")),
    ] {
        let output = run(haul().args(["get", "-q", "-d"]).arg(dir.path()).arg(&url));
        assert_eq!(output.status.code(), Some(1), "{url}: {}", stderr(&output));
        let message = stderr(&output);
        assert!(message.contains(expected), "{message}");
        assert!(!message.contains("gave up after"), "not retried: {message}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing left behind for {url}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn max_tries_bounds_the_retries_of_a_busy_host() {
    // Every request answered 503 with Retry-After: 1.
    let origin = Origin::start(OriginOptions { max_connections: Some(0), ..OriginOptions::default() }).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = origin.url(MIB, "busy.bin");
    let output = run(haul().args(["get", "-q", "--max-tries", "2", "--timeout", "5", "-d"]).arg(dir.path()).arg(&url));
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("503") && stderr(&output).contains("gave up after 2 attempts"),
        "{}",
        stderr(&output)
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing left behind");
}

#[test]
fn a_quality_without_yt_dlp_is_an_error_that_says_how_to_install_it() {
    let dir = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let output = run(haul()
        .args(["get", "--quality", "720p", "-d"])
        .arg(dir.path())
        .arg("http://127.0.0.1:9/watch?v=1")
        .env("PATH", empty.path())
        .env_remove("HAUL_YT_DLP"));
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("--quality needs yt-dlp") && stderr(&output).contains("pip install yt-dlp"));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing saved");
}

/// Names in `dir`, sorted, to check that nothing stray is left beside what a command should leave.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|entry| entry.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn output_onto_a_directory_saves_into_it_under_the_offered_name() {
    let origin = Origin::start(OriginOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = origin.url(MIB, "offered.bin");
    let output = run(haul().args(["get", "-o"]).arg(dir.path()).arg(&url));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let saved = dir.path().join("offered.bin");
    assert!(stderr(&output).contains(&format!("saved {} (1.0 MiB)", saved.display())), "{}", stderr(&output));
    assert_eq!(sha256_of(&saved), origin.handle().file_sha256(MIB, "offered.bin"));
    // A path ending in a slash names a directory too, made when missing.
    let output = run(haul().args(["get", "-q", "-o"]).arg(format!("{}/sub/", dir.path().display())).arg(&url));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(sha256_of(&dir.path().join("sub/offered.bin")), origin.handle().file_sha256(MIB, "offered.bin"));
    assert_eq!(listing(dir.path()), ["offered.bin", "sub"]);
    assert_eq!(listing(&dir.path().join("sub")), ["offered.bin"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn output_into_missing_directories_makes_them_or_says_what_is_in_the_way() {
    let origin = Origin::start(OriginOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = origin.url(MIB, "x.bin");
    let expected = origin.handle().file_sha256(MIB, "x.bin");
    // -o into directories that do not exist yet, as curl --create-dirs (accepted, and the default) and -d do.
    let nested = dir.path().join("a/b/c/named.bin");
    let output = run(haul().args(["get", "-q", "--create-dirs", "-o"]).arg(&nested).arg(&url));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(sha256_of(&nested), expected);
    let output = run(haul().args(["get", "-q", "-d"]).arg(dir.path().join("d/e")).arg(&url));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(sha256_of(&dir.path().join("d/e/x.bin")), expected);
    assert_eq!(listing(&dir.path().join("a/b/c")), ["named.bin"]);

    // A file where a directory should be: named in the error, and nothing is fetched or left.
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, b"not a directory").unwrap();
    origin.handle().reset_stats();
    for args in [
        vec!["-o".to_owned(), format!("{}/sub/f.bin", blocker.display())],
        vec!["-d".to_owned(), format!("{}/sub", blocker.display())],
    ] {
        let output = run(haul().arg("get").args(&args).arg(&url));
        assert_eq!(output.status.code(), Some(1), "{args:?}: {}", stderr(&output));
        assert_eq!(
            stderr(&output),
            format!(
                "haul: error: cannot create the directory {}/sub: {} is a file, not a directory\n",
                blocker.display(),
                blocker.display()
            )
        );
    }
    assert_eq!(std::fs::read(&blocker).unwrap(), b"not a directory");
    assert_eq!(listing(dir.path()), ["a", "blocker", "d"]);
    assert_eq!(origin.handle().stats().body_bytes_sent, 0);

    // A directory haul may not write in; root writes anywhere, so this part runs only for other users.
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o555)).unwrap();
    if std::fs::create_dir(locked.join("probe")).is_ok() {
        eprintln!("not run: permission denial (this user writes to any directory)");
        return;
    }
    let output = run(haul().args(["get", "-o"]).arg(locked.join("sub/f.bin")).arg(&url));
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let expected =
        format!("cannot create the directory {}/sub: {} is not writable", locked.display(), locked.display());
    assert!(stderr(&output).contains(&expected), "{}", stderr(&output));
    assert!(listing(&locked).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn output_dash_writes_the_file_to_stdout_in_order() {
    let dir = tempfile::tempdir().unwrap();
    for (knobs, why) in [
        (OriginOptions::default(), "a plain host"),
        (OriginOptions { no_range: true, ..OriginOptions::default() }, "a host without Range"),
        // Every other body is cut: the stream continues with Range from where it broke, never from zero.
        (OriginOptions { cut_fraction: 0.5, ..OriginOptions::default() }, "a host that cuts responses"),
    ] {
        let origin = Origin::start(knobs).await.unwrap();
        let size = 3 * MIB;
        let output = run(haul().current_dir(dir.path()).args(["get", "-o", "-"]).arg(origin.url(size, "s.bin")));
        assert_eq!(output.status.code(), Some(0), "{why}: {}", stderr(&output));
        assert_eq!(hex::encode(Sha256::digest(&output.stdout)), origin.handle().file_sha256(size, "s.bin"), "{why}");
        assert!(stderr(&output).ends_with("wrote 3.0 MiB to stdout\n"), "{why}: {}", stderr(&output));
        let stats = origin.handle().stats();
        assert_eq!(stats.peak_concurrent, 1, "{why}: one connection, in order");
        assert!(stats.body_bytes_sent < size + MIB, "{why}: nothing fetched twice: {}", stats.body_bytes_sent);
        assert!(listing(dir.path()).is_empty(), "{why}: no file made: {:?}", listing(dir.path()));
    }

    let origin = Origin::start(OriginOptions::default()).await.unwrap();
    let (one, two) = (origin.url(MIB, "one.bin"), origin.url(MIB, "two.bin"));
    for (args, expected) in [
        (vec!["-o", "-", &one, &two], "-o - writes one download to stdout but 2 URLs were given"),
        (vec!["-o", "-", "--mirror", &two, &one], "--mirror"),
        (vec!["-o", "-", "--checksum", &format!("sha256={}", "0".repeat(64)), &one], "pipe them to sha256sum"),
    ] {
        let output = run(haul().current_dir(dir.path()).arg("get").args(&args));
        assert_eq!(output.status.code(), Some(1), "{args:?}: {}", stderr(&output));
        assert!(stderr(&output).contains(expected), "{args:?}: {}", stderr(&output));
        assert!(output.stdout.is_empty());
    }
    assert_eq!(origin.handle().stats().requests, 0, "refused before any request");
    assert!(listing(dir.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_complete_file_is_skipped_and_a_different_one_of_the_same_name_kept() {
    let origin = Origin::start(OriginOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = origin.url(MIB, "report.pdf");
    let expected = origin.handle().file_sha256(MIB, "report.pdf");
    let report = dir.path().join("report.pdf");
    let get = |extra: &[&str]| run(haul().arg("get").args(extra).arg("-d").arg(dir.path()).arg(&url));
    assert!(get(&[]).status.success());

    // The same command again: nothing fetched, exit 0, and a message saying why; with -o naming it too.
    origin.handle().reset_stats();
    let skipped =
        format!("{} is already complete (1.0 MiB); nothing to do (--overwrite to fetch it again)\n", report.display());
    let output = get(&[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stderr(&output), skipped);
    let output = run(haul().args(["get", "-o"]).arg(&report).arg(&url));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stderr(&output), skipped);
    assert_eq!(origin.handle().stats().body_bytes_sent, 0, "nothing fetched for a complete file");
    assert_eq!(sha256_of(&report), expected);
    assert_eq!(listing(dir.path()), ["report.pdf"]);

    // A different file of the same name (another size) is kept, the download saved beside it; and that copy is
    // then the one found complete.
    std::fs::write(&report, b"my own notes").unwrap();
    let output = get(&[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(std::fs::read(&report).unwrap(), b"my own notes");
    let numbered = dir.path().join("report (1).pdf");
    assert_eq!(sha256_of(&numbered), expected);
    let output = get(&[]);
    assert!(stderr(&output).contains("report (1).pdf is already complete (1.0 MiB)"), "{}", stderr(&output));
    // With -o, a different file is still an error, never replaced without --overwrite.
    let output = run(haul().args(["get", "-o"]).arg(&report).arg(&url));
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("already exists; pass --overwrite"), "{}", stderr(&output));

    // A copy of the right size older than the server's Last-Modified (2020) is not taken for complete.
    let old = std::time::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    std::fs::File::options().write(true).open(&numbered).unwrap().set_modified(old).unwrap();
    let output = get(&["-q"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(sha256_of(&dir.path().join("report (2).pdf")), expected);

    // --overwrite fetches again and replaces.
    origin.handle().reset_stats();
    let output = get(&["--overwrite"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stderr(&output).contains("saved"), "{}", stderr(&output));
    assert_eq!(origin.handle().stats().body_bytes_sent, MIB);
    assert_eq!(sha256_of(&report), expected);
    assert_eq!(listing(dir.path()), ["report (1).pdf", "report (2).pdf", "report.pdf"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_get_of_the_same_file_says_another_haul_is_downloading_it() {
    let origin = Origin::start(OriginOptions { per_connection_rate: Some(256 * 1024), ..OriginOptions::default() })
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = origin.url(16 * MIB, "slow.bin");
    let part = dir.path().join("slow.bin.part");
    let mut first =
        haul().args(["get", "-q", "-c", "2", "-d"]).arg(dir.path()).arg(&url).stdin(Stdio::null()).spawn().unwrap();
    wait_until("the first haul get to make slow.bin.part", || {
        assert!(first.try_wait().unwrap().is_none(), "the first haul exited early");
        part.exists()
    })
    .await;

    let message = format!(
        "haul: error: another haul is already downloading {}; let it finish, or stop it first\n",
        dir.path().join("slow.bin").display()
    );
    // The first haul's own files; its record is replaced every second through a `.tmp` beside it, so that one may
    // be seen at any moment (and left by the SIGKILL below).
    let files = || listing(dir.path()).into_iter().filter(|name| !name.ends_with(".tmp")).collect::<Vec<_>>();
    for args in [
        vec!["-d".to_owned(), dir.path().display().to_string()],
        vec!["-o".to_owned(), dir.path().join("slow.bin").display().to_string()],
    ] {
        let output = run(haul().arg("get").args(&args).arg(&url));
        assert_eq!(output.status.code(), Some(1), "{args:?}: {}", stderr(&output));
        assert_eq!(stderr(&output), message, "{args:?}");
        assert_eq!(files(), ["slow.bin.part", "slow.bin.part.haul"], "{args:?}: nothing stray");
    }
    assert!(first.try_wait().unwrap().is_none(), "the first haul goes on undisturbed");
    first.kill().unwrap();
    first.wait().unwrap();
    assert_eq!(files(), ["slow.bin.part", "slow.bin.part.haul"]);
}

/// A loopback HTTP server that records the head of every request it gets and answers each with `response`:
/// enough to see exactly which headers haul sends.
async fn recording_server(response: String) -> (std::net::SocketAddr, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let recorded = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            let (recorded, response) = (recorded.clone(), response.clone());
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buffer = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buffer[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let is_head = head.starts_with("HEAD ");
                recorded.lock().unwrap().push(head);
                let reply =
                    if is_head { response.split("\r\n\r\n").next().unwrap().to_owned() + "\r\n\r\n" } else { response };
                let _ = socket.write_all(reply.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (addr, seen)
}

/// The values of header `name` in the recorded requests, one per request (`None` where it was not sent).
fn header_values(requests: &std::sync::Mutex<Vec<String>>, name: &str) -> Vec<Option<String>> {
    requests
        .lock()
        .unwrap()
        .iter()
        .map(|head| {
            head.lines().find_map(|line| {
                let (key, value) = line.split_once(':')?;
                key.trim().eq_ignore_ascii_case(name).then(|| value.trim().to_owned())
            })
        })
        .collect()
}

const HELLO: &str =
    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\nhello";

#[tokio::test(flavor = "multi_thread")]
async fn user_netrc_and_cookies_send_authorization_and_cookie_headers() {
    let dir = tempfile::tempdir().unwrap();
    let netrc = dir.path().join("netrc");
    std::fs::write(
        &netrc,
        "machine elsewhere.example login no password no\nmachine 127.0.0.1\n  login alice\n  password \"s3 cret\"\n",
    )
    .unwrap();
    let cookies = dir.path().join("cookies.txt");
    std::fs::write(
        &cookies,
        "# Netscape HTTP Cookie File\n\
         127.0.0.1\tFALSE\t/\tFALSE\t0\tsession\tabc\n\
         #HttpOnly_127.0.0.1\tFALSE\t/files\tFALSE\t4102444800\tdeep\txyz\n\
         127.0.0.1\tFALSE\t/other\tFALSE\t0\tnot\tsent\n\
         127.0.0.1\tFALSE\t/\tTRUE\t0\tsecure\tnot-over-http\n\
         127.0.0.1\tFALSE\t/\tFALSE\t1000\texpired\tgone\n\
         example.com\tTRUE\t/\tFALSE\t0\tforeign\tno\n",
    )
    .unwrap();
    let cases: Vec<(Vec<String>, &str, Option<&str>)> = vec![
        (vec!["-u".into(), "bob:pa:ss".into()], "authorization", Some("Basic Ym9iOnBhOnNz")),
        (vec!["--user".into(), "token:".into()], "authorization", Some("Basic dG9rZW46")),
        (vec!["--netrc-file".into(), netrc.display().to_string()], "authorization", Some("Basic YWxpY2U6czMgY3JldA==")),
        // -u wins over the netrc file, and -H over both.
        (
            vec!["-u".into(), "bob:x".into(), "--netrc-file".into(), netrc.display().to_string()],
            "authorization",
            Some("Basic Ym9iOng="),
        ),
        (
            vec!["-u".into(), "bob:x".into(), "-H".into(), "Authorization: Bearer t".into()],
            "authorization",
            Some("Bearer t"),
        ),
        (vec!["--cookies".into(), cookies.display().to_string()], "cookie", Some("deep=xyz; session=abc")),
        (
            vec!["--cookies".into(), cookies.display().to_string(), "-H".into(), "Cookie: mine=1".into()],
            "cookie",
            Some("mine=1; deep=xyz; session=abc"),
        ),
        (vec![], "authorization", None),
    ];
    for (flags, header, expected) in cases {
        let (addr, requests) = recording_server(HELLO.to_owned()).await;
        let out = dir.path().join("out.bin");
        let _ = std::fs::remove_file(&out);
        let output = run(haul()
            .args(["get", "-q", "--kind", "file", "-o"])
            .arg(&out)
            .args(&flags)
            .arg(format!("http://{addr}/files/f.bin")));
        assert!(output.status.success(), "{flags:?}: {}", stderr(&output));
        assert_eq!(std::fs::read(&out).unwrap(), b"hello", "{flags:?}");
        let values = header_values(&requests, header);
        assert!(!values.is_empty(), "{flags:?}: no request recorded");
        assert!(values.iter().all(|value| value.as_deref() == expected), "{flags:?}: {header} sent {values:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_never_follow_a_redirect_to_another_host() {
    let (target, target_requests) = recording_server(HELLO.to_owned()).await;
    let (first, first_requests) = recording_server(format!(
        "HTTP/1.1 302 Found\r\nLocation: http://{target}/f.bin\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cookies = dir.path().join("cookies.txt");
    std::fs::write(&cookies, "127.0.0.1\tFALSE\t/\tFALSE\t0\tsession\tabc\n").unwrap();
    let output = run(haul()
        .args(["get", "-q", "--kind", "file", "-u", "bob:secret", "--cookies"])
        .arg(&cookies)
        .arg("-d")
        .arg(dir.path())
        .arg(format!("http://{first}/f.bin")));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(std::fs::read(dir.path().join("f.bin")).unwrap(), b"hello");
    assert!(
        header_values(&first_requests, "authorization").iter().all(|v| v.as_deref() == Some("Basic Ym9iOnNlY3JldA=="))
    );
    assert!(header_values(&first_requests, "cookie").iter().all(|v| v.as_deref() == Some("session=abc")));
    // The other port is another origin: neither the login nor the cookie goes there (the cookie's domain would
    // match, but it came with a request to the first host).
    let (authorization, cookie) =
        (header_values(&target_requests, "authorization"), header_values(&target_requests, "cookie"));
    assert!(!authorization.is_empty(), "the redirect was followed");
    assert!(authorization.iter().chain(&cookie).all(Option::is_none), "{authorization:?} {cookie:?}");
}

#[test]
fn credential_flags_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let bad_cookies = dir.path().join("bad.txt");
    std::fs::write(&bad_cookies, "# comment\nexample.com TRUE / FALSE 0 a b\n").unwrap();
    let missing = dir.path().join("missing");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["-u".into(), "bob".into()], "give it as user:password"),
        (vec!["--netrc-file".into(), missing.display().to_string()], "--netrc: cannot read"),
        (vec!["--cookies".into(), missing.display().to_string()], "--cookies: cannot read"),
        (vec!["--cookies".into(), bad_cookies.display().to_string()], "line 2: 1 fields"),
        (vec!["-u".into(), "a:b".into(), "--mirror".into(), "http://127.0.0.2:9/f".into()], "is another host"),
        (vec!["-N".into(), "-o".into(), "-".into()], "-N compares"),
    ];
    for (flags, expected) in cases {
        let output = run(haul().arg("get").args(&flags).arg("http://127.0.0.1:9/f"));
        assert!(!output.status.success(), "{flags:?}");
        assert!(stderr(&output).contains(expected), "{flags:?}: {}", stderr(&output));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_saved_file_takes_the_servers_last_modified() {
    let origin = Origin::start(OriginOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let output = run(haul().args(["get", "-q", "-d"]).arg(dir.path()).arg(origin.url(2 * MIB, "dated.bin")));
    assert!(output.status.success(), "{}", stderr(&output));
    let mtime = std::fs::metadata(dir.path().join("dated.bin")).unwrap().modified().unwrap();
    // The test origin's Last-Modified for version 0: 2020-01-01T00:00:00Z.
    assert_eq!(mtime, std::time::UNIX_EPOCH + Duration::from_secs(1_577_836_800));
}

#[tokio::test(flavor = "multi_thread")]
async fn timestamping_fetches_only_what_is_newer_and_replaces_it() {
    let origin = Origin::start(OriginOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = origin.url(2 * MIB, "n.bin");
    let get = || run(haul().args(["get", "-N", "-d"]).arg(dir.path()).arg(&url));
    let output = get();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(sha256_of(&dir.path().join("n.bin")), origin.handle().file_sha256(2 * MIB, "n.bin"));

    origin.handle().reset_stats();
    let output = get();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("n.bin is up to date"), "{}", stderr(&output));
    let stats = origin.handle().stats();
    // Only HEAD probes (two where yt-dlp is installed: is it a video page, then the file's size and date).
    assert!(stats.requests >= 1 && stats.requests == stats.head_requests, "only the probe: {stats:?}");
    assert_eq!(stats.body_bytes_sent, 0, "{stats:?}");

    // A newer copy on the server replaces the file, under the same name.
    origin.handle().set_version(60);
    let output = get();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!stderr(&output).contains("up to date"), "{}", stderr(&output));
    assert_eq!(listing(dir.path()), ["n.bin"]);
    assert_eq!(sha256_of(&dir.path().join("n.bin")), origin.handle().file_sha256(2 * MIB, "n.bin"));
    let mtime = std::fs::metadata(dir.path().join("n.bin")).unwrap().modified().unwrap();
    assert_eq!(mtime, std::time::UNIX_EPOCH + Duration::from_secs(1_577_836_800 + 60));
}

#[tokio::test(flavor = "multi_thread")]
async fn proxies_are_used_and_named_when_they_fail() {
    let origin = Origin::start(OriginOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let proxy = format!("http://{}", origin.addr());
    let dead = format!(
        "http://127.0.0.1:{}",
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    );
    // The test origin serves an absolute-form request (`GET http://host/path`) by its path, as a proxy would
    // fetch it: a host name nobody can resolve here is reached through it.
    let url = "http://files.invalid/data/65536/through-proxy.bin";
    let output = run(haul().args(["get", "-q", "--proxy", &proxy, "-d"]).arg(dir.path()).arg(url));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        sha256_of(&dir.path().join("through-proxy.bin")),
        origin.handle().file_sha256(65536, "through-proxy.bin")
    );
    // A proxy that cannot be reached is named, and is not retried.
    let output = run(haul().args(["get", "-q", "--proxy", &dead, "-d"]).arg(dir.path()).arg(url));
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(message.contains(&format!("cannot reach the proxy {dead}")) && !message.contains("gave up"), "{message}");
    // The environment's proxy too, and no_proxy names the hosts reached directly.
    let direct = origin.url(65536, "direct.bin");
    let output = run(haul()
        .args(["get", "-q", "-d"])
        .arg(dir.path())
        .arg(&direct)
        .env("http_proxy", &dead)
        .env_remove("NO_PROXY")
        .env_remove("no_proxy"));
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains(&format!("cannot reach the proxy {dead}")), "{}", stderr(&output));
    let output = run(haul()
        .args(["get", "-q", "-d"])
        .arg(dir.path())
        .arg(&direct)
        .env("http_proxy", &dead)
        .env("no_proxy", "127.0.0.1"));
    assert!(output.status.success(), "{}", stderr(&output));
}

/// A host that describes a file and then drops every GET before a byte: the times those GETs arrived.
fn gets_of_a_host_that_drops_every_get(args: &[&str]) -> (Output, Vec<Instant>) {
    use std::io::{BufRead as _, BufReader, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let gets = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let recorded = gets.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut request = String::new();
            let _ = BufReader::new(&stream).read_line(&mut request);
            if request.starts_with("HEAD") {
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\nAccept-Ranges: bytes\r\nETag: \"x\"\r\nConnection: close\r\n\r\n",
                );
            } else {
                recorded.lock().unwrap().push(Instant::now());
            }
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{port}/dropped.bin");
    let output =
        run(haul().args(["get", "-q", "-c", "1", "--max-tries", "3"]).args(args).arg("-d").arg(dir.path()).arg(url));
    let times = gets.lock().unwrap().clone();
    (output, times)
}

#[test]
fn retry_wait_spaces_the_attempts() {
    let (output, gets) = gets_of_a_host_that_drops_every_get(&["--retry-wait", "1"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("gave up after 3 attempts"), "{}", stderr(&output));
    assert!(gets.len() >= 3, "{} GETs", gets.len());
    for pair in gets.windows(2) {
        assert!(pair[1] - pair[0] >= Duration::from_millis(900), "attempts {:?} apart", pair[1] - pair[0]);
    }
    // Without it, the backoff starts at a quarter of a second.
    let (_, gets) = gets_of_a_host_that_drops_every_get(&[]);
    assert!(gets[1] - gets[0] < Duration::from_millis(900), "first retry after {:?}", gets[1] - gets[0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn input_file_lists_the_urls_as_wget_and_aria2c_take_them() {
    let origin = Origin::start(OriginOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("urls.txt");
    let (a, b) = (origin.url(65536, "a.bin"), origin.url(65536, "b.bin"));
    std::fs::write(&list, format!("# two files\n{a}\n\n   \n{b}\n")).unwrap();
    let out = dir.path().join("out");
    let output = run(haul().args(["get", "-q", "-i"]).arg(&list).arg("-d").arg(&out));
    assert!(output.status.success(), "{}", stderr(&output));
    for name in ["a.bin", "b.bin"] {
        assert_eq!(sha256_of(&out.join(name)), origin.handle().file_sha256(65536, name));
    }
    // From stdin, with a URL on the command line too.
    let c = origin.url(65536, "c.bin");
    let mut child = haul()
        .args(["get", "-q", "-i", "-", "-d"])
        .arg(&out)
        .arg(&c)
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), format!("{}\n", origin.url(65536, "d.bin")).as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(out.join("c.bin").is_file() && out.join("d.bin").is_file());
    // What it cannot take is said with the line.
    std::fs::write(&list, format!("{a}\n  out=x.bin\n")).unwrap();
    let output = run(haul().args(["get", "-i"]).arg(&list).arg("-d").arg(&out));
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("line 2") && stderr(&output).contains("aria2c option"), "{}", stderr(&output));
    std::fs::write(&list, "# nothing\n").unwrap();
    let output = run(haul().args(["get", "-i"]).arg(&list));
    assert!(stderr(&output).contains("no URLs in it"), "{}", stderr(&output));
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_fetch_several_urls_at_once_each_under_a_name_of_its_own() {
    let origin =
        Origin::start(OriginOptions { per_connection_rate: Some(2 * MIB), ..OriginOptions::default() }).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Two of the four are offered under the same name, and start together.
    let files = [(MIB, "same.bin"), (MIB + 1, "same.bin"), (MIB, "c.bin"), (MIB, "d.bin")];
    let urls: Vec<String> = files.iter().map(|(size, name)| origin.url(*size, name)).collect();
    let output = run(haul().args(["get", "-j", "4", "-c", "1", "-d"]).arg(dir.path()).args(&urls));
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(origin.handle().stats().peak_concurrent >= 4, "{:?}", origin.handle().stats());
    assert_eq!(listing(dir.path()), ["c.bin", "d.bin", "same (1).bin", "same.bin"]);
    let mut same: Vec<String> =
        ["same.bin", "same (1).bin"].iter().map(|name| sha256_of(&dir.path().join(name))).collect();
    same.sort();
    let mut expected =
        vec![origin.handle().file_sha256(MIB, "same.bin"), origin.handle().file_sha256(MIB + 1, "same.bin")];
    expected.sort();
    assert_eq!(same, expected);
    assert!(stderr(&output).contains("haul: 4 of 4 saved; 4.0 MiB in"), "{}", stderr(&output));

    // One that fails fails alone; the summary counts it and the exit status says so.
    let missing = format!("{}/no-such-path", origin.base_url());
    let output =
        run(haul().args(["get", "-j", "2", "-d"]).arg(dir.path()).arg(&missing).arg(origin.url(4096, "e.bin")));
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(dir.path().join("e.bin").is_file());
    assert!(stderr(&output).contains("haul: 1 of 2 saved, 1 failed"), "{}", stderr(&output));
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_pauses_every_running_job_and_the_same_command_finishes_them() {
    let size = 8 * MIB;
    let origin =
        Origin::start(OriginOptions { per_connection_rate: Some(MIB), ..OriginOptions::default() }).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let urls = [origin.url(size, "x.bin"), origin.url(size, "y.bin"), origin.url(size, "z.bin")];
    let get = || {
        let mut command = haul();
        command.args(["get", "-j", "2", "-c", "2", "-d"]).arg(dir.path()).args(&urls);
        command
    };
    let mut child = get().stdin(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let records = [dir.path().join("x.bin.part.haul"), dir.path().join("y.bin.part.haul")];
    wait_until("both running jobs to record bytes", || {
        assert!(child.try_wait().unwrap().is_none(), "haul exited before it was interrupted");
        records.iter().all(|record| recorded_bytes(record) > 0)
    })
    .await;
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(text.contains("x.bin at") && text.contains("y.bin at"), "{text}");
    assert!(text.contains("haul: 0 of 3 saved, 2 paused, 1 not started;"), "{text}");
    assert!(!text.contains("; 0 B in"), "the bytes fetched before the pause are counted: {text}");
    assert!(!dir.path().join("z.bin.part").exists(), "the third was never started");

    let output = run(&mut get());
    assert!(output.status.success(), "{}", stderr(&output));
    for name in ["x.bin", "y.bin", "z.bin"] {
        assert_eq!(sha256_of(&dir.path().join(name)), origin.handle().file_sha256(size, name), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cookies_reach_yt_dlp_and_the_streams_of_a_video_page() {
    use haul_test_support::{MediaOptions, MediaSite, codec_types};
    let site = MediaSite::start_with(MediaOptions { cookie: Some("session=s3cret".into()), ..MediaOptions::default() })
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let jar = dir.path().join("cookies.txt");
    let text = "# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t0\tsession\ts3cret\n";
    std::fs::write(&jar, text).unwrap();
    let out = dir.path().join("out");
    // Separate streams: yt-dlp reads the page with the cookies, haul's engine fetches each stream with them.
    let page = site.dash("Members only");
    let output = run(haul().args(["get", "-q", "--cookies"]).arg(&jar).arg("-d").arg(&out).arg(&page));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(listing(&out), ["Members only (1).mp4"]);
    assert_eq!(codec_types(out.join("Members only (1).mp4")), ["video", "audio"]);
    assert_eq!(std::fs::read_to_string(&jar).unwrap(), text, "the user's cookies file is left as it was");
    // HLS goes through yt-dlp's own downloader, which reads the same cookies.
    let output = run(haul().args(["get", "-q", "--cookies"]).arg(&jar).arg("-d").arg(&out).arg(site.hls("Live")));
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(out.join("Live (1).mp4").is_file(), "{:?}", listing(&out));
    // Without them the page is refused and nothing is saved.
    let output = run(haul().args(["get", "--kind", "media", "-d"]).arg(dir.path().join("none")).arg(&page));
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("403"), "{}", stderr(&output));
    let none = dir.path().join("none");
    assert!(!none.exists() || listing(&none).is_empty(), "{:?}", listing(&none));
}

#[tokio::test(flavor = "multi_thread")]
async fn https_trusts_ca_cert_and_ssl_cert_file_and_refuses_bad_certificates_at_once() {
    use haul_test_support::TlsMode;
    let tls = |mode| OriginOptions { tls: Some(mode), ..OriginOptions::default() };
    let origin = Origin::start(tls(TlsMode::Valid)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, origin.ca_pem().unwrap()).unwrap();
    let url = origin.url(MIB, "secure.bin");
    let expected = origin.handle().file_sha256(MIB, "secure.bin");

    // Not trusted: one handshake, the reason, and what fixes it; nothing left behind.
    let refused = dir.path().join("refused");
    let output = run(haul().args(["get", "-d"]).arg(&refused).arg(&url));
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(
            "the TLS certificate of 127.0.0.1 is not valid for it (signed by an authority this machine does not \
             trust, or self-signed); check the URL, or trust the authority that signed it; pass --ca-cert FILE"
        ),
        "{}",
        stderr(&output)
    );
    wait_until("the origin to count the refused handshake", || origin.handle().stats().tls_handshake_failures >= 1)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(origin.handle().stats().tls_handshake_failures, 1, "no retry of a certificate error");
    assert!(!refused.exists() || listing(&refused).is_empty());

    // Trusted by --ca-cert, by SSL_CERT_FILE, or not checked at all with --insecure (which says so).
    for (how, flags, env) in [
        ("--ca-cert", vec!["--ca-cert".to_owned(), ca.display().to_string()], None),
        ("SSL_CERT_FILE", vec![], Some(ca.as_path())),
        ("--insecure", vec!["--insecure".to_owned()], None),
    ] {
        let out = dir.path().join(how.trim_start_matches('-'));
        let mut command = haul();
        command.args(["get", "-d"]).arg(&out).args(&flags).arg(&url);
        if let Some(file) = env {
            command.env("SSL_CERT_FILE", file);
        }
        let output = run(&mut command);
        assert!(output.status.success(), "{how}: {}", stderr(&output));
        assert_eq!(sha256_of(&out.join("secure.bin")), expected, "{how}");
        assert_eq!(stderr(&output).contains("warning: --insecure"), how == "--insecure", "{how}: {}", stderr(&output));
    }

    // A certificate for another name, or signed by nobody, is refused even with the authority trusted.
    for (mode, reason) in
        [(TlsMode::WrongHost, "(issued for another name)"), (TlsMode::SelfSigned, "(signed by an authority")]
    {
        let origin = Origin::start(tls(mode)).await.unwrap();
        let output = run(haul()
            .args(["get", "-d"])
            .arg(dir.path().join("bad"))
            .arg("--ca-cert")
            .arg(&ca)
            .arg(origin.url(10, "x")));
        assert_eq!(output.status.code(), Some(1), "{mode:?}: {}", stderr(&output));
        assert!(stderr(&output).contains(reason), "{mode:?}: {}", stderr(&output));
    }

    // A --ca-cert that is not one says so before anything is fetched.
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello\n").unwrap();
    for (file, message) in [
        (dir.path().join("missing.pem"), "--ca-cert"),
        (not_pem, "no certificate in it (expected -----BEGIN CERTIFICATE----- blocks)"),
    ] {
        let output = run(haul().args(["get", "--ca-cert"]).arg(&file).arg(&url));
        assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
        assert!(
            stderr(&output).contains(message) && stderr(&output).contains(&file.display().to_string()),
            "{}",
            stderr(&output)
        );
    }
}

/// `haul formats` lists what a page offers and what each quality picks; `--quality worst` and a height off the
/// ladder download what it said.
#[tokio::test(flavor = "multi_thread")]
async fn formats_lists_a_pages_formats_and_any_height_or_worst_is_downloaded() {
    use haul_test_support::MediaSite;
    let site = MediaSite::start().await.unwrap();
    let page = site.dash("Choices");
    let output = run(haul().args(["formats", &page]));
    let table = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(table.starts_with("Choices"), "the title first: {table}");
    assert!(table.contains("ID") && table.contains("RESOLUTION") && table.contains("1280x720"), "{table}");
    assert!(table.contains("640x360") && table.contains("audio only"), "{table}");
    let picks: Vec<&str> = table.lines().skip_while(|line| !line.starts_with("haul downloads")).skip(1).collect();
    assert_eq!(picks.len(), 6, "{table}");
    assert!(picks[0].starts_with("  best") && picks[0].contains('+'), "the best is merged: {table}");
    assert!(picks[4].starts_with("  worst"), "{table}");

    let output = run(haul().args(["formats", "--json", &page]));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let heights: Vec<u64> = json["formats"].as_array().unwrap().iter().filter_map(|f| f["height"].as_u64()).collect();
    assert!(heights.contains(&720) && heights.contains(&360), "{json}");

    let dir = tempfile::tempdir().unwrap();
    for (quality, name, height) in [("worst", "worst.mp4", 360), ("240", "under.mp4", 360), ("700p", "near.mp4", 360)] {
        let output = run(haul().current_dir(dir.path()).args(["get", "-q", "--quality", quality, "-o", name, &page]));
        assert!(output.status.success(), "{quality}: {}", stderr(&output));
        let probed = haul_test_support::ffprobe(dir.path().join(name));
        let video = probed["streams"].as_array().unwrap().iter().find(|s| s["codec_type"] == "video").unwrap();
        assert_eq!(video["height"], height, "{quality}: {probed}");
    }
    let output = run(haul().args(["get", "--quality", "hd", &page]));
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("a height such as 720p"), "{}", stderr(&output));
}

/// `haul get --name TEMPLATE` names a video page's file from its fields, made safe; a bad template stops the
/// command before anything is fetched.
#[tokio::test(flavor = "multi_thread")]
async fn get_names_media_files_by_a_template() {
    use haul_test_support::MediaSite;
    let site = MediaSite::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let names = || {
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };
    let output = run(haul().current_dir(dir.path()).args([
        "get",
        "-q",
        "--name",
        "{title} {height}p",
        &site.dash("Named talk"),
    ]));
    assert!(output.status.success(), "{}", stderr(&output));
    let made = names();
    assert_eq!(made.len(), 1, "{made:?}");
    assert!(made[0].starts_with("Named talk") && made[0].ends_with(" 720p.mp4"), "{made:?}");
    let output = run(haul().current_dir(dir.path()).args([
        "get",
        "-q",
        "--audio",
        "--name",
        "[{id}] {title}.{ext}",
        &site.muxed("Named song"),
    ]));
    assert!(output.status.success(), "{}", stderr(&output));
    let made = names();
    assert!(
        made.iter().any(|name| name.starts_with('[') && name.contains("] Named song") && name.ends_with(".m4a")),
        "{made:?}"
    );

    let output = run(haul().current_dir(dir.path()).args(["get", "--name", "../{title}", &site.dash("Escape")]));
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("one file name, not a path"), "{}", stderr(&output));
    let output = run(haul().current_dir(dir.path()).args(["get", "--name", "{views}", &site.dash("Unknown")]));
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("unknown field {views}"), "{}", stderr(&output));
    assert_eq!(names().len(), 2, "nothing fetched for a refused template");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_of_a_playlist_saves_each_chosen_entry() {
    use haul_test_support::{MediaSite, media};
    let site = MediaSite::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pages = [site.muxed("One"), site.muxed("Two"), site.multi("Clips")];
    let feed = site.feed("Mix", &[("One", &pages[0]), ("Two", &pages[1])]);

    // -o names one file: a playlist is refused with what to do instead.
    let output = run(haul().current_dir(dir.path()).args(["get", "-o", "one.mp4", &feed]));
    assert!(!output.status.success());
    assert!(stderr(&output).contains("is a playlist of 2 entries, but -o names one file"), "{}", stderr(&output));

    let output = run(haul().current_dir(dir.path()).args([
        "get",
        "--playlist-items",
        "2",
        "--quality",
        "360p",
        "--name",
        "{playlist_index} {playlist} - {title}",
        &feed,
    ]));
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("playlist Mix: 1 of its 2 entries"), "{}", stderr(&output));
    let saved = dir.path().join("02 Mix - Two.mp4");
    let listed = listing(dir.path());
    let bytes = std::fs::read(&saved).unwrap_or_else(|error| panic!("{error}: {listed:?}"));
    assert_eq!(bytes, site.bytes(media::CLIP_360).unwrap().to_vec());

    // A page of several videos: each is saved, in order.
    let out = dir.path().join("clips");
    let output = run(haul().current_dir(dir.path()).args([
        "get",
        "-q",
        "-d",
        out.to_str().unwrap(),
        "--name",
        "{playlist_index}",
        &pages[2],
    ]));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(std::fs::read(out.join("01.mp4")).unwrap(), site.bytes(media::CLIP_720).unwrap().to_vec());
    assert_eq!(std::fs::read(out.join("02.mp4")).unwrap(), site.bytes(media::CLIP_360).unwrap().to_vec());
}

/// `ffprobe` of `path` with its streams, tags and chapters.
fn probe_all(path: &Path) -> serde_json::Value {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-print_format", "json", "-show_streams", "-show_format", "-show_chapters"])
        .arg(path)
        .output()
        .unwrap();
    assert!(output.status.success(), "ffprobe {}: {}", path.display(), stderr(&output));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// `(codec_type, codec_name)` of each stream, and the height of the first video.
fn streams_of(probe: &serde_json::Value) -> (Vec<(String, String)>, Option<u64>) {
    let streams = probe["streams"].as_array().unwrap();
    let kinds = streams
        .iter()
        .map(|s| (s["codec_type"].as_str().unwrap().to_owned(), s["codec_name"].as_str().unwrap().to_owned()))
        .collect();
    let height = streams.iter().find(|s| s["codec_type"] == "video").and_then(|s| s["height"].as_u64());
    (kinds, height)
}

#[tokio::test(flavor = "multi_thread")]
async fn get_chooses_formats_by_container_codec_and_yt_dlp_selector() {
    use haul_test_support::{MediaOptions, MediaSite};
    let site = MediaSite::start_with(MediaOptions { extras: true, ..MediaOptions::default() }).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let get = |args: &[&str]| run(haul().current_dir(dir.path()).arg("get").arg("-q").args(args));
    let pairs = |list: &[(&str, &str)]| list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>();
    for (flags, file, streams, container, height) in [
        // The page's best without a preference: H.264 at 720 lines, AAC.
        (&[][..], "Plain (1).mp4", &[("video", "h264"), ("audio", "aac")][..], "mov,mp4", 720),
        (&["--vcodec", "vp9"][..], "VP9 (1).mp4", &[("video", "vp9"), ("audio", "aac")][..], "mov,mp4", 360),
        (&["--vcodec", "av1"][..], "AV1 (1).mp4", &[("video", "av1"), ("audio", "aac")][..], "mov,mp4", 360),
        (
            &["--vcodec", "h264", "--quality", "480p"][..],
            "H264 (1).mp4",
            &[("video", "h264"), ("audio", "aac")][..],
            "mov,mp4",
            360,
        ),
        // WebM video and WebM audio, merged into a WebM.
        (&["--prefer", "webm"][..], "WebM (1).webm", &[("video", "vp9"), ("audio", "opus")][..], "matroska,webm", 360),
        (&["--prefer", "mp4"][..], "MP4 (1).mp4", &[("video", "h264"), ("audio", "aac")][..], "mov,mp4", 720),
        // yt-dlp's own selector language, asked of yt-dlp.
        (
            &["--format", "bv*[vcodec^=av01]+ba[acodec=opus]"][..],
            "Selector (1).mp4",
            &[("video", "av1"), ("audio", "opus")][..],
            "mov,mp4",
            360,
        ),
        (&["--format", "h264-360+a1"][..], "Ids (1).mp4", &[("video", "h264"), ("audio", "aac")][..], "mov,mp4", 360),
    ] {
        let title = file.split(" (1)").next().unwrap();
        let output = get(&[flags, &[site.codecs(title).as_str()]].concat());
        assert!(output.status.success(), "{flags:?}: {}", stderr(&output));
        let probe = probe_all(&dir.path().join(file));
        let (kinds, got_height) = streams_of(&probe);
        assert_eq!(kinds, pairs(streams), "{flags:?}: {probe:#}");
        assert!(probe["format"]["format_name"].as_str().unwrap().starts_with(container), "{flags:?}: {probe:#}");
        assert_eq!(got_height, Some(height), "{flags:?}");
    }

    // A selector yt-dlp cannot parse: its message, exit code 2, and the page never asked for.
    let page = site.codecs("Bad");
    let output = get(&["--format", "bv*[height<=720", &page]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("Invalid format specification"), "{}", stderr(&output));
    assert_eq!(site.requests(&page), 0);
    let output = get(&["--format", "best[height<=abc]", &page]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("Invalid filter specification 'height<=abc'"), "{}", stderr(&output));
    // Several downloads at once, or with the quality ladder: refused by the command line.
    for flags in [&["--format", "137,140"][..], &["--format", "b", "--quality", "720p"][..], &["--subs", "../../x"][..]]
    {
        let output = get(&[flags, &[page.as_str()]].concat());
        assert_eq!(output.status.code(), Some(2), "{flags:?}: {}", stderr(&output));
    }
    // A selector the page has nothing for: yt-dlp's words, and nothing saved.
    let output = get(&["--format", "bv*[height>=2000]+ba", &page]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("Requested format is not available"), "{}", stderr(&output));
    assert!(!dir.path().join("Bad (1).mp4").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn get_saves_subtitles_and_embeds_metadata_when_asked() {
    use haul_test_support::media::{CLIP_360, SUBS_DE, SUBS_EN, UPLOADER};
    use haul_test_support::{MediaOptions, MediaSite};
    let site = MediaSite::start_with(MediaOptions { extras: true, ..MediaOptions::default() }).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let get = |args: &[&str]| {
        let output = run(haul().current_dir(dir.path()).arg("get").arg("-q").args(args));
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
    };

    // Subtitles beside the video, named after it, byte for byte the page's tracks.
    get(&["--subs", "en,de", &site.codecs("Talk")]);
    assert_eq!(std::fs::read(dir.path().join("Talk (1).en.vtt")).unwrap(), site.bytes(SUBS_EN).unwrap());
    assert_eq!(std::fs::read(dir.path().join("Talk (1).de.vtt")).unwrap(), site.bytes(SUBS_DE).unwrap());
    // And in the file, with -o naming both.
    get(&["--subs", "en", "--embed-subs", "-o", "embedded.mp4", &site.codecs("Embedded")]);
    assert!(dir.path().join("embedded.en.vtt").exists());
    let probe = probe_all(&dir.path().join("embedded.mp4"));
    let subtitle =
        probe["streams"].as_array().unwrap().iter().find(|s| s["codec_type"] == "subtitle").expect("a subtitle stream");
    assert_eq!((&subtitle["codec_name"], &subtitle["tags"]["language"]), (&"mov_text".into(), &"eng".into()));

    // Metadata is off by default: the file as the site serves it.
    get(&["-o", "plain.mp4", &site.chapters("A talk")]);
    assert_eq!(std::fs::read(dir.path().join("plain.mp4")).unwrap(), site.bytes(CLIP_360).unwrap());
    // --embed-metadata: title, artist, date, chapters and the thumbnail as cover art, read back with ffprobe.
    get(&["--embed-metadata", "-o", "tagged.mp4", &site.chapters("A talk")]);
    let probe = probe_all(&dir.path().join("tagged.mp4"));
    let tags = &probe["format"]["tags"];
    assert_eq!(
        (&tags["title"], &tags["artist"], &tags["date"]),
        (&"A talk".into(), &UPLOADER.into(), &"2026-11-30".into())
    );
    let chapters: Vec<&str> =
        probe["chapters"].as_array().unwrap().iter().map(|c| c["tags"]["title"].as_str().unwrap()).collect();
    assert_eq!(chapters, ["Intro", "Main"], "{probe:#}");
    let cover =
        probe["streams"].as_array().unwrap().iter().find(|s| s["disposition"]["attached_pic"] == 1).expect("cover art");
    assert_eq!((&cover["codec_name"], &cover["width"]), (&"mjpeg".into(), &320.into()));
    // The audio alone takes the same tags and cover (m4a).
    get(&["--audio", "--embed-metadata", "-o", "tagged.m4a", &site.chapters("A talk")]);
    let probe = probe_all(&dir.path().join("tagged.m4a"));
    assert_eq!(probe["format"]["tags"]["artist"], UPLOADER);
    assert!(probe["streams"].as_array().unwrap().iter().any(|s| s["disposition"]["attached_pic"] == 1), "{probe:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn subtitle_languages_from_a_page_cannot_leave_the_directory() {
    use haul_test_support::{MediaOptions, MediaSite};
    let site = MediaSite::start_with(MediaOptions { extras: true, ..MediaOptions::default() }).await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("a").join("b");
    std::fs::create_dir_all(&dir).unwrap();
    let output = run(haul().current_dir(&dir).args(["get", "-q", "--subs", "all", &site.hostile_subs("Hostile")]));
    assert!(output.status.success(), "{}", stderr(&output));
    let names = listing(&dir);
    // `../../x` and `..\..\a` DEL TAB `b`: one safe name each, beside the video.
    assert_eq!(names, ["Hostile (1).ab.vtt", "Hostile (1).mp4", "Hostile (1).x.vtt"], "{names:?}");
    assert_eq!(listing(&root.path().join("a")), ["b"]);
    assert_eq!(listing(root.path()), ["a"]);
}
