//! The Nuki lock driver and writer, through the real btleplug code, against a fake BlueZ on a
//! private D-Bus that simulates a Nuki Smart Lock (tests/python/fake_bluez).

#[path = "nuki/harness.rs"]
mod harness;
#[path = "support/python.rs"]
mod python;

use std::time::Duration;

use chrono::{TimeZone, Utc};
use harness::{FakeBluez, MemPort, DEVICE, SECURITY_PIN};
use leasegate::events::Event;
use leasegate::lock::writer::LockWriter;
use leasegate::lock::{pair_lock, run_lock, LockError, LockState};
use leasegate_nuki::PairingError;
use tokio_util::sync::CancellationToken;

const TZ: chrono_tz::Tz = chrono_tz::Europe::Berlin;

fn from() -> chrono::DateTime<Utc> {
    // 2026-12-01 08:30 in Berlin (UTC+1)
    Utc.with_ymd_and_hms(2026, 12, 1, 7, 30, 0).unwrap()
}

async fn paired(fake: &FakeBluez) -> MemPort {
    let port = MemPort::new(TZ);
    pair_lock(&fake.config(SECURITY_PIN), DEVICE, &port)
        .await
        .expect("pairing");
    port
}

fn writer(fake: &FakeBluez, port: &MemPort, pin: u32) -> LockWriter<MemPort> {
    let cfg = fake.config(pin);
    LockWriter::new(cfg.clone(), cfg.locks[0].clone(), port.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairing_stores_a_sealed_authorization_that_the_lock_knows() {
    let fake = FakeBluez::start(&[]);
    let port = paired(&fake).await;
    let blob = port.state_blob().expect("device state written");
    let state = LockState::open(&Sealer::from_key([7; 32]), Some(&blob)).unwrap();
    let auth = state.auth.expect("authorization kept");
    // Sealed at rest: the key's hex is not in the stored bytes.
    assert!(!String::from_utf8_lossy(&blob).contains(&auth.shared_key));
    assert!(!format!("{auth:?}").contains(&auth.shared_key));
    let lock = fake.state();
    assert_eq!(lock["auths"][auth.auth_id.to_string()]["name"], "leasegate");
}

use leasegate::seal::Sealer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_not_in_pairing_mode_is_reported_as_such_and_not_retried() {
    let fake = FakeBluez::start(&[]);
    fake.control("SetPairingMode", &["boolean:false"]);
    let port = MemPort::new(TZ);
    let e = pair_lock(&fake.config(SECURITY_PIN), DEVICE, &port)
        .await
        .unwrap_err();
    assert!(
        matches!(e, LockError::Pairing(PairingError::NotInPairingMode)),
        "{e}"
    );
    assert!(!e.is_retryable());
    assert!(port.state_blob().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_with_time_windows_land_in_the_property_time_zone_and_read_back() {
    let fake = FakeBluez::start(&[]);
    let port = paired(&fake).await;
    port.set(&[
        ("r1", "345678", from()),
        ("r2", "456789", from()),
        ("r3", "567891", from()),
    ]);
    let mut w = writer(&fake, &port, SECURITY_PIN);
    let report = w.pass(&port.work_now()).await.unwrap();
    assert_eq!((report.upserts, report.deletes), (3, 0), "{report:?}");
    assert!(
        report.failures.is_empty() && report.drift.is_empty(),
        "{report:?}"
    );
    assert_eq!(fake.code_values(), vec![345678, 456789, 567891]);
    for c in fake.codes().values() {
        // time limited | from 2026-12-01 08:30 local | no until | every day | all day
        assert_eq!(c["limits"], "01ea070c01081e00000000000000007f00000000");
        assert!(c["name"].as_str().unwrap().starts_with("lg r"));
    }
    let battery = report.battery.expect("battery read");
    assert_eq!(battery.percent, Some(84));
    // A second pass reads back, finds everything in place and writes nothing.
    let again = w.pass(&port.work_now()).await.unwrap();
    assert_eq!((again.upserts, again.deletes), (0, 0), "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_pin_is_updated_in_place_and_a_former_resident_is_removed() {
    let fake = FakeBluez::start(&[]);
    let port = paired(&fake).await;
    port.set(&[("r1", "345678", from()), ("r2", "456789", from())]);
    let mut w = writer(&fake, &port, SECURITY_PIN);
    w.pass(&port.work_now()).await.unwrap();
    let ids_before: Vec<String> = fake.codes().keys().cloned().collect();
    port.set(&[("r1", "998877", from())]);
    let report = w.pass(&port.work_now()).await.unwrap();
    assert_eq!((report.upserts, report.deletes), (1, 1), "{report:?}");
    assert_eq!(fake.code_values(), vec![998877]);
    // Updated, not re-added: r1 keeps its lock-side id.
    assert!(ids_before.contains(fake.codes().keys().next().unwrap()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_lock_is_retried_and_the_code_lands() {
    let fake = FakeBluez::start(&[]);
    let port = paired(&fake).await;
    fake.control("SetBusy", &["uint32:3"]);
    port.set(&[("r1", "345678", from())]);
    let report = writer(&fake, &port, SECURITY_PIN)
        .pass(&port.work_now())
        .await
        .unwrap();
    assert_eq!(report.upserts, 1, "{report:?}");
    assert_eq!(fake.code_values(), vec![345678]);
    assert_eq!(fake.state()["stats"]["busy_sent"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_security_pin_is_fatal_and_sent_only_once() {
    let fake = FakeBluez::start(&[]);
    let port = paired(&fake).await;
    port.set(&[("r1", "345678", from())]);
    let e = writer(&fake, &port, 4321)
        .pass(&port.work_now())
        .await
        .unwrap_err();
    assert!(e.is_fatal() && !e.is_retryable(), "{e}");
    assert!(!e.to_string().contains("4321"));
    assert_eq!(fake.state()["stats"]["errors"]["0x21"], 1);
    assert!(fake.code_values().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_lock_fails_only_the_codes_that_do_not_fit() {
    let fake = FakeBluez::start(&[]);
    let port = paired(&fake).await;
    fake.control("SetMaxCodes", &["uint32:2"]);
    port.set(&[
        ("r1", "345678", from()),
        ("r2", "456789", from()),
        ("r3", "567891", from()),
    ]);
    let report = writer(&fake, &port, SECURITY_PIN)
        .pass(&port.work_now())
        .await
        .unwrap();
    assert_eq!(report.upserts, 2);
    assert_eq!(report.failures.len(), 1, "{report:?}");
    assert!(report.failures[0].contains("no more codes"));
    assert!(!report.failures[0].contains("567891"));
    assert_eq!(fake.code_values().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disconnect_mid_batch_loses_nothing_and_adds_nothing_twice() {
    let fake = FakeBluez::start(&[]);
    let port = paired(&fake).await;
    let residents = [
        ("r1", "345678", from()),
        ("r2", "456789", from()),
        ("r3", "567891", from()),
        ("r4", "678912", from()),
        ("r5", "789123", from()),
    ];
    port.set(&residents);
    // Cut the link partway through the adds (list ≈ 6 writes, each add ≈ 10).
    fake.control("DisconnectAfterWrites", &["uint32:24"]);
    let mut w = writer(&fake, &port, SECURITY_PIN);
    let e = w.pass(&port.work_now()).await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    let landed = fake.code_values().len();
    assert!(landed < 5, "the disconnect came too late to test anything");
    // A restarted gateway: a new writer on the same persisted state.
    let mut w = writer(&fake, &port, SECURITY_PIN);
    let report = w.pass(&port.work_now()).await.unwrap();
    assert!(report.failures.is_empty(), "{report:?}");
    assert_eq!(
        fake.code_values(),
        vec![345678, 456789, 567891, 678912, 789123]
    );
    let state = LockState::open(&Sealer::from_key([7; 32]), port.state_blob().as_deref()).unwrap();
    assert_eq!(state.codes.len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_deleted_on_the_lock_is_reported_as_drift_and_restored() {
    let fake = FakeBluez::start(&[]);
    let port = paired(&fake).await;
    port.set(&[("r1", "345678", from()), ("r2", "456789", from())]);
    let mut w = writer(&fake, &port, SECURITY_PIN);
    w.pass(&port.work_now()).await.unwrap();
    let id = fake.codes().keys().next().unwrap().clone();
    fake.control("RemoveCode", &[&format!("uint16:{id}")]);
    let mut events = port.events.subscribe();
    let report = w.pass(&port.work_now()).await.unwrap();
    assert_eq!(report.drift.len(), 1, "{report:?}");
    assert_eq!(report.upserts, 1);
    assert_eq!(fake.code_values(), vec![345678, 456789]);
    let mut drift = false;
    while let Ok(e) = events.try_recv() {
        drift |= matches!(e, Event::Drift { .. });
    }
    assert!(drift, "no drift event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_of_ours_left_on_the_lock_after_lost_state_is_revoked() {
    let fake = FakeBluez::start(&[]);
    let port = paired(&fake).await;
    port.set(&[("r1", "345678", from()), ("r2", "456789", from())]);
    writer(&fake, &port, SECURITY_PIN)
        .pass(&port.work_now())
        .await
        .unwrap();
    // Forget the confirmed codes (keep the pairing), and r2 moves out.
    let sealer = Sealer::from_key([7; 32]);
    let mut state = LockState::open(&sealer, port.state_blob().as_deref()).unwrap();
    state.codes.clear();
    use leasegate::lock::LockPort;
    port.put_device_state(DEVICE, &state.seal(&sealer))
        .await
        .unwrap();
    port.set(&[("r1", "345678", from())]);
    let report = writer(&fake, &port, SECURITY_PIN)
        .pass(&port.work_now())
        .await
        .unwrap();
    assert_eq!((report.upserts, report.deletes), (0, 1), "{report:?}");
    assert_eq!(fake.code_values(), vec![345678]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_task_applies_a_change_settles_and_publishes_battery() {
    let fake = FakeBluez::start(&[]);
    let port = paired(&fake).await;
    let cfg = fake.config(SECURITY_PIN);
    let mut events = port.events.subscribe();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(run_lock(
        cfg.clone(),
        cfg.locks[0].clone(),
        port.clone(),
        cancel.clone(),
    ));
    port.set(&[("r1", "345678", from())]);
    let (mut applied, mut battery) = (false, false);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !(applied && battery) {
        let e = tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("events before the deadline")
            .unwrap();
        match e {
            Event::AccessApplied { generation, .. } => applied = generation == 1,
            Event::DeviceStatus(s) => battery |= s.battery.is_some() && s.online,
            _ => {}
        }
    }
    assert_eq!(port.settled(), 1);
    assert_eq!(fake.code_values(), vec![345678]);
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("writer stops on cancel")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_the_lock_keeps_refusing_raises_revocation_overdue() {
    let fake = FakeBluez::start(&[]);
    let port = paired(&fake).await;
    port.set(&[("r1", "345678", from()), ("r2", "456789", from())]);
    let mut cfg = fake.config(SECURITY_PIN);
    writer(&fake, &port, SECURITY_PIN)
        .pass(&port.work_now())
        .await
        .unwrap();
    // r2 moves out, and the lock answers BUSY to everything from now on.
    port.set(&[("r1", "345678", from())]);
    fake.control("SetBusy", &["uint32:1000"]);
    cfg.revocation_deadline = Duration::from_millis(1);
    let mut w = LockWriter::new(cfg.clone(), cfg.locks[0].clone(), port.clone());
    let mut events = port.events.subscribe();
    // The read-back itself is refused: the pass fails (to be retried with backoff) …
    let e = w.pass(&port.work_now()).await.unwrap_err();
    assert!(e.is_retryable() && !e.is_fatal(), "{e}");
    // … and the removal past its deadline is raised.
    let mut overdue = None;
    while let Ok(e) = events.try_recv() {
        if let Event::RevocationOverdue { residents, .. } = e {
            overdue = Some(residents);
        }
    }
    assert_eq!(overdue, Some(vec!["r2".to_string()]));
    assert_eq!(fake.code_values(), vec![345678, 456789]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_task_reconnects_after_a_disconnect_and_finishes_the_batch() {
    let fake = FakeBluez::start(&[]);
    let port = paired(&fake).await;
    let cfg = fake.config(SECURITY_PIN);
    fake.control("DisconnectAfterWrites", &["uint32:20"]);
    let mut events = port.events.subscribe();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(run_lock(
        cfg.clone(),
        cfg.locks[0].clone(),
        port.clone(),
        cancel.clone(),
    ));
    port.set(&[
        ("r1", "345678", from()),
        ("r2", "456789", from()),
        ("r3", "567891", from()),
    ]);
    let (mut failed, mut applied) = (false, false);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !applied {
        match tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("applied before the deadline")
            .unwrap()
        {
            Event::DeviceWriteFailed { retryable, .. } => failed |= retryable,
            Event::AccessApplied { .. } => applied = true,
            _ => {}
        }
    }
    assert!(failed, "the disconnect was not noticed");
    assert_eq!(fake.code_values(), vec![345678, 456789, 567891]);
    assert!(fake.state()["connects"].as_u64().unwrap() >= 2);
    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorizations_can_be_added_listed_and_removed() {
    use leasegate::lock::{BleLock, Session};
    use leasegate_nuki::{Op, Outcome, PinWidth, SecurityPin, SharedKey, TimeLimits};
    let fake = FakeBluez::start(&[]);
    let port = paired(&fake).await;
    let state = LockState::open(&Sealer::from_key([7; 32]), port.state_blob().as_deref()).unwrap();
    let auth = state.auth.unwrap();
    let mut key = [0u8; 32];
    for (i, b) in key.iter_mut().enumerate() {
        *b = u8::from_str_radix(&auth.shared_key[2 * i..2 * i + 2], 16).unwrap();
    }
    let s = Session {
        auth_id: auth.auth_id,
        key: SharedKey::from_bytes(key),
    };
    let pin = SecurityPin::new(SECURITY_PIN, PinWidth::U16).unwrap();
    let cfg = fake.config(SECURITY_PIN);
    let mut link = BleLock::connect(&cfg, &cfg.locks[0]).await.unwrap();
    let added = link
        .exchange(
            &s,
            Op::AddAuthorization {
                name: "caretaker".into(),
                id_type: 0,
                shared_key: SharedKey::from_bytes([9; 32]),
                remote_allowed: true,
                limits: TimeLimits::default(),
            },
            &pin,
        )
        .await
        .unwrap();
    let Outcome::AuthorizationAdded { auth_id } = added else {
        panic!("{added:?}")
    };
    let names = |o: Outcome| match o {
        Outcome::Authorizations(v) => v.into_iter().map(|a| a.name).collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    let list = Op::ListAuthorizations {
        offset: 0,
        count: 50,
    };
    let listed = names(link.exchange(&s, list.clone(), &pin).await.unwrap());
    assert_eq!(listed, vec!["leasegate", "caretaker"]);
    let removed = link
        .exchange(&s, Op::RemoveAuthorization { auth_id }, &pin)
        .await
        .unwrap();
    assert_eq!(removed, Outcome::Completed);
    let listed = names(link.exchange(&s, list, &pin).await.unwrap());
    assert_eq!(listed, vec!["leasegate"]);
    link.disconnect().await;
}

/// The same writer on the in-process simulated lock (the demo's connector): no BlueZ.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_that_found_its_lock_unpaired_writes_at_once_when_the_lock_is_paired() {
    use leasegate::config::nuki::{LockAddress, LockConfig, NukiConfig};
    use leasegate::lock::{
        pair_lock_with, run_lock_with, Connector, SimulatedLock, SimulatedLocks,
    };
    use leasegate_nuki::{PinWidth, SecurityPin};

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("nuki.pin"), format!("{SECURITY_PIN}\n")).unwrap();
    let nuki = NukiConfig {
        command_timeout: Duration::from_millis(200),
        secrets_base: dir.path().to_path_buf(),
        locks: vec![LockConfig {
            device: DEVICE.into(),
            address: LockAddress::Name("Simulated Nuki".into()),
            security_pin_file: Some("nuki.pin".into()),
            pin_width: 16,
        }],
        ..NukiConfig::default()
    };
    let locks = SimulatedLocks::default();
    let lock = locks.add(SimulatedLock::new(
        DEVICE,
        SecurityPin::new(SECURITY_PIN, PinWidth::U16).unwrap(),
    ));
    lock.lock().unwrap().set_pairing_mode(true);
    let connector = Connector::Simulated(locks);
    let port = MemPort::new(TZ);
    port.set(&[("r1", "345678", from())]);
    let mut events = port.events.subscribe();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(run_lock_with(
        nuki.clone(),
        nuki.locks[0].clone(),
        port.clone(),
        cancel.clone(),
        connector.clone(),
    ));
    // Not paired: an operator must act, so the writer does not retry on its own.
    loop {
        let e = tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .expect("the writer reports")
            .unwrap();
        if let Event::DeviceWriteFailed {
            error, retryable, ..
        } = e
        {
            assert!(error.contains("not paired"), "{error}");
            assert!(!retryable);
            break;
        }
    }
    pair_lock_with(&nuki, DEVICE, &port, &connector)
        .await
        .expect("pairing the simulated lock");
    // Nothing changed in the outbox: only pairing can have woken the writer.
    loop {
        let e = tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .expect("the code lands soon after pairing, not at the next read-back")
            .unwrap();
        if let Event::AccessApplied { generation, .. } = e {
            assert_eq!(generation, 1);
            break;
        }
    }
    let codes = lock.lock().unwrap().codes();
    assert_eq!(codes.len(), 1);
    assert_eq!(codes[0].code.expose(), 345678);
    assert_eq!(codes[0].name, "lg r1");
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("writer stops on cancel")
        .unwrap();
}
