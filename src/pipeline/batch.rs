//! Reusable buffers passed between threads.

use crate::encode::FrameMeta;

/// Flush a batch once its JSON reaches this many bytes...
pub const BATCH_BYTES: usize = 256 * 1024;
/// ...or holds this many packets.
pub const BATCH_PACKETS: usize = 1024;

/// Pre-serialised packet messages, one per line, ready for a sink.
#[derive(Debug, Default)]
pub struct JsonBatch {
    /// Position in the source's order (the publisher writes batches in this order).
    pub seq: u64,
    /// The JSON lines, each ending in `\n`, are `buf[..used]`. The vector's length is only
    /// room to write in (see `JsonEncoder::encode_at`); it is never cleared, so a reused
    /// batch is never zero-filled again.
    pub buf: Vec<u8>,
    pub used: usize,
    /// End offset of each message in `buf`.
    pub ends: Vec<u32>,
    /// The worker that filled it (per-worker `written` counts in `--metrics`).
    pub worker: u16,
    /// Live capture: kernel timestamp (ns since the epoch) of its first frame, for the
    /// capture-to-acknowledgement latency.
    pub first_time_ns: i64,
}

impl JsonBatch {
    pub fn with_capacity() -> JsonBatch {
        JsonBatch {
            seq: 0,
            buf: Vec::with_capacity(BATCH_BYTES + 64 * 1024),
            used: 0,
            ends: Vec::with_capacity(BATCH_PACKETS),
            worker: 0,
            first_time_ns: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.used >= BATCH_BYTES || self.ends.len() >= BATCH_PACKETS
    }

    /// The serialised messages.
    pub fn bytes(&self) -> &[u8] {
        self.buf.get(..self.used).unwrap_or(&self.buf)
    }

    /// Records that the message just written ends at `end`.
    pub fn commit(&mut self, end: usize) {
        self.used = end;
        // Batches stay far below 4 GiB (BATCH_BYTES plus one message).
        self.ends.push(u32::try_from(end).unwrap_or(u32::MAX));
    }

    /// The messages, each without its trailing newline.
    pub fn messages(&self) -> impl Iterator<Item = &[u8]> {
        let mut start = 0usize;
        self.ends.iter().map(move |&end| {
            let end = end as usize;
            let m = self.buf.get(start..end.saturating_sub(1)).unwrap_or(&[]);
            start = end;
            m
        })
    }

    pub fn clear(&mut self) {
        self.used = 0;
        self.ends.clear();
    }
}

/// Owned copies of captured frames, for handing to worker threads.
#[derive(Debug, Default)]
pub struct FrameBatch {
    pub seq: u64,
    pub data: Vec<u8>,
    pub frames: Vec<FrameRef>,
}

/// One frame inside a [`FrameBatch`].
#[derive(Clone, Copy, Debug)]
pub struct FrameRef {
    pub start: u32,
    pub len: u32,
    pub link_type: u32,
    pub meta: FrameMeta,
}

impl FrameBatch {
    pub fn with_capacity() -> FrameBatch {
        FrameBatch {
            seq: 0,
            data: Vec::with_capacity(BATCH_BYTES),
            frames: Vec::with_capacity(BATCH_PACKETS),
        }
    }

    pub fn push(&mut self, data: &[u8], link_type: u32, meta: FrameMeta) {
        let start = u32::try_from(self.data.len()).unwrap_or(u32::MAX);
        self.data.extend_from_slice(data);
        self.frames.push(FrameRef {
            start,
            len: u32::try_from(data.len()).unwrap_or(u32::MAX),
            link_type,
            meta,
        });
    }

    pub fn is_full(&self) -> bool {
        self.data.len() >= BATCH_BYTES || self.frames.len() >= BATCH_PACKETS
    }

    pub fn frame(&self, f: &FrameRef) -> &[u8] {
        let s = f.start as usize;
        self.data.get(s..s + f.len as usize).unwrap_or(&[])
    }

    pub fn clear(&mut self) {
        self.data.clear();
        self.frames.clear();
    }
}
