//! The long-running gateway: `run(config, shutdown)`.
//!
//! It syncs the roster on its poll interval (a complete roster at start and every
//! `full_sync_every`, only changes in between) or at once when asked through a
//! [`SyncTrigger`]. A failed sync changes no access, is recorded for the status topic, and is
//! retried with jittered exponential backoff, capped at the poll interval and never sooner
//! than a PMS's `Retry-After`. Beside it, under a [`Supervisor`], run the MQTT API and one
//! writer per OSDP bus and per lock; losing the PMS, the broker or a device stops only the
//! part that needs it. The process exits non-zero only if an adapter keeps crashing.

use std::time::Duration;

use rand::Rng;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::core::{SuggestionState, Timestamp};
use crate::gateway::{Gateway, GatewayError};
use crate::lock::link::Connector;
use crate::outbox::SharedGateway;
use crate::pms::{self, FetchRequest, RosterSource};
use crate::store::StoreError;
use crate::supervisor::{AdapterError, Supervisor};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    #[error(transparent)]
    Source(#[from] pms::PmsError),
    #[error(transparent)]
    Mqtt(#[from] crate::mqtt::MqttError),
    #[error(transparent)]
    Seal(#[from] crate::seal::SealError),
    #[error(transparent)]
    GaveUp(#[from] crate::supervisor::GaveUp),
}

/// `locks/pair` over MQTT, through the lock driver.
struct LockPairer {
    nuki: crate::config::nuki::NukiConfig,
    outbox: crate::outbox::Outbox,
    connector: Connector,
}

impl crate::mqtt::LockPairing for LockPairer {
    fn pair<'a>(
        &'a self,
        device: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            crate::lock::writer::pair_lock_with(&self.nuki, device, &self.outbox, &self.connector)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

/// Backoff after `failures` consecutive failed syncs: 10 s doubling, capped at `cap`, with
/// ±20 % jitter so that many gateways do not hit one PMS in step.
pub fn backoff(failures: u32, cap: Duration, jitter: f64) -> Duration {
    let base = Duration::from_secs(10).saturating_mul(1u32 << failures.min(16));
    let d = base.min(cap);
    d.mul_f64((1.0 + jitter.clamp(-0.2, 0.2)).max(0.0))
}

/// Asks a running gateway to sync now instead of waiting for its poll interval (the MQTT
/// `sync/now` command will hold one).
#[derive(Clone, Debug, Default)]
pub struct SyncTrigger(std::sync::Arc<tokio::sync::Notify>);

impl SyncTrigger {
    pub fn sync_now(&self) {
        self.0.notify_one();
    }
}

/// How far an incremental fetch reaches back before the last success: PMS clocks drift,
/// and a change seen twice costs nothing (planning is idempotent).
pub const INCREMENTAL_OVERLAP: chrono::Duration = chrono::Duration::minutes(5);

/// When to sync next and what to ask for. Pure: the time is passed in.
#[derive(Clone, Debug)]
pub struct Schedule {
    poll: Duration,
    full_every: Duration,
    last_full: Option<Timestamp>,
    last_ok: Option<Timestamp>,
    failures: u32,
}

impl Schedule {
    pub fn new(poll: Duration, full_every: Duration) -> Schedule {
        Schedule {
            poll,
            full_every,
            last_full: None,
            last_ok: None,
            failures: 0,
        }
    }

    /// A complete roster at start and every `full_every`; only changes in between.
    pub fn request(&self, now: Timestamp) -> FetchRequest {
        let full_due = match self.last_full {
            None => true,
            Some(t) => (now - t)
                .to_std()
                .map_or(true, |age| age >= self.full_every),
        };
        FetchRequest {
            changed_since: if full_due {
                None
            } else {
                self.last_ok.map(|t| t - INCREMENTAL_OVERLAP)
            },
            now,
        }
    }

    /// Record a successful sync; returns the wait until the next one.
    pub fn succeeded(&mut self, request: &FetchRequest) -> Duration {
        if request.changed_since.is_none() {
            self.last_full = Some(request.now);
        }
        self.last_ok = Some(request.now);
        self.failures = 0;
        self.poll
    }

    /// Record a failed sync; returns the wait until the retry: jittered exponential backoff
    /// capped at the poll interval, but never sooner than the PMS asked.
    pub fn failed(&mut self, retry_after: Option<Duration>, jitter: f64) -> Duration {
        let d = backoff(self.failures, self.poll, jitter).max(retry_after.unwrap_or_default());
        self.failures = self.failures.saturating_add(1);
        d
    }
}

/// Why a sync failed, in words safe to log and publish, and how long the PMS asked us to
/// wait.
#[derive(Clone, Debug, PartialEq)]
pub struct SyncFailure {
    pub reason: String,
    pub retry_after: Option<Duration>,
}

/// Run until `shutdown` is cancelled.
pub async fn run(cfg: Config, shutdown: CancellationToken) -> Result<(), DaemonError> {
    run_with_trigger(cfg, shutdown, SyncTrigger::default()).await
}

/// How long tasks get to finish after SIGTERM before the process exits anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// What code, never a config file, can add to a run.
#[derive(Clone, Debug, Default)]
pub struct RunExtras {
    /// Starts a sync at once (the MQTT `sync/now` holds one too).
    pub trigger: SyncTrigger,
    /// How the lock writers reach their locks: BLE, or the demo's simulated locks.
    pub lock_connector: Connector,
}

/// Run until `shutdown` is cancelled; `trigger` starts a sync at once.
pub async fn run_with_trigger(
    cfg: Config,
    shutdown: CancellationToken,
    trigger: SyncTrigger,
) -> Result<(), DaemonError> {
    let extras = RunExtras {
        trigger,
        ..RunExtras::default()
    };
    run_with(cfg, shutdown, extras).await
}

/// Run until `shutdown` is cancelled, with what `extras` adds.
pub async fn run_with(
    cfg: Config,
    shutdown: CancellationToken,
    extras: RunExtras,
) -> Result<(), DaemonError> {
    let RunExtras {
        trigger,
        lock_connector,
    } = extras;
    let gateway: Option<SharedGateway> = match Gateway::open(&cfg) {
        Ok(g) => Some(Arc::new(tokio::sync::Mutex::new(g))),
        Err(GatewayError::Store(e @ StoreError::Quarantined { .. })) => {
            // Stay up so that status can say why, but touch no access.
            tracing::error!(error = %e, "refusing to grant or revoke anything");
            None
        }
        Err(e) => return Err(e.into()),
    };
    let source = pms::from_config(&cfg)?;
    let mut supervisor = Supervisor::new(shutdown.child_token());
    let events = crate::events::channel();
    // Device writers run only on a healthy store: a quarantined one grants and revokes
    // nothing, and an empty rebuilt one must not wipe the doors.
    let outbox = match &gateway {
        Some(gw) if !cfg.nuki.locks.is_empty() || !cfg.osdp.buses.is_empty() => {
            let sealer = crate::seal::Sealer::load_or_create(&cfg.store.key_file)?;
            Some(
                crate::outbox::Outbox::new(gw.clone(), events.clone(), sealer, cfg.site.timezone)
                    .await,
            )
        }
        _ => None,
    };
    if let Some(outbox) = &outbox {
        supervise_devices(&supervisor, &cfg, outbox, &lock_connector);
    }
    if let Some(m) = &cfg.mqtt {
        if m.embedded {
            crate::mqtt::broker::start(&m.url)?;
        }
        tracing::info!(broker = %m.url, topics = %crate::mqtt::Topics::new(&m.base_topic, &cfg.site.id).root(), "MQTT API starting");
        let planner: Arc<dyn RosterSource> = Arc::from(pms::from_config(&cfg)?);
        let (cfg, gateway, trigger, outbox, events, connector) = (
            Arc::new(cfg.clone()),
            gateway.clone(),
            trigger.clone(),
            outbox.clone(),
            events.clone(),
            lock_connector.clone(),
        );
        let stop = supervisor.stop_token();
        supervisor.spawn("mqtt", move || {
            let (cfg, gateway, trigger, planner, outbox, events, stop, connector) = (
                cfg.clone(),
                gateway.clone(),
                trigger.clone(),
                planner.clone(),
                outbox.clone(),
                events.clone(),
                stop.clone(),
                connector.clone(),
            );
            async move {
                // Fresh receivers on every start: a restarted API sees what happens from now,
                // and republishes the retained state on connecting.
                let alerts = match &gateway {
                    Some(g) => g.lock().await.subscribe_alerts(),
                    None => tokio::sync::broadcast::channel(1).1,
                };
                let api = crate::mqtt::Api {
                    gw: gateway,
                    trigger,
                    planner: Some(planner),
                    devices: Default::default(),
                    pairing: outbox.map(|o| {
                        Arc::new(LockPairer {
                            nuki: cfg.nuki.clone(),
                            outbox: o,
                            connector,
                        }) as Arc<dyn crate::mqtt::LockPairing>
                    }),
                };
                let inputs = crate::mqtt::Inputs {
                    api,
                    device_events: events.subscribe(),
                    alerts,
                };
                crate::mqtt::run(&cfg, inputs, stop)
                    .await
                    .map_err(|e| AdapterError {
                        reason: e.to_string(),
                        retryable: e.is_retryable(),
                    })
            }
        });
    }
    release_freed_memory(); // loading the world parses every record once
                            // Bursts (a reconnect republishing thousands of suggestions, the broker sending back
                            // as many retained ones) free their heap in the middle of glibc's arenas, which glibc
                            // keeps: hand it back now and then so the gateway returns to its live size.
    let trim_stop = shutdown.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(TRIM_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => release_freed_memory(),
                _ = trim_stop.cancelled() => return,
            }
        }
    });
    notify_ready();
    let result = tokio::select! {
        r = sync_loop(&cfg, gateway.as_ref(), source.as_ref(), &shutdown, &trigger) => r,
        // Dropping a sync mid-way is safe: nothing is written until the roster is all in.
        g = supervisor.gave_up() => Err(DaemonError::GaveUp(g)),
    };
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    if !supervisor.shutdown(SHUTDOWN_GRACE).await {
        tracing::warn!("tasks did not stop within the grace period");
    }
    result
}

/// One supervised writer per OSDP bus and per lock: a bus or lock that fails never stops the
/// others, and none of them can change what the store says.
fn supervise_devices(
    supervisor: &Supervisor,
    cfg: &Config,
    outbox: &crate::outbox::Outbox,
    connector: &Connector,
) {
    for bus in &cfg.osdp.buses {
        tracing::info!(tty = %bus.tty.display(), panels = bus.panels.len(), "panel writer starting");
        let (osdp, bus, outbox, stop) = (
            cfg.osdp.clone(),
            bus.clone(),
            outbox.clone(),
            supervisor.stop_token(),
        );
        supervisor.spawn(format!("osdp bus {}", bus.tty.display()), move || {
            let (osdp, bus, outbox, stop) =
                (osdp.clone(), bus.clone(), outbox.clone(), stop.clone());
            async move {
                let r = crate::panel::run_bus(&osdp, &bus, outbox.clone(), stop).await;
                r.map_err(|e| {
                    for p in &bus.panels {
                        outbox.emit(crate::events::Event::DeviceStatus(
                            crate::events::DeviceStatus {
                                device: p.device.clone(),
                                kind: "osdp_panel".into(),
                                online: false,
                                last_error: Some(e.to_string()),
                                ..Default::default()
                            },
                        ));
                    }
                    AdapterError {
                        reason: e.to_string(),
                        retryable: e.is_retryable(),
                    }
                })
            }
        });
    }
    for lock in &cfg.nuki.locks {
        tracing::info!(device = %lock.device, "lock writer starting");
        let (nuki, lock, outbox, stop, connector) = (
            cfg.nuki.clone(),
            lock.clone(),
            outbox.clone(),
            supervisor.stop_token(),
            connector.clone(),
        );
        supervisor.spawn(format!("lock {}", lock.device), move || {
            let run = crate::lock::writer::run_lock_with(
                nuki.clone(),
                lock.clone(),
                outbox.clone(),
                stop.clone(),
                connector.clone(),
            );
            async move {
                // The writer turns every lock fault into an event and a retry; it returns
                // only when stopped.
                run.await;
                Ok(())
            }
        });
    }
}

async fn sync_loop(
    cfg: &Config,
    gateway: Option<&SharedGateway>,
    source: &dyn RosterSource,
    shutdown: &CancellationToken,
    trigger: &SyncTrigger,
) -> Result<(), DaemonError> {
    let watchdog = watchdog_interval();
    let mut schedule = Schedule::new(cfg.pms.poll_interval, cfg.pms.full_sync_every);
    let mut next = Duration::ZERO;
    loop {
        let sleep = tokio::time::sleep(next);
        tokio::pin!(sleep);
        loop {
            let tick = watchdog.map(tokio::time::sleep);
            tokio::select! {
                _ = shutdown.cancelled() => {
                    tracing::info!("shutting down");
                    return Ok(());
                }
                _ = &mut sleep => break,
                _ = trigger.0.notified() => {
                    tracing::info!("sync requested");
                    break;
                }
                _ = async { match tick { Some(t) => t.await, None => std::future::pending().await } } => {
                    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
                }
            }
        }
        let Some(gw) = gateway else {
            tracing::error!("the store is quarantined: run `leasegate rebuild` to recover");
            next = cfg.pms.poll_interval;
            continue;
        };
        let request = schedule.request(crate::gateway::wall_clock());
        // A sync can take minutes (timeouts, a PMS asking us to wait): keep the watchdog fed
        // and stop promptly. Dropping the sync mid-fetch is safe: nothing is written until
        // the whole roster is in, and the gateway is locked only to plan and commit.
        let result = {
            let sync = async {
                let snapshot = fetch_for(source, request).await?;
                let mut g = gw.lock().await;
                apply_snapshot(&mut g, source.kind(), &snapshot, request.now)
            };
            tokio::pin!(sync);
            loop {
                let tick = watchdog.map(tokio::time::sleep);
                tokio::select! {
                    r = &mut sync => break r,
                    _ = shutdown.cancelled() => {
                        tracing::info!("shutting down during a sync; nothing was written");
                        return Ok(());
                    }
                    _ = async { match tick { Some(t) => t.await, None => std::future::pending().await } } => {
                        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
                    }
                }
            }
        };
        match result {
            Ok(()) => {
                next = schedule.succeeded(&request);
                release_freed_memory();
            }
            Err(failure) => {
                let jitter = rand::thread_rng().gen_range(-0.2..=0.2);
                next = schedule.failed(failure.retry_after, jitter);
                tracing::warn!(reason = %failure.reason, retry_in = ?next, "sync failed; access unchanged");
                let recorded = gw
                    .lock()
                    .await
                    .record_sync_failure(&failure.reason, crate::gateway::wall_clock());
                if let Err(e) = recorded {
                    tracing::error!(error = %e, "could not record the sync failure");
                }
            }
        }
    }
}

/// One complete sync: fetch, plan, commit. Returns the failure reason as a log-safe string.
pub async fn sync_once(gw: &mut Gateway, source: &dyn RosterSource) -> Result<(), String> {
    let request = FetchRequest {
        changed_since: None,
        now: crate::gateway::wall_clock(),
    };
    sync_with(gw, source, request).await.map_err(|f| f.reason)
}

/// Whether an incremental snapshot holds anyone whose status would not keep them current.
pub fn needs_whole_roster(snapshot: &crate::core::Snapshot) -> bool {
    !snapshot.complete
        && snapshot
            .residents
            .iter()
            .any(|e| e.status.standing() != crate::core::Standing::Current)
}

/// One sync as `request` says (complete or incremental).
pub async fn sync_with(
    gw: &mut Gateway,
    source: &dyn RosterSource,
    request: FetchRequest,
) -> Result<(), SyncFailure> {
    let snapshot = fetch_for(source, request).await?;
    apply_snapshot(gw, source.kind(), &snapshot, request.now)
}

/// Fetch what `request` asks for; an incremental fetch that lowers anyone's standing is
/// replaced by the whole roster.
pub async fn fetch_for(
    source: &dyn RosterSource,
    request: FetchRequest,
) -> Result<crate::core::Snapshot, SyncFailure> {
    let failed = |e: pms::PmsError| SyncFailure {
        reason: e.to_string(),
        retry_after: e.retry_after(),
    };
    let snapshot = source.fetch(request).await.map_err(failed)?;
    if !needs_whole_roster(&snapshot) {
        return Ok(snapshot);
    }
    // A change that may take access away is judged on the whole roster: the person's
    // other lease (a renewal, the destination of a transfer) need not be among the
    // changes, and judging one lease alone could lock a current resident out.
    tracing::info!("an incremental fetch lowers someone's standing; fetching the whole roster");
    source
        .fetch(FetchRequest {
            changed_since: None,
            now: request.now,
        })
        .await
        .map_err(failed)
}

/// Plan and commit a fetched snapshot, and log what it did.
pub fn apply_snapshot(
    gw: &mut Gateway,
    source_kind: &str,
    snapshot: &crate::core::Snapshot,
    now: Timestamp,
) -> Result<(), SyncFailure> {
    let t = gw.sync(snapshot, now).map_err(|e| SyncFailure {
        reason: e.to_string(),
        retry_after: None,
    })?;
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    for s in t.suggestions() {
        *counts.entry(s.display_state()).or_default() += 1;
        if s.state != SuggestionState::Superseded {
            // Resident ids only: names stay out of the logs.
            tracing::info!(
                id = %s.id,
                resident = %s.resident_id,
                action = ?s.action,
                color = ?s.color(),
                key = s.key.as_deref().unwrap_or("-"),
                state = s.display_state(),
                "suggestion"
            );
        }
    }
    tracing::info!(
        source = source_kind,
        complete = snapshot.complete,
        residents = snapshot.residents.len(),
        pending = counts.get("pending").copied().unwrap_or(0),
        held = counts.get("held").copied().unwrap_or(0),
        applied = counts.get("applied").copied().unwrap_or(0),
        superseded = counts.get("superseded").copied().unwrap_or(0),
        awaiting_decision = gw.world().pending.len(),
        "sync done"
    );
    for a in &t.alerts {
        tracing::warn!(alert = ?a, "alert");
    }
    Ok(())
}

/// How often freed heap is handed back outside of syncs.
const TRIM_EVERY: Duration = Duration::from_secs(30);

/// Give memory freed after a sync back to the OS. A first sync of 10,000 residents peaks at
/// hundreds of MB (one sled transaction holds all of it), and glibc keeps freed heap for
/// reuse, so without this the gateway would sit at its peak on a 1 GB Pi for good.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages to the kernel; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn notify_ready() {
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
}

fn watchdog_interval() -> Option<Duration> {
    let mut usec = 0u64;
    if sd_notify::watchdog_enabled(false, &mut usec) && usec > 0 {
        Some(Duration::from_micros(usec / 2))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_ten_seconds_and_stops_at_the_poll_interval() {
        let cap = Duration::from_secs(300);
        assert_eq!(backoff(0, cap, 0.0), Duration::from_secs(10));
        assert_eq!(backoff(1, cap, 0.0), Duration::from_secs(20));
        assert_eq!(backoff(4, cap, 0.0), Duration::from_secs(160));
        assert_eq!(backoff(5, cap, 0.0), cap);
        assert_eq!(backoff(40, cap, 0.0), cap);
    }

    fn at(min: i64) -> Timestamp {
        use chrono::TimeZone;
        chrono::Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap() + chrono::Duration::minutes(min)
    }

    #[test]
    fn a_complete_roster_comes_first_and_every_full_interval_with_changes_in_between() {
        let mut s = Schedule::new(Duration::from_secs(300), Duration::from_secs(3600));
        let r = s.request(at(0));
        assert_eq!(r.changed_since, None, "the first fetch is complete");
        assert_eq!(s.succeeded(&r), Duration::from_secs(300));
        let r = s.request(at(5));
        assert_eq!(r.changed_since, Some(at(0) - INCREMENTAL_OVERLAP));
        s.succeeded(&r);
        let r = s.request(at(10));
        assert_eq!(r.changed_since, Some(at(5) - INCREMENTAL_OVERLAP));
        let r = s.request(at(60));
        assert_eq!(
            r.changed_since, None,
            "an hour on, the roster is fetched whole again"
        );
    }

    #[test]
    fn after_a_failure_the_next_incremental_fetch_reaches_back_to_the_last_success() {
        let mut s = Schedule::new(Duration::from_secs(300), Duration::from_secs(3600));
        s.succeeded(&s.request(at(0)));
        s.failed(None, 0.0);
        s.failed(None, 0.0);
        let r = s.request(at(20));
        assert_eq!(r.changed_since, Some(at(0) - INCREMENTAL_OVERLAP));
    }

    #[test]
    fn a_failed_sync_backs_off_but_never_sooner_than_the_pms_asked() {
        let mut s = Schedule::new(Duration::from_secs(300), Duration::from_secs(3600));
        assert_eq!(s.failed(None, 0.0), Duration::from_secs(10));
        assert_eq!(s.failed(None, 0.0), Duration::from_secs(20));
        assert_eq!(
            s.failed(Some(Duration::from_secs(120)), 0.0),
            Duration::from_secs(120)
        );
        assert_eq!(
            s.failed(Some(Duration::from_secs(900)), 0.0),
            Duration::from_secs(900)
        );
        s.succeeded(&s.request(at(0)));
        assert_eq!(
            s.failed(None, 0.0),
            Duration::from_secs(10),
            "success resets the backoff"
        );
    }

    #[test]
    fn backoff_jitter_stays_within_twenty_percent() {
        let cap = Duration::from_secs(300);
        assert_eq!(backoff(0, cap, 0.2), Duration::from_secs(12));
        assert_eq!(backoff(0, cap, -0.9), Duration::from_secs(8));
    }
}
