//! The OSDP packet codec: `[FF mark] SOM ADDR LEN(u16 LE) CTRL [SCB] CODE DATA [MAC4] CRC16|CKSUM`.
//!
//! [`decode`] is a pure function over a byte buffer. It tells a frame that has not fully
//! arrived yet ([`DecodeError::Incomplete`]) apart from bytes that can never become a valid
//! frame (every other variant), so a driver keeps reading on the first and drops a byte and
//! resynchronises on the others.

use crate::crc::{checksum8, crc16};

pub const MARK: u8 = 0xff;
pub const SOM: u8 = 0x53;
/// Address 0x7F is the broadcast address.
pub const BROADCAST: u8 = 0x7f;
/// Largest frame this codec accepts (SOM..CRC). OSDP allows more; no PD we drive needs it and
/// it bounds what a corrupted LEN can make a reader wait for.
pub const MAX_FRAME: usize = 1536;
const REPLY_BIT: u8 = 0x80;
const CTRL_SQN: u8 = 0x03;
const CTRL_CRC: u8 = 0x04;
const CTRL_SCB: u8 = 0x08;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// More bytes are needed; `needed` is a lower bound when known.
    #[error("incomplete frame")]
    Incomplete,
    #[error("no start of message (0x53) at the start of the buffer")]
    NoSom,
    #[error("length field {0} is out of range")]
    BadLength(usize),
    #[error("control byte {0:#04x} has reserved bits set")]
    BadControl(u8),
    #[error("check characters do not match")]
    BadCheck,
    #[error("security control block is malformed")]
    BadScb,
}

/// The security control block: `SEC_BLK_LEN SEC_BLK_TYPE SEC_BLK_DATA..`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scb {
    pub kind: u8,
    pub data: Vec<u8>,
}

impl Scb {
    pub fn new(kind: u8, data: &[u8]) -> Self {
        Scb {
            kind,
            data: data.to_vec(),
        }
    }

    /// SCS_15..SCS_18 carry a 4-byte MAC after the data.
    pub fn has_mac(&self) -> bool {
        (0x15..=0x18).contains(&self.kind)
    }
}

/// One OSDP frame, plain or with a security block. `data` is what is on the wire after the
/// code byte (ciphertext when the SCB says so).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// 0..=0x7f.
    pub address: u8,
    /// Set in PD -> CP replies (address bit 7).
    pub reply: bool,
    /// 0..=3.
    pub sqn: u8,
    /// CRC-16 (true) or 8-bit checksum (false).
    pub use_crc: bool,
    pub scb: Option<Scb>,
    pub code: u8,
    pub data: Vec<u8>,
    pub mac: Option<[u8; 4]>,
}

impl Frame {
    pub fn new(address: u8, reply: bool, sqn: u8, code: u8, data: Vec<u8>) -> Self {
        Frame {
            address,
            reply,
            sqn,
            use_crc: true,
            scb: None,
            code,
            data,
            mac: None,
        }
    }

    fn check_len(&self) -> usize {
        if self.use_crc {
            2
        } else {
            1
        }
    }

    fn scb_len(&self) -> usize {
        self.scb.as_ref().map_or(0, |s| 2 + s.data.len())
    }

    fn mac_len(&self) -> usize {
        if self.scb.as_ref().is_some_and(Scb::has_mac) {
            4
        } else {
            0
        }
    }

    /// The LEN field: SOM through the check characters, mark excluded.
    pub fn wire_len(&self) -> usize {
        5 + self.scb_len() + 1 + self.data.len() + self.mac_len() + self.check_len()
    }

    /// SOM through the end of DATA, with the final LEN and CTRL: the MAC input.
    pub fn header_and_body(&self) -> Vec<u8> {
        let len = self.wire_len();
        let mut out = Vec::with_capacity(len);
        out.push(SOM);
        out.push((self.address & 0x7f) | if self.reply { REPLY_BIT } else { 0 });
        out.extend_from_slice(&(len as u16).to_le_bytes());
        let mut ctrl = self.sqn & CTRL_SQN;
        if self.use_crc {
            ctrl |= CTRL_CRC;
        }
        if self.scb.is_some() {
            ctrl |= CTRL_SCB;
        }
        out.push(ctrl);
        if let Some(scb) = &self.scb {
            out.push((2 + scb.data.len()) as u8);
            out.push(scb.kind);
            out.extend_from_slice(&scb.data);
        }
        out.push(self.code);
        out.extend_from_slice(&self.data);
        out
    }

    /// The frame on the wire, without the mark byte. A frame whose SCB calls for a MAC but
    /// has none gets four zero bytes (callers in `secure` always set it).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.header_and_body();
        if self.mac_len() == 4 {
            out.extend_from_slice(&self.mac.unwrap_or_default());
        }
        if self.use_crc {
            let crc = crc16(&out);
            out.extend_from_slice(&crc.to_le_bytes());
        } else {
            let c = checksum8(&out);
            out.push(c);
        }
        out
    }

    /// The frame with the 0xFF mark byte in front (what a CP sends).
    pub fn encode_with_mark(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.wire_len() + 1);
        out.push(MARK);
        out.extend_from_slice(&self.encode());
        out
    }
}

/// Decode one frame from the start of `buf`. On success returns the frame and the number of
/// bytes consumed (mark byte included). A leading 0xFF mark is optional.
pub fn decode(buf: &[u8]) -> Result<(Frame, usize), DecodeError> {
    let start = usize::from(buf.first() == Some(&MARK));
    let b = &buf[start..];
    match b.first() {
        None => return Err(DecodeError::Incomplete),
        Some(&SOM) => {}
        Some(_) => return Err(DecodeError::NoSom),
    }
    if b.len() < 5 {
        // The control byte is not there yet; the length field may be.
        if b.len() >= 4 {
            let len = usize::from(u16::from_le_bytes([b[2], b[3]]));
            if !(7..=MAX_FRAME).contains(&len) {
                return Err(DecodeError::BadLength(len));
            }
        }
        return Err(DecodeError::Incomplete);
    }
    let len = usize::from(u16::from_le_bytes([b[2], b[3]]));
    let ctrl = b[4];
    if ctrl & !(CTRL_SQN | CTRL_CRC | CTRL_SCB) != 0 {
        return Err(DecodeError::BadControl(ctrl));
    }
    let use_crc = ctrl & CTRL_CRC != 0;
    let check_len = if use_crc { 2 } else { 1 };
    if !(6 + check_len..=MAX_FRAME).contains(&len) {
        return Err(DecodeError::BadLength(len));
    }
    if b.len() < len {
        return Err(DecodeError::Incomplete);
    }
    let f = &b[..len];
    let body_end = len - check_len;
    if use_crc {
        let want = u16::from_le_bytes([f[body_end], f[body_end + 1]]);
        if crc16(&f[..body_end]) != want {
            return Err(DecodeError::BadCheck);
        }
    } else if checksum8(&f[..body_end]) != f[body_end] {
        return Err(DecodeError::BadCheck);
    }
    let mut pos = 5;
    let scb = if ctrl & CTRL_SCB != 0 {
        let sl = usize::from(f[pos]);
        if sl < 2 || pos + sl >= body_end {
            return Err(DecodeError::BadScb);
        }
        let scb = Scb::new(f[pos + 1], &f[pos + 2..pos + sl]);
        pos += sl;
        Some(scb)
    } else {
        None
    };
    let mac_len = if scb.as_ref().is_some_and(Scb::has_mac) {
        4
    } else {
        0
    };
    if pos + 1 + mac_len > body_end {
        return Err(DecodeError::BadLength(len));
    }
    let code = f[pos];
    let data_end = body_end - mac_len;
    let data = f[pos + 1..data_end].to_vec();
    let mac = (mac_len == 4).then(|| {
        let mut m = [0u8; 4];
        m.copy_from_slice(&f[data_end..body_end]);
        m
    });
    let frame = Frame {
        address: f[1] & 0x7f,
        reply: f[1] & REPLY_BIT != 0,
        sqn: ctrl & CTRL_SQN,
        use_crc,
        scb,
        code,
        data,
        mac,
    };
    Ok((frame, start + len))
}
