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
    /// Bytes of `buf` that hold messages.
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
    /// With `--partitions N` (N > 1) only: each message's flow hash ([`flow_hash`]), one per
    /// message, written by the worker; empty otherwise (and in batches read back from the
    /// spool, whose hashes [`JsonBatch::partition`] finds again from the messages).
    pub flows: Vec<u32>,
}

/// Permission for one oversized frame batch to be in flight, from the reader until its JSON
/// has been written: the release it was made with runs when it is dropped (`pipeline::read`
/// hands the permission back to its pool that way). Oversized batches are rare, so the boxed
/// release costs nothing on the usual path.
pub struct OversizedToken(Option<Box<dyn FnOnce() + Send>>);

impl OversizedToken {
    /// A token that runs `release` once, when it is dropped.
    pub fn new(release: impl FnOnce() + Send + 'static) -> OversizedToken {
        OversizedToken(Some(Box::new(release)))
    }
}

impl std::fmt::Debug for OversizedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OversizedToken")
    }
}

impl Drop for OversizedToken {
    fn drop(&mut self) {
        if let Some(release) = self.0.take() {
            release();
        }
    }
}

impl JsonBatch {
    /// An empty batch with room for a full batch's JSON and messages.
    pub fn with_capacity() -> JsonBatch {
        JsonBatch {
            seq: 0,
            buf: Vec::with_capacity(JSON_BATCH_ROOM_BYTES),
            used: 0,
            ends: Vec::with_capacity(BATCH_PACKETS),
            hold: None,
            worker: 0,
            first_time_ns: 0,
            flows: Vec::new(),
        }
    }

    /// Messages in the batch.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// No messages yet.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Reached [`BATCH_BYTES`] or [`BATCH_PACKETS`]: time to hand it on.
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

    /// Message `index` without its trailing newline (empty past the end).
    pub fn message(&self, index: usize) -> &[u8] {
        let start = match index.checked_sub(1) {
            Some(before) => self.ends.get(before).map_or(usize::MAX, |&e| e as usize),
            None => 0,
        };
        let end = self.ends.get(index).map_or(0, |&e| e as usize);
        self.buf.get(start..end.saturating_sub(1)).unwrap_or(&[])
    }

    /// The partition (0..n) message `index` goes to with `--partitions n`: its flow hash
    /// modulo `n` (see [`flow_hash`]); 0 when `n <= 1`. The hash is the one the worker
    /// stored in [`JsonBatch::flows`]; a batch without them (read back from the spool, or
    /// copied without them) finds it again from the message itself, which gives the same
    /// value, so a replayed message goes to the partition it would have gone to.
    pub fn partition(&self, index: usize, n: u16) -> u16 {
        if n <= 1 {
            return 0;
        }
        let hash = match self.flows.get(index) {
            Some(&h) => h,
            None => flow_hash(self.message(index)),
        };
        // `hash % n` is below n, so it fits.
        (hash % u32::from(n)) as u16
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
        self.flows.clear();
        self.hold = None;
        if self.buf.capacity() > SHRINK_FACTOR * JSON_BATCH_ROOM_BYTES {
            self.buf = Vec::with_capacity(JSON_BATCH_ROOM_BYTES);
        }
        if self.ends.capacity() > SHRINK_FACTOR * BATCH_PACKETS {
            self.ends = Vec::with_capacity(BATCH_PACKETS);
        }
        if self.flows.capacity() > SHRINK_FACTOR * BATCH_PACKETS {
            self.flows = Vec::with_capacity(BATCH_PACKETS);
        }
    }
}

/// The key `community_id` is written under, between `cap_len` and the rest (FORMAT.md).
const COMMUNITY_ID_KEY: &[u8] = b",\"community_id\":\"";

/// The flow hash of a packet message, for `--partitions`: the first four bytes (big-endian)
/// of the SHA-1 digest inside its `community_id` (Community ID v1: the innermost IP flow,
/// both directions equal, a tunnelled packet by its inner flow), or 0 when the message has
/// none (no IP header, or a later fragment or a header cut short, where the ports are
/// missing). So partition = hash mod N can be computed by anyone from the message itself:
/// `int.from_bytes(base64.b64decode(cid[2:])[:4], "big") % N` in Python. Hosts that use the
/// same `--community-id-seed` put a flow in the same partition.
///
/// The key is searched from the end: only top-level fields of fixed shape follow it
/// (`community_id_outer`, fingerprints, `decode_error`), and it is taken only right after
/// `"cap_len":<digits>`, so text inside a packet field cannot pass for it (a JSON string
/// holds `"` only escaped).
pub fn flow_hash(message: &[u8]) -> u32 {
    static FINDER: std::sync::LazyLock<memchr::memmem::FinderRev<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::FinderRev::new(COMMUNITY_ID_KEY));
    let Some(at) = FINDER.rfind(message) else {
        return 0;
    };
    let before = &message[..at];
    let digits = before
        .iter()
        .rev()
        .take_while(|b| b.is_ascii_digit())
        .count();
    if digits == 0 || !before[..before.len() - digits].ends_with(b"\"cap_len\":") {
        return 0;
    }
    community_id_hash(&message[at + COMMUNITY_ID_KEY.len()..])
}

/// The flow hash of a Community ID given as text (`1:` and base64, anything may follow): the
/// first four bytes of its digest, big-endian; 0 when it is not one. [`flow_hash`] finds the
/// text in a message; the worker is told where it wrote it (`JsonEncoder::community_id_at`).
pub fn community_id_hash(id: &[u8]) -> u32 {
    // `1:` then base64: six symbols carry 36 bits, of which the first 32 are digest bytes 0..4.
    let Some(rest) = id.strip_prefix(b"1:").filter(|r| r.len() >= 6) else {
        return 0;
    };
    let mut bits: u64 = 0;
    for &c in rest.iter().take(6) {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return 0,
        };
        bits = bits << 6 | u64::from(v);
    }
    (bits >> 4) as u32
}

/// Owned copies of captured frames, for handing to worker threads.
#[derive(Debug, Default)]
pub struct FrameBatch {
    /// Position in the source's order (kept by the JSON batch made from it).
    pub seq: u64,
    /// The frames' bytes, back to back.
    pub data: Vec<u8>,
    /// Where each frame lies in `data`, with its metadata.
    pub frames: Vec<FrameRef>,
    /// The reader's permission to send this oversized batch; the worker moves it to the
    /// JSON batch it writes.
    pub hold: Option<OversizedToken>,
}

/// One frame inside a [`FrameBatch`].
#[derive(Clone, Copy, Debug)]
pub struct FrameRef {
    /// Offset of the frame in [`FrameBatch::data`].
    pub start: u32,
    /// Bytes of the frame as captured.
    pub len: u32,
    /// The frame's link type (pcap `LINKTYPE_*`).
    pub link_type: u32,
    /// Capture time and lengths.
    pub meta: FrameMeta,
    /// A datagram reassembled from this many fragments (`--reassemble`); 0 for a frame as
    /// captured.
    pub reassembled: u16,
}

impl FrameBatch {
    /// An empty batch with room for a full batch of frames.
    pub fn with_capacity() -> FrameBatch {
        FrameBatch {
            seq: 0,
            data: Vec::with_capacity(BATCH_BYTES),
            frames: Vec::with_capacity(BATCH_PACKETS),
            hold: None,
        }
    }

    /// Copies a frame in.
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

    /// Reached [`BATCH_BYTES`] or [`BATCH_PACKETS`]: time to hand it to a worker.
    pub fn is_full(&self) -> bool {
        self.data.len() >= BATCH_BYTES || self.frames.len() >= BATCH_PACKETS
    }

    /// The bytes of frame `f` (empty if `f` does not belong to this batch).
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
        let (tx, rx) = std::sync::mpsc::sync_channel::<()>(2);
        let token = |tx: std::sync::mpsc::SyncSender<()>| {
            OversizedToken::new(move || {
                let _ = tx.try_send(());
            })
        };
        let mut json = JsonBatch::with_capacity();
        json.hold = Some(token(tx.clone()));
        assert!(rx.try_recv().is_err());
        json.clear();
        assert!(rx.try_recv().is_ok());
        json.hold = Some(token(tx));
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

    #[test]
    fn flow_hash_reads_only_the_top_level_community_id() {
        let id = "1:wCb3OG7yAFWelaUydu0D+125CLM=";
        // wCb3OG: the digest starts c0 26 f7 38.
        let real = format!("{{\"data\":{{}},\"cap_len\":60,\"community_id\":\"{id}\"}}\n");
        assert_eq!(flow_hash(real.as_bytes()), 0xc026_f738);
        let outer = format!(
            "{{\"cap_len\":60,\"community_id\":\"{id}\",\"community_id_outer\":\"1:AAAAAAAA\"}}"
        );
        assert_eq!(flow_hash(outer.as_bytes()), 0xc026_f738);
        for fake in [
            // Inside a string a quote is escaped; a key elsewhere lacks `"cap_len":N` before it.
            format!("{{\"raw\":\"\\\"cap_len\\\":1,\\\"community_id\\\":\\\"{id}\\\"\"}}"),
            format!("{{\"x\":1,\"community_id\":\"{id}\"}}"),
            format!("{{\"cap_len\":,\"community_id\":\"{id}\"}}"),
            "{\"cap_len\":60,\"community_id\":\"1:wCb3O\"}".to_string(),
            "{\"cap_len\":60,\"community_id\":\"2:wCb3OG7y\"}".to_string(),
            "{\"cap_len\":60,\"community_id\":\"1:wC-3OG7y\"}".to_string(),
            "{}".to_string(),
        ] {
            assert_eq!(flow_hash(fake.as_bytes()), 0, "{fake}");
        }
    }

    #[test]
    fn messages_by_index_and_partitions_with_or_without_stored_hashes() {
        let mut b = JsonBatch::with_capacity();
        for m in [
            "{\"cap_len\":1,\"community_id\":\"1:AAAAAQAAAAAAAAAAAAAAAAAAAAA=\"}",
            "{}",
            "{\"cap_len\":1,\"community_id\":\"1:AAAAAwAAAAAAAAAAAAAAAAAAAAA=\"}",
        ] {
            b.buf.extend_from_slice(m.as_bytes());
            b.buf.push(b'\n');
            let end = b.buf.len();
            b.commit(end);
        }
        assert_eq!(b.message(1), b"{}");
        assert_eq!(b.message(3), b"");
        let all: Vec<&[u8]> = b.messages().collect();
        assert_eq!(all, (0..3).map(|i| b.message(i)).collect::<Vec<_>>());
        // Hashes 1, 0, 3 found from the messages.
        let parts = |b: &JsonBatch, n| (0..3).map(|i| b.partition(i, n)).collect::<Vec<_>>();
        assert_eq!(parts(&b, 2), [1, 0, 1]);
        assert_eq!(parts(&b, 4), [1, 0, 3]);
        assert_eq!(parts(&b, 1), [0, 0, 0]);
        // Stored hashes win (the worker's), and are cleared with the batch.
        b.flows = vec![2, 2, 2];
        assert_eq!(parts(&b, 4), [2, 2, 2]);
        b.clear();
        assert!(b.flows.is_empty());
    }
}
