//! The long-running gateway: `run(config, shutdown)`.
//!
//! Today it syncs the roster on its poll interval; the MQTT API and the device writers join
//! in later. A failed sync changes no access, is recorded for the status topic, and is
//! retried with jittered exponential backoff, capped at the poll interval.

use std::time::Duration;

use rand::Rng;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::core::SuggestionState;
use crate::gateway::{Gateway, GatewayError};
use crate::pms::{self, FetchRequest, RosterSource};
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Gateway(#[from] GatewayError),
}

/// Backoff after `failures` consecutive failed syncs: 10 s doubling, capped at `cap`, with
/// ±20 % jitter so that many gateways do not hit one PMS in step.
pub fn backoff(failures: u32, cap: Duration, jitter: f64) -> Duration {
    let base = Duration::from_secs(10).saturating_mul(1u32 << failures.min(16));
    let d = base.min(cap);
    d.mul_f64((1.0 + jitter.clamp(-0.2, 0.2)).max(0.0))
}

/// Run until `shutdown` is cancelled.
pub async fn run(cfg: Config, shutdown: CancellationToken) -> Result<(), DaemonError> {
    let mut gateway = match Gateway::open(&cfg) {
        Ok(g) => Some(g),
        Err(GatewayError::Store(e @ StoreError::Quarantined { .. })) => {
            // Stay up so that status can say why, but touch no access.
            tracing::error!(error = %e, "refusing to grant or revoke anything");
            None
        }
        Err(e) => return Err(e.into()),
    };
    let source = pms::from_config(&cfg);
    notify_ready();
    let watchdog = watchdog_interval();
    let mut failures: u32 = 0;
    let mut next = Duration::ZERO;
    loop {
        let sleep = tokio::time::sleep(next);
        tokio::pin!(sleep);
        loop {
            let tick = watchdog.map(tokio::time::sleep);
            tokio::select! {
                _ = shutdown.cancelled() => {
                    tracing::info!("shutting down");
                    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
                    return Ok(());
                }
                _ = &mut sleep => break,
                _ = async { match tick { Some(t) => t.await, None => std::future::pending().await } } => {
                    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
                }
            }
        }
        let Some(gw) = gateway.as_mut() else {
            tracing::error!("the store is quarantined: run `leasegate rebuild` to recover");
            next = cfg.pms.poll_interval;
            continue;
        };
        match sync_once(gw, source.as_ref()).await {
            Ok(()) => {
                failures = 0;
                next = cfg.pms.poll_interval;
            }
            Err(reason) => {
                let jitter = rand::thread_rng().gen_range(-0.2..=0.2);
                next = backoff(failures, cfg.pms.poll_interval, jitter);
                failures = failures.saturating_add(1);
                tracing::warn!(%reason, retry_in = ?next, "sync failed; access unchanged");
                if let Err(e) = gw.record_sync_failure(&reason, crate::gateway::wall_clock()) {
                    tracing::error!(error = %e, "could not record the sync failure");
                }
            }
        }
    }
}

/// One sync: fetch, plan, commit. Returns the failure reason as a log-safe string.
pub async fn sync_once(gw: &mut Gateway, source: &dyn RosterSource) -> Result<(), String> {
    let snapshot = source
        .fetch(FetchRequest::default())
        .await
        .map_err(|e| e.to_string())?;
    let t = gw
        .sync(&snapshot, crate::gateway::wall_clock())
        .map_err(|e| e.to_string())?;
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    for s in t.suggestions() {
        *counts.entry(s.display_state()).or_default() += 1;
        if s.state != SuggestionState::Superseded {
            // Resident ids only: names stay out of the logs.
            tracing::info!(
                id = %s.id,
                resident = %s.resident_id,
                action = ?s.action,
                color = ?s.color(),
                key = s.key.as_deref().unwrap_or("-"),
                state = s.display_state(),
                "suggestion"
            );
        }
    }
    tracing::info!(
        source = source.kind(),
        residents = snapshot.residents.len(),
        pending = counts.get("pending").copied().unwrap_or(0),
        held = counts.get("held").copied().unwrap_or(0),
        applied = counts.get("applied").copied().unwrap_or(0),
        superseded = counts.get("superseded").copied().unwrap_or(0),
        awaiting_decision = gw.world().pending.len(),
        "sync done"
    );
    for a in &t.alerts {
        tracing::warn!(alert = ?a, "alert");
    }
    Ok(())
}

fn notify_ready() {
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
}

fn watchdog_interval() -> Option<Duration> {
    let mut usec = 0u64;
    if sd_notify::watchdog_enabled(false, &mut usec) && usec > 0 {
        Some(Duration::from_micros(usec / 2))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_ten_seconds_and_stops_at_the_poll_interval() {
        let cap = Duration::from_secs(300);
        assert_eq!(backoff(0, cap, 0.0), Duration::from_secs(10));
        assert_eq!(backoff(1, cap, 0.0), Duration::from_secs(20));
        assert_eq!(backoff(4, cap, 0.0), Duration::from_secs(160));
        assert_eq!(backoff(5, cap, 0.0), cap);
        assert_eq!(backoff(40, cap, 0.0), cap);
    }

    #[test]
    fn backoff_jitter_stays_within_twenty_percent() {
        let cap = Duration::from_secs(300);
        assert_eq!(backoff(0, cap, 0.2), Duration::from_secs(12));
        assert_eq!(backoff(0, cap, -0.9), Duration::from_secs(8));
    }
}
