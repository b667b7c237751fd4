//! The deployment config (TOML), validated before any I/O.
//!
//! [`parse`] is pure: text in, a [`Config`] or every problem at once out, each with the file,
//! the key and the reason. [`load`] reads the file, parses it, then checks what the config
//! points at (the site file, the roster file) and reports those problems in the same list.
//! Bad config exits 64 (EX_USAGE) in `main`.

mod duration;
mod mqtt;
pub mod nuki;
pub mod osdp;
mod secret;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::{Table, Value};

pub use duration::parse_duration;
pub use mqtt::{MqttConfig, MqttUrl};
pub use secret::{read_secret, Secret, SecretError};

use crate::core::{site, EvictionPolicy, Guard, Mode, Policy, Site};

#[derive(Clone, Debug)]
pub struct Config {
    /// The config file itself; relative paths inside it resolve against its folder.
    pub file: PathBuf,
    pub site: SiteConfig,
    pub store: StoreConfig,
    pub access: AccessConfig,
    pub pms: PmsConfig,
    /// The MQTT API; `None` when the config has no `[mqtt]` section.
    pub mqtt: Option<MqttConfig>,
    pub osdp: osdp::OsdpConfig,
    pub nuki: nuki::NukiConfig,
}

#[derive(Clone, Debug)]
pub struct SiteConfig {
    pub id: String,
    pub timezone: chrono_tz::Tz,
    pub site_file: Option<PathBuf>,
}

#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub path: PathBuf,
    /// The key that seals device keys at rest (32 random bytes, made on first start).
    /// Default: `<path>.key`, beside the store; point it at a systemd credential to keep it
    /// off the data disk.
    pub key_file: PathBuf,
}

#[derive(Clone, Debug)]
pub struct AccessConfig {
    /// The mode a new store starts in; afterwards the mode lives in the store.
    pub mode: Mode,
    pub policy: Policy,
}

#[derive(Clone, Debug)]
pub struct PmsConfig {
    pub source: PmsSource,
    pub poll_interval: Duration,
    /// How often a complete roster is fetched; polls in between fetch only changes where
    /// the vendor supports it.
    pub full_sync_every: Duration,
    /// Where relative secret file names resolve (after `$CREDENTIALS_DIRECTORY`).
    pub secrets_base: PathBuf,
}

#[derive(Clone, Debug, PartialEq)]
pub enum PmsSource {
    /// A normalized roster file, for properties without an API and for the demo.
    File { path: PathBuf },
    Buildium {
        http: crate::pms::http::HttpSettings,
        property_ids: Vec<String>,
        client_id_file: String,
        client_secret_file: String,
    },
    Entrata {
        http: crate::pms::http::HttpSettings,
        property_ids: Vec<String>,
        username_file: String,
        password_file: String,
    },
    RentManager {
        http: crate::pms::http::HttpSettings,
        property_ids: Vec<String>,
        location_id: String,
        username_file: String,
        password_file: String,
    },
}

impl PmsSource {
    pub fn kind(&self) -> &'static str {
        match self {
            PmsSource::File { .. } => "file",
            PmsSource::Buildium { .. } => "buildium",
            PmsSource::Entrata { .. } => "entrata",
            PmsSource::RentManager { .. } => "rentmanager",
        }
    }

    /// The secret files this source reads, as `(config key, file name)`.
    pub fn secret_files(&self) -> Vec<(&'static str, &str)> {
        match self {
            PmsSource::File { .. } => vec![],
            PmsSource::Buildium {
                client_id_file,
                client_secret_file,
                ..
            } => vec![
                ("pms.client_id_file", client_id_file),
                ("pms.client_secret_file", client_secret_file),
            ],
            PmsSource::Entrata {
                username_file,
                password_file,
                ..
            }
            | PmsSource::RentManager {
                username_file,
                password_file,
                ..
            } => vec![
                ("pms.username_file", username_file),
                ("pms.password_file", password_file),
            ],
        }
    }

    pub fn http(&self) -> Option<&crate::pms::http::HttpSettings> {
        match self {
            PmsSource::File { .. } => None,
            PmsSource::Buildium { http, .. }
            | PmsSource::Entrata { http, .. }
            | PmsSource::RentManager { http, .. } => Some(http),
        }
    }
}

/// One problem: which file, which key, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub key: String,
    pub reason: String,
}

/// Every problem found, in the order found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            if e.key.is_empty() {
                write!(f, "{}: {}", e.file.display(), e.reason)?;
            } else {
                write!(f, "{}: {}: {}", e.file.display(), e.key, e.reason)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

pub const PMS_KINDS: &[&str] = &["file", "buildium", "entrata", "rentmanager"];

/// Collects problems while a table is read, and flags keys nobody asked for.
struct Reader {
    errors: Vec<(String, String)>,
}

struct Section<'t> {
    path: String,
    table: Option<&'t Table>,
    allowed: Vec<&'static str>,
    /// The keys this section may hold are unknown (say, a PMS kind this build lacks): flag
    /// only inline secrets, not every key as unknown.
    lenient: bool,
}

impl Reader {
    fn err(&mut self, key: impl Into<String>, reason: impl Into<String>) {
        self.errors.push((key.into(), reason.into()));
    }

    fn section<'t>(&mut self, root: &'t Table, name: &str, required: bool) -> Section<'t> {
        let table = match root.get(name) {
            Some(Value::Table(t)) => Some(t),
            Some(other) => {
                self.err(name, format!("must be a table, not {}", other.type_str()));
                None
            }
            None => {
                if required {
                    self.err(name, "section is missing");
                }
                None
            }
        };
        Section {
            path: name.to_string(),
            table,
            allowed: Vec::new(),
            lenient: false,
        }
    }

    fn sub<'t>(&mut self, parent: &mut Section<'t>, name: &'static str) -> Section<'t> {
        parent.allowed.push(name);
        let path = format!("{}.{name}", parent.path);
        let table = match parent.table.and_then(|t| t.get(name)) {
            Some(Value::Table(t)) => Some(t),
            Some(other) => {
                self.err(&path, format!("must be a table, not {}", other.type_str()));
                None
            }
            None => None,
        };
        Section {
            path,
            table,
            allowed: Vec::new(),
            lenient: false,
        }
    }

    fn value<'t>(&mut self, s: &mut Section<'t>, key: &'static str) -> Option<&'t Value> {
        s.allowed.push(key);
        s.table.and_then(|t| t.get(key))
    }

    fn string(&mut self, s: &mut Section, key: &'static str, required: bool) -> Option<String> {
        let path = format!("{}.{key}", s.path);
        match self.value(s, key) {
            Some(Value::String(v)) if v.trim().is_empty() => {
                self.err(path, "must not be empty");
                None
            }
            Some(Value::String(v)) => Some(v.clone()),
            Some(other) => {
                self.err(path, format!("must be a string, not {}", other.type_str()));
                None
            }
            None => {
                if required && s.table.is_some() {
                    self.err(path, "is required");
                }
                None
            }
        }
    }

    fn number(&mut self, s: &mut Section, key: &'static str) -> Option<f64> {
        let path = format!("{}.{key}", s.path);
        match self.value(s, key) {
            Some(Value::Integer(i)) => Some(*i as f64),
            Some(Value::Float(f)) => Some(*f),
            Some(other) => {
                self.err(path, format!("must be a number, not {}", other.type_str()));
                None
            }
            None => None,
        }
    }

    fn duration(&mut self, s: &mut Section, key: &'static str, default: Duration) -> Duration {
        let path = format!("{}.{key}", s.path);
        match self.string(s, key, false) {
            Some(text) => match parse_duration(&text) {
                Ok(d) => d,
                Err(reason) => {
                    self.err(path, reason);
                    default
                }
            },
            None => default,
        }
    }

    /// A non-empty list of strings (integers are accepted and kept as written).
    fn string_list(&mut self, s: &mut Section, key: &'static str) -> Option<Vec<String>> {
        let path = format!("{}.{key}", s.path);
        match self.value(s, key) {
            Some(Value::Array(items)) if !items.is_empty() => {
                let mut out = Vec::new();
                for (i, v) in items.iter().enumerate() {
                    match v {
                        Value::String(x) if !x.trim().is_empty() => out.push(x.clone()),
                        Value::Integer(n) => out.push(n.to_string()),
                        other => {
                            self.err(
                                format!("{path}[{i}]"),
                                format!("must be a non-empty string, not {}", other.type_str()),
                            );
                            return None;
                        }
                    }
                }
                Some(out)
            }
            Some(Value::Array(_)) => {
                self.err(path, "must name at least one");
                None
            }
            Some(other) => {
                self.err(path, format!("must be a list, not {}", other.type_str()));
                None
            }
            None => {
                self.err(path, "is required");
                None
            }
        }
    }

    fn path(
        &mut self,
        s: &mut Section,
        key: &'static str,
        base: &Path,
        required: bool,
    ) -> Option<PathBuf> {
        self.string(s, key, required).map(|p| base.join(p))
    }

    /// Report keys that no reader asked for. Names that look like secrets get a hint: they
    /// belong in a file, never inline.
    fn finish(&mut self, s: Section) {
        let Some(t) = s.table else { return };
        for key in t.keys() {
            if s.allowed.contains(&key.as_str()) {
                continue;
            }
            let path = format!("{}.{key}", s.path);
            let lower = key.to_ascii_lowercase();
            let secretish = [
                "secret",
                "password",
                "token",
                "api_key",
                "apikey",
                "client_id",
            ]
            .iter()
            .any(|w| lower.contains(w));
            if secretish && !lower.ends_with("_file") {
                self.err(
                    path,
                    format!(
                        "secrets are never written inline: put the value in a file (or a systemd \
                         credential) and name it with `{key}_file`"
                    ),
                );
            } else if !s.lenient {
                self.err(path, "unknown key");
            }
        }
    }
}

/// Parse and validate a deployment config. Pure: reads nothing but `text`.
pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigErrors> {
    let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let wrap = |errors: Vec<(String, String)>| {
        ConfigErrors(
            errors
                .into_iter()
                .map(|(key, reason)| ConfigError {
                    file: file.to_path_buf(),
                    key,
                    reason,
                })
                .collect(),
        )
    };
    let root: Table = match text.parse::<Table>() {
        Ok(t) => t,
        Err(e) => return Err(wrap(vec![(String::new(), toml_error(&e))])),
    };
    let mut r = Reader { errors: Vec::new() };

    let mut s = r.section(&root, "site", true);
    let id = r.string(&mut s, "id", true);
    if let Some(id) = &id {
        if !site::valid_id(id) {
            r.err(
                "site.id",
                "must be 1-64 characters of a-z, A-Z, 0-9, '-', '_' or '.'",
            );
        }
    }
    let timezone = match r.string(&mut s, "timezone", true) {
        Some(tz) => match tz.parse::<chrono_tz::Tz>() {
            Ok(tz) => Some(tz),
            Err(_) => {
                r.err(
                    "site.timezone",
                    format!("{tz:?} is not an IANA time zone (for example \"America/Denver\")"),
                );
                None
            }
        },
        None => None,
    };
    let site_file = r.path(&mut s, "site_file", &base, false);
    r.finish(s);

    let mut s = r.section(&root, "store", true);
    let store_path = r.path(&mut s, "path", &base, true);
    let key_file = r.path(&mut s, "key_file", &base, false);
    r.finish(s);

    let mut s = r.section(&root, "access", false);
    let mode = match r.string(&mut s, "mode", false) {
        Some(m) => Mode::parse(&m).unwrap_or_else(|| {
            r.err(
                "access.mode",
                format!("{m:?} is not a mode: use \"approval_required\" or \"automatic\""),
            );
            Mode::default()
        }),
        None => Mode::default(),
    };
    let mut policy = Policy::default();
    let delay = r.duration(&mut s, "activation_delay", Duration::from_secs(15 * 60));
    if delay > Duration::from_secs(30 * 86_400) {
        r.err("access.activation_delay", "must be at most 30d");
    }
    policy.activation_delay = chrono::Duration::from_std(delay).unwrap_or(policy.activation_delay);
    if let Some(e) = r.string(&mut s, "eviction", false) {
        policy.eviction = match e.as_str() {
            "hold" => EvictionPolicy::Hold,
            "revoke" => EvictionPolicy::Revoke,
            "keep" => EvictionPolicy::Keep,
            _ => {
                r.err(
                    "access.eviction",
                    format!("{e:?} is not a policy: use \"hold\", \"revoke\" or \"keep\""),
                );
                EvictionPolicy::Hold
            }
        };
    }
    let mut g = r.sub(&mut s, "guard");
    let mut guard = Guard::default();
    if let Some(n) = r.number(&mut g, "min_residents") {
        if n < 0.0 || n.fract() != 0.0 {
            r.err(
                "access.guard.min_residents",
                "must be a whole number of 0 or more",
            );
        } else {
            guard.min = n as usize;
        }
    }
    if let Some(p) = r.number(&mut g, "percent") {
        if !(0.0..=100.0).contains(&p) {
            r.err("access.guard.percent", "must be between 0 and 100");
        } else {
            guard.percent = p;
        }
    }
    policy.guard = guard;
    r.finish(g);
    r.finish(s);

    let mut s = r.section(&root, "pms", true);
    let kind = r.string(&mut s, "kind", true);
    let poll_interval = r.duration(&mut s, "poll_interval", Duration::from_secs(5 * 60));
    if poll_interval < Duration::from_secs(10) {
        r.err(
            "pms.poll_interval",
            "must be at least 10s: a PMS is not to be hammered",
        );
    } else if poll_interval > Duration::from_secs(86_400) {
        r.err(
            "pms.poll_interval",
            "must be at most 1d: access must follow the lease",
        );
    }
    let full_sync_every = r.duration(&mut s, "full_sync_every", Duration::from_secs(3600));
    if full_sync_every < poll_interval {
        r.err("pms.full_sync_every", "must be at least pms.poll_interval");
    }
    let source = match kind.as_deref() {
        Some("file") => r
            .path(&mut s, "path", &base, true)
            .map(|path| PmsSource::File { path }),
        Some(k @ ("buildium" | "entrata" | "rentmanager")) => {
            let http = http_settings(&mut r, &mut s, &base);
            let property_ids = r.string_list(&mut s, "property_ids");
            let mut secret = |r: &mut Reader, key: &'static str| r.string(&mut s, key, true);
            match k {
                "buildium" => {
                    let id = secret(&mut r, "client_id_file");
                    let secret_file = secret(&mut r, "client_secret_file");
                    match (http, property_ids, id, secret_file) {
                        (
                            Some(http),
                            Some(property_ids),
                            Some(client_id_file),
                            Some(client_secret_file),
                        ) => Some(PmsSource::Buildium {
                            http,
                            property_ids,
                            client_id_file,
                            client_secret_file,
                        }),
                        _ => None,
                    }
                }
                "entrata" => {
                    let user = secret(&mut r, "username_file");
                    let pass = secret(&mut r, "password_file");
                    match (http, property_ids, user, pass) {
                        (
                            Some(http),
                            Some(property_ids),
                            Some(username_file),
                            Some(password_file),
                        ) => Some(PmsSource::Entrata {
                            http,
                            property_ids,
                            username_file,
                            password_file,
                        }),
                        _ => None,
                    }
                }
                _ => {
                    let user = secret(&mut r, "username_file");
                    let pass = secret(&mut r, "password_file");
                    let location = r.string(&mut s, "location_id", true);
                    match (http, property_ids, user, pass, location) {
                        (
                            Some(http),
                            Some(property_ids),
                            Some(username_file),
                            Some(password_file),
                            Some(location_id),
                        ) => Some(PmsSource::RentManager {
                            http,
                            property_ids,
                            location_id,
                            username_file,
                            password_file,
                        }),
                        _ => None,
                    }
                }
            }
        }
        Some(other) => {
            s.lenient = true;
            r.err(
                "pms.kind",
                format!(
                    "{other:?} is not a PMS kind this build supports (supported: {})",
                    PMS_KINDS.join(", ")
                ),
            );
            None
        }
        None => {
            s.lenient = true;
            None
        }
    };
    r.finish(s);

    let mqtt = mqtt::parse(&mut r, &root, &base);
    let osdp = osdp::parse(root.get("osdp"), &base, &mut r.errors);
    let nuki = nuki::parse(root.get("nuki"), &base, &mut r.errors);

    for key in root.keys() {
        if !["site", "store", "access", "pms", "mqtt", "osdp", "nuki"].contains(&key.as_str()) {
            r.err(key.clone(), "unknown section");
        }
    }

    match (id, timezone, store_path, source, r.errors.is_empty()) {
        (Some(id), Some(timezone), Some(store_path), Some(source), true) => Ok(Config {
            file: file.to_path_buf(),
            site: SiteConfig {
                id,
                timezone,
                site_file,
            },
            store: StoreConfig {
                key_file: key_file.unwrap_or_else(|| {
                    let mut k = store_path.clone().into_os_string();
                    k.push(".key");
                    PathBuf::from(k)
                }),
                path: store_path,
            },
            access: AccessConfig { mode, policy },
            pms: PmsConfig {
                source,
                poll_interval,
                full_sync_every,
                secrets_base: base.clone(),
            },
            mqtt,
            osdp,
            nuki,
        }),
        _ => Err(wrap(r.errors)),
    }
}

/// `base_url`, `timeout` and `ca_file`, shared by the HTTPS adapters.
fn http_settings(
    r: &mut Reader,
    s: &mut Section,
    base: &Path,
) -> Option<crate::pms::http::HttpSettings> {
    let url = r.string(s, "base_url", true);
    let timeout = r.duration(s, "timeout", Duration::from_secs(30));
    if timeout < Duration::from_secs(1) || timeout > Duration::from_secs(300) {
        r.err("pms.timeout", "must be between 1s and 5m");
    }
    let ca_file = r.path(s, "ca_file", base, false);
    let url = url?;
    if !url.starts_with("https://") || url.len() <= "https://".len() {
        r.err(
            "pms.base_url",
            format!("{url:?} must be an https:// URL: lease data never travels in the clear"),
        );
        return None;
    }
    Some(crate::pms::http::HttpSettings {
        base_url: url,
        timeout,
        ca_file,
    })
}

fn toml_error(e: &toml::de::Error) -> String {
    // toml's first line names the line and column; its message says what is wrong. Keep both,
    // on one line, and leave out the quoted source line (it may hold a value that is secret).
    let position = e
        .to_string()
        .lines()
        .next()
        .unwrap_or("invalid TOML")
        .to_string();
    let message = e
        .message()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    match (e.span(), message.is_empty()) {
        (_, true) => position,
        (None, false) => message,
        (Some(_), false) => format!("{position}: {message}"),
    }
}

/// Read and validate a config file, then check the files it names. Every problem is
/// reported in one list.
pub fn load(file: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: file.to_path_buf(),
            key: String::new(),
            reason: format!("cannot read the config: {e}"),
        }])
    })?;
    let parsed = parse(&text, file);
    // The files the config names are checked even when the config itself has errors, so
    // that every problem is reported in one go.
    let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let (site_file, roster) = match &parsed {
        Ok(cfg) => (
            cfg.site.site_file.clone(),
            match &cfg.pms.source {
                PmsSource::File { path } => Some(path.clone()),
                _ => None,
            },
        ),
        Err(_) => named_files(&text, &base),
    };
    let mut errors = match &parsed {
        Ok(_) => Vec::new(),
        Err(e) => e.0.clone(),
    };
    if let Some(sf) = &site_file {
        if !sf.is_file() {
            errors.push(ConfigError {
                file: file.to_path_buf(),
                key: "site.site_file".into(),
                reason: format!("site file {} does not exist", sf.display()),
            });
        } else {
            match load_site(sf) {
                Err(e) => errors.extend(e.0),
                // Devices named in [nuki] must be devices of the site.
                Ok(site) => {
                    if let Ok(cfg) = &parsed {
                        let devices: Vec<&str> = site
                            .doors
                            .iter()
                            .filter_map(|d| d.device.as_deref())
                            .collect();
                        let problems = cfg
                            .nuki
                            .check_devices(devices.iter().copied())
                            .into_iter()
                            .chain(cfg.osdp.check_devices(devices.iter().copied()));
                        for (key, reason) in problems {
                            errors.push(ConfigError {
                                file: file.to_path_buf(),
                                key,
                                reason,
                            });
                        }
                    }
                }
            }
        }
    }
    if let Ok(cfg) = &parsed {
        for (key, name) in cfg.pms.source.secret_files() {
            if let Err(e) = read_secret(&cfg.pms.secrets_base, name) {
                errors.push(ConfigError {
                    file: file.to_path_buf(),
                    key: key.into(),
                    reason: e.to_string(),
                });
            }
        }
        if let Some(m) = &cfg.mqtt {
            if let Some(name) = &m.password_file {
                if let Err(e) = read_secret(&m.secrets_base, name) {
                    errors.push(ConfigError {
                        file: file.to_path_buf(),
                        key: "mqtt.password_file".into(),
                        reason: e.to_string(),
                    });
                }
            }
            if let Some(ca) = &m.ca_file {
                if !ca.is_file() {
                    errors.push(ConfigError {
                        file: file.to_path_buf(),
                        key: "mqtt.ca_file".into(),
                        reason: format!("{} does not exist", ca.display()),
                    });
                }
            }
        }
        if let Some(http) = cfg.pms.source.http() {
            if let Some(ca) = &http.ca_file {
                if let Err(e) = crate::pms::http::Http::new(http) {
                    errors.push(ConfigError {
                        file: file.to_path_buf(),
                        key: "pms.ca_file".into(),
                        reason: format!("{} ({e})", ca.display()),
                    });
                }
            }
        }
    }
    if let Some(path) = &roster {
        if !path.is_file() {
            errors.push(ConfigError {
                file: file.to_path_buf(),
                key: "pms.path".into(),
                reason: format!("roster file {} does not exist", path.display()),
            });
        }
    }
    match parsed {
        Ok(cfg) if errors.is_empty() => Ok(cfg),
        _ => Err(ConfigErrors(errors)),
    }
}

/// The site file and `file` roster a config names, read leniently from a config that did
/// not validate.
fn named_files(text: &str, base: &Path) -> (Option<PathBuf>, Option<PathBuf>) {
    let Ok(root) = text.parse::<Table>() else {
        return (None, None);
    };
    let get = |section: &str, key: &str| {
        root.get(section)
            .and_then(|s| s.get(key))
            .and_then(Value::as_str)
            .filter(|v| !v.trim().is_empty())
            .map(|v| base.join(v))
    };
    let file_kind = root
        .get("pms")
        .and_then(|p| p.get("kind"))
        .and_then(Value::as_str)
        == Some("file");
    (
        get("site", "site_file"),
        if file_kind { get("pms", "path") } else { None },
    )
}

/// Parse site data from TOML text (the site file format, also `export`'s output).
pub fn parse_site(text: &str, file: &Path) -> Result<Site, ConfigErrors> {
    let one = |key: String, reason: String| ConfigError {
        file: file.to_path_buf(),
        key,
        reason,
    };
    let site: Site =
        toml::from_str(text).map_err(|e| ConfigErrors(vec![one(String::new(), toml_error(&e))]))?;
    let problems = site.problems();
    if problems.is_empty() {
        Ok(site)
    } else {
        Err(ConfigErrors(
            problems.into_iter().map(|(k, r)| one(k, r)).collect(),
        ))
    }
}

pub fn load_site(file: &Path) -> Result<Site, ConfigErrors> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: file.to_path_buf(),
            key: String::new(),
            reason: format!("cannot read the site file: {e}"),
        }])
    })?;
    parse_site(&text, file)
}

/// Site data as TOML, in the site file format.
pub fn site_to_toml(site: &Site) -> String {
    toml::to_string(site).expect("site data serializes to TOML")
}
