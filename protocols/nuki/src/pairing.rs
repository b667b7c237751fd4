//! The pairing sequence on the pairing characteristic (unencrypted messages). The state
//! machine consumes decoded messages from the lock and returns the bytes to write next; it
//! never does I/O.
//!
//! ```text
//! app  Request Data(Public Key)            ->
//!      <- Public Key (lock)                    shared key = kdf1(dh1(app sk, lock pk))
//! app  Public Key (app)                    ->
//!      <- Challenge nk1
//! app  Authorization Authenticator h1(app pk | lock pk | nk1) ->
//!      <- Challenge nk2
//! app  Authorization Data  h1(id type | id | name | na | nk2) | id type | id | name | na ->
//!      <- Authorization-ID  authenticator | auth id | lock uuid | nk3
//! app  Authorization-ID Confirmation  h1(auth id | nk3) | auth id ->
//!      <- Status COMPLETE
//! ```

use core::fmt;

use crate::cmd;
use crate::error::{ErrorCode, ErrorReport};
use crate::frame::{encode_plain, Message};
use crate::keys::{AppSecretKey, SharedKey};
use crate::message::{PayloadError, Reply, Status};

/// What kind of client we register as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum IdType {
    App = 0,
    Bridge = 1,
    Fob = 2,
    Keypad = 3,
}

/// How the lock will list us among its authorizations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppIdentity {
    pub id_type: IdType,
    pub app_id: u32,
    /// Up to 32 bytes of UTF-8.
    pub name: String,
}

impl AppIdentity {
    fn name_field(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        let mut end = self.name.len().min(32);
        while !self.name.is_char_boundary(end) {
            end -= 1;
        }
        out[..end].copy_from_slice(&self.name.as_bytes()[..end]);
        out
    }
}

/// The result of a successful pairing: keep it sealed at rest, never log it.
#[derive(Clone, PartialEq, Eq)]
pub struct Paired {
    pub auth_id: u32,
    pub shared_key: SharedKey,
    pub lock_uuid: [u8; 16],
}

impl fmt::Debug for Paired {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Paired { auth_id: <redacted>, shared_key: <redacted>, .. }")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum PairingError {
    #[error("the lock is not in pairing mode (press its button for 5 s, then retry)")]
    NotInPairingMode,
    #[error("the lock reported {} for command 0x{:04x}", .0.code, .0.command)]
    Lock(ErrorReport),
    #[error("unexpected command 0x{command:04x} while {state}")]
    Unexpected { state: &'static str, command: u16 },
    #[error(transparent)]
    Payload(#[from] PayloadError),
    #[error("pairing already finished or failed")]
    Finished,
}

impl PairingError {
    /// A new attempt may succeed (the lock was busy or a message was damaged).
    pub fn is_retryable(&self) -> bool {
        match self {
            PairingError::Lock(r) => r.code.is_retryable(),
            PairingError::Unexpected { .. } | PairingError::Payload(_) => true,
            PairingError::NotInPairingMode | PairingError::Finished => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitPublicKey,
    AwaitChallenge1,
    AwaitChallenge2,
    AwaitAuthorizationId,
    AwaitComplete,
    Finished,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::AwaitPublicKey => "waiting for the lock's public key",
            State::AwaitChallenge1 => "waiting for the first challenge",
            State::AwaitChallenge2 => "waiting for the second challenge",
            State::AwaitAuthorizationId => "waiting for the authorization id",
            State::AwaitComplete => "waiting for pairing to complete",
            State::Finished => "finished",
        }
    }
}

/// What to do after a message from the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PairingStep {
    /// Write these bytes (one whole message; chunk it) to the pairing characteristic.
    Send(Vec<u8>),
    Done(Paired),
}

pub struct Pairing {
    state: State,
    secret: AppSecretKey,
    public: [u8; 32],
    identity: AppIdentity,
    nonce_na: [u8; 32],
    lock_public: [u8; 32],
    key: Option<SharedKey>,
    paired: Option<(u32, [u8; 16])>,
}

impl fmt::Debug for Pairing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pairing")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Pairing {
    /// Begin pairing with a fresh app key pair and a fresh 32-byte nonce (both from the OS
    /// CSPRNG). Returns the machine and the first message to write.
    pub fn start(
        secret: AppSecretKey,
        identity: AppIdentity,
        nonce_na: [u8; 32],
    ) -> (Pairing, Vec<u8>) {
        let public = secret.public_key();
        let first = encode_plain(cmd::REQUEST_DATA, &cmd::PUBLIC_KEY.to_le_bytes());
        (
            Pairing {
                state: State::AwaitPublicKey,
                secret,
                public,
                identity,
                nonce_na,
                lock_public: [0; 32],
                key: None,
                paired: None,
            },
            first,
        )
    }

    pub fn app_public_key(&self) -> [u8; 32] {
        self.public
    }

    /// Feed one decoded message from the pairing characteristic.
    pub fn on_message(&mut self, msg: &Message) -> Result<PairingStep, PairingError> {
        if self.state == State::Finished {
            return Err(PairingError::Finished);
        }
        let reply = match Reply::decode(msg.command, &msg.payload) {
            Ok(r) => r,
            Err(e) => {
                self.state = State::Finished;
                return Err(e.into());
            }
        };
        let out = self.step(reply);
        if out.is_err() || matches!(out, Ok(PairingStep::Done(_))) {
            self.state = State::Finished;
        }
        out
    }

    fn step(&mut self, reply: Reply) -> Result<PairingStep, PairingError> {
        match (self.state, reply) {
            (_, Reply::Error(r)) if r.code == ErrorCode::NotPairing => {
                Err(PairingError::NotInPairingMode)
            }
            (_, Reply::Error(r)) => Err(PairingError::Lock(r)),
            (State::AwaitPublicKey, Reply::PublicKey(lock_pk)) => {
                self.lock_public = lock_pk;
                self.key = Some(SharedKey::derive(&self.secret, &lock_pk));
                self.state = State::AwaitChallenge1;
                Ok(PairingStep::Send(encode_plain(
                    cmd::PUBLIC_KEY,
                    &self.public,
                )))
            }
            (State::AwaitChallenge1, Reply::Challenge(nk)) => {
                let key = self.key.as_ref().expect("derived with the public key");
                let a = key.authenticator(&[&self.public, &self.lock_public, &nk]);
                self.state = State::AwaitChallenge2;
                Ok(PairingStep::Send(encode_plain(
                    cmd::AUTHORIZATION_AUTHENTICATOR,
                    &a,
                )))
            }
            (State::AwaitChallenge2, Reply::Challenge(nk)) => {
                let key = self.key.as_ref().expect("derived with the public key");
                let mut data = Vec::with_capacity(69);
                data.push(self.identity.id_type as u8);
                data.extend_from_slice(&self.identity.app_id.to_le_bytes());
                data.extend_from_slice(&self.identity.name_field());
                data.extend_from_slice(&self.nonce_na);
                let a = key.authenticator(&[&data, &nk]);
                let mut payload = a.to_vec();
                payload.extend_from_slice(&data);
                self.state = State::AwaitAuthorizationId;
                Ok(PairingStep::Send(encode_plain(
                    cmd::AUTHORIZATION_DATA,
                    &payload,
                )))
            }
            (
                State::AwaitAuthorizationId,
                Reply::AuthorizationId {
                    auth_id,
                    lock_uuid,
                    nonce,
                    ..
                },
            ) => {
                // The lock's authenticator is not checked: its input layout is not confirmed
                // (see README). A lock without our shared key cannot read anything we send next.
                let key = self.key.as_ref().expect("derived with the public key");
                let a = key.authenticator(&[&auth_id.to_le_bytes(), &nonce]);
                let mut payload = a.to_vec();
                payload.extend_from_slice(&auth_id.to_le_bytes());
                self.paired = Some((auth_id, lock_uuid));
                self.state = State::AwaitComplete;
                Ok(PairingStep::Send(encode_plain(
                    cmd::AUTHORIZATION_ID_CONFIRMATION,
                    &payload,
                )))
            }
            (State::AwaitComplete, Reply::Status(Status::Complete)) => {
                let (auth_id, lock_uuid) = self.paired.expect("set before AwaitComplete");
                Ok(PairingStep::Done(Paired {
                    auth_id,
                    shared_key: self.key.clone().expect("derived"),
                    lock_uuid,
                }))
            }
            (state, other) => Err(PairingError::Unexpected {
                state: state.name(),
                command: other.encode().0,
            }),
        }
    }
}
