//! Helpers shared by the integration tests: where cargo put the plugin files,
//! unique scratch folders, and compiling C plugins with the system compiler.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// `target/<profile>/deps`: where cargo puts the test binaries and the
/// shared libraries of the plugin crates this package depends on.
pub fn deps_dir() -> PathBuf {
    std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_owned()
}

/// The file of a workspace plugin built by cargo (`amazon` → …/liblinkwright_amazon.so).
pub fn plugin_file(name: &str) -> PathBuf {
    let file = deps_dir().join(linkwright_core::plugin::plugin_file_name(name));
    assert!(file.is_file(), "{} was not built", file.display());
    file
}

/// A fresh, empty folder unique to this test process and call.
pub fn scratch(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "linkwright-test-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The repository root.
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Compiles a C plugin into `dir/name` with the system C compiler (`$CC` or
/// `cc`) against the ABI header, with extra `-D` macros.
pub fn compile_c(source: &Path, defines: &[&str], dir: &Path, name: &str) -> PathBuf {
    let out = dir.join(name);
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let mut cmd = Command::new(&cc);
    cmd.args([
        "-std=c11", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared", "-I",
    ])
    .arg(repo_root().join("plugins/sdk/include"))
    .arg("-o")
    .arg(&out)
    .arg(source);
    for d in defines {
        cmd.arg(format!("-D{d}"));
    }
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler `{cc}` (install gcc): {e}"));
    assert!(
        output.status.success(),
        "{cc} failed on {}:\n{}",
        source.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    out
}
