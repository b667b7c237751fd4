//! The shared HTTPS transport against a real rustls server: every failure is a typed error,
//! and only a 2xx JSON answer gets through.

#[path = "support/https.rs"]
mod https;

use std::time::Duration;

use https::{Reply, TestServer};
use leasegate::pms::http::{Http, HttpSettings, USER_AGENT};
use leasegate::pms::PmsError;

fn client(server: &TestServer, timeout: Duration) -> Http {
    Http::new(&HttpSettings {
        base_url: server.base_url(),
        timeout,
        ca_file: Some(server.ca_file.clone()),
    })
    .unwrap()
}

async fn get(
    server: &TestServer,
    timeout: Duration,
) -> Result<leasegate::pms::http::JsonResponse, PmsError> {
    let http = client(server, timeout);
    http.send(http.client().get(http.url("/v1/leases"))).await
}

#[tokio::test]
async fn a_json_answer_over_https_from_the_configured_ca_gets_through() {
    let server = https::start(|_| Reply::json(200, "[]").header("X-Total-Count", 0)).await;
    let r = get(&server, Duration::from_secs(5)).await.unwrap();
    assert_eq!(&r.body[..], b"[]");
    assert_eq!(r.count_header("x-total-count").unwrap(), 0);
    let seen = server.requests();
    assert_eq!(seen[0].header("user-agent"), Some(USER_AGENT));
    assert!(USER_AGENT.starts_with("leasegate/"));
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused() {
    let server = https::start_untrusted(|_| Reply::json(200, "[]")).await;
    match get(&server, Duration::from_secs(5)).await {
        Err(PmsError::Transport(reason)) => {
            assert!(reason.to_lowercase().contains("certificate"), "{reason}")
        }
        other => panic!("expected a certificate error, got {other:?}"),
    }
}

#[tokio::test]
async fn an_html_page_with_200_is_an_error_not_an_empty_roster() {
    let server =
        https::start(|_| Reply::html(200, "<html><body>Down for maintenance</body></html>")).await;
    assert!(matches!(
        get(&server, Duration::from_secs(5)).await,
        Err(PmsError::NotJson { .. })
    ));
    // HTML labelled as JSON is still HTML.
    let server = https::start(|_| Reply::json(200, "\n <!DOCTYPE html><html></html>")).await;
    assert!(matches!(
        get(&server, Duration::from_secs(5)).await,
        Err(PmsError::NotJson { .. })
    ));
}

#[tokio::test]
async fn rate_limits_server_errors_and_refusals_are_typed() {
    let server = https::start(|_| Reply::json(429, "{}").header("Retry-After", 7)).await;
    match get(&server, Duration::from_secs(5)).await {
        Err(e @ PmsError::RateLimited { .. }) => {
            assert_eq!(e.retry_after(), Some(Duration::from_secs(7)))
        }
        other => panic!("{other:?}"),
    }
    let server = https::start(|_| Reply::json(429, "{}").header("X-RateLimit-Reset", 3)).await;
    let e = get(&server, Duration::from_secs(5)).await.unwrap_err();
    assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
    let server = https::start(|_| Reply::json(500, "{}")).await;
    assert!(matches!(
        get(&server, Duration::from_secs(5)).await,
        Err(PmsError::Status(500))
    ));
    let server = https::start(|_| Reply::json(401, "{}")).await;
    let e = get(&server, Duration::from_secs(5)).await.unwrap_err();
    assert!(matches!(e, PmsError::Unauthorized(401)));
    assert!(!e.is_retryable());
}

#[tokio::test]
async fn a_slow_server_past_the_timeout_is_a_timeout() {
    let server = https::start(|_| Reply {
        delay: Duration::from_secs(3),
        ..Reply::json(200, "[]")
    })
    .await;
    assert!(matches!(
        get(&server, Duration::from_secs(1)).await,
        Err(PmsError::Timeout)
    ));
}

#[tokio::test]
async fn a_body_cut_short_of_its_content_length_is_an_error() {
    let server = https::start(|_| Reply {
        truncate_to: Some(5),
        ..Reply::json(200, r#"[{"Id":1},{"Id":2}]"#)
    })
    .await;
    assert!(matches!(
        get(&server, Duration::from_secs(5)).await,
        Err(PmsError::Transport(_))
    ));
}

#[test]
fn a_ca_file_that_is_not_pem_is_a_setup_error() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "not a certificate").unwrap();
    let e = Http::new(&HttpSettings {
        base_url: "https://pms.example.test".into(),
        timeout: Duration::from_secs(5),
        ca_file: Some(ca),
    })
    .unwrap_err();
    assert!(matches!(e, PmsError::Setup(_)), "{e}");
}
