//! The Buildium adapter against a real HTTPS server speaking Buildium's `GET /v1/leases`:
//! paging, incremental fetches, the status mapping, every fault of the matrix through the
//! gateway and a real store, the mass-revocation guard, and `leasegate plan`.

#[path = "support/https.rs"]
mod https;

#[path = "fixtures/buildium-fake.rs"]
mod buildium_fake;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use buildium_fake::{set_header, Fake, Lease, CLIENT_ID, CLIENT_SECRET};
use chrono::{DateTime, TimeZone, Utc};
use https::{Reply, TestServer};
use leasegate::config::Config;
use leasegate::core::{
    Action, Alert, Hold, Override, PmsStatus, Resident, ResidentId, Snapshot, Suggestion,
    SuggestionId, World,
};
use leasegate::gateway::{wall_clock, Gateway};
use leasegate::pms::{BuildiumSource, FetchRequest, PmsError, RosterSource};
use serde_json::Value;

// ---------------------------------------------------------------------------------------
// Fixtures and harness

fn lease_schema() -> &'static jsonschema::Validator {
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    V.get_or_init(|| {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/buildium-lease-schema.json");
        let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        jsonschema::options()
            .should_validate_formats(true)
            .build(&schema)
            .expect("the extracted LeaseMessage schema compiles")
    })
}

/// Every lease a test serves goes through here: it must be a valid `LeaseMessage`.
fn checked(leases: Vec<Lease>) -> Vec<Lease> {
    for l in &leases {
        let v = l.to_json();
        let errors: Vec<String> = lease_schema()
            .iter_errors(&v)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "lease {} is not a LeaseMessage: {errors:?}",
            l.id
        );
    }
    leases
}

async fn serve(leases: Vec<Lease>) -> (TestServer, Arc<Fake>) {
    let fake = Fake::new(checked(leases));
    let f = fake.clone();
    let server = https::start(move |req| f.handle(req)).await;
    (server, fake)
}

fn config_in(dir: &Path, server: &TestServer, mode: &str, timeout: &str, units: &[&str]) -> Config {
    let path = buildium_fake::write_deployment(
        dir,
        &server.base_url(),
        &server.ca_file,
        mode,
        timeout,
        units,
    );
    let text = std::fs::read_to_string(&path).unwrap();
    leasegate::config::parse(&text, &path).unwrap()
}

fn units_of(leases: &[Lease]) -> Vec<String> {
    leases.iter().map(|l| l.unit.clone()).collect()
}

/// A deployment in a tempdir: the fake Buildium, a config pointing at it, the source, and a
/// gateway over a real store.
struct Harness {
    dir: tempfile::TempDir,
    server: TestServer,
    fake: Arc<Fake>,
    cfg: Config,
    source: BuildiumSource,
    gw: Gateway,
}

async fn harness(leases: Vec<Lease>, mode: &str, timeout: &str) -> Harness {
    let units = units_of(&leases);
    let (server, fake) = serve(leases).await;
    let dir = tempfile::tempdir().unwrap();
    let unit_refs: Vec<&str> = units.iter().map(String::as_str).collect();
    let cfg = config_in(dir.path(), &server, mode, timeout, &unit_refs);
    let source = BuildiumSource::new(&cfg).unwrap();
    let gw = Gateway::open(&cfg).unwrap();
    Harness {
        dir,
        server,
        fake,
        cfg,
        source,
        gw,
    }
}

/// One sync as the daemon runs it: `sync_once`, and on failure `record_sync_failure`.
async fn sync_and_record(gw: &mut Gateway, source: &dyn RosterSource) -> Result<(), String> {
    let r = leasegate::daemon::sync_once(gw, source).await;
    if let Err(reason) = &r {
        gw.record_sync_failure(reason, wall_clock()).unwrap();
    }
    r
}

/// What access depends on, comparable before and after.
#[derive(Debug, PartialEq)]
struct Access {
    residents: BTreeMap<ResidentId, Resident>,
    grants: leasegate::core::Grants,
    pending: BTreeMap<SuggestionId, Suggestion>,
    overrides: BTreeMap<ResidentId, Override>,
    next_seq: u64,
}

fn access(w: &World) -> Access {
    Access {
        residents: w.residents.clone(),
        grants: w.grants.clone(),
        pending: w.pending.clone(),
        overrides: w.overrides.clone(),
        next_seq: w.next_seq,
    }
}

fn no_secret(text: &str) {
    assert!(
        !text.contains(CLIENT_SECRET) && !text.contains(CLIENT_ID),
        "a credential leaked: {text}"
    );
}

fn pinned(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
}

async fn fetch_at(source: &BuildiumSource, now: DateTime<Utc>) -> Result<Snapshot, PmsError> {
    source
        .fetch(FetchRequest {
            changed_since: None,
            now,
        })
        .await
}

fn by_id(s: &Snapshot) -> BTreeMap<&str, (&str, Option<&str>, &PmsStatus)> {
    s.residents
        .iter()
        .map(|e| {
            (
                e.id.as_str(),
                (e.name.as_str(), e.unit.as_deref(), &e.status),
            )
        })
        .collect()
}

fn keys_of(w: &World, resident: &str) -> Vec<String> {
    w.grants_of(resident).map(|g| g.key_id.clone()).collect()
}

/// The scenario roster: a co-tenant move-out, a move-out, a transfer, an eviction, notice
/// by `MoveOutData` (today and yesterday in Denver), a future lease and a joining tenant.
fn scenario() -> Vec<Lease> {
    vec![
        Lease::new(1, "101", "Active")
            .tenant(1001, "Ana", "Diaz", "Current")
            .tenant(1002, "Ben", "Okafor", "MovedOut"),
        Lease::new(2, "102", "Past").tenant(1003, "Chloe", "Martin", "MovedOut"),
        Lease::new(3, "103", "Past").tenant(1004, "Dev", "Patel", "MovedOut"),
        Lease::new(4, "204", "Active").tenant(1004, "Dev", "Patel", "Current"),
        Lease::new(5, "105", "Active")
            .tenant(1005, "Eva", "Novak", "Current")
            .eviction(),
        Lease::new(6, "106", "Active")
            .tenant(1006, "Farid", "Haddad", "Current")
            .tenant(1007, "Grace", "Lee", "Current")
            .moving_out(1006, "2026-11-27")
            .moving_out(1007, "2026-11-26"),
        Lease::new(7, "107", "Future").tenant(1008, "Hugo", "Silva", "Future"),
        Lease::new(8, "108", "Active")
            .tenant(1009, "Ines", "Moreau", "Future")
            .tenant(1010, "Jon", "Berg", "Current"),
        // Fields a newer Buildium might add are tolerated.
        Lease::new(9, "109", "Active")
            .tenant(1011, "Kai", "Ito", "Current")
            .with_extra(serde_json::json!({
                "SomethingNew": {"Nested": [1, 2, 3]},
                "LeaseCharges": [],
            })),
    ]
}

// ---------------------------------------------------------------------------------------
// Schema

#[test]
fn every_fixture_lease_validates_against_the_lease_message_schema() {
    checked(scenario());
    checked(buildium_fake::generated(200));
    // The schema has teeth: an ill-typed flag or an unknown enum value is refused.
    let mut bad = Lease::new(1, "101", "Active")
        .tenant(1, "A", "B", "Current")
        .to_json();
    bad["IsEvictionPending"] = Value::from("no");
    assert!(!lease_schema().is_valid(&bad));
    let odd = Lease::new(1, "101", "Suspended").to_json();
    assert!(!lease_schema().is_valid(&odd));
    let bad_date = Lease::new(1, "101", "Active")
        .updated("yesterday")
        .to_json();
    assert!(!lease_schema().is_valid(&bad_date));
}

// ---------------------------------------------------------------------------------------
// Requests, paging, incremental fetches

#[tokio::test]
async fn paging_2500_leases_takes_three_pages_with_the_documented_request() {
    let mut leases = buildium_fake::generated(2500);
    // Another property's leases must not be asked for, and a listed second property is.
    leases.push(
        Lease::new(1, "X1", "Active")
            .property(999)
            .tenant(1, "Not", "Ours", "Current"),
    );
    leases.push(
        Lease::new(2, "Y1", "Active")
            .property(777)
            .tenant(2, "Also", "Ours", "Current"),
    );
    let (server, _fake) = serve(leases).await;
    let dir = tempfile::tempdir().unwrap();
    let path = buildium_fake::write_deployment(
        dir.path(),
        &server.base_url(),
        &server.ca_file,
        "automatic",
        "10s",
        &[],
    );
    let text = std::fs::read_to_string(&path).unwrap().replace(
        r#"property_ids = ["12345"]"#,
        r#"property_ids = ["12345", 777]"#,
    );
    let cfg = leasegate::config::parse(&text, &path).unwrap();
    let source = BuildiumSource::new(&cfg).unwrap();
    let now = pinned(2026, 11, 27, 18);
    let snap = fetch_at(&source, now).await.unwrap();
    assert!(snap.complete);
    assert_eq!(snap.fetched_at, now);

    let seen = server.requests();
    assert_eq!(seen.len(), 3, "2,501 leases at 1,000 a page");
    for (i, r) in seen.iter().enumerate() {
        assert_eq!(r.method, "GET");
        assert_eq!(r.path(), "/v1/leases");
        assert_eq!(r.query("offset").as_deref(), Some(["0", "1000", "2000"][i]));
        assert_eq!(r.query("limit").as_deref(), Some("1000"));
        assert_eq!(r.query_all("propertyids"), ["12345", "777"]);
        assert_eq!(r.query_all("leasestatuses"), ["Active", "Past", "Future"]);
        assert_eq!(r.query("orderby").as_deref(), Some("Id asc"));
        assert_eq!(r.query("lastupdatedfrom"), None);
        assert_eq!(r.header("x-buildium-client-id"), Some(CLIENT_ID));
        assert_eq!(r.header("x-buildium-client-secret"), Some(CLIENT_SECRET));
        assert!(r.header("user-agent").unwrap().starts_with("leasegate/"));
    }

    // generated(): 2,500 leases; every lease's tenants are people of their own.
    let expected: usize = buildium_fake::generated(2500)
        .iter()
        .map(|l| l.tenants.len())
        .sum::<usize>()
        + 1;
    assert_eq!(snap.residents.len(), expected);
    let m = by_id(&snap);
    assert!(!m.contains_key("1"), "property 999 was not asked for");
    assert_eq!(m["2"].2, &PmsStatus::Current);
    // Lease 100000 is past (i % 20 == 0), 100002 future, 100003 notice, 100004 eviction.
    // Two properties are configured, so units read `<property id>/<unit number>`.
    assert_eq!(m["500000"].2, &PmsStatus::Past);
    assert_eq!(m["500004"].2, &PmsStatus::Future);
    assert_eq!(m["500006"].2, &PmsStatus::Notice);
    assert_eq!(
        m["500008"],
        ("Eva Novak", Some("12345/U00005"), &PmsStatus::Eviction)
    );
    assert_eq!(
        m["500010"],
        ("Farid Haddad", Some("12345/U00006"), &PmsStatus::Current)
    );
    assert_eq!(
        m["500011"],
        ("Kim Haddad", Some("12345/U00006"), &PmsStatus::Current)
    );
}

#[tokio::test]
async fn an_incremental_fetch_sends_lastupdatedfrom_and_is_not_complete() {
    let leases = vec![
        Lease::new(1, "101", "Active")
            .tenant(1001, "Ana", "Diaz", "Current")
            .updated("2026-11-01T10:00:00Z"),
        Lease::new(2, "102", "Past")
            .tenant(1002, "Ben", "Okafor", "MovedOut")
            .updated("2026-11-27T08:15:00Z"),
    ];
    let (server, _fake) = serve(leases).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_in(dir.path(), &server, "automatic", "10s", &["101", "102"]);
    let source = BuildiumSource::new(&cfg).unwrap();
    let snap = source
        .fetch(FetchRequest {
            changed_since: Some(pinned(2026, 11, 27, 6)),
            now: pinned(2026, 11, 27, 12),
        })
        .await
        .unwrap();
    assert!(
        !snap.complete,
        "a change list says nothing about who is absent"
    );
    let m = by_id(&snap);
    assert_eq!(m.len(), 1);
    assert_eq!(m["1002"].2, &PmsStatus::Past);
    let seen = server.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].query("lastupdatedfrom").as_deref(),
        Some("2026-11-27T06:00:00Z")
    );
    assert_eq!(seen[0].query("orderby").as_deref(), Some("Id asc"));
}

// ---------------------------------------------------------------------------------------
// Mapping

#[tokio::test]
async fn statuses_map_as_the_table_says() {
    let (server, _fake) = serve(scenario()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_in(dir.path(), &server, "automatic", "10s", &[]);
    let source = BuildiumSource::new(&cfg).unwrap();
    // 03:00 UTC on the 28th is 20:00 on the 27th in Denver: "today" is the 27th there.
    let snap = fetch_at(&source, pinned(2026, 11, 28, 3)).await.unwrap();
    let m = by_id(&snap);
    // A co-tenant who moved out loses access; the other tenant keeps it.
    assert_eq!(m["1001"], ("Ana Diaz", Some("101"), &PmsStatus::Current));
    assert_eq!(m["1002"], ("Tenant 1002", Some("101"), &PmsStatus::Past));
    // A move-out: the lease is past.
    assert_eq!(m["1003"].2, &PmsStatus::Past);
    // A transfer: one entry, with the new lease's unit.
    assert_eq!(snap.residents.iter().filter(|e| e.id == "1004").count(), 1);
    assert_eq!(m["1004"], ("Dev Patel", Some("204"), &PmsStatus::Current));
    // An eviction flag.
    assert_eq!(m["1005"], ("Eva Novak", Some("105"), &PmsStatus::Eviction));
    // Notice by MoveOutData: moving out today (in Denver) keeps access today; a date that
    // has passed is a move-out.
    assert_eq!(m["1006"].2, &PmsStatus::Notice);
    assert_eq!(m["1007"].2, &PmsStatus::Past);
    // Future lease, and a future tenant joining an active lease.
    assert_eq!(m["1008"].2, &PmsStatus::Future);
    assert_eq!(m["1009"].2, &PmsStatus::Future);
    assert_eq!(m["1010"].2, &PmsStatus::Current);
    // Unknown fields were ignored.
    assert_eq!(m["1011"], ("Kai Ito", Some("109"), &PmsStatus::Current));
    assert_eq!(snap.residents.len(), 11);

    // The same leases a day later in Denver: the notice date has passed too.
    let snap = fetch_at(&source, pinned(2026, 11, 28, 18)).await.unwrap();
    assert_eq!(by_id(&snap)["1006"].2, &PmsStatus::Past);
}

#[tokio::test]
async fn a_status_buildium_adds_is_kept_as_unknown_and_alerted_on() {
    // Deliberately outside the schema's enums: Buildium adding a value must not fail the
    // snapshot (and must not move keys).
    let fake = Fake::new(vec![
        Lease::new(1, "101", "Active").tenant(1001, "Ana", "Diaz", "OnHold"),
        Lease::new(2, "102", "Active").tenant(1002, "Ben", "Okafor", "Evicted"),
    ]);
    let f = fake.clone();
    let server = https::start(move |req| f.handle(req)).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_in(dir.path(), &server, "automatic", "10s", &["101", "102"]);
    let source = BuildiumSource::new(&cfg).unwrap();
    let snap = fetch_at(&source, wall_clock()).await.unwrap();
    let m = by_id(&snap);
    assert_eq!(m["1001"].2, &PmsStatus::Unknown("Active/OnHold".into()));
    assert_eq!(m["1002"].2, &PmsStatus::Unknown("Active/Evicted".into()));
    let mut gw = Gateway::open(&cfg).unwrap();
    let t = gw.sync(&snap, wall_clock()).unwrap();
    assert!(t
        .alerts
        .iter()
        .any(|a| matches!(a, Alert::UnknownStatus { resident_id, .. } if resident_id == "1001")));
    assert!(gw.world().grants.is_empty());
}

#[tokio::test]
async fn a_co_tenant_who_moves_out_loses_access_and_the_other_keeps_it() {
    let both = vec![Lease::new(1, "101", "Active")
        .tenant(1001, "Ana", "Diaz", "Current")
        .tenant(1002, "Ben", "Okafor", "Current")];
    let mut h = harness(both, "automatic", "10s").await;
    sync_and_record(&mut h.gw, &h.source).await.unwrap();
    assert_eq!(keys_of(h.gw.world(), "1002").len(), 3);
    let ana_before = keys_of(h.gw.world(), "1001");
    h.fake
        .set_leases(checked(vec![Lease::new(1, "101", "Active")
            .tenant(1001, "Ana", "Diaz", "Current")
            .tenant(1002, "Ben", "Okafor", "MovedOut")]));
    sync_and_record(&mut h.gw, &h.source).await.unwrap();
    assert!(keys_of(h.gw.world(), "1002").is_empty(), "Ben moved out");
    assert_eq!(keys_of(h.gw.world(), "1001"), ana_before, "Ana stays");
}

#[tokio::test]
async fn a_transfer_moves_the_keys_to_the_new_unit() {
    let before = vec![Lease::new(3, "103", "Active").tenant(1004, "Dev", "Patel", "Current")];
    let mut h = harness(before, "automatic", "10s").await;
    // The site must know the new unit too.
    drop(h.gw);
    let site = buildium_fake::site_toml(["103", "204"]);
    std::fs::write(h.dir.path().join("site.toml"), &site).unwrap();
    std::fs::remove_dir_all(h.dir.path().join("state")).unwrap();
    h.gw = Gateway::open(&h.cfg).unwrap();
    sync_and_record(&mut h.gw, &h.source).await.unwrap();
    assert!(keys_of(h.gw.world(), "1004").contains(&"unit:103".to_string()));
    h.fake.set_leases(checked(vec![
        Lease::new(3, "103", "Past").tenant(1004, "Dev", "Patel", "MovedOut"),
        Lease::new(4, "204", "Active").tenant(1004, "Dev", "Patel", "Current"),
    ]));
    sync_and_record(&mut h.gw, &h.source).await.unwrap();
    let keys = keys_of(h.gw.world(), "1004");
    assert!(keys.contains(&"unit:204".to_string()), "{keys:?}");
    assert!(!keys.contains(&"unit:103".to_string()), "{keys:?}");
    assert_eq!(h.gw.world().residents["1004"].unit.as_deref(), Some("204"));
}

// ---------------------------------------------------------------------------------------
// Fault matrix

fn good_roster() -> Vec<Lease> {
    scenario()
}

/// Sync a good roster, install `fault`, sync again: the sync fails with a reason that
/// contains `expect`, access is what it was (in memory and on disk), and the failure is
/// recorded for the status topic. Returns the reason.
async fn fault_changes_nothing(
    leases: Vec<Lease>,
    timeout: &str,
    fault: impl Fn(&https::Request, Reply) -> Reply + Send + Sync + 'static,
    expect: &str,
) -> String {
    let mut h = harness(leases, "automatic", timeout).await;
    sync_and_record(&mut h.gw, &h.source).await.unwrap();
    let before = access(h.gw.world());
    assert!(!before.grants.is_empty(), "the good roster granted keys");
    let status_before = h.gw.sync_status().unwrap();
    assert!(status_before.last_success.is_some());
    h.fake.set_hook(fault);
    let reason = sync_and_record(&mut h.gw, &h.source)
        .await
        .expect_err("the sync must fail");
    assert!(
        reason.to_lowercase().contains(&expect.to_lowercase()),
        "{reason:?} does not say {expect:?}"
    );
    no_secret(&reason);
    assert_eq!(access(h.gw.world()), before, "access changed in memory");
    assert_eq!(
        access(&h.gw.store().load_world().unwrap()),
        before,
        "access changed on disk"
    );
    let status = h.gw.sync_status().unwrap();
    assert_eq!(status.last_error.as_deref(), Some(reason.as_str()));
    assert!(status.last_failure.is_some());
    assert_eq!(status.last_success, status_before.last_success);
    reason
}

#[tokio::test]
async fn a_500_changes_nothing_and_is_recorded() {
    fault_changes_nothing(
        good_roster(),
        "10s",
        |_, _| buildium_fake::error(500, "Oops"),
        "HTTP 500",
    )
    .await;
}

#[tokio::test]
async fn a_401_changes_nothing_and_is_recorded() {
    fault_changes_nothing(
        good_roster(),
        "10s",
        |_, _| buildium_fake::error(401, "The API key couldn't be authorized."),
        "refused the credentials",
    )
    .await;
}

#[tokio::test]
async fn an_html_page_with_200_changes_nothing() {
    fault_changes_nothing(
        good_roster(),
        "10s",
        |_, _| {
            Reply::html(
                200,
                "<html><body>Buildium is down for maintenance</body></html>",
            )
        },
        "not JSON",
    )
    .await;
}

#[tokio::test]
async fn a_body_cut_short_of_its_length_changes_nothing() {
    fault_changes_nothing(
        good_roster(),
        "10s",
        |_, r| {
            let n = r.body.len() / 2;
            Reply {
                truncate_to: Some(n),
                ..r
            }
        },
        "cannot reach the PMS",
    )
    .await;
}

#[tokio::test]
async fn truncated_json_changes_nothing() {
    // The JSON itself ends early (Content-Length matches what is sent).
    fault_changes_nothing(
        good_roster(),
        "10s",
        |_, r| {
            let n = r.body.len() / 2;
            Reply {
                body: r.body[..n].to_vec(),
                ..r
            }
        },
        "malformed",
    )
    .await;
}

#[tokio::test]
async fn a_body_that_is_not_an_array_changes_nothing() {
    fault_changes_nothing(
        good_roster(),
        "10s",
        |_, r| {
            let wrapped = format!(
                "{{\"value\":{}}}",
                String::from_utf8(r.body.clone()).unwrap()
            );
            Reply {
                body: wrapped.into_bytes(),
                ..r
            }
        },
        "malformed",
    )
    .await;
}

#[tokio::test]
async fn a_missing_or_ill_typed_field_changes_nothing() {
    fault_changes_nothing(
        good_roster(),
        "10s",
        |_, r| {
            let body = String::from_utf8(r.body.clone()).unwrap();
            Reply {
                body: body
                    .replacen("\"LeaseStatus\":", "\"LeaseState\":", 1)
                    .into_bytes(),
                ..r
            }
        },
        "missing field `LeaseStatus`",
    )
    .await;
    fault_changes_nothing(
        good_roster(),
        "10s",
        |_, r| {
            let body = String::from_utf8(r.body.clone()).unwrap();
            Reply {
                body: body
                    .replacen(
                        "\"IsEvictionPending\":false",
                        "\"IsEvictionPending\":\"no\"",
                        1,
                    )
                    .into_bytes(),
                ..r
            }
        },
        "malformed",
    )
    .await;
}

#[tokio::test]
async fn a_short_page_changes_nothing() {
    let reason = fault_changes_nothing(
        good_roster(),
        "10s",
        |_, r| {
            let n = good_roster().len() + 3;
            set_header(r, "X-Total-Count", n)
        },
        "incomplete",
    )
    .await;
    assert!(reason.contains("12 in all"), "{reason}");
}

#[tokio::test]
async fn a_missing_total_header_changes_nothing() {
    fault_changes_nothing(
        good_roster(),
        "10s",
        |_, mut r| {
            r.headers
                .retain(|(k, _)| !k.eq_ignore_ascii_case("X-Total-Count"));
            r
        },
        "X-Total-Count header is missing",
    )
    .await;
}

#[tokio::test]
async fn a_total_that_changes_between_pages_changes_nothing() {
    let leases = buildium_fake::generated(1200);
    fault_changes_nothing(
        leases,
        "10s",
        |req, r| {
            if req.query("offset").as_deref() == Some("1000") {
                set_header(r, "X-Total-Count", 1201)
            } else {
                r
            }
        },
        "changed from 1200 to 1201",
    )
    .await;
}

#[tokio::test]
async fn a_lease_served_on_two_pages_changes_nothing() {
    // The second page starts one lease early, as if a lease were deleted meanwhile.
    let leases = buildium_fake::generated(1200);
    let all: Vec<String> = leases.iter().map(|l| l.to_json().to_string()).collect();
    fault_changes_nothing(
        leases,
        "10s",
        move |req, r| {
            if req.query("offset").as_deref() == Some("1000") {
                let body = format!("[{}]", all[999..1199].join(","));
                Reply {
                    body: body.into_bytes(),
                    ..r
                }
            } else {
                r
            }
        },
        "came twice",
    )
    .await;
}

#[tokio::test]
async fn a_slow_server_past_the_timeout_changes_nothing() {
    fault_changes_nothing(
        good_roster(),
        "1s",
        |_, r| Reply {
            delay: Duration::from_secs(3),
            ..r
        },
        "did not answer in time",
    )
    .await;
}

#[tokio::test]
async fn a_long_retry_after_is_handed_to_the_daemon_as_rate_limited() {
    let reason = fault_changes_nothing(
        good_roster(),
        "10s",
        |_, _| buildium_fake::error(429, "Too many requests").header("Retry-After", 120),
        "rate-limited",
    )
    .await;
    assert!(reason.contains("120s"), "{reason}");
}

#[tokio::test]
async fn a_rate_limit_that_persists_gives_up_after_three_tries() {
    let (server, fake) = serve(good_roster()).await;
    fake.set_hook(|_, _| buildium_fake::error(429, "Too many requests").header("Retry-After", 0));
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_in(dir.path(), &server, "automatic", "10s", &[]);
    let source = BuildiumSource::new(&cfg).unwrap();
    let e = fetch_at(&source, wall_clock()).await.unwrap_err();
    assert!(matches!(e, PmsError::RateLimited { .. }), "{e}");
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn a_429_with_a_short_retry_after_is_waited_out_and_the_same_page_retried() {
    let leases = buildium_fake::generated(1500);
    let (server, fake) = serve(leases).await;
    let throttled = Arc::new(AtomicUsize::new(0));
    let t = throttled.clone();
    fake.set_hook(move |req, r| {
        // The second page is refused twice, then served.
        if req.query("offset").as_deref() == Some("1000") && t.fetch_add(1, Ordering::SeqCst) < 2 {
            buildium_fake::error(429, "Too many requests").header("Retry-After", 1)
        } else {
            r
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_in(dir.path(), &server, "automatic", "10s", &[]);
    let source = BuildiumSource::new(&cfg).unwrap();
    let started = Instant::now();
    let snap = fetch_at(&source, wall_clock()).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "Retry-After was honoured"
    );
    assert!(snap.complete);
    let offsets: Vec<String> = server
        .requests()
        .iter()
        .map(|r| r.query("offset").unwrap())
        .collect();
    assert_eq!(offsets, ["0", "1000", "1000", "1000"]);
}

#[tokio::test]
async fn a_certificate_the_client_must_reject_changes_nothing() {
    let mut h = harness(good_roster(), "automatic", "10s").await;
    sync_and_record(&mut h.gw, &h.source).await.unwrap();
    let before = access(h.gw.world());
    // The same deployment pointed at a server whose certificate chains to another CA.
    let fake = h.fake.clone();
    let rogue = https::start_untrusted(move |req| fake.handle(req)).await;
    let other = tempfile::tempdir().unwrap();
    let cfg = config_in(other.path(), &rogue, "automatic", "10s", &[]);
    let rogue_source = BuildiumSource::new(&cfg).unwrap();
    let reason = sync_and_record(&mut h.gw, &rogue_source).await.unwrap_err();
    assert!(reason.to_lowercase().contains("certificate"), "{reason}");
    no_secret(&reason);
    assert!(
        rogue.requests().is_empty(),
        "no request got through the TLS handshake"
    );
    assert_eq!(access(h.gw.world()), before);
    assert_eq!(access(&h.gw.store().load_world().unwrap()), before);
    assert_eq!(
        h.gw.sync_status().unwrap().last_error.as_deref(),
        Some(reason.as_str())
    );
}

#[tokio::test]
async fn an_empty_roster_is_a_valid_snapshot_and_the_core_revokes_nothing() {
    let mut h = harness(good_roster(), "automatic", "10s").await;
    sync_and_record(&mut h.gw, &h.source).await.unwrap();
    let before = access(h.gw.world());
    assert!(!before.grants.is_empty());
    h.fake.set_leases(vec![]);
    let snap = fetch_at(&h.source, wall_clock()).await.unwrap();
    assert!(snap.complete && snap.residents.is_empty());
    let seen = h.server.requests();
    assert_eq!(seen.last().unwrap().query("offset").as_deref(), Some("0"));
    let t = h.gw.sync(&snap, wall_clock()).unwrap();
    assert!(
        t.alerts
            .iter()
            .any(|a| matches!(a, Alert::EmptyRoster { known_residents } if *known_residents == 11)),
        "{:?}",
        t.alerts
    );
    assert_eq!(h.gw.world().grants, before.grants, "no grant removed");
    assert!(t.suggestions().iter().all(|s| s.action != Action::Revoke));
    // Through the daemon's path as well: the sync succeeds and nothing is revoked.
    sync_and_record(&mut h.gw, &h.source).await.unwrap();
    assert_eq!(h.gw.world().grants, before.grants);
}

#[tokio::test]
async fn many_residents_turning_past_at_once_trip_the_guard() {
    let roster = |past: usize| -> Vec<Lease> {
        (0..40)
            .map(|i| {
                let unit = format!("{}", 101 + i);
                if i < past {
                    Lease::new(i as i64 + 1, &unit, "Past").tenant(
                        2000 + i as i64,
                        "T",
                        "P",
                        "MovedOut",
                    )
                } else {
                    Lease::new(i as i64 + 1, &unit, "Active").tenant(
                        2000 + i as i64,
                        "T",
                        "C",
                        "Current",
                    )
                }
            })
            .collect()
    };
    let mut h = harness(roster(0), "automatic", "10s").await;
    sync_and_record(&mut h.gw, &h.source).await.unwrap();
    assert_eq!(h.gw.world().current_residents(), 40);
    let grants_before = h.gw.world().grants.clone();
    h.fake.set_leases(checked(roster(10)));
    let snap = fetch_at(&h.source, wall_clock()).await.unwrap();
    let t = h.gw.sync(&snap, wall_clock()).unwrap();
    assert!(
        t.alerts.iter().any(|a| matches!(
            a,
            Alert::GuardTripped {
                would_revoke: 10,
                current_residents: 40,
                ..
            }
        )),
        "{:?}",
        t.alerts
    );
    assert_eq!(
        h.gw.world().grants,
        grants_before,
        "nothing revoked automatically"
    );
    let held: Vec<&Suggestion> =
        h.gw.world()
            .pending
            .values()
            .filter(|s| s.action == Action::Revoke)
            .collect();
    assert_eq!(held.len(), 30, "3 keys for each of 10 residents");
    assert!(held.iter().all(|s| s.hold == Some(Hold::Guard)));
}

// ---------------------------------------------------------------------------------------
// Secrets

#[tokio::test]
async fn credentials_never_show_in_errors_or_debug_output() {
    let (server, fake) = serve(good_roster()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_in(dir.path(), &server, "automatic", "1s", &[]);
    let source = BuildiumSource::new(&cfg).unwrap();
    no_secret(&format!("{source:?}"));
    no_secret(&format!("{cfg:?}"));
    type Fault = Box<dyn Fn(&https::Request, Reply) -> Reply + Send + Sync>;
    let faults: Vec<Fault> = vec![
        Box::new(|_, _| buildium_fake::error(401, "no")),
        Box::new(|_, _| buildium_fake::error(500, "no")),
        Box::new(|_, _| Reply::html(200, "<html></html>")),
        Box::new(|_, r| Reply {
            truncate_to: Some(3),
            ..r
        }),
        Box::new(|_, r| Reply {
            body: b"[{\"Id\":".to_vec(),
            ..r
        }),
        Box::new(|_, r| set_header(r, "X-Total-Count", 99)),
        Box::new(|_, _| buildium_fake::error(429, "slow down").header("Retry-After", 600)),
        Box::new(|_, r| Reply {
            delay: Duration::from_secs(2),
            ..r
        }),
    ];
    for f in faults {
        fake.set_hook(f);
        let e = fetch_at(&source, wall_clock()).await.unwrap_err();
        no_secret(&e.to_string());
        no_secret(&format!("{e:?}"));
    }
    // A secret file that is missing is named, never read out; a bad one is not quoted.
    std::fs::write(
        dir.path().join("buildium-client-secret"),
        format!("{CLIENT_SECRET}\u{7}\n"),
    )
    .unwrap();
    let e = BuildiumSource::new(&cfg).unwrap_err();
    no_secret(&e.to_string());
    assert!(matches!(e, PmsError::Setup(_)));
    std::fs::remove_file(dir.path().join("buildium-client-secret")).unwrap();
    let e = BuildiumSource::new(&cfg).unwrap_err();
    assert!(e.to_string().contains("buildium-client-secret"), "{e}");
}

#[test]
fn a_non_numeric_property_id_is_a_setup_error() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, https::make_pki().ca_pem).unwrap();
    let path = buildium_fake::write_deployment(
        dir.path(),
        "https://localhost:9",
        &ca,
        "automatic",
        "5s",
        &[],
    );
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(r#"property_ids = ["12345"]"#, r#"property_ids = ["maple"]"#);
    let cfg = leasegate::config::parse(&text, &path).unwrap();
    let e = BuildiumSource::new(&cfg).unwrap_err();
    assert!(
        matches!(e, PmsError::Setup(_)) && e.to_string().contains("maple"),
        "{e}"
    );
}

// ---------------------------------------------------------------------------------------
// The command line

fn run_plan(dir: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_leasegate"))
        .args(["plan", "--config"])
        .arg(dir.join("leasegate.toml"))
        .current_dir(dir)
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("LEASEGATE_LOG_FORMAT")
        .env_remove("JOURNAL_STREAM")
        .env("LEASEGATE_LOG", "warn")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leasegate_plan_against_buildium_prints_the_suggestions() {
    let leases = good_roster();
    let units = units_of(&leases);
    let (server, fake) = serve(leases).await;
    let dir = tempfile::tempdir().unwrap();
    let unit_refs: Vec<&str> = units.iter().map(String::as_str).collect();
    config_in(dir.path(), &server, "approval_required", "10s", &unit_refs);
    let d = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || run_plan(&d))
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    no_secret(&stderr);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let suggestions = report["suggestions"].as_array().unwrap();
    let ana: Vec<&Value> = suggestions
        .iter()
        .filter(|s| s["resident_id"] == "1001")
        .collect();
    assert_eq!(
        ana.len(),
        3,
        "unit key and two shared keys for Ana: {report}"
    );
    assert!(ana
        .iter()
        .all(|s| s["action"] == "grant" && s["unit"] == "101"));
    assert!(ana.iter().any(|s| s["key"] == "unit:101"));
    assert!(
        suggestions
            .iter()
            .all(|s| s["resident_id"] != "1002" || s["action"] != "grant"),
        "Ben moved out: {report}"
    );
    assert!(suggestions
        .iter()
        .any(|s| s["resident_id"] == "1004" && s["key"] == "unit:204"));
    assert!(!dir.path().join("state").exists(), "plan changes nothing");

    fake.set_hook(|_, _| buildium_fake::error(500, "Oops"));
    let d = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || run_plan(&d))
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    assert!(
        stderr.contains("buildium") && stderr.contains("HTTP 500"),
        "{stderr}"
    );
    no_secret(&stderr);
}
