//! Streaming reader for pcap and pcapng capture files that never panics on bad input.
//!
//! Formats, as written down by the IETF OPSAWG drafts:
//! - pcap (draft-ietf-opsawg-pcap): a 24-byte file header, then records of a 16-byte header
//!   (seconds, microseconds or nanoseconds, captured length, original length) and the bytes.
//! - pcapng (draft-ietf-opsawg-pcapng): a sequence of blocks `type, total length, body,
//!   total length`, each section opened by a Section Header Block that fixes the byte order and
//!   forgets every interface of the previous section.
//!
//! The reader is lending: [`CaptureReader::next_frame`] returns a [`Frame`] whose bytes borrow
//! one internal buffer that is reused for every record, so the steady state allocates nothing
//! and memory does not grow with the file; it only holds the largest record seen, which the
//! limits below bound.
//!
//! In place: [`CaptureReader::open`] maps a regular file (with the `capture` feature; see
//! "File mapping" in `source::ring::sys` for which files and why) and
//! [`CaptureReader::from_shared_bytes`] takes a capture already in memory; either way frames
//! borrow the bytes where they lie, with no copy into the record buffer, and the headers are
//! parsed exactly as when streaming (same frames, same errors, same offsets). Pages of a
//! mapping the reader has left behind are dropped from the process as it goes, so its resident
//! size stays bounded as a streamed file's does. Pipes, standard input, empty files and files
//! that cannot (or may not) be mapped are streamed.
//!
//! Decisions (each the least surprising choice we could find; tests pin them):
//! - **Captured length above the original length** (a writer bug, or a pcap 2.4 file from an
//!   old writer): every captured byte is kept and `wire_len` becomes `max(orig_len, caplen)`,
//!   so `data.len() <= wire_len as usize` always holds for consumers that compute "bytes not
//!   captured" as a difference. libpcap hands such records over unchanged.
//! - **pcap versions before 2.3** store the two lengths in the other order, and 2.3 files may
//!   have them either way; as libpcap does, lengths are swapped for versions < 2.3, and for 2.3
//!   when the captured length exceeds the original length.
//! - **Modified pcap** (Kuznetzov's patched libpcap, magic 0xa1b2cd34, 24-byte record
//!   headers) is read too; [`CaptureReader::format`] reports it as microsecond pcap.
//! - **pcap link-type field**: only its low 16 bits are the link type. Bits 28..=31 may carry
//!   the FCS-length flag and value (draft-ietf-opsawg-pcap, "LinkType and additional
//!   information"); they are masked off, so frames may then end with an FCS the link type does
//!   not announce.
//! - **pcap timestamps**: seconds and fraction are unsigned (as the draft says; libpcap reads
//!   them as signed), so dates reach 2106 rather than 2038, as in tshark. A fraction of one
//!   second or more (a broken writer) is not rejected: it counts as that many µs or ns and
//!   carries into the seconds. `thiszone` and `sigfigs` are ignored, as libpcap ignores them.
//! - **Captured length above the header snaplen**: every captured byte is kept, as tshark
//!   does (libpcap cuts the record to the snaplen); only the limits below refuse a record.
//! - **Limits**: a pcap record may capture at most `max(256 KiB, min(header snaplen, 16 MiB))`
//!   bytes (256 KiB is libpcap's largest snapshot length); a pcapng block may be at most
//!   16 MiB; a pcapng section may describe at most 65,536 interfaces. Anything larger is
//!   [`ReadError::Corrupt`], never an allocation.
//! - **Simple Packet Blocks** carry no timestamp: their `time_ns` is 0. Their captured length
//!   is `min(original length, snaplen of interface 0 when not 0, room in the block)`.
//! - **Several pcapng sections**: each Section Header Block resets the interfaces, so
//!   [`CaptureReader::link_types`] lists the interfaces of the current section only.
//! - **After an error** the reader is finished: later calls to `next_frame` return `Ok(None)`.
//!   Errors name the byte offset of the record or block that failed (its first byte).

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;
use std::sync::Arc;

mod error;
mod pcap;
mod pcapng;
#[cfg(test)]
mod test_support;

pub use error::ReadError;
use pcap::PcapState;
use pcapng::PcapNgState;

/// Largest captured length of a pcap record when the file header's snaplen is smaller
/// (libpcap's `MAXIMUM_SNAPLEN`).
const PCAP_DEFAULT_MAX_CAPLEN_BYTES: u32 = 256 * 1024;
/// Hard ceiling for one pcap record's bytes and for one whole pcapng block.
const MAX_RECORD_BYTES: u32 = 16 * 1024 * 1024;
/// The record buffer is cut back to [`SHRINK_TO_BYTES`] when it is larger than this and the
/// next record fits the smaller size.
const SHRINK_ABOVE_BYTES: usize = 4 * PCAP_DEFAULT_MAX_CAPLEN_BYTES as usize;
const SHRINK_TO_BYTES: usize = PCAP_DEFAULT_MAX_CAPLEN_BYTES as usize;
/// Buffer of the `BufReader` that [`CaptureReader::open`] puts in front of the file.
const READ_BUFFER_BYTES: usize = 256 * 1024;
/// A mapping's pages behind the reader are dropped in steps of this many bytes (a multiple of
/// every page size Linux uses, so the ranges are page aligned).
#[cfg(feature = "capture")]
const DROP_BEHIND_BYTES: usize = 8 * 1024 * 1024;
/// How far ahead of the reader the bytes of a capture read in place are prefetched (1, 2, 4
/// and 8 KiB measured alike, 16 and 64 KiB worse: PERFORMANCE.md, issue 13, 2026-12-07 23:00-23:52).
#[cfg(feature = "capture")]
const PREFETCH_AHEAD_BYTES: usize = 2048;

const PCAP_RECORD_HEADER_BYTES: usize = 16;
/// Kuznetzov's patched libpcap adds ifindex (4), protocol (2), pkt_type (1) and a pad byte.
const PCAP_MODIFIED_RECORD_HEADER_BYTES: usize = 24;

/// Magic numbers, as the first four bytes read big-endian.
const MAGIC_PCAP_US_BE: u32 = 0xa1b2_c3d4;
const MAGIC_PCAP_US_LE: u32 = 0xd4c3_b2a1;
const MAGIC_PCAP_NS_BE: u32 = 0xa1b2_3c4d;
const MAGIC_PCAP_NS_LE: u32 = 0x4d3c_b2a1;
const MAGIC_PCAP_MODIFIED_BE: u32 = 0xa1b2_cd34;
const MAGIC_PCAP_MODIFIED_LE: u32 = 0x34cd_b2a1;
/// pcapng Section Header Block type; a palindrome, so it reads the same in either byte order.
const BLOCK_SHB: u32 = 0x0a0d_0d0a;
const NS_PER_SEC: i128 = 1_000_000_000;

/// One captured packet, borrowed from the reader's buffer until the next call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Captured bytes.
    pub data: &'a [u8],
    /// Original length on the wire; never less than `data.len()`.
    pub wire_len: u32,
    /// Capture time, nanoseconds since the Unix epoch (saturated to the `i64` range).
    pub time_ns: i64,
    /// `LINKTYPE_*` of this frame's interface.
    pub link_type: u32,
    /// pcapng interface index within its section; 0 for pcap.
    pub interface_id: u32,
}

/// Which file format the reader found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureFormat {
    /// Classic pcap; `nanosecond` when the magic says the fraction is in nanoseconds.
    Pcap {
        /// The file's fields are big-endian.
        big_endian: bool,
        /// Timestamp fractions are nanoseconds (else microseconds).
        nanosecond: bool,
    },
    /// pcapng; byte order may change from section to section.
    PcapNg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endian {
    Little,
    Big,
}

impl Endian {
    fn u16(self, bytes: &[u8], at: usize) -> Option<u16> {
        let raw: [u8; 2] = bytes.get(at..at.checked_add(2)?)?.try_into().ok()?;
        Some(match self {
            Endian::Little => u16::from_le_bytes(raw),
            Endian::Big => u16::from_be_bytes(raw),
        })
    }

    fn u32(self, bytes: &[u8], at: usize) -> Option<u32> {
        let raw: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(match self {
            Endian::Little => u32::from_le_bytes(raw),
            Endian::Big => u32::from_be_bytes(raw),
        })
    }

    fn i64(self, bytes: &[u8], at: usize) -> Option<i64> {
        let raw: [u8; 8] = bytes.get(at..at.checked_add(8)?)?.try_into().ok()?;
        Some(match self {
            Endian::Little => i64::from_le_bytes(raw),
            Endian::Big => i64::from_be_bytes(raw),
        })
    }
}

fn saturate_i64(value: i128) -> i64 {
    i64::try_from(value).unwrap_or(if value < 0 { i64::MIN } else { i64::MAX })
}

#[derive(Debug)]
enum State {
    Pcap(PcapState),
    PcapNg(PcapNgState),
}

/// Where the frame returned by `next_frame` lies in `buf`, and what describes it.
#[derive(Debug, Clone, Copy)]
struct FrameMeta {
    start: usize,
    end: usize,
    wire_len: u32,
    time_ns: i64,
    link_type: u32,
    interface_id: u32,
}

/// Bytes a capture is read from in place (see the module docs, "In place").
enum Shared {
    /// A mapped file (`source::ring::sys::file_mapping::map_capture_file`), shared with the
    /// frame batches that hand its frames to workers by position ([`CaptureReader::shared_bytes`]).
    #[cfg(feature = "capture")]
    Map(Arc<memmap2::Mmap>),
    /// A capture handed over in memory ([`CaptureReader::from_shared_bytes`]).
    Bytes(Arc<dyn AsRef<[u8]> + Send + Sync>),
}

impl Shared {
    #[inline]
    fn bytes(&self) -> &[u8] {
        match self {
            #[cfg(feature = "capture")]
            Shared::Map(map) => map,
            Shared::Bytes(bytes) => (**bytes).as_ref(),
        }
    }

    /// Another handle on the same bytes.
    fn handle(&self) -> Arc<dyn AsRef<[u8]> + Send + Sync> {
        match self {
            #[cfg(feature = "capture")]
            Shared::Map(map) => Arc::clone(map) as Arc<dyn AsRef<[u8]> + Send + Sync>,
            Shared::Bytes(bytes) => Arc::clone(bytes),
        }
    }
}

/// A capture read in place and the reader's position in it.
struct InPlace {
    shared: Shared,
    /// Next byte to read.
    pos: usize,
    /// The bytes of the last `fill_buf`: `start..end` of `shared`.
    record_start: usize,
    record_end: usize,
    /// Pages below this offset have been dropped from the process (mapped files).
    #[cfg(feature = "capture")]
    dropped_to: usize,
    /// Pages from this offset on are kept even when the reader is past them: frames handed on
    /// by position that a worker may still be reading ([`CaptureReader::keep_from`]).
    #[cfg(feature = "capture")]
    keep_from: usize,
    /// Offset up to which prefetches were issued ([`InPlace::prefetch_ahead`]; bytes a
    /// record longer than the distance skipped over were not).
    #[cfg(feature = "capture")]
    prefetched_to: usize,
}

impl InPlace {
    /// Copies up to `out.len()` bytes from the position on; returns how many there were.
    #[inline]
    fn read(&mut self, out: &mut [u8]) -> usize {
        let bytes = self.shared.bytes();
        let from = bytes.get(self.pos..).unwrap_or_default();
        let n = out.len().min(from.len());
        if let (Some(dst), Some(src)) = (out.get_mut(..n), from.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.pos += n;
        n
    }

    /// Moves the position up to `len` bytes on; returns how many there were.
    #[inline]
    fn advance(&mut self, len: u64) -> u64 {
        let left = self.shared.bytes().len().saturating_sub(self.pos);
        let n = usize::try_from(len).unwrap_or(usize::MAX).min(left);
        self.pos += n;
        n as u64
    }

    /// The reader took the record starting at `start` and is now at `next`: the pages well
    /// behind the record are dropped and the bytes ahead of `next` prefetched.
    #[cfg(feature = "capture")]
    #[inline]
    fn passed(&mut self, start: usize, next: usize) {
        self.drop_behind(start);
        self.prefetch_ahead(next);
    }

    /// Prefetches the bytes up to [`PREFETCH_AHEAD_BYTES`] past `pos` into the CPU's caches
    /// that are not yet: the next record headers, which the reader must read one after the
    /// other (each one's length says where the next is), and the frames, which the
    /// decoder reads next (on this thread or on a worker's core that shares the last level
    /// cache).
    #[cfg(feature = "capture")]
    #[inline]
    fn prefetch_ahead(&mut self, pos: usize) {
        use crate::source::ring::sys::file_mapping::{prefetch, PREFETCH_STRIDE};
        let to = pos.saturating_add(PREFETCH_AHEAD_BYTES);
        if to >= self.prefetched_to.saturating_add(PREFETCH_STRIDE) {
            // From the start of the cache line, so a line begun by the last range is not
            // skipped.
            let from = self.prefetched_to.max(pos);
            let from = from - from % PREFETCH_STRIDE;
            prefetch(self.shared.bytes(), from, to);
            self.prefetched_to = to;
        }
    }

    /// Drops the mapped pages well behind `before` (a record start) and below
    /// [`InPlace::keep_from`]: the reader never goes back, and frames borrow only the current
    /// record unless they were handed on by position.
    #[cfg(feature = "capture")]
    fn drop_behind(&mut self, before: usize) {
        let Shared::Map(map) = &self.shared else {
            return;
        };
        let before = before.min(self.keep_from);
        let to = before - before % DROP_BEHIND_BYTES;
        if to >= self.dropped_to + DROP_BEHIND_BYTES {
            // Only advice: if the kernel refuses, the pages stay until reclaimed.
            let _ = crate::source::ring::sys::file_mapping::drop_mapped_pages(
                map,
                self.dropped_to,
                to - self.dropped_to,
            );
            self.dropped_to = to;
        }
    }
}

/// Streaming pcap/pcapng reader. Give [`CaptureReader::new`] a buffered reader (as
/// [`CaptureReader::open`] does): each record takes a few small reads.
pub struct CaptureReader<R: Read> {
    /// The byte stream; holds the open file, unread, when the file is mapped.
    reader: R,
    /// Set when the capture is read in place (mapped file, shared bytes): then `reader` is
    /// not read.
    in_place: Option<InPlace>,
    name: String,
    format: CaptureFormat,
    state: State,
    link_types: Vec<u32>,
    /// Byte offset of the next record or block.
    offset: u64,
    /// Reused record buffer; its length only grows, up to the largest record read.
    buf: Vec<u8>,
    finished: bool,
}

impl<R: Read> fmt::Debug for CaptureReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaptureReader")
            .field("name", &self.name)
            .field("format", &self.format)
            .field("link_types", &self.link_types)
            .field("offset", &self.offset)
            .field("finished", &self.finished)
            .field("in_place", &self.in_place.is_some())
            .finish_non_exhaustive()
    }
}

impl CaptureReader<BufReader<File>> {
    /// Opens `path` and reads its file header (pcap) or first Section Header Block (pcapng).
    /// Errors are named after `path` as given. "-" is standard input (a pipe or a file,
    /// pcap or pcapng; read through a duplicate of descriptor 0, so the type stays `File`).
    pub fn open(path: &Path) -> Result<Self, ReadError> {
        if path.as_os_str() == "-" {
            use std::os::fd::AsFd;
            let name = "stdin".to_owned();
            return match io::stdin().as_fd().try_clone_to_owned() {
                Ok(fd) => Self::new(
                    BufReader::with_capacity(READ_BUFFER_BYTES, File::from(fd)),
                    name,
                ),
                Err(source) => Err(ReadError::Io { name, source }),
            };
        }
        let name = path.display().to_string();
        let file = match File::open(path) {
            Ok(file) => file,
            Err(source) => return Err(ReadError::Io { name, source }),
        };
        #[cfg(feature = "capture")]
        if let Ok(map) = crate::source::ring::sys::file_mapping::map_capture_file(&file) {
            // The file stays open in the (never read, unbuffered) reader beside its mapping.
            return Self::start(
                BufReader::with_capacity(0, file),
                Some(InPlace::new(Shared::Map(Arc::new(map)))),
                name,
            );
        }
        Self::new(BufReader::with_capacity(READ_BUFFER_BYTES, file), name)
    }

    /// As [`CaptureReader::open`], but always streams the file through a read buffer, never
    /// maps it (for comparisons and for files that may change while they are read).
    pub fn open_streaming(path: &Path) -> Result<Self, ReadError> {
        if path.as_os_str() == "-" {
            return Self::open(path);
        }
        let name = path.display().to_string();
        match File::open(path) {
            Ok(file) => Self::new(BufReader::with_capacity(READ_BUFFER_BYTES, file), name),
            Err(source) => Err(ReadError::Io { name, source }),
        }
    }
}

impl CaptureReader<io::Empty> {
    /// Reads a capture held in memory in place: frames borrow `bytes`, nothing is copied.
    /// Frames, errors and offsets are those [`CaptureReader::new`] gives for the same bytes.
    pub fn from_shared_bytes(
        bytes: Arc<dyn AsRef<[u8]> + Send + Sync>,
        name: String,
    ) -> Result<Self, ReadError> {
        Self::start(io::empty(), Some(InPlace::new(Shared::Bytes(bytes))), name)
    }
}

impl InPlace {
    fn new(shared: Shared) -> Self {
        InPlace {
            shared,
            pos: 0,
            record_start: 0,
            record_end: 0,
            #[cfg(feature = "capture")]
            dropped_to: 0,
            #[cfg(feature = "capture")]
            keep_from: usize::MAX,
            #[cfg(feature = "capture")]
            prefetched_to: 0,
        }
    }
}

impl<R: Read> CaptureReader<R> {
    /// Reads the file header from `reader`; `name` is used in error messages.
    pub fn new(reader: R, name: String) -> Result<Self, ReadError> {
        Self::start(reader, None, name)
    }

    /// Reads the file header from `reader`, or from `in_place` when given.
    fn start(reader: R, in_place: Option<InPlace>, name: String) -> Result<Self, ReadError> {
        let mut this = CaptureReader {
            reader,
            in_place,
            name,
            format: CaptureFormat::PcapNg,
            state: State::PcapNg(PcapNgState {
                endian: Endian::Little,
                interfaces: Vec::new(),
            }),
            link_types: Vec::new(),
            offset: 0,
            buf: Vec::new(),
            finished: false,
        };
        let mut magic_bytes = [0u8; 4];
        let got = this.read_in(&mut magic_bytes)?;
        if got < magic_bytes.len() {
            return Err(ReadError::NotACapture {
                name: this.name,
                magic: None,
                bytes_present: got,
            });
        }
        let magic = u32::from_be_bytes(magic_bytes);
        // (byte order, nanosecond fraction, record header bytes)
        let (endian, nanosecond, record_header_bytes) = match magic {
            MAGIC_PCAP_US_BE => (Endian::Big, false, PCAP_RECORD_HEADER_BYTES),
            MAGIC_PCAP_US_LE => (Endian::Little, false, PCAP_RECORD_HEADER_BYTES),
            MAGIC_PCAP_NS_BE => (Endian::Big, true, PCAP_RECORD_HEADER_BYTES),
            MAGIC_PCAP_NS_LE => (Endian::Little, true, PCAP_RECORD_HEADER_BYTES),
            MAGIC_PCAP_MODIFIED_BE => (Endian::Big, false, PCAP_MODIFIED_RECORD_HEADER_BYTES),
            MAGIC_PCAP_MODIFIED_LE => (Endian::Little, false, PCAP_MODIFIED_RECORD_HEADER_BYTES),
            BLOCK_SHB => {
                this.read_section_header(0)?;
                return Ok(this);
            }
            _ => {
                return Err(ReadError::NotACapture {
                    name: this.name,
                    magic: Some(magic),
                    bytes_present: magic_bytes.len(),
                })
            }
        };
        this.read_pcap_header(endian, nanosecond, record_header_bytes)?;
        Ok(this)
    }

    /// Whether frames are read in place from a mapping or shared bytes (else streamed).
    pub fn is_in_place(&self) -> bool {
        self.in_place.is_some()
    }

    /// The bytes a capture read in place lies in (the mapped file, or the shared bytes), for
    /// handing frames to other threads by position instead of by copy: the data of a frame
    /// from [`CaptureReader::next_frame_placed`] lies at the offset it gives. `None` when the
    /// capture is streamed (then frames live in the reader's buffer and must be copied). A
    /// mapping stays mapped while any handle lives.
    pub fn shared_bytes(&self) -> Option<Arc<dyn AsRef<[u8]> + Send + Sync>> {
        self.in_place.as_ref().map(|p| p.shared.handle())
    }

    /// Keeps the mapped pages from `offset` on resident when the reader drops the ones it has
    /// left behind ("In place" in the module docs): the frames handed on by position from
    /// `offset` on are still being read. `usize::MAX`, the default, keeps nothing behind the
    /// reader. The pages dropped are only advice to the kernel (a dropped page is read again
    /// from the file on the next access), so this bounds wasted work, never correctness.
    pub fn keep_from(&mut self, offset: usize) {
        #[cfg(feature = "capture")]
        if let Some(p) = &mut self.in_place {
            p.keep_from = offset;
        }
        #[cfg(not(feature = "capture"))]
        let _ = offset;
    }

    /// The format found in the file header.
    pub fn format(&self) -> CaptureFormat {
        self.format
    }

    /// Link type per interface: pcap has exactly one; pcapng lists the interfaces of the
    /// current section described so far, indexed by interface id.
    pub fn link_types(&self) -> &[u32] {
        &self.link_types
    }

    /// Byte offset of the next record (pcap) or block (pcapng).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The name used in error messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Next packet; `Ok(None)` at a clean end of file (or after an error was returned). The
    /// frame borrows the reader's buffer, which the next call reuses.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, ReadError> {
        self.next_frame_placed()
            .map(|next| next.map(|(frame, _)| frame))
    }

    /// As [`CaptureReader::next_frame`], with where the frame's data lies in
    /// [`CaptureReader::shared_bytes`] when the capture is read in place (`None` when it is
    /// streamed).
    #[inline(always)]
    pub fn next_frame_placed(&mut self) -> Result<Option<(Frame<'_>, Option<usize>)>, ReadError> {
        // Most records of a mapped pcap file: parsed where they lie, nothing copied, in a few
        // instructions that the caller's loop can take in (the general path is large).
        if !self.finished {
            if let Some(meta) = self.next_pcap_in_place() {
                return Ok(Some(self.placed(meta)));
            }
        }
        self.next_frame_general()
    }

    /// [`CaptureReader::next_frame_placed`] for every record: streamed, pcapng, and the
    /// pcap records that need a closer look.
    #[inline(never)]
    fn next_frame_general(&mut self) -> Result<Option<(Frame<'_>, Option<usize>)>, ReadError> {
        if self.finished {
            return Ok(None);
        }
        let result = match self.state {
            State::Pcap(_) => self.next_pcap_record(),
            State::PcapNg(_) => self.next_pcapng_packet(),
        };
        match result {
            Ok(Some(meta)) => Ok(Some(self.placed(meta))),
            Ok(None) => {
                self.finished = true;
                Ok(None)
            }
            Err(error) => {
                self.finished = true;
                Err(error)
            }
        }
    }

    /// The frame `meta` describes in the record just read, and where its data lies in
    /// [`CaptureReader::shared_bytes`] when the capture is read in place.
    #[inline(always)]
    fn placed(&self, meta: FrameMeta) -> (Frame<'_>, Option<usize>) {
        let at = self.in_place.as_ref().map(|p| p.record_start + meta.start);
        let frame = Frame {
            data: self.record().get(meta.start..meta.end).unwrap_or_default(),
            wire_len: meta.wire_len,
            time_ns: meta.time_ns,
            link_type: meta.link_type,
            interface_id: meta.interface_id,
        };
        (frame, at)
    }

    // ---- shared helpers -------------------------------------------------------------------

    fn io_error(&self, source: io::Error) -> ReadError {
        ReadError::Io {
            name: self.name.clone(),
            source,
        }
    }

    fn corrupt(&self, offset: u64, what: String) -> ReadError {
        ReadError::Corrupt {
            name: self.name.clone(),
            offset,
            what,
        }
    }

    fn truncated(&self, offset: u64, what: &'static str, needed: u64, present: u64) -> ReadError {
        ReadError::Truncated {
            name: self.name.clone(),
            offset,
            what,
            needed_bytes: needed,
            present_bytes: present,
        }
    }

    /// Reads until `out` is full or the input ends; returns the bytes read.
    #[inline]
    fn read_in(&mut self, out: &mut [u8]) -> Result<usize, ReadError> {
        if let Some(in_place) = &mut self.in_place {
            return Ok(in_place.read(out));
        }
        read_full(&mut self.reader, out).map_err(|e| self.io_error(e))
    }

    /// Skips `len` bytes without keeping them; returns the bytes skipped.
    fn skip_bytes(&mut self, len: u64) -> Result<u64, ReadError> {
        if let Some(in_place) = &mut self.in_place {
            return Ok(in_place.advance(len));
        }
        let mut limited = (&mut self.reader).take(len);
        // io::copy moves the bytes through a fixed stack buffer: no allocation.
        io::copy(&mut limited, &mut io::sink()).map_err(|e| self.io_error(e))
    }

    /// The bytes of the last [`Self::fill_buf`] (streaming: the record buffer, whose first
    /// `len` bytes they are).
    #[inline]
    fn record(&self) -> &[u8] {
        match &self.in_place {
            Some(p) => p
                .shared
                .bytes()
                .get(p.record_start..p.record_end)
                .unwrap_or_default(),
            None => &self.buf,
        }
    }

    /// Reads up to `len` bytes into `buf[..len]`, growing the buffer if it is shorter;
    /// returns how many bytes arrived before end of file. In place, nothing is copied: the
    /// bytes are only marked as the record ([`Self::record`]).
    fn fill_buf(&mut self, len: usize) -> Result<usize, ReadError> {
        if let Some(in_place) = &mut self.in_place {
            let start = in_place.pos;
            let got = in_place.advance(len as u64) as usize;
            in_place.record_start = start;
            in_place.record_end = start + got;
            #[cfg(feature = "capture")]
            in_place.passed(start, start + got);
            return Ok(got);
        }
        if self.buf.len() < len {
            self.buf.resize(len, 0);
        } else if self.buf.len() > SHRINK_ABOVE_BYTES && len <= SHRINK_TO_BYTES {
            // A huge record came and went: give its memory back rather than keep it for the
            // rest of the file (or of a long-running pipe).
            self.buf.truncate(SHRINK_TO_BYTES);
            self.buf.shrink_to_fit();
        }
        let target = self.buf.get_mut(..len).unwrap_or_default();
        read_full(&mut self.reader, target).map_err(|source| ReadError::Io {
            name: self.name.clone(),
            source,
        })
    }
}

/// Reads until `buf` is full or the reader reports end of file; returns the bytes read.
/// Retries `Interrupted`, as `read_exact` does, but says how much arrived.
fn read_full<R: Read + ?Sized>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while let Some(rest) = buf.get_mut(filled..) {
        if rest.is_empty() {
            break;
        }
        let room = rest.len();
        match reader.read(rest) {
            Ok(0) => break,
            // A reader claiming more than the room it was given breaks the `Read` contract;
            // clamp rather than index out of bounds.
            Ok(n) => filled += n.min(room),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::pcapng::BYTE_ORDER_MAGIC;
    use super::test_support::*;
    use super::*;
    use std::time::{Duration, Instant};

    // ---- not a capture, I/O ----------------------------------------------------------------

    #[test]
    fn not_a_capture_messages() {
        let error = open_bytes(b"").unwrap_err();
        assert_eq!(
            error.to_string(),
            "t.cap: empty file, not a pcap or pcapng file"
        );
        assert_eq!(error.exit_code(), 4);
        let error = open_bytes(b"\xd4\xc3").unwrap_err();
        assert_eq!(
            error.to_string(),
            "t.cap: not a pcap or pcapng file (only 2 bytes long)"
        );
        let error =
            CaptureReader::new(&b"#!/usr/bin/env python\n"[..], "notes.txt".into()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "notes.txt: not a pcap or pcapng file (starts with 0x23212f75)"
        );
        assert!(matches!(
            error,
            ReadError::NotACapture {
                magic: Some(0x2321_2f75),
                ..
            }
        ));
        assert_eq!(error.exit_code(), 4);
    }

    #[test]
    fn open_reports_missing_files_and_reads_real_ones() {
        let error = CaptureReader::open(Path::new("/nonexistent/x.pcap")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "/nonexistent/x.pcap: No such file or directory"
        );
        assert_eq!(error.exit_code(), 3);
        assert!(std::error::Error::source(&error).is_some());

        let (ng, expected) = rich_pcapng(true);
        let path = std::env::temp_dir().join(format!(
            "netpipe-fast-pcap-file-test-{}.pcapng",
            std::process::id()
        ));
        std::fs::write(&path, &ng.out).unwrap();
        let mut reader = CaptureReader::open(&path).unwrap();
        let (frames, error) = drain(&mut reader);
        std::fs::remove_file(&path).unwrap();
        assert!(error.is_none());
        assert_eq!(frames, expected);
        assert_eq!(reader.name(), path.display().to_string());
    }

    /// Hands out at most `chunk` bytes per read, with an `Interrupted` before each, and can
    /// fail with an I/O error after `fail_after` bytes.
    struct Awkward<'a> {
        bytes: &'a [u8],
        chunk: usize,
        interrupt: bool,
        fail_after: Option<usize>,
        position: usize,
    }

    impl Read for Awkward<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.interrupt {
                self.interrupt = false;
                return Err(io::ErrorKind::Interrupted.into());
            }
            self.interrupt = true;
            if self.fail_after.is_some_and(|at| self.position >= at) {
                return Err(io::Error::other("disk on fire"));
            }
            let n = buf
                .len()
                .min(self.chunk)
                .min(self.bytes.len() - self.position);
            buf[..n].copy_from_slice(&self.bytes[self.position..self.position + n]);
            self.position += n;
            Ok(n)
        }
    }

    #[test]
    fn short_reads_and_interruptions_change_nothing() {
        let (ng, expected) = rich_pcapng(false);
        let mut image = Pcap::new(true, false, ETH);
        image.rec(1, 2, 3, &[1, 2, 3]).rec(4, 5, 600, &[7; 600]);
        let pcap_expected = read_ok(&image.out);
        for chunk in [1, 3, 7, 64] {
            for (bytes, want) in [(&ng.out, &expected), (&image.out, &pcap_expected)] {
                let source = Awkward {
                    bytes,
                    chunk,
                    interrupt: true,
                    fail_after: None,
                    position: 0,
                };
                let mut reader = CaptureReader::new(source, "t.cap".into()).unwrap();
                let (frames, error) = drain(&mut reader);
                assert!(error.is_none());
                assert_eq!(&frames, want);
            }
        }
    }

    #[test]
    fn io_error_mid_file_is_io() {
        let (ng, _) = rich_pcapng(false);
        let source = Awkward {
            bytes: &ng.out,
            chunk: 1000,
            interrupt: false,
            fail_after: Some(ng.blocks[3].0 + 2),
            position: 0,
        };
        let mut reader = CaptureReader::new(source, "t.cap".into()).unwrap();
        let (_, error) = drain(&mut reader);
        let error = error.unwrap();
        assert_eq!(error.to_string(), "t.cap: disk on fire");
        assert_eq!(error.exit_code(), 3);
    }

    #[test]
    fn record_buffer_is_reused() {
        let mut image = Pcap::new(false, false, ETH);
        for i in 0..2000u32 {
            let len = (i * 37 % 1500) as usize;
            image.rec(i, 0, len as u32, &vec![i as u8; len]);
        }
        let mut reader = open_bytes(&image.out).unwrap();
        let mut count = 0;
        let mut capacity_after_first_pass = None;
        while let Some(frame) = reader.next_frame().unwrap() {
            assert_eq!(frame.data.len(), (count * 37 % 1500) as usize);
            count += 1;
            if count == 1500 {
                capacity_after_first_pass = Some(reader.buf.capacity());
            }
        }
        assert_eq!(count, 2000);
        // Every length has been seen by record 1500; no growth after that.
        assert_eq!(Some(reader.buf.capacity()), capacity_after_first_pass);
        assert!(reader.buf.capacity() < 4096);
    }

    // ---- mapped files ----------------------------------------------------------------------

    /// A temporary file holding `bytes` with `mode`, removed on drop.
    #[cfg(feature = "capture")]
    struct TempCapture(std::path::PathBuf);

    #[cfg(feature = "capture")]
    impl TempCapture {
        fn new(tag: &str, bytes: &[u8], mode: u32) -> TempCapture {
            use std::os::unix::fs::PermissionsExt;
            let path = std::env::temp_dir().join(format!(
                "netpipe-fast-mapped-{tag}-{}.pcap",
                std::process::id()
            ));
            std::fs::write(&path, bytes).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            TempCapture(path)
        }
    }

    #[cfg(feature = "capture")]
    impl Drop for TempCapture {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// Frames, error text and end offset of `path`, mapped (`open`) or streamed.
    #[cfg(feature = "capture")]
    fn read_file(path: &Path, mapped: bool) -> (Vec<Owned>, Option<String>, u64) {
        let opened = if mapped {
            CaptureReader::open(path)
        } else {
            CaptureReader::open_streaming(path)
        };
        match opened {
            Err(e) => (Vec::new(), Some(e.to_string()), 0),
            Ok(mut reader) => {
                let (frames, error) = drain(&mut reader);
                (frames, error.map(|e| e.to_string()), reader.offset())
            }
        }
    }

    /// Every fixture in pcaps/ and every file of the tcpdump corpus (when it is there): the
    /// mapped reader gives the same frames, errors and offsets as the streaming one.
    #[cfg(feature = "capture")]
    #[test]
    fn mapped_files_read_as_streamed_files() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut paths = Vec::new();
        for dir in [
            root.join("pcaps"),
            root.join("../shared/corpus/tcpdump-tests"),
        ] {
            if let Ok(entries) = std::fs::read_dir(&dir) {
                paths.extend(entries.filter_map(|e| e.ok().map(|e| e.path())));
            }
        }
        paths.sort();
        let (mut mapped, mut with_errors) = (0, 0);
        for path in &paths {
            let streamed = read_file(path, false);
            let in_place = read_file(path, true);
            assert_eq!(in_place, streamed, "{}", path.display());
            if let Ok(reader) = CaptureReader::open(path) {
                mapped += usize::from(reader.is_in_place());
            }
            with_errors += usize::from(streamed.1.is_some());
        }
        eprintln!(
            "{} files, {mapped} of them mapped, {with_errors} ending in an error",
            paths.len()
        );
        assert!(mapped >= 20, "{mapped} files mapped");
    }

    #[cfg(feature = "capture")]
    #[test]
    fn only_files_no_one_else_may_write_are_mapped() {
        let mut image = Pcap::new(false, false, ETH);
        image.rec(1, 2, 3, &[1, 2, 3]).rec(4, 5, 600, &[7; 600]);
        let own = TempCapture::new("own", &image.out, 0o644);
        let reader = CaptureReader::open(&own.0).unwrap();
        assert!(reader.is_in_place());
        let read_only = TempCapture::new("read-only", &image.out, 0o444);
        assert!(CaptureReader::open(&read_only.0).unwrap().is_in_place());
        for (tag, mode) in [("group", 0o664), ("others", 0o646)] {
            let shared = TempCapture::new(tag, &image.out, mode);
            let mut reader = CaptureReader::open(&shared.0).unwrap();
            assert!(!reader.is_in_place(), "{tag}");
            assert_eq!(drain(&mut reader).0, read_ok(&image.out));
        }
        // Streaming on request; standard input and empty files always stream.
        assert!(!CaptureReader::open_streaming(&own.0).unwrap().is_in_place());
        let empty = TempCapture::new("empty", b"", 0o644);
        let error = CaptureReader::open(&empty.0).unwrap_err();
        assert!(error
            .to_string()
            .ends_with("empty file, not a pcap or pcapng file"));
    }

    /// A file cut inside a record, and a file cut inside a pcapng block: the mapping is as
    /// long as the file, and the reader reports the same truncation, after the same frames,
    /// as streaming does; bytes appended after the map are not read.
    #[cfg(feature = "capture")]
    #[test]
    fn truncated_mapped_files_end_with_the_streamed_error() {
        let mut image = Pcap::new(false, false, ETH);
        for i in 0..100u32 {
            image.rec(i, 0, 200, &[i as u8; 200]);
        }
        let (ng, _) = rich_pcapng(false);
        for (tag, bytes) in [("pcap", &image.out), ("pcapng", &ng.out)] {
            for cut in [bytes.len() - 1, bytes.len() - 150, 30] {
                let file = TempCapture::new(tag, &bytes[..cut], 0o600);
                let in_place = read_file(&file.0, true);
                assert_eq!(in_place, read_file(&file.0, false), "{tag} cut at {cut}");
                assert!(in_place.1.is_some(), "{tag} cut at {cut}");
                if let Ok(reader) = CaptureReader::open(&file.0) {
                    assert!(reader.is_in_place());
                }
            }
        }
        // Grows after it was mapped: read up to the length it had.
        let file = TempCapture::new("grows", &image.out[..image.out.len() - 216], 0o600);
        let mut reader = CaptureReader::open(&file.0).unwrap();
        let mut more = std::fs::OpenOptions::new()
            .append(true)
            .open(&file.0)
            .unwrap();
        std::io::Write::write_all(&mut more, &image.out[image.out.len() - 216..]).unwrap();
        let (frames, error) = drain(&mut reader);
        assert!(error.is_none());
        assert_eq!(frames.len(), 99);
    }

    /// The pages of a mapping the reader has passed are dropped: after reading a 48 MiB file
    /// the mapping's resident size (its `Rss:` line in /proc/self/smaps) is a few steps of
    /// [`DROP_BEHIND_BYTES`], not the file.
    #[cfg(feature = "capture")]
    #[test]
    fn mapped_pages_behind_the_reader_are_dropped() {
        let mut image = Pcap::new(false, false, ETH);
        let record = vec![0x55u8; 1500];
        while image.out.len() < 48 * 1024 * 1024 {
            image.rec(1, 2, 1500, &record);
        }
        let file = TempCapture::new("rss", &image.out, 0o600);
        drop(image);
        let mut reader = CaptureReader::open(&file.0).unwrap();
        assert!(reader.is_in_place());
        let mut frames = 0;
        while let Some(frame) = reader.next_frame().unwrap() {
            assert_eq!(frame.data, &record[..]);
            frames += 1;
        }
        assert!(frames > 30_000);
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let name = file.0.display().to_string();
        let mut lines = smaps.lines().skip_while(|l| !l.ends_with(&name));
        assert!(lines.next().is_some(), "mapping not in smaps");
        let rss_kib: usize = lines
            .find_map(|l| l.strip_prefix("Rss:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        eprintln!("resident after reading 48 MiB mapped: {rss_kib} KiB");
        assert!(
            rss_kib <= 3 * DROP_BEHIND_BYTES / 1024,
            "{rss_kib} KiB resident"
        );
    }

    // ---- property-style: arbitrary bytes never panic ---------------------------------------

    /// SplitMix64: small, seedable, good enough to drive mutations.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: usize) -> usize {
            if n == 0 {
                0
            } else {
                (self.next() % n as u64) as usize
            }
        }
    }

    /// Reads `bytes` to the end, checking invariants that must hold for any input, and that
    /// reading in place gives the same frames and error.
    fn read_anything(bytes: &[u8]) {
        let streamed = match open_bytes(bytes) {
            Err(e) => (Vec::new(), Some(e.to_string()), 0),
            Ok(mut reader) => {
                let (frames, error) = drain(&mut reader);
                (frames, error.map(|e| e.to_string()), reader.offset())
            }
        };
        assert_eq!(read_in_place(bytes), streamed);
        read_anything_streamed(bytes);
    }

    fn read_anything_streamed(bytes: &[u8]) {
        let mut reader = match open_bytes(bytes) {
            Ok(reader) => reader,
            Err(error) => {
                assert!(!error.to_string().contains('\n'));
                return;
            }
        };
        let mut previous_offset = reader.offset();
        // Every frame consumes at least 12 bytes, so this bound is never reached by a reader
        // that makes progress.
        for _ in 0..=bytes.len() / 12 + 1 {
            match reader.next_frame() {
                Ok(Some(frame)) => {
                    assert!(frame.data.len() <= frame.wire_len as usize);
                    let interface_id = frame.interface_id as usize;
                    assert!(reader.link_types().len() > interface_id);
                    assert!(reader.offset() > previous_offset);
                    assert!(reader.offset() <= bytes.len() as u64);
                    previous_offset = reader.offset();
                }
                Ok(None) => return,
                Err(error) => {
                    let text = error.to_string();
                    assert!(!text.contains('\n') && text.starts_with("t.cap: "));
                    assert!(matches!(reader.next_frame(), Ok(None)));
                    return;
                }
            }
        }
        panic!("reader made no progress");
    }

    fn seeds() -> Vec<Vec<u8>> {
        let mut seeds = Vec::new();
        for big in [false, true] {
            seeds.push(rich_pcapng(big).0.out);
            for nanosecond in [false, true] {
                let mut image = Pcap::new(big, nanosecond, ETH);
                image
                    .rec(1, 2, 70, &[0x45; 40])
                    .rec(3, 4, 5, &[1, 2, 3, 4, 5]);
                seeds.push(image.out);
            }
        }
        let mut two_sections = rich_pcapng(false).0;
        two_sections.shb(true).idb(RAW as u16, 0, &[(9, &[0x85])]);
        two_sections.epb(0, 1, 1, &[1]).spb(2, &[1, 2]);
        seeds.push(two_sections.out);
        // Small real captures too, when the corpus is there: every pcapng one, a few pcap.
        let dir = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/corpus/tcpdump-tests"
        ));
        if let Ok(entries) = std::fs::read_dir(dir) {
            let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            paths.sort();
            let mut pcap_files = 0;
            for path in paths {
                let Ok(bytes) = std::fs::read(&path) else {
                    continue;
                };
                let is_ng = bytes.starts_with(&[0x0a, 0x0d, 0x0d, 0x0a]);
                if bytes.len() <= 16 * 1024 && (is_ng || pcap_files < 16) {
                    pcap_files += usize::from(!is_ng);
                    seeds.push(bytes);
                }
            }
        }
        seeds
    }

    const INTERESTING: [u32; 14] = [
        0,
        1,
        3,
        4,
        11,
        12,
        16,
        28,
        32,
        0x7fff_ffff,
        0xffff_ffff,
        BLOCK_SHB,
        BYTE_ORDER_MAGIC,
        0x00ff_ffff,
    ];

    fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
        let mut bytes = seed.to_vec();
        for _ in 0..1 + rng.below(4) {
            match rng.below(6) {
                0 => {
                    let at = rng.below(bytes.len());
                    if let Some(b) = bytes.get_mut(at) {
                        *b ^= 1 << rng.below(8);
                    }
                }
                1 => {
                    let at = rng.below(bytes.len());
                    if let Some(b) = bytes.get_mut(at) {
                        *b = rng.next() as u8;
                    }
                }
                2 => {
                    let at = rng.below(bytes.len() / 4) * 4;
                    let value = INTERESTING[rng.below(INTERESTING.len())];
                    let value = if rng.below(2) == 0 {
                        value.to_le_bytes()
                    } else {
                        value.to_be_bytes()
                    };
                    if at + 4 <= bytes.len() {
                        bytes[at..at + 4].copy_from_slice(&value);
                    }
                }
                3 => bytes.truncate(rng.below(bytes.len() + 1)),
                4 => {
                    // Duplicate a slice somewhere else.
                    let from = rng.below(bytes.len());
                    let len = rng.below(64).min(bytes.len() - from);
                    let chunk = bytes[from..from + len].to_vec();
                    let at = rng.below(bytes.len() + 1);
                    bytes.splice(at..at, chunk);
                }
                _ => {
                    let at = rng.below(bytes.len() + 1);
                    bytes.truncate(at);
                    for _ in 0..rng.below(64) {
                        bytes.push(rng.next() as u8);
                    }
                }
            }
        }
        bytes
    }

    #[test]
    fn arbitrary_and_mutated_images_never_panic() {
        let seeds = seeds();
        for seed in &seeds {
            read_anything(seed);
        }
        let mut rng = Rng(0x6e65_7470_6970_6521);
        // NETPIPE_FUZZ_ROUNDS=1000000 for a longer run.
        let rounds = std::env::var("NETPIPE_FUZZ_ROUNDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(6000);
        for round in 0..rounds {
            let bytes = match round % 6 {
                // Pure noise behind each valid magic, and pure noise.
                0 => {
                    let magics: [&[u8]; 5] = [
                        &[0xd4, 0xc3, 0xb2, 0xa1],
                        &[0xa1, 0xb2, 0x3c, 0x4d],
                        &[0x0a, 0x0d, 0x0d, 0x0a],
                        &[0x34, 0xcd, 0xb2, 0xa1],
                        &[],
                    ];
                    let mut bytes = magics[rng.below(magics.len())].to_vec();
                    for _ in 0..rng.below(200) {
                        bytes.push(rng.next() as u8);
                    }
                    bytes
                }
                _ => {
                    let seed = &seeds[rng.below(seeds.len())];
                    mutate(&mut rng, seed)
                }
            };
            read_anything(&bytes);
        }
    }

    // ---- real files ------------------------------------------------------------------------

    #[derive(Default)]
    struct Tally {
        files: usize,
        read_fully: usize,
        frames: usize,
        by_error: std::collections::BTreeMap<&'static str, Vec<String>>,
    }

    fn error_kind(error: &ReadError) -> &'static str {
        match error {
            ReadError::Io { .. } => "io",
            ReadError::NotACapture { .. } => "not a capture",
            ReadError::Truncated { .. } => "truncated",
            ReadError::Corrupt { .. } => "corrupt",
            ReadError::UnsupportedVersion { .. } => "unsupported version",
        }
    }

    /// The tcpdump corpus (../shared) is missing: a skip on a developer's machine (said on a
    /// `skipping` line, also appended to `$NETPIPE_SKIP_LOG`, which scripts/test.sh counts),
    /// a failure in CI or under `NETPIPE_REQUIRE_LIVE=1`, so a green CI run always read it.
    fn skip_corpus(dir: &Path) {
        let required = std::env::var_os("CI").is_some_and(|v| !v.is_empty())
            || std::env::var("NETPIPE_REQUIRE_LIVE").as_deref() == Ok("1");
        assert!(
            !required,
            "{} is missing (CI or NETPIPE_REQUIRE_LIVE=1 requires it)",
            dir.display()
        );
        let line = format!(
            "skipping a corpus unit test: {} is not there",
            dir.display()
        );
        eprintln!("{line}");
        if let Some(path) = std::env::var_os("NETPIPE_SKIP_LOG") {
            use std::io::Write as _;
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(path)
            {
                let _ = writeln!(f, "{line}");
            }
        }
    }

    /// Reads every file in `dir` to its end or first error, each within a second.
    fn read_directory(dir: &Path) -> Option<Tally> {
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .ok()?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.is_file())
            .collect();
        paths.sort();
        let mut tally = Tally::default();
        for path in paths {
            let started = Instant::now();
            let outcome = CaptureReader::open(&path).and_then(|mut reader| {
                let mut frames = 0;
                while let Some(frame) = reader.next_frame()? {
                    assert!(frame.data.len() <= frame.wire_len as usize);
                    frames += 1;
                }
                Ok(frames)
            });
            let elapsed = started.elapsed();
            assert!(
                elapsed < Duration::from_secs(1),
                "{} took {elapsed:?}",
                path.display()
            );
            tally.files += 1;
            match outcome {
                Ok(frames) => {
                    tally.read_fully += 1;
                    tally.frames += frames;
                }
                Err(error) => {
                    let text = error.to_string();
                    assert!(!text.contains('\n'));
                    tally
                        .by_error
                        .entry(error_kind(&error))
                        .or_default()
                        .push(text);
                }
            }
        }
        Some(tally)
    }

    fn report(label: &str, tally: &Tally) {
        eprintln!(
            "{label}: {} files, {} read to the end ({} frames)",
            tally.files, tally.read_fully, tally.frames
        );
        for (kind, messages) in &tally.by_error {
            eprintln!("  {kind}: {}", messages.len());
            for message in messages {
                eprintln!("    {message}");
            }
        }
    }

    #[test]
    fn tcpdump_corpus_reads_without_panic() {
        let dir = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/corpus/tcpdump-tests"
        ));
        let Some(tally) = read_directory(dir) else {
            return skip_corpus(dir);
        };
        report("tcpdump corpus", &tally);
        assert!(tally.files > 0);
        assert!(!tally.by_error.contains_key("io"));
        // The corpus is mostly well-formed captures of malformed packets.
        assert!(tally.read_fully * 10 >= tally.files * 9);
    }

    /// Differential check against libpcap (through the `pcap` crate) on every corpus file:
    /// same packets, bytes, lengths and nanosecond timestamps, except where we deliberately
    /// differ (each counted; only libpcap is compared here, tshark is not run):
    /// - libpcap cuts a record's bytes to the file header's snaplen; we keep them all;
    /// - libpcap reports a wire length below the captured length as is; we raise it;
    /// - libpcap reads pcap seconds and fractions as signed 32-bit; the draft says unsigned.
    #[cfg(feature = "bpf")]
    #[test]
    fn tcpdump_corpus_matches_libpcap() {
        let dir = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/corpus/tcpdump-tests"
        ));
        let Ok(entries) = std::fs::read_dir(dir) else {
            return skip_corpus(dir);
        };
        let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        let (mut compared, mut refused, mut packets) = (0, 0, 0);
        let (mut snapped, mut raised_len, mut unsigned_secs) = (0, 0, 0);
        let mut unexplained = Vec::new();
        for path in &paths {
            let Ok(mut oracle) =
                ::pcap::Capture::from_file_with_precision(path, ::pcap::Precision::Nano)
            else {
                refused += 1;
                continue;
            };
            compared += 1;
            let mut ours = CaptureReader::open(path).unwrap();
            for index in 0.. {
                let note = |what: String| format!("{} packet {index}: {what}", path.display());
                match (oracle.next_packet(), ours.next_frame()) {
                    (Err(::pcap::Error::NoMorePackets), Ok(None)) => break,
                    (Ok(theirs), Ok(Some(mine))) => {
                        packets += 1;
                        if theirs.data != mine.data {
                            if mine.data.starts_with(theirs.data) {
                                snapped += 1;
                            } else {
                                unexplained.push(note("different bytes".into()));
                            }
                        }
                        let their_len = theirs.header.len;
                        if their_len != mine.wire_len {
                            if mine.wire_len as usize == mine.data.len()
                                && (their_len as usize) < mine.data.len()
                            {
                                raised_len += 1;
                            } else {
                                unexplained.push(note(format!(
                                    "len {their_len} vs our {}",
                                    mine.wire_len
                                )));
                            }
                        }
                        // time_t and suseconds_t are 32-bit on some targets.
                        #[allow(clippy::useless_conversion)]
                        let their_ns = i64::from(theirs.header.ts.tv_sec) * 1_000_000_000
                            + i64::from(theirs.header.ts.tv_usec);
                        if their_ns != mine.time_ns {
                            // libpcap's signed reading of a field ≥ 2^31 shifts the time by
                            // a multiple of 2^32 units (seconds, µs or ns).
                            let shift = i128::from(mine.time_ns) - i128::from(their_ns);
                            if shift > 0 && shift % (1i128 << 32) == 0 {
                                unsigned_secs += 1;
                            } else {
                                unexplained
                                    .push(note(format!("time {their_ns} vs our {}", mine.time_ns)));
                            }
                        }
                    }
                    (theirs, mine) => {
                        unexplained.push(note(format!(
                            "libpcap {:?} vs ours {:?}",
                            theirs.map(|p| p.header.caplen),
                            mine.map(|f| f.map(|f| f.data.len()))
                        )));
                        break;
                    }
                }
            }
        }
        eprintln!(
            "libpcap comparison: {compared} files ({packets} packets) compared, {refused} \
             refused by libpcap; deliberate differences: {snapped} packets cut to snaplen by \
             libpcap, {raised_len} wire lengths raised to the captured length, \
             {unsigned_secs} timestamps with a field of 2^31 or more; {} unexplained",
            unexplained.len()
        );
        assert!(unexplained.is_empty(), "{unexplained:#?}");
    }

    #[test]
    fn project_fixtures_read_without_panic() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let tally = read_directory(&root.join("pcaps")).expect("pcaps/ is part of the crate");
        report("pcaps/", &tally);
        // Every capture reads to its end; the one other file is the README.
        let captures = std::fs::read_dir(root.join("pcaps"))
            .unwrap()
            .filter(|e| {
                let p = e.as_ref().unwrap().path();
                p.extension().is_some_and(|x| x == "pcap" || x == "pcapng")
            })
            .count();
        assert!(captures >= 20, "{captures} captures in pcaps/");
        assert_eq!(tally.read_fully, captures, "{:?}", tally.by_error);
        assert_eq!(tally.files, captures + 1);
        let errors: Vec<&str> = tally.by_error.keys().copied().collect();
        assert_eq!(errors, ["not a capture"], "{:?}", tally.by_error);
        assert!(tally.by_error["not a capture"][0].contains("README.md"));
        // As many frames as the reviewed golden files have messages (one line per packet).
        let golden_lines: usize = std::fs::read_dir(root.join("tests/golden"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .map(|p| {
                std::fs::read(p)
                    .unwrap()
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count()
            })
            .sum();
        assert_eq!(tally.frames, golden_lines);
    }
}
