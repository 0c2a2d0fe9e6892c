//! What the engine needs from an output, and nothing more: the publisher thread hands batches
//! to a [`Deliver`], reads its closing line and what it did not deliver; `--metrics` and
//! `--stats-interval` read its counters through an [`OutputProbe`]; `read` and `capture` open
//! it through an [`OpenOutput`] when the run starts. The outputs themselves (stdout, files,
//! brokers, the delivery thread and spool) live in `sink`, a layer above, which implements
//! these traits; an embedder can implement them too.

use crate::encode::batch::JsonBatch;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// The publisher's side of an output: takes batches in order, and at the end says how it went.
pub trait Deliver: Send {
    /// Takes a batch the caller gives away and gives back an empty batch for the caller's
    /// pool (this one or another), with how many of its messages the output took (the rest
    /// it dropped and counted, see [`Deliver::tally`]). An error ends the run's writing.
    fn deliver(&mut self, batch: JsonBatch) -> (JsonBatch, io::Result<usize>);

    /// Writes out or waits for everything taken so far, and closes the output.
    fn finish(&mut self) -> io::Result<()>;

    /// One line for the exit summary about what the output did beyond writing (broker
    /// outputs: messages published, resent, reconnects). Asked after [`Deliver::finish`].
    fn summary(&self) -> Option<String> {
        None
    }

    /// What this run dropped or left in the spool (asked after [`Deliver::finish`]).
    fn tally(&self) -> Undelivered {
        Undelivered::default()
    }
}

/// Messages a run did not deliver: dropped (and counted), or still in the spool at exit. A
/// run with any of them ends with exit code [`crate::exit::UNDELIVERED`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Undelivered {
    /// Messages dropped (the output's summary line gives the reasons).
    pub dropped: u64,
    /// Messages still in the spool, sent at the next start.
    pub left_in_spool: u64,
    /// Damaged spool segments found at start and moved aside (`*.damaged` files).
    pub damaged_segments: u64,
    /// The spool directory, when there is one.
    pub spool_dir: Option<PathBuf>,
}

impl Undelivered {
    /// Anything the exit code must report.
    pub fn any(&self) -> bool {
        self.dropped > 0 || self.left_in_spool > 0 || self.damaged_segments > 0
    }

    /// The one line that explains exit code [`crate::exit::UNDELIVERED`].
    pub fn line(&self) -> String {
        let dir = self
            .spool_dir
            .as_ref()
            .map_or_else(|| "the spool".to_string(), |d| d.display().to_string());
        let mut parts = Vec::new();
        if self.dropped > 0 {
            parts.push(format!(
                "{} message(s) dropped (counted above)",
                self.dropped
            ));
        }
        if self.left_in_spool > 0 {
            parts.push(format!(
                "{} message(s) still in the spool {dir} (sent at the next start)",
                self.left_in_spool
            ));
        }
        if self.damaged_segments > 0 {
            parts.push(format!(
                "{} damaged spool segment(s) moved aside in {dir} (*.damaged)",
                self.damaged_segments
            ));
        }
        format!("not everything was delivered: {}", parts.join("; "))
    }
}

/// An output's counters read at one moment (see [`OutputProbe::snapshot`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SinkSnapshot {
    /// Messages the destination accepted; `None` for outputs that keep no count of their own
    /// (stdout, files: what they took is what they wrote).
    pub published: Option<u64>,
    /// Messages sent again after a reconnect or an outage: the possible duplicates.
    pub resent: u64,
    /// Connections lost and made again.
    pub reconnects: u64,
    /// Dropped messages by reason (`queue_full`, `spool_full`, `spool_error`, `refused`).
    pub dropped: Vec<(&'static str, u64)>,
    /// A spool is in front of the output (the spool sizes below mean something).
    pub has_spool: bool,
    /// Messages written to the spool.
    pub spooled: u64,
    /// Size of the spool now, in bytes...
    pub spool_bytes: u64,
    /// ...and in messages.
    pub spool_messages: u64,
}

/// Live counters of a running output, readable from other threads while the publisher
/// writes (what an [`OutputProbe`] reads).
pub trait ProbeCounters: Send + Sync {
    /// The counters now.
    fn snapshot(&self) -> SinkSnapshot;

    /// Messages of this run the destination has acknowledged so far (or let go of for good),
    /// counted in the order they were taken: `None` when the output keeps no count (then what
    /// was taken is acknowledged).
    fn acknowledged(&self) -> Option<u64>;
}

/// Shared handles on a running output's counters, for `--metrics` and `--stats-interval`.
#[derive(Clone, Default)]
pub struct OutputProbe {
    /// The destination (no password).
    pub name: String,
    counters: Option<Arc<dyn ProbeCounters>>,
}

impl fmt::Debug for OutputProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutputProbe")
            .field("name", &self.name)
            .field("snapshot", &self.snapshot())
            .finish()
    }
}

impl OutputProbe {
    /// A probe for an output that keeps no counters of its own.
    pub fn named(name: &str) -> OutputProbe {
        OutputProbe {
            name: name.to_string(),
            counters: None,
        }
    }

    /// A probe that reads `counters`.
    pub fn with_counters(name: &str, counters: Arc<dyn ProbeCounters>) -> OutputProbe {
        OutputProbe {
            name: name.to_string(),
            counters: Some(counters),
        }
    }

    /// The counters now (all zero, `published` unknown, for an output without counters).
    pub fn snapshot(&self) -> SinkSnapshot {
        self.counters
            .as_ref()
            .map(|c| c.snapshot())
            .unwrap_or_default()
    }

    /// See [`ProbeCounters::acknowledged`]; `None` for an output without counters.
    pub fn acknowledged(&self) -> Option<u64> {
        self.counters.as_ref().and_then(|c| c.acknowledged())
    }
}

/// An output to open when a run starts: what `read` and `capture` are given (the program
/// gives its parsed `--output`, `sink::Output`). Opening connects (broker outputs), so a
/// wrong address ends the run before any packet is read.
pub trait OpenOutput: Send + Sync + fmt::Debug {
    /// The destination for messages and error lines: never a password.
    fn describe(&self) -> String;

    /// Opens the output, with the probe on its counters.
    fn open(&self) -> io::Result<(Box<dyn Deliver>, OutputProbe)>;

    /// For a capture that switches to `uid`:`gid` (`--user`) once its sockets are open and
    /// opens the output after that: prepares now, as root, what the user could not (a spool
    /// directory under /var/lib), returning the output to open instead of this one. `None`
    /// (the default): nothing to prepare.
    fn prepare_for_user(&self, _uid: u32, _gid: u32) -> io::Result<Option<Arc<dyn OpenOutput>>> {
        Ok(None)
    }
}
