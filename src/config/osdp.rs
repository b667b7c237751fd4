//! The `[osdp]` section of the deployment config.

use std::path::Path;

#[derive(Clone, Debug, Default)]
pub struct OsdpConfig {}

/// Read the `[osdp]` section; every problem is pushed to `errors` as `(key path, reason)`.
pub(super) fn parse(
    v: Option<&toml::Value>,
    _base: &Path,
    errors: &mut Vec<(String, String)>,
) -> OsdpConfig {
    match v {
        None => OsdpConfig::default(),
        Some(toml::Value::Table(_)) => {
            errors.push(("osdp".into(), "is not supported by this build yet".into()));
            OsdpConfig::default()
        }
        Some(other) => {
            errors.push((
                "osdp".into(),
                format!("must be a table, not {}", other.type_str()),
            ));
            OsdpConfig::default()
        }
    }
}
