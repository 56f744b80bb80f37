//! linkwright core: configuration, the provider plugin host, click IDs and
//! tracked-URL templates.
//!
//! The binary (`linkwright`) is a thin CLI over this crate. `unsafe` code lives
//! only in [`plugin::loader`], where plugin libraries are opened and called.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod click;
pub mod config;
pub mod error;
pub mod plugin;
pub mod template;

pub use click::{ClickId, ClickIdGenerator};
pub use config::Config;
pub use error::{BuildError, ErrorCode};
pub use plugin::{BuildRequest, Providers};
pub use template::Template;
