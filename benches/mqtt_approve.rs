//! Benchmark (DESIGN §5): the time from a 50-id `suggestions/approve` request to its reply,
//! over 200 rounds on loopback Mosquitto (127.0.0.1:1883, or `LEASEGATE_TEST_BROKER`),
//! against a gateway running in-process with a real sled store. Target: p99 < 100 ms.
//!
//! Each round approves 50 fresh grant suggestions, so every round commits (and fsyncs) 50
//! grants with their audit entries, a PIN for each new key holder, and the retained
//! updates that follow. `cargo bench --bench mqtt_approve` runs 200 rounds; without
//! `--bench` (as `cargo test --benches` runs it) it is a 10-round smoke run.

#[path = "../tests/support/mqtt.rs"]
mod mqtt;

use std::time::{Duration, Instant};

use mqtt::{resident, Probe, TestGateway};
use serde_json::json;

fn main() {
    if std::env::var_os("LEASEGATE_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_env("LEASEGATE_LOG"))
            .with_writer(std::io::stderr)
            .init();
    }
    let full = std::env::args().any(|a| a == "--bench");
    let rounds = if full { 200 } else { 10 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(rounds));
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

async fn run(rounds: usize) {
    // One unit per resident, each with its own door on one lock, and no shared keys: every
    // resident brings exactly one grant suggestion.
    let n = rounds * 50;
    let mut site = String::new();
    let mut residents = Vec::new();
    for i in 0..n {
        site.push_str(&format!(
            "[[units]]\npms_unit = \"U{i}\"\ndoors = [\"door-{i}\"]\n[[doors]]\nid = \"door-{i}\"\ndevice = \"lock-{}\"\n",
            i % 20
        ));
        residents.push(resident(
            &format!("r{i}"),
            &format!("Resident {i}"),
            &format!("U{i}"),
            "current",
        ));
    }
    // A private Mosquitto tuned as config/mosquitto/mosquitto.conf recommends (TCP_NODELAY),
    // unless LEASEGATE_TEST_BROKER names one; then that one, as it is.
    let own = std::env::var_os("LEASEGATE_TEST_BROKER")
        .is_none()
        .then(mqtt::Mosquitto::start);
    let (host, port) = match &own {
        Some(m) => ("127.0.0.1".to_string(), m.port),
        None => mqtt::broker(),
    };
    println!(
        "mqtt_approve: broker {host}:{port} ({})",
        if own.is_some() {
            "private, set_tcp_nodelay true"
        } else {
            "LEASEGATE_TEST_BROKER"
        }
    );
    let started = Instant::now();
    let mut gw =
        TestGateway::start_with_site(&residents, "approval_required", &host, port, "", &site).await;
    let root = gw.root();
    let mut probe = Probe::connect(&host, port, None, &format!("{root}/response/#")).await;
    let mut status = Probe::connect(&host, port, None, &format!("{root}/status/pending")).await;
    status
        .wait_for_within("all suggestions pending", Duration::from_secs(300), |s| {
            s.json()["count"] == n
        })
        .await;
    println!(
        "mqtt_approve: {n} suggestions pending after {:.1} s (first sync, retained publish)",
        started.elapsed().as_secs_f64()
    );
    let mut ids: Vec<String> = Vec::new();
    let mut after = serde_json::Value::Null;
    loop {
        let body = json!({"limit": 500, "after": after}).to_string();
        let list = probe
            .request(&root, "bench", "suggestions/list", &body)
            .await;
        let page = list["data"]["suggestions"].as_array().unwrap();
        ids.extend(page.iter().map(|s| s["id"].as_str().unwrap().to_string()));
        after = list["data"]["next"].clone();
        if after.is_null() {
            break;
        }
    }
    assert_eq!(ids.len(), n);
    let mut times = Vec::with_capacity(rounds);
    for (round, chunk) in ids.chunks(50).enumerate() {
        let body = json!({"transaction": format!("bench-{round}"), "ids": chunk}).to_string();
        let t = Instant::now();
        let reply = probe
            .request(&root, "bench", "suggestions/approve", &body)
            .await;
        times.push(t.elapsed());
        assert_eq!(reply["status"], "ok", "{reply}");
        assert_eq!(reply["data"]["results"].as_array().unwrap().len(), 50);
    }
    times.sort();
    let mean = times.iter().sum::<Duration>() / times.len() as u32;
    println!(
        "mqtt_approve: {rounds} rounds of 50 ids: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, mean {:.1} ms (target p99 < 100 ms)",
        percentile(&times, 0.50).as_secs_f64() * 1e3,
        percentile(&times, 0.99).as_secs_f64() * 1e3,
        times.last().unwrap().as_secs_f64() * 1e3,
        mean.as_secs_f64() * 1e3,
    );
    gw.stop().await;
}
