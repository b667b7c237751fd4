//! The gateway service: the rules over a durable store.
//!
//! Every operation computes a [`Transition`] with `core`, commits it with [`Store::commit`]
//! (durable before it returns) and only then applies it to the in-memory [`World`]. The
//! clock is read by the caller and passed in.

use std::path::Path;

use crate::config::{self, Config, ConfigErrors};
use crate::core::{
    self, Actor, CoreError, Decision, Mode, OverrideStatus, Policy, Settings, Site, Snapshot,
    SuggestionId, Timestamp, Transition, World,
};
use crate::store::{Store, StoreError, SyncStatus};

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Rules(#[from] CoreError),
    #[error("{0}")]
    Site(ConfigErrors),
}

impl GatewayError {
    pub fn is_retryable(&self) -> bool {
        match self {
            GatewayError::Store(e) => e.is_retryable(),
            GatewayError::Rules(_) | GatewayError::Site(_) => false,
        }
    }
}

/// A commit of at least this many records (changes and audit entries) is followed by
/// reopening the store: the first sync of a roster, or approving hundreds at once.
const BULK_RECORDS: usize = 5_000;

pub struct Gateway {
    store: Store,
    world: World,
    policy: Policy,
    /// Bumped after every committed change, for the MQTT publisher and device writers.
    changed: tokio::sync::watch::Sender<u64>,
    /// Alerts of committed transitions, for the MQTT events.
    alerts: tokio::sync::broadcast::Sender<(core::Alert, Timestamp)>,
    /// Suggestions written since the publisher last looked (see [`Gateway::take_touched`]).
    touched: Touched,
}

/// What changed since the last look: the ids of suggestions written, or `all` when the
/// view of every suggestion may have changed (site data, a reload).
#[derive(Debug, Default)]
pub struct Touched {
    pub suggestions: std::collections::BTreeSet<core::SuggestionId>,
    pub all: bool,
}

impl Gateway {
    /// Open the store, seeding a new one from the site file and the configured mode.
    pub fn open(cfg: &Config) -> Result<Gateway, GatewayError> {
        let (mut store, mut world, fresh) = Store::open_world(&cfg.store.path)?;
        if world.residents.len() + world.grants.len() + world.pending.len() >= BULK_RECORDS {
            // Reading every record paged the whole store into sled's cache.
            store.reopen()?;
        }
        if fresh {
            let site = seed_site(cfg)?;
            let now = wall_clock();
            let mut t = core::replace_site(&world, site, Actor::System, now)?;
            world.apply(&t);
            let m = core::set_mode(&world, cfg.access.mode, Actor::System, now);
            world.apply(&m);
            t.changes.extend(m.changes);
            t.audit.extend(m.audit);
            store.commit(&t)?;
            tracing::info!(store = %cfg.store.path.display(), "new store seeded from the site file");
        } else if world.settings.mode != cfg.access.mode {
            tracing::warn!(
                stored = world.settings.mode.as_str(),
                configured = cfg.access.mode.as_str(),
                "the mode in the store differs from access.mode in the config; the store's \
                 mode is in force (access.mode only seeds a new store)"
            );
        }
        let mut gw = Gateway {
            store,
            world,
            policy: cfg.access.policy,
            changed: tokio::sync::watch::channel(0).0,
            alerts: tokio::sync::broadcast::channel(256).0,
            touched: Touched {
                all: true,
                ..Touched::default()
            },
        };
        // A store written before PINs were given at approval holds thousands of holders
        // without one; their PINs are one bulk commit.
        let pins = gw.assign_pins(wall_clock())?;
        gw.settle_memory_after(pins);
        Ok(gw)
    }

    /// A receiver that changes after every committed state change.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// The suggestions written since the last call, so that a publisher of thousands of
    /// retained suggestions looks only at what changed.
    pub fn take_touched(&mut self) -> Touched {
        std::mem::take(&mut self.touched)
    }

    /// Alerts raised by committed transitions, with their time.
    pub fn subscribe_alerts(&self) -> tokio::sync::broadcast::Receiver<(core::Alert, Timestamp)> {
        self.alerts.subscribe()
    }

    /// Give a PIN to every resident who lacks one (OS randomness): at start, and after a
    /// commit that grants, so that new key holders have one. Returns the records written.
    fn assign_pins(&mut self, now: Timestamp) -> Result<usize, GatewayError> {
        let t = core::assign_missing_pins(&self.world, &mut rand::rngs::OsRng, now);
        if !t.is_empty() {
            self.store.commit(&t)?;
            self.world.apply(&t);
            self.changed.send_modify(|n| *n += 1);
        }
        Ok(t.changes.len() + t.audit.len())
    }

    pub fn world(&self) -> &World {
        &self.world
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Make a transition computed against [`Gateway::world`] durable, then apply it. New key
    /// holders get their PIN in a second transaction right after.
    pub fn commit(&mut self, t: Transition) -> Result<Transition, GatewayError> {
        if let Err(e) = self.store.commit(&t) {
            // The transaction may have landed even though the fsync after it failed: read
            // the truth back rather than guess, so memory never drifts from disk.
            match self.store.load_world() {
                Ok(w) => {
                    self.world = w;
                    self.touched.all = true;
                }
                Err(reload) => {
                    tracing::error!(error = %reload, "cannot reload the store after a failed commit")
                }
            }
            self.changed.send_modify(|n| *n += 1);
            return Err(e.into());
        }
        self.world.apply(&t);
        for c in &t.changes {
            match c {
                core::Change::Suggestion(s) => {
                    self.touched.suggestions.insert(s.id.clone());
                }
                core::Change::Site(_) => self.touched.all = true,
                _ => {}
            }
        }
        self.changed.send_modify(|n| *n += 1);
        let at = t.audit.last().map_or_else(wall_clock, |a| a.at);
        for a in &t.alerts {
            let _ = self.alerts.send((a.clone(), at));
        }
        let mut pins = 0;
        if t.changes
            .iter()
            .any(|c| matches!(c, core::Change::Grant(_)))
        {
            match self.assign_pins(t.audit.last().map_or_else(wall_clock, |a| a.at)) {
                Ok(n) => pins = n,
                Err(e) => tracing::error!(error = %e, "could not assign PINs to new key holders"),
            }
        }
        self.settle_memory_after(t.changes.len() + t.audit.len() + pins);
        Ok(t)
    }

    /// After a bulk commit, close and reopen the store so that sled hands back the pages
    /// the transaction left in memory (see [`Store::reopen`]). The world in memory is
    /// already what the store holds, so nothing is read back.
    fn settle_memory_after(&mut self, records: usize) {
        if records < BULK_RECORDS {
            return;
        }
        let started = std::time::Instant::now();
        match self.store.reopen() {
            Ok(()) => {
                crate::daemon::release_freed_memory();
                tracing::info!(
                    records,
                    took_ms = started.elapsed().as_millis() as u64,
                    "reopened the store after a bulk commit, to hand back sled's memory"
                );
            }
            Err(e) => tracing::error!(
                error = %e,
                "could not reopen the store after a bulk commit; nothing more is written \
                 until leasegate is restarted"
            ),
        }
    }

    /// What a sync of this snapshot would do, without doing it.
    pub fn plan(&self, snapshot: &Snapshot, now: Timestamp) -> Result<Transition, GatewayError> {
        Ok(core::plan(&self.world, snapshot, &self.policy, now)?)
    }

    /// Sync one snapshot: create suggestions and, in automatic mode, apply them.
    pub fn sync(
        &mut self,
        snapshot: &Snapshot,
        now: Timestamp,
    ) -> Result<Transition, GatewayError> {
        let t = core::plan(&self.world, snapshot, &self.policy, now)?;
        let t = self.commit(t)?;
        // The sync has landed; failing to note its time must not make it look failed.
        let noted = self.store.sync_status().and_then(|mut status| {
            status.last_success = Some(now);
            status.residents = self.world.residents.len();
            self.store.put_sync_status(&status)
        });
        if let Err(e) = noted {
            tracing::warn!(error = %e, "the sync was applied but its time could not be recorded");
        }
        self.changed.send_modify(|n| *n += 1);
        Ok(t)
    }

    /// Record a failed sync for the status topic. Access is untouched.
    pub fn record_sync_failure(&mut self, error: &str, now: Timestamp) -> Result<(), GatewayError> {
        let mut status = self.store.sync_status()?;
        status.last_failure = Some(now);
        status.last_error = Some(error.to_string());
        self.store.put_sync_status(&status)?;
        self.changed.send_modify(|n| *n += 1);
        Ok(())
    }

    pub fn sync_status(&self) -> Result<SyncStatus, GatewayError> {
        Ok(self.store.sync_status()?)
    }

    pub fn approve(
        &mut self,
        ids: &[SuggestionId],
        actor: Actor,
        now: Timestamp,
    ) -> Result<Decision, GatewayError> {
        let decided = self.store.decided_states(ids)?;
        let d = core::approve(&self.world, ids, &decided, actor, now)?;
        let transition = self.commit(d.transition)?;
        Ok(Decision {
            transition,
            results: d.results,
        })
    }

    pub fn discard(
        &mut self,
        ids: &[SuggestionId],
        actor: Actor,
        now: Timestamp,
    ) -> Result<Decision, GatewayError> {
        let decided = self.store.decided_states(ids)?;
        let d = core::discard(&self.world, ids, &decided, actor, now)?;
        let transition = self.commit(d.transition)?;
        Ok(Decision {
            transition,
            results: d.results,
        })
    }

    pub fn set_override(
        &mut self,
        resident: &str,
        status: OverrideStatus,
        actor: Actor,
        now: Timestamp,
    ) -> Result<Transition, GatewayError> {
        let t = core::set_override(&self.world, resident, status, actor, now)?;
        self.commit(t)
    }

    pub fn assign_key(
        &mut self,
        resident: &str,
        key: &str,
        actor: Actor,
        now: Timestamp,
    ) -> Result<Transition, GatewayError> {
        let t = core::assign_key(&self.world, resident, key, actor, now)?;
        self.commit(t)
    }

    pub fn unassign_key(
        &mut self,
        resident: &str,
        key: &str,
        actor: Actor,
        now: Timestamp,
    ) -> Result<Transition, GatewayError> {
        let t = core::unassign_key(&self.world, resident, key, actor, now)?;
        self.commit(t)
    }

    pub fn set_mode(
        &mut self,
        mode: Mode,
        actor: Actor,
        now: Timestamp,
    ) -> Result<Transition, GatewayError> {
        let t = core::set_mode(&self.world, mode, actor, now);
        self.commit(t)
    }

    pub fn replace_site(
        &mut self,
        site: Site,
        actor: Actor,
        now: Timestamp,
    ) -> Result<Transition, GatewayError> {
        let t = core::replace_site(&self.world, site, actor, now)?;
        self.commit(t)
    }
}

fn seed_site(cfg: &Config) -> Result<Site, GatewayError> {
    match &cfg.site.site_file {
        Some(path) => config::load_site(path).map_err(GatewayError::Site),
        None => {
            tracing::warn!(
                "no site_file configured: the store starts with no units, doors or keys"
            );
            Ok(Site::default())
        }
    }
}

/// The world a dry run plans against: the store's if there is one, else the one a new store
/// would be seeded with. Creates nothing on disk.
pub fn dry_run_world(cfg: &Config) -> Result<World, GatewayError> {
    if store_exists(&cfg.store.path) {
        let (_store, world, fresh) = Store::open_world(&cfg.store.path)?;
        if !fresh {
            return Ok(world);
        }
    }
    Ok(World::new(
        seed_site(cfg)?,
        Settings {
            mode: cfg.access.mode,
        },
    ))
}

fn store_exists(path: &Path) -> bool {
    path.join("db").exists() || {
        let mut m = path.as_os_str().to_owned();
        m.push(".quarantined");
        Path::new(&m).exists()
    }
}

/// The wall clock, to whole seconds: panels and locks keep validity in UTC seconds, and a
/// suggestion's `valid_from` should read the same everywhere it is shown.
pub fn wall_clock() -> Timestamp {
    use chrono::SubsecRound;
    chrono::Utc::now().trunc_subsecs(0)
}
