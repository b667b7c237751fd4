//! One challenge-protected command exchange over the keyturner characteristic: request a
//! challenge, send the command with the challenge nonce and the security PIN, collect the
//! reply. The lock handles one command at a time, so the driver runs one exchange at a time.
//! Pure: returns the command to send next; the driver encrypts and writes it.

use crate::cmd;
use crate::error::ErrorReport;
use crate::keys::{SecurityPin, SharedKey};
use crate::message::{
    AuthorizationEntry, Command, KeypadCode, KeypadCodeEntry, KeyturnerStates, Reply, Status,
};
use crate::time::TimeLimits;

/// An operation on the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    AddCode {
        code: KeypadCode,
        name: String,
        limits: TimeLimits,
    },
    UpdateCode {
        id: u16,
        code: KeypadCode,
        name: String,
        enabled: bool,
        limits: TimeLimits,
    },
    RemoveCode {
        id: u16,
    },
    ListCodes {
        offset: u16,
        count: u16,
    },
    AddAuthorization {
        name: String,
        id_type: u8,
        shared_key: SharedKey,
        remote_allowed: bool,
        limits: TimeLimits,
    },
    RemoveAuthorization {
        auth_id: u32,
    },
    ListAuthorizations {
        offset: u16,
        count: u16,
    },
    /// Keyturner States (lock state, battery): no challenge needed.
    States,
}

/// The result of a finished exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    CodeAdded { id: u16 },
    Completed,
    Codes(Vec<KeypadCodeEntry>),
    AuthorizationAdded { auth_id: u32 },
    Authorizations(Vec<AuthorizationEntry>),
    States(KeyturnerStates),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum ExchangeError {
    #[error("the lock reported {} for command 0x{:04x}", .0.code, .0.command)]
    Lock(ErrorReport),
    #[error("unexpected command 0x{0:04x} from the lock")]
    Unexpected(u16),
    #[error("the exchange already finished")]
    Finished,
}

impl ExchangeError {
    /// Worth a new exchange (with a fresh challenge): BUSY, damaged message, stale nonce,
    /// or a reply we did not expect (a lost indication).
    pub fn is_retryable(&self) -> bool {
        match self {
            ExchangeError::Lock(r) => r.code.is_retryable(),
            ExchangeError::Unexpected(_) => true,
            ExchangeError::Finished => false,
        }
    }

    /// Stop talking to this lock until an operator acts (wrong PIN: retries count as
    /// attempts and lock the PIN out).
    pub fn is_fatal(&self) -> bool {
        matches!(self, ExchangeError::Lock(r) if r.code.is_fatal())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitChallenge,
    AwaitResult,
    Finished,
}

/// What to do after a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Encrypt and write this command.
    Send(Command),
    /// More indications are expected.
    Wait,
    Done(Outcome),
}

#[derive(Debug)]
pub struct Exchange {
    op: Op,
    pin: SecurityPin,
    state: State,
    expected: Option<u16>,
    codes: Vec<KeypadCodeEntry>,
    auths: Vec<AuthorizationEntry>,
}

impl Exchange {
    /// Start an exchange; returns it and the first command to send.
    pub fn start(op: Op, pin: SecurityPin) -> (Exchange, Command) {
        let (state, first) = match op {
            Op::States => (
                State::AwaitResult,
                Command::RequestData(cmd::KEYTURNER_STATES),
            ),
            _ => (State::AwaitChallenge, Command::RequestData(cmd::CHALLENGE)),
        };
        (
            Exchange {
                op,
                pin,
                state,
                expected: None,
                codes: Vec::new(),
                auths: Vec::new(),
            },
            first,
        )
    }

    pub fn op(&self) -> &Op {
        &self.op
    }

    fn command(&self, nonce: [u8; 32]) -> Command {
        let pin = self.pin.clone();
        match &self.op {
            Op::AddCode { code, name, limits } => Command::AddKeypadCode {
                code: *code,
                name: name.clone(),
                limits: *limits,
                nonce,
                pin,
            },
            Op::UpdateCode {
                id,
                code,
                name,
                enabled,
                limits,
            } => Command::UpdateKeypadCode {
                id: *id,
                code: *code,
                name: name.clone(),
                enabled: *enabled,
                limits: *limits,
                nonce,
                pin,
            },
            Op::RemoveCode { id } => Command::RemoveKeypadCode {
                id: *id,
                nonce,
                pin,
            },
            Op::ListCodes { offset, count } => Command::RequestKeypadCodes {
                offset: *offset,
                count: *count,
                nonce,
                pin,
            },
            Op::AddAuthorization {
                name,
                id_type,
                shared_key,
                remote_allowed,
                limits,
            } => Command::AddAuthorization {
                name: name.clone(),
                id_type: *id_type,
                shared_key: shared_key.clone(),
                remote_allowed: *remote_allowed,
                limits: *limits,
                nonce,
                pin,
            },
            Op::RemoveAuthorization { auth_id } => Command::RemoveAuthorization {
                auth_id: *auth_id,
                nonce,
                pin,
            },
            Op::ListAuthorizations { offset, count } => Command::RequestAuthorizations {
                offset: *offset,
                count: *count,
                nonce,
                pin,
            },
            Op::States => unreachable!("no challenge for States"),
        }
    }

    /// Feed one decoded reply from the lock.
    pub fn on_reply(&mut self, reply: Reply) -> Result<Progress, ExchangeError> {
        if self.state == State::Finished {
            return Err(ExchangeError::Finished);
        }
        let out = self.step(reply);
        if matches!(out, Err(_) | Ok(Progress::Done(_))) {
            self.state = State::Finished;
        }
        out
    }

    fn step(&mut self, reply: Reply) -> Result<Progress, ExchangeError> {
        if let Reply::Error(r) = reply {
            return Err(ExchangeError::Lock(r));
        }
        match self.state {
            State::AwaitChallenge => match reply {
                Reply::Challenge(n) => {
                    self.state = State::AwaitResult;
                    Ok(Progress::Send(self.command(n)))
                }
                // A late Status from the previous exchange.
                Reply::Status(_) => Ok(Progress::Wait),
                other => Err(ExchangeError::Unexpected(other.encode().0)),
            },
            State::AwaitResult => self.result(reply),
            State::Finished => Err(ExchangeError::Finished),
        }
    }

    fn result(&mut self, reply: Reply) -> Result<Progress, ExchangeError> {
        let done = |o| Ok(Progress::Done(o));
        match (&self.op, reply) {
            (_, Reply::Status(Status::Accepted)) => Ok(Progress::Wait),
            // Keyturner States has no challenge step, so a late Status COMPLETE from the
            // previous exchange (a list ends with one after its last entry) lands here.
            (Op::States, Reply::Status(Status::Complete)) => Ok(Progress::Wait),
            (Op::AddCode { .. }, Reply::KeypadCodeId(id)) => done(Outcome::CodeAdded { id }),
            (
                Op::UpdateCode { .. } | Op::RemoveCode { .. } | Op::RemoveAuthorization { .. },
                Reply::Status(Status::Complete),
            ) => done(Outcome::Completed),
            (Op::ListCodes { .. }, Reply::KeypadCodeCount(n)) => {
                self.expected = Some(n);
                if n == 0 {
                    done(Outcome::Codes(Vec::new()))
                } else {
                    Ok(Progress::Wait)
                }
            }
            (Op::ListCodes { .. }, Reply::KeypadCode(e)) => {
                self.codes.push(e);
                if Some(self.codes.len()) >= self.expected.map(usize::from) {
                    done(Outcome::Codes(std::mem::take(&mut self.codes)))
                } else {
                    Ok(Progress::Wait)
                }
            }
            (Op::ListCodes { .. }, Reply::Status(Status::Complete)) => {
                done(Outcome::Codes(std::mem::take(&mut self.codes)))
            }
            (Op::ListAuthorizations { .. }, Reply::AuthorizationEntryCount(n)) => {
                self.expected = Some(n);
                if n == 0 {
                    done(Outcome::Authorizations(Vec::new()))
                } else {
                    Ok(Progress::Wait)
                }
            }
            (Op::ListAuthorizations { .. }, Reply::AuthorizationEntry(e)) => {
                self.auths.push(e);
                if Some(self.auths.len()) >= self.expected.map(usize::from) {
                    done(Outcome::Authorizations(std::mem::take(&mut self.auths)))
                } else {
                    Ok(Progress::Wait)
                }
            }
            (Op::ListAuthorizations { .. }, Reply::Status(Status::Complete)) => {
                done(Outcome::Authorizations(std::mem::take(&mut self.auths)))
            }
            (Op::AddAuthorization { .. }, Reply::AuthorizationIdInvite(auth_id)) => {
                done(Outcome::AuthorizationAdded { auth_id })
            }
            (Op::States, Reply::KeyturnerStates(s)) => done(Outcome::States(s)),
            (_, other) => Err(ExchangeError::Unexpected(other.encode().0)),
        }
    }
}
