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

use super::batch::JsonBatch;
use super::publish::{BatchWriter, Published};
use super::stats::DecodeStats;
use super::worker::Worker;
use crate::decode::LinkType;
use crate::encode::FrameMeta;
use crate::sink::{Output, Sink};
use crate::source::filter::{BpfFilter, FilterError};
use crate::source::privilege::{PrivilegeError, TargetUser};
use crate::source::ring::{FanoutMode, Ring, RingConfig, RingError, RingStats, MIN_BLOCK_COUNT};
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
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
    pub iface: String,
    /// tcpdump filter expression, compiled by libpcap for Ethernet and run in the kernel.
    pub filter: Option<String>,
    /// Stop after exactly this many packets have been handed to the encoder (all workers).
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    /// Worker threads, each with its own ring.
    pub workers: usize,
    pub fanout: FanoutMode,
    /// CPU of each worker, in order; `None` pins worker i to the i-th CPU this process may
    /// run on.
    pub cpus: Option<Vec<usize>>,
    /// Ring memory for all workers together.
    pub ring_budget_bytes: usize,
    pub block_bytes: usize,
    pub block_timeout_ms: u32,
    pub snaplen: u32,
    pub promisc: bool,
    /// Hand a running summary to the `notify` callback this often.
    pub stats_interval: Option<Duration>,
    /// `source` of every message.
    pub source_host: String,
    pub output: Output,
    /// Community ID seed and decode choices.
    pub packet: super::worker::PacketOptions,
    /// Switch to this user once the rings are open, before the output is opened
    /// (`--user`, like `tcpdump -Z`).
    pub drop_to: Option<TargetUser>,
}

/// Why a capture could not start or stopped early. Everything captured before was written.
#[derive(Debug)]
pub enum CaptureError {
    /// A ring could not be opened (permission, interface, settings).
    Ring(RingError),
    Filter(FilterError),
    /// `--cpus` does not fit the workers.
    Config(String),
    /// A ring failed while capturing (e.g. the interface went down or away).
    Capture {
        iface: String,
        error: io::Error,
    },
    Output {
        dest: String,
        error: io::Error,
    },
    /// A thread could not be started.
    Thread(io::Error),
    /// `--user`: the switch to the user failed.
    User(PrivilegeError),
}

impl CaptureError {
    /// Process exit code: the ring's own (12 permission, 13 missing or down interface, 14
    /// socket, 2 bad settings, 7 filter), 7 bad filter, 2 bad `--cpus`, 13/14 for a failure
    /// while running, 8 output failure, 1 no thread.
    pub fn exit_code(&self) -> i32 {
        match self {
            CaptureError::Ring(e) => e.exit_code(),
            CaptureError::Filter(_) => 7,
            CaptureError::Config(_) => 2,
            CaptureError::Capture { error, .. } => match error.raw_os_error() {
                Some(libc::ENETDOWN) | Some(libc::ENODEV) | Some(libc::ENXIO) => 13,
                _ => 14,
            },
            CaptureError::Output { .. } => 8,
            CaptureError::Thread(_) => 1,
            CaptureError::User(e) => e.exit_code(),
        }
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
    pub written: u64,
    /// Blocks whose layout the kernel got wrong (their remaining frames were skipped).
    pub bad_blocks: u64,
    /// Times a worker had to wait for the output (no empty batch ready): back-pressure.
    pub queue_full_waits: u64,
    pub decode: DecodeStats,
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
    pub summary: CaptureSummary,
    pub error: Option<CaptureError>,
    /// The sink's own line for the summary (broker sinks: published, resent, reconnects).
    pub sink_report: Option<String>,
    /// False when the capture never started (rings, filter or sink failed to open): then
    /// there is no summary worth printing.
    pub started: bool,
}

impl CaptureOutcome {
    fn failed(error: CaptureError) -> CaptureOutcome {
        CaptureOutcome {
            summary: CaptureSummary::default(),
            error: Some(error),
            sink_report: None,
            started: false,
        }
    }
}

/// Makes SIGINT and SIGTERM set `stop`; a second one of either ends the process at once
/// (exit code 1), so a capture stuck on a dead output can still be interrupted.
pub fn stop_on_signals(stop: &Arc<AtomicBool>) -> io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    for sig in [SIGINT, SIGTERM] {
        // Registered first, so it sees the flag as it was before this signal set it.
        signal_hook::flag::register_conditional_shutdown(sig, 1, Arc::clone(stop))?;
        signal_hook::flag::register(sig, Arc::clone(stop))?;
    }
    Ok(())
}

/// Counters a worker shares while it runs (for `--stats-interval` and the stop decision).
#[derive(Default)]
struct Live {
    captured: AtomicU64,
    received: AtomicU64,
    kernel_drops: AtomicU64,
    freezes: AtomicU64,
}

/// What a worker hands back when it ends.
struct WorkerEnd {
    decode: DecodeStats,
    ring: RingStats,
    captured: u64,
    queue_full_waits: u64,
    error: Option<io::Error>,
}

/// The original's capture presets (its capture_*.py scripts, REFERENCE section 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    Arp,
    Icmp,
    Tcp,
    Ssh,
    Telnet,
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
        let workers = self.workers.max(1);
        let filter = match &self.filter {
            Some(expr) => match BpfFilter::compile(expr, LinkType::Ethernet.number()) {
                Ok(f) => Some(f),
                Err(e) => return CaptureOutcome::failed(CaptureError::Filter(e)),
            },
            None => None,
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
        // output is opened after the switch, so a file is created as the user.
        if let Some(user) = &self.drop_to {
            if let Err(e) = user.switch() {
                return CaptureOutcome::failed(CaptureError::User(e));
            }
            notify(&format!(
                "switched to user {:?} (uid {}, gid {})",
                user.name, user.uid, user.gid
            ));
        }
        let sink = match self.output.open() {
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
            "listening on {}, link-type EN10MB (Ethernet), snapshot length {} bytes, \
             {workers} worker(s), ring {blocks} x {} KiB each{}",
            self.iface,
            self.snaplen,
            block_bytes / 1024,
            match per_ring.fanout {
                Some((group, mode)) => format!(", fanout group {group} ({})", mode.as_str()),
                None => String::new(),
            }
        ));
        self.run_rings(rings, cpus, sink, stop, notify)
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
        sink: Box<dyn Sink>,
        stop: &AtomicBool,
        notify: &mut dyn FnMut(&str),
    ) -> CaptureOutcome {
        let workers = rings.len().max(1);
        let pool = BUFFERS_PER_WORKER * workers + 1;
        let (full_tx, full_rx) = bounded::<JsonBatch>(pool);
        let (free_tx, free_rx) = bounded::<JsonBatch>(pool);
        for _ in 0..pool {
            // The channel has room for the whole pool.
            let _ = free_tx.send(JsonBatch::with_capacity());
        }
        // Set when the workers are to stop: by us (flag, deadline), by a worker (count
        // reached, ring failed) or by the publisher (output failed).
        let halt = Arc::new(AtomicBool::new(false));
        // Set with `halt` when what is already in the rings should still be written.
        let drain = Arc::new(AtomicBool::new(false));
        let claimed = Arc::new(AtomicU64::new(0));
        let written = Arc::new(AtomicU64::new(0));
        let live: Vec<Arc<Live>> = (0..workers).map(|_| Arc::new(Live::default())).collect();

        let publisher = {
            let halt = Arc::clone(&halt);
            let written = Arc::clone(&written);
            thread::Builder::new()
                .name("netpipe-publish".into())
                .spawn(move || publish_unordered(sink, full_rx, free_tx, &halt, &written))
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
        for (i, (ring, cpu)) in rings
            .into_iter()
            .zip(cpus.into_iter().chain(std::iter::repeat(None)))
            .enumerate()
        {
            let ctx = WorkerCtx {
                ring,
                cpu,
                source_host: self.source_host.clone(),
                packet: self.packet,
                limit: self.count,
                claimed: Arc::clone(&claimed),
                halt: Arc::clone(&halt),
                drain: Arc::clone(&drain),
                drain_poll: Duration::from_millis(u64::from(self.block_timeout_ms) + 20),
                live: Arc::clone(&live[i]),
                full_tx: full_tx.clone(),
                free_rx: free_rx.clone(),
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
                    notify(&running_line(&live, written.load(Ordering::Relaxed)));
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
                    summary.received += end.ring.packets;
                    summary.kernel_drops += end.ring.drops;
                    summary.freezes += end.ring.freezes;
                    summary.bad_blocks += end.ring.bad_blocks;
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
        let published = publisher.join().unwrap_or_else(|_| Published {
            written: written.load(Ordering::Relaxed),
            ..Published::lost()
        });
        summary.written = published.written;
        summary.not_written = published.not_written;
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
            started: true,
        }
    }
}

/// The `--stats-interval` line.
fn running_line(live: &[Arc<Live>], written: u64) -> String {
    let sum = |f: fn(&Live) -> &AtomicU64| -> u64 {
        live.iter().map(|l| f(l).load(Ordering::Relaxed)).sum()
    };
    format!(
        "capture: {} captured, {} received by filter, {} dropped by kernel, {} queue freezes, \
         {} written",
        sum(|l| &l.captured),
        sum(|l| &l.received),
        sum(|l| &l.kernel_drops),
        sum(|l| &l.freezes),
        written
    )
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
    live: Arc<Live>,
    full_tx: Sender<JsonBatch>,
    free_rx: Receiver<JsonBatch>,
    /// Dropped when the worker ends (see `alive_rx`).
    _alive: Sender<()>,
}

/// Per-frame state of a worker, borrowed by the ring callback.
struct Encoding<'a> {
    worker: Worker,
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
}

impl Encoding<'_> {
    fn frame(&mut self, bytes: &[u8], meta: &FrameMeta) {
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
        let Some(batch) = self.batch.as_mut() else {
            // The publisher is gone (output failed); it counted what it could not write.
            return;
        };
        if batch.is_empty() {
            self.batch_started = Instant::now();
        }
        self.worker.process(LinkType::Ethernet, bytes, meta, batch);
        self.captured += 1;
        if batch.is_full() {
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
            batch: self.free_rx.recv().ok(),
            batch_started: Instant::now(),
            captured: 0,
            queue_full_waits: 0,
            limit: self.limit,
            claimed: &self.claimed,
            halt: &self.halt,
            full_tx: &self.full_tx,
            free_rx: &self.free_rx,
        };
        let mut error = None;
        let mut last_stats = Instant::now();
        while !self.halt.load(Ordering::Relaxed) {
            match self
                .ring
                .next_block(POLL_TIMEOUT, |bytes, meta| enc.frame(bytes, meta))
            {
                Ok(0) => enc.send(),
                Ok(_) => enc.send_if_old(),
                Err(e) => {
                    error = Some(e);
                    self.halt.store(true, Ordering::Relaxed);
                    break;
                }
            }
            self.live.captured.store(enc.captured, Ordering::Relaxed);
            if last_stats.elapsed() >= STATS_REFRESH {
                publish_ring_stats(&self.live, self.ring.stats());
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
        enc.send();
        let ring = self.ring.stats();
        publish_ring_stats(&self.live, ring);
        self.live.captured.store(enc.captured, Ordering::Relaxed);
        WorkerEnd {
            decode: enc.worker.stats,
            ring,
            captured: enc.captured,
            queue_full_waits: enc.queue_full_waits,
            error,
        }
    }
}

fn publish_ring_stats(live: &Live, s: RingStats) {
    live.received.store(s.packets, Ordering::Relaxed);
    live.kernel_drops.store(s.drops, Ordering::Relaxed);
    live.freezes.store(s.freezes, Ordering::Relaxed);
}

/// The publisher thread of live capture: writes batches as they arrive (no order across
/// workers), returns their buffers; on an output error it stops the workers and counts the
/// rest as not written.
fn publish_unordered(
    sink: Box<dyn Sink>,
    full_rx: Receiver<JsonBatch>,
    free_tx: Sender<JsonBatch>,
    halt: &AtomicBool,
    written: &AtomicU64,
) -> Published {
    let mut writer = BatchWriter::new(sink, free_tx, halt, Some(written));
    for batch in full_rx.iter() {
        writer.write(batch);
    }
    writer.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

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
            output: Output::Stdout,
            packet: Default::default(),
            drop_to: None,
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
