//! The leasegate credential profile: credential records carried in osdp_MFG / osdp_MFGREP
//! data (after the 3-byte vendor code). The normative description, with examples, is
//! `protocols/osdp/credential-profile.md`; this module is its reference implementation, both
//! ends: the CP encodes requests and decodes responses, [`PanelDb`] is what a PD keeps.

use std::collections::BTreeMap;

use sha2::{Digest as _, Sha256};

pub const PROFILE_VERSION: u8 = 1;
/// Request header: version, opcode, request id (u32 LE).
pub const REQUEST_HEADER: usize = 6;
/// Response header: version, opcode | 0x80, request id, command status.
pub const RESPONSE_HEADER: usize = 7;
/// Largest number of records (or deletions, or list entries) in one message.
pub const MAX_ITEMS: usize = 255;
pub const MAX_CARD_BITS: u8 = 255;
pub const PIN_LEN: std::ops::RangeInclusive<usize> = 4..=12;

pub mod op {
    pub const UPSERT: u8 = 0x01;
    pub const DELETE: u8 = 0x02;
    pub const DIGEST: u8 = 0x03;
    pub const LIST: u8 = 0x04;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    #[error("message is truncated")]
    Truncated,
    #[error("{0} trailing bytes after the message")]
    Trailing(usize),
    #[error("profile version {0} is not supported")]
    Version(u8),
    #[error("unknown opcode {0:#04x}")]
    UnknownOp(u8),
    #[error("record is malformed: {0}")]
    BadRecord(&'static str),
    #[error("too many items for one message")]
    TooMany,
}

/// What opens the door: a card number of `bits` bits (MSB first, zero-padded to whole bytes
/// at the end) or a PIN of ASCII digits. Debug never shows the number.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Credential {
    Card { bits: u8, data: Vec<u8> },
    Pin(Vec<u8>),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Card { bits, .. } => write!(f, "Card({bits} bits, <redacted>)"),
            Credential::Pin(p) => write!(f, "Pin({} digits, <redacted>)", p.len()),
        }
    }
}

const KIND_CARD: u8 = 1;
const KIND_PIN: u8 = 2;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Record {
    /// Never 0, never reused by the CP for another credential.
    pub id: u32,
    /// Strictly increasing per record id.
    pub version: u32,
    /// Bit n = door n on this panel.
    pub doors: u32,
    /// UTC seconds since 1970; inclusive.
    pub valid_from: u32,
    /// UTC seconds since 1970; exclusive. 0xFFFF_FFFF = open-ended.
    pub valid_until: u32,
    pub credential: Credential,
}

impl Record {
    pub fn encoded_len(&self) -> usize {
        21 + match &self.credential {
            Credential::Card { data, .. } => 1 + data.len(),
            Credential::Pin(p) => 1 + p.len(),
        }
    }

    pub fn encode_into(&self, out: &mut Vec<u8>) {
        for v in [
            self.id,
            self.version,
            self.doors,
            self.valid_from,
            self.valid_until,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        match &self.credential {
            Credential::Card { bits, data } => {
                out.push(KIND_CARD);
                out.push(*bits);
                out.extend_from_slice(data);
            }
            Credential::Pin(p) => {
                out.push(KIND_PIN);
                out.push(p.len() as u8);
                out.extend_from_slice(p);
            }
        }
    }

    /// Decode one record that fills `buf` exactly.
    pub fn decode(buf: &[u8]) -> Result<Record, ProfileError> {
        let mut r = Reader(buf);
        let rec = r.record()?;
        r.finish()?;
        Ok(rec)
    }

    /// The checks a PD applies before storing a record.
    pub fn validate(&self) -> Result<(), ProfileError> {
        if self.id == 0 {
            return Err(ProfileError::BadRecord("record id 0"));
        }
        if self.valid_until <= self.valid_from {
            return Err(ProfileError::BadRecord(
                "valid_until is not after valid_from",
            ));
        }
        match &self.credential {
            Credential::Card { bits, data } => {
                if *bits == 0 || data.len() != usize::from(*bits).div_ceil(8) {
                    return Err(ProfileError::BadRecord("card length"));
                }
                let spare = data.len() * 8 - usize::from(*bits);
                if spare > 0 && data[data.len() - 1] & ((1u8 << spare) - 1) != 0 {
                    return Err(ProfileError::BadRecord("card padding bits set"));
                }
            }
            Credential::Pin(p) => {
                if !PIN_LEN.contains(&p.len()) || !p.iter().all(u8::is_ascii_digit) {
                    return Err(ProfileError::BadRecord("PIN must be 4 to 12 ASCII digits"));
                }
            }
        }
        Ok(())
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ProfileError> {
        if self.0.len() < n {
            return Err(ProfileError::Truncated);
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, ProfileError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, ProfileError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn finish(self) -> Result<(), ProfileError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ProfileError::Trailing(self.0.len()))
        }
    }
    fn record(&mut self) -> Result<Record, ProfileError> {
        let id = self.u32()?;
        let version = self.u32()?;
        let doors = self.u32()?;
        let valid_from = self.u32()?;
        let valid_until = self.u32()?;
        let kind = self.u8()?;
        let len = self.u8()?;
        let credential = match kind {
            KIND_CARD => Credential::Card {
                bits: len,
                data: self.take(usize::from(len).div_ceil(8))?.to_vec(),
            },
            KIND_PIN => Credential::Pin(self.take(usize::from(len))?.to_vec()),
            _ => return Err(ProfileError::BadRecord("unknown credential type")),
        };
        Ok(Record {
            id,
            version,
            doors,
            valid_from,
            valid_until,
            credential,
        })
    }
}

/// A record reference in a delete: remove `id` if the panel's version is ≤ `version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Deletion {
    pub id: u32,
    pub version: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Upsert(Vec<Record>),
    Delete(Vec<Deletion>),
    Digest,
    /// Records with id > `after`, ascending, at most `max`.
    List {
        after: u32,
        max: u8,
    },
}

impl Request {
    fn op(&self) -> u8 {
        match self {
            Request::Upsert(_) => op::UPSERT,
            Request::Delete(_) => op::DELETE,
            Request::Digest => op::DIGEST,
            Request::List { .. } => op::LIST,
        }
    }

    pub fn encode(&self, request_id: u32) -> Vec<u8> {
        let mut out = vec![PROFILE_VERSION, self.op()];
        out.extend_from_slice(&request_id.to_le_bytes());
        match self {
            Request::Upsert(records) => {
                out.push(records.len() as u8);
                for r in records {
                    r.encode_into(&mut out);
                }
            }
            Request::Delete(dels) => {
                out.push(dels.len() as u8);
                for d in dels {
                    out.extend_from_slice(&d.id.to_le_bytes());
                    out.extend_from_slice(&d.version.to_le_bytes());
                }
            }
            Request::Digest => {}
            Request::List { after, max } => {
                out.extend_from_slice(&after.to_le_bytes());
                out.push(*max);
            }
        }
        out
    }

    /// Decode a request. On a header that parses, the request id is returned even when the
    /// body is bad, so the PD can answer with an error status the CP can correlate.
    pub fn decode(buf: &[u8]) -> Result<(u32, Request), (Option<u32>, ProfileError)> {
        let mut r = Reader(buf);
        let header = (|| {
            let v = r.u8()?;
            let op = r.u8()?;
            let id = r.u32()?;
            Ok::<_, ProfileError>((v, op, id))
        })();
        let (version, opcode, id) = header.map_err(|e| (None, e))?;
        if version != PROFILE_VERSION {
            return Err((Some(id), ProfileError::Version(version)));
        }
        let body = (|| {
            let req = match opcode {
                op::UPSERT => {
                    let n = r.u8()?;
                    let recs = (0..n).map(|_| r.record()).collect::<Result<_, _>>()?;
                    Request::Upsert(recs)
                }
                op::DELETE => {
                    let n = r.u8()?;
                    let dels = (0..n)
                        .map(|_| {
                            Ok(Deletion {
                                id: r.u32()?,
                                version: r.u32()?,
                            })
                        })
                        .collect::<Result<_, ProfileError>>()?;
                    Request::Delete(dels)
                }
                op::DIGEST => Request::Digest,
                op::LIST => Request::List {
                    after: r.u32()?,
                    max: r.u8()?,
                },
                other => return Err(ProfileError::UnknownOp(other)),
            };
            r.finish()?;
            Ok(req)
        })();
        body.map(|b| (id, b)).map_err(|e| (Some(id), e))
    }
}

/// Per-item status in upsert/delete responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Ok,
    /// The panel holds a newer version; nothing changed.
    StaleVersion,
    /// No room for another record; nothing changed.
    Full,
    /// The record failed validation; nothing changed.
    BadRecord,
    Other(u8),
}

impl Status {
    pub fn to_byte(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::StaleVersion => 1,
            Status::Full => 2,
            Status::BadRecord => 3,
            Status::Other(b) => b,
        }
    }
    pub fn from_byte(b: u8) -> Self {
        match b {
            0 => Status::Ok,
            1 => Status::StaleVersion,
            2 => Status::Full,
            3 => Status::BadRecord,
            b => Status::Other(b),
        }
    }
}

/// Whole-command status in every response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommandStatus {
    Ok,
    Malformed,
    UnknownOp,
    UnsupportedVersion,
    Other(u8),
}

impl CommandStatus {
    pub fn to_byte(self) -> u8 {
        match self {
            CommandStatus::Ok => 0,
            CommandStatus::Malformed => 0x10,
            CommandStatus::UnknownOp => 0x11,
            CommandStatus::UnsupportedVersion => 0x12,
            CommandStatus::Other(b) => b,
        }
    }
    pub fn from_byte(b: u8) -> Self {
        match b {
            0 => CommandStatus::Ok,
            0x10 => CommandStatus::Malformed,
            0x11 => CommandStatus::UnknownOp,
            0x12 => CommandStatus::UnsupportedVersion,
            b => CommandStatus::Other(b),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseBody {
    Upsert(Vec<Status>),
    Delete(Vec<Status>),
    Digest {
        count: u32,
        digest: [u8; 16],
    },
    List {
        more: bool,
        entries: Vec<(u32, u32)>,
    },
    /// The command was refused as a whole (`status` is not Ok); `op` echoes its opcode.
    Refused {
        op: u8,
        status: CommandStatus,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub request_id: u32,
    pub body: ResponseBody,
}

impl Response {
    pub fn encode(&self) -> Vec<u8> {
        let (op, status) = match &self.body {
            ResponseBody::Upsert(_) => (op::UPSERT, CommandStatus::Ok),
            ResponseBody::Delete(_) => (op::DELETE, CommandStatus::Ok),
            ResponseBody::Digest { .. } => (op::DIGEST, CommandStatus::Ok),
            ResponseBody::List { .. } => (op::LIST, CommandStatus::Ok),
            ResponseBody::Refused { op, status } => (*op, *status),
        };
        let mut out = vec![PROFILE_VERSION, op | 0x80];
        out.extend_from_slice(&self.request_id.to_le_bytes());
        out.push(status.to_byte());
        match &self.body {
            ResponseBody::Upsert(s) | ResponseBody::Delete(s) => {
                out.push(s.len() as u8);
                out.extend(s.iter().map(|s| s.to_byte()));
            }
            ResponseBody::Digest { count, digest } => {
                out.extend_from_slice(&count.to_le_bytes());
                out.extend_from_slice(digest);
            }
            ResponseBody::List { more, entries } => {
                out.push(u8::from(*more));
                out.push(entries.len() as u8);
                for (id, v) in entries {
                    out.extend_from_slice(&id.to_le_bytes());
                    out.extend_from_slice(&v.to_le_bytes());
                }
            }
            ResponseBody::Refused { .. } => {}
        }
        out
    }

    pub fn decode(buf: &[u8]) -> Result<Response, ProfileError> {
        let mut r = Reader(buf);
        let version = r.u8()?;
        if version != PROFILE_VERSION {
            return Err(ProfileError::Version(version));
        }
        let opbyte = r.u8()?;
        if opbyte & 0x80 == 0 {
            return Err(ProfileError::UnknownOp(opbyte));
        }
        let opcode = opbyte & 0x7f;
        let request_id = r.u32()?;
        let status = CommandStatus::from_byte(r.u8()?);
        let body = if status != CommandStatus::Ok {
            ResponseBody::Refused { op: opcode, status }
        } else {
            match opcode {
                op::UPSERT | op::DELETE => {
                    let n = r.u8()?;
                    let s = r.take(usize::from(n))?;
                    let s = s.iter().map(|&b| Status::from_byte(b)).collect();
                    if opcode == op::UPSERT {
                        ResponseBody::Upsert(s)
                    } else {
                        ResponseBody::Delete(s)
                    }
                }
                op::DIGEST => {
                    let count = r.u32()?;
                    let mut digest = [0u8; 16];
                    digest.copy_from_slice(r.take(16)?);
                    ResponseBody::Digest { count, digest }
                }
                op::LIST => {
                    let more = match r.u8()? {
                        0 => false,
                        1 => true,
                        _ => return Err(ProfileError::BadRecord("list `more` flag is not 0 or 1")),
                    };
                    let n = r.u8()?;
                    let entries =
                        (0..n)
                            .map(|_| Ok((r.u32()?, r.u32()?)))
                            .collect::<Result<_, ProfileError>>()?;
                    ResponseBody::List { more, entries }
                }
                other => return Err(ProfileError::UnknownOp(other)),
            }
        };
        r.finish()?;
        Ok(Response { request_id, body })
    }
}

/// The digest of a record set: the first 16 bytes of SHA-256 over the records' encodings in
/// ascending record id. Both ends compute it the same way.
pub fn digest<'a>(records: impl IntoIterator<Item = &'a Record>) -> [u8; 16] {
    let mut sorted: Vec<&Record> = records.into_iter().collect();
    sorted.sort_by_key(|r| r.id);
    let mut h = Sha256::new();
    let mut buf = Vec::with_capacity(64);
    for r in sorted {
        buf.clear();
        r.encode_into(&mut buf);
        h.update(&buf);
    }
    let full = h.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    out
}

/// Split `records` into upsert requests whose encoding fits in `max_data` bytes of MFG data
/// (vendor code excluded). A record that alone does not fit is returned in `Err`.
pub fn pack_upserts(records: &[Record], max_data: usize) -> Result<Vec<Vec<Record>>, Record> {
    let mut out: Vec<Vec<Record>> = Vec::new();
    let mut cur: Vec<Record> = Vec::new();
    let mut size = REQUEST_HEADER + 1;
    for r in records {
        let l = r.encoded_len();
        if REQUEST_HEADER + 1 + l > max_data {
            return Err(r.clone());
        }
        if size + l > max_data || cur.len() == MAX_ITEMS {
            out.push(std::mem::take(&mut cur));
            size = REQUEST_HEADER + 1;
        }
        size += l;
        cur.push(r.clone());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

/// How many deletions fit in one request of `max_data` bytes.
pub fn deletions_per_request(max_data: usize) -> usize {
    (max_data.saturating_sub(REQUEST_HEADER + 1) / 8).min(MAX_ITEMS)
}

/// How many list entries fit in one response of `max_data` bytes.
pub fn list_entries_per_response(max_data: usize) -> u8 {
    (max_data.saturating_sub(RESPONSE_HEADER + 2) / 8).min(MAX_ITEMS) as u8
}

/// The credential database a PD keeps, with the profile's rules applied. Pure: the simulator
/// and the test PD wrap it.
#[derive(Debug, Clone, Default)]
pub struct PanelDb {
    records: BTreeMap<u32, Record>,
    capacity: usize,
}

impl PanelDb {
    pub fn new(capacity: usize) -> Self {
        PanelDb {
            records: BTreeMap::new(),
            capacity,
        }
    }

    pub fn records(&self) -> impl Iterator<Item = &Record> {
        self.records.values()
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn get(&self, id: u32) -> Option<&Record> {
        self.records.get(&id)
    }

    pub fn upsert(&mut self, r: &Record) -> Status {
        if r.validate().is_err() {
            return Status::BadRecord;
        }
        match self.records.get(&r.id) {
            Some(cur) if cur.version > r.version => Status::StaleVersion,
            Some(cur) if cur.version == r.version => {
                if cur == r {
                    Status::Ok
                } else {
                    Status::StaleVersion
                }
            }
            None if self.records.len() >= self.capacity => Status::Full,
            _ => {
                self.records.insert(r.id, r.clone());
                Status::Ok
            }
        }
    }

    pub fn delete(&mut self, d: Deletion) -> Status {
        match self.records.get(&d.id) {
            Some(cur) if cur.version > d.version => Status::StaleVersion,
            Some(_) => {
                self.records.remove(&d.id);
                Status::Ok
            }
            None => Status::Ok,
        }
    }

    pub fn digest(&self) -> [u8; 16] {
        digest(self.records.values())
    }

    /// Apply one request; `max_reply` bounds a list response.
    pub fn apply(&mut self, req: &Request, max_reply: usize) -> ResponseBody {
        match req {
            Request::Upsert(recs) => {
                ResponseBody::Upsert(recs.iter().map(|r| self.upsert(r)).collect())
            }
            Request::Delete(dels) => {
                ResponseBody::Delete(dels.iter().map(|d| self.delete(*d)).collect())
            }
            Request::Digest => ResponseBody::Digest {
                count: self.records.len() as u32,
                digest: self.digest(),
            },
            Request::List { after, max } => {
                let cap = usize::from((*max).min(list_entries_per_response(max_reply)));
                let mut it = self
                    .records
                    .range(after.saturating_add(1)..)
                    .filter(|_| *after != u32::MAX);
                let entries: Vec<(u32, u32)> = it
                    .by_ref()
                    .take(cap)
                    .map(|(id, r)| (*id, r.version))
                    .collect();
                ResponseBody::List {
                    more: it.next().is_some(),
                    entries,
                }
            }
        }
    }

    /// A PD's whole MFG handler: request bytes in, response bytes out (None when not even the
    /// header parses, in which case the PD should NAK).
    pub fn handle(&mut self, request: &[u8], max_reply: usize) -> Option<Vec<u8>> {
        let (request_id, body) = match Request::decode(request) {
            Ok((id, req)) => (id, self.apply(&req, max_reply)),
            Err((None, _)) => return None,
            Err((Some(id), e)) => {
                let status = match e {
                    ProfileError::Version(_) => CommandStatus::UnsupportedVersion,
                    ProfileError::UnknownOp(_) => CommandStatus::UnknownOp,
                    _ => CommandStatus::Malformed,
                };
                let op = request.get(1).copied().unwrap_or(0) & 0x7f;
                (id, ResponseBody::Refused { op, status })
            }
        };
        Some(Response { request_id, body }.encode())
    }
}
