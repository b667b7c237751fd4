//! The demo's embedded broker: rumqttd on loopback, MQTT 5, no persistence and no auth.
//! Production and the tests use Mosquitto (`config/mosquitto/`).

use super::MqttError;
use crate::config::MqttUrl;

/// Start rumqttd on `url` in a thread of its own; it lives as long as the process.
pub fn start(url: &MqttUrl) -> Result<(), MqttError> {
    let addr = match url.host.as_str() {
        "localhost" => format!("127.0.0.1:{}", url.port),
        h if h.contains(':') => format!("[{h}]:{}", url.port),
        h => format!("{h}:{}", url.port),
    };
    // Fail here, with a clear message, rather than inside the broker's thread.
    std::net::TcpListener::bind(&addr).map_err(|e| {
        MqttError::Broker(format!(
            "cannot listen on {addr} ({e}); is another broker using that port? Pick another \
             port in mqtt.url"
        ))
    })?;
    let text = format!(
        r#"
id = 0
[router]
id = 0
max_connections = 64
max_outgoing_packet_count = 200
max_segment_size = 10485760
max_segment_count = 10

[v5.1]
name = "leasegate-demo"
listen = "{addr}"
next_connection_delay_ms = 1
[v5.1.connections]
connection_timeout_ms = 60000
max_payload_size = {max}
max_inflight_count = 100
"#,
        max = super::client::MAX_PACKET
    );
    let config: rumqttd::Config =
        toml::from_str(&text).map_err(|e| MqttError::Broker(e.to_string()))?;
    let mut broker = rumqttd::Broker::new(config);
    std::thread::Builder::new()
        .name("rumqttd".into())
        .spawn(move || {
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "the embedded broker stopped");
            }
        })
        .map_err(|e| MqttError::Broker(e.to_string()))?;
    tracing::info!(listen = %addr, "embedded MQTT broker (demo only) started");
    Ok(())
}
