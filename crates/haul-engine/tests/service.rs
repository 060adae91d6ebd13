//! The download service (`Engine`) on a real SQLite store and a real origin: jobs run to completion, obey
//! `max_active`, pause, resume, cancel and survive a restart of the service.

use std::time::{Duration, Instant};

use haul_core::job::{AccountId, JobState};
use haul_engine::ClientOptions;
use haul_engine::service::{
    AddRequest, BandwidthPatch, DownloadView, Engine, EngineOptions, EventKind, ListQuery, LocalClock, Retention,
    ServiceError,
};
use haul_test_support::{Origin, OriginOptions};
use sha2::{Digest, Sha256};

const MIB: u64 = 1 << 20;

struct Service {
    engine: Engine,
    dir: tempfile::TempDir,
    account: AccountId,
}

async fn start_in(dir: tempfile::TempDir, max_active: usize) -> Service {
    start_with_clock(dir, max_active, LocalClock::system()).await
}

async fn start_with_clock(dir: tempfile::TempDir, max_active: usize, clock: LocalClock) -> Service {
    start_with(dir, max_active, clock, None).await
}

async fn start_with(
    dir: tempfile::TempDir,
    max_active: usize,
    clock: LocalClock,
    retention: Option<Retention>,
) -> Service {
    let database = format!("sqlite://{}", dir.path().join("haul.db").display());
    let options = EngineOptions {
        downloads_dir: dir.path().join("downloads"),
        thumbnails_dir: dir.path().join("thumbnails"),
        max_active,
        max_jobs_per_account: 100,
        max_playlist_entries: 1000,
        node: "test-node".into(),
        lease: Duration::from_secs(30),
        resume_on_start: true,
        advertise_url: None,
        client: ClientOptions::default(),
        media: haul_engine::MediaTools::none(),
        bandwidth: Default::default(),
        clock,
        retention,
        webhooks: haul_engine::service::WebhookOptions::default(),
    };
    let engine = Engine::open(&database, options).await.unwrap();
    Service { engine, dir, account: AccountId::generate() }
}

async fn start(max_active: usize) -> Service {
    start_in(tempfile::tempdir().unwrap(), max_active).await
}

fn request(url: String) -> AddRequest {
    AddRequest { url, ..AddRequest::default() }
}

async fn wait_for(service: &Service, id: haul_core::job::DownloadId, state: JobState) -> DownloadView {
    wait_until(service, id, &format!("{state}"), |view| view.state == state).await
}

/// Polls the download until `done` holds for it (a minute at most), and returns it as it was then.
async fn wait_until(
    service: &Service,
    id: haul_core::job::DownloadId,
    what: &str,
    done: impl Fn(&DownloadView) -> bool,
) -> DownloadView {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let view = service.engine.get(&service.account, id).await.unwrap();
        if done(&view) {
            return view;
        }
        assert!(Instant::now() < deadline, "waited for {what}; the download is {} ({:?})", view.state, view.error);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn sha256_of(path: &std::path::Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_runs_to_completion_and_its_file_is_served_from_the_downloads_dir() {
    let origin = Origin::start(OriginOptions::default()).await.unwrap();
    let service = start(3).await;
    let mut events = service.engine.subscribe();
    let added = service.engine.add(&service.account, request(origin.url(4 * MIB, "a.bin"))).await.unwrap();
    assert_eq!(added.state, JobState::Queued);
    let done = wait_for(&service, added.id, JobState::Completed).await;
    assert_eq!(done.size, Some(4 * MIB));
    assert_eq!(done.bytes_done, 4 * MIB);
    let path = service.engine.file_path(&done).await.expect("a completed file");
    assert!(path.starts_with(service.dir.path().join("downloads").canonicalize().unwrap()));
    assert_eq!(sha256_of(&path), origin.handle().file_sha256(4 * MIB, "a.bin"));

    let mut kinds = Vec::new();
    while let Ok(event) = events.try_recv() {
        kinds.push(event.kind);
    }
    for expected in [EventKind::Added, EventKind::Started, EventKind::Completed] {
        assert!(kinds.contains(&expected), "missing {expected:?} in {kinds:?}");
    }
    assert!(!service.engine.events_since(0).is_empty(), "events are kept for Last-Event-ID");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_with_the_reason() {
    let service = start(1).await;
    let cases: Vec<(AddRequest, &str)> = vec![
        (request("not a url".into()), "not valid"),
        (request("ftp://example.com/x".into()), "http or https"),
        (
            AddRequest { directory: Some("../outside".into()), ..request("http://127.0.0.1/x".into()) },
            "inside downloads",
        ),
        (AddRequest { directory: Some("/abs".into()), ..request("http://127.0.0.1/x".into()) }, "inside downloads"),
        (AddRequest { checksum: Some("sha256=zz".into()), ..request("http://127.0.0.1/x".into()) }, "sha256"),
        (AddRequest { connections: Some(0), ..request("http://127.0.0.1/x".into()) }, "between 1 and 256"),
        (AddRequest { filename: Some("..".into()), ..request("http://127.0.0.1/x".into()) }, "filename"),
    ];
    for (request, expected) in cases {
        let error = service.engine.add(&service.account, request.clone()).await.unwrap_err();
        assert!(error.to_string().contains(expected), "{request:?}: {error}");
        let unsupported = matches!(error, ServiceError::UnsupportedScheme(_));
        assert_eq!(unsupported, request.url.starts_with("ftp"), "{error:?}");
    }
    assert!(service.engine.list(&service.account, ListQuery::default()).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_and_illegal_transitions() {
    let origin = Origin::start(OriginOptions { per_connection_rate: Some(512 * 1024), ..OriginOptions::default() })
        .await
        .unwrap();
    let service = start(2).await;
    let job = service.engine.add(&service.account, request(origin.url(8 * MIB, "p.bin"))).await.unwrap();
    wait_until(&service, job.id, "the first MiB", |view| view.bytes_done >= MIB).await;
    let paused = service.engine.pause(&service.account, job.id).await.unwrap();
    assert_eq!(paused.state, JobState::Paused);
    assert!(paused.bytes_done > 0, "progress was flushed on pause");
    let again = service.engine.pause(&service.account, job.id).await.unwrap_err();
    assert!(matches!(again, ServiceError::Conflict { current: JobState::Paused, .. }), "{again:?}");

    origin.handle().reset_stats();
    service.engine.resume(&service.account, job.id).await.unwrap();
    let done = wait_for(&service, job.id, JobState::Completed).await;
    let path = service.engine.file_path(&done).await.unwrap();
    assert_eq!(sha256_of(&path), origin.handle().file_sha256(8 * MIB, "p.bin"));
    let refetched = origin.handle().stats().body_bytes_sent;
    assert!(refetched < 8 * MIB, "resume fetched {refetched} bytes; the paused part was kept");

    let error = service.engine.resume(&service.account, job.id).await.unwrap_err();
    assert!(error.to_string().contains("completed"), "{error}");
    let other = AccountId::generate();
    assert!(matches!(service.engine.get(&other, job.id).await, Err(ServiceError::NotFound(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_discards_the_partial_file_and_remove_can_keep_or_delete_files() {
    let origin = Origin::start(OriginOptions { per_connection_rate: Some(256 * 1024), ..OriginOptions::default() })
        .await
        .unwrap();
    let service = start(2).await;
    let job = service.engine.add(&service.account, request(origin.url(8 * MIB, "c.bin"))).await.unwrap();
    let downloads = service.dir.path().join("downloads");
    let partial = downloads.join("c.bin.part");
    let record = downloads.join("c.bin.part.haul");
    let running = wait_until(&service, job.id, "a recorded range on disk", |view| {
        view.bytes_done >= MIB && partial.is_file() && record.is_file()
    })
    .await;
    assert_eq!(running.state, JobState::Active);
    let cancelled = service.engine.cancel(&service.account, job.id).await.unwrap();
    assert_eq!(cancelled.state, JobState::Cancelled);
    let left: Vec<_> = std::fs::read_dir(&downloads).unwrap().map(|entry| entry.unwrap().file_name()).collect();
    assert!(left.is_empty(), "the partial file and its record go with the cancel; left {left:?}");

    let fast = Origin::start(OriginOptions::default()).await.unwrap();
    for delete_files in [false, true] {
        let job = service.engine.add(&service.account, request(fast.url(MIB, "r.bin"))).await.unwrap();
        let done = wait_for(&service, job.id, JobState::Completed).await;
        let path = service.engine.file_path(&done).await.unwrap();
        service.engine.remove(&service.account, job.id, delete_files).await.unwrap();
        assert_eq!(path.exists(), !delete_files, "delete_files={delete_files}");
        assert!(matches!(service.engine.get(&service.account, job.id).await, Err(ServiceError::NotFound(_))));
        if !delete_files {
            std::fs::remove_file(path).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_jobs_all_complete_with_at_most_max_active_running() {
    let origin =
        Origin::start(OriginOptions { per_connection_rate: Some(4 * MIB), ..OriginOptions::default() }).await.unwrap();
    let service = start(3).await;
    let mut ids = Vec::new();
    for n in 0..40 {
        let job = service.engine.add(&service.account, request(origin.url(64 * 1024, &format!("f{n}.bin")))).await;
        ids.push(job.unwrap().id);
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut peak = 0;
    loop {
        let stats = service.engine.stats(&service.account).await.unwrap();
        peak = peak.max(stats.active);
        assert!(stats.active <= 3, "{} active at once", stats.active);
        if stats.completed == 40 {
            break;
        }
        assert!(Instant::now() < deadline, "stuck: {stats:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(peak >= 2, "jobs ran in parallel (peak {peak})");
    for (n, id) in ids.into_iter().enumerate() {
        let view = service.engine.get(&service.account, id).await.unwrap();
        let path = service.engine.file_path(&view).await.unwrap();
        assert_eq!(sha256_of(&path), origin.handle().file_sha256(64 * 1024, &format!("f{n}.bin")));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_keeps_progress_and_the_next_start_resumes() {
    let size = 6 * MIB;
    let origin = Origin::start(OriginOptions { per_connection_rate: Some(512 * 1024), ..OriginOptions::default() })
        .await
        .unwrap();
    let service = start(2).await;
    let slow = AddRequest { connections: Some(2), ..request(origin.url(size, "s.bin")) };
    let job = service.engine.add(&service.account, slow).await.unwrap();
    wait_until(&service, job.id, "the first MiB", |view| view.bytes_done >= MIB).await;
    service.engine.shutdown(Duration::from_secs(10)).await;
    let Service { engine, dir, account } = service;
    let before = engine.get(&account, job.id).await.unwrap();
    assert_eq!(before.state, JobState::Active, "a shutdown leaves the job to resume");
    assert!(before.bytes_done > 0);
    drop(engine);

    origin.handle().reset_stats();
    let service = Service { account, ..start_in(dir, 2).await };
    let done = wait_for(&service, job.id, JobState::Completed).await;
    let path = service.engine.file_path(&done).await.unwrap();
    assert_eq!(sha256_of(&path), origin.handle().file_sha256(size, "s.bin"));
    let refetched = origin.handle().stats().body_bytes_sent;
    assert!(refetched <= size - before.bytes_done + MIB, "refetched {refetched}, had {}", before.bytes_done);
}

/// The bandwidth schedule on a simulated clock: walked through a week by the test, it switches the server's
/// limit at its windows' edges, and a `pause` window puts the running download back in the queue (its bytes
/// kept) and starts nothing until the window ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedule_switches_limits_and_holds_the_queue_on_a_simulated_clock() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use haul_core::schedule::WeekTime;

    // Minutes since Monday 00:00.
    let now = Arc::new(AtomicU32::new(7 * 60 + 59));
    let read = now.clone();
    let clock = LocalClock::from_fn(move || {
        let minutes = read.load(Ordering::SeqCst);
        WeekTime { weekday: (minutes / (24 * 60)) as u8 % 7, minute: (minutes % (24 * 60)) as u16 }
    });
    let set = |day: u32, hour: u32, minute: u32| now.store(day * 24 * 60 + hour * 60 + minute, Ordering::SeqCst);
    let service = start_with_clock(tempfile::tempdir().unwrap(), 2, clock).await;
    let engine = &service.engine;
    let patch = BandwidthPatch {
        speed_limit: Some(Some(4 * MIB)),
        schedule: Some(Some("mon 08:00-09:00 1M; mon 09:00-10:00 unlimited; tue 22:00-02:00 pause".into())),
        ..BandwidthPatch::default()
    };
    let view = engine.update_bandwidth(patch).await.unwrap();
    assert_eq!(view.speed_limit_now, Some(4 * MIB), "07:59: before every window the server's own limit holds");
    assert_eq!(
        view.settings.schedule.as_deref(),
        Some("mon 08:00-09:00 1M; mon 09:00-10:00 unlimited; tue 22:00-02:00 pause")
    );

    // Waits (at most 5 s) for the engine to see the new time; it looks every second.
    let settle = |what: &'static str, holds: &dyn Fn(&haul_engine::service::BandwidthView) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let view = engine.bandwidth();
            if holds(&view) {
                return view;
            }
            assert!(Instant::now() < deadline, "{what}: {view:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    set(0, 8, 0);
    let view = settle("08:00", &|view| view.speed_limit_now == Some(MIB));
    assert_eq!(view.schedule_now.as_deref(), Some("1M"));
    set(0, 9, 30);
    settle("09:30", &|view| view.speed_limit_now.is_none() && view.schedule_now.as_deref() == Some("unlimited"));
    set(0, 10, 0);
    settle("10:00", &|view| view.speed_limit_now == Some(4 * MIB) && view.schedule_now.is_none());

    // A download running at 1 MiB/s when the pause window opens on Tuesday night.
    let origin = Origin::start(OriginOptions::default()).await.unwrap();
    let mut events = service.engine.subscribe();
    let limit = BandwidthPatch { speed_limit: Some(Some(MIB)), ..BandwidthPatch::default() };
    engine.update_bandwidth(limit).await.unwrap();
    let url = origin.url(8 * MIB, "night.bin");
    let added = engine.add(&service.account, request(url.clone())).await.unwrap();
    wait_until(&service, added.id, "some bytes", |view| view.state == JobState::Active && view.bytes_done > 0).await;
    set(1, 23, 0);
    let view = settle("tuesday 23:00", &|view| view.paused_by_schedule);
    assert_eq!(view.schedule_now.as_deref(), Some("pause"));
    let held = wait_for(&service, added.id, JobState::Queued).await;
    let kept = held.bytes_done;
    assert!(kept > 0 && kept < 8 * MIB, "the bytes fetched before the pause are kept: {kept}");
    let queued_event = loop {
        let event = tokio::time::timeout(Duration::from_secs(10), events.recv()).await.unwrap().unwrap();
        if event.kind == EventKind::Queued {
            break event;
        }
    };
    assert_eq!(queued_event.download.id, added.id);
    // Nothing starts while the window is open: not the held download, not a new one.
    let other = engine.add(&service.account, request(origin.url(MIB, "other.bin"))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for id in [added.id, other.id] {
        let view = engine.get(&service.account, id).await.unwrap();
        assert_eq!(view.state, JobState::Queued, "{id} starts while the schedule pauses the queue");
    }
    assert_eq!(engine.get(&service.account, added.id).await.unwrap().bytes_done, kept);

    // Past midnight the window still holds (it started on Tuesday); at 02:00 it ends and both run to the end.
    set(2, 1, 59);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(engine.bandwidth().paused_by_schedule, "wednesday 01:59 is inside tuesday's 22:00-02:00 window");
    engine.update_bandwidth(BandwidthPatch { speed_limit: Some(None), ..BandwidthPatch::default() }).await.unwrap();
    set(2, 2, 0);
    settle("wednesday 02:00", &|view| !view.paused_by_schedule);
    let done = wait_for(&service, added.id, JobState::Completed).await;
    wait_for(&service, other.id, JobState::Completed).await;
    let path = service.dir.path().join("downloads").join(done.path.unwrap());
    assert_eq!(sha256_of(&path), origin.handle().file_sha256(8 * MIB, "night.bin"));
}

/// Retention: a download that ended longer ago than the server keeps downloads is forgotten (a `removed` event),
/// its file kept or removed as configured; states not named, and downloads that ended recently, stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_that_ended_long_ago_are_forgotten_by_the_retention_policy() {
    let origin = Origin::start(OriginOptions::default()).await.unwrap();
    for delete_files in [false, true] {
        let retention = Retention {
            after: Duration::from_secs(2),
            states: vec![JobState::Completed, JobState::Cancelled],
            delete_files,
            every: Duration::from_millis(200),
        };
        let service = start_with(tempfile::tempdir().unwrap(), 3, LocalClock::system(), Some(retention)).await;
        let engine = &service.engine;
        let mut events = engine.subscribe();
        let done = engine.add(&service.account, request(origin.url(MIB, "kept-a-while.bin"))).await.unwrap();
        let failed = engine.add(&service.account, request(format!("{}/missing", origin.base_url()))).await.unwrap();
        let done = wait_for(&service, done.id, JobState::Completed).await;
        wait_for(&service, failed.id, JobState::Failed).await;
        let path = service.dir.path().join("downloads").join(done.path.clone().unwrap());
        let ended = Instant::now();
        // Kept while younger than two seconds.
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert!(engine.get(&service.account, done.id).await.is_ok(), "forgotten before its time");
        let removed = loop {
            let event = tokio::time::timeout(Duration::from_secs(10), events.recv()).await.unwrap().unwrap();
            if event.kind == EventKind::Removed {
                break event;
            }
        };
        let age = ended.elapsed();
        assert_eq!(removed.download.id, done.id);
        assert!(age >= Duration::from_secs(2), "forgotten {age:?} after it ended");
        assert!(matches!(engine.get(&service.account, done.id).await, Err(ServiceError::NotFound(_))));
        assert_eq!(path.exists(), !delete_files, "the finished file with delete_files = {delete_files}");
        // A failed download is not among the states forgotten.
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(engine.get(&service.account, failed.id).await.unwrap().state, JobState::Failed);
    }
}
