//! The connection to the broker and the tasks around it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use rumqttc::v5::mqttbytes::v5::{Filter, LastWill, Packet, Publish, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::api::{self, Flags, Reply, Topics};
use super::service::{suggestion_json, Api};
use super::MqttError;
use crate::config::{Config, MqttConfig};
use crate::core::{Alert, SuggestionId, Timestamp};
use crate::events::Event as DeviceEvent;
use crate::gateway::wall_clock;

/// Requests may be large (50 ids, a site's worth of doors): well above rumqttc's 10 KiB.
pub const MAX_PACKET: u32 = 1 << 20;
/// How long the broker keeps our session (and queues requests) while we are away.
pub const SESSION_EXPIRY_S: u32 = 7 * 86_400;
/// Requests in flight at once; the broker holds back the rest until we acknowledge.
const RECEIVE_MAXIMUM: u16 = 64;
/// QoS 1 publishes we keep unacknowledged at once.
const MAX_INFLIGHT: u16 = 64;

/// What the MQTT task publishes from, besides the gateway.
pub struct Inputs {
    pub api: Api,
    pub device_events: broadcast::Receiver<DeviceEvent>,
    pub alerts: broadcast::Receiver<(Alert, Timestamp)>,
}

enum Conn {
    Up,
    Down,
    Message(Box<Publish>),
}

pub fn options(cfg: &MqttConfig, topics: &Topics) -> Result<MqttOptions, MqttError> {
    let mut o = MqttOptions::new(cfg.client_id.clone(), cfg.url.host.clone(), cfg.url.port);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_clean_start(false);
    o.set_session_expiry_interval(Some(SESSION_EXPIRY_S));
    o.set_max_packet_size(Some(MAX_PACKET));
    o.set_receive_maximum(Some(RECEIVE_MAXIMUM));
    o.set_manual_acks(true);
    // Requests and replies are small packets: without TCP_NODELAY, Nagle plus delayed ACKs
    // add tens of milliseconds to each round trip.
    let mut net = rumqttc::NetworkOptions::new();
    net.set_tcp_nodelay(true);
    o.set_network_options(net);
    o.set_request_channel_capacity(4096);
    // rumqttc sizes its in-flight table by this up front: its default (65,535) is a 14 MB
    // allocation. Brokers grant fewer anyway (Mosquitto: 20).
    o.set_outgoing_inflight_upper_limit(MAX_INFLIGHT);
    o.set_last_will(LastWill::new(
        topics.at("bridge/state"),
        br#"{"state":"offline"}"#.to_vec(),
        QoS::AtLeastOnce,
        true,
        None,
    ));
    if let Some(user) = &cfg.username {
        let password = match &cfg.password_file {
            Some(f) => crate::config::read_secret(&cfg.secrets_base, f)?
                .expose()
                .trim_end()
                .to_string(),
            None => String::new(),
        };
        o.set_credentials(user.clone(), password);
    }
    if cfg.url.tls {
        o.set_transport(rumqttc::Transport::Tls(rumqttc::TlsConfiguration::Rustls(
            Arc::new(tls_config(cfg)?),
        )));
    }
    Ok(o)
}

fn tls_config(cfg: &MqttConfig) -> Result<rustls::ClientConfig, MqttError> {
    let mut roots = rustls::RootCertStore::empty();
    match &cfg.ca_file {
        Some(path) => {
            let ca_err = |reason: String| MqttError::Ca {
                path: path.clone(),
                reason,
            };
            let pem = std::fs::read(path).map_err(|e| ca_err(e.to_string()))?;
            let mut n = 0;
            for cert in <rustls::pki_types::CertificateDer as rustls::pki_types::pem::PemObject>::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| ca_err(e.to_string()))?;
                roots.add(cert).map_err(|e| ca_err(e.to_string()))?;
                n += 1;
            }
            if n == 0 {
                return Err(ca_err("holds no PEM certificate".into()));
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Jittered exponential backoff between connection attempts: 0.5 s doubling to 30 s.
fn reconnect_delay(failures: u32) -> Duration {
    let base = Duration::from_millis(500).saturating_mul(1 << failures.min(6));
    base.min(Duration::from_secs(30))
        .mul_f64(rand::thread_rng().gen_range(0.8..1.2))
}

/// The only code that touches the event loop: poll, forward, back off.
async fn poll_loop(mut ev: EventLoop, tx: mpsc::Sender<Conn>, shutdown: CancellationToken) {
    let mut failures = 0u32;
    let mut draining: Option<tokio::time::Instant> = None;
    loop {
        let polled = tokio::select! {
            p = ev.poll() => p,
            _ = shutdown.cancelled(), if draining.is_none() => {
                // Keep polling briefly so that the offline state and the disconnect go out.
                draining = Some(tokio::time::Instant::now() + Duration::from_secs(2));
                continue;
            }
            _ = async { match draining { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => return,
        };
        match polled {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                failures = 0;
                tracing::info!(
                    session_present = ack.session_present,
                    "connected to the MQTT broker"
                );
                let _ = tx.try_send(Conn::Up);
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                // Bounded by the receive maximum, so this never fills; if it did, the
                // request stays unacknowledged and the broker sends it again.
                if tx.try_send(Conn::Message(Box::new(p))).is_err() {
                    tracing::warn!("request queue full; the broker will redeliver");
                }
            }
            Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) if draining.is_some() => return,
            Ok(_) => {}
            Err(e) => {
                if draining.is_some() {
                    return;
                }
                let _ = tx.try_send(Conn::Down);
                let wait = reconnect_delay(failures);
                failures = failures.saturating_add(1);
                tracing::warn!(error = %e, retry_in = ?wait, "MQTT connection lost");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.cancelled() => return,
                }
            }
        }
    }
}

/// Run the API until `shutdown`; publishes `offline` on the way out.
pub async fn run(
    cfg: &Config,
    mut inputs: Inputs,
    shutdown: CancellationToken,
) -> Result<(), MqttError> {
    let m = cfg
        .mqtt
        .as_ref()
        .expect("run is called with an [mqtt] section");
    let topics = Topics::new(&m.base_topic, &cfg.site.id);
    let (client, eventloop) = AsyncClient::new(options(m, &topics)?, 4096);
    let (tx, mut rx) = mpsc::channel(RECEIVE_MAXIMUM as usize * 4);
    let poller = tokio::spawn(poll_loop(eventloop, tx, shutdown.clone()));
    let mut p = Publisher {
        client: client.clone(),
        topics: topics.clone(),
        info: bridge_info(cfg),
        ha: m
            .home_assistant
            .then(|| super::ha::Discovery::new(m, &cfg.site.id)),
        suggestions: BTreeMap::new(),
        status: BTreeMap::new(),
        announced: BTreeSet::new(),
        out: Vec::new(),
        full: true,
        connected: false,
    };
    let (mut events_open, mut alerts_open) = (true, true);
    let mut changed = match &inputs.api.gw {
        Some(gw) => Some(gw.lock().await.subscribe()),
        None => None,
    };
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            msg = rx.recv() => match msg {
                Some(Conn::Up) => {
                    p.connected = true;
                    // Retain As Published: without it a broker clears the retain flag on
                    // live delivery, and a retained request could not be told apart.
                    let mut requests = Filter::new(topics.requests_filter(), QoS::AtLeastOnce);
                    requests.preserve_retain = true;
                    // Only to find retained suggestions left by an earlier run; no-local so
                    // our own publishes do not come back.
                    let mut stale = Filter::new(topics.at("suggestions/+"), QoS::AtLeastOnce);
                    stale.nolocal = true;
                    let filters = vec![requests, stale];
                    if let Err(e) = client.try_subscribe_many(filters) {
                        tracing::error!(error = %e, "cannot subscribe");
                    }
                    p.republish_all(&inputs.api).await;
                }
                Some(Conn::Down) => p.connected = false,
                Some(Conn::Message(msg)) => {
                    handle_message(&client, &topics, &inputs.api, &mut p, *msg).await;
                }
                None => break,
            },
            alive = async { match changed.as_mut() { Some(c) => c.changed().await.is_ok(), None => std::future::pending().await } } => {
                if alive {
                    p.sync_state(&inputs.api).await;
                } else {
                    changed = None;
                }
            }
            ev = inputs.device_events.recv(), if events_open => match ev {
                Ok(ev) => p.device_event(&inputs.api, ev),
                Err(broadcast::error::RecvError::Lagged(n)) => tracing::warn!(lost = n, "device events dropped"),
                // No writer left: stop listening rather than spin on a closed channel.
                Err(broadcast::error::RecvError::Closed) => events_open = false,
            },
            a = inputs.alerts.recv(), if alerts_open => match a {
                Ok((alert, at)) => p.alert(&alert, at),
                Err(broadcast::error::RecvError::Lagged(n)) => tracing::warn!(lost = n, "alerts dropped"),
                Err(broadcast::error::RecvError::Closed) => alerts_open = false,
            },
        }
        p.flush(&shutdown).await;
    }
    p.retained("bridge/state", json!({"state": "offline"}));
    p.flush(&CancellationToken::new()).await;
    let _ = client.try_disconnect();
    let _ = poller.await;
    Ok(())
}

async fn handle_message(
    client: &AsyncClient,
    topics: &Topics,
    api: &Api,
    p: &mut Publisher,
    msg: Publish,
) {
    let topic = String::from_utf8_lossy(&msg.topic).into_owned();
    if let Some(id) = topic
        .strip_prefix(topics.root())
        .and_then(|t| t.strip_prefix("/suggestions/"))
    {
        // A retained suggestion left by an earlier run that is no longer pending.
        if msg.retain && !msg.payload.is_empty() && !p.suggestions.contains_key(id) {
            p.clear_suggestion(id);
        }
        let _ = client.try_ack(&msg);
        return;
    }
    let now = wall_clock();
    let props = msg.properties.clone().unwrap_or_default();
    let reply = match api::parse_request(
        topics,
        &topic,
        &msg.payload,
        Flags { retain: msg.retain },
        now,
    ) {
        Ok(None) => None,
        Ok(Some(req)) => {
            let started = std::time::Instant::now();
            let body = api.handle(&req, now).await;
            tracing::info!(
                actor = %req.actor,
                command = %req.command_name,
                transaction = req.transaction.as_deref().unwrap_or("-"),
                ms = started.elapsed().as_secs_f64() * 1e3,
                "request answered"
            );
            Some((req.actor, req.command_name, body))
        }
        Err(e) => topics.parse_request_topic(&topic).map(|(actor, command)| {
            tracing::warn!(actor, command, code = e.code, "bad request");
            let body = Reply::error(command, api::transaction_of(&msg.payload), e).to_json();
            (actor.to_string(), command.to_string(), body)
        }),
    };
    if let Some((actor, command, mut body)) = reply {
        if body.len() > MAX_PACKET as usize - 4096 {
            // Lists are paged, so this is a bug, but the asker still gets an answer.
            body = Reply::error(
                &command,
                api::transaction_of(&msg.payload),
                api::ApiError::new(
                    "internal",
                    "the reply is too large for one MQTT packet; ask for fewer items (limit)",
                    json!({ "bytes": body.len() }),
                ),
            )
            .to_json();
        }
        let out = PublishProperties {
            correlation_data: props.correlation_data.clone(),
            content_type: Some("application/json".into()),
            ..Default::default()
        };
        let topic = topics.response(&actor, &command);
        if let Err(e) = client.try_publish_with_properties(
            topic.clone(),
            QoS::AtLeastOnce,
            false,
            body.clone(),
            out.clone(),
        ) {
            tracing::warn!(error = %e, "could not queue a reply");
        }
        if let Some(rt) = props
            .response_topic
            .filter(|rt| rt != &topic && valid_topic(rt))
        {
            let _ = client.try_publish_with_properties(rt, QoS::AtLeastOnce, false, body, out);
        }
        p.sync_state(api).await;
    }
    // Acknowledged once answered: a crash before this point means redelivery, and the
    // stored reply makes that harmless.
    let _ = client.try_ack(&msg);
}

fn valid_topic(t: &str) -> bool {
    !t.is_empty() && !t.contains(['+', '#', '\0']) && t.len() < 1024
}

fn bridge_info(cfg: &Config) -> Value {
    let secs = |d: std::time::Duration| d.as_secs();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "api_version": api::API_VERSION,
        "site": cfg.site.id,
        "started_at": wall_clock(),
        "config": {
            "pms": cfg.pms.source.kind(),
            "poll_interval_s": secs(cfg.pms.poll_interval),
            "activation_delay_s": cfg.access.policy.activation_delay.num_seconds(),
            "eviction": match cfg.access.policy.eviction {
                crate::core::EvictionPolicy::Hold => "hold",
                crate::core::EvictionPolicy::Revoke => "revoke",
                crate::core::EvictionPolicy::Keep => "keep",
            },
            "guard": {
                "min_residents": cfg.access.policy.guard.min,
                "percent": cfg.access.policy.guard.percent,
            },
            "home_assistant": cfg.mqtt.as_ref().is_some_and(|m| m.home_assistant),
        },
    })
}

/// Keeps the retained topics in step with the gateway and publishes events.
struct Publisher {
    client: AsyncClient,
    topics: Topics,
    info: Value,
    ha: Option<super::ha::Discovery>,
    /// A fingerprint of each retained suggestion as last published. Not a copy: with
    /// 10,000 residents a copy of every pending suggestion was ~10 MB of the gateway.
    suggestions: BTreeMap<SuggestionId, u64>,
    /// Other retained topics as last published (topic suffix → payload).
    status: BTreeMap<String, String>,
    /// Suggestions announced on `events/suggestion_created` (once each, not per reconnect).
    announced: BTreeSet<SuggestionId>,
    /// Publishes decided but not yet handed to the client: `(topic, retain, payload)`.
    out: Vec<(String, bool, String)>,
    /// The next look compares every suggestion (after a reconnect).
    full: bool,
    connected: bool,
}

/// What tells two payloads of one retained topic apart (SipHash; a collision would only
/// skip one republish of an unchanged-looking suggestion).
fn fingerprint(payload: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    payload.hash(&mut h);
    h.finish()
}

impl Publisher {
    fn publish(&mut self, suffix: &str, retain: bool, payload: String) {
        self.out.push((self.topics.at(suffix), retain, payload));
    }

    /// Hand queued publishes to the client, waiting while its queue is full (a sync can
    /// create thousands of suggestions). Never called with the gateway locked.
    async fn flush(&mut self, shutdown: &CancellationToken) {
        let batch = std::mem::take(&mut self.out);
        let large = batch.len() >= 1_000;
        self.send(batch, shutdown).await;
        if large {
            // Thousands of payloads (a first sync, a reconnect) were built at once; hand the
            // freed heap back rather than sit on it.
            crate::daemon::release_freed_memory();
        }
    }

    async fn send(&mut self, batch: Vec<(String, bool, String)>, shutdown: &CancellationToken) {
        for (topic, retain, payload) in batch {
            tokio::select! {
                r = self.client.publish(topic, QoS::AtLeastOnce, retain, payload) => {
                    if let Err(e) = r {
                        tracing::warn!(error = %e, "could not queue a publish");
                    }
                }
                _ = shutdown.cancelled() => return,
            }
        }
    }

    fn retained(&mut self, suffix: &str, v: Value) {
        let payload = v.to_string();
        if self.status.get(suffix) == Some(&payload) {
            return;
        }
        self.publish(suffix, true, payload.clone());
        self.status.insert(suffix.to_string(), payload);
    }

    fn event(&mut self, kind: &str, v: Value) {
        self.publish(&format!("events/{kind}"), false, v.to_string());
    }

    fn clear_suggestion(&mut self, id: &str) {
        self.publish(&format!("suggestions/{id}"), true, String::new());
    }

    async fn republish_all(&mut self, api: &Api) {
        self.status.clear();
        let old: Vec<String> = std::mem::take(&mut self.suggestions).into_keys().collect();
        self.retained("bridge/state", json!({"state": "online"}));
        if let Some(ha) = &self.ha {
            for (topic, payload) in ha.configs(&self.topics) {
                let _ = self
                    .client
                    .try_publish(topic, QoS::AtLeastOnce, true, payload);
            }
        }
        self.full = true;
        self.sync_state(api).await;
        for id in old {
            if !self.suggestions.contains_key(&id) {
                self.clear_suggestion(&id);
            }
        }
        let statuses = api.devices.lock().expect("device status lock").clone();
        for (id, st) in statuses {
            self.retained(&format!("devices/{id}"), json!(st));
        }
    }

    /// Bring retained state in line with the gateway; publish what changed as events.
    async fn sync_state(&mut self, api: &Api) {
        if !self.connected {
            return; // everything is republished on the next ConnAck
        }
        let Some(gw) = &api.gw else {
            self.retained(
                "status/sync",
                json!({"ok": false, "last_sync": null, "last_attempt": null,
                       "error": "the store is quarantined: run `leasegate rebuild`",
                       "residents": 0, "pms_reachable": false}),
            );
            return;
        };
        let mut g = gw.lock().await;
        let touched = g.take_touched();
        let full = touched.all || self.full;
        self.full = false;
        let world = g.world();
        let mut info = self.info.clone();
        info["mode"] = json!(world.settings.mode.as_str());
        self.retained("bridge/info", info);
        // Only the suggestions written since the last look, unless everything may have
        // changed: with thousands pending, walking them all on every request costs more
        // than the request.
        let candidates: Vec<SuggestionId> = if full {
            self.suggestions
                .keys()
                .chain(world.pending.keys())
                .cloned()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect()
        } else {
            touched.suggestions.into_iter().collect()
        };
        for id in candidates {
            match world.pending.get(&id) {
                Some(s) => {
                    let v = suggestion_json(world, s);
                    let payload = v.to_string();
                    let print = fingerprint(&payload);
                    if self.suggestions.get(&id) == Some(&print) {
                        continue;
                    }
                    if self.announced.insert(id.clone()) {
                        self.event(
                            "suggestion_created",
                            json!({"type": "suggestion_created", "suggestion": v}),
                        );
                    }
                    self.publish(&format!("suggestions/{id}"), true, payload);
                    self.suggestions.insert(id, print);
                }
                None => {
                    if self.suggestions.remove(&id).is_none() {
                        continue; // decided before it was ever published
                    }
                    self.announced.remove(&id);
                    self.clear_suggestion(&id);
                    if let Ok(Some(s)) = g.store().suggestion(&id) {
                        self.event(
                            "suggestion_decided",
                            json!({"type": "suggestion_decided", "id": id, "state": s.display_state(),
                                   "actor": s.decided_by.map(|a| a.to_string()),
                                   "at": s.decided_at.unwrap_or_else(wall_clock)}),
                        );
                    }
                }
            }
        }
        let oldest = world.pending.values().map(|s| s.created_at).min();
        self.retained(
            "status/pending",
            json!({"count": world.pending.len(), "alert": !world.pending.is_empty(), "oldest": oldest}),
        );
        if let Ok(st) = g.store().sync_status() {
            let ok = st.last_success.is_some()
                && st
                    .last_failure
                    .is_none_or(|f| st.last_success.is_some_and(|s| s >= f));
            let last_attempt = st.last_success.max(st.last_failure);
            self.retained(
                "status/sync",
                json!({"ok": ok, "last_sync": st.last_success, "last_attempt": last_attempt,
                       "error": if ok { None } else { st.last_error.clone() },
                       "residents": world.residents.len(), "pms_reachable": ok}),
            );
        }
    }

    fn device_event(&mut self, api: &Api, ev: DeviceEvent) {
        if let DeviceEvent::DeviceStatus(st) = &ev {
            api.devices
                .lock()
                .expect("device status lock")
                .insert(st.device.clone(), st.clone());
            if self.connected {
                self.retained(&format!("devices/{}", st.device), json!(st));
            }
            return;
        }
        self.event(ev.kind(), json!(ev));
    }

    fn alert(&mut self, alert: &Alert, at: Timestamp) {
        match alert {
            Alert::GuardTripped {
                would_revoke,
                limit,
                current_residents,
            } => self.event(
                "guard_tripped",
                json!({"type": "guard_tripped", "would_revoke": would_revoke, "limit": limit,
                       "current_residents": current_residents, "at": at}),
            ),
            other => self.event("alert", json!({"type": "alert", "alert": other, "at": at})),
        }
    }
}
