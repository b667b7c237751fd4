//! The broker roles in `config/mosquitto/`, checked against a real Mosquitto: each test starts
//! `/usr/sbin/mosquitto` on a free loopback port from `config/mosquitto/mosquitto.conf` (port,
//! paths and logging substituted) with the real `config/mosquitto/acl` as is, and speaks to it
//! with `mosquitto_pub` / `mosquitto_sub` over MQTT 5.
//!
//! A refused publish shows twice: its PUBACK carries reason 0x87 (not authorized), and a
//! subscriber that would have seen it does not. "Does not" is shown without sleeping: after the
//! refused publish, the gateway publishes a marker that the same subscriber reads; Mosquitto
//! delivers to one subscriber in order, so anything let through would have arrived first.
//! Every refusal has a positive control next to it (the same kind of message, from someone
//! allowed to send it, arrives).

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

const MOSQUITTO: &str = "/usr/sbin/mosquitto";
const SITE: &str = "maple-court";
const WAIT: Duration = Duration::from_secs(10);

/// PUBACK reason codes (MQTT 5).
const SUCCESS: u8 = 0x00;
const NO_MATCHING_SUBSCRIBERS: u8 = 0x10;
const NOT_AUTHORIZED: u8 = 0x87;

const USERS: [(&str, &str); 5] = [
    ("gateway", "gw-secret"),
    ("manager-ann", "ann-secret"),
    ("manager-bob", "bob-secret"),
    ("installer-ivan", "ivan-secret"),
    ("homeassistant", "ha-secret"),
];

fn password(user: &str) -> &'static str {
    USERS.iter().find(|(u, _)| *u == user).unwrap().1
}

fn topic(rest: &str) -> String {
    format!("leasegate/{SITE}/{rest}")
}

/// A Mosquitto of our own; killed when dropped.
struct Broker {
    child: Child,
    port: u16,
    /// Holds the password file and config until the broker is gone.
    _dir: tempfile::TempDir,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// `config/mosquitto/mosquitto.conf` with the listener on `port` (loopback), the password file
/// in `dir`, the repository's ACL file, no persistence, and logging to stderr.
fn test_conf(port: u16, dir: &Path) -> String {
    let conf = std::fs::read_to_string(repo().join("config/mosquitto/mosquitto.conf")).unwrap();
    let acl = repo().join("config/mosquitto/acl");
    let mut seen = [false; 4];
    let mut out = String::new();
    for line in conf.lines() {
        let key = line.split_whitespace().next().unwrap_or("");
        let line = match key {
            "listener" => {
                seen[0] = true;
                format!("listener {port} 127.0.0.1")
            }
            "password_file" => {
                seen[1] = true;
                format!("password_file {}", dir.join("passwd").display())
            }
            "acl_file" => {
                seen[2] = true;
                format!("acl_file {}", acl.display())
            }
            "persistence" => {
                seen[3] = true;
                "persistence false".to_string()
            }
            "persistence_location" | "log_dest" | "pid_file" | "user" => continue,
            _ => line.to_string(),
        };
        out.push_str(&line);
        out.push('\n');
    }
    assert_eq!(
        seen, [true; 4],
        "mosquitto.conf lost one of listener, password_file, acl_file, persistence"
    );
    assert!(
        conf.lines().any(|l| l.trim() == "allow_anonymous false"),
        "mosquitto.conf must refuse anonymous clients"
    );
    out.push_str("log_dest stderr\n");
    // As root Mosquitto would switch to the `mosquitto` user, who cannot read our temp dir.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        out.push_str("user root\n");
    }
    out
}

fn start_broker() -> Broker {
    assert!(
        Path::new(MOSQUITTO).exists(),
        "{MOSQUITTO} is missing: apt-get install mosquitto mosquitto-clients"
    );
    let dir = tempfile::tempdir().unwrap();
    let passwd = dir.path().join("passwd");
    for (i, (user, pw)) in USERS.iter().enumerate() {
        let mut cmd = Command::new("mosquitto_passwd");
        cmd.arg("-b");
        if i == 0 {
            cmd.arg("-c");
        }
        let out = cmd.arg(&passwd).arg(user).arg(pw).output().unwrap();
        assert!(out.status.success(), "mosquitto_passwd: {out:?}");
    }
    // A port freed by the kernel can be taken again before Mosquitto binds it: retry.
    for _ in 0..5 {
        let port = free_port();
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(&conf, test_conf(port, dir.path())).unwrap();
        let log = std::fs::File::create(dir.path().join("broker.log")).unwrap();
        let mut child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Broker {
                    child,
                    port,
                    _dir: dir,
                };
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        let log = std::fs::read_to_string(dir.path().join("broker.log")).unwrap();
        eprintln!("mosquitto did not listen on {port}; retrying. Its log:\n{log}");
    }
    panic!("mosquitto never came up");
}

impl Broker {
    fn client_args(&self, user: &str) -> Vec<String> {
        vec![
            "-V".into(),
            "mqttv5".into(),
            "-h".into(),
            "127.0.0.1".into(),
            "-p".into(),
            self.port.to_string(),
            "-u".into(),
            user.into(),
            "-P".into(),
            password(user).into(),
            "-q".into(),
            "1".into(),
        ]
    }

    /// Publishes as `user` (QoS 1) and returns the PUBACK reason code.
    fn publish(&self, user: &str, topic: &str, payload: &str, retain: bool) -> u8 {
        let mut cmd = Command::new("mosquitto_pub");
        cmd.args(self.client_args(user))
            .args(["-d", "-t", topic, "-m", payload]);
        if retain {
            cmd.arg("-r");
        }
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .find(|l| l.contains("received PUBACK"))
            .unwrap_or_else(|| {
                panic!(
                    "no PUBACK for {user} on {topic}: {text}{}",
                    String::from_utf8_lossy(&out.stderr)
                )
            });
        // "Client … received PUBACK (Mid: 1, RC:135)"
        let rc = line.rsplit("RC:").next().unwrap().trim_end_matches(')');
        rc.parse()
            .unwrap_or_else(|_| panic!("cannot read {line:?}"))
    }

    /// Subscribes as `user` to `topics`, plus the retained `bridge/state`, which the gateway
    /// publishes first: its arrival proves the subscription is in place.
    fn subscribe(&self, user: &str, topics: &[&str]) -> Subscriber {
        let mut cmd = Command::new("mosquitto_sub");
        cmd.args(self.client_args(user))
            .args(["-F", "%t %p", "-t"])
            .arg(topic("bridge/state"));
        for t in topics {
            cmd.args(["-t", t]);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let (t, p) = line.split_once(' ').unwrap_or((&line, ""));
                if tx.send((t.to_string(), p.to_string())).is_err() {
                    break;
                }
            }
        });
        let mut sub = Subscriber {
            child,
            rx,
            seen: Vec::new(),
            user: user.to_string(),
        };
        sub.wait_for(&topic("bridge/state"));
        sub
    }

    /// The gateway's retained online state: what every subscriber first waits for.
    fn gateway_online(&self) {
        let rc = self.publish(
            "gateway",
            &topic("bridge/state"),
            r#"{"state":"online"}"#,
            true,
        );
        assert!(rc == SUCCESS || rc == NO_MATCHING_SUBSCRIBERS, "rc {rc:#x}");
    }
}

/// A running `mosquitto_sub`; everything it received so far is in `seen`.
struct Subscriber {
    child: Child,
    rx: Receiver<(String, String)>,
    seen: Vec<(String, String)>,
    user: String,
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Subscriber {
    /// Reads until a message on `topic` arrives (bounded by `WAIT`); returns its payload.
    fn wait_for(&mut self, topic: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok((t, p)) => {
                    self.seen.push((t.clone(), p.clone()));
                    if t == topic {
                        return p;
                    }
                }
                Err(_) => panic!(
                    "{} never received {topic}; it saw {:?}",
                    self.user, self.seen
                ),
            }
        }
    }

    /// Topics received so far that start with `prefix`.
    fn received_under(&self, prefix: &str) -> Vec<String> {
        self.seen
            .iter()
            .filter(|(t, _)| t.starts_with(prefix))
            .map(|(t, _)| t.clone())
            .collect()
    }

    /// Everything before this point has been delivered: the gateway publishes a marker on
    /// `marker_topic` (which this subscriber reads) and we wait for it.
    fn flush(&mut self, broker: &Broker, marker_topic: &str) {
        let rc = broker.publish("gateway", marker_topic, r#"{"marker":true}"#, false);
        assert_eq!(
            rc, SUCCESS,
            "the marker on {marker_topic} was not delivered"
        );
        self.wait_for(marker_topic);
    }
}

fn approve(transaction: &str) -> String {
    format!(r#"{{"transaction":"{transaction}","ids":["s000042"]}}"#)
}

const INSTALLER_COMMANDS: [&str; 9] = [
    "units/list",
    "units/set",
    "units/remove",
    "keys/list",
    "keys/set",
    "keys/remove",
    "devices/list",
    "devices/set_door",
    "locks/pair",
];

const MANAGER_COMMANDS: [&str; 16] = [
    "suggestions/list",
    "suggestions/approve",
    "suggestions/discard",
    "mode/set",
    "sync/now",
    "sync/plan",
    "residents/list",
    "residents/override",
    "credentials/enroll_card",
    "credentials/remove_card",
    "credentials/reveal_pin",
    "keys/assign",
    "keys/revoke",
    // Future commands in the manager groups are covered by the `#` patterns too.
    "suggestions/anything",
    "sync/anything",
    "residents/anything",
];

#[test]
fn a_manager_request_reaches_the_gateway() {
    let broker = start_broker();
    broker.gateway_online();
    let mut gw = broker.subscribe("gateway", &["leasegate/+/request/#"]);
    let t = topic("request/manager-ann/suggestions/approve");
    assert_eq!(
        broker.publish("manager-ann", &t, &approve("ann-1"), false),
        SUCCESS
    );
    assert_eq!(gw.wait_for(&t), approve("ann-1"));
}

#[test]
fn a_manager_may_send_every_manager_command_under_its_own_name() {
    let broker = start_broker();
    broker.gateway_online();
    let mut gw = broker.subscribe("gateway", &["leasegate/+/request/#"]);
    for c in MANAGER_COMMANDS {
        let t = topic(&format!("request/manager-ann/{c}"));
        assert_eq!(
            broker.publish("manager-ann", &t, "{}", false),
            SUCCESS,
            "manager-ann may send {c}"
        );
        gw.wait_for(&t);
    }
}

#[test]
fn a_manager_cannot_publish_installer_commands() {
    let broker = start_broker();
    broker.gateway_online();
    let mut gw = broker.subscribe("gateway", &["leasegate/+/request/#"]);
    let acks: Vec<(&str, u8)> = INSTALLER_COMMANDS
        .iter()
        .map(|c| {
            let t = topic(&format!("request/manager-ann/{c}"));
            (
                *c,
                broker.publish("manager-ann", &t, r#"{"transaction":"x"}"#, false),
            )
        })
        .collect();
    gw.flush(&broker, &topic("request/gateway/sync/now"));
    assert_eq!(
        gw.received_under(&topic("request/manager-ann/")),
        Vec::<String>::new(),
        "the gateway received installer commands from a manager"
    );
    for (c, rc) in acks {
        assert_eq!(rc, NOT_AUTHORIZED, "manager-ann's {c} was not refused");
    }
}

#[test]
fn an_installer_may_send_installer_and_manager_commands_under_its_own_name() {
    let broker = start_broker();
    broker.gateway_online();
    let mut gw = broker.subscribe("gateway", &["leasegate/+/request/#"]);
    for c in INSTALLER_COMMANDS.iter().chain(&MANAGER_COMMANDS) {
        let t = topic(&format!("request/installer-ivan/{c}"));
        assert_eq!(
            broker.publish("installer-ivan", &t, "{}", false),
            SUCCESS,
            "installer-ivan may send {c}"
        );
        gw.wait_for(&t);
    }
}

#[test]
fn a_user_cannot_publish_requests_as_another_actor() {
    let broker = start_broker();
    broker.gateway_online();
    let mut gw = broker.subscribe("gateway", &["leasegate/+/request/#"]);
    let impersonations = [
        ("manager-ann", "request/manager-bob/suggestions/approve"),
        ("manager-ann", "request/installer-ivan/suggestions/approve"),
        ("manager-ann", "request/installer-ivan/units/set"),
        ("manager-ann", "request/gateway/suggestions/approve"),
        ("manager-ann", "request/manager-ann-2/suggestions/approve"),
        ("installer-ivan", "request/manager-ann/suggestions/approve"),
        ("installer-ivan", "request/manager-ann/mode/set"),
    ];
    let mut acks: Vec<(&str, String, u8)> = impersonations
        .iter()
        .map(|(user, rest)| {
            let t = topic(rest);
            let rc = broker.publish(user, &t, &approve("x"), false);
            (*user, t, rc)
        })
        .collect();
    // The ACL is the same on every site under the base topic.
    let elsewhere = "leasegate/other-site/request/manager-bob/sync/now";
    let rc = broker.publish("manager-ann", elsewhere, "{}", false);
    acks.push(("manager-ann", elsewhere.to_string(), rc));
    gw.flush(&broker, &topic("request/gateway/sync/now"));
    let leaked: Vec<String> = gw
        .seen
        .iter()
        .map(|(t, _)| t.clone())
        .filter(|t| t.contains("/request/") && !t.contains("/request/gateway/sync/now"))
        .collect();
    assert_eq!(
        leaked,
        Vec::<String>::new(),
        "impersonated requests got through"
    );
    for (user, t, rc) in acks {
        assert_eq!(rc, NOT_AUTHORIZED, "{user} on {t} was not refused");
    }
}

#[test]
fn a_manager_cannot_read_another_actors_responses() {
    let broker = start_broker();
    broker.gateway_online();
    // Ann asks for Ivan's replies directly, through a wildcard, and through everything.
    let mut ann = broker.subscribe(
        "manager-ann",
        &[
            "leasegate/+/response/installer-ivan/#",
            "leasegate/+/response/+/#",
            "leasegate/#",
            "#",
        ],
    );
    let mut ivan = broker.subscribe("installer-ivan", &["leasegate/+/response/installer-ivan/#"]);
    let secret = topic("response/installer-ivan/credentials/reveal_pin");
    let reply = r#"{"status":"ok","command":"credentials/reveal_pin","transaction":null,"data":{"resident_id":"r-1017","pin":"345678"}}"#;
    assert_eq!(broker.publish("gateway", &secret, reply, false), SUCCESS);
    // Positive control: the actor it is meant for gets it.
    assert_eq!(ivan.wait_for(&secret), reply);
    // Ann's own reply comes after it; by then Ivan's would have reached her.
    ann.flush(&broker, &topic("response/manager-ann/suggestions/list"));
    assert_eq!(
        ann.received_under(&topic("response/installer-ivan/")),
        Vec::<String>::new(),
        "manager-ann read installer-ivan's reply"
    );
}

#[test]
fn clients_cannot_publish_the_gateways_state_or_events() {
    let broker = start_broker();
    broker.gateway_online();
    let mut gw = broker.subscribe("gateway", &["leasegate/#", "homeassistant/#"]);
    let mut acks: Vec<(&str, String, u8)> = [
        ("manager-ann", "bridge/state"),
        ("manager-ann", "status/pending"),
        ("manager-ann", "suggestions/s000042"),
        ("installer-ivan", "devices/lock-4b"),
        ("installer-ivan", "events/suggestion_decided"),
        ("manager-ann", "response/manager-ann/suggestions/approve"),
    ]
    .iter()
    .map(|(user, rest)| {
        let t = topic(rest);
        (
            *user,
            t.clone(),
            broker.publish(user, &t, r#"{"state":"offline"}"#, true),
        )
    })
    .collect();
    let ha = "homeassistant/lock/x/config";
    acks.push((
        "manager-ann",
        ha.into(),
        broker.publish("manager-ann", ha, "{}", true),
    ));
    gw.flush(&broker, &topic("events/alert"));
    let from_clients: Vec<String> = gw
        .seen
        .iter()
        .filter(|(_, p)| !p.contains("marker") && p != r#"{"state":"online"}"#)
        .map(|(t, _)| t.clone())
        .collect();
    assert_eq!(
        from_clients,
        Vec::<String>::new(),
        "clients spoke for the gateway"
    );
    for (user, t, rc) in acks {
        assert_eq!(rc, NOT_AUTHORIZED, "{user} on {t} was not refused");
    }
}

#[test]
fn managers_and_installers_read_the_retained_state_and_events() {
    let broker = start_broker();
    broker.gateway_online();
    let pending = topic("status/pending");
    let body = r#"{"count":1,"alert":true,"oldest":"2026-12-04T05:00:00Z"}"#;
    assert_eq!(
        broker.publish("gateway", &pending, body, true),
        NO_MATCHING_SUBSCRIBERS
    );
    for user in ["manager-ann", "installer-ivan"] {
        let mut sub = broker.subscribe(
            user,
            &[
                "leasegate/+/status/#",
                "leasegate/+/events/#",
                "leasegate/+/suggestions/+",
                "leasegate/+/devices/+",
            ],
        );
        assert_eq!(sub.wait_for(&pending), body, "{user} reads retained state");
        let ev = topic("events/access_applied");
        assert_eq!(broker.publish("gateway", &ev, "{}", false), SUCCESS);
        sub.wait_for(&ev);
    }
}

#[test]
fn home_assistant_reads_discovery_and_may_set_the_mode_and_sync() {
    let broker = start_broker();
    broker.gateway_online();
    let config = "homeassistant/select/leasegate_maple_court/mode/config";
    let body = r#"{"name":"Access mode"}"#;
    assert_eq!(
        broker.publish("gateway", config, body, true),
        NO_MATCHING_SUBSCRIBERS
    );
    let mut ha = broker.subscribe("homeassistant", &["homeassistant/#"]);
    assert_eq!(ha.wait_for(config), body);

    let mut gw = broker.subscribe("gateway", &["leasegate/+/request/#"]);
    for (command, payload) in [
        (
            "mode/set",
            r#"{"transaction":"ha-1796358857-mode","mode":"automatic"}"#,
        ),
        ("sync/now", r#"{"transaction":"ha-1796358857-sync"}"#),
    ] {
        let t = topic(&format!("request/homeassistant/{command}"));
        assert_eq!(broker.publish("homeassistant", &t, payload, false), SUCCESS);
        assert_eq!(gw.wait_for(&t), payload);
    }
    assert_eq!(
        broker.publish(
            "homeassistant",
            &topic("request/homeassistant/units/set"),
            "{}",
            false
        ),
        NOT_AUTHORIZED
    );

    // Discovery is for Home Assistant: a manager does not read it.
    let mut ann = broker.subscribe(
        "manager-ann",
        &["homeassistant/#", "leasegate/+/response/manager-ann/#"],
    );
    ann.flush(&broker, &topic("response/manager-ann/sync/now"));
    assert_eq!(ann.received_under("homeassistant/"), Vec::<String>::new());
}
