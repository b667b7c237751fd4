//! Test harness for the Nuki lock driver: a private dbus-daemon, the fake BlueZ with its
//! simulated lock (tests/python/fake_bluez), and an in-memory [`LockPort`].
//! Shared by tests/nuki_ble.rs and benches/nuki_codes.rs.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use leasegate::config::nuki::{LockAddress, LockConfig, NukiConfig};
use leasegate::core::Pin;
use leasegate::events::Event;
use leasegate::lock::LockPort;
use leasegate::outbox::{DesiredEntry, DeviceWork, OutboxError};
use leasegate::seal::Sealer;
use tokio::sync::{broadcast, watch};

use super::python::python;

pub const MAC: &str = "C2:4B:1A:00:00:01";
pub const LOCK_NAME: &str = "Nuki_2A1B3C4D";
pub const DEVICE: &str = "lock-3b";
pub const SECURITY_PIN: u32 = 1234;

/// One fake lock at a time per test binary (they share the bus and the name org.bluez).
static BUS: Mutex<()> = Mutex::new(());

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Read lines of `child`'s stdout into a channel.
fn lines(child: &mut Child) -> mpsc::Receiver<String> {
    let out = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn wait_line(rx: &mpsc::Receiver<String>, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if pred(&l) => return l,
            Ok(_) => {}
            Err(e) => panic!("{what} did not become ready: {e}"),
        }
    }
}

pub struct FakeBluez {
    _guard: MutexGuard<'static, ()>,
    pub dir: tempfile::TempDir,
    fake: Child,
    pub address: String,
}

/// libdbus reads DBUS_SYSTEM_BUS_ADDRESS once per process, so every test of a binary shares
/// one private dbus-daemon (each gets a fresh fake lock on it). The daemon is spawned from a
/// thread that lives as long as the process and dies with it (PR_SET_PDEATHSIG).
fn shared_bus() -> &'static str {
    static ADDRESS: OnceLock<String> = OnceLock::new();
    ADDRESS.get_or_init(|| {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let dir =
                std::env::temp_dir().join(format!("leasegate-nuki-bus-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let mut cmd = Command::new("dbus-daemon");
            cmd.arg(format!(
                "--config-file={}",
                repo().join("tests/nuki/dbus-session.conf").display()
            ))
            .arg(format!("--address=unix:path={}", dir.join("bus").display()))
            .args(["--nofork", "--print-address=1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
            // SAFETY: prctl only, between fork and exec.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                    Ok(())
                });
            }
            let mut daemon = cmd.spawn().expect("dbus-daemon (Debian package dbus)");
            let address = wait_line(&lines(&mut daemon), "dbus-daemon", |l| {
                l.starts_with("unix:")
            })
            .trim()
            .to_string();
            // Edition 2021: set_var is safe; no other thread reads this variable yet.
            std::env::set_var("DBUS_SYSTEM_BUS_ADDRESS", &address);
            tx.send(address).unwrap();
            let _ = daemon.wait();
        });
        rx.recv().expect("dbus-daemon address")
    })
}

impl FakeBluez {
    pub fn start(extra: &[&str]) -> FakeBluez {
        let guard = BUS.lock().unwrap_or_else(|e| e.into_inner());
        let py = python();
        let address = shared_bus().to_string();
        let dir = tempfile::tempdir().unwrap();
        let mut fake = Command::new(py)
            .arg(repo().join("tests/python/fake_bluez/fake_bluez.py"))
            .args(["--address", &address, "--mac", MAC, "--name", LOCK_NAME])
            .args(["--pin", &SECURITY_PIN.to_string()])
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .expect("fake BlueZ");
        wait_line(&lines(&mut fake), "fake BlueZ", |l| l == "READY");
        FakeBluez {
            _guard: guard,
            dir,
            fake,
            address,
        }
    }

    /// Call a control method of the simulated lock (`dbus-send` argument syntax).
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

    /// The simulated lock's state: codes, authorizations, counters.
    pub fn state(&self) -> serde_json::Value {
        let out = self.control("GetState", &[]);
        let start = out.find("string \"").expect("a string reply") + 8;
        let end = out.rfind('"').unwrap();
        serde_json::from_str(&out[start..end]).unwrap()
    }

    pub fn codes(&self) -> BTreeMap<String, serde_json::Value> {
        self.state()["codes"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    pub fn code_values(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self
            .codes()
            .values()
            .map(|c| c["code"].as_u64().unwrap())
            .collect();
        v.sort();
        v
    }

    /// A `[nuki]` config for this fake, with the security PIN file in the temp dir.
    pub fn config(&self, pin: u32) -> NukiConfig {
        std::fs::write(self.dir.path().join("nuki.pin"), format!("{pin}\n")).unwrap();
        NukiConfig {
            connect_timeout: Duration::from_secs(15),
            command_timeout: Duration::from_secs(5),
            secrets_base: self.dir.path().to_path_buf(),
            locks: vec![LockConfig {
                device: DEVICE.into(),
                address: LockAddress::Mac(MAC.into()),
                security_pin_file: Some("nuki.pin".into()),
                pin_width: 16,
            }],
            ..NukiConfig::default()
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for FakeBluez {
    fn drop(&mut self) {
        let _ = self.fake.kill();
        let _ = self.fake.wait();
    }
}

struct Mem {
    entries: Vec<DesiredEntry>,
    generation: u64,
    settled: u64,
    state: Option<Vec<u8>>,
    tz: chrono_tz::Tz,
}

/// The gateway side, in memory: the desired set, the device state blob, events.
#[derive(Clone)]
pub struct MemPort {
    mem: Arc<Mutex<Mem>>,
    sealer: Sealer,
    pub events: broadcast::Sender<Event>,
    changed: Arc<watch::Sender<u64>>,
}

impl MemPort {
    pub fn new(tz: chrono_tz::Tz) -> MemPort {
        MemPort {
            mem: Arc::new(Mutex::new(Mem {
                entries: Vec::new(),
                generation: 0,
                settled: 0,
                state: None,
                tz,
            })),
            sealer: Sealer::from_key([7; 32]),
            events: broadcast::channel(1024).0,
            changed: Arc::new(watch::channel(0).0),
        }
    }

    /// Replace the desired set: `(resident, pin, valid_from)`.
    pub fn set(&self, residents: &[(&str, &str, chrono::DateTime<chrono::Utc>)]) {
        let mut m = self.mem.lock().unwrap();
        m.entries = residents
            .iter()
            .map(|(r, pin, from)| DesiredEntry {
                resident_id: r.to_string(),
                doors: [("front".to_string(), *from)].into_iter().collect(),
                cards: vec![],
                pin: Some(Pin::parse(pin).expect("a valid test PIN")),
            })
            .collect();
        m.generation += 1;
        let g = m.generation;
        drop(m);
        self.changed.send_replace(g);
    }

    pub fn state_blob(&self) -> Option<Vec<u8>> {
        self.mem.lock().unwrap().state.clone()
    }

    pub fn settled(&self) -> u64 {
        self.mem.lock().unwrap().settled
    }

    pub fn work_now(&self) -> DeviceWork {
        let m = self.mem.lock().unwrap();
        DeviceWork {
            device: DEVICE.into(),
            generation: if m.generation > m.settled {
                m.generation
            } else {
                0
            },
            entries: m.entries.clone(),
            timezone: m.tz,
        }
    }
}

impl LockPort for MemPort {
    fn work(
        &self,
        _device: &str,
    ) -> impl std::future::Future<Output = Result<DeviceWork, OutboxError>> + Send {
        let w = self.work_now();
        async move { Ok(w) }
    }
    fn settle(
        &self,
        _device: &str,
        generation: u64,
    ) -> impl std::future::Future<Output = Result<bool, OutboxError>> + Send {
        let mut m = self.mem.lock().unwrap();
        let ok = generation == 0 || generation == m.generation;
        if ok && generation != 0 {
            m.settled = generation;
        }
        async move { Ok(ok) }
    }
    fn device_state(
        &self,
        _device: &str,
    ) -> impl std::future::Future<Output = Result<Option<Vec<u8>>, OutboxError>> + Send {
        let s = self.mem.lock().unwrap().state.clone();
        async move { Ok(s) }
    }
    fn put_device_state(
        &self,
        _device: &str,
        bytes: &[u8],
    ) -> impl std::future::Future<Output = Result<(), OutboxError>> + Send {
        self.mem.lock().unwrap().state = Some(bytes.to_vec());
        async move { Ok(()) }
    }
    fn sealer(&self) -> &Sealer {
        &self.sealer
    }
    fn emit(&self, event: Event) {
        let _ = self.events.send(event);
    }
    fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}
