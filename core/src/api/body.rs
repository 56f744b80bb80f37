//! Request bodies of the admin API: the size limit of each route (413
//! `body_too_large` past it, in the API's error shape), the JSON extractor
//! ([`ApiJson`]) and the bound on JSON nesting ([`MAX_JSON_DEPTH`]).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Request};
use axum::routing::MethodRouter;
use http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

use super::ApiError;
use crate::error::ErrorCode;

/// Largest body of one link's create or change (`POST /links`, `PATCH
/// /links/{code}`): every field of a link at its limit fits.
pub const MAX_LINK_BODY_BYTES: usize = 128 * 1024;

/// Largest body of every other route without a limit of its own (a
/// synchronous batch or rewrite call of 100 items).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Deepest nesting of arrays and objects accepted in a JSON body. A link
/// request nests 3 levels (a bulk job's, 4); serde_json's own bound (128)
/// would answer later and less clearly.
pub const MAX_JSON_DEPTH: usize = 32;

/// The body limit of the route a request reached, for its error message.
#[derive(Debug, Clone, Copy)]
struct BodyLimit(usize);

/// `route` with a body limit of `bytes`: a larger body is answered 413.
pub(super) fn limited<S: Clone + Send + Sync + 'static>(
    route: MethodRouter<S>,
    bytes: usize,
) -> MethodRouter<S> {
    route
        .layer::<_, std::convert::Infallible>(DefaultBodyLimit::max(bytes))
        .layer::<_, std::convert::Infallible>(axum::Extension(BodyLimit(bytes)))
}

/// Applies the default body limit ([`MAX_BODY_BYTES`]) to a router; routes
/// [`limited`] on their own keep theirs.
pub(super) fn default_limit<S: Clone + Send + Sync + 'static>(
    router: axum::Router<S>,
) -> axum::Router<S> {
    router
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::Extension(BodyLimit(MAX_BODY_BYTES)))
}

/// `1 MiB`, `128 KiB`, `100 bytes`.
fn size(bytes: usize) -> String {
    const KIB: usize = 1024;
    match bytes {
        b if b >= KIB * KIB && b % (KIB * KIB) == 0 => format!("{} MiB", b / (KIB * KIB)),
        b if b >= KIB && b % KIB == 0 => format!("{} KiB", b / KIB),
        b => format!("{b} bytes"),
    }
}

impl ApiError {
    /// `body_too_large`, 413: the body is larger than the route's limit.
    pub fn too_large(limit: usize) -> Self {
        ApiError::new(
            ErrorCode::BodyTooLarge,
            format!(
                "the request body is too large: this route accepts at most {}",
                size(limit)
            ),
        )
        .field("body")
    }

    /// A body that could not be read: too large (413) or cut off (400).
    pub(super) fn from_body(e: &BytesRejection, limit: usize) -> Self {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(limit)
        } else {
            ApiError::invalid(format!("cannot read the body: {}", e.body_text())).field("body")
        }
    }
}

/// The deepest nesting of arrays and objects in a JSON text (strings and
/// their escapes skipped), counted without parsing, so it can be checked
/// before a parser recurses that deep.
pub fn json_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Refuses a JSON body nested deeper than [`MAX_JSON_DEPTH`].
pub(super) fn check_depth(bytes: &[u8]) -> Result<(), ApiError> {
    let depth = json_depth(bytes);
    if depth > MAX_JSON_DEPTH {
        return Err(ApiError::invalid(format!(
            "the JSON body nests {depth} levels deep; at most {MAX_JSON_DEPTH} are accepted"
        ))
        .field("body"));
    }
    Ok(())
}

/// Whether the body is declared JSON (`application/json`, `…+json`).
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// JSON body extractor whose every refusal uses the API's error shape: a
/// body past the route's limit (413), nested past [`MAX_JSON_DEPTH`], not
/// declared JSON, or malformed (400).
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let limit = req
            .extensions()
            .get::<BodyLimit>()
            .map_or(MAX_BODY_BYTES, |l| l.0);
        if !is_json(req.headers()) {
            return Err(ApiError::invalid(
                "send the body as JSON with `Content-Type: application/json`",
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::from_body(&e, limit))?;
        check_depth(&bytes)?;
        let axum::Json(value) = axum::Json::<T>::from_bytes(&bytes)?;
        Ok(ApiJson(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_depth_counts_arrays_and_objects_outside_strings() {
        for (text, depth) in [
            ("", 0),
            ("1", 0),
            ("{}", 1),
            (r#"{"a": [1, {"b": []}]}"#, 4),
            (r#"{"a": "[[[[{{{{"}"#, 1),
            (r#"{"a": "\"[[[", "b": [[]]}"#, 3),
            (r#"["\\", [[]]]"#, 3),
            ("]]]][", 1),
        ] {
            assert_eq!(json_depth(text.as_bytes()), depth, "{text}");
        }
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(json_depth(deep.as_bytes()), 100_000);
    }

    #[test]
    fn sizes_are_shown_in_the_largest_whole_unit() {
        assert_eq!(size(MAX_BODY_BYTES), "1 MiB");
        assert_eq!(size(MAX_LINK_BODY_BYTES), "128 KiB");
        assert_eq!(size(1000), "1000 bytes");
    }
}
