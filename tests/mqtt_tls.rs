//! The gateway's MQTT client over TLS (rustls) with a username and a password read from a
//! file, against a Mosquitto that requires both; and Home Assistant discovery.

#[path = "support/https.rs"]
mod https;
#[path = "support/mqtt.rs"]
mod mqtt;

use std::path::Path;
use std::process::Command;

use mqtt::{resident, Mosquitto, Probe, TestGateway};

/// A Mosquitto with a TLS listener (a CA and a `localhost` certificate made now), no
/// anonymous access, and users `gateway` and `probe`.
fn tls_broker() -> (Mosquitto, String) {
    let pki = https::make_pki();
    let ca = pki.ca_pem.clone();
    let broker = Mosquitto::start_with(
        move |dir: &Path| {
            std::fs::write(dir.join("ca.pem"), &pki.ca_pem).unwrap();
            std::fs::write(dir.join("cert.pem"), &pki.cert_pem).unwrap();
            std::fs::write(dir.join("key.pem"), &pki.key_pem).unwrap();
            let pw = dir.join("passwords");
            for (i, (user, pass)) in [("gateway", "gw-secret-1"), ("probe", "probe-secret")]
                .into_iter()
                .enumerate()
            {
                let mut cmd = Command::new("mosquitto_passwd");
                if i == 0 {
                    cmd.arg("-c");
                }
                let ok = cmd.arg("-b").arg(&pw).args([user, pass]).status().unwrap();
                assert!(ok.success(), "mosquitto_passwd (Debian package mosquitto)");
            }
        },
        |port, dir| {
            format!(
                "per_listener_settings false\nallow_anonymous false\npassword_file {d}/passwords\n\
                 listener {port} 127.0.0.1\ncafile {d}/ca.pem\ncertfile {d}/cert.pem\nkeyfile {d}/key.pem\n\
                 max_packet_size 1048576\n",
                d = dir.display()
            )
        },
    );
    (broker, ca)
}

/// A gateway that connects to `broker` over TLS as `gateway` with `password` (from a file),
/// and a TLS probe (user `probe`) on its topics.
async fn tls_gateway(broker: &Mosquitto, ca: &str, password: &str) -> (TestGateway, Probe) {
    let site = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo/site.toml"),
    )
    .unwrap();
    let mut gw = TestGateway::prepare(
        &[resident("t-100", "Ana Diaz", "4B", "current")],
        "approval_required",
        "localhost",
        broker.port,
        "ca_file = \"broker-ca.pem\"\nusername = \"gateway\"\npassword_file = \"mqtt-password\"\n",
        &site,
    );
    std::fs::write(gw.dir.path().join("broker-ca.pem"), ca).unwrap();
    std::fs::write(gw.dir.path().join("mqtt-password"), format!("{password}\n")).unwrap();
    let cfg = std::fs::read_to_string(gw.config_path()).unwrap();
    std::fs::write(gw.config_path(), cfg.replace("mqtt://", "mqtts://")).unwrap();
    gw.run();
    let probe = Probe::connect_tls(
        "localhost",
        broker.port,
        Some(("probe", "probe-secret")),
        &format!("{}/#", gw.root()),
        ca,
    )
    .await;
    (gw, probe)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_connects_over_tls_with_a_password_from_a_file() {
    let (broker, ca) = tls_broker();
    let (mut gw, mut probe) = tls_gateway(&broker, &ca, "gw-secret-1").await;
    // A TLS client that trusts the same CA sees the gateway's retained state.
    probe
        .wait_for("online over TLS", |s| {
            s.topic.ends_with("/bridge/state") && s.json()["state"] == "online"
        })
        .await;
    let reply = probe
        .request(&gw.root(), "probe", "suggestions/list", "{}")
        .await;
    assert_eq!(reply["status"], "ok", "{reply}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_keeps_the_gateway_retrying_and_never_online() {
    let (broker, ca) = tls_broker();
    let (mut gw, mut probe) = tls_gateway(&broker, &ca, "not-it").await;
    // Its own last will is never published either: it never connected. A marker shows
    // the probe would have seen anything published before it.
    probe.publish(&gw.topic("marker"), "{}").await;
    probe
        .wait_for("the marker", |s| s.topic.ends_with("/marker"))
        .await;
    assert!(
        probe
            .seen
            .iter()
            .all(|s| !s.topic.ends_with("/bridge/state")),
        "{:?}",
        probe.topics()
    );
    // Still running (retrying with backoff), and it stops cleanly.
    assert!(!gw.handle.as_ref().unwrap().is_finished());
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_assistant_discovery_announces_the_entities_with_the_bridge_as_availability() {
    let prefix = mqtt::unique("ha");
    let (host, port) = mqtt::broker();
    let site = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo/site.toml"),
    )
    .unwrap();
    let mut gw = TestGateway::prepare(
        &[resident("t-100", "Ana Diaz", "4B", "current")],
        "approval_required",
        &host,
        port,
        &format!("discovery_prefix = \"{prefix}\"\n"),
        &site,
    );
    let cfg = std::fs::read_to_string(gw.config_path()).unwrap();
    std::fs::write(
        gw.config_path(),
        cfg.replace("home_assistant = false", "home_assistant = true"),
    )
    .unwrap();
    gw.run();
    let mut probe = Probe::connect(&host, port, None, &format!("{prefix}/#")).await;
    for component in ["sensor", "binary_sensor", "select", "button"] {
        let s = probe
            .wait_for(component, |s| {
                s.topic.starts_with(&format!("{prefix}/{component}/"))
                    && s.topic.ends_with("/config")
            })
            .await;
        let v = s.json();
        assert_eq!(v["availability"][0]["topic"], gw.topic("bridge/state"));
        if component == "select" {
            assert_eq!(
                v["command_topic"],
                gw.topic("request/homeassistant/mode/set")
            );
        }
    }
    gw.stop().await;
    // Cleared so the shared broker does not keep them.
    for s in probe.latest().values() {
        probe
            .client
            .publish(
                s.topic.clone(),
                rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                true,
                Vec::new(),
            )
            .await
            .unwrap();
    }
}
