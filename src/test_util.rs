//! Helpers for this crate's own tests (the `test-util` feature with `brokers`; only the test
//! targets turn `test-util` on, so the shipped binary and a default build do not contain it).
//!
//! Capture files for the tests come from the program's own `-w` writer
//! ([`crate::pipeline::pcap_writer::PcapWriter`]): nanosecond pcap in this host's byte order,
//! one link type per file. [`PcapFeed`] writes one record at a time (a test feeding a named
//! pipe), [`write_pcap`] a whole file at once.

use crate::pipeline::pcap_writer::{PcapOutConfig, PcapWriter};
use std::io;
use std::path::Path;

/// A pcap file (or named pipe) being written record by record by the crate's `-w` writer.
/// The file header is written (buffered) at [`PcapFeed::create`]; nothing reaches the file
/// before [`PcapFeed::flush`] or [`PcapFeed::finish`].
#[derive(Debug)]
pub struct PcapFeed {
    writer: PcapWriter,
    link_type: u32,
}

impl PcapFeed {
    /// Opens `path` (a regular file is created or emptied; a named pipe waits for its
    /// reader) for pcap records of `link_type`, with `snaplen` in the file header.
    pub fn create(path: &Path, link_type: u32, snaplen: u32) -> io::Result<PcapFeed> {
        let mut cfg = PcapOutConfig::new(path);
        cfg.snaplen = snaplen;
        let writer = PcapWriter::create(cfg, Some(link_type))?;
        Ok(PcapFeed { writer, link_type })
    }

    /// Writes one record: `data` captured whole at `time_ns` (nanoseconds since the epoch).
    pub fn write(&mut self, time_ns: i64, data: &[u8]) -> io::Result<()> {
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        self.writer.write(self.link_type, time_ns, len, data)
    }

    /// Hands what is buffered to the file (a reader of a named pipe sees it at once).
    pub fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }

    /// Flushes and closes the file.
    pub fn finish(self) -> io::Result<()> {
        self.writer.finish(self.link_type)
    }
}

/// Writes `frames`, each captured whole at its time (nanoseconds since the epoch), as a pcap
/// file of `link_type` (snaplen 262,144) at `path`.
pub fn write_pcap<'a>(
    path: &Path,
    link_type: u32,
    frames: impl IntoIterator<Item = (i64, &'a [u8])>,
) -> io::Result<()> {
    let mut feed = PcapFeed::create(path, link_type, 262_144)?;
    for (time_ns, data) in frames {
        feed.write(time_ns, data)?;
    }
    feed.finish()
}
