//! Revocation latency, end to end: automatic mode, the real `leasegate run` binary with every
//! real peer (Buildium over HTTPS, Mosquitto on 127.0.0.1:1883, the libosdp PD on a pty pair,
//! the fake BlueZ Nuki lock on a private D-Bus). Each round sets one current resident's lease
//! to Past in the PMS, sends `sync/now` over MQTT, and measures until the resident's
//! credential is gone from BOTH devices, read back from the devices themselves (the PD's
//! store dump and the lock's keypad codes, polled every 5 ms). The `events/access_applied`
//! of each device is timed too, for comparison. Target (DESIGN §5): < 2 s.
//!
//! The lock simulates a BLE connection interval of 30 ms per write and per indication (a
//! connect takes three), and the panel is polled every 100 ms (the `[osdp]` default).
//!
//! `cargo bench --bench revocation_latency` (`E2E_ROUNDS=n` to change the 20 rounds,
//! `E2E_LOCK_INTERVAL_MS=n` the lock's interval; 0 is D-Bus speed).

#[path = "../tests/fixtures/buildium-fake.rs"]
mod buildium_fake;
#[path = "../tests/e2e/harness.rs"]
mod harness;
#[path = "../tests/support/https.rs"]
mod https;
#[path = "../tests/support/osdp_line.rs"]
mod line;
#[path = "../tests/support/mqtt.rs"]
mod mqtt;
#[path = "../tests/support/python.rs"]
mod python;

use std::time::{Duration, Instant};

use harness::{lease, Env, Options, LOCK, PANEL};
use serde_json::json;

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn line(name: &str, v: &mut [Duration]) {
    v.sort();
    println!(
        "{name:<34} p50 {:>8}  p95 {:>8}  max {:>8}",
        ms(pct(v, 0.50)),
        ms(pct(v, 0.95)),
        ms(*v.last().unwrap())
    );
}

fn main() {
    let rounds: usize = std::env::var("E2E_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let interval: u32 = std::env::var("E2E_LOCK_INTERVAL_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    rt.block_on(run(rounds, interval));
}

async fn run(rounds: usize, lock_interval_ms: u32) {
    // Residents 1001.. in unit 101 (a keypad code on the lock, a PIN record on the panel),
    // one lease each; a few more who stay, so that no round empties a device.
    let movers: Vec<String> = (0..rounds).map(|i| (1001 + i).to_string()).collect();
    let stayers = ["5001", "5002", "5003"];
    let mut leases = Vec::new();
    for (i, r) in movers
        .iter()
        .chain(
            stayers
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .iter(),
        )
        .enumerate()
    {
        leases.push(lease(
            i as i64 + 1,
            "101",
            "Active",
            r.parse().unwrap(),
            "Current",
        ));
    }
    let total = leases.len();
    let t = Instant::now();
    let mut env = Env::start(
        leases.clone(),
        Options {
            mode: "automatic",
            lock_interval_ms,
            osdp_poll: "100ms",
            ..Options::default()
        },
    )
    .await;
    let all: Vec<&str> = movers.iter().map(String::as_str).chain(stayers).collect();
    env.learn_pins(&all).await;
    env.wait_devices("the initial grants", Duration::from_secs(120), |p, l| {
        if p.len() == total && l.len() == total {
            Ok(())
        } else {
            Err(format!("{} on the panel, {} on the lock", p.len(), l.len()))
        }
    })
    .await;
    println!(
        "setup: {total} residents on the panel and the lock in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let (mut both, mut panel_rb, mut lock_rb, mut panel_ev, mut lock_ev) =
        (vec![], vec![], vec![], vec![], vec![]);
    let applied = env.topic("events/access_applied");
    let mut walls = Vec::new();
    for (i, r) in movers.iter().enumerate() {
        env.pms.put(lease(
            i as i64 + 1,
            "101",
            "Past",
            r.parse().unwrap(),
            "MovedOut",
        ));
        env.probe.drain();
        let from = env.probe.seen.len();
        let start = Instant::now();
        let wall = chrono::Utc::now();
        walls.push(wall);
        env.probe
            .publish(
                &env.topic(&format!("request/{}/sync/now", harness::ACTOR)),
                &json!({"transaction": format!("bench-{i}")}).to_string(),
            )
            .await;
        let (mut p_gone, mut l_gone) = (None, None);
        let deadline = start + Duration::from_secs(30);
        let mut polls = 0u64;
        while p_gone.is_none() || l_gone.is_none() {
            assert!(
                Instant::now() < deadline,
                "round {i}: not revoked within 30 s\n{}",
                env.gw.log_tail()
            );
            if p_gone.is_none() && !env.panel_view().contains_key(r.as_str()) {
                p_gone = Some(start.elapsed());
            }
            if l_gone.is_none() && !env.lock_view().contains_key(r.as_str()) {
                l_gone = Some(start.elapsed());
            }
            polls += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let (p, l) = (p_gone.unwrap(), l_gone.unwrap());
        // The access_applied events of this round (published after the device confirmed).
        let mut ev = |device: &str| -> Duration {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                env.probe.drain();
                if let Some(s) = env.probe.seen[from..].iter().find(|s| {
                    s.topic == applied
                        && s.json()["device"] == device
                        && s.json()["deletes"].as_u64() > Some(0)
                }) {
                    // When the writer confirmed it, by the gateway's clock (same machine).
                    return (harness::ts(&s.json()["at"]) - wall)
                        .to_std()
                        .unwrap_or_default();
                }
                assert!(Instant::now() < deadline, "no access_applied for {device}");
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        panel_ev.push(ev(PANEL));
        lock_ev.push(ev(LOCK));
        both.push(p.max(l));
        panel_rb.push(p);
        lock_rb.push(l);
        println!(
            "round {i:>2}: panel {:>7}  lock {:>7}  both {:>7}  ({polls} polls)",
            ms(p),
            ms(l),
            ms(p.max(l))
        );
    }
    println!();
    println!(
        "revocation latency, PMS Past + sync/now -> credential gone (N = {rounds}, automatic \
         mode, {total} residents, lock BLE interval {lock_interval_ms} ms, OSDP poll 100 ms)"
    );
    line("both devices (read-back)", &mut both);
    line("libosdp panel (read-back)", &mut panel_rb);
    line("Nuki lock (read-back)", &mut lock_rb);
    line("panel access_applied event (at)", &mut panel_ev);
    line("lock access_applied event (at)", &mut lock_ev);
    // Where the time goes: the gateway's own log, "sync requested" -> "sync done" (fetch,
    // the whole roster again because someone's standing dropped, plan, commit + fsync).
    let log = strip_ansi(&std::fs::read_to_string(env.gw.log_path()).unwrap_or_default());
    let stamp = |l: &str| {
        l.split_whitespace()
            .next()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
    };
    let mut sync = Vec::new();
    for (i, wall) in walls.iter().enumerate() {
        let next = walls.get(i + 1).copied();
        let in_round = |t: &chrono::DateTime<chrono::Utc>| t >= wall && next.is_none_or(|n| *t < n);
        let done = log
            .lines()
            .filter(|l| l.contains("sync done"))
            .filter_map(stamp)
            .find(in_round);
        if let Some(done) = done {
            sync.push((done - *wall).to_std().unwrap_or_default());
        }
    }
    if !sync.is_empty() {
        line("sync/now sent -> sync committed", &mut sync);
    }
    let p95 = pct(&both, 0.95);
    println!(
        "target p95 < 2 s: {}",
        if p95 < Duration::from_secs(2) {
            "met"
        } else {
            "MISSED"
        }
    );
    env.gw.stop();
}

/// The log without terminal colour codes.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
