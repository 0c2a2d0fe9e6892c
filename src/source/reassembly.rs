//! `--reassemble`: IPv4 and IPv6 fragment reassembly with bounded memory.
//!
//! Every frame whose outermost IP header is a fragment is offered to a [`Reassembler`] after
//! its own (per-packet) message was made. When a fragment completes its datagram, the
//! reassembler hands back a synthetic frame: the link-layer header of the completing
//! fragment, the IP header of the first fragment (IPv4: MF clear, offset 0, total length and
//! checksum fixed; IPv6: the unfragmentable part with the fragment header removed, its next
//! header moved into the header before it, payload length fixed) and the reassembled
//! payload. The caller decodes and encodes that frame as any other, marked
//! `"reassembled":{"fragments":N}` in the envelope (docs/FORMAT.md, "Fragment reassembly").
//!
//! Rules (RFC 791, RFC 815, RFC 8200 section 4.5, RFC 5722):
//! - Key: source, destination, protocol and identification for IPv4; source, destination
//!   and fragment identification for IPv6 (RFC 8200 does not key on the next header).
//! - Two timeouts. **Per datagram** (per flow of fragments), in capture time, never the wall
//!   clock, so `read` is deterministic: the clock is the highest timestamp of any frame seen
//!   so far, and a datagram not complete `timeout_ns` after its first fragment arrived is
//!   given up (`timeout`). **Global**, in real (monotonic) time, for the whole reassembler:
//!   the clock is read at every fragment and when the caller ticks it ([`Reassembler::tick`]:
//!   each batch handed on, the end of each input, every 200 ms in `capture`); a datagram held
//!   `global_timeout_ns` of real time since its first fragment is given up (`global_timeout`)
//!   at the first reading after that, whatever the packets' timestamps say. It bounds how long state lives when capture time stops (a quiet link,
//!   a pipe, a file whose timestamps stand still or go back).
//! - Overlap: IPv6 follows RFC 5722: any overlap discards the whole datagram, including its
//!   fragments still to come (`overlap`). IPv4 keeps the bytes that arrived first ("first
//!   wins"): an overlapping fragment only fills what is still missing (`overlaps_trimmed`).
//!   A fragment with the same offset, length and bytes as one already held is an exact
//!   duplicate (`duplicates`), not an overlap, and is ignored in both.
//! - A datagram that receives more than `max_fragments` fragments (duplicates included), or
//!   whose reassembled length would pass 65,535 bytes (IPv4 total length, IPv6 payload
//!   length), is given up (`too_many_fragments`, `too_big`), as is one whose last fragment
//!   disagrees with the others about where it ends (`inconsistent`).
//! - A fragment that cannot be used on its own is rejected and counted (`bad_fragments`): cut
//!   short by the capture's snap length, empty, or (not the last) a length that is not a
//!   multiple of 8 (RFC 8200 section 4.5).
//! - Memory: the bytes held for every datagram (its buffers by capacity plus a fixed
//!   [`ENTRY_OVERHEAD_BYTES`] for the tables) never exceed `memory_bytes`; to make room the
//!   oldest datagrams are given up (`memory_cap`).
//! - A datagram given up for overlap, size, fragment count or inconsistency leaves a small
//!   tombstone until its timeout, so its later fragments do not start it again
//!   (`late_fragments`).
//! - Datagrams still incomplete at the end of input are counted (`incomplete`); their
//!   fragments were all delivered as per-packet messages, so this is no loss of output.
//!
//! Only the outermost IP header is looked at, after Ethernet (with 802.1Q/802.1ad tags),
//! Linux cooked v1/v2, BSD loopback or raw IP; fragments inside a tunnel, MPLS or PPPoE are
//! not reassembled.

use crate::decode::LinkType;
use crate::encode::FrameMeta;
use std::collections::{BTreeMap, HashMap};

/// Memory counted per datagram for the two tables that find it (hash map slot, order index
/// entry), above its buffers. Generous: the hash map's slot and growth slack and the B-tree
/// node share stay well below it.
pub const ENTRY_OVERHEAD_BYTES: usize = 512;

/// Largest IPv4 total length and IPv6 payload length.
const MAX_IP_LEN: usize = 65_535;

/// Limits of a reassembler (`--reassembly-mb`, `--reassembly-timeout`,
/// `--reassembly-global-timeout`, `--reassembly-max-fragments`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReassemblyConfig {
    /// Most bytes all datagrams in progress may hold together.
    pub memory_bytes: usize,
    /// A datagram not complete this long (capture time) after its first fragment is given up.
    pub timeout_ns: i64,
    /// A datagram held this long in real time (see [`Reassembler::tick`]) is given up; 0: no
    /// such limit.
    pub global_timeout_ns: u64,
    /// Most fragments one datagram may receive.
    pub max_fragments: u16,
}

impl Default for ReassemblyConfig {
    /// 64 MiB, 30 s (Linux `ipfrag_time`) of capture time, 60 s of real time, 64 fragments.
    fn default() -> Self {
        ReassemblyConfig {
            memory_bytes: 64 << 20,
            timeout_ns: 30_000_000_000,
            global_timeout_ns: 60_000_000_000,
            max_fragments: 64,
        }
    }
}

/// Why a datagram was given up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GiveUp {
    /// Not complete within the timeout (capture time since its first fragment).
    Timeout,
    /// Held longer than the global timeout (real time).
    GlobalTimeout,
    /// Overlapping fragments where the policy drops the datagram (IPv6, RFC 5722).
    Overlap,
    /// More fragments than the per-datagram limit.
    TooManyFragments,
    /// Longer than an IP datagram can be.
    TooBig,
    /// Fragments that contradict each other (two different ends, data past the end).
    Inconsistent,
    /// Evicted, oldest first, to stay under the memory cap.
    MemoryCap,
    /// Still incomplete at the end of input (not a loss: see the module documentation).
    Incomplete,
}

impl GiveUp {
    /// Every reason, in counter order.
    pub const ALL: [GiveUp; 8] = [
        GiveUp::Timeout,
        GiveUp::GlobalTimeout,
        GiveUp::Overlap,
        GiveUp::TooManyFragments,
        GiveUp::TooBig,
        GiveUp::Inconsistent,
        GiveUp::MemoryCap,
        GiveUp::Incomplete,
    ];

    /// The name in the exit summary and the `reason` label in `--metrics`.
    pub fn as_str(self) -> &'static str {
        match self {
            GiveUp::Timeout => "timeout",
            GiveUp::GlobalTimeout => "global_timeout",
            GiveUp::Overlap => "overlap",
            GiveUp::TooManyFragments => "too_many_fragments",
            GiveUp::TooBig => "too_big",
            GiveUp::Inconsistent => "inconsistent",
            GiveUp::MemoryCap => "memory_cap",
            GiveUp::Incomplete => "incomplete",
        }
    }

    /// Position of this reason in [`GiveUp::ALL`] and in the counters.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// What a reassembler did (added up over workers for the summary and `--metrics`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReassemblyStats {
    /// Fragments offered (IP packets with MF set or a non-zero offset).
    pub fragments: u64,
    /// Datagrams completed (each one extra message).
    pub reassembled: u64,
    /// Exact duplicates ignored.
    pub duplicates: u64,
    /// IPv4 fragments that overlapped bytes already held (first wins: only the gaps used).
    pub overlaps_trimmed: u64,
    /// Fragments rejected on their own: cut short by the capture, empty, or a non-last
    /// fragment whose length is not a multiple of 8.
    pub bad_fragments: u64,
    /// Fragments of a datagram already given up (overlap, size, count, inconsistency).
    pub late_fragments: u64,
    /// Datagrams given up, by [`GiveUp::index`].
    pub given_up: [u64; GiveUp::ALL.len()],
    /// Bytes held now (a gauge), and the most held at once.
    pub memory_bytes: u64,
    /// The most bytes held at once.
    pub peak_memory_bytes: u64,
}

impl ReassemblyStats {
    /// Adds another reassembler's counts (the memory gauges add up too: each holds its own).
    pub fn add(&mut self, o: &ReassemblyStats) {
        self.fragments += o.fragments;
        self.reassembled += o.reassembled;
        self.duplicates += o.duplicates;
        self.overlaps_trimmed += o.overlaps_trimmed;
        self.bad_fragments += o.bad_fragments;
        self.late_fragments += o.late_fragments;
        for (a, b) in self.given_up.iter_mut().zip(o.given_up) {
            *a += b;
        }
        self.memory_bytes += o.memory_bytes;
        self.peak_memory_bytes += o.peak_memory_bytes;
    }

    /// Datagrams given up, all reasons together.
    pub fn given_up_total(&self) -> u64 {
        self.given_up.iter().sum()
    }

    /// The summary's reassembly line (`read` and `capture` print it with `--reassemble`).
    pub fn line(&self) -> String {
        let mut s = format!(
            "reassembly: {} fragments, {} datagrams reassembled, {} given up",
            self.fragments,
            self.reassembled,
            self.given_up_total()
        );
        if self.given_up_total() > 0 {
            let mut sep = " (";
            for g in GiveUp::ALL {
                let n = self.given_up[g.index()];
                if n > 0 {
                    s.push_str(&format!("{sep}{} {n}", g.as_str()));
                    sep = ", ";
                }
            }
            s.push(')');
        }
        s.push_str(&format!(
            ", {} duplicates, {} overlapping (first wins), {} bad fragments, {} late fragments, \
             peak memory {} bytes",
            self.duplicates,
            self.overlaps_trimmed,
            self.bad_fragments,
            self.late_fragments,
            self.peak_memory_bytes
        ));
        s
    }
}

/// Identifies a datagram: (IPv6?, source, destination, IPv4 protocol or 0, identification).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    v6: bool,
    src: [u8; 16],
    dst: [u8; 16],
    proto: u8,
    id: u32,
}

/// One fragment as found in a frame.
struct Fragment<'a> {
    key: Key,
    /// Offset of the IP header in the frame.
    ip_at: usize,
    /// IPv4: the header with options. IPv6: the fixed header and the extension headers
    /// before the fragment header (the unfragmentable part).
    header: &'a [u8],
    /// IPv6: offset in `header` of the next-header byte that names the fragment header;
    /// IPv6: the fragment header's next header.
    nh_at: usize,
    next_header: u8,
    /// Fragment offset in bytes, and its data.
    offset: usize,
    data: &'a [u8],
    more: bool,
    /// The data is cut short by the capture.
    truncated: bool,
}

/// A datagram in progress (or given up and waiting out its timeout as a tombstone).
#[derive(Debug)]
struct Datagram {
    seq: u64,
    first_ns: i64,
    /// Real time (nanoseconds since the reassembler was made) of its first fragment.
    born_wall_ns: u64,
    given_up: bool,
    /// The first fragment's header (empty until it arrives), see [`Fragment::header`].
    header: Vec<u8>,
    nh_at: usize,
    next_header: u8,
    /// The fragmentable part; `payload.len()` is the furthest end seen.
    payload: Vec<u8>,
    /// Ranges (start, end) of the fragments taken, in arrival order.
    ranges: Vec<(u32, u32)>,
    /// Fragments received, duplicates included.
    received: u16,
    /// Length of the fragmentable part, once the last fragment is in.
    total: Option<usize>,
    /// Bytes counted against the cap.
    accounted: usize,
}

impl Datagram {
    fn footprint(&self) -> usize {
        ENTRY_OVERHEAD_BYTES
            + self.header.capacity()
            + self.payload.capacity()
            + self.ranges.capacity() * std::mem::size_of::<(u32, u32)>()
    }

    /// True when the fragments taken cover `0..total`.
    fn complete(&self, scratch: &mut Vec<(u32, u32)>) -> bool {
        let (Some(total), false) = (self.total, self.header.is_empty()) else {
            return false;
        };
        scratch.clear();
        scratch.extend_from_slice(&self.ranges);
        scratch.sort_unstable();
        let mut covered = 0usize;
        for &(s, e) in scratch.iter() {
            if s as usize > covered {
                return false;
            }
            covered = covered.max(e as usize);
        }
        covered >= total
    }
}

/// A completed datagram, as a frame to decode (borrowed from the reassembler until the next
/// call).
#[derive(Debug)]
pub struct Reassembled<'r> {
    /// Link type of the synthetic frame (the completing fragment's).
    pub link: LinkType,
    /// The frame: link header, IP header with the fragmentation undone, the whole payload.
    pub frame: &'r [u8],
    /// Fragments it was made of (duplicates not counted).
    pub fragments: u16,
}

/// The envelope values of a reassembled datagram's message: the completing fragment's
/// capture time, and the synthetic frame's length as both `wire_len` and `cap_len`.
pub fn frame_meta(time_ns: i64, frame: &[u8]) -> FrameMeta {
    let len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
    FrameMeta {
        time_ns,
        wire_len: len,
        cap_len: len,
    }
}

/// Reassembles the fragments of one stream of frames (one per reading thread or capture
/// worker).
#[derive(Debug)]
pub struct Reassembler {
    cfg: ReassemblyConfig,
    table: HashMap<Key, Datagram>,
    /// Datagrams by arrival order of their first fragment: the oldest come first, for the
    /// timeout and for eviction. Arrival times are the (monotonic) clock, so this is also
    /// the order of `first_ns`.
    order: BTreeMap<u64, Key>,
    next_seq: u64,
    now_ns: i64,
    /// Real time: when the reassembler was made, and the latest reading (nanoseconds after
    /// it) of a fragment or a tick.
    wall_base: std::time::Instant,
    wall_ns: u64,
    memory: usize,
    stats: ReassemblyStats,
    out: Vec<u8>,
    scratch: Vec<(u32, u32)>,
}

impl Reassembler {
    /// A reassembler holding nothing, with these limits.
    pub fn new(cfg: ReassemblyConfig) -> Reassembler {
        Reassembler {
            cfg,
            table: HashMap::new(),
            order: BTreeMap::new(),
            next_seq: 0,
            now_ns: i64::MIN,
            wall_base: std::time::Instant::now(),
            wall_ns: 0,
            memory: 0,
            stats: ReassemblyStats::default(),
            out: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// The counts so far, with the memory held now.
    pub fn stats(&self) -> ReassemblyStats {
        let mut s = self.stats;
        s.memory_bytes = self.memory as u64;
        s
    }

    /// Bytes held now (never above the configured cap).
    pub fn memory_bytes(&self) -> usize {
        self.memory
    }

    /// Datagrams (and tombstones) held now.
    pub fn in_progress(&self) -> usize {
        self.table.len()
    }

    /// Offers one frame captured at `time_ns`. Returns the reassembled datagram when this
    /// frame was the fragment that completed it.
    ///
    /// Every frame moves the capture-time clock; only fragments are looked at further.
    pub fn offer(&mut self, link: LinkType, frame: &[u8], time_ns: i64) -> Option<Reassembled<'_>> {
        self.offer_at(link, frame, time_ns, None)
    }

    /// [`Reassembler::offer`] with the real-time clock's reading given (nanoseconds after the
    /// reassembler was made; tests and the fuzz target), or read here when `None`: once per
    /// fragment, never for other frames. A datagram's global timeout counts from its first
    /// fragment's reading.
    pub fn offer_at(
        &mut self,
        link: LinkType,
        frame: &[u8],
        time_ns: i64,
        wall_ns: Option<u64>,
    ) -> Option<Reassembled<'_>> {
        if time_ns > self.now_ns {
            self.now_ns = time_ns;
        }
        let frag = find_fragment(link, frame)?;
        self.stats.fragments += 1;
        let wall = wall_ns.unwrap_or_else(|| self.elapsed_ns(std::time::Instant::now()));
        self.wall_ns = self.wall_ns.max(wall);
        self.expire();
        if frag.truncated || frag.data.is_empty() || (frag.more && frag.data.len() % 8 != 0) {
            self.stats.bad_fragments += 1;
            return None;
        }
        let end = frag.offset + frag.data.len();
        // IPv4: the header counts in the total length; IPv6: the unfragmentable extension
        // headers count in the payload length.
        let fixed = if frag.key.v6 {
            frag.header.len() - 40
        } else {
            frag.header.len()
        };
        let key = frag.key;
        if !self.table.contains_key(&key) {
            let seq = self.next_seq;
            self.next_seq += 1;
            let d = Datagram {
                seq,
                first_ns: self.now_ns,
                born_wall_ns: self.wall_ns,
                given_up: false,
                header: Vec::new(),
                nh_at: 0,
                next_header: 0,
                payload: Vec::new(),
                ranges: Vec::new(),
                received: 0,
                total: None,
                accounted: 0,
            };
            self.table.insert(key, d);
            self.order.insert(seq, key);
            if !self.account(&key) {
                return None;
            }
        }
        let verdict = {
            let d = self.table.get_mut(&key)?;
            if d.given_up {
                self.stats.late_fragments += 1;
                return None;
            }
            d.received = d.received.saturating_add(1);
            if d.received > self.cfg.max_fragments {
                Err(GiveUp::TooManyFragments)
            } else if fixed + end > MAX_IP_LEN {
                Err(GiveUp::TooBig)
            } else {
                add_fragment(d, &frag, end, &mut self.stats)
            }
        };
        match verdict {
            Err(why) => {
                self.give_up(&key, why, true);
                None
            }
            Ok(false) => {
                // Duplicates and fully overlapped IPv4 fragments change nothing.
                None
            }
            Ok(true) => {
                if !self.account(&key) {
                    return None;
                }
                let d = self.table.get(&key)?;
                if !d.complete(&mut self.scratch) {
                    return None;
                }
                let d = self.remove(&key)?;
                // The first fragment's header may be longer than the one the size was checked
                // with (IPv4 options, IPv6 extension headers).
                let fixed_first = d.header.len() - if key.v6 { 40 } else { 0 };
                if fixed_first + d.payload.len() > MAX_IP_LEN {
                    self.stats.given_up[GiveUp::TooBig.index()] += 1;
                    return None;
                }
                self.stats.reassembled += 1;
                let fragments = u16::try_from(d.ranges.len()).unwrap_or(u16::MAX);
                build(&mut self.out, &frame[..frag.ip_at], &d);
                Some(Reassembled {
                    link,
                    frame: &self.out,
                    fragments,
                })
            }
        }
    }

    /// The end of input: every datagram still in progress is counted as incomplete and freed.
    pub fn finish(&mut self) {
        let open = self.table.values().filter(|d| !d.given_up).count() as u64;
        self.stats.given_up[GiveUp::Incomplete.index()] += open;
        self.table.clear();
        self.order.clear();
        self.memory = 0;
    }

    /// The real-time clock: the caller calls this now and then (each batch it hands on, and
    /// while the link is quiet), never per packet. Datagrams held longer than the global
    /// timeout are given up, and the capture-time timeout is applied too (the clock may have
    /// moved with frames that were not fragments).
    pub fn tick(&mut self, now: std::time::Instant) {
        self.tick_ns(self.elapsed_ns(now));
    }

    /// Nanoseconds from the reassembler's making to `now`.
    fn elapsed_ns(&self, now: std::time::Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.wall_base).as_nanos()).unwrap_or(u64::MAX)
    }

    /// [`Reassembler::tick`] at `ns` nanoseconds after the reassembler was made (tests and
    /// the fuzz target drive the real-time clock with it).
    pub fn tick_ns(&mut self, ns: u64) {
        self.wall_ns = self.wall_ns.max(ns);
        self.expire();
    }

    /// Gives up datagrams older than either timeout (tombstones just go). Both ages grow
    /// with arrival order (the clocks never go back), so only the oldest need looking at.
    fn expire(&mut self) {
        let timeout = self.cfg.timeout_ns;
        let global = self.cfg.global_timeout_ns;
        while let Some((_, key)) = self.order.first_key_value() {
            let key = *key;
            let Some(d) = self.table.get(&key) else {
                self.order.pop_first();
                continue;
            };
            let why = if d.first_ns.saturating_add(timeout) < self.now_ns {
                GiveUp::Timeout
            } else if global > 0 && d.born_wall_ns.saturating_add(global) <= self.wall_ns {
                GiveUp::GlobalTimeout
            } else {
                break;
            };
            if d.given_up {
                self.remove(&key);
            } else {
                self.give_up(&key, why, false);
            }
        }
    }

    /// Re-counts `key`'s memory and makes room by giving up the oldest datagrams (the one
    /// just grown last). False when `key` itself had to go.
    fn account(&mut self, key: &Key) -> bool {
        if let Some(d) = self.table.get_mut(key) {
            let now = d.footprint();
            self.memory = self.memory - d.accounted + now;
            d.accounted = now;
        }
        while self.memory > self.cfg.memory_bytes {
            let victim = self
                .order
                .values()
                .find(|k| *k != key)
                .copied()
                .unwrap_or(*key);
            self.give_up(&victim, GiveUp::MemoryCap, false);
            if victim == *key {
                return false;
            }
        }
        self.stats.peak_memory_bytes = self.stats.peak_memory_bytes.max(self.memory as u64);
        true
    }

    /// Counts a give-up (unless it is a tombstone already) and frees the datagram, leaving a
    /// tombstone when `tombstone` (its later fragments are then counted as late).
    fn give_up(&mut self, key: &Key, why: GiveUp, tombstone: bool) {
        let Some(d) = self.table.get(key) else {
            return;
        };
        if !d.given_up {
            self.stats.given_up[why.index()] += 1;
        }
        if tombstone {
            if let Some(d) = self.table.get_mut(key) {
                d.given_up = true;
                d.header = Vec::new();
                d.payload = Vec::new();
                d.ranges = Vec::new();
                let now = d.footprint();
                self.memory = self.memory - d.accounted + now;
                d.accounted = now;
            }
        } else {
            self.remove(key);
        }
    }

    fn remove(&mut self, key: &Key) -> Option<Datagram> {
        let d = self.table.remove(key)?;
        self.order.remove(&d.seq);
        self.memory -= d.accounted;
        Some(d)
    }
}

/// Adds a fragment's bytes to `d`. Ok(true): something changed; Ok(false): a duplicate or an
/// IPv4 fragment with nothing new; Err: the datagram is given up.
fn add_fragment(
    d: &mut Datagram,
    f: &Fragment<'_>,
    end: usize,
    stats: &mut ReassemblyStats,
) -> Result<bool, GiveUp> {
    let (s, e) = (f.offset as u32, end as u32);
    if !f.more {
        if d.total.is_some_and(|t| t != end) || d.payload.len() > end {
            return Err(GiveUp::Inconsistent);
        }
    } else if d.total.is_some_and(|t| end > t) {
        return Err(GiveUp::Inconsistent);
    }
    if d.ranges.contains(&(s, e)) && d.payload.get(f.offset..end) == Some(f.data) {
        stats.duplicates += 1;
        return Ok(false);
    }
    let overlaps = d.ranges.iter().any(|&(a, b)| a < e && s < b);
    if overlaps && f.key.v6 {
        return Err(GiveUp::Overlap);
    }
    if !f.more {
        d.total = Some(end);
    }
    if d.payload.len() < end {
        d.payload.reserve_exact(end - d.payload.len());
        d.payload.resize(end, 0);
    }
    if overlaps {
        stats.overlaps_trimmed += 1;
        // First wins: copy only the bytes no fragment taken so far covers.
        let mut pos = f.offset;
        while pos < end {
            let covering = d
                .ranges
                .iter()
                .filter(|&&(a, b)| (a as usize) <= pos && pos < b as usize)
                .map(|&(_, b)| b as usize)
                .max();
            if let Some(b) = covering {
                pos = b;
                continue;
            }
            let next_start = d
                .ranges
                .iter()
                .map(|&(a, _)| a as usize)
                .filter(|&a| a > pos)
                .min()
                .unwrap_or(end)
                .min(end);
            d.payload[pos..next_start]
                .copy_from_slice(&f.data[pos - f.offset..next_start - f.offset]);
            pos = next_start;
        }
    } else {
        d.payload[f.offset..end].copy_from_slice(f.data);
    }
    if f.offset == 0 && d.header.is_empty() {
        d.header.reserve_exact(f.header.len());
        d.header.extend_from_slice(f.header);
        d.nh_at = f.nh_at;
        d.next_header = f.next_header;
    }
    d.ranges.push((s, e));
    Ok(true)
}

/// Writes the synthetic frame: `link` (the completing fragment's link-layer header), the
/// first fragment's header fixed up, the payload.
fn build(out: &mut Vec<u8>, link: &[u8], d: &Datagram) {
    out.clear();
    out.extend_from_slice(link);
    let at = out.len();
    out.extend_from_slice(&d.header);
    out.extend_from_slice(&d.payload);
    let h = &mut out[at..];
    if h.first().map(|b| b >> 4) == Some(6) {
        let plen = (d.header.len() - 40 + d.payload.len()) as u16;
        h[4..6].copy_from_slice(&plen.to_be_bytes());
        h[d.nh_at] = d.next_header;
    } else {
        let hl = d.header.len();
        let total = (hl + d.payload.len()) as u16;
        h[2..4].copy_from_slice(&total.to_be_bytes());
        // Keep the reserved and DF bits; clear MF and the offset.
        h[6] &= 0xc0 & !0x20;
        h[7] = 0;
        h[10] = 0;
        h[11] = 0;
        let sum = checksum(&h[..hl]);
        h[10..12].copy_from_slice(&sum.to_be_bytes());
    }
}

/// The Internet checksum (RFC 1071) of an IPv4 header.
fn checksum(b: &[u8]) -> u16 {
    let mut sum = 0u32;
    for c in b.chunks(2) {
        let w = u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)]);
        sum += u32::from(w);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Where the outermost IP header starts, and its version (4 or 6).
fn locate_ip(link: LinkType, frame: &[u8]) -> Option<(usize, u8)> {
    let be16 = |at: usize| -> Option<u16> {
        Some(u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]))
    };
    let by_type = |t: u16, at: usize| match t {
        0x0800 => Some((at, 4)),
        0x86dd => Some((at, 6)),
        _ => None,
    };
    match link {
        LinkType::Ethernet => {
            let mut at = 12;
            let mut t = be16(at)?;
            // 802.1Q and 802.1ad tags, as the decoder reads them (a few at most).
            for _ in 0..8 {
                if t != 0x8100 && t != 0x88a8 {
                    break;
                }
                at += 4;
                t = be16(at)?;
            }
            by_type(t, at + 2)
        }
        LinkType::LinuxSll => by_type(be16(14)?, 16),
        LinkType::LinuxSll2 => by_type(be16(0)?, 20),
        LinkType::Null => {
            let f = frame.get(..4)?;
            match if f[0] != 0 { f[0] } else { f[3] } {
                0 | 2 => Some((4, 4)),
                10 | 24 | 28 | 30 => Some((4, 6)),
                _ => None,
            }
        }
        LinkType::Raw => match frame.first()? >> 4 {
            6 => Some((0, 6)),
            _ => Some((0, 4)),
        },
        LinkType::Ipv4 => Some((0, 4)),
        LinkType::Ipv6 => Some((0, 6)),
    }
}

/// The fragment the frame's outermost IP header makes, if it is one (an unfragmented
/// datagram, IPv6 atomic fragments (RFC 6946) and malformed headers are not).
fn find_fragment(link: LinkType, frame: &[u8]) -> Option<Fragment<'_>> {
    let (at, version) = locate_ip(link, frame)?;
    let ip = frame.get(at..)?;
    if version == 4 {
        let h = ip.get(..20)?;
        if h[0] >> 4 != 4 {
            return None;
        }
        let flags_frag = u16::from_be_bytes([h[6], h[7]]);
        let more = flags_frag & 0x2000 != 0;
        let offset = usize::from(flags_frag & 0x1fff) * 8;
        if !more && offset == 0 {
            return None;
        }
        let hl = usize::from(h[0] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
        if hl < 20 || total < hl {
            return None;
        }
        let header = ip.get(..hl)?;
        let mut src = [0u8; 16];
        let mut dst = [0u8; 16];
        src[..4].copy_from_slice(&h[12..16]);
        dst[..4].copy_from_slice(&h[16..20]);
        let data = ip.get(hl..total.min(ip.len())).unwrap_or(&[]);
        return Some(Fragment {
            key: Key {
                v6: false,
                src,
                dst,
                proto: h[9],
                id: u32::from(u16::from_be_bytes([h[4], h[5]])),
            },
            ip_at: at,
            header,
            nh_at: 0,
            next_header: 0,
            offset,
            data,
            more,
            truncated: ip.len() < total,
        });
    }
    let h = ip.get(..40)?;
    if h[0] >> 4 != 6 {
        return None;
    }
    let plen = usize::from(u16::from_be_bytes([h[4], h[5]]));
    if plen == 0 {
        // A jumbogram (RFC 2675) cannot be a fragment.
        return None;
    }
    let end = 40 + plen;
    let mut nh = h[6];
    let mut nh_at = 6;
    let mut pos = 40;
    // Hop-by-hop, routing and destination options may come before the fragment header.
    for _ in 0..8 {
        match nh {
            0 | 43 | 60 => {
                let len = (usize::from(*ip.get(pos + 1)?) + 1) * 8;
                nh_at = pos;
                nh = *ip.get(pos)?;
                pos += len;
                if pos > end {
                    return None;
                }
            }
            44 => break,
            _ => return None,
        }
    }
    if nh != 44 {
        return None;
    }
    let fh = ip.get(pos..pos + 8)?;
    if pos + 8 > end {
        return None;
    }
    let off_m = u16::from_be_bytes([fh[2], fh[3]]);
    let offset = usize::from(off_m >> 3) * 8;
    let more = off_m & 1 != 0;
    if offset == 0 && !more {
        return None;
    }
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    src.copy_from_slice(&h[8..24]);
    dst.copy_from_slice(&h[24..40]);
    Some(Fragment {
        key: Key {
            v6: true,
            src,
            dst,
            proto: 0,
            id: u32::from_be_bytes([fh[4], fh[5], fh[6], fh[7]]),
        },
        ip_at: at,
        header: ip.get(..pos)?,
        nh_at,
        next_header: fh[0],
        offset,
        data: ip.get(pos + 8..end.min(ip.len())).unwrap_or(&[]),
        more,
        truncated: ip.len() < end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A raw IPv4 fragment (link type 228) of UDP-ish payload.
    pub(super) fn v4(id: u16, offset: usize, more: bool, data: &[u8]) -> Vec<u8> {
        let total = 20 + data.len();
        let ff = ((offset / 8) as u16) | if more { 0x2000 } else { 0 };
        let mut f = vec![0x45, 0, (total >> 8) as u8, total as u8];
        f.extend_from_slice(&id.to_be_bytes());
        f.extend_from_slice(&ff.to_be_bytes());
        f.extend_from_slice(&[64, 17, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2]);
        f.extend_from_slice(data);
        f
    }

    /// A raw IPv6 fragment (link type 229) with a hop-by-hop header before the fragment one.
    pub(super) fn v6(id: u32, offset: usize, more: bool, data: &[u8]) -> Vec<u8> {
        let plen = 8 + 8 + data.len();
        let mut f = vec![0x60, 0, 0, 0, (plen >> 8) as u8, plen as u8, 0, 64];
        f.extend_from_slice(&[0x20, 1, 0x0d, 0xb8]);
        f.extend_from_slice(&[0; 11]);
        f.push(1);
        f.extend_from_slice(&[0x20, 1, 0x0d, 0xb8]);
        f.extend_from_slice(&[0; 11]);
        f.push(2);
        f.extend_from_slice(&[44, 0, 1, 4, 0, 0, 0, 0]);
        let om = ((offset / 8) as u16) << 3 | u16::from(more);
        f.extend_from_slice(&[17, 0]);
        f.extend_from_slice(&om.to_be_bytes());
        f.extend_from_slice(&id.to_be_bytes());
        f.extend_from_slice(data);
        f
    }

    fn payload(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + 3) as u8).collect()
    }

    fn feed(r: &mut Reassembler, link: LinkType, frames: &[Vec<u8>]) -> Vec<(Vec<u8>, u16)> {
        let mut got = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            if let Some(d) = r.offer(link, f, i as i64) {
                got.push((d.frame.to_vec(), d.fragments));
            }
        }
        got
    }

    #[test]
    fn ipv4_out_of_order_with_duplicate() {
        let p = payload(40);
        let frames = vec![
            v4(7, 24, false, &p[24..]),
            v4(7, 8, true, &p[8..24]),
            v4(7, 8, true, &p[8..24]),
            v4(7, 0, true, &p[..8]),
        ];
        let mut r = Reassembler::new(ReassemblyConfig::default());
        let got = feed(&mut r, LinkType::Ipv4, &frames);
        assert_eq!(got.len(), 1);
        let (frame, n) = &got[0];
        assert_eq!(*n, 3);
        assert_eq!(&frame[20..], &p[..]);
        assert_eq!(u16::from_be_bytes([frame[2], frame[3]]), 60);
        assert_eq!(frame[6] & 0x3f, 0);
        assert_eq!(checksum(&frame[..20]), 0, "checksum verifies");
        let s = r.stats();
        assert_eq!((s.fragments, s.reassembled, s.duplicates), (4, 1, 1));
        assert_eq!(r.memory_bytes(), 0);
        assert_eq!(r.in_progress(), 0);
    }

    #[test]
    fn ipv4_overlap_first_wins() {
        let p = payload(32);
        let other = vec![0xeeu8; 16];
        let frames = vec![
            v4(1, 0, true, &p[..16]),
            // Overlaps 8..16 with different bytes, brings 16..24.
            v4(1, 8, true, &other),
            v4(1, 24, false, &p[24..]),
        ];
        let mut r = Reassembler::new(ReassemblyConfig::default());
        let got = feed(&mut r, LinkType::Ipv4, &frames);
        assert_eq!(got.len(), 1);
        let body = &got[0].0[20..];
        assert_eq!(&body[..16], &p[..16]);
        assert_eq!(&body[16..24], &other[8..]);
        assert_eq!(&body[24..], &p[24..]);
        assert_eq!(r.stats().overlaps_trimmed, 1);
    }

    #[test]
    fn ipv6_overlap_drops_the_datagram_and_its_later_fragments() {
        let p = payload(32);
        let frames = vec![
            v6(9, 0, true, &p[..16]),
            v6(9, 8, true, &p[8..24]),
            v6(9, 16, false, &p[16..]),
            v6(9, 24, false, &p[24..]),
        ];
        let mut r = Reassembler::new(ReassemblyConfig::default());
        assert!(feed(&mut r, LinkType::Ipv6, &frames).is_empty());
        let s = r.stats();
        assert_eq!(s.given_up[GiveUp::Overlap.index()], 1);
        assert_eq!(s.late_fragments, 2);
        r.finish();
        assert_eq!(r.stats().given_up[GiveUp::Incomplete.index()], 0);
    }

    #[test]
    fn ipv6_in_order_removes_the_fragment_header() {
        let p = payload(48);
        let frames = vec![v6(3, 0, true, &p[..24]), v6(3, 24, false, &p[24..])];
        let mut r = Reassembler::new(ReassemblyConfig::default());
        let got = feed(&mut r, LinkType::Ipv6, &frames);
        assert_eq!(got.len(), 1);
        let f = &got[0].0;
        assert_eq!(f.len(), 40 + 8 + 48);
        assert_eq!(u16::from_be_bytes([f[4], f[5]]), 56);
        assert_eq!(f[6], 0, "hop-by-hop still first");
        assert_eq!(f[40], 17, "hop-by-hop now names UDP");
        assert_eq!(&f[48..], &p[..]);
    }

    #[test]
    fn too_many_fragments_and_too_big() {
        let mut r = Reassembler::new(ReassemblyConfig {
            max_fragments: 3,
            ..ReassemblyConfig::default()
        });
        let frames: Vec<_> = (0..5).map(|i| v4(1, i * 8, true, &[0; 8])).collect();
        feed(&mut r, LinkType::Ipv4, &frames);
        assert_eq!(r.stats().given_up[GiveUp::TooManyFragments.index()], 1);
        assert_eq!(r.stats().late_fragments, 1);
        let big = v4(2, 65528, false, &[0; 16]);
        r.offer(LinkType::Ipv4, &big, 10);
        assert_eq!(r.stats().given_up[GiveUp::TooBig.index()], 1);
    }

    #[test]
    fn timeouts_use_capture_time() {
        let mut r = Reassembler::new(ReassemblyConfig {
            timeout_ns: 1000,
            ..ReassemblyConfig::default()
        });
        let p = payload(16);
        assert!(r
            .offer(LinkType::Ipv4, &v4(5, 0, true, &p[..8]), 0)
            .is_none());
        // Within the timeout (a packet from the past does not move the clock back).
        assert!(r
            .offer(LinkType::Ipv4, &v4(6, 0, true, &p[..8]), 1000)
            .is_none());
        assert!(r
            .offer(LinkType::Ipv4, &v4(6, 0, true, &p[..8]), 10)
            .is_none());
        assert_eq!(r.stats().given_up[GiveUp::Timeout.index()], 0);
        // 1001 ns after the first: it goes, and its last fragment starts a new datagram.
        assert!(r
            .offer(LinkType::Ipv4, &v4(5, 8, false, &p[8..]), 1001)
            .is_none());
        assert_eq!(r.stats().given_up[GiveUp::Timeout.index()], 1);
        r.finish();
        assert_eq!(r.stats().given_up[GiveUp::Incomplete.index()], 2);
        assert_eq!(r.memory_bytes(), 0);
    }

    #[test]
    fn frames_that_are_not_fragments_move_the_capture_clock() {
        let mut r = Reassembler::new(ReassemblyConfig {
            timeout_ns: 1000,
            ..ReassemblyConfig::default()
        });
        let p = payload(16);
        r.offer(LinkType::Ipv4, &v4(5, 0, true, &p[..8]), 0);
        // A UDP datagram that is not a fragment, 5000 ns later: the clock moves; the held
        // datagram goes at the next tick (or the next fragment), whichever comes first.
        let whole = v4(9, 0, false, &p);
        assert!(r.offer(LinkType::Ipv4, &whole, 5000).is_none());
        assert_eq!(r.stats().fragments, 1);
        assert_eq!(r.in_progress(), 1);
        r.tick_ns(0);
        assert_eq!(r.stats().given_up[GiveUp::Timeout.index()], 1);
        assert_eq!(r.in_progress(), 0);
        assert_eq!(r.memory_bytes(), 0);
    }

    #[test]
    fn global_timeout_uses_real_time_whatever_the_timestamps_say() {
        let mut r = Reassembler::new(ReassemblyConfig {
            global_timeout_ns: 1_000,
            ..ReassemblyConfig::default()
        });
        let p = payload(16);
        // Capture time stands still (every timestamp 0, as in many crafted files); the
        // real-time clock is given: first fragments at 0 and 400.
        r.offer_at(LinkType::Ipv4, &v4(1, 0, true, &p[..8]), 0, Some(0));
        r.tick_ns(400);
        r.offer_at(LinkType::Ipv4, &v4(2, 0, true, &p[..8]), 0, Some(400));
        // A tombstone: an IPv6 datagram given up for an overlap.
        r.offer_at(LinkType::Ipv6, &v6(3, 0, true, &p[..8]), 0, Some(400));
        r.offer_at(LinkType::Ipv6, &v6(3, 0, true, &p[8..]), 0, Some(400));
        assert_eq!(r.stats().given_up[GiveUp::Overlap.index()], 1);
        r.tick_ns(999);
        assert_eq!(r.stats().given_up[GiveUp::GlobalTimeout.index()], 0);
        assert_eq!(r.in_progress(), 3);
        // 1000 ns after datagram 1's first fragment: only it goes.
        r.tick_ns(1000);
        assert_eq!(r.stats().given_up[GiveUp::GlobalTimeout.index()], 1);
        assert_eq!(r.in_progress(), 2);
        // A clock read that went back changes nothing.
        r.tick_ns(10);
        assert_eq!(r.in_progress(), 2);
        // Datagram 1's last fragment now starts a new datagram (at 1000); 2 and the tombstone
        // go at 1400 (the tombstone is not counted again).
        assert!(r
            .offer_at(LinkType::Ipv4, &v4(1, 8, false, &p[8..]), 0, Some(1000))
            .is_none());
        r.tick_ns(1400);
        assert_eq!(r.stats().given_up[GiveUp::GlobalTimeout.index()], 2);
        assert_eq!(r.stats().given_up[GiveUp::Overlap.index()], 1);
        assert_eq!(r.in_progress(), 1);
        // A fragment's own reading expires what is old before it is taken.
        assert!(r
            .offer_at(LinkType::Ipv4, &v4(4, 0, true, &p[..8]), 0, Some(2500))
            .is_none());
        assert_eq!(r.stats().given_up[GiveUp::GlobalTimeout.index()], 3);
        assert_eq!(r.in_progress(), 1);
        // Datagram 4 counts from its own first fragment (2500), not from the tick before it
        // (1400): still held at 3000, completed at 3499.
        r.tick_ns(3000);
        assert_eq!(r.in_progress(), 1);
        let done = r.offer_at(LinkType::Ipv4, &v4(4, 8, false, &p[8..]), 0, Some(3499));
        assert_eq!(done.map(|d| d.fragments), Some(2));
        assert_eq!(r.in_progress(), 0);
        assert_eq!(r.memory_bytes(), 0);
        assert_eq!(r.stats().given_up[GiveUp::Timeout.index()], 0);
        assert!(
            r.stats().line().contains("global_timeout 3"),
            "{}",
            r.stats().line()
        );
    }

    #[test]
    fn a_global_timeout_of_zero_is_off() {
        let mut r = Reassembler::new(ReassemblyConfig {
            global_timeout_ns: 0,
            ..ReassemblyConfig::default()
        });
        let p = payload(16);
        r.offer(LinkType::Ipv4, &v4(1, 0, true, &p[..8]), 0);
        r.tick_ns(u64::MAX);
        assert_eq!(r.in_progress(), 1);
        let done = r.offer(LinkType::Ipv4, &v4(1, 8, false, &p[8..]), 0);
        assert_eq!(done.map(|d| d.fragments), Some(2));
    }

    #[test]
    fn bad_fragments_are_rejected() {
        let mut r = Reassembler::new(ReassemblyConfig::default());
        // Not a multiple of 8.
        r.offer(LinkType::Ipv4, &v4(1, 0, true, &[1; 7]), 0);
        // Cut short by the capture.
        let mut f = v4(1, 0, true, &[1; 16]);
        f.truncate(30);
        r.offer(LinkType::Ipv4, &f, 0);
        assert_eq!(r.stats().bad_fragments, 2);
        assert_eq!(r.in_progress(), 0);
        // A last fragment that ends before data already held.
        r.offer(LinkType::Ipv4, &v4(2, 16, true, &[1; 16]), 0);
        r.offer(LinkType::Ipv4, &v4(2, 8, false, &[1; 8]), 0);
        assert_eq!(r.stats().given_up[GiveUp::Inconsistent.index()], 1);
    }

    #[test]
    fn memory_cap_holds_under_a_flood_of_first_fragments() {
        let cap = 1 << 20;
        let mut r = Reassembler::new(ReassemblyConfig {
            memory_bytes: cap,
            ..ReassemblyConfig::default()
        });
        let data = [0u8; 1000];
        for i in 0..100_000u32 {
            let mut f = v4(i as u16, 0, true, &data);
            // A distinct source per 65536 ids.
            f[14] = (i >> 16) as u8;
            r.offer(LinkType::Ipv4, &f, i64::from(i));
            assert!(r.memory_bytes() <= cap);
        }
        let s = r.stats();
        assert!(s.peak_memory_bytes <= cap as u64);
        let held = r.in_progress() as u64;
        assert_eq!(s.given_up[GiveUp::MemoryCap.index()] + held, 100_000);
        assert!(s.given_up[GiveUp::MemoryCap.index()] > 90_000);
    }

    #[test]
    fn link_layers_are_kept_from_the_completing_fragment() {
        let p = payload(16);
        let mut eth = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x81, 0, 0, 5, 0x08, 0];
        let mut a = eth.clone();
        a.extend(v4(1, 0, true, &p[..8]));
        eth[5] = 9;
        let mut b = eth.clone();
        b.extend(v4(1, 8, false, &p[8..]));
        b.extend_from_slice(&[0; 6]); // Ethernet padding: not part of the datagram.
        let mut r = Reassembler::new(ReassemblyConfig::default());
        assert!(r.offer(LinkType::Ethernet, &a, 0).is_none());
        let d = r.offer(LinkType::Ethernet, &b, 1).unwrap();
        assert_eq!(&d.frame[..18], &eth[..]);
        assert_eq!(&d.frame[38..], &p[..]);
    }
}
