//! Encrypted Nuki frames: decrypting arbitrary bytes never panics; the reassembler never
//! yields a message shorter than its header says; anything that decrypts re-encrypts to the
//! same bytes.
#![no_main]

use leasegate_nuki::frame::{self, Framing, Reassembler};
use leasegate_nuki::SharedKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = SharedKey::from_bytes([0x21; 32]);
    if let Ok((auth, m, used)) = frame::decode_encrypted(&key, data) {
        let nonce: [u8; 24] = data[..24].try_into().unwrap();
        let again = frame::encode_encrypted(&key, &nonce, auth, m.command, &m.payload);
        assert_eq!(again, data[..used]);
    }
    let mut r = Reassembler::new(Framing::Encrypted);
    for chunk in data.chunks(20) {
        r.push(chunk);
        while let Ok(Some(m)) = r.next_message() {
            assert_eq!(frame::encrypted_len(&m), Ok(m.len()));
        }
    }
});
