//! The durable state, on sled 0.34.7.
//!
//! - Every [`Transition`] is written in one sled transaction across all trees, then
//!   `flush()`ed and the `db` file fsynced before [`Store::commit`] returns. sled's flush
//!   alone lost acknowledged writes in a power-cut simulation (DESIGN §2).
//! - A schema version is kept in `meta`; a newer one is refused, never rewritten.
//! - Every change carries its audit entry, written in the same transaction.
//! - A store that fails to open as corrupt is moved aside and a quarantine marker is left
//!   next to it. Until `leasegate rebuild` clears the marker, opening fails with
//!   [`StoreError::Quarantined`] and the gateway grants and revokes nothing: a fresh empty
//!   store would otherwise be read as "nobody holds a key".

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::Transactional;

use crate::core::{
    AuditEntry, Change, DeviceId, Settings, Site, Suggestion, SuggestionId, SuggestionState,
    Timestamp, Transition, World,
};

/// The schema this build reads and writes.
pub const SCHEMA_VERSION: u64 = 1;

/// sled's page cache. Its 1 GiB default is most of a Pi's memory.
const CACHE_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the store at {path} is in use by another leasegate process")]
    Locked { path: PathBuf },
    #[error(
        "the store was quarantined at {at}: {reason}. It was moved to {moved_to}. \
         leasegate grants and revokes nothing until `leasegate rebuild` is run"
    )]
    Quarantined {
        at: String,
        reason: String,
        moved_to: PathBuf,
    },
    #[error("the store has schema version {found}; this leasegate supports up to {supported}")]
    SchemaTooNew { found: u64, supported: u64 },
    #[error("store I/O failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("store failed: {0}")]
    Sled(#[from] sled::Error),
    #[error("the store is closed: reopening it failed ({reason}); restart leasegate")]
    Closed { reason: String },
    #[error("store record {tree}/{key} is unreadable: {reason}")]
    Corrupt {
        tree: &'static str,
        key: String,
        reason: String,
    },
}

impl StoreError {
    /// Whether trying again later may succeed without a person doing anything.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Locked { .. } | StoreError::Io(_))
    }
}

/// What `status/sync` reports, kept in the store so it survives restarts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SyncStatus {
    pub last_success: Option<Timestamp>,
    pub last_failure: Option<Timestamp>,
    pub last_error: Option<String>,
    pub residents: usize,
}

/// The quarantine marker left beside a store that was moved aside.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Quarantine {
    at: String,
    reason: String,
    moved_to: PathBuf,
}

const META: &str = "meta";
const SITE: &str = "site";
const RESIDENTS: &str = "residents";
const GRANTS: &str = "grants";
const PENDING: &str = "pending";
const HISTORY: &str = "history";
const OVERRIDES: &str = "overrides";
const OUTBOX: &str = "outbox";
const AUDIT: &str = "audit";
const CREDENTIALS: &str = "credentials";
const DEVICES: &str = "devices";
const REPLIES: &str = "replies";

const K_SCHEMA: &[u8] = b"schema_version";
const K_SETTINGS: &[u8] = b"settings";
const K_NEXT_SEQ: &[u8] = b"next_seq";
const K_AUDIT_SEQ: &[u8] = b"audit_seq";
const K_SYNC: &[u8] = b"sync_status";
const K_SITE: &[u8] = b"site";

pub struct Store {
    path: PathBuf,
    /// `None` only after [`Store::reopen`] failed: every call then fails with
    /// [`StoreError::Closed`] rather than guess.
    open: Option<Trees>,
}

/// sled's handles. sled locks the directory until the last of them is dropped.
struct Trees {
    db: sled::Db,
    db_file: File,
    meta: sled::Tree,
    site: sled::Tree,
    residents: sled::Tree,
    grants: sled::Tree,
    pending: sled::Tree,
    history: sled::Tree,
    overrides: sled::Tree,
    outbox: sled::Tree,
    audit: sled::Tree,
    credentials: sled::Tree,
    /// Each device writer's own durable state (acknowledged records, sealed keys).
    devices: sled::Tree,
    /// First replies to state-changing requests, by actor and transaction.
    replies: sled::Tree,
}

fn enc<T: Serialize>(v: &T) -> Vec<u8> {
    // Our record types serialize infallibly (no maps with non-string keys, no custom errors).
    serde_json::to_vec(v).expect("record serializes")
}

fn dec<T: DeserializeOwned>(tree: &'static str, key: &[u8], v: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(v).map_err(|e| StoreError::Corrupt {
        tree,
        key: String::from_utf8_lossy(key).into_owned(),
        reason: e.to_string(),
    })
}

fn grant_key(resident: &str, key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(resident.len() + key.len() + 1);
    k.extend_from_slice(resident.as_bytes());
    k.push(0);
    k.extend_from_slice(key.as_bytes());
    k
}

fn quarantine_marker(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".quarantined");
    PathBuf::from(p)
}

impl Store {
    /// Open (or create) the store at `path`.
    ///
    /// Returns `Ok((store, fresh))`, where `fresh` says the store holds no site data yet and
    /// must be seeded.
    pub fn open(path: &Path) -> Result<(Store, bool), StoreError> {
        let marker = quarantine_marker(path);
        if let Ok(text) = std::fs::read_to_string(&marker) {
            let q: Quarantine = serde_json::from_str(&text).unwrap_or(Quarantine {
                at: "unknown".into(),
                reason: "quarantine marker present".into(),
                moved_to: path.to_path_buf(),
            });
            return Err(StoreError::Quarantined {
                at: q.at,
                reason: q.reason,
                moved_to: q.moved_to,
            });
        }
        // Only the process that will own the store may tidy it: another one's
        // `snap.*.generating` may be a snapshot being written right now. A lock that goes
        // away within a second (a gateway stopping as its successor starts; a child process
        // briefly holding inherited descriptors between fork and exec) is waited out.
        let mut tries = 0;
        loop {
            match ensure_unlocked(path) {
                Err(StoreError::Locked { .. }) if tries < 20 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                other => break other?,
            }
        }
        remove_unfinished_snapshots(path)?;
        match Self::open_inner(path) {
            Ok(s) => Ok(s),
            Err(e @ (StoreError::Corrupt { .. } | StoreError::Sled(_))) => {
                Err(quarantine(path, &e.to_string()))
            }
            Err(e) => Err(e),
        }
    }

    fn open_inner(path: &Path) -> Result<(Store, bool), StoreError> {
        // sled creates `conf` and `db` on its first open, and the schema version is written
        // right after. Until sled has written its first snapshot (on the second open), it
        // reads an emptied or garbled log as an empty database: an existing store without a
        // schema version has lost its data and must not be taken for a new one.
        let existed = path.join("conf").exists() || path.join("db").exists();
        std::fs::create_dir_all(path)?;
        // Every commit flushes and fsyncs before it returns, so sled's own background flusher
        // only adds CPU and SD-card wear; the page cache is kept small for the Pi.
        let db = match sled::Config::new()
            .path(path)
            .flush_every_ms(None)
            .cache_capacity(CACHE_BYTES)
            .open()
        {
            Ok(db) => db,
            Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") => {
                return Err(StoreError::Locked {
                    path: path.to_path_buf(),
                })
            }
            Err(sled::Error::Io(e)) => return Err(StoreError::Io(e)),
            Err(e) => return Err(StoreError::Sled(e)),
        };
        let db_file = File::open(path.join("db"))?;
        let t = |name: &str| db.open_tree(name);
        let trees = Trees {
            meta: t(META)?,
            site: t(SITE)?,
            residents: t(RESIDENTS)?,
            grants: t(GRANTS)?,
            pending: t(PENDING)?,
            history: t(HISTORY)?,
            overrides: t(OVERRIDES)?,
            outbox: t(OUTBOX)?,
            audit: t(AUDIT)?,
            credentials: t(CREDENTIALS)?,
            devices: t(DEVICES)?,
            replies: t(REPLIES)?,
            db,
            db_file,
        };
        let store = Store {
            path: path.to_path_buf(),
            open: Some(trees),
        };
        let fresh = match store.trees()?.meta.get(K_SCHEMA)? {
            Some(v) => {
                let found: u64 = dec(META, K_SCHEMA, &v)?;
                if found > SCHEMA_VERSION {
                    return Err(StoreError::SchemaTooNew {
                        found,
                        supported: SCHEMA_VERSION,
                    });
                }
                store.trees()?.site.get(K_SITE)?.is_none()
            }
            None => {
                let others_empty = [
                    &store.trees()?.residents,
                    &store.trees()?.grants,
                    &store.trees()?.pending,
                    &store.trees()?.audit,
                ]
                .iter()
                .all(|t| t.is_empty());
                if !others_empty || existed {
                    return Err(StoreError::Corrupt {
                        tree: META,
                        key: "schema_version".into(),
                        reason: if others_empty {
                            "missing from an existing store: its log is lost or unreadable"
                        } else {
                            "missing from a store that holds records"
                        }
                        .into(),
                    });
                }
                store.trees()?.meta.insert(K_SCHEMA, enc(&SCHEMA_VERSION))?;
                store.durable()?;
                if let Some(parent) = path.parent() {
                    // The directory entry of a new store must survive a power cut too.
                    if let Ok(d) = File::open(if parent.as_os_str().is_empty() {
                        Path::new(".")
                    } else {
                        parent
                    }) {
                        let _ = d.sync_all();
                    }
                }
                true
            }
        };
        Ok((store, fresh))
    }

    /// Open the store and read it whole. A record that cannot be read quarantines the store
    /// like a log that cannot be: half a world is worse than none.
    pub fn open_world(path: &Path) -> Result<(Store, World, bool), StoreError> {
        let (store, fresh) = Store::open(path)?;
        match store.load_world() {
            Ok(world) => Ok((store, world, fresh)),
            Err(e @ StoreError::Corrupt { .. }) => {
                drop(store); // release sled's lock before the directory moves
                Err(quarantine(path, &e.to_string()))
            }
            Err(e) => Err(e),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn trees(&self) -> Result<&Trees, StoreError> {
        self.open.as_ref().ok_or_else(|| StoreError::Closed {
            reason: "an earlier reopen failed".into(),
        })
    }

    /// Close sled and open it again, to hand its memory back. sled keeps every page a
    /// transaction wrote in memory whatever its cache size until the database is closed,
    /// and frees what it replaces only through crossbeam's epoch collector, a few bags at a
    /// time: the first sync of 10,000 residents (~60,000 records) left 414–460 MB resident
    /// where a restart on the same store needs 72 MB. When this fails, the store stays
    /// closed and every later call fails with [`StoreError::Closed`].
    pub fn reopen(&mut self) -> Result<(), StoreError> {
        self.open = None;
        collect_epoch_garbage();
        // sled locks the directory until its last handle is gone, and a background thread
        // of the old instance may hold one for a moment after the drop.
        let mut tries = 0;
        loop {
            match Store::open_inner(&self.path) {
                Ok((store, _)) => {
                    self.open = store.open;
                    return Ok(());
                }
                Err(StoreError::Locked { .. }) if tries < 40 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(25));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Clear a quarantine so that a new store can be created at `path`. The old data stays
    /// where it was moved.
    pub fn clear_quarantine(path: &Path) -> Result<bool, StoreError> {
        let marker = quarantine_marker(path);
        match std::fs::remove_file(&marker) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Make everything written so far survive a power cut.
    fn durable(&self) -> Result<(), StoreError> {
        self.trees()?.db.flush()?;
        self.trees()?.db_file.sync_all()?;
        Ok(())
    }

    /// Read every record into a [`World`].
    pub fn load_world(&self) -> Result<World, StoreError> {
        let site: Site = match self.trees()?.site.get(K_SITE)? {
            Some(v) => dec(SITE, K_SITE, &v)?,
            None => Site::default(),
        };
        let settings: Settings = match self.trees()?.meta.get(K_SETTINGS)? {
            Some(v) => dec(META, K_SETTINGS, &v)?,
            None => Settings::default(),
        };
        let mut w = World::new(site, settings);
        if let Some(v) = self.trees()?.meta.get(K_NEXT_SEQ)? {
            w.next_seq = dec(META, K_NEXT_SEQ, &v)?;
        }
        for kv in self.trees()?.residents.iter() {
            let (k, v) = kv?;
            let r: crate::core::Resident = dec(RESIDENTS, &k, &v)?;
            w.residents.insert(r.id.clone(), r);
        }
        for kv in self.trees()?.grants.iter() {
            let (k, v) = kv?;
            let g: crate::core::Grant = dec(GRANTS, &k, &v)?;
            w.grants.insert(g);
        }
        for kv in self.trees()?.pending.iter() {
            let (k, v) = kv?;
            let s: Suggestion = dec(PENDING, &k, &v)?;
            w.pending.insert(s.id.clone(), s);
        }
        for kv in self.trees()?.overrides.iter() {
            let (k, v) = kv?;
            let o: crate::core::Override = dec(OVERRIDES, &k, &v)?;
            w.overrides.insert(o.resident_id.clone(), o);
        }
        for kv in self.trees()?.credentials.iter() {
            let (k, v) = kv?;
            let c: crate::core::Credentials = dec(CREDENTIALS, &k, &v)?;
            w.credentials.insert(c.resident_id.clone(), c);
        }
        Ok(w)
    }

    /// Write a transition atomically and durably. When this returns `Ok`, the change
    /// survives kill -9 and power loss; when it returns `Err`, none of it was written.
    pub fn commit(&self, t: &Transition) -> Result<(), StoreError> {
        if t.is_empty() {
            return Ok(());
        }
        let trees = (
            &self.trees()?.meta,
            &self.trees()?.site,
            &self.trees()?.residents,
            &self.trees()?.grants,
            &self.trees()?.pending,
            &self.trees()?.history,
            &self.trees()?.overrides,
            &self.trees()?.outbox,
            &self.trees()?.audit,
            &self.trees()?.credentials,
            &self.trees()?.replies,
        );
        let res: Result<(), TransactionError<StoreError>> = trees.transaction(
            |(
                meta,
                site,
                residents,
                grants,
                pending,
                history,
                overrides,
                outbox,
                audit,
                credentials,
                replies,
            )| {
                for c in &t.changes {
                    match c {
                        Change::Resident(r) => {
                            residents.insert(r.id.as_bytes(), enc(r))?;
                        }
                        Change::Grant(g) => {
                            grants.insert(grant_key(&g.resident_id, &g.key_id), enc(g))?;
                        }
                        Change::Ungrant {
                            resident_id,
                            key_id,
                        } => {
                            grants.remove(grant_key(resident_id, key_id))?;
                        }
                        Change::Suggestion(s) => {
                            if s.state == SuggestionState::Pending {
                                pending.insert(s.id.as_bytes(), enc(s))?;
                            } else {
                                pending.remove(s.id.as_bytes())?;
                                history.insert(s.id.as_bytes(), enc(s))?;
                            }
                        }
                        Change::Override(o) => {
                            overrides.insert(o.resident_id.as_bytes(), enc(o))?;
                        }
                        Change::ClearOverride { resident_id } => {
                            overrides.remove(resident_id.as_bytes())?;
                        }
                        Change::Settings(s) => {
                            meta.insert(K_SETTINGS, enc(s))?;
                        }
                        Change::Site(s) => {
                            site.insert(K_SITE, enc(s))?;
                        }
                        Change::NextSeq(n) => {
                            meta.insert(K_NEXT_SEQ, enc(n))?;
                        }
                        Change::DeviceDirty(d) => {
                            let gen = read_u64(outbox, d.as_bytes())?;
                            outbox.insert(d.as_bytes(), &(gen + 1).to_be_bytes())?;
                        }
                        Change::Credentials(c) => {
                            credentials.insert(c.resident_id.as_bytes(), enc(c))?;
                        }
                    }
                }
                if let Some((key, reply)) = &t.reply {
                    replies.insert(key.as_bytes(), reply.as_bytes())?;
                }
                let mut seq = read_u64(meta, K_AUDIT_SEQ)?;
                for a in &t.audit {
                    seq += 1;
                    audit.insert(&seq.to_be_bytes(), enc(a))?;
                }
                meta.insert(K_AUDIT_SEQ, &seq.to_be_bytes())?;
                Ok(())
            },
        );
        match res {
            Ok(()) => {}
            Err(TransactionError::Abort(e)) => return Err(e),
            Err(TransactionError::Storage(e)) => return Err(e.into()),
        }
        self.durable()
    }

    /// The state of suggestions that are no longer pending, for per-item decision results.
    pub fn decided_states(
        &self,
        ids: &[SuggestionId],
    ) -> Result<BTreeMap<SuggestionId, SuggestionState>, StoreError> {
        let mut out = BTreeMap::new();
        for id in ids {
            if let Some(v) = self.trees()?.history.get(id.as_bytes())? {
                let s: Suggestion = dec(HISTORY, id.as_bytes(), &v)?;
                out.insert(id.clone(), s.state);
            }
        }
        Ok(out)
    }

    /// A suggestion in any state.
    pub fn suggestion(&self, id: &str) -> Result<Option<Suggestion>, StoreError> {
        for (name, tree) in [
            (PENDING, &self.trees()?.pending),
            (HISTORY, &self.trees()?.history),
        ] {
            if let Some(v) = tree.get(id.as_bytes())? {
                return Ok(Some(dec(name, id.as_bytes(), &v)?));
            }
        }
        Ok(None)
    }

    pub fn sync_status(&self) -> Result<SyncStatus, StoreError> {
        Ok(match self.trees()?.meta.get(K_SYNC)? {
            Some(v) => dec(META, K_SYNC, &v)?,
            None => SyncStatus::default(),
        })
    }

    pub fn put_sync_status(&self, s: &SyncStatus) -> Result<(), StoreError> {
        self.trees()?.meta.insert(K_SYNC, enc(s))?;
        self.durable()
    }

    /// Devices whose credential set changed, with a generation that grows on every change.
    /// A writer that has brought a device up to date calls [`Store::settle_device`].
    pub fn dirty_devices(&self) -> Result<Vec<(DeviceId, u64)>, StoreError> {
        let mut out = Vec::new();
        for kv in self.trees()?.outbox.iter() {
            let (k, v) = kv?;
            out.push((String::from_utf8_lossy(&k).into_owned(), be_u64(&v)));
        }
        Ok(out)
    }

    /// Mark a device settled at `generation`; a change since then keeps it dirty.
    pub fn settle_device(&self, device: &str, generation: u64) -> Result<bool, StoreError> {
        let res = self.trees()?.outbox.compare_and_swap(
            device.as_bytes(),
            Some(&generation.to_be_bytes()[..]),
            None as Option<&[u8]>,
        )?;
        self.durable()?;
        Ok(res.is_ok())
    }

    /// A device writer's own state blob, as it last stored it.
    pub fn device_state(&self, device: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .trees()?
            .devices
            .get(device.as_bytes())?
            .map(|v| v.to_vec()))
    }

    /// Replace a device writer's state blob durably (flushed and fsynced on return).
    pub fn put_device_state(&self, device: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.trees()?.devices.insert(device.as_bytes(), bytes)?;
        self.durable()
    }

    /// The first reply to a state-changing request, stored with the change it made.
    pub fn reply(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .trees()?
            .replies
            .get(key.as_bytes())?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Store a reply of a request that changed nothing (a refusal is replayed as well).
    pub fn put_reply(&self, key: &str, reply: &str) -> Result<(), StoreError> {
        self.trees()?
            .replies
            .insert(key.as_bytes(), reply.as_bytes())?;
        self.durable()
    }

    /// Audit entries with sequence numbers, oldest first, starting after `after`.
    pub fn audit_since(&self, after: u64) -> Result<Vec<(u64, AuditEntry)>, StoreError> {
        let mut out = Vec::new();
        for kv in self.trees()?.audit.range((after + 1).to_be_bytes()..) {
            let (k, v) = kv?;
            out.push((be_u64(&k), dec(AUDIT, &k, &v)?));
        }
        Ok(out)
    }
}

/// Run crossbeam's default collector until sled's deferred frees have been done. Each
/// round advances the epoch once and frees a few bags; 20,000 rounds (under 1 ms when there
/// is nothing to free) cleared the garbage of a 180,000-record transaction in a test.
fn collect_epoch_garbage() {
    for _ in 0..20_000 {
        crossbeam_epoch::pin().flush();
    }
}

fn be_u64(v: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = v.len().min(8);
    b[8 - n..].copy_from_slice(&v[v.len() - n..]);
    u64::from_be_bytes(b)
}

fn read_u64(
    t: &TransactionalTree,
    key: &[u8],
) -> Result<u64, ConflictableTransactionError<StoreError>> {
    Ok(t.get(key)?.map(|v| be_u64(&v)).unwrap_or(0))
}

/// Fail with [`StoreError::Locked`] if another process holds the store. sled takes the same
/// exclusive lock on `db` when it opens; ours is released at once so that sled can take it.
fn ensure_unlocked(path: &Path) -> Result<(), StoreError> {
    let file = match File::open(path.join("db")) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    match file.try_lock() {
        Ok(()) => Ok(file.unlock()?),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Locked {
            path: path.to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
    }
}

/// sled picks the newest `snap.*` file, including an unfinished `snap.*.generating` left by
/// an abrupt stop, and then reports corruption. The finished snapshot or the log always
/// hold the same data, so the unfinished file is safe to drop.
fn remove_unfinished_snapshots(path: &Path) -> Result<(), StoreError> {
    let entries = match std::fs::read_dir(path) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            tracing::warn!(file = %name, "removing an unfinished sled snapshot");
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// Move a store that fails to open aside and leave a marker, so that nothing is granted or
/// revoked against an empty replacement.
fn quarantine(path: &Path, reason: &str) -> StoreError {
    let at = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let mut moved = path.as_os_str().to_owned();
    moved.push(format!(".corrupt-{at}"));
    let mut moved_to = PathBuf::from(moved);
    // Two quarantines in one second must not collide.
    let mut n = 1;
    while moved_to.exists() {
        n += 1;
        let mut m = path.as_os_str().to_owned();
        m.push(format!(".corrupt-{at}-{n}"));
        moved_to = PathBuf::from(m);
    }
    let q = Quarantine {
        at: at.clone(),
        reason: reason.to_string(),
        moved_to: moved_to.clone(),
    };
    // The marker goes first: if we die between the two steps, the next start still refuses.
    let marker = quarantine_marker(path);
    let written = std::fs::write(&marker, enc(&q))
        .and_then(|()| File::open(&marker)?.sync_all())
        .and_then(|()| std::fs::rename(path, &moved_to));
    if let Err(e) = written {
        return StoreError::Io(std::io::Error::new(
            e.kind(),
            format!(
                "the store at {} is unreadable ({reason}) and could not be quarantined: {e}",
                path.display()
            ),
        ));
    }
    tracing::error!(moved_to = %moved_to.display(), %reason, "store quarantined");
    StoreError::Quarantined {
        at,
        reason: reason.to_string(),
        moved_to,
    }
}
