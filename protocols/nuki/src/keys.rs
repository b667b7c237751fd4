//! Key material: the long-term shared key (X25519 then HSalsa20, as `crypto_box_beforenm`),
//! the app's key pair, and the lock's security PIN. Every secret type has a redacted Debug
//! and is wiped on drop. This module draws no randomness: callers pass bytes from the OS
//! CSPRNG.

use core::fmt;

use curve25519_dalek::montgomery::MontgomeryPoint;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// The 32-byte key shared by the app and the lock after pairing.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct SharedKey([u8; 32]);

impl SharedKey {
    /// kdf1(dh1): HSalsa20 keyed with X25519(own secret, peer public) over 16 zero bytes.
    pub fn derive(own_secret: &AppSecretKey, peer_public: &[u8; 32]) -> SharedKey {
        let dh = Zeroizing::new(MontgomeryPoint(*peer_public).mul_clamped(own_secret.0).0);
        let key =
            salsa20::hsalsa::<salsa20::cipher::consts::U10>((&*dh).into(), &Default::default());
        let mut out = [0u8; 32];
        out.copy_from_slice(&key);
        SharedKey(out)
    }

    pub fn from_bytes(bytes: [u8; 32]) -> SharedKey {
        SharedKey(bytes)
    }

    /// The raw key, for sealing at rest. Never log it.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    /// h1: HMAC-SHA256 keyed with the shared key.
    pub fn authenticator(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("any key length");
        for p in parts {
            mac.update(p);
        }
        mac.finalize().into_bytes().into()
    }

    /// Constant-time check of an authenticator received from the peer.
    pub fn verify_authenticator(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("any key length");
        for p in parts {
            mac.update(p);
        }
        mac.verify_slice(tag).is_ok()
    }
}

impl fmt::Debug for SharedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedKey(<redacted>)")
    }
}

/// The app's X25519 secret key (32 bytes from the OS CSPRNG).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct AppSecretKey([u8; 32]);

impl AppSecretKey {
    pub fn from_bytes(bytes: [u8; 32]) -> AppSecretKey {
        AppSecretKey(bytes)
    }

    /// The matching public key (X25519 base-point multiplication, via `crypto_box`).
    pub fn public_key(&self) -> [u8; 32] {
        crypto_box::SecretKey::from_bytes(self.0)
            .public_key()
            .to_bytes()
    }
}

impl fmt::Debug for AppSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AppSecretKey(<redacted>)")
    }
}

/// How the lock encodes its security PIN: u16 on Smart Lock 1–4, u32 on 5th generation/Ultra.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PinWidth {
    #[default]
    U16,
    U32,
}

/// The lock's admin security PIN, sent with every administrative command.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct SecurityPin {
    value: u32,
    #[zeroize(skip)]
    width: PinWidth,
}

impl SecurityPin {
    /// `None` if the value does not fit the width.
    pub fn new(value: u32, width: PinWidth) -> Option<SecurityPin> {
        match width {
            PinWidth::U16 if value > u16::MAX as u32 => None,
            _ => Some(SecurityPin { value, width }),
        }
    }

    pub fn width(&self) -> PinWidth {
        self.width
    }

    pub(crate) fn put(&self, out: &mut Vec<u8>) {
        match self.width {
            PinWidth::U16 => out.extend_from_slice(&(self.value as u16).to_le_bytes()),
            PinWidth::U32 => out.extend_from_slice(&self.value.to_le_bytes()),
        }
    }
}

impl fmt::Debug for SecurityPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecurityPin(<redacted>)")
    }
}
