//! The only `unsafe` code of the host: opening plugin libraries, checking their
//! descriptors, and calling their entry points.
//!
//! Every library is opened once per process (a registry keyed by canonical
//! path) with `RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE` and never closed: Rust
//! cdylibs crash at thread exit if unloaded. Nothing in a descriptor is called
//! before its magic, major version, size and function pointers are checked.
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use linkwright_plugin_sdk::abi::{self, field, status};
use linkwright_plugin_sdk::{Status, SubIdEncoding};

use super::LoadError;

/// A checked, initialised plugin library. Lives for the rest of the process.
#[derive(Debug)]
pub struct Library {
    /// The file it was loaded from (canonical).
    pub path: PathBuf,
    /// The plugin's name.
    pub name: String,
    /// The plugin's version.
    pub version: String,
    /// ABI major version.
    pub abi_major: u16,
    /// ABI minor version.
    pub abi_minor: u16,
    /// Whether the plugin declares that it catches panics.
    pub catches_panics: bool,
    instance_new: abi::InstanceNewFn,
    instance_free: abi::InstanceFreeFn,
    build: abi::BuildFn,
    describe: Option<abi::DescribeFn>,
}

/// The smallest descriptor this host accepts: ABI 1.0 has every field up to
/// `describe`.
const MIN_DESCRIPTOR_SIZE: usize = size_of::<abi::PluginDescriptor>();

type Registry = Mutex<HashMap<PathBuf, Result<Arc<Library>, LoadError>>>;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// Loads the plugin at `path`, or returns the result of loading it before:
/// a file is opened and initialised at most once per process.
pub fn load(path: &Path) -> Result<Arc<Library>, LoadError> {
    let canonical = std::fs::canonicalize(path).map_err(|e| LoadError::Missing {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    // Loading runs the library's initialisers and `dlerror` is not thread-safe
    // everywhere: one load at a time, under the registry lock.
    let mut loaded = registry().lock().unwrap_or_else(|p| p.into_inner());
    loaded
        .entry(canonical.clone())
        .or_insert_with(|| open_and_check(&canonical).map(Arc::new))
        .clone()
}

fn open_and_check(path: &Path) -> Result<Library, LoadError> {
    let flags = libc::RTLD_NOW | libc::RTLD_LOCAL | libc::RTLD_NODELETE;
    // SAFETY: opening a library runs its initialisers; plugins are trusted code
    // chosen by the operator. We hold the registry lock, so no two threads load.
    let lib = unsafe { libloading::os::unix::Library::open(Some(path), flags) }.map_err(|e| {
        LoadError::NotALibrary {
            path: path.to_owned(),
            reason: error_chain(&e),
        }
    })?;
    let symbol = format!("{}\0", abi::ENTRY_SYMBOL);
    // SAFETY: the symbol's type is fixed by the ABI (`lw_entry_fn`).
    let entry: Option<abi::EntryFn> = unsafe { lib.get::<abi::EntryFn>(symbol.as_bytes()) }
        .ok()
        .map(|s| *s);
    let Some(entry) = entry else {
        let others = other_entry_symbols(&lib);
        // The library stays mapped (RTLD_NODELETE); forgetting the handle keeps
        // the promise never to dlclose a plugin.
        std::mem::forget(lib);
        return Err(if others.is_empty() {
            LoadError::NoEntrySymbol {
                path: path.to_owned(),
            }
        } else {
            LoadError::AbiMismatch {
                path: path.to_owned(),
                exports: others
                    .iter()
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
            }
        });
    };
    // Never unload: the handle is leaked on purpose (see the module docs).
    std::mem::forget(lib);

    // SAFETY: the entry takes no arguments and returns a pointer; the plugin
    // promises it points at a static descriptor, which we check below before
    // trusting anything but its first two fields.
    let ptr = unsafe { entry() };
    if ptr.is_null() {
        return Err(LoadError::NullDescriptor {
            path: path.to_owned(),
        });
    }
    // Every read below, and the reference made once the header checks out,
    // needs the descriptor's alignment: refuse a pointer without it rather
    // than read through it (a misaligned reference is undefined behaviour).
    let align = std::mem::align_of::<abi::PluginDescriptor>();
    if !ptr.is_aligned() {
        return Err(LoadError::MisalignedDescriptor {
            path: path.to_owned(),
            address: ptr as usize,
            align,
        });
    }
    // SAFETY: `magic` and `size` are the first 8 bytes of every version of
    // the descriptor (two `u32`s, which need no more alignment than the
    // descriptor, checked above); read them before anything else.
    let (magic, size) = unsafe {
        let head = ptr.cast::<u32>();
        (head.read(), head.add(1).read())
    };
    if magic != abi::PLUGIN_MAGIC {
        return Err(LoadError::BadMagic {
            path: path.to_owned(),
            found: magic,
        });
    }
    if (size as usize) < MIN_DESCRIPTOR_SIZE {
        return Err(LoadError::DescriptorTooSmall {
            path: path.to_owned(),
            size,
            expected: MIN_DESCRIPTOR_SIZE,
        });
    }
    // SAFETY: aligned (checked above), and magic and size say this is a v1
    // descriptor at least as large as ours, in static storage inside a
    // library that is never unloaded.
    let d: &'static abi::PluginDescriptor = unsafe { &*ptr };
    if d.abi_major != abi::ABI_MAJOR {
        return Err(LoadError::AbiMismatch {
            path: path.to_owned(),
            exports: format!(
                "{} with a descriptor for ABI major {}",
                abi::ENTRY_SYMBOL,
                d.abi_major
            ),
        });
    }
    let missing = |which: &'static str| LoadError::MissingFunction {
        path: path.to_owned(),
        which,
    };
    let instance_new = d.instance_new.ok_or_else(|| missing("instance_new"))?;
    let instance_free = d.instance_free.ok_or_else(|| missing("instance_free"))?;
    let build = d.build.ok_or_else(|| missing("build"))?;
    // SAFETY: the descriptor's strings are static data of the library.
    let name = unsafe { str_from_abi(d.name) }.unwrap_or_default();
    // SAFETY: as above.
    let version = unsafe { str_from_abi(d.version) }.unwrap_or_default();
    if name.is_empty() {
        return Err(LoadError::MissingFunction {
            path: path.to_owned(),
            which: "name",
        });
    }

    if let Some(init) = d.init {
        let mut out = OutputBuf::default();
        // SAFETY: checked descriptor; `out` outlives the call.
        let code = unsafe { init(&out.abi()) };
        if code != status::OK {
            return Err(LoadError::InitFailed {
                path: path.to_owned(),
                message: out.message(code),
            });
        }
    }

    Ok(Library {
        path: path.to_owned(),
        name,
        version,
        abi_major: d.abi_major,
        abi_minor: d.abi_minor,
        catches_panics: d.flags & abi::FLAG_CATCHES_PANICS != 0,
        instance_new,
        instance_free,
        build,
        describe: d.describe,
    })
}

/// An error and its sources, joined: libloading keeps `dlerror`'s text in
/// the source.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Entry symbols of other ABI majors the library exports, for the error.
fn other_entry_symbols(lib: &libloading::os::unix::Library) -> Vec<String> {
    (0..=16u32)
        .map(|major| format!("{}{major}", abi::ENTRY_SYMBOL_PREFIX))
        .filter(|name| name != abi::ENTRY_SYMBOL)
        .filter(|name| {
            let c_name = format!("{name}\0");
            // SAFETY: only the symbol's presence is checked; it is not called.
            unsafe { lib.get::<*const c_void>(c_name.as_bytes()) }.is_ok()
        })
        .collect()
}

/// # Safety
/// `s` must point at `len` readable bytes (or be null with `len` 0).
unsafe fn str_from_abi(s: abi::Str) -> Option<String> {
    if s.len == 0 {
        return Some(String::new());
    }
    if s.ptr.is_null() {
        return None;
    }
    // SAFETY: guaranteed by the caller.
    let bytes = unsafe { std::slice::from_raw_parts(s.ptr, s.len) };
    std::str::from_utf8(bytes).ok().map(str::to_owned)
}

/// The most bytes a plugin may write to one output field in one call. A
/// template is made from an input of at most `MAX_INPUT_LEN` (8 KiB) bytes;
/// anything near this limit is a broken or hostile plugin, refused rather
/// than buffered without bound.
pub const MAX_OUTPUT_LEN: usize = 256 * 1024;

/// Host-owned output buffers a plugin writes into through `lw_output`.
#[derive(Debug, Default)]
struct OutputBuf {
    error: Vec<u8>,
    prefix: Vec<u8>,
    suffix: Vec<u8>,
    destination: Vec<u8>,
    marketplace: Vec<u8>,
    description: Vec<u8>,
    /// The first field written past [`MAX_OUTPUT_LEN`]; what it held stays
    /// at the limit.
    overflowed: Option<u32>,
}

/// The `write` callback handed to plugins.
///
/// # Safety
/// `ctx` is the `OutputBuf` of the current call and `ptr` points at `len`
/// bytes (host/plugin contract).
unsafe extern "C" fn write_output(ctx: *mut c_void, field_id: u32, ptr: *const u8, len: usize) {
    if ctx.is_null() || (ptr.is_null() && len > 0) || len == 0 {
        return;
    }
    // SAFETY: `ctx` is the `&mut OutputBuf` we put in `lw_output.ctx` for this
    // call only, and no other reference to it is live during the call.
    let buf = unsafe { &mut *ctx.cast::<OutputBuf>() };
    let target = match field_id {
        field::ERROR => &mut buf.error,
        field::PREFIX => &mut buf.prefix,
        field::SUFFIX => &mut buf.suffix,
        field::DESTINATION => &mut buf.destination,
        field::MARKETPLACE => &mut buf.marketplace,
        field::DESCRIPTION => &mut buf.description,
        _ => return,
    };
    // Past the limit, only what fits is read (never a slice of a length the
    // plugin made up), and the call is refused afterwards.
    let room = MAX_OUTPUT_LEN.saturating_sub(target.len());
    let take = len.min(room);
    if take > 0 {
        // SAFETY: the plugin passes `len` readable bytes, and `take <= len`.
        let bytes = unsafe { std::slice::from_raw_parts(ptr, take) };
        target.extend_from_slice(bytes);
    }
    if len > room {
        buf.overflowed.get_or_insert(field_id);
    }
}

/// The name of an output field, for errors.
fn field_name(field_id: u32) -> &'static str {
    match field_id {
        field::ERROR => "error message",
        field::PREFIX => "template prefix",
        field::SUFFIX => "template suffix",
        field::DESTINATION => "destination",
        field::MARKETPLACE => "marketplace",
        _ => "description",
    }
}

impl OutputBuf {
    fn abi(&mut self) -> abi::Output {
        abi::Output {
            size: size_of::<abi::Output>() as u32,
            reserved: 0,
            ctx: (self as *mut OutputBuf).cast(),
            write: Some(write_output),
        }
    }

    /// The call's failure if the plugin wrote more than [`MAX_OUTPUT_LEN`]
    /// bytes to a field, whatever status it returned.
    fn overflow(&self) -> Option<CallError> {
        self.overflowed.map(|f| CallError {
            status: Some(Status::Internal),
            code: status::INTERNAL,
            message: format!(
                "plugin wrote more than {MAX_OUTPUT_LEN} bytes to its {}",
                field_name(f)
            ),
        })
    }

    /// The plugin's error message, or a stand-in naming the status.
    fn message(&self, code: i32) -> String {
        let text = String::from_utf8_lossy(&self.error).trim().to_owned();
        if text.is_empty() {
            format!("status {code} with no message")
        } else {
            text
        }
    }
}

/// A failed plugin call: the status (or an unknown code) and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    /// The status; `None` for a code the host does not know.
    pub status: Option<Status>,
    /// The raw code.
    pub code: i32,
    /// The plugin's message.
    pub message: String,
}

/// Why an instance is no longer called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disabled {
    /// The plugin reported a panic.
    Panicked,
    /// A call did not answer within the host's time budget.
    TimedOut,
}

impl Disabled {
    /// What happened, for messages: `panic`, `timeout`.
    pub fn as_str(self) -> &'static str {
        match self {
            Disabled::Panicked => "panic",
            Disabled::TimedOut => "timeout",
        }
    }
}

const ENABLED: u8 = 0;
const PANICKED: u8 = 1;
const TIMED_OUT: u8 = 2;

/// One provider instance inside a plugin.
#[derive(Debug)]
pub struct Instance {
    library: Arc<Library>,
    raw: *mut c_void,
    /// `ENABLED`, or why the instance is never called again.
    state: AtomicU8,
}

// SAFETY: the ABI requires instances to be usable from several threads at once
// (`build` takes a const pointer and the contract says instances are shared);
// the host never mutates through `raw` except in `instance_free` on drop.
unsafe impl Send for Instance {}
// SAFETY: as above.
unsafe impl Sync for Instance {}

impl Instance {
    /// Makes an instance from its JSON configuration.
    pub fn new(library: Arc<Library>, config_json: &str) -> Result<Instance, CallError> {
        let mut out = OutputBuf::default();
        let mut raw: *mut c_void = std::ptr::null_mut();
        // SAFETY: checked descriptor; the config string and `out` outlive the
        // call; `raw` is a valid out-pointer.
        let code = unsafe {
            (library.instance_new)(abi::Str::from_str(config_json), &out.abi(), &mut raw)
        };
        if code != status::OK {
            return Err(CallError {
                status: Status::from_code(code),
                code,
                message: out.message(code),
            });
        }
        if raw.is_null() {
            return Err(CallError {
                status: Some(Status::Internal),
                code: status::INTERNAL,
                message: "instance_new returned OK but no instance".to_owned(),
            });
        }
        Ok(Instance {
            library,
            raw,
            state: AtomicU8::new(ENABLED),
        })
    }

    /// The library the instance lives in.
    pub fn library(&self) -> &Arc<Library> {
        &self.library
    }

    /// Whether a panic or a call past its time budget has poisoned the
    /// instance; it is never called again.
    pub fn is_poisoned(&self) -> bool {
        self.disabled().is_some()
    }

    /// Why the instance is poisoned, if it is.
    pub fn disabled(&self) -> Option<Disabled> {
        match self.state.load(Ordering::Acquire) {
            ENABLED => None,
            PANICKED => Some(Disabled::Panicked),
            _ => Some(Disabled::TimedOut),
        }
    }

    /// Quarantines the instance after a call overran its time budget: it is
    /// never called again (the call itself may still be running).
    pub fn quarantine(&self) {
        let _ =
            self.state
                .compare_exchange(ENABLED, TIMED_OUT, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Calls the plugin's `build`. A panic reported by the plugin poisons the
    /// instance.
    pub fn build(
        &self,
        input: &str,
        marketplace: Option<&str>,
        params: &[(String, String)],
    ) -> Result<linkwright_plugin_sdk::Template, CallError> {
        let abi_params: Vec<abi::Param> = params
            .iter()
            .map(|(k, v)| abi::Param {
                key: abi::Str::from_str(k),
                value: abi::Str::from_str(v),
            })
            .collect();
        let request = abi::BuildRequest {
            size: size_of::<abi::BuildRequest>() as u32,
            flags: 0,
            input: abi::Str::from_str(input),
            marketplace: abi::Str::from_str(marketplace.unwrap_or("")),
            params: if abi_params.is_empty() {
                std::ptr::null()
            } else {
                abi_params.as_ptr()
            },
            params_len: abi_params.len(),
        };
        let mut info = abi::TemplateInfo {
            size: size_of::<abi::TemplateInfo>() as u32,
            ..Default::default()
        };
        let mut out = OutputBuf::default();
        // SAFETY: checked descriptor; request, its strings and params, info
        // and out all outlive the call.
        let code = unsafe { (self.library.build)(self.raw, &request, &mut info, &out.abi()) };
        self.check_call(code, &out)?;
        let text = |bytes: Vec<u8>, what: &str| {
            String::from_utf8(bytes).map_err(|_| CallError {
                status: Some(Status::Internal),
                code: status::INTERNAL,
                message: format!("plugin wrote a {what} that is not UTF-8"),
            })
        };
        let encoding = SubIdEncoding::from_code(info.subid_encoding).ok_or_else(|| CallError {
            status: Some(Status::Internal),
            code: status::INTERNAL,
            message: format!(
                "plugin returned unknown sub-ID encoding {}",
                info.subid_encoding
            ),
        })?;
        let marketplace = text(out.marketplace, "marketplace")?;
        Ok(linkwright_plugin_sdk::Template {
            prefix: text(out.prefix, "template prefix")?,
            suffix: text(out.suffix, "template suffix")?,
            destination: text(out.destination, "destination")?,
            marketplace: (!marketplace.is_empty()).then_some(marketplace),
            subid_max_len: info.subid_max_len,
            subid_encoding: encoding,
        })
    }

    /// What a call's status and output say: an output over the limit is
    /// refused (unless the plugin panicked, which says more), any other
    /// status is the plugin's error, and a panic poisons the instance.
    fn check_call(&self, code: i32, out: &OutputBuf) -> Result<(), CallError> {
        if code != status::PANIC
            && let Some(e) = out.overflow()
        {
            return Err(e);
        }
        if code != status::OK {
            if code == status::PANIC {
                self.state.store(PANICKED, Ordering::Release);
            }
            return Err(CallError {
                status: Status::from_code(code),
                code,
                message: out.message(code),
            });
        }
        Ok(())
    }

    /// The instance's JSON description, if the plugin has `describe`.
    pub fn describe(&self) -> Result<Option<String>, CallError> {
        let Some(describe) = self.library.describe else {
            return Ok(None);
        };
        let mut out = OutputBuf::default();
        // SAFETY: checked descriptor; `out` outlives the call.
        let code = unsafe { describe(self.raw, &out.abi()) };
        self.check_call(code, &out)?;
        Ok(Some(String::from_utf8_lossy(&out.description).into_owned()))
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        // A poisoned instance may be in any state (or, after a timeout, still
        // in use by the abandoned call): leak it rather than let the plugin
        // touch it again.
        if !self.is_poisoned() {
            // SAFETY: `raw` came from this library's `instance_new` and is
            // freed exactly once, here.
            unsafe { (self.library.instance_free)(self.raw) };
        }
    }
}
