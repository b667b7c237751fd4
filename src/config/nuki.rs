//! The `[nuki]` section of the deployment config.

use std::path::Path;

#[derive(Clone, Debug, Default)]
pub struct NukiConfig {}

/// Read the `[nuki]` section; every problem is pushed to `errors` as `(key path, reason)`.
pub(super) fn parse(
    v: Option<&toml::Value>,
    _base: &Path,
    errors: &mut Vec<(String, String)>,
) -> NukiConfig {
    match v {
        None => NukiConfig::default(),
        Some(toml::Value::Table(_)) => {
            errors.push(("nuki".into(), "is not supported by this build yet".into()));
            NukiConfig::default()
        }
        Some(other) => {
            errors.push((
                "nuki".into(),
                format!("must be a table, not {}", other.type_str()),
            ));
            NukiConfig::default()
        }
    }
}
