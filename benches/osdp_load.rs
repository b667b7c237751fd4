//! Bulk credential load over OSDP with the secure channel: 2,000 records from the gateway's
//! panel writer (the real driver, tokio-serial on a pty) to the reference panel simulator,
//! through a relay that paces bytes like a half-duplex 8N1 line (10 bits per byte, plus a
//! turnaround at each change of direction). Prints records/s at 115200 and 9600 baud, the
//! frame sizes seen, and the ratio to the frame-size model limit. A benchmark, not a test.
//!
//! `cargo bench --bench osdp_load` (optionally `-- 115200` or `-- 9600`).

#[path = "../tests/support/panel_host.rs"]
mod host;
#[path = "../tests/support/osdp_line.rs"]
mod line;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use host::TestHost;
use leasegate::config::osdp::{BusConfig, OsdpConfig, PanelConfig};
use leasegate::panel::sim::{self, SimSettings};
use leasegate_osdp::profile::{PanelDb, REQUEST_HEADER, RESPONSE_HEADER};
use tokio_util::sync::CancellationToken;

const RECORDS: u32 = 2000;
const DEVICE: &str = "bench-panel";
const TURNAROUND: Duration = Duration::from_micros(1500);
const BUFFER: u16 = 1024;

/// Bytes on the wire of an SC frame carrying `plain` bytes of data after the code byte:
/// mark (commands only), header 5, SCB 2, code 1, ciphertext (plain + 80, padded to 16), MAC 4,
/// CRC 2.
fn sc_frame(plain: usize, command: bool) -> usize {
    usize::from(command) + 5 + 2 + 1 + (plain + 1).div_ceil(16) * 16 + 4 + 2
}

async fn run(baud: u32) {
    let dir = tempfile::tempdir().unwrap();
    let bus_pty = line::PtyPair::new(dir.path(), "bus");
    let panel_pty = line::PtyPair::new(dir.path(), "panel");
    let pacing = line::Pacing {
        baud,
        turnaround: TURNAROUND,
    };
    let (_ctl, relay) = line::relay(&bus_pty.b, &panel_pty.a, Some(pacing));
    let db: sim::SharedDb = Arc::new(Mutex::new(PanelDb::new(10_000)));
    let cancel = CancellationToken::new();
    let settings = SimSettings {
        address: 1,
        buffer: BUFFER,
        key_file: Some(dir.path().join("panel.key")),
        ..SimSettings::default()
    };
    let port = line::open(&panel_pty.b);
    let (db2, c2) = (db.clone(), cancel.clone());
    // Errors after the run (the relay and ptys going away) do not matter.
    tokio::spawn(async move { sim::run(port, settings, db2, c2).await });

    let panel = PanelConfig {
        device: DEVICE.into(),
        address: 1,
        vendor_code: leasegate::config::osdp::DEFAULT_VENDOR_CODE,
        doors: vec!["front".into()],
        max_mfg_data: None,
        commission_until: Some(Utc::now() + chrono::Duration::hours(1)),
    };
    let bus = BusConfig {
        tty: bus_pty.a.clone(),
        baud,
        panels: vec![panel],
    };
    let cfg = OsdpConfig {
        poll_interval: Duration::from_millis(50),
        ..OsdpConfig::default()
    };
    let host = TestHost::new();
    let (h, c) = (host.clone(), cancel.clone());
    tokio::spawn(async move { leasegate::panel::run_bus(&cfg, &bus, h, c).await });

    // Commissioned, keyed and in sync with an empty set first (not timed).
    host.set(DEVICE, vec![]);
    while host.settled(DEVICE) != host.generation() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let from = Utc::now();
    let entries: Vec<_> = (1..=RECORDS)
        .map(|n| host::resident(n, &["front"], from))
        .collect();
    let t0 = Instant::now();
    host.set(DEVICE, entries);
    while host.settled(DEVICE) != host.generation() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = t0.elapsed();
    assert_eq!(
        db.lock().unwrap().len(),
        RECORDS as usize,
        "every record on the panel"
    );

    // The frame-size model: full batches of 26-byte records (26-bit cards).
    let record = 26;
    let max_data = usize::from(BUFFER) - 34;
    let per_batch = (max_data - REQUEST_HEADER - 1) / record;
    let cmd = sc_frame(3 + REQUEST_HEADER + 1 + per_batch * record, true);
    let reply = sc_frame(3 + RESPONSE_HEADER + 1 + per_batch, false);
    let byte = Duration::from_nanos(10 * 1_000_000_000 / u64::from(baud));
    let cycle = byte * (cmd + reply) as u32 + TURNAROUND * 2;
    let model = per_batch as f64 / cycle.as_secs_f64();
    let rate = f64::from(RECORDS) / elapsed.as_secs_f64();
    println!(
        "osdp_load baud={baud}: {RECORDS} records in {:.2} s = {rate:.1} records/s; model limit {model:.1} records/s \
         (ratio {:.2}); frames: MFG {cmd} B with {per_batch} records, MFGREP {reply} B, turnaround {} µs per direction",
        elapsed.as_secs_f64(),
        rate / model,
        TURNAROUND.as_micros()
    );
    cancel.cancel();
    relay.abort();
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let bauds: Vec<u32> = if args.is_empty() {
        vec![115_200, 9600]
    } else {
        args.iter().filter_map(|a| a.parse().ok()).collect()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for baud in bauds {
        rt.block_on(run(baud));
    }
}
