//! Community ID v1 (<https://github.com/corelight/community-id-spec>): a SHA-1 over the seed and
//! the flow tuple, ordered so that both directions of a flow give the same value, written as
//! `1:` and the base64 of the digest. The SHA-1 compression function comes from the RustCrypto
//! `sha1` crate (SHA-NI when the CPU has it); the one padded block and the 28 base64
//! characters of the digest are laid out here. Nothing is allocated per packet.
//!
//! Hashing costs about as much as a quarter of the rest of the per-packet work, and most
//! packets belong to a flow seen a moment ago, so [`IdCache`] keeps the last flow's ID and,
//! behind it, the IDs of recent flows (8,192 IPv4 and 1,024 IPv6) in set-associative tables
//! keyed by the ordered flow packed into words (every field of the bytes that would be
//! hashed, so different bytes never share a key): a hit returns the same text the hash would
//! give, by construction.

use crate::decode::flow::{self, Addrs, FlowTuple, PROTO_ICMP, PROTO_ICMPV6};
use crate::decode::Packet;

/// Length of `1:` + base64 of a 20-byte digest.
pub const ID_LEN: usize = 2 + 28;

/// ICMP (RFC 792 and friends) request/response types and their counterparts, as Zeek pairs
/// them; any other type is a one-way message whose code takes the place of the second port.
fn icmp_counterpart(icmp_type: u16) -> Option<u16> {
    Some(match icmp_type {
        8 => 0,
        0 => 8,
        13 => 14,
        14 => 13,
        15 => 16,
        16 => 15,
        10 => 9,
        9 => 10,
        17 => 18,
        18 => 17,
        _ => return None,
    })
}

/// The same for ICMPv6: echo, MLD query/report, router and neighbor discovery, node
/// information (who-are-you), home agent address discovery.
fn icmpv6_counterpart(icmp_type: u16) -> Option<u16> {
    Some(match icmp_type {
        128 => 129,
        129 => 128,
        130 => 131,
        131 => 130,
        133 => 134,
        134 => 133,
        135 => 136,
        136 => 135,
        139 => 140,
        140 => 139,
        144 => 145,
        145 => 144,
        _ => return None,
    })
}

/// Most bytes hashed: seed 2, two IPv6 addresses 32, protocol and padding 2, ports 4.
const MAX_INPUT: usize = 40;

/// Writes the Community ID of `flow` with `seed` into `out` and returns it as text (ASCII).
pub fn community_id<'o>(flow: &FlowTuple<'_>, seed: u16, out: &'o mut [u8; ID_LEN]) -> &'o str {
    let mut input = [0u8; MAX_INPUT];
    let n = Ordered::of(flow).hash_input(seed, &mut input);
    render(&input[..n], out);
    // base64 and `1:` are ASCII; the fallback cannot happen.
    std::str::from_utf8(out).unwrap_or("1:")
}

/// A flow in the order the specification hashes it, addresses as unsigned big-endian numbers
/// (an IPv4 address widened): ordering and the cache's key are integer operations, and the
/// bytes to hash are only laid out when the cache misses.
#[derive(Clone, Copy, Debug)]
struct Ordered {
    v6: bool,
    src: u128,
    dst: u128,
    proto: u8,
    ports: Option<(u16, u16)>,
}

impl Ordered {
    fn of(flow: &FlowTuple<'_>) -> Ordered {
        // Numbers compare as the wire's bytes do (big-endian, unsigned).
        let (v6, src, dst) = match flow.addrs {
            Addrs::V4(s, d) => (
                false,
                u128::from(u32::from_be_bytes(*s)),
                u128::from(u32::from_be_bytes(*d)),
            ),
            Addrs::V6(s, d) => (true, u128::from_be_bytes(*s), u128::from_be_bytes(*d)),
        };
        Ordered::new(v6, src, dst, flow.proto, flow.ports)
    }

    /// The flow of a [`raw_key`] (which holds every field of the tuple), and the seed.
    fn of_raw(raw: &[u64; 5]) -> (Ordered, u16) {
        let meta = raw[0];
        let ports = (meta & (1 << 32) != 0).then_some(((meta >> 16) as u16, meta as u16));
        let v6 = meta & (1 << 33) != 0;
        // `raw_key` loaded the addresses in the machine's byte order: back to the wire's bytes.
        let (src, dst) = if v6 {
            let word = |lo: u64, hi: u64| {
                u128::from_be_bytes(((u128::from(hi) << 64) | u128::from(lo)).to_ne_bytes())
            };
            (word(raw[1], raw[2]), word(raw[3], raw[4]))
        } else {
            let word = |w: u64| u128::from(u32::from_be_bytes((w as u32).to_ne_bytes()));
            (word(raw[1]), word(raw[1] >> 32))
        };
        let proto = (meta >> 40) as u8;
        (
            Ordered::new(v6, src, dst, proto, ports),
            (meta >> 48) as u16,
        )
    }

    /// Addresses as big-endian numbers, the protocol and the ports (or ICMP type and code)
    /// as the packet carried them: mapped and ordered as the specification says.
    #[inline(always)]
    fn new(v6: bool, src: u128, dst: u128, proto: u8, ports: Option<(u16, u16)>) -> Ordered {
        // Port equivalents: ICMP type and code become (type, counterpart type) when the type
        // has a counterpart, else (type, code) and the flow is one-way (never reordered).
        let (ports, one_way) = match (proto, ports) {
            (PROTO_ICMP, Some((t, c))) => match icmp_counterpart(t) {
                Some(r) => (Some((t, r)), false),
                None => (Some((t, c)), true),
            },
            (PROTO_ICMPV6, Some((t, c))) => match icmpv6_counterpart(t) {
                Some(r) => (Some((t, r)), false),
                None => (Some((t, c)), true),
            },
            (_, p) => (p, false),
        };
        // Ordered when one-way, when the source address is the smaller, or when the addresses
        // are equal and the source port is the smaller; otherwise both sides swap.
        let ordered = one_way || src < dst || (src == dst && ports.is_some_and(|(sp, dp)| sp < dp));
        if ordered {
            Ordered {
                v6,
                src,
                dst,
                proto,
                ports,
            }
        } else {
            Ordered {
                v6,
                src: dst,
                dst: src,
                proto,
                ports: ports.map(|(sp, dp)| (dp, sp)),
            }
        }
    }

    /// The bytes the specification hashes, written into `buf`; returns their length.
    fn hash_input(&self, seed: u16, buf: &mut [u8; MAX_INPUT]) -> usize {
        let mut n = 0;
        let mut put = |bytes: &[u8]| {
            buf[n..n + bytes.len()].copy_from_slice(bytes);
            n += bytes.len();
        };
        put(&seed.to_be_bytes());
        if self.v6 {
            put(&self.src.to_be_bytes());
            put(&self.dst.to_be_bytes());
        } else {
            put(&(self.src as u32).to_be_bytes());
            put(&(self.dst as u32).to_be_bytes());
        }
        put(&[self.proto, 0]);
        if let Some((sp, dp)) = self.ports {
            put(&sp.to_be_bytes());
            put(&dp.to_be_bytes());
        }
        n
    }
}

/// SHA-1's initial state (RFC 3174 section 6.1).
const SHA1_IV: [u32; 5] = [
    0x6745_2301,
    0xefcd_ab89,
    0x98ba_dcfe,
    0x1032_5476,
    0xc3d2_e1f0,
];

/// SHA-1 of at most [`MAX_INPUT`] bytes. The input and its padding (RFC 3174 section 4: a 1
/// bit, zeros, the length in bits as a 64-bit big-endian number) always fit one 64-byte
/// block, so the block is laid out here and compressed once: the streaming `Digest` API's
/// buffering and finalisation cost about as much as the compression itself with SHA-NI. The
/// compression function is the `sha1` crate's (SHA-NI when the CPU has it, detected at run
/// time).
fn sha1_one_block(input: &[u8]) -> [u8; 20] {
    let mut block = [0u8; 64];
    let n = input.len().min(MAX_INPUT);
    block[..n].copy_from_slice(&input[..n]);
    block[n] = 0x80;
    block[56..].copy_from_slice(&((n as u64) * 8).to_be_bytes());
    let mut state = SHA1_IV;
    sha1::compress(&mut state, &[block.into()]);
    let mut digest = [0u8; 20];
    for (chunk, word) in digest.chunks_exact_mut(4).zip(state) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    digest
}

/// The base64 alphabet (RFC 4648 section 4, table 1).
const BASE64_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Base64 (RFC 4648 section 4, with padding) of a 20-byte digest: always 28 characters, six
/// groups of three bytes, then two bytes and one `=`. Written out for this one size: the
/// `base64` crate's general engine (the oracle in the tests) took about 290 instructions
/// per ID for its length checks and chunking, as many as the rest of the miss path without
/// SHA-1, and every packet of a flow not in the cache pays it.
#[inline(always)]
fn base64_digest(digest: &[u8; 20], out: &mut [u8; 28]) {
    let char_at = |bits: u32, shift: u32| BASE64_ALPHABET[((bits >> shift) & 63) as usize];
    for (group, chars) in digest.chunks_exact(3).zip(out.chunks_exact_mut(4)) {
        let bits = (u32::from(group[0]) << 16) | (u32::from(group[1]) << 8) | u32::from(group[2]);
        chars[0] = char_at(bits, 18);
        chars[1] = char_at(bits, 12);
        chars[2] = char_at(bits, 6);
        chars[3] = char_at(bits, 0);
    }
    let bits = (u32::from(digest[18]) << 16) | (u32::from(digest[19]) << 8);
    out[24] = char_at(bits, 18);
    out[25] = char_at(bits, 12);
    out[26] = char_at(bits, 6);
    out[27] = b'=';
}

/// `1:` + base64(SHA-1(input)) into `out`. Out of line: only new flows get here.
#[inline(never)]
fn render(input: &[u8], out: &mut [u8; ID_LEN]) {
    let digest = sha1_one_block(input);
    let mut text = [0u8; 28];
    base64_digest(&digest, &mut text);
    out[..2].copy_from_slice(b"1:");
    out[2..].copy_from_slice(&text);
}

/// Ways per set of [`IdCache`]'s tables: four IPv4 keys of 16 bytes fill one 64-byte cache
/// line, so a lookup compares a whole set from one line.
const WAYS: usize = 4;

/// Sets of the IPv4 table (a power of two): 8,192 flows. On `pcaps/mixed.pcap` (2,498
/// flows, 12,978 IDs a pass) a fully associative LRU table of 16 flows already misses only
/// 2,985 times a pass and 256 flows 2,683 (the first packets of flows, which must hash
/// anyway), so there size hardly matters; traffic with thousands of live flows needs room.
/// Live capture of 5,000 UDP flows in turn (`scripts/bench-live.sh`) hashed every packet
/// with the former 256-flow table (SHA-1, base64 and the miss path were a third of the
/// capture worker's samples); with this table the worker's CPU per packet went from 178 to
/// 141 ns (bench-live.sh, medians of 3 runs, one after the other on a shared 2-core EPYC
/// VM), and the in-memory `decode_encode` bench on mixed.pcap did not slow down (2.70 ms a
/// pass before, 2.59-2.64 after). A table of 16,384 IPv4 flows (768 KiB) was slower live
/// than this one: more of its lookups came from memory. A flow seen again
/// after thousands of other packets finds its set evicted from the caches, so
/// [`Table::get`] loads all of the set's cache lines at once: one miss's latency, not three
/// in a row (keys, then the ID, then the replacement state).
const V4_SETS: usize = 2048;

/// Sets of the IPv6 table (a power of two): 1,024 flows.
const V6_SETS: usize = 256;

/// Bytes of [`IdCache`]'s tables, for the documentation and a test: an IPv4 set is three
/// cache lines (four 16-byte keys, four 30-byte IDs and the replacement state, 185 bytes),
/// an IPv6 set five (four 40-byte keys, the IDs and the state, 281 bytes): 464 KiB per
/// encoder (one per worker), allocated once.
pub const ID_CACHE_BYTES: usize = V4_SETS * 3 * 64 + V6_SETS * 5 * 64;

/// One set: the keys of its [`WAYS`] ways (`W` words each), their IDs and the set's tree
/// pseudo-LRU state (see [`plru_touch`]), in adjacent cache lines from a line boundary. A
/// lookup compares the keys, then copies one ID and updates the state.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
struct Set<const W: usize> {
    keys: [[u64; W]; WAYS],
    ids: [[u8; ID_LEN]; WAYS],
    plru: u8,
}

/// One set-associative table of IDs keyed by `W`-word keys ([`Ordered::key_v4`] or
/// [`Ordered::key_v6`]) in `SETS` sets of [`WAYS`] ways, replaced by tree pseudo-LRU. The
/// full key is compared, so a hit gives what hashing would, by construction.
#[derive(Clone, Debug)]
struct Table<const W: usize, const SETS: usize> {
    sets: Box<[Set<W>; SETS]>,
    /// IDs rendered (misses), for the tests of associativity and replacement.
    #[cfg(test)]
    renders: usize,
}

/// The last key word of a way never filled: bit 34 is never set in a real key's meta word
/// ([`meta_word`]), and the meta word is the first of every key.
const EMPTY_META: u64 = 1 << 34;

/// Boxes `SETS` copies of `value` without building the array on the stack first.
fn boxed_array<T: Clone, const SETS: usize>(value: T) -> Box<[T; SETS]> {
    match vec![value; SETS].into_boxed_slice().try_into() {
        Ok(array) => array,
        // A vector of `SETS` elements always converts.
        Err(_) => unreachable!("vec![_; SETS] has SETS elements"),
    }
}

impl<const W: usize, const SETS: usize> Default for Table<W, SETS> {
    fn default() -> Self {
        let mut empty = [0u64; W];
        empty[0] = EMPTY_META;
        Table {
            sets: boxed_array(Set {
                keys: [empty; WAYS],
                ids: [[0; ID_LEN]; WAYS],
                plru: 0,
            }),
            #[cfg(test)]
            renders: 0,
        }
    }
}

/// Tree pseudo-LRU of four ways in three bits: bit 0 says which pair holds the next victim
/// (0: ways 0-1, 1: ways 2-3), bit 1 which way of the left pair, bit 2 which of the right
/// pair. Using a way points the bits on its path away from it.
#[inline(always)]
fn plru_touch(state: u8, way: usize) -> u8 {
    // (bits kept, bits set) per way.
    const TOUCH: [(u8, u8); WAYS] = [(0b100, 0b011), (0b100, 0b001), (0b010, 0b100), (0b010, 0)];
    let (keep, set) = TOUCH[way & (WAYS - 1)];
    (state & keep) | set
}

/// The way [`plru_touch`]'s state points at: the pseudo-least recently used. A fresh set
/// (state 0) fills ways 0, 2, 1, 3 before it evicts anything.
#[inline(always)]
fn plru_victim(state: u8) -> usize {
    if state & 1 == 0 {
        usize::from((state >> 1) & 1)
    } else {
        2 + usize::from((state >> 2) & 1)
    }
}

impl<const W: usize, const SETS: usize> Table<W, SETS> {
    /// The ID of the flow whose key is `key`, rendered from `flow` and stored when no way
    /// of its set holds it, copied into `out`.
    #[inline(always)]
    fn get(&mut self, key: &[u64; W], flow: &Ordered, seed: u16, out: &mut [u8; ID_LEN]) {
        // The top bits of the product, which every bit of the key reaches.
        let set =
            &mut self.sets[(spread(key) >> (64 - SETS.trailing_zeros())) as usize & (SETS - 1)];
        // A byte from each cache line of the IDs and the state, read now: when the set is
        // not cached (a flow last seen thousands of packets ago) these misses overlap the
        // keys' instead of following the compare.
        let ids = set.ids.as_flattened();
        let mut touch = set.plru;
        for at in (0..ids.len()).step_by(64) {
            touch ^= ids[at];
        }
        std::hint::black_box(touch);
        // A bit per way whose key is `key` (at most one: keys are unique in a set); the words
        // XORed and ORed, no early exit, so the four compares are independent.
        let mut found = 0u32;
        for (w, k) in set.keys.iter().enumerate() {
            found |= u32::from(differ(k, key) == 0) << w;
        }
        let way = if found != 0 {
            found.trailing_zeros() as usize & (WAYS - 1)
        } else {
            let way = plru_victim(set.plru);
            set.keys[way] = *key;
            let mut input = [0u8; MAX_INPUT];
            let n = flow.hash_input(seed, &mut input);
            render(&input[..n], &mut set.ids[way]);
            #[cfg(test)]
            {
                self.renders += 1;
            }
            way
        };
        set.plru = plru_touch(set.plru, way);
        *out = set.ids[way];
    }
}

/// The word every cache key starts with: seed, protocol, family, whether there are ports, and
/// the two ports (or ICMP type and code, or their port equivalents). Bits 33 (family) and 32
/// (ports present) are the only ones between the protocol and the ports; bit 34 stays clear
/// ([`EMPTY_META`]).
#[inline(always)]
fn meta_word(seed: u16, proto: u8, v6: bool, ports: Option<(u16, u16)>) -> u64 {
    let (sp, dp) = ports.unwrap_or((0, 0));
    (u64::from(seed) << 48)
        | (u64::from(proto) << 40)
        | (u64::from(v6) << 33)
        | (u64::from(ports.is_some()) << 32)
        | (u64::from(sp) << 16)
        | u64::from(dp)
}

/// Bits set where `a` and `b` differ (XOR and OR of the words: array `!=` becomes a `memcmp`
/// call).
#[inline(always)]
fn differ<const W: usize>(a: &[u64; W], b: &[u64; W]) -> u64 {
    a.iter().zip(b).fold(0, |acc, (x, y)| acc | (x ^ y))
}

impl Ordered {
    /// The IPv4 table's key: the meta word and both addresses; different hashed bytes give
    /// different keys (the seed, protocol, ports and addresses are all in it).
    #[inline(always)]
    fn key_v4(&self, seed: u16) -> [u64; 2] {
        [
            meta_word(seed, self.proto, false, self.ports),
            ((self.src as u64) << 32) | self.dst as u64,
        ]
    }

    /// The IPv6 table's key: the meta word and both addresses in full.
    #[inline(always)]
    fn key_v6(&self, seed: u16) -> [u64; 5] {
        [
            meta_word(seed, self.proto, true, self.ports),
            (self.src >> 64) as u64,
            self.src as u64,
            (self.dst >> 64) as u64,
            self.dst as u64,
        ]
    }
}

/// A key's words rotated apart and XORed (independent operations), then one multiply whose
/// top bits mix them all: the set is taken from those. The whole key is compared on a hit,
/// so this only has to spread flows.
#[inline(always)]
fn spread<const W: usize>(key: &[u64; W]) -> u64 {
    let folded = key
        .iter()
        .enumerate()
        .fold(0u64, |acc, (i, w)| acc ^ w.rotate_left(13 * i as u32));
    folded.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// The Community IDs of recently seen flows (see the module comment): the last flow, then a
/// set-associative table per family. Memory: [`ID_CACHE_BYTES`] on the heap, allocated once.
#[derive(Clone, Debug)]
pub struct IdCache {
    v4: Table<2, V4_SETS>,
    v6: Table<5, V6_SETS>,
    /// The flow asked for last, in the packet's own direction and reversed (see
    /// [`IdCache::id`]).
    last: Last,
}

/// The last flow looked up: most packets belong to the same flow as the one before them (on
/// `pcaps/mixed.pcap`, 69 % of the packets with an ID), in one direction or the other, so
/// this is compared first, before ordering the flow, finding its set and loading that set.
#[derive(Clone, Copy, Debug)]
struct Last {
    /// [`raw_key`] of the flow as the packet carried it (an IPv4 flow uses the first two
    /// words).
    key: [u64; 5],
    /// The same with source and destination swapped (the reply direction, which has the same
    /// ID); a key no flow has for ICMP and ICMPv6, whose IDs are not symmetric that way.
    rev: [u64; 5],
    id: [u8; ID_LEN],
}

/// A key no flow has (see [`EMPTY_META`]).
const NO_MATCH: [u64; 5] = [EMPTY_META, 0, 0, 0, 0];

/// The flow in the packet's direction, without the ordering and ICMP mapping of [`Ordered`]:
/// the meta word, then the addresses (IPv4: one word, the rest zero; IPv6: four). Equal keys
/// give equal IDs, which is all the fast path needs; the family bit of the meta word keeps
/// an IPv4 key from matching an IPv6 one's first words. The addresses are taken in the
/// machine's byte order (plain loads: only equality matters here).
#[inline(always)]
fn raw_key(flow: &FlowTuple<'_>, seed: u16) -> [u64; 5] {
    match flow.addrs {
        Addrs::V4(s, d) => [
            meta_word(seed, flow.proto, false, flow.ports),
            u64::from(u32::from_ne_bytes(*s)) | (u64::from(u32::from_ne_bytes(*d)) << 32),
            0,
            0,
            0,
        ],
        Addrs::V6(s, d) => {
            let (s, d) = (u128::from_ne_bytes(*s), u128::from_ne_bytes(*d));
            [
                meta_word(seed, flow.proto, true, flow.ports),
                s as u64,
                (s >> 64) as u64,
                d as u64,
                (d >> 64) as u64,
            ]
        }
    }
}

/// `key` seen from the other end: addresses and ports swapped.
#[inline(always)]
fn reversed(key: &[u64; 5]) -> [u64; 5] {
    let proto = (key[0] >> 40) as u8;
    if proto == PROTO_ICMP || proto == PROTO_ICMPV6 {
        return NO_MATCH;
    }
    let m = key[0];
    let meta = (m & !0xffff_ffff) | ((m & 0xffff) << 16) | ((m >> 16) & 0xffff);
    if m & (1 << 33) == 0 {
        [meta, key[1].rotate_left(32), 0, 0, 0]
    } else {
        [meta, key[3], key[4], key[1], key[2]]
    }
}

impl Default for IdCache {
    fn default() -> IdCache {
        IdCache {
            v4: Table::default(),
            v6: Table::default(),
            last: Last {
                key: NO_MATCH,
                rev: NO_MATCH,
                id: [0; ID_LEN],
            },
        }
    }
}

impl IdCache {
    /// The Community ID of `flow` with `seed` (ASCII text), from the cache or computed (and
    /// stored). Bytes, not `&str`: checking UTF-8 on every packet cost as much as the lookup.
    #[inline]
    pub fn id(&mut self, flow: &FlowTuple<'_>, seed: u16) -> &[u8; ID_LEN] {
        let raw = raw_key(flow, seed);
        let last = &self.last;
        let hit = match flow.addrs {
            // Two words each way; the family bit in word 0 keeps IPv6 keys out.
            Addrs::V4(..) => {
                (((raw[0] ^ last.key[0]) | (raw[1] ^ last.key[1])) == 0)
                    | (((raw[0] ^ last.rev[0]) | (raw[1] ^ last.rev[1])) == 0)
            }
            Addrs::V6(..) => (differ(&raw, &last.key) == 0) | (differ(&raw, &last.rev) == 0),
        };
        if !hit {
            self.not_last(&raw);
        }
        &self.last.id
    }

    /// The Community ID of the flow of the IP header at `pkt`'s layer `at` (see
    /// [`flow::flow_at`]), `None` when that header has no flow. Out of line, with the flow
    /// found inside (no tuple passed through memory) and the fast path of [`IdCache::id`].
    #[inline(never)]
    pub fn id_at(&mut self, pkt: &Packet<'_>, at: usize, seed: u16) -> Option<&[u8; ID_LEN]> {
        let flow = flow::flow_at(pkt, at)?;
        Some(self.id(&flow, seed))
    }

    /// [`IdCache::id`] for a flow other than the last one: out of line, so the fast path
    /// inlined into the encoder stays a few instructions. Only the raw key is passed (every
    /// field of the flow is in it): a tuple kept in memory for this call was stored as small
    /// fields and read back as words, which stalled every packet on store forwarding. The ID
    /// goes from the table's slot straight into `last`.
    #[inline(never)]
    fn not_last(&mut self, raw: &[u64; 5]) {
        let (ordered, seed) = Ordered::of_raw(raw);
        if ordered.v6 {
            let key = ordered.key_v6(seed);
            self.v6.get(&key, &ordered, seed, &mut self.last.id);
        } else {
            let key = ordered.key_v4(seed);
            self.v4.get(&key, &ordered, seed, &mut self.last.id);
        }
        self.last.key = *raw;
        self.last.rev = reversed(raw);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    /// One row of the specification's baseline tables (community-id-spec, baseline/README.md):
    /// protocol, source, destination, source port or ICMP type, destination port or ICMP
    /// code, the ID with seed 0 and with seed 1.
    type SpecRow = (
        u8,
        &'static str,
        &'static str,
        Option<(u16, u16)>,
        &'static str,
        &'static str,
    );

    const SPEC_TABLE: &[SpecRow] = &[
        (
            6,
            "1.2.3.4",
            "5.6.7.8",
            Some((1122, 3344)),
            "1:wCb3OG7yAFWelaUydu0D+125CLM=",
            "1:HhA1B+6CoLbiKPEs5nhNYN4XWfk=",
        ),
        (
            6,
            "5.6.7.8",
            "1.2.3.4",
            Some((3344, 1122)),
            "1:wCb3OG7yAFWelaUydu0D+125CLM=",
            "1:HhA1B+6CoLbiKPEs5nhNYN4XWfk=",
        ),
        (
            17,
            "1.2.3.4",
            "5.6.7.8",
            Some((1122, 3344)),
            "1:0Mu9InQx6z4ZiCZM/7HXi2WMhOg=",
            "1:OShq+iKDAMVouh/4bMxB9Sz4amw=",
        ),
        (
            17,
            "5.6.7.8",
            "1.2.3.4",
            Some((3344, 1122)),
            "1:0Mu9InQx6z4ZiCZM/7HXi2WMhOg=",
            "1:OShq+iKDAMVouh/4bMxB9Sz4amw=",
        ),
        (
            132,
            "1.2.3.4",
            "5.6.7.8",
            Some((1122, 3344)),
            "1:EKt4MsxuyaE6mL+hmrEkQ9csDD8=",
            "1:uitchpn5MMGAQKBJh7bIr/bAr7s=",
        ),
        (
            132,
            "5.6.7.8",
            "1.2.3.4",
            Some((3344, 1122)),
            "1:EKt4MsxuyaE6mL+hmrEkQ9csDD8=",
            "1:uitchpn5MMGAQKBJh7bIr/bAr7s=",
        ),
        (
            1,
            "1.2.3.4",
            "5.6.7.8",
            Some((8, 0)),
            "1:crodRHL2FEsHjbv3UkRrfbs4bZ0=",
            "1:9pr4ZGTICiuZoIh90RRYE2RyXpU=",
        ),
        (
            1,
            "5.6.7.8",
            "1.2.3.4",
            Some((0, 0)),
            "1:crodRHL2FEsHjbv3UkRrfbs4bZ0=",
            "1:9pr4ZGTICiuZoIh90RRYE2RyXpU=",
        ),
        (
            1,
            "1.2.3.4",
            "5.6.7.8",
            Some((11, 0)),
            "1:f/YiSyWqczrTgfUCZlBUnvHRcPk=",
            "1:1DD7cWGC/Yg91YGsQeni8du3pIA=",
        ),
        (
            58,
            "fe80:0001:0203:0405:0607:0809:0A0B:0C0D",
            "fe80:1011:1213:1415:1617:1819:1A1B:1C1D",
            Some((128, 0)),
            "1:0bf7hyMJUwt3fMED7z8LIfRpBeo=",
            "1:IO27GQzPuCtNnwFvjWALMHu5tJE=",
        ),
        (
            58,
            "fe80:1011:1213:1415:1617:1819:1A1B:1C1D",
            "fe80:0001:0203:0405:0607:0809:0A0B:0C0D",
            Some((129, 0)),
            "1:0bf7hyMJUwt3fMED7z8LIfRpBeo=",
            "1:IO27GQzPuCtNnwFvjWALMHu5tJE=",
        ),
        (
            58,
            "fe80:0001:0203:0405:0607:0809:0A0B:0C0D",
            "fe80:1011:1213:1415:1617:1819:1A1B:1C1D",
            Some((146, 0)),
            "1:fYC8+pz24E+EhANP1EZhpX0Dw10=",
            "1:Cv4IKJe56BNkF0MBW2YxQ3Nwc3s=",
        ),
        (
            46,
            "1.2.3.4",
            "5.6.7.8",
            None,
            "1:ikv3kmf89luf73WPz1jOs49S768=",
            "1:/buhqeOmaRCopOZFy9HnoJd5XW8=",
        ),
        (
            46,
            "5.6.7.8",
            "1.2.3.4",
            None,
            "1:ikv3kmf89luf73WPz1jOs49S768=",
            "1:/buhqeOmaRCopOZFy9HnoJd5XW8=",
        ),
        (
            46,
            "fe80:0001:0203:0405:0607:0809:0A0B:0C0D",
            "fe80:1011:1213:1415:1617:1819:1A1B:1C1D",
            None,
            "1:wQ/2mwrnXP4lmJcHdGL5ePjR+e0=",
            "1:j6EyyfBzL4vWKHFXgUqb5Az3OxM=",
        ),
        (
            46,
            "fe80:1011:1213:1415:1617:1819:1A1B:1C1D",
            "fe80:0001:0203:0405:0607:0809:0A0B:0C0D",
            None,
            "1:wQ/2mwrnXP4lmJcHdGL5ePjR+e0=",
            "1:j6EyyfBzL4vWKHFXgUqb5Az3OxM=",
        ),
    ];

    fn id_of(proto: u8, s: &str, d: &str, ports: Option<(u16, u16)>, seed: u16) -> String {
        let (s, d): (IpAddr, IpAddr) = (s.parse().unwrap(), d.parse().unwrap());
        let mut out = [0u8; ID_LEN];
        match (s, d) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let (s, d) = (s.octets(), d.octets());
                let flow = FlowTuple {
                    addrs: Addrs::V4(&s, &d),
                    proto,
                    ports,
                };
                community_id(&flow, seed, &mut out).to_string()
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let (s, d) = (s.octets(), d.octets());
                let flow = FlowTuple {
                    addrs: Addrs::V6(&s, &d),
                    proto,
                    ports,
                };
                community_id(&flow, seed, &mut out).to_string()
            }
            _ => panic!("mixed families"),
        }
    }

    #[test]
    fn cache_gives_what_the_hash_gives() {
        let mut cache = IdCache::default();
        let addrs: Vec<[u8; 4]> = (0..600u32)
            .map(|i| i.wrapping_mul(2_654_435_761).to_be_bytes())
            .collect();
        for round in 0..3 {
            for (i, a) in addrs.iter().enumerate() {
                let b = addrs[(i + 1) % addrs.len()];
                let ports = Some((i as u16, (i * 7 + round) as u16));
                let flow = FlowTuple {
                    addrs: Addrs::V4(a, &b),
                    proto: 6,
                    ports,
                };
                let mut out = [0u8; ID_LEN];
                let want = community_id(&flow, 3, &mut out).to_string();
                assert_eq!(cache.id(&flow, 3), want.as_bytes());
                assert_eq!(cache.id(&flow, 3), want.as_bytes());
            }
        }
    }

    #[test]
    fn cache_keys_tell_families_and_ports_apart() {
        // An IPv4 flow and IPv6 flows whose addresses are the same numbers, with and without
        // ports, and the seed: all different inputs, so all must miss and give their own ID.
        let (s4, d4) = ([1u8, 2, 3, 4], [5u8, 6, 7, 8]);
        let mut s6 = [0u8; 16];
        let mut d6 = [0u8; 16];
        s6[12..].copy_from_slice(&s4);
        d6[12..].copy_from_slice(&d4);
        let flows = [
            FlowTuple {
                addrs: Addrs::V4(&s4, &d4),
                proto: 17,
                ports: Some((1, 2)),
            },
            FlowTuple {
                addrs: Addrs::V6(&s6, &d6),
                proto: 17,
                ports: Some((1, 2)),
            },
            FlowTuple {
                addrs: Addrs::V4(&s4, &d4),
                proto: 17,
                ports: None,
            },
            FlowTuple {
                addrs: Addrs::V4(&s4, &d4),
                proto: 17,
                ports: Some((0, 0)),
            },
        ];
        let mut cache = IdCache::default();
        for seed in [0, 1] {
            for _ in 0..2 {
                for f in &flows {
                    let mut out = [0u8; ID_LEN];
                    let want = community_id(f, seed, &mut out).to_string();
                    assert_eq!(cache.id(f, seed), want.as_bytes(), "{f:?} seed {seed}");
                }
            }
        }
    }

    #[test]
    fn last_flow_fast_path_gives_what_the_hash_gives() {
        // Both directions of TCP, UDP and SCTP flows (the fast path's reversed key), equal
        // addresses with swapped ports, and ICMP/ICMPv6 types whose reverse is a different ID
        // (one-way types, whose code stands in for a port), each asked for right after the
        // other direction.
        let (a, b) = ([10u8, 0, 0, 1], [10u8, 0, 0, 2]);
        let (a6, b6) = ([0xfeu8; 16], [0x01u8; 16]);
        let mut flows = Vec::new();
        for proto in [6u8, 17, 132, 1, 58, 47] {
            for ports in [
                Some((1000u16, 80u16)),
                Some((3, 3)),
                Some((3, 4)),
                Some((8, 0)),
            ] {
                for (s, d) in [(&a, &b), (&b, &a), (&a, &a)] {
                    flows.push(FlowTuple {
                        addrs: Addrs::V4(s, d),
                        proto,
                        ports,
                    });
                    flows.push(FlowTuple {
                        addrs: Addrs::V4(s, d),
                        proto,
                        ports: ports.map(|(x, y)| (y, x)),
                    });
                }
                for (s, d) in [(&a6, &b6), (&b6, &a6)] {
                    flows.push(FlowTuple {
                        addrs: Addrs::V6(s, d),
                        proto,
                        ports,
                    });
                    flows.push(FlowTuple {
                        addrs: Addrs::V6(d, s),
                        proto,
                        ports: ports.map(|(x, y)| (y, x)),
                    });
                }
            }
            flows.push(FlowTuple {
                addrs: Addrs::V4(&a, &b),
                proto,
                ports: None,
            });
            flows.push(FlowTuple {
                addrs: Addrs::V4(&b, &a),
                proto,
                ports: None,
            });
        }
        let mut cache = IdCache::default();
        for seed in [0, 9] {
            for pair in flows.windows(2) {
                for f in pair {
                    let mut out = [0u8; ID_LEN];
                    let want = community_id(f, seed, &mut out).to_string();
                    assert_eq!(cache.id(f, seed), want.as_bytes(), "{f:?} seed {seed}");
                }
            }
        }
    }

    #[test]
    fn specification_tables() {
        for &(proto, s, d, ports, seed0, seed1) in SPEC_TABLE {
            assert_eq!(
                id_of(proto, s, d, ports, 0),
                seed0,
                "{proto} {s} {d} {ports:?}"
            );
            assert_eq!(
                id_of(proto, s, d, ports, 1),
                seed1,
                "{proto} {s} {d} {ports:?} seed 1"
            );
        }
    }

    /// The ID the specification gives (no cache).
    fn want(flow: &FlowTuple<'_>, seed: u16) -> [u8; ID_LEN] {
        let mut out = [0u8; ID_LEN];
        community_id(flow, seed, &mut out);
        out
    }

    /// IDs rendered by both tables so far.
    fn renders(cache: &IdCache) -> usize {
        cache.v4.renders + cache.v6.renders
    }

    /// A flow's set in the IPv4 table, as `Table::get` finds it.
    fn v4_set(flow: &FlowTuple<'_>, seed: u16) -> usize {
        let key = Ordered::of(flow).key_v4(seed);
        (spread(&key) >> (64 - V4_SETS.trailing_zeros())) as usize & (V4_SETS - 1)
    }

    #[test]
    fn plru_fills_every_way_then_spares_the_recent_ones() {
        // A fresh set fills all four ways before it evicts one.
        let mut state = 0u8;
        let mut filled = Vec::new();
        for _ in 0..WAYS {
            let way = plru_victim(state);
            assert!(!filled.contains(&way), "way {way} filled twice");
            filled.push(way);
            state = plru_touch(state, way);
        }
        // Whatever the history, the way used last is never the next victim, nor is the other
        // way of its pair when that was used just before it.
        for history in 0..4096u32 {
            let mut state = 0u8;
            let mut used = Vec::new();
            for i in 0..6 {
                let way = (history >> (2 * i)) as usize & 3;
                state = plru_touch(state, way);
                used.push(way);
            }
            let last = used[5];
            assert_ne!(plru_victim(state), last, "history {used:?}");
            if used[4] ^ last == 1 {
                assert_ne!(plru_victim(state), used[4], "history {used:?}");
            }
        }
        // Ways used in the order 0, 1, 2, 3: way 0 is the least recently used, and the victim.
        let state = (0..WAYS).fold(0, plru_touch);
        assert_eq!(plru_victim(state), 0);
    }

    /// IPv4 TCP flows between 10.0.0.0/16 hosts, `n` of them, distinct.
    fn v4_hosts(n: u32) -> Vec<([u8; 4], [u8; 4], u16)> {
        (0..n)
            .map(|i| {
                let a = (0x0a00_0000 | (i % 251)).to_be_bytes();
                let b = (0x0a00_0100 | (i / 251)).to_be_bytes();
                (a, b, 1024 + (i % 7) as u16)
            })
            .collect()
    }

    #[test]
    fn a_full_set_keeps_its_flows_and_evicts_the_least_recent() {
        // Five flows of one IPv4 set: four stay cached however often they are asked for, in
        // either direction; the fifth evicts one, the pseudo-LRU one, and every answer is the
        // hash's.
        let hosts = v4_hosts(20_000);
        let flows: Vec<FlowTuple<'_>> = hosts
            .iter()
            .map(|(a, b, p)| FlowTuple {
                addrs: Addrs::V4(a, b),
                proto: 6,
                ports: Some((*p, 443)),
            })
            .collect();
        let target = v4_set(&flows[0], 0);
        let same: Vec<&FlowTuple<'_>> = flows
            .iter()
            .filter(|f| v4_set(f, 0) == target)
            .take(WAYS + 1)
            .collect();
        assert_eq!(same.len(), WAYS + 1, "not enough flows collide");
        let mut cache = IdCache::default();
        for round in 0..3 {
            for f in &same[..WAYS] {
                let reply = FlowTuple {
                    addrs: match f.addrs {
                        Addrs::V4(s, d) => Addrs::V4(d, s),
                        Addrs::V6(s, d) => Addrs::V6(d, s),
                    },
                    proto: f.proto,
                    ports: f.ports.map(|(s, d)| (d, s)),
                };
                assert_eq!(cache.id(f, 0), &want(f, 0));
                assert_eq!(cache.id(&reply, 0), &want(f, 0));
            }
            assert_eq!(
                renders(&cache),
                WAYS,
                "round {round}: the four flows stay cached"
            );
        }
        // Used last: same[3]; the victim is the pseudo-LRU way (way 0, same[0], filled first and
        // used first in each round), so same[1..4] still hit.
        assert_eq!(cache.id(same[WAYS], 0), &want(same[WAYS], 0));
        assert_eq!(renders(&cache), WAYS + 1);
        for f in &same[1..WAYS] {
            assert_eq!(cache.id(f, 0), &want(f, 0));
        }
        assert_eq!(
            renders(&cache),
            WAYS + 1,
            "the three recent flows were kept"
        );
        assert_eq!(cache.id(same[0], 0), &want(same[0], 0));
        assert_eq!(
            renders(&cache),
            WAYS + 2,
            "the evicted flow is rendered again"
        );
    }

    #[test]
    fn many_flows_both_families_seeds_and_icmp_give_what_the_hash_gives() {
        // Thousands of flows (more than the tables hold, so sets overflow and evict), IPv4
        // and IPv6, TCP, UDP, SCTP, ICMP and ICMPv6 (one-way and paired types), no ports,
        // two seeds, each direction, asked for in a scrambled order with repeats.
        let v4: Vec<([u8; 4], [u8; 4])> = (0..24_000u32)
            .map(|i| {
                (
                    i.wrapping_mul(2_654_435_761).to_be_bytes(),
                    (i / 3).wrapping_mul(40_503).to_be_bytes(),
                )
            })
            .collect();
        let v6: Vec<([u8; 16], [u8; 16])> = (0..4_000u128)
            .map(|i| {
                (
                    (i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)).to_be_bytes(),
                    (0xfe80u128 << 112 | (i % 5)).to_be_bytes(),
                )
            })
            .collect();
        let protos = [6u8, 17, 132, 1, 58, 47];
        let mut flows = Vec::new();
        for (i, (a, b)) in v4.iter().enumerate() {
            let proto = protos[i % protos.len()];
            let ports = match proto {
                47 => None,
                1 | 58 => Some(([8u16, 0, 3, 128, 129, 135][i % 6], (i % 3) as u16)),
                _ => Some(((i % 50) as u16, 80)),
            };
            flows.push(FlowTuple {
                addrs: Addrs::V4(a, b),
                proto,
                ports,
            });
            flows.push(FlowTuple {
                addrs: Addrs::V4(b, a),
                proto,
                ports: ports.map(|(s, d)| (d, s)),
            });
        }
        for (i, (a, b)) in v6.iter().enumerate() {
            let proto = protos[i % protos.len()];
            let ports = match proto {
                47 => None,
                1 | 58 => Some(([128u16, 129, 135, 136, 1, 143][i % 6], 0)),
                _ => Some((5353, (i % 9) as u16)),
            };
            flows.push(FlowTuple {
                addrs: Addrs::V6(a, b),
                proto,
                ports,
            });
            flows.push(FlowTuple {
                addrs: Addrs::V6(b, a),
                proto,
                ports: ports.map(|(s, d)| (d, s)),
            });
        }
        let mut cache = IdCache::default();
        let mut keys = std::collections::HashSet::new();
        let mut x = 1u64;
        for step in 0..200_000usize {
            // A walk that mostly stays near recent flows and sometimes jumps.
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let i = if x >> 62 == 0 {
                (x >> 20) as usize % flows.len()
            } else {
                (step * 7 + (x >> 40) as usize % 64) % flows.len()
            };
            let seed = if (x >> 33) & 7 == 0 { 1 } else { 0 };
            let f = &flows[i];
            assert_eq!(cache.id(f, seed), &want(f, seed), "{f:?} seed {seed}");
            let o = Ordered::of(f);
            keys.insert(if o.v6 {
                o.key_v6(seed).to_vec()
            } else {
                o.key_v4(seed).to_vec()
            });
        }
        // More IDs rendered than distinct flows asked for: flows were evicted and came back.
        assert!(
            renders(&cache) > keys.len(),
            "{} renders, {} flows",
            renders(&cache),
            keys.len()
        );
    }

    #[test]
    fn raw_keys_give_back_the_flow() {
        // The slow path orders the flow from its raw key alone: it must be the flow's.
        let (a, b) = ([192u8, 168, 1, 2], [10u8, 0, 0, 1]);
        let (a6, b6) = ([0x20u8; 16], [0x01u8; 16]);
        for seed in [0, 7, u16::MAX] {
            for proto in [6u8, 17, 1, 58, 47] {
                for ports in [None, Some((53u16, 40000u16)), Some((8, 0)), Some((3, 1))] {
                    for addrs in [
                        Addrs::V4(&a, &b),
                        Addrs::V4(&b, &a),
                        Addrs::V6(&a6, &b6),
                        Addrs::V6(&b6, &a6),
                    ] {
                        let flow = FlowTuple {
                            addrs,
                            proto,
                            ports,
                        };
                        let (o, s) = Ordered::of_raw(&raw_key(&flow, seed));
                        let direct = Ordered::of(&flow);
                        assert_eq!(s, seed);
                        assert_eq!(
                            (o.v6, o.src, o.dst, o.proto, o.ports),
                            (
                                direct.v6,
                                direct.src,
                                direct.dst,
                                direct.proto,
                                direct.ports
                            ),
                            "{flow:?}"
                        );
                    }
                }
            }
        }
    }

    /// The base64 written out for 20-byte digests is the `base64` crate's, for digests of
    /// every byte value in every position and random ones.
    #[test]
    fn digest_base64_is_the_crates() {
        use base64::Engine;
        let mut digests = Vec::new();
        for at in 0..20 {
            for value in 0..=255u8 {
                let mut d = [0x5au8; 20];
                d[at] = value;
                digests.push(d);
            }
        }
        let mut x = 0x0123_4567_89ab_cdefu64;
        for _ in 0..10_000 {
            let mut d = [0u8; 20];
            for b in &mut d {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = (x >> 24) as u8;
            }
            digests.push(d);
        }
        for d in digests {
            let mut ours = [0u8; 28];
            base64_digest(&d, &mut ours);
            // `encode_slice`: the crate is used without its `alloc` feature.
            let mut want = [0u8; 28];
            let n = base64::engine::general_purpose::STANDARD
                .encode_slice(d, &mut want)
                .unwrap();
            assert_eq!(n, 28);
            assert_eq!(ours, want, "{d:?}");
        }
    }

    #[test]
    fn documented_memory_is_the_tables() {
        use std::mem::size_of;
        assert_eq!(size_of::<Set<2>>(), 3 * 64);
        assert_eq!(size_of::<Set<5>>(), 5 * 64);
        let v4 = V4_SETS * size_of::<Set<2>>();
        let v6 = V6_SETS * size_of::<Set<5>>();
        assert_eq!(v4 + v6, ID_CACHE_BYTES);
    }
}
