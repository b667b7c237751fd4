//! The daemon's sync step with incremental fetches: a change that could take access away is
//! never judged on the changes alone.

use std::sync::Mutex;

use chrono::{TimeZone, Utc};
use leasegate::core::{PmsStatus, RosterEntry, Snapshot, Timestamp};
use leasegate::daemon::sync_with;
use leasegate::gateway::Gateway;
use leasegate::pms::{FetchFuture, FetchRequest, RosterSource};

/// A fake PMS (no real peer is needed to test the daemon's decision): it answers complete
/// and incremental fetches from two scripts and records what was asked.
struct ScriptedFakeRoster {
    complete: Vec<RosterEntry>,
    changes: Vec<RosterEntry>,
    asked: Mutex<Vec<Option<Timestamp>>>,
}

impl RosterSource for ScriptedFakeRoster {
    fn kind(&self) -> &'static str {
        "scripted-fake"
    }

    fn fetch(&self, request: FetchRequest) -> FetchFuture<'_> {
        self.asked.lock().unwrap().push(request.changed_since);
        let (complete, residents) = match request.changed_since {
            None => (true, self.complete.clone()),
            Some(_) => (false, self.changes.clone()),
        };
        Box::pin(async move {
            Ok(Snapshot {
                fetched_at: request.now,
                complete,
                residents,
            })
        })
    }
}

fn entry(id: &str, unit: &str, status: PmsStatus) -> RosterEntry {
    RosterEntry {
        id: id.into(),
        name: format!("Resident {id}"),
        unit: Some(unit.into()),
        status,
    }
}

fn gateway(dir: &std::path::Path) -> Gateway {
    std::fs::write(
        dir.join("site.toml"),
        "[[units]]\npms_unit = \"4B\"\ndoors = [\"unit-4b\"]\n\n[[units]]\npms_unit = \"5C\"\ndoors = [\"unit-5c\"]\n",
    )
    .unwrap();
    std::fs::write(dir.join("roster.json"), "{}").unwrap();
    let text = "[site]\nid = \"s\"\ntimezone = \"UTC\"\nsite_file = \"site.toml\"\n[store]\npath = \"state\"\n[access]\nmode = \"automatic\"\nactivation_delay = \"0s\"\n[pms]\nkind = \"file\"\npath = \"roster.json\"\n";
    let cfg = leasegate::config::parse(text, &dir.join("leasegate.toml")).unwrap();
    Gateway::open(&cfg).unwrap()
}

fn at(min: i64) -> Timestamp {
    Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap() + chrono::Duration::minutes(min)
}

#[tokio::test]
async fn a_renewal_seen_alone_in_the_changes_does_not_lock_a_current_resident_out() {
    let dir = tempfile::tempdir().unwrap();
    let mut gw = gateway(dir.path());
    // Lease 10 is active; the renewal (lease 11, future) is all the change set shows.
    let pms = ScriptedFakeRoster {
        complete: vec![entry("t1", "4B", PmsStatus::Current)],
        changes: vec![entry("t1", "4B", PmsStatus::Future)],
        asked: Mutex::new(vec![]),
    };
    let full = FetchRequest {
        changed_since: None,
        now: at(0),
    };
    sync_with(&mut gw, &pms, full).await.unwrap();
    assert!(gw.world().holds("t1", "unit:4B"));

    let incremental = FetchRequest {
        changed_since: Some(at(0)),
        now: at(5),
    };
    sync_with(&mut gw, &pms, incremental).await.unwrap();
    assert!(
        gw.world().holds("t1", "unit:4B"),
        "judged on the whole roster, t1 is current"
    );
    assert_eq!(*pms.asked.lock().unwrap(), vec![None, Some(at(0)), None]);
}

#[tokio::test]
async fn a_real_move_out_in_the_changes_is_confirmed_by_the_whole_roster_and_applied() {
    let dir = tempfile::tempdir().unwrap();
    let mut gw = gateway(dir.path());
    let mut pms = ScriptedFakeRoster {
        complete: vec![entry("t1", "4B", PmsStatus::Current)],
        changes: vec![],
        asked: Mutex::new(vec![]),
    };
    sync_with(
        &mut gw,
        &pms,
        FetchRequest {
            changed_since: None,
            now: at(0),
        },
    )
    .await
    .unwrap();
    pms.complete = vec![entry("t1", "4B", PmsStatus::Past)];
    pms.changes = vec![entry("t1", "4B", PmsStatus::Past)];
    sync_with(
        &mut gw,
        &pms,
        FetchRequest {
            changed_since: Some(at(0)),
            now: at(5),
        },
    )
    .await
    .unwrap();
    assert!(!gw.world().holds("t1", "unit:4B"));
}

#[tokio::test]
async fn changes_that_only_add_access_are_applied_from_the_changes_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mut gw = gateway(dir.path());
    let pms = ScriptedFakeRoster {
        complete: vec![entry("t1", "4B", PmsStatus::Current)],
        changes: vec![entry("t2", "5C", PmsStatus::Current)],
        asked: Mutex::new(vec![]),
    };
    sync_with(
        &mut gw,
        &pms,
        FetchRequest {
            changed_since: None,
            now: at(0),
        },
    )
    .await
    .unwrap();
    sync_with(
        &mut gw,
        &pms,
        FetchRequest {
            changed_since: Some(at(0)),
            now: at(5),
        },
    )
    .await
    .unwrap();
    assert!(gw.world().holds("t2", "unit:5C"));
    assert!(
        gw.world().holds("t1", "unit:4B"),
        "absent from the changes is not moved out"
    );
    assert_eq!(
        pms.asked.lock().unwrap().len(),
        2,
        "no whole-roster fetch was needed"
    );
}
