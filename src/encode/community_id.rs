//! Community ID v1 (<https://github.com/corelight/community-id-spec>): a SHA-1 over the seed and
//! the flow tuple, ordered so that both directions of a flow give the same value, written as
//! `1:` and the base64 of the digest. The SHA-1 compression function comes from the RustCrypto
//! `sha1` crate (SHA-NI when the CPU has it); the one padded block and the 28 base64
//! characters of the digest are laid out here. Nothing is allocated per packet.
//!
//! Hashing costs about as much as a quarter of the rest of the per-packet work, and most
//! packets belong to a flow seen a moment ago, so [`IdCache`] keeps the last IDs in a small
//! direct-mapped table keyed by the ordered flow packed into five words (every field of the
//! bytes that would be hashed, so different bytes never share a key): a hit returns the same
//! text the hash would give, by construction.

use crate::decode::flow::{Addrs, FlowTuple, PROTO_ICMP, PROTO_ICMPV6};

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
        // Port equivalents: ICMP type and code become (type, counterpart type) when the type
        // has a counterpart, else (type, code) and the flow is one-way (never reordered).
        let (ports, one_way) = match (flow.proto, flow.ports) {
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
        // Numbers compare as the wire's bytes do (big-endian, unsigned).
        let (v6, src, dst) = match flow.addrs {
            Addrs::V4(s, d) => (
                false,
                u128::from(u32::from_be_bytes(*s)),
                u128::from(u32::from_be_bytes(*d)),
            ),
            Addrs::V6(s, d) => (true, u128::from_be_bytes(*s), u128::from_be_bytes(*d)),
        };
        // Ordered when one-way, when the source address is the smaller, or when the addresses
        // are equal and the source port is the smaller; otherwise both sides swap.
        let ordered = one_way || src < dst || (src == dst && ports.is_some_and(|(sp, dp)| sp < dp));
        if ordered {
            Ordered {
                v6,
                src,
                dst,
                proto: flow.proto,
                ports,
            }
        } else {
            Ordered {
                v6,
                src: dst,
                dst: src,
                proto: flow.proto,
                ports: ports.map(|(sp, dp)| (dp, sp)),
            }
        }
    }

    /// Five words that differ whenever the hashed bytes differ: both addresses in full, and
    /// seed, protocol, family, whether there are ports, and the ports in the last word.
    fn key(&self, seed: u16) -> [u64; KEY_WORDS] {
        let (sp, dp) = self.ports.unwrap_or((0, 0));
        [
            (self.src >> 64) as u64,
            self.src as u64,
            (self.dst >> 64) as u64,
            self.dst as u64,
            (u64::from(seed) << 48)
                | (u64::from(self.proto) << 40)
                | (u64::from(self.v6) << 33)
                | (u64::from(self.ports.is_some()) << 32)
                | (u64::from(sp) << 16)
                | u64::from(dp),
        ]
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

const KEY_WORDS: usize = 5;

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

/// Base64 (RFC 4648, with padding) of a 20-byte digest, by the crate's one codec (`base64`):
/// always 28 characters.
fn base64_digest(digest: &[u8; 20], out: &mut [u8; 28]) {
    use base64::Engine;
    let n = base64::engine::general_purpose::STANDARD
        .encode_slice(digest, out)
        .unwrap_or(0);
    debug_assert_eq!(n, 28);
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
}

/// Entries of [`IdCache`] (a power of two): 256 × 72 bytes, about 18 KiB per encoder.
const CACHE_ENTRIES: usize = 256;

#[derive(Clone, Copy, Debug)]
struct Entry {
    /// [`Ordered::key`] of the flow whose ID this is.
    key: [u64; KEY_WORDS],
    /// False for an entry never filled.
    used: bool,
    id: [u8; ID_LEN],
}

/// The Community IDs of recently seen flows (see the module comment).
#[derive(Clone, Debug)]
pub struct IdCache {
    entries: Box<[Entry; CACHE_ENTRIES]>,
    /// The flow asked for last, in the packet's own direction and reversed (see
    /// [`IdCache::id`]).
    last: Last,
}

/// The last flow looked up: most packets belong to the same flow as the one before them (on
/// `pcaps/mixed.pcap`, 69 % of the packets with an ID), in one direction or the other, so
/// this is compared first, before ordering the flow, hashing its key into a slot and loading
/// that slot.
#[derive(Clone, Copy, Debug)]
struct Last {
    /// [`raw_key`] of the flow as the packet carried it.
    key: [u64; KEY_WORDS],
    /// The same with source and destination swapped (the reply direction, which has the same
    /// ID); a key no flow has for ICMP and ICMPv6, whose IDs are not symmetric that way.
    rev: [u64; KEY_WORDS],
    id: [u8; ID_LEN],
}

/// Bit 34 of the last key word, never set by [`raw_key`]: a reversed key that matches nothing.
const NO_MATCH: u64 = 1 << 34;

/// Five words that differ whenever the flows differ (addresses, protocol, family, ports and
/// their presence, seed), in the packet's direction, without the ordering and ICMP mapping of
/// [`Ordered`]: equal keys give equal IDs, which is all the fast path needs. The addresses
/// are taken in the machine's byte order (plain loads: only equality matters here).
#[inline(always)]
fn raw_key(flow: &FlowTuple<'_>, seed: u16) -> [u64; KEY_WORDS] {
    let (v6, src, dst) = match flow.addrs {
        Addrs::V4(s, d) => (
            false,
            u128::from(u32::from_ne_bytes(*s)),
            u128::from(u32::from_ne_bytes(*d)),
        ),
        Addrs::V6(s, d) => (true, u128::from_ne_bytes(*s), u128::from_ne_bytes(*d)),
    };
    let (sp, dp) = flow.ports.unwrap_or((0, 0));
    [
        (src >> 64) as u64,
        src as u64,
        (dst >> 64) as u64,
        dst as u64,
        (u64::from(seed) << 48)
            | (u64::from(flow.proto) << 40)
            | (u64::from(v6) << 33)
            | (u64::from(flow.ports.is_some()) << 32)
            | (u64::from(sp) << 16)
            | u64::from(dp),
    ]
}

/// `key` seen from the other end: addresses and ports swapped.
#[inline(always)]
fn reversed(key: &[u64; KEY_WORDS], proto: u8) -> [u64; KEY_WORDS] {
    if proto == PROTO_ICMP || proto == PROTO_ICMPV6 {
        return [0, 0, 0, 0, NO_MATCH];
    }
    let w = key[4];
    let ports = ((w & 0xffff) << 16) | ((w >> 16) & 0xffff);
    [key[2], key[3], key[0], key[1], (w & !0xffff_ffff) | ports]
}

/// Bits set where `a` and `b` differ (XOR and OR of the words: array `!=` becomes a `memcmp`
/// call).
#[inline(always)]
fn differ(a: &[u64; KEY_WORDS], b: &[u64; KEY_WORDS]) -> u64 {
    a.iter().zip(b).fold(0, |acc, (x, y)| acc | (x ^ y))
}

impl Default for IdCache {
    fn default() -> IdCache {
        const EMPTY: Entry = Entry {
            key: [0; KEY_WORDS],
            used: false,
            id: [0; ID_LEN],
        };
        IdCache {
            entries: Box::new([EMPTY; CACHE_ENTRIES]),
            // No flow has these keys.
            last: Last {
                key: [0, 0, 0, 0, NO_MATCH],
                rev: [0, 0, 0, 0, NO_MATCH],
                id: [0; ID_LEN],
            },
        }
    }
}

impl IdCache {
    /// The Community ID of `flow` with `seed` (ASCII text), from the table or computed (and
    /// stored). Bytes, not `&str`: checking UTF-8 on every packet cost as much as the lookup.
    #[inline]
    pub fn id(&mut self, flow: &FlowTuple<'_>, seed: u16) -> &[u8; ID_LEN] {
        let raw = raw_key(flow, seed);
        if (differ(&raw, &self.last.key) != 0) & (differ(&raw, &self.last.rev) != 0) {
            self.not_last(flow, seed, &raw);
        }
        &self.last.id
    }

    /// [`IdCache::id`] for a flow other than the last one: out of line, so the fast path
    /// inlined into the encoder stays a few instructions.
    #[inline(never)]
    fn not_last(&mut self, flow: &FlowTuple<'_>, seed: u16, raw: &[u64; KEY_WORDS]) {
        let id = *self.lookup(flow, seed);
        self.last = Last {
            key: *raw,
            rev: reversed(raw, flow.proto),
            id,
        };
    }

    /// The table behind the one-entry fast path of [`IdCache::id`].
    #[inline]
    fn lookup(&mut self, flow: &FlowTuple<'_>, seed: u16) -> &[u8; ID_LEN] {
        let flow = Ordered::of(flow);
        let key = flow.key(seed);
        // The slot: the key's words rotated apart and XORed (independent operations), then
        // one multiply whose top bits mix them all. A multiply per word, chained, was a
        // dependency chain of some 25 cycles on every packet. The whole key is compared on a
        // hit, so the slot only has to spread flows.
        let folded = key[0]
            ^ key[1].rotate_left(13)
            ^ key[2].rotate_left(27)
            ^ key[3].rotate_left(41)
            ^ key[4].rotate_left(55);
        let slot =
            (folded.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as usize & (CACHE_ENTRIES - 1);
        let e = &mut self.entries[slot];
        if !e.used || differ(&key, &e.key) != 0 {
            let mut input = [0u8; MAX_INPUT];
            let n = flow.hash_input(seed, &mut input);
            e.key = key;
            e.used = true;
            render(&input[..n], &mut e.id);
        }
        &e.id
    }
}
