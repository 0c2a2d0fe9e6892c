//! The publisher thread's writing side, shared by `read` (which restores sequence order
//! first) and live capture (which writes batches as they come).

use super::batch::JsonBatch;
use crate::sink::{Sink, Undelivered};
use crossbeam_channel::Sender;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

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
    sink: Box<dyn Sink>,
    free_tx: Sender<JsonBatch>,
    stop: &'a AtomicBool,
    /// Running count of written messages for live progress lines, if wanted.
    written_live: Option<&'a AtomicU64>,
    out: Published,
}

impl<'a> BatchWriter<'a> {
    pub fn new(
        sink: Box<dyn Sink>,
        free_tx: Sender<JsonBatch>,
        stop: &'a AtomicBool,
        written_live: Option<&'a AtomicU64>,
    ) -> Self {
        BatchWriter {
            sink,
            free_tx,
            stop,
            written_live,
            out: Published {
                written: 0,
                not_written: 0,
                error: None,
                report: None,
                undelivered: Undelivered::default(),
            },
        }
    }

    pub fn write(&mut self, batch: JsonBatch) {
        let n = batch.len() as u64;
        let mut batch = if self.out.error.is_none() {
            // The sink may keep this batch and hand back another empty one (the delivery
            // thread of `--when-full spool|drop`); the pool keeps its size either way.
            let (batch, result) = self.sink.write_owned(batch);
            match result {
                Ok(taken) => {
                    // What the sink did not take it dropped and counted in its report.
                    self.out.written += taken as u64;
                    if let Some(w) = self.written_live {
                        w.store(self.out.written, Ordering::Relaxed);
                    }
                }
                Err(e) => {
                    self.out.not_written += n;
                    self.out.error = Some(e);
                    self.stop.store(true, Ordering::Relaxed);
                }
            }
            batch
        } else {
            self.out.not_written += n;
            batch
        };
        batch.clear();
        // The pool may be gone when the sources have stopped; the buffer is then just freed.
        let _ = self.free_tx.send(batch);
    }

    /// Flushes the sink (unless writing already failed) and returns the counts.
    pub fn finish(mut self) -> Published {
        if self.out.error.is_none() {
            if let Err(e) = self.sink.flush() {
                self.out.error = Some(e);
            }
        }
        self.out.report = self.sink.report();
        self.out.undelivered = self.sink.undelivered();
        self.out
    }
}
