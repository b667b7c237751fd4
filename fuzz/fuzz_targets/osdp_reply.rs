//! OSDP reply frames as a CP reads them off the bus: the codec, then the typed reply.
//! Never panics; a frame that decodes re-encodes to the same bytes; a typed reply re-encodes
//! to the same code and data.
#![no_main]

use leasegate_osdp::codec::decode;
use leasegate_osdp::message::Reply;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match decode(data) {
        Ok((frame, used)) => {
            assert!(used <= data.len());
            let start = usize::from(data[0] == 0xff);
            assert_eq!(frame.encode(), &data[start..used]);
            if let Ok(r) = Reply::decode(frame.code, &frame.data) {
                assert_eq!(r.code(), frame.code);
                assert_eq!(r.data(), frame.data);
            }
        }
        Err(leasegate_osdp::DecodeError::Incomplete) => {
            // A prefix of a frame: must stay incomplete or become a verdict with more bytes.
        }
        Err(_) => {}
    }
});
