//! MPLS label stack entries (RFC 3032) over Ethernet (EtherTypes 0x8847 unicast and 0x8848
//! multicast), GRE, IP (protocol 137, RFC 4023) and UDP (port 6635, RFC 7510); scapy 2.5's
//! contrib `MPLS`. What follows the bottom of the stack carries no type field: by default the
//! first nibble picks IPv4 (4) or IPv6 (6) and anything else is left raw; with
//! [`MplsPayload::Ether`] the payload is an Ethernet frame (a pseudowire without control word).

use super::{fail, push, Cursor, ErrorKind, Layer, LayerName, Next, Packet};
use zerocopy::network_endian::U32;
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

/// EtherType of MPLS unicast.
pub const ETHERTYPE_MPLS_UNICAST: u16 = 0x8847;
/// EtherType of MPLS multicast.
pub const ETHERTYPE_MPLS_MULTICAST: u16 = 0x8848;
/// IP protocol number of MPLS in IP (RFC 4023).
pub const IP_PROTO_MPLS: u8 = 137;
/// UDP port of MPLS in UDP (RFC 7510).
pub const UDP_PORT: u16 = 6635;

/// How the payload after the bottom label is read (`--mpls-payload`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MplsPayload {
    /// IPv4 or IPv6 by the first nibble; anything else raw.
    #[default]
    Ip,
    /// Always Ethernet.
    Ether,
}

/// One label stack entry.
#[derive(FromBytes, KnownLayout, Immutable, Unaligned, Debug)]
#[repr(C)]
pub struct MplsHdr {
    /// Label (20 bits), traffic class (3), bottom of stack (1), TTL (8).
    pub word: U32,
}

impl MplsHdr {
    /// Label value (20 bits).
    pub fn label(&self) -> u32 {
        self.word.get() >> 12
    }
    /// Traffic class (RFC 5462; scapy's `cos`).
    pub fn cos(&self) -> u32 {
        (self.word.get() >> 9) & 7
    }
    /// Bottom of stack.
    pub fn s(&self) -> u32 {
        (self.word.get() >> 8) & 1
    }
    /// Time to live.
    pub fn ttl(&self) -> u32 {
        self.word.get() & 0xff
    }
}

// Out of line: see `decode_into` (the common path stays small).
#[inline(never)]
pub(crate) fn decode<'a>(cur: &mut Cursor<'a>, pkt: &mut Packet<'a>) -> Next {
    let Ok((hdr, _)) = MplsHdr::ref_from_prefix(cur.rest()) else {
        return fail(pkt, LayerName::Mpls, ErrorKind::Truncated);
    };
    if !push(pkt, Layer::Mpls(hdr)) {
        return Next::Stop;
    }
    cur.advance(4);
    let Some(&first) = cur.rest().first() else {
        return Next::Stop;
    };
    if hdr.s() == 0 {
        return Next::Mpls;
    }
    match cur.payload_of_mpls {
        MplsPayload::Ether => Next::Ether,
        MplsPayload::Ip => match first >> 4 {
            4 => Next::Ipv4 { quoted: false },
            6 => Next::Ipv6 { quoted: false },
            _ => Next::Stop,
        },
    }
}

#[cfg(test)]
mod tests {
    use crate::decode::{decode, decode_with_options, DecodeOptions, Layer, LinkType};

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x88, 0x47]);
        // label 16, cos 5, not bottom, ttl 64; label 17, bottom, ttl 63
        f.extend_from_slice(&[0x00, 0x01, 0x0a, 0x40, 0x00, 0x01, 0x11, 0x3f]);
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn stack_then_payload_by_option() {
        let mut ip = vec![0x45, 0, 0, 20, 0, 0, 0, 0, 64, 59, 0, 0];
        ip.extend_from_slice(&[192, 0, 2, 1, 192, 0, 2, 2]);
        let f = frame(&ip);
        let p = decode(LinkType::Ethernet, &f);
        let l: Vec<_> = p.layers().collect();
        assert_eq!(l.len(), 4, "{l:?}");
        let Layer::Mpls(a) = l[1] else { panic!() };
        let Layer::Mpls(b) = l[2] else { panic!() };
        assert_eq!((a.label(), a.cos(), a.s(), a.ttl()), (16, 5, 0, 64));
        assert_eq!((b.label(), b.cos(), b.s(), b.ttl()), (17, 0, 1, 63));
        assert!(matches!(l[3], Layer::Ipv4(_)));

        // A payload that is neither IPv4 nor IPv6 stays raw by default ...
        let eth = [
            0x00, 0x00, 0x5e, 0x00, 0x53, 0x01, 0x00, 0x00, 0x5e, 0x00, 0x53, 0x02, 0x08, 0x06,
        ];
        let f = frame(&eth);
        let p = decode(LinkType::Ethernet, &f);
        assert_eq!(p.layer_count(), 3);
        assert_eq!(p.raw, &eth);
        // ... and is Ethernet with --mpls-payload ether (even one whose MAC starts with 4).
        let opts = DecodeOptions {
            mpls_payload: super::MplsPayload::Ether,
        };
        let f = frame(&eth);
        let p = decode_with_options(LinkType::Ethernet, &f, &opts);
        assert!(matches!(p.layers().nth(3), Some(Layer::Ether(_))));
        let mut eth4 = eth;
        eth4[0] = 0x45;
        let f = frame(&eth4);
        let p = decode_with_options(LinkType::Ethernet, &f, &opts);
        assert!(matches!(p.layers().nth(3), Some(Layer::Ether(_))));
    }
}
