//! What every recorder input shares, and what the recorder knows of an input: the [`Input`]
//! trait, [`Fetch`], [`InputError`], the idle wait of broker inputs and the redelivery check's
//! hashes ([`body_hash`], [`HashBag`]). The inputs (`input.rs` for files and Redis lists,
//! `amqp_input.rs`, `redis_stream.rs`, `stream_input.rs`) import these; only `input::open`
//! imports the inputs, so no two of them import each other.

use super::csv::InputState;
use std::collections::HashMap;
use std::time::Duration;

/// How long a broker input waits for a message before saying it is idle.
pub const IDLE_WAIT: Duration = Duration::from_millis(500);

/// What `next` got.
pub enum Fetch {
    /// A message (its bytes are in the buffer given to `next`).
    Message,
    /// Nothing arrived for a while (brokers only).
    Idle,
    /// The input ended (files only).
    End,
    /// A line longer than the cap, skipped to its newline and not kept: its length in bytes.
    TooLong(u64),
}

/// An input failure once running (not a bad message: those are rejected and recorded).
#[derive(Debug)]
pub struct InputError(pub String);

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A source of recorded messages (a file, stdin, a Redis list or stream, an AMQP queue, a
/// RabbitMQ stream), read one message at a time and acknowledged per committed snapshot.
pub trait Input {
    /// The next message into `buf`. `room`: how many more messages the coming snapshot takes
    /// (a broker input never takes more ahead, so a commit covers all it holds).
    fn next(&mut self, buf: &mut Vec<u8>, room: usize) -> Result<Fetch, InputError>;
    /// Where the last message came from, for error reports.
    fn position(&self) -> String;
    /// The last message taken goes back to its queue (STOP_FILE); every message taken before
    /// it is in the coming snapshot.
    fn give_back_last(&mut self) -> Result<(), InputError>;
    /// Messages taken from the broker but not handed out go back (before a final snapshot).
    fn release_unused(&mut self) -> Result<(), InputError> {
        Ok(())
    }
    /// What the state must hold once the messages taken so far are committed.
    fn state(&self) -> InputState;
    /// Called after the commit: acknowledge every message taken so far.
    fn committed(&mut self) -> Result<(), InputError>;
    /// Called right after the state file is written, before [`Input::committed`]: records the
    /// commit with the broker where another recorder can see it (Redis).
    fn commit_mark(&mut self) -> Result<(), InputError> {
        Ok(())
    }
    /// Messages skipped because an earlier run had already recorded them.
    fn skipped(&self) -> u64 {
        0
    }
    /// Messages waiting to be acknowledged that are not rows (skipped duplicates).
    fn unacked_skips(&self) -> u64 {
        0
    }
    /// Called right before a commit: may the messages taken be committed (Redis: the lease
    /// is still held, so no other recorder took them back)?
    fn before_commit(&mut self) -> Result<(), InputError> {
        Ok(())
    }
}

/// FNV-1a, 64 bits: a stable hash of a message body for the redelivery check.
pub fn body_hash(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// A multiset of hashes.
#[derive(Default)]
pub struct HashBag(
    /// Each hash and how many times the bag holds it.
    pub HashMap<String, u32>,
);

impl HashBag {
    /// The bag holding each hash of `list` (as often as it appears there).
    pub fn from_list(list: &[String]) -> HashBag {
        let mut bag = HashBag::default();
        for h in list {
            *bag.0.entry(h.clone()).or_default() += 1;
        }
        bag
    }
    /// Adds one `h`.
    pub fn add(&mut self, h: String) {
        *self.0.entry(h).or_default() += 1;
    }
    /// Removes one `h`; true when it was there.
    pub fn take(&mut self, h: &str) -> bool {
        match self.0.get_mut(h) {
            Some(n) if *n > 1 => {
                *n -= 1;
                true
            }
            Some(_) => {
                self.0.remove(h);
                true
            }
            None => false,
        }
    }
    /// Every hash, as often as the bag holds it (in no particular order).
    pub fn to_list(&self) -> Vec<String> {
        let mut v = Vec::new();
        for (h, &n) in &self.0 {
            for _ in 0..n {
                v.push(h.clone());
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_bag_counts() {
        let mut b = HashBag::from_list(&["a".into(), "a".into(), "b".into()]);
        assert!(b.take("a") && b.take("a") && !b.take("a"));
        assert!(b.take("b") && !b.take("c"));
        assert!(b.to_list().is_empty());
        assert_eq!(body_hash(b""), "cbf29ce484222325");
    }
}
