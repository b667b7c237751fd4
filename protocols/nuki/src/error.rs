//! Error Report (0x0012) codes.

use core::fmt;

/// A code from the lock's Error Report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    BadCrc,
    BadLength,
    Unknown,
    NotPairing,
    BadAuthenticator,
    BadParameter,
    MaxUser,
    NotAuthorized,
    BadPin,
    BadNonce,
    KBadParameter,
    InvalidAuthId,
    Disabled,
    RemoteNotAllowed,
    TimeNotAllowed,
    TooManyPinAttempts,
    TooManyEntries,
    CodeAlreadyExists,
    CodeInvalid,
    CodeInvalidTimeout1,
    CodeInvalidTimeout2,
    CodeInvalidTimeout3,
    AutoUnlockTooRecent,
    PositionUnknown,
    MotorBlocked,
    ClutchFailure,
    MotorTimeout,
    Busy,
    Canceled,
    NotCalibrated,
    MotorPositionLimit,
    MotorLowVoltage,
    MotorPowerFailure,
    ClutchPowerFailure,
    VoltageTooLow,
    FirmwareUpdateNeeded,
    /// A code this crate does not know.
    Other(u8),
}

const TABLE: &[(u8, ErrorCode, &str)] = &[
    (0xfd, ErrorCode::BadCrc, "ERROR_BAD_CRC"),
    (0xfe, ErrorCode::BadLength, "ERROR_BAD_LENGTH"),
    (0xff, ErrorCode::Unknown, "ERROR_UNKNOWN"),
    (0x10, ErrorCode::NotPairing, "P_ERROR_NOT_PAIRING"),
    (
        0x11,
        ErrorCode::BadAuthenticator,
        "P_ERROR_BAD_AUTHENTICATOR",
    ),
    (0x12, ErrorCode::BadParameter, "P_ERROR_BAD_PARAMETER"),
    (0x13, ErrorCode::MaxUser, "P_ERROR_MAX_USER"),
    (0x20, ErrorCode::NotAuthorized, "K_ERROR_NOT_AUTHORIZED"),
    (0x21, ErrorCode::BadPin, "K_ERROR_BAD_PIN"),
    (0x22, ErrorCode::BadNonce, "K_ERROR_BAD_NONCE"),
    (0x23, ErrorCode::KBadParameter, "K_ERROR_BAD_PARAMETER"),
    (0x24, ErrorCode::InvalidAuthId, "K_ERROR_INVALID_AUTH_ID"),
    (0x25, ErrorCode::Disabled, "K_ERROR_DISABLED"),
    (
        0x26,
        ErrorCode::RemoteNotAllowed,
        "K_ERROR_REMOTE_NOT_ALLOWED",
    ),
    (0x27, ErrorCode::TimeNotAllowed, "K_ERROR_TIME_NOT_ALLOWED"),
    (
        0x28,
        ErrorCode::TooManyPinAttempts,
        "K_ERROR_TOO_MANY_PIN_ATTEMPTS",
    ),
    (0x29, ErrorCode::TooManyEntries, "K_ERROR_TOO_MANY_ENTRIES"),
    (
        0x2a,
        ErrorCode::CodeAlreadyExists,
        "K_ERROR_CODE_ALREADY_EXISTS",
    ),
    (0x2b, ErrorCode::CodeInvalid, "K_ERROR_CODE_INVALID"),
    (
        0x2c,
        ErrorCode::CodeInvalidTimeout1,
        "K_ERROR_CODE_INVALID_TIMEOUT_1",
    ),
    (
        0x2d,
        ErrorCode::CodeInvalidTimeout2,
        "K_ERROR_CODE_INVALID_TIMEOUT_2",
    ),
    (
        0x2e,
        ErrorCode::CodeInvalidTimeout3,
        "K_ERROR_CODE_INVALID_TIMEOUT_3",
    ),
    (
        0x40,
        ErrorCode::AutoUnlockTooRecent,
        "K_ERROR_AUTO_UNLOCK_TOO_RECENT",
    ),
    (0x41, ErrorCode::PositionUnknown, "K_ERROR_POSITION_UNKNOWN"),
    (0x42, ErrorCode::MotorBlocked, "K_ERROR_MOTOR_BLOCKED"),
    (0x43, ErrorCode::ClutchFailure, "K_ERROR_CLUTCH_FAILURE"),
    (0x44, ErrorCode::MotorTimeout, "K_ERROR_MOTOR_TIMEOUT"),
    (0x45, ErrorCode::Busy, "K_ERROR_BUSY"),
    (0x46, ErrorCode::Canceled, "K_ERROR_CANCELED"),
    (0x47, ErrorCode::NotCalibrated, "K_ERROR_NOT_CALIBRATED"),
    (
        0x48,
        ErrorCode::MotorPositionLimit,
        "K_ERROR_MOTOR_POSITION_LIMIT",
    ),
    (
        0x49,
        ErrorCode::MotorLowVoltage,
        "K_ERROR_MOTOR_LOW_VOLTAGE",
    ),
    (
        0x4a,
        ErrorCode::MotorPowerFailure,
        "K_ERROR_MOTOR_POWER_FAILURE",
    ),
    (
        0x4b,
        ErrorCode::ClutchPowerFailure,
        "K_ERROR_CLUTCH_POWER_FAILURE",
    ),
    (0x4c, ErrorCode::VoltageTooLow, "K_ERROR_VOLTAGE_TOO_LOW"),
    (
        0x4d,
        ErrorCode::FirmwareUpdateNeeded,
        "K_ERROR_FIRMWARE_UPDATE_NEEDED",
    ),
];

impl ErrorCode {
    pub fn from_u8(b: u8) -> ErrorCode {
        TABLE
            .iter()
            .find(|(v, _, _)| *v == b)
            .map(|(_, c, _)| *c)
            .unwrap_or(ErrorCode::Other(b))
    }

    pub fn to_u8(self) -> u8 {
        match self {
            ErrorCode::Other(b) => b,
            c => TABLE
                .iter()
                .find(|(_, k, _)| *k == c)
                .map(|(v, _, _)| *v)
                .expect("every named code is in the table"),
        }
    }

    /// The name used in the Nuki documentation.
    pub fn name(self) -> &'static str {
        TABLE
            .iter()
            .find(|(_, k, _)| *k == self)
            .map(|(_, _, n)| *n)
            .unwrap_or("UNKNOWN_CODE")
    }

    /// Worth sending the same command again (after a fresh challenge): the lock was busy,
    /// the message was damaged on the air, or our challenge nonce went stale.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::Busy | ErrorCode::BadCrc | ErrorCode::BadLength | ErrorCode::BadNonce
        )
    }

    /// Retrying can make things worse: a wrong security PIN (the lock counts attempts and
    /// locks out), or the lock already locked us out or no longer knows us.
    pub fn is_fatal(self) -> bool {
        matches!(
            self,
            ErrorCode::BadPin
                | ErrorCode::TooManyPinAttempts
                | ErrorCode::NotAuthorized
                | ErrorCode::InvalidAuthId
                | ErrorCode::Disabled
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorCode::Other(b) => write!(f, "error 0x{b:02x}"),
            c => f.write_str(c.name()),
        }
    }
}

/// Error Report payload: `code u8 | failed command id u16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorReport {
    pub code: ErrorCode,
    pub command: u16,
}
