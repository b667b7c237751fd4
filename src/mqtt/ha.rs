//! Home Assistant MQTT discovery: sensors for the pending count, the last sync and PMS
//! connectivity, a select for the mode and a button for "sync now", all available while
//! `bridge/state` says online.
//!
//! The select and the button publish API requests as the MQTT user `homeassistant`, so the
//! broker must know that user (see `config/mosquitto/`); their transaction ids come from
//! Home Assistant's clock, so a press is one request.

use serde_json::{json, Value};

use super::api::Topics;
use crate::config::MqttConfig;

/// The actor Home Assistant's commands are published as.
pub const HA_ACTOR: &str = "homeassistant";

pub struct Discovery {
    prefix: String,
    node: String,
    site: String,
}

impl Discovery {
    pub fn new(cfg: &MqttConfig, site: &str) -> Discovery {
        Discovery {
            prefix: cfg.discovery_prefix.clone(),
            node: format!("leasegate_{}", site.replace(['.', '-'], "_")),
            site: site.to_string(),
        }
    }

    /// `(topic, retained payload)` for every entity.
    pub fn configs(&self, topics: &Topics) -> Vec<(String, String)> {
        let device = json!({
            "identifiers": [self.node],
            "name": format!("leasegate {}", self.site),
            "manufacturer": "leasegate",
            "model": "lease-driven access gateway",
            "sw_version": env!("CARGO_PKG_VERSION"),
        });
        let availability = json!([{
            "topic": topics.at("bridge/state"),
            "value_template": "{{ value_json.state }}",
            "payload_available": "online",
            "payload_not_available": "offline",
        }]);
        let entity = |component: &str, object: &str, mut v: Value| {
            v["unique_id"] = json!(format!("{}_{object}", self.node));
            v["object_id"] = json!(format!("{}_{object}", self.node));
            v["device"] = device.clone();
            v["availability"] = availability.clone();
            (
                format!("{}/{component}/{}/{object}/config", self.prefix, self.node),
                v.to_string(),
            )
        };
        let request = |command: &str| topics.at(&format!("request/{HA_ACTOR}/{command}"));
        vec![
            entity(
                "sensor",
                "pending",
                json!({
                    "name": "Pending suggestions",
                    "state_topic": topics.at("status/pending"),
                    "value_template": "{{ value_json.count }}",
                    "state_class": "measurement",
                    "icon": "mdi:account-key",
                }),
            ),
            entity(
                "sensor",
                "last_sync",
                json!({
                    "name": "Last PMS sync",
                    "state_topic": topics.at("status/sync"),
                    "value_template": "{{ value_json.last_sync }}",
                    "device_class": "timestamp",
                }),
            ),
            entity(
                "binary_sensor",
                "pms_connectivity",
                json!({
                    "name": "PMS connectivity",
                    "state_topic": topics.at("status/sync"),
                    "value_template": "{{ 'ON' if value_json.pms_reachable else 'OFF' }}",
                    "device_class": "connectivity",
                }),
            ),
            entity(
                "select",
                "mode",
                json!({
                    "name": "Access mode",
                    "state_topic": topics.at("bridge/info"),
                    "value_template": "{{ value_json.mode }}",
                    "command_topic": request("mode/set"),
                    "command_template":
                        "{\"transaction\":\"ha-{{ now().timestamp() | int }}-mode\",\"mode\":\"{{ value }}\"}",
                    "options": ["approval_required", "automatic"],
                }),
            ),
            entity(
                "button",
                "sync_now",
                json!({
                    "name": "Sync now",
                    "command_topic": request("sync/now"),
                    "command_template":
                        "{\"transaction\":\"ha-{{ now().timestamp() | int }}-sync\"}",
                    "icon": "mdi:sync",
                }),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entity_is_available_only_while_the_bridge_is_online() {
        let cfg = crate::config::parse(
            "[site]\nid='maple-court'\ntimezone='UTC'\n[store]\npath='s'\n[pms]\nkind='file'\npath='r.json'\n[mqtt]\nurl='mqtt://127.0.0.1'\n",
            std::path::Path::new("/x/leasegate.toml"),
        )
        .unwrap();
        let m = cfg.mqtt.unwrap();
        let topics = Topics::new("leasegate", "maple-court");
        let configs = Discovery::new(&m, "maple-court").configs(&topics);
        assert_eq!(configs.len(), 5);
        for (topic, payload) in configs {
            assert!(topic.starts_with("homeassistant/"), "{topic}");
            let v: Value = serde_json::from_str(&payload).unwrap();
            assert_eq!(
                v["availability"][0]["topic"],
                "leasegate/maple-court/bridge/state"
            );
        }
    }
}
