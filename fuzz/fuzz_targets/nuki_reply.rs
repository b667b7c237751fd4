//! Nuki reply payloads: first two bytes are the command id. Decoding never panics and is
//! stable: decode(encode(decode(x))) == decode(x).
#![no_main]

use leasegate_nuki::Reply;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let command = u16::from_le_bytes([data[0], data[1]]);
    if let Ok(r) = Reply::decode(command, &data[2..]) {
        let (c, p) = r.encode();
        assert_eq!(c, command);
        let again = Reply::decode(c, &p).expect("what we encode decodes");
        let (c2, p2) = again.encode();
        assert_eq!((c2, &p2), (c, &p));
    }
});
