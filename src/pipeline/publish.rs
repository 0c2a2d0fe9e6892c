//! The publisher thread's writing side, shared by `read` (which restores sequence order
//! first) and live capture (which writes batches as they come).

use super::deliver::{Deliver, Undelivered};
use super::metrics::{LatencyFeed, RunCounters};
use crate::encode::batch::JsonBatch;
use crossbeam_channel::Sender;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// What the publisher did, for the summary.
pub(crate) struct Published {
    pub written: u64,
    pub not_written: u64,
    pub error: Option<io::Error>,
    /// The sink's own summary line (broker sinks: published, resent, reconnects).
    pub report: Option<String>,
    /// What the sink dropped or left in its spool.
    pub undelivered: Undelivered,
}

impl Published {
    /// The result when the publisher thread itself died.
    pub fn lost() -> Published {
        Published {
            written: 0,
            not_written: 0,
            error: Some(io::Error::other("publisher thread panicked")),
            report: None,
            undelivered: Undelivered::default(),
        }
    }
}

/// Writes batches to a sink and hands their buffers back. After the first write error it
/// writes nothing more, raises `stop` (so the sources stop producing) and counts every later
/// message as not written: nothing is lost silently.
pub(crate) struct BatchWriter<'a> {
    sink: Box<dyn Deliver>,
    free_tx: Sender<JsonBatch>,
    stop: &'a AtomicBool,
    /// Running count of written messages for live progress lines, if wanted.
    written_live: Option<&'a AtomicU64>,
    /// Per-worker written counts for `--metrics` and the stats line.
    counters: Option<Arc<RunCounters>>,
    /// Live capture with `--metrics`: what the sink took, for the latency watcher.
    latency: Option<LatencyFeed>,
    out: Published,
    /// [`BatchWriter::write_many`]: per batch its worker, first capture time and messages...
    origin: Vec<(usize, i64, u64)>,
    /// ...and the messages the sink took.
    taken: Vec<usize>,
}

impl<'a> BatchWriter<'a> {
    pub fn new(
        sink: Box<dyn Deliver>,
        free_tx: Sender<JsonBatch>,
        stop: &'a AtomicBool,
        written_live: Option<&'a AtomicU64>,
    ) -> Self {
        BatchWriter {
            sink,
            free_tx,
            stop,
            written_live,
            counters: None,
            latency: None,
            out: Published {
                written: 0,
                not_written: 0,
                error: None,
                report: None,
                undelivered: Undelivered::default(),
            },
            origin: Vec::new(),
            taken: Vec::new(),
        }
    }

    /// Counts what the sink takes per worker in `counters`.
    pub fn with_counters(mut self, counters: Arc<RunCounters>) -> Self {
        self.counters = Some(counters);
        self
    }

    /// Feeds what the sink takes to the latency watcher.
    pub fn with_latency(mut self, feed: Option<LatencyFeed>) -> Self {
        self.latency = feed;
        self
    }

    /// Writes `batches` (in order, emptying the vector) with as few calls into the sink as it
    /// allows ([`Deliver::deliver_batches`]), counting and handing back each as
    /// [`BatchWriter::write`] does.
    pub fn write_many(&mut self, batches: &mut Vec<JsonBatch>) {
        if batches.len() <= 1 {
            if let Some(batch) = batches.pop() {
                self.write(batch);
            }
            return;
        }
        // What each batch needs for the counters, read before the sink may swap it; the two
        // vectors grow to the most batches written at once (the pool) and stay there.
        self.origin.clear();
        self.origin.extend(
            batches
                .iter()
                .map(|b| (usize::from(b.worker), b.first_time_ns, b.len() as u64)),
        );
        self.taken.clear();
        self.taken.resize(batches.len(), 0);
        let failed = if self.out.error.is_none() {
            match self.sink.deliver_batches(batches, &mut self.taken) {
                Ok(()) => None,
                Err((at, e)) => Some((at, e)),
            }
        } else {
            Some((0, io::Error::other("not written")))
        };
        let delivered = failed.as_ref().map_or(batches.len(), |f| f.0);
        for i in 0..self.origin.len() {
            let (worker, first_time_ns, n) = self.origin[i];
            if i < delivered {
                let taken = self.taken.get(i).copied().unwrap_or(0) as u64;
                self.out.written += taken;
                if let Some(c) = &self.counters {
                    c.add_written(worker, taken);
                }
                if let Some(feed) = &mut self.latency {
                    feed.taken(first_time_ns, taken);
                }
            } else {
                self.out.not_written += n;
                if let Some(c) = &self.counters {
                    c.not_written.fetch_add(n, Ordering::Relaxed);
                }
            }
        }
        if let Some(w) = self.written_live {
            w.store(self.out.written, Ordering::Relaxed);
        }
        if let Some((_, e)) = failed {
            if self.out.error.is_none() {
                self.out.error = Some(e);
                self.stop.store(true, Ordering::Relaxed);
            }
        }
        for mut batch in batches.drain(..) {
            batch.clear();
            // The pool may be gone when the sources have stopped; the buffer is then freed.
            let _ = self.free_tx.send(batch);
        }
    }

    pub fn write(&mut self, batch: JsonBatch) {
        let (worker, first_time_ns) = (usize::from(batch.worker), batch.first_time_ns);
        let n = batch.len() as u64;
        let mut batch = if self.out.error.is_none() {
            // The sink may keep this batch and hand back another empty one (the delivery
            // thread of `--when-full spool|drop`); the pool keeps its size either way.
            let (batch, result) = self.sink.deliver(batch);
            match result {
                Ok(taken) => {
                    // What the sink did not take it dropped and counted in its report.
                    self.out.written += taken as u64;
                    if let Some(w) = self.written_live {
                        w.store(self.out.written, Ordering::Relaxed);
                    }
                    if let Some(c) = &self.counters {
                        c.add_written(worker, taken as u64);
                    }
                    if let Some(feed) = &mut self.latency {
                        feed.taken(first_time_ns, taken as u64);
                    }
                }
                Err(e) => {
                    self.out.not_written += n;
                    if let Some(c) = &self.counters {
                        c.not_written.fetch_add(n, Ordering::Relaxed);
                    }
                    self.out.error = Some(e);
                    self.stop.store(true, Ordering::Relaxed);
                }
            }
            batch
        } else {
            self.out.not_written += n;
            if let Some(c) = &self.counters {
                c.not_written.fetch_add(n, Ordering::Relaxed);
            }
            batch
        };
        batch.clear();
        // The pool may be gone when the sources have stopped; the buffer is then just freed.
        let _ = self.free_tx.send(batch);
    }

    /// Flushes the sink (unless writing already failed) and returns the counts.
    pub fn finish(mut self) -> Published {
        if self.out.error.is_none() {
            if let Err(e) = self.sink.finish() {
                self.out.error = Some(e);
            }
        }
        self.out.report = self.sink.summary();
        self.out.undelivered = self.sink.tally();
        self.out
    }
}
