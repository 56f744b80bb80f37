//! The vocabulary of errors that reach users: one [`ErrorCode`] enum for
//! every code the API, the CLI and the public host emit, the one mapping
//! from a code to an HTTP status, and [`BuildError`], a provider's failure.

use std::fmt;

use linkwright_plugin_sdk::Status;

/// A stable, machine-readable error code; the same strings the API, the CLI
/// and `/go` return. A code exists only here, so a typo does not compile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The input is malformed.
    InvalidInput,
    /// The URL is on a provider's host but is not a product page.
    NotAProductUrl,
    /// An ASIN (or another product id) is malformed.
    InvalidAsin,
    /// No provider handles the URL's host.
    UnsupportedHost,
    /// The marketplace has no tracking ID configured.
    MarketplaceNotConfigured,
    /// The advertiser does not permit deep links.
    DeeplinkNotPermitted,
    /// The publisher is not approved for the advertiser.
    NotApproved,
    /// A short link (amzn.to, …) must be expanded first.
    NeedsExpansion,
    /// An upstream service is unavailable; a retry may help.
    UpstreamUnavailable,
    /// Something went wrong inside linkwright or a plugin.
    Internal,
    /// A limit was exceeded (batch > 100, bulk > 5,000, a field too long).
    LimitExceeded,
    /// A request body is larger than its route accepts.
    BodyTooLarge,
    /// No such link, job or key.
    NotFound,
    /// The custom code (or another unique name) is taken.
    Conflict,
    /// No valid API key.
    Unauthorized,
    /// The key lacks the scope.
    Forbidden,
    /// Too many requests for this key.
    RateLimited,
}

impl ErrorCode {
    /// The stable string form.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidInput => "invalid_input",
            ErrorCode::NotAProductUrl => "not_a_product_url",
            ErrorCode::InvalidAsin => "invalid_asin",
            ErrorCode::UnsupportedHost => "unsupported_host",
            ErrorCode::MarketplaceNotConfigured => "marketplace_not_configured",
            ErrorCode::DeeplinkNotPermitted => "deeplink_not_permitted",
            ErrorCode::NotApproved => "not_approved",
            ErrorCode::NeedsExpansion => "needs_expansion",
            ErrorCode::UpstreamUnavailable => "upstream_unavailable",
            ErrorCode::Internal => "internal",
            ErrorCode::LimitExceeded => "limit_exceeded",
            ErrorCode::BodyTooLarge => "body_too_large",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::RateLimited => "rate_limited",
        }
    }

    /// The HTTP status of an answer carrying this code: the one mapping,
    /// used by the admin API and the public host alike. Malformed input is
    /// 400; well-formed input that no provider can turn into a link is 422.
    pub const fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidInput | ErrorCode::NeedsExpansion | ErrorCode::LimitExceeded => 400,
            ErrorCode::NotAProductUrl
            | ErrorCode::InvalidAsin
            | ErrorCode::UnsupportedHost
            | ErrorCode::MarketplaceNotConfigured
            | ErrorCode::DeeplinkNotPermitted
            | ErrorCode::NotApproved => 422,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::Conflict => 409,
            ErrorCode::RateLimited => 429,
            ErrorCode::BodyTooLarge => 413,
            ErrorCode::Internal => 500,
            ErrorCode::UpstreamUnavailable => 503,
        }
    }

    /// Whether the same request may succeed later.
    pub const fn retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::UpstreamUnavailable | ErrorCode::RateLimited
        )
    }

    /// Who is at fault: the client's input, or the service.
    pub const fn is_client_error(self) -> bool {
        self.http_status() < 500
    }

    /// Every code, for tests and documentation.
    pub const ALL: [ErrorCode; 17] = [
        ErrorCode::InvalidInput,
        ErrorCode::NotAProductUrl,
        ErrorCode::InvalidAsin,
        ErrorCode::UnsupportedHost,
        ErrorCode::MarketplaceNotConfigured,
        ErrorCode::DeeplinkNotPermitted,
        ErrorCode::NotApproved,
        ErrorCode::NeedsExpansion,
        ErrorCode::UpstreamUnavailable,
        ErrorCode::Internal,
        ErrorCode::LimitExceeded,
        ErrorCode::BodyTooLarge,
        ErrorCode::NotFound,
        ErrorCode::Conflict,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::RateLimited,
    ];
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a template could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct BuildError {
    /// The stable code.
    pub code: ErrorCode,
    /// A message for the user.
    pub message: String,
    /// The provider that answered, if one did.
    pub provider: Option<String>,
    /// The request field at fault, if one is.
    pub field: Option<&'static str>,
}

impl BuildError {
    /// An error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        BuildError {
            code,
            message: message.into(),
            provider: None,
            field: None,
        }
    }

    /// Names the provider that answered.
    pub fn provider(mut self, name: &str) -> Self {
        self.provider = Some(name.to_owned());
        self
    }

    /// Names the request field at fault.
    pub fn field(mut self, field: &'static str) -> Self {
        self.field = Some(field);
        self
    }

    /// Whether a retry may help.
    pub fn retryable(&self) -> bool {
        self.code.retryable()
    }

    /// Maps a plugin's failure to a user-facing error.
    pub fn from_plugin(provider: &str, status: Option<Status>, code: i32, message: String) -> Self {
        let (code, field, message) = match status {
            Some(Status::InvalidInput) => (ErrorCode::InvalidInput, None, message),
            Some(Status::NotAProductUrl) => (ErrorCode::NotAProductUrl, Some("input"), message),
            Some(Status::InvalidProductId) => (ErrorCode::InvalidAsin, Some("input"), message),
            Some(Status::UnsupportedHost | Status::Declined) => {
                (ErrorCode::UnsupportedHost, Some("input"), message)
            }
            Some(Status::MarketplaceNotConfigured) => (
                ErrorCode::MarketplaceNotConfigured,
                Some("marketplace"),
                message,
            ),
            Some(Status::DeeplinkNotPermitted) => {
                (ErrorCode::DeeplinkNotPermitted, Some("input"), message)
            }
            Some(Status::NotApproved) => (ErrorCode::NotApproved, None, message),
            Some(Status::NeedsExpansion) => (ErrorCode::NeedsExpansion, Some("input"), message),
            Some(Status::UpstreamUnavailable) => (ErrorCode::UpstreamUnavailable, None, message),
            Some(Status::Panic) => (
                ErrorCode::Internal,
                None,
                format!("provider `{provider}` failed and is disabled until restart: {message}"),
            ),
            Some(Status::ConfigRejected | Status::InitFailed | Status::Internal) => (
                ErrorCode::Internal,
                None,
                format!("provider `{provider}` failed: {message}"),
            ),
            None => (
                ErrorCode::Internal,
                None,
                format!("provider `{provider}` returned unknown status {code}: {message}"),
            ),
        };
        BuildError {
            code,
            message,
            provider: Some(provider.to_owned()),
            field,
        }
    }
}
