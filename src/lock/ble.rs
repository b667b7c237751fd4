//! One thin driver per lock connection, on btleplug (BlueZ over D-Bus).
//!
//! Find the lock by address or advertised name, connect, discover services, subscribe to
//! indications on the pairing and keyturner characteristics, write messages in 20-byte
//! pieces and join indications back into messages. One command at a time, as the lock
//! does; BUSY is retried here with a short backoff; BAD_PIN is fatal.

use std::pin::Pin;
use std::time::Duration;

use btleplug::api::{
    Central, Characteristic, Manager as _, Peripheral as _, ScanFilter, ValueNotification,
    WriteType,
};
use btleplug::platform::{Adapter, Manager, Peripheral};
use futures::{Stream, StreamExt};
use leasegate_nuki::frame::{self, Framing, Reassembler};
use leasegate_nuki::{
    gatt, AppIdentity, ErrorReport, ExchangeError, Op, Outcome, Paired, PairingError, SecurityPin,
    SharedKey,
};
use tokio::time::{timeout, Instant};

use crate::config::nuki::{LockAddress, LockConfig, NukiConfig};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("BLE: {0}")]
    Ble(#[from] btleplug::Error),
    #[error("no Bluetooth adapter{}", .0.as_deref().map(|a| format!(" named {a}")).unwrap_or_default())]
    NoAdapter(Option<String>),
    #[error("lock {0} not found while scanning")]
    NotFound(String),
    #[error("the lock has no {0} characteristic (not a Nuki Smart Lock 1-4?)")]
    NoCharacteristic(&'static str),
    #[error("no answer from the lock within {0:?}")]
    Timeout(Duration),
    #[error("the connection dropped")]
    Disconnected,
    #[error("damaged message from the lock: {0}")]
    Frame(#[from] frame::FrameError),
    #[error("the lock reported {} for command 0x{:04x}", .0.code, .0.command)]
    Lock(ErrorReport),
    #[error("protocol: {0}")]
    Protocol(String),
    #[error("pairing: {0}")]
    Pairing(#[from] PairingError),
    #[error("lock {0} is not paired: run `leasegate lock-pair` with the lock in pairing mode")]
    NotPaired(String),
    #[error("the lock's security PIN is missing or invalid: {0}")]
    SecurityPin(String),
    #[error("device state: {0}")]
    State(String),
    #[error(transparent)]
    Outbox(#[from] crate::outbox::OutboxError),
}

impl LockError {
    /// Whether trying again later (a new connection, a new challenge) may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            LockError::Ble(_)
            | LockError::NotFound(_)
            | LockError::Timeout(_)
            | LockError::Disconnected
            | LockError::Frame(_)
            | LockError::Protocol(_) => true,
            LockError::Lock(r) => r.code.is_retryable(),
            LockError::Pairing(e) => e.is_retryable(),
            LockError::Outbox(e) => e.is_retryable(),
            LockError::NoAdapter(_)
            | LockError::NoCharacteristic(_)
            | LockError::NotPaired(_)
            | LockError::SecurityPin(_)
            | LockError::State(_) => false,
        }
    }

    /// Stop writing to this lock until an operator acts (retries would burn PIN attempts).
    pub fn is_fatal(&self) -> bool {
        matches!(self, LockError::Lock(r) if r.code.is_fatal())
    }
}

impl From<ExchangeError> for LockError {
    fn from(e: ExchangeError) -> Self {
        match e {
            ExchangeError::Lock(r) => LockError::Lock(r),
            other => LockError::Protocol(other.to_string()),
        }
    }
}

/// What an authorized session needs: kept sealed at rest, never logged.
#[derive(Clone)]
pub struct Session {
    pub auth_id: u32,
    pub key: SharedKey,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Session(<redacted>)")
    }
}

type Indications = Pin<Box<dyn Stream<Item = ValueNotification> + Send>>;

/// One open connection to one lock.
pub struct BleLock {
    peripheral: Peripheral,
    pairing: Option<Characteristic>,
    usdio: Option<Characteristic>,
    indications: Indications,
    plain: Reassembler,
    encrypted: Reassembler,
    command_timeout: Duration,
    /// BLE values written on this connection (for figures).
    pub writes: u64,
}

async fn adapter(nuki: &NukiConfig) -> Result<Adapter, LockError> {
    let manager = Manager::new().await?;
    let adapters = manager.adapters().await?;
    match &nuki.adapter {
        None => adapters
            .into_iter()
            .next()
            .ok_or(LockError::NoAdapter(None)),
        Some(name) => {
            for a in adapters {
                // "hci0 (usb:v1D6Bp0246d0537)"
                if a.adapter_info().await?.split(' ').next() == Some(name.as_str()) {
                    return Ok(a);
                }
            }
            Err(LockError::NoAdapter(Some(name.clone())))
        }
    }
}

async fn matches(p: &Peripheral, want: &LockAddress) -> bool {
    match want {
        LockAddress::Mac(mac) => p.address().to_string().eq_ignore_ascii_case(mac),
        LockAddress::Name(name) => match p.properties().await {
            Ok(Some(props)) => {
                props.local_name.as_deref() == Some(name.as_str())
                    || props.advertisement_name.as_deref() == Some(name.as_str())
            }
            _ => false,
        },
    }
}

fn describe(a: &LockAddress) -> String {
    match a {
        LockAddress::Mac(m) => m.clone(),
        LockAddress::Name(n) => format!("named {n:?}"),
    }
}

impl BleLock {
    /// Find, connect, discover and subscribe; within `nuki.connect_timeout`.
    pub async fn connect(nuki: &NukiConfig, lock: &LockConfig) -> Result<BleLock, LockError> {
        let adapter = adapter(nuki).await?;
        let deadline = Instant::now() + nuki.connect_timeout;
        let mut scanning = false;
        let peripheral = loop {
            let mut found = None;
            for p in adapter.peripherals().await? {
                if matches(&p, &lock.address).await {
                    found = Some(p);
                    break;
                }
            }
            if let Some(p) = found {
                break p;
            }
            if !scanning {
                adapter.start_scan(ScanFilter::default()).await?;
                scanning = true;
            }
            if Instant::now() >= deadline {
                let _ = adapter.stop_scan().await;
                return Err(LockError::NotFound(describe(&lock.address)));
            }
            // Scan results arrive as D-Bus signals; look again shortly.
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        if scanning {
            let _ = adapter.stop_scan().await;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if !peripheral.is_connected().await.unwrap_or(false) {
            timeout(left.max(Duration::from_secs(1)), peripheral.connect())
                .await
                .map_err(|_| LockError::Timeout(nuki.connect_timeout))??;
        }
        timeout(
            left.max(Duration::from_secs(1)),
            peripheral.discover_services(),
        )
        .await
        .map_err(|_| LockError::Timeout(nuki.connect_timeout))??;
        let find = |uuid: &str| {
            peripheral
                .characteristics()
                .into_iter()
                .find(|c| c.uuid.to_string() == uuid)
        };
        let pairing = find(gatt::PAIRING_GDIO);
        let usdio = find(gatt::KEYTURNER_USDIO);
        // Take the stream before subscribing so no early indication is missed.
        let indications = peripheral.notifications().await?;
        for c in [&pairing, &usdio].into_iter().flatten() {
            peripheral.subscribe(c).await?;
        }
        Ok(BleLock {
            peripheral,
            pairing,
            usdio,
            indications,
            plain: Reassembler::new(Framing::Plain),
            encrypted: Reassembler::new(Framing::Encrypted),
            command_timeout: nuki.command_timeout,
            writes: 0,
        })
    }

    pub async fn disconnect(self) {
        let _ = self.peripheral.disconnect().await;
    }

    async fn write(&mut self, which: Framing, message: &[u8]) -> Result<(), LockError> {
        let c = match which {
            Framing::Plain => self
                .pairing
                .clone()
                .ok_or(LockError::NoCharacteristic("pairing GDIO"))?,
            Framing::Encrypted => self
                .usdio
                .clone()
                .ok_or(LockError::NoCharacteristic("keyturner USDIO"))?,
        };
        for piece in frame::chunks(message) {
            self.peripheral
                .write(&c, piece, WriteType::WithResponse)
                .await
                .map_err(|e| match e {
                    btleplug::Error::NotConnected => LockError::Disconnected,
                    other => LockError::Ble(other),
                })?;
            self.writes += 1;
        }
        Ok(())
    }

    /// The next whole message of `which` framing, within the command timeout.
    async fn read(&mut self, which: Framing) -> Result<Vec<u8>, LockError> {
        let want = match which {
            Framing::Plain => gatt::PAIRING_GDIO,
            Framing::Encrypted => gatt::KEYTURNER_USDIO,
        };
        let deadline = Instant::now() + self.command_timeout;
        loop {
            let asm = match which {
                Framing::Plain => &mut self.plain,
                Framing::Encrypted => &mut self.encrypted,
            };
            if let Some(m) = asm.next_message()? {
                return Ok(m);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match timeout(left, self.indications.next()).await {
                Err(_) => {
                    return Err(if self.peripheral.is_connected().await.unwrap_or(false) {
                        LockError::Timeout(self.command_timeout)
                    } else {
                        LockError::Disconnected
                    })
                }
                Ok(None) => return Err(LockError::Disconnected),
                Ok(Some(n)) if n.uuid.to_string() == want => asm.push(&n.value),
                Ok(Some(_)) => {}
            }
        }
    }

    /// Pair with a lock in pairing mode. Fresh key pair and nonce from the OS CSPRNG.
    pub async fn pair(&mut self, identity: AppIdentity) -> Result<Paired, LockError> {
        self.plain.clear();
        super::link::pair(self, identity).await
    }

    /// One challenge-protected exchange, without retries.
    pub async fn exchange_once(
        &mut self,
        s: &Session,
        op: Op,
        pin: &SecurityPin,
    ) -> Result<Outcome, LockError> {
        super::link::exchange_once(self, s, op, pin).await
    }

    /// One exchange; BUSY and other retryable lock answers are retried with a short
    /// backoff on this connection. Link errors are returned (the caller reconnects).
    pub async fn exchange(
        &mut self,
        s: &Session,
        op: Op,
        pin: &SecurityPin,
    ) -> Result<Outcome, LockError> {
        super::link::exchange(self, s, op, pin).await
    }
}

impl super::link::Wire for BleLock {
    async fn write_message(&mut self, which: Framing, message: &[u8]) -> Result<(), LockError> {
        self.write(which, message).await
    }

    async fn read_message(&mut self, which: Framing) -> Result<Vec<u8>, LockError> {
        self.read(which).await
    }
}
