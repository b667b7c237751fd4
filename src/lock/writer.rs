//! The lock writer: drains the outbox for one lock. Each pass runs over one connection:
//! read the keypad codes back (drift), remove codes of residents who lost access first,
//! then update and add, persisting each confirmed step at once so a restart loses nothing;
//! then read battery and lock state for `devices/<id>`.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Duration;

use chrono::{Datelike, Timelike, Utc};
use leasegate_nuki::{
    AppIdentity, ErrorCode, IdType, KeypadCode, KeypadCodeEntry, NukiDate, Op, Outcome, PinWidth,
    SecurityPin, SharedKey, TimeLimits, Weekdays,
};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::ble::{LockError, Session};
use super::link::{Connector, LockLink};
use super::state::{ConfirmedCode, LockState, StoredAuth};
use crate::config::nuki::{LockConfig, NukiConfig};
use crate::core::{ResidentId, Timestamp};
use crate::events::{Battery, DeviceStatus, Event};
use crate::outbox::{DeviceWork, Outbox, OutboxError};
use crate::seal::Sealer;

/// Names of the codes leasegate writes start with this; others (the owner's) are left alone.
pub const NAME_PREFIX: &str = "lg ";
/// How many codes one Request Keypad Codes asks for (inferred limit, see the crate README).
const LIST_COUNT: u16 = 200;
/// A desired set this much smaller than what the lock holds is not applied blindly.
const MASS_REMOVAL: usize = 10;

/// What the writer needs from the gateway. [`Outbox`] implements it; tests use their own.
pub trait LockPort: Clone + Send + Sync + 'static {
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

impl LockPort for Outbox {
    fn work(&self, device: &str) -> impl Future<Output = Result<DeviceWork, OutboxError>> + Send {
        Outbox::work(self, device)
    }
    fn settle(
        &self,
        device: &str,
        generation: u64,
    ) -> impl Future<Output = Result<bool, OutboxError>> + Send {
        Outbox::settle(self, device, generation)
    }
    fn device_state(
        &self,
        device: &str,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, OutboxError>> + Send {
        Outbox::device_state(self, device)
    }
    fn put_device_state(
        &self,
        device: &str,
        bytes: &[u8],
    ) -> impl Future<Output = Result<(), OutboxError>> + Send {
        Outbox::put_device_state(self, device, bytes)
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

/// One connection per lock at a time: the writer's passes and pairing (from the CLI or the
/// MQTT `locks/pair` command) take this per-device guard, so they never talk to the lock at
/// once nor overwrite each other's device state.
fn link_guard(device: &str) -> std::sync::Arc<tokio::sync::Mutex<()>> {
    type Guards = std::sync::Mutex<BTreeMap<String, std::sync::Arc<tokio::sync::Mutex<()>>>>;
    static GUARDS: std::sync::OnceLock<Guards> = std::sync::OnceLock::new();
    GUARDS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(device.to_string())
        .or_default()
        .clone()
}

/// Wakes the writer of one lock (after pairing), in this process.
fn nudge(device: &str) -> std::sync::Arc<tokio::sync::Notify> {
    type Nudges = std::sync::Mutex<BTreeMap<String, std::sync::Arc<tokio::sync::Notify>>>;
    static NUDGES: std::sync::OnceLock<Nudges> = std::sync::OnceLock::new();
    NUDGES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(device.to_string())
        .or_default()
        .clone()
}

/// One resident's code as the lock should hold it.
#[derive(Clone)]
struct Want {
    code: KeypadCode,
    name: String,
    limits: TimeLimits,
}

fn limits_hex(l: &TimeLimits) -> String {
    let mut b = Vec::new();
    l.put(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn code_name(resident: &str) -> String {
    let mut s = format!("{NAME_PREFIX}{resident}");
    let mut end = s.len().min(20);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s
}

/// Local wall-clock time of the property, as the lock keeps it.
fn local_date(t: Timestamp, tz: chrono_tz::Tz) -> Option<NukiDate> {
    let l = t.with_timezone(&tz);
    NukiDate::new(
        u16::try_from(l.year()).ok()?,
        l.month() as u8,
        l.day() as u8,
        l.hour() as u8,
        l.minute() as u8,
        0,
    )
}

fn desired(work: &DeviceWork) -> BTreeMap<ResidentId, Want> {
    let mut out = BTreeMap::new();
    for e in &work.entries {
        let Some(pin) = &e.pin else { continue };
        let Some(code) = KeypadCode::new(pin.value()) else {
            continue;
        };
        // Access starts at the earliest door's start; it ends by removal, not by a date.
        let from = e
            .doors
            .values()
            .min()
            .and_then(|t| local_date(*t, work.timezone));
        let limits = match from {
            Some(from) => TimeLimits {
                from: Some(from),
                until: None,
                weekdays: Weekdays::ALL,
                ..TimeLimits::default()
            },
            None => TimeLimits::default(),
        };
        out.insert(
            e.resident_id.clone(),
            Want {
                code,
                name: code_name(&e.resident_id),
                limits,
            },
        );
    }
    out
}

/// The result of one pass.
#[derive(Clone, Debug, Default)]
pub struct PassReport {
    pub upserts: usize,
    pub deletes: usize,
    /// Per-code failures, in words safe to publish (no codes).
    pub failures: Vec<String>,
    pub drift: Vec<String>,
    pub battery: Option<Battery>,
    /// Residents whose removal did not succeed.
    pub removals_left: Vec<ResidentId>,
    /// BLE values written (for figures).
    pub writes: u64,
}

/// Writes one lock.
pub struct LockWriter<P: LockPort> {
    port: P,
    nuki: NukiConfig,
    lock: LockConfig,
    /// Residents whose removal is due, since when (in memory; a restart restarts the clock).
    removal_since: BTreeMap<ResidentId, Timestamp>,
    overdue_reported: BTreeSet<ResidentId>,
    connector: Connector,
}

impl<P: LockPort> LockWriter<P> {
    /// A writer that connects over BLE.
    pub fn new(nuki: NukiConfig, lock: LockConfig, port: P) -> Self {
        Self::with_connector(nuki, lock, port, Connector::Ble)
    }

    pub fn with_connector(
        nuki: NukiConfig,
        lock: LockConfig,
        port: P,
        connector: Connector,
    ) -> Self {
        LockWriter {
            port,
            nuki,
            lock,
            removal_since: BTreeMap::new(),
            overdue_reported: BTreeSet::new(),
            connector,
        }
    }

    fn device(&self) -> &str {
        &self.lock.device
    }

    async fn load(&self) -> Result<LockState, LockError> {
        let raw = self.port.device_state(self.device()).await?;
        LockState::open(self.port.sealer(), raw.as_deref()).map_err(LockError::State)
    }

    async fn save(&self, state: &LockState) -> Result<(), LockError> {
        let sealed = state.seal(self.port.sealer());
        self.port.put_device_state(self.device(), &sealed).await?;
        Ok(())
    }

    fn security_pin(&self) -> Result<SecurityPin, LockError> {
        let name = self
            .lock
            .security_pin_file
            .as_deref()
            .ok_or_else(|| LockError::SecurityPin("security_pin_file is not set".into()))?;
        let secret = crate::config::read_secret(&self.nuki.secrets_base, name)
            .map_err(|e| LockError::SecurityPin(e.to_string()))?;
        let width = if self.lock.pin_width == 32 {
            PinWidth::U32
        } else {
            PinWidth::U16
        };
        secret
            .expose()
            .trim()
            .parse::<u32>()
            .ok()
            .and_then(|v| SecurityPin::new(v, width))
            .ok_or_else(|| {
                LockError::SecurityPin(format!("the file {name} does not hold a number that fits"))
            })
    }

    fn session(state: &LockState, device: &str) -> Result<Session, LockError> {
        let auth = state
            .auth
            .as_ref()
            .ok_or_else(|| LockError::NotPaired(device.to_string()))?;
        let mut key = [0u8; 32];
        hex_into(&auth.shared_key, &mut key)
            .ok_or_else(|| LockError::State("stored shared key is not 32 hex bytes".into()))?;
        Ok(Session {
            auth_id: auth.auth_id,
            key: SharedKey::from_bytes(key),
        })
    }

    /// Residents whose code must go, given what we remember.
    fn due_removals(state: &LockState, want: &BTreeMap<ResidentId, Want>) -> Vec<ResidentId> {
        state
            .codes
            .keys()
            .filter(|r| !want.contains_key(*r))
            .cloned()
            .collect()
    }

    /// Raise `revocation_overdue` for removals older than the deadline (once each).
    fn check_overdue(&mut self, due: &[ResidentId]) {
        let now = Utc::now();
        self.removal_since.retain(|r, _| due.contains(r));
        self.overdue_reported.retain(|r| due.contains(r));
        for r in due {
            self.removal_since.entry(r.clone()).or_insert(now);
        }
        let deadline = chrono::Duration::from_std(self.nuki.revocation_deadline)
            .unwrap_or(chrono::Duration::MAX);
        let late: Vec<ResidentId> = self
            .removal_since
            .iter()
            .filter(|(r, since)| now - **since >= deadline && !self.overdue_reported.contains(*r))
            .map(|(r, _)| r.clone())
            .collect();
        if let Some(since) = late.iter().filter_map(|r| self.removal_since.get(r)).min() {
            self.port.emit(Event::RevocationOverdue {
                device: self.device().to_string(),
                residents: late.clone(),
                since: *since,
                at: now,
            });
            self.overdue_reported.extend(late);
        }
    }

    /// One pass over one connection.
    pub async fn pass(&mut self, work: &DeviceWork) -> Result<PassReport, LockError> {
        let guard = link_guard(self.device());
        let _link = guard.lock().await;
        let mut state = self.load().await?;
        let session = Self::session(&state, self.device())?;
        let pin = self.security_pin()?;
        let want = desired(work);
        self.check_overdue(&Self::due_removals(&state, &want));
        let mut link = self.connector.connect(&self.nuki, &self.lock).await?;
        let mut report = PassReport::default();
        let r = self
            .pass_on(&mut link, &session, &pin, &mut state, &want, &mut report)
            .await;
        report.writes = link.writes();
        link.disconnect().await;
        let due = Self::due_removals(&state, &want);
        self.check_overdue(&due);
        report.removals_left = due;
        r.map(|()| report)
    }

    async fn pass_on(
        &mut self,
        link: &mut LockLink,
        s: &Session,
        pin: &SecurityPin,
        state: &mut LockState,
        want: &BTreeMap<ResidentId, Want>,
        report: &mut PassReport,
    ) -> Result<(), LockError> {
        // 0. Revocations first, by the ids we confirmed: reading every code back first cost
        // about 200 ms per code held (six indications each), so a former resident's code
        // stayed 3-5 s on a lock with twenty codes. The read-back below still catches
        // anything these removals could not know about. A mass removal waits for step 2's
        // guard.
        let early = Self::due_removals(state, want);
        if !(want.is_empty() && early.len() > MASS_REMOVAL) {
            for resident in early {
                let id = state.codes[&resident].id;
                match self.remove(link, s, pin, id).await {
                    Ok(()) => {
                        state.codes.remove(&resident);
                        self.save(state).await?;
                        report.deletes += 1;
                    }
                    Err(e) if e.is_fatal() || !matches!(e, LockError::Lock(_)) => return Err(e),
                    // Retried in step 2, after the read-back, and reported there.
                    Err(_) => {}
                }
            }
        }

        // 1. Read back and reconcile what we remember with what the lock holds.
        let listed = match link
            .exchange(
                s,
                Op::ListCodes {
                    offset: 0,
                    count: LIST_COUNT,
                },
                pin,
            )
            .await?
        {
            Outcome::Codes(c) => c,
            other => return Err(LockError::Protocol(format!("list answered {other:?}"))),
        };
        let by_id: BTreeMap<u16, &KeypadCodeEntry> = listed.iter().map(|e| (e.id, e)).collect();
        let mut changed = false;
        for (resident, cc) in state.codes.clone() {
            match by_id.get(&cc.id) {
                None => {
                    report.drift.push(format!(
                        "code {} of {resident} is gone from the lock",
                        cc.id
                    ));
                    state.codes.remove(&resident);
                    changed = true;
                }
                Some(e) => {
                    if e.code.expose() != cc.code
                        || limits_hex(&e.limits) != cc.limits
                        || !e.enabled
                        || e.name != cc.name
                    {
                        report.drift.push(format!(
                            "code {} of {resident} was changed on the lock",
                            cc.id
                        ));
                        let c = state.codes.get_mut(&resident).expect("present");
                        // Forces an update below (or a removal if no longer wanted).
                        c.limits.clear();
                        changed = true;
                    }
                }
            }
        }
        let known: BTreeSet<u16> = state.codes.values().map(|c| c.id).collect();
        let mut orphans = Vec::new();
        for e in &listed {
            if known.contains(&e.id) || !e.name.starts_with(NAME_PREFIX) {
                continue;
            }
            // One of ours we do not remember: a reply lost to a disconnect, or lost state.
            match want
                .iter()
                .find(|(_, w)| w.code.expose() == e.code.expose())
            {
                Some((resident, _)) if !state.codes.contains_key(resident) => {
                    state.codes.insert(
                        resident.clone(),
                        ConfirmedCode {
                            id: e.id,
                            code: e.code.expose(),
                            name: e.name.clone(),
                            limits: if e.enabled {
                                limits_hex(&e.limits)
                            } else {
                                String::new()
                            },
                        },
                    );
                    changed = true;
                }
                _ => orphans.push(e.id),
            }
        }
        if !report.drift.is_empty() {
            self.port.emit(Event::Drift {
                device: self.device().to_string(),
                detail: report.drift.join("; "),
                at: Utc::now(),
            });
        }
        if changed {
            self.save(state).await?;
        }

        // 2. Removals first: a former resident's code must go before anything else.
        let removals = Self::due_removals(state, want);
        if want.is_empty() && removals.len() + orphans.len() > MASS_REMOVAL {
            report.failures.push(format!(
                "the desired set is empty but the lock holds {} leasegate codes: not removing them all at once",
                removals.len() + orphans.len()
            ));
        } else {
            for resident in removals {
                let id = state.codes[&resident].id;
                match self.remove(link, s, pin, id).await {
                    Ok(()) => {
                        state.codes.remove(&resident);
                        self.save(state).await?;
                        report.deletes += 1;
                    }
                    Err(e) if e.is_fatal() || matches!(e, LockError::Disconnected) => {
                        return Err(e)
                    }
                    Err(e) if !matches!(e, LockError::Lock(_)) => return Err(e),
                    Err(e) => report
                        .failures
                        .push(format!("removing code {id} of {resident}: {e}")),
                }
            }
            for id in orphans {
                match self.remove(link, s, pin, id).await {
                    Ok(()) => report.deletes += 1,
                    Err(e) if !matches!(e, LockError::Lock(_)) || e.is_fatal() => return Err(e),
                    Err(e) => report
                        .failures
                        .push(format!("removing unknown leasegate code {id}: {e}")),
                }
            }
        }

        // 3. Updates, then adds.
        for (resident, w) in want {
            let lim = limits_hex(&w.limits);
            let op = match state.codes.get(resident) {
                Some(cc) if cc.code == w.code.expose() && cc.limits == lim && cc.name == w.name => {
                    continue
                }
                Some(cc) => Op::UpdateCode {
                    id: cc.id,
                    code: w.code,
                    name: w.name.clone(),
                    enabled: true,
                    limits: w.limits,
                },
                None => Op::AddCode {
                    code: w.code,
                    name: w.name.clone(),
                    limits: w.limits,
                },
            };
            let is_add = matches!(op, Op::AddCode { .. });
            match link.exchange(s, op, pin).await {
                Ok(Outcome::CodeAdded { id }) if is_add => {
                    state.codes.insert(
                        resident.clone(),
                        ConfirmedCode {
                            id,
                            code: w.code.expose(),
                            name: w.name.clone(),
                            limits: lim,
                        },
                    );
                    self.save(state).await?;
                    report.upserts += 1;
                }
                Ok(Outcome::Completed) if !is_add => {
                    let c = state
                        .codes
                        .get_mut(resident)
                        .expect("updated an entry we hold");
                    c.code = w.code.expose();
                    c.name = w.name.clone();
                    c.limits = lim;
                    self.save(state).await?;
                    report.upserts += 1;
                }
                Ok(other) => {
                    return Err(LockError::Protocol(format!("unexpected outcome {other:?}")))
                }
                Err(LockError::Lock(r)) if !r.code.is_fatal() => {
                    let why = match r.code {
                        ErrorCode::TooManyEntries => "the lock holds no more codes".to_string(),
                        ErrorCode::CodeAlreadyExists => {
                            "the lock holds the same code under another name".to_string()
                        }
                        c => c.to_string(),
                    };
                    report
                        .failures
                        .push(format!("writing the code of {resident}: {why}"));
                }
                Err(e) => return Err(e),
            }
        }

        // 4. Health.
        if let Ok(Outcome::States(st)) = link.exchange(s, Op::States, pin).await {
            report.battery = Some(Battery {
                critical: st.battery_critical(),
                percent: Some(st.battery_percent()),
                charging: Some(st.charging()),
            });
        }
        Ok(())
    }

    async fn remove(
        &self,
        link: &mut LockLink,
        s: &Session,
        pin: &SecurityPin,
        id: u16,
    ) -> Result<(), LockError> {
        match link.exchange(s, Op::RemoveCode { id }, pin).await {
            Ok(_) => Ok(()),
            // Already gone (removed on the lock meanwhile): the goal is reached.
            Err(LockError::Lock(r))
                if matches!(r.code, ErrorCode::KBadParameter | ErrorCode::BadParameter) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn status(
        &self,
        online: bool,
        generation: u64,
        report: Option<&PassReport>,
        err: Option<&LockError>,
    ) {
        self.port.emit(Event::DeviceStatus(DeviceStatus {
            device: self.device().to_string(),
            kind: "nuki_lock".into(),
            online,
            pending_writes: 0,
            failed_writes: report.map_or(0, |r| r.failures.len()),
            battery: report.and_then(|r| r.battery.clone()),
            last_error: err
                .map(|e| e.to_string())
                .or_else(|| report.and_then(|r| r.failures.first().cloned())),
            last_seen: online.then(Utc::now),
            generation,
        }));
    }
}

fn hex_into(s: &str, out: &mut [u8]) -> Option<()> {
    if s.len() != out.len() * 2 {
        return None;
    }
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(())
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Read back every this often even without changes (drift, battery).
const READBACK: Duration = Duration::from_secs(3600);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Keep one lock at the outbox's desired set until `cancel`. Never returns an error: every
/// problem becomes an event, and retryable ones a retry with backoff.
pub async fn run_lock<P: LockPort>(
    nuki: NukiConfig,
    lock: LockConfig,
    port: P,
    cancel: CancellationToken,
) {
    run_lock_with(nuki, lock, port, cancel, Connector::Ble).await
}

/// [`run_lock`] through a given connector.
pub async fn run_lock_with<P: LockPort>(
    nuki: NukiConfig,
    lock: LockConfig,
    port: P,
    cancel: CancellationToken,
    connector: Connector,
) {
    let mut changed = port.subscribe();
    let nudge = nudge(&lock.device);
    let mut w = LockWriter::with_connector(nuki, lock, port.clone(), connector);
    let mut backoff = Duration::from_secs(1);
    let mut next_readback = Instant::now();
    let mut retry_at: Option<Instant> = None;
    loop {
        let work = match port.work(w.device()).await {
            Ok(work) => Some(work),
            Err(e) => {
                tracing::warn!(device = w.device(), error = %e, "cannot read the outbox");
                retry_at = Some(Instant::now() + backoff);
                None
            }
        };
        let now = Instant::now();
        let due = work.as_ref().is_some_and(|work| {
            work.generation != 0 || now >= next_readback || retry_at.is_some_and(|t| now >= t)
        });
        if let (true, Some(work)) = (due, work) {
            match w.pass(&work).await {
                Ok(report) => {
                    next_readback = Instant::now() + READBACK;
                    if report.failures.is_empty() {
                        retry_at = None;
                        backoff = Duration::from_secs(1);
                        let settled = port.settle(w.device(), work.generation).await;
                        if matches!(settled, Ok(true)) && work.generation != 0 {
                            port.emit(Event::AccessApplied {
                                device: w.device().to_string(),
                                generation: work.generation,
                                upserts: report.upserts,
                                deletes: report.deletes,
                                at: Utc::now(),
                            });
                        }
                    } else {
                        for f in &report.failures {
                            port.emit(Event::DeviceWriteFailed {
                                device: w.device().to_string(),
                                error: f.clone(),
                                retryable: true,
                                at: Utc::now(),
                            });
                        }
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        retry_at = Some(Instant::now() + backoff);
                    }
                    w.status(true, work.generation, Some(&report), None);
                }
                Err(e) => {
                    tracing::warn!(device = w.device(), error = %e, retryable = e.is_retryable(), "lock pass failed");
                    port.emit(Event::DeviceWriteFailed {
                        device: w.device().to_string(),
                        error: e.to_string(),
                        retryable: e.is_retryable() && !e.is_fatal(),
                        at: Utc::now(),
                    });
                    w.status(false, work.generation, None, Some(&e));
                    if e.is_retryable() && !e.is_fatal() {
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        retry_at = Some(Instant::now() + backoff);
                    } else {
                        // Wait for an operator (re-pair, fix the PIN file) or a new change.
                        retry_at = None;
                        next_readback = Instant::now() + READBACK;
                    }
                }
            }
        }
        let wake = retry_at.unwrap_or(next_readback).min(next_readback);
        tokio::select! {
            _ = cancel.cancelled() => return,
            // Just paired: try again now, not at the next read-back an hour away.
            _ = nudge.notified() => retry_at = Some(Instant::now()),
            r = changed.changed() => {
                if r.is_err() {
                    // The gateway is gone; keep the retry timer only.
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep_until(wake) => {}
                    }
                }
            }
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
}

/// One writer task per configured lock; returns when `cancel` fires and all have stopped.
pub async fn run_locks<P: LockPort>(nuki: NukiConfig, port: P, cancel: CancellationToken) {
    run_locks_with(nuki, port, cancel, Connector::Ble).await
}

/// [`run_locks`] through a given connector.
pub async fn run_locks_with<P: LockPort>(
    nuki: NukiConfig,
    port: P,
    cancel: CancellationToken,
    connector: Connector,
) {
    let mut tasks = tokio::task::JoinSet::new();
    for lock in nuki.locks.clone() {
        tasks.spawn(run_lock_with(
            nuki.clone(),
            lock,
            port.clone(),
            cancel.clone(),
            connector.clone(),
        ));
    }
    while tasks.join_next().await.is_some() {}
}

/// Pair the lock of `device` (which must be in pairing mode) and keep the authorization
/// sealed in its device state. Codes already confirmed are kept. Nothing secret is logged
/// or returned.
pub async fn pair_lock<P: LockPort>(
    nuki: &NukiConfig,
    device: &str,
    port: &P,
) -> Result<(), LockError> {
    pair_lock_with(nuki, device, port, &Connector::Ble).await
}

/// [`pair_lock`] through a given connector.
pub async fn pair_lock_with<P: LockPort>(
    nuki: &NukiConfig,
    device: &str,
    port: &P,
    connector: &Connector,
) -> Result<(), LockError> {
    let lock = nuki
        .lock(device)
        .ok_or_else(|| LockError::State(format!("no [[nuki.locks]] entry for device {device}")))?
        .clone();
    let guard = link_guard(device);
    let _link = guard.lock().await;
    let mut link = connector.connect(nuki, &lock).await?;
    let identity = AppIdentity {
        // App, not Bridge: a lock keeps one bridge, and pairing as one would evict it.
        id_type: IdType::App,
        app_id: nuki.app_id,
        name: nuki.app_name.clone(),
    };
    let paired = link.pair(identity).await;
    link.disconnect().await;
    let paired = paired?;
    let writer = LockWriter::with_connector(nuki.clone(), lock, port.clone(), connector.clone());
    let mut state = writer.load().await?;
    state.auth = Some(StoredAuth {
        auth_id: paired.auth_id,
        shared_key: to_hex(paired.shared_key.expose()),
        lock_uuid: to_hex(&paired.lock_uuid),
    });
    writer.save(&state).await?;
    tracing::info!(device, "lock paired");
    writer.status(true, 0, None, None);
    // The writer may have given up on this lock (not paired): let it try at once.
    drop(_link);
    nudge(device).notify_one();
    Ok(())
}
