//! Message framing.
//!
//! Unencrypted (pairing characteristic): `command id u16 | payload | crc u16`, CRC over id and
//! payload. The frame carries no length, so the length of each command's payload is known
//! per command id ([`plain_payload_len`]).
//!
//! Encrypted (keyturner USDIO characteristic): `ADATA = nonce 24 | auth id u32 | length u16`
//! then `tag 16 | ciphertext`, where the plaintext PDATA is
//! `auth id u32 | command id u16 | payload | crc u16` and `length = len(PDATA) + 16`.
//!
//! Decoders return [`FrameError::Incomplete`] (wait for more indications) distinctly from
//! invalid input.

use crypto_secretbox::aead::{AeadInPlace, KeyInit};
use crypto_secretbox::XSalsa20Poly1305;

use crate::cmd;
use crate::crc::crc16;
use crate::keys::SharedKey;

/// One BLE value: the lock indicates at most 20 bytes at a time.
pub const CHUNK: usize = 20;
pub const NONCE_LEN: usize = 24;
pub const ADATA_LEN: usize = NONCE_LEN + 4 + 2;
pub const TAG_LEN: usize = 16;
/// The longest encrypted message we accept (a list entry is < 100 bytes).
pub const MAX_ENCRYPTED_LEN: usize = 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum FrameError {
    #[error("incomplete message: {needed} more bytes needed")]
    Incomplete { needed: usize },
    #[error("bad CRC")]
    BadCrc,
    #[error("unknown command 0x{0:04x} on the pairing characteristic")]
    UnknownPlainCommand(u16),
    #[error("length field {0} out of range")]
    BadLength(usize),
    #[error("message does not decrypt with the shared key")]
    Decrypt,
    #[error("authorization id in the clear differs from the encrypted one")]
    AuthIdMismatch,
}

/// A decoded message: command id and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub command: u16,
    pub payload: Vec<u8>,
}

/// Payload length of an unencrypted message, by command id (both directions).
pub fn plain_payload_len(command: u16) -> Option<usize> {
    Some(match command {
        cmd::REQUEST_DATA => 2,
        cmd::PUBLIC_KEY | cmd::CHALLENGE | cmd::AUTHORIZATION_AUTHENTICATOR => 32,
        // authenticator 32 | id type 1 | id 4 | name 32 | nonce 32
        cmd::AUTHORIZATION_DATA => 101,
        // authenticator 32 | auth id 4 | lock UUID 16 | nonce 32
        cmd::AUTHORIZATION_ID => 84,
        // authenticator 32 | auth id 4
        cmd::AUTHORIZATION_ID_CONFIRMATION => 36,
        cmd::STATUS => 1,
        cmd::ERROR_REPORT => 3,
        _ => return None,
    })
}

/// `command id | payload | crc`.
pub fn encode_plain(command: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 4);
    out.extend_from_slice(&command.to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc16(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Decode one unencrypted message from the front of `buf`; returns it and the bytes used.
pub fn decode_plain(buf: &[u8]) -> Result<(Message, usize), FrameError> {
    if buf.len() < 2 {
        return Err(FrameError::Incomplete {
            needed: 2 - buf.len(),
        });
    }
    let command = u16::from_le_bytes([buf[0], buf[1]]);
    let len = plain_payload_len(command).ok_or(FrameError::UnknownPlainCommand(command))?;
    let total = 2 + len + 2;
    if buf.len() < total {
        return Err(FrameError::Incomplete {
            needed: total - buf.len(),
        });
    }
    let crc = u16::from_le_bytes([buf[total - 2], buf[total - 1]]);
    if crc16(&buf[..total - 2]) != crc {
        return Err(FrameError::BadCrc);
    }
    Ok((
        Message {
            command,
            payload: buf[2..total - 2].to_vec(),
        },
        total,
    ))
}

/// Encrypt `command | payload` for the lock with a fresh 24-byte nonce (from the OS CSPRNG:
/// never reuse one).
pub fn encode_encrypted(
    key: &SharedKey,
    nonce: &[u8; NONCE_LEN],
    auth_id: u32,
    command: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut pdata = Vec::with_capacity(payload.len() + 8 + TAG_LEN);
    pdata.extend_from_slice(&auth_id.to_le_bytes());
    pdata.extend_from_slice(&command.to_le_bytes());
    pdata.extend_from_slice(payload);
    let crc = crc16(&pdata);
    pdata.extend_from_slice(&crc.to_le_bytes());
    let cipher = XSalsa20Poly1305::new(key.expose().into());
    let tag = cipher
        .encrypt_in_place_detached(nonce.into(), &[], &mut pdata)
        .expect("XSalsa20-Poly1305 encrypts any length below 2^38");
    let mut out = Vec::with_capacity(ADATA_LEN + TAG_LEN + pdata.len());
    out.extend_from_slice(nonce);
    out.extend_from_slice(&auth_id.to_le_bytes());
    out.extend_from_slice(&((pdata.len() + TAG_LEN) as u16).to_le_bytes());
    out.extend_from_slice(&tag);
    out.extend_from_slice(&pdata);
    out
}

/// Total length of the encrypted message starting at `buf`, once its ADATA has arrived.
pub fn encrypted_len(buf: &[u8]) -> Result<usize, FrameError> {
    if buf.len() < ADATA_LEN {
        return Err(FrameError::Incomplete {
            needed: ADATA_LEN - buf.len(),
        });
    }
    let len = u16::from_le_bytes([buf[28], buf[29]]) as usize;
    // PDATA holds at least auth id, command id and CRC.
    if len < TAG_LEN + 8 || ADATA_LEN + len > MAX_ENCRYPTED_LEN {
        return Err(FrameError::BadLength(len));
    }
    Ok(ADATA_LEN + len)
}

/// Decrypt one message from the front of `buf`. Returns the authorization id, the message
/// and the bytes used.
pub fn decode_encrypted(key: &SharedKey, buf: &[u8]) -> Result<(u32, Message, usize), FrameError> {
    let total = encrypted_len(buf)?;
    if buf.len() < total {
        return Err(FrameError::Incomplete {
            needed: total - buf.len(),
        });
    }
    let nonce: [u8; NONCE_LEN] = buf[..NONCE_LEN].try_into().expect("24 bytes");
    let clear_auth = u32::from_le_bytes(buf[24..28].try_into().expect("4 bytes"));
    let tag = &buf[ADATA_LEN..ADATA_LEN + TAG_LEN];
    let mut pdata = buf[ADATA_LEN + TAG_LEN..total].to_vec();
    let cipher = XSalsa20Poly1305::new(key.expose().into());
    cipher
        .decrypt_in_place_detached((&nonce).into(), &[], &mut pdata, tag.into())
        .map_err(|_| FrameError::Decrypt)?;
    let n = pdata.len();
    let crc = u16::from_le_bytes([pdata[n - 2], pdata[n - 1]]);
    if crc16(&pdata[..n - 2]) != crc {
        return Err(FrameError::BadCrc);
    }
    let auth_id = u32::from_le_bytes(pdata[..4].try_into().expect("4 bytes"));
    if auth_id != clear_auth {
        return Err(FrameError::AuthIdMismatch);
    }
    let command = u16::from_le_bytes([pdata[4], pdata[5]]);
    Ok((
        auth_id,
        Message {
            command,
            payload: pdata[6..n - 2].to_vec(),
        },
        total,
    ))
}

/// Split a message into the 20-byte values written to a characteristic.
pub fn chunks(message: &[u8]) -> impl Iterator<Item = &[u8]> {
    message.chunks(CHUNK)
}

/// Which framing a [`Reassembler`] expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Plain,
    Encrypted,
}

/// Joins indications back into whole messages. Feed each value; take complete messages
/// out as raw bytes (decode them with [`decode_plain`] or [`decode_encrypted`]).
#[derive(Debug, Clone)]
pub struct Reassembler {
    framing: Framing,
    buf: Vec<u8>,
}

impl Reassembler {
    pub fn new(framing: Framing) -> Reassembler {
        Reassembler {
            framing,
            buf: Vec::new(),
        }
    }

    pub fn push(&mut self, value: &[u8]) {
        self.buf.extend_from_slice(value);
    }

    /// Drop partial data (after a disconnect or a decode error).
    pub fn clear(&mut self) {
        self.buf.clear();
    }

    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The next whole raw message, `Ok(None)` while incomplete, or an error for bytes that can
    /// never become a message (the buffer is then cleared).
    pub fn next_message(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let total = match self.framing {
            Framing::Encrypted => encrypted_len(&self.buf),
            Framing::Plain => {
                if self.buf.len() < 2 {
                    Err(FrameError::Incomplete { needed: 1 })
                } else {
                    let c = u16::from_le_bytes([self.buf[0], self.buf[1]]);
                    plain_payload_len(c)
                        .map(|l| l + 4)
                        .ok_or(FrameError::UnknownPlainCommand(c))
                }
            }
        };
        match total {
            Ok(t) if self.buf.len() >= t => {
                let rest = self.buf.split_off(t);
                Ok(Some(std::mem::replace(&mut self.buf, rest)))
            }
            Ok(_) | Err(FrameError::Incomplete { .. }) => Ok(None),
            Err(e) => {
                self.buf.clear();
                Err(e)
            }
        }
    }
}
