//! The HTTPS transport every PMS adapter shares: rustls with the `ring` provider (no cmake
//! for the Pi cross-build), the system roots plus an optional CA file, timeouts, and a
//! User-Agent naming leasegate and its version.
//!
//! [`Http::send`] classifies every failure into a [`PmsError`] and never hands back a body
//! that is not JSON: a maintenance page served with 200 is an error, not an empty roster.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;

use super::PmsError;

pub const USER_AGENT: &str = concat!("leasegate/", env!("CARGO_PKG_VERSION"));

/// The largest answer read: a 1,000-row Buildium page is about 1.5 MB.
pub const MAX_BODY_BYTES: usize = 64 << 20;

/// A PMS's base URL and how to reach it.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpSettings {
    pub base_url: String,
    pub timeout: Duration,
    pub ca_file: Option<std::path::PathBuf>,
}

#[derive(Clone, Debug)]
pub struct Http {
    client: reqwest::Client,
    base: String,
}

/// A successful answer: status 2xx and a JSON body (not yet parsed), or `204 No Content`
/// with an empty body (what that means is the adapter's call).
#[derive(Debug)]
pub struct JsonResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: bytes::Bytes,
}

impl JsonResponse {
    /// An integer header (such as `X-Total-Count`); absent or unreadable is an error.
    pub fn count_header(&self, name: &str) -> Result<u64, PmsError> {
        let v = self
            .headers
            .get(name)
            .ok_or_else(|| PmsError::Malformed(format!("the {name} header is missing")))?;
        v.to_str()
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| PmsError::Malformed(format!("the {name} header is not a number")))
    }
}

fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, PmsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        // A system store may hold certificates rustls cannot use; skip those.
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_file {
        use rustls::pki_types::{pem::PemObject, CertificateDer};
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| {
                PmsError::Setup(format!("cannot read the CA file {}: {e}", path.display()))
            })?
            .collect::<Result<_, _>>()
            .map_err(|e| {
                PmsError::Setup(format!("the CA file {} is not PEM: {e}", path.display()))
            })?;
        if certs.is_empty() {
            return Err(PmsError::Setup(format!(
                "the CA file {} holds no certificate",
                path.display()
            )));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| {
                PmsError::Setup(format!("the CA file {} is unusable: {e}", path.display()))
            })?;
        }
    }
    if roots.is_empty() {
        return Err(PmsError::Setup(
            "no trusted CA: the system has none and no ca_file is configured".into(),
        ));
    }
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| PmsError::Setup(format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(cfg)
}

impl Http {
    pub fn new(settings: &HttpSettings) -> Result<Http, PmsError> {
        let tls = tls_config(settings.ca_file.as_deref())?;
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .https_only(true)
            .user_agent(USER_AGENT)
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| PmsError::Setup(format!("HTTP client setup failed: {e}")))?;
        Ok(Http {
            client,
            base: settings.base_url.trim_end_matches('/').to_string(),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path.trim_start_matches('/'))
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Send a request and insist on a 2xx JSON answer, read whole.
    pub async fn send(&self, req: reqwest::RequestBuilder) -> Result<JsonResponse, PmsError> {
        let mut resp = req.send().await.map_err(transport_error)?;
        let status = resp.status();
        let headers = resp.headers().clone();
        // Read with a ceiling: a runaway answer must not take the Pi's memory with it.
        let mut body = bytes::BytesMut::new();
        while let Some(chunk) = resp.chunk().await.map_err(transport_error)? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(PmsError::Malformed(format!(
                    "the PMS answer exceeds {} MiB",
                    MAX_BODY_BYTES >> 20
                )));
            }
            body.extend_from_slice(&chunk);
        }
        let body = body.freeze();
        if !status.is_success() {
            return Err(status_error(status, &headers));
        }
        if status == StatusCode::NO_CONTENT && body.is_empty() {
            return Ok(JsonResponse {
                status: status.as_u16(),
                headers,
                body,
            });
        }
        let content_type = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let looks_html = body
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|b| *b == b'<');
        if !content_type.contains("json") || looks_html {
            return Err(PmsError::NotJson {
                content_type: if content_type.is_empty() {
                    "none".into()
                } else {
                    content_type
                },
            });
        }
        Ok(JsonResponse {
            status: status.as_u16(),
            headers,
            body,
        })
    }
}

/// A 429 asking for a longer wait than this is not waited out inside a fetch: it goes back
/// to the daemon, whose backoff honours it.
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(30);
/// Requests per call, the first included, while the PMS answers 429.
pub const MAX_TRIES: u32 = 3;

impl Http {
    /// [`Http::send`], waiting out a 429 whose announced wait is short (at most
    /// [`MAX_RETRY_WAIT`], [`MAX_TRIES`] requests in all). `build` makes the request afresh
    /// for each try.
    pub async fn send_retrying(
        &self,
        pms: &'static str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<JsonResponse, PmsError> {
        let mut tries = 1;
        loop {
            match self.send(build()).await {
                Err(PmsError::RateLimited {
                    retry_after: Some(wait),
                }) if tries < MAX_TRIES && wait <= MAX_RETRY_WAIT => {
                    tracing::warn!(
                        pms,
                        wait_s = wait.as_secs(),
                        try_no = tries,
                        "rate-limited; waiting as asked"
                    );
                    tokio::time::sleep(wait).await;
                    tries += 1;
                }
                other => return other,
            }
        }
    }
}

fn transport_error(e: reqwest::Error) -> PmsError {
    if e.is_timeout() {
        return PmsError::Timeout;
    }
    // The chain names the cause (connection refused, certificate unknown, ...) and never
    // holds request headers, so no credential can leak through it.
    let e = e.without_url();
    let mut reason = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        reason.push_str(": ");
        reason.push_str(&s.to_string());
        source = s.source();
    }
    PmsError::Transport(reason)
}

/// Seconds from a `Retry-After` header (delta-seconds form; an HTTP date counts as absent).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

fn status_error(status: StatusCode, headers: &HeaderMap) -> PmsError {
    match status.as_u16() {
        429 => PmsError::RateLimited {
            retry_after: retry_after(headers).or_else(|| rate_limit_reset(headers)),
        },
        401 | 403 => PmsError::Unauthorized(status.as_u16()),
        code => PmsError::Status(code),
    }
}

/// Vendors that announce their limits send a reset time (`X-RateLimit-Reset` or
/// `RateLimit-Reset`): seconds to wait, a Unix time, or, as Entrata does, one value per
/// window (`14991;591;51` for day;hour;minute) beside `X-RateLimit-Remaining`
/// (`8639/day;359/hour;0/minute`). The wait is the reset of the window that is used up (or
/// the longest, if none says so); honoured when `Retry-After` is absent.
fn rate_limit_reset(headers: &HeaderMap) -> Option<Duration> {
    let get = |names: &[&str]| {
        names
            .iter()
            .filter_map(|h| headers.get(*h))
            .find_map(|v| v.to_str().ok().map(str::to_string))
    };
    let reset = get(&["x-ratelimit-reset", "ratelimit-reset"])?;
    let leading = |part: &str| -> Option<u64> {
        let digits: String = part
            .trim()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    let resets: Vec<Option<u64>> = reset.split(';').map(leading).collect();
    let remaining: Vec<Option<u64>> = get(&["x-ratelimit-remaining", "ratelimit-remaining"])
        .map(|r| r.split(';').map(leading).collect())
        .unwrap_or_default();
    let exhausted = resets
        .iter()
        .zip(remaining.iter().chain(std::iter::repeat(&None)))
        .filter(|(_, rem)| **rem == Some(0))
        .filter_map(|(r, _)| *r)
        .max();
    let secs = exhausted.or_else(|| resets.iter().flatten().copied().max())?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // A value past 2001-09-09 is a Unix time, not a delay.
    let wait = if secs >= 1_000_000_000 {
        secs.saturating_sub(now)
    } else {
        secs
    };
    Some(Duration::from_secs(wait))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn the_wait_is_the_reset_of_the_window_that_is_used_up() {
        let h = headers(&[
            ("x-ratelimit-reset", "14991;591;51"),
            ("x-ratelimit-remaining", "8639/day;359/hour;0/minute"),
        ]);
        assert_eq!(rate_limit_reset(&h), Some(Duration::from_secs(51)));
        let h = headers(&[
            ("x-ratelimit-reset", "14991;591;51"),
            ("x-ratelimit-remaining", "8639/day;0/hour;5/minute"),
        ]);
        assert_eq!(rate_limit_reset(&h), Some(Duration::from_secs(591)));
    }

    #[test]
    fn a_plain_delay_and_a_unix_time_are_both_understood() {
        assert_eq!(
            rate_limit_reset(&headers(&[("ratelimit-reset", "3")])),
            Some(Duration::from_secs(3))
        );
        let soon = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 40;
        let got = rate_limit_reset(&headers(&[("x-ratelimit-reset", &soon.to_string())])).unwrap();
        assert!(
            got <= Duration::from_secs(40) && got >= Duration::from_secs(38),
            "{got:?}"
        );
        assert_eq!(rate_limit_reset(&headers(&[])), None);
    }
}
