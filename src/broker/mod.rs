//! What `sink` (publishing) and `record` (consuming) share to talk to brokers, so both sides
//! connect through the same code (`record` reads from `rediss://` and `amqps://` as the sinks
//! write to them):
//!
//! - [`url`]: broker URLs split into their parts, %-escapes, and [`redact`] (what of a URL a
//!   message may show: never a password);
//! - [`secret`]: [`Secret`] (a password that never prints) and password files;
//! - [`tls`]: FORWARD_SSL_OPTIONS (kombu's `ssl` dictionary) as one rustls client
//!   configuration for every broker;
//! - [`backoff`]: capped exponential backoff between reconnect attempts;
//! - [`error`]: [`StartError`], a start-up failure as one line and its exit code;
//! - [`resp`]: the crate's one Redis client (RESP2 over TCP or TLS), and [`redis`]: opening a
//!   connection with it (AUTH, SELECT, PING) and its start errors;
//! - [`amqp`]: the one AMQP 0-9-1 path: runtime, connection (plain or TLS), channel,
//!   exchange/queue declarations and their start errors.
//!
//! Nothing here knows about batches, sinks or CSV: this layer imports nothing from
//! `pipeline`, `sink` or `record`.

pub mod amqp;
pub mod backoff;
pub mod error;
pub mod redis;
pub mod resp;
pub mod secret;
pub mod tls;
pub mod url;

pub use self::backoff::Backoff;
pub use self::error::{start_exit_code, StartError};
pub use self::secret::{read_password_file, Secret};
pub use self::url::redact;

#[cfg(test)]
mod tests {
    /// The layer rule for this module: nothing in `src/broker/` imports the layers above it.
    #[test]
    fn broker_imports_nothing_from_the_layers_above() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/broker");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).expect("src/broker") {
            let path = entry.expect("entry").path();
            let text = std::fs::read_to_string(&path).expect("read");
            for layer in ["pipeline", "sink", "record", "cli", "tools", "dataset"] {
                let upward = format!("crate::{layer}");
                assert!(!text.contains(&upward), "{} uses {upward}", path.display());
            }
            checked += 1;
        }
        assert!(checked >= 8, "only {checked} files in {}", dir.display());
    }
}
