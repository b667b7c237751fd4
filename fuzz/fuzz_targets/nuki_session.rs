//! The pairing and exchange state machines fed arbitrary lock messages: never panic, and
//! once finished they stay finished.
#![no_main]

use leasegate_nuki::frame::Message;
use leasegate_nuki::{
    AppIdentity, AppSecretKey, Exchange, ExchangeError, IdType, KeypadCode, Op, Pairing,
    PairingError, PairingStep, PinWidth, Progress, Reply, SecurityPin, TimeLimits,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (mut p, _) = Pairing::start(
        AppSecretKey::from_bytes([7; 32]),
        AppIdentity {
            id_type: IdType::Bridge,
            app_id: 1,
            name: "fuzz".into(),
        },
        [8; 32],
    );
    let pin = SecurityPin::new(1, PinWidth::U16).unwrap();
    let (mut x, _) = Exchange::start(
        Op::AddCode {
            code: KeypadCode::new(345678).unwrap(),
            name: "f".into(),
            limits: TimeLimits::default(),
        },
        pin,
    );
    let (mut p_done, mut x_done) = (false, false);
    let mut rest = data;
    while rest.len() >= 3 {
        let command = u16::from_le_bytes([rest[0], rest[1]]);
        let len = (rest[2] as usize).min(rest.len() - 3);
        let payload = rest[3..3 + len].to_vec();
        rest = &rest[3 + len..];
        let m = Message { command, payload };
        match p.on_message(&m) {
            Ok(PairingStep::Send(_)) => assert!(!p_done),
            Ok(PairingStep::Done(_)) | Err(_) if p_done => {
                assert_eq!(p.on_message(&m), Err(PairingError::Finished))
            }
            Ok(PairingStep::Done(_)) | Err(_) => p_done = true,
        }
        if let Ok(r) = Reply::decode(m.command, &m.payload) {
            match x.on_reply(r) {
                Ok(Progress::Send(_)) | Ok(Progress::Wait) => assert!(!x_done),
                Ok(Progress::Done(_)) => x_done = true,
                Err(ExchangeError::Finished) => assert!(x_done),
                Err(_) => x_done = true,
            }
        }
    }
});
