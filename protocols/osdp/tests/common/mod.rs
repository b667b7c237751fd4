//! Shared helpers for the trace tests: the reference JSON and a fixed "random" source.
#![allow(dead_code)]

use serde_json::Value;

pub fn traces() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/osdp-traces.json"
    ))
    .expect("reference traces");
    serde_json::from_str(&text).expect("valid JSON")
}

pub fn hex(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string")).expect("valid hex")
}

pub fn arr<const N: usize>(v: &Value) -> [u8; N] {
    hex(v).try_into().expect("length")
}

/// A "random" source that hands out the given bytes in order (the traces' RND.A/RND.B).
pub struct Replay(pub Vec<u8>);

impl rand_core::RngCore for Replay {
    fn next_u32(&mut self) -> u32 {
        rand_core::impls::next_u32_via_fill(self)
    }
    fn next_u64(&mut self) -> u64 {
        rand_core::impls::next_u64_via_fill(self)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        assert!(self.0.len() >= dest.len(), "test randomness exhausted");
        let rest = self.0.split_off(dest.len());
        dest.copy_from_slice(&self.0);
        self.0 = rest;
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}
impl rand_core::CryptoRng for Replay {}

pub const CAPTURES: [&str; 5] = [
    "a_plain_mfg",
    "b_secure_channel",
    "b2_secure_channel_event_mode",
    "c_poll_ack_and_nak",
    "c2_own_cp_secure_channel",
];
