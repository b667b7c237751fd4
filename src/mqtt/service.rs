//! Running API commands against the gateway, and the JSON views they answer with.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex as StdMutex};

use serde_json::{json, Value};

use super::api::{ApiError, CardSpec, Command, Reply, Request, StandingFilter, Status};
use crate::core::{
    self, Actor, Card, CoreError, DeviceId, ItemResult, Standing, Suggestion, Timestamp,
    Transition, World,
};
use crate::daemon::SyncTrigger;
use crate::events::DeviceStatus;
use crate::gateway::{Gateway, GatewayError};
use crate::outbox::SharedGateway;
use crate::pms::{FetchRequest, RosterSource};

/// Pairs a lock in pairing mode (the Nuki driver provides it).
pub trait LockPairing: Send + Sync {
    fn pair<'a>(
        &'a self,
        device: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>>;
}

/// What the API serves from.
#[derive(Clone)]
pub struct Api {
    pub gw: Option<SharedGateway>,
    pub trigger: SyncTrigger,
    /// For `sync/plan` (a fetch of its own; the sync loop's source is not shared).
    pub planner: Option<Arc<dyn RosterSource>>,
    pub devices: Arc<StdMutex<BTreeMap<DeviceId, DeviceStatus>>>,
    pub pairing: Option<Arc<dyn LockPairing>>,
}

/// The suggestion as the API shows it.
pub fn suggestion_json(world: &World, s: &Suggestion) -> Value {
    let key_name = s
        .key
        .as_deref()
        .and_then(|k| world.index().key(k))
        .map(|k| k.name.clone());
    json!({
        "id": s.id,
        "resident_id": s.resident_id,
        "resident_name": s.resident_name,
        "unit": s.unit,
        "key": s.key,
        "key_name": key_name,
        "action": s.action,
        "color": s.color(),
        "valid_from": s.valid_from,
        "created_at": s.created_at,
        "reason": s.reason,
        "state": s.display_state(),
        "hold": s.hold,
        "after": s.after,
    })
}

fn standing_str(s: Standing) -> &'static str {
    match s {
        Standing::Current => "current",
        Standing::Past => "past",
        Standing::Future => "future",
        Standing::Eviction => "eviction",
        Standing::Unknown => "unknown",
    }
}

fn item_json(id: &str, r: &ItemResult) -> Value {
    let mut v = serde_json::to_value(r).expect("an item result serializes");
    v["id"] = json!(id);
    v
}

fn rules_error(e: CoreError) -> ApiError {
    let (code, path) = match &e {
        CoreError::UnknownResident(_) | CoreError::NoOverride(_) => ("not_found", "$.resident_id"),
        CoreError::UnknownKey(_) => ("not_found", "$.key"),
        CoreError::CardNotEnrolled => ("not_found", "$.card"),
        CoreError::InvalidSite(_) => ("invalid_request", "$"),
        CoreError::BatchSize { .. } => ("too_many_ids", "$.ids"),
        _ => ("conflict", "$"),
    };
    let details = match &e {
        CoreError::InvalidSite(problems) => json!({
            "path": path,
            "problems": problems.iter().map(|(p, r)| json!({"path": p, "reason": r})).collect::<Vec<_>>(),
        }),
        _ => json!({ "path": path }),
    };
    ApiError::new(code, e.to_string(), details)
}

fn gateway_error(e: GatewayError) -> ApiError {
    match e {
        GatewayError::Rules(e) => rules_error(e),
        GatewayError::Store(e) => {
            tracing::error!(error = %e, "store error while serving a request");
            ApiError::new(
                "internal",
                "the store could not record the change; nothing was applied, try again",
                json!({ "retryable": e.is_retryable() }),
            )
        }
        GatewayError::Site(e) => ApiError::invalid("$", e.to_string()),
    }
}

fn card(spec: &CardSpec) -> Result<Card, ApiError> {
    match spec {
        CardSpec::H10301 { facility, number } => Card::h10301(*facility, *number),
        CardSpec::Raw { bit_len, hex } => Card::raw(*bit_len, &hex.to_ascii_lowercase()),
    }
    .map_err(|e| ApiError::invalid("$.card", e.to_string()))
}

/// Doors named in a request must exist: a typo must not map a unit to nothing.
fn known_doors(world: &World, doors: &[String]) -> Result<(), ApiError> {
    for (i, d) in doors.iter().enumerate() {
        if !world.site().doors.iter().any(|x| &x.id == d) {
            return Err(ApiError::invalid(
                &format!("$.doors[{i}]"),
                format!("no door {d:?}; add it first with devices/set_door"),
            ));
        }
    }
    Ok(())
}

/// The outcome of a command: the reply, and the change to commit with it (if any).
enum Outcome {
    Read(Reply),
    Change(Transition, Reply),
}

impl Api {
    /// Answer one request. State-changing requests are committed together with their reply,
    /// so a repeated transaction replays that reply and applies nothing twice.
    pub async fn handle(&self, req: &Request, now: Timestamp) -> String {
        let Some(gw) = &self.gw else {
            return Reply::error(
                &req.command_name,
                req.transaction.clone(),
                ApiError::new(
                    "unavailable",
                    "the store is quarantined: nothing can be read or changed until an \
                     installer runs `leasegate rebuild`",
                    json!({}),
                ),
            )
            .to_json();
        };
        // The slow commands run without holding the gateway.
        match &req.command {
            Command::SyncPlan => return self.plan(req, gw, now).await,
            Command::LocksPair { device } => return self.pair(req, gw, device, now).await,
            _ => {}
        }
        let key = req
            .transaction
            .as_ref()
            .filter(|_| req.command.changes_state())
            .map(|t| format!("{}/{t}", req.actor));
        let mut g = gw.lock().await;
        if let Some(key) = &key {
            match g.store().reply(key) {
                Ok(Some(first)) => return first,
                Ok(None) => {}
                Err(e) => return self.internal(req, e.to_string()),
            }
        }
        let outcome = match self.run(&g, req, now) {
            Ok(o) => o,
            Err(e) => Outcome::Read(Reply::error(&req.command_name, req.transaction.clone(), e)),
        };
        match outcome {
            Outcome::Read(reply) => {
                let body = reply.to_json();
                // A refusal is an answer too: replay it rather than try again differently.
                if let (Some(key), Status::Error) = (&key, reply.status) {
                    let transient = reply
                        .error
                        .as_ref()
                        .is_some_and(|e| matches!(e.code, "internal" | "unavailable"));
                    if !transient {
                        if let Err(e) = g.store().put_reply(key, &body) {
                            tracing::warn!(error = %e, "could not store a refusal for replay");
                        }
                    }
                }
                if matches!(req.command, Command::SyncNow) && reply.status == Status::Ok {
                    self.trigger.sync_now();
                }
                body
            }
            Outcome::Change(mut t, reply) => {
                let body = reply.to_json();
                t.reply = key.map(|k| (k, body.clone()));
                match g.commit(t) {
                    Ok(_) => {
                        if matches!(req.command, Command::SyncNow) {
                            self.trigger.sync_now();
                        }
                        body
                    }
                    Err(e) => {
                        Reply::error(&req.command_name, req.transaction.clone(), gateway_error(e))
                            .to_json()
                    }
                }
            }
        }
    }

    fn internal(&self, req: &Request, detail: String) -> String {
        tracing::error!(error = %detail, command = %req.command_name, "request failed");
        Reply::error(
            &req.command_name,
            req.transaction.clone(),
            ApiError::new(
                "internal",
                "the gateway could not read its store",
                json!({}),
            ),
        )
        .to_json()
    }

    fn run(&self, g: &Gateway, req: &Request, now: Timestamp) -> Result<Outcome, ApiError> {
        let world = g.world();
        let actor = Actor::Person(req.actor.clone());
        let ok = |data: Value| Reply::ok(&req.command_name, req.transaction.clone(), data);
        let change = |t: Transition, data: Value| Ok(Outcome::Change(t, ok(data)));
        match &req.command {
            Command::SuggestionsList { page } => {
                let (list, next) = page.take(world.pending.iter());
                let list: Vec<Value> = list
                    .into_iter()
                    .map(|s| suggestion_json(world, s))
                    .collect();
                Ok(Outcome::Read(ok(
                    json!({ "suggestions": list, "total": world.pending.len(), "next": next }),
                )))
            }
            Command::SuggestionsApprove { ids } | Command::SuggestionsDiscard { ids } => {
                let decided = g
                    .store()
                    .decided_states(ids)
                    .map_err(|e| gateway_error(e.into()))?;
                let approve = matches!(req.command, Command::SuggestionsApprove { .. });
                let d = if approve {
                    core::approve(world, ids, &decided, actor, now)
                } else {
                    core::discard(world, ids, &decided, actor, now)
                }
                .map_err(rules_error)?;
                let done = d
                    .results
                    .iter()
                    .filter(|(_, r)| matches!(r, ItemResult::Applied | ItemResult::Discarded))
                    .count();
                let results: Vec<Value> =
                    d.results.iter().map(|(id, r)| item_json(id, r)).collect();
                let data = json!({ "results": results });
                let mut reply = ok(data);
                if done == 0 {
                    reply.status = Status::Error;
                    reply.error = Some(ApiError::conflict(
                        "none of the suggestions could be decided; see data.results",
                    ));
                } else if done < d.results.len() {
                    reply.status = Status::Partial;
                }
                Ok(Outcome::Change(d.transition, reply))
            }
            Command::ModeSet { mode } => change(
                core::set_mode(world, *mode, actor, now),
                json!({ "mode": mode.as_str() }),
            ),
            // The sync itself runs in the sync loop; the trigger fires after the reply is
            // stored, so a replayed request does not sync twice.
            Command::SyncNow => change(Transition::default(), json!({ "requested": true })),
            Command::ResidentsList { standing, page } => {
                let matching: Vec<(&String, &core::Resident)> = world
                    .residents
                    .iter()
                    .filter(|(_, r)| {
                        standing.is_none_or(|f| {
                            standing_str(r.basis.standing)
                                == match f {
                                    StandingFilter::Current => "current",
                                    StandingFilter::Past => "past",
                                    StandingFilter::Future => "future",
                                    StandingFilter::Eviction => "eviction",
                                    StandingFilter::Unknown => "unknown",
                                }
                        })
                    })
                    .collect();
                let total = matching.len();
                let (page_items, next) = page.take(matching.into_iter());
                let list: Vec<Value> = page_items
                    .into_iter()
                    .map(|r| {
                        let creds = world.credentials.get(&r.id);
                        json!({
                            "id": r.id,
                            "name": r.name,
                            "unit": r.unit,
                            "pms_status": r.pms_status.as_str(),
                            "standing": standing_str(r.basis.standing),
                            "keys": world.grants_of(&r.id).map(|g| g.key_id.clone()).collect::<Vec<_>>(),
                            "override": world.overrides.get(&r.id).map(|o| json!({
                                "status": o.status, "set_by": o.set_by.to_string(), "set_at": o.set_at,
                            })),
                            "has_pin": creds.is_some_and(|c| c.pin.is_some()),
                            "cards": creds.map_or(0, |c| c.cards.len()),
                        })
                    })
                    .collect();
                Ok(Outcome::Read(ok(
                    json!({ "residents": list, "total": total, "next": next }),
                )))
            }
            Command::ResidentsOverride {
                resident_id,
                status,
            } => {
                let t = match status {
                    Some(s) => core::set_override(world, resident_id, *s, actor, now),
                    None => core::clear_override(world, resident_id, actor, now),
                }
                .map_err(rules_error)?;
                change(t, json!({ "resident_id": resident_id, "status": status }))
            }
            Command::UnitsList => Ok(Outcome::Read(ok(json!({ "units": world.site().units })))),
            Command::UnitsSet { pms_unit, doors } => {
                known_doors(world, doors)?;
                let mut site = world.site().clone();
                let unit = core::site::UnitMap {
                    pms_unit: pms_unit.clone(),
                    doors: doors.clone(),
                };
                match site.units.iter_mut().find(|u| &u.pms_unit == pms_unit) {
                    Some(u) => *u = unit,
                    None => site.units.push(unit),
                }
                let t = core::replace_site(world, site, actor, now).map_err(rules_error)?;
                change(t, json!({ "pms_unit": pms_unit, "doors": doors }))
            }
            Command::UnitsRemove { pms_unit } => {
                let mut site = world.site().clone();
                let before = site.units.len();
                site.units.retain(|u| &u.pms_unit != pms_unit);
                if site.units.len() == before {
                    return Err(ApiError::not_found(
                        "$.pms_unit",
                        format!("no unit {pms_unit:?}"),
                    ));
                }
                let t = core::replace_site(world, site, actor, now).map_err(rules_error)?;
                change(t, json!({ "pms_unit": pms_unit }))
            }
            Command::KeysList => Ok(Outcome::Read(ok(json!({ "keys": world.site().keys })))),
            Command::KeysSet(key) => {
                known_doors(world, &key.doors)?;
                let mut site = world.site().clone();
                match site.keys.iter_mut().find(|k| k.id == key.id) {
                    Some(k) => *k = key.clone(),
                    None => site.keys.push(key.clone()),
                }
                let t = core::replace_site(world, site, actor, now).map_err(rules_error)?;
                change(t, serde_json::to_value(key).expect("a key set serializes"))
            }
            Command::KeysRemove { id } => {
                let mut site = world.site().clone();
                let before = site.keys.len();
                site.keys.retain(|k| &k.id != id);
                if site.keys.len() == before {
                    return Err(ApiError::not_found("$.id", format!("no key set {id:?}")));
                }
                let t = core::replace_site(world, site, actor, now).map_err(rules_error)?;
                change(t, json!({ "id": id }))
            }
            Command::KeysAssign { resident_id, key } => change(
                core::assign_key(world, resident_id, key, actor, now).map_err(rules_error)?,
                json!({ "resident_id": resident_id, "key": key }),
            ),
            Command::KeysRevoke { resident_id, key } => change(
                core::unassign_key(world, resident_id, key, actor, now).map_err(rules_error)?,
                json!({ "resident_id": resident_id, "key": key }),
            ),
            Command::DevicesList => {
                let statuses = self.devices.lock().expect("device status lock").clone();
                let mut by_device: BTreeMap<String, Vec<String>> = BTreeMap::new();
                for d in &world.site().doors {
                    if let Some(dev) = &d.device {
                        by_device.entry(dev.clone()).or_default().push(d.id.clone());
                    }
                }
                for dev in statuses.keys() {
                    by_device.entry(dev.clone()).or_default();
                }
                let list: Vec<Value> = by_device
                    .into_iter()
                    .map(|(id, doors)| {
                        json!({ "status": statuses.get(&id), "id": id, "doors": doors })
                    })
                    .collect();
                Ok(Outcome::Read(ok(json!({ "devices": list }))))
            }
            Command::DevicesSetDoor { door, device } => {
                let mut site = world.site().clone();
                match site.doors.iter_mut().find(|d| &d.id == door) {
                    Some(d) => d.device = device.clone(),
                    None => site.doors.push(core::site::Door {
                        id: door.clone(),
                        device: device.clone(),
                    }),
                }
                let t = core::replace_site(world, site, actor, now).map_err(rules_error)?;
                change(t, json!({ "door": door, "device": device }))
            }
            Command::CredentialsEnrollCard {
                resident_id,
                card: spec,
            } => {
                let t = core::enroll_card(world, resident_id, card(spec)?, actor, now)
                    .map_err(rules_error)?;
                let n = world
                    .credentials
                    .get(resident_id)
                    .map_or(0, |c| c.cards.len())
                    + 1;
                change(t, json!({ "resident_id": resident_id, "cards": n }))
            }
            Command::CredentialsRemoveCard {
                resident_id,
                card: spec,
            } => {
                let t = core::remove_card(world, resident_id, &card(spec)?, actor, now)
                    .map_err(rules_error)?;
                let n = world
                    .credentials
                    .get(resident_id)
                    .map_or(0, |c| c.cards.len().saturating_sub(1));
                change(t, json!({ "resident_id": resident_id, "cards": n }))
            }
            Command::CredentialsRevealPin { resident_id } => {
                if !world.residents.contains_key(resident_id) {
                    return Err(ApiError::not_found(
                        "$.resident_id",
                        format!("no resident {resident_id:?}"),
                    ));
                }
                let pin = world
                    .credentials
                    .get(resident_id)
                    .and_then(|c| c.pin.as_ref())
                    .ok_or_else(|| {
                        ApiError::not_found(
                            "$.resident_id",
                            "this resident has no PIN yet (PINs come with the first key)",
                        )
                    })?;
                // Who saw which PIN is worth knowing; the PIN itself is never logged.
                tracing::info!(actor = %req.actor, resident = %resident_id, "PIN revealed");
                Ok(Outcome::Read(ok(
                    json!({ "resident_id": resident_id, "pin": pin.expose() }),
                )))
            }
            Command::SyncPlan | Command::LocksPair { .. } => {
                unreachable!("handled before the gateway is locked")
            }
        }
    }

    async fn plan(&self, req: &Request, gw: &SharedGateway, now: Timestamp) -> String {
        let reply = |r: Result<Value, ApiError>| {
            match r {
                Ok(data) => Reply::ok(&req.command_name, req.transaction.clone(), data),
                Err(e) => Reply::error(&req.command_name, req.transaction.clone(), e),
            }
            .to_json()
        };
        let Some(source) = &self.planner else {
            return reply(Err(ApiError::new(
                "unavailable",
                "no PMS source is configured for a dry run",
                json!({}),
            )));
        };
        let snapshot = match source
            .fetch(FetchRequest {
                changed_since: None,
                now,
            })
            .await
        {
            Ok(s) => s,
            Err(e) => {
                return reply(Err(ApiError::new(
                    "unavailable",
                    format!("the PMS fetch failed: {e}"),
                    json!({ "retryable": e.is_retryable() }),
                )))
            }
        };
        let g = gw.lock().await;
        let first = g.world().next_seq;
        reply(
            g.plan(&snapshot, now)
                .map(|t| {
                    let suggestions: Vec<Value> = t
                        .suggestions()
                        .into_iter()
                        .filter(|s| s.seq >= first)
                        .map(|s| suggestion_json(g.world(), s))
                        .collect();
                    json!({ "suggestions": suggestions, "alerts": t.alerts })
                })
                .map_err(gateway_error),
        )
    }

    async fn pair(
        &self,
        req: &Request,
        gw: &SharedGateway,
        device: &str,
        now: Timestamp,
    ) -> String {
        let _ = now;
        let reply = |r: Result<Value, ApiError>| {
            match r {
                Ok(data) => Reply::ok(&req.command_name, req.transaction.clone(), data),
                Err(e) => Reply::error(&req.command_name, req.transaction.clone(), e),
            }
            .to_json()
        };
        if gw
            .lock()
            .await
            .world()
            .index()
            .devices()
            .iter()
            .all(|d| d != device)
        {
            return reply(Err(ApiError::not_found(
                "$.device",
                format!("no device {device:?} in the site"),
            )));
        }
        let Some(p) = &self.pairing else {
            return reply(Err(ApiError::new(
                "unavailable",
                "no lock driver is configured",
                json!({}),
            )));
        };
        reply(
            p.pair(device)
                .await
                .map(|()| json!({ "device": device, "paired": true }))
                .map_err(|e| ApiError::conflict(format!("pairing failed: {e}"))),
        )
    }
}
