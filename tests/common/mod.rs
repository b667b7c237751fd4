//! Shared helpers for the rules tests: a small site and a world that applies what it decides.
#![allow(dead_code)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use leasegate::core::*;

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap()
}

pub fn mins(m: i64) -> DateTime<Utc> {
    t0() + Duration::minutes(m)
}

/// Units 4B, 5C, 2A; two auto-shared key sets (one shareable) and one manual-only key set.
pub fn site() -> Site {
    let unit = |u: &str, d: &str| site::UnitMap {
        pms_unit: u.into(),
        doors: vec![d.into()],
    };
    let door = |id: &str, dev: &str| site::Door {
        id: id.into(),
        device: Some(dev.into()),
    };
    let key = |id: &str, doors: &[&str], shareable, auto_share| site::KeySet {
        id: id.into(),
        name: id.replace('-', " "),
        doors: doors.iter().map(|d| d.to_string()).collect(),
        shareable,
        auto_share,
    };
    Site {
        units: vec![
            unit("4B", "unit-4b"),
            unit("5C", "unit-5c"),
            unit("2A", "unit-2a"),
        ],
        doors: vec![
            door("unit-4b", "lock-4b"),
            door("unit-5c", "lock-5c"),
            door("unit-2a", "lock-2a"),
            door("front-entrance", "panel-lobby"),
            door("elevator", "panel-lobby"),
            door("gym", "panel-amenities"),
            door("garage", "panel-amenities"),
        ],
        keys: vec![
            key(
                "resident-entrances",
                &["front-entrance", "elevator"],
                false,
                true,
            ),
            key("resident-amenities", &["gym"], true, true),
            key("garage", &["garage"], false, false),
        ],
    }
}

pub const COMMON: [&str; 2] = ["resident-amenities", "resident-entrances"];

pub fn entry(id: &str, unit: Option<&str>, status: &str) -> RosterEntry {
    RosterEntry {
        id: id.into(),
        name: format!("Resident {id}"),
        unit: unit.map(String::from),
        status: PmsStatus::parse(status),
    }
}

pub fn snapshot(at: DateTime<Utc>, entries: Vec<RosterEntry>) -> Snapshot {
    Snapshot {
        fetched_at: at,
        complete: true,
        residents: entries,
    }
}

/// A world plus the history a store would keep, applying every transition it makes.
pub struct Sim {
    pub world: World,
    pub policy: Policy,
    pub history: std::collections::BTreeMap<SuggestionId, SuggestionState>,
}

impl Sim {
    pub fn new(mode: Mode) -> Sim {
        Sim {
            world: World::new(site(), Settings { mode }),
            policy: Policy::default(),
            history: Default::default(),
        }
    }

    pub fn apply(&mut self, t: &Transition) {
        for s in t.suggestions() {
            if s.state != SuggestionState::Pending {
                self.history.insert(s.id.clone(), s.state);
            }
        }
        self.world.apply(t);
    }

    pub fn sync(&mut self, at: DateTime<Utc>, entries: Vec<RosterEntry>) -> Transition {
        let t = plan(&self.world, &snapshot(at, entries), &self.policy, at).expect("plan");
        self.apply(&t);
        t
    }

    pub fn approve(
        &mut self,
        ids: &[SuggestionId],
        at: DateTime<Utc>,
    ) -> Vec<(SuggestionId, ItemResult)> {
        let d = approve(
            &self.world,
            ids,
            &self.history,
            Actor::Person("manager-amy".into()),
            at,
        )
        .expect("approve");
        self.apply(&d.transition);
        d.results
    }

    pub fn discard(
        &mut self,
        ids: &[SuggestionId],
        at: DateTime<Utc>,
    ) -> Vec<(SuggestionId, ItemResult)> {
        let d = discard(
            &self.world,
            ids,
            &self.history,
            Actor::Person("manager-amy".into()),
            at,
        )
        .expect("discard");
        self.apply(&d.transition);
        d.results
    }

    /// Approve everything pending, in batches of at most 50, until nothing is left.
    pub fn approve_all(&mut self, at: DateTime<Utc>) {
        loop {
            let mut ids: Vec<&Suggestion> = self.world.pending.values().collect();
            ids.sort_by_key(|s| (s.action != Action::Grant, s.seq));
            let ids: Vec<SuggestionId> = ids
                .into_iter()
                .take(MAX_BATCH)
                .map(|s| s.id.clone())
                .collect();
            if ids.is_empty() {
                return;
            }
            let before = self.world.pending.len();
            self.approve(&ids, at);
            if self.world.pending.len() == before {
                return;
            }
        }
    }

    pub fn keys_of(&self, resident: &str) -> Vec<String> {
        self.world
            .grants_of(resident)
            .map(|g| g.key_id.clone())
            .collect()
    }

    pub fn pending_of(&self, resident: &str) -> Vec<&Suggestion> {
        self.world
            .pending
            .values()
            .filter(|s| s.resident_id == resident)
            .collect()
    }
}

pub fn created(t: &Transition) -> Vec<&Suggestion> {
    t.suggestions()
        .into_iter()
        .filter(|s| {
            matches!(s.state, SuggestionState::Pending | SuggestionState::Applied)
                && s.decided_by != Some(Actor::Sync)
        })
        .collect()
}

pub fn keys(list: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}
