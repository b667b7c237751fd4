//! The `[osdp]` section of the deployment config: the RS-485 buses, the OSDP panels on each,
//! and how leasegate talks to them.
//!
//! ```toml
//! [osdp]
//! vendor_code = 0x4c4701          # default vendor code of the credential profile (MFG)
//! reply_timeout = "200ms"
//! poll_interval = "100ms"         # how often an idle panel is polled
//! digest_interval = "10m"         # how often each panel's database digest is checked
//! revocation_deadline = "2m"      # a revocation not on the panel by then raises an event
//!
//! [[osdp.buses]]
//! tty = "/dev/ttyUSB0"
//! baud = 115200
//!
//! [[osdp.buses.panels]]
//! device = "lobby-panel"          # a device of the site file
//! address = 1                     # OSDP address, 0..126
//! doors = ["lobby", "gym"]        # the site's doors on this panel: bit 0, bit 1, ...
//! max_mfg_data = 64               # optional: cap MFG data (libosdp PDs take 64)
//! vendor_code = 0x4c4701          # optional: overrides [osdp].vendor_code
//! commission_until = "2026-12-04T08:00:00Z"  # optional: install mode (SCBK-D) window
//! ```
//!
//! The commissioning window is the only time the default key SCBK-D is used: the installer
//! sets `commission_until` a little in the future, restarts leasegate, and the panel gets its
//! own random key at its first secure session. After the time, SCBK-D is refused.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use toml::Value;

use super::parse_duration;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PanelConfig {
    pub device: String,
    pub address: u8,
    pub vendor_code: u32,
    /// Site door ids in bit order.
    pub doors: Vec<String>,
    pub max_mfg_data: Option<usize>,
    pub commission_until: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BusConfig {
    pub tty: PathBuf,
    pub baud: u32,
    pub panels: Vec<PanelConfig>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OsdpConfig {
    pub vendor_code: u32,
    pub reply_timeout: Duration,
    pub poll_interval: Duration,
    pub digest_interval: Duration,
    pub revocation_deadline: Duration,
    pub buses: Vec<BusConfig>,
}

/// leasegate's default MFG vendor code (a placeholder until a registered OUI is configured).
pub const DEFAULT_VENDOR_CODE: u32 = 0x4c_4701;

impl Default for OsdpConfig {
    fn default() -> Self {
        OsdpConfig {
            vendor_code: DEFAULT_VENDOR_CODE,
            reply_timeout: Duration::from_millis(200),
            poll_interval: Duration::from_millis(100),
            digest_interval: Duration::from_secs(600),
            revocation_deadline: Duration::from_secs(120),
            buses: Vec::new(),
        }
    }
}

impl OsdpConfig {
    /// Problems with panel devices that are not doors' devices in the site file.
    pub fn check_devices<'a>(
        &self,
        site_devices: impl IntoIterator<Item = &'a str> + Clone,
    ) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        for (b, bus) in self.buses.iter().enumerate() {
            for (p, panel) in bus.panels.iter().enumerate() {
                if !site_devices.clone().into_iter().any(|d| d == panel.device) {
                    errors.push((
                        format!("osdp.buses[{b}].panels[{p}].device"),
                        format!(
                            "{:?} is not the device of any door in the site file",
                            panel.device
                        ),
                    ));
                }
            }
        }
        errors
    }

    pub fn panel(&self, device: &str) -> Option<&PanelConfig> {
        self.buses
            .iter()
            .flat_map(|b| &b.panels)
            .find(|p| p.device == device)
    }
}

const BAUDS: [u32; 6] = [9600, 19200, 38400, 57600, 115200, 230400];

fn vendor(v: &Value, at: String, errors: &mut Vec<(String, String)>) -> Option<u32> {
    match v {
        Value::Integer(i) if (1..=0xff_ffff).contains(i) => Some(*i as u32),
        _ => {
            errors.push((at, "must be a 24-bit vendor code such as 0x4c4701".into()));
            None
        }
    }
}

fn unknown_keys(
    t: &toml::Table,
    known: &[&str],
    at: &dyn Fn(&str) -> String,
    errors: &mut Vec<(String, String)>,
) {
    for key in t.keys() {
        if !known.contains(&key.as_str()) {
            errors.push((at(key), "is not a known key".into()));
        }
    }
}

/// Read the `[osdp]` section; every problem is pushed to `errors` as `(key path, reason)`.
pub(super) fn parse(
    v: Option<&Value>,
    base: &Path,
    errors: &mut Vec<(String, String)>,
) -> OsdpConfig {
    let mut cfg = OsdpConfig::default();
    let table = match v {
        None => return cfg,
        Some(Value::Table(t)) => t,
        Some(other) => {
            errors.push((
                "osdp".into(),
                format!("must be a table, not {}", other.type_str()),
            ));
            return cfg;
        }
    };
    let top = |k: &str| format!("osdp.{k}");
    unknown_keys(
        table,
        &[
            "vendor_code",
            "reply_timeout",
            "poll_interval",
            "digest_interval",
            "revocation_deadline",
            "buses",
        ],
        &top,
        errors,
    );
    if let Some(v) = table.get("vendor_code") {
        cfg.vendor_code = vendor(v, top("vendor_code"), errors).unwrap_or(cfg.vendor_code);
    }
    for (key, slot) in [
        ("reply_timeout", &mut cfg.reply_timeout),
        ("poll_interval", &mut cfg.poll_interval),
        ("digest_interval", &mut cfg.digest_interval),
        ("revocation_deadline", &mut cfg.revocation_deadline),
    ] {
        match table.get(key) {
            None => {}
            Some(Value::String(s)) => match parse_duration(s) {
                Ok(d) if !d.is_zero() => *slot = d,
                Ok(_) => errors.push((top(key), "must be longer than 0".into())),
                Err(e) => errors.push((top(key), e)),
            },
            Some(_) => errors.push((top(key), "must be a duration such as \"200ms\"".into())),
        }
    }
    let buses = match table.get("buses") {
        None => return cfg,
        Some(Value::Array(a)) => a,
        Some(_) => {
            errors.push((
                top("buses"),
                "must be an array of tables ([[osdp.buses]])".into(),
            ));
            return cfg;
        }
    };
    let mut devices: Vec<String> = Vec::new();
    for (b, bus) in buses.iter().enumerate() {
        let at = |k: &str| format!("osdp.buses[{b}].{k}");
        let Some(t) = bus.as_table() else {
            errors.push((format!("osdp.buses[{b}]"), "must be a table".into()));
            continue;
        };
        unknown_keys(t, &["tty", "baud", "panels"], &at, errors);
        let tty = match t.get("tty") {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(base.join(s.trim())),
            Some(_) => {
                errors.push((at("tty"), "must be a path such as \"/dev/ttyUSB0\"".into()));
                None
            }
            None => {
                errors.push((at("tty"), "is required".into()));
                None
            }
        };
        if let Some(tty) = &tty {
            if cfg.buses.iter().any(|x| &x.tty == tty) {
                errors.push((at("tty"), format!("{} is listed twice", tty.display())));
            }
        }
        let baud = match t.get("baud") {
            None => 115_200,
            Some(Value::Integer(i)) if BAUDS.contains(&(*i as u32)) && *i > 0 => *i as u32,
            Some(_) => {
                errors.push((at("baud"), format!("must be one of {BAUDS:?}")));
                115_200
            }
        };
        let mut panels = Vec::new();
        let list = match t.get("panels") {
            Some(Value::Array(a)) => a.as_slice(),
            None => {
                errors.push((at("panels"), "is required ([[osdp.buses.panels]])".into()));
                &[]
            }
            Some(_) => {
                errors.push((at("panels"), "must be an array of tables".into()));
                &[]
            }
        };
        for (p, panel) in list.iter().enumerate() {
            let at = |k: &str| format!("osdp.buses[{b}].panels[{p}].{k}");
            let Some(pt) = panel.as_table() else {
                errors.push((
                    format!("osdp.buses[{b}].panels[{p}]"),
                    "must be a table".into(),
                ));
                continue;
            };
            unknown_keys(
                pt,
                &[
                    "device",
                    "address",
                    "doors",
                    "max_mfg_data",
                    "vendor_code",
                    "commission_until",
                ],
                &at,
                errors,
            );
            let device = match pt.get("device") {
                Some(Value::String(s)) if !s.trim().is_empty() => {
                    let d = s.trim().to_string();
                    if devices.contains(&d) {
                        errors.push((at("device"), format!("{d:?} is listed twice")));
                    }
                    devices.push(d.clone());
                    Some(d)
                }
                Some(_) => {
                    errors.push((at("device"), "must be a non-empty string".into()));
                    None
                }
                None => {
                    errors.push((at("device"), "is required".into()));
                    None
                }
            };
            let address = match pt.get("address") {
                Some(Value::Integer(i)) if (0..=126).contains(i) => {
                    let a = *i as u8;
                    if panels.iter().any(|x: &PanelConfig| x.address == a) {
                        errors.push((at("address"), format!("{a} is used twice on this bus")));
                    }
                    Some(a)
                }
                Some(_) => {
                    errors.push((
                        at("address"),
                        "must be an integer from 0 to 126 (127 is broadcast)".into(),
                    ));
                    None
                }
                None => {
                    errors.push((at("address"), "is required".into()));
                    None
                }
            };
            let doors = match pt.get("doors") {
                Some(Value::Array(a)) if a.len() <= 32 => {
                    let d: Vec<String> = a
                        .iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect();
                    if d.len() != a.len() || d.iter().any(|x| x.trim().is_empty()) {
                        errors.push((at("doors"), "must be a list of door ids".into()));
                    }
                    d
                }
                Some(_) => {
                    errors.push((at("doors"), "must be a list of at most 32 door ids".into()));
                    Vec::new()
                }
                None => {
                    errors.push((
                        at("doors"),
                        "is required: the site's doors on this panel, in bit order".into(),
                    ));
                    Vec::new()
                }
            };
            let max_mfg_data = match pt.get("max_mfg_data") {
                None => None,
                Some(Value::Integer(i)) if (40..=1400).contains(i) => Some(*i as usize),
                Some(_) => {
                    errors.push((
                        at("max_mfg_data"),
                        "must be an integer from 40 to 1400".into(),
                    ));
                    None
                }
            };
            let vendor_code = match pt.get("vendor_code") {
                None => cfg.vendor_code,
                Some(v) => vendor(v, at("vendor_code"), errors).unwrap_or(cfg.vendor_code),
            };
            let commission_until = match pt.get("commission_until") {
                None => None,
                Some(Value::String(s)) => match DateTime::parse_from_rfc3339(s) {
                    Ok(t) => Some(t.with_timezone(&Utc)),
                    Err(_) => {
                        errors.push((
                            at("commission_until"),
                            "must be an RFC 3339 time such as \"2026-12-04T08:00:00Z\"".into(),
                        ));
                        None
                    }
                },
                Some(Value::Datetime(d)) => match DateTime::parse_from_rfc3339(&d.to_string()) {
                    Ok(t) => Some(t.with_timezone(&Utc)),
                    Err(_) => {
                        errors.push((
                            at("commission_until"),
                            "must be a full date and time with offset".into(),
                        ));
                        None
                    }
                },
                Some(_) => {
                    errors.push((at("commission_until"), "must be an RFC 3339 time".into()));
                    None
                }
            };
            if let (Some(device), Some(address)) = (device, address) {
                panels.push(PanelConfig {
                    device,
                    address,
                    vendor_code,
                    doors,
                    max_mfg_data,
                    commission_until,
                });
            }
        }
        if let Some(tty) = tty {
            cfg.buses.push(BusConfig { tty, baud, panels });
        }
    }
    cfg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(s: &str) -> (OsdpConfig, Vec<(String, String)>) {
        let v: Value = toml::from_str(s).unwrap();
        let mut errors = Vec::new();
        let cfg = parse(v.get("osdp"), Path::new("/etc/leasegate"), &mut errors);
        (cfg, errors)
    }

    #[test]
    fn a_bus_with_two_panels_is_read_with_defaults_filled_in() {
        let (cfg, errors) = parse_str(
            r#"
            [osdp]
            reply_timeout = "150ms"
            [[osdp.buses]]
            tty = "/dev/ttyUSB0"
            [[osdp.buses.panels]]
            device = "lobby"
            address = 1
            doors = ["front", "gym"]
            [[osdp.buses.panels]]
            device = "garage"
            address = 2
            doors = ["garage"]
            max_mfg_data = 64
            vendor_code = 0xabcdef
            commission_until = "2026-12-04T08:00:00Z"
            "#,
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(cfg.reply_timeout, Duration::from_millis(150));
        let bus = &cfg.buses[0];
        assert_eq!(
            (bus.tty.to_str().unwrap(), bus.baud),
            ("/dev/ttyUSB0", 115_200)
        );
        assert_eq!(bus.panels[0].vendor_code, DEFAULT_VENDOR_CODE);
        assert_eq!(bus.panels[1].vendor_code, 0xabcdef);
        assert_eq!(bus.panels[1].max_mfg_data, Some(64));
        assert!(bus.panels[1].commission_until.is_some());
        assert_eq!(cfg.panel("garage").unwrap().doors, vec!["garage"]);
    }

    #[test]
    fn every_mistake_in_the_section_is_reported_at_once_with_its_key_path() {
        let (_, errors) = parse_str(
            r#"
            [osdp]
            colour = "red"
            [[osdp.buses]]
            tty = "/dev/ttyUSB0"
            baud = 1200
            [[osdp.buses.panels]]
            device = "lobby"
            address = 127
            doors = ["front"]
            [[osdp.buses.panels]]
            device = "lobby"
            address = 3
            "#,
        );
        let keys: Vec<&str> = errors.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "osdp.colour",
                "osdp.buses[0].baud",
                "osdp.buses[0].panels[0].address",
                "osdp.buses[0].panels[1].device",
                "osdp.buses[0].panels[1].doors",
            ]
        );
    }
}
