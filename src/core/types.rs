//! The domain vocabulary: statuses, residents, grants, suggestions, actors.
//!
//! Everything here is plain data with serde derives so that the store can persist it as-is.
//! No type in this file performs I/O or reads a clock.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub type ResidentId = String;
pub type KeyId = String;
pub type DoorId = String;
pub type DeviceId = String;
pub type SuggestionId = String;
pub type Timestamp = DateTime<Utc>;

/// A lease status as the PMS reports it, normalized across vendors.
///
/// Unknown strings are kept verbatim: the rule for them is "no change, alert", so a vendor
/// adding a status must never fail a whole snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum PmsStatus {
    Applicant,
    Future,
    Current,
    Notice,
    Eviction,
    Past,
    Cancelled,
    Unknown(String),
}

impl PmsStatus {
    pub const KNOWN: [&'static str; 7] = [
        "applicant",
        "future",
        "current",
        "notice",
        "eviction",
        "past",
        "cancelled",
    ];

    pub fn parse(s: &str) -> PmsStatus {
        match s.trim().to_ascii_lowercase().as_str() {
            "applicant" => PmsStatus::Applicant,
            "future" => PmsStatus::Future,
            "current" => PmsStatus::Current,
            "notice" => PmsStatus::Notice,
            "eviction" => PmsStatus::Eviction,
            "past" | "movedout" | "moved_out" | "moved-out" => PmsStatus::Past,
            "cancelled" | "canceled" => PmsStatus::Cancelled,
            _ => PmsStatus::Unknown(s.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            PmsStatus::Applicant => "applicant",
            PmsStatus::Future => "future",
            PmsStatus::Current => "current",
            PmsStatus::Notice => "notice",
            PmsStatus::Eviction => "eviction",
            PmsStatus::Past => "past",
            PmsStatus::Cancelled => "cancelled",
            PmsStatus::Unknown(s) => s,
        }
    }

    /// The DESIGN §1 table: which access class a PMS status falls into.
    pub fn standing(&self) -> Standing {
        match self {
            PmsStatus::Applicant | PmsStatus::Future => Standing::Future,
            PmsStatus::Current | PmsStatus::Notice => Standing::Current,
            PmsStatus::Past | PmsStatus::Cancelled => Standing::Past,
            PmsStatus::Eviction => Standing::Eviction,
            PmsStatus::Unknown(_) => Standing::Unknown,
        }
    }
}

impl From<String> for PmsStatus {
    fn from(s: String) -> Self {
        PmsStatus::parse(&s)
    }
}

impl From<PmsStatus> for String {
    fn from(s: PmsStatus) -> Self {
        s.as_str().to_string()
    }
}

impl fmt::Display for PmsStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The access class a resident is in once overrides and the eviction policy are applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Standing {
    Future,
    Current,
    Past,
    /// Eviction pending, under the `hold` policy: keys are to be revoked, but only by a person.
    Eviction,
    Unknown,
}

impl fmt::Display for Standing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Standing::Future => "future",
            Standing::Current => "current",
            Standing::Past => "past",
            Standing::Eviction => "eviction",
            Standing::Unknown => "unknown",
        })
    }
}

/// The statuses a manager may set by hand (the seed's manual override table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverrideStatus {
    Future,
    Current,
    Past,
}

impl OverrideStatus {
    pub fn standing(self) -> Standing {
        match self {
            OverrideStatus::Future => Standing::Future,
            OverrideStatus::Current => Standing::Current,
            OverrideStatus::Past => Standing::Past,
        }
    }
}

/// What a suggestion was computed from. When it changes before a manager decides, the
/// suggestion is superseded rather than applied against a reality it no longer describes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Basis {
    pub standing: Standing,
    pub unit: Option<String>,
}

/// Who or what made a decision; recorded in every audit entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum Actor {
    /// The PMS sync, creating or superseding suggestions.
    Sync,
    /// Automatic mode applying a suggestion without review.
    Automatic,
    /// A named person (manager or installer), e.g. the MQTT actor or a CLI user.
    Person(String),
    /// The gateway itself: seeding, imports from the command line.
    System,
}

impl From<String> for Actor {
    fn from(s: String) -> Self {
        match s.as_str() {
            "leasegate:sync" => Actor::Sync,
            "leasegate:automatic" => Actor::Automatic,
            "leasegate:system" => Actor::System,
            _ => Actor::Person(s),
        }
    }
}

impl From<Actor> for String {
    fn from(a: Actor) -> Self {
        a.to_string()
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Sync => f.write_str("leasegate:sync"),
            Actor::Automatic => f.write_str("leasegate:automatic"),
            Actor::System => f.write_str("leasegate:system"),
            Actor::Person(p) => f.write_str(p),
        }
    }
}

/// A resident as last seen in the PMS, with what the gateway derived from it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resident {
    pub id: ResidentId,
    pub name: String,
    pub unit: Option<String>,
    pub pms_status: PmsStatus,
    /// The effective basis at the last evaluation (overrides and policy applied).
    pub basis: Basis,
    /// When the gateway detected the current basis; grants start `activation_delay` later.
    pub basis_since: Timestamp,
    /// When grants under this basis start, where that is not `basis_since` plus the
    /// activation delay: a move between units (the new unit opens at once, as the old one
    /// closes) or a manager's override.
    #[serde(default)]
    pub grants_from: Option<Timestamp>,
    pub first_seen: Timestamp,
    /// Set while the resident is absent from full snapshots. Absence never revokes.
    pub missing_since: Option<Timestamp>,
    /// Grant suggestions a manager discarded under the current basis; not suggested again
    /// until the basis changes. Revocations are never suppressed (see `core::plan`).
    #[serde(default)]
    pub declined: BTreeSet<KeyId>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantSource {
    /// Follows the lease: unit keys and auto-shared common-area keys.
    Automatic,
    /// Assigned by hand by a manager; kept while the resident is Current.
    Manual,
}

/// A key a resident holds. The device credential sets are derived from these.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    pub resident_id: ResidentId,
    pub key_id: KeyId,
    pub source: GrantSource,
    pub valid_from: Timestamp,
    pub granted_at: Timestamp,
    pub granted_by: Actor,
    pub suggestion: Option<SuggestionId>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Grant,
    Revoke,
    None,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Color {
    Green,
    Red,
    Grey,
}

impl Action {
    pub fn color(self) -> Color {
        match self {
            Action::Grant => Color::Green,
            Action::Revoke => Color::Red,
            Action::None => Color::Grey,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SuggestionState {
    Pending,
    Applied,
    Discarded,
    Superseded,
}

/// Why a suggestion waits for a person even in automatic mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Hold {
    /// The mass-revocation guard tripped on the sync that created it.
    Guard,
    /// The resident has an eviction pending and the policy is `hold`.
    Eviction,
    /// A current resident's unit is missing or not mapped: their unit key is not taken
    /// away on the strength of a data gap.
    UnknownUnit,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suggestion {
    pub id: SuggestionId,
    pub seq: u64,
    pub resident_id: ResidentId,
    pub resident_name: String,
    pub unit: Option<String>,
    pub key: Option<KeyId>,
    pub action: Action,
    pub valid_from: Option<Timestamp>,
    pub created_at: Timestamp,
    pub reason: String,
    pub basis: Basis,
    pub state: SuggestionState,
    pub hold: Option<Hold>,
    /// A revocation that must wait for this grant (unit change: new keys before old).
    pub after: Option<SuggestionId>,
    pub decided_at: Option<Timestamp>,
    pub decided_by: Option<Actor>,
}

impl Suggestion {
    pub fn color(&self) -> Color {
        self.action.color()
    }

    /// The state shown to people: a pending suggestion under a hold reads as `held`.
    pub fn display_state(&self) -> &'static str {
        match (self.state, self.hold) {
            (SuggestionState::Pending, Some(_)) => "held",
            (SuggestionState::Pending, None) => "pending",
            (SuggestionState::Applied, _) => "applied",
            (SuggestionState::Discarded, _) => "discarded",
            (SuggestionState::Superseded, _) => "superseded",
        }
    }

    pub fn id_for(seq: u64) -> SuggestionId {
        format!("s{seq:06}")
    }
}

/// A manager's status override; it lasts until the PMS status of the resident changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Override {
    pub resident_id: ResidentId,
    pub status: OverrideStatus,
    /// The PMS status when the override was set; a different PMS status ends the override.
    pub pms_status_at: PmsStatus,
    pub set_by: Actor,
    pub set_at: Timestamp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    ApprovalRequired,
    Automatic,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "approval_required" => Some(Mode::ApprovalRequired),
            "automatic" => Some(Mode::Automatic),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::ApprovalRequired => "approval_required",
            Mode::Automatic => "automatic",
        }
    }
}

/// Settings that live in the store and are changed at run time (mode today).
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub mode: Mode,
}

/// Something a person must look at. Alerts never change access by themselves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Alert {
    GuardTripped {
        would_revoke: usize,
        limit: usize,
        current_residents: usize,
    },
    UnknownStatus {
        resident_id: ResidentId,
        status: String,
    },
    EmptyRoster {
        known_residents: usize,
    },
    UnmappedUnit {
        resident_id: ResidentId,
        unit: Option<String>,
    },
    /// Every keypad code is taken: new residents get no PIN until codes are freed.
    PinsExhausted,
}
