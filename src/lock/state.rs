//! What the writer remembers per lock, kept in the outbox's per-device state blob. The whole
//! blob is sealed (it holds the shared key, the authorization id and residents' codes).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::core::ResidentId;
use crate::seal::Sealer;

/// The pairing result.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredAuth {
    pub auth_id: u32,
    /// 32 bytes, hex.
    pub shared_key: String,
    pub lock_uuid: String,
}

impl std::fmt::Debug for StoredAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoredAuth(<redacted>)")
    }
}

/// A code the lock confirmed (it answered with its id, or we read it back).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfirmedCode {
    pub id: u16,
    pub code: u32,
    pub name: String,
    /// The 20-byte time-limits field as written, hex.
    pub limits: String,
}

impl std::fmt::Debug for ConfirmedCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfirmedCode")
            .field("id", &self.id)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockState {
    pub auth: Option<StoredAuth>,
    pub codes: BTreeMap<ResidentId, ConfirmedCode>,
}

impl LockState {
    pub fn open(sealer: &Sealer, sealed: Option<&[u8]>) -> Result<LockState, String> {
        let Some(sealed) = sealed else {
            return Ok(LockState::default());
        };
        let plain = sealer
            .open(sealed)
            .map_err(|e| format!("cannot open the lock state: {e}"))?;
        serde_json::from_slice(&plain).map_err(|e| format!("lock state is not valid: {e}"))
    }

    pub fn seal(&self, sealer: &Sealer) -> Vec<u8> {
        let mut plain = serde_json::to_vec(self).expect("plain data serializes");
        let out = sealer.seal(&plain);
        plain.fill(0);
        out
    }
}
