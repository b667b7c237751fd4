//! Benchmark (issue 7): the gateway's resident memory with 10,000 residents. Target ≤ 25 MB.
//!
//! Runs the real `leasegate run` binary (built with the bench profile, i.e. release) as its
//! own process, so /proc/<pid>/status counts the gateway alone, on a file roster of 10,000
//! current residents (two per unit, 5,000 units each with a door on one of 50 locks, plus an
//! auto-shared entrance on one OSDP panel), with the MQTT API on loopback Mosquitto and
//! the reference panel simulator (`leasegate panel-sim`) on a socat pty.
//!
//! Two runs, each on a new store:
//! - `approval_required`: 10,000 residents' grants pending, each retained on MQTT;
//! - `automatic`: all granted at the first sync, so the panel writer works through 10,000
//!   records while the outbox holds every device's desired set.
//!
//! Prints VmRSS after the first sync settles, VmRSS once steady, and VmHWM (the peak);
//! then restarts the gateway on the same store and prints VmRSS and VmHWM again.
//! `cargo bench --bench resident_memory`; without `--bench` it is a 1,000-resident smoke run.

#[path = "../tests/support/mqtt.rs"]
mod mqtt;
#[path = "../tests/support/osdp_line.rs"]
mod osdp_line;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mqtt::Probe;

const LOCKS: usize = 50;

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let n = if full { 10_000 } else { 1_000 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // `RESIDENT_MEMORY_MODE=automatic` runs one mode only (for profiling).
    let only = std::env::var("RESIDENT_MEMORY_MODE").ok();
    for mode in ["approval_required", "automatic"] {
        if only.as_deref().is_none_or(|m| m == mode) {
            rt.block_on(run(n, mode));
        }
    }
}

/// Kills the child on every path out.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn status_kb(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn mb(kb: u64) -> String {
    format!("{:.1} MB", kb as f64 / 1024.0)
}

fn write_inputs(dir: &Path, n: usize, mode: &str, host: &str, port: u16, tty: &Path) -> String {
    let units = n / 2;
    let mut site = String::from(
        "[[doors]]\nid = \"front-entrance\"\ndevice = \"panel-lobby\"\n\
         [[keys]]\nid = \"entrances\"\nname = \"Entrances\"\ndoors = [\"front-entrance\"]\nshareable = false\nauto_share = true\n",
    );
    for u in 0..units {
        site.push_str(&format!(
            "[[units]]\npms_unit = \"U{u}\"\ndoors = [\"door-{u}\"]\n[[doors]]\nid = \"door-{u}\"\ndevice = \"lock-{}\"\n",
            u % LOCKS
        ));
    }
    std::fs::write(dir.join("site.toml"), site).unwrap();
    let residents: Vec<_> = (0..n)
        .map(|i| {
            mqtt::resident(
                &format!("r{i}"),
                &format!("Resident {i}"),
                &format!("U{}", i / 2),
                "current",
            )
        })
        .collect();
    mqtt::write_roster(dir, &residents);
    let base = mqtt::unique("lgmem");
    let commission_until = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let cfg = format!(
        "[site]\nid = \"mem\"\ntimezone = \"America/Denver\"\nsite_file = \"site.toml\"\n\
         [store]\npath = \"state\"\n\
         [access]\nmode = \"{mode}\"\nactivation_delay = \"0s\"\n\
         [access.guard]\nmin_residents = 3\npercent = 5\n\
         [pms]\nkind = \"file\"\npath = \"roster.json\"\npoll_interval = \"1h\"\n\
         [mqtt]\nurl = \"mqtt://{host}:{port}\"\nbase_topic = \"{base}\"\nclient_id = \"{base}-gw\"\nhome_assistant = true\n\
         [osdp]\n[[osdp.buses]]\ntty = \"{}\"\nbaud = 115200\n\
         [[osdp.buses.panels]]\ndevice = \"panel-lobby\"\naddress = 1\ndoors = [\"front-entrance\"]\ncommission_until = \"{commission_until}\"\n",
        tty.display()
    );
    std::fs::write(dir.join("leasegate.toml"), cfg).unwrap();
    format!("{base}/mem")
}

async fn run(n: usize, mode: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (host, port) = mqtt::broker();
    let line = osdp_line::PtyPair::new(dir.path(), "rs485");
    let root = write_inputs(dir.path(), n, mode, &host, port, &line.a);
    let exe = env!("CARGO_BIN_EXE_leasegate");
    let _panel = Proc(
        Command::new(exe)
            .args(["panel-sim", "--tty"])
            .arg(&line.b)
            .env("LEASEGATE_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("panel-sim"),
    );
    let mut probe = Probe::connect(&host, port, None, &format!("{root}/#")).await;
    let config = dir.path().join("leasegate.toml");
    let started = Instant::now();
    let gw = spawn_gateway(exe, &config);
    let pid = gw.0.id();
    let settle = Duration::from_secs(if n >= 10_000 { 300 } else { 120 });
    let what = if mode == "automatic" {
        probe
            .wait_for_within("the panel holds every record", settle, |s| {
                s.topic == format!("{root}/events/access_applied")
                    && s.json()["device"] == "panel-lobby"
                    && s.json()["upserts"].as_u64() >= Some(n as u64)
            })
            .await;
        "panel in sync"
    } else {
        probe
            .wait_for_within("every grant pending", settle, |s| {
                s.topic == format!("{root}/status/pending")
                    && s.json()["count"].as_u64() >= Some(n as u64)
            })
            .await;
        "suggestions pending and retained"
    };
    let settled_after = started.elapsed();
    let rss_settled = status_kb(pid, "VmRSS:");
    tokio::time::sleep(Duration::from_secs(10)).await;
    let rss_steady = status_kb(pid, "VmRSS:");
    let hwm = status_kb(pid, "VmHWM:");
    let store_bytes: u64 = walk(&dir.path().join("state"));
    println!(
        "resident_memory: {n} residents, {mode}: {what} after {:.1} s; VmRSS {} then {} 10 s later; peak VmHWM {}; store on disk {}",
        settled_after.as_secs_f64(),
        mb(rss_settled),
        mb(rss_steady),
        mb(hwm),
        mb(store_bytes / 1024),
    );

    // The figure that lasts: a restart on the same store (a reboot, an upgrade), which
    // loads the world, syncs the unchanged roster, republishes every retained suggestion
    // and checks the panel. Measured after a fixed 45 s: all of that at 10,000 residents
    // on this machine, and the gateway's 30 s trim of freed heap.
    stop(gw);
    if std::env::var_os("RESIDENT_MEMORY_KEEP").is_some() {
        // To restart it by hand (under a profiler), with the broker session as it is.
        eprintln!("kept {}", dir.keep().display());
        return;
    }
    let gw = spawn_gateway(exe, &config);
    let pid = gw.0.id();
    tokio::time::sleep(Duration::from_secs(45)).await;
    println!(
        "resident_memory: {n} residents, {mode}: after a restart on that store VmRSS {}; peak VmHWM {}",
        mb(status_kb(pid, "VmRSS:")),
        mb(status_kb(pid, "VmHWM:")),
    );
}

fn spawn_gateway(exe: &str, config: &Path) -> Proc {
    // `RESIDENT_MEMORY_WRAPPER="heaptrack -o /tmp/lg"` runs the gateway under a profiler;
    // `RESIDENT_MEMORY_LOG=info` shows its log.
    let wrapper = std::env::var("RESIDENT_MEMORY_WRAPPER").unwrap_or_default();
    let mut argv: Vec<String> = wrapper.split_whitespace().map(String::from).collect();
    argv.push(exe.to_string());
    let log = std::env::var("RESIDENT_MEMORY_LOG").unwrap_or_else(|_| "warn".into());
    Proc(
        Command::new(&argv[0])
            .args(&argv[1..])
            .args(["run", "--config"])
            .arg(config)
            .env("LEASEGATE_LOG", log)
            .stdout(Stdio::null())
            .spawn()
            .expect("leasegate run"),
    )
}

/// SIGTERM, as systemd stops it, and wait for the exit (sled's lock must be free).
fn stop(mut gw: Proc) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(gw.0.id() as i32, libc::SIGTERM) };
    let _ = gw.0.wait();
}

fn walk(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => walk(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
