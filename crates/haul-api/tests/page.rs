//! What the web page stands on, end to end over HTTP: signing in for a session cookie, what the cookie may do
//! (and what a page of another site may not), the account's keys, signed links, the list's filters, and the
//! page's own files with their security headers.

mod common;

use common::Harness;
use haul_core::account::KeyKind;
use haul_test_support::OriginOptions;
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

const TOKEN: &str = "page-test-token-0123456789";

/// A signed-in browser, as far as the server can tell: the cookie, and the marker the page sends.
struct Browser<'a> {
    harness: &'a Harness,
    cookie: String,
}

impl<'a> Browser<'a> {
    async fn sign_in(harness: &'a Harness, key: &str) -> Self {
        let response = harness
            .client
            .post(format!("{}/v1/session", harness.base))
            .json(&json!({"key": key}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let set_cookie = response.headers()[header::SET_COOKIE].to_str().unwrap().to_owned();
        let cookie = set_cookie.split(';').next().unwrap().to_owned();
        Self { harness, cookie }
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.harness.client.request(method.clone(), format!("{}{path}", self.harness.base));
        let request = request.header(header::COOKIE, &self.cookie);
        if method == Method::GET { request } else { request.header("X-Requested-With", "haul") }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_opens_a_session_cookie_that_acts_like_the_key() {
    let harness = Harness::start(TOKEN, OriginOptions::default()).await;
    let response =
        harness.client.post(format!("{}/v1/session", harness.base)).json(&json!({"key": TOKEN})).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let set_cookie = response.headers()[header::SET_COOKIE].to_str().unwrap().to_owned();
    for attribute in ["haul_session=", "HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=604800"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "plain http: {set_cookie}");
    assert!(!set_cookie.contains(TOKEN), "the cookie is not the key: {set_cookie}");
    let session: Value = response.json().await.unwrap();
    assert_eq!(session["account"], harness.account.to_string());
    assert!(session["name"].is_string() && session["expires_at"].as_i64().unwrap() > 0, "{session}");

    // Behind a proxy that terminates TLS, the cookie is Secure.
    let response = harness
        .client
        .post(format!("{}/v1/session", harness.base))
        .header("X-Forwarded-Proto", "https")
        .json(&json!({"key": TOKEN}))
        .send()
        .await
        .unwrap();
    assert!(response.headers()[header::SET_COOKIE].to_str().unwrap().contains("; Secure"));

    let browser = Browser::sign_in(&harness, TOKEN).await;
    let (status, me) = browser.call(Method::GET, "/v1/session", None).await;
    assert_eq!((status, &me["account"]), (StatusCode::OK, &json!(harness.account.to_string())));
    let token_key = harness.engine.keys(&harness.account).await.unwrap().remove(0);
    assert_eq!(me["key_id"], token_key.id, "the key the session stands for: {me}");
    let url = harness.origin.url(1000, "a.bin");
    let (status, created) =
        browser.call(Method::POST, "/v1/downloads", Some(json!({"url": url, "paused": true}))).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (status, list) = browser.call(Method::GET, "/v1/downloads", None).await;
    assert_eq!((status, list["total"].as_u64()), (StatusCode::OK, Some(1)));

    // Signing out ends the session on the server, not just in the browser.
    let (status, _) = browser.call(Method::DELETE, "/v1/session", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, error) = browser.call(Method::GET, "/v1/downloads", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(error["error"]["message"].as_str().unwrap().contains("sign in again"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_live_bearer_keys_sign_in_and_revoking_the_key_ends_its_sessions() {
    let harness = Harness::start(TOKEN, OriginOptions::default()).await;
    harness.server.add_key(&harness.account, KeyKind::Videodb, "sk-page-test-videodb-key").await;
    for key in ["wrong", "", "sk-page-test-videodb-key", &"x".repeat(2000)] {
        let response = harness
            .client
            .post(format!("{}/v1/session", harness.base))
            .json(&json!({"key": key}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{key}");
        assert!(response.headers().get(header::SET_COOKIE).is_none());
        let error: Value = response.json().await.unwrap();
        assert!(error["error"]["message"].as_str().unwrap().contains("haul key create"), "{error}");
    }
    for body in ["not json", "{}", "{\"key\": 5}", "{\"key\": \"a\", \"extra\": 1}"] {
        let response = harness
            .client
            .post(format!("{}/v1/session", harness.base))
            .header(header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
    }
    // An unknown or forged cookie is a 401, not someone's session.
    for cookie in ["haul_session=forged", "haul_session=", "other=1"] {
        let response = harness
            .client
            .get(format!("{}/v1/downloads", harness.base))
            .header(header::COOKIE, cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{cookie}");
    }

    let browser = Browser::sign_in(&harness, TOKEN).await;
    assert_eq!(browser.call(Method::GET, "/v1/stats", None).await.0, StatusCode::OK);
    harness.server.revoke_keys(&harness.account).await;
    assert_eq!(browser.call(Method::GET, "/v1/stats", None).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cookie_request_that_changes_something_must_come_from_the_page() {
    let harness = Harness::start(TOKEN, OriginOptions::default()).await;
    let browser = Browser::sign_in(&harness, TOKEN).await;
    let url = harness.origin.url(1000, "a.bin");
    let create = |marker: Option<&str>, origin: Option<&str>| {
        let mut request = harness
            .client
            .post(format!("{}/v1/downloads", harness.base))
            .header(header::COOKIE, &browser.cookie)
            .json(&json!({"url": url, "paused": true}));
        if let Some(marker) = marker {
            request = request.header("X-Requested-With", marker);
        }
        if let Some(origin) = origin {
            request = request.header(header::ORIGIN, origin);
        }
        request.send()
    };
    // What a form or script on another site could send: refused, and nothing is added.
    for (marker, origin) in [
        (None, None),
        (None, Some("http://evil.example")),
        (Some("XMLHttpRequest"), None),
        (Some("haul"), Some("http://evil.example")),
        (Some("haul"), Some("null")),
    ] {
        let response = create(marker, origin).await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{marker:?} {origin:?}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "forbidden", "{error}");
    }
    assert_eq!(harness.engine.count(&harness.account, Default::default()).await.unwrap(), 0);
    let own_origin = harness.base.clone();
    assert_eq!(create(Some("haul"), Some(&own_origin)).await.unwrap().status(), StatusCode::CREATED);
    assert_eq!(create(Some("haul"), None).await.unwrap().status(), StatusCode::CREATED);
    // A key in the Authorization header needs no marker: scripts are not browsers.
    let (status, _) = harness.call(Method::POST, "/v1/downloads", Some(json!({"url": url}))).await;
    assert_eq!(status, StatusCode::CREATED);
    // Signing out is a change too.
    let response = harness
        .client
        .delete(format!("{}/v1/session", harness.base))
        .header(header::COOKIE, &browser.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_account_manages_its_own_keys() {
    let harness = Harness::start(TOKEN, OriginOptions::default()).await;
    let other = harness.server.add_account("other", None, KeyKind::Bearer, "other-page-token-0123456789").await;
    let browser = Browser::sign_in(&harness, TOKEN).await;
    let (status, created) = browser.call(Method::POST, "/v1/keys", Some(json!({}))).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with(created["prefix"].as_str().unwrap()), "{created}");
    assert_eq!(created["kind"], "bearer");
    // The new key works, and is listed without its secret.
    let response = harness.client.get(format!("{}/v1/stats", harness.base)).bearer_auth(&secret).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (_, listed) = browser.call(Method::GET, "/v1/keys", None).await;
    let keys = listed["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "{listed}");
    assert!(!listed.to_string().contains(&secret));
    let (status, videodb) = browser.call(Method::POST, "/v1/keys", Some(json!({"kind": "videodb"}))).await;
    assert_eq!((status, videodb["secret"].as_str().unwrap().starts_with("sk-")), (StatusCode::CREATED, true));
    assert_eq!(browser.call(Method::POST, "/v1/keys", Some(json!({"kind": "root"}))).await.0, StatusCode::BAD_REQUEST);

    let id = created["id"].as_str().unwrap();
    let (status, revoked) = browser.call(Method::DELETE, &format!("/v1/keys/{id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(revoked["revoked_at"].as_i64().is_some(), "{revoked}");
    let response = harness.client.get(format!("{}/v1/stats", harness.base)).bearer_auth(&secret).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // Another account's key is not found, and stays live.
    let other_key = harness.engine.keys(&other).await.unwrap().remove(0);
    for id in [other_key.id.as_str(), "nope", "%25"] {
        assert_eq!(
            browser.call(Method::DELETE, &format!("/v1/keys/{id}"), None).await.0,
            StatusCode::NOT_FOUND,
            "{id}"
        );
    }
    assert!(harness.engine.keys(&other).await.unwrap()[0].revoked_at.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_links_work_without_credentials_for_the_callers_own_files() {
    let harness = Harness::start(TOKEN, OriginOptions::default()).await;
    let other_token = "other-link-token-0123456789";
    harness.server.add_account("other", None, KeyKind::Bearer, other_token).await;
    let size = 100_000;
    let (_, created) =
        harness.call(Method::POST, "/v1/downloads", Some(json!({"url": harness.origin.url(size, "f.bin")}))).await;
    let id = created["id"].as_str().unwrap().to_owned();
    for _ in 0..200 {
        let (_, job) = harness.call(Method::GET, &format!("/v1/downloads/{id}"), None).await;
        if job["state"] == "completed" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let (status, transfer) = harness.call(Method::GET, &format!("/v1/downloads/{id}/transfer"), None).await;
    assert_eq!((status, &transfer["resumable"], &transfer["done"]), (StatusCode::OK, &json!(false), &json!([])));
    let (status, link) =
        harness.call(Method::POST, &format!("/v1/downloads/{id}/link"), Some(json!({"ttl_secs": 600}))).await;
    assert_eq!(status, StatusCode::OK, "{link}");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!((590..=610).contains(&(link["expires_at"].as_u64().unwrap() - now)), "{link}");
    let bytes = reqwest::get(link["url"].as_str().unwrap()).await.unwrap().bytes().await.unwrap();
    assert_eq!(bytes.len() as u64, size);

    for (body, status) in [
        (json!({"variant": "secret"}), StatusCode::BAD_REQUEST),
        (json!({"variant": "default"}), StatusCode::BAD_REQUEST),
        (json!({"ttl_secs": 10}), StatusCode::BAD_REQUEST),
        (json!({"ttl_secs": 700_000}), StatusCode::BAD_REQUEST),
    ] {
        assert_eq!(
            harness.call(Method::POST, &format!("/v1/downloads/{id}/link"), Some(body.clone())).await.0,
            status,
            "{body}"
        );
    }
    let response = harness
        .client
        .post(format!("{}/v1/downloads/{id}/link", harness.base))
        .bearer_auth(other_token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND, "another account's download");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_download_shows_its_resume_record() {
    let options = OriginOptions { aggregate_rate: Some(256 * 1024), ..OriginOptions::default() };
    let harness = Harness::start(TOKEN, options).await;
    let size = 4 * 1024 * 1024;
    let url = harness.origin.url(size, "slow.bin");
    let (_, created) = harness.call(Method::POST, "/v1/downloads", Some(json!({"url": url, "connections": 2}))).await;
    let id = created["id"].as_str().unwrap().to_owned();
    for _ in 0..400 {
        let (_, job) = harness.call(Method::GET, &format!("/v1/downloads/{id}"), None).await;
        if job["bytes_done"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    harness.call(Method::POST, &format!("/v1/downloads/{id}/pause"), None).await;
    let (status, transfer) = harness.call(Method::GET, &format!("/v1/downloads/{id}/transfer"), None).await;
    assert_eq!((status, &transfer["resumable"]), (StatusCode::OK, &json!(true)), "{transfer}");
    assert_eq!(transfer["size"], size, "{transfer}");
    assert!(transfer["etag"].is_string(), "the origin sends an ETag: {transfer}");
    let done = transfer["done"].as_array().unwrap();
    assert!(!done.is_empty(), "{transfer}");
    for range in done {
        let (start, end) = (range[0].as_u64().unwrap(), range[1].as_u64().unwrap());
        assert!(start < end && end <= size, "{transfer}");
    }
    let other = "transfer-other-token-0123456789";
    harness.server.add_account("other", None, KeyKind::Bearer, other).await;
    let response = harness
        .client
        .get(format!("{}/v1/downloads/{id}/transfer", harness.base))
        .bearer_auth(other)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_searches_filters_several_states_and_sorts() {
    let harness = Harness::start(TOKEN, OriginOptions::default()).await;
    let mut ids = Vec::new();
    for name in ["Holiday.mp4", "report.pdf", "holiday-2.mp4", "notes.txt"] {
        let body = json!({"url": harness.origin.url(1000, name), "paused": true});
        ids.push(harness.call(Method::POST, "/v1/downloads", Some(body)).await.1["id"].as_str().unwrap().to_owned());
    }
    harness.call(Method::POST, &format!("/v1/downloads/{}/cancel", ids[3]), None).await;
    let listed = |query: &'static str| {
        let harness = &harness;
        async move {
            let (status, list) = harness.call(Method::GET, &format!("/v1/downloads?{query}"), None).await;
            assert_eq!(status, StatusCode::OK, "{query}: {list}");
            let ids: Vec<String> =
                list["downloads"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap().to_owned()).collect();
            (ids, list["total"].as_u64().unwrap(), list["next"].as_str().map(str::to_owned))
        }
    };
    assert_eq!(listed("search=HOLIDAY").await.0, [ids[2].clone(), ids[0].clone()]);
    assert_eq!(listed("search=holiday&order=oldest").await.0, [ids[0].clone(), ids[2].clone()]);
    assert_eq!(listed("state=paused,cancelled").await.1, 4);
    assert_eq!(listed("state=cancelled").await.0, [ids[3].clone()]);
    let (page, total, next) = listed("search=holiday&limit=1&order=oldest").await;
    assert_eq!((page, total), (vec![ids[0].clone()], 2));
    let next = next.expect("a next page");
    assert!(next.contains("search=holiday") && next.contains("order=oldest"), "{next}");
    let (status, second) = harness.call(Method::GET, &next, None).await;
    assert_eq!((status, second["downloads"][0]["id"].as_str()), (StatusCode::OK, Some(ids[2].as_str())));
    let (_, total, next) = listed("state=paused,cancelled&limit=2").await;
    assert_eq!(total, 4);
    assert!(next.unwrap().contains("state=paused,cancelled"));
    for query in ["state=paused,done", "order=random", &format!("search={}", "x".repeat(201))] {
        let (status, error) = harness.call(Method::GET, &format!("/v1/downloads?{query}"), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_served_with_a_strict_policy_and_can_be_switched_off() {
    let harness = Harness::start(TOKEN, OriginOptions::default()).await;
    let response = harness.client.get(format!("{}/", harness.base)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert!(headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
    let policy = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    for directive in ["default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"] {
        assert!(policy.contains(directive), "{policy}");
    }
    assert!(!policy.contains("unsafe-inline") && !policy.contains("unsafe-eval"), "{policy}");
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
    let html = response.text().await.unwrap();
    assert!(html.contains("<html"), "{html}");
    // No request leaves the server's origin: everything the page loads is a path on this server.
    for attribute in ["src=\"", "href=\""] {
        for value in html.split(attribute).skip(1).map(|rest| rest.split('"').next().unwrap()) {
            let local = (value.starts_with('/') && !value.starts_with("//")) || value.starts_with('#');
            assert!(local, "{attribute}{value}\"");
        }
    }

    let etag = headers[header::ETAG].to_str().unwrap().to_owned();
    let again =
        harness.client.get(format!("{}/", harness.base)).header(header::IF_NONE_MATCH, &etag).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    for path in ["/ui/missing.js", "/ui/../Cargo.toml", "/ui/%2e%2e/Cargo.toml", "/ui/..%2Fsrc%2Flib.rs"] {
        let response = harness.client.get(format!("{}{path}", harness.base)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }

    let off = Harness::start_with(TOKEN, OriginOptions::default(), |options| options.ui = false).await;
    let response = off.client.get(format!("{}/", off.base)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(off.call(Method::GET, "/v1/stats", None).await.0, StatusCode::OK);
}
