//! The Entrata adapter: JSON-RPC `getLeases` over HTTPS.
//!
//! One request per configured property and page:
//!
//! ```text
//! POST {base_url}/v1/leases?page_no=1&per_page=500
//! Authorization: Basic base64(username:password)
//! Content-Type: application/json
//!
//! {"auth":{"type":"basic"},"requestId":"7",
//!  "method":{"name":"getLeases","version":"r1",
//!            "params":{"propertyId":"12345","leaseStatusTypeIds":"1,2,3,4,5,6"}}}
//! ```
//!
//! The answer is `{"response":{"requestId":"7","code":200,"result":{"leases":{"lease":[…]}}}}`
//! with the row count of the whole property in `X-Total-Count`. Pages are followed until every
//! announced row is in, and each page is checked with [`expect_page`]. Entrata does not filter
//! `getLeases` on a change time, so every fetch is a complete roster.
//!
//! # Status mapping
//!
//! | `leaseStatusTypeId` | Entrata name | [`PmsStatus`] |
//! |---|---|---|
//! | 1 | Applicant | `Applicant` |
//! | 2 | Cancelled | `Cancelled` |
//! | 3 | Future | `Future` |
//! | 4 | Current | `Current` |
//! | 5 | Notice | `Notice` |
//! | 6 | Past | `Past` |
//! | anything else | | `Unknown("leaseStatusTypeId N")` (the core alerts and changes nothing) |
//!
//! Per person (`customers[]`):
//! - A customer whose own `leaseCustomerStatus` is `Past` or `Cancelled` (a co-tenant who left a
//!   lease the others keep) takes that status; any other customer status defers to the lease.
//! - A customer whose `customerType` names a guarantor is not on the roster: guarantors
//!   co-sign, they do not live there.
//! - The person id is the customer `id` as a string; the name is `firstName lastName`, else
//!   `nameFull`.
//!
//! # Units
//!
//! `unitId` is Entrata's database key for the unit; the code the site file maps to doors is the
//! unit number people use: `unitNumberSpace` (version r1), else `unitNumber`, else the
//! `unitSpaces.unitSpace[].unitSpace` names (r2; several distinct spaces are joined with `+`,
//! so a site can map a multi-space lease). A lease without any of these has no unit (the core
//! alerts and holds unit revocations). When the config names more than one property the code
//! is `{propertyId}/{unit number}`, because unit numbers repeat across properties.
//!
//! # Transfers
//!
//! A lease whose `transferDate` has passed moved its people elsewhere, even while Entrata still
//! lists it as Current or Notice. For each of its people:
//! - if the destination is on the roster (the lease named by `transferLeaseId`; without that
//!   field, any other lease of the same customer that is Applicant, Future, Current or Notice),
//!   the old lease counts as Past and a destination still marked Applicant or Future takes the
//!   old lease's status, so the person is current in the new unit;
//! - otherwise the person keeps the old lease's status with no unit, which holds the unit key
//!   for a manager instead of guessing.
//!
//! # Dates
//!
//! Entrata dates are US Mountain time (America/Denver, with daylight saving time), whatever the
//! site's own time zone. Accepted forms: `MM/DD/YYYY`, `MM/DD/YYYY HH:MM[:SS[.ffffff]]`
//! optionally followed by `MST` or `MDT` (a fixed UTC-7 or UTC-6), ISO `YYYY-MM-DD` and
//! `YYYY-MM-DDTHH:MM:SS` (Mountain), and RFC 3339 with an offset. A bare date means the start
//! of that day in Mountain time: a transfer dated `11/01/2026` takes effect at
//! 2026-11-01T06:00:00Z (MDT). A wall-clock time skipped by the spring change is read one hour
//! later; one repeated by the autumn change is read as the earlier instant.
//!
//! # Failures
//!
//! Anything short of a complete, well-formed roster is an error, never a smaller roster: a
//! JSON-RPC `response.error` or a `response.code` other than 200, a missing `response`,
//! `response.result.leases` or `leases.lease`, a value of the wrong type, a missing
//! `X-Total-Count`, a short or long page, a total that changes between pages, a lease twice,
//! a `requestId` that is not ours. Unknown extra fields are ignored. HTTP 429 is retried after
//! the wait the rate-limit headers announce when that is at most 30 s, at most 3 tries in all;
//! otherwise the error is returned and the sync loop backs off. The wait is what the shared
//! transport reads: `Retry-After`, or `X-RateLimit-Reset`, including Entrata's multi-window
//! form (`X-RateLimit-Reset: 14991;591;51`, seconds left in its day, hour and minute
//! windows, beside `X-RateLimit-Remaining: 8631/day;351/hour;0/minute`: the wait is the reset
//! of the window that is used up). The credentials travel only in
//! the `Authorization` header; they never appear in an error or in `Debug` output, and a
//! server message that echoes them is masked.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::{Map, Value};

use super::http::{Http, JsonResponse};
use super::{expect_page, merge_people, FetchFuture, FetchRequest, PmsError, RosterSource};
use crate::config::{read_secret, Config, PmsSource, Secret};
use crate::core::{PmsStatus, RosterEntry, Snapshot, Timestamp};

/// Rows asked for per page (Entrata accepts 5 to 1000).
pub const PAGE_SIZE: u64 = 500;
/// The `getLeases` version: r1 is the one Entrata pages.
pub const METHOD_VERSION: &str = "r1";
/// Every status id the mapping table knows.
pub const LEASE_STATUS_IDS: &str = "1,2,3,4,5,6";
/// The time zone of every Entrata date.
pub const ENTRATA_TZ: Tz = chrono_tz::America::Denver;

#[derive(Debug)]
pub struct EntrataSource {
    http: Http,
    property_ids: Vec<String>,
    username: Secret,
    password: Secret,
    next_request_id: AtomicU64,
}

impl EntrataSource {
    pub fn new(cfg: &Config) -> Result<EntrataSource, PmsError> {
        let PmsSource::Entrata {
            http,
            property_ids,
            username_file,
            password_file,
        } = &cfg.pms.source
        else {
            return Err(PmsError::Setup(
                "the config does not name an Entrata source".into(),
            ));
        };
        super::check_numeric_ids(property_ids, "Entrata property id")?;
        let secret = |name: &str| {
            read_secret(&cfg.pms.secrets_base, name).map_err(|e| PmsError::Setup(e.to_string()))
        };
        Ok(EntrataSource {
            http: Http::new(http)?,
            property_ids: property_ids.clone(),
            username: secret(username_file)?,
            password: secret(password_file)?,
            next_request_id: AtomicU64::new(1),
        })
    }

    async fn fetch_roster(&self, request: FetchRequest) -> Result<Snapshot, PmsError> {
        let mut leases = Vec::new();
        let mut seen = BTreeSet::new();
        for property in &self.property_ids {
            for lease in self.fetch_property(property).await? {
                if !seen.insert(lease.id.clone()) {
                    return Err(PmsError::Incomplete(format!(
                        "lease {} came twice: the roster changed while it was paged",
                        lease.id
                    )));
                }
                leases.push(lease);
            }
        }
        let prefix_units = self.property_ids.len() > 1;
        if prefix_units {
            for l in &mut leases {
                if let Some(u) = &l.unit {
                    l.unit = Some(format!("{}/{u}", l.property));
                }
            }
        }
        Ok(Snapshot {
            fetched_at: request.now,
            complete: true,
            residents: merge_people(roster_entries(&leases, request.now)),
        })
    }

    async fn fetch_property(&self, property: &str) -> Result<Vec<Lease>, PmsError> {
        let mut out = Vec::new();
        let mut announced: Option<u64> = None;
        let mut page: u64 = 1;
        loop {
            let request_id = self
                .next_request_id
                .fetch_add(1, Ordering::Relaxed)
                .to_string();
            let resp = self.post_page(property, page, &request_id).await?;
            // The body first: a JSON-RPC error comes without a count.
            let rows = parse_page(&resp.body, &request_id, property, &self.secrets())?;
            let total = resp.count_header("X-Total-Count")?;
            if let Some(before) = announced {
                if before != total {
                    return Err(PmsError::Incomplete(format!(
                        "property {property}: the total went from {before} to {total} while it \
                         was paged"
                    )));
                }
            }
            announced = Some(total);
            let offset = out.len() as u64;
            expect_page(total, offset, PAGE_SIZE, rows.len())?;
            out.extend(rows);
            if out.len() as u64 >= total {
                return Ok(out);
            }
            page += 1;
        }
    }

    async fn post_page(
        &self,
        property: &str,
        page: u64,
        request_id: &str,
    ) -> Result<JsonResponse, PmsError> {
        let body = serde_json::json!({
            "auth": { "type": "basic" },
            "requestId": request_id,
            "method": {
                "name": "getLeases",
                "version": METHOD_VERSION,
                "params": {
                    "propertyId": property,
                    "leaseStatusTypeIds": LEASE_STATUS_IDS,
                }
            }
        });
        let url = self.http.url("/v1/leases");
        let query = [
            ("page_no", page.to_string()),
            ("per_page", PAGE_SIZE.to_string()),
        ];
        self.http
            .send_retrying("entrata", || {
                self.http
                    .client()
                    .post(&url)
                    .query(&query)
                    .basic_auth(self.username.expose(), Some(self.password.expose()))
                    .header(reqwest::header::ACCEPT, "application/json")
                    .json(&body)
            })
            .await
    }

    fn secrets(&self) -> [&str; 2] {
        [self.username.expose(), self.password.expose()]
    }
}

impl RosterSource for EntrataSource {
    fn kind(&self) -> &'static str {
        "entrata"
    }

    fn fetch(&self, request: FetchRequest) -> FetchFuture<'_> {
        Box::pin(self.fetch_roster(request))
    }
}

/// A lease as the mapping needs it.
#[derive(Clone, Debug, PartialEq)]
struct Lease {
    id: String,
    property: String,
    status: PmsStatus,
    unit: Option<String>,
    transfer_at: Option<Timestamp>,
    transfer_lease_id: Option<String>,
    customers: Vec<Customer>,
}

#[derive(Clone, Debug, PartialEq)]
struct Customer {
    id: String,
    name: String,
    guarantor: bool,
    /// `Past` or `Cancelled` from the customer's own status; anything else defers to the lease.
    left: Option<PmsStatus>,
}

impl Customer {
    fn status_on(&self, lease: &Lease) -> PmsStatus {
        self.left.clone().unwrap_or_else(|| lease.status.clone())
    }
}

/// The `leaseStatusTypeId` table (module docs).
pub fn lease_status(id: &str) -> PmsStatus {
    match id.trim() {
        "1" => PmsStatus::Applicant,
        "2" => PmsStatus::Cancelled,
        "3" => PmsStatus::Future,
        "4" => PmsStatus::Current,
        "5" => PmsStatus::Notice,
        "6" => PmsStatus::Past,
        other => PmsStatus::Unknown(format!("leaseStatusTypeId {other}")),
    }
}

fn roster_entries(leases: &[Lease], now: Timestamp) -> Vec<RosterEntry> {
    use crate::core::Standing;
    let mut by_customer: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, l) in leases.iter().enumerate() {
        // A lease where the person only guarantees someone else's rent is not theirs to move
        // into.
        for c in l.customers.iter().filter(|c| !c.guarantor) {
            by_customer.entry(c.id.as_str()).or_default().push(i);
        }
    }
    let transferred = |l: &Lease| l.transfer_at.is_some_and(|at| at <= now);
    // Whether `to` is where `from`'s people went.
    let destination = |from: &Lease, to: &Lease| match &from.transfer_lease_id {
        Some(id) => &to.id == id,
        None => matches!(to.status.standing(), Standing::Future | Standing::Current),
    };
    let mut out = Vec::new();
    for (i, lease) in leases.iter().enumerate() {
        for c in lease.customers.iter().filter(|c| !c.guarantor) {
            let others: Vec<&Lease> = by_customer[c.id.as_str()]
                .iter()
                .filter(|&&j| j != i)
                .map(|&j| &leases[j])
                .collect();
            let mut status = c.status_on(lease);
            let mut unit = lease.unit.clone();
            if status.standing() == Standing::Current && transferred(lease) {
                if others.iter().any(|to| destination(lease, to)) {
                    status = PmsStatus::Past;
                } else {
                    unit = None;
                }
            } else if status.standing() == Standing::Future {
                // The new lease of a transfer whose date has passed, not yet Current in Entrata.
                let source = others.iter().find(|from| {
                    transferred(from)
                        && c.status_on(from).standing() == Standing::Current
                        && destination(from, lease)
                });
                if let Some(from) = source {
                    status = c.status_on(from);
                }
            }
            out.push(RosterEntry {
                id: c.id.clone(),
                name: c.name.clone(),
                unit,
                status,
            });
        }
    }
    out
}

/// Parse one `getLeases` answer into leases.
fn parse_page(
    body: &[u8],
    request_id: &str,
    property: &str,
    secrets: &[&str],
) -> Result<Vec<Lease>, PmsError> {
    let root: Value = serde_json::from_slice(body)
        .map_err(|e| PmsError::Malformed(format!("the getLeases answer is not JSON: {e}")))?;
    let response = object(
        present(root.get("response")).ok_or_else(|| missing("response"))?,
        "response",
    )?;
    if let Some(error) = present(response.get("error")) {
        return Err(rpc_error(error, secrets));
    }
    if let Some(code) = opt_scalar(response, "code", "response")? {
        if code != "200" {
            return Err(PmsError::Malformed(format!(
                "Entrata answered code {} with no leases",
                mask(&code, secrets)
            )));
        }
    }
    if let Some(id) = opt_scalar(response, "requestId", "response")? {
        if id != request_id {
            return Err(PmsError::Malformed(format!(
                "the answer is for request {:?}, not ours ({request_id})",
                mask(&id, secrets)
            )));
        }
    }
    let result = object(
        present(response.get("result")).ok_or_else(|| missing("response.result"))?,
        "response.result",
    )?;
    let leases = object(
        present(result.get("leases")).ok_or_else(|| missing("response.result.leases"))?,
        "response.result.leases",
    )?;
    let items = one_or_many(
        present(leases.get("lease")).ok_or_else(|| missing("response.result.leases.lease"))?,
        "response.result.leases.lease",
    )?;
    items
        .iter()
        .enumerate()
        .map(|(i, v)| parse_lease(v, &format!("response.result.leases.lease[{i}]"), property))
        .collect()
}

fn parse_lease(v: &Value, path: &str, property: &str) -> Result<Lease, PmsError> {
    let o = object(v, path)?;
    let id = opt_scalar(o, "id", path)?.ok_or_else(|| missing(&format!("{path}.id")))?;
    let status_id = opt_scalar(o, "leaseStatusTypeId", path)?
        .ok_or_else(|| missing(&format!("{path}.leaseStatusTypeId")))?;
    let transfer_at = match opt_scalar(o, "transferDate", path)? {
        Some(s) => Some(mountain_instant(&s).ok_or_else(|| {
            PmsError::Malformed(format!("{path}.transferDate {s:?} is not a date"))
        })?),
        None => None,
    };
    let customers = match present(o.get("customers")) {
        None => return Err(missing(&format!("{path}.customers"))),
        Some(Value::Array(items)) => items.iter().collect(),
        Some(Value::Object(node)) => one_or_many(
            present(node.get("customer"))
                .ok_or_else(|| missing(&format!("{path}.customers.customer")))?,
            &format!("{path}.customers.customer"),
        )?,
        Some(other) => return Err(wrong_type(&format!("{path}.customers"), "a list", other)),
    };
    let customers = customers
        .iter()
        .enumerate()
        .map(|(i, c)| parse_customer(c, &format!("{path}.customers[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Lease {
        id,
        property: property.to_string(),
        status: lease_status(&status_id),
        unit: unit_code(o, path)?,
        transfer_at,
        transfer_lease_id: opt_scalar(o, "transferLeaseId", path)?,
        customers,
    })
}

fn parse_customer(v: &Value, path: &str) -> Result<Customer, PmsError> {
    let o = object(v, path)?;
    let id = opt_scalar(o, "id", path)?.ok_or_else(|| missing(&format!("{path}.id")))?;
    let first = opt_scalar(o, "firstName", path)?.unwrap_or_default();
    let last = opt_scalar(o, "lastName", path)?.unwrap_or_default();
    let full = opt_scalar(o, "nameFull", path)?;
    let name = match (first.is_empty(), last.is_empty()) {
        (false, false) => format!("{first} {last}"),
        (false, true) => first,
        (true, false) => last,
        (true, true) => full.unwrap_or_else(|| format!("customer {id}")),
    };
    let guarantor = opt_scalar(o, "customerType", path)?
        .is_some_and(|t| t.to_ascii_lowercase().contains("guarantor"));
    let left = opt_scalar(o, "leaseCustomerStatus", path)?
        .map(|s| PmsStatus::parse(&s))
        .filter(|s| matches!(s, PmsStatus::Past | PmsStatus::Cancelled));
    Ok(Customer {
        id,
        name,
        guarantor,
        left,
    })
}

/// The unit code (module docs): `unitNumberSpace`, `unitNumber`, or the unit space names.
fn unit_code(o: &Map<String, Value>, path: &str) -> Result<Option<String>, PmsError> {
    for key in ["unitNumberSpace", "unitNumber"] {
        if let Some(u) = opt_scalar(o, key, path)? {
            return Ok(Some(u));
        }
    }
    let spaces_path = format!("{path}.unitSpaces");
    let spaces = match present(o.get("unitSpaces")) {
        None => return Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Value::Array(items)) => items.iter().collect(),
        Some(Value::Object(node)) => match present(node.get("unitSpace")) {
            None => Vec::new(),
            Some(v) => one_or_many(v, &format!("{spaces_path}.unitSpace"))?,
        },
        Some(other) => return Err(wrong_type(&spaces_path, "a list", other)),
    };
    let mut names = BTreeSet::new();
    for (i, s) in spaces.iter().enumerate() {
        let p = format!("{spaces_path}.unitSpace[{i}]");
        if let Some(name) = opt_scalar(object(s, &p)?, "unitSpace", &p)? {
            names.insert(name);
        }
    }
    Ok(if names.is_empty() {
        None
    } else {
        Some(names.into_iter().collect::<Vec<_>>().join("+"))
    })
}

fn rpc_error(error: &Value, secrets: &[&str]) -> PmsError {
    let (code, message) = match error {
        Value::Object(o) => (
            present(o.get("code")).and_then(scalar_text),
            present(o.get("message")).and_then(scalar_text),
        ),
        other => (None, scalar_text(other)),
    };
    let code_num = code.as_deref().and_then(|c| c.trim().parse::<u16>().ok());
    if let Some(c @ (401 | 403)) = code_num {
        return PmsError::Unauthorized(c);
    }
    let mut message = mask(message.as_deref().unwrap_or("no message"), secrets);
    if message.chars().count() > 200 {
        message = message.chars().take(200).collect::<String>() + "…";
    }
    PmsError::Malformed(format!(
        "Entrata answered error {}: {message}",
        mask(code.as_deref().unwrap_or("without a code"), secrets)
    ))
}

/// A server message may echo what it was sent; never pass a credential on.
fn mask(text: &str, secrets: &[&str]) -> String {
    let mut out: String = text.chars().filter(|c| !c.is_control()).collect();
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(s, "***");
    }
    out
}

// --- Reading JSON values -------------------------------------------------------------------

/// A key that is absent or `null` is not there.
fn present(v: Option<&Value>) -> Option<&Value> {
    v.filter(|v| !v.is_null())
}

fn missing(path: &str) -> PmsError {
    PmsError::Malformed(format!("{path} is missing"))
}

fn wrong_type(path: &str, want: &str, got: &Value) -> PmsError {
    let got = match got {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    };
    PmsError::Malformed(format!("{path} is {got}, not {want}"))
}

fn object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, PmsError> {
    v.as_object()
        .ok_or_else(|| wrong_type(path, "an object", v))
}

/// A list, or a single object where Entrata's XML heritage left one element unwrapped.
fn one_or_many<'a>(v: &'a Value, path: &str) -> Result<Vec<&'a Value>, PmsError> {
    match v {
        Value::Array(items) => Ok(items.iter().collect()),
        Value::Object(_) => Ok(vec![v]),
        other => Err(wrong_type(path, "a list", other)),
    }
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A string or a number, as text; absent, `null` or blank is `None`; anything else is an error.
fn opt_scalar(o: &Map<String, Value>, key: &str, path: &str) -> Result<Option<String>, PmsError> {
    match present(o.get(key)) {
        None => Ok(None),
        Some(v @ (Value::String(_) | Value::Number(_))) => {
            Ok(scalar_text(v).filter(|s| !s.is_empty()))
        }
        Some(other) => Err(wrong_type(
            &format!("{path}.{key}"),
            "a string or a number",
            other,
        )),
    }
}

// --- Mountain time --------------------------------------------------------------------------

/// A local wall-clock time in `tz`: a time skipped by the spring change is read one hour
/// later, one repeated by the autumn change as the earlier instant.
fn local_to_utc(tz: Tz, local: NaiveDateTime) -> Option<Timestamp> {
    tz.from_local_datetime(&local)
        .earliest()
        .or_else(|| {
            tz.from_local_datetime(&(local + chrono::Duration::hours(1)))
                .earliest()
        })
        .map(|t| t.with_timezone(&Utc))
}

/// An Entrata date or date-time (module docs) as an instant; a bare date is the start of that
/// day in Mountain time.
pub fn mountain_instant(text: &str) -> Option<Timestamp> {
    let s = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for f in ["%m/%d/%Y", "%Y-%m-%d"] {
        if let Ok(d) = NaiveDate::parse_from_str(s, f) {
            return local_to_utc(ENTRATA_TZ, d.and_hms_opt(0, 0, 0)?);
        }
    }
    let (clock, fixed) = match s.rsplit_once(' ') {
        Some((rest, "MST")) => (rest, FixedOffset::west_opt(7 * 3600)),
        Some((rest, "MDT")) => (rest, FixedOffset::west_opt(6 * 3600)),
        _ => (s, None),
    };
    for f in [
        "%m/%d/%Y %H:%M:%S%.f",
        "%m/%d/%Y %H:%M",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
    ] {
        if let Ok(local) = NaiveDateTime::parse_from_str(clock, f) {
            return match fixed {
                Some(offset) => offset
                    .from_local_datetime(&local)
                    .single()
                    .map(|t| t.with_timezone(&Utc)),
                None => local_to_utc(ENTRATA_TZ, local),
            };
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> Timestamp {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn entrata_dates_are_mountain_time_with_daylight_saving() {
        // Winter (MST, UTC-7) and summer (MDT, UTC-6).
        assert_eq!(
            mountain_instant("01/15/2026"),
            Some(utc("2026-01-15T07:00:00Z"))
        );
        assert_eq!(
            mountain_instant("07/15/2026"),
            Some(utc("2026-07-15T06:00:00Z"))
        );
        // The days of the change: midnight is still on the old offset.
        assert_eq!(
            mountain_instant("03/08/2026"),
            Some(utc("2026-03-08T07:00:00Z"))
        );
        assert_eq!(
            mountain_instant("11/01/2026"),
            Some(utc("2026-11-01T06:00:00Z"))
        );
        // 02:30 does not exist on 8 March 2026; 01:30 happens twice on 1 November 2026.
        assert_eq!(
            mountain_instant("03/08/2026 02:30:00"),
            Some(utc("2026-03-08T09:30:00Z"))
        );
        assert_eq!(
            mountain_instant("11/01/2026 01:30:00"),
            Some(utc("2026-11-01T07:30:00Z"))
        );
        assert_eq!(
            mountain_instant("01/31/2022 23:16:51.110301 MST"),
            Some(utc("2022-02-01T06:16:51.110301Z"))
        );
        assert_eq!(
            mountain_instant("2026-11-01"),
            Some(utc("2026-11-01T06:00:00Z"))
        );
        assert_eq!(
            mountain_instant("2026-11-01T12:00:00-05:00"),
            Some(utc("2026-11-01T17:00:00Z"))
        );
        for bad in ["", "13/45/2026", "tomorrow", "11/01/26x"] {
            assert_eq!(mountain_instant(bad), None, "{bad}");
        }
    }

    #[test]
    fn status_ids_follow_the_table_and_anything_else_is_unknown() {
        let want = [
            ("1", PmsStatus::Applicant),
            ("2", PmsStatus::Cancelled),
            ("3", PmsStatus::Future),
            ("4", PmsStatus::Current),
            ("5", PmsStatus::Notice),
            ("6", PmsStatus::Past),
        ];
        for (id, status) in want {
            assert_eq!(lease_status(id), status);
        }
        assert_eq!(
            lease_status("7"),
            PmsStatus::Unknown("leaseStatusTypeId 7".into())
        );
    }

    #[test]
    fn a_masked_message_keeps_no_credential_and_no_control_character() {
        assert_eq!(
            mask("user bob\nwith pw hunter2", &["bob", "hunter2"]),
            "user ***with pw ***"
        );
    }
}
