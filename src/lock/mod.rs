//! Nuki smart locks over BLE: the btleplug driver ([`ble`]), the writer that brings each
//! lock to the outbox's desired keypad codes ([`writer`]), and pairing ([`pair_lock`]).
//! The writer reaches a lock through a [`Connector`] ([`link`]): BLE in production, or the
//! in-process [`sim::SimulatedLock`] that the demo selects in code.
//!
//! The protocol itself (frames, crypto, pairing and command state machines) is the pure
//! `leasegate-nuki` crate; this module only moves its bytes.

pub mod ble;
pub mod link;
pub mod sim;
pub mod state;
pub mod writer;

pub use ble::{BleLock, LockError, Session};
pub use link::{Connector, LockLink};
pub use sim::{SimulatedLock, SimulatedLocks};
pub use state::{LockState, StoredAuth};
pub use writer::{
    pair_lock, pair_lock_with, run_lock, run_lock_with, run_locks, run_locks_with, LockPort,
    PassReport,
};
