//! linkwright core: configuration, the provider plugin host, click IDs,
//! tracked-URL templates, the link store, the click log, metrics and the HTTP
//! server.
//!
//! The binary (`linkwright`) is a thin CLI over this crate. `unsafe` code lives
//! only in [`plugin::loader`], where plugin libraries are opened and called.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod app;
pub mod cache;
pub mod classify;
pub mod click;
pub mod clicklog;
pub mod clock;
pub mod config;
pub mod conversions;
pub mod error;
pub mod expand;
pub mod jobs;
pub mod keys;
pub mod links;
pub mod metrics;
pub mod money;
pub mod plugin;
pub mod reports;
pub mod server;
pub mod shard;
pub mod store;
pub mod template;
pub mod view;

pub use click::{ClickId, ClickIdGenerator};
pub use config::Config;
pub use error::{BuildError, ErrorCode};
pub use plugin::{BuildRequest, Providers};
pub use template::Template;
