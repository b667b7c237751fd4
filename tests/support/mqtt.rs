//! A gateway running in-process against a real broker, and a probe client that sees what
//! it publishes and sends it requests. Each gateway gets its own topic prefix, so tests run
//! in parallel on one Mosquitto (127.0.0.1:1883 unless `LEASEGATE_TEST_BROKER` says
//! otherwise); tests that restart a broker start their own with [`Mosquitto`].
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::{Packet, Publish, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub fn broker() -> (String, u16) {
    match std::env::var("LEASEGATE_TEST_BROKER") {
        Ok(v) => {
            let (h, p) = v
                .rsplit_once(':')
                .expect("LEASEGATE_TEST_BROKER is host:port");
            (h.to_string(), p.parse().expect("a port"))
        }
        Err(_) => ("127.0.0.1".into(), 1883),
    }
}

pub fn unique(prefix: &str) -> String {
    use rand::Rng;
    format!("{prefix}-{:08x}", rand::thread_rng().gen::<u32>())
}

/// A resident line of a roster file.
pub fn resident(id: &str, name: &str, unit: &str, status: &str) -> Value {
    serde_json::json!({ "id": id, "name": name, "unit": unit, "status": status })
}

pub fn write_roster(dir: &Path, residents: &[Value]) {
    let body = serde_json::json!({ "fetched_at": "2026-11-27T12:00:00Z", "residents": residents });
    std::fs::write(dir.join("roster.json"), body.to_string()).unwrap();
}

pub struct TestGateway {
    pub dir: tempfile::TempDir,
    pub base: String,
    pub site: String,
    pub shutdown: CancellationToken,
    pub handle: Option<tokio::task::JoinHandle<()>>,
    pub host: String,
    pub port: u16,
}

impl TestGateway {
    /// Write a config (file roster, the demo's site) and start `run` in this runtime.
    pub async fn start(residents: &[Value], mode: &str) -> TestGateway {
        let (host, port) = broker();
        Self::start_on(residents, mode, &host, port, "").await
    }

    pub async fn start_on(
        residents: &[Value],
        mode: &str,
        host: &str,
        port: u16,
        extra_mqtt: &str,
    ) -> TestGateway {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let site = std::fs::read_to_string(root.join("config/demo/site.toml")).unwrap();
        Self::start_with_site(residents, mode, host, port, extra_mqtt, &site).await
    }

    /// Start with site data of the test's own (a site file's text).
    pub async fn start_with_site(
        residents: &[Value],
        mode: &str,
        host: &str,
        port: u16,
        extra_mqtt: &str,
        site_toml: &str,
    ) -> TestGateway {
        let mut gw = Self::prepare(residents, mode, host, port, extra_mqtt, site_toml);
        gw.run();
        gw
    }

    /// Write the config, site and roster without starting: a test can add files (or edit
    /// the config) before [`TestGateway::run`].
    pub fn prepare(
        residents: &[Value],
        mode: &str,
        host: &str,
        port: u16,
        extra_mqtt: &str,
        site_toml: &str,
    ) -> TestGateway {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("site.toml"), site_toml).unwrap();
        write_roster(dir.path(), residents);
        let base = unique("lgtest");
        let site = "maple-court".to_string();
        let cfg = format!(
            "[site]\nid = \"{site}\"\ntimezone = \"America/Denver\"\nsite_file = \"site.toml\"\n\
             [store]\npath = \"state\"\n[access]\nmode = \"{mode}\"\nactivation_delay = \"0s\"\n\
             [pms]\nkind = \"file\"\npath = \"roster.json\"\npoll_interval = \"1h\"\n\
             [mqtt]\nurl = \"mqtt://{host}:{port}\"\nbase_topic = \"{base}\"\nclient_id = \"{base}-gw\"\nhome_assistant = false\n{extra_mqtt}"
        );
        std::fs::write(dir.path().join("leasegate.toml"), cfg).unwrap();
        TestGateway {
            dir,
            base,
            site,
            shutdown: CancellationToken::new(),
            handle: None,
            host: host.to_string(),
            port,
        }
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("leasegate.toml")
    }

    /// (Re)start the gateway on the same store.
    pub fn run(&mut self) {
        let cfg = leasegate::config::load(&self.config_path()).expect("test config is valid");
        self.shutdown = CancellationToken::new();
        let stop = self.shutdown.clone();
        self.handle = Some(tokio::spawn(async move {
            leasegate::daemon::run(cfg, stop)
                .await
                .expect("gateway runs");
        }));
    }

    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(h) = self.handle.take() {
            tokio::time::timeout(Duration::from_secs(15), h)
                .await
                .expect("the gateway stops within its grace period")
                .unwrap();
        }
    }

    pub fn root(&self) -> String {
        format!("{}/{}", self.base, self.site)
    }

    pub fn topic(&self, rest: &str) -> String {
        format!("{}/{rest}", self.root())
    }

    /// Open the store (the gateway must be stopped).
    pub fn store(&self) -> leasegate::store::Store {
        leasegate::store::Store::open(&self.dir.path().join("state"))
            .unwrap()
            .0
    }
}

/// A message as the probe saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
    pub properties: Option<PublishProperties>,
}

impl Seen {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.payload).unwrap_or(Value::Null)
    }
}

/// A client that subscribes to a topic tree and records everything.
pub struct Probe {
    pub client: AsyncClient,
    rx: mpsc::UnboundedReceiver<Seen>,
    pub seen: Vec<Seen>,
    task: tokio::task::JoinHandle<()>,
}

impl Probe {
    pub async fn connect(host: &str, port: u16, user: Option<(&str, &str)>, filter: &str) -> Probe {
        Self::connect_with(host, port, user, filter, None).await
    }

    /// Over TLS, trusting only `ca_pem`.
    pub async fn connect_tls(
        host: &str,
        port: u16,
        user: Option<(&str, &str)>,
        filter: &str,
        ca_pem: &str,
    ) -> Probe {
        Self::connect_with(host, port, user, filter, Some(ca_pem)).await
    }

    async fn connect_with(
        host: &str,
        port: u16,
        user: Option<(&str, &str)>,
        filter: &str,
        ca_pem: Option<&str>,
    ) -> Probe {
        let mut o = MqttOptions::new(unique("probe"), host, port);
        if let Some(ca) = ca_pem {
            use rustls::pki_types::pem::PemObject;
            let mut roots = rustls::RootCertStore::empty();
            for c in rustls::pki_types::CertificateDer::pem_slice_iter(ca.as_bytes()) {
                roots.add(c.unwrap()).unwrap();
            }
            let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
            o.set_transport(rumqttc::Transport::Tls(rumqttc::TlsConfiguration::Rustls(
                std::sync::Arc::new(tls),
            )));
        }
        o.set_keep_alive(Duration::from_secs(30));
        let mut net = rumqttc::NetworkOptions::new();
        net.set_tcp_nodelay(true);
        o.set_network_options(net);
        o.set_max_packet_size(Some(1 << 20));
        if let Some((u, p)) = user {
            o.set_credentials(u, p);
        }
        let (client, mut ev) = AsyncClient::new(o, 1000);
        let (tx, rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let filter = filter.to_string();
        let sub = client.clone();
        let task = tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            loop {
                match ev.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        sub.subscribe(filter.clone(), QoS::AtLeastOnce)
                            .await
                            .unwrap();
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(r) = ready.take() {
                            let _ = r.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let Publish {
                            topic,
                            payload,
                            retain,
                            properties,
                            ..
                        } = p;
                        let _ = tx.send(Seen {
                            topic: String::from_utf8_lossy(&topic).into_owned(),
                            payload: payload.to_vec(),
                            retain,
                            properties,
                        });
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), ready_rx)
            .await
            .expect("the probe subscribes within 10 s")
            .unwrap();
        Probe {
            client,
            rx,
            seen: Vec::new(),
            task,
        }
    }

    /// Wait (up to 10 s) for a message that satisfies `f`; earlier ones are kept in `seen`.
    pub async fn wait_for(&mut self, what: &str, f: impl Fn(&Seen) -> bool) -> Seen {
        self.wait_for_within(what, Duration::from_secs(10), f).await
    }

    pub async fn wait_for_within(
        &mut self,
        what: &str,
        within: Duration,
        f: impl Fn(&Seen) -> bool,
    ) -> Seen {
        if let Some(s) = self.seen.iter().find(|s| f(s)) {
            return s.clone();
        }
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let s = tokio::time::timeout_at(deadline, self.rx.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!("timed out waiting for {what}; saw {:#?}", self.topics())
                })
                .expect("probe alive");
            self.seen.push(s.clone());
            if f(&s) {
                return s;
            }
        }
    }

    /// Everything received so far, without waiting.
    pub fn drain(&mut self) {
        while let Ok(s) = self.rx.try_recv() {
            self.seen.push(s);
        }
    }

    pub fn topics(&self) -> Vec<String> {
        self.seen.iter().map(|s| s.topic.clone()).collect()
    }

    /// The latest payload per topic (a retained-state view).
    pub fn latest(&self) -> BTreeMap<String, Seen> {
        let mut m = BTreeMap::new();
        for s in &self.seen {
            m.insert(s.topic.clone(), s.clone());
        }
        m
    }

    pub async fn publish(&self, topic: &str, payload: &str) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.as_bytes().to_vec())
            .await
            .unwrap();
    }

    /// Publish a request as `actor` and wait for its reply on `response/<actor>/<command>`.
    pub async fn request(
        &mut self,
        root: &str,
        actor: &str,
        command: &str,
        payload: &str,
    ) -> Value {
        let n = self.seen.len();
        self.publish(&format!("{root}/request/{actor}/{command}"), payload)
            .await;
        let reply_topic = format!("{root}/response/{actor}/{command}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            self.drain();
            if let Some(s) = self.seen[n..].iter().find(|s| s.topic == reply_topic) {
                return s.json();
            }
            tokio::time::timeout_at(deadline, async {
                if let Some(s) = self.rx.recv().await {
                    self.seen.push(s);
                }
            })
            .await
            .unwrap_or_else(|_| panic!("no reply on {reply_topic} within 10 s"));
        }
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Makes a whole mosquitto.conf from the port and the broker's folder.
type ConfFn = Box<dyn Fn(u16, &Path) -> String + Send>;

/// A private Mosquitto on a free port, for tests that stop and start a broker.
pub struct Mosquitto {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    /// Replaces the default config (a plain anonymous listener): given the port and the
    /// broker's folder, the whole mosquitto.conf.
    conf: Option<ConfFn>,
}

impl Mosquitto {
    pub fn start() -> Mosquitto {
        Self::launch(|_| {}, None)
    }

    /// Start with a config of the test's own: `prepare` writes the files it names into the
    /// broker's folder, `conf` gives the whole mosquitto.conf for a port and that folder.
    pub fn start_with(
        prepare: impl FnOnce(&Path),
        conf: impl Fn(u16, &Path) -> String + Send + 'static,
    ) -> Mosquitto {
        Self::launch(prepare, Some(Box::new(conf)))
    }

    fn launch(prepare: impl FnOnce(&Path), conf: Option<ConfFn>) -> Mosquitto {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        prepare(dir.path());
        let mut m = Mosquitto {
            port,
            dir,
            child: None,
            conf,
        };
        m.restart();
        m
    }

    /// Start (again) on the same port and persistence file.
    pub fn restart(&mut self) {
        let conf = self.dir.path().join("mosquitto.conf");
        let text = match &self.conf {
            Some(f) => f(self.port, self.dir.path()),
            None => format!(
                "listener {} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\nautosave_interval 1\nmax_packet_size 1048576\nset_tcp_nodelay true\n",
                self.port,
                self.dir.path().display()
            ),
        };
        std::fs::write(&conf, text).unwrap();
        let bin = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("mosquitto");
        let child = Command::new(bin)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto is installed (Debian package mosquitto)");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "mosquitto did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stop it the way a crash or a restart would (SIGTERM: it saves its persistence).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: sending a signal to our own child process.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
