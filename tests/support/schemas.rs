//! The MQTT API's JSON Schemas (`protocols/mqtt-api/schemas/*.json`, draft 2020-12) as
//! validators, for tests that check what the gateway publishes against the contract.
//!
//! ```ignore
//! #[path = "support/schemas.rs"]
//! mod schemas;
//! schemas::assert_valid("suggestion", &serde_json::to_value(&view).unwrap());
//! schemas::assert_valid("reply_suggestions_approve", &reply);
//! ```
//!
//! Names are file names without `.json`: `bridge_state`, `status_pending`, `suggestion`,
//! `device_status`, `request_<group>_<verb>`, `reply_<group>_<verb>`, `event_<type>`, ...
//! Relative `$ref`s (`common.json#/$defs/timestamp`) are read from the schemas folder; nothing
//! is fetched from the network. Formats (`date-time`) are checked, not just annotated.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use jsonschema::{Retrieve, Uri, Validator};
use serde_json::Value;

/// `protocols/mqtt-api`.
pub fn api_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("protocols/mqtt-api")
}

/// `protocols/mqtt-api/schemas`.
pub fn schemas_dir() -> PathBuf {
    api_dir().join("schemas")
}

/// Every schema file's name (without `.json`), sorted.
pub fn names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(schemas_dir())
        .expect("protocols/mqtt-api/schemas exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The schema file `name` as JSON.
pub fn load(name: &str) -> Value {
    let path = schemas_dir().join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("no schema {name:?} ({}): {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// A fresh validator for the schema file `name` (e.g. `"suggestion"`).
pub fn validator(name: &str) -> Validator {
    try_validator(name).unwrap_or_else(|e| panic!("schema {name:?} does not compile: {e}"))
}

/// Like [`validator`], with the compile error as a value.
pub fn try_validator(name: &str) -> Result<Validator, String> {
    let schema = load(name);
    jsonschema::options()
        .with_base_uri(file_uri(&schemas_dir().join(format!("{name}.json"))))
        .with_retriever(SchemaFiles)
        .should_validate_formats(true)
        .build(&schema)
        .map_err(|e| e.to_string())
}

/// The errors of `instance` against schema `name`, one line each (`/path: message`).
pub fn errors(name: &str, instance: &Value) -> Vec<String> {
    let v = cached(name);
    v.iter_errors(instance)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// Whether `instance` is valid against schema `name`.
pub fn is_valid(name: &str, instance: &Value) -> bool {
    cached(name).is_valid(instance)
}

/// Panics, naming every violation, unless `instance` is valid against schema `name`.
pub fn assert_valid(name: &str, instance: &Value) {
    let errs = errors(name, instance);
    assert!(
        errs.is_empty(),
        "not a valid {name}:\n  {}\n{}",
        errs.join("\n  "),
        serde_json::to_string_pretty(instance).unwrap()
    );
}

/// Panics unless `instance` is refused by schema `name`.
pub fn assert_invalid(name: &str, instance: &Value) {
    assert!(
        !is_valid(name, instance),
        "schema {name} accepts what it should refuse:\n{}",
        serde_json::to_string_pretty(instance).unwrap()
    );
}

/// Compiled once per test binary; validators are immutable. A schema that does not compile
/// panics in the calling test only (the lock is not held while compiling).
fn cached(name: &str) -> &'static Validator {
    static CACHE: OnceLock<Mutex<HashMap<String, &'static Validator>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let lock = || cache.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(v) = lock().get(name) {
        return v;
    }
    let built: &'static Validator = Box::leak(Box::new(validator(name)));
    let v: &'static Validator = lock().entry(name.to_string()).or_insert(built);
    v
}

/// Reads `file:` references from the schemas folder, and nothing else.
struct SchemaFiles;

impl Retrieve for SchemaFiles {
    fn retrieve(
        &self,
        uri: &Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        if uri.scheme().as_str() != "file" {
            return Err(format!("{uri}: only the local schema files are read").into());
        }
        let path = PathBuf::from(percent_decode(uri.path().as_str()));
        let dir = schemas_dir();
        if path.parent() != Some(dir.as_path()) {
            return Err(format!("{uri} is outside {}", dir.display()).into());
        }
        let text = std::fs::read_to_string(&path)?;
        Ok(serde_json::from_str(&text)?)
    }
}

/// `file:///...` for an absolute path, percent-encoding what a URI path cannot hold as is.
fn file_uri(path: &Path) -> String {
    let mut out = String::from("file://");
    for b in path.to_string_lossy().bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
