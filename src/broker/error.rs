//! Start errors: why a broker connection (a sink's, or a `record` input's) could not be made
//! at start-up, as one line and the exit code it asks for. A run that cannot start ends
//! before any packet or message is read.

use crate::exit::{BROKER_AUTH, BROKER_UNREACHABLE, TLS};
use std::fmt;
use std::io;

/// Why a sink or a recorder input could not start. Carried inside the `io::Error` that
/// `sink::Output::open` returns; [`start_exit_code`] gets the exit code back out of it. Never
/// holds a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartError {
    /// The exit code the run ends with (one of [`crate::exit`]'s constants).
    pub exit_code: u8,
    /// The one line that explains it (no password).
    pub message: String,
}

impl StartError {
    /// A start error with its exit code and line.
    pub fn new(exit_code: u8, message: impl Into<String>) -> StartError {
        StartError {
            exit_code,
            message: message.into(),
        }
    }

    /// Wraps the error in an `io::Error` whose kind matches the exit code (refused,
    /// permission denied, unsupported for TLS, invalid input otherwise);
    /// [`start_exit_code`] gets it back.
    pub fn into_io(self) -> io::Error {
        let kind = match self.exit_code {
            BROKER_UNREACHABLE => io::ErrorKind::ConnectionRefused,
            BROKER_AUTH => io::ErrorKind::PermissionDenied,
            TLS => io::ErrorKind::Unsupported,
            _ => io::ErrorKind::InvalidInput,
        };
        io::Error::new(kind, self)
    }
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StartError {}

/// The exit code a start-up failure of a sink asks for, if `error` is one.
pub fn start_exit_code(error: &io::Error) -> Option<u8> {
    error
        .get_ref()
        .and_then(|e| e.downcast_ref::<StartError>())
        .map(|e| e.exit_code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::BROKER_AUTH as EXIT_AUTH;

    #[test]
    fn start_errors_carry_exit_codes() {
        let e = StartError::new(EXIT_AUTH, "refused").into_io();
        assert_eq!(start_exit_code(&e), Some(EXIT_AUTH));
        assert_eq!(start_exit_code(&io::Error::other("x")), None);
    }
}
