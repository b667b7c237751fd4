//! The Rent Manager 12 adapter against a real rustls server: the token, the `/Tenants` query,
//! paging, incremental fetches, move-outs, transfers, the status table and every failure.

#[path = "support/https.rs"]
mod https;
#[path = "support/plan_cli.rs"]
mod plan_cli;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use https::{Reply, Request, TestServer};
use leasegate::core::{PmsStatus, RosterEntry, Snapshot};
use leasegate::pms::http::USER_AGENT;
use leasegate::pms::{FetchRequest, PmsError, RentManagerSource, RosterSource};
use plan_cli::{plan, suggestions};
use serde_json::{json, Value};

const USER: &str = "rm-user-Jt4q";
const PASS: &str = "rm-pass-Wb8!z";
const TOKEN_STEM: &str = "rmtok-Hq2v";
const FIELDS: &str = "TenantID,Name,FirstName,LastName,Status,PropertyID,UpdateDate,Leases";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn now() -> DateTime<Utc> {
    at("2026-11-27T12:00:00Z")
}

fn token(n: usize) -> String {
    format!("{TOKEN_STEM}-{n}")
}

// --- A deployment ------------------------------------------------------------------------------

struct Deployment {
    dir: tempfile::TempDir,
}

impl Deployment {
    fn new(server: &TestServer, properties: &[&str], timeout: &str) -> Deployment {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("rm-user"), format!("{USER}\n")).unwrap();
        std::fs::write(dir.path().join("rm-password"), format!("{PASS}\n")).unwrap();
        let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo/site.toml");
        std::fs::copy(demo, dir.path().join("site.toml")).unwrap();
        let text = format!(
            "[site]\nid = \"maple-court\"\ntimezone = \"America/Denver\"\nsite_file = \
             \"site.toml\"\n\n[store]\npath = \"state\"\n\n[pms]\nkind = \"rentmanager\"\n\
             base_url = \"{}\"\nproperty_ids = [{}]\nlocation_id = \"1\"\nusername_file = \
             \"rm-user\"\npassword_file = \"rm-password\"\nca_file = {:?}\ntimeout = \
             \"{timeout}\"\n",
            server.base_url(),
            properties.join(", "),
            server.ca_file.display().to_string(),
        );
        std::fs::write(dir.path().join("leasegate.toml"), text).unwrap();
        Deployment { dir }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("leasegate.toml")
    }

    fn source(&self) -> RentManagerSource {
        let text = std::fs::read_to_string(self.config()).unwrap();
        let cfg = leasegate::config::parse(&text, &self.config()).unwrap();
        RentManagerSource::new(&cfg).unwrap()
    }
}

fn source_for(server: &TestServer) -> (Deployment, RentManagerSource) {
    let d = Deployment::new(server, &["7"], "5s");
    let s = d.source();
    (d, s)
}

async fn full(source: &RentManagerSource, now: DateTime<Utc>) -> Result<Snapshot, PmsError> {
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

// --- Rent Manager payloads -------------------------------------------------------------------

fn rm_lease(id: u64, unit: &str, move_in: &str, move_out: Option<&str>) -> Value {
    let mut l = json!({
        "LeaseID": id,
        "UnitID": 300 + id,
        "PropertyID": 7,
        "MoveInDate": format!("{move_in}T00:00:00"),
        "ArrivalDate": format!("{move_in}T00:00:00"),
        "IsMoveOutConfirmed": false,
        "Unit": {"UnitID": 300 + id, "PropertyID": 7, "Name": unit, "UnitTypeID": 2}
    });
    if let Some(out) = move_out {
        l["MoveOutDate"] = json!(format!("{out}T00:00:00"));
    }
    l
}

fn tenant(id: u64, name: &str, status: &str, leases: Vec<Value>) -> Value {
    json!({
        "TenantID": id,
        "TenantDisplayID": id,
        "Name": name,
        "PropertyID": 7,
        "Status": status,
        "RentDueDay": 1,
        "UpdateDate": "2026-11-01T10:00:00",
        "Leases": leases
    })
}

fn current(id: u64, unit: &str) -> Value {
    tenant(
        id,
        &format!("Tenant {id}"),
        "Current",
        vec![rm_lease(id, unit, "2025-01-01", None)],
    )
}

fn with_update(mut t: Value, when: &str) -> Value {
    t["UpdateDate"] = json!(when);
    t
}

/// The `UpdateDate,gt,<time>` bound of a query, if any.
fn updated_after(filters: &str) -> Option<String> {
    filters
        .split(';')
        .find_map(|f| f.strip_prefix("UpdateDate,gt,"))
        .map(str::to_string)
}

/// A Rent Manager: tokens `rmtok-…-1`, `-2`, … from AuthorizeUser; `/Tenants` paged, filtered
/// on UpdateDate, 204 when nothing matches, 401 for a token `refuse` says is expired.
struct Rm {
    tenants: Vec<Value>,
    issued: AtomicUsize,
    refuse: Box<dyn Fn(&str) -> bool + Send + Sync>,
}

fn rm(tenants: Vec<Value>) -> Arc<Rm> {
    rm_refusing(tenants, |_| false)
}

fn rm_refusing(
    tenants: Vec<Value>,
    refuse: impl Fn(&str) -> bool + Send + Sync + 'static,
) -> Arc<Rm> {
    Arc::new(Rm {
        tenants,
        issued: AtomicUsize::new(0),
        refuse: Box::new(refuse),
    })
}

fn serve(state: Arc<Rm>) -> impl Fn(&Request) -> Reply + Send + Sync + 'static {
    move |req| {
        if req.method == "POST" && req.path() == "/Authentication/AuthorizeUser" {
            let n = state.issued.fetch_add(1, Ordering::SeqCst) + 1;
            return Reply::json(200, format!("{:?}", token(n)));
        }
        assert_eq!(
            req.path(),
            "/Tenants",
            "unexpected {} {}",
            req.method,
            req.target
        );
        let given = req.header("x-rm12api-apitoken").unwrap_or("");
        if !given.starts_with(TOKEN_STEM) || (state.refuse)(given) {
            return Reply::json(
                401,
                r#"{"DeveloperMessage":"The ApiToken could not be validated.","UserMessage":"Authentication Failed.","Exception":"ApiAuthenticationException"}"#,
            );
        }
        tenants_page(req, &state.tenants)
    }
}

fn tenants_page(req: &Request, tenants: &[Value]) -> Reply {
    let filters = req.query("filters").unwrap_or_default();
    let matching: Vec<Value> = match updated_after(&filters) {
        Some(bound) => tenants
            .iter()
            .filter(|t| t["UpdateDate"].as_str().unwrap() > bound.as_str())
            .cloned()
            .collect(),
        None => tenants.to_vec(),
    };
    let size: usize = req.query("pageSize").unwrap().parse().unwrap();
    let number: usize = req.query("pageNumber").unwrap().parse().unwrap();
    let rows: Vec<Value> = matching
        .iter()
        .skip((number - 1) * size)
        .take(size)
        .cloned()
        .collect();
    if matching.is_empty() {
        return Reply {
            headers: vec![("x-total-results".into(), "0".into())],
            ..Reply::json(204, "")
        };
    }
    Reply::json(200, Value::Array(rows.clone()).to_string())
        .header("x-total-results", matching.len())
        .header("x-results", rows.len())
        .header("x-ratelimit-limit", 500)
        .header("x-ratelimit-remaining", 480)
        .header("x-ratelimit-reset", 1_795_000_000u64)
        .header("x-api-version", "12.2607.9741.10976")
}

async fn served(tenants: Vec<Value>) -> (TestServer, Deployment, RentManagerSource) {
    let server = https::start(serve(rm(tenants))).await;
    let (d, s) = source_for(&server);
    (server, d, s)
}

fn fixed(reply: Reply) -> impl Fn(&Request) -> Reply + Send + Sync + 'static {
    move |_| reply.clone()
}

/// AuthorizeUser works; `/Tenants` answers `reply`.
fn tenants_answer(reply: Reply) -> impl Fn(&Request) -> Reply + Send + Sync + 'static {
    move |req| {
        if req.path() == "/Authentication/AuthorizeUser" {
            Reply::json(200, format!("{:?}", token(1)))
        } else {
            reply.clone()
        }
    }
}

fn kinds(server: &TestServer) -> Vec<String> {
    server
        .requests()
        .iter()
        .map(|r| {
            if r.method == "POST" {
                "auth".to_string()
            } else {
                format!(
                    "get {}",
                    r.header("x-rm12api-apitoken")
                        .unwrap_or("-")
                        .trim_start_matches(TOKEN_STEM)
                )
            }
        })
        .collect()
}

// --- The requests and the roster ---------------------------------------------------------------

#[tokio::test]
async fn a_token_from_authorize_user_then_tenants_with_filters_embeds_and_paging() {
    let (server, _d, source) = served(vec![current(1, "4B"), current(2, "5C")]).await;
    let snap = full(&source, now()).await.unwrap();

    let seen = server.requests();
    assert_eq!(seen.len(), 2);
    let auth = &seen[0];
    assert_eq!(
        (auth.method.as_str(), auth.path()),
        ("POST", "/Authentication/AuthorizeUser")
    );
    assert!(auth
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    assert_eq!(auth.header("user-agent"), Some(USER_AGENT));
    let body: Value = serde_json::from_slice(&auth.body).unwrap();
    assert_eq!(
        body,
        json!({"Username": USER, "Password": PASS, "LocationID": 1})
    );

    let get = &seen[1];
    assert_eq!((get.method.as_str(), get.path()), ("GET", "/Tenants"));
    assert_eq!(get.header("x-rm12api-apitoken"), Some(token(1).as_str()));
    assert_eq!(get.query("filters").as_deref(), Some("PropertyID,eq,7"));
    assert_eq!(get.query("embeds").as_deref(), Some("Leases,Leases.Unit"));
    assert_eq!(get.query("fields").as_deref(), Some(FIELDS));
    assert_eq!(get.query("pageSize").as_deref(), Some("1000"));
    assert_eq!(get.query("pageNumber").as_deref(), Some("1"));
    assert!(get.body.is_empty());
    assert!(!get.target.contains(PASS) && get.header("authorization").is_none());

    assert!(snap.complete);
    assert_eq!(snap.fetched_at, now());
    assert_eq!(snap.residents.len(), 2);
    let one = find(&snap, "1");
    assert_eq!(one.name, "Tenant 1");
    assert_eq!(one.unit.as_deref(), Some("4B"));
    assert_eq!(one.status, PmsStatus::Current);

    // The token is kept for the next fetch.
    full(&source, now()).await.unwrap();
    assert_eq!(kinds(&server), ["auth", "get -1", "get -1"]);
}

#[tokio::test]
async fn every_page_of_several_properties_is_fetched_and_counted() {
    let all: Vec<Value> = (1..=2503).map(|i| current(i, &format!("U{i}"))).collect();
    let server = https::start(serve(rm(all))).await;
    let d = Deployment::new(&server, &["7", "8"], "10s");
    let snap = full(&d.source(), now()).await.unwrap();
    let gets: Vec<Request> = server
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET")
        .collect();
    let pages: Vec<String> = gets
        .iter()
        .map(|r| r.query("pageNumber").unwrap())
        .collect();
    assert_eq!(pages, ["1", "2", "3"]);
    for g in &gets {
        assert_eq!(g.query("filters").as_deref(), Some("PropertyID,in,(7,8)"));
    }
    assert_eq!(snap.residents.len(), 2503);
    assert!(snap.complete);
    // Unit names repeat across properties: with several, the code names the property.
    assert_eq!(find(&snap, "2503").unit.as_deref(), Some("7/U2503"));
}

/// Page number and that page's rows in; rows, `x-total-results` and `x-results` out.
type Tamper = fn(usize, Vec<Value>) -> (Vec<Value>, usize, Option<usize>);
type Handler = Box<dyn Fn(&Request) -> Reply + Send + Sync>;

#[tokio::test]
async fn a_page_that_disagrees_with_the_total_fails_the_whole_snapshot() {
    let all: Vec<Value> = (1..=2503).map(|i| current(i, "4B")).collect();
    let paged = |f: Tamper| {
        let all = all.clone();
        tenants_answer_fn(move |req: &Request| {
            let n: usize = req.query("pageNumber").unwrap().parse().unwrap();
            let rows: Vec<Value> = all
                .iter()
                .skip((n - 1) * 1000)
                .take(1000)
                .cloned()
                .collect();
            let (rows, total, results) = f(n, rows);
            let results = results.unwrap_or(rows.len());
            Reply::json(200, Value::Array(rows).to_string())
                .header("x-total-results", total)
                .header("x-results", results)
        })
    };
    let cases: Vec<(&str, Handler, &str)> = vec![
        (
            "short page",
            Box::new(paged(|n, mut rows| {
                if n == 2 {
                    rows.pop();
                }
                (rows, 2503, None)
            })),
            "offset 1000",
        ),
        (
            "total changes",
            Box::new(paged(|n, rows| (rows, 2503 + n, None))),
            "2504 to 2505",
        ),
        (
            "x-results disagrees",
            Box::new(paged(|_, rows| (rows, 2503, Some(999)))),
            "x-results",
        ),
        (
            "a tenant twice",
            Box::new(paged(|n, mut rows| {
                if n == 2 {
                    rows[0]["TenantID"] = json!(1);
                }
                (rows, 2503, None)
            })),
            "twice",
        ),
    ];
    for (what, handler, says) in cases {
        let server = https::start(handler).await;
        let (_d, source) = source_for(&server);
        match full(&source, now()).await {
            Err(PmsError::Incomplete(why)) => assert!(why.contains(says), "{what}: {why}"),
            other => panic!("{what}: {other:?}"),
        }
    }
}

fn tenants_answer_fn(
    page: impl Fn(&Request) -> Reply + Send + Sync + 'static,
) -> impl Fn(&Request) -> Reply + Send + Sync + 'static {
    move |req| {
        if req.path() == "/Authentication/AuthorizeUser" {
            Reply::json(200, format!("{:?}", token(1)))
        } else {
            page(req)
        }
    }
}

#[tokio::test]
async fn an_incremental_fetch_asks_for_what_changed_in_the_site_time_zone() {
    let (server, _d, source) = served(vec![
        with_update(current(1, "4B"), "2026-11-20T09:00:00"),
        with_update(
            tenant(
                2,
                "Dev Patel",
                "Past",
                vec![rm_lease(2, "2A", "2024-01-01", Some("2026-11-26"))],
            ),
            "2026-11-27T04:58:00",
        ),
        with_update(current(3, "5C"), "2026-11-27T05:30:00"),
    ])
    .await;
    let snap = source
        .fetch(FetchRequest {
            changed_since: Some(at("2026-11-27T12:00:00Z")),
            now: at("2026-11-27T12:05:00Z"),
        })
        .await
        .unwrap();
    let get = server
        .requests()
        .into_iter()
        .find(|r| r.method == "GET")
        .unwrap();
    // 12:00Z is 05:00 in Denver (MST); five minutes of overlap.
    assert_eq!(
        get.query("filters").as_deref(),
        Some("PropertyID,eq,7;UpdateDate,gt,2026-11-27T04:55:00")
    );
    assert!(!snap.complete, "an incremental snapshot");
    let ids: Vec<&str> = snap.residents.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["2", "3"]);
    assert_eq!(find(&snap, "2").status, PmsStatus::Past);

    // In summer the same wall-clock arithmetic uses MDT.
    let source2 = source_for(&server).1;
    source2
        .fetch(FetchRequest {
            changed_since: Some(at("2026-07-01T12:00:00Z")),
            now: at("2026-07-01T12:05:00Z"),
        })
        .await
        .unwrap();
    let last = server
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.method == "GET");
    assert_eq!(
        last.unwrap().query("filters").as_deref(),
        Some("PropertyID,eq,7;UpdateDate,gt,2026-07-01T05:55:00")
    );
}

#[tokio::test]
async fn an_incremental_fetch_that_matches_nothing_is_an_empty_incomplete_snapshot() {
    let (server, _d, source) =
        served(vec![with_update(current(1, "4B"), "2026-11-01T10:00:00")]).await;
    let snap = source
        .fetch(FetchRequest {
            changed_since: Some(now()),
            now: now(),
        })
        .await
        .unwrap();
    let filters: Vec<String> = server
        .requests()
        .iter()
        .filter(|r| r.method == "GET")
        .map(|r| r.query("filters").unwrap())
        .collect();
    assert_eq!(
        filters,
        ["PropertyID,eq,7;UpdateDate,gt,2026-11-27T04:55:00"],
        "no second, complete fetch"
    );
    assert!(
        !snap.complete,
        "nothing changed: an incomplete, empty snapshot"
    );
    assert!(snap.residents.is_empty());

    // Any other failure of an incremental fetch is an error.
    let server = https::start(tenants_answer(Reply::json(500, "{}"))).await;
    let (_d, source) = source_for(&server);
    let e = source
        .fetch(FetchRequest {
            changed_since: Some(now()),
            now: now(),
        })
        .await
        .unwrap_err();
    assert!(matches!(e, PmsError::Status(500)), "{e:?}");
}

async fn one_tenant_at(t: Value, when: &str) -> RosterEntry {
    let (_server, _d, source) = served(vec![t]).await;
    let snap = full(&source, at(when)).await.unwrap();
    snap.residents[0].clone()
}

#[tokio::test]
async fn a_move_out_is_past_once_its_day_has_ended_in_the_site_time_zone() {
    let leaving = || {
        tenant(
            5,
            "Chloe Martin",
            "Current",
            vec![rm_lease(5, "2A", "2024-06-01", Some("2026-11-30"))],
        )
    };
    // 30 November 23:59:59 MST is 1 December 06:59:59Z: still the move-out day.
    let last_day = one_tenant_at(leaving(), "2026-12-01T06:59:59Z").await;
    assert_eq!(last_day.status, PmsStatus::Notice);
    assert_eq!(last_day.unit.as_deref(), Some("2A"));
    let gone = one_tenant_at(leaving(), "2026-12-01T07:00:00Z").await;
    assert_eq!(gone.status, PmsStatus::Past);

    let past = one_tenant_at(
        tenant(
            6,
            "Dev Patel",
            "Past",
            vec![rm_lease(6, "2A", "2023-03-01", Some("2026-10-31"))],
        ),
        "2026-11-27T12:00:00Z",
    )
    .await;
    assert_eq!(past.status, PmsStatus::Past);

    let mut noticed = rm_lease(7, "4B", "2024-06-01", None);
    noticed["NoticeDate"] = json!("2026-11-26T00:00:00");
    let notice = one_tenant_at(
        tenant(7, "Eve", "Current", vec![noticed]),
        "2026-11-27T12:00:00Z",
    )
    .await;
    assert_eq!(notice.status, PmsStatus::Notice);
    assert_eq!(notice.unit.as_deref(), Some("4B"));
}

#[tokio::test]
async fn a_transfer_moves_the_unit_on_the_transfer_day() {
    let moving = || {
        tenant(
            8,
            "Ana Diaz",
            "Current",
            vec![
                rm_lease(81, "4B", "2025-01-01", Some("2026-11-30")),
                rm_lease(82, "5C", "2026-11-30", None),
            ],
        )
    };
    // 29 November, 23:59:59 MST.
    let before = one_tenant_at(moving(), "2026-11-30T06:59:59Z").await;
    assert_eq!(before.unit.as_deref(), Some("4B"));
    // The transfer day itself: the new unit, while the old lease ends.
    let day = one_tenant_at(moving(), "2026-11-30T07:00:00Z").await;
    assert_eq!(day.unit.as_deref(), Some("5C"));
    assert_eq!(day.status.standing(), leasegate::core::Standing::Current);
    let after = one_tenant_at(moving(), "2026-12-02T12:00:00Z").await;
    assert_eq!(
        (after.unit.as_deref(), &after.status),
        (Some("5C"), &PmsStatus::Current)
    );

    // A flat and a garage at once: no single unit, so the core holds unit keys for a manager.
    let two = one_tenant_at(
        tenant(
            9,
            "Ben Okafor",
            "Current",
            vec![
                rm_lease(91, "5C", "2025-01-01", None),
                rm_lease(92, "G7", "2025-03-01", None),
            ],
        ),
        "2026-11-27T12:00:00Z",
    )
    .await;
    assert_eq!(two.unit, None);
    assert_eq!(two.status, PmsStatus::Current);
}

#[tokio::test]
async fn tenant_statuses_follow_the_table() {
    let table = [
        ("Current", PmsStatus::Current),
        ("current", PmsStatus::Current),
        ("Notice", PmsStatus::Notice),
        ("Future", PmsStatus::Future),
        ("Past", PmsStatus::Past),
        ("Applicant", PmsStatus::Applicant),
        ("Prospect", PmsStatus::Applicant),
        ("Cancelled", PmsStatus::Cancelled),
        ("Evicted", PmsStatus::Unknown("Evicted".into())),
    ];
    let tenants: Vec<Value> = table
        .iter()
        .enumerate()
        .map(|(i, (status, _))| {
            tenant(
                i as u64 + 1,
                "T",
                status,
                vec![rm_lease(i as u64 + 1, "4B", "2025-01-01", None)],
            )
        })
        .collect();
    let (_server, _d, source) = served(tenants).await;
    let snap = full(&source, now()).await.unwrap();
    for (i, (_, want)) in table.iter().enumerate() {
        assert_eq!(&find(&snap, &(i + 1).to_string()).status, want);
    }
}

#[tokio::test]
async fn the_documented_tenant_shape_parses_and_unknown_fields_are_ignored() {
    let fixture: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rentmanager-tenants.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let (_server, _d, source) = served(fixture).await;
    let snap = full(&source, now()).await.unwrap();
    let got: Vec<(&str, &str, Option<&str>, &PmsStatus)> = snap
        .residents
        .iter()
        .map(|r| (r.id.as_str(), r.name.as_str(), r.unit.as_deref(), &r.status))
        .collect();
    assert_eq!(
        got,
        [
            ("920", "Ana Diaz", Some("4B"), &PmsStatus::Current),
            ("921", "Ben Okafor", Some("5C"), &PmsStatus::Future),
            ("922", "Chloe Martin", Some("2A"), &PmsStatus::Notice),
            ("923", "Dev Patel", Some("2A"), &PmsStatus::Past),
        ]
    );
}

// --- Tokens --------------------------------------------------------------------------------------

#[tokio::test]
async fn an_expired_token_is_renewed_once() {
    // The first token is already expired.
    let server = https::start(serve(rm_refusing(vec![current(1, "4B")], |t| {
        t == token(1)
    })))
    .await;
    let (_d, source) = source_for(&server);
    let snap = full(&source, now()).await.unwrap();
    assert_eq!(snap.residents.len(), 1);
    assert_eq!(kinds(&server), ["auth", "get -1", "auth", "get -2"]);

    // A token that expires between fetches.
    let expired = Arc::new(AtomicBool::new(false));
    let flag = expired.clone();
    let server = https::start(serve(rm_refusing(vec![current(1, "4B")], move |t| {
        flag.load(Ordering::SeqCst) && t == token(1)
    })))
    .await;
    let (_d, source) = source_for(&server);
    full(&source, now()).await.unwrap();
    expired.store(true, Ordering::SeqCst);
    full(&source, now()).await.unwrap();
    assert_eq!(
        kinds(&server),
        ["auth", "get -1", "get -1", "auth", "get -2"]
    );
}

#[tokio::test]
async fn a_token_refused_twice_fails_the_sync() {
    let server = https::start(serve(rm_refusing(vec![current(1, "4B")], |_| true))).await;
    let (_d, source) = source_for(&server);
    let e = full(&source, now()).await.unwrap_err();
    assert!(matches!(e, PmsError::Unauthorized(401)), "{e:?}");
    assert!(!e.is_retryable());
    assert_eq!(kinds(&server), ["auth", "get -1", "auth", "get -2"]);
}

#[tokio::test]
async fn refused_credentials_fail_without_a_retry() {
    let server = https::start(fixed(Reply::json(
        401,
        r#"{"UserMessage":"Authentication Failed."}"#,
    )))
    .await;
    let (_d, source) = source_for(&server);
    assert!(matches!(
        full(&source, now()).await,
        Err(PmsError::Unauthorized(401))
    ));
    assert_eq!(server.requests().len(), 1);
}

// --- Rate limits -----------------------------------------------------------------------------------

fn limited_tenants(
    times: usize,
    retry_after: &'static str,
) -> impl Fn(&Request) -> Reply + Send + Sync + 'static {
    let count = AtomicUsize::new(0);
    let good = serve(rm(vec![current(1, "4B")]));
    move |req| {
        if req.method == "GET" && count.fetch_add(1, Ordering::SeqCst) < times {
            Reply::json(429, r#"{"UserMessage":"Rate limit exceeded"}"#)
                .header("Retry-After", retry_after)
                .header("x-ratelimit-remaining", 0)
                .header("x-ratelimit-reset", 1_795_000_000u64)
        } else {
            good(req)
        }
    }
}

#[tokio::test]
async fn a_429_is_retried_after_its_retry_after_and_a_long_one_is_an_error() {
    let server = https::start(limited_tenants(1, "1")).await;
    let (_d, source) = source_for(&server);
    let started = Instant::now();
    assert_eq!(full(&source, now()).await.unwrap().residents.len(), 1);
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(kinds(&server), ["auth", "get -1", "get -1"]);

    let server = https::start(limited_tenants(usize::MAX, "90")).await;
    let (_d, source) = source_for(&server);
    let started = Instant::now();
    let e = full(&source, now()).await.unwrap_err();
    assert_eq!(e.retry_after(), Some(Duration::from_secs(90)));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(kinds(&server), ["auth", "get -1"]);

    let server = https::start(limited_tenants(usize::MAX, "1")).await;
    let (_d, source) = source_for(&server);
    assert!(matches!(
        full(&source, now()).await,
        Err(PmsError::RateLimited { .. })
    ));
    assert_eq!(kinds(&server), ["auth", "get -1", "get -1", "get -1"]);
}

// --- The fault matrix ---------------------------------------------------------------------------------

type Check = fn(&PmsError) -> bool;

fn valid() -> String {
    Value::Array(vec![current(1, "4B")]).to_string()
}

fn with_tenant(f: impl Fn(&mut Value)) -> String {
    let mut t = current(1, "4B");
    f(&mut t);
    Value::Array(vec![t]).to_string()
}

fn page(body: String) -> Reply {
    Reply::json(200, body).header("x-total-results", 1)
}

/// Failures of `/Tenants` (AuthorizeUser works).
fn tenant_faults() -> Vec<(&'static str, Reply, Check)> {
    let body = valid();
    let cut = body[..body.len() / 2].to_string();
    vec![
        ("500", Reply::json(500, "{}"), |e| {
            matches!(e, PmsError::Status(500))
        }),
        (
            "HTML with 200",
            Reply::html(
                200,
                "<html><body>Rent Manager is being updated</body></html>",
            ),
            |e| matches!(e, PmsError::NotJson { .. }),
        ),
        ("403", Reply::json(403, "{}"), |e| {
            matches!(e, PmsError::Unauthorized(403))
        }),
        (
            "truncated JSON",
            page(cut.clone()),
            |e| matches!(e, PmsError::Malformed(m) if m.contains("not a list of tenants")),
        ),
        (
            "connection cut mid-body",
            Reply {
                truncate_to: Some(cut.len()),
                ..page(body.clone())
            },
            |e| matches!(e, PmsError::Transport(_)),
        ),
        (
            "an object, not the list of tenants",
            page(r#"{"Items":[]}"#.into()),
            |e| matches!(e, PmsError::Malformed(m) if m.contains("not a list of tenants")),
        ),
        (
            "TenantID of the wrong type",
            page(with_tenant(|t| t["TenantID"] = json!({"id": 1}))),
            |e| matches!(e, PmsError::Malformed(m) if m.contains("expected an id")),
        ),
        (
            "no TenantID",
            page(with_tenant(|t| {
                t.as_object_mut().unwrap().remove("TenantID");
            })),
            |e| matches!(e, PmsError::Malformed(m) if m.contains("TenantID")),
        ),
        (
            "no Status",
            page(with_tenant(|t| {
                t.as_object_mut().unwrap().remove("Status");
            })),
            |e| matches!(e, PmsError::Malformed(m) if m.contains("Status")),
        ),
        (
            "Leases of the wrong type",
            page(with_tenant(|t| t["Leases"] = json!("none"))),
            |e| matches!(e, PmsError::Malformed(m) if m.contains("not a list of tenants")),
        ),
        (
            "a lease without its Unit embed",
            page(with_tenant(|t| {
                t["Leases"][0].as_object_mut().unwrap().remove("Unit");
            })),
            |e| matches!(e, PmsError::Malformed(m) if m.contains("Leases.Unit")),
        ),
        (
            "an unreadable move-out date",
            page(with_tenant(|t| {
                t["Leases"][0]["MoveOutDate"] = json!("soon")
            })),
            |e| matches!(e, PmsError::Malformed(m) if m.contains("MoveOutDate")),
        ),
        (
            "no x-total-results",
            Reply::json(200, valid()),
            |e| matches!(e, PmsError::Malformed(m) if m.contains("x-total-results")),
        ),
        (
            "an empty page announced as one tenant",
            page("[]".into()),
            |e| matches!(e, PmsError::Incomplete(_)),
        ),
        (
            "204 on a complete fetch",
            Reply {
                headers: vec![],
                ..Reply::json(204, "")
            },
            |e| matches!(e, PmsError::Malformed(_)),
        ),
    ]
}

/// Failures of AuthorizeUser.
fn auth_faults() -> Vec<(&'static str, Reply, Check)> {
    vec![
        (
            "AuthorizeUser 500 (password reset required)",
            Reply::json(
                500,
                r#"{"DeveloperMessage":"A password reset is required.","Exception":"AuthenticationForcePasswordResetException"}"#,
            ),
            |e| matches!(e, PmsError::Status(500)),
        ),
        (
            "AuthorizeUser answers an object",
            Reply::json(200, r#"{"Token":"abc"}"#),
            |e| matches!(e, PmsError::Malformed(m) if m.contains("AuthorizeUser")),
        ),
        (
            "AuthorizeUser answers an empty string",
            Reply::json(200, r#""""#),
            |e| matches!(e, PmsError::Malformed(m) if m.contains("AuthorizeUser")),
        ),
        (
            "AuthorizeUser answers HTML",
            Reply::html(200, "<html>login</html>"),
            |e| matches!(e, PmsError::NotJson { .. }),
        ),
    ]
}

async fn error_from(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> PmsError {
    let server = https::start(handler).await;
    let (_d, source) = source_for(&server);
    full(&source, now())
        .await
        .expect_err("a fault must fail the fetch, never give a roster")
}

#[tokio::test]
async fn every_fault_is_an_error_never_a_roster() {
    for (what, reply, expected) in tenant_faults() {
        let e = error_from(tenants_answer(reply)).await;
        assert!(expected(&e), "{what}: unexpected {e:?}");
    }
    for (what, reply, expected) in auth_faults() {
        let e = error_from(fixed(reply)).await;
        assert!(expected(&e), "{what}: unexpected {e:?}");
    }
}

#[tokio::test]
async fn a_slow_server_past_the_timeout_is_a_timeout() {
    let server = https::start(move |req: &Request| Reply {
        delay: Duration::from_secs(3),
        ..serve(rm(vec![current(1, "4B")]))(req)
    })
    .await;
    let d = Deployment::new(&server, &["7"], "1s");
    let started = Instant::now();
    assert!(matches!(
        full(&d.source(), now()).await,
        Err(PmsError::Timeout)
    ));
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused_before_the_password_is_sent() {
    let server = https::start_untrusted(serve(rm(vec![current(1, "4B")]))).await;
    let (_d, source) = source_for(&server);
    match full(&source, now()).await {
        Err(PmsError::Transport(why)) => {
            assert!(why.to_lowercase().contains("certificate"), "{why}")
        }
        other => panic!("expected a certificate error, got {other:?}"),
    }
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn no_credential_or_token_appears_in_any_error_or_debug_output() {
    let mut lines = Vec::new();
    for (what, reply, _) in tenant_faults() {
        let e = error_from(tenants_answer(reply)).await;
        lines.push(format!("{what}: {e} / {e:?}"));
    }
    for (what, reply, _) in auth_faults() {
        let e = error_from(fixed(reply)).await;
        lines.push(format!("{what}: {e} / {e:?}"));
    }
    let e = error_from(serve(rm_refusing(vec![], |_| true))).await;
    lines.push(format!("{e} / {e:?}"));
    // Debug output after a fetch, with a token kept.
    let (_server, _d, source) = served(vec![current(1, "4B")]).await;
    full(&source, now()).await.unwrap();
    lines.push(format!("{source:?}"));
    for line in lines {
        for secret in [USER, PASS, TOKEN_STEM] {
            assert!(!line.contains(secret), "{secret} in {line}");
        }
    }
}

#[test]
fn a_location_or_property_id_that_is_not_a_number_is_a_setup_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("u"), "u\n").unwrap();
    std::fs::write(dir.path().join("p"), "p\n").unwrap();
    let path = dir.path().join("leasegate.toml");
    for (props, location) in [("[\"7\"]", "\"east\""), ("[\"7;Status,eq,Past\"]", "\"1\"")] {
        let text = format!(
            "[site]\nid = \"s\"\ntimezone = \"America/Denver\"\n[store]\npath = \"state\"\n[pms]\n\
             kind = \"rentmanager\"\nbase_url = \"https://rm.example.test\"\nproperty_ids = \
             {props}\nlocation_id = {location}\nusername_file = \"u\"\npassword_file = \"p\"\n"
        );
        let cfg = leasegate::config::parse(&text, &path).unwrap();
        assert!(matches!(
            RentManagerSource::new(&cfg),
            Err(PmsError::Setup(_))
        ));
    }
}

// --- The command line ------------------------------------------------------------------------------------

const DEMO_ROSTER: &str = r#"{
  "fetched_at": "2026-11-27T12:00:00Z",
  "residents": [
    { "id": "920", "name": "Ana Diaz", "unit": "4B", "status": "current" },
    { "id": "921", "name": "Ben Okafor", "unit": "5C", "status": "future" },
    { "id": "922", "name": "Chloe Martin", "unit": "2A", "status": "notice" },
    { "id": "923", "name": "Dev Patel", "unit": "2A", "status": "past" }
  ]
}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leasegate_plan_works_against_rent_manager_and_a_500_fails_it_with_the_reason() {
    let fixture: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rentmanager-tenants.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let server = https::start(serve(rm(fixture))).await;
    let d = Deployment::new(&server, &["7"], "5s");
    let out = plan(d.config()).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let from_rm = suggestions(&out.stdout);
    assert_eq!(kinds(&server), ["auth", "get -1"]);

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
    assert_eq!(from_rm, from_file);

    let broken = https::start(tenants_answer(Reply::json(500, "{}"))).await;
    let d = Deployment::new(&broken, &["7"], "5s");
    let out = plan(d.config()).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("rentmanager") && err.contains("HTTP 500"),
        "{err}"
    );
    for secret in [USER, PASS, TOKEN_STEM] {
        assert!(!err.contains(secret), "{err}");
    }
    assert!(out.stdout.is_empty());
}
