//! OSDP access panels on RS-485: leasegate is the control panel.
//!
//! One task owns each bus ([`run_bus`]); on it, [`bus::Bus`] moves bytes and the pure state
//! machines decide: [`leasegate_osdp::cp::PdLink`] per panel (sessions, retries, keys) and
//! [`sync::PanelSync`] per panel (desired set versus acknowledged, credential-profile
//! requests, digest checks). Keys: SCBK-D only inside a commissioning window, then KEYSET to
//! a random key per panel, stored sealed, rotated in two phases (see `run_bus`).
//!
//! - [`records`]: desired set → profile records with stable ids and versions.
//! - [`sync`]: the writer logic per panel.
//! - [`bus`]: the byte driver.
//! - [`sim`]: the reference panel simulator (`leasegate panel-sim`).

pub mod bus;
pub mod records;
pub mod sim;
pub mod sync;

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use chrono::Utc;
use leasegate_osdp::cp::{Event as LinkEvent, KeyUse, LinkSettings, PdLink};
use leasegate_osdp::message::{receive_buffer, Command, Reply, VendorCode};
use leasegate_osdp::profile::Response;
use leasegate_osdp::Key;
use rand::rngs::OsRng;
use rand::RngCore;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::osdp::{BusConfig, OsdpConfig, PanelConfig};
use crate::events::{DeviceStatus, Event};
use crate::outbox::{DeviceWork, Outbox, OutboxError};
use crate::seal::{SealError, Sealer};
use sync::{hex, unhex, Outcome, PanelState, PanelSync};

#[derive(Debug, thiserror::Error)]
pub enum PanelError {
    #[error("cannot open serial port {tty}: {source}")]
    Open {
        tty: PathBuf,
        source: tokio_serial::Error,
    },
    #[error("serial port {tty}: {source}")]
    Io {
        tty: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error("panel {device}: stored state is unreadable: {detail}")]
    State { device: String, detail: String },
    #[error("panel {device}: {source}")]
    Seal { device: String, source: SealError },
}

impl PanelError {
    /// Whether trying again (reopening the port, re-reading the store) can help by itself.
    pub fn is_retryable(&self) -> bool {
        match self {
            PanelError::Open { .. } | PanelError::Io { .. } => true,
            PanelError::Outbox(e) => e.is_retryable(),
            PanelError::State { .. } | PanelError::Seal { .. } => false,
        }
    }
}

/// What a bus task needs from the gateway. [`Outbox`] is the production one; benches and
/// tests provide their own.
pub trait Host: Clone + Send + Sync + 'static {
    fn work(&self, device: &str) -> impl Future<Output = Result<DeviceWork, OutboxError>> + Send;
    fn settle(
        &self,
        device: &str,
        generation: u64,
    ) -> impl Future<Output = Result<bool, OutboxError>> + Send;
    fn device_state(
        &self,
        device: &str,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, OutboxError>> + Send;
    fn put_device_state(
        &self,
        device: &str,
        bytes: &[u8],
    ) -> impl Future<Output = Result<(), OutboxError>> + Send;
    fn sealer(&self) -> &Sealer;
    fn emit(&self, event: Event);
    fn subscribe(&self) -> watch::Receiver<u64>;
}

impl Host for Outbox {
    async fn work(&self, device: &str) -> Result<DeviceWork, OutboxError> {
        Outbox::work(self, device).await
    }
    async fn settle(&self, device: &str, generation: u64) -> Result<bool, OutboxError> {
        Outbox::settle(self, device, generation).await
    }
    async fn device_state(&self, device: &str) -> Result<Option<Vec<u8>>, OutboxError> {
        Outbox::device_state(self, device).await
    }
    async fn put_device_state(&self, device: &str, bytes: &[u8]) -> Result<(), OutboxError> {
        Outbox::put_device_state(self, device, bytes).await
    }
    fn sealer(&self) -> &Sealer {
        Outbox::sealer(self)
    }
    fn emit(&self, event: Event) {
        Outbox::emit(self, event)
    }
    fn subscribe(&self) -> watch::Receiver<u64> {
        Outbox::subscribe(self)
    }
}

/// Run every configured bus until `cancel`; a bus whose port fails is reopened after a pause.
pub async fn run<H: Host>(cfg: OsdpConfig, host: H, cancel: CancellationToken) {
    let mut tasks = tokio::task::JoinSet::new();
    for bus in cfg.buses.clone() {
        let (cfg, host, cancel) = (cfg.clone(), host.clone(), cancel.clone());
        tasks.spawn(async move {
            while !cancel.is_cancelled() {
                if let Err(e) = run_bus(&cfg, &bus, host.clone(), cancel.clone()).await {
                    tracing::warn!(tty = %bus.tty.display(), error = %e, retryable = e.is_retryable(), "OSDP bus stopped");
                    for p in &bus.panels {
                        host.emit(Event::DeviceStatus(DeviceStatus {
                            device: p.device.clone(),
                            kind: "osdp_panel".into(),
                            online: false,
                            last_error: Some(e.to_string()),
                            ..DeviceStatus::default()
                        }));
                    }
                }
                tokio::select! {
                    _ = cancel.cancelled() => {}
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// Open `bus.tty` with tokio-serial (8N1, no flow control) and run it.
pub async fn run_bus<H: Host>(
    cfg: &OsdpConfig,
    bus: &BusConfig,
    host: H,
    cancel: CancellationToken,
) -> Result<(), PanelError> {
    use tokio_serial::SerialPortBuilderExt;
    let port = tokio_serial::new(bus.tty.to_string_lossy(), bus.baud)
        .data_bits(tokio_serial::DataBits::Eight)
        .parity(tokio_serial::Parity::None)
        .stop_bits(tokio_serial::StopBits::One)
        .flow_control(tokio_serial::FlowControl::None)
        .open_native_async()
        .map_err(|source| PanelError::Open {
            tty: bus.tty.clone(),
            source,
        })?;
    run_bus_on(port, cfg, bus, host, cancel).await
}

/// The tag of the KEYSET command in a link's queue (profile requests use their request id).
const KEYSET_TAG: u64 = u64::MAX;

struct Panel {
    cfg: PanelConfig,
    vendor: VendorCode,
    link: PdLink,
    sync: PanelSync,
    /// Candidate keys and which of them is the pending (not yet confirmed) one.
    keys: Vec<Key>,
    pending: Option<usize>,
    install_mode: bool,
    generation: u64,
    last_tx: Option<Instant>,
    online: bool,
    last_error: Option<String>,
    applied: (usize, usize),
}

fn open_key(sealer: &Sealer, device: &str, sealed_hex: &str) -> Result<Key, PanelError> {
    let bad = |detail: &str| PanelError::State {
        device: device.into(),
        detail: detail.into(),
    };
    let sealed = unhex(sealed_hex).ok_or_else(|| bad("key is not hex"))?;
    let plain = sealer.open(&sealed).map_err(|source| PanelError::Seal {
        device: device.into(),
        source,
    })?;
    let k: [u8; 16] = plain
        .as_slice()
        .try_into()
        .map_err(|_| bad("key is not 16 bytes"))?;
    Ok(Key::new(k))
}

impl Panel {
    async fn load<H: Host>(
        cfg: &OsdpConfig,
        pc: &PanelConfig,
        bus_baud: u32,
        host: &H,
    ) -> Result<Panel, PanelError> {
        let state = match host.device_state(&pc.device).await? {
            None => PanelState::default(),
            Some(b) => PanelState::from_bytes(&b).map_err(|e| PanelError::State {
                device: pc.device.clone(),
                detail: e.to_string(),
            })?,
        };
        let mut keys = Vec::new();
        if let Some(k) = &state.key {
            keys.push(open_key(host.sealer(), &pc.device, k)?);
        }
        let mut pending = None;
        if let Some(k) = &state.pending_key {
            pending = Some(keys.len());
            keys.push(open_key(host.sealer(), &pc.device, k)?);
        }
        let install_mode = pc.commission_until.is_some_and(|t| t > Utc::now());
        let mut settings = LinkSettings::new(pc.address);
        settings.keys = keys.clone();
        settings.install_mode = install_mode;
        settings.reply_timeout = cfg.reply_timeout;
        let mut sync = PanelSync::new(state, OsRng.next_u32(), cfg.digest_interval);
        sync.set_max_data(pc.max_mfg_data.unwrap_or(64));
        // Two of the largest frames at this baud rate (8N1), plus a margin for deferred replies.
        let byte = Duration::from_nanos(10_000_000_000 / u64::from(bus_baud.max(1)));
        sync.set_response_timeout(Duration::from_secs(2) + byte * 2 * 1400);
        Ok(Panel {
            cfg: pc.clone(),
            vendor: VendorCode(pc.vendor_code),
            link: PdLink::new(settings),
            sync,
            keys,
            pending,
            install_mode,
            generation: 0,
            last_tx: None,
            online: false,
            last_error: None,
            applied: (0, 0),
        })
    }

    fn status(&self) -> Event {
        Event::DeviceStatus(DeviceStatus {
            device: self.cfg.device.clone(),
            kind: "osdp_panel".into(),
            online: self.online,
            pending_writes: self.sync.pending(),
            failed_writes: self.sync.failed(),
            battery: None,
            last_error: self.last_error.clone(),
            last_seen: Some(Utc::now()),
            generation: self.generation,
        })
    }

    async fn save<H: Host>(&self, host: &H) -> Result<(), PanelError> {
        Ok(host
            .put_device_state(&self.cfg.device, &self.sync.state.to_bytes())
            .await?)
    }

    async fn refresh<H: Host>(&mut self, host: &H) -> Result<(), PanelError> {
        let work = host.work(&self.cfg.device).await?;
        self.generation = work.generation;
        let (desired, skipped) =
            records::desired_records(&work.entries, &self.cfg.doors, &mut self.sync.state.ledger);
        for s in skipped {
            host.emit(Event::DeviceWriteFailed {
                device: self.cfg.device.clone(),
                error: format!("resident {}: {}", s.resident, s.reason),
                retryable: false,
                at: Utc::now(),
            });
        }
        if let Some(Outcome::Rejected { detail }) =
            self.sync.set_desired(desired, Instant::now().into_std())
        {
            self.last_error = Some(detail.clone());
            host.emit(Event::DeviceWriteFailed {
                device: self.cfg.device.clone(),
                error: detail,
                retryable: false,
                at: Utc::now(),
            });
        }
        // Ledger changes (new ids, versions) must be durable before a record goes out.
        self.save(host).await?;
        if self.sync.is_in_sync() {
            self.settle(host).await?;
        }
        Ok(())
    }

    async fn settle<H: Host>(&mut self, host: &H) -> Result<(), PanelError> {
        if self.generation != 0 && host.settle(&self.cfg.device, self.generation).await? {
            let (upserts, deletes) = std::mem::take(&mut self.applied);
            host.emit(Event::AccessApplied {
                device: self.cfg.device.clone(),
                generation: self.generation,
                upserts,
                deletes,
                at: Utc::now(),
            });
            self.generation = 0;
            host.emit(self.status());
        }
        Ok(())
    }

    /// Act on what the link reported.
    async fn on_event<H: Host>(&mut self, ev: LinkEvent, host: &H) -> Result<(), PanelError> {
        let device = self.cfg.device.clone();
        match ev {
            LinkEvent::Online { caps, key, .. } => {
                let buffer = receive_buffer(&caps).unwrap_or(128);
                let cap = self.cfg.max_mfg_data.unwrap_or(1400);
                self.sync.set_max_data(buffer.saturating_sub(34).min(cap));
                self.sync.on_connect();
                let was = self.online;
                self.online = true;
                self.last_error = None;
                match key {
                    KeyUse::InstallKey => self.start_keyset(host).await?,
                    KeyUse::Key(i) if Some(i) == self.pending => self.promote(host).await?,
                    _ => {}
                }
                if !was {
                    tracing::info!(device, ?key, "OSDP panel online");
                    host.emit(self.status());
                }
            }
            LinkEvent::Offline(err) => {
                self.sync.on_link_reset();
                let msg = match &err {
                    leasegate_osdp::cp::LinkError::KeyMismatch => "the panel does not hold our key; open a commissioning window (commission_until) if it was reset".to_string(),
                    e => e.to_string(),
                };
                let changed = self.online || self.last_error.as_deref() != Some(&msg);
                self.online = false;
                self.last_error = Some(msg);
                if changed {
                    tracing::warn!(device, error = %err, "OSDP panel offline");
                    host.emit(self.status());
                }
            }
            LinkEvent::Done {
                tag: KEYSET_TAG,
                reply: Reply::Ack,
            } => {
                self.promote(host).await?;
                self.link.restart();
            }
            LinkEvent::Nak {
                tag: KEYSET_TAG,
                reason,
            } => {
                host.emit(Event::DeviceWriteFailed {
                    device,
                    error: format!("panel refused the new key (NAK {reason:?})"),
                    retryable: true,
                    at: Utc::now(),
                });
            }
            LinkEvent::Nak { tag, reason } => {
                self.sync.on_refused(tag as u32);
                self.last_error =
                    Some(format!("panel refused a credential write (NAK {reason:?})"));
                host.emit(Event::DeviceWriteFailed {
                    device,
                    error: format!("NAK {reason:?}"),
                    retryable: true,
                    at: Utc::now(),
                });
                host.emit(self.status());
            }
            LinkEvent::MfgReply(Reply::MfgReply { vendor, data }) if vendor == self.vendor => {
                let Ok(resp) = Response::decode(&data) else {
                    tracing::warn!(device, "unreadable credential-profile response");
                    return Ok(());
                };
                let before = self.sync.acknowledged().len();
                let outcomes = self.sync.on_response(&resp, Instant::now().into_std());
                let after = self.sync.acknowledged().len();
                if after >= before {
                    self.applied.0 += after - before;
                } else {
                    self.applied.1 += before - after;
                }
                for o in outcomes {
                    match o {
                        Outcome::StateChanged => self.save(host).await?,
                        Outcome::Drift(detail) => {
                            tracing::warn!(device, detail, "OSDP panel drifted");
                            host.emit(Event::Drift {
                                device: device.clone(),
                                detail,
                                at: Utc::now(),
                            });
                        }
                        Outcome::Rejected { detail } => {
                            self.last_error = Some(detail.clone());
                            host.emit(Event::DeviceWriteFailed {
                                device: device.clone(),
                                error: detail,
                                retryable: false,
                                at: Utc::now(),
                            });
                            host.emit(self.status());
                        }
                        Outcome::InSync => self.settle(host).await?,
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Phase 1 of a key change: a fresh key is stored (sealed) as pending, then sent.
    async fn start_keyset<H: Host>(&mut self, host: &H) -> Result<(), PanelError> {
        let key = Key::random(&mut OsRng);
        self.sync.state.pending_key = Some(hex(&host.sealer().seal(key.expose())));
        self.save(host).await?;
        self.keys.truncate(self.pending.unwrap_or(self.keys.len()));
        self.pending = Some(self.keys.len());
        self.keys.push(key.clone());
        self.link.set_keys(self.keys.clone(), self.install_mode);
        self.link.clear_queue();
        self.link.enqueue(KEYSET_TAG, Command::KeySet(key));
        Ok(())
    }

    /// Phase 2: the panel holds the pending key (it ACKed KEYSET, or proved it in a session).
    async fn promote<H: Host>(&mut self, host: &H) -> Result<(), PanelError> {
        let Some(i) = self.pending.take() else {
            return Ok(());
        };
        self.sync.state.key = self.sync.state.pending_key.take();
        self.save(host).await?;
        self.keys = vec![self.keys[i].clone()];
        self.link.set_keys(self.keys.clone(), self.install_mode);
        tracing::info!(device = self.cfg.device, "OSDP panel key changed");
        Ok(())
    }
}

/// Run one bus on an already open byte stream until `cancel`.
pub async fn run_bus_on<T, H>(
    io: T,
    cfg: &OsdpConfig,
    bus: &BusConfig,
    host: H,
    cancel: CancellationToken,
) -> Result<(), PanelError>
where
    T: AsyncRead + AsyncWrite + Unpin,
    H: Host,
{
    let mut port = bus::Bus::new(io, bus.baud);
    let mut changed = host.subscribe();
    changed.borrow_and_update();
    let mut panels = Vec::new();
    for pc in &bus.panels {
        let mut p = Panel::load(cfg, pc, bus.baud, &host).await?;
        p.refresh(&host).await?;
        panels.push(p);
    }
    let io_err = |source| PanelError::Io {
        tty: bus.tty.clone(),
        source,
    };
    let mut woken = false;
    while !cancel.is_cancelled() {
        if std::mem::take(&mut woken) || changed.has_changed().unwrap_or(false) {
            changed.borrow_and_update();
            for p in &mut panels {
                p.refresh(&host).await?;
            }
        }
        let mut sent = false;
        for p in &mut panels {
            let now = Instant::now();
            // Checked every round, so an offline panel's overdue revocations are reported too.
            for id in p
                .sync
                .newly_overdue(Instant::now().into_std(), cfg.revocation_deadline)
            {
                let resident = p.sync.resident_of(id).unwrap_or("unknown").to_string();
                host.emit(Event::RevocationOverdue {
                    device: p.cfg.device.clone(),
                    residents: vec![resident],
                    since: Utc::now()
                        - chrono::Duration::from_std(cfg.revocation_deadline).unwrap_or_default(),
                    at: Utc::now(),
                });
                host.emit(p.status());
            }
            let install = p.cfg.commission_until.is_some_and(|t| t > Utc::now());
            if install != p.install_mode {
                p.install_mode = install;
                p.link.set_keys(p.keys.clone(), install);
            }
            if p.link.is_idle() {
                if let Some((rid, data)) = p.sync.next_request(now.into_std()) {
                    p.link.enqueue(
                        u64::from(rid),
                        Command::Mfg {
                            vendor: p.vendor,
                            data,
                        },
                    );
                }
            }
            // An idle panel is polled every poll_interval, a busy one at once.
            let busy = !p.link.is_idle() || p.sync.busy();
            if !busy
                && p.last_tx
                    .is_some_and(|t| now.duration_since(t) < cfg.poll_interval)
            {
                continue;
            }
            let Some(events) = port.turn(&mut p.link).await.map_err(io_err)? else {
                continue;
            };
            sent = true;
            p.last_tx = Some(now);
            for ev in events {
                p.on_event(ev, &host).await?;
            }
        }
        if !sent {
            let nap = tokio::time::sleep(cfg.poll_interval.min(Duration::from_millis(20)));
            tokio::select! {
                _ = cancel.cancelled() => {}
                // `changed()` marks the value seen: remember to refresh.
                r = changed.changed() => woken = r.is_ok(),
                _ = nap => {}
            }
        }
    }
    Ok(())
}
