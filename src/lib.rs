//! leasegate: building access that follows the lease.
//!
//! # Layout
//!
//! - [`core`]: the access rules, pure. Roster snapshots and people's decisions in, record
//!   changes with their audit trail out. No I/O, no clock reads, no async.
//! - [`store`]: the durable state on sled. One transaction per state change, fsync before
//!   acknowledging, schema version, audit log, and quarantine of a store that fails to open.
//! - [`config`]: the deployment config (TOML) and the site file, validated before any I/O,
//!   with every error reported at once.
//! - [`pms`]: roster sources behind the [`pms::RosterSource`] trait: the `file` source and
//!   the Buildium, Entrata and Rent Manager adapters, over the shared HTTPS transport in
//!   [`pms::http`]. Adapters translate; all-or-nothing paging lives in [`pms::expect_page`].
//! - [`gateway`]: the service that joins a store and the rules: sync, plan, decisions. It
//!   says when it changed (a watch), which suggestions a commit touched, and its alerts.
//! - [`mqtt`]: the MQTT API (contract in `protocols/mqtt-api/`): typed requests, replies
//!   stored with their change for replay, retained state, events, Home Assistant discovery,
//!   the demo's embedded broker. [`ctl`] is its command-line client.
//! - [`outbox`]: what each device should hold, for the device writers; [`events`] is what
//!   they report; [`seal`] keeps their keys sealed at rest.
//! - [`panel`]: OSDP control panel on RS-485 (codec and secure channel in the
//!   `leasegate-osdp` crate), the panel writer and the reference panel simulator.
//! - [`lock`]: Nuki locks over BLE with btleplug (frames and crypto in `leasegate-nuki`),
//!   pairing and the lock writer.
//! - [`daemon`]: `run(config, shutdown)`: the sync loop (complete and incremental fetches,
//!   backoff, a "sync now" trigger, watchdog) and the adapters beside it (MQTT, one writer
//!   per bus and per lock), all stopped within a grace period on shutdown.
//! - [`supervisor`]: restarts a failed or panicked adapter with backoff, retries device
//!   faults for as long as they last, and gives up (the process exits) only on repeated
//!   crashes.
//! - [`report`]: the JSON that `plan` and `sync --once` print.
//! - [`demo`]: `leasegate demo`, the whole gateway on simulated panels and locks.

pub mod config;
pub mod core;
pub mod ctl;
pub mod daemon;
pub mod demo;
pub mod events;
pub mod gateway;
pub mod lock;
pub mod mqtt;
pub mod outbox;
pub mod panel;
pub mod pms;
pub mod report;
pub mod seal;
pub mod store;
pub mod supervisor;
