//! The `[nuki]` section of the deployment config: which Nuki locks leasegate writes keypad
//! codes to, and how to reach them over BLE.
//!
//! ```toml
//! [nuki]
//! adapter = "hci0"                 # optional; default: the first adapter
//! app_id = 4242                    # how leasegate registers itself on the locks
//! app_name = "leasegate"
//! connect_timeout = "20s"
//! command_timeout = "5s"
//! revocation_deadline = "5m"       # a removal not done by then raises revocation_overdue
//!
//! [[nuki.locks]]
//! device = "lock-3b"               # a device of the site file
//! address = "C2:4B:1A:00:00:01"    # or: name = "Nuki_2A1B3C4D"
//! security_pin_file = "nuki-3b.pin" # the lock's admin PIN (a secret file)
//! pin_width = 16                   # 32 on 5th-generation locks
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Value;

use super::parse_duration;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LockAddress {
    /// A BLE address `AA:BB:CC:DD:EE:FF`.
    Mac(String),
    /// The advertised local name.
    Name(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockConfig {
    pub device: String,
    pub address: LockAddress,
    /// Secret file with the lock's security PIN, resolved against `secrets_base`.
    pub security_pin_file: Option<String>,
    pub pin_width: u8,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NukiConfig {
    pub adapter: Option<String>,
    pub app_id: u32,
    pub app_name: String,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    pub revocation_deadline: Duration,
    /// Where relative secret file names resolve (the config's folder).
    pub secrets_base: PathBuf,
    pub locks: Vec<LockConfig>,
}

impl Default for NukiConfig {
    fn default() -> Self {
        NukiConfig {
            adapter: None,
            app_id: 0x4c47_0001,
            app_name: "leasegate".into(),
            connect_timeout: Duration::from_secs(20),
            command_timeout: Duration::from_secs(5),
            revocation_deadline: Duration::from_secs(300),
            secrets_base: PathBuf::new(),
            locks: Vec::new(),
        }
    }
}

impl NukiConfig {
    /// Problems with lock devices that are not doors' devices in the site file.
    pub fn check_devices<'a>(
        &self,
        site_devices: impl IntoIterator<Item = &'a str> + Clone,
    ) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        for (i, l) in self.locks.iter().enumerate() {
            if !site_devices.clone().into_iter().any(|d| d == l.device) {
                errors.push((
                    format!("nuki.locks[{i}].device"),
                    format!(
                        "{:?} is not the device of any door in the site file",
                        l.device
                    ),
                ));
            }
        }
        errors
    }

    pub fn lock(&self, device: &str) -> Option<&LockConfig> {
        self.locks.iter().find(|l| l.device == device)
    }
}

fn is_mac(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Read the `[nuki]` section; every problem is pushed to `errors` as `(key path, reason)`.
pub(super) fn parse(
    v: Option<&Value>,
    base: &Path,
    errors: &mut Vec<(String, String)>,
) -> NukiConfig {
    let mut cfg = NukiConfig {
        secrets_base: base.to_path_buf(),
        ..NukiConfig::default()
    };
    let table = match v {
        None => return cfg,
        Some(Value::Table(t)) => t,
        Some(other) => {
            errors.push((
                "nuki".into(),
                format!("must be a table, not {}", other.type_str()),
            ));
            return cfg;
        }
    };
    let known = [
        "adapter",
        "app_id",
        "app_name",
        "connect_timeout",
        "command_timeout",
        "revocation_deadline",
        "locks",
    ];
    for key in table.keys() {
        if !known.contains(&key.as_str()) {
            errors.push((format!("nuki.{key}"), "is not a known key".into()));
        }
    }
    let string = |key: &str, errors: &mut Vec<(String, String)>| match table.get(key) {
        None => None,
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
        Some(_) => {
            errors.push((format!("nuki.{key}"), "must be a non-empty string".into()));
            None
        }
    };
    cfg.adapter = string("adapter", errors);
    if let Some(n) = string("app_name", errors) {
        if n.len() > 32 {
            errors.push(("nuki.app_name".into(), "must be at most 32 bytes".into()));
        } else {
            cfg.app_name = n;
        }
    }
    match table.get("app_id") {
        None => {}
        Some(Value::Integer(i)) if (0..=u32::MAX as i64).contains(i) => cfg.app_id = *i as u32,
        Some(_) => errors.push((
            "nuki.app_id".into(),
            "must be an integer from 0 to 4294967295".into(),
        )),
    }
    for (key, slot) in [
        ("connect_timeout", &mut cfg.connect_timeout),
        ("command_timeout", &mut cfg.command_timeout),
        ("revocation_deadline", &mut cfg.revocation_deadline),
    ] {
        match table.get(key) {
            None => {}
            Some(Value::String(s)) => match parse_duration(s) {
                Ok(d) if !d.is_zero() => *slot = d,
                Ok(_) => errors.push((format!("nuki.{key}"), "must be longer than 0".into())),
                Err(e) => errors.push((format!("nuki.{key}"), e.to_string())),
            },
            Some(_) => errors.push((
                format!("nuki.{key}"),
                "must be a duration such as \"20s\"".into(),
            )),
        }
    }
    let locks = match table.get("locks") {
        None => return cfg,
        Some(Value::Array(a)) => a,
        Some(_) => {
            errors.push((
                "nuki.locks".into(),
                "must be an array of tables ([[nuki.locks]])".into(),
            ));
            return cfg;
        }
    };
    for (i, l) in locks.iter().enumerate() {
        let at = |k: &str| format!("nuki.locks[{i}].{k}");
        let Some(t) = l.as_table() else {
            errors.push((format!("nuki.locks[{i}]"), "must be a table".into()));
            continue;
        };
        for key in t.keys() {
            if ![
                "device",
                "address",
                "name",
                "security_pin_file",
                "pin_width",
            ]
            .contains(&key.as_str())
            {
                errors.push((at(key), "is not a known key".into()));
            }
        }
        let s = |k: &str, errors: &mut Vec<(String, String)>| match t.get(k) {
            None => None,
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
            Some(_) => {
                errors.push((at(k), "must be a non-empty string".into()));
                None
            }
        };
        let device = s("device", errors);
        if device.is_none() && !t.contains_key("device") {
            errors.push((at("device"), "is required".into()));
        }
        if let Some(d) = &device {
            if cfg.locks.iter().any(|l| &l.device == d) {
                errors.push((at("device"), format!("{d:?} is listed twice")));
            }
        }
        let address = match (s("address", errors), s("name", errors)) {
            (Some(_), Some(_)) => {
                errors.push((at("address"), "give address or name, not both".into()));
                None
            }
            (Some(a), None) if is_mac(&a) => Some(LockAddress::Mac(a.to_ascii_uppercase())),
            (Some(_), None) => {
                errors.push((at("address"), "must look like AA:BB:CC:DD:EE:FF".into()));
                None
            }
            (None, Some(n)) => Some(LockAddress::Name(n)),
            (None, None) => {
                if !t.contains_key("address") && !t.contains_key("name") {
                    errors.push((at("address"), "address or name is required".into()));
                }
                None
            }
        };
        let pin_width = match t.get("pin_width") {
            None => 16,
            Some(Value::Integer(16)) => 16,
            Some(Value::Integer(32)) => 32,
            Some(_) => {
                errors.push((at("pin_width"), "must be 16 or 32".into()));
                16
            }
        };
        let security_pin_file = s("security_pin_file", errors);
        if let (Some(device), Some(address)) = (device, address) {
            cfg.locks.push(LockConfig {
                device,
                address,
                security_pin_file,
                pin_width,
            });
        }
    }
    cfg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(s: &str) -> (NukiConfig, Vec<(String, String)>) {
        let v: toml::Table = toml::from_str(s).unwrap();
        let mut errors = Vec::new();
        let c = parse(v.get("nuki"), Path::new("/etc/leasegate"), &mut errors);
        (c, errors)
    }

    #[test]
    fn a_full_section_parses() {
        let (c, e) = parse_str(
            r#"
            [nuki]
            adapter = "hci1"
            app_id = 7
            app_name = "gw"
            connect_timeout = "10s"
            [[nuki.locks]]
            device = "lock-1"
            address = "c2:4b:1a:00:00:01"
            security_pin_file = "pin1"
            [[nuki.locks]]
            device = "lock-2"
            name = "Nuki_2A1B3C4D"
            pin_width = 32
            "#,
        );
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(c.adapter.as_deref(), Some("hci1"));
        assert_eq!(c.connect_timeout, Duration::from_secs(10));
        assert_eq!(
            c.locks[0].address,
            LockAddress::Mac("C2:4B:1A:00:00:01".into())
        );
        assert_eq!(
            c.locks[1].address,
            LockAddress::Name("Nuki_2A1B3C4D".into())
        );
        assert_eq!(c.locks[1].pin_width, 32);
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_key_path() {
        let (_, e) = parse_str(
            r#"
            [nuki]
            app_id = -1
            colour = "red"
            [[nuki.locks]]
            address = "nope"
            pin_width = 8
            [[nuki.locks]]
            device = "a"
            address = "C2:4B:1A:00:00:01"
            name = "x"
            "#,
        );
        let keys: Vec<&str> = e.iter().map(|(k, _)| k.as_str()).collect();
        for k in [
            "nuki.app_id",
            "nuki.colour",
            "nuki.locks[0].device",
            "nuki.locks[0].address",
            "nuki.locks[0].pin_width",
            "nuki.locks[1].address",
        ] {
            assert!(keys.contains(&k), "{k} missing from {keys:?}");
        }
    }

    #[test]
    fn a_lock_on_a_device_the_site_does_not_have_is_an_error() {
        let (c, _) = parse_str("[[nuki.locks]]\ndevice = \"x\"\nname = \"n\"\n");
        assert_eq!(c.check_devices(["y"]).len(), 1);
        assert!(c.check_devices(["x"]).is_empty());
    }
}
