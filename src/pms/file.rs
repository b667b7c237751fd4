//! The `file` roster source: a normalized roster in JSON, for properties without an API and
//! for the demo.
//!
//! ```json
//! {"fetched_at":"2026-11-27T12:00:00Z",
//!  "residents":[{"id":"t-100","name":"Ana Diaz","unit":"4B","status":"current"}]}
//! ```

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::Deserialize;

use super::{FetchFuture, FetchRequest, PmsError, RosterSource};
use crate::core::{PmsStatus, RosterEntry, Snapshot, Timestamp};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RosterFile {
    fetched_at: Timestamp,
    residents: Vec<ResidentRow>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResidentRow {
    id: String,
    name: String,
    #[serde(default)]
    unit: Option<String>,
    status: String,
}

/// Parse a roster file. Missing keys, unknown keys, duplicate or empty ids and truncated
/// JSON are errors; an unknown status is kept as such (the rules alert on it).
pub fn parse_roster(bytes: &[u8]) -> Result<Snapshot, PmsError> {
    let file: RosterFile =
        serde_json::from_slice(bytes).map_err(|e| PmsError::Malformed(e.to_string()))?;
    let mut seen = BTreeSet::new();
    let mut residents = Vec::with_capacity(file.residents.len());
    for (i, r) in file.residents.into_iter().enumerate() {
        if r.id.trim().is_empty() {
            return Err(PmsError::Malformed(format!("residents[{i}].id is empty")));
        }
        if !seen.insert(r.id.clone()) {
            return Err(PmsError::Malformed(format!(
                "residents[{i}].id {:?} appears twice",
                r.id
            )));
        }
        residents.push(RosterEntry {
            id: r.id,
            name: r.name,
            unit: r.unit.filter(|u| !u.trim().is_empty()),
            status: PmsStatus::parse(&r.status),
        });
    }
    Ok(Snapshot {
        fetched_at: file.fetched_at,
        complete: true,
        residents,
    })
}

pub struct FileSource {
    path: PathBuf,
}

impl FileSource {
    pub fn new(path: PathBuf) -> FileSource {
        FileSource { path }
    }
}

impl RosterSource for FileSource {
    fn kind(&self) -> &'static str {
        "file"
    }

    fn fetch(&self, _request: FetchRequest) -> FetchFuture<'_> {
        Box::pin(async move {
            let bytes = tokio::fs::read(&self.path)
                .await
                .map_err(|e| PmsError::Unreadable {
                    path: self.path.display().to_string(),
                    reason: e.to_string(),
                })?;
            parse_roster(&bytes)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_parses() {
        let s = parse_roster(br#"{"fetched_at":"2026-11-27T12:00:00Z","residents":[{"id":"t-100","name":"Ana Diaz","unit":"4B","status":"current"}]}"#).unwrap();
        assert!(s.complete);
        assert_eq!(s.residents.len(), 1);
        assert_eq!(s.residents[0].status, PmsStatus::Current);
        assert_eq!(s.residents[0].unit.as_deref(), Some("4B"));
    }

    #[test]
    fn a_roster_without_its_residents_key_is_an_error_not_an_empty_roster() {
        assert!(parse_roster(br#"{"fetched_at":"2026-11-27T12:00:00Z"}"#).is_err());
    }

    #[test]
    fn truncated_json_html_and_unknown_fields_are_errors() {
        for bad in [
            &br#"{"fetched_at":"2026-11-27T12:00:00Z","residents":[{"id":"t-1","name":"A","#[..],
            b"<html><body>Maintenance</body></html>",
            br#"{"fetched_at":"2026-11-27T12:00:00Z","residents":[],"extra":1}"#,
            br#"{"fetched_at":"2026-11-27T12:00:00Z","residents":[{"id":"t-1","name":"A","status":"current","email":"x"}]}"#,
            br#"{"fetched_at":"yesterday","residents":[]}"#,
        ] {
            assert!(parse_roster(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn duplicate_and_empty_ids_are_errors() {
        let dup = br#"{"fetched_at":"2026-11-27T12:00:00Z","residents":[{"id":"a","name":"A","status":"current"},{"id":"a","name":"B","status":"past"}]}"#;
        assert!(parse_roster(dup).is_err());
        let empty = br#"{"fetched_at":"2026-11-27T12:00:00Z","residents":[{"id":" ","name":"A","status":"current"}]}"#;
        assert!(parse_roster(empty).is_err());
    }

    #[test]
    fn an_unknown_status_is_kept_for_the_rules_to_alert_on() {
        let s = parse_roster(br#"{"fetched_at":"2026-11-27T12:00:00Z","residents":[{"id":"a","name":"A","status":"on-hold"}]}"#).unwrap();
        assert_eq!(s.residents[0].status, PmsStatus::Unknown("on-hold".into()));
    }
}
