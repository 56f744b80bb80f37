//! Tables and shapes that the host and the provider plugins both need, owned
//! once: the Amazon marketplaces, Amazon's short-link hosts, the shape of an
//! ASIN. No dependencies, no I/O, no `unsafe`: the bottom layer.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod amazon;
