//! `--metrics ADDR`: the run's counters in the Prometheus/OpenMetrics text format on
//! `http://ADDR/metrics`.
//!
//! Nothing here runs per packet. The workers keep their per-packet counters as plain
//! integers and store them into shared atomics (the ones the `--stats-interval` line reads)
//! once per batch (`read`) or every 200 ms ring-stats refresh (live capture, so a scrape is
//! at most that old); a scrape reads those atomics and the sink's own shared counters, and the
//! exposition is written by the `prometheus-client` crate (a [`Collector`] called at each
//! scrape), so names, escaping and the `# EOF` trailer follow the OpenMetrics text format.
//!
//! Latency: for live capture into any sink, `netpipe_capture_to_ack_latency_seconds` is the
//! time from a batch's first (oldest) frame's kernel capture timestamp to the moment the
//! sink's acknowledged count covers the whole batch (Redis: the LPUSH/RPUSH reply read;
//! RabbitMQ: the publisher confirm; tcp, files, stdout: the write returned), recorded once
//! per message of the batch into an HDR histogram (µs, 3 significant digits). It is an upper
//! bound for each message (exact for the batch's first), seen with a resolution of 1 ms (the
//! watcher thread polls the acknowledged count that often while batches are outstanding).

use super::deliver::OutputProbe;
use super::stats::DecodeStats;
use crate::decode::ErrorKind;
use crate::source::reassembly::{GiveUp, ReassemblyStats};
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use hdrhistogram::Histogram;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One worker's running counters. Stored by the worker (per batch or stats refresh), read by
/// `--stats-interval` lines and scrapes.
#[derive(Debug, Default)]
pub(crate) struct WorkerCounters {
    /// Frames handed to the encoder.
    pub captured: AtomicU64,
    /// Live capture: frames that passed the kernel filter, dropped ones included
    /// (`tp_packets`).
    pub received: AtomicU64,
    /// Live capture: frames the kernel dropped, ring full (`tp_drops`).
    pub kernel_drops: AtomicU64,
    /// Live capture: ring queue freezes (`tp_freeze_q_cnt`).
    pub freezes: AtomicU64,
    /// Live capture: ring blocks filled by the kernel and not yet handed back (sampled at
    /// each stats refresh).
    pub ring_blocks_filled: AtomicU64,
    /// Live capture: the ring's size in blocks.
    pub ring_blocks: AtomicU64,
    /// Messages of this worker's batches the sink took.
    pub written: AtomicU64,
    /// Malformed packets by [`ErrorKind::index`].
    pub malformed: [AtomicU64; ErrorKind::ALL.len()],
    /// `--reassemble`: the reassembler's counts (`read` with several workers: the reading
    /// thread's, stored under worker 0).
    pub reassembly: ReassemblyCounters,
}

/// A reassembler's counts as atomics (see [`ReassemblyStats`]).
#[derive(Debug, Default)]
pub(crate) struct ReassemblyCounters {
    /// Set once a reassembler stored its counts: the families are shown only then.
    pub enabled: AtomicBool,
    pub fragments: AtomicU64,
    pub reassembled: AtomicU64,
    pub duplicates: AtomicU64,
    pub overlaps_trimmed: AtomicU64,
    pub bad_fragments: AtomicU64,
    pub late_fragments: AtomicU64,
    pub given_up: [AtomicU64; GiveUp::ALL.len()],
    pub memory_bytes: AtomicU64,
}

impl WorkerCounters {
    /// Stores the worker's decode counters (once per batch: the per-packet counters stay
    /// plain integers in the worker).
    pub fn publish_decode(&self, s: &DecodeStats) {
        for (a, &b) in self.malformed.iter().zip(&s.malformed) {
            a.store(b, Ordering::Relaxed);
        }
    }

    /// Stores a reassembler's counts (per batch or stats refresh, like the decode counts).
    pub fn publish_reassembly(&self, s: &ReassemblyStats) {
        let r = &self.reassembly;
        r.fragments.store(s.fragments, Ordering::Relaxed);
        r.reassembled.store(s.reassembled, Ordering::Relaxed);
        r.duplicates.store(s.duplicates, Ordering::Relaxed);
        r.overlaps_trimmed
            .store(s.overlaps_trimmed, Ordering::Relaxed);
        r.bad_fragments.store(s.bad_fragments, Ordering::Relaxed);
        r.late_fragments.store(s.late_fragments, Ordering::Relaxed);
        for (a, &b) in r.given_up.iter().zip(&s.given_up) {
            a.store(b, Ordering::Relaxed);
        }
        r.memory_bytes.store(s.memory_bytes, Ordering::Relaxed);
        r.enabled.store(true, Ordering::Release);
    }
}

/// Counters of one run (`read` or `capture`), shared by its threads.
#[derive(Debug)]
pub(crate) struct RunCounters {
    /// `read` or `capture`: the `command` label of every family.
    pub command: &'static str,
    /// One set per worker, in worker order (at least one).
    pub workers: Vec<Arc<WorkerCounters>>,
    /// `read`: frames read from the files.
    pub frames_read: AtomicU64,
    /// `read`: frames the filter rejected.
    pub filtered_out: AtomicU64,
    /// Messages the output failed to take (it failed or closed).
    pub not_written: AtomicU64,
    /// Messages the sink took, all workers.
    pub written: AtomicU64,
    /// Full batches waiting for the publisher thread, sampled at each batch it takes.
    pub queue_depth_batches: AtomicU64,
    /// The most full batches there can be waiting (the pool's size).
    pub queue_capacity_batches: AtomicU64,
    /// The run has ended: every counter holds its final value (the exit summary's).
    pub finished: AtomicBool,
}

impl RunCounters {
    /// Zeroed counters for `command` with `workers` workers (at least one set).
    pub fn new(command: &'static str, workers: usize) -> Arc<RunCounters> {
        Arc::new(RunCounters {
            command,
            workers: (0..workers.max(1))
                .map(|_| Arc::new(WorkerCounters::default()))
                .collect(),
            frames_read: AtomicU64::new(0),
            filtered_out: AtomicU64::new(0),
            not_written: AtomicU64::new(0),
            written: AtomicU64::new(0),
            queue_depth_batches: AtomicU64::new(0),
            queue_capacity_batches: AtomicU64::new(0),
            finished: AtomicBool::new(false),
        })
    }

    /// Adds what the sink took of a batch made by worker `worker` (Release: a reader that
    /// loads `written` first sees the read count stored before the batch was sent).
    pub fn add_written(&self, worker: usize, n: u64) {
        self.written.fetch_add(n, Ordering::AcqRel);
        if let Some(w) = self.workers.get(worker) {
            w.written.fetch_add(n, Ordering::AcqRel);
        }
    }

    /// `read`: frames read and filtered out so far; stored before each batch is handed on
    /// (Release), so loading `written` then `frames_read` (Acquire) never shows more
    /// written than read.
    pub fn store_read(&self, (read, filtered_out): (u64, u64)) {
        self.filtered_out.store(filtered_out, Ordering::Release);
        self.frames_read.store(read, Ordering::Release);
    }
}

/// Bounds of the latency histogram, in microseconds: 1 µs to one hour.
const LATENCY_MAX_US: u64 = 3_600_000_000;
/// Upper bounds (seconds) of the exported histogram buckets.
const LATENCY_BUCKETS_S: [f64; 17] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 60.0,
];
/// Quantiles exported beside the histogram (read straight from the HDR histogram).
const LATENCY_QUANTILES: [f64; 4] = [0.5, 0.9, 0.99, 0.999];
/// Batches on their way to the latency watcher, and batches it waits on (a broker down for
/// long with a spool in front: 65,536 batches of up to 1,024 messages); beyond either a batch
/// is not measured, and counted in `netpipe_latency_batches_unmeasured`.
const LATENCY_QUEUE: usize = 4096;
const LATENCY_PENDING_MAX: usize = 65_536;
/// How often the watcher looks at the acknowledged count while batches are outstanding.
const LATENCY_POLL: Duration = Duration::from_millis(1);

/// What `/metrics` shows: the current run's counters and the latency histogram. Lives as long
/// as the process (the server thread holds it).
pub struct Metrics {
    run: Mutex<Option<(Arc<RunCounters>, OutputProbe)>>,
    latency: Mutex<Histogram<u64>>,
    /// Batches not measured because the watcher's queue was full.
    latency_skipped: AtomicU64,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Metrics")
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves plain counters: still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Metrics {
    /// No run yet and an empty histogram; a run shows here once it is given these metrics
    /// ([`Observe::metrics`](super::read::Observe::metrics) for `read`,
    /// [`CaptureJob::run_observed`](super::capture::CaptureJob::run_observed) for `capture`).
    pub fn new() -> Arc<Metrics> {
        // Constant bounds within hdrhistogram's limits (high ≥ 2 × low, 3 ≤ 5 digits).
        let hist = Histogram::new_with_bounds(1, LATENCY_MAX_US, 3)
            .expect("constant histogram bounds are valid");
        Arc::new(Metrics {
            run: Mutex::new(None),
            latency: Mutex::new(hist),
            latency_skipped: AtomicU64::new(0),
        })
    }

    /// Shows `run` (and the sink behind it) from now on.
    pub(crate) fn attach(&self, run: Arc<RunCounters>, sink: OutputProbe) {
        *lock(&self.run) = Some((run, sink));
    }

    /// Whether a run has been attached (a run that could not start has none).
    pub fn has_run(&self) -> bool {
        lock(&self.run).is_some()
    }

    /// Starts the latency watcher: batches fed to the returned [`LatencyFeed`] are settled
    /// when `acknowledged()` (a running count of messages the sink has acknowledged, in the
    /// order they were taken) passes them. The watcher ends when the feed is dropped, after a
    /// last look; join the handle before reading final values.
    pub(crate) fn watch_latency(
        self: &Arc<Self>,
        acknowledged: Box<dyn Fn() -> u64 + Send>,
    ) -> io::Result<(LatencyFeed, thread::JoinHandle<()>)> {
        let (tx, rx) = bounded::<Pending>(LATENCY_QUEUE);
        let me = Arc::clone(self);
        let handle = thread::Builder::new()
            .name("netpipe-latency".into())
            .spawn(move || me.latency_watcher(rx, acknowledged))?;
        Ok((
            LatencyFeed {
                tx,
                taken: 0,
                metrics: Arc::clone(self),
            },
            handle,
        ))
    }

    fn latency_watcher(&self, rx: Receiver<Pending>, acknowledged: Box<dyn Fn() -> u64 + Send>) {
        let mut pending: VecDeque<Pending> = VecDeque::new();
        loop {
            let open = match if pending.is_empty() {
                rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
            } else {
                rx.recv_timeout(LATENCY_POLL)
            } {
                Ok(p) => {
                    // Take whatever else is queued before looking at the count.
                    for p in std::iter::once(p).chain(rx.try_iter()) {
                        if pending.len() < LATENCY_PENDING_MAX {
                            pending.push_back(p);
                        } else {
                            self.latency_skipped.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    true
                }
                Err(RecvTimeoutError::Timeout) => true,
                Err(RecvTimeoutError::Disconnected) => false,
            };
            let acked = acknowledged();
            let now_ns = now_ns();
            while pending.front().is_some_and(|p| p.end <= acked) {
                let Some(p) = pending.pop_front() else { break };
                let us = u64::try_from(now_ns.saturating_sub(p.first_time_ns) / 1000)
                    .unwrap_or(0)
                    .clamp(1, LATENCY_MAX_US);
                let _ = lock(&self.latency).record_n(us, p.messages);
            }
            if !open {
                // What is still pending was never acknowledged (left in the spool or
                // dropped); it has no latency to show.
                return;
            }
        }
    }
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// One batch waiting for its acknowledgement.
struct Pending {
    /// Running count of taken messages after this batch.
    end: u64,
    first_time_ns: i64,
    messages: u64,
}

/// The publisher's side of the latency watcher: one cheap call per batch.
pub(crate) struct LatencyFeed {
    tx: Sender<Pending>,
    taken: u64,
    metrics: Arc<Metrics>,
}

impl LatencyFeed {
    /// The sink took `messages` of a batch whose first frame was captured at
    /// `first_time_ns` (taken counts must be fed in the order the sink took them).
    pub fn taken(&mut self, first_time_ns: i64, messages: u64) {
        if messages == 0 {
            return;
        }
        self.taken += messages;
        let p = Pending {
            end: self.taken,
            first_time_ns,
            messages,
        };
        if self.tx.try_send(p).is_err() {
            self.metrics.latency_skipped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The scrape-time reader of [`Metrics`].
#[derive(Debug)]
struct MetricsCollector(Arc<Metrics>);

/// Encodes one family of counters or gauges: (labels, value) pairs.
fn family(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    rows: &[(Vec<(&'static str, String)>, u64)],
) -> fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, kind)?;
    for (labels, v) in rows {
        let fam = m.encode_family(labels)?;
        match kind {
            MetricType::Counter => ConstCounter::new(*v).encode(fam)?,
            _ => ConstGauge::new(i64::try_from(*v).unwrap_or(i64::MAX)).encode(fam)?,
        }
    }
    Ok(())
}

/// Per-worker rows plus a `worker="all"` row with their sum.
fn per_worker(
    run: &RunCounters,
    f: impl Fn(&WorkerCounters) -> u64,
) -> Vec<(Vec<(&'static str, String)>, u64)> {
    let mut rows: Vec<_> = run
        .workers
        .iter()
        .enumerate()
        .map(|(i, w)| (vec![("worker", i.to_string())], f(w)))
        .collect();
    let total = rows.iter().map(|(_, v)| *v).sum();
    rows.push((vec![("worker", "all".to_string())], total));
    rows
}

fn load(a: &AtomicU64) -> u64 {
    a.load(Ordering::Acquire)
}

impl Collector for MetricsCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        use MetricType::{Counter, Gauge};
        let run = lock(&self.0.run).clone();
        let Some((run, sink)) = run else {
            return Ok(());
        };
        let cmd = vec![("command", run.command.to_string())];
        family(
            &mut enc,
            "netpipe_run_finished",
            "1 once the run has ended: the counters then equal the exit summary",
            Gauge,
            &[(cmd.clone(), u64::from(run.finished.load(Ordering::Acquire)))],
        )?;
        // Loaded in the reverse of the order they are stored in (received, then captured,
        // then batches handed on and written), so a scrape never shows more captured than
        // received (capture: see publish_stats there) nor, for read, more written than
        // captured. (Live capture stores captured every 200 ms, so written may run ahead.)
        let written = per_worker(&run, |w| load(&w.written));
        let captured = per_worker(&run, |w| load(&w.captured));
        let received = per_worker(&run, |w| load(&w.received));
        family(
            &mut enc,
            "netpipe_packets_captured",
            "Frames handed to the decoder, per worker and for all workers",
            Counter,
            &captured,
        )?;
        if run.command == "capture" {
            family(
                &mut enc,
                "netpipe_packets_received",
                "Frames that passed the kernel filter, dropped ones included (tp_packets)",
                Counter,
                &received,
            )?;
            family(
                &mut enc,
                "netpipe_kernel_drops",
                "Frames the kernel dropped because the ring was full (tp_drops)",
                Counter,
                &per_worker(&run, |w| load(&w.kernel_drops)),
            )?;
            let filled: Vec<_> = per_worker(&run, |w| load(&w.ring_blocks_filled));
            family(
                &mut enc,
                "netpipe_ring_blocks_filled",
                "Ring blocks the kernel has filled that the worker has not handed back yet \
                 (sampled every 200 ms); divide by netpipe_ring_blocks for the fill",
                Gauge,
                &filled,
            )?;
            family(
                &mut enc,
                "netpipe_ring_blocks",
                "Blocks in the worker's ring",
                Gauge,
                &per_worker(&run, |w| load(&w.ring_blocks)),
            )?;
            family(
                &mut enc,
                "netpipe_ring_queue_freezes",
                "Times the kernel froze a ring's queue (tp_freeze_q_cnt)",
                Counter,
                &per_worker(&run, |w| load(&w.freezes)),
            )?;
        } else {
            family(
                &mut enc,
                "netpipe_packets_read",
                "Frames read from the capture files",
                Counter,
                &[(cmd.clone(), load(&run.frames_read))],
            )?;
            family(
                &mut enc,
                "netpipe_packets_filtered_out",
                "Frames the filter rejected",
                Counter,
                &[(cmd.clone(), load(&run.filtered_out))],
            )?;
        }
        family(
            &mut enc,
            "netpipe_packets_written",
            "Messages the sink took, per worker and for all workers",
            Counter,
            &written,
        )?;
        family(
            &mut enc,
            "netpipe_packets_not_written",
            "Messages encoded but not written because the output failed or closed",
            Counter,
            &[(cmd.clone(), load(&run.not_written))],
        )?;
        let mut errors = Vec::new();
        for kind in ErrorKind::ALL {
            let mut rows = per_worker(&run, |w| load(&w.malformed[kind.index()]));
            for (labels, _) in &mut rows {
                // Label values in Prometheus' snake_case: "bad length" is bad_length.
                labels.push(("reason", kind.as_str().replace(' ', "_")));
            }
            errors.extend(rows);
        }
        family(
            &mut enc,
            "netpipe_decode_errors",
            "Packets with a truncated or malformed layer, by reason",
            Counter,
            &errors,
        )?;
        if run
            .workers
            .iter()
            .any(|w| w.reassembly.enabled.load(Ordering::Acquire))
        {
            encode_reassembly(&mut enc, &run, &cmd)?;
        }
        family(
            &mut enc,
            "netpipe_queue_depth_batches",
            "Full batches waiting for the publisher thread (sampled at each batch it takes)",
            Gauge,
            &[(cmd.clone(), load(&run.queue_depth_batches))],
        )?;
        family(
            &mut enc,
            "netpipe_queue_capacity_batches",
            "Batches the queue to the publisher thread can hold",
            Gauge,
            &[(cmd, load(&run.queue_capacity_batches))],
        )?;
        encode_sink(&mut enc, &sink, load(&run.written))?;
        // A file's timestamps say when it was captured, long ago: no latency for `read`.
        if run.command == "capture" {
            self.encode_latency(&mut enc, &sink)?;
        }
        Ok(())
    }
}

/// `--reassemble`: the reassemblers' counts, summed over workers.
fn encode_reassembly(
    enc: &mut DescriptorEncoder,
    run: &RunCounters,
    cmd: &[(&'static str, String)],
) -> fmt::Result {
    use MetricType::{Counter, Gauge};
    let sum = |f: &dyn Fn(&ReassemblyCounters) -> &AtomicU64| -> u64 {
        run.workers.iter().map(|w| load(f(&w.reassembly))).sum()
    };
    let counters: [(&str, &str, u64); 6] = [
        (
            "netpipe_reassembly_fragments",
            "IP fragments offered to the reassembler",
            sum(&|r| &r.fragments),
        ),
        (
            "netpipe_reassembly_datagrams",
            "Datagrams reassembled (one extra message each)",
            sum(&|r| &r.reassembled),
        ),
        (
            "netpipe_reassembly_duplicate_fragments",
            "Exact duplicate fragments ignored",
            sum(&|r| &r.duplicates),
        ),
        (
            "netpipe_reassembly_overlapping_fragments",
            "IPv4 fragments overlapping bytes already held (first wins: only the gaps used)",
            sum(&|r| &r.overlaps_trimmed),
        ),
        (
            "netpipe_reassembly_bad_fragments",
            "Fragments rejected on their own (cut short by the capture, empty, length not a \
             multiple of 8)",
            sum(&|r| &r.bad_fragments),
        ),
        (
            "netpipe_reassembly_late_fragments",
            "Fragments of a datagram already given up",
            sum(&|r| &r.late_fragments),
        ),
    ];
    for (name, help, v) in counters {
        family(enc, name, help, Counter, &[(cmd.to_vec(), v)])?;
    }
    let rows: Vec<_> = GiveUp::ALL
        .iter()
        .map(|g| {
            let mut l = cmd.to_vec();
            l.push(("reason", g.as_str().to_string()));
            (l, sum(&|r| &r.given_up[g.index()]))
        })
        .collect();
    family(
        enc,
        "netpipe_reassembly_given_up",
        "Datagrams given up, by reason (incomplete: still incomplete at the end of input, no \
         loss of output)",
        Counter,
        &rows,
    )?;
    family(
        enc,
        "netpipe_reassembly_memory_bytes",
        "Bytes the reassemblers hold now (at most --reassembly-mb)",
        Gauge,
        &[(cmd.to_vec(), sum(&|r| &r.memory_bytes))],
    )
}

fn encode_sink(enc: &mut DescriptorEncoder, sink: &OutputProbe, written: u64) -> fmt::Result {
    use MetricType::{Counter, Gauge};
    let label = || vec![("sink", sink.name.clone())];
    let s = sink.snapshot();
    family(
        enc,
        "netpipe_messages_published",
        "Messages the sink's destination accepted (Redis reply, RabbitMQ confirm, written)",
        Counter,
        &[(label(), s.published.unwrap_or(written))],
    )?;
    family(
        enc,
        "netpipe_messages_resent",
        "Messages sent again after a lost connection (possible duplicates)",
        Counter,
        &[(label(), s.resent)],
    )?;
    family(
        enc,
        "netpipe_sink_reconnects",
        "Connections to the destination lost and made again",
        Counter,
        &[(label(), s.reconnects)],
    )?;
    let dropped: Vec<_> = s
        .dropped
        .iter()
        .map(|(reason, n)| {
            let mut l = label();
            l.push(("reason", (*reason).to_string()));
            (l, *n)
        })
        .collect();
    family(
        enc,
        "netpipe_messages_dropped",
        "Messages the delivery layer dropped, by reason",
        Counter,
        &dropped,
    )?;
    family(
        enc,
        "netpipe_messages_spooled",
        "Messages written to the spool",
        Counter,
        &[(label(), s.spooled)],
    )?;
    family(
        enc,
        "netpipe_spool_bytes",
        "Bytes in the spool now",
        Gauge,
        &[(label(), s.spool_bytes)],
    )?;
    family(
        enc,
        "netpipe_spool_messages",
        "Messages in the spool not yet sent",
        Gauge,
        &[(label(), s.spool_messages)],
    )
}

impl MetricsCollector {
    fn encode_latency(&self, enc: &mut DescriptorEncoder, sink: &OutputProbe) -> fmt::Result {
        let hist = lock(&self.0.latency).clone();
        let labels = vec![("sink", sink.name.clone())];
        let count = hist.len();
        // The HDR histogram keeps counts, not the exact sum: mean × count is the sum at its
        // precision (3 significant digits).
        let sum_s = hist.mean() * count as f64 / 1e6;
        let buckets: Vec<(f64, u64)> = LATENCY_BUCKETS_S
            .iter()
            .map(|&le| {
                let le_us = (le * 1e6) as u64;
                (le, hist.count_between(0, le_us))
            })
            // The text encoder writes `+Inf` for f64::MAX.
            .chain(std::iter::once((f64::MAX, count)))
            .collect();
        // The text encoder adds cumulative counts itself: give it per-bucket counts.
        let mut per_bucket = Vec::with_capacity(buckets.len());
        let mut prev = 0u64;
        for (le, cum) in buckets {
            let cum = cum.max(prev);
            per_bucket.push((le, cum - prev));
            prev = cum;
        }
        let mut m = enc.encode_descriptor(
            "netpipe_capture_to_ack_latency_seconds",
            "Live capture: from a batch's first frame's kernel timestamp to the sink's \
             acknowledgement of the whole batch, once per message",
            None,
            MetricType::Histogram,
        )?;
        m.encode_family(&labels)?
            .encode_histogram::<Vec<(&str, String)>>(sum_s, count, &per_bucket, None)?;
        let mut q = enc.encode_descriptor(
            "netpipe_capture_to_ack_latency_quantile_seconds",
            "Quantiles of netpipe_capture_to_ack_latency_seconds from the HDR histogram",
            None,
            MetricType::Gauge,
        )?;
        for quantile in LATENCY_QUANTILES {
            let mut l = labels.clone();
            l.push(("quantile", quantile.to_string()));
            let v = if count == 0 {
                0.0
            } else {
                hist.value_at_quantile(quantile) as f64 / 1e6
            };
            ConstGauge::new(v).encode(q.encode_family(&l)?)?;
        }
        family(
            enc,
            "netpipe_latency_batches_unmeasured",
            "Batches left out of the latency histogram (its watcher was behind)",
            MetricType::Counter,
            &[(labels, self.0.latency_skipped.load(Ordering::Relaxed))],
        )
    }
}

/// The OpenMetrics text of `metrics` now.
pub fn render(metrics: &Arc<Metrics>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(MetricsCollector(Arc::clone(metrics))));
    let mut out = String::new();
    // Writing into a String cannot fail; a collector error would leave a partial text, which
    // the scraper rejects (no `# EOF`).
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

/// Longest request head read; anything longer is refused.
const MAX_REQUEST_BYTES: usize = 8192;
/// A client gets this long to send its request and take the answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// Scrapes answered at the same time; a connection beyond them is closed at once.
const MAX_CLIENTS: usize = 8;

/// Serves `GET /metrics` on `addr` (`HOST:PORT`; port 0 picks a free one) from a thread of
/// its own for the rest of the process; returns the address it listens on. Each connection
/// gets a short-lived thread of its own (at most `MAX_CLIENTS`, 8), so a client that connects
/// and says nothing holds one slot for `CLIENT_TIMEOUT` (5 s), not the server.
pub fn serve(addr: &str, metrics: Arc<Metrics>) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    let busy = Arc::new(AtomicUsize::new(0));
    thread::Builder::new()
        .name("netpipe-metrics".into())
        .spawn(move || {
            for conn in listener.incoming() {
                match conn {
                    Ok(stream) => {
                        if busy.fetch_add(1, Ordering::AcqRel) >= MAX_CLIENTS {
                            busy.fetch_sub(1, Ordering::AcqRel);
                            continue; // dropped: closed
                        }
                        let metrics = Arc::clone(&metrics);
                        let done = Arc::clone(&busy);
                        let spawned =
                            thread::Builder::new()
                                .name("netpipe-scrape".into())
                                .spawn(move || {
                                    let _ = answer(stream, &metrics);
                                    done.fetch_sub(1, Ordering::AcqRel);
                                });
                        if spawned.is_err() {
                            busy.fetch_sub(1, Ordering::AcqRel);
                        }
                    }
                    // Out of descriptors and the like: wait a little instead of spinning.
                    Err(_) => thread::sleep(Duration::from_millis(50)),
                }
            }
        })?;
    Ok(local)
}

/// Reads one request head and answers it: the metrics for `GET|HEAD /metrics`, 404 for
/// another path, 405 for another method, 400 for anything unreadable.
fn answer(mut stream: TcpStream, metrics: &Arc<Metrics>) -> io::Result<()> {
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        if head.len() >= MAX_REQUEST_BYTES {
            return respond(
                &mut stream,
                "400 Bad Request",
                "text/plain",
                b"too long\n",
                true,
            );
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let mut parts = line
        .split(|&b| b == b' ' || b == b'\r')
        .filter(|p| !p.is_empty());
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return respond(
            &mut stream,
            "400 Bad Request",
            "text/plain",
            b"bad request\n",
            true,
        );
    };
    let path = target.split(|&b| b == b'?').next().unwrap_or(target);
    let with_body = method != b"HEAD";
    if method != b"GET" && method != b"HEAD" {
        return respond(
            &mut stream,
            "405 Method Not Allowed",
            "text/plain",
            b"GET only\n",
            true,
        );
    }
    if path != b"/metrics" {
        return respond(
            &mut stream,
            "404 Not Found",
            "text/plain",
            b"see /metrics\n",
            with_body,
        );
    }
    let text = render(metrics);
    respond(
        &mut stream,
        "200 OK",
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
        text.as_bytes(),
        with_body,
    )
}

fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &[u8],
    with_body: bool,
) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    if with_body {
        stream.write_all(body)?;
    }
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_with_worker_totals() {
        let m = Metrics::new();
        let run = RunCounters::new("read", 2);
        run.workers[0].captured.store(3, Ordering::Relaxed);
        run.workers[1].captured.store(4, Ordering::Relaxed);
        run.add_written(1, 4);
        run.workers[1].malformed[ErrorKind::ALL[0].index()].store(2, Ordering::Relaxed);
        m.attach(run, OutputProbe::named("stdout"));
        let text = render(&m);
        assert!(
            text.contains("netpipe_packets_captured_total{worker=\"all\"} 7"),
            "{text}"
        );
        assert!(
            text.contains("netpipe_packets_written_total{worker=\"1\"} 4"),
            "{text}"
        );
        assert!(text.trim_end().ends_with("# EOF"), "{text}");
    }

    #[test]
    fn latency_is_recorded_once_acknowledged() {
        let m = Metrics::new();
        let acked = Arc::new(AtomicU64::new(0));
        let a = Arc::clone(&acked);
        let (mut feed, handle) = m
            .watch_latency(Box::new(move || a.load(Ordering::Relaxed)))
            .unwrap();
        let t = now_ns() - 2_000_000; // 2 ms ago
        feed.taken(t, 10);
        feed.taken(t, 5);
        acked.store(10, Ordering::Relaxed);
        drop(feed);
        handle.join().unwrap();
        let h = lock(&m.latency).clone();
        // The second batch was never acknowledged: not measured.
        assert_eq!(h.len(), 10);
        assert!(h.min() >= 1990, "{}", h.min());
    }
}
