//! What device writers report: write results, drift, overdue revocations and device health.
//! The MQTT API publishes these on `events/<type>` and keeps `devices/<id>` from the
//! [`Event::DeviceStatus`] ones. Nothing here carries a card number, PIN or key.

use serde::Serialize;

use crate::core::{DeviceId, ResidentId, Timestamp};

/// Where writers send events. Cheap to clone; sending never blocks, and a slow reader loses
/// the oldest events rather than stalling a device writer.
pub type EventSink = tokio::sync::broadcast::Sender<Event>;

pub fn channel() -> EventSink {
    tokio::sync::broadcast::channel(1024).0
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A device holds the desired credential set of `generation`.
    AccessApplied {
        device: DeviceId,
        generation: u64,
        upserts: usize,
        deletes: usize,
        at: Timestamp,
    },
    /// A write did not land; `retryable` says whether the writer will try again by itself.
    DeviceWriteFailed {
        device: DeviceId,
        error: String,
        retryable: bool,
        at: Timestamp,
    },
    /// Residents whose access should be gone from this device still have it.
    RevocationOverdue {
        device: DeviceId,
        residents: Vec<ResidentId>,
        since: Timestamp,
        at: Timestamp,
    },
    /// The device's records differ from what it last acknowledged (a reset, a local edit):
    /// the writer resyncs it.
    #[serde(rename = "device_drift")]
    Drift {
        device: DeviceId,
        detail: String,
        at: Timestamp,
    },
    DeviceStatus(DeviceStatus),
}

impl Event {
    /// The `<type>` of `events/<type>`.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::AccessApplied { .. } => "access_applied",
            Event::DeviceWriteFailed { .. } => "device_write_failed",
            Event::RevocationOverdue { .. } => "revocation_overdue",
            Event::Drift { .. } => "device_drift",
            Event::DeviceStatus(_) => "device_status",
        }
    }
}

/// The retained `devices/<id>` message.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DeviceStatus {
    pub device: DeviceId,
    /// `osdp_panel` or `nuki_lock`.
    pub kind: String,
    pub online: bool,
    /// Credential operations not yet acknowledged by the device.
    pub pending_writes: usize,
    /// Operations that failed and wait for a retry.
    pub failed_writes: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub battery: Option<Battery>,
    /// The last error, in words safe to publish.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<Timestamp>,
    /// The generation of the desired set the device last confirmed.
    pub generation: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Battery {
    pub critical: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percent: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub charging: Option<bool>,
}
