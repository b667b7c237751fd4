//! Site data: which doors a PMS unit opens, which device serves each door, and the
//! common-area key sets. It lives in the store and is seeded from the site file.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::types::{DeviceId, DoorId, KeyId};

/// Unit keys are derived from the unit map and named `unit:<pms unit>`, so they can never
/// collide with a key set defined in the site file (those may not contain `:`).
pub const UNIT_KEY_PREFIX: &str = "unit:";

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Site {
    #[serde(default)]
    pub units: Vec<UnitMap>,
    #[serde(default)]
    pub doors: Vec<Door>,
    #[serde(default)]
    pub keys: Vec<KeySet>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitMap {
    pub pms_unit: String,
    pub doors: Vec<DoorId>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Door {
    pub id: DoorId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceId>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySet {
    pub id: KeyId,
    pub name: String,
    pub doors: Vec<DoorId>,
    #[serde(default)]
    pub shareable: bool,
    /// Shared automatically with every current resident.
    #[serde(default)]
    pub auto_share: bool,
}

/// A key as the rules see it: a unit key or a key set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyDef {
    pub id: KeyId,
    pub name: String,
    pub doors: BTreeSet<DoorId>,
    pub shareable: bool,
    pub auto_share: bool,
}

pub fn unit_key_id(pms_unit: &str) -> KeyId {
    format!("{UNIT_KEY_PREFIX}{pms_unit}")
}

impl Site {
    /// Every problem with the site data, each as `(path, reason)`; empty when valid.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut units = BTreeSet::new();
        for (i, u) in self.units.iter().enumerate() {
            let path = format!("units[{i}]");
            if u.pms_unit.trim().is_empty() {
                out.push((format!("{path}.pms_unit"), "must not be empty".into()));
            } else if !units.insert(u.pms_unit.as_str()) {
                out.push((
                    format!("{path}.pms_unit"),
                    format!("unit {:?} is mapped twice", u.pms_unit),
                ));
            }
            check_door_list(&mut out, &format!("{path}.doors"), &u.doors);
        }
        let mut doors = BTreeSet::new();
        for (i, d) in self.doors.iter().enumerate() {
            let path = format!("doors[{i}]");
            if !valid_id(&d.id) {
                out.push((format!("{path}.id"), id_rule().into()));
            } else if !doors.insert(d.id.as_str()) {
                out.push((
                    format!("{path}.id"),
                    format!("door {:?} is declared twice", d.id),
                ));
            }
            if let Some(dev) = &d.device {
                if !valid_id(dev) {
                    out.push((format!("{path}.device"), id_rule().into()));
                }
            }
        }
        let mut keys = BTreeSet::new();
        for (i, k) in self.keys.iter().enumerate() {
            let path = format!("keys[{i}]");
            if !valid_id(&k.id) {
                out.push((format!("{path}.id"), id_rule().into()));
            } else if !keys.insert(k.id.as_str()) {
                out.push((
                    format!("{path}.id"),
                    format!("key {:?} is defined twice", k.id),
                ));
            }
            if k.name.trim().is_empty() {
                out.push((format!("{path}.name"), "must not be empty".into()));
            }
            check_door_list(&mut out, &format!("{path}.doors"), &k.doors);
        }
        out
    }
}

impl Site {
    /// Doors that units or key sets grant but no device serves, each as `(path, note)`.
    /// Not an error (devices may come later), but worth a warning: a typo grants nothing.
    pub fn warnings(&self) -> Vec<(String, String)> {
        let served: BTreeSet<&str> = self
            .doors
            .iter()
            .filter(|d| d.device.is_some())
            .map(|d| d.id.as_str())
            .collect();
        let lists = self
            .units
            .iter()
            .enumerate()
            .map(|(i, u)| (format!("units[{i}].doors"), &u.doors))
            .chain(
                self.keys
                    .iter()
                    .enumerate()
                    .map(|(i, k)| (format!("keys[{i}].doors"), &k.doors)),
            );
        let mut out = Vec::new();
        for (path, list) in lists {
            for d in list.iter().filter(|d| !served.contains(d.as_str())) {
                out.push((
                    path.clone(),
                    format!("door {d:?} has no device: granting it opens nothing"),
                ));
            }
        }
        out
    }
}

fn check_door_list(out: &mut Vec<(String, String)>, path: &str, doors: &[DoorId]) {
    if doors.is_empty() {
        out.push((path.to_string(), "must name at least one door".into()));
    }
    let mut seen = BTreeSet::new();
    for d in doors {
        if !valid_id(d) {
            out.push((path.to_string(), format!("{d:?}: {}", id_rule())));
        } else if !seen.insert(d) {
            out.push((path.to_string(), format!("door {d:?} is listed twice")));
        }
    }
}

fn id_rule() -> &'static str {
    "must be 1-64 characters of a-z, A-Z, 0-9, '-', '_' or '.'"
}

/// Ids appear in MQTT topics and store keys, so they are kept to a safe alphabet.
pub fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Lookup tables derived from a [`Site`]; rebuilt whenever the site changes.
#[derive(Clone, Debug, Default)]
pub struct SiteIndex {
    keys: BTreeMap<KeyId, KeyDef>,
    unit_keys: BTreeMap<String, KeyId>,
    auto_shared: BTreeSet<KeyId>,
    door_device: BTreeMap<DoorId, DeviceId>,
}

impl SiteIndex {
    pub fn new(site: &Site) -> SiteIndex {
        let mut idx = SiteIndex::default();
        for u in &site.units {
            let id = unit_key_id(&u.pms_unit);
            idx.unit_keys.insert(u.pms_unit.clone(), id.clone());
            idx.keys.insert(
                id.clone(),
                KeyDef {
                    id,
                    name: format!("Unit {}", u.pms_unit),
                    doors: u.doors.iter().cloned().collect(),
                    shareable: false,
                    auto_share: false,
                },
            );
        }
        for k in &site.keys {
            if k.auto_share {
                idx.auto_shared.insert(k.id.clone());
            }
            idx.keys.insert(
                k.id.clone(),
                KeyDef {
                    id: k.id.clone(),
                    name: k.name.clone(),
                    doors: k.doors.iter().cloned().collect(),
                    shareable: k.shareable,
                    auto_share: k.auto_share,
                },
            );
        }
        for d in &site.doors {
            if let Some(dev) = &d.device {
                idx.door_device.insert(d.id.clone(), dev.clone());
            }
        }
        idx
    }

    pub fn key(&self, id: &str) -> Option<&KeyDef> {
        self.keys.get(id)
    }

    pub fn unit_key(&self, pms_unit: &str) -> Option<&KeyId> {
        self.unit_keys.get(pms_unit)
    }

    pub fn auto_shared(&self) -> &BTreeSet<KeyId> {
        &self.auto_shared
    }

    pub fn device_of(&self, door: &str) -> Option<&DeviceId> {
        self.door_device.get(door)
    }

    /// The devices whose credential sets a grant of `key` touches.
    pub fn devices_of_key(&self, key: &str) -> BTreeSet<DeviceId> {
        self.keys
            .get(key)
            .map(|k| {
                k.doors
                    .iter()
                    .filter_map(|d| self.door_device.get(d).cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn devices(&self) -> BTreeSet<DeviceId> {
        self.door_device.values().cloned().collect()
    }
}
