//! Community ID v1 (https://github.com/corelight/community-id-spec): a SHA-1 over the seed and
//! the flow tuple, ordered so that both directions of a flow give the same value, written as
//! `1:` and the base64 of the digest. SHA-1 and base64 come from the RustCrypto `sha1` and the
//! `base64` crates; nothing is allocated.

use crate::decode::flow::{Addrs, FlowTuple, PROTO_ICMP, PROTO_ICMPV6};
use base64::Engine;
use sha1::{Digest, Sha1};

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

/// Writes the Community ID of `flow` with `seed` into `out` and returns it as text.
pub fn community_id<'o>(flow: &FlowTuple<'_>, seed: u16, out: &'o mut [u8; ID_LEN]) -> &'o str {
    // Port equivalents: ICMP type and code become (type, counterpart type) when the type has
    // a counterpart, else (type, code) and the flow is one-way (never reordered).
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
    let (src, dst): (&[u8], &[u8]) = match flow.addrs {
        Addrs::V4(s, d) => (s, d),
        Addrs::V6(s, d) => (s, d),
    };
    // Ordered when one-way, when the source address is the smaller, or when the addresses
    // are equal and the source port is the smaller; otherwise both sides swap.
    let ordered = one_way || src < dst || (src == dst && ports.is_some_and(|(sp, dp)| sp < dp));
    let (src, dst, ports) = if ordered {
        (src, dst, ports)
    } else {
        (dst, src, ports.map(|(sp, dp)| (dp, sp)))
    };
    let mut h = Sha1::new();
    h.update(seed.to_be_bytes());
    h.update(src);
    h.update(dst);
    h.update([flow.proto, 0]);
    if let Some((sp, dp)) = ports {
        h.update(sp.to_be_bytes());
        h.update(dp.to_be_bytes());
    }
    let digest = h.finalize();
    out[..2].copy_from_slice(b"1:");
    let n = base64::engine::general_purpose::STANDARD
        .encode_slice(digest, &mut out[2..])
        .unwrap_or(0);
    // base64 output is ASCII; the fallback cannot happen (28 bytes always fit).
    std::str::from_utf8(&out[..2 + n]).unwrap_or("1:")
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
