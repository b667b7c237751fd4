//! A peripheral device, as a state machine: command frames in, reply bytes out. It is what
//! the reference panel simulator (`leasegate panel-sim`) and the in-crate tests run; it
//! follows the same Secure Channel rules as the CP side.

use rand_core::CryptoRngCore;

use crate::codec::{Frame, Scb};
use crate::message::{Capability, Command, NakReason, PdId, Reply, VendorCode};
use crate::secure::{scs, Channel, Key, SessionKeys};

/// What the PD's application does with the commands the protocol layer does not handle.
pub trait PdApp {
    /// An osdp_MFG: answer inline (MFGREP, ACK or NAK).
    fn mfg(&mut self, vendor: VendorCode, data: &[u8]) -> Reply;
    /// A new SCBK was set with osdp_KEYSET; persist it.
    fn keyset(&mut self, key: &Key);
    /// A reply to send instead of ACK on the next POLL (e.g. a deferred MFGREP).
    fn poll_event(&mut self) -> Option<Reply> {
        None
    }
}

#[derive(Debug, Clone)]
pub struct PdSettings {
    pub address: u8,
    pub id: PdId,
    pub caps: Vec<Capability>,
    /// The PD's SCBK; None = only SCBK-D (install mode).
    pub scbk: Option<Key>,
    /// Accept SCBK-D.
    pub install_mode: bool,
    /// With an SCBK, refuse every plain command but ID, CAP and CHLNG (libosdp's
    /// ENFORCE_SECURE). Off, a PD with a key still answers plain POLLs, as libosdp does.
    pub enforce_secure: bool,
}

#[derive(Debug)]
struct Handshake {
    keys: SessionKeys,
    rnd_a: [u8; 8],
    rnd_b: [u8; 8],
}

pub struct Pd<A> {
    pub settings: PdSettings,
    pub app: A,
    last: Option<(u8, Vec<u8>)>,
    channel: Option<Channel>,
    handshake: Option<Handshake>,
}

impl<A: PdApp> Pd<A> {
    pub fn new(settings: PdSettings, app: A) -> Self {
        Pd {
            settings,
            app,
            last: None,
            channel: None,
            handshake: None,
        }
    }

    pub fn is_secure(&self) -> bool {
        self.channel.is_some()
    }

    fn must_be_secure(&self) -> bool {
        self.settings.enforce_secure && self.settings.scbk.is_some() && !self.settings.install_mode
    }

    /// Handle one decoded command frame; returns the reply bytes (no mark byte), or None for
    /// frames that are not for this PD.
    pub fn handle(&mut self, frame: &Frame, rng: &mut impl CryptoRngCore) -> Option<Vec<u8>> {
        if frame.reply || frame.address != self.settings.address {
            return None;
        }
        if frame.sqn == 0 {
            self.channel = None;
            self.handshake = None;
            self.last = None;
        } else if let Some((last_sqn, bytes)) = &self.last {
            if frame.sqn == *last_sqn {
                return Some(bytes.clone());
            }
            let due = last_sqn % 3 + 1;
            if frame.sqn != due {
                // Like libosdp, the NAK carries the sequence number that was due.
                return Some(self.reply(
                    due,
                    Reply::Nak {
                        reason: NakReason::SequenceError,
                        detail: vec![],
                    },
                    None,
                ));
            }
        }
        let (reply, sealed) = self.process(frame, rng);
        let bytes = self.reply(frame.sqn, reply, sealed);
        self.last = Some((frame.sqn, bytes.clone()));
        Some(bytes)
    }

    fn nak(reason: NakReason) -> (Reply, Option<u8>) {
        (
            Reply::Nak {
                reason,
                detail: vec![],
            },
            None,
        )
    }

    fn process(&mut self, frame: &Frame, rng: &mut impl CryptoRngCore) -> (Reply, Option<u8>) {
        let scb_kind = frame.scb.as_ref().map(|s| s.kind);
        // Handshake messages.
        match scb_kind {
            Some(scs::CHLNG) => return self.challenge(frame, rng),
            Some(scs::SCRYPT) => return self.scrypt(frame),
            _ => {}
        }
        let data = match (self.channel.as_mut(), scb_kind) {
            (Some(ch), Some(scs::CMD_MAC | scs::CMD_ENC)) => match ch.open_command(frame) {
                Ok(d) => d,
                Err(_) => {
                    self.channel = None;
                    return Self::nak(NakReason::ScConditions);
                }
            },
            (None, Some(_)) => {
                return Self::nak(NakReason::ScConditions);
            }
            (_, Some(_)) => {
                return Self::nak(NakReason::ScConditions);
            }
            (_, None) => {
                let allowed_plain = matches!(frame.code, 0x61 | 0x62);
                if (self.must_be_secure() || self.channel.is_some()) && !allowed_plain {
                    self.channel = None;
                    return Self::nak(NakReason::ScConditions);
                }
                frame.data.clone()
            }
        };
        let secure = scb_kind.is_some();
        let reply = match Command::decode(frame.code, &data) {
            Err(_) => Reply::Nak {
                reason: NakReason::BadLength,
                detail: vec![],
            },
            Ok(Command::Poll) => self.app.poll_event().unwrap_or(Reply::Ack),
            Ok(Command::Id) => Reply::PdId(self.settings.id.clone()),
            Ok(Command::Cap) => Reply::PdCap(self.settings.caps.clone()),
            Ok(Command::LocalStatus) => Reply::LocalStatus {
                tamper: 0,
                power: 0,
            },
            Ok(Command::Mfg { vendor, data }) => self.app.mfg(vendor, &data),
            Ok(Command::KeySet(key)) if secure => {
                self.app.keyset(&key);
                self.settings.scbk = Some(key);
                self.settings.install_mode = false;
                Reply::Ack
            }
            Ok(Command::KeySet(_)) => Reply::Nak {
                reason: NakReason::ScConditions,
                detail: vec![],
            },
            Ok(Command::ComSet { address, baud }) => Reply::Com { address, baud },
            Ok(_) => Reply::Nak {
                reason: NakReason::UnknownCommand,
                detail: vec![],
            },
        };
        (reply, secure.then_some(0))
    }

    fn challenge(&mut self, frame: &Frame, rng: &mut impl CryptoRngCore) -> (Reply, Option<u8>) {
        self.channel = None;
        let Ok(Command::Challenge { rnd_a }) = Command::decode(frame.code, &frame.data) else {
            return Self::nak(NakReason::BadLength);
        };
        let use_scbk = frame.scb.as_ref().and_then(|s| s.data.first()) != Some(&0);
        let key = match (&self.settings.scbk, use_scbk) {
            (Some(k), true) => k.clone(),
            (None, _) | (Some(_), false)
                if self.settings.install_mode || self.settings.scbk.is_none() =>
            {
                Key::default_install_key()
            }
            _ => {
                return Self::nak(NakReason::ScConditions);
            }
        };
        let flag = u8::from(!key.is_default_install_key());
        let mut rnd_b = [0u8; 8];
        rng.fill_bytes(&mut rnd_b);
        let keys = SessionKeys::derive(&key, &rnd_a);
        let cryptogram = keys.client_cryptogram(&rnd_a, &rnd_b);
        // cUID laid out as libosdp 3.2.9 does: vendor code (2 low bytes), model, 00, serial.
        let mut cuid = [0u8; 8];
        cuid[..2].copy_from_slice(&self.settings.id.vendor.to_wire()[..2]);
        cuid[2] = self.settings.id.model;
        cuid[4..].copy_from_slice(&self.settings.id.serial.to_le_bytes());
        self.handshake = Some(Handshake { keys, rnd_a, rnd_b });
        (
            Reply::ClientCryptogram {
                cuid,
                rnd_b,
                cryptogram,
            },
            Some(scs::CCRYPT | flag << 7),
        )
    }

    fn scrypt(&mut self, frame: &Frame) -> (Reply, Option<u8>) {
        let Some(h) = self.handshake.take() else {
            return Self::nak(NakReason::ScConditions);
        };
        let Ok(Command::ServerCryptogram(c)) = Command::decode(frame.code, &frame.data) else {
            return Self::nak(NakReason::BadLength);
        };
        if !crate::secure::ct_eq(&c, &h.keys.server_cryptogram(&h.rnd_a, &h.rnd_b)) {
            return Self::nak(NakReason::ScConditions);
        }
        let rmac = h.keys.initial_rmac(&c);
        self.channel = Some(Channel::new(h.keys, rmac));
        (Reply::InitialRmac(rmac), Some(scs::RMAC_I | 1 << 7))
    }

    /// Encode a reply. `how`: None = plain; Some(0) = through the channel; Some(kind | f<<7)
    /// = handshake SCB of `kind` with data byte `f`.
    fn reply(&mut self, sqn: u8, reply: Reply, how: Option<u8>) -> Vec<u8> {
        let mut f = Frame::new(self.settings.address, true, sqn, reply.code(), reply.data());
        match how {
            None => {}
            Some(0) => {
                if let Some(ch) = self.channel.as_mut() {
                    ch.seal_reply(&mut f);
                }
            }
            Some(x) => f.scb = Some(Scb::new(x & 0x7f, &[x >> 7])),
        }
        f.encode()
    }
}
