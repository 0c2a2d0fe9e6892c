//! Reusable buffers passed between threads.

use crate::encode::FrameMeta;
use std::sync::Arc;

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
/// The JSON a [`FrameBatch`] is expected to become when it is handed to a worker
/// ([`FrameBatch::is_full`]): three usual batches, so that a hand-off carries some 700 frames
/// of `pcaps/mixed.pcap` and the threads meet rarely.
pub const FRAME_BATCH_JSON_BYTES: usize = 3 * BATCH_BYTES;
/// Room of the JSON batch a worker writes a whole frame batch into
/// ([`JsonBatch::with_room`]): the expected JSON and one usual batch more for frames whose
/// messages are larger than the estimate.
pub const WORKER_JSON_ROOM_BYTES: usize = FRAME_BATCH_JSON_BYTES + BATCH_BYTES;
/// Room for copied frames in a [`FrameBatch`]: what [`FRAME_BATCH_JSON_BYTES`] allows, and one
/// large frame.
const FRAME_BATCH_ROOM_BYTES: usize =
    FRAME_BATCH_JSON_BYTES / JSON_BYTES_PER_FRAME_BYTE + 64 * 1024;
/// A frame's message holds each captured byte about twice (the payload's hex)...
pub const JSON_BYTES_PER_FRAME_BYTE: usize = 2;
/// ...plus the envelope and the decoded headers: about 440 bytes per frame of
/// `pcaps/mixed.pcap` (1,061 bytes of JSON for 312 captured bytes on average).
pub const JSON_BYTES_PER_FRAME: usize = 512;

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
    /// Buffer capacities at the last [`JsonBatch::clear`], and how often they had changed.
    reuse: Reuse,
    /// The buffer's usual capacity (it is cut back to this when it grew far past it).
    room: usize,
}

/// How often a reused batch's buffers were found at another capacity when it was cleared
/// (grown past their room by an unusually large frame or message, or cut back after one):
/// each is an allocation, and a steady state has none. `pipeline::read` sums them over its
/// pools at the end of a run.
#[derive(Clone, Copy, Debug, Default)]
struct Reuse {
    capacities: [usize; 3],
    reallocations: u32,
}

impl Reuse {
    fn new(capacities: [usize; 3]) -> Reuse {
        Reuse {
            capacities,
            reallocations: 0,
        }
    }

    /// Counts a change since the last look, then remembers `now`.
    fn check(&mut self, before: [usize; 3], now: [usize; 3]) {
        if before != self.capacities {
            self.reallocations = self.reallocations.saturating_add(1);
        }
        self.capacities = now;
    }
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
        JsonBatch::with_room(JSON_BATCH_ROOM_BYTES)
    }

    /// An empty batch with `room_bytes` of room for JSON (a worker's, which takes a whole
    /// [`FrameBatch`]: [`WORKER_JSON_ROOM_BYTES`]).
    pub fn with_room(room_bytes: usize) -> JsonBatch {
        let mut batch = JsonBatch {
            seq: 0,
            buf: Vec::with_capacity(room_bytes),
            used: 0,
            ends: Vec::with_capacity(BATCH_PACKETS),
            hold: None,
            worker: 0,
            first_time_ns: 0,
            flows: Vec::new(),
            reuse: Reuse::default(),
            room: room_bytes,
        };
        batch.reuse = Reuse::new(batch.capacities());
        batch
    }

    /// Times the buffers had to be allocated again since the batch was made (see
    /// [`JsonBatch::clear`]): 0 while frames and messages stay within the usual sizes.
    pub fn reallocations(&self) -> u32 {
        self.reuse.reallocations
    }

    fn capacities(&self) -> [usize; 3] {
        [
            self.buf.capacity(),
            self.ends.capacity(),
            self.flows.capacity(),
        ]
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

    /// Reached [`FRAME_BATCH_JSON_BYTES`] or [`BATCH_PACKETS`]: time for a thread that
    /// encodes frames itself (`read` with one worker, capture workers) to hand it to the
    /// publisher. Not at [`JsonBatch::is_full`], a quarter of that: every hand-off wakes the
    /// publisher (a futex wake and a context switch on each side), which cost some 7 % of the
    /// CPU time of `read FILE > /dev/null`, and with `--direct-io` the publisher pays less
    /// per packet for fewer, larger writes (issue 13).
    #[inline]
    pub fn is_full_for_handoff(&self) -> bool {
        self.used >= FRAME_BATCH_JSON_BYTES || self.ends.len() >= BATCH_PACKETS
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
        let before = self.capacities();
        if self.buf.capacity() > SHRINK_FACTOR * self.room.max(JSON_BATCH_ROOM_BYTES) {
            self.buf = Vec::with_capacity(self.room);
        }
        if self.ends.capacity() > SHRINK_FACTOR * BATCH_PACKETS {
            self.ends = Vec::with_capacity(BATCH_PACKETS);
        }
        if self.flows.capacity() > SHRINK_FACTOR * BATCH_PACKETS {
            self.flows = Vec::with_capacity(BATCH_PACKETS);
        }
        let now = self.capacities();
        self.reuse.check(before, now);
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

/// Bytes shared between threads by reference count: a mapped capture file, or a capture held
/// in memory (`source::pcap_file::CaptureReader::shared_bytes`).
pub type SharedBytes = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// Captured frames for a worker thread: copies of frames in [`FrameBatch::data`], and frames of
/// a mapped capture file handed on by position ([`FrameBatch::push_shared`], no copy).
#[derive(Default)]
pub struct FrameBatch {
    /// Position in the source's order (kept by the JSON batch made from it).
    pub seq: u64,
    /// The copied frames' bytes, back to back.
    pub data: Vec<u8>,
    /// Where each frame lies (in `data`, or in `shared`), with its metadata.
    pub frames: Vec<FrameRef>,
    /// The reader's permission to send this oversized batch; the worker moves it to the
    /// JSON batch it writes.
    pub hold: Option<OversizedToken>,
    /// The capture the frames marked [`FrameRef::shared`] lie in; dropped when the batch is
    /// cleared, so a mapping lives only while some batch still points into it.
    shared: Option<SharedBytes>,
    /// Bytes of the frames in `shared` (counted as `data` is, for [`FrameBatch::is_full`]).
    shared_len: usize,
    /// Lowest offset in `shared` of a frame of this batch (`usize::MAX` when none).
    shared_from: usize,
    /// Buffer capacities at the last [`FrameBatch::clear`], and how often they had changed.
    reuse: Reuse,
}

impl std::fmt::Debug for FrameBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameBatch")
            .field("seq", &self.seq)
            .field("data_bytes", &self.data.len())
            .field("frames", &self.frames.len())
            .field("shared_bytes", &self.shared_len)
            .finish_non_exhaustive()
    }
}

/// One frame inside a [`FrameBatch`].
#[derive(Clone, Copy, Debug)]
pub struct FrameRef {
    /// Offset of the frame in [`FrameBatch::data`], or in the shared capture when `shared`.
    pub start: usize,
    /// Bytes of the frame as captured.
    pub len: u32,
    /// The frame's link type (pcap `LINKTYPE_*`).
    pub link_type: u32,
    /// Capture time and lengths.
    pub meta: FrameMeta,
    /// A datagram reassembled from this many fragments (`--reassemble`); 0 for a frame as
    /// captured.
    pub reassembled: u16,
    /// The bytes lie in the batch's shared capture (handed on by position), not in `data`.
    pub shared: bool,
}

/// The bytes a worker reads a [`FrameBatch`]'s frames from, found once per batch
/// ([`FrameBatch::view`]).
#[derive(Clone, Copy)]
pub struct FrameView<'a> {
    data: &'a [u8],
    shared: &'a [u8],
}

impl<'a> FrameView<'a> {
    /// The bytes of frame `f` (empty if `f` does not belong to this batch).
    #[inline]
    pub fn frame(&self, f: &FrameRef) -> &'a [u8] {
        let from = if f.shared { self.shared } else { self.data };
        f.start
            .checked_add(f.len as usize)
            .and_then(|end| from.get(f.start..end))
            .unwrap_or(&[])
    }
}

impl FrameBatch {
    /// An empty batch with room for a full batch of frames.
    pub fn with_capacity() -> FrameBatch {
        let mut batch = FrameBatch {
            seq: 0,
            data: Vec::with_capacity(FRAME_BATCH_ROOM_BYTES),
            frames: Vec::with_capacity(BATCH_PACKETS),
            hold: None,
            shared: None,
            shared_len: 0,
            shared_from: usize::MAX,
            reuse: Reuse::default(),
        };
        batch.reuse = Reuse::new(batch.capacities());
        batch
    }

    /// Times the buffers had to be allocated again since the batch was made (see
    /// [`FrameBatch::clear`]): 0 while frames stay within the usual sizes.
    pub fn reallocations(&self) -> u32 {
        self.reuse.reallocations
    }

    fn capacities(&self) -> [usize; 3] {
        [self.data.capacity(), self.frames.capacity(), 0]
    }

    /// Copies a frame in.
    pub fn push(&mut self, data: &[u8], link_type: u32, meta: FrameMeta) {
        self.push_marked(data, link_type, meta, 0);
    }

    /// Pushes a datagram reassembled from `fragments` fragments.
    pub fn push_marked(&mut self, data: &[u8], link_type: u32, meta: FrameMeta, fragments: u16) {
        let start = self.data.len();
        self.data.extend_from_slice(data);
        self.frames.push(FrameRef {
            start,
            len: u32::try_from(data.len()).unwrap_or(u32::MAX),
            link_type,
            meta,
            reassembled: fragments,
            shared: false,
        });
    }

    /// Adds the frame of `len` bytes at offset `at` of `shared` by position, without copying
    /// it. A batch points into one capture only: when it already holds frames of another one
    /// (or `at..at + len` is not inside `shared`), nothing is added and `false` says to copy
    /// the frame in instead ([`FrameBatch::push`]).
    pub fn push_shared(
        &mut self,
        shared: &SharedBytes,
        at: usize,
        len: usize,
        link_type: u32,
        meta: FrameMeta,
    ) -> bool {
        let (Ok(len32), Some(end)) = (u32::try_from(len), at.checked_add(len)) else {
            return false;
        };
        match &self.shared {
            Some(mine) if !Arc::ptr_eq(mine, shared) => return false,
            Some(_) => {}
            None => self.shared = Some(Arc::clone(shared)),
        }
        if end > (**shared).as_ref().len() {
            return false;
        }
        self.shared_len += len;
        self.shared_from = self.shared_from.min(at);
        self.frames.push(FrameRef {
            start: at,
            len: len32,
            link_type,
            meta,
            reassembled: 0,
            shared: true,
        });
        true
    }

    /// The shared capture and the lowest offset in it of a frame handed on by position
    /// (`None` when the batch has none): the reader keeps that capture's pages from there on until the batch
    /// comes back.
    pub fn shared_from(&self) -> Option<(&SharedBytes, usize)> {
        self.shared
            .as_ref()
            .filter(|_| self.shared_from != usize::MAX)
            .map(|s| (s, self.shared_from))
    }

    /// Bytes of all its frames, copied or shared.
    pub fn frame_bytes(&self) -> usize {
        self.data.len() + self.shared_len
    }

    /// Time to hand it to a worker: the JSON its frames become (about
    /// [`JSON_BYTES_PER_FRAME_BYTE`] per byte and [`JSON_BYTES_PER_FRAME`] per frame) reaches
    /// [`FRAME_BATCH_JSON_BYTES`], or it holds [`BATCH_PACKETS`] frames. The worker writes a
    /// whole frame batch into one JSON batch, so this keeps that within the room of a
    /// worker's JSON batch ([`WORKER_JSON_ROOM_BYTES`]), which is then not grown and cut back
    /// again batch after batch.
    pub fn is_full(&self) -> bool {
        let json_bytes = JSON_BYTES_PER_FRAME_BYTE * self.frame_bytes()
            + JSON_BYTES_PER_FRAME * self.frames.len();
        json_bytes >= FRAME_BATCH_JSON_BYTES || self.frames.len() >= BATCH_PACKETS
    }

    /// Where the frames' bytes are, for [`FrameView::frame`].
    pub fn view(&self) -> FrameView<'_> {
        FrameView {
            data: &self.data,
            shared: self.shared.as_ref().map_or(&[], |s| (**s).as_ref()),
        }
    }

    /// The bytes of frame `f` (empty if `f` does not belong to this batch).
    pub fn frame(&self, f: &FrameRef) -> &[u8] {
        self.view().frame(f)
    }

    /// Holds far more bytes than a usual batch (a frame of MiBs; its JSON is larger still,
    /// shared or copied): the reader lets only a few of these be in flight at once (see
    /// `pipeline::read`).
    pub fn is_oversized(&self) -> bool {
        self.frame_bytes() > SHRINK_FACTOR * BATCH_BYTES
    }

    /// Empties the batch for reuse, freeing a buffer that grew far past its usual size, and
    /// lets go of the shared capture.
    pub fn clear(&mut self) {
        self.data.clear();
        self.frames.clear();
        let before = self.capacities();
        self.shared = None;
        self.shared_len = 0;
        self.shared_from = usize::MAX;
        if self.data.capacity() > SHRINK_FACTOR * BATCH_BYTES {
            self.data = Vec::with_capacity(FRAME_BATCH_ROOM_BYTES);
        }
        if self.frames.capacity() > SHRINK_FACTOR * BATCH_PACKETS {
            self.frames = Vec::with_capacity(BATCH_PACKETS);
        }
        let now = self.capacities();
        self.reuse.check(before, now);
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
    fn frames_by_position_and_by_copy_in_one_batch() {
        let meta = FrameMeta {
            time_ns: 0,
            wire_len: 0,
            cap_len: 0,
        };
        let file: SharedBytes = Arc::new((0u8..=255).collect::<Vec<u8>>());
        let other: SharedBytes = Arc::new(vec![9u8; 16]);
        let mut frames = FrameBatch::with_capacity();
        assert!(frames.shared_from().is_none());
        assert!(frames.push_shared(&file, 100, 3, 1, meta));
        frames.push_marked(&[7, 7], 1, meta, 2);
        assert!(frames.push_shared(&file, 10, 2, 1, meta));
        // Another capture, or a range past the end: refused, to be copied instead.
        assert!(!frames.push_shared(&other, 0, 2, 1, meta));
        assert!(!frames.push_shared(&file, 255, 2, 1, meta));
        assert!(!frames.push_shared(&file, usize::MAX, 2, 1, meta));
        let view = frames.view();
        let got: Vec<&[u8]> = frames.frames.iter().map(|f| view.frame(f)).collect();
        assert_eq!(got, [&[100u8, 101, 102][..], &[7, 7], &[10, 11]]);
        assert_eq!(frames.frame_bytes(), 7);
        let (shared, from) = frames.shared_from().expect("frames by position");
        assert!(Arc::ptr_eq(shared, &file) && from == 10);
        // Cleared: the capture is let go of (only the test's handle is left).
        frames.clear();
        assert!(frames.shared_from().is_none() && frames.frame_bytes() == 0);
        assert_eq!(Arc::strong_count(&file), 1);
        assert!(frames.push_shared(&other, 0, 16, 1, meta));
        assert_eq!(frames.reallocations(), 0);
    }

    #[test]
    fn reallocations_count_buffers_made_again() {
        let mut json = JsonBatch::with_capacity();
        json.buf.extend_from_slice(b"{}\n");
        json.commit(3);
        json.clear();
        assert_eq!(json.reallocations(), 0);
        // A message far past the room: the buffer grows (once) and is cut back (once more).
        json.buf.resize(8 << 20, 0);
        json.clear();
        assert_eq!(json.reallocations(), 1);
        json.clear();
        assert_eq!(json.reallocations(), 1);
        json.flows.push(1);
        json.clear();
        assert_eq!(json.reallocations(), 2);
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
