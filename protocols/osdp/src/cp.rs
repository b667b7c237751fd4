//! The control panel's side of one PD link, as a state machine. It never does I/O and never
//! reads the clock: the driver asks it what to send ([`PdLink::poll_transmit`]), hands it
//! the frames addressed to this PD ([`PdLink::handle_reply`]) or tells it that the reply
//! deadline passed ([`PdLink::handle_timeout`]), and acts on the [`Event`]s it returns.
//!
//! Recovery rule: any lost, corrupted, out-of-sequence or unauthenticated reply makes the
//! link start over: sequence number 0, osdp_ID, osdp_CAP and (when secure) a new session,
//! then the command that failed is sent again. OSDP commands we queue are idempotent (the
//! credential profile is versioned; KEYSET of the same key twice is harmless), so sending
//! one again is always safe, and a MAC chain that may have diverged is never reused.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rand_core::CryptoRngCore;

use crate::codec::{Frame, Scb};
use crate::message::{receive_buffer, Capability, Command, NakReason, PdId, Reply};
use crate::secure::{scs, Channel, Key, ScError, SessionKeys};

#[derive(Debug, Clone)]
pub struct LinkSettings {
    pub address: u8,
    /// Refuse to go online without a secure channel (leasegate's default).
    pub require_secure: bool,
    /// Keys the PD may hold, most likely first (current, then a pending rotation target).
    pub keys: Vec<Key>,
    /// Allow SCBK-D: only while an installer's commissioning window is open.
    pub install_mode: bool,
    /// How long to wait for a reply (OSDP: 200 ms).
    pub reply_timeout: Duration,
    /// Consecutive failures before the PD is declared offline.
    pub max_failures: u32,
    /// How often an offline PD is probed.
    pub offline_retry: Duration,
    /// Wait before resending a command a PD answered with osdp_BUSY.
    pub busy_retry: Duration,
}

impl LinkSettings {
    pub fn new(address: u8) -> Self {
        LinkSettings {
            address,
            require_secure: true,
            keys: Vec::new(),
            install_mode: false,
            reply_timeout: Duration::from_millis(200),
            max_failures: 3,
            offline_retry: Duration::from_secs(1),
            busy_retry: Duration::from_millis(50),
        }
    }
}

/// Which key the current session was opened with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUse {
    Plain,
    /// SCBK-D, the install-mode key.
    InstallKey,
    /// `settings.keys[n]`.
    Key(usize),
}

/// Why a PD went (or stays) offline.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("no valid reply after {0} attempts")]
    NoReply(u32),
    #[error("the PD does not hold any key we have, and install mode is closed")]
    KeyMismatch,
    #[error("the PD refused the secure channel (NAK {0:?})")]
    ScRefused(NakReason),
    #[error("secure channel: {0}")]
    Secure(#[from] ScError),
}

impl LinkError {
    /// Whether trying again later can help without a person doing something.
    pub fn is_retryable(&self) -> bool {
        matches!(self, LinkError::NoReply(_) | LinkError::Secure(_))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A session was (re)established: the PD can take commands. Comes after every
    /// reconnection, with the key it used, so the driver can finish a key rotation.
    Online {
        id: PdId,
        caps: Vec<Capability>,
        key: KeyUse,
    },
    Offline(LinkError),
    /// The queued command `tag` was accepted (ACK, or an inline MFGREP which also comes as
    /// [`Event::MfgReply`]), or answered with some other reply.
    Done {
        tag: u64,
        reply: Reply,
    },
    /// The PD refused the queued command `tag`; it is dropped from the queue.
    Nak {
        tag: u64,
        reason: NakReason,
    },
    /// An osdp_MFGREP, inline or on a POLL; correlate by its payload.
    MfgReply(Reply),
    /// A reply the link did not expect (kept for logging; no state change).
    Unsolicited(Reply),
}

#[derive(Debug, Clone)]
enum Sent {
    Id,
    Cap,
    Challenge { rnd_a: [u8; 8], install: bool },
    Scrypt,
    Poll,
    Queued,
}

#[derive(Debug, Clone)]
struct Outstanding {
    sent: Sent,
    sqn: u8,
    deadline: Instant,
    bytes: Vec<u8>,
    resent: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Id,
    Cap,
    Challenge { install: bool },
    Scrypt,
    Ready,
}

/// One PD as the CP sees it.
#[derive(Debug)]
pub struct PdLink {
    settings: LinkSettings,
    phase: Phase,
    sqn: u8,
    outstanding: Option<Outstanding>,
    /// The last command, to be sent again unchanged (same SQN, same MAC) after one lost or
    /// corrupted reply: a PD that got it replays its reply, one that did not processes it.
    retry: Option<Outstanding>,
    channel: Option<Channel>,
    /// A session being set up: keys and randoms between CCRYPT and RMAC_I.
    pending: Option<(SessionKeys, KeyUse, [u8; 16])>,
    id: Option<PdId>,
    caps: Vec<Capability>,
    key_use: KeyUse,
    queue: VecDeque<(u64, Command)>,
    failures: u32,
    online: bool,
    not_before: Option<Instant>,
}

impl PdLink {
    pub fn new(settings: LinkSettings) -> Self {
        PdLink {
            settings,
            phase: Phase::Id,
            sqn: 0,
            outstanding: None,
            retry: None,
            channel: None,
            pending: None,
            id: None,
            caps: Vec::new(),
            key_use: KeyUse::Plain,
            queue: VecDeque::new(),
            failures: 0,
            online: false,
            not_before: None,
        }
    }

    pub fn address(&self) -> u8 {
        self.settings.address
    }
    pub fn is_online(&self) -> bool {
        self.online
    }
    pub fn key_use(&self) -> KeyUse {
        self.key_use
    }
    pub fn pd_id(&self) -> Option<&PdId> {
        self.id.as_ref()
    }
    /// The PD's advertised receive buffer, if it told us.
    pub fn receive_buffer(&self) -> Option<usize> {
        receive_buffer(&self.caps)
    }
    pub fn queued(&self) -> usize {
        self.queue.len()
    }
    pub fn reply_deadline(&self) -> Option<Instant> {
        self.outstanding.as_ref().map(|o| o.deadline)
    }
    pub fn is_waiting(&self) -> bool {
        self.outstanding.is_some()
    }

    /// Queue a command; commands go out in order, one at a time, once the link is ready.
    pub fn enqueue(&mut self, tag: u64, cmd: Command) {
        self.queue.push_back((tag, cmd));
    }

    /// Drop queued commands not yet sent (the in-flight one, if any, still completes).
    pub fn clear_queue(&mut self) -> Vec<u64> {
        let keep = usize::from(matches!(
            self.outstanding,
            Some(Outstanding {
                sent: Sent::Queued,
                ..
            })
        ));
        self.queue.drain(keep..).map(|(t, _)| t).collect()
    }

    /// Replace the candidate keys and the install-mode permission. The current session goes
    /// on; call [`PdLink::restart`] to open a new one with the new keys.
    pub fn set_keys(&mut self, keys: Vec<Key>, install_mode: bool) {
        self.settings.keys = keys;
        self.settings.install_mode = install_mode;
    }

    /// A session is open and the link takes queued commands.
    pub fn is_ready(&self) -> bool {
        self.phase == Phase::Ready
    }

    /// Ready, nothing queued and nothing to resend: the next transmission would be a POLL.
    pub fn is_idle(&self) -> bool {
        self.is_ready()
            && self.queue.is_empty()
            && self.retry.is_none()
            && self.outstanding.is_none()
    }

    /// Forget the session and begin again at sequence number 0.
    pub fn restart(&mut self) {
        self.phase = Phase::Id;
        self.sqn = 0;
        self.channel = None;
        self.pending = None;
        self.outstanding = None;
        self.retry = None;
    }

    /// Bytes to write now (mark byte included), or None when nothing is due (waiting for a
    /// reply, or an offline PD whose next probe is later).
    pub fn poll_transmit(&mut self, now: Instant, rng: &mut impl CryptoRngCore) -> Option<Vec<u8>> {
        if self.outstanding.is_some() || self.not_before.is_some_and(|t| now < t) {
            return None;
        }
        self.not_before = None;
        if let Some(mut again) = self.retry.take() {
            again.deadline = now + self.settings.reply_timeout;
            let bytes = again.bytes.clone();
            self.outstanding = Some(again);
            return Some(bytes);
        }
        let (sent, cmd) = match self.phase {
            Phase::Id => (Sent::Id, Command::Id),
            Phase::Cap => (Sent::Cap, Command::Cap),
            Phase::Challenge { install } => {
                let mut rnd_a = [0u8; 8];
                rng.fill_bytes(&mut rnd_a);
                (
                    Sent::Challenge { rnd_a, install },
                    Command::Challenge { rnd_a },
                )
            }
            Phase::Scrypt => {
                let (_, key_use, server) = self.pending.as_ref()?;
                let mut f = Frame::new(
                    self.settings.address,
                    false,
                    self.sqn,
                    Command::ServerCryptogram(*server).code(),
                    server.to_vec(),
                );
                f.scb = Some(Scb::new(
                    scs::SCRYPT,
                    &[u8::from(*key_use != KeyUse::InstallKey)],
                ));
                return Some(self.send(f, Sent::Scrypt, now));
            }
            Phase::Ready => match self.queue.front() {
                Some((_, cmd)) => (Sent::Queued, cmd.clone()),
                None => (Sent::Poll, Command::Poll),
            },
        };
        let mut frame = Frame::new(
            self.settings.address,
            false,
            self.sqn,
            cmd.code(),
            cmd.data(),
        );
        if let Sent::Challenge { install, .. } = sent {
            frame.scb = Some(Scb::new(scs::CHLNG, &[u8::from(!install)]));
        } else if let Some(ch) = self.channel.as_mut() {
            ch.seal_command(&mut frame);
        }
        Some(self.send(frame, sent, now))
    }

    fn send(&mut self, frame: Frame, sent: Sent, now: Instant) -> Vec<u8> {
        let bytes = frame.encode_with_mark();
        self.outstanding = Some(Outstanding {
            sent,
            sqn: frame.sqn,
            deadline: now + self.settings.reply_timeout,
            bytes: bytes.clone(),
            resent: false,
        });
        bytes
    }

    fn advance_sqn(&mut self) {
        self.sqn = self.sqn % 3 + 1;
    }

    /// The reply deadline passed without a valid reply (the driver also calls this for a
    /// corrupted reply, so that both take the same recovery path).
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Event> {
        let Some(out) = self.outstanding.take() else {
            return Vec::new();
        };
        self.fail_with(LinkError::NoReply(self.failures + 1), now, Some(out))
    }

    fn fail(&mut self, err: LinkError, now: Instant) -> Vec<Event> {
        self.fail_with(err, now, None)
    }

    /// A failed exchange. The first failure of a command sends it again unchanged; a second
    /// one (or any failure that is not a transmission error) starts the session over.
    fn fail_with(&mut self, err: LinkError, now: Instant, out: Option<Outstanding>) -> Vec<Event> {
        self.failures += 1;
        match out {
            Some(mut out) if err.is_retryable() && !out.resent => {
                out.resent = true;
                self.outstanding = None;
                self.retry = Some(out);
            }
            _ => self.restart(),
        }
        let mut ev = Vec::new();
        let fatal = !err.is_retryable();
        if fatal || self.failures >= self.settings.max_failures {
            self.not_before = Some(now + self.settings.offline_retry);
            self.restart();
            if self.online || fatal || self.failures == self.settings.max_failures {
                ev.push(Event::Offline(match err {
                    LinkError::NoReply(_) => LinkError::NoReply(self.failures),
                    e => e,
                }));
            }
            self.online = false;
        }
        ev
    }

    /// A decoded frame from the bus. Frames for other addresses or that are not replies are
    /// ignored (empty result, still waiting).
    pub fn handle_reply(&mut self, frame: &Frame, now: Instant) -> Vec<Event> {
        if !frame.reply || frame.address != self.settings.address {
            return Vec::new();
        }
        let Some(out) = self.outstanding.take() else {
            return vec![];
        };
        if frame.sqn != out.sqn {
            return self.fail_with(LinkError::NoReply(self.failures + 1), now, Some(out));
        }
        // Authenticate and decrypt.
        let data = match (self.channel.as_mut(), &frame.scb) {
            (Some(ch), Some(_)) => match ch.open_reply(frame) {
                Ok(d) => d,
                Err(e) => return self.fail_with(e.into(), now, Some(out)),
            },
            // A PD that lost the session answers in the clear; only a NAK is believed.
            (Some(_), None) if frame.code == crate::message::code::NAK => frame.data.clone(),
            (Some(_), None) => return self.fail(ScError::MissingScb.into(), now),
            (None, _) => frame.data.clone(),
        };
        let reply = match Reply::decode(frame.code, &data) {
            Ok(r) => r,
            Err(_) => return self.fail_with(LinkError::NoReply(self.failures + 1), now, Some(out)),
        };
        self.advance_sqn();
        if let Reply::Busy = reply {
            // Not a failure: same command again a little later.
            self.not_before = Some(now + self.settings.busy_retry);
            return Vec::new();
        }
        if let Reply::Nak { reason, .. } = &reply {
            return self.on_nak(out.sent, *reason, now);
        }
        self.on_reply(out.sent, frame, reply, now)
    }

    fn on_nak(&mut self, sent: Sent, reason: NakReason, now: Instant) -> Vec<Event> {
        match sent {
            // The PD lost our sequence or our session (it restarted, or it does not replay a
            // reply for a repeated SQN, as libosdp): start over and send the command again.
            _ if reason == NakReason::SequenceError
                || (self.channel.is_some() && reason == NakReason::ScConditions) =>
            {
                self.fail(LinkError::NoReply(self.failures + 1), now)
            }
            // The PD saw a corrupted command: send it again.
            _ if reason == NakReason::BadCheck => {
                self.fail(LinkError::NoReply(self.failures + 1), now)
            }
            Sent::Queued => {
                let (tag, _) = self.queue.pop_front().expect("queued command in flight");
                self.failures = 0;
                vec![Event::Nak { tag, reason }]
            }
            Sent::Challenge { install: false, .. } if self.settings.install_mode => {
                // The PD may only know SCBK-D.
                self.phase = Phase::Challenge { install: true };
                Vec::new()
            }
            Sent::Challenge { .. } | Sent::Scrypt => self.fail(LinkError::ScRefused(reason), now),
            Sent::Id | Sent::Cap | Sent::Poll => {
                self.fail(LinkError::NoReply(self.failures + 1), now)
            }
        }
    }

    fn on_reply(&mut self, sent: Sent, frame: &Frame, reply: Reply, now: Instant) -> Vec<Event> {
        match (sent, reply) {
            (Sent::Id, Reply::PdId(id)) => {
                self.id = Some(id);
                self.phase = Phase::Cap;
                Vec::new()
            }
            (Sent::Cap, Reply::PdCap(caps)) => {
                self.caps = caps;
                if self.settings.keys.is_empty() && !self.settings.install_mode {
                    if self.settings.require_secure {
                        return self.fail(LinkError::KeyMismatch, now);
                    }
                    self.key_use = KeyUse::Plain;
                    return self.ready();
                }
                let install = self.settings.keys.is_empty();
                self.phase = Phase::Challenge { install };
                Vec::new()
            }
            (
                Sent::Challenge { rnd_a, install },
                Reply::ClientCryptogram {
                    rnd_b, cryptogram, ..
                },
            ) => {
                let scb_ok = frame.scb.as_ref().is_some_and(|s| s.kind == scs::CCRYPT);
                if !scb_ok {
                    return self.fail(ScError::UnexpectedScb(0).into(), now);
                }
                // Find the key the PD used: each candidate gives a different cryptogram.
                let mut candidates: Vec<(KeyUse, Key)> = Vec::new();
                if !install {
                    candidates.extend(
                        self.settings
                            .keys
                            .iter()
                            .cloned()
                            .enumerate()
                            .map(|(i, k)| (KeyUse::Key(i), k)),
                    );
                }
                if self.settings.install_mode {
                    candidates.push((KeyUse::InstallKey, Key::default_install_key()));
                }
                let found = candidates.into_iter().find_map(|(u, k)| {
                    let keys = SessionKeys::derive(&k, &rnd_a);
                    crate::secure::ct_eq(&keys.client_cryptogram(&rnd_a, &rnd_b), &cryptogram)
                        .then_some((u, keys))
                });
                let Some((key_use, keys)) = found else {
                    if !install && self.settings.install_mode {
                        self.phase = Phase::Challenge { install: true };
                        return Vec::new();
                    }
                    return self.fail(LinkError::KeyMismatch, now);
                };
                let server = keys.server_cryptogram(&rnd_a, &rnd_b);
                self.pending = Some((keys, key_use, server));
                self.phase = Phase::Scrypt;
                Vec::new()
            }
            (Sent::Scrypt, Reply::InitialRmac(rmac)) => {
                let Some((keys, key_use, server)) = self.pending.take() else {
                    return self.fail(ScError::RmacMismatch.into(), now);
                };
                let accepted = frame
                    .scb
                    .as_ref()
                    .is_some_and(|s| s.kind == scs::RMAC_I && s.data.first() == Some(&1));
                if !accepted || !crate::secure::ct_eq(&keys.initial_rmac(&server), &rmac) {
                    return self.fail(ScError::RmacMismatch.into(), now);
                }
                self.channel = Some(Channel::new(keys, rmac));
                self.key_use = key_use;
                self.ready()
            }
            (Sent::Poll, Reply::Ack) => {
                self.failures = 0;
                Vec::new()
            }
            (Sent::Poll, r @ Reply::MfgReply { .. }) => {
                self.failures = 0;
                vec![Event::MfgReply(r)]
            }
            (Sent::Poll, r) => {
                self.failures = 0;
                vec![Event::Unsolicited(r)]
            }
            (Sent::Queued, reply) => {
                self.failures = 0;
                let (tag, _) = self.queue.pop_front().expect("queued command in flight");
                let mut ev = Vec::new();
                if matches!(reply, Reply::MfgReply { .. }) {
                    ev.push(Event::MfgReply(reply.clone()));
                }
                ev.push(Event::Done { tag, reply });
                ev
            }
            _ => self.fail(LinkError::NoReply(self.failures + 1), now),
        }
    }

    fn ready(&mut self) -> Vec<Event> {
        self.phase = Phase::Ready;
        self.failures = 0;
        self.online = true;
        vec![Event::Online {
            id: self.id.clone().expect("PDID before ready"),
            caps: self.caps.clone(),
            key: self.key_use,
        }]
    }
}
