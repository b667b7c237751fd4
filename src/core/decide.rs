//! Decisions people make: approve, discard, override a status, assign a key by hand,
//! change the mode, replace the site data. Each returns a [`Transition`] (or a refusal).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::plan::{apply_order, apply_suggestion, basis_for, blocked_by, reconcile_resident};
use super::site::Site;
use super::world::{Transition, TxBuilder, World};
use super::{types::*, CoreError};

/// The most suggestions one approve or discard request may name (the seed's "up to 50").
pub const MAX_BATCH: usize = 50;

/// What became of one id in an approve or discard request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ItemResult {
    Applied,
    Discarded,
    NotFound,
    /// Its basis changed before the decision; it was never applied.
    Superseded,
    /// Already applied or discarded by an earlier decision.
    AlreadyDecided {
        state: SuggestionState,
    },
    /// A unit change's revocation waits until the new unit's grant is decided.
    Blocked {
        after: SuggestionId,
    },
    /// The id appeared earlier in the same request.
    Duplicate,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub transition: Transition,
    /// One result per requested id, in request order.
    pub results: Vec<(SuggestionId, ItemResult)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verb {
    Approve,
    Discard,
}

/// Approve up to [`MAX_BATCH`] suggestions. `decided` gives the state of requested ids that
/// are no longer pending (the caller looks them up in the store's history).
pub fn approve(
    world: &World,
    ids: &[SuggestionId],
    decided: &BTreeMap<SuggestionId, SuggestionState>,
    actor: Actor,
    now: Timestamp,
) -> Result<Decision, CoreError> {
    decide(world, ids, decided, actor, now, Verb::Approve)
}

/// Discard up to [`MAX_BATCH`] suggestions: they leave the pending list unapplied.
pub fn discard(
    world: &World,
    ids: &[SuggestionId],
    decided: &BTreeMap<SuggestionId, SuggestionState>,
    actor: Actor,
    now: Timestamp,
) -> Result<Decision, CoreError> {
    decide(world, ids, decided, actor, now, Verb::Discard)
}

fn decide(
    world: &World,
    ids: &[SuggestionId],
    decided: &BTreeMap<SuggestionId, SuggestionState>,
    actor: Actor,
    now: Timestamp,
    verb: Verb,
) -> Result<Decision, CoreError> {
    if ids.is_empty() || ids.len() > MAX_BATCH {
        return Err(CoreError::BatchSize { got: ids.len() });
    }
    let mut b = TxBuilder::new(world, actor, now);
    let mut results: Vec<Option<ItemResult>> = vec![None; ids.len()];
    let mut seen = BTreeSet::new();
    let mut todo: Vec<(usize, Suggestion)> = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        if !seen.insert(id) {
            results[i] = Some(ItemResult::Duplicate);
            continue;
        }
        match (world.pending.get(id), decided.get(id)) {
            (Some(s), _) => todo.push((i, s.clone())),
            (None, Some(SuggestionState::Superseded)) => results[i] = Some(ItemResult::Superseded),
            (None, Some(state)) => results[i] = Some(ItemResult::AlreadyDecided { state: *state }),
            (None, None) => results[i] = Some(ItemResult::NotFound),
        }
    }
    match verb {
        Verb::Approve => {
            todo.sort_by_key(|(_, s)| (apply_order(s.action), s.seq));
            let approving: BTreeSet<SuggestionId> =
                todo.iter().map(|(_, s)| s.id.clone()).collect();
            for (i, s) in todo {
                // A grant this batch discards or leaves pending must not be jumped over.
                results[i] = Some(match blocked_by(&b, &s, &approving) {
                    Some(after) => ItemResult::Blocked { after },
                    None => {
                        apply_suggestion(&mut b, s);
                        ItemResult::Applied
                    }
                });
            }
        }
        Verb::Discard => {
            for (i, s) in todo {
                if let (Action::Grant, Some(key)) = (s.action, &s.key) {
                    if let Some(r) = b.resident(&s.resident_id).cloned() {
                        let mut r = r;
                        r.declined.insert(key.clone());
                        b.put_resident(r);
                    }
                }
                b.put_suggestion(Suggestion {
                    state: SuggestionState::Discarded,
                    decided_at: Some(now),
                    decided_by: Some(b.actor.clone()),
                    ..s
                });
                results[i] = Some(ItemResult::Discarded);
            }
        }
    }
    Ok(Decision {
        transition: b.finish(),
        results: ids
            .iter()
            .cloned()
            .zip(
                results
                    .into_iter()
                    .map(|r| r.unwrap_or(ItemResult::NotFound)),
            )
            .collect(),
    })
}

/// A manager sets a resident's status by hand (the seed's manual override table). The
/// resulting changes apply at once, whatever the mode: the manager is the approval.
pub fn set_override(
    world: &World,
    resident_id: &str,
    status: OverrideStatus,
    actor: Actor,
    now: Timestamp,
) -> Result<Transition, CoreError> {
    let r = world
        .residents
        .get(resident_id)
        .ok_or_else(|| CoreError::UnknownResident(resident_id.to_string()))?;
    let mut b = TxBuilder::new(world, actor, now);
    b.put_override(Override {
        resident_id: r.id.clone(),
        status,
        pms_status_at: r.pms_status.clone(),
        set_by: b.actor.clone(),
        set_at: now,
    });
    let basis = basis_for(status.standing(), r.unit.as_ref());
    let changed = basis != r.basis;
    let resident = Resident {
        basis_since: if changed { now } else { r.basis_since },
        grants_from: if changed { Some(now) } else { r.grants_from },
        declined: if changed {
            BTreeSet::new()
        } else {
            r.declined.clone()
        },
        basis,
        ..r.clone()
    };
    b.put_resident(resident.clone());
    let pending: Vec<&Suggestion> = world
        .pending
        .values()
        .filter(|s| s.resident_id == resident_id)
        .collect();
    // A person set this status: keys start now, not after the activation delay.
    let mut ids = reconcile_resident(&mut b, &resident, changed, &pending, now);
    ids.extend(pending.iter().map(|s| s.id.clone()));
    ids.sort_by_key(|id| {
        b.suggestion(id)
            .map(|s| (apply_order(s.action), s.seq))
            .unwrap_or((u8::MAX, 0))
    });
    for id in ids {
        if let Some(s) = b.suggestion(&id).cloned() {
            if s.state == SuggestionState::Pending {
                apply_suggestion(&mut b, s);
            }
        }
    }
    Ok(b.finish())
}

/// End a manager's override early. Access follows the PMS status again from the next sync
/// (which reconciles the resident like any other); nothing changes at once.
pub fn clear_override(
    world: &World,
    resident_id: &str,
    actor: Actor,
    now: Timestamp,
) -> Result<Transition, CoreError> {
    if !world.overrides.contains_key(resident_id) {
        return Err(CoreError::NoOverride(resident_id.to_string()));
    }
    let mut b = TxBuilder::new(world, actor, now);
    b.clear_override(resident_id);
    Ok(b.finish())
}

/// Assign a key by hand to a current resident. It stays while they are current and goes
/// with everything else when they become Past or Future.
pub fn assign_key(
    world: &World,
    resident_id: &str,
    key_id: &str,
    actor: Actor,
    now: Timestamp,
) -> Result<Transition, CoreError> {
    let r = world
        .residents
        .get(resident_id)
        .ok_or_else(|| CoreError::UnknownResident(resident_id.to_string()))?;
    if world.index().key(key_id).is_none() {
        return Err(CoreError::UnknownKey(key_id.to_string()));
    }
    if r.basis.standing != Standing::Current {
        return Err(CoreError::NotCurrent {
            resident: resident_id.to_string(),
            standing: r.basis.standing,
        });
    }
    if world.holds(resident_id, key_id) {
        return Err(CoreError::AlreadyHeld {
            resident: resident_id.to_string(),
            key: key_id.to_string(),
        });
    }
    let mut b = TxBuilder::new(world, actor, now);
    let g = Grant {
        resident_id: resident_id.to_string(),
        key_id: key_id.to_string(),
        source: GrantSource::Manual,
        valid_from: now,
        granted_at: now,
        granted_by: b.actor.clone(),
        suggestion: None,
    };
    b.grant(g);
    Ok(b.finish())
}

/// Take a key back by hand.
pub fn unassign_key(
    world: &World,
    resident_id: &str,
    key_id: &str,
    actor: Actor,
    now: Timestamp,
) -> Result<Transition, CoreError> {
    let mut b = TxBuilder::new(world, actor, now);
    if !b.ungrant(resident_id, key_id) {
        return Err(CoreError::NotHeld {
            resident: resident_id.to_string(),
            key: key_id.to_string(),
        });
    }
    Ok(b.finish())
}

/// Switch between approval-required and automatic. Suggestions already pending stay
/// pending: switching to automatic never applies a backlog nobody reviewed.
pub fn set_mode(world: &World, mode: Mode, actor: Actor, now: Timestamp) -> Transition {
    let mut b = TxBuilder::new(world, actor, now);
    if world.settings.mode != mode {
        b.put_settings(Settings { mode });
    }
    b.finish()
}

/// Replace the site data (units, doors, key sets). Grants follow at the next sync.
pub fn replace_site(
    world: &World,
    site: Site,
    actor: Actor,
    now: Timestamp,
) -> Result<Transition, CoreError> {
    let problems = site.problems();
    if !problems.is_empty() {
        return Err(CoreError::InvalidSite(problems));
    }
    let mut b = TxBuilder::new(world, actor, now);
    if world.site() != &site {
        b.put_site(site);
    }
    Ok(b.finish())
}
