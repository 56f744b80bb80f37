//! The one place where failures become HTTP responses:
//! `{"error": {"code", "message", "retryable", "field"}}` with a stable code.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;
use tracing::error;

use crate::error::{BuildError, ErrorCode};
use crate::keys::AuthError;
use crate::links::LinkError;
use crate::reports::InvalidReport;
use crate::store::StoreError;

/// The error body's inner object.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable code.
    pub code: &'static str,
    /// What went wrong, for a person.
    pub message: String,
    /// Whether the same request may succeed later.
    pub retryable: bool,
    /// The request field at fault, if one is.
    pub field: Option<String>,
    /// For an uploaded file that cannot be used: the 1-based line of the
    /// first problem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
}

/// The error body.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// An API failure.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// The body.
    pub detail: ErrorDetail,
    /// Seconds for `Retry-After`, if any.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with a code and a message; the status and whether a retry
    /// may help follow from the code ([`ErrorCode::http_status`]).
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::from_u16(code.http_status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            detail: ErrorDetail {
                code: code.as_str(),
                message: message.into(),
                retryable: code.retryable(),
                field: None,
                line: None,
            },
            retry_after: None,
        }
    }
    /// `invalid_input`, 400.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidInput, message)
    }
    /// `not_found`, 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }
    /// `limit_exceeded`, 400.
    pub fn limit(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::LimitExceeded, message)
    }
    /// `internal`, 500; the details go to the log, not the client.
    pub fn internal(context: &str, e: &dyn std::fmt::Display) -> Self {
        error!(error = %e, context, "internal error");
        Self::new(ErrorCode::Internal, "internal error")
    }
    /// Names the field at fault.
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.detail.field = Some(field.into());
        self
    }
    /// Names the line of an uploaded file at fault.
    pub fn line(mut self, line: u64) -> Self {
        self.detail.line = Some(line);
        self
    }
    /// Marks the error retryable.
    pub fn retryable(mut self) -> Self {
        self.detail.retryable = true;
        self
    }
    /// The body as JSON, for batch items.
    pub fn body(&self) -> serde_json::Value {
        serde_json::to_value(ErrorBody {
            error: self.detail.clone(),
        })
        .unwrap_or(serde_json::Value::Null)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, Json(ErrorBody { error: self.detail })).into_response();
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        r
    }
}

impl From<BuildError> for ApiError {
    fn from(e: BuildError) -> Self {
        if e.code == ErrorCode::Internal {
            // A provider's own failure: the details go to the log only.
            return ApiError::internal("provider", &e);
        }
        let mut api = ApiError::new(e.code, e.message);
        api.detail.field = e.field.map(str::to_owned);
        api.retry_after = e.code.retryable().then_some(5);
        api
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(code) => ApiError::new(
                ErrorCode::Conflict,
                format!("the code `{code}` is taken by another link"),
            )
            .field("code"),
            other => ApiError::internal("store", &other),
        }
    }
}

impl From<InvalidReport> for ApiError {
    fn from(e: InvalidReport) -> Self {
        ApiError::invalid(e.message).field(e.field)
    }
}

impl From<LinkError> for ApiError {
    fn from(e: LinkError) -> Self {
        match e {
            LinkError::Rejected(b) => b.into(),
            LinkError::Store(s) => s.into(),
            other => {
                let mut api = ApiError::new(other.code(), other.to_string());
                api.detail.field = other.field().map(str::to_owned);
                api
            }
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Refused(failure) => {
                ApiError::new(ErrorCode::Unauthorized, failure.message())
            }
            other => ApiError::internal("auth", &other),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::MissingJsonContentType(_) => {
                ApiError::invalid("send the body as JSON with `Content-Type: application/json`")
            }
            other => ApiError::invalid(format!("malformed JSON: {}", other.body_text())),
        }
    }
}
