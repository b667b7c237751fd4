//! Secrets come from files: a path in the config, or a systemd credential.
//!
//! A relative name is looked up first in `$CREDENTIALS_DIRECTORY` (systemd's
//! `LoadCredential=`), then beside the config file. Errors name the file, never its content.
//!
//! The shipped unit loads the whole folder `/etc/leasegate/credentials` with
//! `LoadCredential=leasegate:/etc/leasegate/credentials`; systemd then names each file
//! `leasegate_<file>`, so that name is tried too and the config keeps the plain file name.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret file {path} cannot be read: {source}")]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("secret file {path} is empty")]
    Empty { path: PathBuf },
}

/// A credential in memory. It prints as `***` in logs, errors and `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the one place that must send it (an HTTP header, a login body).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// The credential ID the shipped unit gives its folder of secrets, plus systemd's `_`.
pub const CREDENTIAL_PREFIX: &str = "leasegate_";

/// Where a secret named `name` in a config whose folder is `base` is read from.
pub fn secret_path(base: &Path, name: &str, credentials_dir: Option<&Path>) -> PathBuf {
    let p = Path::new(name);
    if p.is_absolute() {
        return p.to_path_buf();
    }
    if let Some(dir) = credentials_dir {
        let loaded_from_folder = format!("{CREDENTIAL_PREFIX}{name}");
        for candidate in [dir.join(p), dir.join(loaded_from_folder)] {
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    base.join(p)
}

/// Read a secret, trimming one trailing newline (editors add one).
pub fn read_secret(base: &Path, name: &str) -> Result<Secret, SecretError> {
    let creds = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
    let path = secret_path(base, name, creds.as_deref());
    let text = std::fs::read_to_string(&path).map_err(|source| SecretError::Unreadable {
        path: path.clone(),
        source,
    })?;
    let value = text.strip_suffix('\n').unwrap_or(&text);
    let value = value.strip_suffix('\r').unwrap_or(value);
    if value.is_empty() {
        return Err(SecretError::Empty { path });
    }
    Ok(Secret(value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_systemd_credential_is_preferred_over_a_file_beside_the_config() {
        let cfg = tempfile::tempdir().unwrap();
        let creds = tempfile::tempdir().unwrap();
        std::fs::write(cfg.path().join("api-key"), "from-config-dir\n").unwrap();
        std::fs::write(creds.path().join("api-key"), "from-credentials\n").unwrap();
        let p = secret_path(cfg.path(), "api-key", Some(creds.path()));
        assert_eq!(p, creds.path().join("api-key"));
        let p = secret_path(cfg.path(), "api-key", None);
        assert_eq!(p, cfg.path().join("api-key"));
    }

    #[test]
    fn a_secret_loaded_with_the_credentials_folder_is_found_under_its_plain_name() {
        let cfg = tempfile::tempdir().unwrap();
        let creds = tempfile::tempdir().unwrap();
        std::fs::write(cfg.path().join("mqtt-password"), "beside\n").unwrap();
        std::fs::write(creds.path().join("leasegate_mqtt-password"), "loaded\n").unwrap();
        let p = secret_path(cfg.path(), "mqtt-password", Some(creds.path()));
        assert_eq!(p, creds.path().join("leasegate_mqtt-password"));
    }

    #[test]
    fn a_missing_secret_error_names_the_file_and_an_empty_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_secret(dir.path(), "nope").unwrap_err();
        assert!(e.to_string().contains("nope"));
        std::fs::write(dir.path().join("empty"), "\n").unwrap();
        assert!(matches!(
            read_secret(dir.path(), "empty"),
            Err(SecretError::Empty { .. })
        ));
        std::fs::write(dir.path().join("ok"), "s3cret\n").unwrap();
        let s = read_secret(dir.path(), "ok").unwrap();
        assert_eq!(s.expose(), "s3cret");
        assert_eq!(format!("{s:?} {s}"), "Secret(***) ***");
    }
}
