//! The credential set each device should hold, derived from the grants.
//!
//! A device writer compares this with what the device last acknowledged and sends only the
//! difference. Grants of residents awaiting a revocation decision are still here: the
//! approval model means access changes only when a decision is applied.

use std::collections::BTreeMap;

use super::types::{DeviceId, DoorId, ResidentId, Timestamp};
use super::world::World;

/// For one resident on one device: each door they may open, and from when.
pub type DoorAccess = BTreeMap<DoorId, Timestamp>;

/// Per resident, the doors of one device they may open.
pub type DeviceSet = BTreeMap<ResidentId, DoorAccess>;

/// The desired credential set of every device that serves at least one granted door.
pub fn desired_all(world: &World) -> BTreeMap<DeviceId, DeviceSet> {
    let mut out: BTreeMap<DeviceId, DeviceSet> = BTreeMap::new();
    for g in world.grants.values() {
        let Some(key) = world.index().key(&g.key_id) else {
            continue; // a key removed from the site grants nothing
        };
        for door in &key.doors {
            let Some(dev) = world.index().device_of(door) else {
                continue;
            };
            let doors = out
                .entry(dev.clone())
                .or_default()
                .entry(g.resident_id.clone())
                .or_default();
            // Two keys opening one door: the earlier start wins.
            doors
                .entry(door.clone())
                .and_modify(|t| *t = (*t).min(g.valid_from))
                .or_insert(g.valid_from);
        }
    }
    out
}

/// The desired credential set of one device (empty if nothing is granted on it).
pub fn desired_for(world: &World, device: &str) -> DeviceSet {
    desired_all(world).remove(device).unwrap_or_default()
}
