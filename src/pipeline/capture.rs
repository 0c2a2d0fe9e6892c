//! `capture`: live packets from TPACKET_V3 rings through the worker code to a sink.
//!
//! One [`Ring`] per worker, all joined in one fanout group, each worker thread pinned to its
//! own core when it can be. A worker decodes and encodes frames straight from its ring block
//! into a [`JsonBatch`] (the bytes never leave the thread) and hands full batches to the one
//! publisher thread, which writes them as they come (live capture promises no order across
//! workers) and hands the buffers back. The pool of batches is bounded: a slow sink makes the
//! workers wait, the rings fill, and the kernel drops and counts (`tp_drops`), so nothing is
//! lost without a counter saying so.
//!
//! The run stops on `count` (exact over all workers: a shared counter hands out packet
//! numbers), `duration`, the caller's stop flag (set by SIGINT/SIGTERM in the binary), an
//! output failure or a ring failure. On a flag or duration stop the workers first drain what
//! the kernel has already put in their rings (bounded in time), then the sink is flushed.

use super::deliver::{Deliver, OpenOutput, OutputProbe, Undelivered};
use super::metrics::{LatencyFeed, Metrics, RunCounters, WorkerCounters};
use super::pcap_writer::{PcapOutConfig, PcapWriter};
use super::publish::{BatchWriter, Published};
use super::stats::DecodeStats;
use super::worker::Worker;
use crate::decode::LinkType;
use crate::encode::batch::{JsonBatch, WORKER_JSON_ROOM_BYTES};
use crate::encode::FrameMeta;
use crate::source::filter::{BpfFilter, FilterError};
use crate::source::privilege::{PrivilegeError, TargetUser};
use crate::source::reassembly::{self, Reassembler, ReassemblyStats};
use crate::source::ring::{
    FanoutMode, Ring, RingConfig, RingError, RingStats, ANY_INTERFACE, MIN_BLOCK_COUNT,
};
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Batches in flight per worker (bounds memory; the kernel ring is the real buffer).
const BUFFERS_PER_WORKER: usize = 3;
/// How long a worker waits in poll(2) before looking at the stop flag again.
const POLL_TIMEOUT: Duration = Duration::from_millis(50);
/// A batch that is not full goes to the publisher after at most this long, so a quiet link
/// still shows its packets promptly.
const BATCH_MAX_AGE: Duration = Duration::from_millis(50);
/// How often a worker folds its ring's kernel counters into the shared running totals.
const STATS_REFRESH: Duration = Duration::from_millis(200);
/// How often the coordinating thread checks the stop flag and the deadline.
const TICK: Duration = Duration::from_millis(20);
/// Upper bound on draining the rings after a stop (traffic may keep coming).
const DRAIN_MAX: Duration = Duration::from_millis(500);

/// A `capture` run: which interface, how to split it, when to stop, where to write.
#[derive(Clone, Debug)]
pub struct CaptureJob {
    /// Interface name, or `any` ([`ANY_INTERFACE`]) for every interface.
    pub iface: String,
    /// tcpdump filter expression, compiled by libpcap for Ethernet and run in the kernel.
    pub filter: Option<String>,
    /// Stop after exactly this many packets have been handed to the encoder (all workers).
    pub count: Option<u64>,
    /// Stop this long after the workers have started.
    pub duration: Option<Duration>,
    /// Worker threads, each with its own ring.
    pub workers: usize,
    /// How the kernel spreads frames over the workers' rings (one fanout group).
    pub fanout: FanoutMode,
    /// CPU of each worker, in order; `None` pins worker i to the i-th CPU this process may
    /// run on.
    pub cpus: Option<Vec<usize>>,
    /// Ring memory for all workers together.
    pub ring_budget_bytes: usize,
    /// Size of one ring block; a multiple of the page size.
    pub block_bytes: usize,
    /// A block that is not full is handed to the worker after this many milliseconds.
    pub block_timeout_ms: u32,
    /// Bytes kept of each frame.
    pub snaplen: u32,
    /// Put the interface in promiscuous mode while capturing.
    pub promisc: bool,
    /// Hand a running summary to the `notify` callback this often.
    pub stats_interval: Option<Duration>,
    /// `source` of every message.
    pub source_host: String,
    /// Where the messages go (opened after the rings, and after `drop_to`).
    pub output: Arc<dyn OpenOutput>,
    /// Community ID seed and decode choices.
    pub packet: super::worker::PacketOptions,
    /// Switch to this user once the rings are open, before the output is opened
    /// (`--user`, like `tcpdump -Z`).
    pub drop_to: Option<TargetUser>,
    /// `-w`: the frames also go to a pcap/pcapng file (rotated as configured), written by the
    /// workers straight from their ring blocks.
    pub pcap_out: Option<PcapOutConfig>,
}

/// Why a capture could not start or stopped early. Everything captured before was written.
#[derive(Debug)]
pub enum CaptureError {
    /// A ring could not be opened (permission, interface, settings).
    Ring(RingError),
    /// The filter expression did not compile (or the compiled program was refused).
    Filter(FilterError),
    /// `--cpus` does not fit the workers.
    Config(String),
    /// A ring failed while capturing (e.g. the interface went down or away).
    Capture {
        /// The interface of the failed ring.
        iface: String,
        /// The error of the ring's poll or read.
        error: io::Error,
    },
    /// The output could not be opened or failed while writing.
    Output {
        /// The output as [`OpenOutput::describe`] names it (passwords redacted).
        dest: String,
        /// What went wrong.
        error: io::Error,
    },
    /// `-w`: the capture file could not be created or written.
    PcapOut {
        /// The `-w` path.
        dest: String,
        /// What went wrong.
        error: io::Error,
    },
    /// A thread could not be started.
    Thread(io::Error),
    /// `--user`: the switch to the user failed.
    User(PrivilegeError),
}

impl CaptureError {
    /// Process exit code (from [`crate::exit`]): the ring's own (permission, missing or down
    /// interface, socket, bad settings, filter), bad filter, bad `--cpus` (usage), missing
    /// interface or socket for a failure while running, output failure, no thread.
    pub fn exit_code(&self) -> i32 {
        use crate::exit;
        i32::from(match self {
            CaptureError::Ring(e) => return e.exit_code(),
            CaptureError::User(e) => return e.exit_code(),
            CaptureError::Filter(_) => exit::FILTER,
            CaptureError::Config(_) => exit::USAGE,
            CaptureError::Capture { error, .. } => match error.raw_os_error() {
                Some(libc::ENETDOWN) | Some(libc::ENODEV) | Some(libc::ENXIO) => exit::NO_INTERFACE,
                _ => exit::SOCKET,
            },
            CaptureError::Output { .. } | CaptureError::PcapOut { .. } => exit::OUTPUT_FAILED,
            CaptureError::Thread(_) => exit::INTERNAL,
        })
    }
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaptureError::Ring(e) => write!(f, "{e}"),
            CaptureError::Filter(e) => write!(f, "filter: {e}"),
            CaptureError::Config(m) => f.write_str(m),
            CaptureError::Capture { iface, error } => {
                write!(f, "interface {iface:?}: capture failed: {error}")
            }
            CaptureError::Output { dest, error } => write!(f, "cannot write to {dest}: {error}"),
            CaptureError::PcapOut { dest, error } => write!(f, "-w {dest}: {error}"),
            CaptureError::Thread(e) => write!(f, "cannot start a thread: {e}"),
            CaptureError::User(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for CaptureError {}

/// What a capture did, tcpdump style.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CaptureSummary {
    /// Frames handed to the encoder.
    pub captured: u64,
    /// Frames that passed the kernel filter, dropped ones included (sum of `tp_packets`).
    pub received: u64,
    /// Frames the kernel dropped because the ring was full (sum of `tp_drops`).
    pub kernel_drops: u64,
    /// Times a ring's queue was frozen (sum of `tp_freeze_q_cnt`).
    pub freezes: u64,
    /// Encoded but not written because the output failed or closed.
    pub not_written: u64,
    /// Messages the output took.
    pub written: u64,
    /// Blocks whose layout the kernel got wrong (their remaining frames were skipped).
    pub bad_blocks: u64,
    /// Times a worker had to wait for the output (no empty batch ready): back-pressure.
    pub queue_full_waits: u64,
    /// Decoded and malformed packets, all workers.
    pub decode: DecodeStats,
    /// `--reassemble`: the reassemblers' counts, all workers.
    pub reassembly: Option<ReassemblyStats>,
}

impl fmt::Display for CaptureSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} packets captured, {} received by filter, {} dropped by kernel, {} queue freezes, \
             {} dropped inside netpipe-fast, {} written",
            self.captured,
            self.received,
            self.kernel_drops,
            self.freezes,
            self.not_written,
            self.written
        )?;
        if self.decode.malformed_total() > 0 {
            write!(f, ", {} malformed", self.decode.malformed_total())?;
        }
        if self.bad_blocks > 0 {
            write!(f, ", {} bad ring blocks", self.bad_blocks)?;
        }
        if self.queue_full_waits > 0 {
            write!(f, ", {} queue-full waits", self.queue_full_waits)?;
        }
        Ok(())
    }
}

/// The result of a run.
#[derive(Debug)]
pub struct CaptureOutcome {
    /// What was captured and written (all zero when the capture never started).
    pub summary: CaptureSummary,
    /// Why the run could not start or stopped early; `None` for a count, duration or flag stop.
    pub error: Option<CaptureError>,
    /// The sink's own line for the summary (broker sinks: published, resent, reconnects).
    pub sink_report: Option<String>,
    /// Messages dropped or left in the spool: the run ends with exit code 16 if any (as it
    /// does when the kernel dropped packets, see [`CaptureOutcome::loss_lines`]).
    pub undelivered: Undelivered,
    /// False when the capture never started (rings, filter or sink failed to open): then
    /// there is no summary worth printing.
    pub started: bool,
    /// `-w`: frames written to the capture file(s), and how many files were completed.
    pub pcap_written: Option<(u64, u64)>,
}

impl CaptureOutcome {
    /// The closing lines that explain exit code 16 ([`crate::exit::UNDELIVERED`]) for a
    /// run that ended without an error, one per place where something was lost: the kernel's
    /// capture rings, then the output (dropped or left in the spool). Empty: nothing lost.
    ///
    /// Queue freezes (`tp_freeze_q_cnt`) are no loss by themselves: the block-retire timer
    /// can freeze the queue with no packet waiting, and every packet that arrives while it is
    /// frozen is counted in `tp_drops` (net/packet/af_packet.c), so drops alone decide.
    pub fn loss_lines(&self, iface: &str) -> Vec<String> {
        let mut lines = Vec::new();
        let s = &self.summary;
        if s.kernel_drops > 0 {
            lines.push(format!(
                "not everything was captured: {} packet(s) dropped by the kernel on {iface} \
                 (capture ring full; {} queue freeze(s)); a larger --ring-mb, more --workers \
                 or a faster output helps",
                s.kernel_drops, s.freezes
            ));
        }
        if self.undelivered.any() {
            lines.push(self.undelivered.line());
        }
        lines
    }

    fn failed(error: CaptureError) -> CaptureOutcome {
        CaptureOutcome {
            summary: CaptureSummary::default(),
            error: Some(error),
            sink_report: None,
            undelivered: Undelivered::default(),
            started: false,
            pcap_written: None,
        }
    }
}

/// What a worker hands back when it ends.
struct WorkerEnd {
    decode: DecodeStats,
    /// `--reassemble`: this worker's reassembler's counts (incomplete ones counted at the end).
    reassembly: Option<ReassemblyStats>,
    ring: RingStats,
    captured: u64,
    queue_full_waits: u64,
    error: Option<io::Error>,
    pcap_error: Option<io::Error>,
}

/// The original's capture presets (its capture_*.py scripts, REFERENCE section 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// `arp`.
    Arp,
    /// `icmp`.
    Icmp,
    /// Web traffic: TCP ports 80, 443, 8010 and 8443.
    Tcp,
    /// TCP port 22.
    Ssh,
    /// TCP port 23.
    Telnet,
    /// `udp`.
    Udp,
}

impl Preset {
    /// The preset's filter expression, exactly as the original used it.
    pub fn expression(self) -> &'static str {
        match self {
            Preset::Arp => "arp",
            Preset::Icmp => "icmp",
            Preset::Tcp => "tcp and ( port 80 or port 443 or port 8010 or port 8443 )",
            Preset::Ssh => "tcp and ( port 22 )",
            Preset::Telnet => "tcp and ( port 23 )",
            Preset::Udp => "udp",
        }
    }
}

/// The one kernel filter for a capture: the preset and the user's expression (both must
/// match), minus the output's own broker connection (unless `own_traffic` is None), so that
/// published packets are not captured again.
pub fn effective_filter(
    filter: Option<&str>,
    preset: Option<Preset>,
    own_traffic: Option<(&str, u16)>,
) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    if let Some(p) = preset {
        parts.push(format!("( {} )", p.expression()));
    }
    if let Some(f) = filter.map(str::trim).filter(|f| !f.is_empty()) {
        parts.push(format!("( {f} )"));
    }
    if let Some((host, port)) = own_traffic {
        parts.push(format!("not ( host {host} and tcp port {port} )"));
    }
    if parts.is_empty() {
        None
    } else {
        Some(parts.join(" and "))
    }
}

impl CaptureJob {
    /// Opens the rings and the sink and captures until a stop condition; `stop` is checked
    /// throughout (the binary sets it from SIGINT/SIGTERM). `notify` gets warnings and the
    /// running summaries, one line each.
    pub fn run(&self, stop: &AtomicBool, notify: &mut dyn FnMut(&str)) -> CaptureOutcome {
        self.run_observed(stop, notify, None)
    }

    /// As [`CaptureJob::run`], with the run's counters on `metrics` (`--metrics`).
    pub fn run_observed(
        &self,
        stop: &AtomicBool,
        notify: &mut dyn FnMut(&str),
        metrics: Option<&Arc<Metrics>>,
    ) -> CaptureOutcome {
        let workers = self.workers.max(1);
        if self.packet.reassembly.is_some() && workers > 1 && self.fanout != FanoutMode::Hash {
            // Only the hash fanout keeps every fragment of a datagram on one ring: the
            // kernel hashes an IP fragment, first one included, by its addresses and
            // protocol, without ports (FanoutMode::type_flags cites the kernel source). It
            // does not reassemble before the fanout (no PACKET_FANOUT_FLAG_DEFRAG), so every
            // fragment is captured, as with one worker, and each worker's reassembler sees
            // all the fragments of its datagrams.
            return CaptureOutcome::failed(CaptureError::Config(format!(
                "--reassemble with {workers} workers needs --fanout hash (with {} the \
                 fragments of one datagram are spread over the workers)",
                self.fanout.as_str()
            )));
        }
        // On `any` the frames are cooked (SLL2) in user space, so the filter runs there too,
        // compiled for SLL2; elsewhere the kernel runs it, compiled for Ethernet.
        let any = self.iface == ANY_INTERFACE;
        let link = if any {
            LinkType::LinuxSll2
        } else {
            LinkType::Ethernet
        };
        let compiled = match &self.filter {
            Some(expr) => match BpfFilter::compile(expr, link.number()) {
                Ok(f) => Some(f),
                Err(e) => return CaptureOutcome::failed(CaptureError::Filter(e)),
            },
            None => None,
        };
        // A program the kernel would refuse (libpcap's optimiser reads a scratch cell it
        // never wrote, e.g. `pppoes` on some link types) runs in user space, as libpcap
        // does: every frame then comes through the ring and the workers drop the rest.
        let refused = compiled.as_ref().and_then(|f| f.kernel_refusal());
        if let Some(why) = refused {
            notify(&format!(
                "filter runs in user space: the kernel refuses the program ({why})"
            ));
        }
        let (filter, user_filter) = if any || refused.is_some() {
            (None, compiled)
        } else {
            (compiled, None)
        };
        let cpus = match self.worker_cpus(workers, notify) {
            Ok(c) => c,
            Err(e) => return CaptureOutcome::failed(e),
        };
        let mut rings = Vec::with_capacity(workers);
        let per_ring = self.ring_config(workers, filter);
        for _ in 0..workers {
            match Ring::open(&per_ring) {
                Ok(ring) => {
                    for w in ring.warnings() {
                        notify(w);
                    }
                    rings.push(ring);
                }
                Err(e) => return CaptureOutcome::failed(CaptureError::Ring(e)),
            }
        }
        if per_ring.block_count == MIN_BLOCK_COUNT
            && self.ring_budget_bytes / workers < MIN_BLOCK_COUNT * self.block_bytes
        {
            notify(&format!(
                "ring budget too small for {workers} worker(s) with {} KiB blocks; \
                 using {MIN_BLOCK_COUNT} blocks per ring",
                self.block_bytes / 1024
            ));
        }
        // Every socket this capture needs is open and bound: root is no longer needed. The
        // output is opened after the switch, so a file is created as the user; its spool
        // directory is checked and opened before it, as root, and given to the user (the
        // default one is under /var/lib/netpipe-fast, which only root can reach).
        let mut output = Arc::clone(&self.output);
        if let Some(user) = &self.drop_to {
            output = match output.prepare_for_user(user.uid, user.gid) {
                Ok(prepared) => prepared.unwrap_or(output),
                Err(error) => {
                    return CaptureOutcome::failed(CaptureError::Output {
                        dest: self.output.describe(),
                        error,
                    })
                }
            };
            let report = match user.switch() {
                Ok(r) => r,
                Err(e) => return CaptureOutcome::failed(CaptureError::User(e)),
            };
            notify(&format!(
                "switched to user {:?} (uid {}, gid {}), no capabilities left{}",
                user.name,
                user.uid,
                user.gid,
                if report.bounding_set_emptied {
                    ""
                } else {
                    " (bounding set kept: no CAP_SETPCAP; no_new_privs is set)"
                }
            ));
        }
        let pcap = match &self.pcap_out {
            Some(cfg) => {
                let mut cfg = cfg.clone();
                cfg.snaplen = self.snaplen;
                match PcapWriter::create(cfg, Some(link.number())) {
                    Ok(w) => Some(Arc::new(Mutex::new(w))),
                    Err(error) => {
                        return CaptureOutcome::failed(CaptureError::PcapOut {
                            dest: self
                                .pcap_out
                                .as_ref()
                                .map(|c| c.path.display().to_string())
                                .unwrap_or_default(),
                            error,
                        })
                    }
                }
            }
            None => None,
        };
        let (sink, probe) = match output.open() {
            Ok(s) => s,
            Err(error) => {
                return CaptureOutcome::failed(CaptureError::Output {
                    dest: self.output.describe(),
                    error,
                })
            }
        };
        // As tcpdump says it: from here on every packet that passes the filter is captured.
        let (block_bytes, blocks) = rings.first().map(Ring::geometry).unwrap_or((0, 0));
        notify(&format!(
            "listening on {}, link-type {}, snapshot length {} bytes, \
             {workers} worker(s), ring {blocks} x {} KiB each{}",
            self.iface,
            if any {
                "LINUX_SLL2 (Linux cooked v2; the filter runs in user space)"
            } else {
                "EN10MB (Ethernet)"
            },
            self.snaplen,
            block_bytes / 1024,
            match per_ring.fanout {
                Some((group, mode)) => format!(", fanout group {group} ({})", mode.as_str()),
                None => String::new(),
            }
        ));
        self.run_rings(
            rings,
            cpus,
            (sink, probe),
            Taps {
                pcap,
                user_filter,
                metrics,
            },
            stop,
            notify,
        )
    }

    /// The ring settings each worker gets: the budget split evenly, whole blocks.
    fn ring_config(&self, workers: usize, filter: Option<BpfFilter>) -> RingConfig {
        let mut cfg = RingConfig::new(&self.iface);
        cfg.block_bytes = self.block_bytes;
        let per_ring_bytes = self.ring_budget_bytes / workers;
        cfg.block_count = (per_ring_bytes / self.block_bytes.max(1)).max(MIN_BLOCK_COUNT);
        cfg.block_timeout_ms = self.block_timeout_ms;
        cfg.snaplen = self.snaplen;
        cfg.promisc = self.promisc;
        cfg.filter = filter;
        // One ring needs no group; several share one named after our pid, unique per host
        // among running captures (a group id lives in its network namespace).
        if workers > 1 {
            cfg.fanout = Some(((std::process::id() & 0xffff) as u16, self.fanout));
        }
        cfg
    }

    /// The core each worker is pinned to (`None`: not pinned).
    fn worker_cpus(
        &self,
        workers: usize,
        notify: &mut dyn FnMut(&str),
    ) -> Result<Vec<Option<core_affinity::CoreId>>, CaptureError> {
        match &self.cpus {
            Some(list) => {
                if list.len() < workers {
                    return Err(CaptureError::Config(format!(
                        "--cpus lists {} CPU(s) for {workers} workers; give one per worker",
                        list.len()
                    )));
                }
                Ok(list
                    .iter()
                    .take(workers)
                    .map(|&id| Some(core_affinity::CoreId { id }))
                    .collect())
            }
            None => {
                let available = core_affinity::get_core_ids().unwrap_or_default();
                if available.len() < workers {
                    notify(&format!(
                        "{workers} workers but {} CPUs to run on: workers beyond them are not \
                         pinned",
                        available.len()
                    ));
                }
                Ok((0..workers).map(|i| available.get(i).copied()).collect())
            }
        }
    }

    /// Runs opened rings into `sink`, one worker per ring.
    fn run_rings(
        &self,
        rings: Vec<Ring>,
        cpus: Vec<Option<core_affinity::CoreId>>,
        (sink, probe): (Box<dyn Deliver>, OutputProbe),
        taps: Taps,
        stop: &AtomicBool,
        notify: &mut dyn FnMut(&str),
    ) -> CaptureOutcome {
        let Taps {
            pcap,
            user_filter,
            metrics,
        } = taps;
        let link = rings
            .first()
            .map(Ring::link_type)
            .unwrap_or(LinkType::Ethernet);
        let workers = rings.len().max(1);
        let pool = BUFFERS_PER_WORKER * workers + 1;
        let (full_tx, full_rx) = bounded::<JsonBatch>(pool);
        let (free_tx, free_rx) = bounded::<JsonBatch>(pool);
        for _ in 0..pool {
            // The channel has room for the whole pool.
            let _ = free_tx.send(JsonBatch::with_room(WORKER_JSON_ROOM_BYTES));
        }
        // Set when the workers are to stop: by us (flag, deadline), by a worker (count
        // reached, ring failed) or by the publisher (output failed).
        let halt = Arc::new(AtomicBool::new(false));
        // Set with `halt` when what is already in the rings should still be written.
        let drain = Arc::new(AtomicBool::new(false));
        let claimed = Arc::new(AtomicU64::new(0));
        let written = Arc::new(AtomicU64::new(0));
        let counters = RunCounters::new("capture", workers);
        counters
            .queue_capacity_batches
            .store(pool as u64, Ordering::Relaxed);
        let live = counters.workers.clone();
        let mut latency = None;
        if let Some(m) = metrics {
            m.attach(Arc::clone(&counters), probe.clone());
            // Acknowledged: the sink's own count where it keeps one, else what it took.
            let acknowledged: Box<dyn Fn() -> u64 + Send> = if probe.acknowledged().is_some() {
                let p = probe.clone();
                Box::new(move || p.acknowledged().unwrap_or(0))
            } else {
                let c = Arc::clone(&counters);
                Box::new(move || c.written.load(Ordering::Relaxed))
            };
            match m.watch_latency(acknowledged) {
                Ok(w) => latency = Some(w),
                Err(e) => return CaptureOutcome::failed(CaptureError::Thread(e)),
            }
        }
        let (feed, latency_thread) = match latency {
            Some((f, t)) => (Some(f), Some(t)),
            None => (None, None),
        };

        let publisher = {
            let halt = Arc::clone(&halt);
            let written = Arc::clone(&written);
            let counters = Arc::clone(&counters);
            thread::Builder::new()
                .name("netpipe-publish".into())
                .spawn(move || {
                    publish_unordered(sink, full_rx, free_tx, &halt, &written, counters, feed)
                })
        };
        let publisher = match publisher {
            Ok(p) => p,
            Err(e) => return CaptureOutcome::failed(CaptureError::Thread(e)),
        };

        // Each worker holds a clone of `alive_tx`; when the last one ends, `alive_rx`
        // disconnects and the loop below wakes at once.
        let (alive_tx, alive_rx) = bounded::<()>(0);
        let mut handles = Vec::with_capacity(workers);
        let mut spawn_error = None;
        // `--reassembly-mb` bounds all workers together: each reassembler gets its share.
        let mut per_worker_packet = self.packet;
        if let Some(r) = per_worker_packet.reassembly.as_mut() {
            r.memory_bytes /= workers;
        }
        for (i, (ring, cpu)) in rings
            .into_iter()
            .zip(cpus.into_iter().chain(std::iter::repeat(None)))
            .enumerate()
        {
            let ctx = WorkerCtx {
                ring,
                cpu,
                source_host: self.source_host.clone(),
                packet: per_worker_packet,
                limit: self.count,
                claimed: Arc::clone(&claimed),
                halt: Arc::clone(&halt),
                drain: Arc::clone(&drain),
                drain_poll: Duration::from_millis(u64::from(self.block_timeout_ms) + 20),
                index: u16::try_from(i).unwrap_or(u16::MAX),
                live: Arc::clone(&live[i]),
                full_tx: full_tx.clone(),
                free_rx: free_rx.clone(),
                pcap: pcap.clone(),
                user_filter: user_filter.clone(),
                _alive: alive_tx.clone(),
            };
            match thread::Builder::new()
                .name(format!("netpipe-capture-{i}"))
                .spawn(move || ctx.run())
            {
                Ok(h) => handles.push(h),
                Err(e) => {
                    spawn_error = Some(CaptureError::Thread(e));
                    halt.store(true, Ordering::Relaxed);
                    break;
                }
            }
        }
        drop(alive_tx);
        drop(full_tx);
        drop(free_rx);

        if self.count == Some(0) {
            halt.store(true, Ordering::Relaxed);
        }
        let started = Instant::now();
        let deadline = self.duration.map(|d| started + d);
        let mut next_stats = self.stats_interval.map(|i| started + i);
        let mut last_line = Rates::new(started);
        loop {
            match alive_rx.recv_timeout(TICK) {
                Err(RecvTimeoutError::Disconnected) => break,
                Ok(()) | Err(RecvTimeoutError::Timeout) => {}
            }
            let now = Instant::now();
            if !halt.load(Ordering::Relaxed)
                && (stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| now >= d))
            {
                drain.store(true, Ordering::Relaxed);
                halt.store(true, Ordering::Relaxed);
            }
            if let (Some(at), Some(every)) = (next_stats, self.stats_interval) {
                if now >= at {
                    notify(&last_line.line(&live, written.load(Ordering::Relaxed), &probe, now));
                    next_stats = Some(at + every);
                }
            }
        }

        let mut summary = CaptureSummary::default();
        let mut error = spawn_error;
        for h in handles {
            match h.join() {
                Ok(end) => {
                    summary.captured += end.captured;
                    summary.queue_full_waits += end.queue_full_waits;
                    summary.decode.add(&end.decode);
                    if let Some(r) = &end.reassembly {
                        summary
                            .reassembly
                            .get_or_insert_with(ReassemblyStats::default)
                            .add(r);
                    }
                    summary.received += end.ring.packets;
                    summary.kernel_drops += end.ring.drops;
                    summary.freezes += end.ring.freezes;
                    summary.bad_blocks += end.ring.bad_blocks;
                    if let (None, Some(e)) = (&error, end.pcap_error) {
                        error = Some(CaptureError::PcapOut {
                            dest: self
                                .pcap_out
                                .as_ref()
                                .map(|c| c.path.display().to_string())
                                .unwrap_or_default(),
                            error: e,
                        });
                    }
                    if let (None, Some(e)) = (&error, end.error) {
                        error = Some(CaptureError::Capture {
                            iface: self.iface.clone(),
                            error: e,
                        });
                    }
                }
                Err(_) => {
                    error.get_or_insert(CaptureError::Thread(io::Error::other(
                        "a capture worker panicked",
                    )));
                }
            }
        }
        // Every worker has ended: the writer is ours alone again. Its last file is closed
        // (and handed to --post-rotate) before the summary is printed.
        let pcap_written = pcap
            .and_then(|p| Arc::try_unwrap(p).ok())
            .and_then(|m| m.into_inner().ok())
            .map(|w| {
                let counts = (w.frames_written, w.files_closed + 1);
                if let Err(e) = w.finish(link.number()) {
                    if e.kind() != io::ErrorKind::BrokenPipe {
                        error.get_or_insert(CaptureError::PcapOut {
                            dest: self
                                .pcap_out
                                .as_ref()
                                .map(|c| c.path.display().to_string())
                                .unwrap_or_default(),
                            error: e,
                        });
                    }
                }
                counts
            });
        let published = publisher.join().unwrap_or_else(|_| Published {
            written: written.load(Ordering::Relaxed),
            ..Published::lost()
        });
        summary.written = published.written;
        summary.not_written = published.not_written;
        if let Some(t) = latency_thread {
            // Ends once the publisher dropped its feed; its last look saw the final count.
            let _ = t.join();
        }
        // What the workers stored at their end is what the summary adds up; the flag tells a
        // scraper the numbers are final.
        counters.finished.store(true, Ordering::Release);
        let error = match published.error {
            // A reader that went away (`| head`) is a way to stop, not a failure.
            Some(e) if e.kind() == io::ErrorKind::BrokenPipe => error,
            // The output failing explains the early stop better than anything else.
            Some(e) => Some(CaptureError::Output {
                dest: self.output.describe(),
                error: e,
            }),
            None => error,
        };
        CaptureOutcome {
            summary,
            error,
            sink_report: published.report,
            undelivered: published.undelivered,
            started: true,
            pcap_written,
        }
    }
}

/// The `--stats-interval` line and what its rates are measured against.
struct Rates {
    at: Instant,
    captured: u64,
    written: u64,
}

impl Rates {
    fn new(at: Instant) -> Rates {
        Rates {
            at,
            captured: 0,
            written: 0,
        }
    }

    /// Totals, rates since the last line, and the spool when there is one. Each worker
    /// stores its ring's counters before its captured count (Release) and this reads every
    /// captured count before any received one (Acquire), so the line never shows more
    /// captured than received.
    fn line(
        &mut self,
        live: &[Arc<WorkerCounters>],
        written: u64,
        probe: &OutputProbe,
        now: Instant,
    ) -> String {
        let sum = |f: fn(&WorkerCounters) -> &AtomicU64| -> u64 {
            live.iter().map(|l| f(l).load(Ordering::Acquire)).sum()
        };
        let captured = sum(|l| &l.captured);
        let received = sum(|l| &l.received);
        let secs = now.saturating_duration_since(self.at).as_secs_f64();
        let rate = |now: u64, before: u64| {
            if secs > 0.0 {
                now.saturating_sub(before) as f64 / secs
            } else {
                0.0
            }
        };
        let mut line = format!(
            "capture: {captured} captured, {received} received by filter, {} dropped by kernel, \
             {} queue freezes, {written} written; {:.0} captured/s, {:.0} written/s",
            sum(|l| &l.kernel_drops),
            sum(|l| &l.freezes),
            rate(captured, self.captured),
            rate(written, self.written),
        );
        let snap = probe.snapshot();
        if snap.has_spool {
            line.push_str(&format!(
                "; spool {} messages, {} bytes",
                snap.spool_messages, snap.spool_bytes
            ));
        }
        let dropped: u64 = snap.dropped.iter().map(|(_, n)| n).sum();
        if dropped > 0 {
            line.push_str(&format!("; {dropped} dropped by the delivery layer"));
        }
        *self = Rates {
            at: now,
            captured,
            written,
        };
        line
    }
}

/// What the workers do besides encoding: `-w`, the user-space filter of `-i any`, and
/// `--metrics`.
struct Taps<'m> {
    pcap: Option<Arc<Mutex<PcapWriter>>>,
    user_filter: Option<BpfFilter>,
    /// `--metrics`: where the run's counters are shown.
    metrics: Option<&'m Arc<Metrics>>,
}

/// Everything one worker thread owns.
struct WorkerCtx {
    ring: Ring,
    cpu: Option<core_affinity::CoreId>,
    source_host: String,
    packet: super::worker::PacketOptions,
    limit: Option<u64>,
    claimed: Arc<AtomicU64>,
    halt: Arc<AtomicBool>,
    drain: Arc<AtomicBool>,
    drain_poll: Duration,
    /// Position among the workers (batches carry it for per-worker counts).
    index: u16,
    live: Arc<WorkerCounters>,
    full_tx: Sender<JsonBatch>,
    free_rx: Receiver<JsonBatch>,
    pcap: Option<Arc<Mutex<PcapWriter>>>,
    /// On `any`: the filter, run here on the cooked frames (the kernel cannot).
    user_filter: Option<BpfFilter>,
    /// Dropped when the worker ends (see `alive_rx`).
    _alive: Sender<()>,
}

/// Per-frame state of a worker, borrowed by the ring callback.
struct Encoding<'a> {
    worker: Worker,
    /// `--reassemble`: this worker's reassembler (its share of `--reassembly-mb`).
    reasm: Option<Reassembler>,
    index: u16,
    batch: Option<JsonBatch>,
    batch_started: Instant,
    captured: u64,
    /// Times no empty batch was ready: the output was behind (`--when-full block`).
    queue_full_waits: u64,
    limit: Option<u64>,
    claimed: &'a AtomicU64,
    halt: &'a AtomicBool,
    full_tx: &'a Sender<JsonBatch>,
    free_rx: &'a Receiver<JsonBatch>,
    /// `-w`: shared by the workers; each frame is copied from the ring block into the
    /// writer's buffer under the lock.
    pcap: Option<&'a Mutex<PcapWriter>>,
    /// The first `-w` write error (the run then stops).
    pcap_error: Option<io::Error>,
    /// What the ring delivers: Ethernet, or SLL2 on `any`.
    link: LinkType,
    user_filter: Option<&'a BpfFilter>,
}

impl Encoding<'_> {
    fn frame(&mut self, bytes: &[u8], meta: &FrameMeta) {
        if let Some(f) = self.user_filter {
            // Not captured, as the kernel filter would have kept it out of the ring.
            if !f.matches(bytes, meta.wire_len) {
                return;
            }
        }
        if let Some(limit) = self.limit {
            // Packet numbers are handed out once over all workers, so exactly `limit` are
            // encoded whatever the number of workers.
            let n = self.claimed.fetch_add(1, Ordering::Relaxed);
            if n >= limit {
                self.halt.store(true, Ordering::Relaxed);
                return;
            }
            if n + 1 == limit {
                self.halt.store(true, Ordering::Relaxed);
            }
        }
        if let Some(pcap) = self.pcap {
            if self.pcap_error.is_none() {
                let written = match pcap.lock() {
                    Ok(mut w) => w.write(self.link.number(), meta.time_ns, meta.wire_len, bytes),
                    Err(_) => Err(io::Error::other("another worker panicked while writing")),
                };
                if let Err(e) = written {
                    // `-w - | head`: the reader went away, which stops the run quietly.
                    if e.kind() != io::ErrorKind::BrokenPipe {
                        self.pcap_error = Some(e);
                    }
                    self.halt.store(true, Ordering::Relaxed);
                    return;
                }
            }
        }
        let Some(batch) = self.batch.as_mut() else {
            // The publisher is gone (output failed); it counted what it could not write.
            return;
        };
        if batch.is_empty() {
            // Once per batch: who filled it and when its first frame was captured.
            self.batch_started = Instant::now();
            batch.worker = self.index;
            batch.first_time_ns = meta.time_ns;
        }
        self.worker.process(self.link, bytes, meta, batch);
        if let Some(r) = self.reasm.as_mut() {
            if let Some(d) = r.offer(self.link, bytes, meta.time_ns) {
                let m = reassembly::frame_meta(meta.time_ns, d.frame);
                self.worker
                    .process_reassembled(d.link, d.frame, &m, d.fragments, batch);
            }
        }
        self.captured += 1;
        if batch.is_full_for_handoff() {
            self.send();
        }
    }

    /// Hands the current batch to the publisher and takes an empty one (waiting for it: a
    /// slow output holds the worker here, and the kernel ring absorbs the burst).
    fn send(&mut self) {
        if let Some(batch) = self.batch.take() {
            if batch.is_empty() {
                self.batch = Some(batch);
                return;
            }
            if self.full_tx.send(batch).is_err() {
                self.halt.store(true, Ordering::Relaxed);
                return;
            }
            self.batch = match self.free_rx.try_recv() {
                Ok(b) => Some(b),
                Err(_) => {
                    // The output is behind: wait for it (back-pressure), and count the wait.
                    self.queue_full_waits += 1;
                    self.free_rx.recv().ok()
                }
            };
            if self.batch.is_none() {
                self.halt.store(true, Ordering::Relaxed);
            }
        }
    }

    fn send_if_old(&mut self) {
        if self.batch.as_ref().is_some_and(|b| !b.is_empty())
            && self.batch_started.elapsed() >= BATCH_MAX_AGE
        {
            self.send();
        }
    }
}

impl WorkerCtx {
    fn run(mut self) -> WorkerEnd {
        if let Some(core) = self.cpu {
            // Not fatal: the worker still runs, just wherever the scheduler puts it.
            let _ = core_affinity::set_for_current(core);
        }
        let mut enc = Encoding {
            worker: Worker::with_options(&self.source_host, &self.packet),
            reasm: self.packet.reassembly.map(Reassembler::new),
            index: self.index,
            batch: self.free_rx.recv().ok(),
            batch_started: Instant::now(),
            captured: 0,
            queue_full_waits: 0,
            limit: self.limit,
            claimed: &self.claimed,
            halt: &self.halt,
            full_tx: &self.full_tx,
            free_rx: &self.free_rx,
            pcap: self.pcap.as_deref(),
            pcap_error: None,
            link: self.ring.link_type(),
            user_filter: self.user_filter.as_ref(),
        };
        let mut error = None;
        let mut last_stats = Instant::now();
        while !self.halt.load(Ordering::Relaxed) {
            match self
                .ring
                .next_block(POLL_TIMEOUT, |bytes, meta| enc.frame(bytes, meta))
            {
                Ok(0) => {
                    enc.send();
                    // A quiet link: what is buffered reaches the file (or `-w -`) now.
                    if let Some(Ok(mut w)) = enc.pcap.map(Mutex::lock) {
                        if let Err(e) = w.flush() {
                            if e.kind() != io::ErrorKind::BrokenPipe {
                                enc.pcap_error.get_or_insert(e);
                            }
                            self.halt.store(true, Ordering::Relaxed);
                        }
                    }
                }
                Ok(_) => enc.send_if_old(),
                Err(e) => {
                    error = Some(e);
                    self.halt.store(true, Ordering::Relaxed);
                    break;
                }
            }
            if last_stats.elapsed() >= STATS_REFRESH {
                // The reassembler's real-time clock (the global timeout): a quiet link's
                // datagrams in progress go even though no packet moves capture time.
                if let Some(r) = enc.reasm.as_mut() {
                    r.tick(Instant::now());
                }
                publish_stats(&self.live, &mut self.ring, &enc);
                last_stats = Instant::now();
            }
        }
        // Stopped by a flag or the deadline: what the kernel already gave the ring (and the
        // block it is still filling, retired within one block timeout) is written too.
        if error.is_none() && self.drain.load(Ordering::Relaxed) {
            let until = Instant::now() + DRAIN_MAX;
            while Instant::now() < until && enc.batch.is_some() {
                if enc
                    .limit
                    .is_some_and(|l| self.claimed.load(Ordering::Relaxed) >= l)
                {
                    break;
                }
                match self
                    .ring
                    .next_block(self.drain_poll, |bytes, meta| enc.frame(bytes, meta))
                {
                    Ok(0) => break,
                    Ok(_) => enc.send_if_old(),
                    Err(e) => {
                        error = Some(e);
                        break;
                    }
                }
            }
        }
        if let Some(r) = enc.reasm.as_mut() {
            r.finish();
        }
        enc.send();
        let ring = publish_stats(&self.live, &mut self.ring, &enc);
        WorkerEnd {
            decode: enc.worker.stats,
            reassembly: enc.reasm.as_ref().map(Reassembler::stats),
            ring,
            captured: enc.captured,
            queue_full_waits: enc.queue_full_waits,
            error,
            pcap_error: enc.pcap_error,
        }
    }
}

/// Stores a worker's counters for the stats line and `--metrics`: the captured count is
/// taken before the kernel's counters are read (so received ≥ captured holds for the pair)
/// and stored after them (Release), which is what lets readers keep the order. Called every
/// STATS_REFRESH and at the end, not per packet.
fn publish_stats(live: &WorkerCounters, ring: &mut Ring, enc: &Encoding<'_>) -> RingStats {
    let captured = enc.captured;
    let (filled, blocks) = ring.fill();
    live.ring_blocks_filled
        .store(filled as u64, Ordering::Relaxed);
    live.ring_blocks.store(blocks as u64, Ordering::Relaxed);
    let s = ring.stats();
    live.received.store(s.packets, Ordering::Release);
    live.kernel_drops.store(s.drops, Ordering::Release);
    live.freezes.store(s.freezes, Ordering::Release);
    live.publish_decode(&enc.worker.stats);
    if let Some(r) = &enc.reasm {
        live.publish_reassembly(&r.stats());
    }
    live.captured.store(captured, Ordering::Release);
    s
}

/// The publisher thread of live capture: writes batches as they arrive (no order across
/// workers; what is queued together in one write), returns their buffers; on an output error it stops the workers and counts the
/// rest as not written.
fn publish_unordered(
    sink: Box<dyn Deliver>,
    full_rx: Receiver<JsonBatch>,
    free_tx: Sender<JsonBatch>,
    halt: &AtomicBool,
    written: &AtomicU64,
    counters: Arc<RunCounters>,
    latency: Option<LatencyFeed>,
) -> Published {
    let mut writer = BatchWriter::new(sink, free_tx, halt, Some(written))
        .with_counters(Arc::clone(&counters))
        .with_latency(latency);
    // Batches already queued when one arrives go with it in one write (stdout and files:
    // one `writev`); the channel holds at most a pool's worth, so `ready` never grows.
    let mut ready = Vec::with_capacity(full_rx.capacity().unwrap_or(1).max(1));
    while let Ok(batch) = full_rx.recv() {
        counters
            .queue_depth_batches
            .store(full_rx.len() as u64, Ordering::Relaxed);
        ready.push(batch);
        ready.extend(full_rx.try_iter());
        writer.write_many(&mut ready);
    }
    writer.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::batch::FRAME_BATCH_JSON_BYTES;

    /// A batch of `n` messages of `size` bytes each.
    fn batch_of(n: usize, size: usize) -> JsonBatch {
        let mut b = JsonBatch::with_room(WORKER_JSON_ROOM_BYTES);
        for i in 1..=n {
            b.commit(i * size);
        }
        b
    }

    #[test]
    fn hand_off_at_read_sizes_not_the_usual_batch() {
        // 400-byte messages (60-byte frames): the usual batch is full at 656, a hand-off at
        // 1,024 messages.
        assert!(batch_of(656, 400).is_full());
        assert!(!batch_of(1023, 400).is_full_for_handoff());
        assert!(batch_of(1024, 400).is_full_for_handoff());
        // Large messages: at FRAME_BATCH_JSON_BYTES of JSON.
        let size = 1500;
        let below = FRAME_BATCH_JSON_BYTES / size;
        assert!(!batch_of(below, size).is_full_for_handoff());
        assert!(batch_of(below + 1, size).is_full_for_handoff());
    }

    /// An output these tests never open.
    #[derive(Debug)]
    struct Unopened;

    impl OpenOutput for Unopened {
        fn describe(&self) -> String {
            "stdout".into()
        }

        fn open(&self) -> io::Result<(Box<dyn Deliver>, OutputProbe)> {
            Err(io::Error::other("not opened in these tests"))
        }
    }

    fn job(workers: usize) -> CaptureJob {
        CaptureJob {
            iface: "eth0".into(),
            filter: None,
            count: None,
            duration: None,
            workers,
            fanout: FanoutMode::Hash,
            cpus: None,
            ring_budget_bytes: 64 << 20,
            block_bytes: 1 << 20,
            block_timeout_ms: 10,
            snaplen: 262_144,
            promisc: true,
            stats_interval: None,
            source_host: "test".into(),
            output: Arc::new(Unopened),
            packet: Default::default(),
            drop_to: None,
            pcap_out: None,
        }
    }

    #[test]
    fn ring_budget_is_split_between_workers() {
        let one = job(1).ring_config(1, None);
        assert_eq!((one.block_bytes, one.block_count), (1 << 20, 64));
        assert_eq!(one.fanout, None);
        let four = job(4).ring_config(4, None);
        assert_eq!(four.block_count, 16);
        let (group, mode) = four.fanout.expect("a fanout group for several rings");
        assert_eq!(group, (std::process::id() & 0xffff) as u16);
        assert_eq!(mode, FanoutMode::Hash);
        let mut tiny = job(8);
        tiny.ring_budget_bytes = 1 << 20;
        assert_eq!(tiny.ring_config(8, None).block_count, MIN_BLOCK_COUNT);
    }

    #[test]
    fn too_few_cpus_is_a_usage_error() {
        let mut j = job(2);
        j.cpus = Some(vec![0]);
        let err = j.worker_cpus(2, &mut |_| {}).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("--cpus"), "{err}");
        j.cpus = Some(vec![3, 1, 0]);
        let cpus = j.worker_cpus(2, &mut |_| {}).unwrap();
        assert_eq!(
            cpus.iter().map(|c| c.map(|c| c.id)).collect::<Vec<_>>(),
            vec![Some(3), Some(1)]
        );
    }

    #[test]
    fn summary_reads_like_tcpdump() {
        let s = CaptureSummary {
            captured: 10,
            received: 12,
            kernel_drops: 1,
            freezes: 0,
            not_written: 0,
            written: 10,
            ..CaptureSummary::default()
        };
        assert_eq!(
            s.to_string(),
            "10 packets captured, 12 received by filter, 1 dropped by kernel, 0 queue freezes, \
             0 dropped inside netpipe-fast, 10 written"
        );
        let waited = CaptureSummary {
            queue_full_waits: 3,
            ..s
        };
        assert!(
            waited
                .to_string()
                .ends_with(", 10 written, 3 queue-full waits"),
            "{waited}"
        );
    }

    #[test]
    fn kernel_drops_and_undelivered_messages_each_get_a_closing_line() {
        let outcome = |kernel_drops, freezes, dropped| CaptureOutcome {
            summary: CaptureSummary {
                kernel_drops,
                freezes,
                ..CaptureSummary::default()
            },
            error: None,
            sink_report: None,
            undelivered: Undelivered {
                dropped,
                ..Undelivered::default()
            },
            started: true,
            pcap_written: None,
        };
        assert!(outcome(0, 0, 0).loss_lines("vb").is_empty());
        // A freeze with no drop lost nothing.
        assert!(outcome(0, 3, 0).loss_lines("vb").is_empty());
        let lines = outcome(17, 2, 0).loss_lines("vb");
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].contains(
                "17 packet(s) dropped by the kernel on vb (capture ring full; 2 queue freeze(s))"
            ),
            "{lines:?}"
        );
        let lines = outcome(17, 2, 5).loss_lines("vb");
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[1].contains("5 message(s) dropped"), "{lines:?}");
    }

    #[test]
    fn runtime_errors_map_to_exit_codes() {
        let e = CaptureError::Capture {
            iface: "eth0".into(),
            error: io::Error::from_raw_os_error(libc::ENETDOWN),
        };
        assert_eq!(e.exit_code(), 13);
        let e = CaptureError::Capture {
            iface: "eth0".into(),
            error: io::Error::from_raw_os_error(libc::EIO),
        };
        assert_eq!(e.exit_code(), 14);
    }

    #[test]
    fn presets_and_own_traffic_make_one_filter() {
        use super::{effective_filter, Preset};
        assert_eq!(effective_filter(None, None, None), None);
        assert_eq!(effective_filter(Some("  "), None, None), None);
        assert_eq!(
            effective_filter(
                Some("host 192.0.2.1"),
                Some(Preset::Ssh),
                Some(("127.0.0.1", 6379))
            )
            .as_deref(),
            Some(
                "( tcp and ( port 22 ) ) and ( host 192.0.2.1 ) and \
                 not ( host 127.0.0.1 and tcp port 6379 )"
            )
        );
        // Every combination compiles with libpcap.
        for p in [
            Preset::Arp,
            Preset::Icmp,
            Preset::Tcp,
            Preset::Ssh,
            Preset::Telnet,
            Preset::Udp,
        ] {
            let expr = effective_filter(Some("vlan or not vlan"), Some(p), Some(("::1", 5672)));
            crate::source::filter::BpfFilter::compile(&expr.unwrap(), 1).unwrap();
        }
    }
}
