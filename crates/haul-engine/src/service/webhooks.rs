//! Webhooks: an account's endpoints told of its downloads' events, signed, in order per job, at least once.
//!
//! The store writes a delivery (its outbox) in the same transaction as each change of state, whoever makes it
//! (see `haul-store`'s webhook migrations); this module manages webhooks for the API and runs the delivery task,
//! [`Engine::deliver_webhooks`]: it claims due deliveries under a lease (so with several nodes each is sent by
//! one at a time), POSTs each, signed, and records the answer. A 2xx is delivered; anything else is tried again
//! after [`WebhookOptions::retry_delays`] until [`WebhookOptions::give_up_after`] has passed since the event.
//! The task is woken when this node changes a state, and otherwise polls (other nodes' changes, retries).
//!
//! **Invariant**: deliveries go only where downloads may: names through [`PolicyResolver`], literal addresses
//! through `check_url`, and no redirect is followed (a 3xx is a failed attempt).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt as _;
use haul_core::job::{AccountId, DownloadId};
use haul_store::{AttemptOutcome, DeliveryAttempt, DeliveryRecord, DueDelivery, NewWebhook, WebhookRecord};
use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use url::Url;

pub use haul_store::DeliveryState;

use super::Engine;
use super::error::ServiceError;
use super::events::EventKind;
use crate::destination::{DestinationPolicy, PolicyResolver, refusal_in};
use crate::http::ClientOptions;

/// Deliveries claimed at once, and sent at once (each to its own job).
const BATCH: u32 = 32;
/// Finished deliveries are kept this long for `GET /v1/webhooks/{id}/deliveries`, then pruned.
const KEEP: Duration = Duration::from_secs(7 * 24 * 60 * 60);
const PRUNE_EVERY: Duration = Duration::from_secs(60 * 60);
/// The most deliveries listed at once.
pub const MAX_DELIVERIES_LISTED: u32 = 1000;

/// How deliveries are sent and retried; the defaults are the production schedule, tests shorten them.
#[derive(Clone, Debug)]
pub struct WebhookOptions {
    /// How often the store is looked at for deliveries this node was not woken for (other nodes' changes,
    /// retries coming due).
    pub poll: Duration,
    /// The wait after the first, second, ... failed attempt; the last one repeats.
    pub retry_delays: Vec<Duration>,
    /// A delivery still failing this long after its event is given up (`failed`).
    pub give_up_after: Duration,
    /// One attempt's limit, connection to answer.
    pub timeout: Duration,
}

impl Default for WebhookOptions {
    fn default() -> Self {
        let minutes = |n: u64| Duration::from_secs(60 * n);
        Self {
            poll: Duration::from_secs(2),
            retry_delays: vec![
                Duration::from_secs(10),
                Duration::from_secs(30),
                minutes(1),
                minutes(5),
                minutes(15),
                minutes(60),
            ],
            give_up_after: Duration::from_secs(25 * 60 * 60),
            timeout: Duration::from_secs(10),
        }
    }
}

impl WebhookOptions {
    /// What follows attempt number `attempts` (1 for the first) that failed, of an event at `occurred_at`, at
    /// `now` (unix milliseconds).
    fn after_failure(&self, attempts: u32, occurred_at: i64, now: i64) -> AttemptOutcome {
        let index = usize::try_from(attempts.saturating_sub(1)).unwrap_or(usize::MAX);
        let delay = self.retry_delays.get(index).or(self.retry_delays.last()).copied().unwrap_or(Duration::ZERO);
        let at = now.saturating_add(millis(delay));
        if at > occurred_at.saturating_add(millis(self.give_up_after)) {
            AttemptOutcome::GiveUp
        } else {
            AttemptOutcome::RetryAt(at)
        }
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// A webhook as the API shows it (its secret only once, when made).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookView {
    pub id: String,
    pub url: String,
    /// The events it is sent; empty for every event.
    pub events: Vec<EventKind>,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// What `POST /v1/webhooks` asks for.
#[derive(Clone, Debug, Default)]
pub struct WebhookRequest {
    pub url: String,
    /// Event names; empty (or `*`) for every event.
    pub events: Vec<String>,
    /// The signing secret; a fresh `whsec_...` one when `None`.
    pub secret: Option<String>,
}

/// One delivery of an event to a webhook, with its attempts so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryView {
    /// The same on every attempt (`Haul-Delivery`).
    pub id: String,
    pub event: EventKind,
    pub download: DownloadId,
    pub state: DeliveryState,
    pub attempts: u32,
    /// Unix milliseconds.
    pub occurred_at: i64,
    /// When it is tried again, while pending.
    pub next_attempt_at: Option<i64>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub delivered_at: Option<i64>,
}

/// The events a webhook may ask for: every event but `progress`, which is many a second.
pub fn webhook_events() -> impl Iterator<Item = EventKind> {
    EventKind::ALL.into_iter().filter(|kind| *kind != EventKind::Progress)
}

fn view_of(record: WebhookRecord) -> WebhookView {
    let WebhookRecord { id, url, events, created_at, .. } = record;
    // Names were checked when the webhook was made; one that no longer parses is left out of the view.
    let events = events.iter().filter_map(|name| name.parse().ok()).collect();
    WebhookView { id, url, events, created_at }
}

fn delivery_view(record: DeliveryRecord) -> Result<DeliveryView, ServiceError> {
    let event = record.event.parse().map_err(ServiceError::internal)?;
    let pending = record.state == DeliveryState::Pending;
    Ok(DeliveryView {
        id: record.id,
        event,
        download: record.download,
        state: record.state,
        attempts: record.attempts,
        occurred_at: record.occurred_at,
        next_attempt_at: pending.then_some(record.next_attempt_at),
        last_status: record.last_status,
        last_error: record.last_error,
        delivered_at: record.delivered_at,
    })
}

/// The events a request names, checked: empty or `*` is every event.
fn check_events(names: &[String]) -> Result<Vec<String>, ServiceError> {
    if names.is_empty() || names.iter().any(|name| name.trim() == "*") {
        return Ok(Vec::new());
    }
    let valid: Vec<&str> = webhook_events().map(EventKind::as_str).collect();
    let mut events: Vec<String> = Vec::new();
    for name in names {
        let name = name.trim();
        if !valid.contains(&name) {
            return Err(ServiceError::Invalid(format!(
                "unknown webhook event {name:?}; expected * or any of {}",
                valid.join(", ")
            )));
        }
        if !events.iter().any(|known| known == name) {
            events.push(name.to_owned());
        }
    }
    Ok(events)
}

/// A fresh signing secret: `whsec_` and 64 hexadecimal digits (256 random bits from two v4 UUIDs' 244).
pub fn new_webhook_secret() -> String {
    format!("whsec_{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

/// The `Haul-Signature` value for `body` sent at `timestamp` (unix seconds): `t=TIMESTAMP,v1=HEX`, where HEX is
/// the HMAC-SHA256 under `secret` of `TIMESTAMP.BODY` (Stripe's scheme, so its receivers' code fits).
pub fn signature(secret: &str, timestamp: u64, body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={timestamp},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// A delivery's body: the same bytes on every attempt (only the signature's timestamp changes).
fn body_of(delivery: &DeliveryRecord) -> Result<Vec<u8>, serde_json::Error> {
    let download: serde_json::Value = serde_json::from_str(&delivery.payload)?;
    serde_json::to_vec(&serde_json::json!({
        "id": delivery.id,
        "event": delivery.event,
        "webhook": delivery.webhook,
        "occurred_at": delivery.occurred_at,
        "download": download,
    }))
}

/// The client deliveries go out on: the downloads' destination policy, no redirects, no proxy where the policy
/// restricts anything (through a proxy it could not see where a connection leads), one timeout per attempt.
fn client(options: &ClientOptions, timeout: Duration) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .user_agent(options.user_agent.clone())
        .http1_only()
        .connect_timeout(options.connect_timeout.min(timeout))
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .referer(false)
        .dns_resolver(Arc::new(PolicyResolver { policy: options.destinations.clone() }))
        .tls_built_in_native_certs(true)
        .tls_built_in_webpki_certs(true)
        .local_address(options.local_address);
    for root in crate::http::extra_roots(&options.ca_certs).map_err(|error| error.to_string())? {
        builder = builder.add_root_certificate(root);
    }
    if !options.destinations.allows_everything() {
        builder = builder.no_proxy();
    }
    builder.build().map_err(|error| format!("cannot build the webhook client: {error}"))
}

impl Engine {
    /// Adds a webhook to `account`: its URL checked (http or https, a literal address the destination policy
    /// allows), its events known. Returns it with its secret, which is not shown again.
    pub async fn add_webhook(
        &self,
        account: &AccountId,
        request: WebhookRequest,
    ) -> Result<(WebhookView, String), ServiceError> {
        let url = super::validate::check_url(&request.url, &self.inner.options.client.destinations)?;
        let events = check_events(&request.events)?;
        let secret = match request.secret.map(|secret| secret.trim().to_owned()) {
            Some(secret) if secret.len() < 16 || secret.len() > 256 => {
                return Err(ServiceError::Invalid(format!(
                    "a webhook secret takes 16 to 256 characters, got {}; or leave it out for a generated one",
                    secret.len()
                )));
            }
            Some(secret) => secret,
            None => new_webhook_secret(),
        };
        let new = NewWebhook { account: account.clone(), url, events, secret: secret.clone() };
        let record = self.inner.store.create_webhook(&new).await?;
        Ok((view_of(record), secret))
    }

    /// The account's webhooks, oldest first.
    pub async fn webhooks(&self, account: &AccountId) -> Result<Vec<WebhookView>, ServiceError> {
        Ok(self.inner.store.list_webhooks(account).await?.into_iter().map(view_of).collect())
    }

    pub async fn webhook(&self, account: &AccountId, id: &str) -> Result<WebhookView, ServiceError> {
        Ok(view_of(self.inner.store.webhook(account, id).await?))
    }

    /// Removes a webhook of the account, with its deliveries: those not yet made are dropped.
    pub async fn remove_webhook(&self, account: &AccountId, id: &str) -> Result<WebhookView, ServiceError> {
        Ok(view_of(self.inner.store.delete_webhook(account, id).await?))
    }

    /// A webhook's deliveries, newest first, at most `limit` (up to [`MAX_DELIVERIES_LISTED`]).
    pub async fn webhook_deliveries(
        &self,
        account: &AccountId,
        id: &str,
        limit: u32,
    ) -> Result<Vec<DeliveryView>, ServiceError> {
        let limit = limit.clamp(1, MAX_DELIVERIES_LISTED);
        self.inner.store.deliveries(account, id, limit).await?.into_iter().map(delivery_view).collect()
    }

    /// The delivery task: until shutdown, claims due deliveries and sends them. A batch under way when the
    /// server stops is finished (each attempt is bounded by the timeout), so no claim is left for a lease to
    /// run out.
    pub(super) async fn deliver_webhooks(&self) -> Result<(), String> {
        let options = self.inner.options.webhooks.clone();
        let node = self.inner.options.node.clone();
        let client = client(&self.inner.options.client, options.timeout)?;
        let policy = self.inner.options.client.destinations.clone();
        // A claim outlives the attempt it is for.
        let lease = options.timeout + Duration::from_secs(30);
        // What this node held when it was killed is due again now, not when its claims run out.
        if let Err(error) = self.inner.store.release_deliveries(&node).await {
            tracing::warn!(error = %crate::task::chain(&error), "cannot release this node's webhook deliveries");
        }
        // A retry sooner than the poll is not left waiting for it.
        let poll = options.retry_delays.iter().copied().min().map_or(options.poll, |first| options.poll.min(first));
        let poll = poll.max(Duration::from_millis(50));
        let mut pruned_at: Option<tokio::time::Instant> = None;
        loop {
            if pruned_at.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
                pruned_at = Some(tokio::time::Instant::now());
                if let Err(error) = self.inner.store.prune_deliveries(KEEP).await {
                    tracing::warn!(error = %crate::task::chain(&error), "cannot prune old webhook deliveries");
                }
            }
            let mut full = false;
            match self.inner.store.claim_deliveries(&node, lease, BATCH).await {
                Ok(due) => {
                    full = due.len() == BATCH as usize;
                    futures_util::stream::iter(due)
                        .for_each_concurrent(None, |due| self.deliver_one(&client, &policy, &options, &node, due))
                        .await;
                }
                Err(error) => {
                    tracing::warn!(error = %crate::task::chain(&error), "cannot claim webhook deliveries");
                }
            }
            if full {
                continue;
            }
            tokio::select! {
                () = self.inner.webhooks_wake.notified() => {}
                () = tokio::time::sleep(poll) => {}
                () = self.inner.shutdown.cancelled() => return Ok(()),
            }
        }
    }

    async fn deliver_one(
        &self,
        client: &reqwest::Client,
        policy: &DestinationPolicy,
        options: &WebhookOptions,
        node: &str,
        due: DueDelivery,
    ) {
        let delivery = &due.delivery;
        let (status, error) = send(client, policy, &due).await;
        let now = haul_core::clock::unix_millis(SystemTime::now());
        let next = match (status, &error) {
            (Some(_), None) => AttemptOutcome::Delivered,
            _ => options.after_failure(delivery.attempts + 1, delivery.occurred_at, now),
        };
        match (&next, &error) {
            (AttemptOutcome::GiveUp, Some(error)) => tracing::warn!(
                webhook = %delivery.webhook, delivery = %delivery.id, event = %delivery.event, %error,
                attempts = delivery.attempts + 1, "webhook delivery given up"
            ),
            (_, Some(error)) => tracing::debug!(
                webhook = %delivery.webhook, delivery = %delivery.id, event = %delivery.event, %error,
                "webhook delivery failed; will retry"
            ),
            _ => {}
        }
        let attempt = DeliveryAttempt { status, error, next };
        match self.inner.store.record_attempt(&delivery.id, node, &attempt).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(delivery = %delivery.id, "a webhook delivery's claim ran out while it was sent")
            }
            Err(error) => tracing::warn!(
                delivery = %delivery.id, error = %crate::task::chain(&error),
                "cannot record a webhook delivery's attempt; it will be sent again"
            ),
        }
    }
}

/// One attempt: the status if the receiver answered, and why it failed if it did (a non-2xx status, a refused
/// destination, a network error).
async fn send(
    client: &reqwest::Client,
    policy: &DestinationPolicy,
    due: &DueDelivery,
) -> (Option<u16>, Option<String>) {
    let delivery = &due.delivery;
    let body = match body_of(delivery) {
        Ok(body) => body,
        Err(error) => return (None, Some(format!("the stored event is not JSON: {error}"))),
    };
    let url = match Url::parse(&due.url) {
        Ok(url) => url,
        Err(error) => return (None, Some(format!("{}: not a URL ({error})", due.url))),
    };
    if let Err(refused) = policy.check_url(&url) {
        return (None, Some(refused.to_string()));
    }
    let timestamp = haul_core::clock::unix_secs(SystemTime::now());
    let request = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("Haul-Webhook-Id", &delivery.webhook)
        .header("Haul-Delivery", &delivery.id)
        .header("Haul-Event", &delivery.event)
        .header("Haul-Signature", signature(&due.secret, timestamp, &body))
        .body(body);
    match request.send().await {
        Ok(response) if response.status().is_success() => (Some(response.status().as_u16()), None),
        Ok(response) => {
            let status = response.status();
            (Some(status.as_u16()), Some(format!("answered {status}")))
        }
        Err(error) => {
            let why = match refusal_in(&error) {
                Some(refused) => refused.to_string(),
                None => crate::http::describe(&error),
            };
            (None, Some(why))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_stripes_scheme() {
        // HMAC-SHA256("whsec_test", "1700000000.{}"), as `python3 -c 'import hmac,hashlib;
        // print(hmac.new(b"whsec_test", b"1700000000.{}", hashlib.sha256).hexdigest())'` prints it.
        let expected = "t=1700000000,v1=35495024f4ef3f94e5a93e22221544c4b75e9a42300cd965ab81cb85cd994e91";
        let got = signature("whsec_test", 1_700_000_000, b"{}");
        assert_eq!(got, expected);
    }

    #[test]
    fn failed_attempts_back_off_then_give_up_a_day_after_the_event() {
        let options = WebhookOptions::default();
        let hour = 3_600_000;
        let at = |attempts, now| options.after_failure(attempts, 0, now);
        assert_eq!(at(1, 0), AttemptOutcome::RetryAt(10_000));
        assert_eq!(at(2, 10_000), AttemptOutcome::RetryAt(40_000));
        assert_eq!(at(3, 0), AttemptOutcome::RetryAt(60_000));
        assert_eq!(at(6, 0), AttemptOutcome::RetryAt(hour));
        assert_eq!(at(40, 20 * hour), AttemptOutcome::RetryAt(21 * hour), "hourly after the schedule");
        assert_eq!(at(40, 24 * hour), AttemptOutcome::RetryAt(25 * hour));
        assert_eq!(at(41, 24 * hour + 1), AttemptOutcome::GiveUp);
    }

    #[test]
    fn events_are_checked_and_star_or_none_means_all() {
        let names = |list: &[&str]| list.iter().map(|name| (*name).to_owned()).collect::<Vec<_>>();
        assert_eq!(check_events(&[]).unwrap(), Vec::<String>::new());
        assert_eq!(check_events(&names(&["*"])).unwrap(), Vec::<String>::new());
        assert_eq!(check_events(&names(&["completed", " failed", "completed"])).unwrap(), ["completed", "failed"]);
        for bad in ["progress", "done", ""] {
            let error = check_events(&names(&[bad])).unwrap_err().to_string();
            assert!(error.contains("expected * or any of added, started, paused"), "{error}");
            assert!(!error.contains("progress,"), "{error}");
        }
    }
}
