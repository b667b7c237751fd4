//! The reference panel simulator: an OSDP PD that implements the leasegate credential
//! profile, on a serial port or pty (`leasegate panel-sim --tty …`). For demos, tests and the
//! bulk-load benchmark. Records live in memory: restarting it is a panel reset (drift).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use leasegate_osdp::codec::{decode, DecodeError, SOM};
use leasegate_osdp::message::{cap, Capability, NakReason, PdId, Reply, VendorCode};
use leasegate_osdp::pd::{Pd, PdApp, PdSettings};
use leasegate_osdp::profile::PanelDb;
use leasegate_osdp::Key;
use rand::rngs::OsRng;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

#[derive(Clone, Debug)]
pub struct SimSettings {
    pub address: u8,
    pub vendor: u32,
    /// Receive buffer advertised in PDCAP (bytes).
    pub buffer: u16,
    pub capacity: usize,
    /// Where the panel's SCBK is kept (hex). Absent file: install mode (SCBK-D).
    pub key_file: Option<PathBuf>,
}

impl Default for SimSettings {
    fn default() -> Self {
        SimSettings {
            address: 1,
            vendor: crate::config::osdp::DEFAULT_VENDOR_CODE,
            buffer: 1024,
            capacity: 10_000,
            key_file: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("key file {path}: {detail}")]
    KeyFile { path: PathBuf, detail: String },
    #[error("port: {0}")]
    Io(#[from] std::io::Error),
}

impl SimError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, SimError::Io(_))
    }
}

/// The simulator's credential store, shared so tests can read it back.
pub type SharedDb = Arc<Mutex<PanelDb>>;

struct App {
    vendor: VendorCode,
    db: SharedDb,
    max_reply: usize,
    key_file: Option<PathBuf>,
}

impl PdApp for App {
    fn mfg(&mut self, vendor: VendorCode, data: &[u8]) -> Reply {
        if vendor != self.vendor {
            return Reply::Nak {
                reason: NakReason::UnknownCommand,
                detail: vec![],
            };
        }
        match self.db.lock().expect("sim db").handle(data, self.max_reply) {
            Some(resp) => Reply::MfgReply { vendor, data: resp },
            None => Reply::Nak {
                reason: NakReason::Unprocessable,
                detail: vec![],
            },
        }
    }

    fn keyset(&mut self, key: &Key) {
        if let Some(path) = &self.key_file {
            let text: String = key.expose().iter().map(|b| format!("{b:02x}")).collect();
            if let Err(e) = write_private(path, text.as_bytes()) {
                tracing::error!(path = %path.display(), error = %e, "cannot store the new panel key");
            }
        }
    }
}

fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("new");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(tmp, path)
}

fn read_key(path: &std::path::Path) -> Result<Option<Key>, SimError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(SimError::KeyFile {
                path: path.into(),
                detail: e.to_string(),
            })
        }
    };
    let bytes = super::sync::unhex(text.trim()).filter(|b| b.len() == 16);
    let bytes = bytes.ok_or_else(|| SimError::KeyFile {
        path: path.into(),
        detail: "must hold 32 hex digits".into(),
    })?;
    Ok(Some(Key::new(bytes.try_into().expect("16 bytes"))))
}

fn make_pd(s: SimSettings, db: SharedDb) -> Result<Pd<App>, SimError> {
    let scbk = match &s.key_file {
        Some(p) => read_key(p)?,
        None => None,
    };
    let install_mode = scbk.is_none();
    let caps = vec![
        Capability {
            function: cap::CHECK_CHARACTER,
            compliance: 1,
            number: 0,
        },
        Capability {
            function: cap::COMMUNICATION_SECURITY,
            compliance: 1,
            number: 1,
        },
        Capability {
            function: cap::RECEIVE_BUFFER,
            compliance: (s.buffer & 0xff) as u8,
            number: (s.buffer >> 8) as u8,
        },
        Capability {
            function: cap::LARGEST_MESSAGE,
            compliance: (s.buffer & 0xff) as u8,
            number: (s.buffer >> 8) as u8,
        },
        Capability {
            function: cap::OSDP_VERSION,
            compliance: 2,
            number: 0,
        },
    ];
    let id = PdId {
        vendor: VendorCode(s.vendor),
        model: 1,
        version: 1,
        serial: 0x4c47_0000 | u32::from(s.address),
        firmware: [0, 1, 0],
    };
    let settings = PdSettings {
        address: s.address,
        id,
        caps,
        scbk,
        install_mode,
        enforce_secure: true,
    };
    let app = App {
        vendor: VendorCode(s.vendor),
        db,
        max_reply: usize::from(s.buffer).saturating_sub(34),
        key_file: s.key_file.clone(),
    };
    Ok(Pd::new(settings, app))
}

/// Serve OSDP on `io` until `cancel` or end of stream.
pub async fn run<T: AsyncRead + AsyncWrite + Unpin>(
    io: T,
    s: SimSettings,
    db: SharedDb,
    cancel: CancellationToken,
) -> Result<(), SimError> {
    run_many(io, vec![(s, db)], cancel).await
}

/// Several simulated panels on one multi-drop bus: each answers only its own address.
pub async fn run_many<T: AsyncRead + AsyncWrite + Unpin>(
    mut io: T,
    panels: Vec<(SimSettings, SharedDb)>,
    cancel: CancellationToken,
) -> Result<(), SimError> {
    let mut pds = Vec::new();
    for (s, db) in panels {
        pds.push(make_pd(s, db)?);
    }
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 1024];
    loop {
        let n = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            r = io.read(&mut chunk) => r?,
        };
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        loop {
            match decode(&buf) {
                Ok((frame, used)) => {
                    buf.drain(..used);
                    for pd in &mut pds {
                        if let Some(reply) = pd.handle(&frame, &mut OsRng) {
                            io.write_all(&reply).await?;
                            io.flush().await?;
                        }
                    }
                }
                Err(DecodeError::Incomplete) => match later_frame(&buf) {
                    Some(at) => {
                        tracing::debug!(bytes = at, "dropped a partial frame: a whole one follows");
                        buf.drain(..at);
                    }
                    None => break,
                },
                Err(_) => {
                    buf.drain(..1);
                }
            }
        }
    }
}

/// Where a complete, valid frame starts after the partial one at the head of `buf`.
///
/// A bit error in a command's LEN field makes it look longer than it is, up to `MAX_FRAME`;
/// waiting for that many bytes swallows the CP's next commands, and an offline panel is
/// probed with one 10-byte osdp_ID a second, so the panel stayed silent for minutes after
/// the noise stopped. A whole frame (its CRC checked) behind the partial one shows that the
/// partial one is dead. No timer: a genuine frame may arrive in bursts (a paced relay).
fn later_frame(buf: &[u8]) -> Option<usize> {
    (1..buf.len()).find(|&i| buf[i] == SOM && decode(&buf[i..]).is_ok())
}
