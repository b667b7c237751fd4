//! Nuki Smart Lock BLE API v2.2.1: framing, encryption, pairing and commands. Pure
//! functions over bytes; no I/O, no clock, no randomness (callers pass nonces and keys drawn
//! from the OS CSPRNG).
//!
//! See `README.md` in this crate for the byte layouts and which details are inferred.

pub mod crc;
pub mod error;
pub mod exchange;
pub mod frame;
pub mod keys;
pub mod message;
pub mod pairing;
pub mod time;

pub use error::{ErrorCode, ErrorReport};
pub use exchange::{Exchange, ExchangeError, Op, Outcome, Progress};
pub use frame::{FrameError, Framing, Message, Reassembler};
pub use keys::{AppSecretKey, PinWidth, SecurityPin, SharedKey};
pub use message::{
    AuthorizationEntry, Command, KeypadCode, KeypadCodeEntry, KeyturnerStates, PayloadError, Reply,
    Status,
};
pub use pairing::{AppIdentity, IdType, Paired, Pairing, PairingError, PairingStep};
pub use time::{NukiDate, TimeLimits, TimeOfDay, Weekdays};

/// Command identifiers (u16 little-endian on the wire).
pub mod cmd {
    pub const REQUEST_DATA: u16 = 0x0001;
    pub const PUBLIC_KEY: u16 = 0x0003;
    pub const CHALLENGE: u16 = 0x0004;
    pub const AUTHORIZATION_AUTHENTICATOR: u16 = 0x0005;
    pub const AUTHORIZATION_DATA: u16 = 0x0006;
    pub const AUTHORIZATION_ID: u16 = 0x0007;
    pub const REMOVE_AUTHORIZATION: u16 = 0x0008;
    pub const REQUEST_AUTHORIZATION_ENTRIES: u16 = 0x0009;
    pub const AUTHORIZATION_ENTRY: u16 = 0x000a;
    pub const AUTHORIZATION_DATA_INVITE: u16 = 0x000b;
    pub const KEYTURNER_STATES: u16 = 0x000c;
    pub const STATUS: u16 = 0x000e;
    pub const ERROR_REPORT: u16 = 0x0012;
    pub const AUTHORIZATION_ID_CONFIRMATION: u16 = 0x001e;
    pub const AUTHORIZATION_ID_INVITE: u16 = 0x001f;
    pub const AUTHORIZATION_ENTRY_COUNT: u16 = 0x0027;
    pub const ADD_KEYPAD_CODE: u16 = 0x0041;
    pub const KEYPAD_CODE_ID: u16 = 0x0042;
    pub const REQUEST_KEYPAD_CODES: u16 = 0x0043;
    pub const KEYPAD_CODE_COUNT: u16 = 0x0044;
    pub const KEYPAD_CODE: u16 = 0x0045;
    pub const UPDATE_KEYPAD_CODE: u16 = 0x0046;
    pub const REMOVE_KEYPAD_CODE: u16 = 0x0047;
}

/// GATT UUIDs (Smart Lock 1–4).
pub mod gatt {
    pub const PAIRING_SERVICE: &str = "a92ee100-5501-11e4-916c-0800200c9a66";
    pub const PAIRING_GDIO: &str = "a92ee101-5501-11e4-916c-0800200c9a66";
    pub const KEYTURNER_SERVICE: &str = "a92ee200-5501-11e4-916c-0800200c9a66";
    pub const KEYTURNER_GDIO: &str = "a92ee201-5501-11e4-916c-0800200c9a66";
    pub const KEYTURNER_USDIO: &str = "a92ee202-5501-11e4-916c-0800200c9a66";
}
