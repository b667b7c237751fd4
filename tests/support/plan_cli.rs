//! Run `leasegate plan` from an async test and read its suggestions.
#![allow(dead_code)]

use std::path::PathBuf;

use serde_json::Value;

/// `leasegate plan --config <config>`, off the async runtime so a test server keeps serving.
pub async fn plan(config: PathBuf) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_leasegate"))
            .args(["plan", "--config"])
            .arg(&config)
            .env_remove("CREDENTIALS_DIRECTORY")
            .env_remove("LEASEGATE_LOG")
            .env_remove("LEASEGATE_LOG_FORMAT")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

/// Each suggestion as `(id, resident_id, unit, key, action)`.
pub fn suggestions(stdout: &[u8]) -> Vec<(String, String, String, String, String)> {
    let report: Value = serde_json::from_slice(stdout).expect("plan prints JSON");
    report["suggestions"]
        .as_array()
        .expect("a suggestions list")
        .iter()
        .map(|s| {
            let text = |k: &str| s[k].as_str().unwrap_or_default().to_string();
            (
                text("id"),
                text("resident_id"),
                text("unit"),
                s["key"].to_string(),
                text("action"),
            )
        })
        .collect()
}
