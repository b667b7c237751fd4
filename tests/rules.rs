//! The access rules, one test per row of the seed's tables (DESIGN §1), then the rules a
//! safe gateway adds.

mod common;

use chrono::Duration;
use common::*;
use leasegate::core::*;

fn ids_of(list: &[&Suggestion]) -> Vec<SuggestionId> {
    list.iter().map(|s| s.id.clone()).collect()
}

// ---- The ePMS status table ----

#[test]
fn epms_future_resident_no_access_assigned() {
    let mut sim = Sim::new(Mode::Automatic);
    let t = sim.sync(
        t0(),
        vec![
            entry("t-1", Some("4B"), "future"),
            entry("t-2", Some("5C"), "applicant"),
        ],
    );
    assert!(sim.world.grants.is_empty());
    let made = created(&t);
    assert_eq!(made.len(), 2);
    assert!(made
        .iter()
        .all(|s| s.action == Action::None && s.color() == Color::Grey));
}

#[test]
fn epms_current_resident_access_provisioned_based_on_unit_in_pms() {
    let mut sim = Sim::new(Mode::ApprovalRequired);
    let t = sim.sync(t0(), vec![entry("t-1", Some("4B"), "current")]);
    let made = created(&t);
    assert!(made
        .iter()
        .all(|s| s.action == Action::Grant && s.color() == Color::Green));
    let mut got: Vec<String> = made.iter().filter_map(|s| s.key.clone()).collect();
    got.sort();
    assert_eq!(
        got,
        keys(&["resident-amenities", "resident-entrances", "unit:4B"])
    );
    assert!(
        sim.world.grants.is_empty(),
        "approval mode grants nothing before a manager approves"
    );
    sim.approve(&ids_of(&made), mins(1));
    let mut held = sim.keys_of("t-1");
    held.sort();
    assert_eq!(
        held,
        keys(&["resident-amenities", "resident-entrances", "unit:4B"])
    );
}

#[test]
fn epms_unit_change_access_updated_based_on_new_unit_assignment() {
    let mut sim = Sim::new(Mode::Automatic);
    sim.sync(t0(), vec![entry("t-1", Some("4B"), "current")]);
    let t = sim.sync(mins(60), vec![entry("t-1", Some("5C"), "current")]);
    let mut held = sim.keys_of("t-1");
    held.sort();
    assert_eq!(
        held,
        keys(&["resident-amenities", "resident-entrances", "unit:5C"])
    );
    // New keys before old ones: the grant is written before the revocation in the change log.
    let pos = |f: &dyn Fn(&Change) -> bool| t.changes.iter().position(f).unwrap();
    let grant = pos(&|c| matches!(c, Change::Grant(g) if g.key_id == "unit:5C"));
    let revoke = pos(&|c| matches!(c, Change::Ungrant { key_id, .. } if key_id == "unit:4B"));
    assert!(
        grant < revoke,
        "the new unit is granted before the old one is revoked"
    );
    // The common-area keys were never touched.
    assert!(!t
        .changes
        .iter()
        .any(|c| matches!(c, Change::Ungrant { key_id, .. } if COMMON.contains(&key_id.as_str()))));
}

#[test]
fn epms_past_resident_all_access_revoked() {
    let mut sim = Sim::new(Mode::Automatic);
    sim.sync(t0(), vec![entry("t-1", Some("4B"), "current")]);
    sim.world.apply(
        &assign_key(
            &sim.world,
            "t-1",
            "garage",
            Actor::Person("amy".into()),
            mins(1),
        )
        .unwrap(),
    );
    assert_eq!(sim.keys_of("t-1").len(), 4);
    let t = sim.sync(mins(60), vec![entry("t-1", Some("4B"), "past")]);
    assert!(
        sim.keys_of("t-1").is_empty(),
        "manual and automatic keys are all revoked"
    );
    assert!(created(&t)
        .iter()
        .all(|s| s.action == Action::Revoke && s.color() == Color::Red));
}

// ---- The manual override table ----

#[test]
fn override_future_resident_to_current_resident_assigns_keys_based_on_epms_unit() {
    let mut sim = Sim::new(Mode::ApprovalRequired);
    sim.sync(t0(), vec![entry("t-1", Some("5C"), "future")]);
    let t = set_override(
        &sim.world,
        "t-1",
        OverrideStatus::Current,
        Actor::Person("amy".into()),
        mins(5),
    )
    .unwrap();
    sim.apply(&t);
    let mut held = sim.keys_of("t-1");
    held.sort();
    assert_eq!(
        held,
        keys(&["resident-amenities", "resident-entrances", "unit:5C"])
    );
    // A person made the decision: it applies at once, even in approval mode, from now.
    assert!(sim.world.grants_of("t-1").all(|g| g.valid_from == mins(5)));
    assert!(sim.pending_of("t-1").is_empty());
}

#[test]
fn override_current_resident_to_past_resident_revokes_all_keys_manual_and_automatic() {
    let mut sim = Sim::new(Mode::Automatic);
    sim.sync(t0(), vec![entry("t-1", Some("4B"), "current")]);
    sim.apply(
        &assign_key(
            &sim.world,
            "t-1",
            "garage",
            Actor::Person("amy".into()),
            mins(1),
        )
        .unwrap(),
    );
    let t = set_override(
        &sim.world,
        "t-1",
        OverrideStatus::Past,
        Actor::Person("amy".into()),
        mins(5),
    )
    .unwrap();
    sim.apply(&t);
    assert!(sim.keys_of("t-1").is_empty());
}

#[test]
fn override_current_resident_to_future_resident_revokes_all_keys_manual_and_automatic() {
    let mut sim = Sim::new(Mode::ApprovalRequired);
    sim.sync(t0(), vec![entry("t-1", Some("4B"), "current")]);
    sim.approve_all(mins(1));
    sim.apply(
        &assign_key(
            &sim.world,
            "t-1",
            "garage",
            Actor::Person("amy".into()),
            mins(2),
        )
        .unwrap(),
    );
    assert_eq!(sim.keys_of("t-1").len(), 4);
    let t = set_override(
        &sim.world,
        "t-1",
        OverrideStatus::Future,
        Actor::Person("amy".into()),
        mins(5),
    )
    .unwrap();
    sim.apply(&t);
    assert!(sim.keys_of("t-1").is_empty());
}

#[test]
fn an_override_holds_until_the_pms_status_changes_again() {
    let mut sim = Sim::new(Mode::Automatic);
    sim.sync(t0(), vec![entry("t-1", Some("4B"), "future")]);
    sim.apply(
        &set_override(
            &sim.world,
            "t-1",
            OverrideStatus::Current,
            Actor::Person("amy".into()),
            mins(1),
        )
        .unwrap(),
    );
    // The PMS still says future: the override holds and nothing is revoked.
    sim.sync(mins(10), vec![entry("t-1", Some("4B"), "future")]);
    assert_eq!(sim.keys_of("t-1").len(), 3);
    assert!(sim.world.overrides.contains_key("t-1"));
    // The PMS moves on (past): the override ends and the PMS rules again.
    sim.sync(mins(20), vec![entry("t-1", Some("4B"), "past")]);
    assert!(sim.world.overrides.is_empty());
    assert!(sim.keys_of("t-1").is_empty());
}

#[test]
fn an_override_names_a_known_resident() {
    let sim = Sim::new(Mode::Automatic);
    let e = set_override(
        &sim.world,
        "ghost",
        OverrideStatus::Current,
        Actor::Person("amy".into()),
        t0(),
    );
    assert!(matches!(e, Err(CoreError::UnknownResident(_))));
}

// ---- Status classes ----

#[test]
fn notice_counts_as_current_and_cancelled_as_past() {
    let mut sim = Sim::new(Mode::Automatic);
    sim.sync(
        t0(),
        vec![
            entry("t-1", Some("4B"), "notice"),
            entry("t-2", Some("5C"), "current"),
        ],
    );
    assert_eq!(sim.keys_of("t-1").len(), 3);
    sim.sync(
        mins(30),
        vec![
            entry("t-1", Some("4B"), "notice"),
            entry("t-2", Some("5C"), "cancelled"),
        ],
    );
    assert!(sim.keys_of("t-2").is_empty());
    assert_eq!(sim.keys_of("t-1").len(), 3);
}

#[test]
fn current_to_notice_changes_no_keys_and_suggests_nothing_new() {
    let mut sim = Sim::new(Mode::Automatic);
    sim.sync(t0(), vec![entry("t-1", Some("4B"), "current")]);
    let t = sim.sync(mins(30), vec![entry("t-1", Some("4B"), "notice")]);
    assert!(
        created(&t).is_empty(),
        "same standing, same unit: same basis"
    );
    assert_eq!(sim.keys_of("t-1").len(), 3);
}

#[test]
fn a_status_change_that_leaves_keys_as_they_are_is_a_grey_suggestion() {
    let mut sim = Sim::new(Mode::ApprovalRequired);
    sim.sync(t0(), vec![entry("t-1", Some("4B"), "future")]);
    let t = sim.sync(mins(30), vec![entry("t-1", Some("4B"), "past")]);
    let made = created(&t);
    assert_eq!(made.len(), 1);
    assert_eq!(made[0].color(), Color::Grey);
    assert_eq!(made[0].key, None);
}

#[test]
fn an_unknown_status_changes_nothing_and_raises_an_alert() {
    let mut sim = Sim::new(Mode::Automatic);
    sim.sync(t0(), vec![entry("t-1", Some("4B"), "current")]);
    let t = sim.sync(mins(30), vec![entry("t-1", Some("4B"), "on-hold")]);
    assert_eq!(sim.keys_of("t-1").len(), 3);
    assert!(created(&t).is_empty());
    assert!(t.alerts.iter().any(|a| matches!(a, Alert::UnknownStatus { resident_id, status } if resident_id == "t-1" && status == "on-hold")));
}

#[test]
fn a_current_resident_in_an_unmapped_unit_gets_common_keys_and_an_alert() {
    let mut sim = Sim::new(Mode::Automatic);
    let t = sim.sync(t0(), vec![entry("t-1", Some("9Z"), "current")]);
    let mut held = sim.keys_of("t-1");
    held.sort();
    assert_eq!(held, keys(&COMMON));
    assert!(t
        .alerts
        .iter()
        .any(|a| matches!(a, Alert::UnmappedUnit { .. })));
}

// ---- Activation delay ----

#[test]
fn grants_start_fifteen_minutes_after_the_change_was_detected() {
    let mut sim = Sim::new(Mode::ApprovalRequired);
    // The PMS says the snapshot was fetched earlier; detection time is what counts.
    let t = plan(
        &sim.world,
        &snapshot(
            t0() - Duration::hours(3),
            vec![entry("t-1", Some("4B"), "current")],
        ),
        &sim.policy,
        mins(2),
    )
    .unwrap();
    sim.apply(&t);
    assert!(created(&t).iter().all(|s| s.valid_from == Some(mins(17))));
    // Approving an hour later keeps the start time the panel must enforce.
    let ids: Vec<_> = sim.world.pending.keys().cloned().collect();
    sim.approve(&ids, mins(60));
    assert!(sim.world.grants_of("t-1").all(|g| g.valid_from == mins(17)));
}

#[test]
fn the_activation_delay_is_configurable() {
    let mut sim = Sim::new(Mode::Automatic);
    sim.policy.activation_delay = Duration::minutes(0);
    sim.sync(t0(), vec![entry("t-1", Some("4B"), "current")]);
    assert!(sim.world.grants_of("t-1").all(|g| g.valid_from == t0()));
}

#[test]
fn a_later_sync_does_not_move_the_start_time() {
    let mut sim = Sim::new(Mode::ApprovalRequired);
    sim.sync(t0(), vec![entry("t-1", Some("4B"), "current")]);
    let t = sim.sync(mins(40), vec![entry("t-1", Some("4B"), "current")]);
    assert!(t.suggestions().is_empty());
    assert!(sim
        .world
        .pending
        .values()
        .all(|s| s.valid_from == Some(mins(15))));
}

// ---- Common-area keys ----

#[test]
fn auto_shared_key_sets_go_to_every_current_resident_and_others_do_not() {
    let mut sim = Sim::new(Mode::Automatic);
    sim.sync(
        t0(),
        vec![
            entry("a", Some("4B"), "current"),
            entry("b", Some("5C"), "current"),
            entry("c", Some("2A"), "future"),
        ],
    );
    for r in ["a", "b"] {
        let held = sim.keys_of(r);
        assert!(
            COMMON.iter().all(|k| held.contains(&k.to_string())),
            "{r}: {held:?}"
        );
        assert!(!held.contains(&"garage".to_string()));
    }
    assert!(sim.keys_of("c").is_empty());
    let idx = sim.world.index();
    assert!(idx.key("resident-amenities").unwrap().shareable);
    assert!(!idx.key("resident-entrances").unwrap().shareable);
}

#[test]
fn a_key_set_added_to_the_site_is_shared_at_the_next_sync() {
    let mut sim = Sim::new(Mode::Automatic);
    sim.sync(t0(), vec![entry("a", Some("4B"), "current")]);
    let mut site = sim.world.site().clone();
    site.keys.push(site::KeySet {
        id: "rooftop".into(),
        name: "Rooftop".into(),
        doors: vec!["roof".into()],
        shareable: false,
        auto_share: true,
    });
    sim.apply(&replace_site(&sim.world, site, Actor::Person("ian".into()), mins(1)).unwrap());
    sim.sync(mins(5), vec![entry("a", Some("4B"), "current")]);
    assert!(sim.keys_of("a").contains(&"rooftop".to_string()));
}

// ---- Modes, approve and discard ----

#[test]
fn approval_mode_keeps_every_suggestion_pending_until_approved() {
    let mut sim = Sim::new(Mode::ApprovalRequired);
    let t = sim.sync(t0(), vec![entry("a", Some("4B"), "current")]);
    assert!(created(&t)
        .iter()
        .all(|s| s.state == SuggestionState::Pending));
    assert!(sim.world.grants.is_empty());
}

#[test]
fn automatic_mode_applies_at_once() {
    let mut sim = Sim::new(Mode::Automatic);
    let t = sim.sync(t0(), vec![entry("a", Some("4B"), "current")]);
    assert!(created(&t)
        .iter()
        .all(|s| s.state == SuggestionState::Applied && s.decided_by == Some(Actor::Automatic)));
    assert!(sim.world.pending.is_empty());
}

#[test]
fn approve_and_discard_take_one_to_fifty_ids() {
    let sim = Sim::new(Mode::ApprovalRequired);
    let none: Vec<SuggestionId> = vec![];
    let many: Vec<SuggestionId> = (0..51).map(|i| format!("s{i}")).collect();
    let fifty: Vec<SuggestionId> = (0..50).map(|i| format!("s{i}")).collect();
    let who = Actor::Person("amy".into());
    assert_eq!(
        approve(&sim.world, &none, &sim.history, who.clone(), t0()),
        Err(CoreError::BatchSize { got: 0 })
    );
    assert_eq!(
        approve(&sim.world, &many, &sim.history, who.clone(), t0()),
        Err(CoreError::BatchSize { got: 51 })
    );
    assert_eq!(
        discard(&sim.world, &many, &sim.history, who.clone(), t0()),
        Err(CoreError::BatchSize { got: 51 })
    );
    assert!(approve(&sim.world, &fifty, &sim.history, who, t0()).is_ok());
}

#[test]
fn approve_answers_with_a_result_for_each_item() {
    let mut sim = Sim::new(Mode::ApprovalRequired);
    let t = sim.sync(
        t0(),
        vec![
            entry("a", Some("4B"), "current"),
            entry("b", Some("5C"), "current"),
        ],
    );
    let made = ids_of(&created(&t));
    sim.discard(&[made[1].clone()], mins(1));
    let req = vec![
        made[0].clone(),
        made[1].clone(),
        "nope".to_string(),
        made[0].clone(),
    ];
    let results = sim.approve(&req, mins(2));
    assert_eq!(results[0].1, ItemResult::Applied);
    assert_eq!(
        results[1].1,
        ItemResult::AlreadyDecided {
            state: SuggestionState::Discarded
        }
    );
    assert_eq!(results[2].1, ItemResult::NotFound);
    assert_eq!(results[3].1, ItemResult::Duplicate);
    // Approving again is refused per item, never applied twice.
    let again = sim.approve(&[made[0].clone()], mins(3));
    assert_eq!(
        again[0].1,
        ItemResult::AlreadyDecided {
            state: SuggestionState::Applied
        }
    );
}

#[test]
fn approving_a_superseded_suggestion_is_refused() {
    let mut sim = Sim::new(Mode::ApprovalRequired);
    let t = sim.sync(t0(), vec![entry("a", Some("4B"), "current")]);
    let grants = ids_of(&created(&t));
    // Current then Past before anyone approved: the grants no longer describe reality.
    let t2 = sim.sync(mins(30), vec![entry("a", Some("4B"), "past")]);
    assert!(t2
        .suggestions()
        .iter()
        .filter(|s| grants.contains(&s.id))
        .all(|s| s.state == SuggestionState::Superseded));
    let results = sim.approve(&grants, mins(31));
    assert!(
        results.iter().all(|(_, r)| *r == ItemResult::Superseded),
        "{results:?}"
    );
    assert!(sim.world.grants.is_empty());
}

#[test]
fn discard_removes_a_suggestion_from_the_pending_list() {
    let mut sim = Sim::new(Mode::ApprovalRequired);
    let t = sim.sync(t0(), vec![entry("a", Some("4B"), "current")]);
    let ids = ids_of(&created(&t));
    let results = sim.discard(&ids, mins(1));
    assert!(results.iter().all(|(_, r)| *r == ItemResult::Discarded));
    assert!(sim.world.pending.is_empty());
    assert!(sim.world.grants.is_empty());
}

#[test]
fn a_discarded_grant_is_not_suggested_again_until_the_basis_changes() {
    let mut sim = Sim::new(Mode::ApprovalRequired);
    let t = sim.sync(t0(), vec![entry("a", Some("4B"), "current")]);
    sim.discard(&ids_of(&created(&t)), mins(1));
    let again = sim.sync(mins(10), vec![entry("a", Some("4B"), "current")]);
    assert!(created(&again).is_empty());
    let moved = sim.sync(mins(20), vec![entry("a", Some("5C"), "current")]);
    assert_eq!(
        created(&moved)
            .iter()
            .filter(|s| s.action == Action::Grant)
            .count(),
        3
    );
}

#[test]
fn a_discarded_revocation_comes_back_at_the_next_sync() {
    let mut sim = Sim::new(Mode::Automatic);
    sim.sync(t0(), vec![entry("a", Some("4B"), "current")]);
    sim.world.settings.mode = Mode::ApprovalRequired;
    let t = sim.sync(mins(10), vec![entry("a", Some("4B"), "past")]);
    sim.discard(&ids_of(&created(&t)), mins(11));
    let again = sim.sync(mins(20), vec![entry("a", Some("4B"), "past")]);
    assert_eq!(
        created(&again)
            .iter()
            .filter(|s| s.action == Action::Revoke)
            .count(),
        3,
        "declining to take keys away needs an override"
    );
}

#[test]
fn a_unit_change_revocation_waits_for_the_new_unit_grant() {
    let mut sim = Sim::new(Mode::Automatic);
    sim.sync(t0(), vec![entry("a", Some("4B"), "current")]);
    sim.world.settings.mode = Mode::ApprovalRequired;
    let t = sim.sync(mins(30), vec![entry("a", Some("5C"), "current")]);
    let made = created(&t);
    let grant = made
        .iter()
        .find(|s| s.action == Action::Grant)
        .unwrap()
        .id
        .clone();
    let revoke = made.iter().find(|s| s.action == Action::Revoke).unwrap();
    assert_eq!(revoke.after.as_ref(), Some(&grant));
    let r = sim.approve(std::slice::from_ref(&revoke.id), mins(31));
    assert_eq!(
        r[0].1,
        ItemResult::Blocked {
            after: grant.clone()
        }
    );
    assert!(sim.keys_of("a").contains(&"unit:4B".to_string()));
    // Both in one request: applied, grant first.
    let r = sim.approve(&[revoke.id.clone(), grant], mins(32));
    assert!(r.iter().all(|(_, x)| *x == ItemResult::Applied), "{r:?}");
    assert!(sim.keys_of("a").contains(&"unit:5C".to_string()));
    assert!(!sim.keys_of("a").contains(&"unit:4B".to_string()));
}

#[test]
fn switching_to_automatic_applies_the_backlog_at_the_next_sync_not_before() {
    let mut sim = Sim::new(Mode::ApprovalRequired);
    sim.sync(t0(), vec![entry("a", Some("4B"), "current")]);
    let t = set_mode(
        &sim.world,
        Mode::Automatic,
        Actor::Person("amy".into()),
        mins(1),
    );
    sim.apply(&t);
    assert_eq!(sim.world.settings.mode, Mode::Automatic);
    assert_eq!(
        sim.world.pending.len(),
        3,
        "changing the mode applies nothing by itself"
    );
    assert!(sim.world.grants.is_empty());
    let t = sim.sync(mins(5), vec![entry("a", Some("4B"), "current")]);
    assert!(sim.world.pending.is_empty());
    assert_eq!(sim.keys_of("a").len(), 3);
    // The backlog keeps its original start time.
    assert!(sim.world.grants_of("a").all(|g| g.valid_from == mins(15)));
    assert!(t
        .audit
        .iter()
        .any(|a| a.action == "suggestion.apply" && a.actor == Actor::Automatic));
}

#[test]
fn a_backlog_of_revocations_counts_against_the_guard_when_automatic_mode_applies_it() {
    let mut sim = Sim::new(Mode::Automatic);
    sim.sync(t0(), current_roster(40));
    sim.apply(&set_mode(
        &sim.world,
        Mode::ApprovalRequired,
        Actor::Person("amy".into()),
        mins(1),
    ));
    let mut roster = current_roster(40);
    for e in roster.iter_mut().take(2) {
        e.status = PmsStatus::Past;
    }
    sim.sync(mins(10), roster.clone());
    for e in roster.iter_mut().skip(2).take(2) {
        e.status = PmsStatus::Past;
    }
    sim.sync(mins(20), roster.clone());
    sim.apply(&set_mode(
        &sim.world,
        Mode::Automatic,
        Actor::Person("amy".into()),
        mins(21),
    ));
    let t = sim.sync(mins(30), roster);
    assert!(t.alerts.iter().any(|a| matches!(
        a,
        Alert::GuardTripped {
            would_revoke: 4,
            ..
        }
    )));
    assert_eq!(sim.keys_of("r000").len(), 3, "held, not revoked");
}

#[test]
fn in_automatic_mode_a_grant_discarded_earlier_is_granted_after_all() {
    let mut sim = Sim::new(Mode::ApprovalRequired);
    let t = sim.sync(t0(), vec![entry("a", Some("4B"), "current")]);
    sim.discard(&ids_of(&created(&t)), mins(1));
    sim.apply(&set_mode(
        &sim.world,
        Mode::Automatic,
        Actor::Person("amy".into()),
        mins(2),
    ));
    sim.sync(mins(5), vec![entry("a", Some("4B"), "current")]);
    assert_eq!(
        sim.keys_of("a").len(),
        3,
        "keeping someone out is an override's job"
    );
}

// ---- Eviction ----

#[test]
fn an_eviction_is_held_for_a_manager_even_in_automatic_mode() {
    let mut sim = Sim::new(Mode::Automatic);
    sim.sync(t0(), vec![entry("a", Some("4B"), "current")]);
    let t = sim.sync(mins(30), vec![entry("a", Some("4B"), "eviction")]);
    let made = created(&t);
    assert_eq!(made.len(), 3);
    assert!(made.iter().all(|s| s.action == Action::Revoke
        && s.hold == Some(Hold::Eviction)
        && s.display_state() == "held"));
    assert_eq!(
        sim.keys_of("a").len(),
        3,
        "nothing is revoked until a manager approves"
    );
    sim.approve(&ids_of(&made), mins(31));
    assert!(sim.keys_of("a").is_empty());
}

#[test]
fn the_eviction_policy_can_revoke_or_keep() {
    let mut sim = Sim::new(Mode::Automatic);
    sim.policy.eviction = EvictionPolicy::Revoke;
    sim.sync(
        t0(),
        vec![
            entry("a", Some("4B"), "current"),
            entry("b", Some("5C"), "current"),
        ],
    );
    sim.sync(
        mins(30),
        vec![
            entry("a", Some("4B"), "eviction"),
            entry("b", Some("5C"), "current"),
        ],
    );
    assert!(sim.keys_of("a").is_empty());
    let mut sim = Sim::new(Mode::Automatic);
    sim.policy.eviction = EvictionPolicy::Keep;
    sim.sync(t0(), vec![entry("a", Some("4B"), "current")]);
    sim.sync(mins(30), vec![entry("a", Some("4B"), "eviction")]);
    assert_eq!(sim.keys_of("a").len(), 3);
}

// ---- The mass-revocation guard and absent residents ----

fn current_roster(n: usize) -> Vec<RosterEntry> {
    (0..n)
        .map(|i| {
            entry(
                &format!("r{i:03}"),
                Some(["4B", "5C", "2A"][i % 3]),
                "current",
            )
        })
        .collect()
}

#[test]
fn the_guard_limit_is_the_larger_of_three_and_five_percent() {
    let g = Guard::default();
    assert_eq!(g.limit(10), 3);
    assert_eq!(g.limit(60), 3);
    assert_eq!(g.limit(100), 5);
    assert_eq!(g.limit(1000), 50);
    let custom = Guard {
        min: 1,
        percent: 10.0,
    };
    assert_eq!(custom.limit(30), 3);
}

#[test]
fn a_sync_revoking_more_than_the_guard_allows_is_held_and_alerts() {
    let mut sim = Sim::new(Mode::Automatic);
    sim.sync(t0(), current_roster(40));
    let mut roster = current_roster(40);
    for e in roster.iter_mut().take(4) {
        e.status = PmsStatus::Past;
    }
    let t = sim.sync(mins(30), roster);
    assert!(t.alerts.iter().any(|a| matches!(
        a,
        Alert::GuardTripped {
            would_revoke: 4,
            limit: 3,
            current_residents: 40
        }
    )));
    for i in 0..4 {
        assert_eq!(
            sim.keys_of(&format!("r{i:03}")).len(),
            3,
            "held, not revoked"
        );
    }
    let held: Vec<&Suggestion> = sim.world.pending.values().collect();
    assert_eq!(held.len(), 12);
    assert!(held.iter().all(|s| s.hold == Some(Hold::Guard)));
    // A manager may still approve them.
    let ids: Vec<_> = held.iter().map(|s| s.id.clone()).collect();
    sim.approve(&ids, mins(31));
    assert!(sim.keys_of("r000").is_empty());
}

#[test]
fn a_sync_within_the_guard_revokes_automatically() {
    let mut sim = Sim::new(Mode::Automatic);
    sim.sync(t0(), current_roster(40));
    let mut roster = current_roster(40);
    for e in roster.iter_mut().take(3) {
        e.status = PmsStatus::Past;
    }
    let t = sim.sync(mins(30), roster);
    assert!(t.alerts.is_empty());
    assert!(sim.keys_of("r000").is_empty());
}

#[test]
fn the_guard_is_configurable() {
    let mut sim = Sim::new(Mode::Automatic);
    sim.policy.guard = Guard {
        min: 0,
        percent: 0.0,
    };
    sim.sync(t0(), current_roster(5));
    let mut roster = current_roster(5);
    roster[0].status = PmsStatus::Past;
    let t = sim.sync(mins(30), roster);
    assert!(t
        .alerts
        .iter()
        .any(|a| matches!(a, Alert::GuardTripped { .. })));
    assert_eq!(sim.keys_of("r000").len(), 3);
}

#[test]
fn an_empty_roster_revokes_nothing_and_raises_an_alert() {
    let mut sim = Sim::new(Mode::Automatic);
    sim.sync(t0(), current_roster(2));
    let t = sim.sync(mins(30), vec![]);
    assert!(t
        .alerts
        .iter()
        .any(|a| matches!(a, Alert::EmptyRoster { known_residents: 2 })));
    assert_eq!(sim.keys_of("r000").len(), 3);
    assert_eq!(sim.keys_of("r001").len(), 3);
}

#[test]
fn a_resident_missing_from_a_snapshot_has_not_moved_out() {
    let mut sim = Sim::new(Mode::Automatic);
    sim.sync(t0(), current_roster(3));
    let t = sim.sync(mins(30), current_roster(2));
    assert_eq!(sim.keys_of("r002").len(), 3);
    assert_eq!(sim.world.residents["r002"].missing_since, Some(mins(30)));
    assert!(created(&t).is_empty());
    sim.sync(mins(40), current_roster(3));
    assert_eq!(sim.world.residents["r002"].missing_since, None);
}

#[test]
fn an_incremental_snapshot_marks_nobody_missing() {
    let mut sim = Sim::new(Mode::Automatic);
    sim.sync(t0(), current_roster(3));
    let snap = Snapshot {
        fetched_at: mins(5),
        complete: false,
        residents: vec![entry("r000", Some("4B"), "past")],
    };
    let t = plan(&sim.world, &snap, &sim.policy, mins(5)).unwrap();
    sim.apply(&t);
    assert!(sim.keys_of("r000").is_empty());
    assert!(sim
        .world
        .residents
        .values()
        .all(|r| r.missing_since.is_none()));
}

#[test]
fn a_roster_with_a_resident_twice_is_refused() {
    let sim = Sim::new(Mode::Automatic);
    let snap = snapshot(
        t0(),
        vec![
            entry("a", Some("4B"), "current"),
            entry("a", Some("5C"), "past"),
        ],
    );
    assert_eq!(
        plan(&sim.world, &snap, &sim.policy, t0()),
        Err(CoreError::DuplicateResident("a".into()))
    );
}

#[test]
fn planning_the_same_snapshot_twice_creates_nothing_new() {
    let mut sim = Sim::new(Mode::ApprovalRequired);
    let roster = vec![
        entry("a", Some("4B"), "current"),
        entry("b", Some("5C"), "future"),
        entry("c", None, "past"),
    ];
    sim.sync(t0(), roster.clone());
    let t = sim.sync(mins(5), roster);
    assert!(t.is_empty(), "{:?}", t.changes);
}

// ---- Manual keys ----

#[test]
fn a_manual_key_goes_only_to_a_current_resident_and_stays_while_current() {
    let mut sim = Sim::new(Mode::Automatic);
    sim.sync(
        t0(),
        vec![
            entry("a", Some("4B"), "current"),
            entry("b", Some("5C"), "future"),
        ],
    );
    let who = Actor::Person("amy".into());
    assert!(matches!(
        assign_key(&sim.world, "b", "garage", who.clone(), mins(1)),
        Err(CoreError::NotCurrent { .. })
    ));
    assert!(matches!(
        assign_key(&sim.world, "a", "moon", who.clone(), mins(1)),
        Err(CoreError::UnknownKey(_))
    ));
    sim.apply(&assign_key(&sim.world, "a", "garage", who.clone(), mins(1)).unwrap());
    assert!(matches!(
        assign_key(&sim.world, "a", "garage", who.clone(), mins(1)),
        Err(CoreError::AlreadyHeld { .. })
    ));
    sim.sync(
        mins(10),
        vec![
            entry("a", Some("5C"), "current"),
            entry("b", Some("5C"), "future"),
        ],
    );
    assert!(
        sim.keys_of("a").contains(&"garage".to_string()),
        "a unit change keeps manual keys"
    );
    sim.apply(&unassign_key(&sim.world, "a", "garage", who.clone(), mins(11)).unwrap());
    assert!(!sim.keys_of("a").contains(&"garage".to_string()));
    assert!(matches!(
        unassign_key(&sim.world, "a", "garage", who, mins(12)),
        Err(CoreError::NotHeld { .. })
    ));
}

// ---- Desired device credential sets ----

#[test]
fn each_device_wants_exactly_the_doors_its_residents_were_granted() {
    let mut sim = Sim::new(Mode::Automatic);
    sim.sync(
        t0(),
        vec![
            entry("a", Some("4B"), "current"),
            entry("b", Some("5C"), "current"),
            entry("c", Some("2A"), "future"),
        ],
    );
    let all = desired_all(&sim.world);
    let lobby = &all["panel-lobby"];
    assert_eq!(lobby.keys().collect::<Vec<_>>(), vec!["a", "b"]);
    assert_eq!(
        lobby["a"].keys().collect::<Vec<_>>(),
        vec!["elevator", "front-entrance"]
    );
    assert_eq!(lobby["a"]["elevator"], mins(15));
    assert_eq!(all["lock-4b"].keys().collect::<Vec<_>>(), vec!["a"]);
    assert_eq!(
        all["panel-amenities"]["b"].keys().collect::<Vec<_>>(),
        vec!["gym"]
    );
    assert!(!all.contains_key("lock-2a"));
    assert_eq!(
        desired_for(&sim.world, "lock-5c")
            .keys()
            .collect::<Vec<_>>(),
        vec!["b"]
    );
}

#[test]
fn granting_or_revoking_marks_the_devices_it_touches() {
    let mut sim = Sim::new(Mode::Automatic);
    let t = sim.sync(t0(), vec![entry("a", Some("4B"), "current")]);
    let dirty: Vec<&String> = t.dirty_devices().into_iter().collect();
    assert_eq!(dirty, vec!["lock-4b", "panel-amenities", "panel-lobby"]);
    let t = sim.sync(mins(30), vec![entry("a", Some("5C"), "current")]);
    let dirty: Vec<&String> = t.dirty_devices().into_iter().collect();
    assert_eq!(dirty, vec!["lock-4b", "lock-5c"]);
}

// ---- Audit ----

#[test]
fn every_decision_is_audited_with_actor_and_before_and_after() {
    let mut sim = Sim::new(Mode::ApprovalRequired);
    let t = sim.sync(t0(), vec![entry("a", Some("4B"), "current")]);
    assert!(t.audit.iter().any(|a| a.action == "suggestion.create"
        && a.actor == Actor::Sync
        && a.before.is_none()
        && a.after.is_some()));
    let id = created(&t)[0].id.clone();
    let d = approve(
        &sim.world,
        std::slice::from_ref(&id),
        &sim.history,
        Actor::Person("manager-amy".into()),
        mins(1),
    )
    .unwrap();
    let apply = d
        .transition
        .audit
        .iter()
        .find(|a| a.action == "suggestion.apply")
        .unwrap();
    assert_eq!(apply.actor, Actor::Person("manager-amy".into()));
    assert_eq!(apply.subject, id);
    assert_eq!(apply.before.as_ref().unwrap().value()["state"], "pending");
    assert_eq!(apply.after.as_ref().unwrap().value()["state"], "applied");
    assert!(d
        .transition
        .audit
        .iter()
        .any(|a| a.action == "grant.create" && a.at == mins(1)));
}

// ---- Found in review: unit changes, overrides, data gaps ----

#[test]
fn a_unit_change_opens_the_new_unit_at_once_so_nobody_is_locked_out() {
    let mut sim = Sim::new(Mode::Automatic);
    sim.sync(t0(), vec![entry("a", Some("4B"), "current")]);
    sim.sync(mins(60), vec![entry("a", Some("5C"), "current")]);
    let unit = sim
        .world
        .grants_of("a")
        .find(|g| g.key_id == "unit:5C")
        .unwrap();
    assert_eq!(
        unit.valid_from,
        mins(60),
        "the old unit closed at 60; the new one opens then"
    );
    // A resident who just became current still waits for the activation delay.
    sim.sync(
        mins(60),
        vec![
            entry("a", Some("5C"), "current"),
            entry("b", Some("2A"), "current"),
        ],
    );
    assert!(sim.world.grants_of("b").all(|g| g.valid_from == mins(75)));
}

#[test]
fn an_unknown_status_does_not_end_an_override() {
    let mut sim = Sim::new(Mode::Automatic);
    sim.sync(t0(), vec![entry("a", Some("4B"), "current")]);
    sim.apply(
        &set_override(
            &sim.world,
            "a",
            OverrideStatus::Past,
            Actor::Person("amy".into()),
            mins(1),
        )
        .unwrap(),
    );
    let t = sim.sync(mins(10), vec![entry("a", Some("4B"), "on-hold")]);
    assert!(t
        .alerts
        .iter()
        .any(|a| matches!(a, Alert::UnknownStatus { .. })));
    assert!(sim.world.overrides.contains_key("a"));
    sim.sync(mins(20), vec![entry("a", Some("4B"), "current")]);
    assert!(
        sim.keys_of("a").is_empty(),
        "the PMS still says current, as when the override was set"
    );
}

#[test]
fn a_change_within_one_standing_does_not_end_an_override() {
    let mut sim = Sim::new(Mode::Automatic);
    sim.sync(t0(), vec![entry("a", Some("4B"), "current")]);
    sim.apply(
        &set_override(
            &sim.world,
            "a",
            OverrideStatus::Past,
            Actor::Person("amy".into()),
            mins(1),
        )
        .unwrap(),
    );
    sim.sync(mins(10), vec![entry("a", Some("4B"), "notice")]);
    assert!(sim.world.overrides.contains_key("a"));
    assert!(sim.keys_of("a").is_empty());
}

#[test]
fn a_current_resident_whose_unit_disappears_keeps_the_unit_key_until_a_manager_decides() {
    for unit in [None, Some("4b")] {
        let mut sim = Sim::new(Mode::Automatic);
        sim.sync(t0(), vec![entry("a", Some("4B"), "current")]);
        let t = sim.sync(mins(10), vec![entry("a", unit, "current")]);
        assert!(
            sim.keys_of("a").contains(&"unit:4B".to_string()),
            "unit {unit:?}"
        );
        assert!(t
            .alerts
            .iter()
            .any(|a| matches!(a, Alert::UnmappedUnit { .. })));
        let held: Vec<&Suggestion> = sim.pending_of("a");
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].hold, Some(Hold::UnknownUnit));
        assert_eq!(held[0].action, Action::Revoke);
    }
}

#[test]
fn moved_out_counts_as_past() {
    for status in ["MovedOut", "moved_out", "moved-out"] {
        assert_eq!(PmsStatus::parse(status), PmsStatus::Past, "{status}");
    }
}

#[test]
fn discarding_the_new_unit_grant_releases_the_old_units_revocation() {
    let mut sim = Sim::new(Mode::Automatic);
    sim.sync(t0(), vec![entry("a", Some("4B"), "current")]);
    sim.apply(&set_mode(
        &sim.world,
        Mode::ApprovalRequired,
        Actor::Person("amy".into()),
        mins(1),
    ));
    let t = sim.sync(mins(30), vec![entry("a", Some("5C"), "current")]);
    let made = created(&t);
    let grant = made
        .iter()
        .find(|s| s.action == Action::Grant)
        .unwrap()
        .id
        .clone();
    let revoke = made
        .iter()
        .find(|s| s.action == Action::Revoke)
        .unwrap()
        .id
        .clone();
    sim.discard(std::slice::from_ref(&grant), mins(31));
    let r = sim.approve(std::slice::from_ref(&revoke), mins(32));
    assert_eq!(r[0].1, ItemResult::Applied);
    assert!(!sim.keys_of("a").contains(&"unit:4B".to_string()));
}
