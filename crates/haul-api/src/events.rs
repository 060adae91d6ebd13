//! `GET /v1/events`: the caller's download events as server-sent events, resumable with `Last-Event-ID`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use haul_core::job::AccountId;
use haul_engine::service::{Engine, Event};
use tokio::sync::broadcast::{Receiver, error::RecvError};

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::wire::EventData;

/// How often an idle stream sends a comment, so proxies and clients do not time the connection out.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// A stream of `id:` (event id), `event:` (kind: added, started, progress, paused, resumed, completed, failed,
/// cancelled, removed) and `data:` (`EventData` JSON). A reconnecting client sends `Last-Event-ID` and first
/// gets the events it missed that the server still holds.
#[utoipa::path(get, path = "/v1/events", tag = "events", security(("bearer" = [])),
    params(("Last-Event-ID" = Option<String>, Header, nullable = false, pattern = "^[0-9]{0,19}$",
        description = "Replay events after this id first")),
    responses(
        (status = 200, description = "text/event-stream; each event's data is EventData as JSON",
            content_type = "text/event-stream", body = crate::wire::SseEvent),
        (status = 400, description = "Last-Event-ID is not an event id", body = ErrorBody),
        (status = 401, body = ErrorBody),
    ))]
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    last_event_id(&headers)?;
    let mut feed = Feed::new(state.engine.clone(), caller.account, &headers);
    feed._open = Some(state.metrics.stream_opened());
    let stream = futures_util::stream::unfold(feed, |mut feed| async move {
        let event = feed.next().await?;
        Some((Ok(to_sse(event)), feed))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// The `Last-Event-ID` a reconnecting client sends: absent or empty, or the id of an event.
fn last_event_id(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get("last-event-id") else { return Ok(None) };
    let text = value.to_str().map(str::trim).unwrap_or("-");
    if text.is_empty() {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|_| ApiError::bad_request(format!("Last-Event-ID must be the id of an event (digits), got {text:?}")))
}

/// One client's position in the event sequence; shared with the dialects that stream events.
pub(crate) struct Feed {
    engine: Engine,
    account: AccountId,
    receiver: Receiver<Event>,
    /// Events to send before reading live ones: the Last-Event-ID replay, or what a lag made us miss.
    replay: VecDeque<Event>,
    /// The highest event id handled (sent or filtered out), so replayed and live events are not sent twice.
    last_seen: Option<u64>,
    /// Counts the stream as open in the metrics while it lives.
    _open: Option<crate::metrics::StreamGuard>,
}

impl Feed {
    /// A feed of `account`'s events, starting after the request's `Last-Event-ID` when it has one.
    pub(crate) fn new(engine: Engine, account: AccountId, headers: &HeaderMap) -> Self {
        let last_event_id = last_event_id(headers).ok().flatten();
        // Subscribe before reading the replay buffer, so an event published between the two is in one or the
        // other; one in both is skipped by id.
        let receiver = engine.subscribe();
        let replay = last_event_id.map(|id| engine.events_since(id)).unwrap_or_default();
        Self { engine, account, receiver, replay: replay.into(), last_seen: last_event_id, _open: None }
    }

    /// The next event for this account; `None` when the engine has shut down.
    pub(crate) async fn next(&mut self) -> Option<Event> {
        loop {
            let event = match self.replay.pop_front() {
                Some(event) => event,
                None => match self.receiver.recv().await {
                    Ok(event) => event,
                    // A slow client fell behind the channel; fetch what it missed from the engine's ring buffer
                    // (which may itself have dropped the oldest) instead of silently skipping.
                    Err(RecvError::Lagged(missed)) => {
                        tracing::debug!(missed, "event stream lagged; replaying from the buffer");
                        if let Some(last_seen) = self.last_seen {
                            self.replay = self.engine.events_since(last_seen).into();
                        }
                        continue;
                    }
                    Err(RecvError::Closed) => return None,
                },
            };
            if self.last_seen.is_some_and(|seen| event.id <= seen) {
                continue;
            }
            self.last_seen = Some(event.id);
            if event.account == self.account {
                return Some(event);
            }
        }
    }
}

fn to_sse(event: Event) -> SseEvent {
    let kind = event.kind.as_str();
    let id = event.id.to_string();
    let data = serde_json::to_string(&EventData::from(event)).unwrap_or_else(|error| {
        tracing::error!(%error, "serialising an event");
        "{}".to_owned()
    });
    SseEvent::default().id(id).event(kind).data(data)
}
