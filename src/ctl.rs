//! `leasegate ctl`: a command-line client of the MQTT API for installers and managers.
//!
//! It is an ordinary API client: it publishes a request as its user and waits for the
//! reply, so everything it does is audited under that name. Output is a readable table;
//! the exit status is 0 for ok, 2 for a partial result, 1 for an error reply and 69 when
//! the gateway cannot be reached.

use std::collections::BTreeMap;
use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::{Filter, Packet};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use serde_json::Value;

use crate::config::MqttUrl;

pub const EXIT_PARTIAL: u8 = 2;
pub const EXIT_UNAVAILABLE: u8 = 69;

#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error("cannot reach the broker at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("no answer from the gateway within {0:?}: is `leasegate run` up, and subscribed under this base topic and site?")]
    Timeout(Duration),
    #[error("{0}")]
    Usage(String),
}

impl CtlError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, CtlError::Connect { .. } | CtlError::Timeout(_))
    }
}

/// Where the API is and who is speaking.
#[derive(Clone, Debug)]
pub struct Target {
    pub url: MqttUrl,
    /// `<base_topic>/<site>`.
    pub root: String,
    pub username: Option<String>,
    pub password: Option<String>,
    /// The `<actor>` of request topics: the MQTT username when there is one.
    pub actor: String,
    pub timeout: Duration,
}

async fn connect(t: &Target, filters: Vec<String>) -> Result<(AsyncClient, Receiver), CtlError> {
    use rand::Rng;
    let id = format!("leasegate-ctl-{:08x}", rand::thread_rng().gen::<u32>());
    let mut o = MqttOptions::new(id, t.url.host.clone(), t.url.port);
    o.set_keep_alive(Duration::from_secs(30));
    let mut net = rumqttc::NetworkOptions::new();
    net.set_tcp_nodelay(true);
    o.set_network_options(net);
    o.set_max_packet_size(Some(crate::mqtt::client::MAX_PACKET));
    if let Some(u) = &t.username {
        o.set_credentials(u.clone(), t.password.clone().unwrap_or_default());
    }
    if t.url.tls {
        let roots = {
            let mut r = rustls::RootCertStore::empty();
            for c in rustls_native_certs::load_native_certs().certs {
                let _ = r.add(c);
            }
            r
        };
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        o.set_transport(rumqttc::Transport::Tls(rumqttc::TlsConfiguration::Rustls(
            std::sync::Arc::new(tls),
        )));
    }
    let (client, mut ev) = AsyncClient::new(o, 64);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let url = t.url.to_string();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Result<(), String>>();
    let sub = client.clone();
    tokio::spawn(async move {
        let mut ready = Some(ready_tx);
        loop {
            match ev.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let f = filters
                        .iter()
                        .map(|p| Filter::new(p.clone(), QoS::AtLeastOnce))
                        .collect::<Vec<_>>();
                    let _ = sub.try_subscribe_many(f);
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(r) = ready.take() {
                        let _ = r.send(Ok(()));
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let _ = tx.send((String::from_utf8_lossy(&p.topic).into_owned(), p.payload));
                }
                Ok(_) => {}
                Err(e) => {
                    if let Some(r) = ready.take() {
                        let _ = r.send(Err(e.to_string()));
                    }
                    return;
                }
            }
        }
    });
    match tokio::time::timeout(t.timeout, ready_rx).await {
        Ok(Ok(Ok(()))) => Ok((client, rx)),
        Ok(Ok(Err(reason))) => Err(CtlError::Connect { url, reason }),
        Ok(Err(_)) | Err(_) => Err(CtlError::Connect {
            url,
            reason: "no answer".into(),
        }),
    }
}

type Receiver = tokio::sync::mpsc::UnboundedReceiver<(String, bytes::Bytes)>;

/// Send one request and wait for its reply.
pub async fn request(t: &Target, command: &str, mut body: Value) -> Result<Value, CtlError> {
    use rand::Rng;
    let transaction = format!("ctl-{:016x}", rand::thread_rng().gen::<u64>());
    body["transaction"] = Value::String(transaction.clone());
    let reply_topic = format!("{}/response/{}/{command}", t.root, t.actor);
    let (client, mut rx) = connect(t, vec![reply_topic.clone()]).await?;
    client
        .publish(
            format!("{}/request/{}/{command}", t.root, t.actor),
            QoS::AtLeastOnce,
            false,
            body.to_string(),
        )
        .await
        .map_err(|e| CtlError::Connect {
            url: t.url.to_string(),
            reason: e.to_string(),
        })?;
    let wait = async {
        while let Some((topic, payload)) = rx.recv().await {
            if topic != reply_topic {
                continue;
            }
            let Ok(v) = serde_json::from_slice::<Value>(&payload) else {
                continue;
            };
            if v["transaction"] == Value::String(transaction.clone()) {
                return Some(v);
            }
        }
        None
    };
    let reply = tokio::time::timeout(t.timeout, wait)
        .await
        .ok()
        .flatten()
        .ok_or(CtlError::Timeout(t.timeout))?;
    let _ = client.disconnect().await;
    Ok(reply)
}

/// The retained status topics.
pub async fn status(t: &Target) -> Result<BTreeMap<String, Value>, CtlError> {
    let wanted = [
        "bridge/state",
        "bridge/info",
        "status/sync",
        "status/pending",
    ];
    let (client, mut rx) = connect(
        t,
        vec![
            format!("{}/bridge/+", t.root),
            format!("{}/status/+", t.root),
        ],
    )
    .await?;
    let mut got = BTreeMap::new();
    let collect = async {
        while let Some((topic, payload)) = rx.recv().await {
            if let Some(k) = topic.strip_prefix(&format!("{}/", t.root)) {
                if let Ok(v) = serde_json::from_slice::<Value>(&payload) {
                    got.insert(k.to_string(), v);
                }
            }
            if wanted.iter().all(|w| got.contains_key(*w)) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(t.timeout.min(Duration::from_secs(3)), collect).await;
    let _ = client.disconnect().await;
    if got.is_empty() {
        return Err(CtlError::Timeout(t.timeout.min(Duration::from_secs(3))));
    }
    Ok(got)
}

/// Exit status for a reply.
pub fn exit_code(reply: &Value) -> u8 {
    match reply["status"].as_str() {
        Some("ok") => 0,
        Some("partial") => EXIT_PARTIAL,
        _ => 1,
    }
}

fn paint(color: &str, text: &str, ansi: bool) -> String {
    if !ansi {
        return text.to_string();
    }
    let code = match color {
        "green" => "32",
        "red" => "31",
        _ => "90",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Rows as aligned columns (widths ignore ANSI codes).
fn table(header: &[&str], rows: &[Vec<(String, Option<String>)>], ansi: bool) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, (text, _)) in r.iter().enumerate() {
            widths[i] = widths[i].max(text.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<(String, Option<String>)>, out: &mut String| {
        let n = cells.len();
        for (i, (text, color)) in cells.into_iter().enumerate() {
            let pad = widths[i].saturating_sub(text.chars().count());
            let shown = match color {
                Some(c) => paint(&c, &text, ansi),
                None => text,
            };
            out.push_str(&shown);
            if i + 1 < n {
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push('\n');
    };
    line(
        header.iter().map(|h| (h.to_string(), None)).collect(),
        &mut out,
    );
    for r in rows {
        line(r.clone(), &mut out);
    }
    out
}

/// `suggestions list` as a table, each row in its suggestion colour.
pub fn suggestions_table(suggestions: &[Value], ansi: bool) -> String {
    if suggestions.is_empty() {
        return "no pending suggestions\n".into();
    }
    let rows: Vec<Vec<(String, Option<String>)>> = suggestions
        .iter()
        .map(|s| {
            let color = s["color"].as_str().unwrap_or("grey").to_string();
            let key = if s["key_name"].is_null() {
                cell(&s["key"])
            } else {
                cell(&s["key_name"])
            };
            vec![
                (cell(&s["id"]), None),
                (color.clone(), Some(color.clone())),
                (cell(&s["action"]), Some(color)),
                (cell(&s["resident_name"]), None),
                (cell(&s["unit"]), None),
                (key, None),
                (cell(&s["valid_from"]), None),
                (cell(&s["state"]), None),
                (cell(&s["reason"]), None),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "COLOR",
            "ACTION",
            "RESIDENT",
            "UNIT",
            "KEY",
            "VALID FROM",
            "STATE",
            "REASON",
        ],
        &rows,
        ansi,
    )
}

/// Per-id results of an approve or discard.
pub fn results_table(reply: &Value) -> String {
    let rows: Vec<Vec<(String, Option<String>)>> = reply["data"]["results"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|r| {
            let mut detail = String::new();
            if let Some(s) = r["state"].as_str() {
                detail = format!("(was {s})");
            }
            if let Some(a) = r["after"].as_str() {
                detail = format!("(waits for {a})");
            }
            vec![
                (cell(&r["id"]), None),
                (cell(&r["result"]), None),
                (detail, None),
            ]
        })
        .collect();
    table(&["ID", "RESULT", ""], &rows, false)
}

/// A reply's error in one readable paragraph.
pub fn error_text(reply: &Value) -> String {
    let e = &reply["error"];
    let mut s = format!(
        "error {}: {}",
        e["code"].as_str().unwrap_or("?"),
        e["message"].as_str().unwrap_or("")
    );
    if let Some(p) = e["details"]["path"].as_str() {
        s.push_str(&format!(" (at {p})"));
    }
    s
}

/// `status` as lines.
pub fn status_text(st: &BTreeMap<String, Value>) -> String {
    let g = |k: &str, f: &str| st.get(k).map(|v| cell(&v[f])).unwrap_or_else(|| "?".into());
    let mut out = String::new();
    out.push_str(&format!("gateway:   {}\n", g("bridge/state", "state")));
    out.push_str(&format!(
        "version:   {} (API {})\n",
        g("bridge/info", "version"),
        g("bridge/info", "api_version")
    ));
    out.push_str(&format!("mode:      {}\n", g("bridge/info", "mode")));
    out.push_str(&format!(
        "pending:   {} (oldest {})\n",
        g("status/pending", "count"),
        g("status/pending", "oldest")
    ));
    let ok = st.get("status/sync").and_then(|v| v["ok"].as_bool());
    out.push_str(&format!(
        "last sync: {} ({}){}\n",
        g("status/sync", "last_sync"),
        match ok {
            Some(true) => "ok",
            Some(false) => "failing",
            None => "?",
        },
        st.get("status/sync")
            .and_then(|v| v["error"].as_str())
            .map(|e| format!(": {e}"))
            .unwrap_or_default()
    ));
    out.push_str(&format!("residents: {}\n", g("status/sync", "residents")));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_suggestion_table_aligns_columns_and_colours_only_on_a_terminal() {
        let s = vec![
            json!({"id":"s000001","color":"green","action":"grant","resident_name":"Ana Diaz","unit":"4B","key":"unit:4B","key_name":"Unit 4B","valid_from":"2026-12-04T05:00:00Z","state":"pending","reason":"lease current"}),
            json!({"id":"s000002","color":"red","action":"revoke","resident_name":"Dev","unit":null,"key":"garage","key_name":null,"valid_from":null,"state":"held","reason":"lease past"}),
        ];
        let plain = suggestions_table(&s, false);
        assert!(!plain.contains('\x1b'));
        let lines: Vec<&str> = plain.lines().collect();
        assert_eq!(lines.len(), 3);
        let col = |l: &str| {
            l.find("grant")
                .or_else(|| l.find("revoke"))
                .or_else(|| l.find("ACTION"))
        };
        assert_eq!(col(lines[0]), col(lines[1]));
        assert_eq!(col(lines[1]), col(lines[2]));
        let coloured = suggestions_table(&s, true);
        assert!(coloured.contains("\x1b[32mgreen\x1b[0m"));
        assert!(coloured.contains("\x1b[31mrevoke\x1b[0m"));
    }

    #[test]
    fn exit_codes_follow_the_reply_status() {
        assert_eq!(exit_code(&json!({"status":"ok"})), 0);
        assert_eq!(exit_code(&json!({"status":"partial"})), EXIT_PARTIAL);
        assert_eq!(exit_code(&json!({"status":"error"})), 1);
    }
}
