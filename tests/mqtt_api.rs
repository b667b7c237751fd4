//! The MQTT API against a real Mosquitto: the approval flow, bad input, replays, MQTT 5
//! response topics, secrets, and a broker restart in the middle of a run.

#[path = "support/mqtt.rs"]
mod mqtt;
#[path = "support/schemas.rs"]
mod schemas;

use mqtt::{resident, Mosquitto, Probe, TestGateway};
use serde_json::{json, Value};

fn demo_residents() -> Vec<Value> {
    vec![
        resident("t-100", "Ana Diaz", "4B", "current"),
        resident("t-101", "Ben Okafor", "5C", "future"),
        resident("t-102", "Chloe Martin", "2A", "current"),
    ]
}

async fn started(residents: &[Value], mode: &str) -> (TestGateway, Probe) {
    let gw = TestGateway::start(residents, mode).await;
    let (host, port) = mqtt::broker();
    let mut probe = Probe::connect(&host, port, None, &format!("{}/#", gw.root())).await;
    probe
        .wait_for("bridge online", |s| {
            s.topic.ends_with("/bridge/state") && s.json()["state"] == "online"
        })
        .await;
    (gw, probe)
}

/// Ids of the retained suggestions currently published (non-empty latest payload).
fn retained_suggestions(probe: &mut Probe, gw: &TestGateway) -> Vec<(String, Value)> {
    probe.drain();
    let prefix = gw.topic("suggestions/");
    probe
        .latest()
        .into_iter()
        .filter(|(t, s)| t.starts_with(&prefix) && !s.payload.is_empty())
        .map(|(t, s)| (t[prefix.len()..].to_string(), s.json()))
        .collect()
}

async fn wait_pending_count(probe: &mut Probe, gw: &TestGateway, n: u64) {
    let topic = gw.topic("status/pending");
    probe.drain();
    if probe
        .latest()
        .get(&topic)
        .is_some_and(|s| s.json()["count"] == n)
    {
        return;
    }
    probe
        .wait_for(&format!("status/pending count {n}"), |s| {
            s.topic == topic && s.json()["count"] == n
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_approves_suggestions_and_the_retained_state_follows() {
    let (mut gw, mut probe) = started(&demo_residents(), "approval_required").await;
    wait_pending_count(&mut probe, &gw, 7).await; // 3 keys each for two, one grey for Ben
    let pending = retained_suggestions(&mut probe, &gw);
    assert_eq!(pending.len(), 7);
    let ana: Vec<&(String, Value)> = pending
        .iter()
        .filter(|(_, s)| s["resident_id"] == "t-100")
        .collect();
    assert_eq!(ana.len(), 3);
    for (_, s) in &ana {
        assert_eq!(s["color"], "green");
        assert_eq!(s["action"], "grant");
        for field in [
            "id",
            "resident_name",
            "unit",
            "key",
            "valid_from",
            "created_at",
            "reason",
        ] {
            assert!(!s[field].is_null(), "{field} missing in {s}");
        }
    }
    let ids: Vec<&str> = ana.iter().map(|(id, _)| id.as_str()).collect();
    let reply = probe
        .request(
            &gw.root(),
            "manager-ann",
            "suggestions/approve",
            &json!({"transaction": "ap-1", "ids": ids}).to_string(),
        )
        .await;
    assert_eq!(reply["status"], "ok", "{reply}");
    assert_eq!(reply["transaction"], "ap-1");
    let results = reply["data"]["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert!(results.iter().all(|r| r["result"] == "applied"), "{reply}");

    // Decided suggestions are cleared; the count behind the alert drops.
    wait_pending_count(&mut probe, &gw, 4).await;
    for id in &ids {
        let topic = gw.topic(&format!("suggestions/{id}"));
        probe
            .wait_for("the cleared suggestion", |s| {
                s.topic == topic && s.payload.is_empty()
            })
            .await;
    }
    probe
        .wait_for("a decided event", |s| {
            s.topic == gw.topic("events/suggestion_decided") && s.json()["actor"] == "manager-ann"
        })
        .await;

    // The person who decided is in the audit log.
    gw.stop().await;
    let audit = gw.store().audit_since(0).unwrap();
    let applied: Vec<_> = audit
        .iter()
        .filter(|(_, a)| a.action == "suggestion.apply")
        .collect();
    assert_eq!(applied.len(), 3);
    assert!(applied
        .iter()
        .all(|(_, a)| a.actor.to_string() == "manager-ann"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_bad_request_gets_an_error_reply_and_the_loop_keeps_running() {
    let (mut gw, mut probe) = started(&demo_residents(), "approval_required").await;
    let root = gw.root();
    let many: Vec<String> = (0..51).map(|i| format!("s{i:06}")).collect();
    let cases: Vec<(&str, String, &str, Option<&str>)> = vec![
        (
            "suggestions/approve",
            "{not json".into(),
            "invalid_json",
            Some("$"),
        ),
        (
            "suggestions/approve",
            r#"{"transaction":"b1","ids":["s000001"],"colour":"red"}"#.into(),
            "invalid_request",
            Some("$.colour"),
        ),
        (
            "suggestions/approve",
            r#"{"transaction":"b2","ids":["s000001",42]}"#.into(),
            "invalid_request",
            Some("$.ids[1]"),
        ),
        (
            "suggestions/approve",
            json!({"transaction": "b3", "ids": many}).to_string(),
            "too_many_ids",
            Some("$.ids"),
        ),
        (
            "doors/open",
            r#"{"transaction":"b4"}"#.into(),
            "unknown_command",
            None,
        ),
        (
            "suggestions/approve",
            r#"{"ids":["s000001"]}"#.into(),
            "missing_transaction",
            Some("$.transaction"),
        ),
        (
            "sync/now",
            r#"{"transaction":"b5","expires_at":"2020-01-01T00:00:00Z"}"#.into(),
            "expired",
            Some("$.expires_at"),
        ),
        (
            "mode/set",
            r#"{"transaction":"b6","mode":"sometimes"}"#.into(),
            "invalid_request",
            Some("$.mode"),
        ),
    ];
    for (command, payload, code, path) in &cases {
        let reply = probe.request(&root, "manager-ann", command, payload).await;
        assert_eq!(reply["status"], "error", "{command} {payload}: {reply}");
        assert_eq!(
            reply["error"]["code"], *code,
            "{command} {payload}: {reply}"
        );
        assert!(reply["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
        if let Some(path) = path {
            assert_eq!(reply["error"]["details"]["path"], *path, "{reply}");
        }
    }

    // A retained request is refused, and its retained copy does not run again later.
    let topic = format!("{root}/request/manager-ann/mode/set");
    probe
        .client
        .publish(
            topic.clone(),
            rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
            true,
            br#"{"transaction":"r1","mode":"automatic"}"#.to_vec(),
        )
        .await
        .unwrap();
    let reply_topic = format!("{root}/response/manager-ann/mode/set");
    let refused = probe
        .wait_for("the retained request's refusal", |s| {
            s.topic == reply_topic && s.json()["transaction"] == "r1"
        })
        .await;
    assert_eq!(refused.json()["error"]["code"], "retained_request");
    probe
        .client
        .publish(
            topic,
            rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
            true,
            Vec::new(),
        )
        .await
        .unwrap();

    // Still serving, and nothing above changed the mode.
    let ok = probe
        .request(&root, "manager-ann", "suggestions/list", "{}")
        .await;
    assert_eq!(ok["status"], "ok");
    assert_eq!(ok["data"]["suggestions"].as_array().unwrap().len(), 7);
    gw.stop().await;
    let w = gw.store().load_world().unwrap();
    assert_eq!(w.settings.mode.as_str(), "approval_required");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_transaction_replays_the_first_reply_and_applies_nothing_twice() {
    let (mut gw, mut probe) = started(&demo_residents(), "approval_required").await;
    wait_pending_count(&mut probe, &gw, 7).await;
    let root = gw.root();
    let list = probe
        .request(&root, "manager-ann", "suggestions/list", "{}")
        .await;
    let first_id = list["data"]["suggestions"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let body = json!({"transaction": "same-1", "ids": [first_id]}).to_string();
    let a = probe
        .request(&root, "manager-ann", "suggestions/approve", &body)
        .await;
    let b = probe
        .request(&root, "manager-ann", "suggestions/approve", &body)
        .await;
    assert_eq!(a["status"], "ok");
    assert_eq!(a, b, "the replay is the first reply");
    // A discard of the same id under a new transaction sees it already decided.
    let c = probe
        .request(
            &root,
            "manager-ann",
            "suggestions/discard",
            &json!({"transaction": "other-2", "ids": [first_id]}).to_string(),
        )
        .await;
    assert_eq!(c["status"], "error");
    assert_eq!(c["data"]["results"][0]["result"], "already_decided", "{c}");
    // The same transaction id from another actor is another request.
    let d = probe
        .request(&root, "manager-bob", "suggestions/approve", &body)
        .await;
    assert_eq!(d["data"]["results"][0]["result"], "already_decided", "{d}");
    gw.stop().await;
    let applies = gw
        .store()
        .audit_since(0)
        .unwrap()
        .into_iter()
        .filter(|(_, a)| a.action == "suggestion.apply")
        .count();
    assert_eq!(applies, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_with_an_mqtt5_response_topic_gets_its_reply_there_with_the_correlation_data() {
    let (mut gw, mut probe) = started(&demo_residents(), "approval_required").await;
    let root = gw.root();
    let private = format!("{root}/response/manager-ann/inbox-7");
    let props = rumqttc::v5::mqttbytes::v5::PublishProperties {
        response_topic: Some(private.clone()),
        correlation_data: Some(bytes::Bytes::from_static(b"corr-42")),
        ..Default::default()
    };
    probe
        .client
        .publish_with_properties(
            format!("{root}/request/manager-ann/suggestions/list"),
            rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
            false,
            b"{}".to_vec(),
            props,
        )
        .await
        .unwrap();
    let r = probe
        .wait_for("the reply on the response topic", |s| s.topic == private)
        .await;
    assert_eq!(r.json()["status"], "ok");
    assert_eq!(
        r.properties.and_then(|p| p.correlation_data).as_deref(),
        Some(&b"corr-42"[..])
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pin_is_revealed_only_in_the_askers_reply_and_never_retained() {
    let (mut gw, mut probe) = started(&demo_residents(), "automatic").await;
    let root = gw.root();
    // Automatic mode: Ana holds keys at once, so she has a PIN.
    let reply = probe
        .request(
            &root,
            "manager-ann",
            "credentials/reveal_pin",
            r#"{"resident_id":"t-100"}"#,
        )
        .await;
    assert_eq!(reply["status"], "ok", "{reply}");
    let pin = reply["data"]["pin"].as_str().unwrap().to_string();
    assert!(leasegate::core::Pin::parse(&pin).is_some(), "{pin}");
    // Not in any retained message: a fresh subscriber receives only retained ones.
    let (host, port) = mqtt::broker();
    let mut late = Probe::connect(&host, port, None, &format!("{root}/#")).await;
    late.wait_for("the retained bridge state", |s| {
        s.topic.ends_with("/bridge/state")
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    late.drain();
    for s in &late.seen {
        assert!(
            s.retain,
            "only retained messages reach a new subscriber here"
        );
        assert!(
            !String::from_utf8_lossy(&s.payload).contains(&pin),
            "the PIN leaked into {}",
            s.topic
        );
    }
    // Every resident has a PIN from the start (it opens nothing until they hold a key);
    // someone unknown has none.
    let ben = probe
        .request(
            &root,
            "manager-ann",
            "credentials/reveal_pin",
            r#"{"resident_id":"t-101"}"#,
        )
        .await;
    assert_eq!(ben["status"], "ok", "{ben}");
    assert_ne!(ben["data"]["pin"], reply["data"]["pin"], "PINs are unique");
    let none = probe
        .request(
            &root,
            "manager-ann",
            "credentials/reveal_pin",
            r#"{"resident_id":"t-999"}"#,
        )
        .await;
    assert_eq!(none["error"]["code"], "not_found");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installers_map_units_and_key_sets_and_managers_assign_keys_by_hand() {
    let (mut gw, mut probe) = started(&demo_residents(), "automatic").await;
    let root = gw.root();
    let r = probe
        .request(
            &root,
            "installer-ivan",
            "units/set",
            r#"{"transaction":"u1","pms_unit":"7D","doors":["unit-2a"]}"#,
        )
        .await;
    assert_eq!(r["status"], "ok", "{r}");
    let units = probe
        .request(&root, "installer-ivan", "units/list", "{}")
        .await;
    assert!(units["data"]["units"]
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["pms_unit"] == "7D"));
    let bad = probe
        .request(
            &root,
            "installer-ivan",
            "units/set",
            r#"{"transaction":"u2","pms_unit":"8E","doors":["no-such-door"]}"#,
        )
        .await;
    assert_eq!(bad["error"]["code"], "invalid_request", "{bad}");
    let k = probe
        .request(
            &root,
            "manager-ann",
            "keys/assign",
            r#"{"transaction":"k1","resident_id":"t-100","key":"garage"}"#,
        )
        .await;
    assert_eq!(k["status"], "ok", "{k}");
    let residents = probe
        .request(
            &root,
            "manager-ann",
            "residents/list",
            r#"{"standing":"current"}"#,
        )
        .await;
    let ana = residents["data"]["residents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "t-100")
        .cloned()
        .unwrap();
    assert!(
        ana["keys"].as_array().unwrap().contains(&json!("garage")),
        "{ana}"
    );
    assert_eq!(ana["has_pin"], true);
    let card = probe
        .request(
            &root,
            "manager-ann",
            "credentials/enroll_card",
            r#"{"transaction":"c1","resident_id":"t-100","card":{"format":"h10301","facility":12,"number":34567}}"#,
        )
        .await;
    assert_eq!(card["status"], "ok", "{card}");
    assert!(
        !card.to_string().contains("34567"),
        "the reply never echoes a card number"
    );
    let again = probe
        .request(
            &root,
            "manager-ann",
            "credentials/enroll_card",
            r#"{"transaction":"c2","resident_id":"t-102","card":{"format":"h10301","facility":12,"number":34567}}"#,
        )
        .await;
    assert_eq!(
        again["error"]["code"], "conflict",
        "one card opens one home: {again}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_broker_restart_the_gateway_resubscribes_and_republishes_its_state() {
    let mut broker = Mosquitto::start();
    let mut gw = TestGateway::start_on(
        &demo_residents(),
        "approval_required",
        "127.0.0.1",
        broker.port,
        "",
    )
    .await;
    let root = gw.root();
    let mut probe = Probe::connect("127.0.0.1", broker.port, None, &format!("{root}/#")).await;
    wait_pending_count(&mut probe, &gw, 7).await;
    drop(probe);

    broker.stop();
    broker.restart();
    let mut probe = Probe::connect("127.0.0.1", broker.port, None, &format!("{root}/#")).await;
    // Requests work again: the subscription came back.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let reply = loop {
        probe.drain();
        let n = probe.seen.len();
        probe
            .publish(
                &format!("{root}/request/manager-ann/suggestions/list"),
                "{}",
            )
            .await;
        let got = tokio::time::timeout(
            std::time::Duration::from_secs(2),
            probe.wait_for("a reply", |s| {
                s.topic == format!("{root}/response/manager-ann/suggestions/list")
            }),
        )
        .await;
        if let Ok(r) = got {
            let _ = n;
            break r;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no reply after the restart"
        );
    };
    assert_eq!(
        reply.json()["data"]["suggestions"]
            .as_array()
            .unwrap()
            .len(),
        7
    );
    probe
        .wait_for("online again", |s| {
            s.topic.ends_with("/bridge/state") && s.json()["state"] == "online"
        })
        .await;
    // Nothing was lost: the retained suggestions are all there.
    wait_pending_count(&mut probe, &gw, 7).await;
    assert_eq!(retained_suggestions(&mut probe, &gw).len(), 7);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_gateway_says_offline_and_a_restarted_one_clears_suggestions_decided_meanwhile() {
    let (mut gw, mut probe) = started(&demo_residents(), "approval_required").await;
    wait_pending_count(&mut probe, &gw, 7).await;
    gw.stop().await;
    probe
        .wait_for("offline", |s| {
            s.topic.ends_with("/bridge/state") && s.json()["state"] == "offline"
        })
        .await;
    // Decide one while the gateway is down (as `leasegate` on the command line would).
    let (store, world, _) =
        leasegate::store::Store::open_world(&gw.dir.path().join("state")).unwrap();
    let id = world.pending.keys().next().unwrap().clone();
    let d = leasegate::core::discard(
        &world,
        std::slice::from_ref(&id),
        &Default::default(),
        leasegate::core::Actor::Person("cli".into()),
        chrono::Utc::now(),
    )
    .unwrap();
    store.commit(&d.transition).unwrap();
    drop(store);
    gw.run();
    let topic = gw.topic(&format!("suggestions/{id}"));
    probe
        .wait_for("the stale retained suggestion cleared", |s| {
            s.topic == topic && s.payload.is_empty()
        })
        .await;
    wait_pending_count(&mut probe, &gw, 6).await;
    gw.stop().await;
}

/// The schema a published message must match, by topic.
fn schema_for(root: &str, s: &mqtt::Seen) -> Option<String> {
    let rest = s.topic.strip_prefix(root)?.strip_prefix('/')?;
    let (head, tail) = rest.split_once('/')?;
    Some(match head {
        "bridge" => format!("bridge_{tail}"),
        "status" => format!("status_{tail}"),
        "suggestions" if s.payload.is_empty() => return None, // a cleared suggestion
        "suggestions" => "suggestion".into(),
        "devices" => "device_status".into(),
        "events" => format!("event_{tail}"),
        "response" => {
            let (_, command) = tail.split_once('/')?;
            match s.json()["status"].as_str() {
                Some("error") if s.json()["data"].is_null() => "reply".into(),
                _ => format!("reply_{}", command.replace('/', "_")),
            }
        }
        _ => return None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_payload_the_gateway_publishes_matches_the_published_contract() {
    let mut residents = demo_residents();
    residents.push(resident("t-103", "Dev Patel", "5C", "past"));
    let (mut gw, mut probe) = started(&residents, "approval_required").await;
    let root = gw.root();
    let list = probe
        .request(&root, "installer-ivan", "suggestions/list", "{}")
        .await;
    let ids: Vec<String> = list["data"]["suggestions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    let requests: Vec<(&str, String)> = vec![
        ("suggestions/approve", json!({"transaction":"v1","ids":[ids[0], ids[1], "s999999"]}).to_string()),
        ("suggestions/discard", json!({"transaction":"v2","ids":[ids[2]]}).to_string()),
        ("suggestions/approve", json!({"transaction":"v3","ids":["s999998"]}).to_string()),
        ("residents/list", "{}".into()),
        ("residents/override", r#"{"transaction":"v4","resident_id":"t-101","status":"current"}"#.into()),
        ("residents/override", r#"{"transaction":"v5","resident_id":"t-101","status":null}"#.into()),
        ("units/list", "{}".into()),
        ("units/set", r#"{"transaction":"v6","pms_unit":"9Z","doors":["unit-2a"]}"#.into()),
        ("units/remove", r#"{"transaction":"v7","pms_unit":"9Z"}"#.into()),
        ("keys/list", "{}".into()),
        ("keys/set", r#"{"transaction":"v8","id":"bikes","name":"Bike room","doors":["garage"],"shareable":true}"#.into()),
        ("keys/remove", r#"{"transaction":"v9","id":"bikes"}"#.into()),
        ("keys/assign", r#"{"transaction":"v10","resident_id":"t-101","key":"garage"}"#.into()),
        ("devices/list", "{}".into()),
        ("devices/set_door", r#"{"transaction":"v11","door":"pool","device":"panel-amenities"}"#.into()),
        ("credentials/enroll_card", r#"{"transaction":"v12","resident_id":"t-100","card":{"format":"raw","bit_len":34,"hex":"0123456780"}}"#.into()),
        ("credentials/remove_card", r#"{"transaction":"v13","resident_id":"t-100","card":{"format":"raw","bit_len":34,"hex":"0123456780"}}"#.into()),
        ("credentials/reveal_pin", r#"{"resident_id":"t-101"}"#.into()),
        ("mode/set", r#"{"transaction":"v14","mode":"automatic"}"#.into()),
        ("sync/plan", "{}".into()),
        ("sync/now", r#"{"transaction":"v15"}"#.into()),
        ("locks/pair", r#"{"transaction":"v16","device":"lock-4b"}"#.into()),
        ("suggestions/approve", r#"{"transaction":"v17","ids":[]}"#.into()),
        ("doors/open", r#"{"transaction":"v18"}"#.into()),
    ];
    for (command, body) in &requests {
        let v: Value = serde_json::from_str(body).unwrap();
        let name = format!("request_{}", command.replace('/', "_"));
        // The last two are bad on purpose; every other request is valid by the contract.
        if !body.contains("v17") && !body.contains("v18") {
            schemas::assert_valid(&name, &v);
        }
        let reply = probe.request(&root, "installer-ivan", command, body).await;
        assert!(reply["status"].is_string(), "{command}: {reply}");
    }
    // Let the state after the last change arrive, then check everything seen.
    probe
        .request(&root, "installer-ivan", "suggestions/list", "{}")
        .await;
    probe.drain();
    let mut checked = std::collections::BTreeMap::<String, usize>::new();
    for s in &probe.seen {
        if let Some(name) = schema_for(&root, s) {
            schemas::assert_valid(&name, &s.json());
            *checked.entry(name).or_default() += 1;
        }
    }
    for must in [
        "bridge_state",
        "bridge_info",
        "status_sync",
        "status_pending",
        "suggestion",
        "event_suggestion_created",
        "event_suggestion_decided",
        "reply",
        "reply_suggestions_approve",
        "reply_sync_plan",
        "reply_residents_list",
        "reply_credentials_reveal_pin",
    ] {
        assert!(
            checked.contains_key(must),
            "nothing checked against {must}: {checked:?}"
        );
    }
    gw.stop().await;
}
