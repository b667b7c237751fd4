//! Reconciliation: a roster snapshot in, suggestions (and, in automatic mode, grants) out.
//!
//! The rules are DESIGN §1. The decisions this module takes where the seed is silent:
//! - Absence from a snapshot never revokes: the resident is marked missing and an empty
//!   roster raises an alert.
//! - A suggestion is kept while its basis (standing and, for current residents, unit) is
//!   unchanged and it still describes a needed change; otherwise it is superseded.
//! - A discarded grant is not suggested again until the basis changes. A discarded
//!   revocation is suggested again on the next sync: declining to take access away must be
//!   done with an override, never silently.
//! - In a unit change each revocation names the new unit's grant in `after`; it is applied
//!   only once that grant is applied or no longer pending.

use std::collections::{BTreeMap, BTreeSet};

use chrono::Duration;
use serde::{Deserialize, Serialize};

use super::world::{Transition, TxBuilder, World};
use super::{site, types::*, CoreError};

/// How the gateway treats an eviction-pending resident.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvictionPolicy {
    /// Suggest revoking every key, held for a person even in automatic mode.
    #[default]
    Hold,
    /// Treat as Past.
    Revoke,
    /// Treat as Current.
    Keep,
}

/// The mass-revocation guard: a sync that would revoke more than `max(min, percent %)` of the
/// current residents revokes nothing automatically.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Guard {
    pub min: usize,
    pub percent: f64,
}

impl Default for Guard {
    fn default() -> Self {
        Guard {
            min: 3,
            percent: 5.0,
        }
    }
}

impl Guard {
    pub fn limit(&self, current_residents: usize) -> usize {
        let pct = (current_residents as f64 * self.percent / 100.0).floor() as usize;
        self.min.max(pct)
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Policy {
    pub activation_delay: Duration,
    pub eviction: EvictionPolicy,
    pub guard: Guard,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            activation_delay: Duration::minutes(15),
            eviction: EvictionPolicy::Hold,
            guard: Guard::default(),
        }
    }
}

/// A normalized roster as a PMS adapter produced it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub fetched_at: Timestamp,
    /// A complete roster (absence is noted) or an incremental one (only changes).
    pub complete: bool,
    pub residents: Vec<RosterEntry>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RosterEntry {
    pub id: ResidentId,
    pub name: String,
    pub unit: Option<String>,
    pub status: PmsStatus,
}

/// Whether a PMS status ends a manager's override: the PMS's standing moved on from what
/// it was when the override was set. An unknown status is no news, and neither is a change
/// within one standing (current to notice).
pub fn override_ended(o: &Override, status: &PmsStatus) -> bool {
    let now = status.standing();
    now != Standing::Unknown && now != o.pms_status_at.standing()
}

/// The standing of a resident given the PMS status, an override and the eviction policy.
pub fn effective_standing(status: &PmsStatus, ov: Option<&Override>, policy: &Policy) -> Standing {
    if let Some(o) = ov {
        if !override_ended(o, status) {
            return o.status.standing();
        }
    }
    match status.standing() {
        Standing::Eviction => match policy.eviction {
            EvictionPolicy::Hold => Standing::Eviction,
            EvictionPolicy::Revoke => Standing::Past,
            EvictionPolicy::Keep => Standing::Current,
        },
        s => s,
    }
}

/// When grants made under the resident's current basis start.
pub(crate) fn grants_start(r: &Resident, policy: &Policy) -> Timestamp {
    r.grants_from.unwrap_or_else(|| {
        r.basis_since
            .checked_add_signed(policy.activation_delay)
            .unwrap_or(r.basis_since)
    })
}

pub(crate) fn basis_for(standing: Standing, unit: Option<&String>) -> Basis {
    // The unit only matters while keys follow it; a future resident's unit change is noise.
    Basis {
        standing,
        unit: if standing == Standing::Current {
            unit.cloned()
        } else {
            None
        },
    }
}

/// Plan a sync: the suggestions a snapshot calls for, applied at once in automatic mode
/// unless held.
pub fn plan(
    world: &World,
    snapshot: &Snapshot,
    policy: &Policy,
    now: Timestamp,
) -> Result<Transition, CoreError> {
    let mut ids = BTreeSet::new();
    for e in &snapshot.residents {
        if !ids.insert(e.id.as_str()) {
            return Err(CoreError::DuplicateResident(e.id.clone()));
        }
    }
    let mut pending_by_resident: BTreeMap<&str, Vec<&Suggestion>> = BTreeMap::new();
    for s in world.pending.values() {
        pending_by_resident
            .entry(s.resident_id.as_str())
            .or_default()
            .push(s);
    }

    let mut b = TxBuilder::new(world, Actor::Sync, now);
    let mut fresh: Vec<SuggestionId> = Vec::new();
    for e in &snapshot.residents {
        let prev = world.residents.get(&e.id);
        let mut ov = world.overrides.get(&e.id);
        if let Some(o) = ov {
            if override_ended(o, &e.status) {
                b.clear_override(&e.id);
                ov = None;
            }
        }
        if e.status.standing() == Standing::Unknown {
            b.alert(Alert::UnknownStatus {
                resident_id: e.id.clone(),
                status: e.status.to_string(),
            });
        }
        let standing = effective_standing(&e.status, ov, policy);
        let pending = pending_by_resident
            .get(e.id.as_str())
            .cloned()
            .unwrap_or_default();
        if standing == Standing::Unknown {
            // The unknown status changes nothing: the last known basis stays in force.
            let r = match prev {
                Some(p) => Resident {
                    name: e.name.clone(),
                    unit: e.unit.clone(),
                    pms_status: e.status.clone(),
                    missing_since: None,
                    ..p.clone()
                },
                None => Resident {
                    id: e.id.clone(),
                    name: e.name.clone(),
                    unit: e.unit.clone(),
                    pms_status: e.status.clone(),
                    basis: basis_for(Standing::Unknown, None),
                    basis_since: now,
                    grants_from: None,
                    first_seen: now,
                    missing_since: None,
                    declined: BTreeSet::new(),
                },
            };
            b.put_resident(r.clone());
            if r.basis.standing != Standing::Unknown {
                // Hold the line on the last known basis (a discarded revocation comes back).
                let from = grants_start(&r, policy);
                fresh.extend(reconcile_resident(&mut b, &r, false, &pending, from));
            }
            continue;
        }
        let basis = basis_for(standing, e.unit.as_ref());
        let changed = prev.is_none_or(|p| p.basis != basis);
        // A current resident moving between units gets the new unit at once: the old one
        // closes now, and a delay would lock them out of both.
        let moving = changed
            && standing == Standing::Current
            && prev.is_some_and(|p| p.basis.standing == Standing::Current);
        let resident = Resident {
            id: e.id.clone(),
            name: e.name.clone(),
            unit: e.unit.clone(),
            pms_status: e.status.clone(),
            basis_since: match prev {
                Some(p) if !changed => p.basis_since,
                _ => now,
            },
            grants_from: match prev {
                Some(p) if !changed => p.grants_from,
                _ if moving => Some(now),
                _ => None,
            },
            first_seen: prev.map_or(now, |p| p.first_seen),
            missing_since: None,
            declined: match prev {
                Some(p) if !changed => p.declined.clone(),
                _ => BTreeSet::new(),
            },
            basis,
        };
        b.put_resident(resident.clone());
        let from = grants_start(&resident, policy);
        fresh.extend(reconcile_resident(
            &mut b, &resident, changed, &pending, from,
        ));
    }

    // Residents this snapshot does not mention keep their last known basis: absence is not
    // a status. They are still reconciled, so that a site change reaches them and a
    // revocation a manager discarded comes back even after the PMS stops listing them.
    for r in world.residents.values() {
        if ids.contains(r.id.as_str()) {
            continue;
        }
        let mut r = r.clone();
        if snapshot.complete && r.missing_since.is_none() {
            r.missing_since = Some(now);
            b.put_resident(r.clone());
        }
        if r.basis.standing != Standing::Unknown {
            let pending = pending_by_resident
                .get(r.id.as_str())
                .cloned()
                .unwrap_or_default();
            let from = grants_start(&r, policy);
            fresh.extend(reconcile_resident(&mut b, &r, false, &pending, from));
        }
    }
    if snapshot.complete && snapshot.residents.is_empty() && !world.residents.is_empty() {
        b.alert(Alert::EmptyRoster {
            known_residents: world.residents.len(),
        });
    }

    // In automatic mode everything still pending and valid is applied, including a backlog
    // left from approval mode; in approval mode only this sync's suggestions are looked at
    // (to be held and alerted on). Either way the guard counts them first.
    let candidates: Vec<SuggestionId> = if world.settings.mode == Mode::Automatic {
        world
            .pending
            .keys()
            .filter(|id| {
                b.suggestion(id)
                    .is_some_and(|s| s.state == SuggestionState::Pending)
            })
            .chain(fresh.iter())
            .cloned()
            .collect()
    } else {
        fresh
    };
    apply_guard(&mut b, &candidates, policy);
    if world.settings.mode == Mode::Automatic {
        b.actor = Actor::Automatic;
        apply_unheld(&mut b, &candidates);
        b.actor = Actor::Sync;
    }
    Ok(b.finish())
}

/// Hold every candidate revocation when too many residents would lose keys at once.
fn apply_guard(b: &mut TxBuilder, candidates: &[SuggestionId], policy: &Policy) {
    let revoking: Vec<&Suggestion> = candidates
        .iter()
        .filter_map(|id| b.suggestion(id))
        .filter(|s| s.action == Action::Revoke && s.hold.is_none())
        .collect();
    let residents: BTreeSet<&str> = revoking.iter().map(|s| s.resident_id.as_str()).collect();
    let current = b.world.current_residents();
    let limit = policy.guard.limit(current);
    if residents.len() <= limit {
        return;
    }
    let held: Vec<Suggestion> = revoking
        .into_iter()
        .map(|s| Suggestion {
            hold: Some(Hold::Guard),
            ..s.clone()
        })
        .collect();
    b.alert(Alert::GuardTripped {
        would_revoke: residents.len(),
        limit,
        current_residents: current,
    });
    for s in held {
        b.put_suggestion(s);
    }
}

/// Apply the given pending suggestions that no hold keeps back: grants first, so a moving
/// resident gets the new unit before losing the old one.
pub(crate) fn apply_unheld(b: &mut TxBuilder, ids: &[SuggestionId]) {
    let mut todo: Vec<Suggestion> = ids
        .iter()
        .filter_map(|id| b.suggestion(id))
        .filter(|s| s.state == SuggestionState::Pending && s.hold.is_none())
        .cloned()
        .collect();
    todo.sort_by_key(|s| (apply_order(s.action), s.seq));
    for s in todo {
        if blocked_by(b, &s, &BTreeSet::new()).is_none() {
            apply_suggestion(b, s);
        }
    }
}

pub(crate) fn apply_order(a: Action) -> u8 {
    match a {
        Action::Grant => 0,
        Action::None => 1,
        Action::Revoke => 2,
    }
}

/// The grant a revocation still waits for, if it is pending and not approved alongside.
pub(crate) fn blocked_by(
    b: &TxBuilder,
    s: &Suggestion,
    approving: &BTreeSet<SuggestionId>,
) -> Option<SuggestionId> {
    let after = s.after.as_ref()?;
    let still_pending = b
        .suggestion(after)
        .is_some_and(|g| g.state == SuggestionState::Pending);
    (still_pending && !approving.contains(after)).then(|| after.clone())
}

pub(crate) fn apply_suggestion(b: &mut TxBuilder, mut s: Suggestion) {
    match (s.action, &s.key) {
        (Action::Grant, Some(key)) if !b.holds(&s.resident_id, key) => {
            let g = Grant {
                resident_id: s.resident_id.clone(),
                key_id: key.clone(),
                source: GrantSource::Automatic,
                valid_from: s.valid_from.unwrap_or(b.now),
                granted_at: b.now,
                granted_by: b.actor.clone(),
                suggestion: Some(s.id.clone()),
            };
            b.grant(g);
        }
        (Action::Revoke, Some(key)) => {
            b.ungrant(&s.resident_id, key);
        }
        _ => {}
    }
    s.state = SuggestionState::Applied;
    s.decided_at = Some(b.now);
    s.decided_by = Some(b.actor.clone());
    b.put_suggestion(s);
}

/// Bring one resident's suggestions in line with their basis. Returns the ids created.
pub(crate) fn reconcile_resident(
    b: &mut TxBuilder,
    r: &Resident,
    basis_changed: bool,
    pending: &[&Suggestion],
    valid_from: Timestamp,
) -> Vec<SuggestionId> {
    let idx = b.world.index();
    let held: BTreeMap<&KeyId, &Grant> = b.world.grants_of(&r.id).map(|g| (&g.key_id, g)).collect();
    let mut desired: BTreeSet<KeyId> = BTreeSet::new();
    if r.basis.standing == Standing::Current {
        desired.extend(idx.auto_shared().iter().cloned());
        // The basis, not the latest PMS row: an unknown status must not move keys either.
        match r.basis.unit.as_deref().and_then(|u| idx.unit_key(u)) {
            Some(k) => {
                desired.insert(k.clone());
            }
            None => b.alert(Alert::UnmappedUnit {
                resident_id: r.id.clone(),
                unit: r.basis.unit.clone(),
            }),
        }
        desired.extend(
            held.values()
                .filter(|g| g.source == GrantSource::Manual)
                .map(|g| g.key_id.clone()),
        );
    }
    let mut to_grant: BTreeSet<KeyId> = desired
        .iter()
        .filter(|k| !held.contains_key(k))
        .cloned()
        .collect();
    let mut to_revoke: BTreeSet<KeyId> = held
        .keys()
        .filter(|k| !desired.contains(**k))
        .map(|k| (*k).clone())
        .collect();

    let mut kept = 0usize;
    let mut kept_grants: BTreeMap<KeyId, SuggestionId> = BTreeMap::new();
    for s in pending {
        let still_valid = s.basis == r.basis
            && match (s.action, &s.key) {
                (Action::Grant, Some(k)) => to_grant.remove(k),
                (Action::Revoke, Some(k)) => to_revoke.remove(k),
                (Action::None, _) => true,
                _ => false,
            };
        if still_valid {
            kept += 1;
            if let (Action::Grant, Some(k)) = (s.action, &s.key) {
                kept_grants.insert(k.clone(), s.id.clone());
            }
        } else {
            b.put_suggestion(Suggestion {
                state: SuggestionState::Superseded,
                decided_at: Some(b.now),
                decided_by: Some(b.actor.clone()),
                ..(*s).clone()
            });
        }
    }
    // A manager's discard holds back a grant in approval mode only: automatic mode follows the
    // lease without review, and keeping someone out is an override's job.
    if b.world.settings.mode == Mode::ApprovalRequired {
        to_grant.retain(|k| !r.declined.contains(k));
    }

    let mut created = Vec::new();
    let status_text = match r.basis.standing {
        Standing::Current => match &r.basis.unit {
            Some(u) => format!("lease {} in unit {u}", r.pms_status),
            None => format!("lease {} with no unit", r.pms_status),
        },
        _ => format!("lease {}", r.pms_status),
    };
    let unit_key = r
        .basis
        .unit
        .as_deref()
        .and_then(|u| idx.unit_key(u))
        .cloned();
    let mut new_unit_grant = unit_key.as_ref().and_then(|k| kept_grants.get(k).cloned());
    for k in &to_grant {
        let is_unit = Some(k) == unit_key.as_ref();
        let reason = if is_unit {
            format!("{status_text}: unit key")
        } else {
            format!("{status_text}: shared with every current resident")
        };
        let id = new_suggestion(
            b,
            r,
            Draft {
                key: Some(k.clone()),
                action: Action::Grant,
                valid_from: Some(valid_from),
                reason,
                hold: None,
                after: None,
            },
        );
        if is_unit {
            new_unit_grant = Some(id.clone());
        }
        created.push(id);
    }
    for k in &to_revoke {
        let (reason, hold, after) = match r.basis.standing {
            Standing::Current if unit_key.is_none() && k.starts_with(site::UNIT_KEY_PREFIX) => (
                format!("{status_text}: unit unknown, held for a manager"),
                Some(Hold::UnknownUnit),
                None,
            ),
            Standing::Current => (
                format!("{status_text}: key no longer follows the lease"),
                None,
                new_unit_grant.clone(),
            ),
            Standing::Eviction => (
                format!("{status_text}: eviction pending, held for a manager"),
                Some(Hold::Eviction),
                None,
            ),
            _ => (format!("{status_text}: all keys revoked"), None, None),
        };
        let draft = Draft {
            key: Some(k.clone()),
            action: Action::Revoke,
            valid_from: None,
            reason,
            hold,
            after,
        };
        created.push(new_suggestion(b, r, draft));
    }
    if basis_changed && created.is_empty() && kept == 0 {
        let reason = match r.basis.standing {
            Standing::Current => format!("{status_text}: keys unchanged"),
            _ => format!("{status_text}: no access"),
        };
        let draft = Draft {
            key: None,
            action: Action::None,
            valid_from: None,
            reason,
            hold: None,
            after: None,
        };
        created.push(new_suggestion(b, r, draft));
    }
    created
}

struct Draft {
    key: Option<KeyId>,
    action: Action,
    valid_from: Option<Timestamp>,
    reason: String,
    hold: Option<Hold>,
    after: Option<SuggestionId>,
}

fn new_suggestion(b: &mut TxBuilder, r: &Resident, d: Draft) -> SuggestionId {
    let seq = b.next_seq();
    let s = Suggestion {
        id: Suggestion::id_for(seq),
        seq,
        resident_id: r.id.clone(),
        resident_name: r.name.clone(),
        unit: r.unit.clone(),
        key: d.key,
        action: d.action,
        valid_from: d.valid_from,
        created_at: b.now,
        reason: d.reason,
        basis: r.basis.clone(),
        state: SuggestionState::Pending,
        hold: d.hold,
        after: d.after,
        decided_at: None,
        decided_by: None,
    };
    let id = s.id.clone();
    b.put_suggestion(s);
    id
}
