//! Traffic tools: `replay` (send capture files through a TX ring),
//! `send tcp|tcp-large|udp|icmp|arp` and `listen tcp|udp`, the original's `*_send_msg.py` and
//! `listen_*_port.py` scripts, made to generate known traffic for captures and tests. Defaults
//! target this host only. Their flags and environment variables are `cli::tools`'s; these
//! modules take configurations and know nothing of the command line.
//!
//! Every tool prints one JSON line per event on stdout (what was sent, what was received), so
//! a script or a test can compare both ends; progress and errors go to stderr.

pub(crate) mod arp;
pub(crate) mod icmp;
pub mod listen;
pub mod replay;
pub(crate) mod send;

use crate::time::format_created;
use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// A tool's failure: the line to print and the exit code (listed in each command's help).
#[derive(Debug)]
pub struct ToolError {
    /// The process exit code, from the tool's table in [`crate::exit`].
    pub code: u8,
    /// One line for stderr, without the program's name.
    pub message: String,
}

impl ToolError {
    /// A failure with exit code `code`.
    pub fn new(code: u8, message: impl Into<String>) -> ToolError {
        ToolError {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for ToolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ToolError {}

/// Exit codes of `send` (the table is in [`crate::exit::send`]).
pub use crate::exit::send as send_exit;

/// `%Y-%m-%d %H:%M:%S` (UTC) now, as the original stamped its test messages.
pub(crate) fn now_stamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    String::from_utf8_lossy(&format_created(secs)).into_owned()
}

/// The original's default message: `"<prefix> time=<now> - <uuid4>"`.
pub(crate) fn default_message(prefix: &str) -> String {
    format!("{prefix} time={} - {}", now_stamp(), uuid::Uuid::new_v4())
}

/// `host:port` to the first address it resolves to.
pub(crate) fn resolve(host: &str, port: u16) -> Result<SocketAddr, ToolError> {
    (host, port)
        .to_socket_addrs()
        .map_err(|e| ToolError::new(send_exit::CONNECT, format!("cannot resolve {host}: {e}")))?
        .next()
        .ok_or_else(|| ToolError::new(send_exit::CONNECT, format!("{host} has no address")))
}

/// Seconds from a flag to a `Duration`; refuses negative, NaN and absurd values.
pub(crate) fn seconds(what: &str, s: f64) -> Result<Duration, ToolError> {
    Duration::try_from_secs_f64(s)
        .ok()
        .filter(|d| *d <= Duration::from_secs(86_400))
        .ok_or_else(|| {
            ToolError::new(
                send_exit::USAGE,
                format!("{what} must be 0 to 86400 seconds, not {s}"),
            )
        })
}

/// Internet checksum (RFC 1071): one's complement of the one's complement sum of 16-bit words.
pub(crate) fn internet_checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = bytes.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// `true` for errors that mean "timed out" on a socket with a read timeout.
pub(crate) fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_rfc1071_example() {
        // RFC 1071 section 3 example: words 0001 f203 f4f5 f6f7 sum to ddf2, checksum 220d.
        let bytes = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(internet_checksum(&bytes), 0x220d);
        // A message with its checksum in place sums to zero.
        let mut with = bytes.to_vec();
        with.extend_from_slice(&0x220du16.to_be_bytes());
        assert_eq!(internet_checksum(&with), 0);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(internet_checksum(&[0x12]), !0x1200);
    }

    #[test]
    fn default_message_has_time_and_uuid() {
        let m = default_message("testing msg");
        assert!(m.starts_with("testing msg time="), "{m}");
        let uuid = m.rsplit(" - ").next().unwrap();
        assert_eq!(uuid.len(), 36, "{m}");
    }

    #[test]
    fn seconds_refuses_bad_values() {
        assert!(seconds("x", -1.0).is_err());
        assert!(seconds("x", f64::NAN).is_err());
        assert_eq!(seconds("x", 0.5).unwrap(), Duration::from_millis(500));
    }
}
