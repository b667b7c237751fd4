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
