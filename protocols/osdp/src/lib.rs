//! OSDP (IEC 60839-11-5) for a control panel: packet codec, messages, secure channel and
//! the leasegate credential profile. Pure functions over bytes and state machines that
//! return what to send; no I/O, no clock reads.
//!
//! - [`codec`]: frames on the wire; [`codec::decode`] tells "incomplete" from "invalid".
//! - [`message`]: typed commands and replies.
//! - [`secure`]: Secure Channel on RustCrypto AES (session keys, cryptograms, MAC, CBC).
//! - [`cp`]: one PD link as the control panel sees it.
//! - [`pd`]: a peripheral device (for the simulator and tests).
//! - [`profile`]: the leasegate credential profile carried in osdp_MFG/MFGREP.

pub mod codec;
pub mod cp;
pub mod crc;
pub mod message;
pub mod pd;
pub mod profile;
pub mod secure;

pub use codec::{decode, DecodeError, Frame};
pub use message::{Command, Reply, VendorCode};
pub use secure::Key;
