//! The Buildium roster source: `GET /v1/leases`, paged, into a normalized [`Snapshot`].
//!
//! # Request
//!
//! `GET {base_url}/v1/leases` with, per page:
//! - `propertyids` (one per configured property, repeated), `leasestatuses=Active`,
//!   `leasestatuses=Past`, `leasestatuses=Future` (Past leases are what tell a move-out),
//! - `orderby=Id asc` (a unique key, so that pages neither overlap nor skip),
//!   `offset` and `limit=1000` (Buildium's maximum),
//! - `lastupdatedfrom=YYYY-MM-DDTHH:MM:SSZ` (UTC) when the fetch asks only for changes; the
//!   snapshot is then marked incomplete, so that absence means nothing.
//!
//! and the `x-buildium-client-id` / `x-buildium-client-secret` headers, read from their files
//! when the source is built. Neither value is logged, put in an error or printed by `Debug`.
//!
//! # All or nothing
//!
//! Every page must be a JSON array of leases whose length is what `X-Total-Count` says is left
//! ([`expect_page`]), the total must not change between pages, and no lease may appear twice.
//! Fields Buildium adds are ignored, but the fields the mapping needs must be there with the
//! right type (`Id`, `UnitNumber`, `LeaseStatus`, `IsEvictionPending`, `Tenants[].Id`,
//! `Tenants[].Status`, `MoveOutData[].TenantId`); otherwise the sync fails as malformed. A 429
//! is retried on the same page after its `Retry-After` when that is at most 30 s (3 tries in
//! all); a longer wait is handed back as [`PmsError::RateLimited`] for the daemon's backoff.
//!
//! # Mapping
//!
//! One roster entry per tenant in each lease's `Tenants` (every tenant ever on the lease), with
//! - id: the tenant's `Id`, as a decimal string (`"12345"`);
//! - name: `FirstName LastName` from the lease's `CurrentTenants`, else `Tenant <id>` (a tenant
//!   who moved out is no longer listed there);
//! - unit: the lease's `UnitNumber` (`null` or blank: no unit, which the rules alert on),
//!   as `<PropertyId>/<UnitNumber>` when more than one property is configured (unit numbers
//!   repeat across properties, as with the other adapters);
//! - status, from the lease's `LeaseStatus`, the tenant's `Status`, the lease's
//!   `IsEvictionPending` and the tenant's entries in `MoveOutData`, with "today" taken in the
//!   property's time zone (`site.timezone`) at the fetch's `now`:
//!
//! | `LeaseStatus` | tenant `Status` | lease flags / `MoveOutData` for the tenant | status |
//! |---|---|---|---|
//! | `Past` | any | any | past |
//! | any | `MovedOut` | any | past (a co-tenant who left loses access; the others keep theirs) |
//! | `Future` | `Future` or `Current` | any | future |
//! | `Active` | `Future` | any | future |
//! | `Active` | `Current` | a `MoveOutDate` before today | past |
//! | `Active` | `Current` | `IsEvictionPending` | eviction |
//! | `Active` | `Current` | a `MoveOutDate` today or later, or an entry with no date | notice |
//! | `Active` | `Current` | none of these | current |
//! | anything else (a status string Buildium adds) | | | unknown `"<LeaseStatus>/<Status>"`: no change, alert |
//!
//! A tenant listed in `CurrentTenants` but absent from `Tenants` has no status to read and is
//! reported as unknown (`"<LeaseStatus>/unlisted"`). A tenant on several leases (a transfer, a
//! renewal) keeps the entry that grants the most ([`merge_people`]): the current lease wins
//! over the past one, with its unit (between two leases of equal standing, the one with the
//! lower lease `Id`, the older, is kept). When a tenant has several `MoveOutData` entries,
//! the latest date counts.
//!
//! # Inferred, not in the spec
//!
//! The spec's "Bulk Request Options" section (which `orderby` links to) is not in the file, so
//! the `orderby` syntax `Id asc` is inferred, as are: 429 and `Retry-After` (the spec lists
//! no 429), `null` in fields the spec types as plain strings or arrays (it marks nothing
//! nullable, yet says "Null if ..." in places), which tenants `CurrentTenants` lists, and
//! whether `lastupdatedfrom` catches changes to a lease's tenants. A `MoveOutDate` that
//! passes changes nothing in Buildium, so only a complete fetch (not an incremental one)
//! turns that tenant past.

use std::collections::{BTreeMap, HashSet};

use chrono::NaiveDate;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Deserializer};

use super::http::{Http, HttpSettings};
use super::{expect_page, merge_people, FetchFuture, FetchRequest, PmsError, RosterSource};
use crate::config::{self, Config, PmsSource, Secret};
use crate::core::{PmsStatus, RosterEntry, Snapshot, Timestamp};

/// Rows per page: Buildium's maximum.
pub const PAGE_LIMIT: u64 = 1000;
/// The lease statuses asked for: every one Buildium defines.
pub const LEASE_STATUSES: [&str; 3] = ["Active", "Past", "Future"];
/// Sort on the lease id, a unique key, so that paging is stable.
pub const ORDER_BY: &str = "Id asc";

const CLIENT_ID_HEADER: &str = "x-buildium-client-id";
const CLIENT_SECRET_HEADER: &str = "x-buildium-client-secret";
const TOTAL_HEADER: &str = "X-Total-Count";

pub struct BuildiumSource {
    http: Http,
    property_ids: Vec<String>,
    timezone: chrono_tz::Tz,
    /// The two credential headers, marked sensitive.
    auth: HeaderMap,
    // Kept so that `Debug` can show that they are set, and nothing more.
    client_id: Secret,
    client_secret: Secret,
}

impl std::fmt::Debug for BuildiumSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuildiumSource")
            .field("base_url", &self.http.url(""))
            .field("property_ids", &self.property_ids)
            .field("timezone", &self.timezone)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .finish()
    }
}

impl BuildiumSource {
    /// Build the source from a `kind = "buildium"` config, reading both credential files.
    pub fn new(cfg: &Config) -> Result<BuildiumSource, PmsError> {
        let PmsSource::Buildium {
            http,
            property_ids,
            client_id_file,
            client_secret_file,
        } = &cfg.pms.source
        else {
            return Err(PmsError::Setup(format!(
                "the buildium source needs pms.kind = \"buildium\", not {:?}",
                cfg.pms.source.kind()
            )));
        };
        BuildiumSource::with_settings(
            http,
            property_ids,
            read(cfg, "pms.client_id_file", client_id_file)?,
            read(cfg, "pms.client_secret_file", client_secret_file)?,
            cfg.site.timezone,
        )
    }

    fn with_settings(
        http: &HttpSettings,
        property_ids: &[String],
        client_id: Secret,
        client_secret: Secret,
        timezone: chrono_tz::Tz,
    ) -> Result<BuildiumSource, PmsError> {
        if property_ids.is_empty() {
            return Err(PmsError::Setup(
                "pms.property_ids must name at least one Buildium property".into(),
            ));
        }
        let mut ids = Vec::with_capacity(property_ids.len());
        for p in property_ids {
            let p = p.trim();
            match p.parse::<u32>() {
                Ok(n) => ids.push(n.to_string()),
                Err(_) => {
                    return Err(PmsError::Setup(format!(
                        "pms.property_ids: {p:?} is not a Buildium property id (a whole number)"
                    )))
                }
            }
        }
        let mut auth = HeaderMap::new();
        for (name, key, secret) in [
            (CLIENT_ID_HEADER, "pms.client_id_file", &client_id),
            (
                CLIENT_SECRET_HEADER,
                "pms.client_secret_file",
                &client_secret,
            ),
        ] {
            let mut v = HeaderValue::from_str(secret.expose().trim()).map_err(|_| {
                PmsError::Setup(format!(
                    "the file named by {key} holds characters an HTTP header cannot carry"
                ))
            })?;
            v.set_sensitive(true);
            auth.insert(HeaderName::from_static(name), v);
        }
        Ok(BuildiumSource {
            http: Http::new(http)?,
            property_ids: ids,
            timezone,
            auth,
            client_id,
            client_secret,
        })
    }

    /// One page, retried while the PMS asks for a short wait.
    async fn page(
        &self,
        offset: u64,
        changed_since: Option<Timestamp>,
    ) -> Result<super::http::JsonResponse, PmsError> {
        let mut query: Vec<(&str, String)> = Vec::with_capacity(self.property_ids.len() + 8);
        for p in &self.property_ids {
            query.push(("propertyids", p.clone()));
        }
        for s in LEASE_STATUSES {
            query.push(("leasestatuses", s.to_string()));
        }
        if let Some(t) = changed_since {
            query.push((
                "lastupdatedfrom",
                t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            ));
        }
        query.push(("orderby", ORDER_BY.to_string()));
        query.push(("offset", offset.to_string()));
        query.push(("limit", PAGE_LIMIT.to_string()));
        let url = self.http.url("/v1/leases");
        self.http
            .send_retrying("buildium", || {
                self.http
                    .client()
                    .get(&url)
                    .query(&query)
                    .headers(self.auth.clone())
                    .header(reqwest::header::ACCEPT, "application/json")
            })
            .await
    }

    async fn fetch_all(&self, request: FetchRequest) -> Result<Snapshot, PmsError> {
        let today = request.now.with_timezone(&self.timezone).date_naive();
        let mut total: Option<u64> = None;
        let mut offset: u64 = 0;
        let mut seen_leases: HashSet<i64> = HashSet::new();
        let mut entries: Vec<RosterEntry> = Vec::new();
        loop {
            let resp = self.page(offset, request.changed_since).await?;
            let page_total = resp.count_header(TOTAL_HEADER)?;
            if let Some(t) = total {
                if t != page_total {
                    return Err(PmsError::Incomplete(format!(
                        "{TOTAL_HEADER} changed from {t} to {page_total} between pages (the \
                         leases changed while they were read)"
                    )));
                }
            }
            total = Some(page_total);
            let leases = parse_page(&resp.body, offset)?;
            expect_page(page_total, offset, PAGE_LIMIT, leases.len())?;
            tracing::debug!(
                offset,
                rows = leases.len(),
                total = page_total,
                "buildium page"
            );
            for lease in &leases {
                if !seen_leases.insert(lease.id) {
                    return Err(PmsError::Incomplete(format!(
                        "lease {} came twice (the pages shifted while they were read)",
                        lease.id
                    )));
                }
                let before = entries.len();
                map_lease(lease, today, &mut entries)?;
                if self.property_ids.len() > 1 {
                    // Unit numbers repeat across properties: `<property id>/<unit>`.
                    for e in &mut entries[before..] {
                        if let (Some(u), Some(p)) = (&e.unit, lease.property_id) {
                            e.unit = Some(format!("{p}/{u}"));
                        }
                    }
                }
            }
            offset += leases.len() as u64;
            if offset >= page_total {
                break;
            }
        }
        Ok(Snapshot {
            fetched_at: request.now,
            complete: request.changed_since.is_none(),
            residents: merge_people(entries),
        })
    }
}

fn read(cfg: &Config, key: &str, name: &str) -> Result<Secret, PmsError> {
    config::read_secret(&cfg.pms.secrets_base, name)
        .map_err(|e| PmsError::Setup(format!("{key}: {e}")))
}

impl RosterSource for BuildiumSource {
    fn kind(&self) -> &'static str {
        "buildium"
    }

    fn fetch(&self, request: FetchRequest) -> FetchFuture<'_> {
        Box::pin(self.fetch_all(request))
    }
}

/// The part of a `LeaseMessage` the mapping reads. Other fields are ignored.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Lease {
    id: i64,
    #[serde(default)]
    property_id: Option<i64>,
    /// Required, but `null` is read as "no unit".
    #[serde(deserialize_with = "nullable")]
    unit_number: Option<String>,
    lease_status: String,
    is_eviction_pending: bool,
    /// Names only; a lease without it still maps (names fall back to `Tenant <id>`).
    #[serde(default, deserialize_with = "nullable")]
    current_tenants: Option<Vec<CurrentTenant>>,
    move_out_data: Vec<MoveOut>,
    tenants: Vec<LeaseTenant>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LeaseTenant {
    id: i64,
    status: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CurrentTenant {
    id: i64,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MoveOut {
    tenant_id: i64,
    #[serde(default)]
    move_out_date: Option<String>,
}

/// A key that must be present but may be `null`.
fn nullable<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d)
}

/// Parse one page: a JSON array of leases.
fn parse_page(body: &[u8], offset: u64) -> Result<Vec<Lease>, PmsError> {
    serde_json::from_slice::<Vec<Lease>>(body).map_err(|e| {
        PmsError::Malformed(format!(
            "the leases page at offset {offset} does not parse: {}",
            redact(&e.to_string())
        ))
    })
}

/// serde quotes the offending value in some messages (`invalid type: string "Ana"`); that
/// may be a resident's name, and names stay out of logs and status. Field names (between
/// backticks) and positions are kept.
fn redact(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut in_quote = false;
    for c in msg.chars() {
        match (c, in_quote) {
            ('"', false) => {
                in_quote = true;
                out.push_str("\"…");
            }
            ('"', true) => {
                in_quote = false;
                out.push('"');
            }
            (_, true) => {}
            (c, false) => out.push(c),
        }
    }
    if in_quote {
        out.push('"');
    }
    out
}

/// A Buildium `date` (`2026-11-30`; a time part after it is ignored).
fn parse_date(s: &str, lease: i64) -> Result<NaiveDate, PmsError> {
    let day = s.get(..10).unwrap_or(s);
    NaiveDate::parse_from_str(day, "%Y-%m-%d").map_err(|_| {
        PmsError::Malformed(format!(
            "lease {lease}: MoveOutDate {s:?} is not a date (YYYY-MM-DD)"
        ))
    })
}

/// What `MoveOutData` says about one tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MoveOutNote {
    /// An entry without a date: notice given, day not set.
    Undated,
    Dated(NaiveDate),
}

fn map_lease(lease: &Lease, today: NaiveDate, out: &mut Vec<RosterEntry>) -> Result<(), PmsError> {
    let unit = lease
        .unit_number
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(String::from);
    let mut move_outs: BTreeMap<i64, MoveOutNote> = BTreeMap::new();
    for m in &lease.move_out_data {
        let note = match &m.move_out_date {
            Some(d) if !d.trim().is_empty() => MoveOutNote::Dated(parse_date(d.trim(), lease.id)?),
            _ => MoveOutNote::Undated,
        };
        let slot = move_outs.entry(m.tenant_id).or_insert(note);
        // The latest date counts; a dated entry beats an undated one.
        *slot = match (*slot, note) {
            (MoveOutNote::Dated(a), MoveOutNote::Dated(b)) => MoveOutNote::Dated(a.max(b)),
            (MoveOutNote::Undated, n) | (n, MoveOutNote::Undated) => n,
        };
    }
    let names: BTreeMap<i64, &CurrentTenant> = lease
        .current_tenants
        .iter()
        .flatten()
        .map(|t| (t.id, t))
        .collect();
    let name_of = |id: i64| {
        let full = names
            .get(&id)
            .map(|t| {
                let first = t.first_name.as_deref().unwrap_or("").trim();
                let last = t.last_name.as_deref().unwrap_or("").trim();
                format!("{first} {last}").trim().to_string()
            })
            .unwrap_or_default();
        if full.is_empty() {
            format!("Tenant {id}")
        } else {
            full
        }
    };
    for t in &lease.tenants {
        out.push(RosterEntry {
            id: t.id.to_string(),
            name: name_of(t.id),
            unit: unit.clone(),
            status: status_of(
                &lease.lease_status,
                &t.status,
                lease.is_eviction_pending,
                move_outs.get(&t.id).copied(),
                today,
            ),
        });
    }
    for id in names.keys() {
        if !lease.tenants.iter().any(|t| t.id == *id) {
            out.push(RosterEntry {
                id: id.to_string(),
                name: name_of(*id),
                unit: unit.clone(),
                status: PmsStatus::Unknown(format!("{}/unlisted", lease.lease_status)),
            });
        }
    }
    Ok(())
}

/// The mapping table in the module doc.
fn status_of(
    lease: &str,
    tenant: &str,
    eviction_pending: bool,
    move_out: Option<MoveOutNote>,
    today: NaiveDate,
) -> PmsStatus {
    match (lease, tenant) {
        ("Past", _) | (_, "MovedOut") => PmsStatus::Past,
        ("Future", "Future" | "Current") | ("Active", "Future") => PmsStatus::Future,
        ("Active", "Current") => match move_out {
            Some(MoveOutNote::Dated(d)) if d < today => PmsStatus::Past,
            _ if eviction_pending => PmsStatus::Eviction,
            Some(_) => PmsStatus::Notice,
            None => PmsStatus::Current,
        },
        // The '/' keeps the text from ever reading back as a known status.
        (l, t) => PmsStatus::Unknown(format!("{l}/{t}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn the_status_table_holds() {
        let today = d("2026-11-27");
        let dated = |s: &str| Some(MoveOutNote::Dated(d(s)));
        let cases: &[(&str, &str, bool, Option<MoveOutNote>, PmsStatus)] = &[
            ("Active", "Current", false, None, PmsStatus::Current),
            ("Active", "Current", true, None, PmsStatus::Eviction),
            (
                "Active",
                "Current",
                false,
                dated("2026-11-27"),
                PmsStatus::Notice,
            ),
            (
                "Active",
                "Current",
                false,
                dated("2026-12-31"),
                PmsStatus::Notice,
            ),
            (
                "Active",
                "Current",
                false,
                Some(MoveOutNote::Undated),
                PmsStatus::Notice,
            ),
            (
                "Active",
                "Current",
                false,
                dated("2026-11-26"),
                PmsStatus::Past,
            ),
            (
                "Active",
                "Current",
                true,
                dated("2026-11-26"),
                PmsStatus::Past,
            ),
            (
                "Active",
                "Current",
                true,
                dated("2026-12-01"),
                PmsStatus::Eviction,
            ),
            ("Active", "MovedOut", false, None, PmsStatus::Past),
            ("Active", "Future", false, None, PmsStatus::Future),
            ("Future", "Future", false, None, PmsStatus::Future),
            ("Future", "Current", false, None, PmsStatus::Future),
            ("Past", "Current", false, None, PmsStatus::Past),
            ("Past", "Whatever", false, None, PmsStatus::Past),
            ("Future", "MovedOut", false, None, PmsStatus::Past),
            (
                "Active",
                "OnHold",
                false,
                None,
                PmsStatus::Unknown("Active/OnHold".into()),
            ),
            (
                "Suspended",
                "Current",
                false,
                None,
                PmsStatus::Unknown("Suspended/Current".into()),
            ),
        ];
        for (lease, tenant, ev, mo, want) in cases {
            assert_eq!(
                &status_of(lease, tenant, *ev, *mo, today),
                want,
                "{lease}/{tenant} eviction={ev} move-out={mo:?}"
            );
        }
    }

    #[test]
    fn an_unknown_status_never_reads_back_as_a_known_one() {
        let s = status_of("Past ", "x", false, None, d("2026-11-27"));
        assert_eq!(PmsStatus::parse(s.as_str()), s);
    }

    fn lease(extra: &str) -> String {
        format!(
            r#"[{{"Id":7,"UnitNumber":"4B","LeaseStatus":"Active","IsEvictionPending":false,
                "CurrentTenants":[{{"Id":1,"FirstName":"Ana","LastName":"Diaz"}}],
                "MoveOutData":[],"Tenants":[{{"Id":1,"Status":"Current"}}]{extra}}}]"#
        )
    }

    #[test]
    fn unknown_fields_are_ignored_and_the_needed_ones_are_required() {
        let leases = parse_page(lease(r#","NewField":{"x":[1,2]}"#).as_bytes(), 0).unwrap();
        let mut out = vec![];
        map_lease(&leases[0], d("2026-11-27"), &mut out).unwrap();
        assert_eq!(out[0].id, "1");
        assert_eq!(out[0].name, "Ana Diaz");
        assert_eq!(out[0].unit.as_deref(), Some("4B"));
        for field in [
            "\"Id\":7,",
            "\"UnitNumber\":\"4B\",",
            "\"IsEvictionPending\":false,",
            "\"MoveOutData\":[],",
            "\"LeaseStatus\":\"Active\",",
        ] {
            let body = lease("").replacen(field, "", 1);
            let e = parse_page(body.as_bytes(), 0).unwrap_err();
            assert!(matches!(e, PmsError::Malformed(_)), "{field}: {e}");
        }
        let body = lease("").replace(r#","Tenants":[{"Id":1,"Status":"Current"}]"#, "");
        assert!(parse_page(body.as_bytes(), 0).is_err());
        let body = lease("").replace(
            r#""IsEvictionPending":false"#,
            r#""IsEvictionPending":"no""#,
        );
        assert!(parse_page(body.as_bytes(), 0).is_err());
        let body = lease("").replace(r#""Id":7"#, r#""Id":"7""#);
        assert!(parse_page(body.as_bytes(), 0).is_err());
        for not_an_array in [&b"{}"[..], b"null", b"{\"value\":[]}", b"", b"[{\"Id\":7"] {
            assert!(parse_page(not_an_array, 0).is_err());
        }
    }

    #[test]
    fn a_null_unit_is_no_unit_and_missing_names_fall_back_to_the_id() {
        let body = lease("")
            .replace(r#""UnitNumber":"4B""#, r#""UnitNumber":null"#)
            .replace(
                r#""FirstName":"Ana","LastName":"Diaz""#,
                r#""FirstName":null"#,
            );
        let leases = parse_page(body.as_bytes(), 0).unwrap();
        let mut out = vec![];
        map_lease(&leases[0], d("2026-11-27"), &mut out).unwrap();
        assert_eq!(out[0].unit, None);
        assert_eq!(out[0].name, "Tenant 1");
    }

    #[test]
    fn parse_errors_do_not_quote_values() {
        let body = lease("").replace(r#""Id":7"#, r#""Id":"Ana Diaz""#);
        let e = parse_page(body.as_bytes(), 0).unwrap_err().to_string();
        assert!(!e.contains("Ana"), "{e}");
        assert!(e.contains("offset 0"), "{e}");
    }

    #[test]
    fn a_bad_move_out_date_is_malformed() {
        let body = lease("").replace(
            r#""MoveOutData":[]"#,
            r#""MoveOutData":[{"TenantId":1,"MoveOutDate":"soon"}]"#,
        );
        let leases = parse_page(body.as_bytes(), 0).unwrap();
        let e = map_lease(&leases[0], d("2026-11-27"), &mut vec![]).unwrap_err();
        assert!(matches!(e, PmsError::Malformed(_)));
    }
}
