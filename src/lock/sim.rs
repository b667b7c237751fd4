//! A simulated Nuki Smart Lock, in process, for the demo and tests: there is no lock and no
//! BlueZ on a fresh machine. It speaks the real protocol through the `leasegate-nuki` codec:
//! pairing on the plain characteristic (X25519, authenticators), then encrypted,
//! challenge-protected keypad-code and authorization commands checked against its security
//! PIN. So the real lock writer runs unchanged above it, through [`SimLink`].
//!
//! Only code selects it ([`Connector::Simulated`](super::Connector)); no config key does.
//! It reports what changed as [`LockChange`]s, which name residents and time limits but
//! never a code.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use leasegate_nuki::frame::{self, FrameError, Framing, Reassembler};
use leasegate_nuki::{
    cmd, AppSecretKey, AuthorizationEntry, Command, ErrorCode, ErrorReport, KeypadCode,
    KeypadCodeEntry, KeyturnerStates, NukiDate, PinWidth, Reply, SecurityPin, SharedKey, Status,
    TimeLimits,
};
use rand::rngs::OsRng;
use rand::RngCore;

use super::writer::NAME_PREFIX;

fn random32() -> [u8; 32] {
    let mut b = [0u8; 32];
    OsRng.fill_bytes(&mut b);
    b
}

/// What changed on a simulated lock. Safe to print: no code, no key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockChange {
    pub device: String,
    pub what: ChangeKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    CodeAdded {
        id: u16,
        name: String,
        limits: TimeLimits,
    },
    CodeUpdated {
        id: u16,
        name: String,
        enabled: bool,
        limits: TimeLimits,
    },
    CodeRemoved {
        id: u16,
        name: String,
    },
    Paired {
        auth_id: u32,
        name: String,
    },
}

fn who(name: &str) -> String {
    match name.strip_prefix(NAME_PREFIX) {
        Some(resident) => format!("resident {resident}"),
        None => format!("{name:?}"),
    }
}

fn date(d: &NukiDate) -> String {
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        d.year, d.month, d.day, d.hour, d.minute
    )
}

fn window(l: &TimeLimits) -> String {
    match (l.from, l.until) {
        (None, None) if !l.is_limited() => "no time limits".into(),
        (from, until) => {
            let mut s = String::new();
            if let Some(f) = from {
                s.push_str(&format!("valid from {} lock time", date(&f)));
            }
            if let Some(u) = until {
                if !s.is_empty() {
                    s.push_str(", ");
                }
                s.push_str(&format!("until {}", date(&u)));
            }
            if s.is_empty() {
                s.push_str("weekday/time limits");
            }
            s
        }
    }
}

impl std::fmt::Display for LockChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = &self.device;
        match &self.what {
            ChangeKind::CodeAdded { id, name, limits } => write!(
                f,
                "lock {d}: keypad code {id} for {} added ({})",
                who(name),
                window(limits)
            ),
            ChangeKind::CodeUpdated {
                id,
                name,
                enabled,
                limits,
            } => write!(
                f,
                "lock {d}: keypad code {id} for {} updated ({}{})",
                who(name),
                if *enabled { "" } else { "disabled, " },
                window(limits)
            ),
            ChangeKind::CodeRemoved { id, name } => {
                write!(f, "lock {d}: keypad code {id} for {} removed", who(name))
            }
            ChangeKind::Paired { auth_id, name } => {
                write!(
                    f,
                    "lock {d}: paired with {name:?} (authorization {auth_id})"
                )
            }
        }
    }
}

#[derive(Clone)]
struct SimCode {
    code: KeypadCode,
    name: String,
    enabled: bool,
    limits: TimeLimits,
}

struct SimAuth {
    key: SharedKey,
    name: String,
    id_type: u8,
}

/// Where the lock-side pairing stands (on the plain characteristic).
#[derive(Default)]
enum PairingState {
    #[default]
    Idle,
    SentPublicKey,
    SentChallenge1 {
        app_public: [u8; 32],
        key: SharedKey,
        nk: [u8; 32],
    },
    SentChallenge2 {
        key: SharedKey,
        nk: [u8; 32],
    },
    SentAuthId {
        key: SharedKey,
        nk: [u8; 32],
        auth_id: u32,
        name: String,
        id_type: u8,
    },
}

/// One simulated lock: its keys, authorizations, keypad codes and the link state of the
/// current connection. Feed it written values with [`SimulatedLock::on_write`]; it returns
/// the whole messages it indicates back.
pub struct SimulatedLock {
    device: String,
    secret: AppSecretKey,
    public: [u8; 32],
    pin: SecurityPin,
    pairing_mode: bool,
    pairing: PairingState,
    auths: BTreeMap<u32, SimAuth>,
    next_auth_id: u32,
    codes: BTreeMap<u16, SimCode>,
    next_code_id: u16,
    max_codes: usize,
    challenge: Option<[u8; 32]>,
    busy: u32,
    plain: Reassembler,
    encrypted: Reassembler,
    changes: Option<tokio::sync::mpsc::UnboundedSender<LockChange>>,
}

impl std::fmt::Debug for SimulatedLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimulatedLock")
            .field("device", &self.device)
            .field("auths", &self.auths.len())
            .field("codes", &self.codes.len())
            .finish_non_exhaustive()
    }
}

impl SimulatedLock {
    /// A lock for site device `device` with admin PIN `pin`, not in pairing mode, with a
    /// fresh key pair from the OS CSPRNG.
    pub fn new(device: &str, pin: SecurityPin) -> SimulatedLock {
        let secret = AppSecretKey::from_bytes(random32());
        let public = secret.public_key();
        SimulatedLock {
            device: device.to_string(),
            secret,
            public,
            pin,
            pairing_mode: false,
            pairing: PairingState::Idle,
            auths: BTreeMap::new(),
            next_auth_id: 2,
            codes: BTreeMap::new(),
            next_code_id: 1,
            max_codes: 100,
            challenge: None,
            busy: 0,
            plain: Reassembler::new(Framing::Plain),
            encrypted: Reassembler::new(Framing::Encrypted),
            changes: None,
        }
    }

    pub fn device(&self) -> &str {
        &self.device
    }

    /// As if its button were held for 5 s: it accepts a pairing.
    pub fn set_pairing_mode(&mut self, on: bool) {
        self.pairing_mode = on;
    }

    /// Answer the next `n` administrative commands with BUSY.
    pub fn set_busy(&mut self, n: u32) {
        self.busy = n;
    }

    pub fn set_max_codes(&mut self, n: usize) {
        self.max_codes = n;
    }

    /// Report every change on `tx`.
    pub fn observe(&mut self, tx: tokio::sync::mpsc::UnboundedSender<LockChange>) {
        self.changes = Some(tx);
    }

    /// Add an authorization directly, as if paired earlier (tests): its id and shared key.
    pub fn authorize(&mut self, name: &str) -> (u32, SharedKey) {
        let key = SharedKey::from_bytes(random32());
        let id = self.next_auth_id;
        self.next_auth_id += 1;
        self.auths.insert(
            id,
            SimAuth {
                key: key.clone(),
                name: name.to_string(),
                id_type: 0,
            },
        );
        (id, key)
    }

    /// The keypad codes it holds, as it would list them.
    pub fn codes(&self) -> Vec<KeypadCodeEntry> {
        self.codes
            .iter()
            .map(|(id, c)| KeypadCodeEntry {
                id: *id,
                code: c.code,
                name: c.name.clone(),
                enabled: c.enabled,
                created: NukiDate::default(),
                last_active: NukiDate::default(),
                lock_count: 0,
                limits: c.limits,
            })
            .collect()
    }

    pub fn authorization_count(&self) -> usize {
        self.auths.len()
    }

    /// Whether typing `code` on the keypad at lock time `at` would open it: an enabled
    /// code within its date window (weekday and time-of-day limits are not simulated).
    pub fn opens(&self, code: u32, at: NukiDate) -> bool {
        self.codes.values().any(|c| {
            c.enabled
                && c.code.expose() == code
                && c.limits.from.is_none_or(|f| at >= f)
                && c.limits.until.is_none_or(|u| at < u)
        })
    }

    /// A new connection: partial messages, the challenge and any pairing in progress are gone.
    pub fn reset_link(&mut self) {
        self.plain.clear();
        self.encrypted.clear();
        self.challenge = None;
        self.pairing = PairingState::Idle;
    }

    fn report(&self, what: ChangeKind) {
        let change = LockChange {
            device: self.device.clone(),
            what,
        };
        tracing::debug!(%change, "simulated lock");
        if let Some(tx) = &self.changes {
            let _ = tx.send(change);
        }
    }

    /// One BLE value written to the pairing (`Plain`) or keyturner (`Encrypted`)
    /// characteristic; returns the whole messages the lock indicates on the same one.
    pub fn on_write(&mut self, which: Framing, value: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        match which {
            Framing::Plain => {
                self.plain.push(value);
                loop {
                    match self.plain.next_message() {
                        Ok(None) => break,
                        Ok(Some(m)) => out.extend(self.on_plain(&m)),
                        Err(FrameError::UnknownPlainCommand(c)) => {
                            out.push(plain_error(ErrorCode::Unknown, c));
                        }
                        Err(_) => out.push(plain_error(ErrorCode::BadLength, 0)),
                    }
                }
            }
            Framing::Encrypted => {
                self.encrypted.push(value);
                loop {
                    match self.encrypted.next_message() {
                        Ok(None) => break,
                        Ok(Some(m)) => out.extend(self.on_encrypted(&m)),
                        // A length it cannot take: nobody to answer encrypted; drop it.
                        Err(_) => break,
                    }
                }
            }
        }
        out
    }

    fn on_plain(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        let msg = match frame::decode_plain(bytes) {
            Ok((m, _)) => m,
            Err(_) => {
                let c = u16::from_le_bytes([bytes[0], bytes[1]]);
                return vec![plain_error(ErrorCode::BadCrc, c)];
            }
        };
        match self.pairing_step(msg.command, &msg.payload) {
            Ok(reply) => {
                let (c, p) = reply.encode();
                vec![frame::encode_plain(c, &p)]
            }
            Err(code) => {
                self.pairing = PairingState::Idle;
                vec![plain_error(code, msg.command)]
            }
        }
    }

    fn pairing_step(&mut self, command: u16, p: &[u8]) -> Result<Reply, ErrorCode> {
        match (std::mem::take(&mut self.pairing), command) {
            (_, cmd::REQUEST_DATA) if p == cmd::PUBLIC_KEY.to_le_bytes() => {
                if !self.pairing_mode {
                    return Err(ErrorCode::NotPairing);
                }
                self.pairing = PairingState::SentPublicKey;
                Ok(Reply::PublicKey(self.public))
            }
            (PairingState::SentPublicKey, cmd::PUBLIC_KEY) => {
                let app_public: [u8; 32] = p.try_into().map_err(|_| ErrorCode::BadLength)?;
                let key = SharedKey::derive(&self.secret, &app_public);
                let nk = random32();
                self.pairing = PairingState::SentChallenge1 {
                    app_public,
                    key,
                    nk,
                };
                Ok(Reply::Challenge(nk))
            }
            (
                PairingState::SentChallenge1 {
                    app_public,
                    key,
                    nk,
                },
                cmd::AUTHORIZATION_AUTHENTICATOR,
            ) => {
                if !key.verify_authenticator(&[&app_public, &self.public, &nk], p) {
                    return Err(ErrorCode::BadAuthenticator);
                }
                let nk = random32();
                self.pairing = PairingState::SentChallenge2 { key, nk };
                Ok(Reply::Challenge(nk))
            }
            (PairingState::SentChallenge2 { key, nk }, cmd::AUTHORIZATION_DATA) => {
                // authenticator 32 | id type 1 | app id 4 | name 32 | nonce 32
                let (a, data) = p.split_at(32);
                if !key.verify_authenticator(&[data, &nk], a) {
                    return Err(ErrorCode::BadAuthenticator);
                }
                let id_type = data[0];
                let name_field = &data[5..37];
                let end = name_field.iter().position(|&b| b == 0).unwrap_or(32);
                let name = String::from_utf8_lossy(&name_field[..end]).into_owned();
                let na = &data[37..69];
                let auth_id = self.next_auth_id;
                let mut uuid = [0u8; 16];
                OsRng.fill_bytes(&mut uuid);
                let nk = random32();
                let authenticator = key.authenticator(&[&auth_id.to_le_bytes(), &uuid, &nk, na]);
                self.pairing = PairingState::SentAuthId {
                    key,
                    nk,
                    auth_id,
                    name,
                    id_type,
                };
                Ok(Reply::AuthorizationId {
                    authenticator,
                    auth_id,
                    lock_uuid: uuid,
                    nonce: nk,
                })
            }
            (
                PairingState::SentAuthId {
                    key,
                    nk,
                    auth_id,
                    name,
                    id_type,
                },
                cmd::AUTHORIZATION_ID_CONFIRMATION,
            ) => {
                let (a, id) = p.split_at(32);
                if id != auth_id.to_le_bytes() || !key.verify_authenticator(&[id, &nk], a) {
                    return Err(ErrorCode::BadAuthenticator);
                }
                self.next_auth_id += 1;
                self.auths.insert(
                    auth_id,
                    SimAuth {
                        key,
                        name: name.clone(),
                        id_type,
                    },
                );
                // A real lock leaves pairing mode once paired.
                self.pairing_mode = false;
                self.report(ChangeKind::Paired { auth_id, name });
                Ok(Reply::Status(Status::Complete))
            }
            _ => Err(ErrorCode::Unknown),
        }
    }

    fn on_encrypted(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        // The authorization id in the clear says which key to try.
        let clear = u32::from_le_bytes(bytes[24..28].try_into().expect("ADATA is whole"));
        let Some(auth) = self.auths.get(&clear) else {
            // Without a key nothing can be answered: a real lock stays silent too.
            return Vec::new();
        };
        let (auth_id, msg) = match frame::decode_encrypted(&auth.key, bytes) {
            Ok((a, m, _)) => (a, m),
            Err(FrameError::BadCrc) => {
                return vec![self.encrypt(clear, &error_reply(ErrorCode::BadCrc, 0))];
            }
            Err(_) => return Vec::new(),
        };
        let replies = match Command::decode(msg.command, &msg.payload, self.pin.width()) {
            Ok(c) => self.command(auth_id, c),
            Err(_) => vec![error_reply(ErrorCode::BadLength, msg.command)],
        };
        replies.iter().map(|r| self.encrypt(auth_id, r)).collect()
    }

    fn encrypt(&self, auth_id: u32, reply: &Reply) -> Vec<u8> {
        let key = &self.auths[&auth_id].key;
        let mut nonce = [0u8; 24];
        OsRng.fill_bytes(&mut nonce);
        let (c, p) = reply.encode();
        frame::encode_encrypted(key, &nonce, auth_id, c, &p)
    }

    fn states(&self) -> Reply {
        use chrono::{Datelike, Timelike};
        let now = chrono::Utc::now();
        Reply::KeyturnerStates(KeyturnerStates {
            nuki_state: 2,
            lock_state: 1,
            trigger: 0,
            time: NukiDate::new(
                u16::try_from(now.year()).unwrap_or(2026),
                now.month() as u8,
                now.day() as u8,
                now.hour() as u8,
                now.minute() as u8,
                now.second().min(59) as u8,
            )
            .unwrap_or_default(),
            timezone_offset_minutes: 0,
            // 84 %, not critical, not charging.
            battery_byte: 42 << 2,
        })
    }

    fn command(&mut self, auth_id: u32, c: Command) -> Vec<Reply> {
        let id = c.id();
        let err = |code| vec![error_reply(code, id)];
        if let Command::RequestData(what) = c {
            return match what {
                cmd::CHALLENGE => {
                    let n = random32();
                    self.challenge = Some(n);
                    vec![Reply::Challenge(n)]
                }
                cmd::KEYTURNER_STATES => vec![self.states()],
                _ => err(ErrorCode::KBadParameter),
            };
        }
        let (nonce, pin) = c.credentials().expect("admin commands carry them");
        // A challenge answers one command only.
        if self.challenge.take().as_ref() != Some(nonce) {
            return err(ErrorCode::BadNonce);
        }
        if self.busy > 0 {
            self.busy -= 1;
            return err(ErrorCode::Busy);
        }
        if pin != &self.pin {
            return err(ErrorCode::BadPin);
        }
        match c {
            Command::AddKeypadCode {
                code, name, limits, ..
            } => {
                if KeypadCode::new(code.expose()).is_none() {
                    return err(ErrorCode::CodeInvalid);
                }
                if self.codes.values().any(|x| x.code == code) {
                    return err(ErrorCode::CodeAlreadyExists);
                }
                if self.codes.len() >= self.max_codes {
                    return err(ErrorCode::TooManyEntries);
                }
                let cid = self.next_code_id;
                self.next_code_id += 1;
                self.codes.insert(
                    cid,
                    SimCode {
                        code,
                        name: name.clone(),
                        enabled: true,
                        limits,
                    },
                );
                self.report(ChangeKind::CodeAdded {
                    id: cid,
                    name,
                    limits,
                });
                vec![Reply::KeypadCodeId(cid)]
            }
            Command::UpdateKeypadCode {
                id: cid,
                code,
                name,
                enabled,
                limits,
                ..
            } => {
                if !self.codes.contains_key(&cid) {
                    return err(ErrorCode::KBadParameter);
                }
                if KeypadCode::new(code.expose()).is_none() {
                    return err(ErrorCode::CodeInvalid);
                }
                if self.codes.iter().any(|(i, x)| *i != cid && x.code == code) {
                    return err(ErrorCode::CodeAlreadyExists);
                }
                self.codes.insert(
                    cid,
                    SimCode {
                        code,
                        name: name.clone(),
                        enabled,
                        limits,
                    },
                );
                self.report(ChangeKind::CodeUpdated {
                    id: cid,
                    name,
                    enabled,
                    limits,
                });
                vec![Reply::Status(Status::Complete)]
            }
            Command::RemoveKeypadCode { id: cid, .. } => match self.codes.remove(&cid) {
                None => err(ErrorCode::KBadParameter),
                Some(gone) => {
                    self.report(ChangeKind::CodeRemoved {
                        id: cid,
                        name: gone.name,
                    });
                    vec![Reply::Status(Status::Complete)]
                }
            },
            Command::RequestKeypadCodes { offset, count, .. } => {
                let entries: Vec<KeypadCodeEntry> = self
                    .codes()
                    .into_iter()
                    .skip(usize::from(offset))
                    .take(usize::from(count))
                    .collect();
                let mut out = vec![Reply::KeypadCodeCount(entries.len() as u16)];
                out.extend(entries.into_iter().map(Reply::KeypadCode));
                out.push(Reply::Status(Status::Complete));
                out
            }
            Command::AddAuthorization {
                name,
                id_type,
                shared_key,
                ..
            } => {
                let aid = self.next_auth_id;
                self.next_auth_id += 1;
                self.auths.insert(
                    aid,
                    SimAuth {
                        key: shared_key,
                        name,
                        id_type,
                    },
                );
                vec![Reply::AuthorizationIdInvite(aid)]
            }
            Command::RemoveAuthorization { auth_id: aid, .. } => {
                if !self.auths.contains_key(&aid) {
                    return err(ErrorCode::KBadParameter);
                }
                // Removing itself: answer under the key first, then forget it.
                if aid != auth_id {
                    self.auths.remove(&aid);
                }
                vec![Reply::Status(Status::Complete)]
            }
            Command::RequestAuthorizations { offset, count, .. } => {
                let entries: Vec<Reply> = self
                    .auths
                    .iter()
                    .skip(usize::from(offset))
                    .take(usize::from(count))
                    .map(|(id, a)| {
                        Reply::AuthorizationEntry(AuthorizationEntry {
                            auth_id: *id,
                            id_type: a.id_type,
                            name: a.name.clone(),
                            enabled: true,
                            remote_allowed: true,
                            created: NukiDate::default(),
                            last_active: NukiDate::default(),
                            lock_count: 0,
                            limits: TimeLimits::default(),
                        })
                    })
                    .collect();
                let mut out = vec![Reply::AuthorizationEntryCount(entries.len() as u16)];
                out.extend(entries);
                out.push(Reply::Status(Status::Complete));
                out
            }
            Command::RequestData(_) => unreachable!("handled above"),
        }
    }
}

fn error_reply(code: ErrorCode, command: u16) -> Reply {
    Reply::Error(ErrorReport { code, command })
}

fn plain_error(code: ErrorCode, command: u16) -> Vec<u8> {
    let (c, p) = error_reply(code, command).encode();
    frame::encode_plain(c, &p)
}

/// Simulated locks by site device id: what [`Connector::Simulated`](super::Connector)
/// connects to.
#[derive(Clone, Default)]
pub struct SimulatedLocks(Arc<Mutex<BTreeMap<String, Arc<Mutex<SimulatedLock>>>>>);

impl SimulatedLocks {
    pub fn add(&self, lock: SimulatedLock) -> Arc<Mutex<SimulatedLock>> {
        let shared = Arc::new(Mutex::new(lock));
        let device = shared.lock().expect("new").device.clone();
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(device, shared.clone());
        shared
    }

    pub fn get(&self, device: &str) -> Option<Arc<Mutex<SimulatedLock>>> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(device)
            .cloned()
    }

    /// A new connection to the lock of `device`, if there is one. A message the lock does
    /// not answer is waited for `timeout`, as over BLE.
    pub fn connect(&self, device: &str, timeout: std::time::Duration) -> Option<SimLink> {
        let lock = self.get(device)?;
        lock.lock().unwrap_or_else(|e| e.into_inner()).reset_link();
        Some(SimLink {
            lock,
            plain: Reassembler::new(Framing::Plain),
            encrypted: Reassembler::new(Framing::Encrypted),
            writes: 0,
            timeout,
        })
    }
}

/// A connection to a simulated lock. Values go in 20-byte pieces and come back as 20-byte
/// indications, joined again as the BLE driver does. The lock answers at once, so a
/// message that is not there when read never comes: after the command timeout (waited,
/// so that a writer retrying an unanswered lock is paced as over BLE) that is a timeout.
pub struct SimLink {
    lock: Arc<Mutex<SimulatedLock>>,
    plain: Reassembler,
    encrypted: Reassembler,
    /// Values written on this connection.
    pub writes: u64,
    timeout: std::time::Duration,
}

impl SimLink {
    pub fn disconnect(self) {
        self.lock
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .reset_link();
    }

    fn write(&mut self, which: Framing, message: &[u8]) {
        for piece in frame::chunks(message) {
            self.writes += 1;
            let out = self
                .lock
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .on_write(which, piece);
            let asm = match which {
                Framing::Plain => &mut self.plain,
                Framing::Encrypted => &mut self.encrypted,
            };
            for m in out {
                for ind in frame::chunks(&m) {
                    asm.push(ind);
                }
            }
        }
    }

    fn read(&mut self, which: Framing) -> Result<Option<Vec<u8>>, super::LockError> {
        let asm = match which {
            Framing::Plain => &mut self.plain,
            Framing::Encrypted => &mut self.encrypted,
        };
        Ok(asm.next_message()?)
    }
}

impl super::link::Wire for SimLink {
    async fn write_message(
        &mut self,
        which: Framing,
        message: &[u8],
    ) -> Result<(), super::LockError> {
        self.write(which, message);
        Ok(())
    }

    async fn read_message(&mut self, which: Framing) -> Result<Vec<u8>, super::LockError> {
        match self.read(which)? {
            Some(m) => Ok(m),
            None => {
                tokio::time::sleep(self.timeout).await;
                Err(super::LockError::Timeout(self.timeout))
            }
        }
    }
}

/// The PIN width a simulated lock uses for a configured `pin_width`.
pub fn pin_width(bits: u8) -> PinWidth {
    if bits == 32 {
        PinWidth::U32
    } else {
        PinWidth::U16
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::link::{exchange, exchange_once, pair};
    use crate::lock::{LockError, Session};
    use leasegate_nuki::{AppIdentity, IdType, Op, Outcome, Weekdays};

    const PIN: u32 = 4711;
    /// How long an unanswered message is waited for in these tests.
    /// Generous: a reply that misses it arrives in the next exchange, and a loaded CI
    /// machine (every test binary at once on two cores) stalled 20 ms often enough.
    const T: std::time::Duration = std::time::Duration::from_secs(5);
    /// For the one test that waits for silence.
    const SILENCE: std::time::Duration = std::time::Duration::from_millis(100);

    fn pin() -> SecurityPin {
        SecurityPin::new(PIN, PinWidth::U16).unwrap()
    }

    /// A lock with one authorization, and a session for it.
    fn paired_lock() -> (SimulatedLocks, Session) {
        let locks = SimulatedLocks::default();
        let lock = locks.add(SimulatedLock::new("lock-4b", pin()));
        let (auth_id, key) = lock.lock().unwrap().authorize("leasegate");
        (locks, Session { auth_id, key })
    }

    fn from(day: u8) -> TimeLimits {
        TimeLimits {
            from: NukiDate::new(2026, 12, day, 10, 15, 0),
            weekdays: Weekdays::ALL,
            ..TimeLimits::default()
        }
    }

    fn add(code: u32, resident: &str, day: u8) -> Op {
        Op::AddCode {
            code: KeypadCode::new(code).unwrap(),
            name: format!("lg {resident}"),
            limits: from(day),
        }
    }

    #[tokio::test]
    async fn codes_added_through_the_real_exchange_are_listed_with_their_time_limits_and_removed_ones_are_gone(
    ) {
        let (locks, s) = paired_lock();
        let mut link = locks.connect("lock-4b", T).unwrap();
        let a = exchange(&mut link, &s, add(345_678, "t-100", 4), &pin()).await;
        assert_eq!(a.unwrap(), Outcome::CodeAdded { id: 1 });
        let b = exchange(&mut link, &s, add(456_789, "t-101", 5), &pin()).await;
        assert_eq!(b.unwrap(), Outcome::CodeAdded { id: 2 });
        let removed = exchange(&mut link, &s, Op::RemoveCode { id: 1 }, &pin()).await;
        assert_eq!(removed.unwrap(), Outcome::Completed);
        let listed = exchange(
            &mut link,
            &s,
            Op::ListCodes {
                offset: 0,
                count: 200,
            },
            &pin(),
        )
        .await
        .unwrap();
        let Outcome::Codes(codes) = listed else {
            panic!("{listed:?}")
        };
        assert_eq!(codes.len(), 1);
        assert_eq!(codes[0].id, 2);
        assert_eq!(codes[0].name, "lg t-101");
        assert_eq!(codes[0].code.expose(), 456_789);
        assert_eq!(codes[0].limits, from(5));
        // The list's trailing Status COMPLETE does not spoil the next exchange.
        let st = exchange(&mut link, &s, Op::States, &pin()).await.unwrap();
        assert!(matches!(st, Outcome::States(_)), "{st:?}");
    }

    #[tokio::test]
    async fn a_wrong_security_pin_is_refused_as_bad_pin_and_changes_nothing() {
        let (locks, s) = paired_lock();
        let mut link = locks.connect("lock-4b", T).unwrap();
        let wrong = SecurityPin::new(PIN + 1, PinWidth::U16).unwrap();
        let e = exchange(&mut link, &s, add(345_678, "t-100", 4), &wrong)
            .await
            .unwrap_err();
        assert!(
            matches!(&e, LockError::Lock(r) if r.code == ErrorCode::BadPin),
            "{e:?}"
        );
        assert!(e.is_fatal(), "a bad PIN must stop the writer");
        assert!(locks
            .get("lock-4b")
            .unwrap()
            .lock()
            .unwrap()
            .codes()
            .is_empty());
    }

    #[tokio::test]
    async fn a_message_under_an_unknown_authorization_or_key_gets_no_answer() {
        let (locks, s) = paired_lock();
        let mut link = locks.connect("lock-4b", SILENCE).unwrap();
        let stranger = Session {
            auth_id: s.auth_id,
            key: SharedKey::from_bytes([3; 32]),
        };
        let e = exchange_once(&mut link, &stranger, Op::States, &pin()).await;
        assert!(
            matches!(e, Err(LockError::Timeout(d)) if d == SILENCE),
            "{e:?}"
        );
        let unknown = Session {
            auth_id: 999,
            key: s.key.clone(),
        };
        let e = exchange_once(&mut link, &unknown, Op::States, &pin()).await;
        assert!(
            matches!(e, Err(LockError::Timeout(d)) if d == SILENCE),
            "{e:?}"
        );
    }

    #[test]
    fn an_admin_command_needs_the_challenge_the_lock_just_gave() {
        let (locks, s) = paired_lock();
        let lock = locks.get("lock-4b").unwrap();
        let mut lock = lock.lock().unwrap();
        let c = Command::RemoveKeypadCode {
            id: 1,
            nonce: [9; 32],
            pin: pin(),
        };
        let wire = frame::encode_encrypted(&s.key, &[1; 24], s.auth_id, c.id(), &c.payload());
        let mut out = Vec::new();
        for piece in frame::chunks(&wire) {
            out.extend(lock.on_write(Framing::Encrypted, piece));
        }
        assert_eq!(out.len(), 1);
        let (_, msg, _) = frame::decode_encrypted(&s.key, &out[0]).unwrap();
        assert_eq!(
            Reply::decode(msg.command, &msg.payload).unwrap(),
            error_reply(ErrorCode::BadNonce, cmd::REMOVE_KEYPAD_CODE)
        );
    }

    #[tokio::test]
    async fn a_busy_lock_is_retried_by_the_exchange_and_the_code_lands_once() {
        let (locks, s) = paired_lock();
        locks.get("lock-4b").unwrap().lock().unwrap().set_busy(2);
        let mut link = locks.connect("lock-4b", T).unwrap();
        let a = exchange(&mut link, &s, add(345_678, "t-100", 4), &pin()).await;
        assert_eq!(a.unwrap(), Outcome::CodeAdded { id: 1 });
        assert_eq!(
            locks.get("lock-4b").unwrap().lock().unwrap().codes().len(),
            1
        );
    }

    #[tokio::test]
    async fn the_same_code_twice_and_a_full_lock_are_refused() {
        let (locks, s) = paired_lock();
        locks
            .get("lock-4b")
            .unwrap()
            .lock()
            .unwrap()
            .set_max_codes(1);
        let mut link = locks.connect("lock-4b", T).unwrap();
        exchange(&mut link, &s, add(345_678, "t-100", 4), &pin())
            .await
            .unwrap();
        let dup = exchange(&mut link, &s, add(345_678, "t-101", 4), &pin()).await;
        assert!(
            matches!(&dup, Err(LockError::Lock(r)) if r.code == ErrorCode::CodeAlreadyExists),
            "{dup:?}"
        );
        let full = exchange(&mut link, &s, add(456_789, "t-101", 4), &pin()).await;
        assert!(
            matches!(&full, Err(LockError::Lock(r)) if r.code == ErrorCode::TooManyEntries),
            "{full:?}"
        );
    }

    #[test]
    fn a_code_opens_only_from_its_start_and_never_once_removed_or_disabled() {
        let mut lock = SimulatedLock::new("lock-4b", pin());
        lock.codes.insert(
            1,
            SimCode {
                code: KeypadCode::new(345_678).unwrap(),
                name: "lg t-100".into(),
                enabled: true,
                limits: from(4),
            },
        );
        let before = NukiDate::new(2026, 12, 4, 10, 14, 0).unwrap();
        let after = NukiDate::new(2026, 12, 4, 10, 15, 0).unwrap();
        assert!(!lock.opens(345_678, before));
        assert!(lock.opens(345_678, after));
        assert!(!lock.opens(456_789, after));
        lock.codes.get_mut(&1).unwrap().enabled = false;
        assert!(!lock.opens(345_678, after));
    }

    fn identity() -> AppIdentity {
        AppIdentity {
            id_type: IdType::App,
            app_id: 0x4c47_0001,
            name: "leasegate".into(),
        }
    }

    #[tokio::test]
    async fn pairing_through_the_apps_real_pairing_code_gives_a_key_the_lock_then_accepts() {
        let locks = SimulatedLocks::default();
        let lock = locks.add(SimulatedLock::new("lock-4b", pin()));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        lock.lock().unwrap().observe(tx);
        lock.lock().unwrap().set_pairing_mode(true);
        let mut link = locks.connect("lock-4b", T).unwrap();
        let paired = pair(&mut link, identity()).await.unwrap();
        assert_eq!(lock.lock().unwrap().authorization_count(), 1);
        let s = Session {
            auth_id: paired.auth_id,
            key: paired.shared_key,
        };
        let a = exchange(&mut link, &s, add(345_678, "t-100", 4), &pin()).await;
        assert_eq!(a.unwrap(), Outcome::CodeAdded { id: 1 });
        assert_eq!(
            rx.try_recv().unwrap().to_string(),
            format!(
                "lock lock-4b: paired with \"leasegate\" (authorization {})",
                paired.auth_id
            )
        );
        let added = rx.try_recv().unwrap().to_string();
        assert_eq!(
            added,
            "lock lock-4b: keypad code 1 for resident t-100 added (valid from 2026-12-04 10:15 lock time)"
        );
        assert!(!added.contains("345678"));
    }

    #[tokio::test]
    async fn a_lock_not_in_pairing_mode_refuses_to_pair() {
        let locks = SimulatedLocks::default();
        locks.add(SimulatedLock::new("lock-4b", pin()));
        let mut link = locks.connect("lock-4b", T).unwrap();
        let e = pair(&mut link, identity()).await.unwrap_err();
        assert!(
            matches!(
                e,
                LockError::Pairing(leasegate_nuki::PairingError::NotInPairingMode)
            ),
            "{e:?}"
        );
    }
}
