//! `repr(C)` mirrors of `include/linkwright_plugin.h`, the plugin ABI.
//!
//! The header is the contract; these types follow it field by field, and the
//! `abi_layout` test compiles a C program against the header to check that
//! every size and field offset agrees.

use std::ffi::c_void;

/// `LW_PLUGIN_MAGIC`: "LWPL" read as a little-endian `u32`.
pub const PLUGIN_MAGIC: u32 = 0x4C50_574C;
/// `LW_ABI_MAJOR`: bumped on any incompatible change; part of the entry symbol.
pub const ABI_MAJOR: u16 = 1;
/// `LW_ABI_MINOR`: bumped when fields are appended.
pub const ABI_MINOR: u16 = 0;
/// The exported entry symbol for [`ABI_MAJOR`], without a trailing NUL.
pub const ENTRY_SYMBOL: &str = "linkwright_plugin_v1";
/// The prefix every entry symbol shares, whatever its major version.
pub const ENTRY_SYMBOL_PREFIX: &str = "linkwright_plugin_v";

/// `LW_STATUS_*`: status codes returned by plugin entry points.
pub mod status {
    /// Success.
    pub const OK: i32 = 0;
    /// The input is not for this provider; the host tries the next one.
    pub const DECLINED: i32 = 1;
    /// The input is malformed.
    pub const INVALID_INPUT: i32 = 2;
    /// The host is the provider's, but the URL is not a product page.
    pub const NOT_A_PRODUCT_URL: i32 = 3;
    /// A product identifier (an ASIN) is malformed.
    pub const INVALID_PRODUCT_ID: i32 = 4;
    /// No provider serves the host.
    pub const UNSUPPORTED_HOST: i32 = 5;
    /// The marketplace has no tracking ID configured.
    pub const MARKETPLACE_NOT_CONFIGURED: i32 = 6;
    /// The advertiser does not permit deep links.
    pub const DEEPLINK_NOT_PERMITTED: i32 = 7;
    /// The publisher is not approved for this advertiser.
    pub const NOT_APPROVED: i32 = 8;
    /// A short link that must be expanded first.
    pub const NEEDS_EXPANSION: i32 = 9;
    /// The instance configuration was rejected.
    pub const CONFIG_REJECTED: i32 = 10;
    /// `init` failed.
    pub const INIT_FAILED: i32 = 11;
    /// A dependency is unavailable; a retry may help.
    pub const UPSTREAM_UNAVAILABLE: i32 = 12;
    /// The plugin caught a panic; the instance is poisoned.
    pub const PANIC: i32 = 13;
    /// Any other failure inside the plugin.
    pub const INTERNAL: i32 = 14;
}

/// `LW_PLUGIN_FLAG_CATCHES_PANICS`.
pub const FLAG_CATCHES_PANICS: u32 = 0x1;

/// `LW_SUBID_ALPHANUMERIC`: `[A-Za-z0-9]`.
pub const SUBID_ALPHANUMERIC: u32 = 1;
/// `LW_SUBID_URL_SAFE`: `[A-Za-z0-9_-]`.
pub const SUBID_URL_SAFE: u32 = 2;

/// `LW_FIELD_*`: the output fields a plugin writes through [`Output`].
pub mod field {
    /// Error message for a non-OK status.
    pub const ERROR: u32 = 1;
    /// Template bytes before the sub-ID slot.
    pub const PREFIX: u32 = 2;
    /// Template bytes after the sub-ID slot.
    pub const SUFFIX: u32 = 3;
    /// The canonical destination URL.
    pub const DESTINATION: u32 = 4;
    /// The marketplace, region or advertiser key.
    pub const MARKETPLACE: u32 = 5;
    /// JSON description of an instance.
    pub const DESCRIPTION: u32 = 6;
}

/// `lw_str`: a borrowed UTF-8 string, valid for the duration of one call.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Str {
    /// First byte; may be null only when `len` is 0.
    pub ptr: *const u8,
    /// Length in bytes.
    pub len: usize,
}

impl Str {
    /// Borrows a Rust string for the duration of a call.
    pub const fn from_str(s: &str) -> Str {
        Str {
            ptr: s.as_ptr(),
            len: s.len(),
        }
    }
}

/// `lw_param`: one key/value parameter.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Param {
    /// Parameter name.
    pub key: Str,
    /// Parameter value.
    pub value: Str,
}

/// `lw_output`: host-owned output; the plugin appends bytes to fields.
#[repr(C)]
#[derive(Debug)]
pub struct Output {
    /// `sizeof(lw_output)` as the host built it.
    pub size: u32,
    /// Zero.
    pub reserved: u32,
    /// Host context handed back to `write`.
    pub ctx: *mut c_void,
    /// Appends `len` bytes at `ptr` to `field`.
    pub write:
        Option<unsafe extern "C" fn(ctx: *mut c_void, field: u32, ptr: *const u8, len: usize)>,
}

/// `lw_build_request`: what to build a template for.
#[repr(C)]
#[derive(Debug)]
pub struct BuildRequest {
    /// `sizeof(lw_build_request)` as the host built it.
    pub size: u32,
    /// No flags are defined yet.
    pub flags: u32,
    /// Product URL or bare product id.
    pub input: Str,
    /// Requested marketplace; empty for the default.
    pub marketplace: Str,
    /// The link's network parameters.
    pub params: *const Param,
    /// Number of parameters.
    pub params_len: usize,
}

/// `lw_template_info`: the fixed-size part of a template.
#[repr(C)]
#[derive(Debug, Default)]
pub struct TemplateInfo {
    /// `sizeof(lw_template_info)` as the host built it.
    pub size: u32,
    /// Longest sub-ID the network keeps; 0 for no limit.
    pub subid_max_len: u32,
    /// One of the `SUBID_*` constants.
    pub subid_encoding: u32,
    /// Zero.
    pub reserved: u32,
}

/// `init`: called once after load.
pub type InitFn = unsafe extern "C" fn(out: *const Output) -> i32;
/// `instance_new`: makes an instance from JSON configuration.
pub type InstanceNewFn =
    unsafe extern "C" fn(config_json: Str, out: *const Output, instance: *mut *mut c_void) -> i32;
/// `instance_free`: frees an instance.
pub type InstanceFreeFn = unsafe extern "C" fn(instance: *mut c_void);
/// `build`: builds a template.
pub type BuildFn = unsafe extern "C" fn(
    instance: *const c_void,
    request: *const BuildRequest,
    info: *mut TemplateInfo,
    out: *const Output,
) -> i32;
/// `describe`: describes an instance as JSON.
pub type DescribeFn = unsafe extern "C" fn(instance: *const c_void, out: *const Output) -> i32;

/// `lw_plugin_descriptor`: the static descriptor returned by the entry symbol.
#[repr(C)]
#[derive(Debug)]
pub struct PluginDescriptor {
    /// [`PLUGIN_MAGIC`].
    pub magic: u32,
    /// `sizeof(lw_plugin_descriptor)` as the plugin was built.
    pub size: u32,
    /// [`ABI_MAJOR`].
    pub abi_major: u16,
    /// [`ABI_MINOR`].
    pub abi_minor: u16,
    /// `FLAG_*` bits.
    pub flags: u32,
    /// Plugin name.
    pub name: Str,
    /// Plugin version.
    pub version: Str,
    /// Optional one-time initialiser.
    pub init: Option<InitFn>,
    /// Instance constructor.
    pub instance_new: Option<InstanceNewFn>,
    /// Instance destructor.
    pub instance_free: Option<InstanceFreeFn>,
    /// Template builder.
    pub build: Option<BuildFn>,
    /// Optional instance description.
    pub describe: Option<DescribeFn>,
}

/// The entry symbol's type.
pub type EntryFn = unsafe extern "C" fn() -> *const PluginDescriptor;
