//! OSDP Secure Channel (IEC 60839-11-5 Annex D) on RustCrypto's AES-128: session keys,
//! cryptograms, the MAC chain and payload encryption. No block cipher code of our own: ECB is
//! one `encrypt_block`, CBC is the `cbc` crate, and the MAC is CBC-MAC whose last block
//! switches from S-MAC1 to S-MAC2.

use aes::cipher::{BlockDecryptMut, BlockEncrypt, BlockEncryptMut, KeyInit, KeyIvInit};
use aes::Aes128;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::codec::{Frame, Scb};

/// SCS block types.
pub mod scs {
    pub const CHLNG: u8 = 0x11;
    pub const CCRYPT: u8 = 0x12;
    pub const SCRYPT: u8 = 0x13;
    pub const RMAC_I: u8 = 0x14;
    pub const CMD_MAC: u8 = 0x15;
    pub const REPLY_MAC: u8 = 0x16;
    pub const CMD_ENC: u8 = 0x17;
    pub const REPLY_ENC: u8 = 0x18;
}

/// A 128-bit key (SCBK or a session key). Debug never shows it; it is wiped on drop.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Key([u8; 16]);

impl Key {
    pub const fn new(bytes: [u8; 16]) -> Self {
        Key(bytes)
    }
    /// SCBK-D, the well-known install-mode key 30 31 .. 3F.
    pub fn default_install_key() -> Self {
        let mut k = [0u8; 16];
        for (i, b) in k.iter_mut().enumerate() {
            *b = 0x30 + i as u8;
        }
        Key(k)
    }
    pub fn random(rng: &mut impl rand_core::CryptoRngCore) -> Self {
        let mut k = [0u8; 16];
        rng.fill_bytes(&mut k);
        Key(k)
    }
    pub fn expose(&self) -> &[u8; 16] {
        &self.0
    }
    pub fn is_default_install_key(&self) -> bool {
        *self == Key::default_install_key()
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScError {
    #[error("the PD's client cryptogram does not match any key we hold")]
    CryptogramMismatch,
    #[error("initial R-MAC does not match")]
    RmacMismatch,
    #[error("MAC does not match")]
    BadMac,
    #[error("security block type {0:#04x} not expected here")]
    UnexpectedScb(u8),
    #[error("secure-channel frame without a security block")]
    MissingScb,
    #[error("encrypted data is not a whole number of blocks or its padding is wrong")]
    BadPadding,
}

/// Compare MACs and cryptograms in constant time.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

fn ecb(key: &Key, block: &[u8; 16]) -> [u8; 16] {
    let cipher = Aes128::new(key.0.as_ref().into());
    let mut b = aes::Block::clone_from_slice(block);
    cipher.encrypt_block(&mut b);
    b.into()
}

/// S-ENC, S-MAC1 and S-MAC2 for one session.
#[derive(Clone, Debug)]
pub struct SessionKeys {
    pub s_enc: Key,
    pub s_mac1: Key,
    pub s_mac2: Key,
}

impl SessionKeys {
    pub fn derive(scbk: &Key, rnd_a: &[u8; 8]) -> Self {
        let k = |a: u8, b: u8| {
            let mut input = [0u8; 16];
            input[0] = a;
            input[1] = b;
            input[2..8].copy_from_slice(&rnd_a[..6]);
            Key(ecb(scbk, &input))
        };
        SessionKeys {
            s_enc: k(0x01, 0x82),
            s_mac1: k(0x01, 0x01),
            s_mac2: k(0x01, 0x02),
        }
    }

    /// The PD's proof: AES(S-ENC, RND.A | RND.B).
    pub fn client_cryptogram(&self, rnd_a: &[u8; 8], rnd_b: &[u8; 8]) -> [u8; 16] {
        ecb(&self.s_enc, &concat8(rnd_a, rnd_b))
    }

    /// The CP's proof: AES(S-ENC, RND.B | RND.A).
    pub fn server_cryptogram(&self, rnd_a: &[u8; 8], rnd_b: &[u8; 8]) -> [u8; 16] {
        ecb(&self.s_enc, &concat8(rnd_b, rnd_a))
    }

    /// R-MAC-I = AES(S-MAC2, AES(S-MAC1, server cryptogram)).
    pub fn initial_rmac(&self, server_cryptogram: &[u8; 16]) -> [u8; 16] {
        ecb(&self.s_mac2, &ecb(&self.s_mac1, server_cryptogram))
    }

    /// The OSDP MAC: CBC-MAC with S-MAC1, last block with S-MAC2, `80 00..` padding only when
    /// the input is not a whole number of blocks. Returns the full 16-byte chain value.
    pub fn mac(&self, iv: &[u8; 16], input: &[u8]) -> [u8; 16] {
        let mut padded = input.to_vec();
        if !padded.len().is_multiple_of(16) || padded.is_empty() {
            padded.push(0x80);
            padded.resize(padded.len().div_ceil(16) * 16, 0);
        }
        let blocks = padded.len() / 16;
        let mut chain = *iv;
        for (i, block) in padded.chunks_exact(16).enumerate() {
            for (c, b) in chain.iter_mut().zip(block) {
                *c ^= b;
            }
            let key = if i + 1 == blocks {
                &self.s_mac2
            } else {
                &self.s_mac1
            };
            chain = ecb(key, &chain);
        }
        chain
    }

    /// AES-CBC with S-ENC over `plain | 80 | 00..`.
    pub fn encrypt(&self, iv: &[u8; 16], plain: &[u8]) -> Vec<u8> {
        let mut buf = plain.to_vec();
        buf.push(0x80);
        buf.resize(buf.len().div_ceil(16) * 16, 0);
        let len = buf.len();
        cbc::Encryptor::<Aes128>::new(self.s_enc.0.as_ref().into(), iv.into())
            .encrypt_padded_mut::<aes::cipher::block_padding::NoPadding>(&mut buf, len)
            .expect("whole blocks");
        buf
    }

    pub fn decrypt(&self, iv: &[u8; 16], cipher: &[u8]) -> Result<Vec<u8>, ScError> {
        if cipher.is_empty() || !cipher.len().is_multiple_of(16) {
            return Err(ScError::BadPadding);
        }
        let mut buf = cipher.to_vec();
        cbc::Decryptor::<Aes128>::new(self.s_enc.0.as_ref().into(), iv.into())
            .decrypt_padded_mut::<aes::cipher::block_padding::NoPadding>(&mut buf)
            .map_err(|_| ScError::BadPadding)?;
        while buf.last() == Some(&0) {
            buf.pop();
        }
        if buf.pop() != Some(0x80) {
            return Err(ScError::BadPadding);
        }
        Ok(buf)
    }
}

fn concat8(a: &[u8; 8], b: &[u8; 8]) -> [u8; 16] {
    let mut o = [0u8; 16];
    o[..8].copy_from_slice(a);
    o[8..].copy_from_slice(b);
    o
}

fn not(v: &[u8; 16]) -> [u8; 16] {
    let mut o = *v;
    for b in &mut o {
        *b = !*b;
    }
    o
}

/// An established secure channel: the session keys and the MAC chain. The same type serves
/// both ends; a CP calls `seal_command`/`open_reply`, a PD `open_command`/`seal_reply`.
#[derive(Clone, Debug)]
pub struct Channel {
    keys: SessionKeys,
    /// Last R-MAC (R-MAC-I at first): IV of the next command's MAC.
    last_rmac: [u8; 16],
    /// Last C-MAC: IV of the reply's MAC.
    last_cmac: [u8; 16],
}

impl Channel {
    pub fn new(keys: SessionKeys, rmac_i: [u8; 16]) -> Self {
        Channel {
            keys,
            last_rmac: rmac_i,
            last_cmac: [0; 16],
        }
    }

    pub fn keys(&self) -> &SessionKeys {
        &self.keys
    }

    fn seal(&mut self, frame: &mut Frame, plain_kind: u8, enc_kind: u8, command: bool) {
        let iv = if command {
            self.last_rmac
        } else {
            self.last_cmac
        };
        if frame.data.is_empty() {
            frame.scb = Some(Scb::new(plain_kind, &[]));
        } else {
            frame.data = self.keys.encrypt(&not(&iv), &frame.data);
            frame.scb = Some(Scb::new(enc_kind, &[]));
        }
        let mac = self.keys.mac(&iv, &frame.header_and_body());
        frame.mac = Some([mac[0], mac[1], mac[2], mac[3]]);
        if command {
            self.last_cmac = mac;
        } else {
            self.last_rmac = mac;
        }
    }

    fn open(
        &mut self,
        frame: &Frame,
        plain_kind: u8,
        enc_kind: u8,
        command: bool,
    ) -> Result<Vec<u8>, ScError> {
        let scb = frame.scb.as_ref().ok_or(ScError::MissingScb)?;
        if scb.kind != plain_kind && scb.kind != enc_kind {
            return Err(ScError::UnexpectedScb(scb.kind));
        }
        let iv = if command {
            self.last_rmac
        } else {
            self.last_cmac
        };
        let mac = self.keys.mac(&iv, &frame.header_and_body());
        if !frame.mac.is_some_and(|m| ct_eq(&m, &mac[..4])) {
            return Err(ScError::BadMac);
        }
        let data = if scb.kind == enc_kind {
            self.keys.decrypt(&not(&iv), &frame.data)?
        } else {
            frame.data.clone()
        };
        if command {
            self.last_cmac = mac;
        } else {
            self.last_rmac = mac;
        }
        Ok(data)
    }

    /// Turn a plain command frame into SCS_15 (no data) or SCS_17 (data encrypted) with its MAC.
    pub fn seal_command(&mut self, frame: &mut Frame) {
        self.seal(frame, scs::CMD_MAC, scs::CMD_ENC, true)
    }

    /// Check a reply's MAC against the chain and return its plaintext data.
    pub fn open_reply(&mut self, frame: &Frame) -> Result<Vec<u8>, ScError> {
        self.open(frame, scs::REPLY_MAC, scs::REPLY_ENC, false)
    }

    pub fn open_command(&mut self, frame: &Frame) -> Result<Vec<u8>, ScError> {
        self.open(frame, scs::CMD_MAC, scs::CMD_ENC, true)
    }

    pub fn seal_reply(&mut self, frame: &mut Frame) {
        self.seal(frame, scs::REPLY_MAC, scs::REPLY_ENC, false)
    }
}
