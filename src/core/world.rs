//! The in-memory state the rules reason over, and the change set they produce.
//!
//! Rules never mutate a [`World`]: they return a [`Transition`]. The store persists a
//! transition in one durable transaction, and only then is it applied to the world, so memory
//! never runs ahead of disk.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use super::credentials::Credentials;
use super::site::{Site, SiteIndex};
use super::types::*;

#[derive(Clone, Debug, Default)]
pub struct World {
    site: Site,
    index: SiteIndex,
    pub settings: Settings,
    pub residents: BTreeMap<ResidentId, Resident>,
    pub grants: Grants,
    /// Pending suggestions only; decided ones live in the store's history.
    pub pending: BTreeMap<SuggestionId, Suggestion>,
    pub overrides: BTreeMap<ResidentId, Override>,
    /// Cards and PINs, by resident.
    pub credentials: BTreeMap<ResidentId, Credentials>,
    /// Sequence number the next suggestion gets.
    pub next_seq: u64,
}

/// Every grant, by resident then key. One flat map: a map per resident would allocate a
/// whole B-tree node (room for 11 grants) for the two or three keys a resident holds, which
/// with 10,000 residents was 17 MB of the gateway's memory.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Grants(BTreeMap<(ResidentId, KeyId), Grant>);

impl Grants {
    /// The resident's grants, in key order.
    pub fn of<'a>(&'a self, resident: &'a str) -> impl Iterator<Item = &'a Grant> + 'a {
        self.0
            .range((resident.to_string(), KeyId::new())..)
            .take_while(move |((r, _), _)| r == resident)
            .map(|(_, g)| g)
    }

    pub fn get(&self, resident: &str, key: &str) -> Option<&Grant> {
        self.0.get(&(resident.to_string(), key.to_string()))
    }

    pub fn contains(&self, resident: &str, key: &str) -> bool {
        self.get(resident, key).is_some()
    }

    pub fn insert(&mut self, g: Grant) -> Option<Grant> {
        self.0.insert((g.resident_id.clone(), g.key_id.clone()), g)
    }

    pub fn remove(&mut self, resident: &str, key: &str) -> Option<Grant> {
        self.0.remove(&(resident.to_string(), key.to_string()))
    }

    pub fn values(&self) -> impl Iterator<Item = &Grant> {
        self.0.values()
    }

    /// Residents holding at least one grant, in order, each once.
    pub fn residents(&self) -> impl Iterator<Item = &ResidentId> {
        let mut last: Option<&ResidentId> = None;
        self.0.keys().filter_map(move |(r, _)| {
            if last == Some(r) {
                None
            } else {
                last = Some(r);
                Some(r)
            }
        })
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One state change. The store maps each variant onto one key of one tree.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    Resident(Resident),
    Grant(Grant),
    Ungrant {
        resident_id: ResidentId,
        key_id: KeyId,
    },
    /// Upsert. A suggestion in any state but `pending` leaves the pending set.
    Suggestion(Suggestion),
    Override(Override),
    ClearOverride {
        resident_id: ResidentId,
    },
    Settings(Settings),
    Site(Site),
    NextSeq(u64),
    /// The desired credential set of this device may have changed: its writer must look.
    DeviceDirty(DeviceId),
    /// Upsert of a resident's cards and PIN.
    Credentials(Credentials),
}

/// A record as it stood, serialized once when the decision was made. Kept as JSON text so
/// that a sync touching thousands of records does not build (and free) a tree of values
/// for each.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Snap(Box<RawValue>);

impl Snap {
    pub fn of<T: Serialize>(v: &T) -> Snap {
        // Our record types serialize infallibly (string keys, no custom errors).
        Snap(serde_json::value::to_raw_value(v).expect("record serializes"))
    }

    pub fn json(&self) -> &str {
        self.0.get()
    }

    /// The record as a JSON value, for reading one field.
    pub fn value(&self) -> Value {
        serde_json::from_str(self.0.get()).unwrap_or(Value::Null)
    }
}

impl PartialEq for Snap {
    fn eq(&self, other: &Snap) -> bool {
        self.0.get() == other.0.get()
    }
}

impl std::fmt::Debug for Snap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.get())
    }
}

/// A decision as it goes into the audit log: who, when, what, and the state before and after.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at: Timestamp,
    pub actor: Actor,
    pub action: String,
    pub subject: String,
    pub before: Option<Snap>,
    pub after: Option<Snap>,
}

/// Everything one rule evaluation decided: the changes, their audit trail, and alerts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Transition {
    pub changes: Vec<Change>,
    pub audit: Vec<AuditEntry>,
    pub alerts: Vec<Alert>,
    /// The reply to the request that made this change, stored in the same transaction so a
    /// repeated request replays it instead of applying twice: `(actor/transaction, JSON)`.
    pub reply: Option<(String, String)>,
}

impl Transition {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.audit.is_empty() && self.reply.is_none()
    }

    /// Suggestions written by this transition, in order, last write per id winning.
    pub fn suggestions(&self) -> Vec<&Suggestion> {
        let mut order: Vec<&SuggestionId> = Vec::new();
        let mut last: BTreeMap<&SuggestionId, &Suggestion> = BTreeMap::new();
        for c in &self.changes {
            if let Change::Suggestion(s) = c {
                if last.insert(&s.id, s).is_none() {
                    order.push(&s.id);
                }
            }
        }
        order.into_iter().map(|id| last[id]).collect()
    }

    pub fn dirty_devices(&self) -> BTreeSet<&DeviceId> {
        self.changes
            .iter()
            .filter_map(|c| match c {
                Change::DeviceDirty(d) => Some(d),
                _ => None,
            })
            .collect()
    }
}

impl World {
    pub fn new(site: Site, settings: Settings) -> World {
        World {
            index: SiteIndex::new(&site),
            site,
            settings,
            next_seq: 1,
            ..World::default()
        }
    }

    pub fn site(&self) -> &Site {
        &self.site
    }

    pub fn index(&self) -> &SiteIndex {
        &self.index
    }

    pub fn grants_of<'a>(&'a self, resident: &'a str) -> impl Iterator<Item = &'a Grant> + 'a {
        self.grants.of(resident)
    }

    pub fn holds(&self, resident: &str, key: &str) -> bool {
        self.grants.contains(resident, key)
    }

    /// The resident's standing with the override and eviction policy applied, as last
    /// evaluated.
    pub fn standing(&self, resident: &str) -> Option<Standing> {
        self.residents.get(resident).map(|r| r.basis.standing)
    }

    pub fn current_residents(&self) -> usize {
        self.residents
            .values()
            .filter(|r| r.basis.standing == Standing::Current)
            .count()
    }

    /// Apply a transition that the store has made durable.
    pub fn apply(&mut self, t: &Transition) {
        for c in &t.changes {
            match c {
                Change::Resident(r) => {
                    self.residents.insert(r.id.clone(), r.clone());
                }
                Change::Grant(g) => {
                    self.grants.insert(g.clone());
                }
                Change::Ungrant {
                    resident_id,
                    key_id,
                } => {
                    self.grants.remove(resident_id, key_id);
                }
                Change::Suggestion(s) => {
                    if s.state == SuggestionState::Pending {
                        self.pending.insert(s.id.clone(), s.clone());
                    } else {
                        self.pending.remove(&s.id);
                    }
                }
                Change::Override(o) => {
                    self.overrides.insert(o.resident_id.clone(), o.clone());
                }
                Change::ClearOverride { resident_id } => {
                    self.overrides.remove(resident_id);
                }
                Change::Settings(s) => self.settings = s.clone(),
                Change::Site(s) => {
                    self.index = SiteIndex::new(s);
                    self.site = s.clone();
                }
                Change::NextSeq(n) => self.next_seq = *n,
                Change::DeviceDirty(_) => {}
                Change::Credentials(c) => {
                    self.credentials.insert(c.resident_id.clone(), c.clone());
                }
            }
        }
    }
}

/// Builds a [`Transition`] against a world, writing the audit entry for each change as it
/// is made, with the state before (from this transition if it already touched the record).
pub(crate) struct TxBuilder<'w> {
    pub world: &'w World,
    pub actor: Actor,
    pub now: Timestamp,
    pub t: Transition,
    next_seq: u64,
    suggestions: BTreeMap<SuggestionId, Suggestion>,
    /// Suggestions created by this transition: the index of their change and audit entry.
    born: BTreeMap<SuggestionId, (usize, usize)>,
    residents: BTreeMap<ResidentId, Resident>,
    grants: BTreeMap<(ResidentId, KeyId), Option<Grant>>,
    credentials: BTreeMap<ResidentId, Credentials>,
    dirty: BTreeSet<DeviceId>,
}

fn json<T: Serialize>(v: &T) -> Snap {
    Snap::of(v)
}

impl<'w> TxBuilder<'w> {
    pub fn new(world: &'w World, actor: Actor, now: Timestamp) -> Self {
        TxBuilder {
            world,
            actor,
            now,
            t: Transition::default(),
            next_seq: world.next_seq,
            suggestions: BTreeMap::new(),
            born: BTreeMap::new(),
            residents: BTreeMap::new(),
            grants: BTreeMap::new(),
            credentials: BTreeMap::new(),
            dirty: BTreeSet::new(),
        }
    }

    pub fn alert(&mut self, a: Alert) {
        self.t.alerts.push(a);
    }

    fn audit(&mut self, action: &str, subject: String, before: Option<Snap>, after: Option<Snap>) {
        self.t.audit.push(AuditEntry {
            at: self.now,
            actor: self.actor.clone(),
            action: action.to_string(),
            subject,
            before,
            after,
        });
    }

    /// The resident as this transition sees it (its own writes first).
    pub fn resident(&self, id: &str) -> Option<&Resident> {
        self.residents
            .get(id)
            .or_else(|| self.world.residents.get(id))
    }

    pub fn put_resident(&mut self, r: Resident) {
        let before = self.resident(&r.id).cloned();
        if before.as_ref() == Some(&r) {
            return;
        }
        let action = if before.is_some() {
            "resident.update"
        } else {
            "resident.create"
        };
        self.audit(
            action,
            r.id.clone(),
            before.map(|b| json(&b)),
            Some(json(&r)),
        );
        self.residents.insert(r.id.clone(), r.clone());
        self.t.changes.push(Change::Resident(r));
    }

    /// Whether the resident holds the key as this transition sees it.
    pub fn holds(&self, resident: &str, key: &str) -> bool {
        match self.grants.get(&(resident.to_string(), key.to_string())) {
            Some(g) => g.is_some(),
            None => self.world.holds(resident, key),
        }
    }

    fn current_grant(&self, resident: &str, key: &str) -> Option<Grant> {
        match self.grants.get(&(resident.to_string(), key.to_string())) {
            Some(g) => g.clone(),
            None => self.world.grants.get(resident, key).cloned(),
        }
    }

    fn mark_dirty(&mut self, key: &str) {
        for dev in self.world.index().devices_of_key(key) {
            if self.dirty.insert(dev.clone()) {
                self.t.changes.push(Change::DeviceDirty(dev));
            }
        }
    }

    pub fn grant(&mut self, g: Grant) {
        let before = self.current_grant(&g.resident_id, &g.key_id);
        self.audit(
            "grant.create",
            format!("{}/{}", g.resident_id, g.key_id),
            before.map(|b| json(&b)),
            Some(json(&g)),
        );
        self.mark_dirty(&g.key_id);
        self.grants
            .insert((g.resident_id.clone(), g.key_id.clone()), Some(g.clone()));
        self.t.changes.push(Change::Grant(g));
    }

    /// Remove a grant; a no-op (and no audit entry) if the resident does not hold the key.
    pub fn ungrant(&mut self, resident: &str, key: &str) -> bool {
        let Some(before) = self.current_grant(resident, key) else {
            return false;
        };
        self.audit(
            "grant.revoke",
            format!("{resident}/{key}"),
            Some(json(&before)),
            None,
        );
        self.mark_dirty(key);
        self.grants
            .insert((resident.to_string(), key.to_string()), None);
        self.t.changes.push(Change::Ungrant {
            resident_id: resident.to_string(),
            key_id: key.to_string(),
        });
        true
    }

    pub fn next_seq(&mut self) -> u64 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }

    /// The suggestion as this transition sees it.
    pub fn suggestion(&self, id: &str) -> Option<&Suggestion> {
        self.suggestions
            .get(id)
            .or_else(|| self.world.pending.get(id))
    }

    pub fn put_suggestion(&mut self, s: Suggestion) {
        let action = |created: bool, state| match (created, state) {
            (true, SuggestionState::Pending) => "suggestion.create",
            (false, SuggestionState::Pending) => "suggestion.update",
            (_, SuggestionState::Applied) => "suggestion.apply",
            (_, SuggestionState::Discarded) => "suggestion.discard",
            (_, SuggestionState::Superseded) => "suggestion.supersede",
        };
        // A suggestion born in this transition and changed again (held by the guard, applied
        // in automatic mode) is one decision: keep one change and one audit entry for it,
        // with no "before", rather than a trail of states nobody else ever saw.
        if let Some(&(change, entry)) = self.born.get(&s.id) {
            self.t.audit[entry].action = action(true, s.state).to_string();
            self.t.audit[entry].after = Some(json(&s));
            self.t.changes[change] = Change::Suggestion(s.clone());
            self.suggestions.insert(s.id.clone(), s);
            return;
        }
        let before = self.suggestion(&s.id).cloned();
        if before.is_none() {
            self.born
                .insert(s.id.clone(), (self.t.changes.len(), self.t.audit.len()));
        }
        self.audit(
            action(before.is_none(), s.state),
            s.id.clone(),
            before.map(|b| json(&b)),
            Some(json(&s)),
        );
        self.suggestions.insert(s.id.clone(), s.clone());
        self.t.changes.push(Change::Suggestion(s));
    }

    pub fn put_override(&mut self, o: Override) {
        let before = self.world.overrides.get(&o.resident_id).map(json);
        self.audit(
            "override.set",
            o.resident_id.clone(),
            before,
            Some(json(&o)),
        );
        self.t.changes.push(Change::Override(o));
    }

    pub fn clear_override(&mut self, resident_id: &str) {
        let before = self.world.overrides.get(resident_id).map(json);
        self.audit("override.clear", resident_id.to_string(), before, None);
        self.t.changes.push(Change::ClearOverride {
            resident_id: resident_id.to_string(),
        });
    }

    pub fn put_settings(&mut self, s: Settings) {
        let before = Some(json(&self.world.settings));
        self.audit("settings.update", "settings".into(), before, Some(json(&s)));
        self.t.changes.push(Change::Settings(s));
    }

    pub fn put_site(&mut self, site: Site) {
        let before = Some(json(self.world.site()));
        self.audit("site.replace", "site".into(), before, Some(json(&site)));
        // Any device of the old or the new site may see its credential set change.
        let mut devices = self.world.index().devices();
        devices.extend(SiteIndex::new(&site).devices());
        for d in devices {
            if self.dirty.insert(d.clone()) {
                self.t.changes.push(Change::DeviceDirty(d));
            }
        }
        self.t.changes.push(Change::Site(site));
    }

    /// The credentials as this transition sees them.
    pub fn credentials(&self, resident: &str) -> Option<&Credentials> {
        self.credentials
            .get(resident)
            .or_else(|| self.world.credentials.get(resident))
    }

    /// Upsert a resident's cards and PIN. The audit entry records formats and counts only.
    pub fn put_credentials(&mut self, c: Credentials) {
        let before = self.credentials(&c.resident_id).cloned();
        if before.as_ref() == Some(&c) {
            return;
        }
        self.audit(
            "credentials.update",
            c.resident_id.clone(),
            before.map(|b| json(&b.redacted())),
            Some(json(&c.redacted())),
        );
        // Every device the resident can open must pick up the new card or code.
        let keys: Vec<KeyId> = self
            .world
            .grants
            .of(&c.resident_id)
            .map(|g| g.key_id.clone())
            .collect();
        let pending: Vec<KeyId> = self
            .grants
            .iter()
            .filter(|((r, _), g)| r == &c.resident_id && g.is_some())
            .map(|((_, k), _)| k.clone())
            .collect();
        for k in keys.iter().chain(&pending) {
            self.mark_dirty(k);
        }
        self.credentials.insert(c.resident_id.clone(), c.clone());
        self.t.changes.push(Change::Credentials(c));
    }

    pub fn finish(mut self) -> Transition {
        if self.next_seq != self.world.next_seq {
            self.t.changes.push(Change::NextSeq(self.next_seq));
        }
        self.t
    }
}
