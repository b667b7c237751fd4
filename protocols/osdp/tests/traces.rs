//! Every frame and Secure Channel value in the reference traces (libosdp 3.2.9 PD), checked
//! byte for byte: codec, CRC, session keys, cryptograms, MACs, ciphertext, and whole
//! sessions replayed through our CP link and our PD.

mod common;

use std::time::{Duration, Instant};

use common::{arr, hex, traces, Replay, CAPTURES};
use leasegate_osdp::codec::{decode, Frame};
use leasegate_osdp::cp::{Event, KeyUse, LinkSettings, PdLink};
use leasegate_osdp::crc::crc16;
use leasegate_osdp::message::{Capability, Command, PdId, Reply, VendorCode};
use leasegate_osdp::pd::{Pd, PdApp, PdSettings};
use leasegate_osdp::secure::{Key, SessionKeys};
use serde_json::Value;

fn frames(capture: &str) -> Vec<Value> {
    traces()[capture]["frames"]
        .as_array()
        .expect("frames")
        .clone()
}

#[test]
fn every_trace_frame_decodes_to_its_logged_fields_and_re_encodes_to_the_same_bytes() {
    let mut n = 0;
    for capture in CAPTURES {
        for f in frames(capture) {
            let wire = hex(&f["wire"]);
            let (frame, used) =
                decode(&wire).unwrap_or_else(|e| panic!("{capture} {}: {e}", f["i"]));
            assert_eq!(used, wire.len(), "{capture} {}", f["i"]);
            assert_eq!(u64::from(frame.address), f["address"].as_u64().unwrap());
            assert_eq!(frame.reply, f["dir"] == "PD->CP");
            assert_eq!(u64::from(frame.sqn), f["sqn"].as_u64().unwrap());
            assert_eq!(frame.use_crc, f["crc_mode"].as_bool().unwrap());
            assert_eq!(frame.scb.is_some(), f["scb_present"].as_bool().unwrap());
            if let Some(scb) = &frame.scb {
                let mut raw = vec![(2 + scb.data.len()) as u8, scb.kind];
                raw.extend_from_slice(&scb.data);
                assert_eq!(raw, hex(&f["scb"]));
            }
            assert_eq!(vec![frame.code], hex(&f["code"]));
            assert_eq!(frame.data, hex(&f["data"]));
            if let Some(mac) = f.get("mac") {
                assert_eq!(frame.mac.unwrap().to_vec(), hex(mac));
            }
            assert_eq!(frame.wire_len() as u64, f["len_field"].as_u64().unwrap());
            let again = if f["mark_ff"].as_bool().unwrap() {
                frame.encode_with_mark()
            } else {
                frame.encode()
            };
            assert_eq!(again, wire, "{capture} {}", f["i"]);
            n += 1;
        }
    }
    assert_eq!(n, 6 + 12 + 12 + 8 + 10);
}

#[test]
fn every_trace_crc_is_crc16_aug_ccitt_over_its_logged_input() {
    for capture in CAPTURES {
        for f in frames(capture) {
            let want = u16::from_str_radix(
                f["crc_value"].as_str().unwrap().trim_start_matches("0x"),
                16,
            )
            .unwrap();
            assert_eq!(crc16(&hex(&f["crc_input"])), want);
        }
    }
}

const SC_CAPTURES: [&str; 3] = [
    "b_secure_channel",
    "b2_secure_channel_event_mode",
    "c2_own_cp_secure_channel",
];

#[test]
fn session_keys_cryptograms_and_initial_rmac_match_every_secure_trace() {
    for capture in SC_CAPTURES {
        let t = &traces()[capture];
        let scbk = Key::new(arr(&t["scbk"]));
        let rnd_a: [u8; 8] = arr(&t["rnd_a"]);
        let rnd_b: [u8; 8] = arr(&t["rnd_b"]);
        let keys = SessionKeys::derive(&scbk, &rnd_a);
        assert_eq!(keys.s_enc.expose().to_vec(), hex(&t["s_enc"]), "{capture}");
        assert_eq!(keys.s_mac1.expose().to_vec(), hex(&t["s_mac1"]));
        assert_eq!(keys.s_mac2.expose().to_vec(), hex(&t["s_mac2"]));
        assert_eq!(
            keys.client_cryptogram(&rnd_a, &rnd_b).to_vec(),
            hex(&t["client_cryptogram"])
        );
        let server = keys.server_cryptogram(&rnd_a, &rnd_b);
        assert_eq!(server.to_vec(), hex(&t["server_cryptogram"]));
        assert_eq!(keys.initial_rmac(&server).to_vec(), hex(&t["rmac_i"]));
    }
}

#[test]
fn every_mac_and_every_ciphertext_in_the_traces_is_reproduced() {
    let mut macs = 0;
    let mut encs = 0;
    for capture in SC_CAPTURES {
        let t = &traces()[capture];
        let keys = SessionKeys::derive(&Key::new(arr(&t["scbk"])), &arr(&t["rnd_a"]));
        for f in frames(capture) {
            if let Some(input) = f.get("mac_input") {
                let mac = keys.mac(&arr(&f["mac_iv"]), &hex(input));
                assert_eq!(mac.to_vec(), hex(&f["mac_full"]), "{capture} {}", f["i"]);
                let (frame, _) = decode(&hex(&f["wire"])).unwrap();
                assert_eq!(frame.header_and_body(), hex(input));
                macs += 1;
            }
            if let Some(iv) = f.get("enc_iv") {
                let iv: [u8; 16] = arr(iv);
                let plain = hex(&f["plaintext"]);
                assert_eq!(
                    keys.encrypt(&iv, &plain),
                    hex(&f["data"]),
                    "{capture} {}",
                    f["i"]
                );
                assert_eq!(keys.decrypt(&iv, &hex(&f["data"])).unwrap(), plain);
                encs += 1;
            }
        }
    }
    assert!(macs >= 12 && encs >= 8, "{macs} MACs, {encs} ciphertexts");
}

fn trace_pd_id() -> (PdId, Vec<Capability>) {
    let Reply::PdId(id) = Reply::decode(0x45, &hex(&frames("a_plain_mfg")[1]["data"])).unwrap()
    else {
        panic!()
    };
    let Reply::PdCap(caps) = Reply::decode(0x46, &hex(&frames("a_plain_mfg")[3]["data"])).unwrap()
    else {
        panic!()
    };
    (id, caps)
}

/// Drive our CP link through a capture: what it sends must equal the CP frames, and the PD
/// frames are fed back to it. Returns the events.
fn replay_cp(
    capture: &str,
    settings: LinkSettings,
    queue: Vec<Command>,
    rnd: Vec<u8>,
) -> Vec<Event> {
    let mut link = PdLink::new(settings);
    for (i, c) in queue.into_iter().enumerate() {
        link.enqueue(i as u64, c);
    }
    let mut rng = Replay(rnd);
    let mut now = Instant::now();
    let mut events = Vec::new();
    for f in frames(capture) {
        let wire = hex(&f["wire"]);
        if f["dir"] == "CP->PD" {
            let sent = link
                .poll_transmit(now, &mut rng)
                .expect("the link has something to send");
            assert_eq!(
                hex::encode(&sent),
                hex::encode(&wire),
                "{capture} frame {}",
                f["i"]
            );
        } else {
            let (frame, _) = decode(&wire).unwrap();
            events.extend(link.handle_reply(&frame, now));
        }
        now += Duration::from_millis(5);
    }
    events
}

#[test]
fn our_cp_link_sends_the_secure_session_of_trace_b_byte_for_byte() {
    let t = &traces()["b_secure_channel"];
    // The second MFG of the capture differs from the first in its first data byte.
    let mfg = |first: u8| {
        let mut data: Vec<u8> = (0..32).collect();
        data[0] = first;
        Command::Mfg {
            vendor: VendorCode(0xabcdef),
            data,
        }
    };
    let mut s = LinkSettings::new(101);
    s.keys = vec![Key::new(arr(&t["scbk"]))];
    let events = replay_cp(
        "b_secure_channel",
        s,
        vec![mfg(0), mfg(1)],
        hex(&t["rnd_a"]),
    );
    assert!(
        matches!(
            events[0],
            Event::Online {
                key: KeyUse::Key(0),
                ..
            }
        ),
        "{events:?}"
    );
    let replies: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, Event::MfgReply(_)))
        .collect();
    assert_eq!(replies.len(), 2);
    let done: Vec<_> = events
        .iter()
        .filter_map(|e| {
            if let Event::Done { tag, .. } = e {
                Some(*tag)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(done, vec![0, 1]);
}

#[test]
fn our_cp_link_sends_the_plain_session_of_trace_a_byte_for_byte() {
    let mut s = LinkSettings::new(101);
    s.require_secure = false;
    let mfg = Command::Mfg {
        vendor: VendorCode(0xabcdef),
        data: (0..32).collect(),
    };
    let events = replay_cp("a_plain_mfg", s, vec![mfg], vec![]);
    assert!(matches!(
        events[0],
        Event::Online {
            key: KeyUse::Plain,
            ..
        }
    ));
    assert!(
        matches!(&events[1], Event::MfgReply(Reply::MfgReply { data, .. }) if *data == (0..32).collect::<Vec<u8>>())
    );
}

#[test]
fn an_mfgrep_deferred_to_the_next_poll_reaches_the_cp_as_an_event() {
    let t = &traces()["b2_secure_channel_event_mode"];
    let mut s = LinkSettings::new(101);
    s.keys = vec![Key::new(arr(&t["scbk"]))];
    let mfg = Command::Mfg {
        vendor: VendorCode(0xabcdef),
        data: (0..32).collect(),
    };
    let events = replay_cp(
        "b2_secure_channel_event_mode",
        s,
        vec![mfg],
        hex(&t["rnd_a"]),
    );
    assert!(
        events.contains(&Event::Done {
            tag: 0,
            reply: Reply::Ack
        }),
        "{events:?}"
    );
    let want = Reply::MfgReply {
        vendor: VendorCode(0xabcdef),
        data: hex::decode("4f4b00010203").unwrap(),
    };
    assert_eq!(events.last(), Some(&Event::MfgReply(want)));
}

struct Echo {
    deferred: bool,
    pending: Option<Reply>,
}

impl PdApp for Echo {
    fn mfg(&mut self, vendor: VendorCode, data: &[u8]) -> Reply {
        if self.deferred {
            let mut d = b"OK".to_vec();
            d.extend_from_slice(&data[..4]);
            self.pending = Some(Reply::MfgReply { vendor, data: d });
            Reply::Ack
        } else {
            Reply::MfgReply {
                vendor,
                data: data.to_vec(),
            }
        }
    }
    fn keyset(&mut self, _key: &Key) {}
    fn poll_event(&mut self) -> Option<Reply> {
        self.pending.take()
    }
}

/// Feed a capture's CP frames to our PD: its replies must equal the libosdp PD's.
fn replay_pd(capture: &str, scbk: Option<Key>, deferred: bool, rnd_b: Vec<u8>) {
    let (id, caps) = trace_pd_id();
    let settings = PdSettings {
        address: 101,
        id,
        caps,
        scbk,
        install_mode: false,
        enforce_secure: false,
    };
    let mut pd = Pd::new(
        settings,
        Echo {
            deferred,
            pending: None,
        },
    );
    let mut rng = Replay(rnd_b);
    let fs = frames(capture);
    let mut n = 0;
    for pair in fs.chunks(2) {
        let (cmd, _) = decode(&hex(&pair[0]["wire"])).unwrap();
        let reply = pd.handle(&cmd, &mut rng).expect("a reply");
        assert_eq!(
            hex::encode(reply),
            hex::encode(hex(&pair[1]["wire"])),
            "{capture} frame {}",
            pair[1]["i"]
        );
        n += 1;
    }
    assert_eq!(n, fs.len() / 2);
}

#[test]
fn our_pd_answers_every_trace_exactly_as_the_libosdp_pd_did() {
    let t = traces();
    replay_pd("a_plain_mfg", None, false, vec![]);
    replay_pd("c_poll_ack_and_nak", None, false, vec![]);
    for (capture, deferred) in [
        ("b_secure_channel", false),
        ("b2_secure_channel_event_mode", true),
        ("c2_own_cp_secure_channel", false),
    ] {
        replay_pd(
            capture,
            Some(Key::new(arr(&t[capture]["scbk"]))),
            deferred,
            hex(&t[capture]["rnd_b"]),
        );
    }
}

#[test]
fn frame_fields_of_a_poll_round_trip_through_the_codec() {
    let f = Frame::new(0x65, false, 0, 0x60, vec![]);
    assert_eq!(
        f.encode_with_mark(),
        hex::decode("ff5365080004606090").unwrap()
    );
}
