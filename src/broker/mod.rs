//! What `sink` (publishing) and `record` (consuming) share to talk to brokers: today the
//! Redis client ([`resp`]) and the password type ([`Secret`]). Both sides connect through the
//! same code, so `record` reads from `rediss://` as the sink writes to it.

pub mod resp;

use std::fmt;

/// A password that never shows in `Debug` output (nor anywhere else this crate prints).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}
