//! Roster sources: each turns a PMS's answer into a normalized [`Snapshot`].
//!
//! Sources translate and nothing else: the policy lives in `core`. A snapshot is all or
//! nothing: anything short of a complete, well-formed answer is an error, never an empty or
//! partial roster.

mod buildium;
mod entrata;
mod file;
pub mod http;
mod rentmanager;

use std::future::Future;
use std::pin::Pin;

pub use buildium::BuildiumSource;
pub use entrata::EntrataSource;
pub use file::{parse_roster, FileSource};
pub use rentmanager::RentManagerSource;

use crate::core::{RosterEntry, Snapshot, Timestamp};

/// What to fetch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FetchRequest {
    /// `None`: a complete roster. `Some(t)`: only what changed since `t`, where the source
    /// supports it (a source may always answer with a complete roster instead).
    pub changed_since: Option<Timestamp>,
    /// The time of the fetch, for anything date-dependent (a move-out date that has passed).
    /// Adapters read no clock, so tests can pin it.
    pub now: Timestamp,
}

/// All-or-nothing paging: the page at `offset` must hold exactly what the announced
/// `total` says is left, up to `limit`. A short or long page fails the whole snapshot.
pub fn expect_page(total: u64, offset: u64, limit: u64, got: usize) -> Result<(), PmsError> {
    let want = total.saturating_sub(offset).min(limit);
    if got as u64 == want {
        Ok(())
    } else {
        Err(PmsError::Incomplete(format!(
            "the page at offset {offset} held {got} rows; the PMS announced {total} in all, so \
             {want} were due"
        )))
    }
}

/// Property ids go into query strings and filter expressions: digits only, so that none
/// can change their meaning.
pub(crate) fn check_numeric_ids(ids: &[String], what: &str) -> Result<(), PmsError> {
    match ids
        .iter()
        .find(|id| id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()))
    {
        Some(id) => Err(PmsError::Setup(format!(
            "pms.property_ids: {id:?} is not a{} {what} (a number)",
            if what.starts_with(['A', 'E', 'I', 'O', 'U']) {
                "n"
            } else {
                ""
            }
        ))),
        None => Ok(()),
    }
}

/// One person may appear on several leases (a transfer leaves a past lease behind; a
/// renewal adds a future one). Keep one entry per person: the one whose status grants the
/// most, so that an old lease never revokes the keys of a current one. Current on two
/// leases in different units gives no unit (a manager decides).
pub fn merge_people(entries: Vec<RosterEntry>) -> Vec<RosterEntry> {
    use crate::core::Standing;
    fn rank(e: &RosterEntry) -> u8 {
        match e.status.standing() {
            Standing::Current => 5,
            Standing::Eviction => 4,
            Standing::Future => 3,
            Standing::Past => 2,
            Standing::Unknown => 1,
        }
    }
    let mut by_id: std::collections::BTreeMap<String, RosterEntry> = Default::default();
    let mut order = Vec::new();
    for e in entries {
        match by_id.get_mut(&e.id) {
            Some(have) if rank(have) == rank(&e) && rank(&e) == 5 && have.unit != e.unit => {
                // Current on two leases in two units (a flat and a garage; a transfer the PMS
                // shows half done): no unit rather than a guess that could flip from sync to
                // sync. The rules then keep the keys held and ask a manager.
                have.unit = None;
            }
            Some(have) if rank(have) >= rank(&e) => {}
            Some(_) => {
                by_id.insert(e.id.clone(), e);
            }
            None => {
                order.push(e.id.clone());
                by_id.insert(e.id.clone(), e);
            }
        }
    }
    order
        .into_iter()
        .filter_map(|id| by_id.remove(&id))
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum PmsError {
    #[error("cannot read the roster {path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("the roster is malformed: {0}")]
    Malformed(String),
    #[error("the roster is incomplete: {0}")]
    Incomplete(String),
    #[error("the PMS answered with {content_type}, not JSON (a maintenance or login page?)")]
    NotJson { content_type: String },
    #[error("the PMS refused the credentials (HTTP {0})")]
    Unauthorized(u16),
    #[error("the PMS rate-limited us{}", retry_after.map(|d| format!(" (retry after {}s)", d.as_secs())).unwrap_or_default())]
    RateLimited {
        retry_after: Option<std::time::Duration>,
    },
    #[error("the PMS answered HTTP {0}")]
    Status(u16),
    #[error("the PMS did not answer in time")]
    Timeout,
    #[error("cannot reach the PMS: {0}")]
    Transport(String),
    #[error("PMS client setup failed: {0}")]
    Setup(String),
}

impl PmsError {
    /// Whether the next poll may succeed without a person doing anything. Either way the
    /// sync changes no access; this only decides how loudly to complain.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, PmsError::Unauthorized(_) | PmsError::Setup(_))
    }

    /// How long the PMS asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            PmsError::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }
}

pub type FetchFuture<'a> = Pin<Box<dyn Future<Output = Result<Snapshot, PmsError>> + Send + 'a>>;

/// A property management system, as the sync loop sees it.
pub trait RosterSource: Send + Sync {
    /// A short name for logs and status (`file`, `buildium`, ...).
    fn kind(&self) -> &'static str;
    fn fetch(&self, request: FetchRequest) -> FetchFuture<'_>;
}

/// Build the source the config names, reading its credentials.
pub fn from_config(cfg: &crate::config::Config) -> Result<Box<dyn RosterSource>, PmsError> {
    use crate::config::PmsSource;
    Ok(match &cfg.pms.source {
        PmsSource::File { path } => Box::new(FileSource::new(path.clone())),
        PmsSource::Buildium { .. } => Box::new(BuildiumSource::new(cfg)?),
        PmsSource::Entrata { .. } => Box::new(EntrataSource::new(cfg)?),
        PmsSource::RentManager { .. } => Box::new(RentManagerSource::new(cfg)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::PmsStatus;

    fn e(id: &str, unit: &str, status: PmsStatus) -> RosterEntry {
        RosterEntry {
            id: id.into(),
            name: id.into(),
            unit: Some(unit.into()),
            status,
        }
    }

    #[test]
    fn a_page_must_hold_exactly_what_is_left() {
        assert!(expect_page(2500, 0, 1000, 1000).is_ok());
        assert!(expect_page(2500, 2000, 1000, 500).is_ok());
        assert!(expect_page(0, 0, 1000, 0).is_ok());
        assert!(expect_page(2500, 2000, 1000, 499).is_err());
        assert!(expect_page(2500, 0, 1000, 999).is_err());
        assert!(expect_page(10, 0, 1000, 11).is_err());
    }

    #[test]
    fn current_on_two_units_at_once_gives_no_unit_rather_than_a_guess() {
        let merged = merge_people(vec![
            e("t1", "4B", PmsStatus::Current),
            e("t1", "G12", PmsStatus::Notice),
        ]);
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].unit, None);
        let same = merge_people(vec![
            e("t1", "4B", PmsStatus::Current),
            e("t1", "4B", PmsStatus::Current),
        ]);
        assert_eq!(same[0].unit.as_deref(), Some("4B"));
    }

    #[test]
    fn a_transferred_resident_keeps_the_current_lease_over_the_past_one() {
        let merged = merge_people(vec![
            e("t1", "4B", PmsStatus::Past),
            e("t2", "2A", PmsStatus::Current),
            e("t1", "5C", PmsStatus::Current),
            e("t1", "6D", PmsStatus::Future),
        ]);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].id, "t1");
        assert_eq!(merged[0].unit.as_deref(), Some("5C"));
        assert_eq!(merged[0].status, PmsStatus::Current);
    }
}
