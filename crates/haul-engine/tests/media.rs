//! Page readings (`yt-dlp -J`) handed out again: the real yt-dlp on pages a [`MediaSite`] generates, through the
//! service (behind the guard proxy, as a server runs it) and through `get_media` (as `haul get` runs it). Whether
//! yt-dlp ran is told by the site's request counts for the page: each reading GETs it once. And a media job's
//! choices (container, codec, metadata) surviving a restart of the service.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use haul_core::job::{AccountId, DownloadId, JobKind, JobState};
use haul_core::media::Quality;
use haul_core::media_choice::{Container, MediaChoice};
use haul_engine::service::{AddRequest, DownloadView, Engine, EngineOptions};
use haul_engine::{
    CancellationToken, ClientOptions, DestinationPolicy, EngineError, GotMedia, HttpClient, MediaRequest, MediaTools,
    Progress,
};
use haul_test_support::media::CLIP_720;
use haul_test_support::{MediaOptions, MediaSite, missing_tools};

/// How long a job may take; only a hung one reaches it.
const TIMEOUT: Duration = Duration::from_secs(60);

fn tools() -> MediaTools {
    let missing = missing_tools();
    assert!(missing.is_empty(), "the media tests need {} on PATH", missing.join(", "));
    MediaTools::discover(None, None, std::env::var_os("PATH").as_deref()).expect("look up the media tools")
}

/// GETs of `page` (yt-dlp's readings; the look at whether a URL is a page is a HEAD).
fn readings(site: &MediaSite, page: &str) -> u64 {
    let stats = site.stats(page);
    stats.requests - stats.head_requests
}

struct Service {
    engine: Engine,
    _dir: tempfile::TempDir,
}

/// A server's engine that may reach loopback only through its `--allow-net`, so yt-dlp runs behind the guard
/// proxy.
async fn service() -> Service {
    let dir = tempfile::tempdir().unwrap();
    Service { engine: engine_in(dir.path()).await, _dir: dir }
}

/// The engine of [`service`] on the data directory `dir` (opened again after a stop, it is a restart).
async fn engine_in(dir: &Path) -> Engine {
    let database = format!("sqlite://{}", dir.join("haul.db").display());
    let loopback = "127.0.0.1/32".parse().unwrap();
    let options = EngineOptions {
        downloads_dir: dir.join("downloads"),
        thumbnails_dir: dir.join("thumbnails"),
        max_active: 3,
        max_jobs_per_account: 100,
        max_playlist_entries: 1000,
        node: "test-node".into(),
        lease: Duration::from_secs(30),
        resume_on_start: true,
        advertise_url: None,
        client: ClientOptions {
            destinations: DestinationPolicy::public_only(vec![loopback]),
            ..ClientOptions::default()
        },
        media: tools(),
        bandwidth: Default::default(),
        clock: Default::default(),
        retention: None,
        webhooks: haul_engine::service::WebhookOptions::default(),
    };
    Engine::open(&database, options).await.unwrap()
}

impl Service {
    async fn finished(&self, account: &AccountId, id: DownloadId) -> DownloadView {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let view = self.engine.get(account, id).await.unwrap();
            if matches!(view.state, JobState::Completed | JobState::Failed) {
                return view;
            }
            assert!(Instant::now() < deadline, "the download is still {} ({:?})", view.state, view.error);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn download(&self, account: &AccountId, request: AddRequest) -> DownloadView {
        let added = self.engine.add(account, request).await.unwrap();
        self.finished(account, added.id).await
    }
}

/// A Netscape cookies.txt with `session=value` for 127.0.0.1.
fn cookies(value: &str) -> String {
    format!("# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t0\tsession\t{value}\n")
}

fn same_file(path: &Path, site: &MediaSite, name: &str) -> bool {
    std::fs::read(path).unwrap() == site.bytes(name).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_then_download_reads_the_page_once() {
    let (service, site) = tokio::join!(service(), MediaSite::start());
    let site = site.unwrap();
    let page = site.muxed("Once");
    let account = AccountId::generate();

    let info = service.engine.media_info(&page).await.unwrap();
    assert_eq!(info.title.as_deref(), Some("Once (1)"), "the generic extractor's title of the page's first video");
    assert_eq!(readings(&site, &page), 1);
    // Asked again, and twice at once: the same answer, from the same reading.
    let again = service.engine.media_info(&page).await.unwrap();
    let (one, two) = tokio::join!(service.engine.media_info(&page), service.engine.media_info(&page));
    for other in [again, one.unwrap(), two.unwrap()] {
        assert_eq!((&other.title, other.formats.len()), (&info.title, info.formats.len()));
    }
    assert_eq!(readings(&site, &page), 1);

    // The yt-dlp web app's /api/info then /api/download: the job decides the page is a video from that reading.
    let request = AddRequest { url: page.clone(), ..AddRequest::default() };
    let done = service.download(&account, request).await;
    assert_eq!(done.state, JobState::Completed, "{:?}", done.error);
    assert_eq!(done.kind, JobKind::Media);
    let path = service.engine.file_path(&done).await.unwrap();
    assert!(same_file(&path, &site, CLIP_720), "the best format, byte for byte");
    assert_eq!(readings(&site, &page), 1, "yt-dlp read the page once");

    // Another page is read on its own.
    let other = site.muxed("Other");
    service.engine.media_info(&other).await.unwrap();
    assert_eq!((readings(&site, &page), readings(&site, &other)), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reading_made_with_a_login_is_not_handed_to_another_login() {
    let options = MediaOptions { cookie: Some("session=alice".into()), ..MediaOptions::default() };
    let (service, site) = tokio::join!(service(), MediaSite::start_with(options));
    let site = site.unwrap();
    let page = site.muxed("Members only");
    let (alice, mallory) = (AccountId::generate(), AccountId::generate());
    let with_cookie = |value: &str| AddRequest {
        url: page.clone(),
        kind: Some(JobKind::Media),
        headers: vec![("Cookie".into(), format!("session={value}"))],
        ..AddRequest::default()
    };

    let done = service.download(&alice, with_cookie("alice")).await;
    assert_eq!(done.state, JobState::Completed, "{:?}", done.error);
    assert_eq!(readings(&site, &page), 1);

    // Another login (another account's, or none) is not given alice's reading: yt-dlp reads the page with it,
    // and the site refuses it.
    for (account, request) in [
        (&mallory, with_cookie("mallory")),
        (&mallory, AddRequest { headers: Vec::new(), ..with_cookie("") }),
        (&alice, with_cookie("guess")),
    ] {
        let before = readings(&site, &page);
        let failed = service.download(account, request.clone()).await;
        assert_eq!(failed.state, JobState::Failed, "{request:?}");
        assert!(failed.error.as_deref().unwrap_or_default().contains("403"), "{:?}", failed.error);
        assert_eq!(readings(&site, &page), before + 1, "{request:?}: yt-dlp read the page itself");
    }
    let info = service.engine.media_info(&page).await;
    assert!(info.is_err(), "a request without the login is refused: {info:?}");

    // The same login again is the same reading.
    let before = readings(&site, &page);
    let again = service.download(&alice, with_cookie("alice")).await;
    assert_eq!(again.state, JobState::Completed, "{:?}", again.error);
    assert_eq!(readings(&site, &page), before);
}

/// `haul get` of a page: a run that succeeded leaves its reading for the next; a failed run forgets it, so the
/// next one reads the page again; other cookies (another file, or the same file changed) are another reading.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_media_forgets_the_reading_of_a_failed_run_and_keys_it_by_the_cookies() {
    let options = MediaOptions { cookie: Some("session=alice".into()), ..MediaOptions::default() };
    let site = MediaSite::start_with(options).await.unwrap();
    let page = site.muxed("Clip");
    let tools = tools();
    let client = HttpClient::new(&ClientOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let jar = |name: &str, value: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, cookies(value)).unwrap();
        path
    };
    let (alice, mallory) = (jar("alice.txt", "alice"), jar("mallory.txt", "mallory"));
    let get = |cookies: &Path, out: &Path| {
        let request = MediaRequest {
            url: page.clone(),
            media: Some(true),
            quality: Quality::Best,
            headers: Vec::new(),
            page_headers: Default::default(),
            cookies: Some(cookies.to_owned()),
            dir: out.to_owned(),
            rate_limit: None,
            connections: None,
            name_template: None,
            playlist_items: None,
            playlist_item: None,
            playlist: None,
            title: None,
            choice: Default::default(),
        };
        let tools = &tools;
        let client = &client;
        async move {
            let progress = Arc::new(Progress::default());
            haul_engine::get_media(client, tools, &request, &progress, &CancellationToken::new()).await
        }
    };

    // A run that fails after the reading (its directory is a file): the next run reads the page again.
    let not_a_dir = dir.path().join("not-a-dir");
    std::fs::write(&not_a_dir, "").unwrap();
    let failed = get(&alice, &not_a_dir).await;
    assert!(matches!(failed, Err(EngineError::Io { .. })), "{failed:?}");
    assert_eq!(readings(&site, &page), 1);
    let out = dir.path().join("out");
    let Some(GotMedia::Saved(done)) = get(&alice, &out).await.unwrap() else { panic!("a video") };
    assert!(same_file(&done.path, &site, CLIP_720));
    assert_eq!(readings(&site, &page), 2);
    // A run that succeeded keeps it: the same page with the same cookies again is not read again.
    let Some(GotMedia::Saved(done)) = get(&alice, &dir.path().join("again")).await.unwrap() else { panic!("a video") };
    assert!(same_file(&done.path, &site, CLIP_720));
    assert_eq!(readings(&site, &page), 2);

    // Other cookies: yt-dlp reads the page with them (and is refused).
    let refused = get(&mallory, &dir.path().join("mallory")).await;
    assert!(matches!(&refused, Err(EngineError::Media(message)) if message.contains("403")), "{refused:?}");
    assert_eq!(readings(&site, &page), 3);
    // The same cookies file with other contents is other cookies too.
    std::fs::write(&alice, cookies("guess")).unwrap();
    assert!(get(&alice, &dir.path().join("guess")).await.is_err());
    assert_eq!(readings(&site, &page), 4);
}

/// A media job stopped by a server's stop (its job left active) and taken up by the next start finishes with
/// the choices it was added with, read back from the store: WebM preferred (VP9 and Opus, merged into WebM) and
/// metadata embedded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_a_media_job_with_the_choices_it_was_added_with() {
    use haul_test_support::media::VIDEO_VP9;
    let options = MediaOptions { extras: true, rate: Some(15_000), clip_seconds: 3, ..MediaOptions::default() };
    let site = MediaSite::start_with(options).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let account = AccountId::generate();
    let choice = MediaChoice { prefer: Some(Container::Webm), embed_metadata: true, ..MediaChoice::default() };
    let request = AddRequest { url: site.codecs("Restarted"), media: choice.clone(), ..AddRequest::default() };

    let first = engine_in(dir.path()).await;
    let id = first.add(&account, request).await.unwrap().id;
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let view = first.get(&account, id).await.unwrap();
        if view.state == JobState::Active && view.bytes_done > 10_000 {
            break;
        }
        assert!(Instant::now() < deadline && view.state != JobState::Completed, "{view:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.shutdown(Duration::from_secs(10)).await;
    drop(first);
    let stopped_at = site.stats(VIDEO_VP9).bytes_sent;

    site.set_rate(None);
    let second = Service { engine: engine_in(dir.path()).await, _dir: tempfile::tempdir().unwrap() };
    let done = second.finished(&account, id).await;
    assert_eq!(done.state, JobState::Completed, "{:?}", done.error);
    assert_eq!((done.media.clone(), done.format.as_deref()), (choice, Some("vp9-360+a-opus")));
    let path = second.engine.file_path(&done).await.unwrap();
    assert_eq!(path.extension().and_then(|ext| ext.to_str()), Some("webm"), "{}", path.display());
    let probe = haul_test_support::ffprobe(&path);
    let codecs: Vec<&str> =
        probe["streams"].as_array().unwrap().iter().map(|s| s["codec_name"].as_str().unwrap()).collect();
    assert_eq!(codecs, ["vp9", "opus"], "{probe:#}");
    assert_eq!(probe["format"]["tags"]["title"], "Restarted (1)", "{probe:#}");
    let size = site.bytes(VIDEO_VP9).unwrap().len() as u64;
    assert!(
        stopped_at > 0 && site.stats(VIDEO_VP9).bytes_sent < stopped_at + size,
        "the second run resumed the stream"
    );
}
