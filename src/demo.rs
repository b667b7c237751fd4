//! `leasegate demo`: the whole gateway on a fresh machine, with simulated hardware.
//!
//! It runs [`daemon::run`](crate::daemon::run) on a config it writes into its own folder
//! (never into the source tree): the embedded MQTT broker, the `file` roster, two reference
//! OSDP panels served by [`panel::sim`](crate::panel::sim) on the other end of an in-process
//! pseudo-terminal, and three [`SimulatedLock`]s reached through the lock writer's
//! [`Connector`], paired at start through the real `locks/pair` command. It prints where
//! everything is, how to approve with `leasegate ctl`, and then every credential that lands
//! on a panel or a lock (residents, record ids, formats and time windows; never a PIN or a
//! card number).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::sync::{Arc, Mutex};

use leasegate_osdp::profile::{Credential, PanelDb, Record};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::lock::sim::{pin_width, LockChange, SimulatedLock};
use crate::lock::{Connector, SimulatedLocks};
use crate::panel::sim::{SharedDb, SimSettings};

const LEASEGATE_TOML: &str = include_str!("../config/demo/leasegate.toml");
const SITE_TOML: &str = include_str!("../config/demo/site.toml");
const ROSTER_JSON: &str = include_str!("../config/demo/roster.json");
/// The port `config/demo/leasegate.toml` names; the demo's own config may move it.
const DEMO_URL: &str = "mqtt://127.0.0.1:1884";
const PIN_FILE: &str = "lock.pin";

/// The simulated panels: site device, OSDP address, the site's doors on it.
const PANELS: &[(&str, u8, &[&str])] = &[
    ("panel-lobby", 1, &["front-entrance", "elevator"]),
    ("panel-amenities", 2, &["gym", "garage"]),
];
/// The simulated locks (site devices).
const LOCKS: &[&str] = &["lock-4b", "lock-5c", "lock-2a"];

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open a pseudo-terminal for the simulated panels: {0}")]
    Pty(String),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigErrors),
    #[error(transparent)]
    Daemon(#[from] crate::daemon::DaemonError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DemoError + '_ {
    move |source| DemoError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// Config, store, roster and the simulated panels' keys live here.
    pub dir: PathBuf,
    /// The embedded broker's port.
    pub mqtt_port: u16,
}

/// Write `contents` to `path` unless it exists (the roster is the user's to edit).
fn seed(path: &Path, contents: &str) -> Result<(), DemoError> {
    if path.exists() {
        return Ok(());
    }
    std::fs::write(path, contents).map_err(io(path))
}

fn write_private(path: &Path, contents: &str) -> Result<(), DemoError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    f.write_all(contents.as_bytes()).map_err(io(path))
}

/// The simulated locks' admin PIN: random on first start, then kept.
fn security_pin(dir: &Path) -> Result<u32, DemoError> {
    let path = dir.join(PIN_FILE);
    if let Some(v) = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| t.trim().parse::<u16>().ok())
        .filter(|v| *v != 0)
    {
        return Ok(u32::from(v));
    }
    let v = rand::Rng::gen_range(&mut rand::rngs::OsRng, 1..=u16::MAX);
    write_private(&path, &format!("{v}\n"))?;
    Ok(u32::from(v))
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The demo's config: `config/demo/leasegate.toml` on `port`, plus the simulated panels on
/// `tty` and the simulated locks. Rewritten at every start (the pty differs each time).
pub fn demo_config(port: u16, tty: &str, commission_until: &str) -> String {
    let mut s = String::from(
        "# Written by `leasegate demo` at every start: edits here are lost.\n\
         # The roster (roster.json) and the site (site.toml) beside it are yours to edit.\n\n",
    );
    s.push_str(&LEASEGATE_TOML.replace(DEMO_URL, &format!("mqtt://127.0.0.1:{port}")));
    s.push_str(
        "\n# Two reference panels on one simulated RS-485 bus (a pseudo-terminal).\n[osdp]\n",
    );
    s.push_str(&format!(
        "\n[[osdp.buses]]\ntty = {}\nbaud = 115200\n",
        toml_str(tty)
    ));
    for (device, address, doors) in PANELS {
        let doors: Vec<String> = doors.iter().map(|d| toml_str(d)).collect();
        s.push_str(&format!(
            "\n[[osdp.buses.panels]]\ndevice = {}\naddress = {address}\ndoors = [{}]\n\
             commission_until = {}\n",
            toml_str(device),
            doors.join(", "),
            toml_str(commission_until),
        ));
    }
    s.push_str(
        "\n# Simulated Nuki locks, in process: `leasegate demo` connects the lock writers to\n\
         # them in code. Under `leasegate run` these names are looked for over BLE.\n\
         [nuki]\nconnect_timeout = \"2s\"\ncommand_timeout = \"2s\"\n",
    );
    for device in LOCKS {
        s.push_str(&format!(
            "\n[[nuki.locks]]\ndevice = {}\nname = {}\nsecurity_pin_file = {}\n",
            toml_str(device),
            toml_str(&format!("Simulated Nuki {device}")),
            toml_str(PIN_FILE),
        ));
    }
    s
}

fn describe_credential(c: &Credential) -> String {
    match c {
        Credential::Card { bits, .. } => format!("card, {bits} bits"),
        Credential::Pin(p) => format!("PIN, {} digits", p.len()),
    }
}

fn when(secs: u32) -> String {
    chrono::DateTime::from_timestamp(i64::from(secs), 0)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| secs.to_string())
}

fn record_line(panel: &str, r: &Record, verb: &str) -> String {
    let until = if r.valid_until == u32::MAX || r.valid_until == 0 {
        String::new()
    } else {
        format!(", until {}", when(r.valid_until))
    };
    format!(
        "panel {panel}: record {} {verb} ({}, doors {:#b}, valid from {}{until})",
        r.id,
        describe_credential(&r.credential),
        r.doors,
        when(r.valid_from),
    )
}

/// What changed between two looks at a panel's records, as lines to print.
pub fn panel_changes(
    panel: &str,
    before: &BTreeMap<u32, Record>,
    after: &BTreeMap<u32, Record>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (id, r) in after {
        match before.get(id) {
            None => out.push(record_line(panel, r, "added")),
            Some(old) if old != r => {
                out.push(record_line(panel, r, &format!("updated to v{}", r.version)))
            }
            Some(_) => {}
        }
    }
    for id in before.keys().filter(|id| !after.contains_key(id)) {
        out.push(format!("panel {panel}: record {id} removed"));
    }
    out
}

fn snapshot(db: &SharedDb) -> BTreeMap<u32, Record> {
    db.lock()
        .unwrap_or_else(|e| e.into_inner())
        .records()
        .map(|r| (r.id, r.clone()))
        .collect()
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Print every record that lands on or leaves a simulated panel.
async fn watch_panels(panels: Vec<(String, SharedDb)>, stop: CancellationToken) {
    let mut seen: Vec<BTreeMap<u32, Record>> = panels.iter().map(|(_, db)| snapshot(db)).collect();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        for ((name, db), before) in panels.iter().zip(seen.iter_mut()) {
            let now = snapshot(db);
            for line in panel_changes(name, before, &now) {
                say(&line);
            }
            *before = now;
        }
    }
}

/// Serve the panels on the pty's master side. Until the gateway opens the other side (and
/// whenever it closes it) reads fail; the panels wait and serve again, keeping their
/// records and keys as a powered panel would.
async fn serve_panels(
    mut master: tokio_serial::SerialStream,
    panels: Vec<(SimSettings, SharedDb)>,
    stop: CancellationToken,
) {
    loop {
        if let Err(e) = crate::panel::sim::run_many(&mut master, panels.clone(), stop.clone()).await
        {
            tracing::debug!(error = %e, "simulated panels: no one on the line yet");
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

/// One line for an API event worth showing, or `None`. Suggestions as they are made and
/// decided, device writes and their failures; ids, residents and keys only.
pub fn event_line(kind: &str, e: &serde_json::Value) -> Option<String> {
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("?").to_string();
    Some(match kind {
        "suggestion_created" => {
            let g = &e["suggestion"];
            format!(
                "suggestion {}: {} {} for {} ({}), {}",
                s(&g["id"]),
                s(&g["action"]),
                g["key_name"].as_str().unwrap_or("no key"),
                s(&g["resident_name"]),
                s(&g["resident_id"]),
                s(&g["color"]),
            )
        }
        "suggestion_decided" => {
            format!(
                "suggestion {}: {} by {}",
                s(&e["id"]),
                s(&e["state"]),
                s(&e["actor"])
            )
        }
        // A device settling with nothing to write says nothing new.
        "access_applied" if e["upserts"] == 0 && e["deletes"] == 0 => return None,
        "access_applied" => format!(
            "device {}: holds its desired set now ({} written, {} removed)",
            s(&e["device"]),
            e["upserts"],
            e["deletes"]
        ),
        "device_write_failed" => format!(
            "device {}: write failed: {}",
            s(&e["device"]),
            s(&e["error"])
        ),
        _ => return None,
    })
}

/// Print the API's events as they happen, from the broker like any client.
async fn watch_events(cfg: Config, stop: CancellationToken) {
    use rumqttc::v5::mqttbytes::v5::Packet;
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::{AsyncClient, Event, MqttOptions};
    let Some(m) = &cfg.mqtt else { return };
    let root = crate::mqtt::Topics::new(&m.base_topic, &cfg.site.id)
        .root()
        .to_string();
    let mut o = MqttOptions::new("leasegate-demo-watch", m.url.host.clone(), m.url.port);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_max_packet_size(Some(crate::mqtt::client::MAX_PACKET));
    let (client, mut ev) = AsyncClient::new(o, 16);
    let filter = format!("{root}/events/+");
    loop {
        let polled = tokio::select! {
            _ = stop.cancelled() => return,
            p = ev.poll() => p,
        };
        match polled {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                let _ = client.try_subscribe(filter.clone(), QoS::AtLeastOnce);
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let topic = String::from_utf8_lossy(&p.topic);
                let kind = topic.rsplit('/').next().unwrap_or_default();
                if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&p.payload) {
                    if let Some(line) = event_line(kind, &v) {
                        say(&line);
                    }
                }
            }
            Ok(_) => {}
            // The broker is still starting, or going away: try again shortly.
            Err(_) => tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(300)) => {}
            },
        }
    }
}

/// Pair each simulated lock through the gateway's own `locks/pair`, once the API answers.
async fn pair_locks(cfg: Config, stop: CancellationToken) {
    let Some(m) = &cfg.mqtt else { return };
    let target = crate::ctl::Target {
        url: m.url.clone(),
        root: crate::mqtt::Topics::new(&m.base_topic, &cfg.site.id)
            .root()
            .to_string(),
        username: None,
        password: None,
        actor: "demo".into(),
        timeout: Duration::from_secs(5),
    };
    for lock in &cfg.nuki.locks {
        let mut attempt = 0;
        loop {
            if stop.is_cancelled() {
                return;
            }
            let body = serde_json::json!({ "device": lock.device });
            match crate::ctl::request(&target, "locks/pair", body).await {
                Ok(reply) if reply["status"] == "ok" => break,
                Ok(reply) => {
                    say(&format!(
                        "lock {}: pairing refused: {}",
                        lock.device,
                        crate::ctl::error_text(&reply)
                    ));
                    break;
                }
                // The broker or the API is still starting.
                Err(e) if attempt < 20 => {
                    tracing::debug!(error = %e, device = %lock.device, "pairing: gateway not ready");
                    attempt += 1;
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                }
                Err(e) => {
                    say(&format!("lock {}: could not pair: {e}", lock.device));
                    break;
                }
            }
        }
    }
}

fn intro(opts: &DemoOptions, tty: &str, cfg_path: &Path, cfg: &Config) -> String {
    let dir = opts.dir.display();
    let cfgp = cfg_path.display();
    let port = opts.mqtt_port;
    let panels: Vec<String> = PANELS
        .iter()
        .map(|(d, a, _)| format!("{d} (address {a})"))
        .collect();
    format!(
        "leasegate demo: the whole gateway on simulated hardware. Ctrl-C stops it.\n\
         \n\
         \x20 MQTT broker  mqtt://127.0.0.1:{port} (embedded); watch it: mosquitto_sub -V mqttv5 -p {port} -t 'leasegate/#' -v\n\
         \x20 panels       {} simulated on the pseudo-terminal {tty}\n\
         \x20 locks        {} simulated Nuki locks in this process, paired now over locks/pair\n\
         \x20              (new locks at every start: their writers say \"not paired\" until then)\n\
         \x20 store        {}\n\
         \x20 config       {cfgp} (rewritten at every start; delete {dir} to start over)\n\
         \n\
         Approve from another terminal:\n\
         \x20 cargo run --release -- ctl --config {cfgp} --as ann suggestions list\n\
         \x20 cargo run --release -- ctl --config {cfgp} --as ann suggestions approve <id> [<id> ...]\n\
         \n\
         Move a resident through the lease by editing {dir}/roster.json (read every {}s),\n\
         e.g. Ben Okafor (t-101), then approve each step's suggestions:\n\
         \x20 \"status\": \"future\"  -> \"current\"   grants unit 5C's lock and the common-area keys\n\
         \x20 \"unit\":   \"5C\"      -> \"4B\"        moves the keys: 4B granted before 5C revoked\n\
         \x20 \"status\": \"current\" -> \"past\"      revokes every key\n\
         \n\
         Suggestions, decisions and the credentials landing on the panels and locks show\n\
         below (residents, ids and formats; never a PIN or card number).\n",
        panels.join(", "),
        LOCKS.join(", "),
        cfg.store.path.display(),
        cfg.pms.poll_interval.as_secs(),
    )
}

/// Run the demo until `shutdown`.
pub async fn run(opts: DemoOptions, shutdown: CancellationToken) -> Result<(), DemoError> {
    let dir = &opts.dir;
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    seed(&dir.join("site.toml"), SITE_TOML)?;
    seed(&dir.join("roster.json"), ROSTER_JSON)?;
    let pin = security_pin(dir)?;

    // The bus: the gateway opens the pty's tty by path, the panels serve its master side.
    let (master, slave) =
        tokio_serial::SerialStream::pair().map_err(|e| DemoError::Pty(e.to_string()))?;
    let tty = tokio_serial::SerialPort::name(&slave)
        .ok_or_else(|| DemoError::Pty("the pseudo-terminal has no name".into()))?;
    // Closed so that the gateway is the only one to open it (it asks for exclusive use).
    drop(slave);

    let commission_until = (chrono::Utc::now() + chrono::Duration::minutes(15))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let cfg_path = dir.join("leasegate.toml");
    write_private(
        &cfg_path,
        &demo_config(opts.mqtt_port, &tty, &commission_until),
    )?;
    let cfg = crate::config::load(&cfg_path)?;

    let stop = shutdown.child_token();
    let tasks = tokio_util::task::TaskTracker::new();

    let mut panels = Vec::new();
    let mut watched = Vec::new();
    for (device, address, _) in PANELS {
        let settings = SimSettings {
            address: *address,
            key_file: Some(dir.join(format!("{device}.key"))),
            ..Default::default()
        };
        // Sized as the settings say: a default PanelDb holds nothing and answers FULL.
        let db: SharedDb = Arc::new(Mutex::new(PanelDb::new(settings.capacity)));
        panels.push((settings, db.clone()));
        watched.push((device.to_string(), db));
    }
    tasks.spawn(serve_panels(master, panels, stop.clone()));
    tasks.spawn(watch_panels(watched, stop.clone()));

    let locks = SimulatedLocks::default();
    let (tx, mut changes) = tokio::sync::mpsc::unbounded_channel::<LockChange>();
    for l in &cfg.nuki.locks {
        let pin = leasegate_nuki::SecurityPin::new(pin, pin_width(l.pin_width))
            .expect("a u16 fits either width");
        let mut lock = SimulatedLock::new(&l.device, pin);
        // Fresh in memory at every start: in pairing mode, as if its button were held.
        lock.set_pairing_mode(true);
        lock.observe(tx.clone());
        locks.add(lock);
    }
    drop(tx);
    tasks.spawn(async move {
        while let Some(c) = changes.recv().await {
            say(&c.to_string());
        }
    });
    tasks.spawn(pair_locks(cfg.clone(), stop.clone()));
    tasks.spawn(watch_events(cfg.clone(), stop.clone()));
    tasks.close();

    say(&intro(&opts, &tty, &cfg_path, &cfg));
    let extras = crate::daemon::RunExtras {
        lock_connector: Connector::Simulated(locks),
        ..Default::default()
    };
    let result = crate::daemon::run_with(cfg, shutdown.clone(), extras).await;
    stop.cancel();
    // The lock printer ends when the writers (and their connector's locks) are gone; the
    // others stop on the token. None of them holds anything that needs saving.
    let _ = tokio::time::timeout(Duration::from_secs(2), tasks.wait()).await;
    say("leasegate demo: stopped");
    result.map_err(DemoError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_config_moves_the_broker_and_names_the_pty_panels_and_simulated_locks() {
        let s = demo_config(4242, "/dev/pts/7", "2026-12-04T10:00:00Z");
        assert!(s.contains("url = \"mqtt://127.0.0.1:4242\""), "{s}");
        assert!(!s.contains("1884\""), "{s}");
        assert!(s.contains("tty = \"/dev/pts/7\""), "{s}");
        let v: toml::Value = s.parse().unwrap();
        assert_eq!(v["osdp"]["buses"][0]["panels"].as_array().unwrap().len(), 2);
        assert_eq!(v["nuki"]["locks"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn events_become_short_lines_with_ids_and_residents_only() {
        let created = serde_json::json!({"type": "suggestion_created", "suggestion": {
            "id": "s000003", "action": "grant", "key": "unit:4B", "key_name": "Unit 4B",
            "resident_id": "t-100", "resident_name": "Ana Diaz", "color": "green"}});
        assert_eq!(
            event_line("suggestion_created", &created).unwrap(),
            "suggestion s000003: grant Unit 4B for Ana Diaz (t-100), green"
        );
        let idle = serde_json::json!({"device": "lock-4b", "upserts": 0, "deletes": 0});
        assert_eq!(event_line("access_applied", &idle), None);
        let wrote = serde_json::json!({"device": "lock-4b", "upserts": 1, "deletes": 0});
        assert_eq!(
            event_line("access_applied", &wrote).unwrap(),
            "device lock-4b: holds its desired set now (1 written, 0 removed)"
        );
        let decided = serde_json::json!({"id": "s000003", "state": "applied", "actor": "ann"});
        assert_eq!(
            event_line("suggestion_decided", &decided).unwrap(),
            "suggestion s000003: applied by ann"
        );
        assert_eq!(event_line("guard_tripped", &decided), None);
    }

    #[test]
    fn panel_changes_name_records_formats_and_doors_but_never_the_credential() {
        let r = Record {
            id: 3,
            version: 1,
            doors: 0b11,
            valid_from: 1_764_843_300,
            valid_until: u32::MAX,
            credential: Credential::Pin(b"345678".to_vec()),
        };
        let before = BTreeMap::new();
        let after = BTreeMap::from([(3, r.clone())]);
        let added = panel_changes("panel-lobby", &before, &after);
        assert_eq!(
            added,
            vec!["panel panel-lobby: record 3 added (PIN, 6 digits, doors 0b11, valid from 2025-12-04 10:15 UTC)"]
        );
        assert!(!added[0].contains("345678"));
        let gone = panel_changes("panel-lobby", &after, &before);
        assert_eq!(gone, vec!["panel panel-lobby: record 3 removed"]);
    }
}
