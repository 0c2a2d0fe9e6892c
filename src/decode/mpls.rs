//! MPLS label stack entries (RFC 3032) over Ethernet (EtherTypes 0x8847 unicast and 0x8848
//! multicast), GRE, IP (protocol 137, RFC 4023) and UDP (port 6635, RFC 7510); scapy 2.5's
//! contrib `MPLS`. What follows the bottom of the stack carries no type field: by default the
//! first nibble picks IPv4 (4) or IPv6 (6) and anything else is left raw; with
//! [`MplsPayload::Ether`] the payload is an Ethernet frame (a pseudowire without control word).

use super::{fail, push, Cursor, ErrorKind, Layer, LayerName, Next, Packet};
use zerocopy::network_endian::U32;
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

pub const ETHERTYPE_MPLS_UNICAST: u16 = 0x8847;
pub const ETHERTYPE_MPLS_MULTICAST: u16 = 0x8848;
pub const IP_PROTO_MPLS: u8 = 137;
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
    pub word: U32,
}

impl MplsHdr {
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
    pub fn ttl(&self) -> u32 {
        self.word.get() & 0xff
    }
}

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
