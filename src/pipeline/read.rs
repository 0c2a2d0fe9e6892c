//! `read`: capture files through the worker code to a sink, in file order.
//!
//! With one worker the reading thread decodes in place (no copy of the frame); with more it
//! copies frames into [`FrameBatch`]es that worker threads turn into [`JsonBatch`]es. Either
//! way a publisher thread writes the batches in order and hands the buffers back, so memory
//! stays bounded by the buffer pools whatever the file size.

use super::deliver::{Deliver, OpenOutput, OutputProbe, Undelivered};
use super::metrics::{Metrics, RunCounters};
use super::pcap_writer::PcapWriter;
use super::progress::Progress;
use super::publish::{BatchWriter, Published};
use super::stats::{DecodeStats, Summary};
use super::worker::Worker;
use crate::decode::{link_type_name, LinkType};
use crate::encode::batch::{FrameBatch, JsonBatch, OversizedToken};
use crate::encode::FrameMeta;
use crate::source::filter::{BpfFilter, FilterError};
use crate::source::pcap_file::{CaptureReader, Frame, ReadError};
use crate::source::reassembly::{self, Reassembler, ReassemblyStats};
use crossbeam_channel::{bounded, Receiver, Sender};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// A `read` run: which files, what to keep, where to write.
#[derive(Clone, Debug)]
pub struct ReadJob {
    /// pcap/pcapng files, read in this order ("-" is standard input).
    pub files: Vec<PathBuf>,
    /// tcpdump filter expression, compiled by libpcap per link type.
    pub filter: Option<String>,
    /// Stop after this many packets have passed the filter.
    pub count: Option<u64>,
    /// Decoding threads (1 decodes on the reading thread).
    pub workers: usize,
    /// `source` of every message.
    pub source_host: String,
    /// Where the messages go (opened when the run starts).
    pub output: Arc<dyn OpenOutput>,
    /// Community ID seed and decode choices.
    pub packet: super::worker::PacketOptions,
}

/// Why a run stopped early. Everything decoded before it was still written.
#[derive(Debug)]
pub enum JobError {
    /// A file could not be opened or read, or is not valid pcap/pcapng.
    Read(ReadError),
    /// A frame's link type has no decoder.
    UnsupportedLinkType {
        /// The file.
        name: String,
        /// The link type number (LINKTYPE_*).
        link_type: u32,
        /// Byte offset of the frame's record in the file.
        offset: u64,
    },
    /// The filter expression did not compile for a file's link type.
    Filter {
        /// The file.
        name: String,
        /// Why it did not compile.
        error: FilterError,
    },
    /// The output could not be opened or failed while writing.
    Output {
        /// The output as [`OpenOutput::describe`] names it (passwords redacted).
        dest: String,
        /// What went wrong.
        error: io::Error,
    },
    /// `-w`: the pcap file could not be created or written.
    PcapOut {
        /// The `-w` path.
        dest: String,
        /// What went wrong.
        error: io::Error,
    },
}

impl JobError {
    /// Process exit code (from [`crate::exit`]): the file's own, unsupported link type, bad
    /// filter, output failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            JobError::Read(e) => e.exit_code(),
            JobError::UnsupportedLinkType { .. } => i32::from(crate::exit::LINK_TYPE),
            JobError::Filter { .. } => i32::from(crate::exit::FILTER),
            JobError::Output { .. } | JobError::PcapOut { .. } => {
                i32::from(crate::exit::OUTPUT_FAILED)
            }
        }
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobError::Read(e) => write!(f, "{e}"),
            JobError::UnsupportedLinkType {
                name,
                link_type,
                offset,
            } => write!(
                f,
                "{name}: unsupported link type {link_type} ({}) at offset {offset}; \
                 supported: 0 (BSD loopback), 1 (Ethernet), 101/228/229 (raw IP), \
                 113/276 (Linux cooked)",
                link_type_name(*link_type)
            ),
            JobError::Filter { name, error } => write!(f, "{name}: {error}"),
            JobError::Output { dest, error } => write!(f, "cannot write to {dest}: {error}"),
            JobError::PcapOut { dest, error } => write!(f, "-w {dest}: {error}"),
        }
    }
}

impl std::error::Error for JobError {}

/// The result of a run: the counters, and the error that ended it early, if any.
#[derive(Debug)]
pub struct Outcome {
    /// What was read and written.
    pub summary: Summary,
    /// Why the run stopped early; `None` when every file was read (or `count` was reached).
    pub error: Option<JobError>,
    /// The sink's own line for the summary (broker sinks: published, resent, reconnects).
    pub sink_report: Option<String>,
    /// Messages dropped or left in the spool: the run ends with exit code 16 if any.
    pub undelivered: Undelivered,
    /// `-w`: frames written to the capture file(s), and how many files were completed.
    pub pcap_written: Option<(u64, u64)>,
}

/// Where running summary lines go (the binary prints them on stderr).
pub type Notify = Arc<dyn Fn(&str) + Send + Sync>;

/// What a run shows while it goes: `--metrics`, the progress bar, running summaries.
#[derive(Clone, Default)]
pub struct Observe {
    /// Counters to show on `/metrics` (attached when the run starts).
    pub metrics: Option<Arc<Metrics>>,
    /// Draw a progress bar on stderr (the caller checks that stderr is a terminal).
    pub progress: bool,
    /// Hand a running summary line to `notify` this often (`--stats-interval`).
    pub stats_interval: Option<Duration>,
    /// Where the running summary lines go; none, and they are not made.
    pub notify: Option<Notify>,
}

/// Buffers in flight per worker (bounds memory and keeps every thread busy).
const BUFFERS_PER_WORKER: usize = 3;
/// Oversized frame batches (see [`FrameBatch::is_oversized`]) in flight: from the reader until
/// their JSON is written (or dropped). The pools bound buffers by count, which a file of
/// 16 MiB records turns into gigabytes (16 workers: 48 frame batches of 16 MiB plus their
/// 32 MiB JSON); this bounds them by size too. Ordinary frames never reach it. The wait cannot
/// deadlock: tokens go back from the workers and the publisher, which never wait for the
/// reader.
const OVERSIZED_IN_FLIGHT: usize = 2;

/// A permission for one oversized batch in flight that goes back to the pool `tokens` when the
/// batch's JSON is cleared or dropped. The pool has room for every token; it is gone only when
/// the reader has stopped.
fn oversized_token(tokens: &crossbeam_channel::Sender<()>) -> OversizedToken {
    let tokens = tokens.clone();
    OversizedToken::new(move || {
        let _ = tokens.try_send(());
    })
}

impl ReadJob {
    /// Runs the job with the sink its `output` names.
    pub fn run(&self) -> Outcome {
        self.run_observed(&Observe::default(), None)
    }

    /// As [`ReadJob::run`], showing the run as `observe` asks, and writing every frame that
    /// passes the filter to `pcap` as well (`-w`).
    pub fn run_observed(&self, observe: &Observe, pcap: Option<PcapWriter>) -> Outcome {
        match self.output.open() {
            Ok((sink, probe)) => self.run_with_sink_observed(sink, probe, observe, pcap),
            Err(error) => Outcome {
                summary: Summary::default(),
                error: Some(JobError::Output {
                    dest: self.output.describe(),
                    error,
                }),
                sink_report: None,
                undelivered: Undelivered::default(),
                pcap_written: None,
            },
        }
    }

    /// Runs the job into any sink (for embedding, tests and benchmarks).
    pub fn run_with_sink(&self, sink: Box<dyn Deliver>) -> Outcome {
        self.run_with_sink_observed(
            sink,
            OutputProbe::named(&self.output.describe()),
            &Observe::default(),
            None,
        )
    }

    fn run_with_sink_observed(
        &self,
        sink: Box<dyn Deliver>,
        probe: OutputProbe,
        observe: &Observe,
        pcap: Option<PcapWriter>,
    ) -> Outcome {
        let workers = self.workers.max(1);
        let pool = BUFFERS_PER_WORKER * workers + 1;
        let counters = RunCounters::new("read", workers);
        counters
            .queue_capacity_batches
            .store(pool as u64, Ordering::Relaxed);
        if let Some(m) = &observe.metrics {
            m.attach(Arc::clone(&counters), probe.clone());
        }
        let (full_tx, full_rx) = bounded::<JsonBatch>(pool);
        let (free_tx, free_rx) = bounded::<JsonBatch>(pool);
        for _ in 0..pool {
            // The channel has room for the whole pool.
            let _ = free_tx.send(JsonBatch::with_capacity());
        }
        let output_closed = Arc::new(AtomicBool::new(false));
        let publisher = {
            let closed = Arc::clone(&output_closed);
            let counters = Arc::clone(&counters);
            thread::Builder::new()
                .name("netpipe-publish".into())
                .spawn(move || publish(sink, full_rx, free_tx, &closed, counters))
        };
        let publisher = match publisher {
            Ok(p) => p,
            Err(error) => {
                return Outcome {
                    summary: Summary::default(),
                    error: Some(JobError::Output {
                        dest: self.output.describe(),
                        error,
                    }),
                    sink_report: None,
                    undelivered: Undelivered::default(),
                    pcap_written: None,
                }
            }
        };
        let mut summary = Summary::default();
        let mut state = ReadState::new(self, &output_closed, &counters);
        state.pcap = pcap;
        if observe.progress {
            state.progress = Some(Progress::new(&self.files));
        }
        let (decode, mut error) = thread::scope(|scope| {
            // `--stats-interval`: a thread of its own reads the shared counters and stops
            // when `done` closes (the channel wakes it at once).
            let (done_tx, done_rx) = bounded::<()>(0);
            if let (Some(every), Some(notify)) = (observe.stats_interval, &observe.notify) {
                let (counters, probe) = (&counters, &probe);
                let _ = thread::Builder::new()
                    .name("netpipe-stats".into())
                    .spawn_scoped(scope, move || {
                        let mut last = (Instant::now(), 0u64, 0u64);
                        while done_rx.recv_timeout(every).is_err_and(|e| e.is_timeout()) {
                            notify(&running_line(counters, probe, &mut last));
                        }
                    });
            }
            let out = if workers == 1 {
                self.run_inline(&mut state, &full_tx, &free_rx)
            } else {
                self.run_parallel(&mut state, workers, &full_tx, &free_rx)
            };
            drop(done_tx);
            out
        });
        if let Some(p) = &state.progress {
            p.finish();
        }
        state.publish_counts();
        drop(full_tx);
        let pcap_dest = state
            .pcap
            .as_ref()
            .and_then(|w| w.current_path())
            .map(|p| p.display().to_string());
        let pcap_written = state.pcap.take().map(|w| {
            let counts = (w.frames_written, w.files_closed + 1);
            // The last file is closed (and handed to --post-rotate) before the summary.
            let link = state.last_link_type.unwrap_or(LinkType::Ethernet.number());
            match w.finish(link) {
                // `-w - | head`: the reader went away, as for the JSON on stdout.
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
                Err(e) => {
                    error.get_or_insert(JobError::PcapOut {
                        dest: pcap_dest.clone().unwrap_or_default(),
                        error: e,
                    });
                }
                Ok(()) => {}
            }
            counts
        });
        let published = publisher.join().unwrap_or_else(|_| Published::lost());
        summary.read = state.read;
        summary.filtered_out = state.filtered_out;
        summary.decode = decode;
        summary.reassembly = state.reassembly;
        summary.written = published.written;
        summary.not_written = published.not_written;
        summary.output_closed =
            matches!(&published.error, Some(e) if e.kind() == io::ErrorKind::BrokenPipe);
        counters.finished.store(true, Ordering::Release);
        let error = match published.error {
            // The output failing explains any early stop better than what the reader saw.
            Some(e) if e.kind() != io::ErrorKind::BrokenPipe => Some(JobError::Output {
                dest: self.output.describe(),
                error: e,
            }),
            _ => error,
        };
        Outcome {
            summary,
            error,
            sink_report: published.report,
            undelivered: published.undelivered,
            pcap_written,
        }
    }

    /// One thread reads, filters, decodes and encodes; the publisher writes.
    fn run_inline(
        &self,
        state: &mut ReadState<'_>,
        full_tx: &Sender<JsonBatch>,
        free_rx: &Receiver<JsonBatch>,
    ) -> (DecodeStats, Option<JobError>) {
        let mut worker = Worker::with_options(&self.source_host, &self.packet);
        // `--reassemble`: fragments are put together here, in file order.
        let mut reasm = self.packet.reassembly.map(Reassembler::new);
        let mut seq = 0u64;
        let Ok(mut batch) = free_rx.recv() else {
            return (worker.stats, None);
        };
        let shared = Arc::clone(&state.counters.workers[0]);
        let run = Arc::clone(state.counters);
        let publish = |stats: &DecodeStats, reasm: &Option<Reassembler>| {
            shared.publish_decode(stats);
            if let Some(r) = reasm {
                shared.publish_reassembly(&r.stats());
            }
            shared.captured.store(stats.decoded, Ordering::Release);
        };
        let error = state.for_each_frame(|item, counts| {
            // At the end of each file its last messages go out at once (a file may be a pipe
            // that the next part of the stream takes a while to arrive on).
            let Some((link, frame, meta)) = item else {
                if batch.is_empty() {
                    return Ok(());
                }
                batch.seq = seq;
                seq += 1;
                publish(&worker.stats, &reasm);
                run.store_read(counts);
                let next = free_rx.recv().map_err(|_| ())?;
                return full_tx
                    .send(std::mem::replace(&mut batch, next))
                    .map_err(|_| ());
            };
            worker.process(link, frame.data, meta, &mut batch);
            if let Some(r) = reasm.as_mut() {
                if let Some(d) = r.offer(link, frame.data, meta.time_ns) {
                    let m = reassembly::frame_meta(meta.time_ns, d.frame);
                    worker.process_reassembled(d.link, d.frame, &m, d.fragments, &mut batch);
                }
            }
            if batch.is_full() {
                batch.seq = seq;
                seq += 1;
                publish(&worker.stats, &reasm);
                // Before the batch goes: a reader never sees more written than read.
                run.store_read(counts);
                let next = free_rx.recv().map_err(|_| ())?;
                full_tx
                    .send(std::mem::replace(&mut batch, next))
                    .map_err(|_| ())?;
            }
            Ok(())
        });
        if !batch.is_empty() {
            batch.seq = seq;
            let _ = full_tx.send(batch);
        }
        state.reassembly = finish_reassembly(&mut reasm);
        publish(&worker.stats, &reasm);
        (worker.stats, error)
    }

    /// The reading thread copies frames into batches; `workers` threads decode them.
    fn run_parallel(
        &self,
        state: &mut ReadState<'_>,
        workers: usize,
        full_tx: &Sender<JsonBatch>,
        free_rx: &Receiver<JsonBatch>,
    ) -> (DecodeStats, Option<JobError>) {
        let frames_pool = BUFFERS_PER_WORKER * workers;
        let (work_tx, work_rx) = bounded::<FrameBatch>(frames_pool);
        let (back_tx, back_rx) = bounded::<FrameBatch>(frames_pool);
        for _ in 0..frames_pool {
            let _ = back_tx.send(FrameBatch::with_capacity());
        }
        // One token per oversized batch in flight; it travels with the batch and its JSON
        // (OversizedToken) and comes back when that is cleared or dropped.
        let (token_tx, token_rx) = bounded::<()>(OVERSIZED_IN_FLIGHT);
        for _ in 0..OVERSIZED_IN_FLIGHT {
            let _ = token_tx.send(());
        }
        thread::scope(|scope| {
            let mut handles = Vec::with_capacity(workers);
            for i in 0..workers {
                let work_rx = work_rx.clone();
                let back_tx = back_tx.clone();
                let full_tx = full_tx.clone();
                let free_rx = free_rx.clone();
                let source_host = self.source_host.as_str();
                let shared = Arc::clone(&state.counters.workers[i]);
                let packet = &self.packet;
                let h = thread::Builder::new()
                    .name(format!("netpipe-worker-{i}"))
                    .spawn_scoped(scope, move || {
                        let mut worker = Worker::with_options(source_host, packet);
                        // Take an output buffer before a frame batch, so the batch the
                        // publisher waits for can always be finished (no deadlock).
                        while let Ok(mut out) = free_rx.recv() {
                            let Ok(mut frames) = work_rx.recv() else {
                                break;
                            };
                            out.seq = frames.seq;
                            out.worker = u16::try_from(i).unwrap_or(u16::MAX);
                            for f in &frames.frames {
                                let link = LinkType::from_number(f.link_type);
                                let Some(link) = link else { continue };
                                if f.reassembled == 0 {
                                    worker.process(link, frames.frame(f), &f.meta, &mut out);
                                } else {
                                    worker.process_reassembled(
                                        link,
                                        frames.frame(f),
                                        &f.meta,
                                        f.reassembled,
                                        &mut out,
                                    );
                                }
                            }
                            // Held until the publisher has written the JSON.
                            out.hold = frames.hold.take();
                            frames.clear();
                            let _ = back_tx.send(frames);
                            shared.publish_decode(&worker.stats);
                            shared
                                .captured
                                .store(worker.stats.decoded, Ordering::Release);
                            if full_tx.send(out).is_err() {
                                break;
                            }
                        }
                        worker.stats
                    });
                match h {
                    Ok(h) => handles.push(h),
                    Err(e) => {
                        return (
                            DecodeStats::default(),
                            Some(JobError::Output {
                                dest: "worker thread".into(),
                                error: e,
                            }),
                        )
                    }
                }
            }
            drop(work_rx);
            let mut seq = 0u64;
            let mut current = back_rx.recv().ok();
            let run = Arc::clone(state.counters);
            // `--reassemble`: on the reading thread, which sees every fragment in file order;
            // a completed datagram travels as one more frame right after the fragment that
            // completed it, so its message keeps its place in the output.
            let mut reasm = self.packet.reassembly.map(Reassembler::new);
            let reader_counters = Arc::clone(&state.counters.workers[0]);
            let error = state.for_each_frame(|item, counts| {
                let batch = current.as_mut().ok_or(())?;
                let end_of_file = match item {
                    Some((link, frame, meta)) => {
                        batch.push(frame.data, frame.link_type, *meta);
                        if let Some(r) = reasm.as_mut() {
                            if let Some(d) = r.offer(link, frame.data, meta.time_ns) {
                                let m = reassembly::frame_meta(meta.time_ns, d.frame);
                                batch.push_marked(d.frame, d.link.number(), m, d.fragments);
                            }
                        }
                        false
                    }
                    // A file ended: its last frames go to a worker at once.
                    None => !batch.frames.is_empty(),
                };
                if batch.is_full() || end_of_file {
                    let mut full = current.take().ok_or(())?;
                    full.seq = seq;
                    seq += 1;
                    if full.is_oversized() {
                        token_rx.recv().map_err(|_| ())?;
                        full.hold = Some(oversized_token(&token_tx));
                    }
                    if let Some(r) = &reasm {
                        reader_counters.publish_reassembly(&r.stats());
                    }
                    run.store_read(counts);
                    work_tx.send(full).map_err(|_| ())?;
                    current = Some(back_rx.recv().map_err(|_| ())?);
                }
                Ok(())
            });
            if let Some(mut last) = current.take() {
                if !last.frames.is_empty() && (!last.is_oversized() || token_rx.recv().is_ok()) {
                    if last.is_oversized() {
                        last.hold = Some(oversized_token(&token_tx));
                    }
                    last.seq = seq;
                    let _ = work_tx.send(last);
                }
            }
            drop(work_tx);
            state.reassembly = finish_reassembly(&mut reasm);
            if let Some(r) = &state.reassembly {
                reader_counters.publish_reassembly(r);
            }
            let mut stats = DecodeStats::default();
            for h in handles {
                if let Ok(s) = h.join() {
                    stats.add(&s);
                }
            }
            (stats, error)
        })
    }
}

/// The end of input: datagrams still incomplete are counted; the final counts.
fn finish_reassembly(reasm: &mut Option<Reassembler>) -> Option<ReassemblyStats> {
    reasm.as_mut().map(|r| {
        r.finish();
        r.stats()
    })
}

/// The `read` `--stats-interval` line: totals, rates since the last line (`last`: when, frames
/// read, written), the spool when there is one.
fn running_line(c: &RunCounters, probe: &OutputProbe, last: &mut (Instant, u64, u64)) -> String {
    let now = Instant::now();
    // Written before read: see RunCounters::store_read.
    let written = c.written.load(Ordering::Acquire);
    let read = c.frames_read.load(Ordering::Acquire);
    let secs = now
        .saturating_duration_since(last.0)
        .as_secs_f64()
        .max(1e-9);
    let mut line = format!(
        "read: {read} read, {} filtered out, {written} written; {:.0} read/s, {:.0} written/s",
        c.filtered_out.load(Ordering::Relaxed),
        read.saturating_sub(last.1) as f64 / secs,
        written.saturating_sub(last.2) as f64 / secs,
    );
    let s = probe.snapshot();
    if s.has_spool {
        line.push_str(&format!(
            "; spool {} messages, {} bytes",
            s.spool_messages, s.spool_bytes
        ));
    }
    *last = (now, read, written);
    line
}

/// Reading-side state: counters, compiled filters, the stop conditions.
struct ReadState<'j> {
    job: &'j ReadJob,
    output_closed: &'j AtomicBool,
    counters: &'j Arc<RunCounters>,
    progress: Option<Progress>,
    filters: HashMap<u32, BpfFilter>,
    read: u64,
    filtered_out: u64,
    passed: u64,
    /// `-w`: every frame that passes the filter goes here, in file order, before decoding.
    pcap: Option<PcapWriter>,
    last_link_type: Option<u32>,
    /// `--reassemble`: the reassembler's final counts.
    reassembly: Option<ReassemblyStats>,
}

impl<'j> ReadState<'j> {
    fn new(
        job: &'j ReadJob,
        output_closed: &'j AtomicBool,
        counters: &'j Arc<RunCounters>,
    ) -> Self {
        ReadState {
            job,
            output_closed,
            counters,
            progress: None,
            filters: HashMap::new(),
            read: 0,
            filtered_out: 0,
            passed: 0,
            pcap: None,
            last_link_type: None,
            reassembly: None,
        }
    }

    /// Stores the reading counters where `--metrics` sees them.
    fn publish_counts(&self) {
        self.counters.store_read((self.read, self.filtered_out));
    }

    /// Calls `f` for every frame that passes the filter, file after file, and with `None`
    /// at the end of each file, until the count is reached, the output closes, `f` fails, or
    /// a file ends in an error (returned).
    fn for_each_frame<F>(&mut self, mut f: F) -> Option<JobError>
    where
        F: FnMut(Option<(LinkType, &Frame<'_>, &FrameMeta)>, (u64, u64)) -> Result<(), ()>,
    {
        let limit = self.job.count.unwrap_or(u64::MAX);
        for path in &self.job.files {
            if self.passed >= limit {
                return None;
            }
            let mut reader = match CaptureReader::open(path) {
                Ok(r) => r,
                Err(e) => return Some(JobError::Read(e)),
            };
            loop {
                if self.passed >= limit || self.output_closed.load(Ordering::Relaxed) {
                    return None;
                }
                let offset = reader.offset();
                let frame = match reader.next_frame() {
                    Ok(Some(fr)) => fr,
                    Ok(None) => {
                        if let Some(p) = &mut self.progress {
                            p.file_done(reader.offset());
                        }
                        if f(None, (self.read, self.filtered_out)).is_err() {
                            return None;
                        }
                        break;
                    }
                    Err(e) => return Some(JobError::Read(e)),
                };
                self.read += 1;
                if self.read % Progress::EVERY == 0 {
                    // Not per packet: the bar and the counters move every EVERY frames.
                    if let Some(p) = &self.progress {
                        p.update(offset, self.read);
                    }
                    self.publish_counts();
                }
                let Some(link) = LinkType::from_number(frame.link_type) else {
                    return Some(JobError::UnsupportedLinkType {
                        name: path.display().to_string(),
                        link_type: frame.link_type,
                        offset,
                    });
                };
                if let Some(expr) = &self.job.filter {
                    let filter = match self.filters.entry(frame.link_type) {
                        std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                        std::collections::hash_map::Entry::Vacant(v) => {
                            match BpfFilter::compile(expr, frame.link_type) {
                                Ok(flt) => v.insert(flt),
                                Err(error) => {
                                    return Some(JobError::Filter {
                                        name: path.display().to_string(),
                                        error,
                                    })
                                }
                            }
                        }
                    };
                    if !filter.matches(frame.data, frame.wire_len) {
                        self.filtered_out += 1;
                        continue;
                    }
                }
                self.passed += 1;
                self.last_link_type = Some(frame.link_type);
                if let Some(w) = self.pcap.as_mut() {
                    if let Err(error) =
                        w.write(frame.link_type, frame.time_ns, frame.wire_len, frame.data)
                    {
                        // `-w - | head`: the reader went away; a way to stop, not a failure.
                        if error.kind() == io::ErrorKind::BrokenPipe {
                            return None;
                        }
                        let dest = w
                            .current_path()
                            .map(|p| p.display().to_string())
                            .unwrap_or_default();
                        return Some(JobError::PcapOut { dest, error });
                    }
                }
                let meta = FrameMeta {
                    time_ns: frame.time_ns,
                    wire_len: frame.wire_len,
                    cap_len: u32::try_from(frame.data.len()).unwrap_or(u32::MAX),
                };
                if f(Some((link, &frame, &meta)), (self.read, self.filtered_out)).is_err() {
                    // The pipeline behind us stopped (its error is reported by the publisher).
                    return None;
                }
            }
        }
        None
    }
}

/// The publisher thread: writes batches in sequence order, returns their buffers.
fn publish(
    sink: Box<dyn Deliver>,
    full_rx: Receiver<JsonBatch>,
    free_tx: Sender<JsonBatch>,
    closed: &AtomicBool,
    counters: Arc<RunCounters>,
) -> Published {
    let mut writer =
        BatchWriter::new(sink, free_tx, closed, None).with_counters(Arc::clone(&counters));
    let mut pending: BTreeMap<u64, JsonBatch> = BTreeMap::new();
    let mut next_seq = 0u64;
    for batch in full_rx.iter() {
        counters
            .queue_depth_batches
            .store(full_rx.len() as u64, Ordering::Relaxed);
        if batch.seq != next_seq {
            pending.insert(batch.seq, batch);
            continue;
        }
        writer.write(batch);
        next_seq += 1;
        while let Some(b) = pending.remove(&next_seq) {
            writer.write(b);
            next_seq += 1;
        }
    }
    // Anything left waited for a batch that never came (the reader stopped): keep order.
    for (_, b) in std::mem::take(&mut pending) {
        writer.write(b);
    }
    writer.finish()
}
