//! The MQTT API (DESIGN §3; contract in `protocols/mqtt-api/`).
//!
//! - [`api`]: pure: topics, request parsing into typed commands, replies and error codes.
//! - [`service`]: commands run against the gateway; a state-changing request commits its
//!   reply with its change, so a repeated transaction replays the first reply.
//! - [`client`]: the connection. One task owns rumqttc's event loop and does nothing else
//!   (never `publish().await` there); it reconnects with jittered backoff. A second task
//!   resubscribes and republishes the retained state on every ConnAck, answers requests
//!   (acknowledged only once answered, so a crash means redelivery, which the transaction
//!   makes harmless), and keeps retained topics and events in step with the gateway.
//! - [`ha`]: Home Assistant discovery.
//! - [`broker`]: the embedded rumqttd for the demo.

pub mod api;
pub mod broker;
pub mod client;
pub mod ha;
pub mod service;

pub use api::Topics;
pub use client::{run, Inputs};
pub use service::{Api, LockPairing};

#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    #[error("cannot read the MQTT password file: {0}")]
    Password(#[from] crate::config::SecretError),
    #[error("cannot read the broker CA file {path}: {reason}")]
    Ca {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("the embedded broker failed: {0}")]
    Broker(String),
}

impl MqttError {
    /// Configuration problems are not retried; a broker that fails to start may be.
    pub fn is_retryable(&self) -> bool {
        matches!(self, MqttError::Broker(_))
    }
}
