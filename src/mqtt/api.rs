//! The request side of the MQTT API, pure: topics, typed commands, error replies.
//!
//! A request is `request/<actor>/<command>` with a JSON object. [`parse_request`] turns
//! topic, flags and payload into a [`Request`] or an [`ApiError`] carrying a `code`, a
//! `message` and `details` with the JSON path at fault. Nothing here touches the gateway.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::core::{Mode, OverrideStatus, SuggestionId, Timestamp, MAX_BATCH};

/// Bumped when a payload changes incompatibly.
pub const API_VERSION: u32 = 1;

/// The topics of one site: `<base_topic>/<site>/...`.
#[derive(Clone, Debug)]
pub struct Topics {
    root: String,
}

impl Topics {
    pub fn new(base_topic: &str, site: &str) -> Topics {
        Topics {
            root: format!("{base_topic}/{site}"),
        }
    }

    pub fn root(&self) -> &str {
        &self.root
    }

    pub fn at(&self, rest: &str) -> String {
        format!("{}/{rest}", self.root)
    }

    /// What the gateway subscribes to for requests.
    pub fn requests_filter(&self) -> String {
        self.at("request/+/+/+")
    }

    pub fn response(&self, actor: &str, command: &str) -> String {
        self.at(&format!("response/{actor}/{command}"))
    }

    pub fn suggestion(&self, id: &str) -> String {
        self.at(&format!("suggestions/{id}"))
    }

    pub fn event(&self, kind: &str) -> String {
        self.at(&format!("events/{kind}"))
    }

    /// `(actor, command)` of a request topic, or `None` if the topic is not a request.
    pub fn parse_request_topic<'t>(&self, topic: &'t str) -> Option<(&'t str, &'t str)> {
        let rest = topic.strip_prefix(&self.root)?.strip_prefix("/request/")?;
        let (actor, command) = rest.split_once('/')?;
        (!actor.is_empty() && !command.is_empty()).then_some((actor, command))
    }
}

/// An error reply's body.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ApiError {
    pub code: &'static str,
    pub message: String,
    pub details: Value,
}

impl ApiError {
    pub fn new(code: &'static str, message: impl Into<String>, details: Value) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            details,
        }
    }

    pub fn invalid(path: &str, message: impl Into<String>) -> ApiError {
        ApiError::new("invalid_request", message, json!({ "path": path }))
    }

    pub fn not_found(path: &str, message: impl Into<String>) -> ApiError {
        ApiError::new("not_found", message, json!({ "path": path }))
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new("conflict", message, json!({}))
    }
}

/// A card as a request gives it.
#[derive(Clone, Deserialize)]
#[serde(tag = "format", rename_all = "snake_case", deny_unknown_fields)]
pub enum CardSpec {
    H10301 { facility: u32, number: u32 },
    Raw { bit_len: u16, hex: String },
}

impl std::fmt::Debug for CardSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CardSpec(***)")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListState {
    Pending,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StandingFilter {
    Current,
    Past,
    Future,
    Eviction,
    Unknown,
}

/// One page of a list: at most `limit` items with ids after `after`. Lists are paged so
/// that a reply always fits in one MQTT packet, whatever the size of the building.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    pub limit: usize,
    pub after: Option<String>,
}

impl Page {
    pub const DEFAULT: usize = 200;
    pub const MAX: usize = 500;

    fn new(limit: Option<usize>, after: Option<String>) -> Result<Page, ApiError> {
        let limit = limit.unwrap_or(Page::DEFAULT);
        if !(1..=Page::MAX).contains(&limit) {
            return Err(ApiError::invalid(
                "$.limit",
                format!("limit must be 1 to {}", Page::MAX),
            ));
        }
        Ok(Page { limit, after })
    }

    /// The page of `items` (sorted by id), and the cursor for the next page.
    pub fn take<'a, T>(
        &self,
        items: impl Iterator<Item = (&'a String, T)>,
    ) -> (Vec<T>, Option<String>) {
        let mut out = Vec::new();
        let mut last = None;
        let mut more = false;
        for (id, item) in items {
            if self.after.as_ref().is_some_and(|a| id <= a) {
                continue;
            }
            if out.len() == self.limit {
                more = true;
                break;
            }
            last = Some(id.clone());
            out.push(item);
        }
        (out, if more { last } else { None })
    }
}

/// A command with its arguments, checked.
#[derive(Clone, Debug)]
pub enum Command {
    SuggestionsList {
        page: Page,
    },
    SuggestionsApprove {
        ids: Vec<SuggestionId>,
    },
    SuggestionsDiscard {
        ids: Vec<SuggestionId>,
    },
    ModeSet {
        mode: Mode,
    },
    SyncNow,
    SyncPlan,
    ResidentsList {
        standing: Option<StandingFilter>,
        page: Page,
    },
    ResidentsOverride {
        resident_id: String,
        status: Option<OverrideStatus>,
    },
    UnitsList,
    UnitsSet {
        pms_unit: String,
        doors: Vec<String>,
    },
    UnitsRemove {
        pms_unit: String,
    },
    KeysList,
    KeysSet(crate::core::site::KeySet),
    KeysRemove {
        id: String,
    },
    KeysAssign {
        resident_id: String,
        key: String,
    },
    KeysRevoke {
        resident_id: String,
        key: String,
    },
    DevicesList,
    DevicesSetDoor {
        door: String,
        device: Option<String>,
    },
    CredentialsEnrollCard {
        resident_id: String,
        card: CardSpec,
    },
    CredentialsRemoveCard {
        resident_id: String,
        card: CardSpec,
    },
    CredentialsRevealPin {
        resident_id: String,
    },
    LocksPair {
        device: String,
    },
}

impl Command {
    /// Whether the command changes state, and so needs a `transaction` and is replayed.
    pub fn changes_state(&self) -> bool {
        !matches!(
            self,
            Command::SuggestionsList { .. }
                | Command::SyncPlan
                | Command::ResidentsList { .. }
                | Command::UnitsList
                | Command::KeysList
                | Command::DevicesList
                | Command::CredentialsRevealPin { .. }
        )
    }
}

/// Every command name, for errors and documentation.
pub const COMMANDS: &[&str] = &[
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

/// A parsed request.
#[derive(Clone, Debug)]
pub struct Request {
    pub actor: String,
    pub command_name: String,
    pub transaction: Option<String>,
    pub command: Command,
}

/// What came with the message besides the payload.
#[derive(Clone, Copy, Debug, Default)]
pub struct Flags {
    pub retain: bool,
}

/// The fields every request may carry, read before the command's own.
#[derive(Deserialize)]
struct Envelope {
    transaction: Option<Value>,
    expires_at: Option<Value>,
}

fn valid_transaction(t: &str) -> bool {
    (1..=64).contains(&t.len())
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
}

/// The transaction of a request as far as it can be read, for the error reply of a request
/// that fails to parse.
pub fn transaction_of(payload: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(payload).ok()?;
    v.get("transaction")?.as_str().map(str::to_string)
}

fn typed<T: DeserializeOwned>(v: Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize::<_, T>(v).map_err(|e| {
        let path = json_path(&e.path().to_string());
        let inner = e.into_inner().to_string();
        // serde's messages name the field and the expectation; strip its position suffix.
        let message = inner
            .split(" at line ")
            .next()
            .unwrap_or(&inner)
            .to_string();
        // Depending on where it fails, the path may stop short of an unknown field.
        let path = match unknown_field(&message) {
            Some(f) if !path.ends_with(&format!(".{f}")) => format!("{path}.{f}"),
            _ => path,
        };
        ApiError::invalid(&path, message)
    })
}

/// `unknown field `x`, expected ...` names the field the path does not reach yet.
fn unknown_field(message: &str) -> Option<&str> {
    message.strip_prefix("unknown field `")?.split('`').next()
}

/// serde_path_to_error's `ids[3].x` (or `.`) as a JSON path `$.ids[3].x` (or `$`).
fn json_path(p: &str) -> String {
    if p == "." || p.is_empty() {
        "$".into()
    } else {
        format!("$.{p}")
    }
}

macro_rules! args {
    ($name:ident { $($field:ident : $ty:ty),* $(,)? }) => {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct $name {
            transaction: Option<Value>,
            expires_at: Option<Value>,
            $($field: $ty,)*
        }
    };
}

args!(NoArgs {});
args!(ListArgs { state: Option<ListState>, limit: Option<usize>, after: Option<String> });
args!(IdsArgs { ids: Vec<SuggestionId> });
args!(ModeArgs { mode: Mode });
args!(ResidentsArgs { standing: Option<StandingFilter>, limit: Option<usize>, after: Option<String> });
args!(OverrideArgs { resident_id: String, status: Option<OverrideStatus> });
args!(UnitArgs { pms_unit: String, doors: Vec<String> });
args!(UnitIdArgs { pms_unit: String });
args!(KeySetArgs { id: String, name: String, doors: Vec<String>, shareable: Option<bool>, auto_share: Option<bool> });
args!(IdArgs { id: String });
args!(KeyAssignArgs {
    resident_id: String,
    key: String
});
args!(DoorArgs { door: String, device: Option<String> });
args!(CardArgs {
    resident_id: String,
    card: CardSpec
});
args!(ResidentArgs {
    resident_id: String
});
args!(DeviceArgs { device: String });

/// Parse a request received on `topic` at `now`. `Ok(None)`: not a request topic of ours.
pub fn parse_request(
    topics: &Topics,
    topic: &str,
    payload: &[u8],
    flags: Flags,
    now: Timestamp,
) -> Result<Option<Request>, ApiError> {
    let Some((actor, command_name)) = topics.parse_request_topic(topic) else {
        return Ok(None);
    };
    parse_body(actor, command_name, payload, flags, now).map(Some)
}

fn parse_body(
    actor: &str,
    command_name: &str,
    payload: &[u8],
    flags: Flags,
    now: Timestamp,
) -> Result<Request, ApiError> {
    if flags.retain {
        return Err(ApiError::new(
            "retained_request",
            "requests must not be retained: a retained request would run again for every \
             new subscriber; publish it without the retain flag",
            json!({}),
        ));
    }
    if !COMMANDS.contains(&command_name) {
        return Err(ApiError::new(
            "unknown_command",
            format!("{command_name:?} is not a command"),
            json!({ "command": command_name, "commands": COMMANDS }),
        ));
    }
    let value: Value = serde_json::from_slice(payload).map_err(|e| {
        ApiError::new(
            "invalid_json",
            format!("the payload is not JSON: {e}"),
            json!({ "path": "$", "line": e.line(), "column": e.column() }),
        )
    })?;
    if !value.is_object() {
        return Err(ApiError::invalid("$", "the payload must be a JSON object"));
    }
    let env: Envelope = typed(value.clone())?;
    let transaction = match env.transaction {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) if valid_transaction(&t) => Some(t),
        Some(_) => {
            return Err(ApiError::invalid(
                "$.transaction",
                "transaction must be a string of 1-64 characters A-Z a-z 0-9 . _ : -",
            ))
        }
    };
    match env.expires_at {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => match chrono::DateTime::parse_from_rfc3339(&s) {
            Ok(t) if t < now => {
                return Err(ApiError::new(
                    "expired",
                    "the request expired before the gateway received it; nothing was done",
                    json!({ "path": "$.expires_at", "expires_at": s }),
                ))
            }
            Ok(_) => {}
            Err(_) => {
                return Err(ApiError::invalid(
                    "$.expires_at",
                    "expires_at must be an RFC 3339 time such as 2026-12-04T05:00:00Z",
                ))
            }
        },
        Some(_) => {
            return Err(ApiError::invalid(
                "$.expires_at",
                "expires_at must be an RFC 3339 time string",
            ))
        }
    }
    let command = command(command_name, value)?;
    if command.changes_state() && transaction.is_none() {
        return Err(ApiError::new(
            "missing_transaction",
            format!(
                "{command_name} changes state and needs a \"transaction\": a unique id of your \
                 choosing, so that a repeated request is answered, not applied twice"
            ),
            json!({ "path": "$.transaction" }),
        ));
    }
    Ok(Request {
        actor: actor.to_string(),
        command_name: command_name.to_string(),
        transaction,
        command,
    })
}

fn ids(v: Vec<SuggestionId>) -> Result<Vec<SuggestionId>, ApiError> {
    if v.is_empty() || v.len() > MAX_BATCH {
        let code = if v.is_empty() {
            "invalid_request"
        } else {
            "too_many_ids"
        };
        return Err(ApiError::new(
            code,
            format!(
                "name 1 to {MAX_BATCH} suggestion ids; this request named {}",
                v.len()
            ),
            json!({ "path": "$.ids", "max": MAX_BATCH, "got": v.len() }),
        ));
    }
    if let Some(i) = v.iter().position(|id| id.is_empty() || id.len() > 64) {
        return Err(ApiError::invalid(
            &format!("$.ids[{i}]"),
            "an id is 1-64 characters",
        ));
    }
    Ok(v)
}

fn non_empty(path: &str, v: String) -> Result<String, ApiError> {
    if v.trim().is_empty() || v.len() > 128 {
        Err(ApiError::invalid(
            path,
            "must be 1-128 characters, not blank",
        ))
    } else {
        Ok(v)
    }
}

fn command(name: &str, v: Value) -> Result<Command, ApiError> {
    Ok(match name {
        "suggestions/list" => {
            let a: ListArgs = typed(v)?;
            Command::SuggestionsList {
                page: Page::new(a.limit, a.after)?,
            }
        }
        "suggestions/approve" => Command::SuggestionsApprove {
            ids: ids(typed::<IdsArgs>(v)?.ids)?,
        },
        "suggestions/discard" => Command::SuggestionsDiscard {
            ids: ids(typed::<IdsArgs>(v)?.ids)?,
        },
        "mode/set" => Command::ModeSet {
            mode: typed::<ModeArgs>(v)?.mode,
        },
        "sync/now" => {
            let _a: NoArgs = typed(v)?;
            Command::SyncNow
        }
        "sync/plan" => {
            let _a: NoArgs = typed(v)?;
            Command::SyncPlan
        }
        "residents/list" => {
            let a: ResidentsArgs = typed(v)?;
            Command::ResidentsList {
                standing: a.standing,
                page: Page::new(a.limit, a.after)?,
            }
        }
        "residents/override" => {
            let a: OverrideArgs = typed(v)?;
            Command::ResidentsOverride {
                resident_id: non_empty("$.resident_id", a.resident_id)?,
                status: a.status,
            }
        }
        "units/list" => {
            let _a: NoArgs = typed(v)?;
            Command::UnitsList
        }
        "units/set" => {
            let a: UnitArgs = typed(v)?;
            if a.doors.is_empty() {
                return Err(ApiError::invalid("$.doors", "name at least one door"));
            }
            Command::UnitsSet {
                pms_unit: non_empty("$.pms_unit", a.pms_unit)?,
                doors: a.doors,
            }
        }
        "units/remove" => Command::UnitsRemove {
            pms_unit: non_empty("$.pms_unit", typed::<UnitIdArgs>(v)?.pms_unit)?,
        },
        "keys/list" => {
            let _a: NoArgs = typed(v)?;
            Command::KeysList
        }
        "keys/set" => {
            let a: KeySetArgs = typed(v)?;
            Command::KeysSet(crate::core::site::KeySet {
                id: non_empty("$.id", a.id)?,
                name: non_empty("$.name", a.name)?,
                doors: a.doors,
                shareable: a.shareable.unwrap_or(false),
                auto_share: a.auto_share.unwrap_or(false),
            })
        }
        "keys/remove" => Command::KeysRemove {
            id: non_empty("$.id", typed::<IdArgs>(v)?.id)?,
        },
        "keys/assign" | "keys/revoke" => {
            let a: KeyAssignArgs = typed(v)?;
            let (resident_id, key) = (
                non_empty("$.resident_id", a.resident_id)?,
                non_empty("$.key", a.key)?,
            );
            if name == "keys/assign" {
                Command::KeysAssign { resident_id, key }
            } else {
                Command::KeysRevoke { resident_id, key }
            }
        }
        "devices/list" => {
            let _a: NoArgs = typed(v)?;
            Command::DevicesList
        }
        "devices/set_door" => {
            let a: DoorArgs = typed(v)?;
            Command::DevicesSetDoor {
                door: non_empty("$.door", a.door)?,
                device: a.device.map(|d| non_empty("$.device", d)).transpose()?,
            }
        }
        "credentials/enroll_card" | "credentials/remove_card" => {
            let a: CardArgs = typed(v)?;
            let resident_id = non_empty("$.resident_id", a.resident_id)?;
            if name == "credentials/enroll_card" {
                Command::CredentialsEnrollCard {
                    resident_id,
                    card: a.card,
                }
            } else {
                Command::CredentialsRemoveCard {
                    resident_id,
                    card: a.card,
                }
            }
        }
        "credentials/reveal_pin" => Command::CredentialsRevealPin {
            resident_id: non_empty("$.resident_id", typed::<ResidentArgs>(v)?.resident_id)?,
        },
        "locks/pair" => Command::LocksPair {
            device: non_empty("$.device", typed::<DeviceArgs>(v)?.device)?,
        },
        other => {
            return Err(ApiError::new(
                "unknown_command",
                format!("{other:?} is not a command"),
                json!({ "command": other }),
            ))
        }
    })
}

/// A reply's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Partial,
    Error,
}

/// A reply, as published on `response/<actor>/<command>`.
#[derive(Clone, Debug, Serialize)]
pub struct Reply {
    pub status: Status,
    pub command: String,
    pub transaction: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
}

impl Reply {
    pub fn ok(command: &str, transaction: Option<String>, data: Value) -> Reply {
        Reply {
            status: Status::Ok,
            command: command.to_string(),
            transaction,
            data: Some(data),
            error: None,
        }
    }

    pub fn error(command: &str, transaction: Option<String>, error: ApiError) -> Reply {
        Reply {
            status: Status::Error,
            command: command.to_string(),
            transaction,
            data: None,
            error: Some(error),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a reply serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-12-04T05:00:00Z".parse().unwrap()
    }

    fn parse(command: &str, payload: &str) -> Result<Request, ApiError> {
        let t = Topics::new("leasegate", "site");
        parse_request(
            &t,
            &format!("leasegate/site/request/ann/{command}"),
            payload.as_bytes(),
            Flags::default(),
            now(),
        )
        .map(|r| r.expect("a request topic"))
    }

    #[test]
    fn an_approve_request_parses_into_ids() {
        let r = parse(
            "suggestions/approve",
            r#"{"transaction":"t1","ids":["s000001","s000002"]}"#,
        )
        .unwrap();
        assert_eq!(r.actor, "ann");
        assert_eq!(r.transaction.as_deref(), Some("t1"));
        assert!(matches!(r.command, Command::SuggestionsApprove { ref ids } if ids.len() == 2));
    }

    #[test]
    fn bad_requests_name_the_json_path_at_fault() {
        let e = parse(
            "suggestions/approve",
            r#"{"transaction":"t","ids":["a",7]}"#,
        )
        .unwrap_err();
        assert_eq!(
            (e.code, e.details["path"].as_str()),
            ("invalid_request", Some("$.ids[1]"))
        );
        let e = parse(
            "suggestions/approve",
            r#"{"transaction":"t","ids":["a"],"x":1}"#,
        )
        .unwrap_err();
        assert_eq!(e.details["path"], "$.x", "{e:?}");
        let e = parse("suggestions/approve", r#"{"transaction":"t"}"#).unwrap_err();
        assert_eq!(e.code, "invalid_request");
        assert!(e.message.contains("ids"), "{e:?}");
        let e = parse("mode/set", r#"{"transaction":"t","mode":"sometimes"}"#).unwrap_err();
        assert_eq!(e.details["path"], "$.mode");
    }

    #[test]
    fn each_refusal_has_its_own_code() {
        let many: Vec<String> = (0..51).map(|i| format!("\"s{i}\"")).collect();
        let body = format!(r#"{{"transaction":"t","ids":[{}]}}"#, many.join(","));
        assert_eq!(
            parse("suggestions/approve", &body).unwrap_err().code,
            "too_many_ids"
        );
        assert_eq!(
            parse("suggestions/approve", "{oops").unwrap_err().code,
            "invalid_json"
        );
        assert_eq!(
            parse("doors/open", "{}").unwrap_err().code,
            "unknown_command"
        );
        assert_eq!(
            parse("suggestions/approve", r#"{"ids":["a"]}"#)
                .unwrap_err()
                .code,
            "missing_transaction"
        );
        assert_eq!(
            parse(
                "sync/now",
                r#"{"transaction":"t","expires_at":"2026-12-04T04:59:59Z"}"#
            )
            .unwrap_err()
            .code,
            "expired"
        );
        let t = Topics::new("leasegate", "site");
        let e = parse_request(
            &t,
            "leasegate/site/request/ann/sync/now",
            br#"{"transaction":"t"}"#,
            Flags { retain: true },
            now(),
        )
        .unwrap_err();
        assert_eq!(e.code, "retained_request");
    }

    #[test]
    fn reads_need_no_transaction_but_writes_do() {
        assert!(parse("suggestions/list", "{}").is_ok());
        assert_eq!(
            parse("suggestions/list", r#"{"limit":0}"#)
                .unwrap_err()
                .details["path"],
            "$.limit"
        );
        assert!(parse("residents/list", r#"{"standing":"current"}"#).is_ok());
        assert_eq!(
            parse("sync/now", "{}").unwrap_err().code,
            "missing_transaction"
        );
    }

    #[test]
    fn topics_outside_the_request_tree_are_not_requests() {
        let t = Topics::new("leasegate", "site");
        assert_eq!(t.parse_request_topic("leasegate/site/status/sync"), None);
        assert_eq!(t.parse_request_topic("leasegate/other/request/a/b/c"), None);
        assert_eq!(
            t.parse_request_topic("leasegate/site/request/ann/mode/set"),
            Some(("ann", "mode/set"))
        );
    }

    #[test]
    fn a_card_never_shows_in_debug_output() {
        let r = parse(
            "credentials/enroll_card",
            r#"{"transaction":"t","resident_id":"r1","card":{"format":"h10301","facility":12,"number":34567}}"#,
        )
        .unwrap();
        assert!(!format!("{r:?}").contains("34567"));
    }
}
