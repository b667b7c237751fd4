//! The seam between the lock writer and a lock: a [`Connector`] opens a [`LockLink`], over
//! which the writer runs challenge-protected exchanges and pairing.
//!
//! Production connects over BLE ([`BleLock`], btleplug). The demo connects to in-process
//! [`SimulatedLocks`](super::sim::SimulatedLocks) that speak the same encrypted frames; a
//! config file cannot choose them, only code can (`daemon::run_with` with a
//! [`Connector`] in its `RunExtras`).
//! Both run the same protocol code below, so the writer cannot tell them apart.

use std::future::Future;
use std::time::Duration;

use leasegate_nuki::frame::{self, Framing};
use leasegate_nuki::{
    AppIdentity, AppSecretKey, Command, Exchange, Op, Outcome, Paired, Pairing, PairingStep,
    Progress, Reply, SecurityPin,
};
use rand::RngCore;

use super::ble::{BleLock, LockError, Session};
use super::sim::{SimLink, SimulatedLocks};
use crate::config::nuki::{LockConfig, NukiConfig};

/// How many times BUSY (and other retryable lock errors) are retried within one command.
const BUSY_RETRIES: u32 = 6;

/// Whole messages in and out of one lock connection; the protocol runs on top.
pub(crate) trait Wire: Send {
    fn write_message(
        &mut self,
        which: Framing,
        message: &[u8],
    ) -> impl Future<Output = Result<(), LockError>> + Send;
    fn read_message(
        &mut self,
        which: Framing,
    ) -> impl Future<Output = Result<Vec<u8>, LockError>> + Send;
}

/// Pair over the pairing characteristic. Fresh key pair and nonce from the OS CSPRNG.
pub(crate) async fn pair<W: Wire>(w: &mut W, identity: AppIdentity) -> Result<Paired, LockError> {
    let mut sk = [0u8; 32];
    let mut na = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut sk);
    rand::rngs::OsRng.fill_bytes(&mut na);
    let (mut machine, first) = Pairing::start(AppSecretKey::from_bytes(sk), identity, na);
    sk.fill(0);
    w.write_message(Framing::Plain, &first).await?;
    loop {
        let bytes = w.read_message(Framing::Plain).await?;
        let (msg, _) = frame::decode_plain(&bytes)?;
        match machine.on_message(&msg)? {
            PairingStep::Send(out) => w.write_message(Framing::Plain, &out).await?,
            PairingStep::Done(paired) => return Ok(paired),
        }
    }
}

async fn send_command<W: Wire>(w: &mut W, s: &Session, c: &Command) -> Result<(), LockError> {
    let mut nonce = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let wire = frame::encode_encrypted(&s.key, &nonce, s.auth_id, c.id(), &c.payload());
    w.write_message(Framing::Encrypted, &wire).await
}

async fn read_reply<W: Wire>(w: &mut W, s: &Session) -> Result<Reply, LockError> {
    let bytes = w.read_message(Framing::Encrypted).await?;
    let (auth, msg, _) = frame::decode_encrypted(&s.key, &bytes)?;
    if auth != s.auth_id {
        return Err(LockError::Protocol(
            "reply for another authorization".into(),
        ));
    }
    Reply::decode(msg.command, &msg.payload).map_err(|e| LockError::Protocol(e.to_string()))
}

/// One challenge-protected exchange, without retries.
pub(crate) async fn exchange_once<W: Wire>(
    w: &mut W,
    s: &Session,
    op: Op,
    pin: &SecurityPin,
) -> Result<Outcome, LockError> {
    let (mut x, first) = Exchange::start(op, pin.clone());
    send_command(w, s, &first).await?;
    loop {
        let reply = read_reply(w, s).await?;
        match x.on_reply(reply)? {
            Progress::Send(c) => send_command(w, s, &c).await?,
            Progress::Wait => {}
            Progress::Done(o) => return Ok(o),
        }
    }
}

/// One exchange; BUSY and other retryable lock answers are retried with a short backoff on
/// this connection. Link errors are returned (the caller reconnects).
pub(crate) async fn exchange<W: Wire>(
    w: &mut W,
    s: &Session,
    op: Op,
    pin: &SecurityPin,
) -> Result<Outcome, LockError> {
    let mut delay = Duration::from_millis(50);
    let mut attempt = 0;
    loop {
        match exchange_once(w, s, op.clone(), pin).await {
            Err(LockError::Lock(r)) if r.code.is_retryable() && attempt < BUSY_RETRIES => {
                attempt += 1;
                tracing::debug!(code = %r.code, attempt, "lock asked us to retry");
                // Backoff before asking again: the lock is busy with its motor or radio.
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            other => return other,
        }
    }
}

/// One open connection to one lock.
pub enum LockLink {
    /// Boxed: a BLE connection is several times the size of a simulated one.
    Ble(Box<BleLock>),
    Simulated(SimLink),
}

impl LockLink {
    /// One exchange, with BUSY retried on this connection.
    pub async fn exchange(
        &mut self,
        s: &Session,
        op: Op,
        pin: &SecurityPin,
    ) -> Result<Outcome, LockError> {
        match self {
            LockLink::Ble(l) => l.exchange(s, op, pin).await,
            LockLink::Simulated(l) => exchange(l, s, op, pin).await,
        }
    }

    /// Pair with a lock in pairing mode.
    pub async fn pair(&mut self, identity: AppIdentity) -> Result<Paired, LockError> {
        match self {
            LockLink::Ble(l) => l.pair(identity).await,
            LockLink::Simulated(l) => pair(l, identity).await,
        }
    }

    pub async fn disconnect(self) {
        match self {
            LockLink::Ble(l) => l.disconnect().await,
            LockLink::Simulated(l) => l.disconnect(),
        }
    }

    /// BLE values written on this connection (for figures).
    pub fn writes(&self) -> u64 {
        match self {
            LockLink::Ble(l) => l.writes,
            LockLink::Simulated(l) => l.writes,
        }
    }
}

/// How the writers reach their locks.
#[derive(Clone, Default)]
pub enum Connector {
    /// Over BLE with btleplug: what every config gets.
    #[default]
    Ble,
    /// In-process simulated locks, by device id (the demo).
    Simulated(SimulatedLocks),
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Connector::Ble => f.write_str("Connector::Ble"),
            Connector::Simulated(_) => f.write_str("Connector::Simulated"),
        }
    }
}

impl Connector {
    /// Find and connect to `lock`.
    pub async fn connect(
        &self,
        nuki: &NukiConfig,
        lock: &LockConfig,
    ) -> Result<LockLink, LockError> {
        match self {
            Connector::Ble => Ok(LockLink::Ble(Box::new(BleLock::connect(nuki, lock).await?))),
            Connector::Simulated(locks) => locks
                .connect(&lock.device, nuki.command_timeout)
                .map(LockLink::Simulated)
                .ok_or_else(|| LockError::NotFound(format!("simulated lock {}", lock.device))),
        }
    }
}
