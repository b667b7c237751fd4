//! Roster sources: each turns a PMS's answer into a normalized [`Snapshot`].
//!
//! Sources translate and nothing else: the policy lives in `core`. A snapshot is all or
//! nothing: anything short of a complete, well-formed answer is an error, never an empty or
//! partial roster.

mod file;

use std::future::Future;
use std::pin::Pin;

pub use file::{parse_roster, FileSource};

use crate::core::{Snapshot, Timestamp};

/// What to fetch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FetchRequest {
    /// `None`: a complete roster. `Some(t)`: only what changed since `t`, where the source
    /// supports it (a source may always answer with a complete roster instead).
    pub changed_since: Option<Timestamp>,
}

#[derive(Debug, thiserror::Error)]
pub enum PmsError {
    #[error("cannot read the roster {path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("the roster is malformed: {0}")]
    Malformed(String),
}

impl PmsError {
    /// Whether the next poll may succeed without a person doing anything.
    pub fn is_retryable(&self) -> bool {
        match self {
            // A file being rewritten or a PMS glitch both deserve another try.
            PmsError::Unreadable { .. } | PmsError::Malformed(_) => true,
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

/// Build the source the config names.
pub fn from_config(cfg: &crate::config::Config) -> Box<dyn RosterSource> {
    match &cfg.pms.source {
        crate::config::PmsSource::File { path } => Box::new(FileSource::new(path.clone())),
    }
}
