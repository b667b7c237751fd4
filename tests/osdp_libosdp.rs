//! Interoperability with libosdp 3.2.9 (PyPI `libosdp`) as the PD, over a pty pair: its MFG
//! callback keeps a credential store by the leasegate profile (ACK, then the response as a
//! ManufacturerReply event on the next POLL). Secure channel through our driver (SCBK-D in
//! the commissioning window, then KEYSET), and a plain-channel session through the link
//! state machine. Read-back: the PD dumps its store to a JSON file.

#[path = "support/panel_host.rs"]
mod host;
#[path = "support/osdp_line.rs"]
mod line;
#[path = "support/python.rs"]
mod python;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::Utc;
use host::{resident, resident_with_pin, TestHost};
use leasegate::config::osdp::{BusConfig, OsdpConfig, PanelConfig};
use leasegate::panel::bus::Bus;
use leasegate::panel::sync::{unhex, PanelState};
use leasegate_osdp::cp::{Event, LinkSettings, PdLink};
use leasegate_osdp::message::{Command as OsdpCommand, Reply, VendorCode};
use leasegate_osdp::profile::{self, Request, Response, ResponseBody, Status};
use tokio_util::sync::CancellationToken;

const VENDOR: u32 = 0x4c4701;
const DEVICE: &str = "libosdp-panel";

struct LibosdpPd {
    child: Child,
    store: PathBuf,
}

impl LibosdpPd {
    fn start(tty: &Path, store: PathBuf, install_mode: bool) -> LibosdpPd {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/osdp/libosdp_pd.py");
        let mut cmd = Command::new(python::python());
        cmd.arg(script)
            .arg("--tty")
            .arg(tty)
            .args(["--address", "5", "--vendor", "0x4c4701"])
            .arg("--store-file")
            .arg(&store);
        if install_mode {
            cmd.arg("--install-mode");
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python PD");
        // Start the PD before the CP: wait for its "ready".
        use std::io::BufRead;
        let mut first = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert_eq!(first.trim(), "ready", "libosdp PD did not start");
        LibosdpPd { child, store }
    }

    /// (record count, digest) of the PD's store, as it last dumped it.
    fn read_back(&self) -> (usize, [u8; 16]) {
        let text = std::fs::read_to_string(&self.store).unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let digest = v["digest"]
            .as_str()
            .and_then(unhex)
            .and_then(|d| d.try_into().ok())
            .unwrap_or_default();
        (v["count"].as_u64().unwrap_or(0) as usize, digest)
    }
}

impl Drop for LibosdpPd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn acknowledged(host: &TestHost) -> (usize, [u8; 16]) {
    let Some(bytes) = host.state(DEVICE) else {
        return (0, [0; 16]);
    };
    let state = PanelState::from_bytes(&bytes).unwrap();
    let recs: Vec<_> = state
        .acked
        .values()
        .map(|h| profile::Record::decode(&unhex(h).unwrap()).unwrap())
        .collect();
    (recs.len(), profile::digest(&recs))
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_a_secure_channel_libosdp_gets_its_own_key_and_holds_exactly_the_approved_grants() {
    let dir = tempfile::tempdir().unwrap();
    let ptys = line::PtyPair::new(dir.path(), "bus");
    let pd = LibosdpPd::start(&ptys.b, dir.path().join("store.json"), true);
    let panel = PanelConfig {
        device: DEVICE.into(),
        address: 5,
        vendor_code: VENDOR,
        doors: vec!["front".into(), "gym".into()],
        // libosdp takes at most 64 bytes of MFG data.
        max_mfg_data: Some(64),
        commission_until: Some(Utc::now() + chrono::Duration::hours(1)),
    };
    let bus = BusConfig {
        tty: ptys.a.clone(),
        baud: 115_200,
        panels: vec![panel],
    };
    let cfg = OsdpConfig {
        poll_interval: Duration::from_millis(20),
        ..OsdpConfig::default()
    };
    let host = TestHost::new();
    let cancel = CancellationToken::new();
    let (h, c) = (host.clone(), cancel.clone());
    let task = tokio::spawn(async move { leasegate::panel::run_bus(&cfg, &bus, h, c).await });

    let from = Utc::now();
    let mut residents: Vec<_> = (1..=6).map(|n| resident(n, &["front"], from)).collect();
    residents.push(resident_with_pin(7, "483915", &["front", "gym"], from));
    host.set(DEVICE, residents.clone());
    wait_until("8 grants on the libosdp PD", || {
        let (n, d) = pd.read_back();
        n == 8 && (n, d) == acknowledged(&host) && host.settled(DEVICE) == host.generation()
    })
    .await;
    let state = PanelState::from_bytes(&host.state(DEVICE).unwrap()).unwrap();
    assert!(
        state.key.is_some() && state.pending_key.is_none(),
        "KEYSET done, key kept sealed"
    );

    // Two residents move out.
    residents.drain(0..2);
    host.set(DEVICE, residents);
    wait_until("revocations on the libosdp PD", || {
        let (n, d) = pd.read_back();
        n == 6 && (n, d) == acknowledged(&host) && host.settled(DEVICE) == host.generation()
    })
    .await;
    cancel.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_a_plain_channel_the_profile_round_trips_with_libosdp_and_digests_match() {
    let dir = tempfile::tempdir().unwrap();
    let ptys = line::PtyPair::new(dir.path(), "bus");
    let pd = LibosdpPd::start(&ptys.b, dir.path().join("store.json"), false);
    let mut settings = LinkSettings::new(5);
    settings.require_secure = false;
    let mut link = PdLink::new(settings);
    let mut bus = Bus::new(line::open(&ptys.a), 115_200);
    let from = Utc::now().timestamp() as u32;
    let records: Vec<profile::Record> = (1..=5)
        .map(|i| profile::Record {
            id: i,
            version: 1,
            doors: 1,
            valid_from: from,
            valid_until: u32::MAX,
            credential: profile::Credential::Card {
                bits: 26,
                data: vec![0x12, 0x34, i as u8, 0x40],
            },
        })
        .collect();
    let mut requests = profile::pack_upserts(&records, 64)
        .unwrap()
        .into_iter()
        .map(Request::Upsert)
        .collect::<Vec<_>>();
    requests.push(Request::Delete(vec![profile::Deletion {
        id: 5,
        version: 1,
    }]));
    requests.push(Request::Digest);
    let mut expected_statuses = 0;
    let mut digest_reply = None;
    for (rid, req) in requests.iter().enumerate() {
        link.enqueue(
            rid as u64,
            OsdpCommand::Mfg {
                vendor: VendorCode(VENDOR),
                data: req.encode(rid as u32),
            },
        );
        // Turn the bus until this request's response arrives (on a later POLL).
        let mut answered = false;
        for _ in 0..500 {
            let Some(events) = bus.turn(&mut link).await.unwrap() else {
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            };
            for e in events {
                assert!(!matches!(e, Event::Nak { .. } | Event::Offline(_)), "{e:?}");
                if let Event::MfgReply(Reply::MfgReply { data, .. }) = e {
                    let resp = Response::decode(&data).unwrap();
                    assert_eq!(resp.request_id, rid as u32);
                    match resp.body {
                        ResponseBody::Upsert(s) | ResponseBody::Delete(s) => {
                            assert!(s.iter().all(|s| *s == Status::Ok));
                            expected_statuses += s.len();
                        }
                        ResponseBody::Digest { count, digest } => {
                            digest_reply = Some((count, digest))
                        }
                        other => panic!("{other:?}"),
                    }
                    answered = true;
                }
            }
            if answered {
                break;
            }
        }
        assert!(answered, "no MFGREP for request {rid}");
    }
    assert_eq!(expected_statuses, 6);
    let want = profile::digest(&records[..4]);
    assert_eq!(digest_reply, Some((4, want)));
    assert_eq!(pd.read_back(), (4, want));
}
