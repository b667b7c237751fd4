//! The MQTT API contract (`protocols/mqtt-api/`) holds together: every example in
//! `asyncapi.yaml` validates against its message's schema, every schema file is a valid
//! draft 2020-12 schema whose references resolve, every request refuses unknown fields, and
//! the document names every topic the contract defines. The last tests pin down rules a schema
//! must enforce, so that the gateway's own tests (through `support/schemas.rs`) catch drift.

#[path = "support/schemas.rs"]
mod schemas;

use std::collections::BTreeSet;

use serde_json::{json, Value};

fn asyncapi() -> Value {
    let path = schemas::api_dir().join("asyncapi.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    serde_yaml_ng::from_str(&text).expect("asyncapi.yaml is YAML")
}

/// `(message key, schema name, examples)` for every message in `components.messages`.
fn messages(doc: &Value) -> Vec<(String, String, Vec<Value>)> {
    let msgs = doc["components"]["messages"]
        .as_object()
        .expect("components.messages");
    msgs.iter()
        .map(|(key, m)| {
            let r = m["payload"]["$ref"]
                .as_str()
                .unwrap_or_else(|| panic!("message {key}: payload is not a $ref to a schema file"));
            let name = r
                .strip_prefix("./schemas/")
                .and_then(|r| r.strip_suffix(".json"))
                .unwrap_or_else(|| panic!("message {key}: {r} is not ./schemas/<name>.json"));
            let examples = m["examples"].as_array().cloned().unwrap_or_default();
            (key.clone(), name.to_string(), examples)
        })
        .collect()
}

fn channel_addresses(doc: &Value) -> BTreeSet<String> {
    doc["channels"]
        .as_object()
        .unwrap()
        .values()
        .map(|c| c["address"].as_str().unwrap().to_string())
        .collect()
}

const COMMANDS: [&str; 22] = [
    "suggestions/list",
    "suggestions/approve",
    "suggestions/discard",
    "mode/set",
    "sync/now",
    "sync/plan",
    "residents/list",
    "residents/override",
    "units/list",
    "units/set",
    "units/remove",
    "keys/list",
    "keys/set",
    "keys/remove",
    "keys/assign",
    "keys/revoke",
    "devices/list",
    "devices/set_door",
    "credentials/enroll_card",
    "credentials/remove_card",
    "credentials/reveal_pin",
    "locks/pair",
];

fn commands() -> BTreeSet<&'static str> {
    COMMANDS.iter().copied().collect()
}

/// Reads: `transaction` optional. Everything else changes state and requires it.
const READS: [&str; 7] = [
    "suggestions/list",
    "sync/plan",
    "residents/list",
    "units/list",
    "keys/list",
    "devices/list",
    "credentials/reveal_pin",
];

const EVENTS: [&str; 8] = [
    "suggestion_created",
    "suggestion_decided",
    "access_applied",
    "device_write_failed",
    "revocation_overdue",
    "device_drift",
    "guard_tripped",
    "alert",
];

#[test]
fn every_example_in_the_contract_validates_against_its_schema() {
    let doc = asyncapi();
    let mut failures = Vec::new();
    let mut checked = 0;
    for (key, name, examples) in messages(&doc) {
        assert!(!examples.is_empty(), "message {key} has no examples");
        for ex in examples {
            let label = ex["name"].as_str().unwrap_or("?").to_string();
            let payload = ex.get("payload").unwrap_or_else(|| {
                panic!("message {key}, example {label}: no payload");
            });
            for e in schemas::errors(&name, payload) {
                failures.push(format!("{key} / {label} ({name}.json): {e}"));
            }
            checked += 1;
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked >= 60, "only {checked} examples were checked");
}

#[test]
fn every_schema_file_is_a_valid_2020_12_schema_whose_references_resolve() {
    let names = schemas::names();
    assert!(names.len() >= 60, "only {} schema files", names.len());
    for name in names {
        let schema = schemas::load(&name);
        assert_eq!(
            schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "{name}.json must declare draft 2020-12"
        );
        if let Err(e) = jsonschema::meta::validate(&schema) {
            panic!("{name}.json is not a valid schema: {e}");
        }
        assert!(
            schema["title"].is_string(),
            "{name}.json needs a title for the docs"
        );
        if let Err(e) = schemas::try_validator(&name) {
            panic!("{name}.json does not compile (a $ref that does not resolve?): {e}");
        }
    }
}

/// Every object a client may send, at any depth, names its fields and refuses others.
fn assert_closed(schema: &Value, at: &str) {
    match schema {
        Value::Object(o) => {
            if o.contains_key("properties") {
                assert_eq!(
                    o.get("additionalProperties"),
                    Some(&Value::Bool(false)),
                    "{at} accepts unknown fields"
                );
            }
            for (k, v) in o {
                assert_closed(v, &format!("{at}/{k}"));
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                assert_closed(v, &format!("{at}/{i}"));
            }
        }
        _ => {}
    }
}

#[test]
fn every_request_schema_refuses_unknown_fields() {
    let requests: Vec<String> = schemas::names()
        .into_iter()
        .filter(|n| n.starts_with("request_"))
        .collect();
    assert_eq!(requests.len(), commands().len());
    for name in &requests {
        let schema = schemas::load(name);
        assert_eq!(
            schema["additionalProperties"],
            json!(false),
            "{name}.json: requests refuse unknown fields"
        );
        assert_closed(&schema, name);
    }
    // What requests borrow from common.json (the card) is closed too.
    assert_closed(&schemas::load("common")["$defs"]["card"], "common/card");

    // And in effect: each request example with one more field is refused.
    let doc = asyncapi();
    for (key, name, examples) in messages(&doc) {
        if !name.starts_with("request_") {
            continue;
        }
        for ex in examples {
            let mut p = ex["payload"].clone();
            p["colour"] = json!("blue");
            schemas::assert_invalid(&name, &p);
            if p.get("card").is_some() {
                let mut p = ex["payload"].clone();
                p["card"]["pin"] = json!("1234");
                schemas::assert_invalid(&name, &p);
            }
            let _ = &key;
        }
    }
}

#[test]
fn state_changing_requests_require_a_transaction_and_reads_do_not() {
    for command in commands() {
        let name = format!("request_{}", command.replace('/', "_"));
        let required = schemas::load(&name)["required"].clone();
        let has = required
            .as_array()
            .is_some_and(|r| r.contains(&json!("transaction")));
        assert_eq!(
            has,
            !READS.contains(&command),
            "{command}: transaction required = {has}"
        );
    }
    schemas::assert_valid("request_suggestions_list", &json!({}));
    schemas::assert_invalid("request_sync_now", &json!({}));
    schemas::assert_valid("request_sync_now", &json!({"transaction": "a.b:c-1_2"}));
    schemas::assert_invalid("request_sync_now", &json!({"transaction": ""}));
    schemas::assert_invalid("request_sync_now", &json!({"transaction": "a b"}));
    schemas::assert_invalid("request_sync_now", &json!({"transaction": "x".repeat(65)}));
    schemas::assert_valid("request_sync_now", &json!({"transaction": "x".repeat(64)}));
}

#[test]
fn the_contract_has_every_topic_with_a_schema_and_every_schema_is_used() {
    let doc = asyncapi();
    let addrs = channel_addresses(&doc);
    let mut want: Vec<String> = [
        "bridge/state",
        "bridge/info",
        "status/sync",
        "status/pending",
        "suggestions/{id}",
        "devices/{id}",
    ]
    .iter()
    .map(|s| format!("leasegate/{{site}}/{s}"))
    .collect();
    for c in commands() {
        want.push(format!("leasegate/{{site}}/request/{{actor}}/{c}"));
        want.push(format!("leasegate/{{site}}/response/{{actor}}/{c}"));
    }
    for e in EVENTS {
        want.push(format!("leasegate/{{site}}/events/{e}"));
    }
    for w in &want {
        assert!(addrs.contains(w), "no channel {w}");
    }

    // Every schema file is a message payload or referenced from one.
    let mut used: BTreeSet<String> = messages(&doc).into_iter().map(|m| m.1).collect();
    for name in schemas::names() {
        let text =
            std::fs::read_to_string(schemas::schemas_dir().join(format!("{name}.json"))).unwrap();
        for part in text.split("\"$ref\": \"").skip(1) {
            let target = part.split(['"', '#']).next().unwrap();
            if let Some(t) = target.strip_suffix(".json") {
                used.insert(t.to_string());
            }
        }
    }
    let unused: Vec<String> = schemas::names()
        .into_iter()
        .filter(|n| !used.contains(n))
        .collect();
    assert!(unused.is_empty(), "schema files nothing uses: {unused:?}");

    // Every request is received with a reply; the gateway sends everything else.
    for (key, op) in doc["operations"].as_object().unwrap() {
        match op["action"].as_str().unwrap() {
            "receive" => assert!(op["reply"]["channel"].is_object(), "{key} has no reply"),
            "send" => {}
            other => panic!("{key}: action {other}"),
        }
    }
}

// ---------------------------------------------------------------- rules the schemas enforce

fn suggestion() -> Value {
    json!({"id": "s000042", "resident_id": "r-1", "resident_name": "Dana", "unit": "4B",
           "key": "unit-4b", "key_name": "Unit 4B", "action": "grant", "color": "green",
           "valid_from": null, "created_at": "2026-12-04T05:00:00Z", "reason": "lease starts",
           "state": "pending", "hold": null, "after": null})
}

#[test]
fn a_suggestion_has_every_field_its_color_follows_its_action_and_held_names_a_hold() {
    schemas::assert_valid("suggestion", &suggestion());
    for (field, bad) in [
        ("color", json!("red")),
        ("state", json!("held")),
        ("id", json!("42")),
        ("hold", json!("because")),
        ("after", json!("")),
    ] {
        let mut s = suggestion();
        s[field] = bad;
        schemas::assert_invalid("suggestion", &s);
    }
    let mut s = suggestion();
    s.as_object_mut().unwrap().remove("after");
    schemas::assert_invalid("suggestion", &s);
    let mut s = suggestion();
    s["seq"] = json!(42);
    schemas::assert_invalid("suggestion", &s);
    let mut s = suggestion();
    s["state"] = json!("held");
    s["hold"] = json!("guard");
    schemas::assert_valid("suggestion", &s);
}

#[test]
fn gateway_timestamps_are_rfc3339_utc() {
    for ok in [
        "2026-12-04T05:00:00Z",
        "2026-12-04T05:00:00.5Z",
        "2026-12-04T05:00:00.123456789Z",
    ] {
        let mut s = suggestion();
        s["created_at"] = json!(ok);
        schemas::assert_valid("suggestion", &s);
    }
    for bad in [
        "2026-12-04T05:00:00+01:00",
        "2026-12-04 05:00:00Z",
        "2026-13-04T05:00:00Z",
        "1764824400",
    ] {
        let mut s = suggestion();
        s["created_at"] = json!(bad);
        schemas::assert_invalid("suggestion", &s);
    }
    // A client's expires_at may carry any offset; the gateway compares in UTC.
    schemas::assert_valid(
        "request_sync_now",
        &json!({"transaction": "t1", "expires_at": "2026-12-04T06:00:00+01:00"}),
    );
    schemas::assert_invalid(
        "request_sync_now",
        &json!({"transaction": "t1", "expires_at": "tomorrow"}),
    );
}

#[test]
fn a_reply_carries_data_when_ok_and_error_when_not() {
    let ok = json!({"status": "ok", "command": "mode/set", "transaction": "t1",
                    "data": {"mode": "automatic"}});
    schemas::assert_valid("reply_mode_set", &ok);
    schemas::assert_valid("reply", &ok);
    let mut no_data = ok.clone();
    no_data.as_object_mut().unwrap().remove("data");
    schemas::assert_invalid("reply_mode_set", &no_data);
    let mut wrong_command = ok.clone();
    wrong_command["command"] = json!("sync/now");
    schemas::assert_invalid("reply_mode_set", &wrong_command);

    let err = json!({"status": "error", "command": "mode/set", "transaction": null,
                     "error": {"code": "not_found", "message": "no", "details": {}}});
    schemas::assert_valid("reply_mode_set", &err);
    let mut both = err.clone();
    both["data"] = json!({"mode": "automatic"});
    schemas::assert_invalid("reply_mode_set", &both);
    let mut unknown_code = err.clone();
    unknown_code["error"]["code"] = json!("nope");
    schemas::assert_invalid("reply_mode_set", &unknown_code);
    let mut no_details = err.clone();
    no_details["error"]
        .as_object_mut()
        .unwrap()
        .remove("details");
    schemas::assert_invalid("reply_mode_set", &no_details);
}

#[test]
fn error_details_name_what_the_code_promises() {
    let reply = |code: &str, details: Value| {
        json!({"status": "error", "command": "suggestions/approve", "transaction": "t1",
               "error": {"code": code, "message": "m", "details": details}})
    };
    let cases = [
        ("invalid_request", json!({"path": "$.ids[3]"}), json!({})),
        (
            "too_many_ids",
            json!({"path": "$.ids", "max": 50, "got": 51}),
            json!({"path": "$.ids", "max": 50}),
        ),
        (
            "unknown_command",
            json!({"command": "x/y"}),
            json!({"path": "$"}),
        ),
        (
            "missing_transaction",
            json!({"path": "$.transaction"}),
            json!({"path": "$"}),
        ),
        (
            "expired",
            json!({"expires_at": "2026-12-04T05:00:00Z"}),
            json!({}),
        ),
    ];
    for (code, good, bad) in cases {
        schemas::assert_valid("reply", &reply(code, good));
        schemas::assert_invalid("reply", &reply(code, bad));
    }
    schemas::assert_invalid(
        "reply",
        &reply("invalid_request", json!({"path": "ids[3]"})),
    );
}

#[test]
fn a_decision_reply_status_agrees_with_its_results() {
    let reply = |status: &str, results: Value| {
        let mut r = json!({"status": status, "command": "suggestions/approve", "transaction": "t1",
                           "data": {"results": results}});
        if status == "error" {
            r["error"] = json!({"code": "conflict", "message": "none applied", "details": {}});
        }
        r
    };
    let applied = json!({"id": "s000001", "result": "applied"});
    let missing = json!({"id": "s000002", "result": "not_found"});
    let v = "reply_suggestions_approve";
    schemas::assert_valid(v, &reply("ok", json!([applied])));
    schemas::assert_invalid(v, &reply("ok", json!([applied, missing])));
    schemas::assert_valid(v, &reply("partial", json!([applied, missing])));
    schemas::assert_invalid(v, &reply("partial", json!([applied])));
    schemas::assert_valid(v, &reply("error", json!([missing])));
    schemas::assert_invalid(v, &reply("error", json!([applied])));
    // `state` only with already_decided, `after` only with blocked.
    schemas::assert_invalid(
        v,
        &reply("error", json!([{"id": "s1", "result": "already_decided"}])),
    );
    schemas::assert_valid(
        v,
        &reply(
            "error",
            json!([{"id": "s1", "result": "already_decided", "state": "applied"}]),
        ),
    );
    schemas::assert_invalid(
        v,
        &reply(
            "error",
            json!([{"id": "s1", "result": "not_found", "after": "s000001"}]),
        ),
    );
    schemas::assert_valid(
        v,
        &reply(
            "error",
            json!([{"id": "s1", "result": "blocked", "after": "s000001"}]),
        ),
    );
    // Only a conflict carries data next to its error.
    let mut r = reply("error", json!([missing]));
    r["error"]["code"] = json!("internal");
    schemas::assert_invalid(v, &r);
}

#[test]
fn approve_takes_one_to_fifty_ids() {
    let ids = |n: usize| -> Value { (0..n).map(|i| json!(format!("s{i:06}"))).collect() };
    let req = |n| json!({"transaction": "t1", "ids": ids(n)});
    schemas::assert_invalid("request_suggestions_approve", &req(0));
    schemas::assert_valid("request_suggestions_approve", &req(1));
    schemas::assert_valid("request_suggestions_approve", &req(50));
    schemas::assert_invalid("request_suggestions_approve", &req(51));
    schemas::assert_invalid("request_suggestions_discard", &req(51));
}

#[test]
fn cards_are_h10301_or_raw_and_replies_never_echo_the_number() {
    let req = |card: Value| json!({"transaction": "t1", "resident_id": "r-1", "card": card});
    let v = "request_credentials_enroll_card";
    schemas::assert_valid(
        v,
        &req(json!({"format": "h10301", "facility": 255, "number": 65535})),
    );
    schemas::assert_invalid(
        v,
        &req(json!({"format": "h10301", "facility": 256, "number": 1})),
    );
    schemas::assert_invalid(
        v,
        &req(json!({"format": "h10301", "facility": 1, "number": 65536})),
    );
    schemas::assert_valid(
        v,
        &req(json!({"format": "raw", "bit_len": 35, "hex": "0a1b2c3d4"})),
    );
    schemas::assert_invalid(v, &req(json!({"format": "raw", "bit_len": 0, "hex": "00"})));
    schemas::assert_invalid(v, &req(json!({"format": "raw", "bit_len": 8, "hex": "zz"})));
    schemas::assert_invalid(v, &req(json!({"format": "mifare", "uid": "04a1"})));
    let reply = json!({"status": "ok", "command": "credentials/enroll_card", "transaction": "t1",
                       "data": {"resident_id": "r-1", "cards": 1, "number": 13117}});
    schemas::assert_invalid("reply_credentials_enroll_card", &reply);
}

#[test]
fn pending_alerts_exactly_when_something_waits() {
    schemas::assert_valid(
        "status_pending",
        &json!({"count": 0, "alert": false, "oldest": null}),
    );
    schemas::assert_valid(
        "status_pending",
        &json!({"count": 3, "alert": true, "oldest": "2026-12-04T05:00:00Z"}),
    );
    schemas::assert_invalid(
        "status_pending",
        &json!({"count": 3, "alert": false, "oldest": "2026-12-04T05:00:00Z"}),
    );
    schemas::assert_invalid(
        "status_pending",
        &json!({"count": 0, "alert": true, "oldest": null}),
    );
}

#[test]
fn device_status_leaves_unknown_keys_out_rather_than_null() {
    let base = json!({"device": "lock-4b", "kind": "nuki_lock", "online": true,
                      "pending_writes": 0, "failed_writes": 0, "generation": 3});
    schemas::assert_valid("device_status", &base);
    for (k, v) in [
        ("battery", json!(null)),
        ("last_error", json!(null)),
        ("last_seen", json!(null)),
    ] {
        let mut d = base.clone();
        d[k] = v;
        schemas::assert_invalid("device_status", &d);
    }
    let mut d = base.clone();
    d["battery"] = json!({"critical": false, "percent": 101});
    schemas::assert_invalid("device_status", &d);
    d["battery"] = json!({"critical": true});
    schemas::assert_valid("device_status", &d);
}

#[test]
fn every_alert_kind_has_its_fields() {
    for a in [
        json!({"kind": "guard_tripped", "would_revoke": 40, "limit": 22, "current_residents": 112}),
        json!({"kind": "unknown_status", "resident_id": "r-1", "status": "on_hold"}),
        json!({"kind": "empty_roster", "known_residents": 112}),
        json!({"kind": "unmapped_unit", "resident_id": "r-1", "unit": null}),
        json!({"kind": "pins_exhausted"}),
    ] {
        schemas::assert_valid("alert", &a);
        let mut extra = a.clone();
        extra["more"] = json!(1);
        schemas::assert_invalid("alert", &extra);
    }
    schemas::assert_invalid(
        "alert",
        &json!({"kind": "guard_tripped", "would_revoke": 40}),
    );
    schemas::assert_invalid("alert", &json!({"kind": "meteor"}));
}

// ---------------------------------------------------------------- the gateway's own types

fn at() -> leasegate::core::Timestamp {
    // With nanoseconds, as a live clock gives them.
    chrono::DateTime::parse_from_rfc3339("2026-12-04T05:00:00.123456789Z")
        .unwrap()
        .with_timezone(&chrono::Utc)
}

#[test]
fn device_events_serialize_as_the_contract_says_on_their_topic() {
    use leasegate::events::Event;
    let events = [
        Event::AccessApplied {
            device: "lock-4b".into(),
            generation: 18,
            upserts: 1,
            deletes: 0,
            at: at(),
        },
        Event::DeviceWriteFailed {
            device: "panel-lobby".into(),
            error: "timeout".into(),
            retryable: true,
            at: at(),
        },
        Event::RevocationOverdue {
            device: "panel-lobby".into(),
            residents: vec!["r-1".into()],
            since: at(),
            at: at(),
        },
        Event::Drift {
            device: "panel-lobby".into(),
            detail: "reset".into(),
            at: at(),
        },
    ];
    for ev in events {
        // Published on events/<kind> as serde_json::to_value(&ev) (src/mqtt/client.rs).
        let v = serde_json::to_value(&ev).unwrap();
        assert_eq!(v["type"], ev.kind(), "the payload's type names its topic");
        schemas::assert_valid(&format!("event_{}", ev.kind()), &v);
    }
}

#[test]
fn device_status_serializes_as_the_contract_says() {
    use leasegate::events::{Battery, DeviceStatus};
    let bare = DeviceStatus {
        device: "panel-lobby".into(),
        kind: "osdp_panel".into(),
        ..Default::default()
    };
    schemas::assert_valid("device_status", &serde_json::to_value(&bare).unwrap());
    let full = DeviceStatus {
        device: "lock-4b".into(),
        kind: "nuki_lock".into(),
        online: true,
        pending_writes: 2,
        failed_writes: 1,
        battery: Some(Battery {
            critical: false,
            percent: Some(80),
            charging: None,
        }),
        last_error: Some("no answer".into()),
        last_seen: Some(at()),
        generation: 7,
    };
    schemas::assert_valid("device_status", &serde_json::to_value(&full).unwrap());
}

#[test]
fn alerts_serialize_as_the_contract_says() {
    use leasegate::core::Alert;
    for a in [
        Alert::GuardTripped {
            would_revoke: 40,
            limit: 22,
            current_residents: 112,
        },
        Alert::UnknownStatus {
            resident_id: "r-1".into(),
            status: "on_hold".into(),
        },
        Alert::EmptyRoster {
            known_residents: 112,
        },
        Alert::UnmappedUnit {
            resident_id: "r-1".into(),
            unit: None,
        },
        Alert::PinsExhausted,
    ] {
        schemas::assert_valid("alert", &serde_json::to_value(&a).unwrap());
    }
}

#[test]
fn decision_results_keys_and_units_serialize_as_the_contract_says() {
    use leasegate::core::site::{KeySet, UnitMap};
    use leasegate::core::{ItemResult, SuggestionState};
    let results: Vec<Value> = [
        ("s000001", ItemResult::Applied),
        ("s000002", ItemResult::NotFound),
        ("s000003", ItemResult::Superseded),
        (
            "s000004",
            ItemResult::AlreadyDecided {
                state: SuggestionState::Discarded,
            },
        ),
        (
            "s000005",
            ItemResult::Blocked {
                after: "s000001".into(),
            },
        ),
        ("s000001", ItemResult::Duplicate),
    ]
    .into_iter()
    .map(|(id, r)| {
        // As src/mqtt/service.rs writes each item: the result with its id.
        let mut v = serde_json::to_value(&r).unwrap();
        v["id"] = json!(id);
        v
    })
    .collect();
    schemas::assert_valid(
        "reply_suggestions_approve",
        &json!({"status": "partial", "command": "suggestions/approve", "transaction": "t1",
                "data": {"results": results}}),
    );
    let key = KeySet {
        id: "gym".into(),
        name: "Gym".into(),
        doors: vec!["gym-door".into()],
        shareable: true,
        auto_share: false,
    };
    schemas::assert_valid(
        "reply_keys_list",
        &json!({"status": "ok", "command": "keys/list", "transaction": null,
                "data": {"keys": [key]}}),
    );
    let unit = UnitMap {
        pms_unit: "4B".into(),
        doors: vec!["4b-front".into()],
    };
    schemas::assert_valid(
        "reply_units_list",
        &json!({"status": "ok", "command": "units/list", "transaction": null,
                "data": {"units": [unit]}}),
    );
}
