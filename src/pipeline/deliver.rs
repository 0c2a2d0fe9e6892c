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

    /// Delivers `batches` in order, as one [`Deliver::deliver`] call each would (every
    /// element is replaced by the empty batch handed back), setting `taken[i]` to the
    /// messages the output took of batch `i`. Stops at the first error, returned with the
    /// index of the batch it hit: the batches before it were delivered, that one and the rest
    /// were not (their `taken` stays 0). Outputs that write several batches with one system
    /// call (stdout and files: `writev`) override it; `taken` is at least as long as
    /// `batches`.
    fn deliver_batches(
        &mut self,
        batches: &mut [JsonBatch],
        taken: &mut [usize],
    ) -> Result<(), (usize, io::Error)> {
        for (i, slot) in batches.iter_mut().enumerate() {
            let (back, result) = self.deliver(std::mem::take(slot));
            *slot = back;
            match result {
                Ok(n) => {
                    if let Some(t) = taken.get_mut(i) {
                        *t = n;
                    }
                }
                Err(e) => return Err((i, e)),
            }
        }
        Ok(())
    }

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

/// Most batches handed to one `writev` by [`write_batches_vectored`] (Linux's `IOV_MAX` is
/// 1024; the publisher rarely has more than a few ready).
const MAX_IOVECS: usize = 64;

/// Writes the messages of `batches` to `out`, in order, with as few `write_vectored` calls as
/// it takes (one `writev` per up to 64 batches when the output takes everything at once).
/// A short write, which pipes, sockets and full disks give, goes on from the first byte not
/// written; `Interrupted` is retried. An error says which batch it hit: the batches before it
/// were written whole, that one perhaps in part.
pub fn write_batches_vectored<W: io::Write + ?Sized>(
    out: &mut W,
    batches: &[JsonBatch],
) -> Result<(), (usize, io::Error)> {
    // The next byte to write: batch `first`, offset `offset` in its messages.
    let (mut first, mut offset) = (0usize, 0usize);
    loop {
        while batches
            .get(first)
            .is_some_and(|b| b.bytes().len() <= offset)
        {
            first += 1;
            offset = 0;
        }
        let Some(rest) = batches.get(first..).filter(|r| !r.is_empty()) else {
            return Ok(());
        };
        let mut slices = [io::IoSlice::new(&[]); MAX_IOVECS];
        let mut count = 0;
        for (slice, batch) in slices.iter_mut().zip(rest) {
            let skip = if count == 0 { offset } else { 0 };
            *slice = io::IoSlice::new(batch.bytes().get(skip..).unwrap_or_default());
            count += 1;
        }
        match out.write_vectored(slices.get(..count).unwrap_or_default()) {
            Ok(0) => return Err((first, io::ErrorKind::WriteZero.into())),
            Ok(mut written) => {
                while written > 0 {
                    let Some(batch) = batches.get(first) else {
                        break;
                    };
                    let left = batch.bytes().len().saturating_sub(offset);
                    if written >= left {
                        written -= left;
                        first += 1;
                        offset = 0;
                    } else {
                        offset += written;
                        written = 0;
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err((first, e)),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes at most `step` bytes per call (cycling through `steps`), fails with
    /// `Interrupted` every third call, and with an error once `fail_at` bytes are in.
    struct Stingy {
        out: Vec<u8>,
        steps: &'static [usize],
        calls: usize,
        fail_at: Option<usize>,
    }

    impl io::Write for Stingy {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[io::IoSlice::new(buf)])
        }

        fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
            self.calls += 1;
            if self.calls % 3 == 0 {
                return Err(io::ErrorKind::Interrupted.into());
            }
            if self.fail_at.is_some_and(|at| self.out.len() >= at) {
                return Err(io::Error::other("disk full"));
            }
            let mut room = self.steps[self.calls % self.steps.len()];
            let before = self.out.len();
            for b in bufs {
                let n = room.min(b.len());
                self.out.extend_from_slice(&b[..n]);
                room -= n;
            }
            Ok(self.out.len() - before)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn batch(messages: &[&str]) -> JsonBatch {
        let mut b = JsonBatch::with_capacity();
        for m in messages {
            b.buf.extend_from_slice(m.as_bytes());
            b.buf.push(b'\n');
            let end = b.buf.len();
            b.commit(end);
        }
        b
    }

    #[test]
    fn short_writes_and_interruptions_write_every_byte_once_in_order() {
        let batches = [
            batch(&["{\"a\":1}", "{\"b\":22}"]),
            batch(&[]),
            batch(&["{\"c\":333}"]),
            batch(&["{\"d\":4444}", "{}", "{\"e\":5}"]),
        ];
        let want: Vec<u8> = batches.iter().flat_map(|b| b.bytes().to_vec()).collect();
        for steps in [&[1usize][..], &[3, 7, 1], &[5, 1000], &[1 << 20]] {
            let mut out = Stingy {
                out: Vec::new(),
                steps,
                calls: 0,
                fail_at: None,
            };
            assert!(write_batches_vectored(&mut out, &batches).is_ok());
            assert_eq!(out.out, want, "steps {steps:?}");
        }
        // Everything in one call when the output takes it.
        let mut out = Stingy {
            out: Vec::new(),
            steps: &[1 << 20],
            calls: 1,
            fail_at: None,
        };
        assert!(write_batches_vectored(&mut out, &batches).is_ok());
        assert_eq!((out.out.len(), out.calls), (want.len(), 2));
    }

    #[test]
    fn an_error_names_the_batch_it_hit() {
        let batches = [
            batch(&["0123456789"]),
            batch(&["abcdefghij"]),
            batch(&["x"]),
        ];
        // 11 bytes in: the first batch is whole, the second not started; 15 in: inside it.
        for (fail_at, hit, kept) in [(11, 1, 11), (15, 1, 15), (0, 0, 0), (22, 2, 22)] {
            let mut out = Stingy {
                out: Vec::new(),
                steps: &[4, 7],
                calls: 0,
                fail_at: Some(fail_at),
            };
            let (at, e) = write_batches_vectored(&mut out, &batches).unwrap_err();
            assert_eq!((at, out.out.len()), (hit, kept), "fail at {fail_at}");
            assert_eq!(e.to_string(), "disk full");
        }
        let mut zero = Stingy {
            out: Vec::new(),
            steps: &[0],
            calls: 0,
            fail_at: None,
        };
        let (at, e) = write_batches_vectored(&mut zero, &batches).unwrap_err();
        assert_eq!((at, e.kind()), (0, io::ErrorKind::WriteZero));
    }
}
