//! The CP link state machine against our PD state machine, in memory (no I/O, time passed
//! in): handshake, NAKs, timeouts, busy, key rotation, install mode, noise.

use std::time::{Duration, Instant};

use leasegate_osdp::codec::decode;
use leasegate_osdp::cp::{Event, KeyUse, LinkError, LinkSettings, PdLink};
use leasegate_osdp::message::{Capability, Command, NakReason, PdId, Reply, VendorCode};
use leasegate_osdp::pd::{Pd, PdApp, PdSettings};
use leasegate_osdp::profile::{self, Credential, PanelDb, Record, Request, Response, ResponseBody};
use leasegate_osdp::secure::Key;
use rand_core::{OsRng, RngCore};

const VENDOR: VendorCode = VendorCode(0x4c4701);

#[derive(Default)]
struct Panel {
    db: PanelDb,
    keys_set: Vec<Key>,
    busy_once: bool,
    nak_next: Option<NakReason>,
}

impl PdApp for Panel {
    fn mfg(&mut self, vendor: VendorCode, data: &[u8]) -> Reply {
        if std::mem::take(&mut self.busy_once) {
            return Reply::Busy;
        }
        if let Some(reason) = self.nak_next.take() {
            return Reply::Nak {
                reason,
                detail: vec![],
            };
        }
        match self.db.handle(data, 1024) {
            Some(d) => Reply::MfgReply { vendor, data: d },
            None => Reply::Nak {
                reason: NakReason::Unprocessable,
                detail: vec![],
            },
        }
    }
    fn keyset(&mut self, key: &Key) {
        self.keys_set.push(key.clone());
    }
}

fn pd(scbk: Option<Key>, install_mode: bool) -> Pd<Panel> {
    let id = PdId {
        vendor: VENDOR,
        model: 1,
        version: 1,
        serial: 7,
        firmware: [1, 0, 0],
    };
    let caps = vec![Capability {
        function: 10,
        compliance: 0,
        number: 4,
    }];
    let settings = PdSettings {
        address: 3,
        id,
        caps,
        scbk,
        install_mode,
        enforce_secure: true,
    };
    Pd::new(
        settings,
        Panel {
            db: PanelDb::new(100),
            ..Panel::default()
        },
    )
}

fn link(keys: Vec<Key>, install_mode: bool) -> PdLink {
    let mut s = LinkSettings::new(3);
    s.keys = keys;
    s.install_mode = install_mode;
    PdLink::new(s)
}

/// One bus turn: the link sends (if it has something), `line` may alter or drop the bytes
/// each way, the PD answers, the link gets the reply or a timeout.
fn turn(
    link: &mut PdLink,
    pd: &mut Pd<Panel>,
    now: &mut Instant,
    line: &mut impl FnMut(&mut Vec<u8>) -> bool,
) -> Vec<Event> {
    *now += Duration::from_millis(10);
    let Some(mut cmd) = link.poll_transmit(*now, &mut OsRng) else {
        return Vec::new();
    };
    let reply = if line(&mut cmd) {
        decode(&cmd)
            .ok()
            .and_then(|(f, _)| pd.handle(&f, &mut OsRng))
    } else {
        None
    };
    let reply = reply.and_then(|mut r| line(&mut r).then_some(r));
    match reply.as_deref().map(decode) {
        Some(Ok((f, _))) => link.handle_reply(&f, *now),
        _ => {
            *now += Duration::from_millis(200);
            link.handle_timeout(*now)
        }
    }
}

fn clean(_: &mut Vec<u8>) -> bool {
    true
}

fn run_until(
    link: &mut PdLink,
    pd: &mut Pd<Panel>,
    now: &mut Instant,
    turns: usize,
    mut stop: impl FnMut(&Event) -> bool,
) -> Vec<Event> {
    let mut all = Vec::new();
    for _ in 0..turns {
        let ev = turn(link, pd, now, &mut clean);
        let done = ev.iter().any(&mut stop);
        all.extend(ev);
        if done {
            return all;
        }
    }
    panic!("condition not reached; events: {all:?}");
}

fn online(e: &Event) -> bool {
    matches!(e, Event::Online { .. })
}

fn record(id: u32, version: u32) -> Record {
    Record {
        id,
        version,
        doors: 0b101,
        valid_from: 1_700_000_000,
        valid_until: u32::MAX,
        credential: Credential::Card {
            bits: 26,
            data: vec![0x12, 0x34, 0x56, 0x40],
        },
    }
}

#[test]
fn the_link_opens_a_secure_session_with_the_panel_key_before_anything_else() {
    let key = Key::random(&mut OsRng);
    let (mut l, mut p, mut now) = (
        link(vec![key.clone()], false),
        pd(Some(key), false),
        Instant::now(),
    );
    let ev = run_until(&mut l, &mut p, &mut now, 10, online);
    assert!(matches!(
        ev.last(),
        Some(Event::Online {
            key: KeyUse::Key(0),
            ..
        })
    ));
    assert!(p.is_secure());
    assert_eq!(l.receive_buffer(), Some(1024));
}

#[test]
fn a_nak_puts_the_command_in_a_typed_error_and_drops_it_from_the_queue() {
    let key = Key::random(&mut OsRng);
    let (mut l, mut p, mut now) = (
        link(vec![key.clone()], false),
        pd(Some(key), false),
        Instant::now(),
    );
    run_until(&mut l, &mut p, &mut now, 10, online);
    p.app.nak_next = Some(NakReason::Unprocessable);
    l.enqueue(
        9,
        Command::Mfg {
            vendor: VENDOR,
            data: Request::Digest.encode(1),
        },
    );
    let ev = run_until(&mut l, &mut p, &mut now, 5, |e| {
        matches!(e, Event::Nak { .. })
    });
    assert_eq!(
        ev.last(),
        Some(&Event::Nak {
            tag: 9,
            reason: NakReason::Unprocessable
        })
    );
    assert_eq!(l.queued(), 0);
    assert!(l.is_online());
}

#[test]
fn a_busy_panel_gets_the_same_command_again_and_it_completes() {
    let key = Key::random(&mut OsRng);
    let (mut l, mut p, mut now) = (
        link(vec![key.clone()], false),
        pd(Some(key), false),
        Instant::now(),
    );
    run_until(&mut l, &mut p, &mut now, 10, online);
    p.app.busy_once = true;
    l.enqueue(
        1,
        Command::Mfg {
            vendor: VENDOR,
            data: Request::Upsert(vec![record(5, 1)]).encode(77),
        },
    );
    let ev = run_until(&mut l, &mut p, &mut now, 10, |e| {
        matches!(e, Event::Done { .. })
    });
    assert!(
        ev.iter()
            .all(|e| !matches!(e, Event::Offline(_) | Event::Nak { .. })),
        "{ev:?}"
    );
    assert_eq!(p.app.db.get(5), Some(&record(5, 1)));
}

#[test]
fn a_panel_that_stops_answering_goes_offline_after_three_failures_and_is_probed_later() {
    let key = Key::random(&mut OsRng);
    let (mut l, mut p, mut now) = (
        link(vec![key.clone()], false),
        pd(Some(key), false),
        Instant::now(),
    );
    run_until(&mut l, &mut p, &mut now, 10, online);
    let mut dead = |_: &mut Vec<u8>| false;
    let mut events = Vec::new();
    for _ in 0..3 {
        events.extend(turn(&mut l, &mut p, &mut now, &mut dead));
    }
    assert_eq!(events, vec![Event::Offline(LinkError::NoReply(3))]);
    assert!(!l.is_online());
    assert!(
        l.poll_transmit(now, &mut OsRng).is_none(),
        "no probe before offline_retry"
    );
    now += Duration::from_secs(1);
    run_until(&mut l, &mut p, &mut now, 10, online);
    assert!(l.is_online());
}

#[test]
fn a_lost_reply_gets_the_command_sent_again_and_it_is_applied_once() {
    let key = Key::random(&mut OsRng);
    let (mut l, mut p, mut now) = (
        link(vec![key.clone()], false),
        pd(Some(key), false),
        Instant::now(),
    );
    run_until(&mut l, &mut p, &mut now, 10, online);
    l.enqueue(
        1,
        Command::Mfg {
            vendor: VENDOR,
            data: Request::Upsert(vec![record(5, 1)]).encode(1),
        },
    );
    // The PD applies the upsert, its reply is lost.
    let mut n = 0;
    let mut lose_reply = |_: &mut Vec<u8>| {
        n += 1;
        n != 2
    };
    assert!(turn(&mut l, &mut p, &mut now, &mut lose_reply).is_empty());
    assert_eq!(p.app.db.len(), 1);
    let ev = run_until(&mut l, &mut p, &mut now, 10, |e| {
        matches!(e, Event::Done { .. })
    });
    let reply = ev.iter().find_map(|e| match e {
        Event::MfgReply(Reply::MfgReply { data, .. }) => Some(Response::decode(data).unwrap()),
        _ => None,
    });
    assert_eq!(
        reply.unwrap().body,
        ResponseBody::Upsert(vec![profile::Status::Ok]),
        "idempotent resend"
    );
    assert_eq!(p.app.db.len(), 1);
}

#[test]
fn after_a_crash_mid_rotation_the_link_finds_which_key_the_panel_holds() {
    let old = Key::random(&mut OsRng);
    let new = Key::random(&mut OsRng);
    // The panel already took the new key; we restart knowing both.
    let (mut l, mut p, mut now) = (
        link(vec![old, new.clone()], false),
        pd(Some(new), false),
        Instant::now(),
    );
    let ev = run_until(&mut l, &mut p, &mut now, 10, online);
    assert!(
        matches!(
            ev.last(),
            Some(Event::Online {
                key: KeyUse::Key(1),
                ..
            })
        ),
        "{ev:?}"
    );
}

#[test]
fn the_install_key_is_refused_while_the_commissioning_window_is_closed() {
    let (mut l, mut p, mut now) = (
        link(vec![Key::random(&mut OsRng)], false),
        pd(None, true),
        Instant::now(),
    );
    let mut events = Vec::new();
    for _ in 0..10 {
        events.extend(turn(&mut l, &mut p, &mut now, &mut clean));
    }
    assert!(
        events.contains(&Event::Offline(LinkError::KeyMismatch)),
        "{events:?}"
    );
    assert!(!events.iter().any(online));
    assert!(!LinkError::KeyMismatch.is_retryable());
}

#[test]
fn commissioning_opens_with_the_install_key_and_keyset_moves_the_panel_to_a_new_key() {
    let (mut l, mut p, mut now) = (link(vec![], true), pd(None, true), Instant::now());
    let ev = run_until(&mut l, &mut p, &mut now, 10, online);
    assert!(matches!(
        ev.last(),
        Some(Event::Online {
            key: KeyUse::InstallKey,
            ..
        })
    ));
    let new = Key::random(&mut OsRng);
    l.enqueue(1, Command::KeySet(new.clone()));
    run_until(&mut l, &mut p, &mut now, 5, |e| {
        matches!(
            e,
            Event::Done {
                tag: 1,
                reply: Reply::Ack
            }
        )
    });
    assert_eq!(p.app.keys_set, vec![new.clone()]);
    l.set_keys(vec![new], false);
    l.restart();
    let ev = run_until(&mut l, &mut p, &mut now, 10, online);
    assert!(matches!(
        ev.last(),
        Some(Event::Online {
            key: KeyUse::Key(0),
            ..
        })
    ));
}

#[test]
fn a_plain_command_to_a_panel_that_enforces_security_is_refused() {
    let key = Key::random(&mut OsRng);
    let mut l = {
        let mut s = LinkSettings::new(3);
        s.require_secure = false;
        PdLink::new(s)
    };
    let (mut p, mut now) = (pd(Some(key), false), Instant::now());
    run_until(&mut l, &mut p, &mut now, 10, online);
    l.enqueue(
        4,
        Command::Mfg {
            vendor: VENDOR,
            data: Request::Digest.encode(1),
        },
    );
    let ev = run_until(&mut l, &mut p, &mut now, 5, |e| {
        matches!(e, Event::Nak { .. })
    });
    assert_eq!(
        ev.last(),
        Some(&Event::Nak {
            tag: 4,
            reason: NakReason::ScConditions
        })
    );
}

#[test]
fn with_bit_errors_on_the_line_no_wrong_record_is_ever_applied_and_all_writes_land() {
    let key = Key::random(&mut OsRng);
    for rate in [1e-3, 1e-2] {
        let (mut l, mut p, mut now) = (
            link(vec![key.clone()], false),
            pd(Some(key.clone()), false),
            Instant::now(),
        );
        let wanted: Vec<Record> = (1..=60).map(|i| record(i, i * 2)).collect();
        for (i, batch) in profile::pack_upserts(&wanted, 64)
            .unwrap()
            .into_iter()
            .enumerate()
        {
            l.enqueue(
                i as u64,
                Command::Mfg {
                    vendor: VENDOR,
                    data: Request::Upsert(batch).encode(i as u32),
                },
            );
        }
        let total = l.queued();
        let mut flips = 0;
        let mut noisy = |b: &mut Vec<u8>| {
            for byte in b.iter_mut() {
                if (OsRng.next_u32() as f64) < rate * f64::from(u32::MAX) {
                    *byte ^= 1 << (OsRng.next_u32() % 8);
                    flips += 1;
                }
            }
            true
        };
        let mut done = 0;
        for _ in 0..200_000 {
            for e in turn(&mut l, &mut p, &mut now, &mut noisy) {
                if matches!(e, Event::Done { .. }) {
                    done += 1;
                }
                assert!(!matches!(e, Event::Nak { .. }), "rate {rate}: {e:?}");
            }
            // Read-back after every turn: nothing the CP did not send is ever stored.
            for r in p.app.db.records() {
                assert_eq!(Some(r), wanted.iter().find(|w| w.id == r.id));
            }
            if done == total {
                break;
            }
        }
        assert_eq!(done, total, "rate {rate}: all batches acknowledged");
        assert_eq!(p.app.db.digest(), profile::digest(&wanted));
        assert!(flips > 0);
    }
}
