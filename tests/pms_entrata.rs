//! The Entrata adapter against a real rustls server speaking `getLeases`: the request shape,
//! paging, the status table, move-outs, transfers in Mountain time, and every failure.

#[path = "support/https.rs"]
mod https;
#[path = "support/plan_cli.rs"]
mod plan_cli;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use https::{Reply, Request, TestServer};
use leasegate::core::{PmsStatus, RosterEntry, Snapshot};
use leasegate::pms::http::USER_AGENT;
use leasegate::pms::{EntrataSource, FetchRequest, PmsError, RosterSource};
use plan_cli::{plan, suggestions};
use serde_json::{json, Value};

const USER: &str = "entrata-user-Qv7z";
const PASS: &str = "entrata-pass-Kx9#w";
const PROPERTY: &str = "12345";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn now() -> DateTime<Utc> {
    at("2026-11-27T12:00:00Z")
}

// --- A deployment: config, secrets and the server's CA in a tempdir --------------------------

struct Deployment {
    dir: tempfile::TempDir,
}

impl Deployment {
    fn new(server: &TestServer, properties: &[&str], timeout: &str) -> Deployment {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("entrata-user"), format!("{USER}\n")).unwrap();
        std::fs::write(dir.path().join("entrata-password"), format!("{PASS}\n")).unwrap();
        let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo/site.toml");
        std::fs::copy(demo, dir.path().join("site.toml")).unwrap();
        let ids: Vec<String> = properties.iter().map(|p| format!("{p:?}")).collect();
        let text = format!(
            "[site]\nid = \"maple-court\"\ntimezone = \"America/New_York\"\nsite_file = \
             \"site.toml\"\n\n[store]\npath = \"state\"\n\n[pms]\nkind = \"entrata\"\nbase_url = \
             \"{}/api\"\nproperty_ids = [{}]\nusername_file = \"entrata-user\"\npassword_file = \
             \"entrata-password\"\nca_file = {:?}\ntimeout = \"{timeout}\"\n",
            server.base_url(),
            ids.join(", "),
            server.ca_file.display().to_string(),
        );
        std::fs::write(dir.path().join("leasegate.toml"), text).unwrap();
        Deployment { dir }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("leasegate.toml")
    }

    fn source(&self) -> EntrataSource {
        let text = std::fs::read_to_string(self.config()).unwrap();
        let cfg = leasegate::config::parse(&text, &self.config()).unwrap();
        EntrataSource::new(&cfg).unwrap()
    }
}

async fn source_for(server: &TestServer) -> (Deployment, EntrataSource) {
    let d = Deployment::new(server, &[PROPERTY], "5s");
    let s = d.source();
    (d, s)
}

async fn fetch_at(source: &EntrataSource, now: DateTime<Utc>) -> Result<Snapshot, PmsError> {
    source
        .fetch(FetchRequest {
            changed_since: None,
            now,
        })
        .await
}

fn find<'a>(s: &'a Snapshot, id: &str) -> &'a RosterEntry {
    s.residents
        .iter()
        .find(|r| r.id == id)
        .unwrap_or_else(|| panic!("{id} is not in {:?}", s.residents))
}

// --- Entrata payloads -----------------------------------------------------------------------

fn customer(id: u64, first: &str, last: &str) -> Value {
    json!({
        "id": id,
        "customerType": "Primary",
        "firstName": first,
        "lastName": last,
        "nameFull": format!("{last}, {first}"),
        "emailAddress": format!("{}@example.test", first.to_lowercase()),
        "leaseCustomerStatus": "Current",
        "phones": {"phone": [{"phoneType": "personal", "phoneNumber": "+1 5555550100"}]}
    })
}

fn lease(id: u64, status: &str, unit: &str, customers: Vec<Value>) -> Value {
    json!({
        "id": id.to_string(),
        "leaseStatusTypeId": status,
        "propertyId": PROPERTY,
        "propertyName": "Maple Court",
        "moveInDate": "01/01/2026",
        "moveOutDate": "",
        "transferDate": "",
        "unitId": (4_000_000 + id).to_string(),
        "unitNumberSpace": unit,
        "isMonthToMonth": 0,
        "customers": {"customer": customers},
        "leaseIntervals": {"leaseInterval": [{"id": "1", "startDate": "01/01/2026"}]}
    })
}

fn one(id: u64, status: &str, unit: &str) -> Value {
    lease(
        id,
        status,
        unit,
        vec![customer(id, "Person", &id.to_string())],
    )
}

fn answer(request_id: Option<&str>, leases: &[Value]) -> Value {
    let mut response = json!({
        "code": 200,
        "result": {"currencyCode": "USD", "leases": {"lease": leases}}
    });
    if let Some(id) = request_id {
        response["requestId"] = json!(id);
    }
    json!({ "response": response })
}

fn body_of(req: &Request) -> Value {
    serde_json::from_slice(&req.body).expect("the request body is JSON")
}

/// A page the way Entrata sends it, including its rate-limit headers.
fn page_reply(req: &Request, leases: &[Value], total: usize) -> Reply {
    let id = body_of(req)["requestId"].as_str().map(str::to_string);
    Reply::json(200, answer(id.as_deref(), leases).to_string())
        .header("X-Total-Count", total)
        .header("X-RateLimit-Limit", "8640/day;360/hour;6/minute")
        .header("X-RateLimit-Remaining", "8631/day;351/hour;5/minute")
        .header("X-RateLimit-Reset", "14991;591;51")
}

/// Serves each property's leases, paged as asked.
fn roster(
    properties: BTreeMap<String, Vec<Value>>,
) -> impl Fn(&Request) -> Reply + Send + Sync + 'static {
    move |req| {
        let body = body_of(req);
        let property = body["method"]["params"]["propertyId"]
            .as_str()
            .unwrap()
            .to_string();
        let page: usize = req.query("page_no").unwrap().parse().unwrap();
        let per: usize = req.query("per_page").unwrap().parse().unwrap();
        let all = properties.get(&property).cloned().unwrap_or_default();
        let rows: Vec<Value> = all
            .iter()
            .skip((page - 1) * per)
            .take(per)
            .cloned()
            .collect();
        page_reply(req, &rows, all.len())
    }
}

fn single(leases: Vec<Value>) -> impl Fn(&Request) -> Reply + Send + Sync + 'static {
    roster(BTreeMap::from([(PROPERTY.to_string(), leases)]))
}

fn fixed(reply: Reply) -> impl Fn(&Request) -> Reply + Send + Sync + 'static {
    move |_| reply.clone()
}

fn base64(input: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

// --- The request and the roster ------------------------------------------------------------

#[tokio::test]
async fn the_request_is_a_basic_auth_json_rpc_post_of_get_leases() {
    let server = https::start(single(vec![
        one(1, "4", "4B"),
        lease(2, "3", "5C", vec![customer(2, "Ben", "Okafor")]),
    ]))
    .await;
    let (_d, source) = source_for(&server).await;
    let snap = fetch_at(&source, now()).await.unwrap();

    let seen = server.requests();
    assert_eq!(seen.len(), 1);
    let r = &seen[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path(), "/api/v1/leases");
    assert_eq!(r.query("page_no").as_deref(), Some("1"));
    assert_eq!(r.query("per_page").as_deref(), Some("500"));
    let basic = format!("Basic {}", base64(format!("{USER}:{PASS}").as_bytes()));
    assert_eq!(r.header("authorization"), Some(basic.as_str()));
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    assert_eq!(r.header("user-agent"), Some(USER_AGENT));
    let body = body_of(r);
    assert_eq!(body["auth"], json!({"type": "basic"}));
    assert!(body["requestId"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(body["method"]["name"], "getLeases");
    assert_eq!(body["method"]["version"], "r1");
    assert_eq!(body["method"]["params"]["propertyId"], PROPERTY);
    assert_eq!(
        body["method"]["params"]["leaseStatusTypeIds"],
        "1,2,3,4,5,6"
    );
    // Nothing secret travels anywhere but in the Authorization header.
    assert!(!String::from_utf8_lossy(&r.body).contains(PASS));
    assert!(!r.target.contains(PASS) && !r.target.contains(USER));

    assert!(snap.complete);
    assert_eq!(snap.fetched_at, now());
    assert_eq!(snap.residents.len(), 2);
    let ana = find(&snap, "1");
    assert_eq!(ana.status, PmsStatus::Current);
    assert_eq!(ana.unit.as_deref(), Some("4B"));
    assert_eq!(ana.name, "Person 1");
    let ben = find(&snap, "2");
    assert_eq!(ben.status, PmsStatus::Future);
    assert_eq!(ben.name, "Ben Okafor");
    assert_eq!(ben.unit.as_deref(), Some("5C"));
}

#[tokio::test]
async fn every_page_of_every_property_is_fetched_and_counted() {
    let big: Vec<Value> = (1..=1203).map(|i| one(i, "4", &format!("U{i}"))).collect();
    let small = vec![
        lease(5001, "4", "4B", vec![customer(5001, "Ana", "Diaz")]),
        lease(5002, "6", "2A", vec![customer(5002, "Dev", "Patel")]),
    ];
    let server = https::start(roster(BTreeMap::from([
        ("111".to_string(), big),
        ("222".to_string(), small),
    ])))
    .await;
    let d = Deployment::new(&server, &["111", "222"], "10s");
    let snap = fetch_at(&d.source(), now()).await.unwrap();

    let asked: Vec<(String, String)> = server
        .requests()
        .iter()
        .map(|r| {
            (
                body_of(r)["method"]["params"]["propertyId"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                r.query("page_no").unwrap(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = [("111", "1"), ("111", "2"), ("111", "3"), ("222", "1")]
        .iter()
        .map(|(p, n)| (p.to_string(), n.to_string()))
        .collect();
    assert_eq!(asked, want);
    // Every request had its own id, and each answer echoed it.
    let ids: std::collections::BTreeSet<String> = server
        .requests()
        .iter()
        .map(|r| body_of(r)["requestId"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 4);

    assert!(snap.complete);
    assert_eq!(snap.residents.len(), 1205);
    // With two properties, unit codes name the property: unit numbers repeat across them.
    assert_eq!(find(&snap, "1203").unit.as_deref(), Some("111/U1203"));
    assert_eq!(find(&snap, "5001").unit.as_deref(), Some("222/4B"));
    assert_eq!(find(&snap, "5002").status, PmsStatus::Past);
}

#[tokio::test]
async fn a_page_that_disagrees_with_the_announced_total_fails_the_whole_snapshot() {
    let all: Vec<Value> = (1..=1203).map(|i| one(i, "4", "4B")).collect();

    // Page 2 is one lease short.
    let rows = all.clone();
    let server = https::start(move |req: &Request| {
        let page: usize = req.query("page_no").unwrap().parse().unwrap();
        let mut slice: Vec<Value> = rows
            .iter()
            .skip((page - 1) * 500)
            .take(500)
            .cloned()
            .collect();
        if page == 2 {
            slice.pop();
        }
        page_reply(req, &slice, 1203)
    })
    .await;
    let (_d, source) = source_for(&server).await;
    match fetch_at(&source, now()).await {
        Err(PmsError::Incomplete(why)) => assert!(why.contains("offset 500"), "{why}"),
        other => panic!("expected a short-page error, got {other:?}"),
    }

    // The last page holds more than announced.
    let rows = all.clone();
    let server = https::start(move |req: &Request| {
        let page: usize = req.query("page_no").unwrap().parse().unwrap();
        let slice: Vec<Value> = rows
            .iter()
            .skip((page - 1) * 500)
            .take(500)
            .cloned()
            .collect();
        page_reply(req, &slice, 1100)
    })
    .await;
    let (_d, source) = source_for(&server).await;
    assert!(matches!(
        fetch_at(&source, now()).await,
        Err(PmsError::Incomplete(_))
    ));

    // The total changes between pages.
    let rows = all.clone();
    let server = https::start(move |req: &Request| {
        let page: usize = req.query("page_no").unwrap().parse().unwrap();
        let slice: Vec<Value> = rows
            .iter()
            .skip((page - 1) * 500)
            .take(500)
            .cloned()
            .collect();
        page_reply(req, &slice, if page == 1 { 1203 } else { 1204 })
    })
    .await;
    let (_d, source) = source_for(&server).await;
    match fetch_at(&source, now()).await {
        Err(PmsError::Incomplete(why)) => assert!(why.contains("1203 to 1204"), "{why}"),
        other => panic!("{other:?}"),
    }

    // Rows shifted between pages: one lease twice (and so another missed).
    let rows = all.clone();
    let server = https::start(move |req: &Request| {
        let page: usize = req.query("page_no").unwrap().parse().unwrap();
        let start = if page == 2 { 499 } else { (page - 1) * 500 };
        let slice: Vec<Value> = rows.iter().skip(start).take(500).cloned().collect();
        page_reply(req, &slice, 1203)
    })
    .await;
    let (_d, source) = source_for(&server).await;
    match fetch_at(&source, now()).await {
        Err(PmsError::Incomplete(why)) => assert!(why.contains("twice"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn lease_status_ids_follow_the_table_and_others_are_unknown() {
    let table = [
        ("1", PmsStatus::Applicant),
        ("2", PmsStatus::Cancelled),
        ("3", PmsStatus::Future),
        ("4", PmsStatus::Current),
        ("5", PmsStatus::Notice),
        ("6", PmsStatus::Past),
        ("7", PmsStatus::Unknown("leaseStatusTypeId 7".into())),
        ("42", PmsStatus::Unknown("leaseStatusTypeId 42".into())),
    ];
    let mut leases: Vec<Value> = table
        .iter()
        .enumerate()
        .map(|(i, (id, _))| one(i as u64 + 1, id, "4B"))
        .collect();
    // Entrata sends ids as strings; a number is read the same way.
    let mut numeric = one(100, "4", "5C");
    numeric["leaseStatusTypeId"] = json!(4);
    leases.push(numeric);
    let server = https::start(single(leases)).await;
    let (_d, source) = source_for(&server).await;
    let snap = fetch_at(&source, now()).await.unwrap();
    for (i, (_, want)) in table.iter().enumerate() {
        assert_eq!(&find(&snap, &(i + 1).to_string()).status, want);
    }
    assert_eq!(find(&snap, "100").status, PmsStatus::Current);
}

#[tokio::test]
async fn a_move_out_and_a_co_tenant_who_left_are_past_and_a_guarantor_is_no_resident() {
    let mut gone = customer(21, "Cleo", "Moved");
    gone["leaseCustomerStatus"] = json!("Past");
    let mut guarantor = customer(22, "Gus", "Parent");
    guarantor["customerType"] = json!("Guarantor");
    let mut moved_out = lease(1, "6", "2A", vec![customer(11, "Dev", "Patel")]);
    moved_out["moveOutDate"] = json!("10/31/2026");
    let server = https::start(single(vec![
        moved_out,
        lease(
            2,
            "4",
            "4B",
            vec![customer(20, "Ana", "Diaz"), gone, guarantor],
        ),
    ]))
    .await;
    let (_d, source) = source_for(&server).await;
    let snap = fetch_at(&source, now()).await.unwrap();
    assert_eq!(find(&snap, "11").status, PmsStatus::Past);
    assert_eq!(find(&snap, "20").status, PmsStatus::Current);
    assert_eq!(find(&snap, "20").unit.as_deref(), Some("4B"));
    assert_eq!(find(&snap, "21").status, PmsStatus::Past);
    assert!(snap.residents.iter().all(|r| r.id != "22"), "a guarantor");
    assert_eq!(snap.residents.len(), 3);
}

/// Ana transfers from 4B (lease 1, still Current in Entrata) to 5C (lease 2, still Future).
fn transfer(date: &str, destination: bool) -> Vec<Value> {
    let mut old = lease(1, "4", "4B", vec![customer(7, "Ana", "Diaz")]);
    old["transferDate"] = json!(date);
    let mut out = vec![old];
    if destination {
        out[0]["transferLeaseId"] = json!("2");
        out.push(lease(2, "3", "5C", vec![customer(7, "Ana", "Diaz")]));
    }
    out
}

async fn ana_at(leases: Vec<Value>, when: &str) -> RosterEntry {
    let server = https::start(single(leases)).await;
    let (_d, source) = source_for(&server).await;
    let snap = fetch_at(&source, at(when)).await.unwrap();
    assert_eq!(snap.residents.len(), 1, "one entry per person");
    find(&snap, "7").clone()
}

#[tokio::test]
async fn a_transfer_moves_the_resident_when_its_day_begins_in_mountain_time() {
    // 1 November 2026: Mountain time falls back at 02:00, so midnight is still MDT (UTC-6).
    let before = ana_at(transfer("11/01/2026", true), "2026-11-01T05:59:59Z").await;
    assert_eq!(before.unit.as_deref(), Some("4B"));
    assert_eq!(before.status, PmsStatus::Current);
    let after = ana_at(transfer("11/01/2026", true), "2026-11-01T06:00:00Z").await;
    assert_eq!(after.unit.as_deref(), Some("5C"));
    assert_eq!(after.status, PmsStatus::Current);

    // 8 March 2026: Mountain time springs forward at 02:00, so midnight is still MST (UTC-7).
    let before = ana_at(transfer("03/08/2026", true), "2026-03-08T06:30:00Z").await;
    assert_eq!(before.unit.as_deref(), Some("4B"));
    let after = ana_at(transfer("03/08/2026", true), "2026-03-08T07:00:00Z").await;
    assert_eq!(after.unit.as_deref(), Some("5C"));

    // A transfer date with a time of day is that instant in Mountain time.
    let before = ana_at(
        transfer("11/01/2026 14:00:00", true),
        "2026-11-01T20:59:00Z",
    )
    .await;
    assert_eq!(before.unit.as_deref(), Some("4B"));
    let after = ana_at(
        transfer("11/01/2026 14:00:00", true),
        "2026-11-01T21:00:00Z",
    )
    .await;
    assert_eq!(after.unit.as_deref(), Some("5C"));
}

#[tokio::test]
async fn a_transfer_without_its_destination_keeps_the_resident_but_not_the_unit() {
    let nowhere = ana_at(transfer("11/01/2026", false), "2026-11-02T00:00:00Z").await;
    assert_eq!(nowhere.status, PmsStatus::Current);
    assert_eq!(
        nowhere.unit, None,
        "the core holds the unit key for a manager"
    );

    // Once Entrata has processed the transfer the statuses alone say where Ana lives.
    let mut old = lease(1, "6", "4B", vec![customer(7, "Ana", "Diaz")]);
    old["transferDate"] = json!("11/01/2026");
    old["transferLeaseId"] = json!("2");
    let processed = vec![old, lease(2, "4", "5C", vec![customer(7, "Ana", "Diaz")])];
    let ana = ana_at(processed, "2026-11-02T00:00:00Z").await;
    assert_eq!(ana.unit.as_deref(), Some("5C"));
    assert_eq!(ana.status, PmsStatus::Current);

    // Without transferLeaseId, another live lease of the same customer is the destination.
    let mut old = lease(1, "5", "4B", vec![customer(7, "Ana", "Diaz")]);
    old["transferDate"] = json!("11/01/2026");
    let unlinked = vec![old, lease(2, "3", "5C", vec![customer(7, "Ana", "Diaz")])];
    let ana = ana_at(unlinked, "2026-11-02T00:00:00Z").await;
    assert_eq!(ana.unit.as_deref(), Some("5C"));
    assert_eq!(
        ana.status,
        PmsStatus::Notice,
        "the old lease's status carries over"
    );
}

#[tokio::test]
async fn a_person_on_several_leases_is_listed_once_with_the_lease_that_grants_most() {
    let leases = vec![
        lease(1, "6", "2A", vec![customer(9, "Chloe", "Martin")]),
        lease(2, "4", "4B", vec![customer(9, "Chloe", "Martin")]),
        lease(3, "3", "5C", vec![customer(9, "Chloe", "Martin")]),
    ];
    let server = https::start(single(leases)).await;
    let (_d, source) = source_for(&server).await;
    let snap = fetch_at(&source, now()).await.unwrap();
    assert_eq!(snap.residents.len(), 1);
    assert_eq!(snap.residents[0].unit.as_deref(), Some("4B"));
    assert_eq!(snap.residents[0].status, PmsStatus::Current);
}

#[tokio::test]
async fn the_documented_answer_shape_parses_and_unknown_fields_are_ignored() {
    let fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/entrata-getleases-r1.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let server = https::start(move |req: &Request| {
        let mut answer = fixture.clone();
        answer["response"]["requestId"] = body_of(req)["requestId"].clone();
        Reply::json(200, answer.to_string()).header("X-Total-Count", 3)
    })
    .await;
    let (_d, source) = source_for(&server).await;
    let snap = fetch_at(&source, now()).await.unwrap();
    let ana = find(&snap, "31061984");
    assert_eq!(
        (ana.name.as_str(), ana.unit.as_deref(), &ana.status),
        ("Ana Diaz", Some("4B"), &PmsStatus::Current)
    );
    let ben = find(&snap, "31061990");
    assert_eq!(
        (ben.name.as_str(), ben.unit.as_deref(), &ben.status),
        ("Ben Okafor", Some("5C"), &PmsStatus::Future)
    );
    let dev = find(&snap, "31061991");
    assert_eq!(
        (dev.name.as_str(), dev.unit.as_deref(), &dev.status),
        ("Patel, Dev", Some("2A"), &PmsStatus::Past)
    );
    assert_eq!(snap.residents.len(), 3, "the guarantor is not a resident");
}

// --- Rate limits -----------------------------------------------------------------------------

/// Answers 429 with `header` for the first `limited` requests, then the roster.
fn limited(limited: usize, header: (&'static str, &'static str)) -> impl Fn(&Request) -> Reply {
    let count = Arc::new(AtomicUsize::new(0));
    let good = single(vec![one(1, "4", "4B")]);
    move |req: &Request| {
        if count.fetch_add(1, Ordering::SeqCst) < limited {
            Reply::json(
                429,
                r#"{"response":{"error":{"code":429,"message":"Too many requests"}}}"#,
            )
            .header(header.0, header.1)
        } else {
            good(req)
        }
    }
}

#[tokio::test]
async fn a_429_is_retried_after_the_wait_its_headers_announce() {
    for header in [("Retry-After", "1"), ("X-RateLimit-Reset", "1")] {
        let server = https::start(limited(1, header)).await;
        let (_d, source) = source_for(&server).await;
        let started = Instant::now();
        let snap = fetch_at(&source, now()).await.unwrap();
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "{header:?}: waited"
        );
        assert_eq!(server.requests().len(), 2, "{header:?}");
        assert_eq!(snap.residents.len(), 1);
    }
    // Two 429s in a row are still within the three tries.
    let server = https::start(limited(2, ("Retry-After", "1"))).await;
    let (_d, source) = source_for(&server).await;
    assert!(fetch_at(&source, now()).await.is_ok());
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn a_long_retry_after_or_a_third_429_is_an_error() {
    let server = https::start(limited(usize::MAX, ("Retry-After", "120"))).await;
    let (_d, source) = source_for(&server).await;
    let started = Instant::now();
    match fetch_at(&source, now()).await {
        Err(e @ PmsError::RateLimited { .. }) => {
            assert_eq!(e.retry_after(), Some(Duration::from_secs(120)))
        }
        other => panic!("{other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "did not wait 120 s"
    );
    assert_eq!(server.requests().len(), 1);

    let server = https::start(limited(usize::MAX, ("Retry-After", "1"))).await;
    let (_d, source) = source_for(&server).await;
    assert!(matches!(
        fetch_at(&source, now()).await,
        Err(PmsError::RateLimited { .. })
    ));
    assert_eq!(server.requests().len(), 3, "three tries in all");
}

// --- The fault matrix -------------------------------------------------------------------------

async fn fault(reply: Reply) -> PmsError {
    let server = https::start(fixed(reply)).await;
    let (_d, source) = source_for(&server).await;
    fetch_at(&source, now())
        .await
        .expect_err("a fault must fail the fetch, never give a roster")
}

fn valid_body() -> String {
    answer(None, &[one(1, "4", "4B")]).to_string()
}

type Check = fn(&PmsError) -> bool;

/// Every failure, with the error it must give.
fn faults() -> Vec<(&'static str, Reply, Check)> {
    let body = valid_body();
    let cut = body[..body.len() / 2].to_string();
    vec![
        (
            "500",
            Reply::json(500, r#"{"response":{"error":{"code":500}}}"#),
            |e| matches!(e, PmsError::Status(500)),
        ),
        (
            "503 maintenance page",
            Reply::html(503, "<html>Scheduled maintenance</html>"),
            |e| matches!(e, PmsError::Status(503)),
        ),
        (
            "HTML with 200",
            Reply::html(200, "<html><body>Sign in to Entrata</body></html>"),
            |e| matches!(e, PmsError::NotJson { .. }),
        ),
        ("401", Reply::json(401, "{}"), |e| {
            matches!(e, PmsError::Unauthorized(401)) && !e.is_retryable()
        }),
        (
            "truncated JSON",
            Reply::json(200, cut.clone()).header("X-Total-Count", 1),
            |e| matches!(e, PmsError::Malformed(m) if m.contains("not JSON")),
        ),
        (
            "connection cut mid-body",
            Reply {
                truncate_to: Some(cut.len()),
                ..Reply::json(200, body.clone()).header("X-Total-Count", 1)
            },
            |e| matches!(e, PmsError::Transport(_)),
        ),
        (
            "no response object",
            Reply::json(200, r#"{"result":{"leases":{"lease":[]}}}"#).header("X-Total-Count", 0),
            |e| matches!(e, PmsError::Malformed(m) if m.contains("response is missing")),
        ),
        (
            "no leases container",
            Reply::json(
                200,
                r#"{"response":{"code":200,"result":{"currencyCode":"USD"}}}"#,
            )
            .header("X-Total-Count", 0),
            |e| matches!(e, PmsError::Malformed(m) if m.contains("response.result.leases is missing")),
        ),
        (
            "no lease list",
            Reply::json(200, r#"{"response":{"code":200,"result":{"leases":{}}}}"#)
                .header("X-Total-Count", 0),
            |e| matches!(e, PmsError::Malformed(m) if m.contains("leases.lease is missing")),
        ),
        (
            "lease list of the wrong type",
            Reply::json(
                200,
                r#"{"response":{"code":200,"result":{"leases":{"lease":"none"}}}}"#,
            )
            .header("X-Total-Count", 0),
            |e| matches!(e, PmsError::Malformed(m) if m.contains("is a string, not a list")),
        ),
        (
            "customer id of the wrong type",
            Reply::json(200, valid_body().replace(r#""id":1,"#, r#""id":true,"#))
                .header("X-Total-Count", 1),
            |e| matches!(e, PmsError::Malformed(m) if m.contains("customers[0].id is a boolean")),
        ),
        (
            "lease without customers",
            Reply::json(
                200,
                answer(
                    None,
                    &[{
                        let mut l = one(1, "4", "4B");
                        l.as_object_mut().unwrap().remove("customers");
                        l
                    }],
                )
                .to_string(),
            )
            .header("X-Total-Count", 1),
            |e| matches!(e, PmsError::Malformed(m) if m.contains("customers is missing")),
        ),
        (
            "an unreadable transfer date",
            Reply::json(
                200,
                answer(
                    None,
                    &[{
                        let mut l = one(1, "4", "4B");
                        l["transferDate"] = json!("next week");
                        l
                    }],
                )
                .to_string(),
            )
            .header("X-Total-Count", 1),
            |e| matches!(e, PmsError::Malformed(m) if m.contains("transferDate")),
        ),
        (
            "no X-Total-Count",
            Reply::json(200, valid_body()),
            |e| matches!(e, PmsError::Malformed(m) if m.contains("X-Total-Count")),
        ),
        (
            "an empty roster announced as one lease",
            Reply::json(200, answer(None, &[]).to_string()).header("X-Total-Count", 1),
            |e| matches!(e, PmsError::Incomplete(_)),
        ),
        (
            "an answer to another request",
            Reply::json(
                200,
                answer(Some("not-ours"), &[one(1, "4", "4B")]).to_string(),
            )
            .header("X-Total-Count", 1),
            |e| matches!(e, PmsError::Malformed(m) if m.contains("not ours")),
        ),
        (
            "a code other than 200",
            Reply::json(
                200,
                r#"{"response":{"code":500,"result":{"leases":{"lease":[]}}}}"#,
            )
            .header("X-Total-Count", 0),
            |e| matches!(e, PmsError::Malformed(m) if m.contains("code 500")),
        ),
        (
            "a JSON-RPC error",
            Reply::json(
                200,
                r#"{"response":{"requestId":"1","error":{"code":301,"message":"Invalid propertyId"}}}"#,
            ),
            |e| matches!(e, PmsError::Malformed(m) if m.contains("error 301: Invalid propertyId")),
        ),
        (
            "a JSON-RPC authentication error",
            Reply::json(
                200,
                r#"{"response":{"error":{"code":401,"message":"Username and/or password is incorrect"}}}"#,
            ),
            |e| matches!(e, PmsError::Unauthorized(401)),
        ),
    ]
}

#[tokio::test]
async fn every_fault_is_an_error_never_a_roster() {
    for (what, reply, expected) in faults() {
        let e = fault(reply).await;
        assert!(expected(&e), "{what}: unexpected {e:?}");
    }
}

#[tokio::test]
async fn an_empty_property_is_an_empty_complete_roster_not_an_error() {
    let server = https::start(single(vec![])).await;
    let (_d, source) = source_for(&server).await;
    let snap = fetch_at(&source, now()).await.unwrap();
    assert!(snap.complete && snap.residents.is_empty());
}

#[tokio::test]
async fn a_json_rpc_error_that_echoes_the_credentials_masks_them() {
    let message = format!("Access denied for {USER} with password {PASS}");
    let e = fault(Reply::json(
        200,
        json!({"response": {"error": {"code": 113, "message": message}}}).to_string(),
    ))
    .await;
    let text = format!("{e} {e:?}");
    assert!(text.contains("error 113"), "{text}");
    assert!(!text.contains(USER) && !text.contains(PASS), "{text}");
}

#[tokio::test]
async fn a_slow_server_past_the_timeout_is_a_timeout() {
    let server = https::start(move |req: &Request| Reply {
        delay: Duration::from_secs(3),
        ..single(vec![one(1, "4", "4B")])(req)
    })
    .await;
    let d = Deployment::new(&server, &[PROPERTY], "1s");
    let started = Instant::now();
    assert!(matches!(
        fetch_at(&d.source(), now()).await,
        Err(PmsError::Timeout)
    ));
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused() {
    let server = https::start_untrusted(single(vec![one(1, "4", "4B")])).await;
    let (_d, source) = source_for(&server).await;
    match fetch_at(&source, now()).await {
        Err(PmsError::Transport(why)) => {
            assert!(why.to_lowercase().contains("certificate"), "{why}")
        }
        other => panic!("expected a certificate error, got {other:?}"),
    }
    assert!(server.requests().is_empty(), "nothing was sent");
}

#[tokio::test]
async fn no_credential_appears_in_any_error_or_debug_output() {
    let server = https::start(single(vec![])).await;
    let (_d, source) = source_for(&server).await;
    let debug = format!("{source:?}");
    assert!(!debug.contains(USER) && !debug.contains(PASS), "{debug}");
    let mut all = Vec::new();
    for (what, reply, _) in faults() {
        let e = fault(reply).await;
        all.push(format!("{what}: {e} / {e:?}"));
    }
    let untrusted = https::start_untrusted(single(vec![])).await;
    let (_d, source) = source_for(&untrusted).await;
    let e = fetch_at(&source, now()).await.unwrap_err();
    all.push(format!("{e} / {e:?}"));
    for line in all {
        assert!(!line.contains(USER) && !line.contains(PASS), "{line}");
    }
}

// --- The command line -----------------------------------------------------------------------

/// The demo roster, as Entrata would hold it.
fn demo_leases() -> Vec<Value> {
    let mut chloe = lease(3, "5", "2A", vec![customer(102, "Chloe", "Martin")]);
    chloe["moveOutDate"] = json!("12/31/2026");
    vec![
        lease(1, "4", "4B", vec![customer(100, "Ana", "Diaz")]),
        lease(2, "3", "5C", vec![customer(101, "Ben", "Okafor")]),
        chloe,
        lease(4, "6", "2A", vec![customer(103, "Dev", "Patel")]),
    ]
}

const DEMO_ROSTER: &str = r#"{
  "fetched_at": "2026-11-27T12:00:00Z",
  "residents": [
    { "id": "100", "name": "Ana Diaz", "unit": "4B", "status": "current" },
    { "id": "101", "name": "Ben Okafor", "unit": "5C", "status": "future" },
    { "id": "102", "name": "Chloe Martin", "unit": "2A", "status": "notice" },
    { "id": "103", "name": "Dev Patel", "unit": "2A", "status": "past" }
  ]
}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leasegate_plan_works_against_entrata_and_a_500_fails_it_with_the_reason() {
    let server = https::start(single(demo_leases())).await;
    let d = Deployment::new(&server, &[PROPERTY], "5s");
    let out = plan(d.config()).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let from_entrata = suggestions(&out.stdout);
    assert!(!server.requests().is_empty());

    // The same roster from the file source plans the same suggestions.
    std::fs::write(d.dir.path().join("roster.json"), DEMO_ROSTER).unwrap();
    let file_config = d.dir.path().join("file.toml");
    let text = std::fs::read_to_string(d.config()).unwrap();
    let head = text.split("[pms]").next().unwrap();
    std::fs::write(
        &file_config,
        format!("{head}[pms]\nkind = \"file\"\npath = \"roster.json\"\n"),
    )
    .unwrap();
    let out = plan(file_config).await;
    assert!(out.status.success());
    let from_file = suggestions(&out.stdout);
    assert!(!from_file.is_empty());
    assert_eq!(from_entrata, from_file);
    assert!(from_entrata
        .iter()
        .any(|s| s.1 == "100" && s.3 == "\"unit:4B\"" && s.4 == "grant"));

    // A PMS failure: non-zero, the reason on stderr, nothing on stdout.
    let broken = https::start(fixed(Reply::json(500, "{}"))).await;
    let d = Deployment::new(&broken, &[PROPERTY], "5s");
    let out = plan(d.config()).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("entrata") && err.contains("HTTP 500"), "{err}");
    assert!(!err.contains(PASS) && !err.contains(USER), "{err}");
    assert!(out.stdout.is_empty());
}
