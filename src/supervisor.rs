//! Keeps the gateway's adapters running: the MQTT API, each OSDP bus and each lock writer.
//!
//! An adapter that fails or panics is started again after a jittered, doubling pause. Faults
//! the adapter calls retryable (a serial adapter unplugged, a broker refusing) are retried
//! for as long as they last: a missing device must never stop the other doors. A run of
//! crashes or non-retryable failures, each soon after the previous start, means a restart
//! will not help; the supervisor then gives up and the daemon exits non-zero, so systemd
//! restarts the whole process and, if that keeps failing, leaves the unit visibly failed.
//!
//! [`RestartPolicy`] decides and does no I/O; [`Supervisor`] runs the tasks.

use std::future::Future;
use std::time::Duration;

use rand::Rng;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Why an adapter stopped on its own.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct AdapterError {
    /// Safe to log: no secrets.
    pub reason: String,
    /// A fault outside us that may pass (device, network, broker).
    pub retryable: bool,
}

impl AdapterError {
    pub fn retryable(reason: impl Into<String>) -> AdapterError {
        AdapterError {
            reason: reason.into(),
            retryable: true,
        }
    }

    pub fn fatal(reason: impl Into<String>) -> AdapterError {
        AdapterError {
            reason: reason.into(),
            retryable: false,
        }
    }
}

/// How an adapter's run ended while the gateway was not shutting down.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exit {
    /// It returned without an error although nobody asked it to stop.
    Returned,
    Failed(AdapterError),
    Panicked(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Restart(Duration),
    GiveUp,
}

/// When to restart an adapter, and when to stop trying. Pure: the run time is passed in.
#[derive(Clone, Debug)]
pub struct RestartPolicy {
    /// Consecutive failures, of any kind (sets the pause).
    failures: u32,
    /// Consecutive crashes or non-retryable failures (decides giving up).
    hard_failures: u32,
    pub first_pause: Duration,
    pub max_pause: Duration,
    /// This many hard failures in a row, none running for `healthy_after`, and we give up.
    pub give_up_after: u32,
    /// A run this long counts as healthy and forgets earlier failures.
    pub healthy_after: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            failures: 0,
            hard_failures: 0,
            first_pause: Duration::from_secs(1),
            max_pause: Duration::from_secs(60),
            give_up_after: 5,
            healthy_after: Duration::from_secs(300),
        }
    }
}

impl RestartPolicy {
    /// `jitter` in -0.2..=0.2 spreads restarts of many adapters (and gateways) apart.
    pub fn on_exit(&mut self, exit: &Exit, ran_for: Duration, jitter: f64) -> Decision {
        if ran_for >= self.healthy_after {
            self.failures = 0;
            self.hard_failures = 0;
        }
        let hard = match exit {
            Exit::Failed(e) => !e.retryable,
            Exit::Returned | Exit::Panicked(_) => true,
        };
        if hard {
            self.hard_failures += 1;
            if self.hard_failures >= self.give_up_after {
                return Decision::GiveUp;
            }
        }
        let pause = self
            .first_pause
            .saturating_mul(1u32 << self.failures.min(16))
            .min(self.max_pause);
        self.failures = self.failures.saturating_add(1);
        Decision::Restart(pause.mul_f64(1.0 + jitter.clamp(-0.2, 0.2)))
    }
}

/// Which adapter gave up, and its last failure.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{adapter} keeps failing ({reason}); giving up")]
pub struct GaveUp {
    pub adapter: String,
    pub reason: String,
}

/// Runs adapters under [`RestartPolicy`] until `stop` is cancelled.
pub struct Supervisor {
    tasks: TaskTracker,
    stop: CancellationToken,
    gave_up_tx: mpsc::UnboundedSender<GaveUp>,
    gave_up_rx: mpsc::UnboundedReceiver<GaveUp>,
    policy: RestartPolicy,
}

impl Supervisor {
    pub fn new(stop: CancellationToken) -> Supervisor {
        Supervisor::with_policy(stop, RestartPolicy::default())
    }

    pub fn with_policy(stop: CancellationToken, policy: RestartPolicy) -> Supervisor {
        let (gave_up_tx, gave_up_rx) = mpsc::unbounded_channel();
        Supervisor {
            tasks: TaskTracker::new(),
            stop,
            gave_up_tx,
            gave_up_rx,
            policy,
        }
    }

    /// The token adapters must watch: cancelled on shutdown.
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Start `make()` now and again each time it stops while the gateway runs. Each run is
    /// its own task, so a panic is caught here instead of unwinding through the gateway.
    pub fn spawn<F, Fut>(&self, name: impl Into<String>, mut make: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), AdapterError>> + Send + 'static,
    {
        let name = name.into();
        let stop = self.stop.clone();
        let gave_up = self.gave_up_tx.clone();
        let mut policy = self.policy.clone();
        self.tasks.spawn(async move {
            loop {
                let started = Instant::now();
                let outcome = tokio::spawn(make()).await;
                if stop.is_cancelled() {
                    return;
                }
                let exit = match outcome {
                    Ok(Ok(())) => Exit::Returned,
                    Ok(Err(e)) => Exit::Failed(e),
                    Err(e) if e.is_panic() => Exit::Panicked(panic_message(e.into_panic())),
                    Err(_) => Exit::Panicked("cancelled".into()),
                };
                let reason = match &exit {
                    Exit::Returned => "stopped on its own".to_string(),
                    Exit::Failed(e) => e.reason.clone(),
                    Exit::Panicked(m) => format!("panicked: {m}"),
                };
                let jitter = rand::thread_rng().gen_range(-0.2..=0.2);
                match policy.on_exit(&exit, started.elapsed(), jitter) {
                    Decision::Restart(pause) => {
                        tracing::warn!(adapter = %name, %reason, restart_in = ?pause, "adapter stopped; restarting");
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = tokio::time::sleep(pause) => {}
                        }
                    }
                    Decision::GiveUp => {
                        tracing::error!(adapter = %name, %reason, "adapter keeps failing; giving up");
                        let _ = gave_up.send(GaveUp {
                            adapter: name,
                            reason,
                        });
                        return;
                    }
                }
            }
        });
    }

    /// Resolves when an adapter gives up (never, while they all keep going).
    pub async fn gave_up(&mut self) -> GaveUp {
        match self.gave_up_rx.recv().await {
            Some(g) => g,
            // We hold a sender ourselves, so the channel never closes.
            None => std::future::pending().await,
        }
    }

    /// Cancel every adapter and wait for them, at most `grace`. Returns whether all stopped.
    pub async fn shutdown(&self, grace: Duration) -> bool {
        self.stop.cancel();
        self.tasks.close();
        tokio::time::timeout(grace, self.tasks.wait()).await.is_ok()
    }
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn restarts_back_off_from_one_second_doubling_to_a_minute() {
        let mut p = RestartPolicy {
            give_up_after: 100,
            ..RestartPolicy::default()
        };
        let failed = Exit::Failed(AdapterError::fatal("x"));
        let pauses: Vec<_> = (0..9).map(|_| p.on_exit(&failed, S(0), 0.0)).collect();
        let want: Vec<_> = [1, 2, 4, 8, 16, 32, 60, 60, 60]
            .map(|s| Decision::Restart(S(s)))
            .to_vec();
        assert_eq!(pauses, want);
    }

    #[test]
    fn retryable_failures_are_retried_for_as_long_as_they_last() {
        let mut p = RestartPolicy::default();
        let unplugged = Exit::Failed(AdapterError::retryable("no such tty"));
        for _ in 0..1000 {
            assert_ne!(p.on_exit(&unplugged, S(0), 0.0), Decision::GiveUp);
        }
    }

    #[test]
    fn repeated_crashes_soon_after_start_give_up_on_the_fifth() {
        let mut p = RestartPolicy::default();
        let crash = Exit::Panicked("boom".into());
        for _ in 0..4 {
            assert!(matches!(p.on_exit(&crash, S(2), 0.0), Decision::Restart(_)));
        }
        assert_eq!(p.on_exit(&crash, S(2), 0.0), Decision::GiveUp);
    }

    #[test]
    fn a_healthy_run_forgets_earlier_failures() {
        let mut p = RestartPolicy::default();
        let crash = Exit::Panicked("boom".into());
        for _ in 0..4 {
            p.on_exit(&crash, S(2), 0.0);
        }
        assert_eq!(
            p.on_exit(&crash, S(600), 0.0),
            Decision::Restart(S(1)),
            "ten minutes up: the count and the pause start over"
        );
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        let mut p = RestartPolicy::default();
        let e = Exit::Returned;
        assert_eq!(
            p.on_exit(&e, S(0), 5.0),
            Decision::Restart(Duration::from_millis(1200))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_adapter_is_restarted_and_the_others_go_on() {
        let stop = CancellationToken::new();
        let sup = Supervisor::new(stop.clone());
        let crashes = Arc::new(AtomicU32::new(0));
        let c = crashes.clone();
        let token = sup.stop_token();
        sup.spawn("flaky", move || {
            let (c, token) = (c.clone(), token.clone());
            async move {
                if c.fetch_add(1, Ordering::SeqCst) < 2 {
                    panic!("a bug in a decoder");
                }
                token.cancelled().await;
                Ok(())
            }
        });
        let steady = Arc::new(AtomicU32::new(0));
        let s = steady.clone();
        let token = sup.stop_token();
        sup.spawn("steady", move || {
            let (s, token) = (s.clone(), token.clone());
            async move {
                s.fetch_add(1, Ordering::SeqCst);
                token.cancelled().await;
                Ok(())
            }
        });
        tokio::time::sleep(S(10)).await;
        assert_eq!(
            crashes.load(Ordering::SeqCst),
            3,
            "two crashes, then a run that lasts"
        );
        assert_eq!(
            steady.load(Ordering::SeqCst),
            1,
            "the other adapter was never touched"
        );
        assert!(sup.shutdown(S(1)).await, "everything stops on shutdown");
        assert_eq!(
            steady.load(Ordering::SeqCst),
            1,
            "stopping is not a failure"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_adapter_that_keeps_failing_makes_the_supervisor_give_up() {
        let mut sup = Supervisor::new(CancellationToken::new());
        sup.spawn("mqtt", || async {
            Err(AdapterError::fatal("cannot read the MQTT password file"))
        });
        let g = tokio::time::timeout(S(600), sup.gave_up())
            .await
            .expect("gave up within ten minutes");
        assert_eq!(g.adapter, "mqtt");
        assert!(g.to_string().contains("password file"), "{g}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_device_that_stays_away_never_makes_the_supervisor_give_up() {
        let mut sup = Supervisor::new(CancellationToken::new());
        let tries = Arc::new(AtomicU32::new(0));
        let t = tries.clone();
        sup.spawn("osdp bus /dev/ttyUSB0", move || {
            t.fetch_add(1, Ordering::SeqCst);
            async { Err(AdapterError::retryable("no such device")) }
        });
        let waited = tokio::time::timeout(S(3600), sup.gave_up()).await;
        assert!(waited.is_err(), "still retrying after an hour");
        let n = tries.load(Ordering::SeqCst);
        assert!((55..=80).contains(&n), "about one try a minute: {n}");
    }
}
