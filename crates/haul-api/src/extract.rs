//! Extractors that wrap axum's own so that their rejections come out as [`ApiError`], in the one error shape.

use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::{Json, RequestExt as _};
use haul_core::job::DownloadId;
use haul_core::media::RenditionName;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON object body; refused with 400 (syntax or shape, with serde's reason), 413 (over the body limit) or
/// 415. Only an object is taken: serde would also read a struct from an array of its fields in order
/// (`[null, null]`), which no client means.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + 'static> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, ApiError> {
        let Json(value) = request.extract::<Json<serde_json::Value>, _>().await?;
        if !value.is_object() {
            return Err(ApiError::bad_request("the body must be a JSON object"));
        }
        serde_json::from_value(value).map(Self).map_err(|error| ApiError::bad_request(format!("invalid body: {error}")))
    }
}

/// A query string; refused with 400 naming the bad parameter.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + 'static> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(value) = Query::<T>::from_request_parts(parts, state).await?;
        Ok(Self(value))
    }
}

/// The `{id}` of a download route; anything but a hyphenated UUID is a 400 that says what was expected.
pub struct IdPath(pub DownloadId);

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(text) = Path::<String>::from_request_parts(parts, state).await?;
        download_id(&text).map(Self)
    }
}

/// The `{id}/renditions/{name}` of a rendition route; a bad id or an unknown name is a 400.
pub struct RenditionPath(pub DownloadId, pub RenditionName);

impl<S: Send + Sync> FromRequestParts<S> for RenditionPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path((id, name)) = Path::<(String, String)>::from_request_parts(parts, state).await?;
        let id = download_id(&id)?;
        let name =
            name.parse().map_err(|error: haul_core::names::UnknownName| ApiError::bad_request(error.to_string()))?;
        Ok(Self(id, name))
    }
}

/// A download id from a path or a query, or a 400 that says what one looks like; the dialects wrap the message
/// in their own shapes.
/// The `{id}` of a webhook or rule route, which the store looks up as given: anything not shaped like a hyphenated
/// UUID cannot be one, and is the same 404 an unknown one gets, saying where the ids are listed.
pub(crate) fn listed_id(text: String, what: &str, listed_at: &str) -> Result<String, ApiError> {
    if text.len() == 36 && text.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
        Ok(text)
    } else {
        Err(ApiError::not_found(format!("{what} {text:?} not found; ids are the UUIDs GET {listed_at} lists")))
    }
}

pub fn download_id(text: &str) -> Result<DownloadId, ApiError> {
    text.parse().map_err(|error: haul_core::job::IdError| ApiError::bad_request(error.to_string()))
}
