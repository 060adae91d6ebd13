//! The client commands (`haul add`, `ls`, `pause`, `resume`, `rm`) as a user runs them: the real binary against
//! a real server (engine, SQLite store, API router) served in-process on loopback, with a real origin.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use haul_api::testing::TestServer;
use haul_test_support::{Origin, OriginOptions};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};

const TOKEN: &str = "client-test-token-0123456789";
const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// A server under test, with everything it needs kept alive.
struct Server {
    base: String,
    origin: Origin,
    http: reqwest::Client,
    server: TestServer,
}

impl Server {
    async fn start(origin_options: OriginOptions) -> Self {
        let server = TestServer::start(TOKEN, 3).await;
        let origin = Origin::start(origin_options).await.unwrap();
        Self { base: server.base.clone(), origin, http: reqwest::Client::new(), server }
    }

    /// `haul ARGS --host <this server> --token <its token>`.
    async fn haul(&self, args: &[&str]) -> Output {
        let mut full: Vec<&str> = args.to_vec();
        full.extend(["--host", &self.base, "--token", TOKEN]);
        run(&full, self.server.dir.path(), None).await
    }

    /// `haul ARGS` succeeding; its stdout.
    async fn ok(&self, args: &[&str]) -> String {
        let output = self.haul(args).await;
        assert!(output.status.success(), "haul {args:?} failed: {}", stderr(&output));
        stdout(&output)
    }

    /// The download as the API shows it.
    async fn job(&self, id: &str) -> Value {
        let response =
            self.http.get(format!("{}/v1/downloads/{id}", self.base)).bearer_auth(TOKEN).send().await.unwrap();
        response.json().await.unwrap()
    }

    async fn ids(&self) -> Vec<String> {
        let response = self.http.get(format!("{}/v1/downloads", self.base)).bearer_auth(TOKEN).send().await.unwrap();
        let list: Value = response.json().await.unwrap();
        list["downloads"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap().to_owned()).collect()
    }

    /// Polls until the download is in `state`; the deadline only bounds a hung test.
    async fn wait_for(&self, id: &str, state: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let job = self.job(id).await;
            if job["state"] == state {
                return job;
            }
            assert_ne!(job["state"], "failed", "download failed while waiting for {state}: {job}");
            assert!(Instant::now() < deadline, "gave up waiting for download {id} to be {state}; it is: {job}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls until the download is in one of `states`, whatever it passes through.
    async fn wait_for_any(&self, id: &str, states: &[&str]) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let job = self.job(id).await;
            if states.iter().any(|state| job["state"] == *state) {
                return job;
            }
            assert!(Instant::now() < deadline, "gave up waiting for download {id} to be {states:?}; it is: {job}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `haul add --paused URL`: its ID.
    async fn add_paused(&self, name: &str) -> String {
        let url = self.origin.url(MIB, name);
        let id = self.ok(&["add", "--paused", &url]).await.trim().to_owned();
        assert_eq!(id.len(), 36, "add prints the ID: {id:?}");
        id
    }
}

/// Runs the binary with a clean environment (no HAUL_* variables, `cwd` as the home directory) in `cwd`.
async fn run(args: &[&str], cwd: &Path, stdin: Option<&str>) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_haul"));
    command.args(args).current_dir(cwd).stdout(Stdio::piped()).stderr(Stdio::piped());
    for variable in ["HAUL_HOST", "HAUL_TOKEN", "HAUL_DATA_DIR", "HAUL_LOG", "RUST_LOG", "XDG_DATA_HOME"] {
        command.env_remove(variable);
    }
    command.env("HOME", cwd);
    command.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = command.spawn().unwrap();
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(text.as_bytes()).await.unwrap();
        drop(pipe);
    }
    tokio::time::timeout(Duration::from_secs(60), child.wait_with_output()).await.expect("haul timed out").unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Exit code 1 and this text on stderr.
fn assert_fails_with(output: &Output, text: &str) {
    assert_eq!(output.status.code(), Some(1), "stdout: {} stderr: {}", stdout(output), stderr(output));
    assert!(stderr(output).contains(text), "expected {text:?} in stderr: {}", stderr(output));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_then_list_as_table_json_and_by_prefix() {
    let server = Server::start(OriginOptions::default()).await;
    let url = server.origin.url(MIB, "one.bin");
    let id = server.ok(&["add", "--paused", "-o", "chosen.bin", "--priority", "-2", &url]).await.trim().to_owned();
    let job = server.job(&id).await;
    assert_eq!(job["state"], "paused", "{job}");
    assert_eq!(job["filename"], "chosen.bin");
    assert_eq!(job["priority"], -2);

    let table = server.ok(&["ls"]).await;
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    for column in ["ID", "STATE", "PROGRESS", "SIZE", "SPEED", "NAME"] {
        assert!(lines[0].contains(column), "{table}");
    }
    assert!(lines[1].starts_with(&format!("{}  paused", &id[..8])), "{table}");
    assert!(lines[1].ends_with("chosen.bin"), "{table}");

    let list: Value = serde_json::from_str(&server.ok(&["ls", "--json"]).await).unwrap();
    assert_eq!(list["total"], 1);
    assert_eq!(list["downloads"][0]["id"], id.as_str());

    // Filtered by state: none is active.
    let list: Value = serde_json::from_str(&server.ok(&["ls", "--json", "--state", "active"]).await).unwrap();
    assert_eq!(list["downloads"].as_array().unwrap().len(), 0, "{list}");

    // One download by a prefix of its ID, as fields and as JSON.
    let detail = server.ok(&["ls", &id[..6]]).await;
    assert!(detail.contains(&id) && detail.contains(&url) && detail.contains("paused"), "{detail}");
    let one: Value = serde_json::from_str(&server.ok(&["ls", "--json", &id[..6]]).await).unwrap();
    assert_eq!(one["id"], id.as_str());

    // The default data directory (~/.local/share/haul) has no token file here, and the message says where it
    // looked.
    let output = run(&["ls", "--host", &server.base], server.server.dir.path(), None).await;
    assert_fails_with(&output, "no API token: pass --token, set HAUL_TOKEN");
    let looked = server.server.dir.path().join(".local/share/haul/token");
    assert!(stderr(&output).contains(&looked.display().to_string()), "{}", stderr(&output));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_from_batch_file_and_stdin() {
    let server = Server::start(OriginOptions::default()).await;
    let batch = server.server.dir.path().join("urls.txt");
    let (a, b) = (server.origin.url(MIB, "a.bin"), server.origin.url(MIB, "b.bin"));
    std::fs::write(&batch, format!("# my list\n\n{a}\n   # indented comment\n  {b}  \n\n")).unwrap();
    let output = server.ok(&["add", "--paused", "--json", "--batch", batch.to_str().unwrap()]).await;
    let created: Value = serde_json::from_str(&output).unwrap();
    let urls: Vec<&str> = created.as_array().unwrap().iter().map(|job| job["url"].as_str().unwrap()).collect();
    assert_eq!(urls, [a.as_str(), b.as_str()]);

    let c = server.origin.url(MIB, "c.bin");
    let mut args = vec!["add", "--paused", "-i", "-"];
    args.extend(["--host", &server.base, "--token", TOKEN]);
    let output = run(&args, server.server.dir.path(), Some(&format!("{c}\n# done\n"))).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let id = stdout(&output).trim().to_owned();
    assert_eq!(server.job(&id).await["url"], c.as_str());
    assert_eq!(server.ids().await.len(), 3);

    // A bad URL fails alone; the good one is still added, and the exit code says something failed.
    let good = server.origin.url(MIB, "d.bin");
    let output = server.haul(&["add", "--paused", "ftp://example.com/x", &good]).await;
    assert_fails_with(&output, "haul: error: ftp://example.com/x: ");
    assert_eq!(stdout(&output).lines().count(), 1, "{}", stdout(&output));
    assert_eq!(server.ids().await.len(), 4);
    // -q: nothing printed, the download made all the same.
    let output = server.haul(&["add", "-q", "--paused", &server.origin.url(MIB, "e.bin")]).await;
    assert!(output.status.success() && stdout(&output).is_empty(), "{}", stderr(&output));
    assert_eq!(server.ids().await.len(), 5);

    // Flags that name one file refuse several URLs before anything is sent.
    let output = server.haul(&["add", "-o", "x.bin", &a, &b]).await;
    assert_fails_with(&output, "-o/--filename applies to one file");
    assert_eq!(server.ids().await.len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume_by_prefix_and_all() {
    // A slow origin keeps resumed downloads running for the whole test.
    let server = Server::start(OriginOptions { aggregate_rate: Some(256 * KIB), ..OriginOptions::default() }).await;
    let first = server.add_paused("first.bin").await;
    let second = server.add_paused("second.bin").await;

    let output = server.ok(&["resume", &first[..8]]).await;
    assert!(output.starts_with(&format!("resumed {}", &first[..8])), "{output}");
    assert_ne!(server.job(&first).await["state"], "paused");
    assert_eq!(server.job(&second).await["state"], "paused");

    server.ok(&["pause", &first[..8]]).await;
    assert_eq!(server.job(&first).await["state"], "paused");

    // Pausing a paused download is the server's 409, with its message.
    let output = server.haul(&["pause", &first]).await;
    assert_fails_with(&output, &format!("haul: error: {first}: cannot pause a download that is paused"));

    let output = server.ok(&["resume", "--all"]).await;
    assert_eq!(output.lines().count(), 2, "{output}");
    for id in [&first, &second] {
        assert_ne!(server.job(id).await["state"], "paused");
    }
    let output = server.ok(&["pause", "--all"]).await;
    assert_eq!(output.lines().count(), 2, "{output}");
    for id in [&first, &second] {
        assert_eq!(server.job(id).await["state"], "paused");
    }
    // Nothing left to pause is not an error.
    let output = server.haul(&["pause", "--all"]).await;
    assert!(output.status.success() && stderr(&output).contains("nothing to pause"), "{}", stderr(&output));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rm_keeps_or_deletes_the_finished_file() {
    let server = Server::start(OriginOptions::default()).await;
    let kept = server.ok(&["add", &server.origin.url(MIB, "kept.bin")]).await.trim().to_owned();
    let gone = server.ok(&["add", &server.origin.url(MIB, "gone.bin")]).await.trim().to_owned();
    server.wait_for(&kept, "completed").await;
    server.wait_for(&gone, "completed").await;
    let (kept_file, gone_file) =
        (server.server.downloads_dir.join("kept.bin"), server.server.downloads_dir.join("gone.bin"));
    assert!(kept_file.is_file() && gone_file.is_file());

    let output = server.ok(&["rm", &kept[..8]]).await;
    assert!(output.contains("removed") && output.contains("kept.bin"), "{output}");
    assert!(kept_file.is_file(), "rm without --delete-files keeps the file");

    server.ok(&["rm", "--delete-files", &gone[..8]]).await;
    assert!(!gone_file.exists(), "rm --delete-files deletes the file");
    assert!(server.ids().await.is_empty());

    // rm needs IDs or --all; --all with nothing left says so.
    let output = server.haul(&["rm"]).await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let output = server.haul(&["rm", "--all"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stderr(&output).contains("nothing to remove"), "{}", stderr(&output));
}

/// Housekeeping: `rm --all --state completed --older-than AGE` removes the completed downloads that ended longer
/// ago than AGE, and nothing else; a bad age is refused with an example.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rm_older_than_removes_only_what_ended_long_enough_ago() {
    let server = Server::start(OriginOptions::default()).await;
    let old = server.ok(&["add", &server.origin.url(MIB, "old.bin")]).await.trim().to_owned();
    server.wait_for(&old, "completed").await;
    let waiting = server.add_paused("waiting.bin").await;
    let output = server.ok(&["rm", "--all", "--state", "completed", "--older-than", "1h"]).await;
    assert!(!output.contains("removed"), "nothing ended an hour ago: {output}");
    assert_eq!(server.ids().await.len(), 2);

    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let output = server.ok(&["rm", "--all", "--state", "completed", "--older-than", "1s"]).await;
    assert!(output.contains("removed") && output.contains("old.bin"), "{output}");
    assert_eq!(server.ids().await, vec![waiting.clone()], "the paused one stays");

    let output = server.haul(&["rm", "--all", "--older-than", "a week"]).await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("like 7d"), "{}", stderr(&output));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_ambiguous_prefixes_are_errors() {
    let server = Server::start(OriginOptions::default()).await;
    // Add until two IDs share their first character (at most 17 by pigeonhole; usually a handful).
    let mut ids: Vec<String> = Vec::new();
    let (one, other) = loop {
        let id = server.add_paused(&format!("f{}.bin", ids.len())).await;
        if let Some(twin) = ids.iter().find(|known| known[..1] == id[..1]) {
            break (twin.clone(), id);
        }
        ids.push(id);
    };

    let output = server.haul(&["pause", &one[..1]]).await;
    assert_fails_with(&output, &format!("haul: error: {}: ID prefix is ambiguous", &one[..1]));
    assert!(stderr(&output).contains(&one) && stderr(&output).contains(&other), "{}", stderr(&output));

    let output = server.haul(&["ls", "zz"]).await;
    assert_fails_with(&output, "haul: error: zz: no download matches ID");

    // A bad ID fails alone: the good one is still acted on.
    let output = server.haul(&["resume", "nope", &other[..10]]).await;
    assert_fails_with(&output, "haul: error: nope: no download matches ID");
    assert!(stdout(&output).contains(&other[..8]), "{}", stdout(&output));
    assert_ne!(server.job(&other).await["state"], "paused");

    // A whole ID that does not exist is the server's 404.
    let output = server.haul(&["rm", "00000000-0000-4000-8000-000000000000"]).await;
    assert_fails_with(&output, "haul: error: 00000000-0000-4000-8000-000000000000: ");
    assert!(stderr(&output).contains("not found"), "{}", stderr(&output));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_errors_and_token_file() {
    let server = Server::start(OriginOptions::default()).await;

    let output = run(&["ls", "--host", &server.base, "--token", "wrong"], server.server.dir.path(), None).await;
    assert_fails_with(&output, "haul: error: invalid token");

    // The token file of a data directory, whitespace trimmed.
    let data_dir = server.server.dir.path().join("data");
    std::fs::create_dir(&data_dir).unwrap();
    std::fs::write(data_dir.join("token"), format!("  {TOKEN}\n")).unwrap();
    let args = ["ls", "--host", &server.base, "--data-dir", data_dir.to_str().unwrap()];
    let output = run(&args, server.server.dir.path(), None).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "no downloads\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_not_running() {
    let dir = tempfile::tempdir().unwrap();
    // A port that was free a moment ago and has nobody listening now.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let host = format!("http://127.0.0.1:{port}");
    for args in [vec!["ls"], vec!["add", "http://example.com/x"], vec!["pause", "abc"], vec!["rm", "abc"]] {
        let mut args = args;
        args.extend(["--host", &host, "--token", "t"]);
        let output = run(&args, dir.path(), None).await;
        assert_fails_with(&output, &format!("cannot reach the haul server at {host}: is `haul serve` running?"));
        assert_eq!(stderr(&output).lines().count(), 1, "one line, not one per ID: {}", stderr(&output));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn add_a_video_page_with_a_quality_or_the_audio() {
    use haul_test_support::{MediaSite, codec_types};
    let server = Server::start(OriginOptions::default()).await;
    let site = MediaSite::start().await.unwrap();
    let video = server.ok(&["add", "--quality", "480p", &site.muxed("Lecture")]).await.trim().to_owned();
    // The file as the site serves it: the sound alone, no cover art (a server embeds metadata by default).
    let audio =
        server.ok(&["add", "--audio", "--no-embed-metadata", &site.dash("Lecture audio")]).await.trim().to_owned();
    let (video_job, audio_job) =
        (server.wait_for(&video, "completed").await, server.wait_for(&audio, "completed").await);
    assert_eq!((video_job["kind"].as_str(), video_job["quality"].as_str()), (Some("media"), Some("480p")));
    assert_eq!(audio_job["quality"], "audio");
    let downloads = server.server.downloads_dir.clone();
    assert_eq!(codec_types(downloads.join(audio_job["path"].as_str().unwrap())), ["audio"]);
    assert_eq!(audio_job["media_options"]["embed_metadata"], false, "{audio_job:#}");
    // The video took the server's default: its title is in the file.
    let probe = haul_test_support::ffprobe(downloads.join(video_job["path"].as_str().unwrap()));
    assert_eq!(probe["format"]["tags"]["title"], "Lecture (1)", "{probe:#}");

    // The detail view says what was fetched.
    let shown = server.ok(&["ls", &video]).await;
    assert!(shown.contains("media (480p), 640x360") && shown.contains("formats 360p"), "{shown}");
    assert!(shown.lines().any(|line| line.starts_with("title") && line.contains("Lecture")), "{shown}");

    // --audio and --quality are one choice; audio is not a --quality.
    for args in
        [&["add", "--audio", "--quality", "720p", "http://h/x"][..], &["add", "--quality", "audio", "http://h/x"]]
    {
        let output = server.haul(args).await;
        assert!(!output.status.success(), "{args:?} was accepted");
    }
    let output = server.haul(&["add", "--quality", "audio", "http://h/x"]).await;
    assert!(stderr(&output).contains("use --audio"), "{}", stderr(&output));

    // The media choices reach the server as given, and a selector yt-dlp cannot parse is refused in its words.
    let output = server
        .haul(&["add", "--json", "--prefer", "webm", "--vcodec", "vp9", "--subs", "en,de", "--paused", "http://h/x"])
        .await;
    assert!(output.status.success(), "{}", stderr(&output));
    let added: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    let options = &added[0]["media_options"];
    assert_eq!(
        (&options["prefer"], &options["vcodec"], &options["subtitles"], &options["embed_metadata"]),
        (&json!("webm"), &json!("vp9"), &json!(["en", "de"]), &json!(true)),
        "{added:#}"
    );
    assert_fails_with(
        &server.haul(&["add", "--format", "bv*[height<=720", "http://h/x"]).await,
        "Invalid format specification",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_a_playlist_with_chosen_items_and_list_its_entries() {
    use haul_test_support::MediaSite;
    let server = Server::start(OriginOptions::default()).await;
    let site = MediaSite::start().await.unwrap();
    let pages = [site.muxed("Talk one"), site.muxed("Talk two"), site.muxed("Talk three")];
    let feed = site.feed("Talks", &[("Talk one", &pages[0]), ("Talk two", &pages[1]), ("Talk three", &pages[2])]);

    let output = server.haul(&["add", "--playlist-items", "2-1", &feed]).await;
    assert_eq!(output.status.code(), Some(2), "a selection that does not parse stops the command: {output:?}");
    assert!(stderr(&output).contains("`2-1` ends before it starts"), "{}", stderr(&output));
    let output = server.haul(&["add", "--kind", "playlist", &feed]).await;
    assert!(stderr(&output).contains("use auto or media"), "{}", stderr(&output));

    let id = server.ok(&["add", "--playlist-items", "2-", &feed]).await.trim().to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    let playlist = loop {
        let job = server.job(&id).await;
        if job["state"] == "completed" {
            break job;
        }
        assert_ne!(job["state"], "failed", "{job}");
        assert!(Instant::now() < deadline, "the playlist never completed: {job}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(playlist["playlist"]["entries"], 2, "{playlist}");

    let shown = server.ok(&["ls", &id[..8]]).await;
    let line = shown.lines().find(|line| line.starts_with("playlist")).unwrap_or_else(|| panic!("{shown}"));
    assert!(line.contains("2 entries: 2 completed") && line.contains("(items 2-)"), "{line}");
    let entries = server.ok(&["ls", "--parent", &id[..8]]).await;
    assert!(
        entries.contains("Talk two") && entries.contains("Talk three") && !entries.contains("Talk one"),
        "{entries}"
    );
    let listed: Value = serde_json::from_str(&server.ok(&["ls", "--parent", &id, "--json"]).await).unwrap();
    let indexes: Vec<&Value> = listed["downloads"].as_array().unwrap().iter().map(|d| &d["playlist_index"]).collect();
    assert_eq!(indexes.len(), 2, "{listed}");
    let entry = listed["downloads"][0]["id"].as_str().unwrap();
    let shown = server.ok(&["ls", entry]).await;
    assert!(shown.contains(&format!("of {id}")), "an entry names its playlist: {shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_redraws_until_ctrl_c_or_sigterm() {
    let server = Server::start(OriginOptions::default()).await;
    let id = server.add_paused("watched.bin").await;
    for signal in ["-INT", "-TERM"] {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_haul"));
        command.args(["ls", "--watch", "--host", &server.base, "--token", TOKEN]);
        command.current_dir(server.server.dir.path()).stdin(Stdio::null()).stdout(Stdio::piped());
        let mut child = command.env_remove("HAUL_LOG").env_remove("RUST_LOG").spawn().unwrap();
        // A pipe gets one table after another. The second one is drawn after the first wait, by which time the
        // signal handlers are installed, so the signal is sure to be caught rather than end the process.
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let mut tables = 0;
        while tables < 2 {
            let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
                .await
                .expect("gave up waiting for ls --watch to draw its table twice")
                .unwrap()
                .expect("ls --watch stopped before it was interrupted");
            if line.starts_with(&id[..8]) {
                assert!(line.contains("paused") && line.ends_with("watched.bin"), "{line}");
                tables += 1;
            }
        }
        let pid = child.id().unwrap().to_string();
        assert!(std::process::Command::new("kill").args([signal, &pid]).status().unwrap().success());
        let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
            .await
            .expect("ls --watch did not stop on a signal")
            .unwrap();
        assert!(status.success(), "ls --watch after kill {signal}: {status:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_download_shows_why_takes_a_new_url_and_is_retried_then_rm_all_by_state() {
    let server = Server::start(OriginOptions::default()).await;
    let broken = server.origin.url(MIB, "gone.bin").replace("/data/", "/nothing/");
    let id = server.ok(&["add", &broken]).await.trim().to_owned();
    let failed = server.wait_for_any(&id, &["failed"]).await;
    let reason = failed["error"].as_str().unwrap().to_owned();

    // The table says why, after the name, and has an ETA column.
    let table = server.ok(&["ls"]).await;
    let header = table.lines().next().unwrap();
    assert!(header.contains("ETA"), "{table}");
    let row = table.lines().find(|line| line.starts_with(&id[..8])).unwrap();
    assert!(row.contains("failed") && row.contains(&format!("({reason})")), "{row}");

    // A new URL for the failed download, then retry: it completes from the new origin.
    let good = server.origin.url(MIB, "gone.bin");
    let changed = server.ok(&["set", &id[..8], "--url", &good]).await;
    assert!(changed.starts_with(&format!("changed {}", &id[..8])), "{changed}");
    assert_eq!(server.job(&id).await["url"], good.as_str());
    server.ok(&["retry", &id[..8]]).await;
    server.wait_for(&id, "completed").await;
    // A new URL is refused while the download is not paused or failed, with the server's reason.
    let output = server.haul(&["set", &id[..8], "--url", &broken]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("pause it first"), "{}", stderr(&output));
    server.ok(&["set", &id[..8], "--priority", "-3"]).await;
    assert_eq!(server.job(&id).await["priority"], -3);
    let output = server.haul(&["set", &id[..8]]).await;
    assert_eq!(output.status.code(), Some(2), "set needs --url or --priority");

    // rm --all --state removes only that state.
    let paused = server.add_paused("keep.bin").await;
    let removed = server.ok(&["rm", "--all", "--state", "completed"]).await;
    assert!(removed.contains(&id[..8]) && !removed.contains(&paused[..8]), "{removed}");
    assert_eq!(server.ids().await, vec![paused]);
    let output = server.haul(&["rm", "--state", "paused"]).await;
    assert_eq!(output.status.code(), Some(2), "--state needs --all");
    server.ok(&["rm", "--all"]).await;
    assert!(server.ids().await.is_empty());
}
