//! `read`: capture files through the worker code to a sink, in file order.
//!
//! With one worker the reading thread decodes in place (no copy of the frame); with more it
//! fills [`FrameBatch`]es that worker threads turn into [`JsonBatch`]es: frames of a mapped
//! file by their place in the mapping, streamed ones (stdin, pipes, compressed files) by
//! copy. Either way a publisher thread writes the batches in order and hands the buffers
//! back, so memory stays bounded by the buffer pools whatever the file size.

use super::deliver::{Deliver, OpenOutput, OutputProbe, Undelivered};
use super::metrics::{Metrics, RunCounters};
use super::pcap_writer::PcapWriter;
use super::progress::Progress;
use super::publish::{BatchWriter, Published};
use super::stats::{DecodeStats, Summary};
use super::worker::Worker;
use crate::decode::{link_type_name, LinkType};
use crate::encode::batch::{
    FrameBatch, JsonBatch, OversizedToken, SharedBytes, WORKER_JSON_ROOM_BYTES,
};
use crate::encode::FrameMeta;
use crate::source::filter::{BpfFilter, FilterError};
use crate::source::pcap_file::{CaptureReader, Frame, ReadError};
use crate::source::reassembly::{self, Reassembler, ReassemblyStats};
use crossbeam_channel::{bounded, Receiver, Sender};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, VecDeque};
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
    /// What the buffer pools did (a check that the steady state allocates nothing).
    pub pools: PoolStats,
}

/// The buffer pools at the end of a run: the batches back in them, and how often a batch's
/// buffers had to be allocated again during the run (`JsonBatch::reallocations`). With frames
/// of usual sizes the pools end with the batches they started with (made once, at the start,
/// [`PoolStats::made`]) and no reallocation, however long the input: the steady state
/// allocates no batch buffers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// JSON and frame batches made when the run started.
    pub made: u64,
    /// JSON batches back in their pool at the end, or unused in a thread's hands.
    pub json_batches: u64,
    /// Frame batches back in their pool at the end, or unused in the reader's hands (runs
    /// with 2 or more workers).
    pub frame_batches: u64,
    /// Buffers allocated again during the run, over every batch counted.
    pub reallocations: u64,
    /// Frames handed to workers by their place in a mapped file (2 or more workers)...
    pub frames_by_position: u64,
    /// ...and frames copied into frame batches (streamed input, reassembled datagrams).
    pub frames_copied: u64,
}

impl PoolStats {
    fn count_json(&mut self, batch: Option<&JsonBatch>) {
        if let Some(b) = batch {
            self.json_batches += 1;
            self.reallocations += u64::from(b.reallocations());
        }
    }

    fn count_frames(&mut self, batch: &FrameBatch) {
        self.frame_batches += 1;
        self.reallocations += u64::from(batch.reallocations());
    }
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

/// Frame batches in flight per worker (bounds memory and keeps every thread busy).
const BUFFERS_PER_WORKER: usize = 3;
/// JSON batches per worker, plus one (bounds memory and keeps every thread busy). Each is
/// written up to [`FRAME_BATCH_JSON_BYTES`](crate::encode::batch::FRAME_BATCH_JSON_BYTES)
/// and the pool is used in turn, so every batch of it is faulted in, page by page, on its
/// first use: with two workers a third batch each cost 3-4 % of the CPU time of reading a
/// 44 MB file and kept no thread busier (PERFORMANCE.md, issue 13, 2026-12-07 23:00-23:52).
const JSON_BATCHES_PER_WORKER: usize = 2;
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
                pools: PoolStats::default(),
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
        let pool = JSON_BATCHES_PER_WORKER * workers + 1;
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
            // The channel has room for the whole pool. A worker writes a whole frame batch
            // into one JSON batch; the reading thread of a one-worker run hands batches of
            // the same size on ([`JsonBatch::is_full_for_handoff`]).
            let _ = free_tx.send(JsonBatch::with_room(WORKER_JSON_ROOM_BYTES));
        }
        let output_closed = Arc::new(AtomicBool::new(false));
        let publisher_idle = Arc::new(AtomicBool::new(false));
        let publisher = {
            let closed = Arc::clone(&output_closed);
            let idle = Arc::clone(&publisher_idle);
            let counters = Arc::clone(&counters);
            thread::Builder::new()
                .name("netpipe-publish".into())
                .spawn(move || publish(sink, full_rx, free_tx, &closed, &idle, counters, pool))
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
                    pools: PoolStats::default(),
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
                self.run_inline(&mut state, &full_tx, &free_rx, &publisher_idle)
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
        // The publisher and workers are gone: every JSON batch not kept by the sink is back.
        let mut pools = state.pools;
        pools.made = (pool
            + if workers > 1 {
                BUFFERS_PER_WORKER * workers
            } else {
                0
            }) as u64;
        for batch in free_rx.try_iter() {
            pools.count_json(Some(&batch));
        }
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
            pools,
        }
    }

    /// One thread reads, filters, decodes and encodes; the publisher writes.
    fn run_inline(
        &self,
        state: &mut ReadState<'_>,
        full_tx: &Sender<JsonBatch>,
        free_rx: &Receiver<JsonBatch>,
        publisher_idle: &AtomicBool,
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
        let mut hand_off = PairedHandOff::new(full_tx, publisher_idle);
        // Once per full batch (handed on, or held back to go with the next): the reassembler's
        // real-time clock ticks, and the counts go out.
        let publish = |stats: &DecodeStats, reasm: &mut Option<Reassembler>| {
            shared.publish_decode(stats);
            if let Some(r) = reasm {
                r.tick(Instant::now());
                shared.publish_reassembly(&r.stats());
            }
            shared.captured.store(stats.decoded, Ordering::Release);
        };
        let error = state.for_each_frame(None, |item, counts| {
            // At the end of each file its last messages go out at once (a file may be a pipe
            // that the next part of the stream takes a while to arrive on).
            let Some(Passed {
                link,
                frame,
                meta,
                in_place,
                ..
            }) = item
            else {
                if batch.is_empty() {
                    // Nothing more to hand on, but the end of an input is a moment to look
                    // at the reassembler's real-time clock all the same (a quiet pipe).
                    if let Some(r) = reasm.as_mut() {
                        r.tick(Instant::now());
                    }
                    return hand_off.flush();
                }
                batch.seq = seq;
                seq += 1;
                publish(&worker.stats, &mut reasm);
                run.store_read(counts);
                let next = free_rx.recv().map_err(|_| ())?;
                return hand_off.send(std::mem::replace(&mut batch, next), false);
            };
            worker.process(link, frame.data, meta, &mut batch);
            if let Some(r) = reasm.as_mut() {
                if let Some(d) = r.offer(link, frame.data, meta.time_ns) {
                    let m = reassembly::frame_meta(meta.time_ns, d.frame);
                    worker.process_reassembled(d.link, d.frame, &m, d.fragments, &mut batch);
                }
            }
            if batch.is_full_for_handoff() {
                batch.seq = seq;
                seq += 1;
                publish(&worker.stats, &mut reasm);
                // Before the batch goes: a reader never sees more written than read.
                run.store_read(counts);
                let next = free_rx.recv().map_err(|_| ())?;
                hand_off.send(std::mem::replace(&mut batch, next), in_place)?;
            }
            Ok(())
        });
        // What was decoded goes out, however the loop ended.
        let _ = hand_off.flush();
        if !batch.is_empty() {
            batch.seq = seq;
            let _ = full_tx.send(batch);
        } else {
            state.pools.count_json(Some(&batch));
        }
        state.reassembly = finish_reassembly(&mut reasm);
        publish(&worker.stats, &mut reasm);
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
            // Not yet sent: a sequence number no sent batch has (see `Keep::back`).
            let mut batch = FrameBatch::with_capacity();
            batch.seq = u64::MAX;
            let _ = back_tx.send(batch);
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
                        // The output buffer taken when the work ran out, for the pool tally.
                        let mut spare = None;
                        while let Ok(mut out) = free_rx.recv() {
                            let Ok(mut frames) = work_rx.recv() else {
                                spare = Some(out);
                                break;
                            };
                            out.seq = frames.seq;
                            out.worker = u16::try_from(i).unwrap_or(u16::MAX);
                            // Copied frames, or frames of the mapped file by position.
                            let view = frames.view();
                            for f in &frames.frames {
                                let link = LinkType::from_number(f.link_type);
                                let Some(link) = link else { continue };
                                if f.reassembled == 0 {
                                    worker.process(link, view.frame(f), &f.meta, &mut out);
                                } else {
                                    worker.process_reassembled(
                                        link,
                                        view.frame(f),
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
                        (worker.stats, spare)
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
            // Frames of a mapped file go to the workers by position; the reader keeps their
            // pages until their batch comes back.
            let keep = Keep::with_capacity(frames_pool);
            let (mut by_position_count, mut copied) = (0u64, 0u64);
            let error = state.for_each_frame(Some(&keep), |item, counts| {
                let batch = current.as_mut().ok_or(())?;
                let end_of_file = match item {
                    Some(Passed {
                        link,
                        frame,
                        meta,
                        place,
                        ..
                    }) => {
                        let by_position = place.is_some_and(|(shared, at)| {
                            batch.push_shared(shared, at, frame.data.len(), frame.link_type, *meta)
                        });
                        if by_position {
                            by_position_count += 1;
                        } else {
                            batch.push(frame.data, frame.link_type, *meta);
                            copied += 1;
                        }
                        if let Some(r) = reasm.as_mut() {
                            if let Some(d) = r.offer(link, frame.data, meta.time_ns) {
                                let m = reassembly::frame_meta(meta.time_ns, d.frame);
                                batch.push_marked(d.frame, d.link.number(), m, d.fragments);
                                copied += 1;
                            }
                        }
                        false
                    }
                    // A file ended: its last frames go to a worker at once (and the
                    // reassembler's real-time clock is looked at even when there are none).
                    None => {
                        if let Some(r) = reasm.as_mut() {
                            r.tick(Instant::now());
                        }
                        !batch.frames.is_empty()
                    }
                };
                if batch.is_full() || end_of_file {
                    let mut full = current.take().ok_or(())?;
                    full.seq = seq;
                    seq += 1;
                    if full.is_oversized() {
                        token_rx.recv().map_err(|_| ())?;
                        full.hold = Some(oversized_token(&token_tx));
                    }
                    if let Some(r) = reasm.as_mut() {
                        r.tick(Instant::now());
                        reader_counters.publish_reassembly(&r.stats());
                    }
                    run.store_read(counts);
                    keep.sent(&full);
                    work_tx.send(full).map_err(|_| ())?;
                    let back = back_rx.recv().map_err(|_| ())?;
                    keep.back(back.seq);
                    current = Some(back);
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
                } else if last.frames.is_empty() {
                    state.pools.count_frames(&last);
                }
            }
            drop(work_tx);
            state.pools.frames_by_position = by_position_count;
            state.pools.frames_copied = copied;
            state.reassembly = finish_reassembly(&mut reasm);
            if let Some(r) = &state.reassembly {
                reader_counters.publish_reassembly(r);
            }
            let mut stats = DecodeStats::default();
            for h in handles {
                if let Ok((s, spare)) = h.join() {
                    stats.add(&s);
                    state.pools.count_json(spare.as_ref());
                }
            }
            // Every frame batch is back now (the workers have stopped): tally the pool.
            drop(back_tx);
            for batch in back_rx.try_iter() {
                state.pools.count_frames(&batch);
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

/// How the reading thread of a one-worker run hands full JSON batches to the publisher. A
/// send to a publisher that waits for work wakes it, and on the VMs measured a wake-up of its
/// idle core cost the reading thread tens of µs, 4 % of a run (PERFORMANCE.md); a send to a
/// busy publisher costs nothing of the kind. So when the publisher is idle, a batch of a
/// mapped file waits for the next and the two go together: the first send wakes it, the
/// second usually finds it awake, and both go out in one `writev`. When the publisher is
/// busy (a slow output), every batch goes at once, as does every batch of a pipe or stdin
/// (the next may be long in coming). An idle publisher has handed back every batch it had,
/// so while one is held back the third batch of the pool (`JSON_BATCHES_PER_WORKER + 1`, at
/// least 3) is free: the reading thread never waits for a batch while it holds one back.
struct PairedHandOff<'a> {
    full_tx: &'a Sender<JsonBatch>,
    /// Set by the publisher while it waits for a batch ([`publish`]).
    publisher_idle: &'a AtomicBool,
    held: Option<JsonBatch>,
}

const _: () = assert!(JSON_BATCHES_PER_WORKER + 1 >= 3);

impl<'a> PairedHandOff<'a> {
    fn new(full_tx: &'a Sender<JsonBatch>, publisher_idle: &'a AtomicBool) -> Self {
        PairedHandOff {
            full_tx,
            publisher_idle,
            held: None,
        }
    }

    /// Hands `batch` on, after the one held back. A batch of a mapped file (`mapped`) is held
    /// back instead when none is and the publisher is idle. Err when the publisher has gone.
    fn send(&mut self, batch: JsonBatch, mapped: bool) -> Result<(), ()> {
        if mapped && self.held.is_none() && self.publisher_idle.load(Ordering::Relaxed) {
            self.held = Some(batch);
            return Ok(());
        }
        self.flush()?;
        self.full_tx.send(batch).map_err(|_| ())
    }

    /// Hands on the batch held back, if any.
    fn flush(&mut self) -> Result<(), ()> {
        match self.held.take() {
            Some(batch) => self.full_tx.send(batch).map_err(|_| ()),
            None => Ok(()),
        }
    }
}

/// A frame that passed the filter, as [`ReadState::for_each_frame`] hands it on.
struct Passed<'f> {
    link: LinkType,
    frame: &'f Frame<'f>,
    meta: &'f FrameMeta,
    /// Read in place (a mapped file), when asked for: the capture and the offset of the
    /// frame's data in it.
    place: Option<(&'f SharedBytes, usize)>,
    /// The frame's file is read in place (mapped), not streamed from a pipe or stdin.
    in_place: bool,
}

/// The frame batches a parallel run has sent to workers by position and not yet had back,
/// with the capture each points into and its lowest offset: the reader keeps the mapped pages
/// from there on (`CaptureReader::keep_from`), so the drop-behind never takes a page a worker
/// is still decoding. At most the pool's batches are in flight, so nothing grows.
struct Keep {
    /// (sequence number, capture, lowest offset) per batch in flight by position.
    in_flight: RefCell<VecDeque<(u64, usize, usize)>>,
    /// The capture of the batch sent last and the lowest offset in flight in it.
    floor: Cell<(usize, usize)>,
}

impl Keep {
    fn with_capacity(batches: usize) -> Keep {
        Keep {
            in_flight: RefCell::new(VecDeque::with_capacity(batches)),
            floor: Cell::new((0, usize::MAX)),
        }
    }

    /// A capture's identity: where its bytes live (a capture stays alive, so its address
    /// unique, while a batch in flight holds it).
    fn id(shared: &SharedBytes) -> usize {
        Arc::as_ptr(shared).cast::<()>() as usize
    }

    /// `batch` goes to a worker.
    fn sent(&self, batch: &FrameBatch) {
        if let Some((shared, from)) = batch.shared_from() {
            let id = Keep::id(shared);
            self.in_flight.borrow_mut().push_back((batch.seq, id, from));
            self.update(id);
        }
    }

    /// The batch numbered `seq` came back (an unsent one has `u64::MAX`).
    fn back(&self, seq: u64) {
        let mut in_flight = self.in_flight.borrow_mut();
        if let Some(i) = in_flight.iter().position(|e| e.0 == seq) {
            in_flight.remove(i);
            drop(in_flight);
            self.update(self.floor.get().0);
        }
    }

    fn update(&self, id: usize) {
        let from = self
            .in_flight
            .borrow()
            .iter()
            .filter(|e| e.1 == id)
            .map(|e| e.2)
            .min()
            .unwrap_or(usize::MAX);
        self.floor.set((id, from));
    }

    /// The lowest offset of `shared` still in flight (`usize::MAX`: none).
    fn from(&self, shared: &SharedBytes) -> usize {
        match self.floor.get() {
            (id, from) if id == Keep::id(shared) => from,
            _ => usize::MAX,
        }
    }
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
    /// The frame batch pool at the end of a parallel run.
    pools: PoolStats,
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
            pools: PoolStats::default(),
        }
    }

    /// Stores the reading counters where `--metrics` sees them.
    fn publish_counts(&self) {
        self.counters.store_read((self.read, self.filtered_out));
    }

    /// Calls `f` for every frame that passes the filter, file after file, and with `None`
    /// at the end of each file, until the count is reached, the output closes, `f` fails, or
    /// a file ends in an error (returned).
    ///
    /// With `keep` (the parallel run), frames of a file read in place come with their place in
    /// it ([`Passed::place`]) so that they can be handed on without a copy, and before each
    /// record the reader is told to keep the mapped pages from `keep`'s offset on (the frames
    /// still in flight; see `CaptureReader::keep_from`) when `keep`'s capture is the current
    /// file's.
    fn for_each_frame<F>(&mut self, keep: Option<&Keep>, mut f: F) -> Option<JobError>
    where
        F: FnMut(Option<Passed<'_>>, (u64, u64)) -> Result<(), ()>,
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
            let shared = keep.and_then(|_| reader.shared_bytes());
            let in_place = reader.is_in_place();
            loop {
                if self.passed >= limit || self.output_closed.load(Ordering::Relaxed) {
                    return None;
                }
                if let (Some(keep), Some(shared)) = (keep, &shared) {
                    reader.keep_from(keep.from(shared));
                }
                let offset = reader.offset();
                let (frame, at) = match reader.next_frame_placed() {
                    Ok(Some(placed)) => placed,
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
                let passed = Passed {
                    link,
                    frame: &frame,
                    meta: &meta,
                    place: shared.as_ref().zip(at),
                    in_place,
                };
                if f(Some(passed), (self.read, self.filtered_out)).is_err() {
                    // The pipeline behind us stopped (its error is reported by the publisher).
                    return None;
                }
            }
        }
        None
    }
}

/// The publisher thread: writes batches in sequence order, returns their buffers. Batches
/// that arrive early wait in a ring with a slot per batch of the pool (no allocation); every
/// batch that is ready in order (the one awaited, those it frees, and any already queued) goes
/// to the sink in one call, which stdout and files write with one `writev`.
fn publish(
    sink: Box<dyn Deliver>,
    full_rx: Receiver<JsonBatch>,
    free_tx: Sender<JsonBatch>,
    closed: &AtomicBool,
    idle: &AtomicBool,
    counters: Arc<RunCounters>,
    pool: usize,
) -> Published {
    let mut writer =
        BatchWriter::new(sink, free_tx, closed, None).with_counters(Arc::clone(&counters));
    let mut waiting = Reorder::new(pool);
    let mut ready: Vec<JsonBatch> = Vec::with_capacity(pool);
    loop {
        // Idle from here until a batch comes: the reading thread of a one-worker run then
        // hands batches on in pairs ([`PairedHandOff`]). Every batch taken has been handed
        // back by now.
        idle.store(true, Ordering::Relaxed);
        let Ok(batch) = full_rx.recv() else {
            break;
        };
        idle.store(false, Ordering::Relaxed);
        counters
            .queue_depth_batches
            .store(full_rx.len() as u64, Ordering::Relaxed);
        waiting.insert(batch);
        // What else is already there goes in the same write.
        for batch in full_rx.try_iter() {
            waiting.insert(batch);
        }
        waiting.take_ready(&mut ready);
        writer.write_many(&mut ready);
    }
    // Anything left waited for a batch that never came (the reader stopped): keep order.
    waiting.take_all(&mut ready);
    writer.write_many(&mut ready);
    writer.finish()
}

/// Batches that arrived before their turn, by sequence number: a ring with one slot per batch
/// of the pool, which holds them all (sequence numbers in flight are fewer than the pool's
/// batches apart); a map only if a sink ever handed back more batches than it took.
struct Reorder {
    slots: Vec<Option<JsonBatch>>,
    overflow: BTreeMap<u64, JsonBatch>,
    next_seq: u64,
}

impl Reorder {
    fn new(pool: usize) -> Reorder {
        Reorder {
            slots: (0..pool.max(1)).map(|_| None).collect(),
            overflow: BTreeMap::new(),
            next_seq: 0,
        }
    }

    fn slot(&self, seq: u64) -> usize {
        // The remainder is below the slot count, a usize.
        (seq % self.slots.len() as u64) as usize
    }

    fn insert(&mut self, batch: JsonBatch) {
        let in_reach = batch.seq.wrapping_sub(self.next_seq) < self.slots.len() as u64;
        let at = self.slot(batch.seq);
        match self.slots.get_mut(at) {
            Some(slot @ None) if in_reach => *slot = Some(batch),
            _ => {
                self.overflow.insert(batch.seq, batch);
            }
        }
    }

    /// Moves the batches that are next in order to `ready`.
    fn take_ready(&mut self, ready: &mut Vec<JsonBatch>) {
        loop {
            let at = self.slot(self.next_seq);
            let next = match self.slots.get_mut(at) {
                Some(slot) if slot.as_ref().is_some_and(|b| b.seq == self.next_seq) => slot.take(),
                _ => self.overflow.remove(&self.next_seq),
            };
            let Some(batch) = next else { return };
            ready.push(batch);
            self.next_seq += 1;
        }
    }

    /// Moves every batch still waiting to `ready`, in sequence order.
    fn take_all(&mut self, ready: &mut Vec<JsonBatch>) {
        for batch in self.slots.iter_mut().filter_map(Option::take) {
            self.overflow.insert(batch.seq, batch);
        }
        ready.extend(std::mem::take(&mut self.overflow).into_values());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::batch::SharedBytes;

    fn numbered(seq: u64) -> JsonBatch {
        let mut b = JsonBatch::with_capacity();
        b.seq = seq;
        b
    }

    fn seqs(ready: &mut Vec<JsonBatch>) -> Vec<u64> {
        ready.drain(..).map(|b| b.seq).collect()
    }

    #[test]
    fn paired_hand_off_holds_a_mapped_batch_back_only_for_an_idle_publisher() {
        let (tx, rx) = bounded::<JsonBatch>(8);
        let arrived = |rx: &Receiver<JsonBatch>| rx.try_iter().map(|b| b.seq).collect::<Vec<_>>();
        let idle = AtomicBool::new(true);
        let mut hand_off = PairedHandOff::new(&tx, &idle);
        // Mapped: the first waits, the second takes it along, in order.
        hand_off.send(numbered(0), true).expect("publisher there");
        assert_eq!(arrived(&rx), Vec::<u64>::new());
        hand_off.send(numbered(1), true).expect("publisher there");
        assert_eq!(arrived(&rx), [0, 1]);
        hand_off.send(numbered(2), true).expect("publisher there");
        assert_eq!(arrived(&rx), Vec::<u64>::new());
        // A streamed batch goes at once, after the one held back.
        hand_off.send(numbered(3), false).expect("publisher there");
        assert_eq!(arrived(&rx), [2, 3]);
        hand_off.send(numbered(4), false).expect("publisher there");
        assert_eq!(arrived(&rx), [4]);
        // The end: what is held back goes.
        hand_off.send(numbered(5), true).expect("publisher there");
        hand_off.flush().expect("publisher there");
        assert_eq!(arrived(&rx), [5]);
        hand_off.flush().expect("nothing held: nothing to do");
        assert_eq!(arrived(&rx), Vec::<u64>::new());
        // A busy publisher: no wake-up to save, a mapped batch goes at once.
        idle.store(false, Ordering::Relaxed);
        hand_off.send(numbered(7), true).expect("publisher there");
        assert_eq!(arrived(&rx), [7]);
        idle.store(true, Ordering::Relaxed);
        // The publisher gone: an error, not a batch kept forever.
        hand_off
            .send(numbered(8), true)
            .expect("held back, not sent yet");
        drop(rx);
        assert!(hand_off.flush().is_err());
    }

    #[test]
    fn reorder_hands_batches_on_in_sequence_order_without_a_map() {
        let mut r = Reorder::new(4);
        let mut ready = Vec::new();
        for seq in [2, 1, 3] {
            r.insert(numbered(seq));
            r.take_ready(&mut ready);
            assert!(ready.is_empty(), "{seq} came before 0");
        }
        assert!(r.overflow.is_empty(), "the ring holds a pool's worth");
        r.insert(numbered(0));
        r.take_ready(&mut ready);
        assert_eq!(seqs(&mut ready), [0, 1, 2, 3]);
        // Round the ring again, and one beyond its reach (a sink that handed back more
        // batches than it took): kept in the map, still in order.
        for seq in [5, 9, 4] {
            r.insert(numbered(seq));
        }
        assert_eq!(r.overflow.len(), 1);
        r.take_ready(&mut ready);
        assert_eq!(seqs(&mut ready), [4, 5]);
        r.insert(numbered(7));
        r.take_all(&mut ready);
        assert_eq!(seqs(&mut ready), [7, 9]);
    }

    #[test]
    fn keep_holds_the_lowest_offset_in_flight_of_the_current_capture() {
        let meta = FrameMeta {
            time_ns: 0,
            wire_len: 4,
            cap_len: 4,
        };
        let a: SharedBytes = Arc::new(vec![0u8; 1000]);
        let b: SharedBytes = Arc::new(vec![0u8; 1000]);
        let batch = |seq, shared: &SharedBytes, at| {
            let mut f = FrameBatch::with_capacity();
            f.seq = seq;
            assert!(f.push_shared(shared, at, 4, 1, meta));
            assert!(f.push_shared(shared, at + 100, 4, 1, meta));
            f
        };
        let keep = Keep::with_capacity(4);
        assert_eq!(keep.from(&a), usize::MAX);
        keep.sent(&batch(0, &a, 10));
        keep.sent(&batch(1, &a, 200));
        assert_eq!(keep.from(&a), 10);
        // Back out of order: the floor moves only when the lowest comes back.
        keep.back(u64::MAX);
        keep.back(1);
        assert_eq!(keep.from(&a), 10);
        keep.sent(&batch(2, &a, 400));
        keep.back(0);
        assert_eq!(keep.from(&a), 400);
        // The next file: its own floor; the old file's batch counts only for the old file.
        keep.sent(&batch(3, &b, 50));
        assert_eq!(keep.from(&b), 50);
        assert_eq!(keep.from(&a), usize::MAX);
        keep.back(2);
        keep.back(3);
        assert_eq!(keep.from(&b), usize::MAX);
        // A batch of copies holds nothing.
        let mut copies = FrameBatch::with_capacity();
        copies.seq = 4;
        copies.push(&[1, 2, 3], 1, meta);
        keep.sent(&copies);
        assert!(keep.in_flight.borrow().is_empty());
    }
}
