//! The access rules, pure: no I/O, no clock reads, no async.
//!
//! Inputs are a [`World`] (what the gateway knows), a roster [`Snapshot`] or a person's
//! decision, and the time. Outputs are a [`Transition`]: the record changes, their audit
//! entries and any alerts. The store makes a transition durable before anyone applies it.

mod credentials;
mod decide;
mod desired;
mod plan;
pub mod site;
mod types;
mod world;

pub use credentials::{
    allocate_pin, assign_missing_pins, enroll_card, remove_card, Card, CardError, Credentials, Pin,
};
pub use decide::{
    approve, assign_key, clear_override, discard, replace_site, set_mode, set_override,
    unassign_key, Decision, ItemResult, MAX_BATCH,
};
pub use desired::{desired_all, desired_for, DeviceSet, DoorAccess};
pub use plan::{effective_standing, plan, EvictionPolicy, Guard, Policy, RosterEntry, Snapshot};
pub use site::{unit_key_id, KeyDef, Site, SiteIndex};
pub use types::*;
pub use world::{AuditEntry, Change, Grants, Snap, Transition, World};

/// Why the rules refused a request. Nothing was changed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CoreError {
    #[error("resident {0:?} appears twice in the roster")]
    DuplicateResident(ResidentId),
    #[error("a request names 1 to {MAX_BATCH} suggestions; this one named {got}")]
    BatchSize { got: usize },
    #[error("no resident {0:?}")]
    UnknownResident(ResidentId),
    #[error("no key {0:?}")]
    UnknownKey(KeyId),
    #[error("resident {resident:?} is {standing}, and only current residents can hold keys")]
    NotCurrent {
        resident: ResidentId,
        standing: Standing,
    },
    #[error("resident {resident:?} already holds key {key:?}")]
    AlreadyHeld { resident: ResidentId, key: KeyId },
    #[error("resident {resident:?} does not hold key {key:?}")]
    NotHeld { resident: ResidentId, key: KeyId },
    #[error("resident {0:?} has no override")]
    NoOverride(ResidentId),
    #[error("this card is already enrolled for this resident")]
    CardAlreadyEnrolled,
    #[error("this card is enrolled for another resident")]
    CardTaken,
    #[error("this card is not enrolled for this resident")]
    CardNotEnrolled,
    #[error("invalid site data: {}", .0.iter().map(|(p, r)| format!("{p}: {r}")).collect::<Vec<_>>().join("; "))]
    InvalidSite(Vec<(String, String)>),
}
