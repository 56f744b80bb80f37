//! The bottom layer of linkwright, shared by the host and the plugins:
//! click IDs ([`click`]), the vocabulary of user-facing errors ([`error`]),
//! tracked-URL templates ([`template`]), and tables owned once ([`amazon`]:
//! the marketplaces, the short-link hosts, the shape of an ASIN). No I/O and
//! no `unsafe`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod amazon;
pub mod click;
pub mod error;
pub mod template;
