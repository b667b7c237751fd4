//! Sealing device keys at rest: XSalsa20-Poly1305 (`crypto_secretbox`) under a 32-byte key
//! kept in its own file (`store.key_file`), so a copy of the store alone reveals no panel or
//! lock key.
//!
//! A sealed blob is `version (1) || nonce (24) || ciphertext+tag`. Nonces are random from
//! the OS CSPRNG: at 24 bytes, collisions are not a concern.

use std::io::Write;
use std::path::{Path, PathBuf};

use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::{Key, Nonce, XSalsa20Poly1305};
use rand::RngCore;

const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("cannot read the sealing key {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create the sealing key {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the sealing key {path} must hold exactly 32 bytes, not {len}")]
    BadKey { path: PathBuf, len: usize },
    #[error("the sealing key file {path} is readable by others (mode {mode:o}); chmod 600 it")]
    Exposed { path: PathBuf, mode: u32 },
    /// Wrong key, a truncated blob, or tampering: never retried, never half-read.
    #[error("a sealed record does not open with this key (wrong key or damaged record)")]
    Open,
}

/// Seals and opens small secrets. Its Debug never shows the key.
#[derive(Clone)]
pub struct Sealer {
    cipher: XSalsa20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(***)")
    }
}

impl Sealer {
    pub fn from_key(key: [u8; 32]) -> Sealer {
        Sealer {
            cipher: XSalsa20Poly1305::new(Key::from_slice(&key)),
        }
    }

    /// Read the key file, or make one with a fresh random key (mode 0600) when it is absent.
    pub fn load_or_create(path: &Path) -> Result<Sealer, SealError> {
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
        match std::fs::read(path) {
            Ok(bytes) => {
                let meta = std::fs::metadata(path).map_err(|source| SealError::Read {
                    path: path.into(),
                    source,
                })?;
                if meta.mode() & 0o077 != 0 {
                    return Err(SealError::Exposed {
                        path: path.into(),
                        mode: meta.mode() & 0o777,
                    });
                }
                let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| SealError::BadKey {
                    path: path.into(),
                    len: bytes.len(),
                })?;
                Ok(Sealer::from_key(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut key);
                let create = |source| SealError::Create {
                    path: path.into(),
                    source,
                };
                // Written under a temporary name and renamed, so a crash never leaves a short
                // key that would seal records nobody can open.
                let tmp = path.with_extension("key-new");
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&tmp)
                    .map_err(create)?;
                f.write_all(&key).map_err(create)?;
                f.sync_all().map_err(create)?;
                std::fs::rename(&tmp, path).map_err(create)?;
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::File::open(dir)
                        .and_then(|d| d.sync_all())
                        .map_err(create)?;
                }
                Ok(Sealer::from_key(key))
            }
            Err(source) => Err(SealError::Read {
                path: path.into(),
                source,
            }),
        }
    }

    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext)
            .expect("XSalsa20-Poly1305 encryption of an in-memory buffer cannot fail");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < 1 + NONCE_LEN || sealed[0] != VERSION {
            return Err(SealError::Open);
        }
        let (nonce, ct) = sealed[1..].split_at(NONCE_LEN);
        self.cipher
            .decrypt(Nonce::from_slice(nonce), ct)
            .map_err(|_| SealError::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_with_its_key() {
        let a = Sealer::from_key([7; 32]);
        let b = Sealer::from_key([8; 32]);
        let sealed = a.seal(b"panel key");
        assert!(!sealed.windows(9).any(|w| w == b"panel key"));
        assert_eq!(a.open(&sealed).unwrap(), b"panel key");
        assert!(matches!(b.open(&sealed), Err(SealError::Open)));
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(matches!(a.open(&tampered), Err(SealError::Open)));
        assert!(matches!(a.open(&sealed[..10]), Err(SealError::Open)));
    }

    #[test]
    fn the_key_file_is_made_once_private_and_then_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.key");
        let first = Sealer::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let sealed = first.seal(b"x");
        let again = Sealer::load_or_create(&path).unwrap();
        assert_eq!(again.open(&sealed).unwrap(), b"x");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            Sealer::load_or_create(&path),
            Err(SealError::Exposed { .. })
        ));
    }
}
