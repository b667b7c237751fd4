//! From the gateway's desired set to credential-profile records, with stable record ids and
//! versions. Pure.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use leasegate_osdp::profile::{Credential, Record};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::outbox::DesiredEntry;

/// The identity a record id stands for: resident, credential and start time. Holds a hash
/// of the credential, never the number itself.
pub type RecordKey = String;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assigned {
    pub id: u32,
    pub version: u32,
    /// Hash of the record content at that version.
    pub content: String,
    pub resident: String,
}

/// Record ids and versions handed out for one panel. Ids are never reused.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    pub next_id: u32,
    pub assigned: BTreeMap<RecordKey, Assigned>,
}

fn hex16(bytes: &[u8]) -> String {
    Sha256::digest(bytes)[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn content_hash(r: &Record) -> String {
    let mut v = Vec::new();
    Record {
        id: 0,
        version: 0,
        ..r.clone()
    }
    .encode_into(&mut v);
    hex16(&v)
}

fn seconds(t: &DateTime<Utc>) -> u32 {
    t.timestamp().clamp(0, i64::from(u32::MAX - 1)) as u32
}

/// A credential the panel cannot hold (e.g. a card longer than 255 bits).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub resident: String,
    pub reason: &'static str,
}

/// The records `entries` ask of a panel whose doors are `doors` (bit order). One record per
/// credential and start time: doors opening at different times get separate records so
/// none opens early.
pub fn desired_records(
    entries: &[DesiredEntry],
    doors: &[String],
    ledger: &mut Ledger,
) -> (BTreeMap<u32, (Record, String)>, Vec<Skipped>) {
    let mut out = BTreeMap::new();
    let mut skipped = Vec::new();
    let mut live: Vec<RecordKey> = Vec::new();
    for e in entries {
        let mut by_start: BTreeMap<u32, u32> = BTreeMap::new();
        for (door, from) in &e.doors {
            if let Some(bit) = doors.iter().position(|d| d == door) {
                *by_start.entry(seconds(from)).or_default() |= 1 << bit;
            }
        }
        let mut creds: Vec<(String, Credential)> = Vec::new();
        for c in &e.cards {
            if c.bit_len == 0 || c.bit_len > 255 {
                skipped.push(Skipped {
                    resident: e.resident_id.clone(),
                    reason: "card longer than 255 bits",
                });
                continue;
            }
            creds.push((
                format!(
                    "card:{}",
                    hex16(&[&c.bit_len.to_le_bytes()[..], &c.bits].concat())
                ),
                Credential::Card {
                    bits: c.bit_len as u8,
                    data: c.bits.clone(),
                },
            ));
        }
        if let Some(pin) = &e.pin {
            let digits = pin.expose().as_bytes().to_vec();
            creds.push((format!("pin:{}", hex16(&digits)), Credential::Pin(digits)));
        }
        for (from, mask) in &by_start {
            for (fp, cred) in &creds {
                let key = format!("{}|{fp}|{from}", e.resident_id);
                let mut rec = Record {
                    id: 0,
                    version: 0,
                    doors: *mask,
                    valid_from: *from,
                    valid_until: u32::MAX,
                    credential: cred.clone(),
                };
                let content = content_hash(&rec);
                let a = match ledger.assigned.get_mut(&key) {
                    Some(a) => {
                        if a.content != content {
                            a.version += 1;
                            a.content = content;
                        }
                        a.clone()
                    }
                    None => {
                        ledger.next_id = ledger.next_id.max(1);
                        let a = Assigned {
                            id: ledger.next_id,
                            version: 1,
                            content,
                            resident: e.resident_id.clone(),
                        };
                        ledger.next_id += 1;
                        ledger.assigned.insert(key.clone(), a.clone());
                        a
                    }
                };
                rec.id = a.id;
                rec.version = a.version;
                live.push(key);
                out.insert(a.id, (rec, e.resident_id.clone()));
            }
        }
    }
    (out, skipped)
}

/// Forget ledger entries that are neither desired nor on the panel (their ids stay burnt).
pub fn prune(ledger: &mut Ledger, keep: impl Fn(u32) -> bool) {
    ledger.assigned.retain(|_, a| keep(a.id));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Card, Pin};

    fn entry(resident: &str, doors: &[(&str, i64)]) -> DesiredEntry {
        DesiredEntry {
            resident_id: resident.into(),
            doors: doors
                .iter()
                .map(|(d, t)| (d.to_string(), DateTime::from_timestamp(*t, 0).unwrap()))
                .collect(),
            cards: vec![Card::h10301(12, 345).unwrap()],
            pin: Pin::parse("483915"),
        }
    }

    #[test]
    fn doors_opening_at_different_times_get_separate_records() {
        let doors = vec!["front".to_string(), "gym".to_string()];
        let mut ledger = Ledger::default();
        let (recs, skipped) = desired_records(
            &[entry("r1", &[("front", 100), ("gym", 200)])],
            &doors,
            &mut ledger,
        );
        assert!(skipped.is_empty());
        // card + PIN, each at two start times.
        assert_eq!(recs.len(), 4);
        let masks: Vec<(u32, u32)> = recs
            .values()
            .map(|(r, _)| (r.valid_from, r.doors))
            .collect();
        assert!(masks.contains(&(100, 0b01)) && masks.contains(&(200, 0b10)));
    }

    #[test]
    fn a_changed_door_set_bumps_the_version_and_keeps_the_id() {
        let doors = vec!["front".to_string(), "gym".to_string()];
        let mut ledger = Ledger::default();
        let (a, _) = desired_records(&[entry("r1", &[("front", 100)])], &doors, &mut ledger);
        let (b, _) = desired_records(
            &[entry("r1", &[("front", 100), ("gym", 100)])],
            &doors,
            &mut ledger,
        );
        let ida: Vec<u32> = a.keys().copied().collect();
        let idb: Vec<u32> = b.keys().copied().collect();
        assert_eq!(ida, idb);
        assert!(b.values().all(|(r, _)| r.version == 2 && r.doors == 0b11));
        let (c, _) = desired_records(
            &[entry("r1", &[("front", 100), ("gym", 100)])],
            &doors,
            &mut ledger,
        );
        assert!(
            c.values().all(|(r, _)| r.version == 2),
            "no change, no new version"
        );
    }

    #[test]
    fn record_ids_are_never_reused_after_a_revocation() {
        let doors = vec!["front".to_string()];
        let mut ledger = Ledger::default();
        let (a, _) = desired_records(&[entry("r1", &[("front", 100)])], &doors, &mut ledger);
        prune(&mut ledger, |_| false);
        let (b, _) = desired_records(&[entry("r2", &[("front", 100)])], &doors, &mut ledger);
        assert!(a.keys().all(|id| !b.contains_key(id)));
    }
}
