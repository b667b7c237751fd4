//! Unencrypted Nuki frames (pairing characteristic): the decoder and the reassembler never
//! panic, and whatever decodes re-encodes to the same bytes.
#![no_main]

use leasegate_nuki::frame::{self, Framing, Reassembler};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((m, used)) = frame::decode_plain(data) {
        assert_eq!(frame::encode_plain(m.command, &m.payload), data[..used]);
    }
    let mut r = Reassembler::new(Framing::Plain);
    for chunk in data.chunks(7) {
        r.push(chunk);
        while let Ok(Some(m)) = r.next_message() {
            let command = u16::from_le_bytes([m[0], m[1]]);
            assert_eq!(
                Some(m.len()),
                frame::plain_payload_len(command).map(|l| l + 4)
            );
        }
    }
});
