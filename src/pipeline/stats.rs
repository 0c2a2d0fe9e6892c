//! Counters every stage keeps, merged into the exit summary.

use crate::decode::ErrorKind;
use crate::source::reassembly::ReassemblyStats;
use std::fmt;

/// Decode-side counters (one set per worker, added up at the end).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DecodeStats {
    /// Frames decoded and encoded, malformed ones included.
    pub decoded: u64,
    /// Packets with a truncated or malformed layer, by [`ErrorKind::index`].
    pub malformed: [u64; ErrorKind::ALL.len()],
}

impl DecodeStats {
    /// Adds `other`'s counts to these (one worker's into the run's).
    pub fn add(&mut self, other: &DecodeStats) {
        self.decoded += other.decoded;
        for (a, b) in self.malformed.iter_mut().zip(other.malformed) {
            *a += b;
        }
    }

    /// Malformed packets of every kind.
    pub fn malformed_total(&self) -> u64 {
        self.malformed.iter().sum()
    }
}

/// What a `read` run did, for the exit summary and for library callers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Frames read from the files.
    pub read: u64,
    /// Frames the filter rejected.
    pub filtered_out: u64,
    /// Messages written to the sink.
    pub written: u64,
    /// Messages encoded but not written because the output failed or closed.
    pub not_written: u64,
    /// The reader of the output went away (a closed pipe, as with `| head`): not an error.
    pub output_closed: bool,
    /// Decoded and malformed packets, all workers.
    pub decode: DecodeStats,
    /// `--reassemble`: what the reassembler did (the binary prints [`ReassemblyStats::line`]
    /// after the summary).
    pub reassembly: Option<ReassemblyStats>,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} packets read, {} written, {} filtered out, {} malformed",
            self.read,
            self.written,
            self.filtered_out,
            self.decode.malformed_total()
        )?;
        if self.decode.malformed_total() > 0 {
            let mut sep = " (";
            for kind in ErrorKind::ALL {
                let n = self.decode.malformed[kind.index()];
                if n > 0 {
                    write!(f, "{sep}{} {n}", kind.as_str())?;
                    sep = ", ";
                }
            }
            f.write_str(")")?;
        }
        if self.not_written > 0 {
            let why = if self.output_closed {
                "output closed"
            } else {
                "output failed"
            };
            write!(f, ", {} not written ({why})", self.not_written)?;
        }
        Ok(())
    }
}
