//! MQTT API requests: any command name and payload parse into a typed command or an error
//! reply with a code and a message; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use leasegate::mqtt::api::{parse_request, Flags, Topics};

fuzz_target!(|data: &[u8]| {
    // First line: the command (e.g. `suggestions/approve`); the rest: the payload.
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let Ok(command) = std::str::from_utf8(&data[..split]) else {
        return;
    };
    let payload = data.get(split + 1..).unwrap_or_default();
    let topics = Topics::new("leasegate", "site");
    let topic = format!("leasegate/site/request/fuzz/{command}");
    let now = "2026-12-04T05:00:00Z".parse().unwrap();
    match parse_request(&topics, &topic, payload, Flags::default(), now) {
        Ok(Some(r)) => {
            assert_eq!(r.actor, "fuzz");
            if r.command.changes_state() {
                assert!(r.transaction.is_some());
            }
        }
        Ok(None) => {}
        Err(e) => {
            assert!(!e.code.is_empty() && !e.message.is_empty());
            // The reply is always publishable JSON.
            let reply = leasegate::mqtt::api::Reply::error(command, None, e).to_json();
            assert!(serde_json::from_str::<serde_json::Value>(&reply).is_ok());
        }
    }
});
