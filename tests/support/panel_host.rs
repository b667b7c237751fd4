//! An in-memory gateway for panel tests and benches: a desired set per device that the test
//! changes, device state in a map, events collected.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use leasegate::core::{Card, Pin};
use leasegate::events::Event;
use leasegate::outbox::{DesiredEntry, DeviceWork, OutboxError};
use leasegate::panel::Host;
use leasegate::seal::Sealer;
use tokio::sync::watch;

#[derive(Default)]
struct Inner {
    entries: BTreeMap<String, Vec<DesiredEntry>>,
    generation: u64,
    settled: BTreeMap<String, u64>,
    state: BTreeMap<String, Vec<u8>>,
    events: Vec<Event>,
}

#[derive(Clone)]
pub struct TestHost {
    inner: Arc<Mutex<Inner>>,
    sealer: Sealer,
    tx: Arc<watch::Sender<u64>>,
}

impl TestHost {
    pub fn new() -> TestHost {
        TestHost {
            inner: Arc::default(),
            sealer: Sealer::from_key([7; 32]),
            tx: Arc::new(watch::channel(0).0),
        }
    }

    /// Replace the desired set of `device` (a new generation).
    pub fn set(&self, device: &str, entries: Vec<DesiredEntry>) {
        let g = {
            let mut i = self.inner.lock().unwrap();
            i.generation += 1;
            i.entries.insert(device.into(), entries);
            i.generation
        };
        self.tx.send_replace(g);
    }

    pub fn generation(&self) -> u64 {
        self.inner.lock().unwrap().generation
    }

    pub fn settled(&self, device: &str) -> u64 {
        self.inner
            .lock()
            .unwrap()
            .settled
            .get(device)
            .copied()
            .unwrap_or(0)
    }

    pub fn events(&self) -> Vec<Event> {
        self.inner.lock().unwrap().events.clone()
    }

    pub fn state(&self, device: &str) -> Option<Vec<u8>> {
        self.inner.lock().unwrap().state.get(device).cloned()
    }
}

impl Host for TestHost {
    async fn work(&self, device: &str) -> Result<DeviceWork, OutboxError> {
        let i = self.inner.lock().unwrap();
        let generation = if i.settled.get(device).copied().unwrap_or(0) == i.generation {
            0
        } else {
            i.generation
        };
        Ok(DeviceWork {
            device: device.into(),
            generation,
            entries: i.entries.get(device).cloned().unwrap_or_default(),
            timezone: chrono_tz::UTC,
        })
    }
    async fn settle(&self, device: &str, generation: u64) -> Result<bool, OutboxError> {
        let mut i = self.inner.lock().unwrap();
        if generation != i.generation {
            return Ok(false);
        }
        i.settled.insert(device.into(), generation);
        Ok(true)
    }
    async fn device_state(&self, device: &str) -> Result<Option<Vec<u8>>, OutboxError> {
        Ok(self.inner.lock().unwrap().state.get(device).cloned())
    }
    async fn put_device_state(&self, device: &str, bytes: &[u8]) -> Result<(), OutboxError> {
        self.inner
            .lock()
            .unwrap()
            .state
            .insert(device.into(), bytes.to_vec());
        Ok(())
    }
    fn sealer(&self) -> &Sealer {
        &self.sealer
    }
    fn emit(&self, event: Event) {
        self.inner.lock().unwrap().events.push(event);
    }
    fn subscribe(&self) -> watch::Receiver<u64> {
        self.tx.subscribe()
    }
}

/// A resident with one 26-bit card (facility 1, number `n`) on `doors`, from `from`.
pub fn resident(n: u32, doors: &[&str], from: DateTime<Utc>) -> DesiredEntry {
    DesiredEntry {
        resident_id: format!("res-{n}"),
        doors: doors.iter().map(|d| (d.to_string(), from)).collect(),
        cards: vec![Card::h10301(1, n % 65536).unwrap()],
        pin: None,
    }
}

/// The same with a PIN as well.
pub fn resident_with_pin(n: u32, pin: &str, doors: &[&str], from: DateTime<Utc>) -> DesiredEntry {
    DesiredEntry {
        pin: Pin::parse(pin),
        ..resident(n, doors, from)
    }
}
