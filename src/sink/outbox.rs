//! What happens when a broker output cannot keep up or is gone: `--when-full`.
//!
//! - `block`: the sink itself holds the output and reconnects (the publisher thread waits,
//!   the workers wait for empty batches, live capture counts those waits and, when they last,
//!   the kernel ring fills and the kernel drops and counts). No [`Outbox`] is used.
//! - `drop`: an [`Outbox`] with a delivery thread in front of the sink. The publisher hands
//!   batches over while the delivery thread has room ([`QUEUE_BATCHES`] batches); when it has
//!   none, the batch is dropped and counted (`dropped (queue full)`). When the connection is
//!   lost, the messages it may not have delivered and every batch that arrives until it is
//!   back are dropped and counted (`dropped (broker unreachable)`) while the delivery thread
//!   reconnects with capped backoff; at the end of the run nothing waits for the broker.
//! - `spool` (the default): as `drop`, but what the delivery thread has no room for goes to
//!   the on-disk [`Spool`] instead, in order. When the connection is lost, the sink does not
//!   wait it out: it hands back every message the broker may not have stored (the batch in
//!   flight; for RabbitMQ every unconfirmed message), and those and the batches queued for
//!   the delivery thread go into the spool before anything already there, synced to disk. So
//!   during an outage every message is on disk (a SIGKILL loses none of them), memory stays
//!   flat, and the delivery thread reconnects with capped exponential backoff. Once connected
//!   again it sends the spool, oldest first, before anything newer; a spool left by a run
//!   that stopped (or was killed) is sent first at the next start. A spool at its cap
//!   (`--spool-mb`) refuses new batches: they are dropped and counted (`dropped (spool
//!   full)`).
//!
//! Order: the publisher sends a batch to the delivery thread only while the spool has
//! nothing unread, and decides under the spool's lock; the delivery thread takes the next
//! queued batch under the same lock before it reads the spool. So queued batches are always
//! older than unread spool records, and messages reach the broker in the order the publisher
//! wrote them.
//!
//! At-least-once window: messages the broker may have stored before the connection died
//! (Redis: the one LPUSH whose reply was lost; RabbitMQ: messages sent but not confirmed) are
//! sent again after the reconnect and counted as `resent`; duplicates ≤ resent. Spooled
//! messages are deleted from the spool only once the broker has acknowledged them (RabbitMQ:
//! confirmed); a crash between the two sends them again (counted in the next run's replay).

use super::spool::{AppendError, Pos, Recovery, Spool, SpoolDir};
use super::{
    log, Backoff, Deliver, Outage, Sink, StartError, Undelivered, WriteError, EXIT_BAD_URL,
    EXIT_OUTPUT_FAILED,
};
use crate::encode::batch::{JsonBatch, BATCH_BYTES, BATCH_PACKETS};
use crossbeam_channel::{bounded, unbounded, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Batches the delivery thread may have queued before the publisher spools (or drops).
pub const QUEUE_BATCHES: usize = 4;
/// Default cap of the spool (`--spool-mb`).
pub const DEFAULT_SPOOL_MB: u64 = 1024;
/// At the end of a run with the broker down, how long to keep trying before leaving the rest
/// in the spool for the next start.
pub const FINISH_PATIENCE: Duration = Duration::from_secs(10);
/// How long the idle delivery thread sleeps before looking at the spool again (it is woken
/// at once when something arrives; this is a safety net only).
const IDLE_POLL: Duration = Duration::from_millis(200);

/// `--when-full`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WhenFull {
    /// Back-pressure: the publisher waits, so the workers wait.
    Block,
    /// Drop what the delivery thread has no room for, and count it.
    Drop,
    /// Put it in the on-disk spool and send it later, in order.
    #[default]
    Spool,
}

impl WhenFull {
    /// The `--when-full` value: `block`, `drop` or `spool`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            WhenFull::Block => "block",
            WhenFull::Drop => "drop",
            WhenFull::Spool => "spool",
        }
    }
}

/// How a broker output copes with a slow or absent broker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// `--when-full`: what happens to what the broker cannot take now.
    pub when_full: WhenFull,
    /// `None`: [`default_spool_dir`] of the output.
    pub spool_dir: Option<PathBuf>,
    /// The spool directory, already checked and opened for the user a capture switches to
    /// (`--user`; see [`SpoolDir::open_for_user`]); used instead of `spool_dir`.
    pub prepared_dir: Option<SpoolDir>,
    /// `--spool-mb`, in bytes: the spool's size cap (what does not fit is dropped and
    /// counted).
    pub spool_cap_bytes: u64,
    /// Waits between reconnect attempts (spool mode; the other modes use the sink's own).
    pub backoff: Backoff,
    /// See [`FINISH_PATIENCE`].
    pub finish_patience: Duration,
    /// Spool mode: while the broker is connected, wait for a slow broker instead of spooling
    /// (the spool then takes only what arrives during an outage). Right for `read`, whose
    /// source can wait; live capture cannot wait (the kernel would drop), so it spools.
    pub wait_while_connected: bool,
}

impl Default for Delivery {
    fn default() -> Self {
        Delivery {
            when_full: WhenFull::Spool,
            spool_dir: None,
            prepared_dir: None,
            spool_cap_bytes: DEFAULT_SPOOL_MB << 20,
            backoff: Backoff::default(),
            finish_patience: FINISH_PATIENCE,
            wait_while_connected: false,
        }
    }
}

/// `<state root>/<identity>`, one directory per destination so two outputs never mix. The
/// state root is `/var/lib/netpipe-fast/spool` for root and
/// `$XDG_STATE_HOME/netpipe-fast/spool` (`~/.local/state/netpipe-fast/spool` when that is
/// not set) for other users: never a world-writable folder (see [`super::spool`] on trust).
pub fn default_spool_dir(identity: &str) -> PathBuf {
    crate::paths::state_root_for(
        super::spool::effective_uid(),
        std::env::var_os("XDG_STATE_HOME").map(PathBuf::from),
        std::env::var_os("HOME").map(PathBuf::from),
    )
    .join("spool")
    .join(safe_name(identity))
}

fn safe_name(identity: &str) -> String {
    identity
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The spool directory `delivery` uses for an output named `identity`.
pub fn spool_dir_of(delivery: &Delivery, identity: &str) -> PathBuf {
    match (&delivery.prepared_dir, &delivery.spool_dir) {
        (Some(d), _) => d.path().to_path_buf(),
        (None, Some(p)) => p.clone(),
        (None, None) => default_spool_dir(identity),
    }
}

/// Opens the spool of `delivery` (spool mode only), checked before anything connects or is
/// sent. A directory that cannot be trusted or used ends the run with exit code
/// [`EXIT_OUTPUT_FAILED`].
pub fn open_spool(
    delivery: &Delivery,
    dir: &Path,
) -> Result<Option<(Spool, Recovery)>, StartError> {
    if delivery.when_full != WhenFull::Spool {
        return Ok(None);
    }
    let opened = match &delivery.prepared_dir {
        Some(prepared) => Spool::open_in(prepared.clone(), delivery.spool_cap_bytes),
        None => Spool::open(dir, delivery.spool_cap_bytes),
    };
    opened.map(Some).map_err(|e| {
        StartError::new(
            EXIT_OUTPUT_FAILED,
            format!("cannot use the spool directory {}: {e}", dir.display()),
        )
    })
}

/// What the delivery layer did, for the exit summary. Shared with the delivery thread.
#[derive(Debug, Default)]
pub struct DeliveryCounters {
    /// Messages written to the spool (new ones, and ones handed back at an outage).
    pub spooled: AtomicU64,
    /// Messages sent from the spool and acknowledged by the broker.
    pub replayed: AtomicU64,
    /// Messages found in the spool at start (left by a previous run).
    pub recovered: AtomicU64,
    /// Messages sent again that the broker may already have had (possible duplicates).
    pub resent: AtomicU64,
    /// Dropped: the delivery thread had no room (`--when-full drop`).
    pub dropped_queue_full: AtomicU64,
    /// Dropped: the spool was at its cap.
    pub dropped_spool_full: AtomicU64,
    /// Dropped: the spool could not be written (disk error).
    pub dropped_spool_error: AtomicU64,
    /// Dropped: the broker refused them for good (an error waiting does not fix).
    pub dropped_refused: AtomicU64,
    /// Dropped: the connection was lost (`--when-full drop`): what it may not have
    /// delivered, and what arrived before it was back.
    pub dropped_unreachable: AtomicU64,
    /// Damaged spool segments found at start and moved aside (`*.damaged`).
    pub damaged_segments: AtomicU64,
    /// Cursor entries that pointed inside a record or past a segment's end, fixed at start.
    pub cursors_fixed: AtomicU64,
    /// Damaged or cut records found at the end of spool segments at start.
    pub torn_records: AtomicU64,
    /// Bytes of those records, thrown away.
    pub torn_bytes: AtomicU64,
    /// Connection losses.
    pub outages: AtomicU64,
    /// Messages still in the spool when the run ended (sent at the next start).
    pub left_in_spool: AtomicU64,
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

impl DeliveryCounters {
    /// The `spooled` counter now.
    pub(crate) fn spooled(&self) -> u64 {
        get(&self.spooled)
    }
    /// The `replayed` counter now.
    pub(crate) fn replayed(&self) -> u64 {
        get(&self.replayed)
    }
    /// The `recovered` counter now.
    pub(crate) fn recovered(&self) -> u64 {
        get(&self.recovered)
    }
    /// The `resent` counter now.
    pub(crate) fn resent(&self) -> u64 {
        get(&self.resent)
    }
    /// Messages dropped for any reason: the sum of the `dropped_*` counters.
    pub(crate) fn dropped(&self) -> u64 {
        get(&self.dropped_queue_full)
            + get(&self.dropped_spool_full)
            + get(&self.dropped_spool_error)
            + get(&self.dropped_refused)
            + get(&self.dropped_unreachable)
    }
    /// The `left_in_spool` counter now.
    pub(crate) fn left_in_spool(&self) -> u64 {
        get(&self.left_in_spool)
    }
}

enum Msg {
    Batch(JsonBatch),
    /// The spool got something to send.
    Wake,
    /// No more batches: deliver what is left, flush, stop.
    Finish,
}

struct Shared {
    /// `None` in drop mode.
    spool: Mutex<Option<Spool>>,
    counters: Arc<DeliveryCounters>,
    /// The delivery thread stopped on an error that waiting does not fix.
    failed: AtomicBool,
    /// The connection is lost (set at an outage, cleared at the reconnect).
    down: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Option<Spool>> {
        // A panic elsewhere while holding the lock leaves the spool usable.
        self.spool.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How the delivery thread ended.
struct End {
    error: Option<io::Error>,
    sink_report: Option<String>,
    delivered: u64,
}

/// A delivery thread (and, in spool mode, a spool) in front of a broker sink.
pub struct Outbox {
    mode: WhenFull,
    dest: String,
    spool_dir: Option<PathBuf>,
    /// Damaged segments moved aside at start (names in the spool directory).
    damaged: Vec<String>,
    tx: Sender<Msg>,
    recycled: Receiver<JsonBatch>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<End>>,
    end: Option<End>,
    spool_error_logged: bool,
    wait_while_connected: bool,
    /// An empty batch taken while waiting for room, not used yet.
    spare: Option<JsonBatch>,
}

impl Outbox {
    /// Starts the delivery thread for `sink` (already connected). `dest` names the output in
    /// log lines (no password). In spool mode opens the spool in `spool_dir` first: what a
    /// previous run left there is sent before anything new.
    pub fn start(
        sink: Box<dyn Sink>,
        dest: String,
        delivery: &Delivery,
        spool_dir: &Path,
    ) -> Result<Outbox, StartError> {
        let spool = open_spool(delivery, spool_dir)?;
        Outbox::start_with(sink, dest, delivery, spool_dir, spool)
    }

    /// As [`Outbox::start`], with the spool already opened by [`open_spool`].
    pub fn start_with(
        sink: Box<dyn Sink>,
        dest: String,
        delivery: &Delivery,
        spool_dir: &Path,
        spool: Option<(Spool, Recovery)>,
    ) -> Result<Outbox, StartError> {
        if delivery.when_full == WhenFull::Block {
            // `--when-full block` holds the output in the sink itself (see
            // `Output::with_delivery`); a delivery thread would only add a copy.
            return Err(StartError::new(
                EXIT_BAD_URL,
                format!("{dest}: --when-full block takes no delivery thread"),
            ));
        }
        let counters = Arc::new(DeliveryCounters::default());
        let mut damaged = Vec::new();
        let spool = spool.map(|(spool, recovery)| {
            add(&counters.recovered, recovery.records);
            add(&counters.torn_records, recovery.torn_records);
            add(&counters.torn_bytes, recovery.torn_bytes);
            add(&counters.damaged_segments, recovery.damaged.len() as u64);
            add(&counters.cursors_fixed, recovery.cursors_fixed);
            if recovery.records > 0 {
                log(format_args!(
                    "{dest}: {} message(s) left in the spool {} by an earlier run; sending \
                     them first",
                    recovery.records,
                    spool_dir.display()
                ));
            }
            if recovery.torn_records > 0 {
                log(format_args!(
                    "spool {}: {} segment(s) ended in a record cut short ({} bytes ignored)",
                    spool_dir.display(),
                    recovery.torn_records,
                    recovery.torn_bytes
                ));
            }
            if !recovery.damaged.is_empty() {
                log(format_args!(
                    "spool {}: {} damaged segment(s) moved aside ({}; {} bytes unreadable); \
                     their good records are sent",
                    spool_dir.display(),
                    recovery.damaged.len(),
                    recovery.damaged.join(", "),
                    recovery.damaged_bytes
                ));
            }
            if recovery.cursors_fixed > 0 {
                log(format_args!(
                    "spool {}: the cursor did not point at a record boundary in {} segment(s); \
                     moved back (some messages may be sent twice)",
                    spool_dir.display(),
                    recovery.cursors_fixed
                ));
            }
            damaged = recovery.damaged;
            spool
        });
        let shared = Arc::new(Shared {
            spool: Mutex::new(spool),
            counters,
            failed: AtomicBool::new(false),
            down: AtomicBool::new(false),
        });
        let (tx, rx) = unbounded();
        let (recycle_tx, recycled) = bounded(QUEUE_BATCHES);
        for _ in 0..QUEUE_BATCHES {
            let _ = recycle_tx.send(JsonBatch::with_capacity());
        }
        let worker = Delivering {
            sink,
            dest: dest.clone(),
            mode: delivery.when_full,
            backoff: delivery.backoff,
            finish_patience: delivery.finish_patience,
            rx,
            recycle: recycle_tx,
            shared: Arc::clone(&shared),
            scratch: JsonBatch::with_capacity(),
            pending: VecDeque::new(),
            accepted: 0,
            finishing: false,
            unflushed: false,
        };
        let thread = std::thread::Builder::new()
            .name("netpipe-deliver".into())
            .spawn(move || worker.run())
            .map_err(|e| {
                StartError::new(
                    EXIT_BAD_URL,
                    format!("cannot start the delivery thread: {e}"),
                )
            })?;
        Ok(Outbox {
            mode: delivery.when_full,
            dest,
            spool_dir: (delivery.when_full == WhenFull::Spool).then(|| spool_dir.to_path_buf()),
            damaged,
            tx,
            recycled,
            shared,
            thread: Some(thread),
            end: None,
            spool_error_logged: false,
            wait_while_connected: delivery.wait_while_connected,
            spare: None,
        })
    }

    /// The counters, readable while the run goes on.
    pub fn counters(&self) -> Arc<DeliveryCounters> {
        Arc::clone(&self.shared.counters)
    }

    /// A handle that reads the spool's size while the run goes on (for `--metrics`).
    pub fn spool_gauge(&self) -> SpoolGauge {
        SpoolGauge(Arc::clone(&self.shared))
    }

    /// Stops the delivery thread (after it delivered what it could) and keeps how it ended.
    fn join(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = self.tx.send(Msg::Finish);
            self.end = Some(thread.join().unwrap_or_else(|_| End {
                error: Some(io::Error::other("the delivery thread panicked")),
                sink_report: None,
                delivered: 0,
            }));
        }
    }

    fn failed_error(&self) -> io::Error {
        io::Error::other(format!("{}: delivery stopped (see above)", self.dest))
    }
}

/// The publisher hands batches to the delivery thread (or the spool) without copying them.
impl Deliver for Outbox {
    fn deliver(&mut self, batch: JsonBatch) -> (JsonBatch, io::Result<usize>) {
        let n = batch.len();
        if self.shared.failed.load(Ordering::Relaxed) || self.thread.is_none() {
            return (batch, Err(self.failed_error()));
        }
        let counters = Arc::clone(&self.shared.counters);
        match self.mode {
            WhenFull::Drop => match self.recycled.try_recv() {
                Ok(empty) => {
                    let _ = self.tx.send(Msg::Batch(batch));
                    (empty, Ok(n))
                }
                Err(_) => {
                    add(&counters.dropped_queue_full, n as u64);
                    (batch, Ok(0))
                }
            },
            // Block never gets here: `start_with` refuses it (the sink holds by itself).
            WhenFull::Spool | WhenFull::Block => {
                let shared = Arc::clone(&self.shared);
                let mut guard = loop {
                    let guard = shared.lock();
                    let Some(spool) = guard.as_ref() else {
                        break guard;
                    };
                    if spool.unread() == 0 {
                        if let Some(empty) =
                            self.spare.take().or_else(|| self.recycled.try_recv().ok())
                        {
                            // Sent under the lock: see the module's note on order.
                            let _ = self.tx.send(Msg::Batch(batch));
                            return (empty, Ok(n));
                        }
                    }
                    // A slow broker, not a lost one: wait for room rather than spool (and,
                    // while the spool is being sent, keep it under half its cap).
                    let patient = self.wait_while_connected && !shared.down.load(Ordering::Relaxed);
                    if patient && (spool.unread() == 0 || spool.bytes() > spool.cap_bytes() / 2) {
                        // Not under the lock, which the delivery thread needs.
                        drop(guard);
                        match self.recycled.recv_timeout(Duration::from_millis(5)) {
                            Ok(empty) => self.spare = Some(empty),
                            Err(RecvTimeoutError::Timeout) => {}
                            Err(RecvTimeoutError::Disconnected) => {
                                return (batch, Err(self.failed_error()))
                            }
                        }
                        if shared.failed.load(Ordering::Relaxed) {
                            return (batch, Err(self.failed_error()));
                        }
                        continue;
                    }
                    break guard;
                };
                let Some(spool) = guard.as_mut() else {
                    return (batch, Err(self.failed_error()));
                };
                let was_empty = spool.unread() == 0;
                match spool.append(&batch) {
                    Ok(()) => {
                        add(&counters.spooled, n as u64);
                        if was_empty {
                            let _ = self.tx.send(Msg::Wake);
                        }
                        (batch, Ok(n))
                    }
                    Err(AppendError::Full) => {
                        add(&counters.dropped_spool_full, n as u64);
                        (batch, Ok(0))
                    }
                    Err(AppendError::Io(e)) => {
                        if !self.spool_error_logged {
                            log(format_args!("{}: cannot write the spool: {e}", self.dest));
                            self.spool_error_logged = true;
                        }
                        add(&counters.dropped_spool_error, n as u64);
                        (batch, Ok(0))
                    }
                }
            }
        }
    }

    fn finish(&mut self) -> io::Result<()> {
        self.join();
        match self.end.as_mut().and_then(|e| e.error.take()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn tally(&self) -> Undelivered {
        self.undelivered_now()
    }

    fn summary(&self) -> Option<String> {
        let c = &self.shared.counters;
        let end = self.end.as_ref();
        let mut line = format!(
            "delivery (--when-full {}): {} acknowledged by the broker",
            self.mode.as_str(),
            end.map_or(0, |e| e.delivered)
        );
        if self.mode == WhenFull::Spool {
            line.push_str(&format!(
                ", {} spooled, {} replayed from the spool ({} left by an earlier run)",
                c.spooled(),
                c.replayed(),
                c.recovered()
            ));
        }
        line.push_str(&format!(
            ", {} resent after {} outage(s), {} dropped",
            c.resent(),
            get(&c.outages),
            c.dropped()
        ));
        let reasons = [
            (get(&c.dropped_queue_full), "queue full"),
            (get(&c.dropped_spool_full), "spool full"),
            (get(&c.dropped_spool_error), "spool write failed"),
            (get(&c.dropped_refused), "refused by the broker"),
            (get(&c.dropped_unreachable), "broker unreachable"),
        ];
        if c.dropped() > 0 {
            let parts: Vec<String> = reasons
                .iter()
                .filter(|(n, _)| *n > 0)
                .map(|(n, why)| format!("{n} {why}"))
                .collect();
            line.push_str(&format!(" ({})", parts.join(", ")));
        }
        if get(&c.torn_records) > 0 {
            line.push_str(&format!(
                ", {} torn spool record(s) ignored ({} bytes)",
                get(&c.torn_records),
                get(&c.torn_bytes)
            ));
        }
        if !self.damaged.is_empty() {
            line.push_str(&format!(
                ", {} damaged spool segment(s) moved aside ({})",
                self.damaged.len(),
                self.damaged.join(", ")
            ));
        }
        if c.left_in_spool() > 0 {
            if let Some(dir) = &self.spool_dir {
                line.push_str(&format!(
                    "; {} left in the spool {} (sent at the next start)",
                    c.left_in_spool(),
                    dir.display()
                ));
            }
        }
        Some(match end.and_then(|e| e.sink_report.as_deref()) {
            Some(sink) => format!("{sink}\n{line}"),
            None => line,
        })
    }
}

impl Outbox {
    /// What this run did not deliver (after [`Sink::flush`]).
    fn undelivered_now(&self) -> Undelivered {
        let c = &self.shared.counters;
        Undelivered {
            dropped: c.dropped(),
            left_in_spool: c.left_in_spool(),
            damaged_segments: self.damaged.len() as u64,
            spool_dir: self.spool_dir.clone(),
        }
    }
}

/// Reads the size of an [`Outbox`]'s spool (taking its lock briefly, once per read).
#[derive(Clone)]
pub struct SpoolGauge(Arc<Shared>);

impl SpoolGauge {
    /// Bytes on disk and messages not yet sent; `None` without a spool (`--when-full drop`).
    pub fn size(&self) -> Option<(u64, u64)> {
        self.0.lock().as_ref().map(|s| (s.bytes(), s.unread()))
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        self.join();
    }
}

impl fmt::Debug for Outbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outbox")
            .field("mode", &self.mode)
            .field("dest", &self.dest)
            .finish()
    }
}

/// The delivery thread's state.
struct Delivering {
    sink: Box<dyn Sink>,
    dest: String,
    mode: WhenFull,
    backoff: Backoff,
    finish_patience: Duration,
    rx: Receiver<Msg>,
    recycle: Sender<JsonBatch>,
    shared: Arc<Shared>,
    /// Messages read back from the spool.
    scratch: JsonBatch,
    /// Spool reads written to the sink but not yet acknowledged: where each ends, and the
    /// sink's delivered count that acknowledges it, with its message count.
    pending: VecDeque<(Pos, u64, u64)>,
    /// The sink's delivered count once everything written so far is acknowledged.
    accepted: u64,
    finishing: bool,
    /// Written to the sink (spool mode) since the last flush: when the queue runs dry, the
    /// sink's unanswered commands are settled first, so a broker lost while idle hands back
    /// only what it really may not hold (not what it stored before going quiet).
    unflushed: bool,
}

enum Next {
    Queued(JsonBatch),
    Spooled(Pos),
    Idle,
}

/// What writing one batch came to.
enum Wrote {
    Ok,
    Down,
    Failed,
}

impl Delivering {
    fn run(mut self) -> End {
        let mut error = None;
        self.accepted = self.sink.delivered();
        'run: loop {
            let next = match self.next() {
                Ok(n) => n,
                Err(e) => {
                    log(format_args!("{}: cannot read the spool: {e}", self.dest));
                    error = Some(e);
                    break;
                }
            };
            let wrote = match next {
                Next::Queued(batch) => {
                    let wrote = self.write(&batch, None);
                    self.recycle_batch(batch);
                    wrote
                }
                Next::Spooled(pos) => {
                    let batch = std::mem::take(&mut self.scratch);
                    let wrote = self.write(&batch, Some(pos));
                    self.scratch = batch;
                    wrote
                }
                Next::Idle if self.finishing => match self.finish_sink() {
                    Wrote::Ok => break,
                    other => other,
                },
                Next::Idle if !self.pending.is_empty() => {
                    // Nothing else to do: wait for the broker's acknowledgements, so the
                    // replayed part of the spool is deleted now rather than at the next write.
                    self.idle_flush()
                }
                Next::Idle if self.unflushed => {
                    // Settle what was written, so nothing the broker stored is handed back
                    // if it goes away while idle.
                    self.unflushed = false;
                    let settled = self.sink.try_settle();
                    self.wrote_after(settled, false)
                }
                Next::Idle => {
                    match self.rx.recv_timeout(IDLE_POLL) {
                        Ok(msg) => self.handle_while_up(msg),
                        Err(RecvTimeoutError::Timeout) => Wrote::Ok,
                        // The Outbox is gone without Finish: finish anyway.
                        Err(RecvTimeoutError::Disconnected) => {
                            self.finishing = true;
                            Wrote::Ok
                        }
                    }
                }
            };
            match wrote {
                Wrote::Ok => {}
                Wrote::Failed => {
                    error = Some(io::Error::other(format!(
                        "{}: the broker refused the messages",
                        self.dest
                    )));
                    break;
                }
                Wrote::Down => {
                    if !self.wait_until_up() {
                        break 'run;
                    }
                }
            }
        }
        if error.is_some() {
            self.shared.failed.store(true, Ordering::Relaxed);
            // Whatever is queued will not be delivered by this run.
            while let Ok(msg) = self.rx.try_recv() {
                if let Msg::Batch(b) = msg {
                    add(&self.shared.counters.dropped_refused, b.len() as u64);
                }
            }
        }
        if let Some(spool) = self.shared.lock().as_mut() {
            let _ = spool.sync();
            self.shared
                .counters
                .left_in_spool
                .store(spool.unread(), Ordering::Relaxed);
        }
        End {
            error,
            sink_report: self.sink.report(),
            delivered: self.sink.delivered(),
        }
    }

    /// A message that arrived while idle.
    fn handle_while_up(&mut self, msg: Msg) -> Wrote {
        match msg {
            Msg::Batch(batch) => {
                let wrote = self.write(&batch, None);
                self.recycle_batch(batch);
                wrote
            }
            Msg::Wake => Wrote::Ok,
            Msg::Finish => {
                self.finishing = true;
                Wrote::Ok
            }
        }
    }

    /// The next thing to send: a queued batch first, else the oldest unread spool records.
    /// Decided under the spool's lock (see the module's note on order).
    fn next(&mut self) -> io::Result<Next> {
        let shared = Arc::clone(&self.shared);
        let mut guard = shared.lock();
        loop {
            match self.rx.try_recv() {
                Ok(Msg::Batch(b)) => return Ok(Next::Queued(b)),
                Ok(Msg::Wake) => continue,
                Ok(Msg::Finish) => {
                    self.finishing = true;
                    continue;
                }
                Err(TryRecvError::Disconnected) => {
                    self.finishing = true;
                }
                Err(TryRecvError::Empty) => {}
            }
            break;
        }
        if let Some(spool) = guard.as_mut() {
            if spool.unread() > 0 {
                if let Some(pos) =
                    spool.read_batch(&mut self.scratch, BATCH_PACKETS, BATCH_BYTES)?
                {
                    return Ok(Next::Spooled(pos));
                }
            }
        }
        Ok(Next::Idle)
    }

    fn write(&mut self, batch: &JsonBatch, from_spool: Option<Pos>) -> Wrote {
        let n = batch.len() as u64;
        self.unflushed = true;
        match self.sink.try_write_batch(batch) {
            Ok(()) => {
                self.accepted += n;
                if let Some(pos) = from_spool {
                    self.pending.push_back((pos, self.accepted, n));
                }
                self.settle();
                Wrote::Ok
            }
            Err(WriteError::Outage(outage)) => {
                self.spool_unconfirmed(outage);
                Wrote::Down
            }
            Err(WriteError::Fatal(e)) => {
                log(format_args!("{e}"));
                add(&self.shared.counters.dropped_refused, n);
                Wrote::Failed
            }
        }
    }

    /// Flushes the sink at the end (spool and drop modes: waits for the last confirms).
    fn finish_sink(&mut self) -> Wrote {
        let flushed = self.sink.try_flush();
        self.wrote_after(flushed, true)
    }

    fn idle_flush(&mut self) -> Wrote {
        let flushed = self.sink.try_flush();
        self.wrote_after(flushed, true)
    }

    /// What a flush or settle came to: an outage hands its messages to the spool; a flush
    /// that succeeded (`all_acknowledged`) means everything written is acknowledged.
    fn wrote_after(&mut self, result: Result<(), WriteError>, all_acknowledged: bool) -> Wrote {
        match result {
            Ok(()) => {
                if all_acknowledged {
                    self.settle_up_to(u64::MAX);
                }
                Wrote::Ok
            }
            Err(WriteError::Outage(outage)) => {
                self.spool_unconfirmed(outage);
                Wrote::Down
            }
            Err(WriteError::Fatal(e)) => {
                log(format_args!("{e}"));
                Wrote::Failed
            }
        }
    }

    /// Deletes from the spool what the broker has acknowledged.
    fn settle(&mut self) {
        self.settle_up_to(self.sink.delivered());
    }

    /// Deletes from the spool the replayed batches acknowledged once the sink's delivered
    /// count reached `delivered`.
    fn settle_up_to(&mut self, delivered: u64) {
        let mut last = None;
        while let Some(&(pos, target, n)) = self.pending.front() {
            if target > delivered {
                break;
            }
            self.pending.pop_front();
            add(&self.shared.counters.replayed, n);
            last = Some(pos);
        }
        if let Some(pos) = last {
            if let Some(spool) = self.shared.lock().as_mut() {
                if let Err(e) = spool.ack(pos) {
                    // Not fatal: those messages are sent again at the next start.
                    log(format_args!("cannot update the spool: {e}"));
                }
            }
        }
    }

    /// The connection is gone: the messages it may not have delivered, then the queued
    /// batches, go into the spool before everything else there.
    fn spool_unconfirmed(&mut self, outage: Outage) {
        let counters = Arc::clone(&self.shared.counters);
        add(&counters.outages, 1);
        self.shared.down.store(true, Ordering::Relaxed);
        if self.mode == WhenFull::Drop {
            // Nothing is kept: what the connection may not have delivered is dropped and
            // counted (some of it may have arrived: at most `maybe_delivered`).
            log(format_args!(
                "{}: {}; dropping messages until it is back",
                self.dest, outage.reason
            ));
            add(
                &counters.dropped_unreachable,
                outage.unconfirmed.len() as u64,
            );
            self.pending.clear();
            self.accepted = self.sink.delivered();
            return;
        }
        log(format_args!(
            "{}: {}; spooling until it is back",
            self.dest, outage.reason
        ));
        self.settle();
        let shared = Arc::clone(&self.shared);
        let mut guard = shared.lock();
        let mut messages = outage.unconfirmed;
        while let Ok(msg) = self.rx.try_recv() {
            match msg {
                Msg::Batch(b) => {
                    messages.extend(b.messages().map(<[u8]>::to_vec));
                    self.recycle_batch(b);
                }
                Msg::Wake => {}
                Msg::Finish => self.finishing = true,
            }
        }
        if let Some(spool) = guard.as_mut() {
            match spool.prepend(messages.iter().map(Vec::as_slice)) {
                Ok(k) => add(&counters.spooled, k),
                Err(e) => {
                    log(format_args!("{}: cannot write the spool: {e}", self.dest));
                    add(&counters.dropped_spool_error, messages.len() as u64);
                }
            }
        }
        add(&counters.resent, outage.maybe_delivered);
        self.pending.clear();
        self.accepted = self.sink.delivered();
    }

    /// Reconnects with capped exponential backoff; batches that arrive meanwhile go to the
    /// spool. False when the run is over and the broker stayed away for
    /// `finish_patience`: the rest stays in the spool.
    fn wait_until_up(&mut self) -> bool {
        let mut attempt = 0u32;
        let mut next_try = Instant::now() + self.backoff.delay(0);
        let mut finishing_since = self.finishing.then(Instant::now);
        loop {
            let now = Instant::now();
            if self.mode == WhenFull::Drop && self.finishing {
                // Nothing is held for the broker: the run ends now.
                log(format_args!(
                    "{}: still unreachable at the end of the run",
                    self.dest
                ));
                return false;
            }
            if let Some(since) = finishing_since {
                if now.duration_since(since) >= self.finish_patience {
                    log(format_args!(
                        "{}: still unreachable; leaving the rest in the spool",
                        self.dest
                    ));
                    return false;
                }
            }
            if now >= next_try {
                match self.sink.reconnect_once() {
                    Ok(()) => {
                        log(format_args!(
                            "{}: reconnected after {} attempt(s); sending the spool",
                            self.dest,
                            attempt + 1
                        ));
                        self.accepted = self.sink.delivered();
                        self.shared.down.store(false, Ordering::Relaxed);
                        return true;
                    }
                    Err(e) => {
                        if self.backoff.delay(attempt) < self.backoff.max
                            && self.backoff.delay(attempt + 1) >= self.backoff.max
                        {
                            log(format_args!("{}: still failing ({e}); retrying", self.dest));
                        }
                        attempt = attempt.saturating_add(1);
                        next_try = Instant::now() + self.backoff.delay(attempt);
                        continue;
                    }
                }
            }
            match self
                .rx
                .recv_timeout(next_try.saturating_duration_since(now))
            {
                Ok(Msg::Batch(b)) => {
                    // Only when the spool could not be written: keep order by appending.
                    self.append_while_down(&b);
                    self.recycle_batch(b);
                }
                Ok(Msg::Wake) | Err(RecvTimeoutError::Timeout) => {}
                Ok(Msg::Finish) | Err(RecvTimeoutError::Disconnected) => {
                    self.finishing = true;
                    finishing_since.get_or_insert_with(Instant::now);
                }
            }
        }
    }

    fn append_while_down(&mut self, batch: &JsonBatch) {
        let counters = Arc::clone(&self.shared.counters);
        let n = batch.len() as u64;
        if self.mode == WhenFull::Drop {
            add(&counters.dropped_unreachable, n);
            return;
        }
        match self.shared.lock().as_mut().map(|s| s.append(batch)) {
            Some(Ok(())) => add(&counters.spooled, n),
            Some(Err(AppendError::Full)) => add(&counters.dropped_spool_full, n),
            Some(Err(AppendError::Io(_))) | None => add(&counters.dropped_spool_error, n),
        }
    }

    fn recycle_batch(&self, mut batch: JsonBatch) {
        batch.clear();
        let _ = self.recycle.send(batch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// A broker in memory: stores what it is sent, and can be "down".
    #[derive(Default)]
    struct FakeBroker {
        stored: Mutex<Vec<Vec<u8>>>,
        down: AtomicBool,
        /// Writes refused so far (to wait for the outage to be noticed).
        refused: AtomicUsize,
    }

    struct FakeSink(Arc<FakeBroker>);

    impl Sink for FakeSink {
        fn write_batch(&mut self, batch: &JsonBatch) -> io::Result<()> {
            self.try_write_batch(batch)
                .map_err(|_| io::Error::other("down"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
        fn try_write_batch(&mut self, batch: &JsonBatch) -> Result<(), WriteError> {
            if self.0.down.load(Ordering::SeqCst) {
                self.0.refused.fetch_add(1, Ordering::SeqCst);
                return Err(WriteError::Outage(Outage {
                    reason: "down".into(),
                    unconfirmed: batch.messages().map(<[u8]>::to_vec).collect(),
                    maybe_delivered: 0,
                }));
            }
            let mut stored = self.0.stored.lock().unwrap();
            stored.extend(batch.messages().map(<[u8]>::to_vec));
            Ok(())
        }
        fn reconnect_once(&mut self) -> Result<(), String> {
            if self.0.down.load(Ordering::SeqCst) {
                Err("refused".into())
            } else {
                Ok(())
            }
        }
        fn delivered(&self) -> u64 {
            self.0.stored.lock().unwrap().len() as u64
        }
    }

    fn batch_of(first: usize, n: usize) -> JsonBatch {
        crate::sink::test_batch::of((first..first + n).map(|i| format!("{{\"n\":{i}}}")))
    }

    /// A scratch spool directory under target/ (the system temp dir is world-writable, which
    /// the spool refuses).
    fn unit_dir(what: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target/unit-outbox")
            .join(format!("{what}-{}", std::process::id()))
    }

    fn quick() -> Delivery {
        Delivery {
            backoff: Backoff {
                initial: Duration::from_millis(1),
                max: Duration::from_millis(5),
            },
            finish_patience: Duration::from_millis(200),
            ..Delivery::default()
        }
    }

    /// Whatever the timing, an outage in the middle of a stream loses nothing and keeps the
    /// order: the spool takes what the broker cannot, and sends it first when it is back.
    #[test]
    fn an_outage_mid_stream_keeps_every_message_in_order() {
        let dir = unit_dir("unit");
        let _ = std::fs::remove_dir_all(&dir);
        let broker = Arc::new(FakeBroker::default());
        let mut outbox = Outbox::start(
            Box::new(FakeSink(Arc::clone(&broker))),
            "fake".into(),
            &quick(),
            &dir,
        )
        .unwrap();
        let counters = outbox.counters();
        let mut next = 0;
        for round in 0..30 {
            if round == 10 {
                broker.down.store(true, Ordering::SeqCst);
            }
            if round == 20 {
                // The outage has been noticed (a write was refused) before it ends.
                let deadline = Instant::now() + Duration::from_secs(10);
                while broker.refused.load(Ordering::SeqCst) == 0 {
                    assert!(Instant::now() < deadline, "the outage was never noticed");
                    std::thread::sleep(Duration::from_millis(2));
                }
                broker.down.store(false, Ordering::SeqCst);
            }
            let (_, taken) = outbox.deliver(batch_of(next, 7));
            assert_eq!(taken.unwrap(), 7);
            next += 7;
        }
        outbox.finish().unwrap();
        let want: Vec<Vec<u8>> = (0..next)
            .map(|i| format!("{{\"n\":{i}}}").into_bytes())
            .collect();
        assert_eq!(*broker.stored.lock().unwrap(), want);
        assert!(counters.spooled() > 0, "nothing went through the spool");
        assert_eq!(counters.replayed(), counters.spooled());
        assert_eq!(counters.dropped(), 0);
        assert_eq!(counters.left_in_spool(), 0);
        let report = outbox.summary().unwrap();
        assert!(report.contains("1 outage(s)"), "{report}");
        drop(outbox);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A broker that stays away: the run ends after the patience, the rest stays in the
    /// spool, and the next start sends it first.
    #[test]
    fn what_is_left_at_exit_is_sent_at_the_next_start() {
        let dir = unit_dir("left");
        let _ = std::fs::remove_dir_all(&dir);
        let broker = Arc::new(FakeBroker::default());
        broker.down.store(true, Ordering::SeqCst);
        let mut outbox = Outbox::start(
            Box::new(FakeSink(Arc::clone(&broker))),
            "fake".into(),
            &quick(),
            &dir,
        )
        .unwrap();
        for i in 0..5 {
            let _ = outbox.deliver(batch_of(i * 3, 3));
        }
        outbox.finish().unwrap();
        assert_eq!(outbox.counters().left_in_spool(), 15);
        drop(outbox);
        assert!(broker.stored.lock().unwrap().is_empty());

        broker.down.store(false, Ordering::SeqCst);
        let mut outbox = Outbox::start(
            Box::new(FakeSink(Arc::clone(&broker))),
            "fake".into(),
            &quick(),
            &dir,
        )
        .unwrap();
        assert_eq!(outbox.counters().recovered(), 15);
        let _ = outbox.deliver(batch_of(15, 2));
        outbox.finish().unwrap();
        let want: Vec<Vec<u8>> = (0..17)
            .map(|i| format!("{{\"n\":{i}}}").into_bytes())
            .collect();
        assert_eq!(*broker.stored.lock().unwrap(), want);
        drop(outbox);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn drop_mode_counts_what_it_drops() {
        let broker = Arc::new(FakeBroker::default());
        let delivery = Delivery {
            when_full: WhenFull::Drop,
            ..quick()
        };
        // A sink that never returns until released: the queue fills and the rest drops.
        struct Stuck(Arc<FakeBroker>, Receiver<()>);
        impl Sink for Stuck {
            fn write_batch(&mut self, batch: &JsonBatch) -> io::Result<()> {
                let _ = self.1.recv();
                self.0
                    .stored
                    .lock()
                    .unwrap()
                    .extend(batch.messages().map(<[u8]>::to_vec));
                Ok(())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let (release_tx, release_rx) = unbounded();
        let mut outbox = Outbox::start(
            Box::new(Stuck(Arc::clone(&broker), release_rx)),
            "stuck".into(),
            &delivery,
            Path::new("/nonexistent-unused"),
        )
        .unwrap();
        let mut taken_total = 0;
        for i in 0..20 {
            let (_, taken) = outbox.deliver(batch_of(i * 4, 4));
            taken_total += taken.unwrap();
        }
        drop(release_tx);
        outbox.finish().unwrap();
        let c = outbox.counters();
        assert!(c.dropped() > 0);
        assert_eq!(taken_total as u64 + c.dropped(), 80);
        assert_eq!(broker.stored.lock().unwrap().len(), taken_total);
    }

    #[test]
    fn default_dirs_are_one_safe_name_under_a_private_state_root() {
        assert_eq!(safe_name("amqp-h-5672-/-a/../b"), "amqp-h-5672-_-a_.._b");
        let dir = default_spool_dir("redis-127.0.0.1-6379-0-NEW_PACKETS");
        assert!(dir.ends_with("netpipe-fast/spool/redis-127.0.0.1-6379-0-NEW_PACKETS"));
        assert!(!dir.starts_with("/tmp") && !dir.starts_with("/var/tmp"));
    }

    /// `--when-full block` holds in the sink itself: a delivery thread for it is refused at
    /// start (so its write path has no block arm to keep correct).
    #[test]
    fn block_mode_takes_no_delivery_thread() {
        let dir = unit_dir("block");
        let broker = Arc::new(FakeBroker::default());
        let refused = Outbox::start(
            Box::new(FakeSink(Arc::clone(&broker))),
            "fake".into(),
            &Delivery {
                when_full: WhenFull::Block,
                ..quick()
            },
            &dir,
        );
        let Err(e) = refused else {
            panic!("a block-mode outbox started")
        };
        assert_eq!(e.exit_code, EXIT_BAD_URL);
        assert!(e.message.contains("block"), "{e}");
        assert!(!dir.exists(), "nothing created for a refused outbox");
    }
}
