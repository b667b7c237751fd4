//! Keypad codes written per minute per lock, through the real btleplug driver, against the
//! fake BlueZ with a simulated 30 ms connection interval (each write request and each
//! indication costs one interval). Not a test: prints figures and the ratio to the model
//! (field notes: ≈ 25 connection intervals per code = challenge request + challenge +
//! command + reply in 20-byte pieces).
//!
//! cargo bench --bench nuki_codes [-- CODES]

#[path = "../tests/nuki/harness.rs"]
mod harness;
#[path = "../tests/support/python.rs"]
mod python;

use std::time::Instant;

use harness::{FakeBluez, SECURITY_PIN};
use leasegate::lock::{BleLock, Session};
use leasegate_nuki::{
    AppIdentity, IdType, KeypadCode, Op, Outcome, PinWidth, SecurityPin, TimeLimits,
};

const INTERVAL_MS: f64 = 30.0;
const MODEL_INTERVALS_PER_CODE: f64 = 25.0;

fn main() {
    let codes: u32 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20);
    let fake = FakeBluez::start(&["--interval-ms", &INTERVAL_MS.to_string()]);
    let cfg = fake.config(SECURITY_PIN);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let t = Instant::now();
        let mut link = BleLock::connect(&cfg, &cfg.locks[0]).await.unwrap();
        let connect = t.elapsed();
        let paired = link
            .pair(AppIdentity {
                id_type: IdType::App,
                app_id: 1,
                name: "bench".into(),
            })
            .await
            .unwrap();
        let session = Session {
            auth_id: paired.auth_id,
            key: paired.shared_key.clone(),
        };
        let pin = SecurityPin::new(SECURITY_PIN, PinWidth::U16).unwrap();
        let writes_before = link.writes;
        let t = Instant::now();
        for i in 0..codes {
            // 6 digits 1-9, not starting with 12: 3xxxxx
            let digits: String = format!("{:05}", i * 7919 % 59049)
                .chars()
                .map(|c| char::from(b'1' + (c as u8 - b'0') % 9))
                .collect();
            let code = KeypadCode::new(format!("3{digits}").parse().unwrap()).unwrap();
            let out = link
                .exchange(
                    &session,
                    Op::AddCode {
                        code,
                        name: format!("lg bench {i}"),
                        limits: TimeLimits::default(),
                    },
                    &pin,
                )
                .await;
            assert!(matches!(out, Ok(Outcome::CodeAdded { .. })), "{out:?}");
        }
        let elapsed = t.elapsed().as_secs_f64();
        let writes = link.writes - writes_before;
        link.disconnect().await;
        let per_code = elapsed / codes as f64;
        let intervals = per_code * 1000.0 / INTERVAL_MS;
        let state = fake.state();
        println!("nuki_codes: {codes} keypad codes over one connection, {INTERVAL_MS} ms interval");
        println!("  connect + discover + subscribe: {:.0} ms", connect.as_secs_f64() * 1000.0);
        println!(
            "  {:.1} codes/min per lock ({:.0} ms per code, {:.1} BLE writes per code)",
            60.0 / per_code,
            per_code * 1000.0,
            writes as f64 / codes as f64
        );
        println!(
            "  {intervals:.1} connection intervals per code; model {MODEL_INTERVALS_PER_CODE}: ratio {:.2} (model {:.1} codes/min)",
            intervals / MODEL_INTERVALS_PER_CODE,
            60_000.0 / (MODEL_INTERVALS_PER_CODE * INTERVAL_MS)
        );
        println!("  lock holds {} codes", state["codes"].as_object().unwrap().len());
    });
}
