//! Nuki smart locks over BLE: the btleplug driver ([`ble`]), the writer that brings each
//! lock to the outbox's desired keypad codes ([`writer`]), and pairing ([`pair_lock`]).
//!
//! The protocol itself (frames, crypto, pairing and command state machines) is the pure
//! `leasegate-nuki` crate; this module only moves its bytes.

pub mod ble;
pub mod state;
pub mod writer;

pub use ble::{BleLock, LockError, Session};
pub use state::{LockState, StoredAuth};
pub use writer::{pair_lock, run_lock, run_locks, LockPort, PassReport};
