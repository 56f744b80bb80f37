//! The FFI layer behind [`export_plugin!`](crate::export_plugin): generic
//! `extern "C"` entry points that check their pointers, convert to safe types,
//! call the [`Provider`], and catch every panic.
#![allow(unsafe_code)]

use std::any::Any;
use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::abi::{self, field, status};
use crate::{BuildRequest, PluginError, Provider, Status};

/// A plugin descriptor that may live in a `static`.
#[derive(Debug)]
pub struct StaticDescriptor(abi::PluginDescriptor);

// SAFETY: the descriptor is immutable after construction; its raw pointers
// point at `'static` string data and its function pointers are plain code.
unsafe impl Sync for StaticDescriptor {}

impl StaticDescriptor {
    /// The descriptor for provider `P`.
    pub const fn new<P: Provider>() -> Self {
        StaticDescriptor(abi::PluginDescriptor {
            magic: abi::PLUGIN_MAGIC,
            size: size_of::<abi::PluginDescriptor>() as u32,
            abi_major: abi::ABI_MAJOR,
            abi_minor: abi::ABI_MINOR,
            flags: abi::FLAG_CATCHES_PANICS,
            name: abi::Str::from_str(P::NAME),
            version: abi::Str::from_str(P::VERSION),
            init: Some(init::<P>),
            instance_new: Some(instance_new::<P>),
            instance_free: Some(instance_free::<P>),
            build: Some(build::<P>),
            describe: Some(describe::<P>),
        })
    }

    /// A pointer to hand to the host.
    pub const fn as_ptr(&'static self) -> *const abi::PluginDescriptor {
        &self.0
    }
}

/// Writes through the host's output, if there is one.
struct Out(*const abi::Output);

impl Out {
    fn write(&self, field: u32, bytes: &[u8]) {
        if self.0.is_null() {
            return;
        }
        // SAFETY: the host passes a valid `lw_output` for the duration of the
        // call; we checked it is not null and read only the fields that its
        // `size` covers.
        unsafe {
            let out = &*self.0;
            if (out.size as usize) < size_of::<abi::Output>() {
                return;
            }
            if let Some(write) = out.write {
                write(out.ctx, field, bytes.as_ptr(), bytes.len());
            }
        }
    }

    fn error(&self, error: &PluginError) -> i32 {
        self.write(field::ERROR, error.message.as_bytes());
        error.status.code()
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "non-string panic payload"
    }
}

/// Runs `f`, turning a panic into `LW_STATUS_PANIC` with its message.
fn guarded(out: &Out, f: impl FnOnce() -> Result<(), PluginError>) -> i32 {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => status::OK,
        Ok(Err(e)) => out.error(&e),
        Err(payload) => {
            let message = format!("plugin panicked: {}", panic_message(&*payload));
            out.error(&PluginError::new(Status::Panic, message))
        }
    }
}

/// # Safety
/// `s` must point at `len` readable bytes (or be null with `len` 0) for the
/// duration of the call.
unsafe fn str_arg<'a>(s: abi::Str, what: &str) -> Result<&'a str, PluginError> {
    if s.len == 0 {
        return Ok("");
    }
    if s.ptr.is_null() {
        return Err(PluginError::invalid_input(format!(
            "{what} is a null pointer"
        )));
    }
    // SAFETY: the caller guarantees `ptr` points at `len` readable bytes.
    let bytes = unsafe { std::slice::from_raw_parts(s.ptr, s.len) };
    std::str::from_utf8(bytes)
        .map_err(|_| PluginError::invalid_input(format!("{what} is not UTF-8")))
}

/// The descriptor's `init`: [`Provider::init`], once per process.
///
/// # Safety
/// `out` is null or points at a valid `lw_output` for the duration of the
/// call (the host's contract in `linkwright_plugin.h`).
unsafe extern "C" fn init<P: Provider>(out: *const abi::Output) -> i32 {
    let out = Out(out);
    guarded(&out, || {
        P::init().map_err(|e| PluginError::new(Status::InitFailed, e.message))
    })
}

/// The descriptor's `instance_new`: [`Provider::new`] from config JSON.
///
/// # Safety
/// `config_json` points at `len` readable bytes (or is null with `len` 0),
/// `out` is null or a valid `lw_output`, and `instance` is null or points at
/// a writable slot, all for the duration of the call.
unsafe extern "C" fn instance_new<P: Provider>(
    config_json: abi::Str,
    out: *const abi::Output,
    instance: *mut *mut c_void,
) -> i32 {
    let out = Out(out);
    guarded(&out, || {
        if instance.is_null() {
            return Err(PluginError::invalid_input("instance out-pointer is null"));
        }
        // SAFETY: the host passes config bytes valid for this call.
        let config = unsafe { str_arg(config_json, "config") }?;
        let provider = P::new(config)?;
        // SAFETY: checked non-null above; the host owns the slot.
        unsafe { *instance = Box::into_raw(Box::new(provider)).cast() };
        Ok(())
    })
}

/// The descriptor's `instance_free`: drops an instance.
///
/// # Safety
/// `instance` is null or was returned by this plugin's `instance_new` (for
/// the same `P`) and is freed exactly once, after every other call on it.
unsafe extern "C" fn instance_free<P: Provider>(instance: *mut c_void) {
    if instance.is_null() {
        return;
    }
    // A panicking Drop must not unwind into the host.
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `instance` was made by `instance_new::<P>` with
        // `Box::into_raw` and the host frees it exactly once.
        drop(unsafe { Box::from_raw(instance.cast::<P>()) });
    }));
}

/// The descriptor's `build`: [`Provider::build`] for one destination.
///
/// # Safety
/// `instance` is null or a live instance of this plugin's `instance_new`;
/// `request` is null or a valid `lw_build_request` whose strings and params
/// are readable for the call; `info` is null or a writable `lw_template_info`
/// with its `size` set; `out` is null or a valid `lw_output`.
unsafe extern "C" fn build<P: Provider>(
    instance: *const c_void,
    request: *const abi::BuildRequest,
    info: *mut abi::TemplateInfo,
    out: *const abi::Output,
) -> i32 {
    let out = Out(out);
    let mut template = None;
    let code = guarded(&out, || {
        if instance.is_null() || request.is_null() || info.is_null() {
            return Err(PluginError::invalid_input(
                "null instance, request or info pointer",
            ));
        }
        // SAFETY: non-null, made by `instance_new::<P>`, alive until freed.
        let provider = unsafe { &*instance.cast::<P>() };
        // SAFETY: the host passes a valid request for the duration of the call.
        let raw = unsafe { &*request };
        if (raw.size as usize) < size_of::<abi::BuildRequest>() {
            return Err(PluginError::invalid_input(
                "lw_build_request is smaller than ABI v1",
            ));
        }
        // SAFETY: the strings are valid for this call (host contract).
        let input = unsafe { str_arg(raw.input, "input") }?;
        // SAFETY: as above.
        let marketplace = unsafe { str_arg(raw.marketplace, "marketplace") }?;
        let mut params = Vec::with_capacity(raw.params_len);
        if raw.params_len > 0 {
            if raw.params.is_null() {
                return Err(PluginError::invalid_input("params is a null pointer"));
            }
            // SAFETY: `params` points at `params_len` entries (host contract).
            let raw_params = unsafe { std::slice::from_raw_parts(raw.params, raw.params_len) };
            for p in raw_params {
                // SAFETY: as above.
                let key = unsafe { str_arg(p.key, "parameter name") }?;
                // SAFETY: as above.
                let value = unsafe { str_arg(p.value, "parameter value") }?;
                params.push((key, value));
            }
        }
        let request = BuildRequest {
            input,
            marketplace: (!marketplace.is_empty()).then_some(marketplace),
            params,
        };
        template = Some(provider.build(&request)?);
        Ok(())
    });
    if let Some(t) = template.filter(|_| code == status::OK) {
        // SAFETY: checked non-null in the guarded block; the host allocated it
        // with `size` set, and we write only within that size.
        let info = unsafe { &mut *info };
        if (info.size as usize) >= size_of::<abi::TemplateInfo>() {
            info.subid_max_len = t.subid_max_len;
            info.subid_encoding = t.subid_encoding.code();
        }
        out.write(field::PREFIX, t.prefix.as_bytes());
        out.write(field::SUFFIX, t.suffix.as_bytes());
        out.write(field::DESTINATION, t.destination.as_bytes());
        if let Some(m) = &t.marketplace {
            out.write(field::MARKETPLACE, m.as_bytes());
        }
    }
    code
}

/// The descriptor's `describe`: [`Provider::describe`].
///
/// # Safety
/// `instance` is null or a live instance of this plugin's `instance_new`;
/// `out` is null or a valid `lw_output`, for the duration of the call.
unsafe extern "C" fn describe<P: Provider>(
    instance: *const c_void,
    out: *const abi::Output,
) -> i32 {
    let out = Out(out);
    let mut description = String::new();
    let code = guarded(&out, || {
        if instance.is_null() {
            return Err(PluginError::invalid_input("null instance"));
        }
        // SAFETY: non-null, made by `instance_new::<P>`, alive until freed.
        let provider = unsafe { &*instance.cast::<P>() };
        description = provider.describe();
        Ok(())
    });
    if code == status::OK {
        out.write(field::DESCRIPTION, description.as_bytes());
    }
    code
}
