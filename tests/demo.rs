//! The README's main command on a fresh machine: `leasegate run` with the demo config,
//! which starts its own broker (rumqttd) so that no Mosquitto is needed.

#[path = "support/mqtt.rs"]
mod mqtt;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_serves_its_suggestions_on_its_own_embedded_broker_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo");
    for f in ["leasegate.toml", "site.toml", "roster.json"] {
        std::fs::copy(demo.join(f), dir.path().join(f)).unwrap();
    }
    // The demo's port, moved to a free one so that tests never collide.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg_path = dir.path().join("leasegate.toml");
    let cfg = std::fs::read_to_string(&cfg_path).unwrap();
    assert!(
        cfg.contains("mqtt://127.0.0.1:1884"),
        "the demo's broker port moved: update this test"
    );
    std::fs::write(
        &cfg_path,
        cfg.replace("127.0.0.1:1884", &format!("127.0.0.1:{port}")),
    )
    .unwrap();

    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_leasegate"))
        .args(["run", "--config"])
        .arg(&cfg_path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the embedded broker never listened"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut probe = mqtt::Probe::connect("127.0.0.1", port, None, "leasegate/maple-court/#").await;
    let pending = probe
        .wait_for("the pending count", |s| {
            s.topic == "leasegate/maple-court/status/pending"
                && s.json()["count"].as_u64() > Some(0)
        })
        .await;
    assert!(pending.json()["alert"].as_bool().unwrap());
    let reply = probe
        .request("leasegate/maple-court", "demo", "suggestions/list", "{}")
        .await;
    assert_eq!(reply["status"], "ok", "{reply}");

    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id().unwrap() as i32, libc::SIGTERM) };
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("the gateway stops within its grace period")
        .unwrap();
    let mut err = String::new();
    use tokio::io::AsyncReadExt;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .await
        .unwrap();
    assert!(status.success(), "{status}: {err}");
    assert!(
        err.contains("embedded MQTT broker"),
        "it says which broker it started: {err}"
    );
}

/// What a child process writes on one stream, collected as it comes.
fn collect(stream: impl tokio::io::AsyncRead + Unpin + Send + 'static) -> Arc<Mutex<String>> {
    use tokio::io::AsyncBufReadExt;
    let out = Arc::new(Mutex::new(String::new()));
    let sink = out.clone();
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stream).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            let mut s = sink.lock().unwrap();
            s.push_str(&l);
            s.push('\n');
        }
    });
    out
}

const ROOT: &str = "leasegate/maple-court";

/// `leasegate demo` running in a folder of its own, on a free port.
struct Demo {
    child: tokio::process::Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    dir: PathBuf,
    port: u16,
    _tmp: tempfile::TempDir,
}

impl Demo {
    async fn start() -> Demo {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("demo");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_leasegate"))
            .arg("demo")
            .arg("--dir")
            .arg(&dir)
            .args(["--mqtt-port", &port.to_string()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdout = collect(child.stdout.take().unwrap());
        let stderr = collect(child.stderr.take().unwrap());
        let demo = Demo {
            child,
            stdout,
            stderr,
            dir,
            port,
            _tmp: tmp,
        };
        // The simulated locks pair through the gateway's own locks/pair.
        for lock in ["lock-4b", "lock-5c", "lock-2a"] {
            demo.wait_for_line(&format!("lock {lock}: paired with"))
                .await;
        }
        demo
    }

    fn out(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    fn err(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Wait (up to 30 s) until stdout holds a line matching `needle` (all its parts, in
    /// order, on one line).
    async fn wait_for_line(&self, needle: &str) {
        let parts: Vec<&str> = needle.split('…').collect();
        let matches = |line: &str| {
            let mut rest = line;
            parts.iter().all(|p| match rest.find(p) {
                Some(i) => {
                    rest = &rest[i + p.len()..];
                    true
                }
                None => false,
            })
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !self.out().lines().any(matches) {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for a line {needle:?}; stdout so far:\n{}",
                self.out()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn probe(&self) -> mqtt::Probe {
        mqtt::Probe::connect("127.0.0.1", self.port, None, &format!("{ROOT}/#")).await
    }

    async fn stop(mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id().unwrap() as i32, libc::SIGTERM) };
        let status = tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .expect("the demo stops within its grace period")
            .unwrap();
        assert!(status.success(), "{status}: {}", self.err());
        self.wait_for_line("leasegate demo: stopped").await;
    }
}

/// The pending suggestions of `resident` (ids), waiting up to 20 s until there are `n`.
async fn pending_of(probe: &mut mqtt::Probe, resident: &str, n: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let list = probe
            .request(ROOT, "ann", "suggestions/list", r#"{"limit":100}"#)
            .await;
        assert_eq!(list["status"], "ok", "{list}");
        let ids: Vec<String> = list["data"]["suggestions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["resident_id"] == resident)
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect();
        if ids.len() == n {
            return ids;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{resident} has {} pending suggestions, not {n}: {list}",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn approve(probe: &mut mqtt::Probe, transaction: &str, ids: &[String]) {
    let reply = probe
        .request(
            ROOT,
            "ann",
            "suggestions/approve",
            &serde_json::json!({"transaction": transaction, "ids": ids}).to_string(),
        )
        .await;
    assert_eq!(reply["status"], "ok", "{reply}");
    assert!(
        reply["data"]["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["result"] == "applied"),
        "{reply}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leasegate_demo_lands_an_approved_residents_credentials_on_its_simulated_panel_and_lock_and_stops_on_sigterm(
) {
    let demo = Demo::start().await;
    // It says where everything is and how to approve.
    let cfg = demo.dir.join("leasegate.toml");
    let intro = demo.out();
    assert!(
        intro.contains(&format!("mqtt://127.0.0.1:{}", demo.port)),
        "{intro}"
    );
    assert!(intro.contains("/dev/pts/"), "the panels' pty: {intro}");
    assert!(
        intro.contains(&format!(
            "ctl --config {} --as ann suggestions approve",
            cfg.display()
        )),
        "{intro}"
    );
    assert!(intro.contains("roster.json"), "{intro}");
    // Its own config and state live in its folder.
    assert!(cfg.exists() && demo.dir.join("roster.json").exists());

    let mut probe = demo.probe().await;
    let ana = pending_of(&mut probe, "t-100", 3).await; // unit 4B and two common-area keys
    approve(&mut probe, "demo-1", &ana).await;

    // The credentials land on the simulated panel and on the simulated lock.
    for device in ["lock-4b", "panel-lobby"] {
        let applied = probe
            .wait_for_within(
                &format!("access_applied on {device}"),
                Duration::from_secs(30),
                |s| {
                    s.topic == format!("{ROOT}/events/access_applied")
                        && s.json()["device"] == device
                        && s.json()["upserts"].as_u64() > Some(0)
                },
            )
            .await;
        assert_eq!(applied.json()["deletes"], 0);
    }
    demo.wait_for_line("lock lock-4b: keypad code 1 for resident t-100 added (valid from …)")
        .await;
    demo.wait_for_line(
        "panel panel-lobby: record 1 added (PIN, 6 digits, doors 0b11, valid from …)",
    )
    .await;

    // Never the PIN itself, on either stream.
    let pin = probe
        .request(
            ROOT,
            "ann",
            "credentials/reveal_pin",
            r#"{"resident_id":"t-100"}"#,
        )
        .await;
    assert_eq!(pin["status"], "ok", "{pin}");
    let pin = pin["data"]["pin"].as_str().unwrap().to_string();
    assert_eq!(pin.len(), 6);
    assert!(!demo.out().contains(&pin));
    assert!(!demo.err().contains(&pin));

    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editing_the_demo_roster_walks_a_resident_from_future_to_current_to_another_unit_to_past_across_the_simulated_locks(
) {
    let demo = Demo::start().await;
    let mut probe = demo.probe().await;
    let roster = demo.dir.join("roster.json");
    let mut sync = 0;
    let mut set_ben = |unit: &str, status: &str| {
        let mut r: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&roster).unwrap()).unwrap();
        let ben = r["residents"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|p| p["id"] == "t-101")
            .expect("Ben Okafor is in the demo roster");
        assert_eq!(ben["name"], "Ben Okafor");
        ben["unit"] = unit.into();
        ben["status"] = status.into();
        std::fs::write(&roster, r.to_string()).unwrap();
        sync += 1;
        format!("{{\"transaction\":\"walk-sync-{sync}\"}}")
    };
    // At start Ben is a future resident: one grey suggestion, nothing to write.
    let grey = pending_of(&mut probe, "t-101", 1).await;
    approve(&mut probe, "walk-0", &grey).await;

    // Future -> Current in 5C: unit 5C's lock and both common-area keys.
    let now = set_ben("5C", "current");
    let r = probe.request(ROOT, "ann", "sync/now", &now).await;
    assert_eq!(r["status"], "ok", "{r}");
    let grants = pending_of(&mut probe, "t-101", 3).await;
    approve(&mut probe, "walk-1", &grants).await;
    // It tells the story: the suggestion, its approval, then the credential on the device.
    demo.wait_for_line("suggestion …: grant Unit 5C for Ben Okafor (t-101), green")
        .await;
    demo.wait_for_line(&format!("suggestion {}: applied by ann", grants[0]))
        .await;
    demo.wait_for_line("lock lock-5c: keypad code … for resident t-101 added (valid from …)")
        .await;
    demo.wait_for_line("panel panel-lobby: record … added (PIN, 6 digits, doors 0b11, …)")
        .await;

    // Unit change 5C -> 4B: the code moves from lock-5c to lock-4b.
    let now = set_ben("4B", "current");
    let r = probe.request(ROOT, "ann", "sync/now", &now).await;
    assert_eq!(r["status"], "ok", "{r}");
    let moved = pending_of(&mut probe, "t-101", 2).await;
    approve(&mut probe, "walk-2", &moved).await;
    demo.wait_for_line("lock lock-4b: keypad code … for resident t-101 added (valid from …)")
        .await;
    demo.wait_for_line("lock lock-5c: keypad code … for resident t-101 removed")
        .await;

    // Current -> Past: every key goes, on the lock and on the panels.
    let now = set_ben("4B", "past");
    let r = probe.request(ROOT, "ann", "sync/now", &now).await;
    assert_eq!(r["status"], "ok", "{r}");
    let revokes = pending_of(&mut probe, "t-101", 3).await;
    approve(&mut probe, "walk-3", &revokes).await;
    demo.wait_for_line("lock lock-4b: keypad code … for resident t-101 removed")
        .await;
    demo.wait_for_line("panel panel-lobby: record … removed")
        .await;
    demo.wait_for_line("panel panel-amenities: record … removed")
        .await;

    demo.stop().await;
}
