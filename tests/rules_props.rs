//! Property tests over random sequences of roster snapshots, overrides, approvals and
//! discards (issue: foundation, part 3).

mod common;

use std::collections::{BTreeMap, BTreeSet};

use chrono::Duration;
use common::*;
use leasegate::core::*;
use proptest::prelude::*;

const PEOPLE: usize = 8;
const UNITS: [Option<&str>; 5] = [Some("4B"), Some("5C"), Some("2A"), Some("9Z"), None];
const STATUSES: [&str; 8] = [
    "applicant",
    "future",
    "current",
    "notice",
    "eviction",
    "past",
    "cancelled",
    "on-hold",
];

#[derive(Clone, Debug)]
enum Op {
    /// One roster: per person, absent or (unit, status); and whether it is complete.
    Sync(Vec<Option<(usize, usize)>>, bool),
    Override(usize, OverrideStatus),
    Approve(Vec<usize>),
    Discard(Vec<usize>),
    AssignGarage(usize),
    Mode(bool),
}

fn roster_strategy() -> impl Strategy<Value = Vec<Option<(usize, usize)>>> {
    // Mostly current residents, so that revocations and the guard get exercised.
    let status = prop_oneof![4 => Just(2usize), 1 => Just(3usize), 6 => 0usize..STATUSES.len()];
    let person = prop_oneof![1 => Just(None), 6 => (0usize..UNITS.len(), status).prop_map(Some)];
    prop::collection::vec(person, PEOPLE)
}

fn op_strategy(manual: bool) -> impl Strategy<Value = Op> {
    let ovr = prop_oneof![
        Just(OverrideStatus::Future),
        Just(OverrideStatus::Current),
        Just(OverrideStatus::Past)
    ];
    let picks = prop::collection::vec(0usize..64, 0..6);
    prop_oneof![
        5 => (roster_strategy(), prop::bool::weighted(0.8)).prop_map(|(r, c)| Op::Sync(r, c)),
        1 => (0..PEOPLE, ovr).prop_map(|(p, s)| Op::Override(p, s)),
        2 => picks.clone().prop_map(Op::Approve),
        1 => picks.prop_map(Op::Discard),
        (if manual { 1 } else { 0 }) => (0..PEOPLE).prop_map(Op::AssignGarage),
        (if manual { 1 } else { 0 }) => any::<bool>().prop_map(Op::Mode),
    ]
}

fn roster(spec: &[Option<(usize, usize)>]) -> Vec<RosterEntry> {
    spec.iter()
        .enumerate()
        .filter_map(|(i, p)| p.map(|(u, s)| entry(&format!("p{i}"), UNITS[u], STATUSES[s])))
        .collect()
}

fn pick(sim: &Sim, picks: &[usize]) -> Vec<SuggestionId> {
    let pending: Vec<&SuggestionId> = sim.world.pending.keys().collect();
    let mut out: Vec<SuggestionId> = picks
        .iter()
        .filter(|_| !pending.is_empty())
        .map(|i| pending[i % pending.len()].clone())
        .collect();
    out.dedup();
    out
}

struct Run {
    sim: Sim,
    at: chrono::DateTime<chrono::Utc>,
    last: Vec<RosterEntry>,
}

impl Run {
    fn new(mode: Mode) -> Run {
        Run {
            sim: Sim::new(mode),
            at: t0(),
            last: vec![],
        }
    }

    /// Apply one op and check the per-sync invariants.
    fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        self.at += Duration::minutes(7);
        let who = Actor::Person("amy".into());
        match op {
            Op::Sync(spec, complete) => {
                let entries = roster(spec);
                let snap = Snapshot {
                    fetched_at: self.at,
                    complete: *complete,
                    residents: entries.clone(),
                };
                let current_before = self.sim.world.current_residents();
                let t = plan(&self.sim.world, &snap, &self.sim.policy, self.at).unwrap();
                self.sim.apply(&t);
                self.last = entries;
                // No single sync revokes automatically more than the guard allows.
                let revoked: BTreeSet<&String> = t
                    .changes
                    .iter()
                    .filter_map(|c| match c {
                        Change::Ungrant { resident_id, .. } => Some(resident_id),
                        _ => None,
                    })
                    .collect();
                let limit = self.sim.policy.guard.limit(current_before);
                prop_assert!(
                    revoked.len() <= limit,
                    "revoked {} residents, limit {limit}",
                    revoked.len()
                );
                // Planning the same snapshot again creates nothing new.
                let again = plan(&self.sim.world, &snap, &self.sim.policy, self.at).unwrap();
                prop_assert!(
                    again.suggestions().is_empty(),
                    "second plan made {:?}",
                    again.suggestions()
                );
                let touches_grants = again
                    .changes
                    .iter()
                    .any(|c| matches!(c, Change::Grant(_) | Change::Ungrant { .. }));
                prop_assert!(!touches_grants, "second plan changed grants");
            }
            Op::Override(p, s) => {
                if let Ok(t) = set_override(&self.sim.world, &format!("p{p}"), *s, who, self.at) {
                    self.sim.apply(&t);
                }
            }
            Op::Approve(picks) => {
                let ids = pick(&self.sim, picks);
                if !ids.is_empty() {
                    self.sim.approve(&ids, self.at);
                }
            }
            Op::Discard(picks) => {
                let ids = pick(&self.sim, picks);
                if !ids.is_empty() {
                    self.sim.discard(&ids, self.at);
                }
            }
            Op::AssignGarage(p) => {
                if let Ok(t) = assign_key(&self.sim.world, &format!("p{p}"), "garage", who, self.at)
                {
                    self.sim.apply(&t);
                }
            }
            Op::Mode(auto) => {
                let mode = if *auto {
                    Mode::Automatic
                } else {
                    Mode::ApprovalRequired
                };
                let t = set_mode(&self.sim.world, mode, who, self.at);
                self.sim.apply(&t);
            }
        }
        Ok(())
    }
}

/// Unit key (if the unit is mapped) plus every auto-shared key.
fn lease_keys(world: &World, r: &Resident) -> BTreeSet<String> {
    let mut k: BTreeSet<String> = world.index().auto_shared().iter().cloned().collect();
    if let Some(u) = r
        .basis
        .unit
        .as_deref()
        .and_then(|u| world.index().unit_key(u))
    {
        k.insert(u.clone());
    }
    k
}

proptest! {
    // 256 cases by default; PROPTEST_CASES=5000 for a deeper search.

    #[test]
    fn after_applying_what_was_approved_no_past_or_future_resident_holds_a_grant(
        ops in prop::collection::vec(op_strategy(true), 1..40)
    ) {
        let mut run = Run::new(Mode::ApprovalRequired);
        for op in &ops {
            run.step(op)?;
        }
        // One more sync of the last roster brings back anything discarded, then a manager
        // approves everything pending.
        let last = run.last.clone();
        run.at += Duration::minutes(7);
        let at = run.at;
        run.sim.sync(at, last);
        run.sim.approve_all(at);
        for r in run.sim.world.residents.values() {
            if matches!(r.basis.standing, Standing::Past | Standing::Future) {
                let held: Vec<String> = run.sim.keys_of(&r.id);
                prop_assert!(held.is_empty(), "{} is {} and holds {:?}", r.id, r.basis.standing, held);
            }
        }
    }

    #[test]
    fn in_automatic_mode_a_current_resident_holds_exactly_their_lease_keys_unless_held(
        ops in prop::collection::vec(op_strategy(true), 1..40)
    ) {
        let mut run = Run::new(Mode::Automatic);
        for op in &ops {
            run.step(op)?;
            // Checked after every sync made in automatic mode, whatever came before it
            // (a backlog from approval mode included).
            if !matches!(op, Op::Sync(..)) || run.sim.world.settings.mode != Mode::Automatic {
                continue;
            }
            let world = &run.sim.world;
            let held_back: BTreeSet<&str> = world
                .pending
                .values()
                .filter(|s| s.hold.is_some())
                .map(|s| s.resident_id.as_str())
                .collect();
            for r in world.residents.values() {
                if r.basis.standing != Standing::Current || held_back.contains(r.id.as_str()) {
                    continue;
                }
                // Keys assigned by hand come on top of the lease keys.
                let held: BTreeSet<String> = world
                    .grants_of(&r.id)
                    .filter(|g| g.source == GrantSource::Automatic)
                    .map(|g| g.key_id.clone())
                    .collect();
                prop_assert_eq!(&held, &lease_keys(world, r), "resident {}", r.id);
            }
        }
    }

    #[test]
    fn pending_suggestions_always_match_their_residents_basis(
        ops in prop::collection::vec(op_strategy(true), 1..40)
    ) {
        let mut run = Run::new(Mode::ApprovalRequired);
        for op in &ops {
            run.step(op)?;
            if !matches!(op, Op::Sync(..)) {
                continue;
            }
            let world = &run.sim.world;
            let mut per_key: BTreeMap<(&str, Option<&str>), usize> = BTreeMap::new();
            for s in world.pending.values() {
                let r = &world.residents[&s.resident_id];
                if r.basis.standing != Standing::Unknown {
                    prop_assert_eq!(&s.basis, &r.basis, "suggestion {} outlived its basis", s.id);
                }
                *per_key.entry((s.resident_id.as_str(), s.key.as_deref())).or_default() += 1;
            }
            // Never two live suggestions for the same resident and key.
            prop_assert!(per_key.values().all(|n| *n == 1), "{per_key:?}");
        }
    }
}
