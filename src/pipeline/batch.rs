//! Reusable buffers passed between threads.

use crate::encode::FrameMeta;

/// Flush a batch once its JSON reaches this many bytes...
pub const BATCH_BYTES: usize = 256 * 1024;
/// ...or holds this many packets.
pub const BATCH_PACKETS: usize = 1024;
/// A batch buffer that grew past this many times its usual size (one huge frame, or its JSON)
/// is given back to the allocator when the batch is cleared, so a few 16 MiB records do not
/// leave every buffer of the pool at tens of MiB for the rest of the run.
pub const SHRINK_FACTOR: usize = 4;
/// Usual room of a JSON batch: a full batch plus one message.
const JSON_BATCH_ROOM_BYTES: usize = BATCH_BYTES + 64 * 1024;

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
    /// Set while the batch holds the JSON of an oversized frame batch: handed back (and the
    /// reader may send the next oversized one) when the batch is cleared or dropped.
    pub hold: Option<OversizedToken>,
    /// The worker that filled it (per-worker `written` counts in `--metrics`).
    pub worker: u16,
    /// Live capture: kernel timestamp (ns since the epoch) of its first frame, for the
    /// capture-to-acknowledgement latency.
    pub first_time_ns: i64,
}

/// Permission for one oversized frame batch to be in flight, from the reader until its JSON
/// has been written; returned to the pool when dropped (see `pipeline::read`).
#[derive(Debug)]
pub struct OversizedToken(pub crossbeam_channel::Sender<()>);

impl Drop for OversizedToken {
    fn drop(&mut self) {
        // The pool has room for every token; it is gone only when the reader has stopped.
        let _ = self.0.try_send(());
    }
}

impl JsonBatch {
    pub fn with_capacity() -> JsonBatch {
        JsonBatch {
            seq: 0,
            buf: Vec::with_capacity(JSON_BATCH_ROOM_BYTES),
            used: 0,
            ends: Vec::with_capacity(BATCH_PACKETS),
            hold: None,
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

    /// Empties the batch for reuse; a buffer that grew far past its usual size is freed and
    /// replaced by one of the usual size (the one branch costs nothing per packet).
    pub fn clear(&mut self) {
        self.used = 0;
        self.ends.clear();
        self.hold = None;
        if self.buf.capacity() > SHRINK_FACTOR * JSON_BATCH_ROOM_BYTES {
            self.buf = Vec::with_capacity(JSON_BATCH_ROOM_BYTES);
        }
        if self.ends.capacity() > SHRINK_FACTOR * BATCH_PACKETS {
            self.ends = Vec::with_capacity(BATCH_PACKETS);
        }
    }
}

/// Owned copies of captured frames, for handing to worker threads.
#[derive(Debug, Default)]
pub struct FrameBatch {
    pub seq: u64,
    pub data: Vec<u8>,
    pub frames: Vec<FrameRef>,
    /// The reader's permission to send this oversized batch; the worker moves it to the
    /// JSON batch it writes.
    pub hold: Option<OversizedToken>,
}

/// One frame inside a [`FrameBatch`].
#[derive(Clone, Copy, Debug)]
pub struct FrameRef {
    pub start: u32,
    pub len: u32,
    pub link_type: u32,
    pub meta: FrameMeta,
    /// A datagram reassembled from this many fragments (`--reassemble`); 0 for a frame as
    /// captured.
    pub reassembled: u16,
}

impl FrameBatch {
    pub fn with_capacity() -> FrameBatch {
        FrameBatch {
            seq: 0,
            data: Vec::with_capacity(BATCH_BYTES),
            frames: Vec::with_capacity(BATCH_PACKETS),
            hold: None,
        }
    }

    pub fn push(&mut self, data: &[u8], link_type: u32, meta: FrameMeta) {
        self.push_marked(data, link_type, meta, 0);
    }

    /// Pushes a datagram reassembled from `fragments` fragments.
    pub fn push_marked(&mut self, data: &[u8], link_type: u32, meta: FrameMeta, fragments: u16) {
        let start = u32::try_from(self.data.len()).unwrap_or(u32::MAX);
        self.data.extend_from_slice(data);
        self.frames.push(FrameRef {
            start,
            len: u32::try_from(data.len()).unwrap_or(u32::MAX),
            link_type,
            meta,
            reassembled: fragments,
        });
    }

    pub fn is_full(&self) -> bool {
        self.data.len() >= BATCH_BYTES || self.frames.len() >= BATCH_PACKETS
    }

    pub fn frame(&self, f: &FrameRef) -> &[u8] {
        let s = f.start as usize;
        self.data.get(s..s + f.len as usize).unwrap_or(&[])
    }

    /// Holds far more bytes than a usual batch (a frame of MiBs): the reader lets only a few
    /// of these be in flight at once (see `pipeline::read`).
    pub fn is_oversized(&self) -> bool {
        self.data.len() > SHRINK_FACTOR * BATCH_BYTES
    }

    /// Empties the batch for reuse, freeing a buffer that grew far past its usual size.
    pub fn clear(&mut self) {
        self.data.clear();
        self.frames.clear();
        if self.data.capacity() > SHRINK_FACTOR * BATCH_BYTES {
            self.data = Vec::with_capacity(BATCH_BYTES);
        }
        if self.frames.capacity() > SHRINK_FACTOR * BATCH_PACKETS {
            self.frames = Vec::with_capacity(BATCH_PACKETS);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_go_back_when_the_json_is_cleared_or_dropped() {
        let (tx, rx) = crossbeam_channel::bounded::<()>(2);
        let mut json = JsonBatch::with_capacity();
        json.hold = Some(OversizedToken(tx.clone()));
        assert!(rx.try_recv().is_err());
        json.clear();
        assert!(rx.try_recv().is_ok());
        json.hold = Some(OversizedToken(tx));
        drop(json);
        assert!(rx.try_recv().is_ok());
    }

    #[test]
    fn oversized_buffers_shrink_back_when_cleared() {
        let meta = FrameMeta {
            time_ns: 0,
            wire_len: 0,
            cap_len: 0,
        };
        let mut frames = FrameBatch::with_capacity();
        frames.push(&vec![7u8; 16 << 20], 1, meta);
        assert!(frames.is_oversized());
        frames.clear();
        assert!(!frames.is_oversized());
        assert!(frames.data.capacity() <= SHRINK_FACTOR * BATCH_BYTES);
        // A usual batch keeps its buffer (no reallocation per batch).
        frames.push(&[1u8; 1500], 1, meta);
        let cap = frames.data.capacity();
        frames.clear();
        assert_eq!(frames.data.capacity(), cap);

        let mut json = JsonBatch::with_capacity();
        json.buf.resize(32 << 20, 0);
        json.commit(32 << 20);
        json.clear();
        assert!(json.buf.capacity() <= SHRINK_FACTOR * JSON_BATCH_ROOM_BYTES);
        assert!(json.is_empty() && json.bytes().is_empty());
        json.buf.resize(100_000, 0);
        let cap = json.buf.capacity();
        json.clear();
        assert_eq!(json.buf.capacity(), cap);
    }
}
