//! `ApiError`: the one error shape every endpoint answers with, `{"error": {"code", "message"}}`, and the
//! mapping from engine errors and axum's own rejections into it.
//!
//! **Invariant**: no other module builds an error response by hand, so a client parses one shape for every
//! failure, including unknown routes, wrong methods and bodies axum refuses before a handler runs.

use axum::Json;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use haul_engine::service::ServiceError;
use haul_engine::task::chain;
use serde::Serialize;
use utoipa::ToSchema;

/// Why a request failed, as sent to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable, machine-readable: `bad_request`, `unauthorized`, `not_found`, `method_not_allowed`, `conflict`,
    /// `payload_too_large`, `unsupported_media_type`, `range_not_satisfiable`, `unsupported_url`, `forbidden`,
    /// `destination_refused` (a URL whose address the server keeps out of reach), `too_many_downloads`,
    /// `idempotency_key_reused` (422: the key was used for another request), `already_downloaded` (409: the
    /// account's archive holds it; `download` names the earlier download), `not_implemented`, `bad_gateway` (another node holding the file did not answer), `internal`.
    pub code: &'static str,
    /// For people: what failed, on which object, and what to do where that is known.
    pub message: String,
    /// The download an error is about, when it names one that is not in the request (`already_downloaded`).
    pub download: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), download: None }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    pub fn range_not_satisfiable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::RANGE_NOT_SATISFIABLE, "range_not_satisfiable", message)
    }

    /// A well-formed request the server cannot act on, with its own `code` (`idempotency_key_reused`).
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// Another node that holds what was asked for did not answer (several nodes, node-local directories).
    pub fn bad_gateway(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "bad_gateway", message)
    }

    /// Logs the detail and sends only a generic message: internals (paths, SQL errors) are not the client's
    /// business and may help an attacker.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error answering an API request");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal server error; see the server log")
    }
}

/// The JSON body of every error response.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable, e.g. `not_found`.
    #[schema(example = "not_found")]
    pub code: String,
    #[schema(example = "download 3f2a5c1e-8b7d-4c2a-9e1f-0a1b2c3d4e5f not found")]
    pub message: String,
    /// `already_downloaded` only: the earlier download of what was added (it may have been removed since).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = Uuid)]
    pub download: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail { code: self.code.to_owned(), message: self.message, download: self.download },
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::Invalid(message) => Self::bad_request(message),
            ServiceError::UnsupportedScheme(message) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "unsupported_url", message)
            }
            ServiceError::RefusedDestination(message) => {
                Self::new(StatusCode::FORBIDDEN, "destination_refused", message)
            }
            ServiceError::NotFound(message) => Self::not_found(message),
            // The message names the current state ("cannot resume a download that is completed"): an invariant
            // of the store's `Conflict`.
            ServiceError::Conflict { message, .. } => Self::conflict(message),
            ServiceError::Unsupported(message) => Self::new(StatusCode::NOT_IMPLEMENTED, "not_implemented", message),
            ServiceError::LimitReached(message) => {
                Self::new(StatusCode::TOO_MANY_REQUESTS, "too_many_downloads", message)
            }
            ServiceError::AlreadyDownloaded { download, message } => Self {
                download: download.map(|id| id.to_string()),
                ..Self::new(StatusCode::CONFLICT, "already_downloaded", message)
            },
            ServiceError::Internal(cause) => Self::internal(chain(cause.as_ref())),
        }
    }
}

/// A service failure's status and message for the compatibility dialects, which each wrap the pair in their own
/// shape: the one mapping they share, so a new kind of failure is answered the same way by all of them.
/// Internal details are logged (naming `api`) and replaced by a generic message.
pub(crate) fn dialect_failure(error: ServiceError, api: &str) -> (StatusCode, String) {
    match error {
        // A destination the server will not fetch is a bad URL to these clients, whose 403s mean "your key".
        ServiceError::Invalid(message)
        | ServiceError::UnsupportedScheme(message)
        | ServiceError::RefusedDestination(message) => (StatusCode::BAD_REQUEST, message),
        ServiceError::NotFound(message) => (StatusCode::NOT_FOUND, message),
        ServiceError::Conflict { message, .. } | ServiceError::AlreadyDownloaded { message, .. } => {
            (StatusCode::CONFLICT, message)
        }
        ServiceError::Unsupported(message) => (StatusCode::NOT_IMPLEMENTED, message),
        ServiceError::LimitReached(message) => (StatusCode::TOO_MANY_REQUESTS, message),
        ServiceError::Internal(detail) => {
            tracing::error!(error = %chain(detail.as_ref()), api, "internal error answering a request");
            (StatusCode::INTERNAL_SERVER_ERROR, "Internal server error; see the server log".to_owned())
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("request body is larger than {} bytes", crate::MAX_JSON_BODY),
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "request body must be JSON: send Content-Type: application/json",
            ),
            // axum answers a well-formed body of the wrong shape with 422; here 422 means "URL we cannot
            // fetch", so every other body problem is a plain 400 carrying serde's reason.
            _ => Self::bad_request(rejection.body_text()),
        }
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("request body is larger than {} bytes", crate::MAX_JSON_BODY),
            ),
            _ => Self::bad_request(rejection.body_text()),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::bad_request(rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::bad_request(rejection.body_text())
    }
}

/// Fallback for paths no route matches.
pub async fn unknown_route(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no such endpoint: {}", uri.path()))
}

/// Fallback for a known path asked with a method it does not have; axum adds the `Allow` header.
pub async fn wrong_method(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}
