//! Typed commands (app → lock) and replies (lock → app), encoded to and decoded from the
//! payload that sits between the command id and the CRC.

use core::fmt;

use crate::cmd;
use crate::error::{ErrorCode, ErrorReport};
use crate::keys::{PinWidth, SecurityPin};
use crate::time::{NukiDate, TimeLimits};

#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum PayloadError {
    #[error("payload of command 0x{command:04x} has {got} bytes, expected {expected}")]
    Length {
        command: u16,
        got: usize,
        expected: usize,
    },
    #[error("unexpected command 0x{0:04x} from the lock")]
    UnexpectedCommand(u16),
}

/// A 6-digit keypad code: digits 1–9 only, not starting with "12" (the lock rejects those).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeypadCode(u32);

impl KeypadCode {
    pub fn new(code: u32) -> Option<KeypadCode> {
        let s = code.to_string();
        let ok = s.len() == 6 && !s.contains('0') && !s.starts_with("12");
        ok.then_some(KeypadCode(code))
    }

    /// Any value, unchecked: one read back from the lock (another app may have written it) or a
    /// test vector. Codes we allocate go through [`KeypadCode::new`].
    pub fn from_raw(code: u32) -> KeypadCode {
        KeypadCode(code)
    }

    /// The digits. Never log them.
    pub fn expose(&self) -> u32 {
        self.0
    }
}

impl fmt::Debug for KeypadCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeypadCode(<redacted>)")
    }
}

/// Names are NUL-padded UTF-8, cut at a character boundary.
fn put_name(out: &mut Vec<u8>, name: &str, width: usize) {
    let mut end = name.len().min(width);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    out.extend_from_slice(&name.as_bytes()[..end]);
    out.resize(out.len() + (width - end), 0);
}

fn parse_name(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// A command the app sends. Commands that change or list entries carry the lock's challenge
/// nonce and the security PIN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Request Data (0x0001) for another command id (Challenge, Keyturner States, …).
    RequestData(u16),
    AddKeypadCode {
        code: KeypadCode,
        name: String,
        limits: TimeLimits,
        nonce: [u8; 32],
        pin: SecurityPin,
    },
    UpdateKeypadCode {
        id: u16,
        code: KeypadCode,
        name: String,
        enabled: bool,
        limits: TimeLimits,
        nonce: [u8; 32],
        pin: SecurityPin,
    },
    RemoveKeypadCode {
        id: u16,
        nonce: [u8; 32],
        pin: SecurityPin,
    },
    RequestKeypadCodes {
        offset: u16,
        count: u16,
        nonce: [u8; 32],
        pin: SecurityPin,
    },
    /// Authorization Data (Invite) (0x000b): creates an authorization for another app or
    /// bridge whose shared key we chose.
    AddAuthorization {
        name: String,
        id_type: u8,
        shared_key: crate::keys::SharedKey,
        remote_allowed: bool,
        limits: TimeLimits,
        nonce: [u8; 32],
        pin: SecurityPin,
    },
    RemoveAuthorization {
        auth_id: u32,
        nonce: [u8; 32],
        pin: SecurityPin,
    },
    RequestAuthorizations {
        offset: u16,
        count: u16,
        nonce: [u8; 32],
        pin: SecurityPin,
    },
}

impl Command {
    pub fn id(&self) -> u16 {
        match self {
            Command::RequestData(_) => cmd::REQUEST_DATA,
            Command::AddKeypadCode { .. } => cmd::ADD_KEYPAD_CODE,
            Command::UpdateKeypadCode { .. } => cmd::UPDATE_KEYPAD_CODE,
            Command::RemoveKeypadCode { .. } => cmd::REMOVE_KEYPAD_CODE,
            Command::RequestKeypadCodes { .. } => cmd::REQUEST_KEYPAD_CODES,
            Command::AddAuthorization { .. } => cmd::AUTHORIZATION_DATA_INVITE,
            Command::RemoveAuthorization { .. } => cmd::REMOVE_AUTHORIZATION,
            Command::RequestAuthorizations { .. } => cmd::REQUEST_AUTHORIZATION_ENTRIES,
        }
    }

    /// The payload bytes (between command id and CRC).
    pub fn payload(&self) -> Vec<u8> {
        let mut o = Vec::with_capacity(96);
        match self {
            Command::RequestData(c) => o.extend_from_slice(&c.to_le_bytes()),
            Command::AddKeypadCode {
                code,
                name,
                limits,
                nonce,
                pin,
            } => {
                o.extend_from_slice(&code.0.to_le_bytes());
                put_name(&mut o, name, 20);
                limits.put(&mut o);
                o.extend_from_slice(nonce);
                pin.put(&mut o);
            }
            Command::UpdateKeypadCode {
                id,
                code,
                name,
                enabled,
                limits,
                nonce,
                pin,
            } => {
                o.extend_from_slice(&id.to_le_bytes());
                o.extend_from_slice(&code.0.to_le_bytes());
                put_name(&mut o, name, 20);
                o.push(*enabled as u8);
                limits.put(&mut o);
                o.extend_from_slice(nonce);
                pin.put(&mut o);
            }
            Command::RemoveKeypadCode { id, nonce, pin } => {
                o.extend_from_slice(&id.to_le_bytes());
                o.extend_from_slice(nonce);
                pin.put(&mut o);
            }
            Command::RequestKeypadCodes {
                offset,
                count,
                nonce,
                pin,
            }
            | Command::RequestAuthorizations {
                offset,
                count,
                nonce,
                pin,
            } => {
                o.extend_from_slice(&offset.to_le_bytes());
                o.extend_from_slice(&count.to_le_bytes());
                o.extend_from_slice(nonce);
                pin.put(&mut o);
            }
            Command::AddAuthorization {
                name,
                id_type,
                shared_key,
                remote_allowed,
                limits,
                nonce,
                pin,
            } => {
                put_name(&mut o, name, 32);
                o.push(*id_type);
                o.extend_from_slice(shared_key.expose());
                o.push(*remote_allowed as u8);
                limits.put(&mut o);
                o.extend_from_slice(nonce);
                pin.put(&mut o);
            }
            Command::RemoveAuthorization {
                auth_id,
                nonce,
                pin,
            } => {
                o.extend_from_slice(&auth_id.to_le_bytes());
                o.extend_from_slice(nonce);
                pin.put(&mut o);
            }
        }
        o
    }
}

impl Command {
    /// Decode a command as the lock receives it (the payload between command id and CRC of
    /// a decrypted message): for simulated locks and tests. `width` is the lock's security
    /// PIN width, which fixes the length of every PIN-carrying command. The message is whole
    /// (the framing counted it), so a wrong length is invalid, never incomplete.
    pub fn decode(command: u16, p: &[u8], width: PinWidth) -> Result<Command, PayloadError> {
        let pw = pin_len(width);
        // Every administrative command ends with the challenge nonce and the PIN.
        let tail = |body: usize| -> Result<([u8; 32], SecurityPin), PayloadError> {
            exact(command, p, body + 32 + pw)?;
            let nonce = arr32(&p[body..body + 32]);
            let raw = &p[body + 32..];
            let value = match width {
                PinWidth::U16 => u32::from(u16::from_le_bytes([raw[0], raw[1]])),
                PinWidth::U32 => u32::from_le_bytes(raw.try_into().expect("4 bytes")),
            };
            let pin = SecurityPin::new(value, width).expect("decoded within its width");
            Ok((nonce, pin))
        };
        let u16_at = |i: usize| u16::from_le_bytes([p[i], p[i + 1]]);
        let u32_at = |i: usize| u32::from_le_bytes(p[i..i + 4].try_into().expect("4 bytes"));
        let limits_at = |i: usize| TimeLimits::parse(p[i..i + 20].try_into().expect("20 bytes"));
        Ok(match command {
            cmd::REQUEST_DATA => {
                exact(command, p, 2)?;
                Command::RequestData(u16_at(0))
            }
            cmd::ADD_KEYPAD_CODE => {
                let (nonce, pin) = tail(44)?;
                Command::AddKeypadCode {
                    code: KeypadCode(u32_at(0)),
                    name: parse_name(&p[4..24]),
                    limits: limits_at(24),
                    nonce,
                    pin,
                }
            }
            cmd::UPDATE_KEYPAD_CODE => {
                let (nonce, pin) = tail(47)?;
                Command::UpdateKeypadCode {
                    id: u16_at(0),
                    code: KeypadCode(u32_at(2)),
                    name: parse_name(&p[6..26]),
                    enabled: p[26] != 0,
                    limits: limits_at(27),
                    nonce,
                    pin,
                }
            }
            cmd::REMOVE_KEYPAD_CODE => {
                let (nonce, pin) = tail(2)?;
                Command::RemoveKeypadCode {
                    id: u16_at(0),
                    nonce,
                    pin,
                }
            }
            cmd::REQUEST_KEYPAD_CODES => {
                let (nonce, pin) = tail(4)?;
                Command::RequestKeypadCodes {
                    offset: u16_at(0),
                    count: u16_at(2),
                    nonce,
                    pin,
                }
            }
            cmd::REQUEST_AUTHORIZATION_ENTRIES => {
                let (nonce, pin) = tail(4)?;
                Command::RequestAuthorizations {
                    offset: u16_at(0),
                    count: u16_at(2),
                    nonce,
                    pin,
                }
            }
            cmd::AUTHORIZATION_DATA_INVITE => {
                let (nonce, pin) = tail(86)?;
                Command::AddAuthorization {
                    name: parse_name(&p[..32]),
                    id_type: p[32],
                    shared_key: crate::keys::SharedKey::from_bytes(arr32(&p[33..65])),
                    remote_allowed: p[65] != 0,
                    limits: limits_at(66),
                    nonce,
                    pin,
                }
            }
            cmd::REMOVE_AUTHORIZATION => {
                let (nonce, pin) = tail(4)?;
                Command::RemoveAuthorization {
                    auth_id: u32_at(0),
                    nonce,
                    pin,
                }
            }
            other => return Err(PayloadError::UnexpectedCommand(other)),
        })
    }

    /// The challenge nonce and security PIN of an administrative command (`None` for Request
    /// Data, which needs neither).
    pub fn credentials(&self) -> Option<(&[u8; 32], &SecurityPin)> {
        match self {
            Command::RequestData(_) => None,
            Command::AddKeypadCode { nonce, pin, .. }
            | Command::UpdateKeypadCode { nonce, pin, .. }
            | Command::RemoveKeypadCode { nonce, pin, .. }
            | Command::RequestKeypadCodes { nonce, pin, .. }
            | Command::AddAuthorization { nonce, pin, .. }
            | Command::RemoveAuthorization { nonce, pin, .. }
            | Command::RequestAuthorizations { nonce, pin, .. } => Some((nonce, pin)),
        }
    }
}

/// Status (0x000e).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Complete,
    Accepted,
    Other(u8),
}

/// Keypad Code (0x0045), one entry of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeypadCodeEntry {
    pub id: u16,
    pub code: KeypadCode,
    pub name: String,
    pub enabled: bool,
    pub created: NukiDate,
    pub last_active: NukiDate,
    pub lock_count: u16,
    pub limits: TimeLimits,
}

impl KeypadCodeEntry {
    pub const LEN: usize = 63;

    /// Encode as the lock sends it (used by simulators and tests).
    pub fn payload(&self) -> Vec<u8> {
        let mut o = Vec::with_capacity(Self::LEN);
        o.extend_from_slice(&self.id.to_le_bytes());
        o.extend_from_slice(&self.code.0.to_le_bytes());
        put_name(&mut o, &self.name, 20);
        o.push(self.enabled as u8);
        self.created.put(&mut o);
        self.last_active.put(&mut o);
        o.extend_from_slice(&self.lock_count.to_le_bytes());
        self.limits.put(&mut o);
        o
    }

    fn parse(b: &[u8]) -> KeypadCodeEntry {
        KeypadCodeEntry {
            id: u16::from_le_bytes([b[0], b[1]]),
            code: KeypadCode(u32::from_le_bytes(b[2..6].try_into().expect("4"))),
            name: parse_name(&b[6..26]),
            enabled: b[26] != 0,
            created: NukiDate::parse(b[27..34].try_into().expect("7")),
            last_active: NukiDate::parse(b[34..41].try_into().expect("7")),
            lock_count: u16::from_le_bytes([b[41], b[42]]),
            limits: TimeLimits::parse(b[43..63].try_into().expect("20")),
        }
    }
}

/// Authorization Entry (0x000a).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationEntry {
    pub auth_id: u32,
    pub id_type: u8,
    pub name: String,
    pub enabled: bool,
    pub remote_allowed: bool,
    pub created: NukiDate,
    pub last_active: NukiDate,
    pub lock_count: u16,
    pub limits: TimeLimits,
}

impl AuthorizationEntry {
    pub const LEN: usize = 75;

    pub fn payload(&self) -> Vec<u8> {
        let mut o = Vec::with_capacity(Self::LEN);
        o.extend_from_slice(&self.auth_id.to_le_bytes());
        o.push(self.id_type);
        put_name(&mut o, &self.name, 32);
        o.push(self.enabled as u8);
        o.push(self.remote_allowed as u8);
        self.created.put(&mut o);
        self.last_active.put(&mut o);
        o.extend_from_slice(&self.lock_count.to_le_bytes());
        self.limits.put(&mut o);
        o
    }

    fn parse(b: &[u8]) -> AuthorizationEntry {
        AuthorizationEntry {
            auth_id: u32::from_le_bytes(b[0..4].try_into().expect("4")),
            id_type: b[4],
            name: parse_name(&b[5..37]),
            enabled: b[37] != 0,
            remote_allowed: b[38] != 0,
            created: NukiDate::parse(b[39..46].try_into().expect("7")),
            last_active: NukiDate::parse(b[46..53].try_into().expect("7")),
            lock_count: u16::from_le_bytes([b[53], b[54]]),
            limits: TimeLimits::parse(b[55..75].try_into().expect("20")),
        }
    }
}

/// The start of Keyturner States (0x000c); later fields vary by firmware and are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyturnerStates {
    pub nuki_state: u8,
    pub lock_state: u8,
    pub trigger: u8,
    pub time: NukiDate,
    pub timezone_offset_minutes: i16,
    /// Bit 0 critical, bit 1 charging, bits 2–7 charge in steps of 2 % (inferred).
    pub battery_byte: u8,
}

impl KeyturnerStates {
    pub const MIN_LEN: usize = 13;

    pub fn battery_critical(&self) -> bool {
        self.battery_byte & 1 != 0
    }

    pub fn charging(&self) -> bool {
        self.battery_byte & 2 != 0
    }

    /// Charge in percent, capped at 100.
    pub fn battery_percent(&self) -> u8 {
        ((self.battery_byte >> 2) * 2).min(100)
    }
}

/// A message from the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    PublicKey([u8; 32]),
    Challenge([u8; 32]),
    AuthorizationId {
        authenticator: [u8; 32],
        auth_id: u32,
        lock_uuid: [u8; 16],
        nonce: [u8; 32],
    },
    Status(Status),
    Error(ErrorReport),
    KeypadCodeId(u16),
    KeypadCodeCount(u16),
    KeypadCode(KeypadCodeEntry),
    AuthorizationEntryCount(u16),
    AuthorizationEntry(AuthorizationEntry),
    /// Authorization-ID (Invite) (0x001f): the id the lock gave an authorization we added.
    AuthorizationIdInvite(u32),
    KeyturnerStates(KeyturnerStates),
}

fn exact(command: u16, p: &[u8], expected: usize) -> Result<(), PayloadError> {
    if p.len() == expected {
        Ok(())
    } else {
        Err(PayloadError::Length {
            command,
            got: p.len(),
            expected,
        })
    }
}

fn arr32(b: &[u8]) -> [u8; 32] {
    b.try_into().expect("32 bytes")
}

impl Reply {
    /// Decode the payload of a message from the lock.
    pub fn decode(command: u16, p: &[u8]) -> Result<Reply, PayloadError> {
        Ok(match command {
            cmd::PUBLIC_KEY => {
                exact(command, p, 32)?;
                Reply::PublicKey(arr32(p))
            }
            cmd::CHALLENGE => {
                exact(command, p, 32)?;
                Reply::Challenge(arr32(p))
            }
            cmd::AUTHORIZATION_ID => {
                exact(command, p, 84)?;
                Reply::AuthorizationId {
                    authenticator: arr32(&p[..32]),
                    auth_id: u32::from_le_bytes(p[32..36].try_into().expect("4")),
                    lock_uuid: p[36..52].try_into().expect("16"),
                    nonce: arr32(&p[52..84]),
                }
            }
            cmd::STATUS => {
                exact(command, p, 1)?;
                Reply::Status(match p[0] {
                    0 => Status::Complete,
                    1 => Status::Accepted,
                    b => Status::Other(b),
                })
            }
            cmd::ERROR_REPORT => {
                exact(command, p, 3)?;
                Reply::Error(ErrorReport {
                    code: ErrorCode::from_u8(p[0]),
                    command: u16::from_le_bytes([p[1], p[2]]),
                })
            }
            cmd::KEYPAD_CODE_ID => {
                exact(command, p, 2)?;
                Reply::KeypadCodeId(u16::from_le_bytes([p[0], p[1]]))
            }
            cmd::KEYPAD_CODE_COUNT => {
                exact(command, p, 2)?;
                Reply::KeypadCodeCount(u16::from_le_bytes([p[0], p[1]]))
            }
            cmd::KEYPAD_CODE => {
                exact(command, p, KeypadCodeEntry::LEN)?;
                Reply::KeypadCode(KeypadCodeEntry::parse(p))
            }
            cmd::AUTHORIZATION_ENTRY_COUNT => {
                exact(command, p, 2)?;
                Reply::AuthorizationEntryCount(u16::from_le_bytes([p[0], p[1]]))
            }
            cmd::AUTHORIZATION_ENTRY => {
                exact(command, p, AuthorizationEntry::LEN)?;
                Reply::AuthorizationEntry(AuthorizationEntry::parse(p))
            }
            cmd::AUTHORIZATION_ID_INVITE => {
                // auth id u32 | date created 7 (the date is ignored)
                if p.len() < 4 {
                    return Err(PayloadError::Length {
                        command,
                        got: p.len(),
                        expected: 11,
                    });
                }
                Reply::AuthorizationIdInvite(u32::from_le_bytes(p[..4].try_into().expect("4")))
            }
            cmd::KEYTURNER_STATES => {
                if p.len() < KeyturnerStates::MIN_LEN {
                    return Err(PayloadError::Length {
                        command,
                        got: p.len(),
                        expected: KeyturnerStates::MIN_LEN,
                    });
                }
                Reply::KeyturnerStates(KeyturnerStates {
                    nuki_state: p[0],
                    lock_state: p[1],
                    trigger: p[2],
                    time: NukiDate::parse(p[3..10].try_into().expect("7")),
                    timezone_offset_minutes: i16::from_le_bytes([p[10], p[11]]),
                    battery_byte: p[12],
                })
            }
            other => return Err(PayloadError::UnexpectedCommand(other)),
        })
    }

    /// Encode as the lock would send it (simulators, tests and fuzz round trips).
    pub fn encode(&self) -> (u16, Vec<u8>) {
        match self {
            Reply::PublicKey(k) => (cmd::PUBLIC_KEY, k.to_vec()),
            Reply::Challenge(n) => (cmd::CHALLENGE, n.to_vec()),
            Reply::AuthorizationId {
                authenticator,
                auth_id,
                lock_uuid,
                nonce,
            } => {
                let mut o = authenticator.to_vec();
                o.extend_from_slice(&auth_id.to_le_bytes());
                o.extend_from_slice(lock_uuid);
                o.extend_from_slice(nonce);
                (cmd::AUTHORIZATION_ID, o)
            }
            Reply::Status(s) => (
                cmd::STATUS,
                vec![match s {
                    Status::Complete => 0,
                    Status::Accepted => 1,
                    Status::Other(b) => *b,
                }],
            ),
            Reply::Error(e) => {
                let mut o = vec![e.code.to_u8()];
                o.extend_from_slice(&e.command.to_le_bytes());
                (cmd::ERROR_REPORT, o)
            }
            Reply::KeypadCodeId(id) => (cmd::KEYPAD_CODE_ID, id.to_le_bytes().to_vec()),
            Reply::KeypadCodeCount(n) => (cmd::KEYPAD_CODE_COUNT, n.to_le_bytes().to_vec()),
            Reply::KeypadCode(e) => (cmd::KEYPAD_CODE, e.payload()),
            Reply::AuthorizationEntryCount(n) => {
                (cmd::AUTHORIZATION_ENTRY_COUNT, n.to_le_bytes().to_vec())
            }
            Reply::AuthorizationEntry(e) => (cmd::AUTHORIZATION_ENTRY, e.payload()),
            Reply::AuthorizationIdInvite(id) => {
                let mut o = id.to_le_bytes().to_vec();
                o.extend_from_slice(&[0u8; 7]);
                (cmd::AUTHORIZATION_ID_INVITE, o)
            }
            Reply::KeyturnerStates(s) => {
                let mut o = vec![s.nuki_state, s.lock_state, s.trigger];
                s.time.put(&mut o);
                o.extend_from_slice(&s.timezone_offset_minutes.to_le_bytes());
                o.push(s.battery_byte);
                (cmd::KEYTURNER_STATES, o)
            }
        }
    }
}

/// Width of the PIN field, for decoders that need it (simulators).
pub fn pin_len(width: PinWidth) -> usize {
    match width {
        PinWidth::U16 => 2,
        PinWidth::U32 => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{NukiDate, Weekdays};

    fn pin(width: PinWidth) -> SecurityPin {
        SecurityPin::new(
            if width == PinWidth::U16 {
                4321
            } else {
                123_456
            },
            width,
        )
        .unwrap()
    }

    fn limits() -> TimeLimits {
        TimeLimits {
            from: NukiDate::new(2026, 12, 4, 10, 15, 0),
            weekdays: Weekdays::ALL,
            ..TimeLimits::default()
        }
    }

    fn all_commands(width: PinWidth) -> Vec<Command> {
        let nonce = [7u8; 32];
        let pin = pin(width);
        vec![
            Command::RequestData(crate::cmd::CHALLENGE),
            Command::AddKeypadCode {
                code: KeypadCode::new(345_678).unwrap(),
                name: "lg t-100".into(),
                limits: limits(),
                nonce,
                pin: pin.clone(),
            },
            Command::UpdateKeypadCode {
                id: 3,
                code: KeypadCode::new(456_789).unwrap(),
                name: "lg t-101".into(),
                enabled: false,
                limits: TimeLimits::default(),
                nonce,
                pin: pin.clone(),
            },
            Command::RemoveKeypadCode {
                id: 9,
                nonce,
                pin: pin.clone(),
            },
            Command::RequestKeypadCodes {
                offset: 2,
                count: 200,
                nonce,
                pin: pin.clone(),
            },
            Command::RequestAuthorizations {
                offset: 0,
                count: 5,
                nonce,
                pin: pin.clone(),
            },
            Command::AddAuthorization {
                name: "bridge".into(),
                id_type: 1,
                shared_key: crate::keys::SharedKey::from_bytes([9; 32]),
                remote_allowed: true,
                limits: limits(),
                nonce,
                pin: pin.clone(),
            },
            Command::RemoveAuthorization {
                auth_id: 77,
                nonce,
                pin,
            },
        ]
    }

    #[test]
    fn every_command_the_app_encodes_decodes_back_on_the_lock_side_with_either_pin_width() {
        for width in [PinWidth::U16, PinWidth::U32] {
            for c in all_commands(width) {
                let back = Command::decode(c.id(), &c.payload(), width).unwrap();
                assert_eq!(back, c);
            }
        }
    }

    #[test]
    fn a_command_of_the_wrong_length_is_invalid_and_says_what_was_expected() {
        let c = &all_commands(PinWidth::U16)[1];
        let mut p = c.payload();
        p.pop();
        assert_eq!(
            Command::decode(c.id(), &p, PinWidth::U16),
            Err(PayloadError::Length {
                command: c.id(),
                got: p.len(),
                expected: p.len() + 1
            })
        );
        // A U16 command read as from a U32 lock is two bytes short, not misread.
        assert!(matches!(
            Command::decode(c.id(), &c.payload(), PinWidth::U32),
            Err(PayloadError::Length { .. })
        ));
    }

    #[test]
    fn a_reply_id_sent_as_a_command_is_refused() {
        assert_eq!(
            Command::decode(crate::cmd::KEYPAD_CODE_ID, &[1, 0], PinWidth::U16),
            Err(PayloadError::UnexpectedCommand(crate::cmd::KEYPAD_CODE_ID))
        );
    }

    #[test]
    fn the_nonce_and_pin_of_an_admin_command_are_at_hand_and_request_data_has_none() {
        let cs = all_commands(PinWidth::U16);
        assert!(cs[0].credentials().is_none());
        let (nonce, p) = cs[3].credentials().unwrap();
        assert_eq!(nonce, &[7u8; 32]);
        assert_eq!(p, &pin(PinWidth::U16));
    }
}
