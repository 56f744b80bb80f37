//! linkwright core: configuration, the link store, caches, the click log,
//! metrics, the domain services (links, bulk jobs, reports, conversions) and
//! the HTTP servers. The binary (`linkwright`) is a thin CLI over this crate.
//!
//! Below it: `linkwright-model` (click IDs, error codes, templates, shared
//! tables), `linkwright-plugin-host` and `linkwright-journal` (with the
//! SDK, the only crates with `unsafe` code), the first two re-exported here
//! as [`click`], [`error`], [`template`] and [`plugin`]. This crate has no
//! `unsafe` code. See docs/ARCHITECTURE.md
//! for the layers inside it.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod app;
pub mod backend;
pub mod cache;
pub mod classify;
pub mod clicklog;
pub mod clock;
pub mod config;
pub mod console;
pub mod conversions;
pub mod creators;
pub mod expand;
pub mod geo;
pub mod jobs;
pub mod keys;
pub mod links;
pub mod metrics;
pub mod money;
pub mod nodes;
pub mod reports;
pub mod retry;
pub mod server;
pub mod shard;
pub mod store;
pub mod targeting;
pub mod view;

#[cfg(test)]
mod testing;

pub use linkwright_model::{click, error, template};
pub use linkwright_plugin_host as plugin;

pub use click::{ClickId, ClickIdGenerator};
pub use config::Config;
pub use error::{BuildError, ErrorCode};
pub use plugin::{BuildRequest, Providers};
pub use template::Template;
