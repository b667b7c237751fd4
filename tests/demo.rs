//! The README's main command on a fresh machine: `leasegate run` with the demo config,
//! which starts its own broker (rumqttd) so that no Mosquitto is needed.

#[path = "support/mqtt.rs"]
mod mqtt;

use std::path::Path;
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
fn collect(
    stream: impl tokio::io::AsyncRead + Unpin + Send + 'static,
) -> std::sync::Arc<std::sync::Mutex<String>> {
    use tokio::io::AsyncBufReadExt;
    let out = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
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

async fn wait_for_line(out: &std::sync::Mutex<String>, what: &str, needle: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !out.lock().unwrap().contains(needle) {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what} ({needle:?}); stdout so far:\n{}",
            out.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leasegate_demo_lands_an_approved_residents_credentials_on_its_simulated_panel_and_lock_and_stops_on_sigterm(
) {
    let dir = tempfile::tempdir().unwrap();
    let demo_dir = dir.path().join("demo");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_leasegate"))
        .arg("demo")
        .arg("--dir")
        .arg(&demo_dir)
        .args(["--mqtt-port", &port.to_string()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = collect(child.stdout.take().unwrap());
    let stderr = collect(child.stderr.take().unwrap());

    // It says where everything is and how to approve.
    let cfg = demo_dir.join("leasegate.toml");
    wait_for_line(&stdout, "the intro", "Approve from another terminal").await;
    {
        let intro = stdout.lock().unwrap().clone();
        assert!(
            intro.contains(&format!("mqtt://127.0.0.1:{port}")),
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
    }
    // Its own config and state live in its folder.
    assert!(cfg.exists() && demo_dir.join("roster.json").exists());
    // The simulated locks pair through the gateway's own locks/pair.
    wait_for_line(&stdout, "lock-4b paired", "lock lock-4b: paired with").await;

    let root = "leasegate/maple-court";
    let mut probe = mqtt::Probe::connect("127.0.0.1", port, None, &format!("{root}/#")).await;
    let list = probe
        .request(root, "ann", "suggestions/list", r#"{"limit":100}"#)
        .await;
    assert_eq!(list["status"], "ok", "{list}");
    let ana: Vec<String> = list["data"]["suggestions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["resident_id"] == "t-100" && s["action"] == "grant")
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ana.len(), 3, "unit 4B and two common-area keys: {list}");
    let reply = probe
        .request(
            root,
            "ann",
            "suggestions/approve",
            &serde_json::json!({"transaction": "demo-1", "ids": ana}).to_string(),
        )
        .await;
    assert_eq!(reply["status"], "ok", "{reply}");

    // The credentials land on the simulated panel and on the simulated lock.
    for device in ["lock-4b", "panel-lobby"] {
        let applied = probe
            .wait_for_within(
                &format!("access_applied on {device}"),
                Duration::from_secs(30),
                |s| {
                    s.topic == format!("{root}/events/access_applied")
                        && s.json()["device"] == device
                        && s.json()["upserts"].as_u64() > Some(0)
                },
            )
            .await;
        assert_eq!(applied.json()["deletes"], 0);
    }
    wait_for_line(
        &stdout,
        "the lock's code",
        "lock lock-4b: keypad code 1 for resident t-100 added (valid from ",
    )
    .await;
    wait_for_line(
        &stdout,
        "the panel's record",
        "panel panel-lobby: record 1 added (PIN, 6 digits, doors 0b11, valid from ",
    )
    .await;

    // Never the PIN itself, on either stream.
    let pin = probe
        .request(
            root,
            "ann",
            "credentials/reveal_pin",
            r#"{"resident_id":"t-100"}"#,
        )
        .await;
    assert_eq!(pin["status"], "ok", "{pin}");
    let pin = pin["data"]["pin"].as_str().unwrap().to_string();
    assert_eq!(pin.len(), 6);
    assert!(!stdout.lock().unwrap().contains(&pin));
    assert!(!stderr.lock().unwrap().contains(&pin));

    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id().unwrap() as i32, libc::SIGTERM) };
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("the demo stops within its grace period")
        .unwrap();
    assert!(status.success(), "{status}: {}", stderr.lock().unwrap());
    wait_for_line(&stdout, "the goodbye", "leasegate demo: stopped").await;
}
