//! The device writers' view of the gateway: what each device should hold, and where to
//! report that it does.
//!
//! A writer loops: [`Outbox::work`] for its device, bring the device to that set (idempotent
//! upserts and deletes, each acknowledged), then [`Outbox::settle`] with the generation it
//! was given. A change made meanwhile bumps the generation, so the settle is refused and
//! the device stays dirty. [`Outbox::subscribe`] wakes writers after every state change.
//!
//! A writer must treat a sudden empty desired set with suspicion (after `leasegate rebuild`,
//! an empty store would otherwise wipe every panel): compare with what the device holds and
//! raise an event rather than delete hundreds of residents at once.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::{watch, Mutex};

use crate::core::{desired_all, Card, DeviceId, DoorAccess, Pin, ResidentId};
use crate::events::{Event, EventSink};
use crate::gateway::Gateway;
use crate::seal::Sealer;
use crate::store::StoreError;

/// The gateway as tasks share it.
pub type SharedGateway = Arc<Mutex<Gateway>>;

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl OutboxError {
    pub fn is_retryable(&self) -> bool {
        match self {
            OutboxError::Store(e) => e.is_retryable(),
        }
    }
}

/// One resident's access on one device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredEntry {
    pub resident_id: ResidentId,
    /// The doors of this device the resident may open, each from when.
    pub doors: DoorAccess,
    pub cards: Vec<Card>,
    pub pin: Option<Pin>,
}

/// What a device should hold now.
#[derive(Clone, Debug)]
pub struct DeviceWork {
    pub device: DeviceId,
    /// Pass back to [`Outbox::settle`]. 0 when the device has no unsettled change.
    pub generation: u64,
    pub entries: Vec<DesiredEntry>,
    /// The property's time zone, for devices that keep local time (locks).
    pub timezone: chrono_tz::Tz,
}

#[derive(Clone)]
pub struct Outbox {
    gw: SharedGateway,
    changed: watch::Receiver<u64>,
    events: EventSink,
    sealer: Sealer,
    timezone: chrono_tz::Tz,
}

impl Outbox {
    pub async fn new(
        gw: SharedGateway,
        events: EventSink,
        sealer: Sealer,
        timezone: chrono_tz::Tz,
    ) -> Outbox {
        let changed = gw.lock().await.subscribe();
        Outbox {
            gw,
            changed,
            events,
            sealer,
            timezone,
        }
    }

    /// The desired set of `device`, with the generation to settle.
    pub async fn work(&self, device: &str) -> Result<DeviceWork, OutboxError> {
        let gw = self.gw.lock().await;
        let generation = gw
            .store()
            .dirty_devices()?
            .into_iter()
            .find(|(d, _)| d == device)
            .map_or(0, |(_, g)| g);
        let world = gw.world();
        let set = desired_all(world).remove(device).unwrap_or_default();
        let entries = set
            .into_iter()
            .map(|(resident_id, doors)| {
                let creds = world.credentials.get(&resident_id);
                DesiredEntry {
                    cards: creds.map(|c| c.cards.clone()).unwrap_or_default(),
                    pin: creds.and_then(|c| c.pin.clone()),
                    resident_id,
                    doors,
                }
            })
            .collect();
        Ok(DeviceWork {
            device: device.to_string(),
            generation,
            entries,
            timezone: self.timezone,
        })
    }

    /// Mark `device` up to date at `generation`. `false`: it changed since; call `work`
    /// again.
    pub async fn settle(&self, device: &str, generation: u64) -> Result<bool, OutboxError> {
        if generation == 0 {
            return Ok(true);
        }
        Ok(self
            .gw
            .lock()
            .await
            .store()
            .settle_device(device, generation)?)
    }

    /// Devices with unsettled changes, and their generations.
    pub async fn dirty(&self) -> Result<BTreeMap<DeviceId, u64>, OutboxError> {
        Ok(self
            .gw
            .lock()
            .await
            .store()
            .dirty_devices()?
            .into_iter()
            .collect())
    }

    /// Changes after every committed state change; `changed().await` to wait for one.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.clone()
    }

    pub async fn device_state(&self, device: &str) -> Result<Option<Vec<u8>>, OutboxError> {
        Ok(self.gw.lock().await.store().device_state(device)?)
    }

    /// Durable when it returns.
    pub async fn put_device_state(&self, device: &str, bytes: &[u8]) -> Result<(), OutboxError> {
        Ok(self
            .gw
            .lock()
            .await
            .store()
            .put_device_state(device, bytes)?)
    }

    /// Seals keys kept in the device state.
    pub fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    /// Report an event; never blocks, and nobody listening is fine.
    pub fn emit(&self, event: Event) {
        let _ = self.events.send(event);
    }

    pub fn events(&self) -> &EventSink {
        &self.events
    }
}
