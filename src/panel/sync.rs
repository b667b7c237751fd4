//! Bringing one panel to the desired credential set: what it acknowledged versus what it
//! should hold, turned into credential-profile requests, and the responses applied back.
//! Pure: requests out, responses in, time passed in; the bus task does the I/O and persists
//! [`PanelState`] whenever [`Outcome::StateChanged`] says so.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use leasegate_osdp::profile::{self, Deletion, Record, Request, Response, ResponseBody, Status};
use serde::{Deserialize, Serialize};

use super::records::{prune, Ledger};

/// What survives a restart, kept in the device state (`Outbox::put_device_state`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PanelState {
    pub ledger: Ledger,
    /// Records the panel acknowledged: id → record encoding (hex).
    pub acked: BTreeMap<u32, String>,
    /// The panel's SCBK, sealed with the store key (hex). None: not commissioned.
    pub key: Option<String>,
    /// A key sent with KEYSET whose acknowledgement we have not seen (hex, sealed).
    pub pending_key: Option<String>,
}

impl PanelState {
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("plain data serialises")
    }
    pub fn from_bytes(b: &[u8]) -> Result<PanelState, serde_json::Error> {
        serde_json::from_slice(b)
    }
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn unhex(s: &str) -> Option<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Persist the state now (the panel acknowledged something).
    StateChanged,
    /// The panel's digest differs from what it acknowledged: it is being resynchronised.
    Drift(String),
    /// Items the panel refused (full, bad record) or a refused request.
    Rejected { detail: String },
    /// The panel holds exactly the desired set.
    InSync,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Mode {
    /// Ask for the digest before writing (after every connection, and periodically).
    Verify,
    /// Read the panel's (id, version) list after a drift.
    Listing {
        after: u32,
        found: Vec<(u32, u32)>,
    },
    Write,
}

#[derive(Debug, Clone)]
struct InFlight {
    request_id: u32,
    request: Request,
    sent: Instant,
    resend: bool,
}

#[derive(Debug)]
pub struct PanelSync {
    pub state: PanelState,
    desired: BTreeMap<u32, (Record, String)>,
    acked: BTreeMap<u32, Record>,
    /// Records on the panel we did not write (found by listing): delete them.
    extra: BTreeMap<u32, u32>,
    /// Records the panel refused at this version: not resent until they change.
    rejected: BTreeMap<u32, u32>,
    mode: Mode,
    inflight: Option<InFlight>,
    next_request_id: u32,
    max_data: usize,
    response_timeout: Duration,
    digest_interval: Duration,
    last_verified: Option<Instant>,
    revoking_since: BTreeMap<u32, Instant>,
    overdue_reported: BTreeSet<u32>,
    /// Refuse to delete everything at once (an empty desired set after a store rebuild).
    wipe_held: bool,
    was_in_sync: bool,
}

/// Below this many records, an empty desired set is believed.
const WIPE_GUARD: usize = 3;

impl PanelSync {
    pub fn new(state: PanelState, first_request_id: u32, digest_interval: Duration) -> PanelSync {
        let acked = state
            .acked
            .iter()
            .filter_map(|(id, h)| Some((*id, Record::decode(&unhex(h)?).ok()?)))
            .collect();
        PanelSync {
            state,
            desired: BTreeMap::new(),
            acked,
            extra: BTreeMap::new(),
            rejected: BTreeMap::new(),
            mode: Mode::Verify,
            inflight: None,
            next_request_id: first_request_id,
            max_data: 64,
            response_timeout: Duration::from_secs(2),
            digest_interval,
            last_verified: None,
            revoking_since: BTreeMap::new(),
            overdue_reported: BTreeSet::new(),
            wipe_held: false,
            was_in_sync: false,
        }
    }

    /// The largest profile message for this panel.
    pub fn set_max_data(&mut self, n: usize) {
        self.max_data = n.max(profile::REQUEST_HEADER + 1 + 8);
    }

    /// How long to wait for a response (inline or deferred to a later POLL) before sending
    /// the request again; slow lines need longer.
    pub fn set_response_timeout(&mut self, t: Duration) {
        self.response_timeout = t;
    }

    pub fn max_data(&self) -> usize {
        self.max_data
    }

    /// Replace the desired set (from the outbox). Returns an outcome when it is held back.
    pub fn set_desired(
        &mut self,
        desired: BTreeMap<u32, (Record, String)>,
        now: Instant,
    ) -> Option<Outcome> {
        self.rejected
            .retain(|id, v| desired.get(id).is_some_and(|(r, _)| r.version == *v));
        self.desired = desired;
        self.was_in_sync = false;
        let held = self.desired.is_empty() && self.acked.len() > WIPE_GUARD;
        let newly = held && !self.wipe_held;
        self.wipe_held = held;
        for id in self.acked.keys() {
            if !self.desired.contains_key(id) {
                self.revoking_since.entry(*id).or_insert(now);
            }
        }
        self.revoking_since
            .retain(|id, _| !self.desired.contains_key(id));
        newly.then(|| Outcome::Rejected {
            detail: format!(
                "the desired set is empty but the panel holds {} credentials: not removing them all at once (check the store; re-approve to proceed)",
                self.acked.len()
            ),
        })
    }

    /// The panel (re)connected: finish the request in flight (it is idempotent, and the
    /// panel may have applied it without our seeing the response), then check the digest.
    pub fn on_connect(&mut self) {
        self.mode = Mode::Verify;
        if let Some(f) = &mut self.inflight {
            f.resend = true;
        }
    }

    fn deletions(&self) -> Vec<Deletion> {
        if self.wipe_held {
            return Vec::new();
        }
        let mut d: Vec<Deletion> = self
            .acked
            .iter()
            .filter(|(id, _)| !self.desired.contains_key(id))
            .map(|(id, r)| Deletion {
                id: *id,
                version: r.version,
            })
            .collect();
        d.extend(self.extra.iter().map(|(id, v)| Deletion {
            id: *id,
            version: *v,
        }));
        d
    }

    fn upserts(&self) -> Vec<Record> {
        self.desired
            .iter()
            .filter(|(id, (r, _))| {
                self.acked.get(id) != Some(r) && self.rejected.get(id) != Some(&r.version)
            })
            .map(|(_, (r, _))| r.clone())
            .collect()
    }

    /// Operations not yet acknowledged.
    pub fn pending(&self) -> usize {
        self.deletions().len() + self.upserts().len()
    }

    pub fn failed(&self) -> usize {
        self.rejected.len()
    }

    /// Whether a request is waiting for its response.
    pub fn busy(&self) -> bool {
        self.inflight.is_some()
    }

    /// The next request to send as `(request id, profile message)`, or None.
    pub fn next_request(&mut self, now: Instant) -> Option<(u32, Vec<u8>)> {
        if let Some(f) = &mut self.inflight {
            if !f.resend && now.duration_since(f.sent) < self.response_timeout {
                return None;
            }
            // No response: send the same request again (idempotent, same id).
            f.sent = now;
            f.resend = false;
            return Some((f.request_id, f.request.encode(f.request_id)));
        }
        if self.mode == Mode::Write
            && self
                .last_verified
                .is_some_and(|t| now.duration_since(t) >= self.digest_interval)
        {
            self.mode = Mode::Verify;
        }
        let request = match &self.mode {
            Mode::Verify => Request::Digest,
            Mode::Listing { after, .. } => Request::List {
                after: *after,
                max: profile::list_entries_per_response(self.max_data),
            },
            Mode::Write => {
                let dels = self.deletions();
                if !dels.is_empty() {
                    let n = profile::deletions_per_request(self.max_data);
                    Request::Delete(dels.into_iter().take(n).collect())
                } else {
                    let ups = self.upserts();
                    if ups.is_empty() {
                        return None;
                    }
                    match profile::pack_upserts(&ups, self.max_data) {
                        Ok(mut batches) => Request::Upsert(batches.swap_remove(0)),
                        Err(too_big) => {
                            self.rejected.insert(too_big.id, too_big.version);
                            return None;
                        }
                    }
                }
            }
        };
        let request_id = self.next_request_id;
        self.next_request_id = self.next_request_id.wrapping_add(1);
        let bytes = request.encode(request_id);
        self.inflight = Some(InFlight {
            request_id,
            request,
            sent: now,
            resend: false,
        });
        Some((request_id, bytes))
    }

    /// The panel refused the MFG carrying `request_id` (NAK): try again later.
    pub fn on_refused(&mut self, request_id: u32) {
        if self
            .inflight
            .as_ref()
            .is_some_and(|f| f.request_id == request_id)
        {
            self.inflight = None;
        }
    }

    /// Nothing heard for `request_id` after the link gave up: send it again when asked.
    pub fn on_link_reset(&mut self) {
        if let Some(f) = &mut self.inflight {
            f.resend = true;
        }
    }

    /// Apply a response. Responses to anything but the request in flight are stale and
    /// ignored (a deferred MFGREP for a request we already resent and got).
    pub fn on_response(&mut self, resp: &Response, now: Instant) -> Vec<Outcome> {
        let Some(f) = self.inflight.take_if(|f| f.request_id == resp.request_id) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        match (&f.request, &resp.body) {
            (Request::Digest, ResponseBody::Digest { count, digest }) => {
                let mine = profile::digest(self.acked.values());
                self.last_verified = Some(now);
                if *count as usize == self.acked.len() && *digest == mine {
                    self.mode = Mode::Write;
                } else {
                    out.push(Outcome::Drift(format!(
                        "panel holds {count} records, {} acknowledged; digests differ",
                        self.acked.len()
                    )));
                    self.mode = Mode::Listing {
                        after: 0,
                        found: Vec::new(),
                    };
                }
            }
            (Request::List { .. }, ResponseBody::List { more, entries }) => {
                let Mode::Listing { found, .. } = &mut self.mode else {
                    return out;
                };
                found.extend(entries.iter().copied());
                let last = entries.last().map(|e| e.0);
                match (more, last) {
                    (true, Some(after)) => {
                        let found = std::mem::take(found);
                        self.mode = Mode::Listing { after, found };
                    }
                    _ => {
                        let found: BTreeMap<u32, u32> = std::mem::take(found).into_iter().collect();
                        // Keep what the panel still has at the same version; delete the rest.
                        self.acked.retain(|id, r| found.get(id) == Some(&r.version));
                        self.extra = found
                            .into_iter()
                            .filter(|(id, _)| !self.acked.contains_key(id))
                            .collect();
                        self.save_acked();
                        out.push(Outcome::StateChanged);
                        self.mode = Mode::Write;
                    }
                }
            }
            (Request::Upsert(recs), ResponseBody::Upsert(statuses))
                if statuses.len() == recs.len() =>
            {
                let mut refused = Vec::new();
                for (r, s) in recs.iter().zip(statuses) {
                    match s {
                        Status::Ok => {
                            self.acked.insert(r.id, r.clone());
                        }
                        Status::StaleVersion => {
                            self.mode = Mode::Listing {
                                after: 0,
                                found: Vec::new(),
                            }
                        }
                        s => {
                            self.rejected.insert(r.id, r.version);
                            refused.push(format!("record {}: {s:?}", r.id));
                        }
                    }
                }
                self.save_acked();
                out.push(Outcome::StateChanged);
                if !refused.is_empty() {
                    out.push(Outcome::Rejected {
                        detail: refused.join(", "),
                    });
                }
            }
            (Request::Delete(dels), ResponseBody::Delete(statuses))
                if statuses.len() == dels.len() =>
            {
                for (d, s) in dels.iter().zip(statuses) {
                    match s {
                        Status::Ok => {
                            self.acked.remove(&d.id);
                            self.extra.remove(&d.id);
                            self.revoking_since.remove(&d.id);
                            self.overdue_reported.remove(&d.id);
                        }
                        _ => {
                            self.mode = Mode::Listing {
                                after: 0,
                                found: Vec::new(),
                            }
                        }
                    }
                }
                self.save_acked();
                out.push(Outcome::StateChanged);
            }
            (_, ResponseBody::Refused { status, .. }) => {
                out.push(Outcome::Rejected {
                    detail: format!("panel refused the request: {status:?}"),
                });
            }
            _ => {
                // A response that does not fit its request: start over from the digest.
                out.push(Outcome::Drift("response did not match its request".into()));
                self.mode = Mode::Verify;
            }
        }
        if self.is_in_sync() && !self.was_in_sync {
            self.was_in_sync = true;
            out.push(Outcome::InSync);
        }
        out
    }

    pub fn is_in_sync(&self) -> bool {
        self.mode == Mode::Write
            && self.inflight.is_none()
            && self.pending() == 0
            && !self.wipe_held
    }

    fn save_acked(&mut self) {
        self.state.acked = self
            .acked
            .iter()
            .map(|(id, r)| {
                let mut b = Vec::new();
                r.encode_into(&mut b);
                (*id, hex(&b))
            })
            .collect();
        let keep: BTreeSet<u32> = self
            .acked
            .keys()
            .chain(self.desired.keys())
            .copied()
            .collect();
        prune(&mut self.state.ledger, |id| keep.contains(&id));
    }

    /// Residents whose revocation on this panel is older than `deadline`, reported once.
    pub fn newly_overdue(&mut self, now: Instant, deadline: Duration) -> Vec<u32> {
        let late: Vec<u32> = self
            .revoking_since
            .iter()
            .filter(|(id, t)| {
                now.duration_since(**t) >= deadline && !self.overdue_reported.contains(id)
            })
            .map(|(id, _)| *id)
            .collect();
        self.overdue_reported.extend(late.iter().copied());
        late
    }

    /// Which resident an acknowledged record belongs to (from the ledger).
    pub fn resident_of(&self, id: u32) -> Option<&str> {
        self.state
            .ledger
            .assigned
            .values()
            .find(|a| a.id == id)
            .map(|a| a.resident.as_str())
    }

    pub fn acknowledged(&self) -> &BTreeMap<u32, Record> {
        &self.acked
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use leasegate_osdp::profile::{Credential, PanelDb};

    fn rec(id: u32, version: u32) -> (Record, String) {
        (
            Record {
                id,
                version,
                doors: 1,
                valid_from: 0,
                valid_until: u32::MAX,
                credential: Credential::Card {
                    bits: 26,
                    data: vec![1, 2, 3, 0x40],
                },
            },
            format!("r{id}"),
        )
    }

    /// Run the sync against a panel database until nothing is left to send.
    fn drive(sync: &mut PanelSync, db: &mut PanelDb, now: Instant) -> Vec<Outcome> {
        let mut out = Vec::new();
        for _ in 0..200 {
            let Some((_, req)) = sync.next_request(now) else {
                return out;
            };
            let resp = Response::decode(&db.handle(&req, 64).unwrap()).unwrap();
            out.extend(sync.on_response(&resp, now));
        }
        panic!("did not settle");
    }

    #[test]
    fn the_panel_ends_up_holding_exactly_the_desired_set_in_batches_that_fit() {
        let now = Instant::now();
        let mut db = PanelDb::new(100);
        let mut sync = PanelSync::new(PanelState::default(), 1, Duration::from_secs(600));
        sync.set_desired((1..=10).map(|i| (i, rec(i, 1))).collect(), now);
        let out = drive(&mut sync, &mut db, now);
        assert!(out.contains(&Outcome::InSync));
        assert_eq!(db.len(), 10);
        sync.set_desired(
            (3..=10)
                .map(|i| (i, rec(i, if i == 5 { 2 } else { 1 })))
                .collect(),
            now,
        );
        drive(&mut sync, &mut db, now);
        assert_eq!(db.len(), 8);
        assert_eq!(db.get(5).unwrap().version, 2);
        assert_eq!(db.digest(), profile::digest(sync.acknowledged().values()));
    }

    #[test]
    fn a_panel_that_was_reset_is_detected_by_its_digest_and_rewritten() {
        let now = Instant::now();
        let mut db = PanelDb::new(100);
        let mut sync = PanelSync::new(PanelState::default(), 1, Duration::from_secs(600));
        sync.set_desired((1..=5).map(|i| (i, rec(i, 1))).collect(), now);
        drive(&mut sync, &mut db, now);
        let mut fresh = PanelDb::new(100);
        // An unknown record appears on the panel, the rest is gone.
        fresh.upsert(&rec(77, 1).0);
        sync.on_connect();
        let out = drive(&mut sync, &mut fresh, now);
        assert!(matches!(out[0], Outcome::Drift(_)), "{out:?}");
        assert_eq!(fresh.len(), 5);
        assert!(
            fresh.get(77).is_none(),
            "a record we did not write is removed"
        );
    }

    #[test]
    fn a_sudden_empty_desired_set_does_not_wipe_the_panel() {
        let now = Instant::now();
        let mut db = PanelDb::new(100);
        let mut sync = PanelSync::new(PanelState::default(), 1, Duration::from_secs(600));
        sync.set_desired((1..=10).map(|i| (i, rec(i, 1))).collect(), now);
        drive(&mut sync, &mut db, now);
        assert!(matches!(
            sync.set_desired(BTreeMap::new(), now),
            Some(Outcome::Rejected { .. })
        ));
        drive(&mut sync, &mut db, now);
        assert_eq!(db.len(), 10);
        assert!(!sync.is_in_sync());
    }

    #[test]
    fn a_revocation_not_acknowledged_in_time_is_reported_once() {
        let now = Instant::now();
        let mut db = PanelDb::new(100);
        let mut sync = PanelSync::new(PanelState::default(), 1, Duration::from_secs(600));
        sync.set_desired((1..=5).map(|i| (i, rec(i, 1))).collect(), now);
        drive(&mut sync, &mut db, now);
        sync.set_desired((2..=5).map(|i| (i, rec(i, 1))).collect(), now);
        let later = now + Duration::from_secs(121);
        assert_eq!(sync.newly_overdue(later, Duration::from_secs(120)), vec![1]);
        assert!(sync
            .newly_overdue(later, Duration::from_secs(120))
            .is_empty());
    }

    #[test]
    fn the_acknowledged_set_survives_a_restart_through_the_saved_state() {
        let now = Instant::now();
        let mut db = PanelDb::new(100);
        let mut sync = PanelSync::new(PanelState::default(), 1, Duration::from_secs(600));
        sync.set_desired((1..=5).map(|i| (i, rec(i, 1))).collect(), now);
        drive(&mut sync, &mut db, now);
        let saved = PanelState::from_bytes(&sync.state.to_bytes()).unwrap();
        let again = PanelSync::new(saved, 100, Duration::from_secs(600));
        assert_eq!(again.acknowledged(), sync.acknowledged());
    }
}
