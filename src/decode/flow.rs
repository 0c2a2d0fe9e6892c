//! The flow a packet belongs to, as the Community ID specification (Corelight, version 1)
//! defines it: addresses, IP protocol and, for TCP, UDP, SCTP, ICMP and ICMPv6, two
//! port-like numbers. Only the tuple is found here (from the decoded layers, no copying);
//! hashing it is `encode::community_id`.

use super::icmp::Icmp;
use super::icmpv6::Icmpv6;
use super::{bytes, Layer, Packet};

/// IP protocol number of ICMP.
pub const PROTO_ICMP: u8 = 1;
/// IP protocol number of TCP.
pub const PROTO_TCP: u8 = 6;
/// IP protocol number of UDP.
pub const PROTO_UDP: u8 = 17;
/// IP protocol number of ICMPv6.
pub const PROTO_ICMPV6: u8 = 58;
/// IP protocol number of SCTP.
pub const PROTO_SCTP: u8 = 132;

/// Source and destination address, as on the wire (4 or 16 bytes each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Addrs<'a> {
    /// IPv4 source and destination.
    V4(&'a [u8; 4], &'a [u8; 4]),
    /// IPv6 source and destination.
    V6(&'a [u8; 16], &'a [u8; 16]),
}

/// One direction of a flow as seen in a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowTuple<'a> {
    /// Source and destination addresses.
    pub addrs: Addrs<'a>,
    /// IP protocol number.
    pub proto: u8,
    /// Source and destination ports, or for ICMP/ICMPv6 the type and the code (mapped to
    /// port equivalents by the hasher); `None` for protocols without ports.
    pub ports: Option<(u16, u16)>,
}

/// Which IP flow of a tunnelled packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    /// The innermost IP header not quoted inside an ICMP error.
    Innermost,
    /// The outermost IP header.
    Outermost,
}

/// The flow of `pkt` (see [`Which`]), or `None` when it has no IP header, or its protocol
/// needs ports (TCP, UDP, SCTP, ICMP, ICMPv6) and the header holding them is missing (a
/// later fragment, a header cut short).
pub fn flow_tuple<'a>(pkt: &Packet<'a>, which: Which) -> Option<FlowTuple<'a>> {
    let (outermost, innermost) = ip_layers(pkt)?;
    flow_at(
        pkt,
        match which {
            Which::Innermost => innermost,
            Which::Outermost => outermost,
        },
    )
}

/// The flows of the innermost IP header and, when the packet is tunnelled (more than one IP
/// header not quoted in an ICMP error), of the outermost one: what [`flow_tuple`] and
/// [`is_tunnelled`] give, from one walk over the layers (every message's envelope needs
/// both).
pub fn flow_tuples<'a>(pkt: &Packet<'a>) -> (Option<FlowTuple<'a>>, Option<FlowTuple<'a>>) {
    flow_tuples_at(pkt, ip_layers(pkt))
}

/// As [`flow_tuples`], for a caller that already walked the layers: `ip` holds the indices of
/// the outermost and the innermost IP header not quoted inside an ICMP error (`None` when
/// there is none), as [`flow_tuples`] finds them. The JSON encoder notes them while writing
/// the layers, which saves a second walk per packet.
pub fn flow_tuples_at<'a>(
    pkt: &Packet<'a>,
    ip: Option<(usize, usize)>,
) -> (Option<FlowTuple<'a>>, Option<FlowTuple<'a>>) {
    match ip {
        None => (None, None),
        Some((outermost, innermost)) => (
            flow_at(pkt, innermost),
            if outermost != innermost {
                flow_at(pkt, outermost)
            } else {
                None
            },
        ),
    }
}

/// Indices of the outermost and the innermost IP header not quoted inside an ICMP error.
fn ip_layers(pkt: &Packet<'_>) -> Option<(usize, usize)> {
    let mut found = None;
    for (i, l) in pkt.layers_slice().iter().enumerate() {
        let ip = match l {
            Layer::Ipv4(ip) => !ip.quoted,
            Layer::Ipv6(ip) => !ip.quoted,
            _ => false,
        };
        if ip {
            found = Some(found.map_or((i, i), |(first, _)| (first, i)));
        }
    }
    found
}

/// The flow of the IP header at `pkt.layers_slice()[at]` (an index [`flow_tuples_at`] takes),
/// or `None` as for [`flow_tuple`]. Inlined into its caller: returned through memory, the
/// tuple's small fields (written one by one, read back as words) stalled the encoder on
/// store forwarding.
#[inline(always)]
pub fn flow_at<'a>(pkt: &Packet<'a>, at: usize) -> Option<FlowTuple<'a>> {
    let layers = pkt.layers_slice();
    let (addrs, mut proto, first_fragment) = match layers.get(at)? {
        Layer::Ipv4(ip) => {
            let (h, _) = ip.split()?;
            (Addrs::V4(&h.src, &h.dst), h.proto, h.frag() == 0)
        }
        Layer::Ipv6(ip) => (Addrs::V6(&ip.hdr.src, &ip.hdr.dst), ip.hdr.nh, true),
        _ => return None,
    };
    let mut first_fragment = first_fragment;
    let mut next = at + 1;
    // IPv6 extension headers: the protocol is the last next-header value.
    while let Some(Layer::Ipv6Ext(e)) = layers.get(next) {
        proto = e.nh();
        if e.kind == super::ipv6::ExtKind::Fragment {
            first_fragment &= e.fragment_fields().1 == 0;
        }
        next += 1;
    }
    let following = layers.get(next);
    let ports = match (proto, following) {
        (PROTO_TCP, Some(Layer::Tcp(t))) if !t.quoted => {
            let (h, _) = t.split()?;
            Some((h.sport.get(), h.dport.get()))
        }
        (PROTO_UDP, Some(Layer::Udp(u))) if !u.quoted => {
            Some((u.hdr.sport.get(), u.hdr.dport.get()))
        }
        (PROTO_ICMP, Some(Layer::Icmp(i))) if !i.quoted => Some(icmp_type_code(i)),
        (PROTO_ICMPV6, Some(Layer::Icmpv6(i))) => Some(icmpv6_type_code(i)),
        // SCTP, and ICMPv6 types without a class of their own (MLD, ...), are not decoded:
        // their numbers are then the first bytes of the raw rest after the IP header(s).
        (PROTO_SCTP, None) if first_fragment && pkt.raw.len() >= 4 => {
            Some((bytes::be16(pkt.raw, 0), bytes::be16(pkt.raw, 2)))
        }
        (PROTO_ICMPV6, None) if first_fragment && pkt.raw.len() >= 2 => {
            Some((u16::from(pkt.raw[0]), u16::from(pkt.raw[1])))
        }
        (PROTO_TCP | PROTO_UDP | PROTO_SCTP | PROTO_ICMP | PROTO_ICMPV6, _) => return None,
        _ => None,
    };
    Some(FlowTuple {
        addrs,
        proto,
        ports,
    })
}

fn icmp_type_code(i: &Icmp<'_>) -> (u16, u16) {
    (u16::from(i.byte(0)), u16::from(i.byte(1)))
}

fn icmpv6_type_code(i: &Icmpv6<'_>) -> (u16, u16) {
    (u16::from(i.byte(0)), u16::from(i.byte(1)))
}

/// Whether the packet has more than one IP flow (a tunnel): the outer one differs.
pub fn is_tunnelled(pkt: &Packet<'_>) -> bool {
    ip_layers(pkt).is_some_and(|(outermost, innermost)| outermost != innermost)
}
