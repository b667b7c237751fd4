//! `leasegate ctl` against a running gateway on a real broker.

#[path = "support/mqtt.rs"]
mod mqtt;

use std::process::Output;

use mqtt::{resident, Probe, TestGateway};

async fn ctl(gw: &TestGateway, args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_leasegate"));
    cmd.args([
        "ctl",
        "--url",
        &format!("mqtt://{}:{}", gw.host, gw.port),
        "--site",
        &gw.site,
        "--base-topic",
        &gw.base,
        "--as",
        "manager-ann",
        "--timeout",
        "10",
    ])
    .args(args)
    .env("NO_COLOR", "1");
    cmd.output().await.unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_lists_approves_and_reports_errors_with_its_exit_status() {
    let residents = vec![
        resident("t-100", "Ana Diaz", "4B", "current"),
        resident("t-103", "Dev Patel", "2A", "past"),
    ];
    let mut gw = TestGateway::start(&residents, "approval_required").await;
    let (host, port) = mqtt::broker();
    let mut probe =
        Probe::connect(&host, port, None, &format!("{}/status/pending", gw.root())).await;
    probe
        .wait_for("pending suggestions", |s| s.json()["count"] == 4)
        .await;

    let list = ctl(&gw, &["suggestions", "list"]).await;
    assert!(list.status.success(), "{}", text(&list));
    let out = String::from_utf8_lossy(&list.stdout).into_owned();
    let header = out.lines().next().unwrap();
    assert!(header.starts_with("ID") && header.contains("COLOR") && header.contains("RESIDENT"));
    assert!(
        out.contains("Ana Diaz") && out.contains("green") && out.contains("grey"),
        "{out}"
    );
    let ana_unit = out
        .lines()
        .find(|l| l.contains("Ana Diaz") && l.contains("Unit 4B"))
        .expect("Ana's unit key row")
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();

    let ok = ctl(&gw, &["suggestions", "approve", &ana_unit]).await;
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(text(&ok).contains("applied"));
    let again = ctl(&gw, &["suggestions", "approve", &ana_unit]).await;
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    assert!(text(&again).contains("already_decided"), "{}", text(&again));
    let partial = ctl(&gw, &["suggestions", "discard", &ana_unit, "s999999"]).await;
    assert_eq!(
        partial.status.code(),
        Some(1),
        "none discarded: {}",
        text(&partial)
    );

    let mode = ctl(&gw, &["mode", "automatic"]).await;
    assert!(mode.status.success(), "{}", text(&mode));
    let status = ctl(&gw, &["status"]).await;
    assert!(status.status.success(), "{}", text(&status));
    let s = text(&status);
    assert!(
        s.contains("gateway:   online") && s.contains("mode:      automatic"),
        "{s}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_says_so_when_no_gateway_answers() {
    let gw = TestGateway {
        dir: tempfile::tempdir().unwrap(),
        base: mqtt::unique("nobody"),
        site: "x".into(),
        shutdown: Default::default(),
        handle: None,
        host: mqtt::broker().0,
        port: mqtt::broker().1,
    };
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_leasegate"));
    let out = cmd
        .args([
            "ctl",
            "--url",
            &format!("mqtt://{}:{}", gw.host, gw.port),
            "--site",
            "x",
            "--base-topic",
            &gw.base,
            "--timeout",
            "1",
            "suggestions",
            "list",
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(69), "{}", text(&out));
    assert!(
        text(&out).contains("no answer from the gateway"),
        "{}",
        text(&out)
    );
}
