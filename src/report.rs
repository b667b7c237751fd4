//! The JSON that `leasegate plan` and `leasegate sync --once` print on stdout.

use serde::Serialize;

use crate::core::{Action, Alert, Color, Suggestion, Timestamp, Transition};

#[derive(Debug, Serialize)]
pub struct SuggestionView<'a> {
    pub id: &'a str,
    pub resident_id: &'a str,
    pub resident_name: &'a str,
    pub unit: Option<&'a str>,
    pub key: Option<&'a str>,
    pub action: Action,
    pub color: Color,
    pub valid_from: Option<Timestamp>,
    pub reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<&'static str>,
}

impl<'a> SuggestionView<'a> {
    pub fn new(s: &'a Suggestion, with_state: bool) -> Self {
        SuggestionView {
            id: &s.id,
            resident_id: &s.resident_id,
            resident_name: &s.resident_name,
            unit: s.unit.as_deref(),
            key: s.key.as_deref(),
            action: s.action,
            color: s.color(),
            valid_from: s.valid_from,
            reason: &s.reason,
            after: s.after.as_deref(),
            state: with_state.then(|| s.display_state()),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Report<'a> {
    pub suggestions: Vec<SuggestionView<'a>>,
    pub alerts: &'a [Alert],
}

/// `plan`: the suggestions a sync would create (those numbered from `first_new_seq` on).
pub fn plan_report(t: &Transition, first_new_seq: u64) -> Report<'_> {
    Report {
        suggestions: t
            .suggestions()
            .into_iter()
            .filter(|s| s.seq >= first_new_seq)
            .map(|s| SuggestionView::new(s, false))
            .collect(),
        alerts: &t.alerts,
    }
}

/// `sync --once`: every suggestion the sync touched, with its resulting state.
pub fn sync_report(t: &Transition) -> Report<'_> {
    Report {
        suggestions: t
            .suggestions()
            .into_iter()
            .map(|s| SuggestionView::new(s, true))
            .collect(),
        alerts: &t.alerts,
    }
}
