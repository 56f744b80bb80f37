//! The header/Rust agreement test.
//!
//! `include/linkwright_plugin.h` is the plugin ABI's contract and
//! `linkwright_plugin_sdk::abi` is its Rust mirror. This test writes a small C
//! program that includes the header and prints, for every struct, its size,
//! its alignment and the offset and size of every field, plus the value of
//! every `#define` constant. It compiles the program with the system C compiler
//! (`$CC`, or `cc`), runs it, and compares every line with what the Rust types
//! and constants say. It also reads the header's text to check that the lists
//! of structs, fields and constants checked here are the header's whole lists,
//! so a field or constant added to one side only cannot slip through.
//!
//! A missing C compiler is a failure, not a skip: CI installs one.

use std::collections::{BTreeMap, BTreeSet};
use std::mem::{align_of, offset_of, size_of};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use linkwright_plugin_sdk::Status;
use linkwright_plugin_sdk::abi::{self, field, status};

const INCLUDE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/include");
const HEADER_NAME: &str = "linkwright_plugin.h";

/// How many `name value` entries are compared: 6 structs × (size + align)
/// + 30 fields × (offset + size) + 28 constants.
const EXPECTED_ENTRIES: usize = 6 * 2 + 30 * 2 + 28;

// ---- the Rust side -----------------------------------------------------------

struct FieldLayout {
    name: &'static str,
    offset: usize,
    size: usize,
}

struct StructLayout {
    /// The C typedef name, e.g. `lw_str`.
    c_name: &'static str,
    size: usize,
    align: usize,
    fields: Vec<FieldLayout>,
}

/// The size of the field that `project` borrows.
fn field_size<T, F>(_project: fn(&T) -> &F) -> usize {
    size_of::<F>()
}

/// The layout of a Rust `repr(C)` mirror whose fields carry the C names.
macro_rules! layout {
    ($c_name:literal, $rust:ty { $($field:ident),* $(,)? }) => {
        StructLayout {
            c_name: $c_name,
            size: size_of::<$rust>(),
            align: align_of::<$rust>(),
            fields: vec![$(FieldLayout {
                name: stringify!($field),
                offset: offset_of!($rust, $field),
                size: field_size(|s: &$rust| &s.$field),
            }),*],
        }
    };
}

fn rust_structs() -> Vec<StructLayout> {
    vec![
        layout!("lw_str", abi::Str { ptr, len }),
        layout!("lw_param", abi::Param { key, value }),
        layout!(
            "lw_output",
            abi::Output {
                size,
                reserved,
                ctx,
                write
            }
        ),
        layout!(
            "lw_build_request",
            abi::BuildRequest {
                size,
                flags,
                input,
                marketplace,
                params,
                params_len,
            }
        ),
        layout!(
            "lw_template_info",
            abi::TemplateInfo {
                size,
                subid_max_len,
                subid_encoding,
                reserved,
            }
        ),
        layout!(
            "lw_plugin_descriptor",
            abi::PluginDescriptor {
                magic,
                size,
                abi_major,
                abi_minor,
                flags,
                name,
                version,
                init,
                instance_new,
                instance_free,
                build,
                describe,
            }
        ),
    ]
}

enum Value {
    Int(i128),
    Str(&'static str),
}

impl Value {
    fn expected(&self) -> String {
        match self {
            Value::Int(n) => n.to_string(),
            Value::Str(s) => (*s).to_owned(),
        }
    }
}

/// Every `#define` of the header with the Rust constant that mirrors it.
fn rust_constants() -> Vec<(&'static str, Value)> {
    use Value::{Int, Str};
    vec![
        ("LW_PLUGIN_MAGIC", Int(abi::PLUGIN_MAGIC.into())),
        ("LW_ABI_MAJOR", Int(abi::ABI_MAJOR.into())),
        ("LW_ABI_MINOR", Int(abi::ABI_MINOR.into())),
        ("LW_ENTRY_SYMBOL", Str(abi::ENTRY_SYMBOL)),
        ("LW_STATUS_OK", Int(status::OK.into())),
        ("LW_STATUS_DECLINED", Int(status::DECLINED.into())),
        ("LW_STATUS_INVALID_INPUT", Int(status::INVALID_INPUT.into())),
        (
            "LW_STATUS_NOT_A_PRODUCT_URL",
            Int(status::NOT_A_PRODUCT_URL.into()),
        ),
        (
            "LW_STATUS_INVALID_PRODUCT_ID",
            Int(status::INVALID_PRODUCT_ID.into()),
        ),
        (
            "LW_STATUS_UNSUPPORTED_HOST",
            Int(status::UNSUPPORTED_HOST.into()),
        ),
        (
            "LW_STATUS_MARKETPLACE_NOT_CONFIGURED",
            Int(status::MARKETPLACE_NOT_CONFIGURED.into()),
        ),
        (
            "LW_STATUS_DEEPLINK_NOT_PERMITTED",
            Int(status::DEEPLINK_NOT_PERMITTED.into()),
        ),
        ("LW_STATUS_NOT_APPROVED", Int(status::NOT_APPROVED.into())),
        (
            "LW_STATUS_NEEDS_EXPANSION",
            Int(status::NEEDS_EXPANSION.into()),
        ),
        (
            "LW_STATUS_CONFIG_REJECTED",
            Int(status::CONFIG_REJECTED.into()),
        ),
        ("LW_STATUS_INIT_FAILED", Int(status::INIT_FAILED.into())),
        (
            "LW_STATUS_UPSTREAM_UNAVAILABLE",
            Int(status::UPSTREAM_UNAVAILABLE.into()),
        ),
        ("LW_STATUS_PANIC", Int(status::PANIC.into())),
        ("LW_STATUS_INTERNAL", Int(status::INTERNAL.into())),
        (
            "LW_PLUGIN_FLAG_CATCHES_PANICS",
            Int(abi::FLAG_CATCHES_PANICS.into()),
        ),
        ("LW_SUBID_ALPHANUMERIC", Int(abi::SUBID_ALPHANUMERIC.into())),
        ("LW_SUBID_URL_SAFE", Int(abi::SUBID_URL_SAFE.into())),
        ("LW_FIELD_ERROR", Int(field::ERROR.into())),
        ("LW_FIELD_PREFIX", Int(field::PREFIX.into())),
        ("LW_FIELD_SUFFIX", Int(field::SUFFIX.into())),
        ("LW_FIELD_DESTINATION", Int(field::DESTINATION.into())),
        ("LW_FIELD_MARKETPLACE", Int(field::MARKETPLACE.into())),
        ("LW_FIELD_DESCRIPTION", Int(field::DESCRIPTION.into())),
    ]
}

/// The header name of a status. Exhaustive on purpose: a new `Status` variant
/// does not compile here until it is given its `LW_STATUS_*` name.
fn header_name(s: Status) -> &'static str {
    match s {
        Status::Declined => "LW_STATUS_DECLINED",
        Status::InvalidInput => "LW_STATUS_INVALID_INPUT",
        Status::NotAProductUrl => "LW_STATUS_NOT_A_PRODUCT_URL",
        Status::InvalidProductId => "LW_STATUS_INVALID_PRODUCT_ID",
        Status::UnsupportedHost => "LW_STATUS_UNSUPPORTED_HOST",
        Status::MarketplaceNotConfigured => "LW_STATUS_MARKETPLACE_NOT_CONFIGURED",
        Status::DeeplinkNotPermitted => "LW_STATUS_DEEPLINK_NOT_PERMITTED",
        Status::NotApproved => "LW_STATUS_NOT_APPROVED",
        Status::NeedsExpansion => "LW_STATUS_NEEDS_EXPANSION",
        Status::ConfigRejected => "LW_STATUS_CONFIG_REJECTED",
        Status::InitFailed => "LW_STATUS_INIT_FAILED",
        Status::UpstreamUnavailable => "LW_STATUS_UPSTREAM_UNAVAILABLE",
        Status::Panic => "LW_STATUS_PANIC",
        Status::Internal => "LW_STATUS_INTERNAL",
    }
}

/// Every entry the C program prints, with the value the Rust side expects.
fn expected_entries() -> Vec<(String, String)> {
    let mut entries = Vec::new();
    for s in rust_structs() {
        entries.push((format!("{}.sizeof", s.c_name), s.size.to_string()));
        entries.push((format!("{}.alignof", s.c_name), s.align.to_string()));
        for f in &s.fields {
            entries.push((
                format!("{}.{}.offsetof", s.c_name, f.name),
                f.offset.to_string(),
            ));
            entries.push((
                format!("{}.{}.sizeof", s.c_name, f.name),
                f.size.to_string(),
            ));
        }
    }
    for (name, value) in rust_constants() {
        entries.push((name.to_owned(), value.expected()));
    }
    entries
}

// ---- the C side --------------------------------------------------------------

/// The C program: one `printf` per entry of [`expected_entries`].
fn c_program() -> String {
    let mut c = String::new();
    c.push_str("#include <stddef.h>\n#include <stdio.h>\n");
    c.push_str(&format!(
        "#include \"{HEADER_NAME}\"\n\nint main(void) {{\n"
    ));
    for s in rust_structs() {
        let t = s.c_name;
        c.push_str(&format!(
            "    printf(\"{t}.sizeof %zu\\n\", sizeof({t}));\n    \
             printf(\"{t}.alignof %zu\\n\", (size_t)_Alignof({t}));\n"
        ));
        for f in &s.fields {
            let n = f.name;
            c.push_str(&format!(
                "    printf(\"{t}.{n}.offsetof %zu\\n\", offsetof({t}, {n}));\n    \
                 printf(\"{t}.{n}.sizeof %zu\\n\", sizeof((({t} *)0)->{n}));\n"
            ));
        }
    }
    for (name, value) in rust_constants() {
        match value {
            Value::Int(_) => c.push_str(&format!(
                "    printf(\"{name} %lld\\n\", (long long)({name}));\n"
            )),
            Value::Str(_) => c.push_str(&format!("    printf(\"{name} %s\\n\", {name});\n")),
        }
    }
    c.push_str("    return 0;\n}\n");
    c
}

/// Removes the scratch directory when dropped.
struct ScratchDir(PathBuf);

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The C compiler: `$CC` (which may carry arguments, `gcc -m64`) or `cc`.
fn c_compiler() -> (String, Vec<String>) {
    let cc = std::env::var("CC")
        .ok()
        .filter(|cc| !cc.trim().is_empty())
        .unwrap_or_else(|| "cc".to_owned());
    let mut words = cc.split_whitespace().map(str::to_owned);
    let program = words.next().unwrap_or_else(|| "cc".to_owned());
    (program, words.collect())
}

/// Compiles and runs the C program; returns its `name value` lines as a map.
fn run_c_program() -> Result<BTreeMap<String, String>, String> {
    let dir = std::env::temp_dir().join(format!(
        "linkwright-abi-layout-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let scratch = ScratchDir(dir);
    let source = scratch.0.join("abi_layout.c");
    let binary = scratch.0.join("abi_layout");
    std::fs::write(&source, c_program())
        .map_err(|e| format!("cannot write {}: {e}", source.display()))?;

    let (cc, cc_args) = c_compiler();
    let compiled = Command::new(&cc)
        .args(&cc_args)
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(Path::new(INCLUDE_DIR))
        .arg("-o")
        .arg(&binary)
        .arg(&source)
        .output()
        .map_err(|e| {
            format!(
                "cannot run the C compiler `{cc}` ({e}). The abi_layout test needs a C \
                 compiler to check include/{HEADER_NAME} against the Rust types: install \
                 one (apt-get install gcc) or point $CC at it"
            )
        })?;
    if !compiled.status.success() {
        return Err(format!(
            "`{cc}` failed to compile the layout program against include/{HEADER_NAME} \
             ({}):\n{}\n--- program ---\n{}",
            compiled.status,
            String::from_utf8_lossy(&compiled.stderr),
            c_program()
        ));
    }

    let ran = Command::new(&binary)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    if !ran.status.success() {
        return Err(format!(
            "the layout program failed ({}): {}",
            ran.status,
            String::from_utf8_lossy(&ran.stderr)
        ));
    }
    let stdout = String::from_utf8(ran.stdout).map_err(|e| format!("output is not UTF-8: {e}"))?;
    let mut values = BTreeMap::new();
    for line in stdout.lines() {
        let (name, value) = line
            .split_once(' ')
            .ok_or_else(|| format!("malformed line from the layout program: {line:?}"))?;
        if values.insert(name.to_owned(), value.to_owned()).is_some() {
            return Err(format!("the layout program printed {name} twice"));
        }
    }
    Ok(values)
}

/// The C program's output, computed once for all tests of this file.
fn c_values() -> &'static BTreeMap<String, String> {
    static VALUES: OnceLock<Result<BTreeMap<String, String>, String>> = OnceLock::new();
    match VALUES.get_or_init(run_c_program) {
        Ok(values) => values,
        Err(message) => panic!("{message}"),
    }
}

// ---- reading the header's text -----------------------------------------------

fn header_text() -> String {
    let path = Path::new(INCLUDE_DIR).join(HEADER_NAME);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The header without `/* */` and `//` comments.
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let block = rest.find("/*");
        let line = rest.find("//");
        match (block, line) {
            (Some(b), l) if l.is_none_or(|l| b < l) => {
                out.push_str(&rest[..b]);
                out.push(' ');
                rest = rest[b + 2..]
                    .find("*/")
                    .map_or("", |end| &rest[b + 2 + end + 2..]);
            }
            (_, Some(l)) => {
                out.push_str(&rest[..l]);
                rest = rest[l..].find('\n').map_or("", |end| &rest[l + end..]);
            }
            _ => {
                out.push_str(rest);
                return out;
            }
        }
    }
}

/// The names of the header's `#define LW_*` constants.
fn header_defines(text: &str) -> BTreeSet<String> {
    strip_comments(text)
        .lines()
        .filter_map(|line| line.trim().strip_prefix("#define"))
        .filter_map(|rest| rest.split_whitespace().next())
        .filter(|name| name.starts_with("LW_"))
        .map(str::to_owned)
        .collect()
}

/// The header's `typedef struct NAME { ... } NAME;` declarations, each with
/// its field names in order.
fn header_structs(text: &str) -> BTreeMap<String, Vec<String>> {
    let text = strip_comments(text);
    let mut structs = BTreeMap::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("typedef struct") {
        rest = &rest[at + "typedef struct".len()..];
        let Some(open) = rest.find('{') else { break };
        let name = rest[..open].trim().to_owned();
        let Some(close) = rest.find('}') else { break };
        let body = &rest[open + 1..close];
        let fields = body
            .split(';')
            .map(str::trim)
            .filter(|decl| !decl.is_empty())
            .map(|decl| {
                if let Some(star) = decl.find("(*") {
                    // A function pointer: `ret (*name)(args)`.
                    let after = &decl[star + 2..];
                    after[..after.find(')').unwrap_or(after.len())]
                        .trim()
                        .to_owned()
                } else {
                    decl.rsplit(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .find(|word| !word.is_empty())
                        .unwrap_or_default()
                        .to_owned()
                }
            })
            .collect();
        structs.insert(name, fields);
        rest = &rest[close + 1..];
    }
    structs
}

// ---- the tests ---------------------------------------------------------------

#[test]
fn header_and_rust_types_agree() {
    let actual = c_values();
    let expected = expected_entries();

    let mut mismatches = Vec::new();
    let mut checked = 0;
    for (name, want) in &expected {
        match actual.get(name) {
            Some(got) if got == want => {}
            Some(got) => {
                mismatches.push(format!("{name}: the header says {got}, Rust says {want}"))
            }
            None => mismatches.push(format!("{name}: the C program printed no value")),
        }
        checked += 1;
    }
    assert!(
        mismatches.is_empty(),
        "include/{HEADER_NAME} and linkwright_plugin_sdk::abi disagree on {} of {checked} entries:\n  {}",
        mismatches.len(),
        mismatches.join("\n  ")
    );

    let names: BTreeSet<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.len(), expected.len(), "an entry is listed twice");
    let unexpected: Vec<&String> = actual
        .keys()
        .filter(|k| !names.contains(k.as_str()))
        .collect();
    assert!(
        unexpected.is_empty(),
        "the C program printed unchecked entries: {unexpected:?}"
    );
    assert_eq!(
        checked, EXPECTED_ENTRIES,
        "number of header/Rust entries checked (a struct, field or constant was added or \
         removed: update this test and EXPECTED_ENTRIES)"
    );
    assert_eq!(
        actual.len(),
        EXPECTED_ENTRIES,
        "number of entries the C program printed"
    );
}

#[test]
fn every_header_struct_field_and_constant_is_checked() {
    let text = header_text();

    // Constants: the header's `#define LW_*` names are exactly those checked.
    let in_header = header_defines(&text);
    let checked: BTreeSet<String> = rust_constants()
        .iter()
        .map(|(n, _)| (*n).to_owned())
        .collect();
    let only_in_header: Vec<&String> = in_header.difference(&checked).collect();
    let only_in_test: Vec<&String> = checked.difference(&in_header).collect();
    assert!(
        only_in_header.is_empty() && only_in_test.is_empty(),
        "the #define LW_* constants of include/{HEADER_NAME} differ from those this test checks: \
         only in the header {only_in_header:?}, only in the test {only_in_test:?}"
    );

    // Structs and their fields, in declaration order.
    let in_header = header_structs(&text);
    let checked: BTreeMap<String, Vec<String>> = rust_structs()
        .iter()
        .map(|s| {
            let fields = s.fields.iter().map(|f| f.name.to_owned()).collect();
            (s.c_name.to_owned(), fields)
        })
        .collect();
    let header_names: Vec<&String> = in_header.keys().collect();
    let checked_names: Vec<&String> = checked.keys().collect();
    assert_eq!(
        header_names, checked_names,
        "the structs of include/{HEADER_NAME} (left) differ from those this test checks (right)"
    );
    for (name, fields) in &in_header {
        assert_eq!(
            Some(fields),
            checked.get(name),
            "the fields of {name} in include/{HEADER_NAME} (left) differ from those this test checks (right)"
        );
    }

    let field_count: usize = in_header.values().map(Vec::len).sum();
    assert_eq!(
        in_header.len() * 2 + field_count * 2 + header_defines(&text).len(),
        EXPECTED_ENTRIES,
        "entries implied by the header text"
    );
}

#[test]
fn entry_symbol_carries_the_major_version() {
    let symbol = &c_values()["LW_ENTRY_SYMBOL"];
    assert_eq!(
        *symbol,
        format!("{}{}", abi::ENTRY_SYMBOL_PREFIX, abi::ABI_MAJOR),
        "LW_ENTRY_SYMBOL is ENTRY_SYMBOL_PREFIX followed by ABI_MAJOR"
    );
}

#[test]
fn header_status_codes_round_trip_through_status() {
    let statuses: Vec<(&str, i32)> = c_values()
        .iter()
        .filter(|(name, _)| name.starts_with("LW_STATUS_"))
        .map(|(name, value)| {
            let code = value
                .parse::<i32>()
                .unwrap_or_else(|e| panic!("{name} = {value:?} is not an i32: {e}"));
            (name.as_str(), code)
        })
        .collect();
    assert_eq!(
        statuses.len(),
        15,
        "number of LW_STATUS_* codes in the header"
    );

    for &(name, code) in &statuses {
        match Status::from_code(code) {
            None => assert_eq!(
                name, "LW_STATUS_OK",
                "Status::from_code({code}) is None, but {name} is not LW_STATUS_OK"
            ),
            Some(s) => {
                assert_ne!(
                    name, "LW_STATUS_OK",
                    "Status::from_code(LW_STATUS_OK) must be None"
                );
                assert_eq!(
                    header_name(s),
                    name,
                    "Status::from_code({name} = {code}) is {s:?}"
                );
                assert_eq!(s.code(), code, "{s:?}.code() must be {name} = {code}");
            }
        }
    }

    // No code outside the header's list maps to a status.
    let codes: BTreeSet<i32> = statuses.iter().map(|&(_, c)| c).collect();
    assert_eq!(
        codes.len(),
        statuses.len(),
        "two LW_STATUS_* codes share a value"
    );
    for code in -64..=1024 {
        if !codes.contains(&code) {
            assert_eq!(
                Status::from_code(code),
                None,
                "Status::from_code({code}) knows a code the header does not define"
            );
        }
    }
}
