//! The Rent Manager 12 adapter: a token from `AuthorizeUser`, then paged `GET /Tenants`.
//!
//! ```text
//! POST {base_url}/Authentication/AuthorizeUser
//! {"Username":"…","Password":"…","LocationID":1}          → "token" (a JSON string)
//!
//! GET {base_url}/Tenants?filters=PropertyID,eq,7&embeds=Leases,Leases.Unit
//!     &fields=TenantID,Name,FirstName,LastName,Status,PropertyID,UpdateDate,Leases
//!     &pageSize=1000&pageNumber=1
//! X-RM12Api-ApiToken: token
//! ```
//!
//! Several properties are filtered with `PropertyID,in,(7,8)`. Each page announces the row
//! count of the whole query in `x-total-results`; pages are followed until every row is in,
//! each checked with [`expect_page`] (and against `x-results` when sent).
//!
//! An incremental fetch (`FetchRequest::changed_since`) adds `UpdateDate,gt,<time>` to the
//! filters, the time written as the property's wall clock (`site.timezone`, the way Rent
//! Manager stores dates) less five minutes of overlap for clock skew, and answers with an
//! incomplete snapshot. Rent Manager answers a query that matches nothing with
//! `204 No Content`: for an incremental fetch that means nothing changed (an empty
//! incomplete snapshot); for a complete roster it is an error, never an empty roster.
//!
//! The token is kept between fetches. A 401 (an expired token) gets one new token and the same
//! request again, once per fetch; a second 401 fails the sync.
//!
//! # Status mapping
//!
//! The person is the Rent Manager tenant (`TenantID`, `Name`).
//!
//! | Tenant `Status` | leases (`embeds=Leases`) | [`PmsStatus`] |
//! |---|---|---|
//! | `Current` | every lease has a `MoveOutDate` that has passed | `Past` (moved out) |
//! | `Current` | an open lease has a `MoveOutDate` or a `NoticeDate` | `Notice` |
//! | `Current` | otherwise (also with no lease) | `Current` |
//! | `Notice` | every lease has a `MoveOutDate` that has passed | `Past` |
//! | `Notice` | otherwise | `Notice` |
//! | `Future` | | `Future` |
//! | `Past` | | `Past` |
//! | `Applicant`, `Prospect` | | `Applicant` |
//! | `Cancelled`, `Canceled` | | `Cancelled` |
//! | anything else | | `Unknown(status)` (the core alerts and changes nothing) |
//!
//! Status values are compared without regard to case. A `MoveOutDate` passes at the end of
//! that day, a `MoveInDate` starts at the start of its day, both in the site's time zone.
//!
//! # Units
//!
//! The unit code is the embedded `Leases[].Unit.Name` (the unit as Rent Manager users name it;
//! `UnitID` is the database key). Of the tenant's open leases (no `MoveOutDate`, or one not yet
//! passed), those that have started are preferred; if they name more than one unit, those
//! without a `MoveOutDate` (on a transfer day the new lease, not the one ending). If that still
//! leaves several units (a tenant renting a flat and a garage) the tenant has no unit, and the
//! core holds unit keys for a manager. With more than one configured property the code is
//! `{PropertyID}/{unit name}`.
//!
//! # Failures
//!
//! An answer that is not a JSON list of tenants, a tenant without `TenantID` or `Status`, a
//! lease without its embedded `Unit`, a value of the wrong type, a date that does not parse, a
//! missing `x-total-results`, a short or long page, a total that changes between pages or a
//! tenant twice is an error, never a smaller roster. Unknown extra fields are ignored. HTTP 429
//! is retried after the wait the headers announce when that is at most 30 s, at most 3 tries.
//! Without `Retry-After`, Rent Manager's `x-ratelimit-reset` (a Unix time) gives the wait.
//! The username, password and token never appear in an error or in `Debug` output.

use std::collections::BTreeSet;
use std::sync::Mutex;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use reqwest::header::{HeaderValue, ACCEPT};
use serde::Deserialize;
use serde_json::Value;

use super::http::{Http, JsonResponse};
use super::{expect_page, merge_people, FetchFuture, FetchRequest, PmsError, RosterSource};
use crate::config::{read_secret, Config, PmsSource, Secret};
use crate::core::{PmsStatus, RosterEntry, Snapshot, Timestamp};

/// Rows asked for per page (Rent Manager documents 1000 as the largest page).
pub const PAGE_SIZE: u64 = 1000;
pub const TOKEN_HEADER: &str = "X-RM12Api-ApiToken";
pub const EMBEDS: &str = "Leases,Leases.Unit";
pub const FIELDS: &str = "TenantID,Name,FirstName,LastName,Status,PropertyID,UpdateDate,Leases";
/// How far an incremental fetch reaches back before `changed_since`.
pub const INCREMENTAL_OVERLAP: chrono::Duration = chrono::Duration::minutes(5);

#[derive(Debug)]
pub struct RentManagerSource {
    http: Http,
    property_ids: Vec<String>,
    location_id: u64,
    username: Secret,
    password: Secret,
    tz: Tz,
    token: Mutex<Option<Secret>>,
}

impl RentManagerSource {
    pub fn new(cfg: &Config) -> Result<RentManagerSource, PmsError> {
        let PmsSource::RentManager {
            http,
            property_ids,
            location_id,
            username_file,
            password_file,
        } = &cfg.pms.source
        else {
            return Err(PmsError::Setup(
                "the config does not name a Rent Manager source".into(),
            ));
        };
        super::check_numeric_ids(property_ids, "Rent Manager PropertyID")?;
        let location_id = location_id.trim().parse::<u64>().map_err(|_| {
            PmsError::Setup(format!(
                "pms.location_id: {location_id:?} is not a Rent Manager LocationID (a number)"
            ))
        })?;
        let secret = |name: &str| {
            read_secret(&cfg.pms.secrets_base, name).map_err(|e| PmsError::Setup(e.to_string()))
        };
        Ok(RentManagerSource {
            http: Http::new(http)?,
            property_ids: property_ids.clone(),
            location_id,
            username: secret(username_file)?,
            password: secret(password_file)?,
            tz: cfg.site.timezone,
            token: Mutex::new(None),
        })
    }

    async fn fetch_roster(&self, request: FetchRequest) -> Result<Snapshot, PmsError> {
        self.fetch_tenants(request.changed_since, request.now).await
    }

    /// The `filters` expression (module docs).
    fn filters(&self, changed_since: Option<Timestamp>) -> String {
        let mut f = match self.property_ids.as_slice() {
            [one] => format!("PropertyID,eq,{one}"),
            many => format!("PropertyID,in,({})", many.join(",")),
        };
        if let Some(since) = changed_since {
            let local = (since - INCREMENTAL_OVERLAP).with_timezone(&self.tz);
            f.push_str(&format!(
                ";UpdateDate,gt,{}",
                local.naive_local().format("%Y-%m-%dT%H:%M:%S")
            ));
        }
        f
    }

    async fn fetch_tenants(
        &self,
        changed_since: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<Snapshot, PmsError> {
        let filters = self.filters(changed_since);
        let mut reauthenticated = false;
        let mut tenants: Vec<RawTenant> = Vec::new();
        let mut seen = BTreeSet::new();
        let mut announced: Option<u64> = None;
        let mut page: u64 = 1;
        loop {
            let resp = loop {
                let token = self.token().await?;
                match self.get_page(&token, &filters, page).await {
                    Err(PmsError::Unauthorized(401)) if !reauthenticated => {
                        tracing::info!(pms = "rentmanager", "token refused; authenticating again");
                        reauthenticated = true;
                        self.forget_token();
                    }
                    other => break other?,
                }
            };
            if resp.status == 204 {
                if changed_since.is_none() {
                    return Err(PmsError::Malformed(
                        "Rent Manager answered 204 No Content for a complete roster".into(),
                    ));
                }
                // Nothing changed since then.
                break;
            }
            let total = resp.count_header("x-total-results")?;
            if let Some(before) = announced {
                if before != total {
                    return Err(PmsError::Incomplete(format!(
                        "the tenant total went from {before} to {total} while it was paged"
                    )));
                }
            }
            announced = Some(total);
            let rows: Vec<RawTenant> = serde_json::from_slice(&resp.body).map_err(|e| {
                PmsError::Malformed(format!("the Tenants answer is not a list of tenants: {e}"))
            })?;
            if resp.headers.contains_key("x-results") {
                let said = resp.count_header("x-results")?;
                if said != rows.len() as u64 {
                    return Err(PmsError::Incomplete(format!(
                        "page {page} held {} tenants but x-results says {said}",
                        rows.len()
                    )));
                }
            }
            expect_page(total, tenants.len() as u64, PAGE_SIZE, rows.len())?;
            for t in rows {
                let id = t.tenant_id.0.clone();
                if !seen.insert(id.clone()) {
                    return Err(PmsError::Incomplete(format!(
                        "tenant {id} came twice: the roster changed while it was paged"
                    )));
                }
                tenants.push(t);
            }
            if tenants.len() as u64 >= total {
                break;
            }
            page += 1;
        }
        let prefix = self.property_ids.len() > 1;
        let residents = tenants
            .into_iter()
            .map(|t| roster_entry(t, now, self.tz, prefix))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Snapshot {
            fetched_at: now,
            complete: changed_since.is_none(),
            residents: merge_people(residents),
        })
    }

    async fn get_page(
        &self,
        token: &Secret,
        filters: &str,
        page: u64,
    ) -> Result<JsonResponse, PmsError> {
        let mut token = HeaderValue::from_str(token.expose()).map_err(|_| {
            PmsError::Malformed("the token Rent Manager issued is not a valid header value".into())
        })?;
        token.set_sensitive(true);
        let url = self.http.url("/Tenants");
        let query = [
            ("filters", filters.to_string()),
            ("embeds", EMBEDS.to_string()),
            ("fields", FIELDS.to_string()),
            ("pageSize", PAGE_SIZE.to_string()),
            ("pageNumber", page.to_string()),
        ];
        self.http
            .send_retrying("rentmanager", || {
                self.http
                    .client()
                    .get(&url)
                    .query(&query)
                    .header(TOKEN_HEADER, token.clone())
                    .header(ACCEPT, "application/json")
            })
            .await
    }

    /// The kept token, or a new one.
    async fn token(&self) -> Result<Secret, PmsError> {
        if let Some(t) = self.token.lock().expect("token lock").clone() {
            return Ok(t);
        }
        let t = self.authenticate().await?;
        *self.token.lock().expect("token lock") = Some(t.clone());
        Ok(t)
    }

    fn forget_token(&self) {
        *self.token.lock().expect("token lock") = None;
    }

    async fn authenticate(&self) -> Result<Secret, PmsError> {
        let body = serde_json::json!({
            "Username": self.username.expose(),
            "Password": self.password.expose(),
            "LocationID": self.location_id,
        });
        let url = self.http.url("/Authentication/AuthorizeUser");
        let resp = self
            .http
            .send_retrying("rentmanager", || {
                self.http
                    .client()
                    .post(&url)
                    .header(ACCEPT, "application/json")
                    .json(&body)
            })
            .await?;
        // The answer is the token itself; no parser message is passed on, as it could quote it.
        match serde_json::from_slice::<Value>(&resp.body) {
            Ok(Value::String(t)) if !t.trim().is_empty() => Ok(Secret::new(t.trim())),
            _ => Err(PmsError::Malformed(
                "AuthorizeUser did not answer with a token (a JSON string)".into(),
            )),
        }
    }
}

impl RosterSource for RentManagerSource {
    fn kind(&self) -> &'static str {
        "rentmanager"
    }

    fn fetch(&self, request: FetchRequest) -> FetchFuture<'_> {
        Box::pin(self.fetch_roster(request))
    }
}

/// An id Rent Manager may send as a number or a string.
#[derive(Clone, Debug, PartialEq)]
struct Id(String);

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Id, D::Error> {
        match Value::deserialize(d)? {
            Value::Number(n) => Ok(Id(n.to_string())),
            Value::String(s) if !s.trim().is_empty() => Ok(Id(s.trim().to_string())),
            other => Err(serde::de::Error::custom(format!(
                "expected an id (a number or a string), got {other}"
            ))),
        }
    }
}

#[derive(Deserialize)]
struct RawTenant {
    #[serde(rename = "TenantID")]
    tenant_id: Id,
    #[serde(rename = "Name", default)]
    name: Option<String>,
    #[serde(rename = "FirstName", default)]
    first_name: Option<String>,
    #[serde(rename = "LastName", default)]
    last_name: Option<String>,
    #[serde(rename = "Status")]
    status: Option<String>,
    #[serde(rename = "PropertyID", default)]
    property_id: Option<Id>,
    #[serde(rename = "Leases", default)]
    leases: Option<Vec<RawLease>>,
}

#[derive(Deserialize)]
struct RawLease {
    #[serde(rename = "LeaseID", default)]
    lease_id: Option<Id>,
    #[serde(rename = "MoveInDate", default)]
    move_in: Option<String>,
    #[serde(rename = "MoveOutDate", default)]
    move_out: Option<String>,
    #[serde(rename = "NoticeDate", default)]
    notice: Option<String>,
    #[serde(rename = "Unit", default)]
    unit: Option<RawUnit>,
}

#[derive(Deserialize)]
struct RawUnit {
    #[serde(rename = "Name", default)]
    name: Option<String>,
}

struct Lease {
    unit: String,
    move_in: Option<NaiveDate>,
    move_out: Option<NaiveDate>,
    notice: Option<NaiveDate>,
}

/// The tenant `Status` table (module docs), before lease dates are considered.
pub fn tenant_status(status: &str) -> PmsStatus {
    match status.trim().to_ascii_lowercase().as_str() {
        "current" => PmsStatus::Current,
        "notice" => PmsStatus::Notice,
        "future" => PmsStatus::Future,
        "past" => PmsStatus::Past,
        "applicant" | "prospect" => PmsStatus::Applicant,
        "cancelled" | "canceled" => PmsStatus::Cancelled,
        _ => PmsStatus::Unknown(status.to_string()),
    }
}

fn roster_entry(
    t: RawTenant,
    now: Timestamp,
    tz: Tz,
    prefix_property: bool,
) -> Result<RosterEntry, PmsError> {
    let id = t.tenant_id.0;
    let status_text = t
        .status
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| PmsError::Malformed(format!("tenant {id} has no Status")))?;
    let mut leases = Vec::new();
    for (i, l) in t.leases.unwrap_or_default().into_iter().enumerate() {
        let path = format!("tenant {id} Leases[{i}]");
        let lease_id = l.lease_id.map(|l| format!(" (lease {})", l.0));
        let unit = l
            .unit
            .and_then(|u| u.name)
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                PmsError::Malformed(format!(
                    "{path}{} has no Unit.Name (the Leases.Unit embed)",
                    lease_id.unwrap_or_default()
                ))
            })?;
        let date = |field: &str, v: Option<String>| -> Result<Option<NaiveDate>, PmsError> {
            match v.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
                None => Ok(None),
                Some(s) => local_date(s, tz).map(Some).ok_or_else(|| {
                    PmsError::Malformed(format!("{path}.{field} {s:?} is not a date"))
                }),
            }
        };
        leases.push(Lease {
            unit,
            move_in: date("MoveInDate", l.move_in)?,
            move_out: date("MoveOutDate", l.move_out)?,
            notice: date("NoticeDate", l.notice)?,
        });
    }
    let started = |d: NaiveDate| start_of_day(tz, d).is_some_and(|t| t <= now);
    let ended = |d: NaiveDate| {
        d.succ_opt()
            .and_then(|next| start_of_day(tz, next))
            .is_some_and(|t| t <= now)
    };
    let open: Vec<&Lease> = leases
        .iter()
        .filter(|l| !l.move_out.is_some_and(ended))
        .collect();
    let mut status = tenant_status(&status_text);
    if matches!(status, PmsStatus::Current | PmsStatus::Notice) {
        if !leases.is_empty() && open.is_empty() {
            status = PmsStatus::Past;
        } else if open
            .iter()
            .any(|l| l.move_out.is_some() || l.notice.is_some())
        {
            status = PmsStatus::Notice;
        }
    }
    let candidates: Vec<&Lease> = if open.is_empty() {
        leases.iter().collect()
    } else {
        open
    };
    let begun: Vec<&Lease> = candidates
        .iter()
        .copied()
        .filter(|l| l.move_in.is_none_or(started))
        .collect();
    let pool = if begun.is_empty() { candidates } else { begun };
    let units = |ls: &[&Lease]| -> BTreeSet<String> { ls.iter().map(|l| l.unit.clone()).collect() };
    let mut unit = single(units(&pool));
    if unit.is_none() {
        let staying: Vec<&Lease> = pool
            .iter()
            .copied()
            .filter(|l| l.move_out.is_none())
            .collect();
        unit = single(units(&staying));
    }
    if prefix_property {
        if let Some(u) = unit {
            let property = t.property_id.ok_or_else(|| {
                PmsError::Malformed(format!(
                    "tenant {id} has no PropertyID, needed with several properties"
                ))
            })?;
            unit = Some(format!("{}/{u}", property.0));
        }
    }
    let name = t
        .name
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .or_else(|| {
            let full = format!(
                "{} {}",
                t.first_name.unwrap_or_default().trim(),
                t.last_name.unwrap_or_default().trim()
            );
            Some(full.trim().to_string()).filter(|n| !n.is_empty())
        })
        .unwrap_or_else(|| format!("tenant {id}"));
    Ok(RosterEntry {
        id,
        name,
        unit,
        status,
    })
}

fn single(set: BTreeSet<String>) -> Option<String> {
    if set.len() == 1 {
        set.into_iter().next()
    } else {
        None
    }
}

fn start_of_day(tz: Tz, d: NaiveDate) -> Option<Timestamp> {
    let local = d.and_hms_opt(0, 0, 0)?;
    tz.from_local_datetime(&local)
        .earliest()
        .or_else(|| {
            tz.from_local_datetime(&(local + chrono::Duration::hours(1)))
                .earliest()
        })
        .map(|t| t.with_timezone(&Utc))
}

/// A Rent Manager date (`2026-11-30T00:00:00`, with or without fraction or offset, or
/// `2026-11-30`) as the calendar day it names, which is a day at the property. An offset is
/// serialization noise (a .NET midnight in UTC): moving it into the site's zone would end a
/// tenancy a day early, so the day is taken as written.
pub fn local_date(s: &str, _site: Tz) -> Option<NaiveDate> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.date_naive());
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(t.date());
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(s, "%m/%d/%Y"))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_read_as_site_calendar_days() {
        let tz = chrono_tz::America::Denver;
        let d = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        assert_eq!(local_date("2026-11-30T00:00:00", tz), Some(d));
        assert_eq!(local_date("2026-11-30T00:00:00.000", tz), Some(d));
        assert_eq!(local_date("2026-11-30", tz), Some(d));
        assert_eq!(local_date("11/30/2026", tz), Some(d));
        // Midnight UTC on the 30th is the 30th, not the evening of the 29th in Denver.
        assert_eq!(local_date("2026-11-30T00:00:00Z", tz), Some(d));
        assert_eq!(local_date("2026-11-30T00:00:00-07:00", tz), Some(d));
        assert_eq!(local_date("soon", tz), None);
    }

    #[test]
    fn statuses_follow_the_table() {
        assert_eq!(tenant_status("Current"), PmsStatus::Current);
        assert_eq!(tenant_status("past"), PmsStatus::Past);
        assert_eq!(tenant_status("FUTURE"), PmsStatus::Future);
        assert_eq!(tenant_status("Notice"), PmsStatus::Notice);
        assert_eq!(tenant_status("Prospect"), PmsStatus::Applicant);
        assert_eq!(tenant_status("Canceled"), PmsStatus::Cancelled);
        assert_eq!(
            tenant_status("Evicted"),
            PmsStatus::Unknown("Evicted".into())
        );
    }
}
