//! `netpipe-fast replay`: sends the frames of pcap/pcapng files out of an interface through a
//! TPACKET_V2 TX ring with qdisc bypass ([`TxRing`]), as the project's own traffic generator
//! for tests and benchmarks.
//!
//! Frames go out in file order, in batches: a batch is queued into the ring and sent with one
//! `send(2)`. With `pps` the batches are paced by the clock (the n-th frame is not sent before
//! start + n / pps), with batches of about a millisecond's worth of frames, so no thread
//! sleeps per frame at high rates. Every frame read is accounted for in the summary: sent,
//! refused by the kernel, not sent because the interface cannot carry it, or skipped because
//! its link type is not Ethernet.

use crate::source::pcap_file::{CaptureReader, ReadError};
use crate::source::ring::RingError;
use crate::source::tx_ring::{TxRing, TxStats};
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// `LINKTYPE_ETHERNET`.
const LINKTYPE_ETHERNET: u32 = 1;
/// Most frames per `send(2)` when not pacing (about half the default ring).
const MAX_BATCH_FRAMES: usize = 512;

/// A `replay` run.
#[derive(Clone, Debug)]
pub struct ReplayJob {
    /// The interface the frames go out of.
    pub iface: String,
    /// pcap/pcapng files, sent in this order on every pass.
    pub files: Vec<PathBuf>,
    /// Frames per second; `None`: as fast as the interface takes them.
    pub pps: Option<u64>,
    /// Passes over the files; 0 means until stopped.
    pub loops: u64,
}

/// What a run did.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ReplaySummary {
    /// Frames read from the files (over all passes).
    pub read_frames: u64,
    /// The TX ring's counts: frames and bytes sent, refused by the kernel, too short or long.
    pub tx: TxStats,
    /// Frames whose link type is not Ethernet (not sent).
    pub not_ethernet: u64,
    /// From the first frame queued to the last one sent.
    pub elapsed: Duration,
    /// Passes over the files begun.
    pub passes: u64,
}

impl ReplaySummary {
    /// Frames sent per second over `elapsed`.
    pub fn rate_pps(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.tx.sent_frames as f64 / secs
        } else {
            0.0
        }
    }
}

impl fmt::Display for ReplaySummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.elapsed.as_secs_f64();
        let mbit = if secs > 0.0 {
            self.tx.sent_bytes as f64 * 8.0 / secs / 1e6
        } else {
            0.0
        };
        write!(
            f,
            "{} frames sent, {} bytes, {:.3} s, {:.0} frames/s ({:.1} Mbit/s), \
             {} rejected by the kernel, {} not sent (too short {}, longer than the MTU allows {}), \
             {} skipped (not Ethernet)",
            self.tx.sent_frames,
            self.tx.sent_bytes,
            secs,
            self.rate_pps(),
            mbit,
            self.tx.rejected_by_kernel,
            self.tx.too_short + self.tx.too_long,
            self.tx.too_short,
            self.tx.too_long,
            self.not_ethernet
        )
    }
}

/// Why a replay could not start or stopped early.
#[derive(Debug)]
pub enum ReplayError {
    /// A capture file could not be opened or read.
    File(ReadError),
    /// The TX ring could not be opened.
    Ring(RingError),
    /// Sending failed (the interface went down or away, or another socket error).
    Send {
        /// The interface sent on.
        iface: String,
        /// The error `send(2)` returned.
        error: io::Error,
    },
}

impl ReplayError {
    /// The exit codes of `capture` and `read` ([`crate::exit`]): permission, no interface or
    /// down, other socket errors, not Ethernet, the file errors.
    pub fn exit_code(&self) -> i32 {
        use crate::exit;
        match self {
            ReplayError::File(e) => e.exit_code(),
            ReplayError::Ring(e) => e.exit_code(),
            ReplayError::Send { error, .. } => i32::from(match error.raw_os_error() {
                Some(libc::ENETDOWN) | Some(libc::ENODEV) | Some(libc::ENXIO) => exit::NO_INTERFACE,
                Some(libc::EPERM) | Some(libc::EACCES) => exit::PERMISSION,
                _ => exit::SOCKET,
            }),
        }
    }
}

impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplayError::File(e) => write!(f, "{e}"),
            // The ring's own words speak of live capture; replay sends.
            ReplayError::Ring(e) if e.kind() == crate::source::ring::RingErrorKind::Permission => {
                write!(
                    f,
                    "interface {:?}: replay needs CAP_NET_RAW to send raw frames (run as root, \
                     or grant it with `setcap cap_net_raw=eip` on the binary)",
                    e.iface()
                )
            }
            ReplayError::Ring(e) => write!(f, "{e}"),
            ReplayError::Send { iface, error } => {
                write!(f, "interface {iface:?}: sending failed: {error}")
            }
        }
    }
}

impl std::error::Error for ReplayError {}

/// The result of a run: what was done, and why it stopped early, if it did.
#[derive(Debug)]
pub struct ReplayOutcome {
    /// What was read and sent, up to the end or the error.
    pub summary: ReplaySummary,
    /// Why the run ended early; `None` when every pass finished or `stop` was set.
    pub error: Option<ReplayError>,
    /// False when nothing was attempted (a file or the ring failed to open).
    pub started: bool,
}

impl ReplayJob {
    /// Frames per `send(2)`: about a millisecond's worth when pacing, else as many as half
    /// the ring holds (up to [`MAX_BATCH_FRAMES`]).
    fn batch_frames(&self, ring_frames: usize) -> usize {
        let most = (ring_frames / 2).clamp(1, MAX_BATCH_FRAMES);
        match self.pps {
            Some(pps) => usize::try_from(pps / 1000).unwrap_or(most).clamp(1, most),
            None => most,
        }
    }

    /// Opens every file (so a wrong name fails before anything is sent), then the ring,
    /// then sends until the passes are done or `stop` is set.
    pub fn run(&self, stop: &AtomicBool) -> ReplayOutcome {
        let failed = |error| ReplayOutcome {
            summary: ReplaySummary::default(),
            error: Some(error),
            started: false,
        };
        for file in &self.files {
            if let Err(e) = CaptureReader::open(file) {
                return failed(ReplayError::File(e));
            }
        }
        let ring = match TxRing::open(&self.iface) {
            Ok(r) => r,
            Err(e) => return failed(ReplayError::Ring(e)),
        };
        let mut run = Run {
            batch: self.batch_frames(ring.frame_count()),
            ring,
            summary: ReplaySummary::default(),
            started: None,
            pps: self.pps.filter(|&p| p > 0),
            stop,
        };
        let error = run.passes(self);
        let mut summary = run.summary;
        summary.tx = run.ring.stats();
        summary.elapsed = run.started.map(|s| s.elapsed()).unwrap_or_default();
        ReplayOutcome {
            summary,
            error,
            started: true,
        }
    }
}

/// The state of a run while it sends.
struct Run<'a> {
    ring: TxRing,
    batch: usize,
    summary: ReplaySummary,
    started: Option<Instant>,
    pps: Option<u64>,
    stop: &'a AtomicBool,
}

impl Run<'_> {
    fn send_error(&self, error: io::Error) -> ReplayError {
        ReplayError::Send {
            iface: self.ring.iface().to_owned(),
            error,
        }
    }

    fn passes(&mut self, job: &ReplayJob) -> Option<ReplayError> {
        let mut pass = 0u64;
        while job.loops == 0 || pass < job.loops {
            pass += 1;
            self.summary.passes = pass;
            for file in &job.files {
                if let Err(e) = self.one_file(file) {
                    // What was queued before the failure still goes out.
                    let flushed = self.ring.flush().err();
                    return Some(e).or(flushed.map(|e| self.send_error(e)));
                }
                if self.stop.load(Ordering::Relaxed) {
                    break;
                }
            }
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
        }
        self.ring.flush().err().map(|e| self.send_error(e))
    }

    fn one_file(&mut self, file: &std::path::Path) -> Result<(), ReplayError> {
        let mut reader = CaptureReader::open(file).map_err(ReplayError::File)?;
        loop {
            let frame = match reader.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => return Ok(()),
                Err(e) => return Err(ReplayError::File(e)),
            };
            self.summary.read_frames += 1;
            if frame.link_type != LINKTYPE_ETHERNET {
                self.summary.not_ethernet += 1;
                continue;
            }
            self.started.get_or_insert_with(Instant::now);
            // Not-sent frames are counted by the ring.
            let queued = self.ring.queue(frame.data).map_err(|e| ReplayError::Send {
                iface: self.ring.iface().to_owned(),
                error: e,
            })?;
            if queued.is_ok() && self.ring.pending() >= self.batch {
                self.flush_and_pace()?;
                if self.stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
            }
        }
    }

    /// Sends the batch, then, when pacing, waits until the next frame is due.
    fn flush_and_pace(&mut self) -> Result<(), ReplayError> {
        self.ring.flush().map_err(|e| self.send_error(e))?;
        let (Some(pps), Some(start)) = (self.pps, self.started) else {
            return Ok(());
        };
        let done = self.ring.stats().sent_frames + self.ring.stats().rejected_by_kernel;
        let due = start + Duration::from_secs_f64(done as f64 / pps as f64);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(pps: Option<u64>) -> ReplayJob {
        ReplayJob {
            iface: "lo".into(),
            files: vec![],
            pps,
            loops: 1,
        }
    }

    #[test]
    fn batches_are_about_a_millisecond_when_pacing() {
        assert_eq!(job(None).batch_frames(2048), 512);
        assert_eq!(job(None).batch_frames(64), 32);
        assert_eq!(job(Some(400_000)).batch_frames(2048), 400);
        assert_eq!(job(Some(10)).batch_frames(2048), 1);
        assert_eq!(job(Some(10_000_000)).batch_frames(2048), 512);
    }

    #[test]
    fn summary_line() {
        let s = ReplaySummary {
            read_frames: 11,
            tx: TxStats {
                sent_frames: 10,
                sent_bytes: 640,
                rejected_by_kernel: 0,
                too_short: 0,
                too_long: 1,
                ..TxStats::default()
            },
            not_ethernet: 0,
            elapsed: Duration::from_millis(500),
            passes: 1,
        };
        assert_eq!(
            s.to_string(),
            "10 frames sent, 640 bytes, 0.500 s, 20 frames/s (0.0 Mbit/s), 0 rejected by the \
             kernel, 1 not sent (too short 0, longer than the MTU allows 1), 0 skipped (not \
             Ethernet)"
        );
    }

    #[test]
    fn missing_file_is_exit_3_before_any_socket() {
        let mut j = job(None);
        j.files = vec![PathBuf::from("/nonexistent/netpipe-fast-replay.pcap")];
        let out = j.run(&AtomicBool::new(false));
        assert!(!out.started);
        assert_eq!(out.error.map(|e| e.exit_code()), Some(3));
    }
}
