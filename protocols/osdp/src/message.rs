//! OSDP commands and replies as typed values, converted to and from `(code, data)`.
//! Only the messages leasegate uses are typed; anything else decodes as `Other`.

use crate::secure::Key;

pub mod code {
    pub const POLL: u8 = 0x60;
    pub const ID: u8 = 0x61;
    pub const CAP: u8 = 0x62;
    pub const LSTAT: u8 = 0x64;
    pub const COMSET: u8 = 0x6e;
    pub const KEYSET: u8 = 0x75;
    pub const CHLNG: u8 = 0x76;
    pub const SCRYPT: u8 = 0x77;
    pub const MFG: u8 = 0x80;

    pub const ACK: u8 = 0x40;
    pub const NAK: u8 = 0x41;
    pub const PDID: u8 = 0x45;
    pub const PDCAP: u8 = 0x46;
    pub const LSTATR: u8 = 0x48;
    pub const COM: u8 = 0x54;
    pub const CCRYPT: u8 = 0x76;
    pub const RMAC_I: u8 = 0x78;
    pub const BUSY: u8 = 0x79;
    pub const MFGREP: u8 = 0x90;
}

/// A manufacturer vendor code (IEEE OUI), 24 bits. On the wire least significant byte first,
/// as libosdp sends it (vendor 0xABCDEF is `ef cd ab`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VendorCode(pub u32);

impl VendorCode {
    pub fn to_wire(self) -> [u8; 3] {
        let b = self.0.to_le_bytes();
        [b[0], b[1], b[2]]
    }
    pub fn from_wire(b: [u8; 3]) -> Self {
        VendorCode(u32::from_le_bytes([b[0], b[1], b[2], 0]))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("message {code:#04x} has {len} data bytes, which is not a valid length")]
    BadLength { code: u8, len: usize },
}

#[derive(Clone, PartialEq, Eq)]
pub enum Command {
    Poll,
    /// osdp_ID with reply type 0 (standard).
    Id,
    /// osdp_CAP with reply type 0.
    Cap,
    LocalStatus,
    Mfg {
        vendor: VendorCode,
        data: Vec<u8>,
    },
    /// osdp_KEYSET, key type 1 (SCBK), 16 bytes.
    KeySet(Key),
    Challenge {
        rnd_a: [u8; 8],
    },
    ServerCryptogram([u8; 16]),
    ComSet {
        address: u8,
        baud: u32,
    },
    Other {
        code: u8,
        data: Vec<u8>,
    },
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Poll => f.write_str("Poll"),
            Command::Id => f.write_str("Id"),
            Command::Cap => f.write_str("Cap"),
            Command::LocalStatus => f.write_str("LocalStatus"),
            // MFG data carries credentials: only its size is shown.
            Command::Mfg { vendor, data } => write!(
                f,
                "Mfg {{ vendor: {:#08x}, len: {} }}",
                vendor.0,
                data.len()
            ),
            Command::KeySet(_) => f.write_str("KeySet(<redacted>)"),
            Command::Challenge { .. } => f.write_str("Challenge"),
            Command::ServerCryptogram(_) => f.write_str("ServerCryptogram"),
            Command::ComSet { address, baud } => {
                write!(f, "ComSet {{ address: {address}, baud: {baud} }}")
            }
            Command::Other { code, data } => {
                write!(f, "Other {{ code: {code:#04x}, len: {} }}", data.len())
            }
        }
    }
}

impl Command {
    pub fn code(&self) -> u8 {
        match self {
            Command::Poll => code::POLL,
            Command::Id => code::ID,
            Command::Cap => code::CAP,
            Command::LocalStatus => code::LSTAT,
            Command::Mfg { .. } => code::MFG,
            Command::KeySet(_) => code::KEYSET,
            Command::Challenge { .. } => code::CHLNG,
            Command::ServerCryptogram(_) => code::SCRYPT,
            Command::ComSet { .. } => code::COMSET,
            Command::Other { code, .. } => *code,
        }
    }

    pub fn data(&self) -> Vec<u8> {
        match self {
            Command::Poll | Command::LocalStatus => Vec::new(),
            Command::Id | Command::Cap => vec![0],
            Command::Mfg { vendor, data } => {
                let mut v = vendor.to_wire().to_vec();
                v.extend_from_slice(data);
                v
            }
            Command::KeySet(key) => {
                let mut v = vec![1, 16];
                v.extend_from_slice(key.expose());
                v
            }
            Command::Challenge { rnd_a } => rnd_a.to_vec(),
            Command::ServerCryptogram(c) => c.to_vec(),
            Command::ComSet { address, baud } => {
                let mut v = vec![*address];
                v.extend_from_slice(&baud.to_le_bytes());
                v
            }
            Command::Other { data, .. } => data.clone(),
        }
    }

    pub fn decode(code: u8, data: &[u8]) -> Result<Command, MessageError> {
        let bad = || MessageError::BadLength {
            code,
            len: data.len(),
        };
        Ok(match code {
            code::POLL if data.is_empty() => Command::Poll,
            code::ID if data.len() == 1 => Command::Id,
            code::CAP if data.len() == 1 => Command::Cap,
            code::LSTAT if data.is_empty() => Command::LocalStatus,
            code::MFG if data.len() >= 3 => Command::Mfg {
                vendor: VendorCode::from_wire([data[0], data[1], data[2]]),
                data: data[3..].to_vec(),
            },
            code::KEYSET if data.len() == 18 && data[0] == 1 && data[1] == 16 => {
                let mut k = [0u8; 16];
                k.copy_from_slice(&data[2..]);
                Command::KeySet(Key::new(k))
            }
            code::CHLNG if data.len() == 8 => {
                let mut r = [0u8; 8];
                r.copy_from_slice(data);
                Command::Challenge { rnd_a: r }
            }
            code::SCRYPT if data.len() == 16 => {
                let mut c = [0u8; 16];
                c.copy_from_slice(data);
                Command::ServerCryptogram(c)
            }
            code::COMSET if data.len() == 5 => Command::ComSet {
                address: data[0],
                baud: u32::from_le_bytes([data[1], data[2], data[3], data[4]]),
            },
            code::POLL
            | code::ID
            | code::CAP
            | code::LSTAT
            | code::MFG
            | code::KEYSET
            | code::CHLNG
            | code::SCRYPT
            | code::COMSET => return Err(bad()),
            _ => Command::Other {
                code,
                data: data.to_vec(),
            },
        })
    }
}

/// osdp_NAK reason codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NakReason {
    BadCheck,
    BadLength,
    UnknownCommand,
    SequenceError,
    ScUnsupported,
    ScConditions,
    BioType,
    BioFormat,
    Unprocessable,
    Other(u8),
}

impl NakReason {
    pub fn from_byte(b: u8) -> Self {
        match b {
            1 => NakReason::BadCheck,
            2 => NakReason::BadLength,
            3 => NakReason::UnknownCommand,
            4 => NakReason::SequenceError,
            5 => NakReason::ScUnsupported,
            6 => NakReason::ScConditions,
            7 => NakReason::BioType,
            8 => NakReason::BioFormat,
            9 => NakReason::Unprocessable,
            b => NakReason::Other(b),
        }
    }
    pub fn to_byte(self) -> u8 {
        match self {
            NakReason::BadCheck => 1,
            NakReason::BadLength => 2,
            NakReason::UnknownCommand => 3,
            NakReason::SequenceError => 4,
            NakReason::ScUnsupported => 5,
            NakReason::ScConditions => 6,
            NakReason::BioType => 7,
            NakReason::BioFormat => 8,
            NakReason::Unprocessable => 9,
            NakReason::Other(b) => b,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PdId {
    pub vendor: VendorCode,
    pub model: u8,
    pub version: u8,
    pub serial: u32,
    pub firmware: [u8; 3],
}

/// One PDCAP entry: function code, compliance level, number of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capability {
    pub function: u8,
    pub compliance: u8,
    pub number: u8,
}

pub mod cap {
    pub const CHECK_CHARACTER: u8 = 8;
    pub const COMMUNICATION_SECURITY: u8 = 9;
    pub const RECEIVE_BUFFER: u8 = 10;
    pub const LARGEST_MESSAGE: u8 = 11;
    pub const OSDP_VERSION: u8 = 16;
}

/// The receive buffer size a PD advertises (function 10: compliance = LSB, number = MSB).
pub fn receive_buffer(caps: &[Capability]) -> Option<usize> {
    caps.iter()
        .find(|c| c.function == cap::RECEIVE_BUFFER)
        .map(|c| usize::from(c.compliance) | usize::from(c.number) << 8)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Ack,
    Nak {
        reason: NakReason,
        detail: Vec<u8>,
    },
    PdId(PdId),
    PdCap(Vec<Capability>),
    LocalStatus {
        tamper: u8,
        power: u8,
    },
    Com {
        address: u8,
        baud: u32,
    },
    /// MFG data carries credentials; it is not secret from the link but never logged.
    MfgReply {
        vendor: VendorCode,
        data: Vec<u8>,
    },
    ClientCryptogram {
        cuid: [u8; 8],
        rnd_b: [u8; 8],
        cryptogram: [u8; 16],
    },
    InitialRmac([u8; 16]),
    Busy,
    Other {
        code: u8,
        data: Vec<u8>,
    },
}

impl Reply {
    pub fn code(&self) -> u8 {
        match self {
            Reply::Ack => code::ACK,
            Reply::Nak { .. } => code::NAK,
            Reply::PdId(_) => code::PDID,
            Reply::PdCap(_) => code::PDCAP,
            Reply::LocalStatus { .. } => code::LSTATR,
            Reply::Com { .. } => code::COM,
            Reply::MfgReply { .. } => code::MFGREP,
            Reply::ClientCryptogram { .. } => code::CCRYPT,
            Reply::InitialRmac(_) => code::RMAC_I,
            Reply::Busy => code::BUSY,
            Reply::Other { code, .. } => *code,
        }
    }

    pub fn data(&self) -> Vec<u8> {
        match self {
            Reply::Ack | Reply::Busy => Vec::new(),
            Reply::Nak { reason, detail } => {
                let mut v = vec![reason.to_byte()];
                v.extend_from_slice(detail);
                v
            }
            Reply::PdId(id) => {
                let mut v = id.vendor.to_wire().to_vec();
                v.push(id.model);
                v.push(id.version);
                v.extend_from_slice(&id.serial.to_le_bytes());
                v.extend_from_slice(&id.firmware);
                v
            }
            Reply::PdCap(caps) => caps
                .iter()
                .flat_map(|c| [c.function, c.compliance, c.number])
                .collect(),
            Reply::LocalStatus { tamper, power } => vec![*tamper, *power],
            Reply::Com { address, baud } => {
                let mut v = vec![*address];
                v.extend_from_slice(&baud.to_le_bytes());
                v
            }
            Reply::MfgReply { vendor, data } => {
                let mut v = vendor.to_wire().to_vec();
                v.extend_from_slice(data);
                v
            }
            Reply::ClientCryptogram {
                cuid,
                rnd_b,
                cryptogram,
            } => [&cuid[..], &rnd_b[..], &cryptogram[..]].concat(),
            Reply::InitialRmac(m) => m.to_vec(),
            Reply::Other { data, .. } => data.clone(),
        }
    }

    pub fn decode(code: u8, data: &[u8]) -> Result<Reply, MessageError> {
        let bad = || MessageError::BadLength {
            code,
            len: data.len(),
        };
        Ok(match code {
            code::ACK if data.is_empty() => Reply::Ack,
            code::BUSY if data.is_empty() => Reply::Busy,
            code::NAK if !data.is_empty() => Reply::Nak {
                reason: NakReason::from_byte(data[0]),
                detail: data[1..].to_vec(),
            },
            code::PDID if data.len() == 12 => Reply::PdId(PdId {
                vendor: VendorCode::from_wire([data[0], data[1], data[2]]),
                model: data[3],
                version: data[4],
                serial: u32::from_le_bytes([data[5], data[6], data[7], data[8]]),
                firmware: [data[9], data[10], data[11]],
            }),
            code::PDCAP if data.len().is_multiple_of(3) => Reply::PdCap(
                data.chunks_exact(3)
                    .map(|c| Capability {
                        function: c[0],
                        compliance: c[1],
                        number: c[2],
                    })
                    .collect(),
            ),
            code::LSTATR if data.len() == 2 => Reply::LocalStatus {
                tamper: data[0],
                power: data[1],
            },
            code::COM if data.len() == 5 => Reply::Com {
                address: data[0],
                baud: u32::from_le_bytes([data[1], data[2], data[3], data[4]]),
            },
            code::MFGREP if data.len() >= 3 => Reply::MfgReply {
                vendor: VendorCode::from_wire([data[0], data[1], data[2]]),
                data: data[3..].to_vec(),
            },
            code::CCRYPT if data.len() == 32 => {
                let mut cuid = [0u8; 8];
                let mut rnd_b = [0u8; 8];
                let mut cryptogram = [0u8; 16];
                cuid.copy_from_slice(&data[..8]);
                rnd_b.copy_from_slice(&data[8..16]);
                cryptogram.copy_from_slice(&data[16..]);
                Reply::ClientCryptogram {
                    cuid,
                    rnd_b,
                    cryptogram,
                }
            }
            code::RMAC_I if data.len() == 16 => {
                let mut m = [0u8; 16];
                m.copy_from_slice(data);
                Reply::InitialRmac(m)
            }
            code::ACK
            | code::BUSY
            | code::NAK
            | code::PDID
            | code::PDCAP
            | code::LSTATR
            | code::COM
            | code::MFGREP
            | code::CCRYPT
            | code::RMAC_I => return Err(bad()),
            _ => Reply::Other {
                code,
                data: data.to_vec(),
            },
        })
    }
}
