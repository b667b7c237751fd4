//! End-to-end harness: the real `leasegate run` binary as a child process, against every real
//! peer at once: a Buildium-speaking HTTPS server (rustls, a CA made at test time), the
//! machine's Mosquitto (a topic prefix of our own), the libosdp 3.2.9 PD over a pty pair
//! (commissioned with SCBK-D, then KEYSET), and the fake BlueZ with its simulated Nuki lock on
//! a private dbus-daemon of our own (so tests run in parallel: each has its own bus and its
//! own `org.bluez`).
//!
//! Shared by `tests/e2e.rs` and `benches/revocation_latency.rs`. Both declare, at their crate
//! root, `https`, `buildium_fake`, `mqtt`, `line` and `python` (the modules under
//! `tests/support` and `tests/fixtures`), which this file uses through `crate::`.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDateTime, Timelike, Utc};
use leasegate_osdp::profile::{Credential, Record};
use serde_json::{json, Value};

use crate::buildium_fake::{Fake, Lease, CLIENT_ID, CLIENT_SECRET, PROPERTY_ID};
use crate::https::TestServer;
use crate::line::PtyPair;
use crate::mqtt::{Probe, Seen};

pub const SITE: &str = "maple-court";
pub const PANEL: &str = "panel-lobby";
pub const LOCK: &str = "lock-101";
pub const MAC: &str = "C2:4B:1A:00:00:01";
/// The panel's doors, bit 0 first.
pub const PANEL_DOORS: [&str; 3] = ["front-entrance", "unit-102", "unit-103"];
pub const FRONT: u32 = 1 << 0;
pub const UNIT_102: u32 = 1 << 1;
pub const UNIT_103: u32 = 1 << 2;
pub const ACTOR: &str = "manager-ann";
pub const TZ: chrono_tz::Tz = chrono_tz::America::Denver;
const VENDOR: &str = "0x4c4701";
const OSDP_ADDRESS: u8 = 5;
const SECURITY_PIN: u32 = 2468;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Units 101 (a Nuki lock), 102 and 103 (doors on the lobby panel), and the front entrance
/// on the lobby panel for every current resident.
pub fn site_toml() -> String {
    r#"[[units]]
pms_unit = "101"
doors = ["unit-101"]

[[units]]
pms_unit = "102"
doors = ["unit-102"]

[[units]]
pms_unit = "103"
doors = ["unit-103"]

[[doors]]
id = "unit-101"
device = "lock-101"

[[doors]]
id = "unit-102"
device = "panel-lobby"

[[doors]]
id = "unit-103"
device = "panel-lobby"

[[doors]]
id = "front-entrance"
device = "panel-lobby"

[[keys]]
id = "resident-entrances"
name = "Resident Entrances"
doors = ["front-entrance"]
shareable = false
auto_share = true
"#
    .to_string()
}

/// A lease as Buildium serves it, touched now (so incremental fetches see it).
pub fn lease(id: i64, unit: &str, status: &str, tenant: i64, tenant_status: &str) -> Lease {
    Lease::new(id, unit, status)
        .tenant(tenant, "Resident", &format!("T{tenant}"), tenant_status)
        .updated(&now_z())
}

pub fn now_z() -> String {
    Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Wait until `cond` returns `Ok`; on timeout panic with `what`, the last `Err` (a
/// description without secrets) and the gateway's log tail.
pub async fn wait_until<T>(
    what: &str,
    within: Duration,
    log: &dyn Fn() -> String,
    mut cond: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match cond() {
            Ok(v) => return v,
            Err(last) => {
                if tokio::time::Instant::now() >= deadline {
                    panic!(
                        "timed out after {within:?} waiting for {what}; last seen: {last}\n--- gateway log (tail) ---\n{}",
                        log()
                    );
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

// ---------------------------------------------------------------------------------------
// The PMS

pub struct Pms {
    pub server: TestServer,
    pub fake: Arc<Fake>,
}

impl Pms {
    pub async fn start(leases: Vec<Lease>) -> Pms {
        let fake = Fake::new(leases);
        let f = fake.clone();
        let server = crate::https::start(move |req| f.handle(req)).await;
        Pms { server, fake }
    }

    /// Replace the lease with `l.id` (or add it).
    pub fn put(&self, l: Lease) {
        let mut all: Vec<Lease> = self.fake.leases();
        all.retain(|x| x.id != l.id);
        all.push(l);
        self.fake.set_leases(all);
    }
}

// ---------------------------------------------------------------------------------------
// The OSDP panel: libosdp's PD over a pty pair

pub struct Panel {
    ptys: PtyPair,
    child: Child,
    pub store: PathBuf,
}

impl Panel {
    pub fn start(dir: &Path) -> Panel {
        let ptys = PtyPair::new(dir, "rs485");
        let store = dir.join("pd-store.json");
        let log = std::fs::File::create(dir.join("pd.log")).unwrap();
        let mut cmd = Command::new(crate::python::python());
        cmd.arg(repo().join("tests/python/osdp/libosdp_pd.py"))
            .arg("--tty")
            .arg(&ptys.b)
            .args(["--address", &OSDP_ADDRESS.to_string(), "--vendor", VENDOR])
            .arg("--store-file")
            .arg(&store)
            .arg("--install-mode")
            .stdout(Stdio::piped())
            .stderr(log);
        die_with_parent(&mut cmd);
        let mut child = cmd.spawn().expect("python libosdp PD");
        let line = first_line(&mut child, Duration::from_secs(60), |l| l == "ready");
        assert_eq!(
            line.as_deref(),
            Some("ready"),
            "the libosdp PD did not start"
        );
        Panel { ptys, child, store }
    }

    pub fn tty(&self) -> &Path {
        &self.ptys.a
    }

    /// The PD's credential store as it last dumped it.
    pub fn records(&self) -> Vec<Record> {
        let text = std::fs::read_to_string(&self.store).unwrap_or_default();
        let v: Value = serde_json::from_str(&text).unwrap_or_default();
        let Some(recs) = v["records"].as_object() else {
            return vec![];
        };
        recs.values()
            .filter_map(|r| r[1].as_str())
            .filter_map(leasegate::panel::sync::unhex)
            .map(|b| Record::decode(&b).expect("the PD holds a well-formed record"))
            .collect()
    }

    /// The digest the PD reports (changes with any record).
    pub fn digest(&self) -> String {
        let text = std::fs::read_to_string(&self.store).unwrap_or_default();
        let v: Value = serde_json::from_str(&text).unwrap_or_default();
        v["digest"].as_str().unwrap_or("").to_string()
    }
}

impl Drop for Panel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Kill `cmd`'s process when the test process dies, however it dies.
fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl only, between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// The first stdout line of `child` that satisfies `pred`, within `within`.
fn first_line(child: &mut Child, within: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
    let out = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                // Keep draining so the child never blocks on a full pipe.
                continue;
            }
        }
    });
    let deadline = std::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if pred(l.trim()) => return Some(l.trim().to_string()),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

// ---------------------------------------------------------------------------------------
// The Nuki lock: a private dbus-daemon and the fake BlueZ on it

pub struct Lock {
    dbus: Child,
    fake: Child,
    /// `unix:path=…` of the private bus.
    pub address: String,
}

/// One keypad code as the lock holds it (the code itself is compared, never printed).
#[derive(Clone, Debug, PartialEq)]
pub struct Code {
    pub name: String,
    pub time_limited: bool,
    /// Local time of the property, to the minute as the lock keeps it.
    pub from: Option<NaiveDateTime>,
    pub enabled: bool,
}

impl Lock {
    pub fn start(dir: &Path, interval_ms: u32) -> Lock {
        let mut cmd = Command::new("dbus-daemon");
        cmd.arg(format!(
            "--config-file={}",
            repo().join("tests/nuki/dbus-session.conf").display()
        ))
        .arg(format!(
            "--address=unix:path={}",
            dir.join("system_bus").display()
        ))
        .args(["--nofork", "--print-address=1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
        die_with_parent(&mut cmd);
        let mut dbus = cmd.spawn().expect("dbus-daemon (Debian package dbus)");
        let address = first_line(&mut dbus, Duration::from_secs(20), |l| {
            l.starts_with("unix:")
        })
        .expect("the private dbus-daemon prints its address");
        let log = std::fs::File::create(dir.join("fake-bluez.log")).unwrap();
        let mut cmd = Command::new(crate::python::python());
        cmd.arg(repo().join("tests/python/fake_bluez/fake_bluez.py"))
            .args([
                "--address",
                &address,
                "--mac",
                MAC,
                "--name",
                "Nuki_2A1B3C4D",
            ])
            .args(["--pin", &SECURITY_PIN.to_string()])
            .args(["--interval-ms", &interval_ms.to_string()])
            .stdout(Stdio::piped())
            .stderr(log);
        die_with_parent(&mut cmd);
        let mut fake = cmd.spawn().expect("fake BlueZ");
        let ready = first_line(&mut fake, Duration::from_secs(60), |l| l == "READY");
        assert!(ready.is_some(), "the fake BlueZ did not start");
        Lock {
            dbus,
            fake,
            address,
        }
    }

    pub fn control(&self, method: &str, args: &[&str]) -> String {
        let out = Command::new("dbus-send")
            .arg(format!("--bus={}", self.address))
            .args(["--print-reply", "--dest=org.bluez", "/org/leasegate/fake"])
            .arg(format!("org.leasegate.FakeLock.{method}"))
            .args(args)
            .output()
            .expect("dbus-send");
        assert!(
            out.status.success(),
            "{method}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The simulated lock's whole state (codes included: keep it out of messages).
    pub fn state(&self) -> Value {
        let out = self.control("GetState", &[]);
        let start = out.find("string \"").expect("a string reply") + 8;
        let end = out.rfind('"').unwrap();
        serde_json::from_str(&out[start..end]).unwrap()
    }

    /// (code value, what is safe to show) per lock-side code id.
    pub fn codes(&self) -> Vec<(u64, Code)> {
        let st = self.state();
        let mut v: Vec<(u64, Code)> = st["codes"]
            .as_object()
            .map(|m| m.values().map(parse_code).collect())
            .unwrap_or_default();
        v.sort_by(|a, b| a.1.name.cmp(&b.1.name));
        v
    }
}

fn parse_code(c: &Value) -> (u64, Code) {
    let limits =
        leasegate::panel::sync::unhex(c["limits"].as_str().unwrap_or("")).unwrap_or_default();
    let date = |b: &[u8]| -> Option<NaiveDateTime> {
        let year = u16::from_le_bytes([b[0], b[1]]);
        if year == 0 {
            return None;
        }
        chrono::NaiveDate::from_ymd_opt(year.into(), b[2].into(), b[3].into())?.and_hms_opt(
            b[4].into(),
            b[5].into(),
            b[6].into(),
        )
    };
    let (time_limited, from) = if limits.len() >= 8 {
        (limits[0] != 0, date(&limits[1..8]))
    } else {
        (false, None)
    };
    (
        c["code"].as_u64().unwrap_or(0),
        Code {
            name: c["name"].as_str().unwrap_or("").to_string(),
            time_limited,
            from,
            enabled: c["enabled"].as_bool().unwrap_or(false),
        },
    )
}

impl Drop for Lock {
    fn drop(&mut self) {
        for c in [&mut self.fake, &mut self.dbus] {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `t` as the lock keeps it: the property's local time, to the minute.
pub fn lock_time(t: DateTime<Utc>) -> NaiveDateTime {
    let l = t.with_timezone(&TZ).naive_local();
    chrono::NaiveDate::from_ymd_opt(l.year(), l.month(), l.day())
        .unwrap()
        .and_hms_opt(l.hour(), l.minute(), 0)
        .unwrap()
}

// ---------------------------------------------------------------------------------------
// The gateway binary

pub struct Gateway {
    pub dir: PathBuf,
    child: Option<Child>,
    dbus: String,
    starts: u32,
}

impl Gateway {
    pub fn config(&self) -> PathBuf {
        self.dir.join("leasegate.toml")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join(format!("gateway-{}.log", self.starts))
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_leasegate"));
        cmd.env("DBUS_SYSTEM_BUS_ADDRESS", &self.dbus)
            .env("LEASEGATE_LOG", "leasegate=info")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("JOURNAL_STREAM")
            .env_remove("LEASEGATE_LOG_FORMAT");
        cmd
    }

    /// `leasegate lock-pair` (the daemon must be stopped).
    pub fn pair_lock(&self) {
        let out = self
            .command()
            .args(["lock-pair", "--config"])
            .arg(self.config())
            .args(["--device", LOCK])
            .output()
            .expect("leasegate lock-pair");
        assert!(
            out.status.success(),
            "lock-pair failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Start `leasegate run` (again, on the same store).
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "the gateway is already running");
        self.starts += 1;
        let log = std::fs::File::create(self.log_path()).unwrap();
        let mut cmd = self.command();
        cmd.args(["run", "--config"])
            .arg(self.config())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        die_with_parent(&mut cmd);
        self.child = Some(cmd.spawn().expect("leasegate run"));
    }

    /// SIGKILL: no grace, no cleanup.
    pub fn kill9(&mut self) {
        let mut c = self.child.take().expect("the gateway runs");
        c.kill().unwrap();
        let status = c.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }

    /// SIGTERM, and wait for a clean exit within the grace period.
    pub fn stop(&mut self) {
        let mut c = self.child.take().expect("the gateway runs");
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = c.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "the gateway exited with {status}\n{}",
                    self.log_tail()
                );
                return;
            }
            if std::time::Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                panic!("the gateway did not stop within 20 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the child is still running (and why not, if it is not).
    pub fn check_alive(&mut self) -> Result<(), String> {
        match self.child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(None)) => Ok(()),
            Some(Ok(Some(status))) => Err(format!("the gateway exited: {status}")),
            Some(Err(e)) => Err(e.to_string()),
            None => Err("the gateway is not running".into()),
        }
    }

    pub fn log_tail(&self) -> String {
        let mut out = String::new();
        for n in 1..=self.starts {
            let text = std::fs::read_to_string(self.dir.join(format!("gateway-{n}.log")))
                .unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(40);
            out.push_str(&format!("[run {n}]\n{}\n", lines[from..].join("\n")));
        }
        out
    }

    /// Open the store (the gateway must be stopped).
    pub fn store(&self) -> leasegate::store::Store {
        leasegate::store::Store::open(&self.dir.join("state"))
            .unwrap()
            .0
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Everything at once

pub struct Options {
    pub mode: &'static str,
    /// The fake lock's BLE connection interval (0: as fast as D-Bus goes).
    pub lock_interval_ms: u32,
    pub poll_interval: &'static str,
    pub full_sync_every: &'static str,
    pub osdp_poll: &'static str,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            mode: "approval_required",
            lock_interval_ms: 0,
            poll_interval: "1h",
            full_sync_every: "1h",
            osdp_poll: "50ms",
        }
    }
}

pub struct Env {
    // Dropped in this order: the gateway first.
    pub gw: Gateway,
    pub probe: Probe,
    pub pms: Pms,
    pub lock: Lock,
    pub base: String,
    pins: BTreeMap<String, String>,
    // Dropped last: the panel's ptys and the files live in the temp dir.
    pub panel: Panel,
    pub dir: tempfile::TempDir,
}

impl Env {
    /// Start every peer, write the config, pair the lock, start `leasegate run`, and wait
    /// until it is online, has synced once and the panel is online.
    pub async fn start(leases: Vec<Lease>, opts: Options) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let pms = Pms::start(leases).await;
        let panel = Panel::start(dir.path());
        let lock = Lock::start(dir.path(), opts.lock_interval_ms);
        let base = crate::mqtt::unique("lge2e");
        let (host, port) = crate::mqtt::broker();
        let commission_until = (Utc::now() + chrono::Duration::hours(1))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let cfg = format!(
            r#"[site]
id = "{SITE}"
timezone = "America/Denver"
site_file = "site.toml"

[store]
path = "state"

[access]
mode = "{mode}"
activation_delay = "15m"

[pms]
kind = "buildium"
base_url = "{base_url}"
property_ids = ["{PROPERTY_ID}"]
client_id_file = "buildium-client-id"
client_secret_file = "buildium-client-secret"
ca_file = "{ca}"
poll_interval = "{poll}"
full_sync_every = "{full}"
timeout = "10s"

[mqtt]
url = "mqtt://{host}:{port}"
base_topic = "{base}"
client_id = "{base}-gw"
home_assistant = false

[osdp]
poll_interval = "{osdp_poll}"

[[osdp.buses]]
tty = "{tty}"
baud = 115200

[[osdp.buses.panels]]
device = "{PANEL}"
address = {OSDP_ADDRESS}
doors = {doors:?}
max_mfg_data = 64
vendor_code = {VENDOR}
commission_until = "{commission_until}"

[nuki]
connect_timeout = "10s"
command_timeout = "5s"

[[nuki.locks]]
device = "{LOCK}"
address = "{MAC}"
security_pin_file = "nuki.pin"
pin_width = 16
"#,
            mode = opts.mode,
            base_url = pms.server.base_url(),
            ca = pms.server.ca_file.display(),
            poll = opts.poll_interval,
            full = opts.full_sync_every,
            osdp_poll = opts.osdp_poll,
            tty = panel.tty().display(),
            doors = PANEL_DOORS,
        );
        let d = dir.path();
        std::fs::write(d.join("leasegate.toml"), cfg).unwrap();
        std::fs::write(d.join("site.toml"), site_toml()).unwrap();
        std::fs::write(d.join("buildium-client-id"), format!("{CLIENT_ID}\n")).unwrap();
        std::fs::write(
            d.join("buildium-client-secret"),
            format!("{CLIENT_SECRET}\n"),
        )
        .unwrap();
        std::fs::write(d.join("nuki.pin"), format!("{SECURITY_PIN}\n")).unwrap();
        let gw = Gateway {
            dir: d.to_path_buf(),
            child: None,
            dbus: lock.address.clone(),
            starts: 0,
        };
        gw.pair_lock();
        let probe = Probe::connect(&host, port, None, &format!("{base}/{SITE}/#")).await;
        let mut env = Env {
            gw,
            probe,
            pms,
            lock,
            base,
            pins: BTreeMap::new(),
            panel,
            dir,
        };
        env.launch().await;
        env
    }

    /// (Re)start the gateway and wait until it is online, has synced, and the panel is up.
    pub async fn launch(&mut self) {
        let from = self.probe.seen.len();
        self.gw.spawn();
        let (state, sync, panel) = (
            self.topic("bridge/state"),
            self.topic("status/sync"),
            self.topic(&format!("devices/{PANEL}")),
        );
        self.wait_new("the gateway online", from, Duration::from_secs(60), |s| {
            s.topic == state && s.json()["state"] == "online"
        })
        .await;
        self.wait_new("a first sync", from, Duration::from_secs(60), |s| {
            s.topic == sync && s.json()["ok"] == true && !s.json()["last_sync"].is_null()
        })
        .await;
        self.wait_new("the panel online", from, Duration::from_secs(60), |s| {
            s.topic == panel && s.json()["online"] == true
        })
        .await;
    }

    pub fn root(&self) -> String {
        format!("{}/{SITE}", self.base)
    }

    pub fn topic(&self, rest: &str) -> String {
        format!("{}/{rest}", self.root())
    }

    pub fn log(&self) -> impl Fn() -> String + '_ {
        || self.gw.log_tail()
    }

    /// Wait for a message received after the first `from` the probe saw.
    pub async fn wait_new(
        &mut self,
        what: &str,
        from: usize,
        within: Duration,
        f: impl Fn(&Seen) -> bool,
    ) -> Seen {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            self.probe.drain();
            if let Some(s) = self.probe.seen[from.min(self.probe.seen.len())..]
                .iter()
                .find(|s| f(s))
            {
                return s.clone();
            }
            if tokio::time::Instant::now() >= deadline {
                let alive = self.gw.check_alive().err().unwrap_or_default();
                panic!(
                    "timed out after {within:?} waiting for {what} {alive}\n--- gateway log (tail) ---\n{}",
                    self.gw.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A request as the manager; the raw reply payload.
    pub async fn request_raw(&mut self, command: &str, payload: Value) -> Vec<u8> {
        let from = self.probe.seen.len();
        let reply = self.topic(&format!("response/{ACTOR}/{command}"));
        self.probe
            .publish(
                &self.topic(&format!("request/{ACTOR}/{command}")),
                &payload.to_string(),
            )
            .await;
        self.wait_new(
            &format!("the reply to {command}"),
            from,
            Duration::from_secs(15),
            |s| s.topic == reply,
        )
        .await
        .payload
    }

    pub async fn request(&mut self, command: &str, payload: Value) -> Value {
        serde_json::from_slice(&self.request_raw(command, payload).await).unwrap()
    }

    pub async fn sync_now(&mut self, transaction: &str) {
        let r = self
            .request("sync/now", json!({ "transaction": transaction }))
            .await;
        assert_eq!(r["status"], "ok", "sync/now: {r}");
    }

    /// Pending (and held) suggestions, from `suggestions/list`.
    pub async fn pending(&mut self) -> Vec<Value> {
        let r = self
            .request("suggestions/list", json!({ "limit": 500 }))
            .await;
        assert_eq!(r["status"], "ok", "suggestions/list: {r}");
        r["data"]["suggestions"].as_array().unwrap().clone()
    }

    /// Wait until the pending list satisfies `f`; returns it.
    pub async fn wait_pending(&mut self, what: &str, f: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let p = self.pending().await;
            if f(&p) {
                return p;
            }
            if tokio::time::Instant::now() >= deadline {
                let summary: Vec<String> = p.iter().map(summary).collect();
                panic!(
                    "timed out waiting for {what}; pending: {summary:?}\n--- gateway log (tail) ---\n{}",
                    self.gw.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn approve(&mut self, transaction: &str, ids: &[String]) -> Value {
        self.request(
            "suggestions/approve",
            json!({ "transaction": transaction, "ids": ids }),
        )
        .await
    }

    /// Approve everything pending; every result must be `applied`.
    pub async fn approve_all(&mut self, transaction: &str) -> Vec<Value> {
        let pending = self.pending().await;
        let ids: Vec<String> = pending
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect();
        let r = self.approve(transaction, &ids).await;
        assert_eq!(r["status"], "ok", "approve: {r}");
        pending
    }

    /// Each resident's PIN (asked once with `credentials/reveal_pin`, kept here).
    pub async fn pin(&mut self, resident: &str) -> String {
        if let Some(p) = self.pins.get(resident) {
            return p.clone();
        }
        let r = self
            .request("credentials/reveal_pin", json!({ "resident_id": resident }))
            .await;
        assert_eq!(
            r["status"], "ok",
            "reveal_pin for {resident}: {}",
            r["error"]
        );
        let pin = r["data"]["pin"].as_str().unwrap().to_string();
        self.pins.insert(resident.to_string(), pin.clone());
        pin
    }

    pub async fn learn_pins(&mut self, residents: &[&str]) {
        for r in residents {
            self.pin(r).await;
        }
    }

    /// The panel's records by resident (PINs learnt with [`Env::pin`]; others as `?`):
    /// `(doors mask, valid_from)` per record.
    pub fn panel_view(&self) -> BTreeMap<String, Vec<(u32, u32)>> {
        let mut out: BTreeMap<String, Vec<(u32, u32)>> = BTreeMap::new();
        for r in self.panel.records() {
            let who = match &r.credential {
                Credential::Pin(d) => self
                    .pins
                    .iter()
                    .find(|(_, p)| p.as_bytes() == d.as_slice())
                    .map(|(r, _)| r.clone())
                    .unwrap_or_else(|| "?".into()),
                Credential::Card { .. } => "card".into(),
            };
            out.entry(who).or_default().push((r.doors, r.valid_from));
        }
        for v in out.values_mut() {
            v.sort();
        }
        out
    }

    /// The lock's codes by the resident in their name (`lg <id>`), each with whether the
    /// code is that resident's PIN.
    pub fn lock_view(&self) -> BTreeMap<String, Vec<(bool, Code)>> {
        let mut out: BTreeMap<String, Vec<(bool, Code)>> = BTreeMap::new();
        for (value, code) in self.lock.codes() {
            let who = code.name.strip_prefix("lg ").unwrap_or("?").to_string();
            let matches = self
                .pins
                .get(&who)
                .is_some_and(|p| p.parse::<u64>().ok() == Some(value));
            out.entry(who).or_default().push((matches, code));
        }
        out
    }

    pub async fn wait_devices<T>(
        &self,
        what: &str,
        within: Duration,
        mut cond: impl FnMut(
            &BTreeMap<String, Vec<(u32, u32)>>,
            &BTreeMap<String, Vec<(bool, Code)>>,
        ) -> Result<T, String>,
    ) -> T {
        let log = self.log();
        wait_until(what, within, &log, || {
            let (p, l) = (self.panel_view(), self.lock_view());
            cond(&p, &l).map_err(|e| format!("{e}; panel {p:?}; lock {l:?}"))
        })
        .await
    }
}

/// A suggestion in words (no secrets in it anyway).
pub fn summary(s: &Value) -> String {
    format!(
        "{} {} {} {} {} after={}",
        s["id"].as_str().unwrap_or("?"),
        s["resident_id"].as_str().unwrap_or("?"),
        s["action"].as_str().unwrap_or("?"),
        s["key"].as_str().unwrap_or("-"),
        s["state"].as_str().unwrap_or("?"),
        s["after"]
    )
}

pub fn ts(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a time: {v}")))
        .unwrap()
        .with_timezone(&Utc)
}
