//! The linkwright provider plugin SDK.
//!
//! A provider plugin turns a product URL into a tracked affiliate-link
//! *template*: the URL with a slot where the host puts a fresh click sub-ID on
//! every click. Plugins are shared libraries loaded by the host at run time
//! through a small C ABI ([`abi`], mirrored from `include/linkwright_plugin.h`),
//! so a plugin built by another compiler, or written in C, works.
//!
//! A Rust plugin implements [`Provider`] and exports it with
//! [`export_plugin!`]; the plugin crate itself needs no `unsafe`, and every
//! entry point catches panics and turns them into [`Status::Panic`]:
//!
//! ```ignore
//! use linkwright_plugin_sdk::{export_plugin, BuildRequest, PluginError, Provider, Template};
//!
//! struct Example;
//! impl Provider for Example {
//!     const NAME: &'static str = "example";
//!     const VERSION: &'static str = env!("CARGO_PKG_VERSION");
//!     fn new(_config: &str) -> Result<Self, PluginError> { Ok(Example) }
//!     fn build(&self, req: &BuildRequest<'_>) -> Result<Template, PluginError> {
//!         Err(PluginError::declined())
//!     }
//! }
//! export_plugin!(Example);
//! ```

pub mod abi;
#[doc(hidden)]
pub mod ffi;
pub mod input;

use std::fmt;

/// Why a plugin call failed; crosses the ABI as an `LW_STATUS_*` integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// The input is not for this provider; the host tries the next one.
    Declined,
    /// The input is malformed.
    InvalidInput,
    /// The host is the provider's but the URL is not a product page.
    NotAProductUrl,
    /// A product identifier (an ASIN) is malformed.
    InvalidProductId,
    /// No provider serves the host.
    UnsupportedHost,
    /// The marketplace has no tracking ID configured.
    MarketplaceNotConfigured,
    /// The advertiser does not permit deep links.
    DeeplinkNotPermitted,
    /// The publisher is not approved for this advertiser.
    NotApproved,
    /// A short link that must be expanded first.
    NeedsExpansion,
    /// The instance configuration was rejected.
    ConfigRejected,
    /// `init` failed.
    InitFailed,
    /// A dependency is unavailable; a retry may help.
    UpstreamUnavailable,
    /// The plugin panicked.
    Panic,
    /// Any other failure.
    Internal,
}

impl Status {
    /// The `LW_STATUS_*` code.
    pub const fn code(self) -> i32 {
        use abi::status as s;
        match self {
            Status::Declined => s::DECLINED,
            Status::InvalidInput => s::INVALID_INPUT,
            Status::NotAProductUrl => s::NOT_A_PRODUCT_URL,
            Status::InvalidProductId => s::INVALID_PRODUCT_ID,
            Status::UnsupportedHost => s::UNSUPPORTED_HOST,
            Status::MarketplaceNotConfigured => s::MARKETPLACE_NOT_CONFIGURED,
            Status::DeeplinkNotPermitted => s::DEEPLINK_NOT_PERMITTED,
            Status::NotApproved => s::NOT_APPROVED,
            Status::NeedsExpansion => s::NEEDS_EXPANSION,
            Status::ConfigRejected => s::CONFIG_REJECTED,
            Status::InitFailed => s::INIT_FAILED,
            Status::UpstreamUnavailable => s::UPSTREAM_UNAVAILABLE,
            Status::Panic => s::PANIC,
            Status::Internal => s::INTERNAL,
        }
    }

    /// The status for an `LW_STATUS_*` code; `None` for `OK` and unknown codes.
    pub const fn from_code(code: i32) -> Option<Status> {
        use abi::status as s;
        Some(match code {
            s::DECLINED => Status::Declined,
            s::INVALID_INPUT => Status::InvalidInput,
            s::NOT_A_PRODUCT_URL => Status::NotAProductUrl,
            s::INVALID_PRODUCT_ID => Status::InvalidProductId,
            s::UNSUPPORTED_HOST => Status::UnsupportedHost,
            s::MARKETPLACE_NOT_CONFIGURED => Status::MarketplaceNotConfigured,
            s::DEEPLINK_NOT_PERMITTED => Status::DeeplinkNotPermitted,
            s::NOT_APPROVED => Status::NotApproved,
            s::NEEDS_EXPANSION => Status::NeedsExpansion,
            s::CONFIG_REJECTED => Status::ConfigRejected,
            s::INIT_FAILED => Status::InitFailed,
            s::UPSTREAM_UNAVAILABLE => Status::UpstreamUnavailable,
            s::PANIC => Status::Panic,
            s::INTERNAL => Status::Internal,
            _ => return None,
        })
    }

    /// A stable snake_case name, the same as the API's error codes.
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Declined => "declined",
            Status::InvalidInput => "invalid_input",
            Status::NotAProductUrl => "not_a_product_url",
            Status::InvalidProductId => "invalid_asin",
            Status::UnsupportedHost => "unsupported_host",
            Status::MarketplaceNotConfigured => "marketplace_not_configured",
            Status::DeeplinkNotPermitted => "deeplink_not_permitted",
            Status::NotApproved => "not_approved",
            Status::NeedsExpansion => "needs_expansion",
            Status::ConfigRejected => "config_rejected",
            Status::InitFailed => "init_failed",
            Status::UpstreamUnavailable => "upstream_unavailable",
            Status::Panic => "plugin_panicked",
            Status::Internal => "internal",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed plugin call: a status and a message for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginError {
    /// What kind of failure.
    pub status: Status,
    /// A human-readable explanation.
    pub message: String,
}

impl PluginError {
    /// A failure with a status and a message.
    pub fn new(status: Status, message: impl Into<String>) -> Self {
        PluginError {
            status,
            message: message.into(),
        }
    }
    /// The input is not for this provider.
    pub fn declined() -> Self {
        Self::new(Status::Declined, "not handled by this provider")
    }
    /// The input is malformed.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(Status::InvalidInput, message)
    }
    /// The URL is not a product page.
    pub fn not_a_product_url(message: impl Into<String>) -> Self {
        Self::new(Status::NotAProductUrl, message)
    }
    /// A product id is malformed.
    pub fn invalid_product_id(message: impl Into<String>) -> Self {
        Self::new(Status::InvalidProductId, message)
    }
    /// The configuration was rejected.
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(Status::ConfigRejected, message)
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}

impl std::error::Error for PluginError {}

/// Which characters a network's sub-ID may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubIdEncoding {
    /// `[A-Za-z0-9]` only.
    #[default]
    Alphanumeric,
    /// `[A-Za-z0-9_-]`.
    UrlSafe,
}

impl SubIdEncoding {
    /// The `LW_SUBID_*` code.
    pub const fn code(self) -> u32 {
        match self {
            SubIdEncoding::Alphanumeric => abi::SUBID_ALPHANUMERIC,
            SubIdEncoding::UrlSafe => abi::SUBID_URL_SAFE,
        }
    }
    /// The encoding for an `LW_SUBID_*` code.
    pub const fn from_code(code: u32) -> Option<Self> {
        match code {
            abi::SUBID_ALPHANUMERIC => Some(SubIdEncoding::Alphanumeric),
            abi::SUBID_URL_SAFE => Some(SubIdEncoding::UrlSafe),
            _ => None,
        }
    }
}

/// What the host asks a provider to build.
#[derive(Debug, Clone)]
pub struct BuildRequest<'a> {
    /// A product URL, or a bare product id such as an ASIN.
    pub input: &'a str,
    /// The requested marketplace (`amazon.co.uk`), if any.
    pub marketplace: Option<&'a str>,
    /// The link's network parameters, in the order given.
    pub params: Vec<(&'a str, &'a str)>,
}

impl<'a> BuildRequest<'a> {
    /// A request for an input with no marketplace and no parameters.
    pub fn new(input: &'a str) -> Self {
        BuildRequest {
            input,
            marketplace: None,
            params: Vec::new(),
        }
    }

    /// The value of a parameter, if given (the last one wins).
    pub fn param(&self, key: &str) -> Option<&'a str> {
        self.params
            .iter()
            .rev()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
    }
}

/// A tracked-URL template: `prefix` + click sub-ID + `suffix`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Template {
    /// Bytes before the sub-ID slot.
    pub prefix: String,
    /// Bytes after the sub-ID slot.
    pub suffix: String,
    /// The canonical destination the link points at.
    pub destination: String,
    /// The marketplace, region or advertiser key, if the provider has one.
    pub marketplace: Option<String>,
    /// Longest sub-ID the network keeps; 0 for no limit.
    pub subid_max_len: u32,
    /// Characters the sub-ID may hold.
    pub subid_encoding: SubIdEncoding,
}

/// A provider: implemented by a plugin, exported with [`export_plugin!`].
///
/// Instances are shared between host threads, so `build` takes `&self`.
pub trait Provider: Send + Sync + Sized + 'static {
    /// The plugin's name (`"amazon"`).
    const NAME: &'static str;
    /// The plugin's version, usually `env!("CARGO_PKG_VERSION")`.
    const VERSION: &'static str;

    /// Runs once when the library is loaded.
    fn init() -> Result<(), PluginError> {
        Ok(())
    }

    /// Makes an instance from its configuration: the provider's table from
    /// the host config, as a JSON object. See [`parse_config`].
    fn new(config_json: &str) -> Result<Self, PluginError>;

    /// Builds a template, or declines an input that is not this provider's.
    fn build(&self, request: &BuildRequest<'_>) -> Result<Template, PluginError>;

    /// A JSON object describing what the instance serves.
    fn describe(&self) -> String {
        "{}".to_owned()
    }
}

/// Parses an instance's JSON configuration into a typed struct, turning serde's
/// error into a [`Status::ConfigRejected`] error that names the problem.
pub fn parse_config<T: serde::de::DeserializeOwned>(config_json: &str) -> Result<T, PluginError> {
    let de = &mut serde_json::Deserializer::from_str(config_json);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path.is_empty() || path == "." {
            PluginError::config(inner.to_string())
        } else {
            PluginError::config(format!("{path}: {inner}"))
        }
    })
}

/// Exports a [`Provider`] as a linkwright plugin: defines the entry symbol
/// `linkwright_plugin_v1` that returns the plugin's static descriptor.
#[macro_export]
macro_rules! export_plugin {
    ($provider:ty) => {
        /// The linkwright plugin entry point (ABI major 1).
        #[unsafe(no_mangle)]
        pub extern "C" fn linkwright_plugin_v1() -> *const $crate::abi::PluginDescriptor {
            static DESCRIPTOR: $crate::ffi::StaticDescriptor =
                $crate::ffi::StaticDescriptor::new::<$provider>();
            DESCRIPTOR.as_ptr()
        }
    };
}
