//! The web page in a real browser: Debian's chromium, driven through chromedriver, against a real `haul serve`
//! and loopback origins. Each test does what a person would (clicks, typing, keys) and checks what they would
//! see, plus what lands on the server (bytes, files, jobs). Figures for the page's weight, first paint and a
//! list of 5,000 jobs are printed, not asserted.

mod common;
#[path = "browser/harness.rs"]
mod harness;

use std::time::{Duration, Instant};

use fantoccini::key::Key;
use harness::{Browser, Server, screenshot_dir};
use haul_test_support::{MediaSite, Origin, OriginOptions};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const MIB: u64 = 1 << 20;

/// An origin whose every response trickles at `rate` bytes/s, so a download stays running long enough to act on.
async fn slow_origin(rate: u64) -> Origin {
    Origin::start(OriginOptions { per_connection_rate: Some(rate), ..OriginOptions::default() }).await.unwrap()
}

/// The id of the newest row of the list, once there is one that is not among `known`.
async fn new_row(browser: &Browser, known: &[&str]) -> String {
    let known = serde_json::to_string(known).unwrap();
    let expression = format!(
        "[...document.querySelectorAll('#list .job')].map((row) => row.dataset.id).find((id) => !{known}.includes(id))"
    );
    browser.wait("a new row", &expression).await.as_str().unwrap().to_owned()
}

/// The SHA-256 (hex) of what `url` answers, fetched inside the page with its session.
const PAGE_SHA256: &str = "fetch(URL).then((r) => r.arrayBuffer()).then((b) => crypto.subtle.digest('SHA-256', b)) \
     .then((d) => Array.from(new Uint8Array(d), (x) => x.toString(16).padStart(2, '0')).join(''))";

#[tokio::test(flavor = "multi_thread")]
async fn sign_in_add_pause_resume_finish_download_and_sign_out() {
    let Some(browser) = Browser::start(1280, 900).await else { return };
    let origin = slow_origin(512 * 1024).await;
    let server = Server::start(&[]);
    let size = 6 * MIB;
    browser.sign_in(&server.base, &server.token).await;
    assert_eq!(browser.eval("document.getElementById('account-name').textContent").await, "default");

    browser.fill("#add-urls", &origin.url(size, "movie.bin")).await;
    browser.fill("#add-connections", "2").await;
    browser.click("#add-submit").await;
    let id = new_row(&browser, &[]).await;
    assert_eq!(browser.row(&id, "row.querySelector('.name').textContent").await, "movie.bin");
    browser.wait("progress in the bar", &format!("document.querySelector('[data-id=\"{id}\"] .bar').value > 0")).await;
    let text = browser.row(&id, "row.querySelector('.meta').textContent").await;
    assert!(text.as_str().unwrap().contains("of 6.00 MiB"), "{text}");

    browser.click(&format!("[data-id=\"{id}\"] [data-act=pause]")).await;
    browser.wait_row_state(&id, "paused").await;
    let job = server.download(&id).await;
    assert_eq!(job["state"], "paused", "{job}");
    assert!(job["bytes_done"].as_u64().unwrap() < size, "paused before the end: {job}");
    let bar = browser.row(&id, "row.querySelector('.bar').value").await.as_f64().unwrap();
    assert!(bar < 100.0, "the bar shows a partial download: {bar}");
    assert_eq!(browser.row(&id, "row.querySelector('[data-act=resume]').hidden").await, false);

    // The detail view shows the resume record: the origin's validator and the ranges on disk.
    browser.click(&format!("[data-id=\"{id}\"] .name")).await;
    let record = browser.wait("the resume record", "document.getElementById('detail-transfer').textContent").await;
    let record = record.as_str().unwrap();
    assert!(record.contains("ETag") && record.contains("On disk") && record.contains("Ranges"), "{record}");
    browser.press(&[Key::Escape.into()]).await;
    browser.wait("the detail view closed", "!document.getElementById('detail').open").await;

    browser.click(&format!("[data-id=\"{id}\"] [data-act=resume]")).await;
    browser.wait_row_state(&id, "completed").await;
    browser.wait("the bar at 100 %", &format!("document.querySelector('[data-id=\"{id}\"] .bar').value === 100")).await;
    let text = browser.row(&id, "row.querySelector('.meta').textContent").await;
    assert!(text.as_str().unwrap().contains("(100 %)"), "{text}");

    // The row's download link serves the finished file, whole and in ranges.
    let href = browser.row(&id, "row.querySelector('a.download').href").await;
    let href = href.as_str().unwrap().to_owned();
    assert!(href.ends_with(&format!("/v1/downloads/{id}/file")), "{href}");
    let digest = browser.eval_async(&PAGE_SHA256.replace("URL", &format!("'{href}'"))).await;
    assert_eq!(digest.as_str().unwrap(), origin.handle().file_sha256(size, "movie.bin"));
    let range = browser
        .eval_async(&format!(
            "fetch('{href}', {{headers: {{Range: 'bytes=100-109'}}}}) \
             .then(async (r) => [r.status, [...new Uint8Array(await r.arrayBuffer())]])"
        ))
        .await;
    let expected: Vec<u8> = origin.handle().file_bytes(size, "movie.bin", 100, 110);
    assert_eq!(range, json!([206, expected]), "a Range request through the link");

    browser.click("#sign-out").await;
    browser.wait("the sign-in form again", "!document.getElementById('sign-in').hidden").await;
    assert_eq!(browser.eval("document.querySelectorAll('#list .job').length").await, 0, "no rows left behind");
    let after = browser.eval_async("fetch('/v1/session').then((r) => r.status)").await;
    assert_eq!(after, 401, "the session is over");
    let file = browser.eval_async(&format!("fetch('{href}').then((r) => r.status)")).await;
    assert_eq!(file, 401, "the file link needs a session");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_key_is_refused_with_a_message() {
    let Some(browser) = Browser::start(1280, 900).await else { return };
    let server = Server::start(&[]);
    browser.goto(&format!("{}/", server.base)).await;
    browser.wait("the sign-in form", "!document.getElementById('sign-in').hidden").await;
    browser.click("#sign-in-form button[type=submit]").await;
    let empty = browser.wait("a message for an empty key", "document.getElementById('key-error').textContent").await;
    assert_eq!(empty, "Paste an API key first.");

    browser.fill("#key", "not-a-key-of-anyone").await;
    browser.click("#sign-in-form button[type=submit]").await;
    let message = browser
        .wait(
            "the server's refusal",
            "((text) => !text.includes('Paste') && text)(document.getElementById('key-error').textContent)",
        )
        .await;
    assert!(message.as_str().unwrap().contains("opens no account"), "{message}");
    assert_eq!(browser.eval("document.getElementById('key').getAttribute('aria-invalid')").await, "true");
    assert_eq!(browser.eval("document.getElementById('app').hidden").await, true);
    assert_eq!(browser.eval_async("fetch('/v1/session').then((r) => r.status)").await, 401);
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_add_form_shows_each_error_beside_its_field() {
    let Some(browser) = Browser::start(1280, 900).await else { return };
    let server = Server::start(&[]);
    browser.sign_in(&server.base, &server.token).await;
    let error_of =
        |field: &str| format!("((e) => !e.hidden && e.textContent)(document.getElementById('add-{field}-error'))");

    browser.click("#add-submit").await;
    assert_eq!(browser.wait("an empty form refused", &error_of("urls")).await, "Enter a URL to download.");

    browser.fill("#add-urls", "ftp://files.example/a.iso").await;
    browser.click("#add-submit").await;
    let message = browser.wait("the API's refusal of the scheme", &error_of("urls")).await;
    assert!(message.as_str().unwrap().contains("http"), "{message}");
    assert_eq!(browser.eval("document.getElementById('add-urls').getAttribute('aria-invalid')").await, "true");
    assert_eq!(browser.eval("document.getElementById('add-urls').value").await, "ftp://files.example/a.iso");

    browser.fill("#add-urls", "http://files.example/a.iso").await;
    browser.fill("#add-speed", "fast").await;
    browser.click("label[for=add-paused]").await;
    browser.click("#add-submit").await;
    let message = browser.wait("the API's refusal of the speed limit", &error_of("speed_limit")).await;
    assert!(message.as_str().unwrap().contains("speed_limit"), "{message}");
    assert_eq!(browser.eval(&error_of("urls")).await, false, "the URL's error is gone");

    browser.fill("#add-speed", "").await;
    browser.fill("#add-connections", "999").await;
    browser.click("#add-submit").await;
    let message = browser.wait("the browser's check of the number", &error_of("connections")).await;
    assert!(message.as_str().unwrap().contains("256"), "{message}");

    browser.fill("#add-connections", "").await;
    browser.fill("#add-filename", "one-name.iso").await;
    browser.fill("#add-urls", "http://files.example/a.iso\nhttp://files.example/b.iso").await;
    browser.click("#add-submit").await;
    let message = browser.wait("one name for two URLs refused", &error_of("filename")).await;
    assert!(message.as_str().unwrap().starts_with("A file name is for one URL"), "{message}");

    browser.fill("#add-filename", "").await;
    browser.click("#add-submit").await;
    browser.wait("both added", "document.querySelectorAll('#list .job').length === 2").await;
    assert_eq!(browser.eval("document.getElementById('add-urls').value").await, "", "added URLs leave the box");
    let (_, list) = server.call(reqwest::Method::GET, "/v1/downloads?order=oldest", None).await;
    let urls: Vec<&str> = list["downloads"].as_array().unwrap().iter().map(|d| d["url"].as_str().unwrap()).collect();
    assert_eq!(urls, ["http://files.example/a.iso", "http://files.example/b.iso"], "in the order of the lines");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn each_account_sees_only_its_own_downloads() {
    let Some(browser) = Browser::start(1280, 900).await else { return };
    let origin = Origin::start(OriginOptions::default()).await.unwrap();
    let server = Server::start(&[]);
    let mine = server.add(json!({"url": origin.url(1000, "defaults.bin"), "paused": true})).await;
    server.haul(&["account", "add", "bob"]);
    let bob_key = server.haul(&["key", "create", "--account", "bob"]);

    browser.sign_in(&server.base, &bob_key).await;
    assert_eq!(browser.eval("document.getElementById('account-name').textContent").await, "bob");
    assert_eq!(browser.eval("document.querySelectorAll('#list .job').length").await, 0);
    let note = browser.eval("document.getElementById('list-note').textContent").await;
    assert!(note.as_str().unwrap().starts_with("No downloads yet"), "{note}");
    let theirs = browser.eval_async(&format!("fetch('/v1/downloads/{mine}').then((r) => r.status)")).await;
    assert_eq!(theirs, 404, "another account's download is not found");

    browser.fill("#add-urls", &origin.url(2000, "bobs.bin")).await;
    browser.click("label[for=add-paused]").await;
    browser.click("#add-submit").await;
    let bobs = new_row(&browser, &[]).await;
    browser.wait_row_state(&bobs, "paused").await;
    assert_eq!(browser.eval("document.querySelectorAll('#list .job').length").await, 1);
    browser
        .wait(
            "the totals to count bob's one",
            "document.getElementById('totals').textContent.startsWith('1 download ·')",
        )
        .await;

    // The live feed carries only bob's events: a download added by the default account meanwhile stays unseen.
    server.add(json!({"url": origin.url(3000, "defaults-later.bin"), "paused": true})).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(browser.eval("document.querySelectorAll('#list .job').length").await, 1);

    let (_, list) = server.call(reqwest::Method::GET, "/v1/downloads?order=oldest", None).await;
    let ids: Vec<&str> = list["downloads"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 2, "{list}");
    assert_eq!(ids[0], mine, "the default account sees its own two and not bob's: {list}");
    assert!(!ids.contains(&bobs.as_str()), "{list}");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_and_retry_a_failed_job_after_changing_its_url() {
    let Some(browser) = Browser::start(1280, 900).await else { return };
    let origin = slow_origin(256 * 1024).await;
    let server = Server::start(&[]);
    browser.sign_in(&server.base, &server.token).await;

    let running = server.add(json!({"url": origin.url(8 * MIB, "long.bin"), "connections": 1})).await;
    browser.wait_row_state(&running, "active").await;
    browser.click(&format!("[data-id=\"{running}\"] [data-act=cancel]")).await;
    browser.wait_row_state(&running, "cancelled").await;
    assert_eq!(server.download(&running).await["state"], "cancelled");
    assert_eq!(browser.row(&running, "row.querySelector('[data-act=retry]').hidden").await, false);
    assert_eq!(browser.row(&running, "row.querySelector('[data-act=pause]').hidden").await, true);

    let gone = origin.url(1000, "gone.bin").replace("/data/", "/nothing/");
    browser.fill("#add-urls", &gone).await;
    browser.click("#add-submit").await;
    let failed = new_row(&browser, &[&running]).await;
    browser.wait_row_state(&failed, "failed").await;
    let error = browser
        .wait(
            "the failure's reason",
            &format!("document.querySelector('[data-id=\"{failed}\"] .error:not([hidden])')?.textContent"),
        )
        .await;
    assert!(error.as_str().unwrap().contains("404"), "{error}");

    // In the detail view: a new URL, then retry; the job completes from the new address.
    browser.click(&format!("[data-id=\"{failed}\"] .name")).await;
    browser.wait("the detail view", "document.getElementById('detail').open").await;
    let facts = browser.eval("document.getElementById('detail-facts').textContent").await;
    assert!(facts.as_str().unwrap().contains(&gone), "{facts}");
    let fresh = origin.url(64 * 1024, "fresh.bin");
    browser.fill("#detail-url", &fresh).await;
    browser.click("#url-form button").await;
    browser
        .wait("the URL changed", &format!("document.getElementById('detail-facts').textContent.includes('{fresh}')"))
        .await;
    assert_eq!(server.download(&failed).await["url"], fresh.as_str());
    browser.fill("#detail-priority", "7").await;
    browser.click("#priority-form button").await;
    browser
        .wait("the priority shown", "document.getElementById('detail-facts').textContent.includes('Priority7')")
        .await;
    assert_eq!(server.download(&failed).await["priority"], 7);
    browser.click("#detail-actions [data-act=retry]").await;
    browser.wait_row_state(&failed, "completed").await;
    browser.press(&[Key::Escape.into()]).await;
    browser.wait("the detail view closed", "!document.getElementById('detail').open").await;
    let done = server.download(&failed).await;
    let bytes = std::fs::read(server.downloaded(done["path"].as_str().unwrap())).unwrap();
    assert_eq!(hex::encode(Sha256::digest(&bytes)), origin.handle().file_sha256(64 * 1024, "fresh.bin"));

    // Both at once from a selection: retry the cancelled one and remove nothing else.
    browser.click(&format!("[data-id=\"{running}\"] .pick")).await;
    assert_eq!(browser.eval("document.getElementById('picked').textContent").await, "1 selected");
    browser.click("[data-bulk=retry]").await;
    browser.wait_row_state(&running, "active").await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn remove_with_the_file_deletes_it_and_without_keeps_it() {
    let Some(browser) = Browser::start(1280, 900).await else { return };
    let origin = Origin::start(OriginOptions::default()).await.unwrap();
    let server = Server::start(&[]);
    let doomed = server.add(json!({"url": origin.url(100_000, "doomed.bin")})).await;
    let kept = server.add(json!({"url": origin.url(100_000, "kept.bin")})).await;
    let doomed_path = server.downloaded(server.wait_state(&doomed, "completed").await["path"].as_str().unwrap());
    let kept_path = server.downloaded(server.wait_state(&kept, "completed").await["path"].as_str().unwrap());
    assert!(doomed_path.exists() && kept_path.exists());
    browser.sign_in(&server.base, &server.token).await;

    browser.click(&format!("[data-id=\"{doomed}\"] [data-act=remove]")).await;
    browser.wait("the confirmation", "document.getElementById('confirm').open").await;
    assert_eq!(browser.eval("document.getElementById('confirm-files').parentElement.hidden").await, false);
    browser.click("label[for=confirm-files]").await;
    browser.click("#confirm-ok").await;
    browser.wait("the row gone", &format!("!document.querySelector('[data-id=\"{doomed}\"]')")).await;
    assert!(!doomed_path.exists(), "the file is deleted with the download");
    let (status, _) = server.call(reqwest::Method::GET, &format!("/v1/downloads/{doomed}"), None).await;
    assert_eq!(status, 404);

    browser.click(&format!("[data-id=\"{kept}\"] [data-act=remove]")).await;
    browser.wait("the confirmation", "document.getElementById('confirm').open").await;
    browser.click("#confirm-ok").await;
    browser.wait("the row gone", &format!("!document.querySelector('[data-id=\"{kept}\"]')")).await;
    assert!(kept_path.exists(), "without the box ticked the file stays");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_media_page_with_a_quality_shows_its_thumbnail_plays_and_makes_audio() {
    if !haul_test_support::media::tools_available() {
        eprintln!("not run: ffmpeg, ffprobe and yt-dlp are needed (scripts/media-tools.sh)");
        return;
    }
    let Some(browser) = Browser::start(1280, 900).await else { return };
    let site = MediaSite::start().await.unwrap();
    let server = Server::start(&[]);
    browser.sign_in(&server.base, &server.token).await;

    browser.fill("#add-urls", &site.muxed("A small clip")).await;
    browser.click("#add-kind option[value=media]").await;
    browser.click("#add-quality option[value='360p']").await;
    browser.click("#add-submit").await;
    let id = new_row(&browser, &[]).await;
    browser.wait_row_state(&id, "completed").await;
    let job = server.download(&id).await;
    assert_eq!(job["height"], 360, "the quality asked for: {job}");
    let name = browser.row(&id, "row.querySelector('.name').textContent").await;
    assert!(name.as_str().unwrap().contains("A small clip"), "named after the page's title: {name} ({job})");
    assert!(browser.row(&id, "row.querySelector('.kind').textContent").await.as_str().unwrap().contains("media 360p"));
    let thumbnail = browser
        .wait_row(
            "the thumbnail",
            &id,
            "((img) => !img.hidden && img.complete && img.naturalWidth)(row.querySelector('.thumb'))",
        )
        .await;
    assert_eq!(thumbnail, 320, "the page's 320x180 image");

    browser.click(&format!("[data-id=\"{id}\"] [data-act=play]")).await;
    let playable = browser
        .eval("document.createElement('video').canPlayType('video/mp4; codecs=\"avc1.42E01E, mp4a.40.2\"')")
        .await;
    let state = browser
        .wait(
            "the video's metadata or an error",
            "((v) => v && (v.error ? 'error ' + v.error.code \
               : v.readyState >= 1 && `ready ${v.videoWidth}x${v.videoHeight}`)) \
             (document.querySelector('#detail-player video'))",
        )
        .await;
    println!("video in the page: canPlayType {playable}, {state}");
    if !playable.as_str().unwrap_or_default().is_empty() {
        assert_eq!(state, "ready 640x360", "the finished video plays in the page");
    }

    browser.click("#audio-make").await;
    let audio = browser
        .wait(
            "the audio rendition",
            "((a) => a && (a.error ? 'error' : a.readyState >= 1 && 'ready')) \
             (document.querySelector('#audio-player audio'))",
        )
        .await;
    assert_eq!(audio, "ready");

    browser.click("#link-file").await;
    let link = browser.wait("a signed link", "document.getElementById('link-out').value").await;
    let link = link.as_str().unwrap().to_owned();
    let fetched = reqwest::get(&link).await.unwrap();
    assert_eq!(fetched.status(), 200, "the signed link works without credentials: {link}");
    let on_disk = std::fs::read(server.downloaded(job["path"].as_str().unwrap())).unwrap();
    assert_eq!(fetched.bytes().await.unwrap().as_ref(), on_disk.as_slice());
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn keyboard_only_sign_in_add_and_pause() {
    let Some(browser) = Browser::start(1280, 900).await else { return };
    let origin = slow_origin(256 * 1024).await;
    let server = Server::start(&[]);
    browser.goto(&format!("{}/", server.base)).await;
    browser.wait("the key field focused", "document.activeElement.id === 'key'").await;
    browser.type_text(&server.token).await;
    browser.press(&[Key::Enter.into()]).await;
    browser.wait("the add form focused after sign-in", "document.activeElement.id === 'add-urls'").await;
    browser.type_text(&origin.url(8 * MIB, "keys.bin")).await;

    // Tab from the URLs past Add and through the options, in the order they are shown; Enter in a field adds.
    let mut order = Vec::new();
    for _ in 0..10 {
        browser.press(&[Key::Tab.into()]).await;
        let focused = browser.eval("document.activeElement.id || document.activeElement.tagName").await;
        order.push(focused.as_str().unwrap().to_owned());
        if order.last().unwrap() == "add-connections" {
            break;
        }
    }
    let expected = ["add-submit", "add-kind", "add-quality", "add-audio", "add-filename", "add-connections"];
    assert_eq!(order, expected, "the focus order of the add form");
    browser.type_text("2").await;
    browser.press(&[Key::Enter.into()]).await;
    let id = new_row(&browser, &[]).await;
    browser.wait_row_state(&id, "active").await;
    assert_eq!(server.download(&id).await["connections_limit"], 2, "the connections typed in");

    let mut steps = 0;
    loop {
        browser.press(&[Key::Tab.into()]).await;
        let here = browser
            .eval("document.activeElement.dataset.act + ' ' + document.activeElement.closest('.job')?.dataset.id")
            .await;
        if here == format!("pause {id}") {
            break;
        }
        steps += 1;
        assert!(steps < 40, "Tab never reached the row's Pause button; last at {here}");
    }
    browser.press(&[' ']).await;
    browser.wait_row_state(&id, "paused").await;
    assert_eq!(server.download(&id).await["state"], "paused");
    let focused = browser.eval("document.activeElement.dataset.act").await;
    assert_eq!(focused, "resume", "focus moves to the button that undoes it");
    browser.press(&[Key::Enter.into()]).await;
    browser
        .wait(
            "resumed",
            &format!("['queued', 'active'].includes(document.querySelector('[data-id=\"{id}\"]').dataset.state)"),
        )
        .await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_search_order_and_state_filter() {
    let Some(browser) = Browser::start(1280, 900).await else { return };
    let origin = Origin::start(OriginOptions::default()).await.unwrap();
    let server = Server::start(&[]);
    let oldest = server.add(json!({"url": origin.url(1000, "alpha-one.bin"), "paused": true})).await;
    let failed = server.add(json!({"url": origin.url(1000, "beta-two.bin").replace("/data/", "/nothing/")})).await;
    server.wait_state(&failed, "failed").await;
    let newest_alpha = server.add(json!({"url": origin.url(1000, "alpha-three.bin"), "paused": true})).await;
    for n in 0..55 {
        server.add(json!({"url": origin.url(1000, &format!("filler-{n}.bin")), "paused": true})).await;
    }
    browser.sign_in(&server.base, &server.token).await;
    let first_row = "document.querySelector('#list .job')?.dataset.id";
    let info = "document.getElementById('page-info').textContent";

    browser.click("#page-size option[value='50']").await;
    browser.wait("a page of 50", &format!("{info} === '1–50 of 58'")).await;
    browser.click("#page-next").await;
    browser.wait("the second page", &format!("{info} === '51–58 of 58'")).await;
    assert_eq!(browser.eval("document.querySelectorAll('#list .job').length").await, 8);
    let last = browser.eval("[...document.querySelectorAll('#list .job')].at(-1).dataset.id").await;
    assert_eq!(last, oldest.as_str(), "newest first, so the oldest is last");
    assert_eq!(browser.eval("document.getElementById('page-next').disabled").await, true);
    browser.click("#page-prev").await;
    browser.wait("the first page again", &format!("{info} === '1–50 of 58'")).await;

    browser.fill("#filter-search", "alpha").await;
    browser.wait("the two matches", &format!("{info} === '1–2 of 2'")).await;
    assert_eq!(browser.eval(first_row).await, newest_alpha.as_str());
    browser.click("#filter-order option[value=oldest]").await;
    browser.wait("the oldest match first", &format!("{first_row} === '{oldest}'")).await;

    browser.fill("#filter-search", "beta").await;
    browser.wait("the one match", &format!("{info} === '1–1 of 1'")).await;
    browser.click("#filter-state option[value=completed]").await;
    browser.wait("no match", "document.getElementById('list-note').textContent === 'No download matches.'").await;
    browser.click("#filter-state option[value=failed]").await;
    browser.wait("the failed one", &format!("{first_row} === '{failed}'")).await;
    let option = browser.eval("document.querySelector('#filter-state option[value=failed]').textContent").await;
    assert_eq!(option, "Failed (1)", "the filter counts each state");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn at_360_pixels_nothing_scrolls_sideways() {
    let Some(browser) = Browser::start(360, 740).await else { return };
    let origin = Origin::start(OriginOptions::default()).await.unwrap();
    let server = Server::start(&[]);
    let long_name = format!("{}.bin", "a-very-long-file-name-without-spaces".repeat(6));
    server.add(json!({"url": origin.url(50_000, &long_name), "paused": true})).await;
    let failed = server.add(json!({"url": origin.url(1000, &long_name).replace("/data/", "/nothing/")})).await;
    server.wait_state(&failed, "failed").await;
    server.add(json!({"url": origin.url(20_000, "short.bin")})).await;
    browser.emulate_width(360, 740, true).await;
    browser.sign_in(&server.base, &server.token).await;
    browser.wait("three rows", "document.querySelectorAll('#list .job').length === 3").await;
    assert_eq!(browser.eval("window.innerWidth").await, 360);
    let width = browser.eval("document.documentElement.scrollWidth").await;
    assert!(width.as_u64().unwrap() <= 360, "the page is {width} px wide at 360");
    browser.click(&format!("[data-id=\"{failed}\"] .name")).await;
    browser.wait("the detail view", "document.getElementById('detail').open").await;
    let dialog = browser
        .eval(
            "((d) => [d.scrollWidth, d.clientWidth, d.getBoundingClientRect().right]) \
               (document.getElementById('detail'))",
        )
        .await;
    assert!(
        dialog[0].as_u64() <= dialog[1].as_u64() && dialog[2].as_f64().unwrap() <= 360.0,
        "the dialog fits: {dialog}"
    );
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_are_listed_created_and_revoked() {
    let Some(browser) = Browser::start(1280, 900).await else { return };
    let server = Server::start(&[]);
    browser.sign_in(&server.base, &server.token).await;
    browser.click("#keys-open").await;
    browser
        .wait("the token's key listed", "document.querySelectorAll('#keys-list li[data-key-id]').length === 1")
        .await;
    let listed = browser.eval("document.querySelector('#keys-list li[data-key-id]').textContent").await;
    assert!(listed.as_str().unwrap().contains("(this session)"), "the key the page signed in with: {listed}");
    browser.click("#key-create").await;
    let secret = browser.wait("the new key's secret", "document.getElementById('key-secret-value').value").await;
    let secret = secret.as_str().unwrap().to_owned();
    browser.wait("two keys listed", "document.querySelectorAll('#keys-list li[data-key-id]').length === 2").await;
    let (status, _) = server.call_as(&secret, reqwest::Method::GET, "/v1/stats", None).await;
    assert_eq!(status, 200, "the new key works");

    let button = browser
        .eval(&format!(
            "[...document.querySelectorAll('#keys-list [data-key]')] \
             .find((b) => '{secret}'.startsWith(b.dataset.prefix))?.dataset.key"
        ))
        .await;
    let key_id = button.as_str().expect("a Revoke button for the new key").to_owned();
    browser.click(&format!("[data-key=\"{key_id}\"]")).await;
    browser.wait("the confirmation", "document.getElementById('confirm').open").await;
    browser.click("#confirm-ok").await;
    browser
        .wait(
            "the key marked revoked",
            &format!("document.querySelector('[data-key-id=\"{key_id}\"]')?.classList.contains('revoked')"),
        )
        .await;
    let (status, _) = server.call_as(&secret, reqwest::Method::GET, "/v1/stats", None).await;
    assert_eq!(status, 401, "a revoked key no longer works");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn screenshots_in_light_and_dark_at_desktop_and_phone_width() {
    let Some(browser) = Browser::start(1280, 800).await else { return };
    let origin = slow_origin(64 * 1024).await;
    let server = Server::start(&[]);
    let done = server.add(json!({"url": origin.url(40_000, "debian-13.1.0-amd64-netinst.iso")})).await;
    let failed = server.add(json!({"url": origin.url(1000, "report-2026.pdf").replace("/data/", "/nothing/")})).await;
    server.add(json!({"url": origin.url(300 * MIB, "dataset.tar.zst"), "paused": true, "priority": 5})).await;
    server.wait_state(&done, "completed").await;
    server.wait_state(&failed, "failed").await;
    let running =
        server.add(json!({"url": origin.url(200 * MIB, "ubuntu-24.04-desktop-amd64.iso"), "connections": 4})).await;
    server.add(json!({"url": origin.url(50 * MIB, "podcast-episode-42.mp3")})).await;
    let site = if haul_test_support::media::tools_available() { Some(MediaSite::start().await.unwrap()) } else { None };
    if let Some(site) = &site {
        let clip =
            server.add(json!({"url": site.muxed("Sunset over the bay"), "kind": "media", "quality": "720p"})).await;
        server.wait_state(&clip, "completed").await;
    }
    browser.sign_in(&server.base, &server.token).await;
    browser
        .wait(
            "the running one's speed",
            &format!("document.querySelector('[data-id=\"{running}\"] .speed')?.textContent"),
        )
        .await;

    let mut backgrounds = Vec::new();
    for (width, height, label) in [(1280, 800, "desktop"), (360, 740, "phone")] {
        browser.emulate_width(width, height, width < 600).await;
        // The phone's shots show the list, below the add form.
        let top = if width < 600 { "document.getElementById('list-title').scrollIntoView()" } else { "scrollTo(0, 0)" };
        browser.eval(top).await;
        for scheme in ["light", "dark"] {
            browser.emulate_scheme(scheme).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            let background = browser.eval("getComputedStyle(document.documentElement).backgroundColor").await;
            backgrounds.push((scheme, background));
            let png = browser.screenshot().await;
            assert!(png.starts_with(b"\x89PNG"), "a PNG");
            if let Some(dir) = screenshot_dir() {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(dir.join(format!("{label}-{scheme}.png")), &png).unwrap();
            }
        }
    }
    let light = &backgrounds[0].1;
    let dark = &backgrounds[1].1;
    assert_ne!(light, dark, "prefers-color-scheme: dark changes the page's colours");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn figures_page_weight_first_paint_and_five_thousand_jobs() {
    let Some(browser) = Browser::start(1280, 900).await else { return };
    let server = Server::start(&[]);
    let jobs: usize = std::env::var("HAUL_BROWSER_JOBS").ok().and_then(|n| n.parse().ok()).unwrap_or(5000);
    let started = Instant::now();
    let server_ref = &server;
    let mut made = 0;
    while made < jobs {
        let batch = (made..jobs.min(made + 32)).map(|n| async move {
            server_ref.add(json!({"url": format!("http://files.example/file-{n:05}.bin"), "paused": true})).await
        });
        made += futures_util::future::join_all(batch).await.len();
    }
    println!("figures: created {jobs} paused jobs through the API in {:.1} s", started.elapsed().as_secs_f64());

    // Signed in once for the cookie, then a cold load of the page measured on its own.
    browser.sign_in(&server.base, &server.token).await;
    browser.goto("about:blank").await;
    browser.cdp("Network.enable", json!({})).await;
    browser.cdp("Network.clearBrowserCache", json!({})).await;
    browser.goto(&format!("{}/", server.base)).await;
    browser.wait("the list rendered", "performance.getEntriesByName('haul:list-rendered').length > 0").await;
    let figures = browser
        .eval(
            "(() => {
                const paints = performance.getEntriesByType('paint');
                const paint = Object.fromEntries(paints.map((e) => [e.name, e.startTime]));
                const nav = performance.getEntriesByType('navigation')[0];
                const files = performance.getEntriesByType('resource')
                    .filter((e) => new URL(e.name).pathname.startsWith('/ui/'));
                const sum = (key) => files.reduce((n, e) => n + e[key], 0) + nav[key];
                return {
                    first_paint: paint['first-paint'], first_contentful_paint: paint['first-contentful-paint'],
                    list_rendered: performance.getEntriesByName('haul:list-rendered')[0].startTime,
                    dom_content_loaded: nav.domContentLoadedEventEnd,
                    files: files.length + 1, bytes: sum('decodedBodySize'), transferred: sum('transferSize'),
                    rows: document.querySelectorAll('#list .job').length,
                    total: document.getElementById('page-info').textContent,
                };
            })()",
        )
        .await;
    println!("figures: page (cold load, {jobs} jobs on the server): {figures}");
    assert_eq!(figures["rows"], 100, "one page of rows: {figures}");
    assert!(figures["total"].as_str().unwrap().ends_with(&format!("of {jobs}")), "{figures}");
    println!("figures: the page's files weigh {} bytes", haul_api::page_weight());

    // The largest page the API gives (1,000 rows), and a state filter, each timed from request to painted.
    for (what, action) in [
        ("1000 rows", "#page-size option[value='1000']"),
        ("filter paused, 1000 rows", "#filter-state option[value=paused]"),
        ("back to 100 rows", "#page-size option[value='100']"),
    ] {
        let last = "performance.getEntriesByName('haul:list').at(-1)";
        let before = browser.eval(&format!("{last}.startTime")).await;
        browser.click(action).await;
        let took = browser.wait(what, &format!("{last}.startTime !== {before} && {last}.duration")).await;
        let rows = browser.eval("document.querySelectorAll('#list .job').length").await;
        let fetched = browser.eval("performance.getEntriesByName('haul:fetch').at(-1).duration").await;
        let (took, fetched) = (took.as_f64().unwrap(), fetched.as_f64().unwrap());
        println!("figures: {what}: {rows} rows in {took:.0} ms ({fetched:.0} ms of it fetching the page)");
    }
    let value: Value = browser.eval("performance.memory ? performance.memory.usedJSHeapSize : null").await;
    println!("figures: JS heap after all that: {value} bytes");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_playlist_shows_its_entries_and_their_count() {
    if !haul_test_support::media::tools_available() {
        eprintln!("not run: ffmpeg, ffprobe and yt-dlp are needed (scripts/media-tools.sh)");
        return;
    }
    let Some(browser) = Browser::start(1280, 900).await else { return };
    let site = MediaSite::start().await.unwrap();
    let server = Server::start(&[]);
    browser.sign_in(&server.base, &server.token).await;

    let pages = [site.muxed("First talk"), site.muxed("Second talk")];
    let feed = site.feed("Talks", &[("First talk", &pages[0]), ("Second talk", &pages[1])]);
    browser.fill("#add-urls", &feed).await;
    browser.click("#add-submit").await;
    let id = new_row(&browser, &[]).await;
    browser.wait_row_state(&id, "completed").await;
    let kind = browser
        .wait_row(
            "the playlist's count",
            &id,
            "((t) => t.includes('2 of 2') && t)(row.querySelector('.kind').textContent)",
        )
        .await;
    assert!(kind.as_str().unwrap().contains("playlist, 2 of 2 done"), "{kind}");
    let entries = browser
        .wait(
            "the entries' rows",
            "((rows) => rows.length === 2 && rows.map((r) => r.textContent))\
             ([...document.querySelectorAll('#list .job')].filter((r) => r.querySelector('.kind').textContent.includes('entry')))",
        )
        .await;
    let entries = entries.to_string();
    assert!(entries.contains("First talk") && entries.contains("entry 1"), "{entries}");
    assert!(entries.contains("Second talk") && entries.contains("entry 2"), "{entries}");
    let listed = server.download(&id).await;
    assert_eq!(listed["playlist"]["completed"], 2, "{listed}");
    browser.close().await;
}
