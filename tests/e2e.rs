//! End to end: the real `leasegate run` binary (a child process, so it can be killed with
//! SIGKILL) with every real peer at once: Buildium over HTTPS, Mosquitto, the libosdp PD on a
//! pty pair (commissioned: SCBK-D, then KEYSET) and the fake BlueZ Nuki lock on a private
//! D-Bus. What reaches the doors is read back from the devices themselves: the PD's
//! credential store dump and the simulated lock's keypad codes. Harness: `tests/e2e/`.

#[path = "fixtures/buildium-fake.rs"]
mod buildium_fake;
#[path = "e2e/harness.rs"]
mod harness;
#[path = "support/https.rs"]
mod https;
#[path = "support/osdp_line.rs"]
mod line;
#[path = "support/mqtt.rs"]
mod mqtt;
#[path = "support/python.rs"]
mod python;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use harness::{lease, lock_time, summary, ts, Env, Options, FRONT, UNIT_102};
use serde_json::{json, Value};

const DEVICES: Duration = Duration::from_secs(45);

fn ids(s: &[Value]) -> Vec<String> {
    s.iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

fn of<'a>(s: &'a [Value], resident: &str) -> Vec<&'a Value> {
    s.iter().filter(|s| s["resident_id"] == resident).collect()
}

fn results(reply: &Value) -> Vec<(String, String)> {
    reply["data"]["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results in {reply}"))
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_string(),
                r["result"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_mode_a_new_resident_gets_green_suggestions_and_once_approved_the_panel_and_the_lock_hold_their_pin_from_fifteen_minutes_after_detection(
) {
    // A future resident only: nothing to grant yet.
    let mut env = Env::start(
        vec![lease(1, "103", "Future", 3001, "Future")],
        Options::default(),
    )
    .await;
    let from = env.probe.seen.len();

    // Ana moves into 101 (a Nuki lock; the front entrance is on the panel).
    env.pms.put(lease(2, "101", "Active", 1001, "Current"));
    let before = Utc::now() - chrono::Duration::seconds(1);
    env.sync_now("sync-1").await;

    // Two green suggestions, retained on suggestions/<id>.
    let prefix = env.topic("suggestions/");
    let mut green: BTreeMap<String, Value> = BTreeMap::new();
    while green.len() < 2 {
        let s = env
            .wait_new(
                "Ana's green suggestions",
                from,
                Duration::from_secs(20),
                |s| {
                    s.topic.starts_with(&prefix)
                        && !s.payload.is_empty()
                        && s.json()["resident_id"] == "1001"
                        && !green.contains_key(&s.topic[prefix.len()..])
                },
            )
            .await;
        green.insert(s.topic[prefix.len()..].to_string(), s.json());
    }
    // Retained: a client that subscribes now gets them at once.
    let (host, port) = mqtt::broker();
    let mut late = mqtt::Probe::connect(&host, port, None, &format!("{prefix}+")).await;
    for id in green.keys() {
        let topic = format!("{prefix}{id}");
        late.wait_for("a retained suggestion", |s| s.topic == topic && s.retain)
            .await;
    }
    let after = Utc::now();
    let keys: Vec<&str> = green.values().map(|s| s["key"].as_str().unwrap()).collect();
    assert_eq!(keys.len(), 2);
    assert!(
        keys.contains(&"unit:101") && keys.contains(&"resident-entrances"),
        "{keys:?}"
    );
    let mut valid_from = None;
    for s in green.values() {
        assert_eq!(
            (s["action"].as_str(), s["color"].as_str()),
            (Some("grant"), Some("green")),
            "{s}"
        );
        assert_eq!(s["state"], "pending");
        let created = ts(&s["created_at"]);
        let from = ts(&s["valid_from"]);
        assert!(
            before <= created && created <= after,
            "detected at {created}, between {before} and {after}"
        );
        assert_eq!(from - created, chrono::Duration::minutes(15), "{s}");
        valid_from = Some(from);
    }
    let valid_from = valid_from.unwrap();

    // Nothing reaches a device before a manager approves.
    assert!(env.panel.records().is_empty(), "{:?}", env.panel_view());
    assert!(env.lock.codes().is_empty(), "{:?}", env.lock_view());

    let ids: Vec<String> = green.keys().cloned().collect();
    let reply = env.approve("ann-approve-1", &ids).await;
    assert_eq!(reply["status"], "ok", "{reply}");
    assert!(
        results(&reply).iter().all(|(_, r)| r == "applied"),
        "{reply}"
    );
    env.learn_pins(&["1001"]).await;

    // The panel: one PIN record for the front entrance; the lock: the PIN as a keypad code,
    // time-limited from the same moment (local time, to the minute).
    let want_from = valid_from.timestamp() as u32;
    env.wait_devices("Ana's PIN on the panel and the lock", DEVICES, |p, l| {
        let panel_ok = p.get("1001") == Some(&vec![(FRONT, want_from)]) && p.len() == 1;
        let lock_ok = l.len() == 1
            && l.get("1001").is_some_and(|c| {
                c.len() == 1
                    && c[0].0
                    && c[0].1.time_limited
                    && c[0].1.enabled
                    && c[0].1.from == Some(lock_time(valid_from))
            });
        if panel_ok && lock_ok {
            Ok(())
        } else {
            Err(format!("panel ok {panel_ok}, lock ok {lock_ok}"))
        }
    })
    .await;
    // The decided suggestions are cleared (a zero-byte retained message each).
    for id in &ids {
        let topic = env.topic(&format!("suggestions/{id}"));
        env.wait_new("a cleared suggestion", from, Duration::from_secs(10), |s| {
            s.topic == topic && s.payload.is_empty()
        })
        .await;
    }
    env.gw.stop();
}

/// Start with `leases`, approve what the first sync suggests, and wait until the devices
/// hold it: every resident of 101 on the lock, everyone on the panel.
async fn settled(leases: Vec<buildium_fake::Lease>, residents: &[&str], on_lock: &[&str]) -> Env {
    let mut env = Env::start(leases, Options::default()).await;
    env.wait_pending("the first sync's suggestions", |p| {
        residents.iter().all(|r| !of(p, r).is_empty())
    })
    .await;
    env.approve_all("ann-initial").await;
    env.learn_pins(residents).await;
    let n = residents.len();
    let m = on_lock.len();
    env.wait_devices("the initial grants on both devices", DEVICES, |p, l| {
        let ok = p.len() == n
            && residents
                .iter()
                .all(|r| p.get(*r).is_some_and(|v| v.len() == 1))
            && l.len() == m
            && on_lock
                .iter()
                .all(|r| l.get(*r).is_some_and(|c| c.len() == 1 && c[0].0));
        if ok {
            Ok(())
        } else {
            Err("not yet".into())
        }
    })
    .await;
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_out_becomes_red_suggestions_and_once_approved_the_credentials_are_gone_from_the_panel_and_the_lock(
) {
    let mut env = settled(
        vec![
            lease(1, "101", "Active", 1001, "Current"),
            lease(2, "101", "Active", 1002, "Current"),
        ],
        &["1001", "1002"],
        &["1001", "1002"],
    )
    .await;
    let panel_before = env.panel_view();

    // Ben's lease ends.
    env.pms.put(lease(2, "101", "Past", 1002, "MovedOut"));
    env.sync_now("sync-out").await;
    let pending = env
        .wait_pending("Ben's red suggestions", |p| of(p, "1002").len() == 2)
        .await;
    assert!(
        of(&pending, "1001").is_empty(),
        "Ana is untouched: {pending:?}"
    );
    let red = of(&pending, "1002");
    for s in &red {
        assert_eq!(
            (s["action"].as_str(), s["color"].as_str()),
            (Some("revoke"), Some("red")),
            "{}",
            summary(s)
        );
    }
    let mut keys: Vec<&str> = red.iter().map(|s| s["key"].as_str().unwrap()).collect();
    keys.sort();
    assert_eq!(keys, ["resident-entrances", "unit:101"]);
    // Not approved yet: both devices still hold Ben.
    assert_eq!(env.panel_view(), panel_before);
    assert!(env.lock_view().contains_key("1002"));

    let red_ids: Vec<String> = red
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    let reply = env.approve("ann-out-1", &red_ids).await;
    assert_eq!(reply["status"], "ok", "{reply}");

    env.wait_devices("Ben gone from both devices, Ana kept", DEVICES, |p, l| {
        let ok = !p.contains_key("1002")
            && p.get("1001") == panel_before.get("1001")
            && p.len() == 1
            && !l.contains_key("1002")
            && l.get("1001").is_some_and(|c| c.len() == 1 && c[0].0)
            && l.len() == 1;
        if ok {
            Ok(())
        } else {
            Err("not yet".into())
        }
    })
    .await;
    env.gw.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_change_grants_the_new_unit_before_the_old_unit_is_revoked_and_the_revocation_is_blocked_until_then(
) {
    let mut env = settled(
        vec![lease(1, "101", "Active", 1001, "Current")],
        &["1001"],
        &["1001"],
    )
    .await;
    let front_before = env.panel_view()["1001"].clone();

    // Ana moves from 101 (the lock) to 102 (a door on the panel).
    env.pms.put(lease(1, "101", "Past", 1001, "MovedOut"));
    env.pms.put(lease(3, "102", "Active", 1001, "Current"));
    env.sync_now("sync-move").await;
    let pending = env
        .wait_pending("the move's suggestions", |p| of(p, "1001").len() == 2)
        .await;
    let mine = of(&pending, "1001");
    let grant = *mine
        .iter()
        .find(|s| s["action"] == "grant")
        .unwrap_or_else(|| panic!("{pending:?}"));
    let revoke = *mine
        .iter()
        .find(|s| s["action"] == "revoke")
        .unwrap_or_else(|| panic!("{pending:?}"));
    assert_eq!(grant["key"], "unit:102");
    assert_eq!(revoke["key"], "unit:101");
    assert_eq!(
        revoke["after"], grant["id"],
        "the revocation waits for the grant"
    );
    // A move opens the new unit at once: no activation delay.
    assert_eq!(
        grant["valid_from"],
        grant["created_at"],
        "{}",
        summary(grant)
    );
    let (grant_id, revoke_id) = (
        grant["id"].as_str().unwrap().to_string(),
        revoke["id"].as_str().unwrap().to_string(),
    );
    let grant_from = ts(&grant["valid_from"]).timestamp() as u32;

    // The revocation alone is blocked, and nothing leaves the lock.
    let reply = env
        .approve("ann-move-1", std::slice::from_ref(&revoke_id))
        .await;
    assert_eq!(reply["status"], "error", "{reply}");
    let r = &reply["data"]["results"][0];
    assert_eq!(
        (r["result"].as_str(), r["after"].as_str()),
        (Some("blocked"), Some(grant_id.as_str())),
        "{reply}"
    );
    assert!(
        ids(&env.pending().await).contains(&revoke_id),
        "the blocked revocation still waits"
    );

    // The grant: the panel opens 102 for Ana while the lock still holds her code.
    let reply = env
        .approve("ann-move-2", std::slice::from_ref(&grant_id))
        .await;
    assert_eq!(reply["status"], "ok", "{reply}");
    env.wait_devices(
        "unit 102 on the panel, 101 still on the lock",
        DEVICES,
        |p, l| {
            let mut want = front_before.clone();
            want.push((UNIT_102, grant_from));
            want.sort();
            let panel_ok = p.get("1001") == Some(&want);
            let lock_ok = l.get("1001").is_some_and(|c| c.len() == 1 && c[0].0);
            match (panel_ok, lock_ok) {
                (true, true) => Ok(()),
                (false, true) => Err("the new unit is not on the panel yet".into()),
                (_, false) => panic!(
                    "the old unit's code left the lock before its revocation was approved: {:?}",
                    l
                ),
            }
        },
    )
    .await;

    // Now the revocation goes through: 101 leaves the lock, the panel keeps 102 and the front.
    let reply = env
        .approve("ann-move-3", std::slice::from_ref(&revoke_id))
        .await;
    assert_eq!(reply["status"], "ok", "{reply}");
    env.wait_devices("unit 101 gone from the lock", DEVICES, |p, l| {
        let panel_ok = p
            .get("1001")
            .is_some_and(|v| v.len() == 2 && v.iter().any(|(d, _)| d & UNIT_102 != 0));
        if l.is_empty() && panel_ok {
            Ok(())
        } else {
            Err("not yet".into())
        }
    })
    .await;
    env.gw.stop();

    // The audit log agrees on the order: the 102 grant was made before 101 was revoked.
    let audit = env.gw.store().audit_since(0).unwrap();
    let pos = |action: &str, subject: &str| {
        audit
            .iter()
            .position(|(_, a)| a.action == action && a.subject.contains(subject))
            .unwrap_or_else(|| panic!("no {action} of {subject} in the audit log"))
    };
    assert!(pos("grant.create", "unit:102") < pos("grant.revoke", "unit:101"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_right_after_an_approval_loses_nothing_and_applies_nothing_twice() {
    let residents = [
        "1001", "1002", "1003", "1004", "2001", "2002", "2003", "2004",
    ];
    let mut leases = Vec::new();
    for (i, r) in residents.iter().enumerate() {
        let unit = if r.starts_with('1') { "101" } else { "102" };
        leases.push(lease(
            i as i64 + 1,
            unit,
            "Active",
            r.parse().unwrap(),
            "Current",
        ));
    }
    // A slow BLE link (20 ms per write or indication): the lock is mid-pass at the kill.
    let mut env = Env::start(
        leases,
        Options {
            lock_interval_ms: 20,
            ..Options::default()
        },
    )
    .await;
    let pending = env.wait_pending("16 suggestions", |p| p.len() == 16).await;
    let ids = ids(&pending);
    let first = env
        .request_raw(
            "suggestions/approve",
            json!({"transaction": "ann-kill-1", "ids": ids}),
        )
        .await;
    let reply: Value = serde_json::from_slice(&first).unwrap();
    assert_eq!(reply["status"], "ok", "{reply}");
    // The approval is acknowledged. kill -9 as soon as the first code is on the lock: the
    // lock writer is mid-pass (a code added, perhaps not yet recorded), the panel's too.
    {
        let log = env.log();
        harness::wait_until("a first code on the lock", DEVICES, &log, || {
            match env.lock.codes().len() {
                0 => Err("no code yet".to_string()),
                n => Ok(n),
            }
        })
        .await;
    }
    env.gw.kill9();
    let (on_panel, on_lock) = (env.panel.records().len(), env.lock.codes().len());
    eprintln!("at the kill: {on_panel}/8 records on the panel, {on_lock}/4 codes on the lock");
    assert!(
        on_lock < 4,
        "the lock's writes were all done before the kill: the test proves nothing"
    );

    env.launch().await;
    env.learn_pins(&residents).await;
    env.wait_devices(
        "every approved credential on the devices",
        DEVICES,
        |p, l| {
            let panel_ok = p.len() == 8
                && residents
                    .iter()
                    .all(|r| p.get(*r).is_some_and(|v| v.len() == 1));
            let lock_ok = l.len() == 4
                && residents[..4]
                    .iter()
                    .all(|r| l.get(*r).is_some_and(|c| c.len() == 1 && c[0].0));
            if panel_ok && lock_ok {
                Ok(())
            } else {
                Err(format!("panel ok {panel_ok}, lock ok {lock_ok}"))
            }
        },
    )
    .await;
    // Exactly one record and one code per credential: nothing was applied twice.
    assert_eq!(env.panel.records().len(), 8);
    assert_eq!(env.lock.codes().len(), 4);
    for (r, recs) in env.panel_view() {
        let unit = if r.starts_with('1') { 0 } else { UNIT_102 };
        assert_eq!(recs.len(), 1, "{r}: {recs:?}");
        assert_eq!(recs[0].0, FRONT | unit, "{r}: {recs:?}");
    }
    // Nothing is left to approve, and the replayed approval answers the first reply.
    assert!(env.pending().await.is_empty());
    let again = env
        .request_raw(
            "suggestions/approve",
            json!({"transaction": "ann-kill-1", "ids": ids}),
        )
        .await;
    assert_eq!(
        String::from_utf8_lossy(&again),
        String::from_utf8_lossy(&first),
        "a replay answers the first reply, byte for byte"
    );
    env.gw.stop();
    let audit = env.gw.store().audit_since(0).unwrap();
    let count = |action: &str| audit.iter().filter(|(_, a)| a.action == action).count();
    assert_eq!(
        count("suggestion.apply"),
        16,
        "each suggestion applied once"
    );
    assert_eq!(count("grant.create"), 16, "each key granted once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_roster_from_the_pms_revokes_nothing_and_raises_the_empty_roster_alert() {
    // Automatic mode, where a revocation would go straight to the doors; every sync fetches
    // the whole roster (an empty incremental answer would be "no changes").
    let mut env = Env::start(
        vec![
            lease(1, "101", "Active", 1001, "Current"),
            lease(2, "102", "Active", 1002, "Current"),
            lease(3, "103", "Active", 1003, "Current"),
        ],
        Options {
            mode: "automatic",
            poll_interval: "10s",
            full_sync_every: "10s",
            ..Options::default()
        },
    )
    .await;
    let residents = ["1001", "1002", "1003"];
    env.learn_pins(&residents).await;
    env.wait_devices("automatic grants on both devices", DEVICES, |p, l| {
        if p.len() == 3 && l.len() == 1 && l.get("1001").is_some_and(|c| c[0].0) {
            Ok(())
        } else {
            Err("not yet".into())
        }
    })
    .await;
    let (panel_before, digest_before, lock_before) =
        (env.panel_view(), env.panel.digest(), env.lock_view());
    let from = env.probe.seen.len();

    env.pms.fake.set_leases(vec![]);
    let alert = env.topic("events/alert");
    let seen = env
        .wait_new(
            "the empty_roster alert",
            from,
            Duration::from_secs(30),
            |s| s.topic == alert && s.json()["alert"]["kind"] == "empty_roster",
        )
        .await;
    assert_eq!(
        seen.json()["alert"]["known_residents"],
        3,
        "{}",
        seen.json()
    );

    // The store revoked nothing and suggests nothing; the devices are as they were.
    assert!(env.pending().await.is_empty());
    let list = env.request("residents/list", json!({})).await;
    for r in list["data"]["residents"].as_array().unwrap() {
        assert!(
            !r["keys"].as_array().unwrap().is_empty(),
            "{} kept their keys: {r}",
            r["id"]
        );
    }
    assert_eq!(env.panel.digest(), digest_before);
    assert_eq!(env.panel_view(), panel_before);
    assert_eq!(env.lock_view(), lock_before);
    env.gw.stop();
}
