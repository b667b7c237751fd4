//! `leasegate run` as a whole: one part failing never stops the others.

#[path = "support/mqtt.rs"]
mod mqtt;

use std::path::Path;
use std::time::Duration;

use mqtt::{resident, Probe, TestGateway};

/// The demo site has `panel-lobby` (front entrance, elevator) and locks; the bus below names
/// a serial adapter that is not there.
fn site() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo/site.toml"))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unplugged_serial_adapter_stops_only_its_panel_and_approvals_go_on() {
    let (host, port) = mqtt::broker();
    let osdp = "[osdp]\n[[osdp.buses]]\ntty = \"/dev/ttyUSB-leasegate-test-absent\"\nbaud = 115200\n\
                [[osdp.buses.panels]]\ndevice = \"panel-lobby\"\naddress = 1\ndoors = [\"front-entrance\", \"elevator\"]\n";
    let residents = [resident("t-100", "Ana Diaz", "4B", "current")];
    let mut gw = TestGateway::prepare(&residents, "approval_required", &host, port, osdp, &site());
    gw.run();
    let mut probe = Probe::connect(&host, port, None, &format!("{}/#", gw.root())).await;
    let offline = probe
        .wait_for("the panel reported offline", |s| {
            s.topic == gw.topic("devices/panel-lobby") && s.json()["online"] == false
        })
        .await;
    let why = offline.json()["last_error"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        why.contains("ttyUSB-leasegate-test-absent"),
        "the status names the missing port: {why}"
    );
    let pending = probe
        .wait_for("Ana's suggestions", |s| {
            s.topic == gw.topic("status/pending") && s.json()["count"].as_u64() > Some(0)
        })
        .await;
    let n = pending.json()["count"].as_u64().unwrap();
    let list = probe
        .request(&gw.root(), "ann", "suggestions/list", "{}")
        .await;
    let ids: Vec<String> = list["data"]["suggestions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len() as u64, n);
    let body = serde_json::json!({"transaction": "t1", "ids": ids}).to_string();
    let reply = probe
        .request(&gw.root(), "ann", "suggestions/approve", &body)
        .await;
    assert_eq!(reply["status"], "ok", "{reply}");
    probe
        .wait_for("nothing pending", |s| {
            s.topic == gw.topic("status/pending") && s.json()["count"] == 0
        })
        .await;
    // The bus writer is still being retried, not given up: the gateway is still up.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !gw.handle.as_ref().unwrap().is_finished(),
        "the gateway keeps running without its panel"
    );
    gw.stop().await;
    let store = gw.store();
    let world = store.load_world().unwrap();
    assert!(
        world.grants_of("t-100").next().is_some(),
        "the approval is stored and waits for the panel"
    );
}
