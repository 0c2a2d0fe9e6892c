//! ICMPv6 (RFC 4443) and Neighbor Discovery (RFC 4861): the message types scapy 2.5 gives
//! classes of their own that netpipe-fast decodes, and the ND options after them.

use super::{bytes, fail, push, Cursor, ErrorKind, Layer, LayerName, Next, Packet};

/// The ICMPv6 message classes decoded (scapy class names in lower case).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Icmpv6Kind {
    /// Destination unreachable (type 1).
    DestUnreach,
    /// Packet too big (type 2).
    PacketTooBig,
    /// Time exceeded (type 3).
    TimeExceeded,
    /// Parameter problem (type 4).
    ParamProblem,
    /// Echo request (type 128).
    EchoRequest,
    /// Echo reply (type 129).
    EchoReply,
    /// Router solicitation (type 133).
    RouterSolicit,
    /// Router advertisement (type 134).
    RouterAdvert,
    /// Neighbor solicitation (type 135).
    NeighborSolicit,
    /// Neighbor advertisement (type 136).
    NeighborAdvert,
}

impl Icmpv6Kind {
    /// The kind of an ICMPv6 type, if it is one decoded field by field.
    pub fn from_type(t: u8) -> Option<Icmpv6Kind> {
        Some(match t {
            1 => Icmpv6Kind::DestUnreach,
            2 => Icmpv6Kind::PacketTooBig,
            3 => Icmpv6Kind::TimeExceeded,
            4 => Icmpv6Kind::ParamProblem,
            128 => Icmpv6Kind::EchoRequest,
            129 => Icmpv6Kind::EchoReply,
            133 => Icmpv6Kind::RouterSolicit,
            134 => Icmpv6Kind::RouterAdvert,
            135 => Icmpv6Kind::NeighborSolicit,
            136 => Icmpv6Kind::NeighborAdvert,
            _ => return None,
        })
    }

    /// The layer's JSON key (scapy's class name, lower case).
    pub fn key(self) -> &'static str {
        match self {
            Icmpv6Kind::DestUnreach => "icmpv6destunreach",
            Icmpv6Kind::PacketTooBig => "icmpv6packettoobig",
            Icmpv6Kind::TimeExceeded => "icmpv6timeexceeded",
            Icmpv6Kind::ParamProblem => "icmpv6paramproblem",
            Icmpv6Kind::EchoRequest => "icmpv6echorequest",
            Icmpv6Kind::EchoReply => "icmpv6echoreply",
            Icmpv6Kind::RouterSolicit => "icmpv6nd_rs",
            Icmpv6Kind::RouterAdvert => "icmpv6nd_ra",
            Icmpv6Kind::NeighborSolicit => "icmpv6nd_ns",
            Icmpv6Kind::NeighborAdvert => "icmpv6nd_na",
        }
    }

    /// Fixed header size (the minimum scapy requires before it picks the class).
    pub fn header_len(self) -> usize {
        match self {
            Icmpv6Kind::RouterAdvert => 16,
            Icmpv6Kind::NeighborSolicit | Icmpv6Kind::NeighborAdvert => 24,
            _ => 8,
        }
    }
}

/// An ICMPv6 message (RFC 4443, RFC 4861).
#[derive(Clone, Copy, Debug)]
pub struct Icmpv6<'a> {
    /// Which message.
    pub kind: Icmpv6Kind,
    /// The fixed header; for echo messages also the data after it.
    pub bytes: &'a [u8],
}

impl Icmpv6<'_> {
    /// The big-endian `u16` at `at` (0 past the end).
    pub fn be16(&self, at: usize) -> u16 {
        bytes::be16(self.bytes, at)
    }
    /// The big-endian `u32` at `at` (0 past the end).
    pub fn be32(&self, at: usize) -> u32 {
        bytes::be32(self.bytes, at)
    }
    /// The byte at `at` (0 past the end).
    pub fn byte(&self, at: usize) -> u8 {
        bytes::byte(self.bytes, at)
    }
}

/// ND option types decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NdOptKind {
    /// Source link-layer address (type 1).
    SrcLlAddr,
    /// Target link-layer address (type 2).
    DstLlAddr,
    /// Prefix information (type 3).
    PrefixInfo,
    /// MTU (type 5).
    Mtu,
}

impl NdOptKind {
    /// The layer's JSON key (scapy's class name, lower case).
    pub fn key(self) -> &'static str {
        match self {
            NdOptKind::SrcLlAddr => "icmpv6ndoptsrclladdr",
            NdOptKind::DstLlAddr => "icmpv6ndoptdstlladdr",
            NdOptKind::PrefixInfo => "icmpv6ndoptprefixinfo",
            NdOptKind::Mtu => "icmpv6ndoptmtu",
        }
    }
}

/// A neighbor discovery option (RFC 4861 section 4.6).
#[derive(Clone, Copy, Debug)]
pub struct NdOption<'a> {
    /// Which option.
    pub kind: NdOptKind,
    /// The option, type and length bytes included.
    pub bytes: &'a [u8],
}

impl NdOption<'_> {
    /// The big-endian `u32` at `at` (0 past the end).
    pub fn be32(&self, at: usize) -> u32 {
        bytes::be32(self.bytes, at)
    }
    /// The byte at `at` (0 past the end).
    pub fn byte(&self, at: usize) -> u8 {
        bytes::byte(self.bytes, at)
    }
}

// Out of line: see `decode_into` (the common path stays small).
#[inline(never)]
pub(crate) fn decode<'a>(cur: &mut Cursor<'a>, pkt: &mut Packet<'a>) -> Next {
    let rest = cur.rest();
    let Some(&t) = rest.first() else {
        return fail(pkt, LayerName::Icmpv6, ErrorKind::Truncated);
    };
    let Some(kind) = Icmpv6Kind::from_type(t) else {
        return Next::Stop;
    };
    let len = kind.header_len();
    if rest.len() < len {
        return fail(pkt, LayerName::Icmpv6, ErrorKind::Truncated);
    }
    let echo = matches!(kind, Icmpv6Kind::EchoRequest | Icmpv6Kind::EchoReply);
    // Echo messages carry their data inside the layer (scapy's `data` field).
    let bytes = if echo { rest } else { &rest[..len] };
    if !push(pkt, Layer::Icmpv6(Icmpv6 { kind, bytes })) {
        return Next::Stop;
    }
    cur.advance(bytes.len());
    match kind {
        Icmpv6Kind::DestUnreach
        | Icmpv6Kind::PacketTooBig
        | Icmpv6Kind::TimeExceeded
        | Icmpv6Kind::ParamProblem => Next::Ipv6 { quoted: true },
        Icmpv6Kind::EchoRequest | Icmpv6Kind::EchoReply => Next::Stop,
        _ => Next::NdOptions,
    }
}

// Out of line: see `decode_into` (the common path stays small).
#[inline(never)]
pub(crate) fn decode_nd_option<'a>(cur: &mut Cursor<'a>, pkt: &mut Packet<'a>) -> Next {
    let rest = cur.rest();
    if rest.len() < 2 {
        return Next::Stop;
    }
    let (kind, len) = match rest[0] {
        1 => (NdOptKind::SrcLlAddr, 8),
        2 => (NdOptKind::DstLlAddr, 8),
        3 => (NdOptKind::PrefixInfo, 32),
        5 => (NdOptKind::Mtu, 8),
        _ => return Next::Stop,
    };
    let Some(bytes) = rest.get(..len) else {
        return fail(pkt, LayerName::Icmpv6, ErrorKind::Truncated);
    };
    if !push(pkt, Layer::NdOption(NdOption { kind, bytes })) {
        return Next::Stop;
    }
    cur.advance(len);
    Next::NdOptions
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{decode, LinkType};

    fn ipv6(nh: u8, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u16;
        let mut f = vec![0x60, 0, 0, 0, (len >> 8) as u8, len as u8, nh, 255];
        f.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        f.extend_from_slice(&[0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 2]);
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn neighbor_solicitation_with_options() {
        let mut ns = vec![135, 0, 0x12, 0x34, 0, 0, 0, 0];
        ns.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        ns.extend_from_slice(&[1, 1, 0, 0, 0x5e, 0, 0x53, 1]);
        ns.extend_from_slice(&[5, 1, 0, 0, 0, 0, 5, 220]);
        let f = ipv6(58, &ns);
        let p = decode(LinkType::Ipv6, &f);
        let kinds: Vec<_> = p
            .layers()
            .filter_map(|l| match l {
                Layer::Icmpv6(m) => Some(m.kind.key()),
                Layer::NdOption(o) => Some(o.kind.key()),
                _ => None,
            })
            .collect();
        assert_eq!(
            kinds,
            ["icmpv6nd_ns", "icmpv6ndoptsrclladdr", "icmpv6ndoptmtu"]
        );
        assert!(p.raw.is_empty() && p.error.is_none());
    }

    #[test]
    fn echo_keeps_data_and_short_messages_are_truncated() {
        let f = ipv6(58, &[128, 0, 0, 0, 0, 7, 0, 1, b'h', b'i']);
        let p = decode(LinkType::Ipv6, &f);
        let Some(Layer::Icmpv6(m)) = p.layers().nth(1) else {
            panic!("{p:?}")
        };
        assert_eq!(
            (m.kind, m.be16(4), &m.bytes[8..]),
            (Icmpv6Kind::EchoRequest, 7, &b"hi"[..])
        );
        let f = ipv6(58, &[135, 0, 0, 0, 0, 0]);
        let p = decode(LinkType::Ipv6, &f);
        assert_eq!(p.layer_count(), 1);
        assert_eq!(p.error.unwrap().kind, ErrorKind::Truncated);
    }

    #[test]
    fn errors_quote_the_datagram() {
        let inner = ipv6(17, &[0, 53, 0, 53, 0, 8, 0, 0]);
        let mut msg = vec![1, 4, 0, 0, 0, 0, 0, 0];
        msg.extend_from_slice(&inner);
        let f = ipv6(58, &msg);
        let p = decode(LinkType::Ipv6, &f);
        assert_eq!(p.layer_count(), 4);
        assert!(matches!(p.layers().nth(2), Some(Layer::Ipv6(i)) if i.quoted));
        assert!(matches!(p.layers().nth(3), Some(Layer::Udp(u)) if u.quoted));
    }
}
