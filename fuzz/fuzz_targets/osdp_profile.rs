//! The leasegate credential profile: responses as the CP decodes them, requests as a panel
//! does. Never panics; what decodes re-encodes to the same bytes; a panel answers every
//! request whose header parses, with the same request id.
#![no_main]

use leasegate_osdp::profile::{PanelDb, Request, Response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = Response::decode(data) {
        assert_eq!(r.encode(), data);
    }
    match Request::decode(data) {
        Ok((id, req)) => {
            assert_eq!(req.encode(id), data);
            let reply = PanelDb::new(64).handle(data, 1024).expect("a reply");
            assert_eq!(Response::decode(&reply).expect("valid reply").request_id, id);
        }
        Err((Some(id), _)) => {
            let reply = PanelDb::new(64).handle(data, 1024).expect("a refusal");
            assert_eq!(Response::decode(&reply).expect("valid reply").request_id, id);
        }
        Err((None, _)) => assert!(PanelDb::new(64).handle(data, 1024).is_none()),
    }
});
