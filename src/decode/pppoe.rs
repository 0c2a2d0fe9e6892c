//! PPPoE (RFC 2516): the discovery stage (EtherType 0x8863, scapy `PPPoED`, tags left raw)
//! and the session stage (0x8864, scapy `PPPoE`) with the PPP header it carries (RFC 1661,
//! scapy `PPP`), also reached from PPTP's enhanced GRE.

use super::{bytes, fail, push, Cursor, ErrorKind, Layer, LayerName, Next, Packet};
use zerocopy::network_endian::U16;
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

/// PPP protocol numbers of the network layers decoded after PPP.
pub const PPP_IPV4: u16 = 0x0021;
/// PPP protocol number of IPv6.
pub const PPP_IPV6: u16 = 0x0057;

/// The 6-byte PPPoE header (RFC 2516).
#[derive(FromBytes, KnownLayout, Immutable, Unaligned, Debug)]
#[repr(C)]
pub struct PppoeHdr {
    /// Version (high 4 bits) and type (low 4 bits).
    pub version_type: u8,
    /// Code (0 in the session stage).
    pub code: u8,
    /// Session ID.
    pub sessionid: U16,
    /// Length of the payload in bytes.
    pub len: U16,
}

impl PppoeHdr {
    /// Version (4 bits).
    pub fn version(&self) -> u8 {
        self.version_type >> 4
    }
    /// Type (4 bits).
    pub fn pppoe_type(&self) -> u8 {
        self.version_type & 0x0f
    }
}

/// A decoded PPPoE header.
#[derive(Clone, Copy, Debug)]
pub struct Pppoe<'a> {
    /// The header.
    pub hdr: &'a PppoeHdr,
    /// The discovery stage (`pppoed`).
    pub discovery: bool,
}

// Out of line: see `decode_into` (the common path stays small).
#[inline(never)]
pub(crate) fn decode<'a>(cur: &mut Cursor<'a>, pkt: &mut Packet<'a>, discovery: bool) -> Next {
    let Ok((hdr, _)) = PppoeHdr::ref_from_prefix(cur.rest()) else {
        return fail(pkt, LayerName::Pppoe, ErrorKind::Truncated);
    };
    if !push(pkt, Layer::Pppoe(Pppoe { hdr, discovery })) {
        return Next::Stop;
    }
    cur.advance(6);
    // The payload is `len` bytes; the rest of the frame is Ethernet padding (RFC 2516 §4).
    cur.limit(usize::from(hdr.len.get()));
    if discovery || hdr.code != 0 || cur.rest().is_empty() {
        return Next::Stop;
    }
    Next::Ppp
}

/// The PPP protocol field: one byte when its low bit is set (protocol-field compression,
/// RFC 1661 §6.5), otherwise two. A frame starting 0xff has HDLC address and control bytes
/// instead, not decoded.
// Out of line: see `decode_into` (the common path stays small).
#[inline(never)]
pub(crate) fn decode_ppp<'a>(cur: &mut Cursor<'a>, pkt: &mut Packet<'a>) -> Next {
    let rest = cur.rest();
    let Some(&first) = rest.first() else {
        return Next::Stop;
    };
    if first == 0xff {
        return Next::Stop;
    }
    let (proto, len) = if first & 1 == 1 {
        (u16::from(first), 1)
    } else if rest.len() >= 2 {
        (bytes::be16(rest, 0), 2)
    } else {
        return fail(pkt, LayerName::Ppp, ErrorKind::Truncated);
    };
    if !push(pkt, Layer::Ppp(proto)) {
        return Next::Stop;
    }
    cur.advance(len);
    if cur.rest().is_empty() {
        return Next::Stop;
    }
    match proto {
        PPP_IPV4 => Next::Ipv4 { quoted: false },
        PPP_IPV6 => Next::Ipv6 { quoted: false },
        _ => Next::Stop,
    }
}
