//! The `[mqtt]` section: the broker, the topic root, and the demo's embedded broker.

use std::path::{Path, PathBuf};

use toml::{Table, Value};

use super::Reader;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MqttUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl MqttUrl {
    /// `mqtt://host[:port]` (1883) or `mqtts://host[:port]` (8883).
    pub fn parse(text: &str) -> Result<MqttUrl, String> {
        let (tls, rest) = if let Some(r) = text.strip_prefix("mqtts://") {
            (true, r)
        } else if let Some(r) = text.strip_prefix("mqtt://") {
            (false, r)
        } else {
            return Err(format!(
                "{text:?} is not an MQTT URL: use mqtt://host:port or mqtts://host:port"
            ));
        };
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') || rest.contains('@') {
            return Err(
                "must be scheme://host:port only (credentials go in username and \
                        password_file)"
                    .into(),
            );
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                let port = p
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| format!("{p:?} is not a port (1-65535)"))?;
                (h.trim_start_matches('[').trim_end_matches(']'), port)
            }
            _ => (rest, if tls { 8883 } else { 1883 }),
        };
        if host.is_empty() {
            return Err("has no host".into());
        }
        Ok(MqttUrl {
            tls,
            host: host.to_string(),
            port,
        })
    }
}

impl std::fmt::Display for MqttUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        write!(f, "{scheme}://{}:{}", self.host, self.port)
    }
}

#[derive(Clone, Debug)]
pub struct MqttConfig {
    pub url: MqttUrl,
    /// Topics are `<base_topic>/<site id>/...`.
    pub base_topic: String,
    pub client_id: String,
    pub username: Option<String>,
    /// A file name, resolved like every secret (`$CREDENTIALS_DIRECTORY`, then the config's
    /// folder).
    pub password_file: Option<String>,
    pub ca_file: Option<PathBuf>,
    /// Run rumqttd on `url` (loopback only): for the demo, never production.
    pub embedded: bool,
    /// Publish Home Assistant MQTT discovery.
    pub home_assistant: bool,
    pub discovery_prefix: String,
    pub secrets_base: PathBuf,
}

fn topic_ok(t: &str) -> bool {
    !t.is_empty()
        && !t.starts_with('/')
        && !t.ends_with('/')
        && !t.contains("//")
        && !t.contains(['+', '#', '\0'])
        && t.len() <= 128
}

pub(super) fn parse(r: &mut Reader, root: &Table, base: &Path) -> Option<MqttConfig> {
    if !root.contains_key("mqtt") {
        return None;
    }
    let mut s = r.section(root, "mqtt", false);
    s.table?;
    let url = r
        .string(&mut s, "url", true)
        .and_then(|u| match MqttUrl::parse(&u) {
            Ok(url) => Some(url),
            Err(e) => {
                r.err("mqtt.url", e);
                None
            }
        });
    let base_topic = r
        .string(&mut s, "base_topic", false)
        .unwrap_or_else(|| "leasegate".into());
    if !topic_ok(&base_topic) {
        r.err(
            "mqtt.base_topic",
            "must be a topic without wildcards, empty levels or leading/trailing '/'",
        );
    }
    let client_id = r.string(&mut s, "client_id", false);
    if let Some(c) = &client_id {
        if c.len() > 64 || !c.chars().all(|ch| ch.is_ascii_graphic()) {
            r.err("mqtt.client_id", "must be 1-64 printable ASCII characters");
        }
    }
    let username = r.string(&mut s, "username", false);
    let password_file = r.string(&mut s, "password_file", false);
    if password_file.is_some() && username.is_none() {
        r.err("mqtt.password_file", "needs mqtt.username");
    }
    let ca_file = r.path(&mut s, "ca_file", base, false);
    let embedded = bool_key(r, &mut s, "embedded", false);
    let home_assistant = bool_key(r, &mut s, "home_assistant", true);
    let discovery_prefix = r
        .string(&mut s, "discovery_prefix", false)
        .unwrap_or_else(|| "homeassistant".into());
    if !topic_ok(&discovery_prefix) {
        r.err("mqtt.discovery_prefix", "must be a topic without wildcards");
    }
    if let Some(u) = &url {
        if ca_file.is_some() && !u.tls {
            r.err("mqtt.ca_file", "is only used with an mqtts:// url");
        }
        if embedded && u.tls {
            r.err(
                "mqtt.embedded",
                "the embedded broker speaks plain mqtt:// only",
            );
        }
        if embedded && !is_loopback(&u.host) {
            r.err(
                "mqtt.embedded",
                "the embedded broker listens on loopback only (127.0.0.1, ::1 or localhost)",
            );
        }
    }
    r.finish(s);
    let url = url?;
    Some(MqttConfig {
        client_id: client_id.unwrap_or_else(|| "leasegate".into()),
        url,
        base_topic,
        username,
        password_file,
        ca_file,
        embedded,
        home_assistant,
        discovery_prefix,
        secrets_base: base.to_path_buf(),
    })
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn bool_key(r: &mut Reader, s: &mut super::Section, key: &'static str, default: bool) -> bool {
    let path = format!("{}.{key}", s.path);
    match r.value(s, key) {
        Some(Value::Boolean(b)) => *b,
        Some(other) => {
            r.err(
                path,
                format!("must be true or false, not {}", other.type_str()),
            );
            default
        }
        None => default,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_take_default_ports_by_scheme() {
        assert_eq!(MqttUrl::parse("mqtt://h").unwrap().port, 1883);
        assert_eq!(MqttUrl::parse("mqtts://h").unwrap().port, 8883);
        let u = MqttUrl::parse("mqtt://127.0.0.1:18830").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.tls),
            ("127.0.0.1", 18830, false)
        );
        assert!(MqttUrl::parse("http://h").is_err());
        assert!(MqttUrl::parse("mqtt://user:pw@h:1").is_err());
        assert!(MqttUrl::parse("mqtt://h:0").is_err());
    }
}
